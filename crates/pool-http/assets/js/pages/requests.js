// Requests: the request log, newest first, one page at a time by the server's cursor ("Load
// more" asks for the entries before the last one shown; nothing is ever counted). A filter for
// every field, and a request-id box first: the id from a client's error finds its request.
// Every value (model names, token names, reasons) goes in as text.

import { api } from '../api.js';
import { lang, number, t } from '../i18n.js';
import { clear, copy, h, toast } from '../ui.js';
import { table } from './common.js';

const OUTCOMES = ['success', 'cached', 'client_error', 'rejected', 'no_key', 'failed', 'rate_limited', 'auth_error',
  'server_error', 'timeout', 'network', 'model_missing', 'stream_error', 'cancelled'];
const GOOD = new Set(['success', 'cached']);
const CLIENT = new Set(['client_error', 'rejected', 'cancelled']);
const PAGE = 50;

function field(id, labelKey, input, hintKey) {
  return h('div', { class: 'field' }, h('label', { for: id }, t(labelKey)), input,
    hintKey ? h('span', { class: 'hint' }, t(hintKey)) : null);
}

// The time to the second, the date beneath it.
function when(ms) {
  const at = new Date(ms);
  return h('div', { class: 'nowrap' }, new Intl.DateTimeFormat(lang(), { timeStyle: 'medium' }).format(at),
    h('div', { class: 'muted small' }, new Intl.DateTimeFormat(lang(), { dateStyle: 'medium' }).format(at)));
}

function outcomeBadge(outcome) {
  const tone = GOOD.has(outcome) ? 'active' : CLIENT.has(outcome) ? 'cooling' : 'failed';
  return h('span', { class: `badge ${tone}` }, t(`outcome.${outcome}`));
}

function attempts(entry) {
  const list = entry.attempts;
  if (!list.length) return h('span', { class: 'muted' }, t('req.noAttempts'));
  return h('details', { class: 'attempts' },
    h('summary', {}, t(list.length === 1 ? 'req.attempt1' : 'req.attempts', { n: list.length })),
    h('ol', {}, list.map((a) => h('li', {}, h('code', {}, a.keyId), ' ', h('span', { class: 'muted' }, a.reason)))));
}

const COLUMNS = [
  { key: 'req.col.time', cell: (e) => when(e.atMs) },
  { key: 'req.col.provider', cell: (e) => e.provider },
  { key: 'req.col.model', cell: (e) => e.model || '—' },
  { key: 'req.col.token', cell: (e) => e.tokenName ?? (e.tokenId ? h('code', {}, e.tokenId) : '—') },
  { key: 'req.col.status', num: true, cell: (e) => String(e.status) },
  { key: 'req.col.outcome', cell: (e) => h('div', {}, outcomeBadge(e.outcome), e.stream ? h('div', { class: 'muted small' }, t('req.stream')) : null) },
  { key: 'req.col.latency', num: true, cell: (e) => t('req.ms', { n: number(e.latencyMs) }) },
  { key: 'req.col.tokens', num: true, cell: (e) => `${number(e.promptTokens)} / ${number(e.completionTokens)}` },
  {
    key: 'req.col.id',
    cell: (e) => h('div', { class: 'actions' }, h('code', { class: 'request-id' }, e.requestId),
      h('button', { class: 'btn small', type: 'button', 'aria-label': t('req.copyId'), onclick: () => copy(e.requestId) }, t('req.copy'))),
  },
  { key: 'req.col.attempts', cell: attempts },
];

