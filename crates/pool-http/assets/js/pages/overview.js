// Overview: cards (keys by state, tokens, requests, success rate, tokens used, each against the
// previous 24 hours), the request trend with presets, and the top models, keys and tokens.
// Refreshes every 30 s while the tab is visible.

import { api } from '../api.js';
import { trendChart } from '../chart.js';
import { number, percent, t } from '../i18n.js';
import { clear, h } from '../ui.js';
import { autoRefresh, stateBadge } from './common.js';

const PRESETS = ['1h', '24h', '7d', '30d'];
const STATES = ['active', 'cooling', 'failed', 'disabled', 'expired'];

function rate(p) {
  const judged = p.successCount + p.failureCount;
  return judged ? p.successCount / judged : null;
}

function delta(now, before, asPoints = false) {
  if (now == null || before == null || (!asPoints && before === 0)) {
    return h('div', { class: 'delta' }, t('ov.noPrev'));
  }
  const change = asPoints ? (now - before) * 100 : ((now - before) / before) * 100;
  const sign = change > 0 ? '+' : '';
  const text = asPoints ? `${sign}${change.toFixed(1)} pp` : `${sign}${change.toFixed(0)} %`;
  const cls = change > 0 ? 'up' : change < 0 ? 'down' : '';
  return h('div', { class: `delta ${cls}` }, t('ov.vsPrev', { delta: text }));
}

function metric(labelKey, value, extra) {
  return h('div', { class: 'card metric' },
    h('div', { class: 'label' }, t(labelKey)),
    h('div', { class: 'value' }, value),
    extra);
}

function topList(items, emptyKey = 'ov.none') {
  if (!items.length) return h('p', { class: 'muted' }, t(emptyKey));
  return h('ol', { class: 'top-list' }, items.map(([name, count]) =>
    h('li', {}, h('span', { class: 'name' }, name), h('span', { class: 'count' }, t('ov.requests', { n: number(count) })))));
}

export async function render(main) {
  let range = '24h';
  let chart = null;
  const cards = h('div', { class: 'grid cards', id: 'overview-cards' });
  const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': t('ov.chartLabel') });
  const presetButtons = PRESETS.map((p) => h('button', {
    class: `btn small${p === range ? ' active' : ''}`, type: 'button', 'aria-pressed': String(p === range), dataset: { range: p },
    onclick: () => { range = p; for (const b of presetButtons) { const on = b.dataset.range === p; b.classList.toggle('active', on); b.setAttribute('aria-pressed', String(on)); } loadTrend(); },
  }, p));
  const tops = { models: h('div'), keys: h('div'), tokens: h('div') };
  const updated = h('span', { class: 'muted small', 'aria-live': 'polite' });

  main.append(
    h('header', {}, h('h1', {}, t('dash.nav.overview')),
      h('div', { class: 'row' }, updated, h('button', { class: 'btn small', type: 'button', onclick: () => load() }, t('dash.refresh')))),
    cards,
    h('div', { class: 'card' },
      h('div', { class: 'row' }, h('h2', {}, t('ov.trend')), h('span', { class: 'spacer' }), h('div', { class: 'presets', role: 'group', 'aria-label': t('ov.trend') }, presetButtons)),
      chartBox,
      h('div', { class: 'legend-row' },
        h('span', {}, h('span', { class: 'swatch ok' }), t('ov.success')),
        h('span', {}, h('span', { class: 'swatch warn' }), t('ov.clientError')),
        h('span', {}, h('span', { class: 'swatch bad' }), t('ov.failed')))),
    h('div', { class: 'grid two' },
      h('section', { class: 'card' }, h('h2', {}, t('ov.topModels')), tops.models),
      h('section', { class: 'card' }, h('h2', {}, t('ov.topKeys')), tops.keys),
      h('section', { class: 'card' }, h('h2', {}, t('ov.topTokens')), tops.tokens)),
  );

  async function loadTrend(day) {
    const trend = day && range === '24h' ? day : await api('/admin/stats/trend', { query: { range } });
    chart?.destroy();
    clear(chartBox);
    chart = trendChart(chartBox, { labels: [t('ov.success'), t('ov.clientError'), t('ov.failed')], points: trend.points, granularity: trend.granularity });
  }

  async function load() {
    const [stats, day, topKeys, tokens] = await Promise.all([
      api('/admin/stats'),
      api('/admin/stats/trend', { query: { range: '24h' } }),
      api('/admin/api-keys', { query: { sort: 'requests', pageSize: 5 } }),
      api('/admin/tokens'),
    ]);
    const { current, previous } = day;
    const byStatus = stats.keys.byStatus || {};
    clear(cards).append(
      metric('ov.keys', number(stats.keys.total),
        h('div', { class: 'states' }, STATES.filter((s) => byStatus[s]).map((s) => h('span', {}, stateBadge(s), ' ', number(byStatus[s]))))),
      metric('ov.tokens', number(stats.tokens.total), h('div', { class: 'delta' }, t('ov.activeTokens', { n: number(stats.tokens.active) }))),
      metric('ov.requestsToday', number(current.requests), delta(current.requests, previous.requests)),
      metric('ov.successRate', percent(rate(current)), delta(rate(current), rate(previous), true)),
      metric('ov.tokensUsed', number(current.totalTokens), delta(current.totalTokens, previous.totalTokens)),
    );
    clear(tops.models).append(topList((stats.topModels24h || []).slice(0, 5).map((m) => [m.model, m.requests])));
    clear(tops.keys).append(topList(topKeys.api_keys.filter((k) => k.total_requests > 0)
      .map((k) => [k.username ? `${k.username} · ${k.api_key}` : k.api_key, k.total_requests])));
    clear(tops.tokens).append(topList(tokens.tokens.filter((x) => x.requestCount > 0)
      .sort((a, b) => b.requestCount - a.requestCount).slice(0, 5).map((x) => [x.name, x.requestCount])));
    updated.textContent = t('dash.updated', { time: new Date().toLocaleTimeString() });
    await loadTrend(day);
  }

  await load();
  const refresh = autoRefresh(() => load().catch(() => {}), 30_000);
  return { dispose() { refresh.dispose(); chart?.destroy(); } };
}
