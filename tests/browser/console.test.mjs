// The web console in a real Chromium: every page signed out and in, sign-in, sign-out, session
// expiry, keys paging and filters (100,000 keys), tokens shown once, language and theme,
// a phone, hostile names shown as text, and axe-core.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN, axeViolations, closeBrowser, launch, open, shot, signIn, startGateway, startUpstream } from './harness.mjs';

const XSS = [
  '<img src=x onerror="window.__xss=1">',
  '<script>window.__xss=1</script>',
  '"><svg onload="window.__xss=1">',
];

let gw;
let upstream;
// The hostile tokens' secrets, for traffic the Requests page lists.
const xssTokens = [];

before(async () => {
  await launch();
  upstream = await startUpstream();
  gw = await startGateway({ POOL__PROVIDERS__OLLAMA__URL: upstream.url });
  const accounts = [];
  for (let i = 0; i < 120; i++) accounts.push({ api_key: `sk-browser-test-key-${String(i).padStart(4, '0')}-abcdef`, username: `team-${i % 3}-key-${i}` });
  XSS.forEach((label, i) => accounts.push({ api_key: `sk-browser-xss-key-${i}-abcdefabcdef`, username: label }));
  await gw.admin('/admin/import', 'POST', { accounts });
  for (const name of XSS) xssTokens.push((await gw.admin('/admin/tokens', 'POST', { name })).token);
  const listed = await gw.admin('/admin/api-keys?search=team-1-key-1&pageSize=200');
  await gw.admin('/admin/keys/disable', 'POST', { ids: listed.api_keys.map((k) => k.id), duration: 3600 });
});

after(async () => {
  await gw?.stop();
  await upstream?.stop();
  await closeBrowser();
});

async function noXss(page) {
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'a hostile name ran as script');
}

describe('signed out', () => {
  for (const [path, name] of [['/', 'landing'], ['/dashboard', 'dashboard-signed-out'], ['/stats', 'stats']]) {
    test(`${path} renders with no console error, no failed request and no serious axe violation`, async () => {
      for (const scheme of ['light', 'dark']) {
        const { context, page, problems } = await open({ colorScheme: scheme });
        await page.goto(gw.base + path);
        await page.waitForLoadState('networkidle');
        if (path === '/stats') await page.waitForSelector('#stats-body .metric');
        await shot(page, `${name}-${scheme}`);
        assert.deepEqual(problems, []);
        assert.deepEqual(await axeViolations(page), []);
        await context.close();
      }
    });
  }

  test('a page answer carries the CSP and no CORS header', async () => {
    const r = await fetch(`${gw.base}/dashboard`);
    assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
    assert.doesNotMatch(r.headers.get('content-security-policy'), /unsafe-inline/);
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal(r.headers.get('access-control-allow-origin'), null);
  });
});

