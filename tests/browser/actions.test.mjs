// The console's actions in a real Chromium: bulk disable of the keys matching the filter, a
// bulk verify with its progress bar, the typed confirmation of a bulk delete, import with live
// progress, the export download, token edit and bulk revoke, and the provider switch. Each
// state is checked with axe-core and photographed (light, dark, phone).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { axeViolations, closeBrowser, launch, open, shot, signIn, startGateway, startUpstream } from './harness.mjs';

const BAD_KEY = 'sk-imported-bad-2-0123456789';
let gw;
let upstream;

before(async () => {
  await launch();
  upstream = await startUpstream({ refuse: [BAD_KEY] });
  gw = await startGateway({ POOL__PROVIDERS__OLLAMA__URL: upstream.url });
  const content = Array.from({ length: 60 }, (_, i) => `team-${i % 2 ? 'b' : 'a'}-${i}----sk-actions-${String(i).padStart(3, '0')}-0123456789abcdef`).join('\n');
  await gw.admin('/admin/api-keys/import-from-txt', 'POST', { content });
});

after(async () => {
  await gw?.stop();
  await upstream?.stop();
  await closeBrowser();
});

async function keysPage(options = {}) {
  const opened = await open(options);
  await signIn(opened.page, gw.base);
  await opened.page.goto(`${gw.base}/dashboard#keys`);
  await opened.page.waitForSelector('#keys-list tbody tr');
  return opened;
}

async function filterBy(page, search, expectedTotal) {
  await page.fill('#keys-search', search);
  await page.waitForFunction((t) => document.querySelector('#keys-total').textContent === t, expectedTotal);
}

