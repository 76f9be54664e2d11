// The keys page's import panel: paste or upload keys in any seed format (the server parses
// them: one key a line, `user----key`, `email----password----session----key`, JSON lines, or a
// JSON array of strings and `{api_key, username}` objects), choose the provider, and import at
// once or validated upstream key by key, with live progress.

import { api } from '../api.js';
import { number, t } from '../i18n.js';
import { h, toast } from '../ui.js';
import { followJob, progressBar } from './common.js';

// A JSON array file becomes one entry a line, which the server's line parser reads the same way
// as `/admin/import` reads the array (strings as lines, objects as JSON lines).
function asLines(text) {
  const trimmed = text.trim();
  if (!trimmed.startsWith('[')) return text;
  try {
    const entries = JSON.parse(trimmed);
    if (!Array.isArray(entries)) return text;
    return entries.map((e) => (typeof e === 'string' ? e : JSON.stringify(e))).join('\n');
  } catch {
    return text;
  }
}

export function importPanel(providers, done) {
  const text = h('textarea', { id: 'import-text', rows: 6, spellcheck: 'false', autocomplete: 'off', placeholder: 'sk-…\nuser----sk-…' });
  const file = h('input', { type: 'file', id: 'import-file', accept: '.txt,.json,.csv,text/plain,application/json' });
  const provider = h('select', { id: 'import-provider' }, providers.map((p) => h('option', { value: p.name, selected: p.default }, p.name)));
  const validate = h('input', { type: 'checkbox', id: 'import-validate' });
  const submit = h('button', { class: 'btn primary', type: 'submit', id: 'import-submit' }, t('imp.submit'));
  const result = h('div', { id: 'import-result', class: 'small', 'aria-live': 'polite' });
  const progress = progressBar('import-progress');

  file.addEventListener('change', async () => {
    const chosen = file.files?.[0];
    if (chosen) text.value = await chosen.text();
  });

  const form = h('form', { id: 'import-form', class: 'stack' },
    h('div', { class: 'field' }, h('label', { for: 'import-text' }, t('imp.paste')), text,
      h('div', { class: 'hint muted small' }, t('imp.formats'))),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'import-file' }, t('imp.file')), file),
      h('div', { class: 'field' }, h('label', { for: 'import-provider' }, t('keys.provider')), provider),
      h('div', { class: 'field check' }, validate, h('label', { for: 'import-validate' }, t('imp.validate')))),
    h('div', { class: 'row' }, submit), progress.box, result);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const content = asLines(text.value);
    if (!content.trim()) { toast(t('imp.empty'), 'error'); return; }
    submit.disabled = true;
    result.textContent = '';
    try {
      const counts = validate.checked ? await validated(content, provider.value) : await plain(content, provider.value);
      result.textContent = t('imp.result', { added: number(counts.added), duplicates: number(counts.duplicates), invalid: number(counts.invalid) });
      text.value = '';
      file.value = '';
      await done();
    } catch (e) {
      toast(t('common.error', { message: e.message }), 'error');
    } finally {
      submit.disabled = false;
    }
  });

  async function plain(content, name) {
    const r = await api('/admin/api-keys/import-from-txt', { method: 'POST', body: { content, provider: name } });
    return { added: r.added, duplicates: r.duplicates, invalid: r.invalid };
  }

  async function validated(content, name) {
    const started = await api('/admin/api-keys/import-with-validation', { method: 'POST', body: { content, provider: name } });
    progress.show(0, started.total, t('job.running', { done: 0, total: number(started.total) }));
    const final = await followJob(started.id, (s) => progress.show(s.done, s.total,
      t('job.importing', { done: number(s.done), total: number(s.total), valid: number(s.validCount ?? s.valid?.length ?? 0) })));
    const duplicates = started.duplicates ?? 0;
    return { added: final.valid.length, duplicates, invalid: final.invalid.length - duplicates };
  }

  return h('details', { class: 'card', id: 'keys-import' }, h('summary', {}, h('h2', {}, t('imp.title'))), form);
}
