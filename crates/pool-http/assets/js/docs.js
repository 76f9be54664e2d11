// The API docs: quick start, base URLs (this server's own origin, and one per provider from the
// public /health), endpoints, parameters, errors, copyable examples, and a playground that
// calls the client API with a token kept in sessionStorage only.

import { onLangChange, t } from './i18n.js';
import { clear, copy, h, setupPrefs } from './ui.js';

const TOKEN_KEY = 'pool.playground.token';
const body = document.getElementById('docs-body');
const origin = location.origin;
let providers = [];
let defaultProvider = 'ollama';

function codeBlock(text, id) {
  return h('div', { class: 'code' },
    h('pre', { id, tabindex: '0' }, h('code', {}, text)),
    h('button', { class: 'btn small copy', type: 'button', onclick: () => copy(text) }, t('tok.copy')));
}

function section(id, titleKey, ...children) {
  return h('section', { class: 'card', id }, h('h2', {}, t(titleKey)), ...children);
}

function rows(headKeys, items) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data' },
    h('thead', {}, h('tr', {}, headKeys.map((k) => h('th', { scope: 'col' }, t(k))))),
    h('tbody', {}, items.map((cells) => h('tr', {}, cells.map((c, i) => h('td', { class: 'wrap-anywhere', dataset: { label: t(headKeys[i]) } }, c)))))));
}

const ENDPOINTS = [
  ['POST', '/v1/chat/completions', 'docs.ep.chat'],
  ['POST', '/v1/completions', 'docs.ep.completions'],
  ['POST', '/v1/embeddings', 'docs.ep.embeddings'],
  ['GET', '/v1/models', 'docs.ep.models'],
  ['POST', '/api/chat', 'docs.ep.nativeChat'],
  ['POST', '/api/generate', 'docs.ep.generate'],
  ['POST', '/api/embed', 'docs.ep.embed'],
  ['GET', '/api/tags', 'docs.ep.tags'],
  ['GET', '/health', 'docs.ep.health'],
  ['GET', '/stats.json', 'docs.ep.stats'],
  ['GET', '/openapi.json', 'docs.ep.openapi'],
];

const ERRORS = [
  ['400', 'invalid_request_error', 'docs.err.400'],
  ['401', 'invalid_api_key', 'docs.err.401'],
  ['401', 'token_expired', 'docs.err.expired'],
  ['403', 'model_not_allowed', 'docs.err.model'],
  ['403', 'provider_not_allowed', 'docs.err.provider'],
  ['404', 'model_not_found', 'docs.err.404'],
  ['408', 'request_timeout', 'docs.err.408'],
  ['413', 'request_too_large', 'docs.err.413'],
  ['429', 'rate_limit_exceeded', 'docs.err.429'],
  ['502', 'upstream_failed', 'docs.err.502'],
  ['503', 'no_available_key', 'docs.err.noKey'],
  ['503', 'overloaded / server_busy', 'docs.err.busy'],
];

function snippets() {
  const curl = `curl ${origin}/v1/chat/completions \\
  -H "Authorization: Bearer $POOL_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "llama3.2", "messages": [{"role": "user", "content": "Hello"}]}'`;
  const python = `from openai import OpenAI

client = OpenAI(base_url="${origin}/v1", api_key="YOUR_POOL_TOKEN")
reply = client.chat.completions.create(
    model="llama3.2",
    messages=[{"role": "user", "content": "Hello"}],
)
print(reply.choices[0].message.content)`;
  const ollama = `from ollama import Client

client = Client(host="${origin}", headers={"Authorization": "Bearer YOUR_POOL_TOKEN"})
print(client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hello"}])["message"]["content"])`;
  const js = `import OpenAI from 'openai';

const client = new OpenAI({ baseURL: '${origin}/v1', apiKey: process.env.POOL_TOKEN });
const stream = await client.chat.completions.create({
  model: 'llama3.2',
  messages: [{ role: 'user', content: 'Hello' }],
  stream: true,
});
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');`;
  return [
    h('h3', {}, 'curl'), codeBlock(curl, 'snippet-curl'),
    h('h3', {}, 'Python (openai)'), codeBlock(python, 'snippet-python'),
    h('h3', {}, 'Python (ollama)'), codeBlock(ollama, 'snippet-ollama'),
    h('h3', {}, 'JavaScript (openai)'), codeBlock(js, 'snippet-js'),
  ];
}

