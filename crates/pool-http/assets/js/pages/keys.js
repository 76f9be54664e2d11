// Keys: one page of keys at a time from the server (paging, search, provider and state filters
// all applied there; no request ever asks for every key), with per-key enable, disable, delete
// and copy id.

import { api } from '../api.js';
import { ago, dateTime, number, percent, t } from '../i18n.js';
import { clear, copy, h, toast } from '../ui.js';
import { pager, stateBadge, table } from './common.js';

const STATES = ['active', 'cooling', 'failed', 'disabled', 'expired'];

export async function render(main) {
  const filter = { page: 1, pageSize: 50, search: '', provider: '', status: '' };
  const providers = await api('/admin/providers');
  const search = h('input', { type: 'search', id: 'keys-search', placeholder: t('keys.search'), 'aria-label': t('keys.search') });
  const provider = h('select', { id: 'keys-provider', 'aria-label': t('keys.provider') },
    h('option', { value: '' }, t('keys.allProviders')),
    providers.providers.map((p) => h('option', { value: p.name }, p.name)));
  const status = h('select', { id: 'keys-state', 'aria-label': t('keys.state') },
    h('option', { value: '' }, t('state.all')), STATES.map((s) => h('option', { value: s }, t(`state.${s}`))));
  const size = h('select', { id: 'keys-page-size', 'aria-label': t('common.pageSize') }, [20, 50, 100, 200].map((n) => h('option', { value: n, selected: n === 50 }, String(n))));
  const total = h('span', { class: 'muted small', id: 'keys-total', 'aria-live': 'polite' });
  const list = h('div', { id: 'keys-list' });

  main.append(
    h('header', {}, h('h1', {}, t('dash.nav.keys')), total),
    h('section', { class: 'card' }, h('div', { class: 'toolbar' }, search, provider, status, size), list),
  );

  let timer = null;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { filter.search = search.value.trim(); filter.page = 1; load(); }, 250); });
  provider.addEventListener('change', () => { filter.provider = provider.value; filter.page = 1; load(); });
  status.addEventListener('change', () => { filter.status = status.value; filter.page = 1; load(); });
  size.addEventListener('change', () => { filter.pageSize = Number(size.value); filter.page = 1; load(); });

  async function act(promise, okKey) {
    try {
      await promise;
      toast(t(okKey), 'ok');
    } catch (e) {
      toast(t('common.error', { message: e.message }), 'error');
    }
    await load();
  }

  function actions(key) {
    const on = key.status === 'active';
    return h('div', { class: 'actions' },
      on
        ? h('button', { class: 'btn small', type: 'button', onclick: () => act(api('/admin/keys/disable', { method: 'POST', body: { id: key.id, duration: 3600 } }), 'keys.disabled') }, t('keys.disable'))
        : h('button', { class: 'btn small', type: 'button', onclick: () => act(api('/admin/keys/enable', { method: 'POST', body: { id: key.id } }), 'keys.enabled') }, t('keys.enable')),
      h('button', { class: 'btn small', type: 'button', onclick: () => copy(key.id) }, t('keys.copyId')),
      h('button', {
        class: 'btn small danger', type: 'button',
        onclick: () => { if (confirm(t('keys.confirmDelete', { key: key.api_key }))) act(api(`/admin/api-keys/${encodeURIComponent(key.id)}`, { method: 'DELETE' }), 'keys.deleted'); },
      }, t('keys.delete')));
  }

  const columns = [
    { key: 'keys.col.label', cell: (k) => k.username ?? h('span', { class: 'muted' }, t('keys.noLabel')) },
    { key: 'keys.col.key', cell: (k) => h('code', {}, k.api_key) },
    { key: 'keys.col.provider', cell: (k) => k.provider },
    {
      key: 'keys.col.state',
      cell: (k) => h('div', {}, stateBadge(k.status),
        k.reason ? h('div', { class: 'muted small' }, k.reason) : null,
        k.until ? h('div', { class: 'muted small' }, t('keys.until', { time: dateTime(k.until) })) : null),
    },
    { key: 'keys.col.requests', num: true, cell: (k) => number(k.total_requests) },
    { key: 'keys.col.success', num: true, cell: (k) => percent(k.total_requests ? k.success_count / k.total_requests : null) },
    { key: 'keys.col.lastUsed', cell: (k) => ago(k.last_used) },
    { key: 'keys.col.actions', cell: actions },
  ];

  async function load() {
    const query = { page: filter.page, pageSize: filter.pageSize, search: filter.search, provider: filter.provider, status: filter.status };
    const started = performance.now();
    const data = await api('/admin/api-keys', { query });
    filter.page = data.page;
    total.textContent = t(data.total === 1 ? 'keys.one' : 'keys.total', { n: number(data.total) });
    clear(list).append(table(columns, data.api_keys, 'keys.empty'), pager(data, (page) => { filter.page = page; load(); }));
    list.dataset.loadMs = String(Math.round(performance.now() - started));
  }

  await load();
}
