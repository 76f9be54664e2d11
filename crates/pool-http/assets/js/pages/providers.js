// Providers: each configured provider, whether it is enabled (switched here, remembered by the
// server), its keys by state, the models its pool serves, and the gateway's base URLs for it
// (OpenAI, and Ollama's native API where the provider has one) with copy buttons.

import { api } from '../api.js';
import { number, t } from '../i18n.js';
import { clear, copy, h, toast } from '../ui.js';
import { table } from './common.js';

export async function render(main) {
  const list = h('div', { id: 'providers-list' });

  function endpoint(label, path) {
    if (!path) return null;
    const url = `${location.origin}${path}`;
    return h('div', { class: 'endpoint' }, h('span', { class: 'muted small' }, t(label)), ' ', h('code', {}, url), ' ',
      h('button', { class: 'btn small', type: 'button', 'aria-label': t('prov.copyUrl', { url }), onclick: () => copy(url) }, t('tok.copy')));
  }

  function toggle(p) {
    return h('button', {
      class: `btn small${p.enabled ? '' : ' primary'}`, type: 'button', dataset: { provider: p.name },
      onclick: async () => {
        try {
          await api(`/admin/providers/${encodeURIComponent(p.name)}`, { method: 'PATCH', body: { enabled: !p.enabled } });
          toast(t(p.enabled ? 'prov.disabledNow' : 'prov.enabledNow', { name: p.name }), 'ok');
        } catch (e) {
          toast(t('common.error', { message: e.message }), 'error');
        }
        await load();
      },
    }, t(p.enabled ? 'prov.disable' : 'prov.enable'));
  }

  const models = (p) => (p.models
    ? h('details', {}, h('summary', {}, t('prov.modelCount', { n: number(p.models.length) })), h('div', { class: 'small wrap-anywhere' }, p.models.join(', ')))
    : h('span', { class: 'muted' }, t('prov.noModels')));

  const columns = [
    { key: 'prov.col.name', cell: (p) => h('div', {}, h('code', {}, p.name), p.default ? h('div', { class: 'muted small' }, t('prov.default')) : null) },
    { key: 'prov.col.kind', cell: (p) => h('code', {}, String(p.kind)) },
    { key: 'prov.col.enabled', cell: (p) => h('span', { class: `badge ${p.enabled ? 'active' : 'disabled'}` }, t(p.enabled ? 'prov.yes' : 'prov.no')) },
    { key: 'prov.col.keys', num: true, cell: (p) => number(p.keys.total) },
    { key: 'prov.col.models', cell: models },
    { key: 'prov.col.endpoints', cell: (p) => h('div', {}, endpoint('prov.openai', p.endpoints.openai), endpoint('prov.ollama', p.endpoints.ollama)) },
    { key: 'keys.col.actions', cell: toggle },
  ];

  async function load() {
    const data = await api('/admin/providers');
    clear(list).append(table(columns, data.providers, 'ov.none', (p) => ({ provider: p.name })));
  }

  main.append(h('header', {}, h('h1', {}, t('dash.nav.providers'))), h('section', { class: 'card' }, list));
  await load();
}