function render() {
  const bases = [
    [t('docs.base.openai'), h('code', {}, `${origin}/v1`)],
    [t('docs.base.ollama'), h('code', {}, origin)],
    ...providers.map((name) => [t('docs.base.provider', { name }), h('code', {}, `${origin}/${name}/v1`)]),
  ];
  clear(body).append(
    section('quick-start', 'docs.quick',
      h('ol', {}, h('li', {}, t('docs.quick.1')), h('li', {}, t('docs.quick.2', { base: `${origin}/v1` })), h('li', {}, t('docs.quick.3')))),
    section('base-urls', 'docs.bases', h('p', { class: 'muted small' }, t('docs.bases.help', { provider: defaultProvider })),
      rows(['docs.col.client', 'docs.col.url'], bases)),
    section('endpoints', 'docs.endpoints', h('p', { class: 'muted small' }, t('docs.endpoints.help')),
      h('p', {}, t('docs.openapi'), ' ', h('a', { href: '/openapi.json', id: 'openapi-link' }, h('code', {}, '/openapi.json'))),
      rows(['docs.col.method', 'docs.col.path', 'docs.col.what'], ENDPOINTS.map(([m, p, k]) => [m, h('code', {}, p), t(k)]))),
    section('parameters', 'docs.params',
      h('p', {}, t('docs.params.body')),
      rows(['docs.col.name', 'docs.col.what'], [
        [h('code', {}, 'model'), t('docs.param.model')],
        [h('code', {}, 'stream'), t('docs.param.stream')],
        [h('code', {}, 'stream_options.include_usage'), t('docs.param.usage')],
        [h('code', {}, 'Authorization: Bearer …'), t('docs.param.auth')],
        [h('code', {}, 'X-Request-Id'), t('docs.param.requestId')],
        [h('code', {}, 'x-pool-attempts'), t('docs.param.attempts')],
        [h('code', {}, 'x-ratelimit-*, Retry-After'), t('docs.param.ratelimit')],
        [h('code', {}, 'x-cache'), t('docs.param.cache')],
      ])),
    section('errors', 'docs.errors', h('p', {}, t('docs.errors.shape')),
      codeBlock('{"error": {"message": "…", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}', 'error-shape'),
      rows(['docs.col.status', 'docs.col.code', 'docs.col.what'], ERRORS.map(([s, c, k]) => [s, h('code', {}, c), t(k)]))),
    section('snippets', 'docs.snippets', ...snippets()),
    section('playground', 'docs.playground', playground()),
  );
}

const TEMPLATES = {
  hello: { system: '', user: 'Say hello in one short sentence.' },
  translate: { system: 'You translate English into Simplified Chinese. Answer with the translation only.', user: 'The pool keeps every request on a healthy key.' },
  code: { system: 'You are a concise senior engineer.', user: 'Write a Python function that checks whether a string is a palindrome.' },
  json: { system: 'Answer with one JSON object and nothing else.', user: 'Give the name and capital of three countries.' },
};

let controller = null;

function playground() {
  const token = h('input', { type: 'password', id: 'pg-token', autocomplete: 'off', value: sessionStorage.getItem(TOKEN_KEY) || '' });
  const model = h('select', { id: 'pg-model' }, h('option', { value: '' }, t('docs.pg.noModels')));
  const template = h('select', { id: 'pg-template' }, h('option', { value: '' }, t('docs.pg.template.none')),
    Object.keys(TEMPLATES).map((k) => h('option', { value: k }, t(`docs.pg.template.${k}`))));
  const system = h('textarea', { id: 'pg-system', rows: 2 });
  const user = h('textarea', { id: 'pg-user', rows: 4 }, t('docs.pg.defaultPrompt'));
  const temperature = h('input', { type: 'number', id: 'pg-temperature', min: 0, max: 2, step: 0.1, value: 0.7 });
  const stream = h('input', { type: 'checkbox', id: 'pg-stream', checked: true });
  const send = h('button', { class: 'btn primary', type: 'submit', id: 'pg-send' }, t('docs.pg.send'));
  const stop = h('button', { class: 'btn', type: 'button', id: 'pg-stop', disabled: true }, t('docs.pg.stop'));
  const load = h('button', { class: 'btn small', type: 'button', id: 'pg-load' }, t('docs.pg.load'));
  const output = h('pre', { id: 'pg-output', class: 'output', 'aria-live': 'polite', tabindex: '0' });
  const meta = h('p', { id: 'pg-meta', class: 'muted small' });
  const field = (label, control, hint) => h('div', { class: 'field' }, h('label', { for: control.id }, t(label)), control, hint ? h('span', { class: 'hint' }, t(hint)) : null);

  token.addEventListener('change', () => { sessionStorage.setItem(TOKEN_KEY, token.value.trim()); });
  template.addEventListener('change', () => {
    const chosen = TEMPLATES[template.value];
    if (chosen) { system.value = chosen.system; user.value = chosen.user; }
  });
  load.addEventListener('click', () => loadModels(token, model, meta));
  stop.addEventListener('click', () => controller?.abort());

  const form = h('form', { id: 'pg-form', class: 'playground' },
    h('div', { class: 'grid two' },
      h('div', {},
        field('docs.pg.token', token, 'docs.pg.token.hint'),
        h('div', { class: 'field' }, h('label', { for: 'pg-model' }, t('docs.pg.model')), h('div', { class: 'row' }, model, load)),
        field('docs.pg.template', template),
        field('docs.pg.temperature', temperature),
        h('div', { class: 'field row' }, stream, h('label', { for: 'pg-stream' }, t('docs.pg.stream')))),
      h('div', {}, field('docs.pg.system', system), field('docs.pg.user', user))),
    h('div', { class: 'row' }, send, stop),
    h('h3', {}, t('docs.pg.output')), output, meta);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, token.value.trim());
    run({ token: token.value.trim(), model: model.value, system: system.value, user: user.value, temperature: Number(temperature.value), stream: stream.checked }, { output, meta, send, stop });
  });
  if (token.value) loadModels(token, model, meta);
  return form;
}

