// The API docs page and its playground against the real gateway and the fake upstream, the
// console's Settings page, and the string tables (every string in both languages).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN, axeViolations, closeBrowser, launch, open, shot, signIn, startGateway, startUpstream } from './harness.mjs';
import { dictionaries } from '../../crates/pool-http/assets/js/i18n.js';

let upstream;
let gw;
let token;

before(async () => {
  await launch();
  upstream = await startUpstream();
  gw = await startGateway({ POOL__PROVIDERS__OLLAMA__URL: upstream.url });
  // A validated import probes each key, which records the models it serves.
  const { id } = await gw.admin('/admin/api-keys/import-with-validation', 'POST', { content: 'sk-docs-upstream-key-0001\nsk-docs-upstream-key-0002' });
  for (let i = 0; ; i++) {
    const job = await gw.admin(`/admin/jobs/${id}`);
    if (job.status === 'done') break;
    if (i > 200) throw new Error('the validated import did not finish');
    await new Promise((r) => setTimeout(r, 50));
  }
  token = (await gw.admin('/admin/tokens', 'POST', { name: 'docs-playground' })).token;
});

after(async () => {
  await gw?.stop();
  await upstream?.stop();
  await closeBrowser();
});

test('every string exists in English and Chinese', () => {
  const en = Object.keys(dictionaries.en);
  const zh = Object.keys(dictionaries['zh-CN']);
  assert.deepEqual(en.filter((k) => !zh.includes(k)), [], 'English strings without a Chinese one');
  assert.deepEqual(zh.filter((k) => !en.includes(k)), [], 'Chinese strings without an English one');
  for (const [name, table] of Object.entries(dictionaries)) {
    for (const [key, text] of Object.entries(table)) assert.ok(text.trim().length > 0, `${name} ${key} is empty`);
  }
});

describe('/docs', () => {
  for (const scheme of ['light', 'dark']) {
    test(`renders signed out in the ${scheme} theme with no error, no failed request and no serious axe violation`, async () => {
      const { context, page, problems } = await open({ colorScheme: scheme });
      await page.goto(`${gw.base}/docs`);
      await page.waitForSelector('#playground');
      await page.waitForLoadState('networkidle');
      assert.match(await page.textContent('#base-urls'), new RegExp(`${gw.base}/v1`));
      assert.match(await page.textContent('#base-urls'), new RegExp(`${gw.base}/openrouter/v1`), 'one base URL per provider');
      assert.match(await page.textContent('#snippet-python'), new RegExp(`base_url="${gw.base}/v1"`));
      assert.equal(await page.getAttribute('#openapi-link', 'href'), '/openapi.json', 'the docs link the OpenAPI document');
      await shot(page, `docs-${scheme}`);
      assert.deepEqual(await axeViolations(page), []);
      assert.deepEqual(problems, []);
      await context.close();
    });
  }

  test('the playground lists the models, answers whole and streamed, and keeps the token in the tab only', async () => {
    const { context, page, problems } = await open();
    await page.goto(`${gw.base}/docs#playground`);
    await page.waitForSelector('#pg-form');
    await page.fill('#pg-token', token);
    await page.click('#pg-load');
    await page.waitForFunction(() => document.querySelectorAll('#pg-model option[value="llama3.2:3b"]').length === 1);
    await page.selectOption('#pg-model', 'llama3.2:3b');
    await page.selectOption('#pg-template', 'translate');
    assert.match(await page.inputValue('#pg-system'), /Simplified Chinese/);
    await page.uncheck('#pg-stream');
    await page.click('#pg-send');
    await page.waitForFunction(() => /Done in/.test(document.querySelector('#pg-meta').textContent));
    const whole = await page.textContent('#pg-output');
    assert.ok(whole.length > 0, 'a whole answer is shown');
    assert.match(await page.textContent('#pg-meta'), /request [0-9a-f]{32}/);
    await page.check('#pg-stream');
    await page.click('#pg-send');
    await page.waitForFunction(() => /Done in/.test(document.querySelector('#pg-meta').textContent) && document.querySelector('#pg-output').textContent.length > 0);
    await shot(page, 'docs-playground');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('pool.playground.token')), token);
    assert.equal(await page.evaluate((secret) => JSON.stringify(localStorage).includes(secret), token), false);
    const stats = await gw.admin('/admin/stats');
    assert.ok(stats.totalRequests >= 2, 'the playground went through the gateway');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a wrong token is reported in the playground, not thrown', async () => {
    const { context, page, problems } = await open({ allowed: ['/v1/models'] });
    await page.goto(`${gw.base}/docs`);
    await page.waitForSelector('#pg-form');
    await page.fill('#pg-token', 'sk-pool-not-a-real-token');
    await page.click('#pg-load');
    await page.waitForFunction(() => /Error 401/.test(document.querySelector('#pg-meta').textContent));
    assert.deepEqual(problems.filter((p) => !p.includes('401')), []);
    await context.close();
  });

  test('in Chinese and on a phone', async () => {
    const { context, page, problems } = await open({ viewport: { width: 390, height: 844 }, locale: 'zh-CN' });
    await page.goto(`${gw.base}/docs`);
    await page.waitForSelector('#playground');
    assert.equal(await page.textContent('#quick-start h2'), '快速开始');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `the page is ${width} px wide`);
    await shot(page, 'phone-docs-zh', false);
    assert.deepEqual(problems, []);
    await context.close();
  });
});

describe('settings', () => {
  test('shows version, storage, the warning for plaintext keys, the masked configuration and the sessions', async () => {
    for (const scheme of ['light', 'dark']) {
      const { context, page, problems } = await open({ colorScheme: scheme });
      await signIn(page, gw.base);
      await page.goto(`${gw.base}/dashboard#settings`);
      await page.waitForSelector('#sessions-list tbody tr');
      assert.match(await page.textContent('#settings-storage'), /sqlite, writing normally/);
      assert.equal(await page.getAttribute('.alert.warn', 'data-code'), 'no_master_key');
      const config = await page.textContent('#settings-config');
      assert.match(config, /admin_token"?\s*"\*{8}"/);
      assert.equal((await page.content()).includes(ADMIN), false, 'the admin token is never on the page');
      assert.match(await page.textContent('#sessions-list'), /this session/);
      await shot(page, `settings-full-${scheme}`);
      assert.deepEqual(await axeViolations(page), []);
      assert.deepEqual(problems, []);
      await context.close();
    }
  });

  test('another session can be ended from the list', async () => {
    const other = await open();
    await signIn(other.page, gw.base);
    const { context, page, problems } = await open();
    await signIn(page, gw.base);
    await page.goto(`${gw.base}/dashboard#settings`);
    await page.waitForSelector('#sessions-list tbody tr');
    const before = await page.$$eval('#sessions-list tbody tr', (rows) => rows.length);
    assert.ok(before >= 2);
    await page.locator('#sessions-list tbody tr', { hasNotText: 'this session' }).first().locator('button').click();
    await page.waitForFunction((n) => document.querySelectorAll('#sessions-list tbody tr').length === n - 1, before);
    assert.deepEqual(problems, []);
    await context.close();
    await other.context.close();
  });

  test('on a phone', async () => {
    const { context, page, problems } = await open({ viewport: { width: 390, height: 844 } });
    await signIn(page, gw.base);
    await page.goto(`${gw.base}/dashboard#settings`);
    await page.waitForSelector('#sessions-list tbody tr');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `the page is ${width} px wide`);
    await shot(page, 'phone-settings', false);
    assert.deepEqual(problems, []);
    await context.close();
  });
});