describe('signed in', () => {
  test('a wrong token is refused with a message; the right one opens the overview', async () => {
    const { context, page, problems } = await open({ allowed: ['/admin/session'] });
    await page.goto(`${gw.base}/`);
    await page.fill('#admin-token', 'not-the-token');
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#signin-error:not([hidden])');
    assert.match(await page.textContent('#signin-error'), /not right/);
    await signIn(page, gw.base);
    assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => !k.startsWith('pool.')).length), 0);
    assert.equal(await page.evaluate(() => JSON.stringify(localStorage).includes('browser-test-admin')), false);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'pool_session');
    assert.ok(session?.httpOnly && session.sameSite === 'Strict');
    assert.deepEqual(problems.filter((p) => !p.includes('401')), []);
    await context.close();
  });

  for (const scheme of ['light', 'dark']) {
    test(`every console page renders in the ${scheme} theme with no error, no failed request and no serious axe violation`, async () => {
      const { context, page, problems } = await open({ colorScheme: scheme });
      await signIn(page, gw.base);
      for (const name of ['overview', 'keys', 'tokens', 'providers', 'requests', 'settings']) {
        await page.goto(`${gw.base}/dashboard#${name}`);
        await page.waitForSelector(`#sections a[data-page="${name}"][aria-current="page"]`);
        await page.waitForLoadState('networkidle');
        await shot(page, `${name}-${scheme}`);
        await noXss(page);
        assert.deepEqual(await axeViolations(page), [], name);
      }
      assert.deepEqual(problems, []);
      await context.close();
    });
  }

  test('keys: pages, search and state filter come from the server', async () => {
    const { context, page, problems } = await open();
    await signIn(page, gw.base);
    await page.goto(`${gw.base}/dashboard#keys`);
    await page.waitForSelector('#keys-list tbody tr');
    assert.match(await page.textContent('#keys-total'), /123 keys/);
    const [scrolled, shown] = await page.$eval('#keys-list .table-wrap', (el) => [el.scrollWidth, el.clientWidth]);
    assert.ok(scrolled <= shown, `at 1280 px the keys table is ${scrolled} px wide in ${shown} px`);
    await page.selectOption('#keys-page-size', '20');
    await page.waitForFunction(() => document.querySelectorAll('#keys-list tbody tr').length === 20);
    await page.click('#keys-list .pager button:last-child');
    await page.waitForFunction(() => /Page 2 of 7/.test(document.querySelector('#keys-list .pager').textContent));
    await page.selectOption('#keys-state', 'disabled');
    await page.waitForFunction(() => /^\d+ keys$/.test(document.querySelector('#keys-total').textContent) && document.querySelector('#keys-total').textContent !== '123 keys');
    const disabled = await page.$$eval('#keys-list tbody tr .badge', (els) => els.map((e) => e.textContent));
    assert.ok(disabled.length > 0 && disabled.every((s) => s === 'Disabled'));
    await page.selectOption('#keys-state', '');
    await page.fill('#keys-search', 'team-2-key-104');
    await page.waitForFunction(() => document.querySelector('#keys-total').textContent === '1 key');
    await page.click('#keys-list tbody tr:first-child button:has-text("Disable")');
    await page.waitForSelector('#keys-list tbody tr:first-child .badge.disabled');
    await page.click('#keys-list tbody tr:first-child button:has-text("Enable")');
    await page.waitForSelector('#keys-list tbody tr:first-child .badge.active');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('hostile key labels and token names are shown as text and run nothing', async () => {
    const { context, page, problems } = await open();
    await signIn(page, gw.base);
    await page.goto(`${gw.base}/dashboard#keys`);
    await page.fill('#keys-search', 'window.__xss');
    await page.waitForFunction(() => document.querySelector('#keys-total').textContent === '3 keys');
    const labels = await page.$$eval('#keys-list tbody tr .key-label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(labels.sort(), [...XSS].sort());
    await page.goto(`${gw.base}/dashboard#tokens`);
    await page.waitForSelector('#token-list tbody tr');
    const names = await page.$$eval('#token-list tbody tr td:nth-child(2)', (els) => els.map((e) => e.textContent));
    for (const name of XSS) assert.ok(names.includes(name), name);
    assert.equal(await page.$$eval('#main img, #main svg, #main script', (els) => els.length), 0);
    await noXss(page);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a token is shown once, with a copy button, and revoked from the list', async () => {
    const { context, page, problems } = await open();
    await signIn(page, gw.base);
    await page.goto(`${gw.base}/dashboard#tokens`);
    await page.waitForSelector('#token-form');
    await page.fill('#token-name', 'browser-made');
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#token-secret');
    const secret = await page.textContent('#token-secret');
    assert.ok(secret.length > 20);
    await shot(page, 'tokens-created');
    await page.reload();
    await page.waitForSelector('#token-list tbody tr');
    assert.equal(await page.$('#token-secret'), null);
    assert.equal((await page.content()).includes(secret), false, 'the token is shown once only');
    const row = page.locator('#token-list tbody tr', { hasText: 'browser-made' });
    await row.locator('button:has-text("Revoke")').click();
    await page.waitForFunction(() => !document.querySelector('#token-list').textContent.includes('browser-made'));
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('language and theme switch, and both are remembered', async () => {
    const { context, page, problems } = await open();
    await signIn(page, gw.base);
    await page.selectOption('#pref-lang', 'zh-CN');
    await page.waitForFunction(() => document.querySelector('#sections a[data-page="overview"]').textContent === '概览');
    await page.selectOption('#pref-theme', 'dark');
    // The language switch re-renders the overview: let its requests end before the reload.
    await page.waitForLoadState('networkidle');
    await page.reload();
    await page.waitForSelector('#overview-cards .metric');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
    assert.equal(await page.textContent('#signout'), '退出登录');
    await shot(page, 'overview-zh-dark');
    await page.selectOption('#pref-lang', 'en');
    await page.selectOption('#pref-theme', 'auto');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the language follows the browser', async () => {
    const { context, page } = await open({ locale: 'zh-CN' });
    await page.goto(`${gw.base}/`);
    await page.waitForFunction(() => document.querySelector('#signin-title').textContent === '管理员登录');
    await context.close();
  });

  test('requests: traffic is listed with hostile names as text, and a pasted request id finds its request', async () => {
    const chat = (token, model, id) => fetch(`${gw.base}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
    });
    for (const [i, token] of xssTokens.entries()) {
      const r = await chat(token, XSS[i], `browser-xss-${i}`);
      assert.equal(r.status, 200, await r.text());
    }
    const found = await chat(xssTokens[0], 'plain-model', 'browser-find-me');
    assert.equal(found.status, 200);
    for (const [scheme, viewport] of [['light', undefined], ['dark', undefined], ['light', { width: 390, height: 844 }]]) {
      const { context, page, problems } = await open({ colorScheme: scheme, ...(viewport ? { viewport } : {}) });
      await signIn(page, gw.base);
      await page.goto(`${gw.base}/dashboard#requests`);
      await page.waitForFunction(() => document.querySelectorAll('#req-list tbody tr').length >= 4);
      const text = await page.$eval('#req-list tbody', (el) => el.textContent);
      for (const name of XSS) assert.ok(text.includes(name), `shown as text: ${name}`);
      await noXss(page);
      await page.click('#req-list tbody tr details summary');
      assert.match(await page.$eval('#req-list tbody tr details', (el) => el.textContent), /=?ok/);
      const phone = Boolean(viewport);
      await shot(page, phone ? 'phone-requests' : `requests-list-${scheme}`, !phone);
      if (phone) {
        assert.equal(await page.$eval('#req-list tbody tr', (el) => getComputedStyle(el).display), 'block');
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 390, `the page is ${width} px wide`);
      }
      await page.fill('#req-id', 'browser-find-me');
      await page.click('#req-find button[type=submit]');
      await page.waitForFunction(() => document.querySelectorAll('#req-list tbody tr').length === 1);
      assert.match(await page.$eval('#req-list tbody tr', (el) => el.textContent), /browser-find-me/);
      assert.match(await page.$eval('#req-list tbody tr', (el) => el.textContent), /plain-model/);
      await page.fill('#req-id', '');
      await page.fill('#req-status', '5xx');
      await page.click('#req-filters button[type=submit]');
      await page.waitForFunction(() => /No request matches/.test(document.querySelector('#req-list').textContent));
      assert.deepEqual(await axeViolations(page), []);
      assert.deepEqual(problems, []);
      await context.close();
    }
  });

  test('on a phone the navigation sits on top and tables become cards', async () => {
    const { context, page, problems } = await open({ viewport: { width: 390, height: 844 } });
    await signIn(page, gw.base);
    await shot(page, 'phone-overview', false);
    await page.goto(`${gw.base}/dashboard#keys`);
    await page.waitForSelector('#keys-list tbody tr');
    assert.equal(await page.$eval('#keys-list thead', (el) => getComputedStyle(el).display), 'none');
    assert.equal(await page.$eval('#keys-list tbody tr', (el) => getComputedStyle(el).display), 'block');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `the page is ${width} px wide`);
    await shot(page, 'phone-keys', false);
    await page.goto(`${gw.base}/`);
    await shot(page, 'phone-landing', false);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('sign-out ends the session on the server', async () => {
    const { context, page, problems } = await open();
    await signIn(page, gw.base);
    const cookie = (await context.cookies()).find((c) => c.name === 'pool_session');
    await Promise.all([page.waitForURL(`${gw.base}/`), page.click('#signout')]);
    await page.waitForSelector('#signin-form:not([hidden])');
    const r = await fetch(`${gw.base}/admin/stats`, { headers: { Cookie: `pool_session=${cookie.value}` } });
    assert.equal(r.status, 401);
    assert.deepEqual(problems, []);
    await context.close();
  });
});

test('a session ends after its idle time and the console says so', async () => {
  const short = await startGateway({ POOL__CONSOLE__SESSION_IDLE_MINUTES: '0.05' });
  try {
    const { context, page } = await open();
    await signIn(page, short.base);
    // Any use renews the session, so the test waits, unused, until the server's own expiry.
    const { expiresAt } = await page.evaluate(async () => (await fetch('/admin/session')).json());
    await new Promise((r) => setTimeout(r, Math.max(0, new Date(expiresAt).getTime() - Date.now()) + 250));
    assert.equal((await page.evaluate(async () => (await fetch('/admin/session')).json())).signedIn, false);
    await page.reload();
    await page.waitForSelector('#main .alert');
    assert.match(await page.textContent('#main .alert'), /session has ended/);
    await context.close();
  } finally {
    await short.stop();
  }
});

test('with 100,000 keys the keys page shows its first page in under a second, and disables the half a filter matches in one call', async () => {
  const big = await startGateway();
  try {
    for (let chunk = 0; chunk < 10; chunk++) {
      const team = chunk % 2 ? 'b' : 'a';
      const keys = Array.from({ length: 10_000 }, (_, i) => `team-${team}-${chunk}-${i}----sk-bulk-${chunk}-${String(i).padStart(5, '0')}-0123456789abcdef`);
      await big.admin('/admin/api-keys/import', 'POST', { keys });
    }
    const { context, page, problems } = await open();
    await signIn(page, big.base);
    const started = Date.now();
    await page.goto(`${big.base}/dashboard#keys`);
    await page.waitForSelector('#keys-list tbody tr');
    const elapsed = Date.now() - started;
    assert.match(await page.textContent('#keys-total'), /100,000 keys/);
    console.log(`keys page with 100,000 keys: first page shown in ${elapsed} ms (list call ${await page.getAttribute('#keys-list', 'data-load-ms')} ms)`);
    assert.ok(elapsed < 1000, `${elapsed} ms`);
    await page.fill('#keys-search', 'team-a');
    await page.waitForFunction(() => document.querySelector('#keys-total').textContent === '50,000 keys');
    await page.check('#keys-select-page');
    await page.click('#keys-select-matching');
    const bulkStarted = Date.now();
    await page.click('#bulk-disable');
    await page.waitForSelector('.toast.ok');
    console.log(`bulk disable of the 50,000 keys a filter matches, from click to answer: ${Date.now() - bulkStarted} ms`);
    assert.match(await page.textContent('.toast.ok'), /50,000 of 50,000 keys disabled/);
    await page.selectOption('#keys-state', 'disabled');
    await page.waitForFunction(() => document.querySelector('#keys-total').textContent === '50,000 keys');
    await page.fill('#keys-search', 'team-b');
    await page.waitForFunction(() => document.querySelector('#keys-total').textContent === '0 keys');
    assert.deepEqual(problems, []);
    await context.close();
  } finally {
    await big.stop();
  }
});

void ADMIN;
