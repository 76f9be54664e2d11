// A page that a later release fills in; until then it says where the data already is.

import { t } from '../i18n.js';
import { h } from '../ui.js';

export function page(titleKey, path) {
  return {
    render(main) {
      main.append(
        h('header', {}, h('h1', {}, t(titleKey))),
        h('div', { class: 'card' }, h('p', { class: 'muted' }, t('dash.later', { path }))),
      );
    },
  };
}
