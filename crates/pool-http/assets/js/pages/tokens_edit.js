// The token edit dialog: limits, expiry, providers and model allow-list, sent as one PATCH of
// the fields that changed (an emptied field clears its limit, "never expires" clears the
// expiry). The server validates; its message is shown in the dialog.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { h, toast } from '../ui.js';

const LIMITS = [['rpm', 'tok.rpm'], ['rpd', 'tok.rpd'], ['tpd', 'tok.tpd'], ['maxConcurrent', 'tok.concurrentField']];

// Resolves true when the token was saved.
export function editDialog(token, providers) {
  return new Promise((resolve) => {
    const field = (id, label, input) => h('div', { class: 'field' }, h('label', { for: id }, label), input);
    const number = (id, value) => h('input', { type: 'number', id, min: 1, step: 1, value: value ?? '' });
    const name = h('input', { type: 'text', id: 'edit-name', maxlength: 200, value: token.name });
    const limits = LIMITS.map(([k, label]) => [k, label, number(`edit-${k}`, token[k])]);
    const days = h('input', { type: 'number', id: 'edit-days', min: 1, max: 3650, step: 1 });
    const never = h('input', { type: 'checkbox', id: 'edit-never', checked: !token.expiresAt });
    days.disabled = never.checked;
    never.addEventListener('change', () => { days.disabled = never.checked; });
    const models = h('textarea', { id: 'edit-models', rows: 3, spellcheck: 'false' });
    models.value = (token.models || []).join('\n');
    const scope = providers.map((p) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', class: 'edit-provider', value: p.name, checked: !token.providers || token.providers.includes(p.name) }), ' ', p.name));
    const error = h('div', { class: 'alert error', id: 'edit-error', role: 'alert', hidden: true });
    const save = h('button', { class: 'btn primary', type: 'submit', id: 'edit-save' }, t('tok.save'));
    const cancel = h('button', { class: 'btn', type: 'button', id: 'edit-cancel' }, t('common.cancel'));
    const form = h('form', { method: 'dialog', class: 'stack' },
      h('h2', { id: 'edit-title' }, t('tok.editTitle', { name: token.name })),
      field('edit-name', t('tok.name'), name),
      h('div', { class: 'row' }, limits.map(([k, label, input]) => field(`edit-${k}`, t(label), input))),
      field('edit-days', t('tok.expiresEdit', { current: token.expiresAt ? new Date(token.expiresAt).toLocaleString() : t('tok.never') }), days),
      h('label', { class: 'check' }, never, ' ', t('tok.neverExpires')),
      h('fieldset', {}, h('legend', {}, t('tok.providers')), scope),
      field('edit-models', t('tok.models'), models),
      error, h('div', { class: 'row end' }, cancel, save));
    const dialog = h('dialog', { id: 'token-edit', 'aria-labelledby': 'edit-title' }, form);

    function body() {
      const out = { name: name.value.trim() };
      for (const [k, , input] of limits) out[k] = input.value ? Number(input.value) : null;
      if (never.checked) {
        if (token.expiresAt) out.expiresIn = null;
      } else if (days.value) {
        out.expiresIn = Math.round(Number(days.value) * 86400);
      }
      const chosen = [...dialog.querySelectorAll('.edit-provider:checked')].map((b) => b.value);
      out.providers = chosen.length === providers.length ? null : chosen;
      const list = models.value.split('\n').map((m) => m.trim()).filter(Boolean);
      out.models = list.length ? list : null;
      return out;
    }

    const finish = (saved) => { dialog.close(); dialog.remove(); resolve(saved); };
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', () => finish(false));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await api(`/admin/tokens/${encodeURIComponent(token.id)}`, { method: 'PATCH', body: body() });
        toast(t('tok.saved'), 'ok');
        finish(true);
      } catch (err) {
        error.hidden = false;
        error.textContent = err.message;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    name.focus();
  });
}
