// Keys: one page of keys at a time from the server (paging, search, provider and state filters
// all applied there; no request ever asks for every key). Per key: verify, enable, disable for
// a chosen time, reset cooldown, copy id, delete, with its state, reason and a live countdown to
// the end of its hold. Selected keys (or every key matching the filter) go to the bulk bar,
// which the server acts on in one call; import and export sit above the list.

import { api } from '../api.js';
import { ago, number, percent, t } from '../i18n.js';
import { clear, copy, h, toast } from '../ui.js';
import { countdown, durationSelect, pager, stateBadge, table } from './common.js';
import { bulkBar } from './keys_bulk.js';
import { importPanel } from './keys_import.js';

const STATES = ['active', 'cooling', 'failed', 'disabled', 'expired'];

export async function render(main) {
  const filter = { page: 1, pageSize: 50, search: '', provider: '', status: '' };
  const providers = (await api('/admin/providers')).providers;
  const search = h('input', { type: 'search', id: 'keys-search', placeholder: t('keys.search'), 'aria-label': t('keys.search') });
  const provider = h('select', { id: 'keys-provider', 'aria-label': t('keys.provider') },
    h('option', { value: '' }, t('keys.allProviders')),
    providers.map((p) => h('option', { value: p.name }, p.name)));
  const status = h('select', { id: 'keys-state', 'aria-label': t('keys.state') },
    h('option', { value: '' }, t('state.all')), STATES.map((s) => h('option', { value: s }, t(`state.${s}`))));
  const size = h('select', { id: 'keys-page-size', 'aria-label': t('common.pageSize') }, [20, 50, 100, 200].map((n) => h('option', { value: n, selected: n === 50 }, String(n))));
  const duration = durationSelect('keys-duration');
  const total = h('span', { class: 'muted small', id: 'keys-total', 'aria-live': 'polite' });
  const list = h('div', { id: 'keys-list' });
  const exportCsv = h('a', { class: 'btn small', id: 'keys-export-csv', download: 'ollama-pool-keys.csv' }, t('keys.exportCsv'));
  const exportJson = h('a', { class: 'btn small', id: 'keys-export-json', download: 'ollama-pool-keys.json' }, t('keys.exportJson'));

  const filterQuery = () => ({ search: filter.search, provider: filter.provider, status: filter.status });
  const selection = {
    ids: new Set(), allMatching: false, count: 0,
    total: () => selection.count,
    filter: () => Object.fromEntries(Object.entries(filterQuery()).filter(([, v]) => v)),
    clear() { selection.ids.clear(); selection.allMatching = false; },
  };
  const bulk = bulkBar(selection, () => Number(duration.value), () => load());

  main.append(
    h('header', {}, h('h1', {}, t('dash.nav.keys')), total),
    importPanel(providers, () => load()),
    h('section', { class: 'card' },
      h('div', { class: 'toolbar' }, search, provider, status, size,
        h('label', { class: 'small', for: 'keys-duration' }, t('keys.disableFor')), duration, exportCsv, exportJson),
      h('p', { class: 'muted small' }, t('keys.masked')),
      bulk.bar, list),
  );

  const refilter = () => { filter.page = 1; selection.clear(); load(); };
  let typing = null;
  search.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(() => { filter.search = search.value.trim(); refilter(); }, 250); });
  provider.addEventListener('change', () => { filter.provider = provider.value; refilter(); });
  status.addEventListener('change', () => { filter.status = status.value; refilter(); });
  size.addEventListener('change', () => { filter.pageSize = Number(size.value); refilter(); });

  async function act(promise, okKey) {
    try {
      await promise;
      toast(t(okKey), 'ok');
    } catch (e) {
      toast(t('common.error', { message: e.message }), 'error');
    }
    await load();
  }

  const post = (path, body) => api(path, { method: 'POST', body });
  function disable(key) {
    const seconds = Number(duration.value);
    return act(post('/admin/keys/disable', seconds ? { id: key.id, duration: seconds } : { id: key.id }), 'keys.disabled');
  }

  function actions(key) {
    const button = (label, onclick, cls = 'btn small') => h('button', { class: cls, type: 'button', onclick }, t(label));
    return h('div', { class: 'actions' },
      button('keys.verify', () => act(post('/admin/verify-key', { id: key.id }), 'keys.verified')),
      key.status === 'active' ? button('keys.disable', () => disable(key)) : button('keys.enable', () => act(post('/admin/keys/enable', { id: key.id }), 'keys.enabled')),
      key.status === 'cooling' || key.status === 'failed'
        ? button('keys.reset', () => act(post('/admin/api-keys/bulk', { action: 'reset-cooldown', ids: [key.id] }), 'keys.resetDone')) : null,
      button('keys.copyId', () => copy(key.id)),
      button('keys.delete', () => {
        if (confirm(t('keys.confirmDelete', { key: key.api_key }))) act(api(`/admin/api-keys/${encodeURIComponent(key.id)}`, { method: 'DELETE' }), 'keys.deleted');
      }, 'btn small danger'));
  }

  function checkbox(key) {
    const box = h('input', { type: 'checkbox', class: 'select-key', checked: selection.allMatching || selection.ids.has(key.id), 'aria-label': t('bulk.selectOne', { key: key.username || key.api_key }) });
    box.addEventListener('change', () => {
      if (selection.allMatching) { selection.allMatching = false; for (const id of pageIds) selection.ids.add(id); }
      if (box.checked) selection.ids.add(key.id); else selection.ids.delete(key.id);
      syncPageBox();
      bulk.refresh();
    });
    return box;
  }

  let pageIds = [];
  const pageBox = h('input', { type: 'checkbox', id: 'keys-select-page', 'aria-label': t('bulk.selectPage') });
  function syncPageBox() {
    pageBox.checked = pageIds.length > 0 && (selection.allMatching || pageIds.every((id) => selection.ids.has(id)));
  }
  pageBox.addEventListener('change', () => {
    selection.allMatching = false;
    for (const id of pageIds) { if (pageBox.checked) selection.ids.add(id); else selection.ids.delete(id); }
    for (const box of list.querySelectorAll('.select-key')) box.checked = pageBox.checked;
    bulk.refresh();
  });

  function stateCell(k) {
    return h('div', {}, stateBadge(k.status),
      k.reason ? h('div', { class: 'muted small' }, k.reason) : null,
      k.until ? h('div', { class: 'muted small' }, t('keys.backIn'), ' ', h('span', { class: 'countdown', dataset: { until: k.until } }, countdown(k.until))) : null);
  }

  // The label over the masked key, and the requests over their success rate: two columns fewer,
  // so the table fits a 1280 px screen without scrolling sideways.
  function keyCell(k) {
    return h('div', {},
      h('div', { class: 'key-label' }, k.username ?? h('span', { class: 'muted' }, t('keys.noLabel'))),
      h('code', { class: 'muted small' }, k.api_key));
  }

  function requestsCell(k) {
    const rate = percent(k.total_requests ? k.success_count / k.total_requests : null);
    return h('div', {}, number(k.total_requests), h('div', { class: 'muted small', title: t('keys.successRate') }, rate));
  }

  function modelsCell(k) {
    if (!k.models) return h('span', { class: 'muted', title: t('keys.modelsUnknown') }, '—');
    const names = k.models.slice(0, 3).map((m) => h('span', { class: 'model' }, m));
    const more = k.models.length > 3 ? h('span', { class: 'muted small' }, t('keys.modelsMore', { n: k.models.length - 3 })) : null;
    return h('div', { class: 'models', title: k.models.join(', ') }, names, more);
  }

  const columns = [
    { key: 'bulk.select', head: () => pageBox, cell: checkbox },
    { key: 'keys.col.key', cell: keyCell },
    { key: 'keys.col.provider', cell: (k) => k.provider },
    { key: 'keys.col.state', cell: stateCell },
    { key: 'keys.col.models', cell: modelsCell },
    { key: 'keys.col.requests', num: true, cell: requestsCell },
    { key: 'keys.col.lastUsed', cell: (k) => ago(k.last_used) },
    { key: 'keys.col.lastError', cell: (k) => (k.last_error ? h('span', {}, k.last_error, h('div', { class: 'muted small' }, ago(k.last_failure))) : '—') },
    { key: 'keys.col.actions', cell: actions },
  ];

  function exportLinks() {
    for (const [link, format] of [[exportCsv, 'csv'], [exportJson, 'json']]) {
      const url = new URL('/admin/api-keys/export', location.origin);
      url.searchParams.set('format', format);
      for (const [k, v] of Object.entries(filterQuery())) if (v) url.searchParams.set(k, v);
      link.href = url.pathname + url.search;
    }
  }

  async function load() {
    const query = { page: filter.page, pageSize: filter.pageSize, ...filterQuery() };
    const started = performance.now();
    const data = await api('/admin/api-keys', { query });
    filter.page = data.page;
    selection.count = data.total;
    pageIds = data.api_keys.map((k) => k.id);
    total.textContent = t(data.total === 1 ? 'keys.one' : 'keys.total', { n: number(data.total) });
    clear(list).append(table(columns, data.api_keys, 'keys.empty', (k) => ({ id: k.id })), pager(data, (page) => { filter.page = page; load(); }));
    syncPageBox();
    bulk.refresh();
    exportLinks();
    list.dataset.loadMs = String(Math.round(performance.now() - started));
  }

  // The countdowns tick in place; a hold that ends reloads the page so the state is the server's.
  const ticker = setInterval(() => {
    let ended = false;
    for (const el of list.querySelectorAll('.countdown')) {
      el.textContent = countdown(el.dataset.until);
      if (new Date(el.dataset.until).getTime() <= Date.now()) ended = true;
    }
    if (ended) load().catch(() => {});
  }, 1000);

  await load();
  return { dispose() { clearInterval(ticker); } };
}