export async function render(main) {
  const inputs = {
    requestId: h('input', { type: 'search', id: 'req-id', maxlength: 64, autocomplete: 'off', spellcheck: 'false' }),
    status: h('input', { type: 'text', id: 'req-status', maxlength: 3, placeholder: '5xx', autocomplete: 'off' }),
    outcome: h('select', { id: 'req-outcome' }, h('option', { value: '' }, t('req.allOutcomes')),
      OUTCOMES.map((o) => h('option', { value: o }, t(`outcome.${o}`)))),
    model: h('input', { type: 'text', id: 'req-model', maxlength: 200, autocomplete: 'off' }),
    token: h('select', { id: 'req-token' }, h('option', { value: '' }, t('req.allTokens'))),
    key: h('input', { type: 'text', id: 'req-key', maxlength: 36, autocomplete: 'off', spellcheck: 'false' }),
    from: h('input', { type: 'datetime-local', id: 'req-from', step: 1 }),
    to: h('input', { type: 'datetime-local', id: 'req-to', step: 1 }),
  };
  const shown = h('span', { class: 'muted small', id: 'req-shown', 'aria-live': 'polite' });
  const notice = h('div', { id: 'req-notice' });
  const list = h('div', { id: 'req-list' });
  const more = h('button', { class: 'btn', type: 'button', id: 'req-more', hidden: true }, t('req.more'));
  let entries = [];
  let next = null;

  const find = h('form', { class: 'row', id: 'req-find', role: 'search' },
    field('req-id', 'req.find', inputs.requestId, 'req.findHint'),
    h('button', { class: 'btn primary', type: 'submit' }, t('req.findGo')));
  const filters = h('form', { id: 'req-filters' },
    h('div', { class: 'row' },
      field('req-status', 'req.status', inputs.status, 'req.statusHint'),
      field('req-outcome', 'req.outcome', inputs.outcome),
      field('req-model', 'req.model', inputs.model),
      field('req-token', 'req.token', inputs.token),
      field('req-key', 'req.key', inputs.key),
      field('req-from', 'req.from', inputs.from),
      field('req-to', 'req.to', inputs.to)),
    h('div', { class: 'row' },
      h('button', { class: 'btn primary', type: 'submit' }, t('req.apply')),
      h('button', { class: 'btn', type: 'reset' }, t('req.reset'))));

  const go = (event) => { event.preventDefault(); load(true); };
  find.addEventListener('submit', go);
  filters.addEventListener('submit', go);
  filters.addEventListener('reset', () => setTimeout(() => load(true), 0));
  more.addEventListener('click', () => load(false));

  function query() {
    const ms = (input) => (input.value ? new Date(input.value).getTime() : undefined);
    return {
      requestId: inputs.requestId.value.trim(),
      status: inputs.status.value.trim(),
      outcome: inputs.outcome.value,
      model: inputs.model.value.trim(),
      token: inputs.token.value,
      key: inputs.key.value.trim(),
      from: ms(inputs.from),
      to: ms(inputs.to),
      limit: PAGE,
    };
  }

  async function load(fresh) {
    const q = query();
    if (!fresh) q.before = next;
    let data;
    try {
      data = await api('/admin/requests', { query: q });
    } catch (e) {
      toast(t('common.error', { message: e.message }), 'error');
      return;
    }
    entries = fresh ? data.entries : entries.concat(data.entries);
    next = data.nextBefore;
    clear(notice).append(data.enabled ? '' : h('div', { class: 'alert', role: 'status' }, t('req.disabled')));
    // The table scrolls sideways on narrow screens: keyboard users reach it as a named region.
    const wrap = table(COLUMNS, entries, 'req.empty');
    Object.assign(wrap, { tabIndex: 0 });
    wrap.setAttribute('role', 'region');
    wrap.setAttribute('aria-label', t('req.table'));
    clear(list).append(wrap);
    more.hidden = !data.hasMore;
    shown.textContent = t('req.shown', { n: number(entries.length) });
  }

  main.append(
    h('header', {}, h('h1', {}, t('dash.nav.requests')), shown),
    h('section', { class: 'card' }, find, filters),
    h('section', { class: 'card' }, notice, list, h('div', { class: 'row' }, more)),
  );
  try {
    const tokens = (await api('/admin/tokens')).tokens;
    inputs.token.append(...tokens.map((x) => h('option', { value: x.id }, x.name)));
  } catch { /* the filter lists no token; the log still loads */ }
  await load(true);
}