async function loadModels(token, select, meta) {
  const secret = token.value.trim();
  if (!secret) { meta.textContent = t('docs.pg.needToken'); return; }
  sessionStorage.setItem(TOKEN_KEY, secret);
  const r = await fetch('/v1/models', { headers: { Authorization: `Bearer ${secret}` }, cache: 'no-store' });
  const data = await r.json().catch(() => null);
  if (!r.ok) { meta.textContent = errorText(r.status, data); return; }
  clear(select).append(...(data.data || []).map((m) => h('option', { value: m.id }, m.id)));
  if (!select.options.length) select.append(h('option', { value: '' }, t('docs.pg.noModels')));
  meta.textContent = t('docs.pg.models', { n: (data.data || []).length });
}

function errorText(status, data) {
  return t('docs.pg.error', { status, message: data?.error?.message || '' });
}

async function run(input, { output, meta, send, stop }) {
  if (!input.token) { meta.textContent = t('docs.pg.needToken'); return; }
  if (!input.model) { meta.textContent = t('docs.pg.needModel'); return; }
  const messages = [];
  if (input.system.trim()) messages.push({ role: 'system', content: input.system });
  messages.push({ role: 'user', content: input.user });
  controller = new AbortController();
  send.disabled = true; stop.disabled = false;
  output.textContent = '';
  meta.textContent = t('docs.pg.waiting');
  const started = performance.now();
  try {
    const r = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: { Authorization: `Bearer ${input.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: input.model, messages, temperature: input.temperature, stream: input.stream, ...(input.stream ? { stream_options: { include_usage: true } } : {}) }),
      signal: controller.signal,
    });
    const requestId = r.headers.get('x-request-id') || '';
    if (!r.ok) {
      meta.textContent = `${errorText(r.status, await r.json().catch(() => null))} ${requestId}`;
      return;
    }
    let usage = null;
    if (input.stream) {
      usage = await readStream(r, output);
    } else {
      const data = await r.json();
      output.textContent = data.choices?.[0]?.message?.content ?? '';
      usage = data.usage;
    }
    meta.textContent = t('docs.pg.done', {
      ms: Math.round(performance.now() - started),
      id: requestId,
      tokens: usage ? `${usage.prompt_tokens ?? 0} + ${usage.completion_tokens ?? 0}` : '—',
    });
  } catch (e) {
    meta.textContent = e.name === 'AbortError' ? t('docs.pg.stopped') : t('docs.pg.error', { status: '—', message: e.message });
  } finally {
    send.disabled = false; stop.disabled = true; controller = null;
  }
}

// Reads an OpenAI server-sent-event stream, appending each delta's content as text.
async function readStream(response, output) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let usage = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') continue;
        try {
          const chunk = JSON.parse(data);
          output.append(chunk.choices?.[0]?.delta?.content ?? '');
          if (chunk.usage) usage = chunk.usage;
        } catch { /* not JSON: skip the line */ }
      }
    }
  }
  return usage;
}

setupPrefs();
onLangChange(render);
fetch('/health', { cache: 'no-store' })
  .then((r) => r.json())
  .then((health) => {
    providers = Object.keys(health.providers || {});
    defaultProvider = health.defaultProvider || defaultProvider;
  })
  .catch(() => {})
  .finally(render);
