// Pieces the console pages share: a data table that turns into cards on a phone, a pager, and
// a timer that refreshes a page while its tab is visible.

import { t } from '../i18n.js';
import { h } from '../ui.js';

// columns: [{ key: 'keys.col.key', cell: (row) => Node|string, num: bool, head: () => Node }]
// (`head` replaces the header text, e.g. with a select-all checkbox); `rowData(row)` gives each
// row's data-* attributes.
export function table(columns, rows, emptyKey, rowData = () => ({})) {
  const head = h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.head ? c.head() : t(c.key)))));
  const body = h('tbody', {});
  if (!rows.length) {
    body.append(h('tr', {}, h('td', { class: 'empty', colspan: columns.length }, t(emptyKey))));
  }
  for (const row of rows) {
    body.append(h('tr', { dataset: rowData(row) }, columns.map((c) => h('td', { class: c.num ? 'num' : 'wrap-anywhere', dataset: { label: t(c.key) } }, c.cell(row)))));
  }
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data' }, head, body));
}

export function pager({ page, totalPages }, go) {
  return h('div', { class: 'pager' },
    h('button', { class: 'btn small', type: 'button', disabled: page <= 1, onclick: () => go(page - 1) }, t('common.prev')),
    h('span', { class: 'muted small', 'aria-live': 'polite' }, t('common.page', { page, pages: totalPages })),
    h('button', { class: 'btn small', type: 'button', disabled: page >= totalPages, onclick: () => go(page + 1) }, t('common.next')),
  );
}

// Calls `tick` every `ms` while the document is visible, and once when it becomes visible again.
export function autoRefresh(tick, ms) {
  let timer = null;
  const startTimer = () => { if (!timer) timer = setInterval(tick, ms); };
  const stopTimer = () => { clearInterval(timer); timer = null; };
  const onVisibility = () => {
    if (document.hidden) stopTimer();
    else { tick(); startTimer(); }
  };
  document.addEventListener('visibilitychange', onVisibility);
  if (!document.hidden) startTimer();
  return { dispose() { stopTimer(); document.removeEventListener('visibilitychange', onVisibility); } };
}

export function stateBadge(state) {
  return h('span', { class: `badge ${state}` }, t(`state.${state}`));
}

// Follows a job (`/admin/jobs/{id}`) by its server-sent events: `onProgress(state)` on each
// change, and the full result once it is done. The server ends the stream after `done`; the
// stream's end (an `error` event, before any reconnect) closes the source, so the request ends
// normally instead of being aborted.
export function followJob(id, onProgress) {
  return new Promise((resolve, reject) => {
    const events = new EventSource(`/admin/jobs/${encodeURIComponent(id)}`);
    let finished = false;
    events.addEventListener('progress', (e) => onProgress(JSON.parse(e.data)));
    events.addEventListener('done', (e) => { finished = true; const state = JSON.parse(e.data); onProgress(state); resolve(state); });
    events.onerror = () => { events.close(); if (!finished) reject(new Error(t('job.lost'))); };
  });
}

// A progress bar with a line of text under it, for a job.
export function progressBar(id) {
  const bar = h('progress', { id: `${id}-bar`, max: 1, value: 0, 'aria-label': t('job.progress') });
  const text = h('div', { class: 'muted small', id: `${id}-text`, 'aria-live': 'polite' });
  const box = h('div', { class: 'progress', id, hidden: true }, bar, text);
  return {
    box,
    show(done, total, line) {
      box.hidden = false;
      bar.max = Math.max(total, 1);
      bar.value = done;
      text.textContent = line;
    },
  };
}

// Durations an operator may disable keys for (seconds; 0: until enabled again).
export const DURATIONS = [3600, 6 * 3600, 86400, 7 * 86400, 0];

export function durationSelect(id) {
  return h('select', { id, 'aria-label': t('keys.disableFor') },
    DURATIONS.map((s) => h('option', { value: s, selected: s === 3600 }, t(`dur.${s}`))));
}

// "3h 12m", "4m 05s": the time left until `iso`, for a live countdown.
export function countdown(iso) {
  const s = Math.max(0, Math.round((new Date(iso).getTime() - Date.now()) / 1000));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${String(mm).padStart(2, '0')}m`;
  return `${mm}m ${ss}s`;
}
