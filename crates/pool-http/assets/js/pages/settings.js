// Settings (read-only): version, uptime, storage, warnings the operator should act on, the
// effective configuration with secrets masked, and the console's sessions (each can be ended).

import { api } from '../api.js';
import { ago, dateTime, t } from '../i18n.js';
import { clear, h, toast } from '../ui.js';
import { table } from './common.js';

function uptime(seconds) {
  const d = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return t('set.uptime.value', { d, h: hours, m });
}

function storage(s) {
  return s.status === 'ok'
    ? t('set.storage.ok', { backend: s.backend })
    : t('set.storage.degraded', { backend: s.backend, time: dateTime(s.failingSince), error: s.error });
}

// The configuration as nested definition lists: every value as text.
function configTree(value) {
  if (value === null || typeof value !== 'object') {
    return h('code', {}, value === null ? '—' : JSON.stringify(value));
  }
  if (Array.isArray(value)) {
    return value.length ? h('code', {}, JSON.stringify(value)) : h('code', {}, '[]');
  }
  const entries = Object.entries(value);
  if (!entries.length) return h('code', {}, '{}');
  return h('dl', { class: 'config' }, entries.flatMap(([name, v]) => [h('dt', {}, name), h('dd', {}, configTree(v))]));
}

export async function render(main) {
  const info = await api('/admin/settings');
  const sessions = h('div', { id: 'sessions-list' });
  main.append(
    h('header', {}, h('h1', {}, t('dash.nav.settings'))),
    ...info.warnings.map((w) => h('div', { class: 'alert warn', role: 'alert', dataset: { code: w.code } }, t(`set.warn.${w.code}`) === `set.warn.${w.code}` ? w.message : t(`set.warn.${w.code}`))),
    h('section', { class: 'card', id: 'settings-about' },
      h('h2', {}, t('set.about')),
      h('dl', { class: 'facts' },
        h('dt', {}, t('set.version')), h('dd', {}, info.version),
        h('dt', {}, t('set.started')), h('dd', {}, dateTime(info.startedAt)),
        h('dt', {}, t('set.uptime')), h('dd', {}, uptime(info.uptimeSeconds)),
        h('dt', {}, t('set.storage')), h('dd', { id: 'settings-storage' }, storage(info.storage)))),
    h('section', { class: 'card' }, h('h2', {}, t('set.sessions')), sessions),
    h('section', { class: 'card', id: 'settings-config' },
      h('h2', {}, t('set.config')),
      h('p', { class: 'muted small' }, t('set.config.help')),
      configTree(info.config)),
  );

  const columns = [
    { key: 'set.sessions.col.created', cell: (s) => h('div', {}, dateTime(s.createdAt), s.current ? h('div', { class: 'muted small' }, t('set.sessions.current')) : null) },
    { key: 'set.sessions.col.seen', cell: (s) => ago(s.lastSeen) },
    { key: 'set.sessions.col.agent', cell: (s) => h('div', {}, s.userAgent || '—', h('div', { class: 'muted small' }, s.address || '')) },
    {
      key: 'set.sessions.col.actions',
      cell: (s) => s.current ? null : h('div', { class: 'actions' }, h('button', {
        class: 'btn small danger', type: 'button',
        onclick: async () => {
          try {
            await api(`/admin/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
            toast(t('set.sessions.revoked'), 'ok');
          } catch (e) {
            toast(t('common.error', { message: e.message }), 'error');
          }
          await loadSessions();
        },
      }, t('set.sessions.revoke'))),
    },
  ];

  async function loadSessions() {
    const data = await api('/admin/sessions');
    clear(sessions).append(table(columns, data.sessions, 'set.sessions.empty'));
  }
  await loadSessions();
}
