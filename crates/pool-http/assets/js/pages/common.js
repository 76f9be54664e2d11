// Pieces the console pages share: a data table that turns into cards on a phone, a pager, and
// a timer that refreshes a page while its tab is visible.

import { t } from '../i18n.js';
import { h } from '../ui.js';

// columns: [{ key: 'keys.col.label', cell: (row) => Node|string, num: bool }]
export function table(columns, rows, emptyKey) {
  const head = h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, t(c.key)))));
  const body = h('tbody', {});
  if (!rows.length) {
    body.append(h('tr', {}, h('td', { class: 'empty', colspan: columns.length }, t(emptyKey))));
  }
  for (const row of rows) {
    body.append(h('tr', {}, columns.map((c) => h('td', { class: c.num ? 'num' : 'wrap-anywhere', dataset: { label: t(c.key) } }, c.cell(row)))));
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
