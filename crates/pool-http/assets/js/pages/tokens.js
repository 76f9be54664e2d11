// Tokens: create (the token is shown once, with a copy button), list with search, revoke.

import { api } from '../api.js';
import { ago, dateTime, number, t } from '../i18n.js';
import { clear, copy, h, toast } from '../ui.js';
import { table } from './common.js';

export async function render(main) {
  const name = h('input', { type: 'text', id: 'token-name', maxlength: 200, required: true });
  const days = h('input', { type: 'number', id: 'token-days', min: 1, max: 3650, step: 1 });
  const shown = h('div', { id: 'token-shown', 'aria-live': 'polite' });
  const search = h('input', { type: 'search', id: 'token-search', placeholder: t('tok.search'), 'aria-label': t('tok.search') });
  const list = h('div', { id: 'token-list' });
  let tokens = [];

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
  search.addEventListener('input', draw);

  const columns = [
    { key: 'tok.col.name', cell: (x) => x.name },
    { key: 'tok.col.prefix', cell: (x) => h('code', {}, `${x.prefix}…`) },
    { key: 'tok.col.requests', num: true, cell: (x) => number(x.requestCount) },
    { key: 'tok.col.expires', cell: (x) => (x.expiresAt ? dateTime(x.expiresAt) : t('tok.never')) },
    { key: 'tok.col.created', cell: (x) => ago(x.createdAt) },
    {
      key: 'keys.col.actions',
      cell: (x) => h('button', {
        class: 'btn small danger', type: 'button',
        onclick: async () => {
          if (!confirm(t('tok.confirmRevoke', { name: x.name }))) return;
          try { await api(`/admin/tokens/${encodeURIComponent(x.id)}`, { method: 'DELETE' }); toast(t('tok.revoked'), 'ok'); } catch (e) { toast(t('common.error', { message: e.message }), 'error'); }
          await load();
        },
      }, t('tok.revoke')),
    },
  ];

  function draw() {
    const needle = search.value.trim().toLowerCase();
    const rows = tokens.filter((x) => !needle || x.name.toLowerCase().includes(needle));
    clear(list).append(table(columns, rows, 'tok.empty'));
  }

  async function load() {
    tokens = (await api('/admin/tokens')).tokens;
    draw();
  }

  main.append(
    h('header', {}, h('h1', {}, t('dash.nav.tokens'))),
    h('section', { class: 'card' }, form, shown),
    h('section', { class: 'card' }, h('div', { class: 'toolbar' }, search), list),
  );
  await load();
}
