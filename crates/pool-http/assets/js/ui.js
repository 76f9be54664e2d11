// DOM helpers: every element is built with createElement and every value goes in as text
// (textContent, attributes), never as HTML. Also the toasts and the theme/language pickers.

import { setLang, lang, t, translate } from './i18n.js';

// h('td', {class: 'num', dataset: {label: 'x'}}, 'text', child, ...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'text') el.textContent = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let toastBox;
export function toast(message, kind = 'info') {
  if (!toastBox) {
    toastBox = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(toastBox);
  }
  const item = h('div', { class: `toast ${kind}` }, message);
  toastBox.append(item);
  setTimeout(() => item.remove(), 4000);
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast(t('tok.copied'), 'ok');
  } catch {
    toast(text);
  }
}

// Wires the language and theme selects found in the page.
export function setupPrefs() {
  const langSelect = document.getElementById('pref-lang');
  const themeSelect = document.getElementById('pref-theme');
  if (langSelect) {
    langSelect.value = lang();
    langSelect.addEventListener('change', () => setLang(langSelect.value));
  }
  if (themeSelect) {
    themeSelect.value = document.documentElement.getAttribute('data-theme') || 'auto';
    themeSelect.addEventListener('change', () => {
      const value = ['light', 'dark'].includes(themeSelect.value) ? themeSelect.value : 'auto';
      document.documentElement.setAttribute('data-theme', value);
      try { localStorage.setItem('pool.theme', value); } catch { /* storage may be off */ }
    });
  }
  translate();
}