describe('keys', () => {
  test('a bulk disable reaches every key matching the filter, beyond the page, in one call', async () => {
    const { context, page, problems } = await keysPage();
    await page.selectOption('#keys-page-size', '20');
    await filterBy(page, 'team-a', '30 keys');
    await page.check('#keys-select-page');
    assert.match(await page.textContent('#keys-selection'), /20 selected/);
    await page.click('#keys-select-matching');
    assert.match(await page.textContent('#keys-selection'), /All 30 keys matching/);
    await shot(page, 'keys-bulk-selected-light');
    assert.deepEqual(await axeViolations(page), []);
    const calls = [];
    page.on('request', (r) => { if (r.url().includes('/admin/api-keys/bulk')) calls.push(r.postDataJSON()); });
    await page.selectOption('#keys-duration', '0');
    await page.click('#bulk-disable');
    await page.waitForSelector('.toast.ok');
    assert.deepEqual(calls, [{ action: 'disable', filter: { search: 'team-a' } }]);
    await page.selectOption('#keys-state', 'disabled');
    await page.waitForFunction(() => document.querySelector('#keys-total').textContent === '30 keys');
    const enable = await gw.admin('/admin/api-keys/bulk', 'POST', { action: 'enable', filter: { search: 'team-a' } });
    assert.equal(enable.changed, 30);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a bulk verify shows a progress bar that ends with every verdict', async () => {
    const { context, page, problems } = await keysPage({ colorScheme: 'dark' });
    await filterBy(page, 'team-b', '30 keys');
    await page.check('#keys-select-page');
    await page.click('#bulk-verify');
    await page.waitForFunction(() => {
      const bar = document.querySelector('#bulk-progress-bar');
      return bar && bar.value === 30 && bar.max === 30;
    });
    assert.match(await page.textContent('#bulk-progress-text'), /Verified 30 of 30: 30 valid, 0 failed/);
    await page.waitForSelector('#keys-list tbody tr');
    assert.match(await page.textContent('#keys-list tbody tr:first-child'), /llama3\.2:3b/);
    await shot(page, 'keys-verify-dark');
    assert.deepEqual(await axeViolations(page), []);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('deleting more than one key asks for the number typed out', async () => {
    const { context, page, problems } = await keysPage();
    await filterBy(page, 'team-a-1', '5 keys');
    const boxes = page.locator('#keys-list tbody .select-key');
    for (let i = 0; i < 3; i++) await boxes.nth(i).check();
    await page.click('#bulk-delete');
    await page.waitForSelector('#confirm-dialog[open]');
    assert.ok(await page.isDisabled('#confirm-ok'));
    await page.fill('#confirm-input', '2');
    assert.ok(await page.isDisabled('#confirm-ok'));
    await shot(page, 'keys-confirm-delete-light');
    assert.deepEqual(await axeViolations(page), []);
    await page.fill('#confirm-input', '3');
    await page.click('#confirm-ok');
    await page.waitForFunction(() => document.querySelector('#keys-total').textContent === '2 keys');
    assert.equal(await page.$('#confirm-dialog'), null);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a validated import shows its progress and what was added, duplicate or invalid', async () => {
    const { context, page, problems } = await keysPage();
    await page.click('#keys-import summary');
    const text = ['sk-imported-good-1-0123456789', BAD_KEY, 'sk-actions-001-0123456789abcdef', 'not a key'].join('\n');
    await page.fill('#import-text', text);
    await page.check('#import-validate');
    await page.click('#import-submit');
    await page.waitForFunction(() => /Added 1 · duplicates 1 · invalid 2/.test(document.querySelector('#import-result').textContent));
    const bar = await page.$eval('#import-progress-bar', (b) => [b.value, b.max]);
    assert.deepEqual(bar, [4, 4]);
    await shot(page, 'keys-import-light');
    assert.deepEqual(await axeViolations(page), []);
    await page.setInputFiles('#import-file', { name: 'keys.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify([{ api_key: 'sk-from-a-file-0123456789', username: 'from-file' }])) });
    await page.waitForFunction(() => document.querySelector('#import-text').value.includes('from-a-file'));
    await page.uncheck('#import-validate');
    await page.click('#import-submit');
    await page.waitForFunction(() => /Added 1 · duplicates 0 · invalid 0/.test(document.querySelector('#import-result').textContent));
    await filterBy(page, 'from-file', '1 key');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the export downloads the keys of the current filter, masked', async () => {
    const { context, page, problems } = await keysPage();
    await filterBy(page, 'team-b', '30 keys');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#keys-export-csv')]);
    const csv = readFileSync(await download.path(), 'utf8');
    const lines = csv.trim().split('\n');
    assert.match(lines[0], /^id,label,provider,api_key,state/);
    assert.equal(lines.length, 31);
    assert.ok(lines.slice(1).every((l) => l.includes(',team-b-')));
    assert.equal(csv.includes('0123456789abcdef'), false, 'no whole secret');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('on a phone the bulk bar and the rows fit the screen', async () => {
    const { context, page, problems } = await keysPage({ viewport: { width: 390, height: 844 } });
    await page.locator('#keys-list tbody .select-key').first().check();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `the page is ${width} px wide`);
    await shot(page, 'phone-keys-bulk', false);
    assert.deepEqual(await axeViolations(page), []);
    assert.deepEqual(problems, []);
    await context.close();
  });
});

describe('tokens and providers', () => {
  test('a token is edited in a dialog, and several are revoked in one call', async () => {
    await gw.admin('/admin/tokens', 'POST', { name: 'edit-me', expiresIn: 86400 });
    for (const name of ['bulk-1', 'bulk-2']) await gw.admin('/admin/tokens', 'POST', { name });
    const { context, page, problems } = await open();
    await signIn(page, gw.base);
    await page.goto(`${gw.base}/dashboard#tokens`);
    await page.fill('#token-search', 'edit-me');
    await page.waitForFunction(() => document.querySelectorAll('#token-list tbody tr').length === 1);
    await page.click('#token-list tbody tr button:has-text("Edit")');
    await page.waitForSelector('#token-edit[open]');
    await page.fill('#edit-rpm', '30');
    await page.fill('#edit-models', 'llama*\nqwen2.5:7b');
    assert.equal(await page.isDisabled('#edit-days'), false, 'a token that expires offers a new expiry');
    await page.check('#edit-never');
    assert.equal(await page.isDisabled('#edit-days'), true);
    await shot(page, 'tokens-edit-light');
    assert.deepEqual(await axeViolations(page), []);
    await page.click('#edit-save');
    await page.waitForSelector('#token-edit', { state: 'detached' });
    await page.waitForFunction(() => /rpm 30/.test(document.querySelector('#token-list tbody tr').textContent));
    const edited = (await gw.admin('/admin/tokens?search=edit-me')).tokens[0];
    assert.deepEqual([edited.rpm, edited.models, edited.expiresAt], [30, ['llama*', 'qwen2.5:7b'], null]);
    await page.fill('#token-search', 'bulk-');
    await page.waitForFunction(() => document.querySelectorAll('#token-list tbody tr').length === 2);
    for (const box of await page.$$('#token-list .select-token')) await box.check();
    const calls = [];
    page.on('request', (r) => { if (r.url().includes('/admin/tokens/bulk-revoke')) calls.push(r.postDataJSON()); });
    await page.click('#token-revoke-selected');
    await page.waitForSelector('#token-list tbody td.empty');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].ids.length, 2);
    assert.equal((await gw.admin('/admin/tokens?search=bulk-')).tokens.length, 0);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a provider is switched off and on, and shows its models and base URLs', async () => {
    const { context, page, problems } = await open({ colorScheme: 'dark' });
    await signIn(page, gw.base);
    await page.goto(`${gw.base}/dashboard#providers`);
    const row = page.locator('#providers-list tbody tr[data-provider="openrouter"]');
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(`${gw.base}/openrouter/v1`));
    const ollama = page.locator('#providers-list tbody tr[data-provider="ollama"]');
    assert.match(await ollama.textContent(), /\/ollama\/api/);
    assert.match(await ollama.textContent(), /3 models/);
    await row.locator('button:has-text("Disable")').click();
    await page.waitForFunction(() => /No/.test(document.querySelector('#providers-list tbody tr[data-provider="openrouter"] .badge').textContent));
    assert.equal((await gw.admin('/admin/providers')).providers.find((p) => p.name === 'openrouter').enabled, false);
    await shot(page, 'providers-dark');
    assert.deepEqual(await axeViolations(page), []);
    await page.locator('#providers-list tbody tr[data-provider="openrouter"] button:has-text("Enable")').click();
    await page.waitForFunction(() => /Yes/.test(document.querySelector('#providers-list tbody tr[data-provider="openrouter"] .badge').textContent));
    assert.deepEqual(problems, []);
    await context.close();
  });
});
