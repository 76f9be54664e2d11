// `/openapi.json` against the real gateway: the document is valid OpenAPI 3.1 (by an OpenAPI
// schema validator), and the answers of real admin and public calls validate against the schema
// the document gives for them (by a JSON Schema 2020-12 validator), with no field left
// undocumented.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020 from 'ajv/dist/2020.js';
import { ADMIN, startGateway, startUpstream } from './harness.mjs';

let upstream;
let gw;
let doc;
let ajv;

before(async () => {
  upstream = await startUpstream();
  gw = await startGateway({ POOL__PROVIDERS__OLLAMA__URL: upstream.url });
  const r = await fetch(`${gw.base}/openapi.json`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  doc = await r.json();
  // OpenAPI's integer formats (int64, ...) are not JSON Schema's: types and ranges are checked.
  ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema({ $id: 'openapi.json', components: doc.components });
});

after(async () => {
  await gw?.stop();
  await upstream?.stop();
});

// The schema of an operation's answer with `status`, as the document gives it.
function documented(method, path, status) {
  const operation = doc.paths[path]?.[method.toLowerCase()];
  assert.ok(operation, `${method} ${path} is documented`);
  const schema = operation.responses[status]?.content?.['application/json']?.schema;
  assert.ok(schema, `${method} ${path} documents a JSON answer for ${status}`);
  return schema;
}

// Follows a `$ref` into the document's components.
function deref(schema) {
  while (schema?.$ref) schema = schema.$ref.replace('#/', '').split('/').reduce((node, key) => node?.[key], doc);
  return schema ?? {};
}

// The property schemas an object schema names, through `allOf`, `oneOf` and `anyOf`.
function properties(schema) {
  schema = deref(schema);
  const own = { ...(schema.properties ?? {}) };
  for (const part of [...(schema.allOf ?? []), ...(schema.oneOf ?? []), ...(schema.anyOf ?? [])]) Object.assign(own, properties(part));
  return own;
}

// Fields of `value` its schema does not name (maps, `additionalProperties`, are walked too).
function undocumented(value, schema, at = '') {
  schema = deref(schema);
  if (Array.isArray(value)) return value.flatMap((item, i) => undocumented(item, schema.items, `${at}/${i}`));
  if (value === null || typeof value !== 'object') return [];
  const known = properties(schema);
  const map = deref(schema).additionalProperties;
  if (Object.keys(known).length === 0 && !map) return []; // a free object (`config`, an upstream body)
  return Object.entries(value).flatMap(([name, child]) => {
    if (known[name]) return undocumented(child, known[name], `${at}/${name}`);
    if (map && typeof map === 'object') return undocumented(child, map, `${at}/${name}`);
    return [`${at}/${name}`];
  });
}

// Calls the gateway as the admin and checks the answer against its documented schema.
async function check(method, path, body, { status = 200, route = path.split('?')[0] } = {}) {
  const r = await fetch(gw.base + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await r.json();
  assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(answer)}`);
  const schema = documented(method, route, String(status));
  const validate = ajv.compile({ $ref: `openapi.json${schema.$ref}` });
  assert.ok(validate(answer), `${method} ${path} against ${schema.$ref}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(answer)}`);
  assert.deepEqual(undocumented(answer, schema), [], `${method} ${path}: fields missing from ${schema.$ref}`);
  return answer;
}

test('the document is valid OpenAPI 3.1', async () => {
  const result = await new Validator().validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1));
  assert.match(doc.openapi, /^3\.1\./);
});

test('the answers of real admin and public calls validate against their documented schemas', async () => {
  const token = await check('POST', '/admin/tokens', { name: 'schema', rpm: 60, models: ['llama3*'] });
  await check('PATCH', `/admin/tokens/${token.id}`, { rpd: 1000, expiresIn: null }, { route: '/admin/tokens/{id}' });
  await check('GET', '/admin/tokens');
  const added = await check('POST', '/admin/api-keys', { api_key: 'sk-openapi-schema-key-0001', username: 'schema' });
  await check('POST', '/admin/api-keys', { api_key: 'sk-openapi-schema-key-0001' });
  await check('POST', '/admin/api-keys/import', { keys: ['sk-openapi-schema-key-0002', 'sk-openapi-schema-key-0002', 'x'] });
  await check('POST', '/admin/verify-key', { id: added.id });
  await check('GET', '/admin/api-keys?pageSize=5');
  await check('GET', '/admin/keys/stats');
  await check('POST', '/admin/keys/disable', { id: added.id, duration: 60 });
  await check('POST', '/admin/api-keys/bulk', { action: 'enable', ids: [added.id] });
  await check('POST', '/admin/api-keys/bulk', { action: 'verify', filter: {} }, { status: 202 });
  // One real request, so the statistics and the request log have something in them.
  const client = await fetch(`${gw.base}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'llama3', messages: [{ role: 'user', content: 'hi' }] }),
  });
  await client.arrayBuffer();
  await check('GET', '/admin/stats');
  await check('GET', '/admin/stats/trend?range=1h');
  await check('GET', '/admin/requests?limit=5');
  await check('GET', `/admin/api-keys/${added.id}/usage?granularity=minute`, undefined, { route: '/admin/api-keys/{id}/usage' });
  await check('GET', '/admin/settings');
  await check('GET', '/admin/providers');
  await check('GET', '/admin/cache/stats');
  await check('GET', '/admin/sessions');
  await check('GET', '/health');
  await check('GET', '/stats.json');
  await check('GET', '/admin/public-stats');
  await check('GET', '/admin/session');
});

test('errors validate against the one error schema', async () => {
  await check('GET', '/admin/api-keys?status=bogus', undefined, { status: 400 });
  await check('DELETE', '/admin/tokens/not-an-id', undefined, { status: 404, route: '/admin/tokens/{id}' });
});
