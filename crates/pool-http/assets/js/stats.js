// The public statistics page, from /stats.json (no sign-in): totals, the 24 h trend and the
// top models. Refreshes every 30 s while visible. Model names are shown as text.

import { api } from './api.js';
import { trendChart } from './chart.js';
import { dateTime, number, onLangChange, percent, t } from './i18n.js';
import { clear, h, setupPrefs } from './ui.js';
import { autoRefresh, table } from './pages/common.js';

const body = document.getElementById('stats-body');
let chart = null;

function card(labelKey, value) {
  return h('div', { class: 'card metric' }, h('div', { class: 'label' }, t(labelKey)), h('div', { class: 'value' }, value));
}

async function load() {
  const s = await api('/stats.json');
  const points = (s.hourly || []).map((p) => ({ at: p.hour, successCount: p.successCount, clientErrorCount: 0, failureCount: p.requests - p.successCount }));
  const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': t('stats.trend') });
  const columns = [
    { key: 'stats.col.model', cell: (m) => m.model },
    { key: 'stats.col.requests', num: true, cell: (m) => number(m.requests) },
    { key: 'stats.col.tokens', num: true, cell: (m) => number(m.totalTokens) },
  ];
  chart?.destroy();
  clear(body).append(
    h('div', { class: 'grid cards' },
      card('stats.total', number(s.totalRequests)),
      card('stats.today', number(s.requestsToday)),
      card('stats.rate', percent(s.successRate)),
      card('stats.tokens', number(s.totalTokens))),
    h('section', { class: 'card' }, h('h2', {}, t('stats.trend')), chartBox),
    h('section', { class: 'card' }, h('h2', {}, t('stats.topModels')), table(columns, (s.topModels24h || []).slice(0, 10), 'ov.none')),
    h('p', { class: 'muted small' }, t('stats.generated', { time: dateTime(s.generatedAt) })),
  );
  chart = trendChart(chartBox, { labels: [t('ov.success'), t('ov.clientError'), t('ov.failed')], points, granularity: 'hour' });
}

setupPrefs();
onLangChange(() => load().catch(() => {}));
load().catch((e) => clear(body).append(h('div', { class: 'alert error', role: 'alert' }, t('common.error', { message: e.message }))));
autoRefresh(() => load().catch(() => {}), 30_000);
