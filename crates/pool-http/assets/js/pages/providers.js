// Providers: each configured provider, whether it is enabled, and its keys by state.

import { api } from '../api.js';
import { number, t } from '../i18n.js';
import { h } from '../ui.js';
import { table } from './common.js';

export async function render(main) {
  const data = await api('/admin/providers');
  const columns = [
    { key: 'prov.col.name', cell: (p) => h('code', {}, p.name) },
    { key: 'prov.col.kind', cell: (p) => String(p.kind) },
    { key: 'prov.col.enabled', cell: (p) => t(p.enabled ? 'prov.yes' : 'prov.no') },
    { key: 'prov.col.keys', num: true, cell: (p) => number(p.keys.total) },
  ];
  main.append(h('header', {}, h('h1', {}, t('dash.nav.providers'))), h('section', { class: 'card' }, table(columns, data.providers, 'ov.none')));
}
