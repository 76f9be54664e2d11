// The console shell: checks the session (a 200 either way), then shows one page at a time by
// the URL's hash. A page module exports `render(main, ctx)` and may return `{ dispose }`;
// adding a page (the user tab of a later release) is one entry in PAGES and one link.

import { onSessionExpired, session, signOut } from './api.js';
import { onLangChange, t, translate } from './i18n.js';
import { clear, h, setupPrefs } from './ui.js';

const PAGES = {
  overview: () => import('./pages/overview.js'),
  keys: () => import('./pages/keys.js'),
  tokens: () => import('./pages/tokens.js'),
  providers: () => import('./pages/providers.js'),
  requests: () => import('./pages/later.js').then((m) => m.page('dash.nav.requests', 'GET /admin/stats, /admin/api-keys/{id}/usage')),
  settings: () => import('./pages/settings.js'),
};

const main = document.getElementById('main');
let current = null;
let shown = null;

function wanted() {
  const name = location.hash.replace(/^#/, '');
  return name in PAGES ? name : 'overview';
}

async function show(name) {
  current?.dispose?.();
  current = null;
  shown = name;
  for (const link of document.querySelectorAll('#sections a')) {
    if (link.dataset.page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${t(`dash.nav.${name}`)} · ollama-pool`;
  clear(main);
  const module = await PAGES[name]();
  if (shown !== name) return;
  current = (await module.render(main)) || null;
  translate(main);
}

function signedOut() {
  current?.dispose?.();
  current = null;
  clear(main).append(
    h('div', { class: 'alert', role: 'alert' }, t('dash.expired')),
    h('a', { class: 'btn primary', href: '/' }, t('landing.signin')),
  );
  document.getElementById('signout').hidden = true;
}

async function start() {
  setupPrefs();
  const info = await session();
  if (!info.signedIn) {
    signedOut();
    return;
  }
  onSessionExpired(signedOut);
  document.getElementById('signout').addEventListener('click', async () => {
    await signOut();
    location.assign('/');
  });
  window.addEventListener('hashchange', () => show(wanted()));
  onLangChange(() => show(shown || wanted()));
  await show(wanted());
}

start().catch((e) => {
  clear(main).append(h('div', { class: 'alert error', role: 'alert' }, t('common.error', { message: e.message })));
});
