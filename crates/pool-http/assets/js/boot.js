// Runs before the first paint (a classic script in <head>): applies the remembered theme and
// language so a page never flashes in the wrong one. Preferences only; never credentials.
(function () {
  var root = document.documentElement;
  var theme = 'auto';
  var lang = '';
  try {
    theme = localStorage.getItem('pool.theme') || 'auto';
    lang = localStorage.getItem('pool.lang') || '';
  } catch (e) { /* storage may be off */ }
  if (theme !== 'light' && theme !== 'dark') theme = 'auto';
  if (lang !== 'en' && lang !== 'zh-CN') {
    var wanted = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
    lang = /^zh/i.test(wanted) ? 'zh-CN' : 'en';
  }
  root.setAttribute('data-theme', theme);
  root.setAttribute('lang', lang);
})();
