// The console's only way to the server: the JSON admin API, same origin, with the session
// cookie. A write carries the session's CSRF token, which lives in memory only.

let csrf = null;
const expiredHandlers = [];

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function onSessionExpired(fn) {
  expiredHandlers.push(fn);
}

export async function api(path, { method = 'GET', body, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = data?.error?.message || response.statusText;
    if (response.status === 401 && !path.startsWith('/admin/session')) {
      for (const fn of expiredHandlers) fn();
    }
    throw new ApiError(response.status, message, data?.error?.code);
  }
  return data;
}

// The session, if any: answers 200 either way.
export async function session() {
  const info = await api('/admin/session');
  csrf = info.signedIn ? info.csrfToken : null;
  return info;
}

export async function signIn(token) {
  const info = await api('/admin/session', { method: 'POST', body: { token } });
  csrf = info.csrfToken;
  return info;
}

export async function signOut() {
  await api('/admin/session', { method: 'DELETE' });
  csrf = null;
}
