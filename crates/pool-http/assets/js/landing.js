// The landing page: what the gateway is, and the admin's sign-in (the token is exchanged for a
// session cookie; the page keeps nothing).

import { session, signIn, signOut } from './api.js';
import { t, onLangChange } from './i18n.js';
import { setupPrefs } from './ui.js';

const form = document.getElementById('signin-form');
const signedIn = document.getElementById('signed-in');
const error = document.getElementById('signin-error');
const input = document.getElementById('admin-token');
let lastError = null;

function show(info) {
  signedIn.hidden = !info.signedIn;
  form.hidden = info.signedIn;
}

function showError(key) {
  lastError = key;
  error.hidden = !key;
  error.textContent = key ? t(key) : '';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = input.value.trim();
  if (!token) return showError('landing.empty');
  try {
    await signIn(token);
    input.value = '';
    location.assign('/dashboard');
  } catch (e) {
    showError(e.status === 401 ? 'landing.wrong' : null);
    if (e.status !== 401) { error.hidden = false; error.textContent = t('common.error', { message: e.message }); }
  }
});

document.getElementById('landing-signout').addEventListener('click', async () => {
  await signOut();
  show({ signedIn: false });
});

onLangChange(() => showError(lastError));
setupPrefs();
session().then(show, () => show({ signedIn: false }));
