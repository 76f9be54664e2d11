// The keys page's bulk bar: what is selected (ids on this page, or every key matching the
// filter), the actions the server runs on them in one call (`POST /admin/api-keys/bulk`), a
// progress bar for a verify job, and the typed confirmation a delete of more than one key needs.

import { api } from '../api.js';
import { number, t } from '../i18n.js';
import { h, toast } from '../ui.js';
import { followJob, progressBar } from './common.js';

// selection: { ids: Set, allMatching: bool, total(): number, filter(): object }
// duration(): seconds or 0; done(): reloads the list.
export function bulkBar(selection, duration, done) {
  const summary = h('span', { class: 'small', id: 'keys-selection', 'aria-live': 'polite' });
  const matching = h('button', { class: 'btn small', type: 'button', id: 'keys-select-matching', hidden: true,
    onclick: () => { selection.allMatching = true; refresh(); } });
  const none = h('button', { class: 'btn small', type: 'button', id: 'keys-select-none', onclick: () => { selection.clear(); done(); } }, t('bulk.clear'));
  const progress = progressBar('bulk-progress');
  const button = (id, key, action, cls = 'btn small') => h('button', { class: cls, type: 'button', id, onclick: () => run(action) }, t(key));
  const buttons = [
    button('bulk-verify', 'keys.verify', 'verify'),
    button('bulk-enable', 'keys.enable', 'enable'),
    button('bulk-disable', 'keys.disable', 'disable'),
    button('bulk-reset', 'keys.reset', 'reset-cooldown'),
    button('bulk-delete', 'keys.delete', 'delete', 'btn small danger'),
  ];
  const bar = h('div', { class: 'bulk', id: 'keys-bulk', role: 'group', 'aria-label': t('bulk.label') },
    h('div', { class: 'row' }, summary, matching, none, h('span', { class: 'spacer' }), buttons), progress.box);

  function count() {
    return selection.allMatching ? selection.total() : selection.ids.size;
  }

  function refresh() {
    const n = count();
    summary.textContent = selection.allMatching ? t('bulk.allMatching', { n: number(n) }) : t('bulk.selected', { n: number(n) });
    matching.hidden = selection.allMatching || n === 0 || selection.total() <= n;
    matching.textContent = t('bulk.selectMatching', { n: number(selection.total()) });
    none.hidden = n === 0;
    for (const b of buttons) b.disabled = n === 0;
  }

  async function run(action) {
    const n = count();
    if (action === 'delete' && n > 1 && !(await typedConfirm(n))) return;
    const body = { action };
    if (selection.allMatching) body.filter = selection.filter();
    else body.ids = [...selection.ids];
    const seconds = duration();
    if (action === 'disable' && seconds > 0) body.duration = seconds;
    for (const b of buttons) b.disabled = true;
    try {
      const answer = await api('/admin/api-keys/bulk', { method: 'POST', body });
      if (action === 'verify') await follow(answer);
      else toast(t(`bulk.done.${action}`, { n: number(answer.changed), matched: number(answer.matched) }), 'ok');
      selection.clear();
    } catch (e) {
      toast(t('common.error', { message: e.message }), 'error');
    }
    await done();
  }

  async function follow(answer) {
    progress.show(0, answer.total, t('job.running', { done: 0, total: number(answer.total) }));
    const final = await followJob(answer.job, (s) => {
      const counts = { done: number(s.done), total: number(s.total), valid: number(s.validCount ?? s.valid?.length ?? 0), invalid: number(s.invalidCount ?? s.invalid?.length ?? 0) };
      progress.show(s.done, s.total, t(s.status === 'done' ? 'job.verified' : 'job.verifying', counts));
    });
    toast(t('job.verified', { done: number(final.done), total: number(final.total), valid: number(final.valid.length), invalid: number(final.invalid.length) }), 'ok');
  }

  refresh();
  return { bar, refresh };
}

// A dialog that asks for the number of keys (or DELETE) before a delete of `n` keys.
function typedConfirm(n) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'text', id: 'confirm-input', autocomplete: 'off', 'aria-describedby': 'confirm-text' });
    const ok = h('button', { class: 'btn danger', type: 'submit', id: 'confirm-ok', disabled: true }, t('bulk.confirmDelete', { n: number(n) }));
    const cancel = h('button', { class: 'btn', type: 'button', id: 'confirm-cancel' }, t('common.cancel'));
    const form = h('form', { method: 'dialog', class: 'stack' },
      h('h2', { id: 'confirm-title' }, t('bulk.confirmTitle')),
      h('p', { id: 'confirm-text' }, t('bulk.confirmText', { n: String(n) })),
      h('div', { class: 'field' }, h('label', { for: 'confirm-input' }, t('bulk.confirmLabel')), input),
      h('div', { class: 'row end' }, cancel, ok));
    const dialog = h('dialog', { id: 'confirm-dialog', 'aria-labelledby': 'confirm-title' }, form);
    const matches = () => [String(n), 'DELETE'].includes(input.value.trim());
    input.addEventListener('input', () => { ok.disabled = !matches(); });
    const finish = (yes) => { dialog.close(); dialog.remove(); resolve(yes); };
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', () => finish(false));
    form.addEventListener('submit', (e) => { e.preventDefault(); if (matches()) finish(true); });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}
