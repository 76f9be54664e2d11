// Tokens: create (the token is shown once, with a copy button), list with a server-side search,
// edit a token's limits, expiry, providers and model allow-list (PATCH), revoke one, or revoke
// the selected ones in one call.

import { api } from '../api.js';
import { ago, dateTime, number, t } from '../i18n.js';
import { clear, copy, h, toast } from '../ui.js';
import { table } from './common.js';
import { editDialog } from './tokens_edit.js';

export async function render(main) {
  const providers = (await api('/admin/providers')).providers;
  const name = h('input', { type: 'text', id: 'token-name', maxlength: 200, required: true });
  const days = h('input', { type: 'number', id: 'token-days', min: 1, max: 3650, step: 1 });
  const shown = h('div', { id: 'token-shown', 'aria-live': 'polite' });
  const search = h('input', { type: 'search', id: 'token-search', placeholder: t('tok.search'), 'aria-label': t('tok.search') });
  const revokeSelected = h('button', { class: 'btn small danger', type: 'button', id: 'token-revoke-selected', disabled: true }, t('tok.revokeSelected'));
  const list = h('div', { id: 'token-list' });
  const selected = new Set();

  const form = h('form', { class: 'row', id: 'token-form' },
    h('div', { class: 'field' }, h('label', { for: 'token-name' }, t('tok.name')), name),
    h('div', { class: 'field' }, h('label', { for: 'token-days' }, t('tok.expires')), days),
    h('button', { class: 'btn primary', type: 'submit' }, t('tok.create')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() || undefined };
    if (days.value) body.expiresIn = Math.round(Number(days.value) * 86400);
    try {
      const created = await api('/admin/tokens', { method: 'POST', body });
      name.value = '';
      days.value = '';
      clear(shown).append(h('div', { class: 'secret-once' },
        h('span', {}, t('tok.shownOnce')), h('code', { id: 'token-secret' }, created.token),
        h('button', { class: 'btn small', type: 'button', onclick: () => copy(created.token) }, t('tok.copy'))));
      await load();
    } catch (e) {
      toast(t('common.error', { message: e.message }), 'error');
    }
  });
  let typing = null;
  search.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(load, 200); });

  revokeSelected.addEventListener('click', async () => {
    if (!confirm(t('tok.confirmRevokeMany', { n: selected.size }))) return;
    try {
      const r = await api('/admin/tokens/bulk-revoke', { method: 'POST', body: { ids: [...selected] } });
      toast(t('tok.revokedMany', { n: number(r.revoked) }), 'ok');
    } catch (e) {
      toast(t('common.error', { message: e.message }), 'error');
    }
    selected.clear();
    await load();
  });

  const sync = () => { revokeSelected.disabled = selected.size === 0; revokeSelected.textContent = t('tok.revokeSelected', { n: selected.size }); };

  function pick(x) {
    const box = h('input', { type: 'checkbox', class: 'select-token', checked: selected.has(x.id), 'aria-label': t('tok.select', { name: x.name }) });
    box.addEventListener('change', () => { if (box.checked) selected.add(x.id); else selected.delete(x.id); sync(); });
    return box;
  }

  async function revoke(x) {
    if (!confirm(t('tok.confirmRevoke', { name: x.name }))) return;
    try { await api(`/admin/tokens/${encodeURIComponent(x.id)}`, { method: 'DELETE' }); toast(t('tok.revoked'), 'ok'); } catch (e) { toast(t('common.error', { message: e.message }), 'error'); }
    await load();
  }

  const limitsText = (x) => [['rpm', x.rpm], ['rpd', x.rpd], ['tpd', x.tpd], ['tok.concurrent', x.maxConcurrent]]
    .filter(([, v]) => v != null).map(([k, v]) => `${k.startsWith('tok.') ? t(k) : k} ${number(v)}`).join(' · ') || t('tok.unlimited');

  const columns = [
    { key: 'tok.col.select', head: () => h('span', { class: 'visually-hidden' }, t('tok.col.select')), cell: pick },
    { key: 'tok.col.name', cell: (x) => x.name },
    { key: 'tok.col.prefix', cell: (x) => h('code', {}, `${x.prefix}…`) },
    { key: 'tok.col.limits', cell: (x) => h('div', {}, limitsText(x),
      x.models ? h('div', { class: 'muted small' }, t('tok.onlyModels', { list: x.models.join(', ') })) : null,
      x.providers ? h('div', { class: 'muted small' }, t('tok.onlyProviders', { list: x.providers.join(', ') })) : null) },
    { key: 'tok.col.requests', num: true, cell: (x) => number(x.requestCount) },
    { key: 'tok.col.expires', cell: (x) => (x.expiresAt ? dateTime(x.expiresAt) : t('tok.never')) },
    { key: 'tok.col.created', cell: (x) => ago(x.createdAt) },
    {
      key: 'keys.col.actions',
      cell: (x) => h('div', { class: 'actions' },
        h('button', { class: 'btn small', type: 'button', onclick: async () => { if (await editDialog(x, providers)) await load(); } }, t('tok.edit')),
        h('button', { class: 'btn small danger', type: 'button', onclick: () => revoke(x) }, t('tok.revoke'))),
    },
  ];

  async function load() {
    const tokens = (await api('/admin/tokens', { query: { search: search.value.trim() } })).tokens;
    const present = new Set(tokens.map((x) => x.id));
    for (const id of [...selected]) if (!present.has(id)) selected.delete(id);
    clear(list).append(table(columns, tokens, 'tok.empty', (x) => ({ id: x.id })));
    sync();
  }

  main.append(
    h('header', {}, h('h1', {}, t('dash.nav.tokens'))),
    h('section', { class: 'card' }, form, shown),
    h('section', { class: 'card' }, h('div', { class: 'toolbar' }, search, revokeSelected), list),
  );
  await load();
}
