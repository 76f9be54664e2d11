// The browser tests' harness: the real gateway binary on a free port with a temp SQLite, one
// Chromium (Debian's) for every test, pages that record console errors and failed requests,
// and screenshots into target/screenshots/.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '..', '..');
export const ADMIN = 'browser-test-admin-token-0123456789';
export const shots = join(repo, 'target', 'screenshots');
mkdirSync(shots, { recursive: true });

// A binary of the build: the gateway (`ollama-pool`, or POOL_BIN) or `pool-bench`, whose
// hidden `upstream` command is the fake upstream.
function binary(name = 'ollama-pool') {
  if (name === 'ollama-pool' && process.env.POOL_BIN) return process.env.POOL_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(repo, 'target');
  for (const profile of ['debug', 'release']) {
    const path = join(target, profile, name);
    if (existsSync(path)) return path;
  }
  throw new Error(`build the binaries first: cargo build -p ollama-pool --bins (no ${name})`);
}

// The fake upstream of pool-testkit in a process of its own; `url` goes into
// POOL__PROVIDERS__OLLAMA__URL. It stops when this process's end of its stdin closes. It
// refuses the keys of `refuse` with a 401.
export async function startUpstream({ refuse = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pool-upstream-'));
  const addrFile = join(dir, 'addr');
  const child = spawn(binary('pool-bench'), ['upstream', '--addr-file', addrFile, '--watch-stdin', '--stream-chunks', '4', '--stream-delay-ms', '20',
    ...refuse.flatMap((key) => ['--refuse-key', key])],
    { stdio: ['pipe', 'ignore', 'inherit'] });
  for (let i = 0; !existsSync(addrFile); i++) {
    if (child.exitCode !== null || i > 300) throw new Error('the fake upstream did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  const url = `http://${readFileSync(addrFile, 'utf8').trim()}`;
  return {
    url,
    async stop() {
      child.stdin.end();
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => ok(port)); });
    server.on('error', fail);
  });
}

export async function startGateway(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pool-browser-'));
  const port = await freePort();
  const child = spawn(binary(), ['serve'], {
    env: {
      PATH: process.env.PATH,
      POOL_ADMIN_TOKEN: ADMIN,
      POOL_LISTEN: `127.0.0.1:${port}`,
      POOL_DATABASE_URL: `sqlite://${join(dir, 'pool.db')}`,
      RUST_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${base}/health`);
      if (r.ok) break;
    } catch { /* not yet */ }
    if (child.exitCode !== null || i > 300) throw new Error(`gateway did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base,
    async admin(path, method = 'GET', body) {
      const r = await fetch(base + path, {
        method, headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
      return r.json();
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let browser = null;
export async function launch() {
  browser ??= await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
  });
  return browser;
}

export async function closeBrowser() {
  await browser?.close();
  browser = null;
}

// A fresh context (own cookies and storage) and page; `problems` collects console errors,
// page errors and failed requests (network failures and answers >= 400), except `allowed`.
export async function open({ viewport = { width: 1280, height: 860 }, colorScheme = 'light', locale = 'en-US', allowed = [] } = {}) {
  const b = await launch();
  const context = await b.newContext({ viewport, colorScheme, locale });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !allowed.some((a) => r.url().includes(a))) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  page.on('dialog', (d) => d.accept());
  return { context, page, problems };
}

export async function signIn(page, base) {
  await page.goto(`${base}/`);
  await page.fill('#admin-token', ADMIN);
  await Promise.all([page.waitForURL(`${base}/dashboard`), page.click('#signin-form button[type=submit]')]);
  await page.waitForSelector('#overview-cards .metric');
}

export async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage });
}

const axeSource = readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

// axe-core's serious and critical violations on the page (evaluated through the DevTools
// protocol, which the page's CSP does not govern).
export async function axeViolations(page) {
  await page.evaluate(`${axeSource};0`);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  return result;
}

