// Every string of the console, in English and Simplified Chinese. `t(key, vars)` looks one up
// ({name} placeholders filled from vars); elements with data-i18n (text), data-i18n-placeholder,
// data-i18n-label (aria-label) and data-i18n-title are filled by `translate(root)`.

import * as docs from './strings/docs.js';
import * as settings from './strings/settings.js';

const en = {
  'app.name': 'ollama-pool',
  'nav.skip': 'Skip to content',
  'nav.home': 'Home',
  'nav.dashboard': 'Console',
  'nav.stats': 'Public statistics',
  'pref.language': 'Language',
  'pref.theme': 'Theme',
  'theme.auto': 'Automatic',
  'theme.light': 'Light',
  'theme.dark': 'Dark',

  'landing.title': 'LLM API key-pool gateway',
  'landing.lead': 'ollama-pool spreads requests over a pool of upstream API keys (Ollama cloud, OpenRouter, any OpenAI-compatible provider), takes failing keys out of rotation and puts them back, and counts every request. Clients use ordinary OpenAI or Ollama libraries with a client token.',
  'landing.endpoints': 'Endpoints',
  'landing.ep.chat': 'OpenAI chat completions',
  'landing.ep.models': 'Model list',
  'landing.ep.native': 'Ollama native chat',
  'landing.ep.health': 'Health',
  'landing.ep.stats': 'Public statistics (JSON)',
  'landing.signin': 'Administrator sign-in',
  'landing.signin.help': 'Enter the admin token. It is exchanged for a session cookie and is not stored by this page.',
  'landing.token': 'Admin token',
  'landing.token.hint': 'Printed once at first start, or set as POOL_ADMIN_TOKEN.',
  'landing.submit': 'Sign in',
  'landing.signedin': 'You are signed in.',
  'landing.open': 'Open the console',
  'landing.wrong': 'That admin token is not right.',
  'landing.empty': 'Enter the admin token.',
  'landing.signout': 'Sign out',

  'dash.title': 'Console',
  'dash.nav.overview': 'Overview',
  'dash.nav.keys': 'Keys',
  'dash.nav.tokens': 'Tokens',
  'dash.nav.providers': 'Providers',
  'dash.nav.requests': 'Requests',
  'dash.nav.settings': 'Settings',
  'dash.signout': 'Sign out',
  'dash.expired': 'Your session has ended. Sign in again.',
  'dash.later': 'This page comes in a later release. The admin API already serves it: {path}.',
  'dash.refresh': 'Refresh',
  'dash.updated': 'Updated {time}',
  'dash.paused': 'Auto refresh paused while the tab is hidden',

  'ov.keys': 'Keys',
  'ov.tokens': 'Client tokens',
  'ov.requestsToday': 'Requests (24 h)',
  'ov.successRate': 'Success rate (24 h)',
  'ov.tokensUsed': 'Tokens used (24 h)',
  'ov.vsPrev': '{delta} vs previous period',
  'ov.noPrev': 'no earlier traffic',
  'ov.newIn': '{n} new in 24 h',
  'ov.activeTokens': '{n} active',
  'ov.trend': 'Request trend',
  'ov.success': 'Success',
  'ov.clientError': 'Client error',
  'ov.failed': 'Failed',
  'ov.topModels': 'Top models',
  'ov.topKeys': 'Top keys',
  'ov.topTokens': 'Top tokens',
  'ov.none': 'Nothing yet',
  'ov.requests': '{n} requests',
  'ov.chartLabel': 'Requests per bucket: success, client error and failed',

  'state.active': 'Active',
  'state.cooling': 'Cooling',
  'state.failed': 'Failed',
  'state.disabled': 'Disabled',
  'state.expired': 'Expired',
  'state.all': 'All states',

  'keys.search': 'Search label, id prefix or whole key',
  'keys.provider': 'Provider',
  'keys.allProviders': 'All providers',
  'keys.state': 'State',
  'keys.col.label': 'Label',
  'keys.col.key': 'Key',
  'keys.col.provider': 'Provider',
  'keys.col.state': 'State',
  'keys.col.requests': 'Requests',
  'keys.col.success': 'Success',
  'keys.col.lastUsed': 'Last used',
  'keys.col.actions': 'Actions',
  'keys.enable': 'Enable',
  'keys.disable': 'Disable',
  'keys.delete': 'Delete',
  'keys.copyId': 'Copy id',
  'keys.confirmDelete': 'Delete the key {key}? This cannot be undone.',
  'keys.deleted': 'Key deleted',
  'keys.enabled': 'Key enabled',
  'keys.disabled': 'Key disabled for an hour',
  'keys.empty': 'No key matches.',
  'keys.total': '{n} keys',
  'keys.one': '1 key',
  'keys.until': 'until {time}',
  'keys.noLabel': '(no label)',

  'tok.name': 'Name',
  'tok.expires': 'Expires in (days, empty: never)',
  'tok.create': 'Create token',
  'tok.shownOnce': 'Copy the token now: it is shown only once.',
  'tok.copy': 'Copy',
  'tok.copied': 'Copied',
  'tok.col.name': 'Name',
  'tok.col.prefix': 'Token',
  'tok.col.requests': 'Requests',
  'tok.col.expires': 'Expires',
  'tok.col.created': 'Created',
  'tok.revoke': 'Revoke',
  'tok.confirmRevoke': 'Revoke the token {name}? Clients using it stop working at once.',
  'tok.revoked': 'Token revoked',
  'tok.never': 'never',
  'tok.empty': 'No client token yet.',
  'tok.search': 'Search by name',

  'prov.col.name': 'Provider',
  'prov.col.kind': 'Kind',
  'prov.col.enabled': 'Enabled',
  'prov.col.keys': 'Keys',
  'prov.yes': 'Yes',
  'prov.no': 'No',

  'common.prev': 'Previous',
  'common.next': 'Next',
  'common.page': 'Page {page} of {pages}',
  'common.pageSize': 'Per page',
  'common.loading': 'Loading…',
  'common.error': 'Something went wrong: {message}',
  'common.cancel': 'Cancel',
  'common.never': 'never',
  'common.justNow': 'just now',
  'common.minutesAgo': '{n} min ago',
  'common.hoursAgo': '{n} h ago',
  'common.daysAgo': '{n} d ago',

  'stats.title': 'Public statistics',
  'stats.lead': 'Traffic through this gateway. Refreshed every 30 seconds.',
  'stats.total': 'Requests (all time)',
  'stats.today': 'Requests today',
  'stats.rate': 'Success rate',
  'stats.tokens': 'Tokens used',
  'stats.trend': 'Requests, last 24 hours',
  'stats.topModels': 'Top models, last 24 hours',
  'stats.generated': 'Generated {time}',
  'stats.col.model': 'Model',
  'stats.col.requests': 'Requests',
  'stats.col.tokens': 'Tokens',

  'req.find': 'Find a request by id',
  'req.findHint': 'Paste the x-request-id from a client’s error',
  'req.findGo': 'Find',
  'req.status': 'Status',
  'req.statusHint': 'One status (404) or a class (5xx)',
  'req.outcome': 'Outcome',
  'req.allOutcomes': 'All outcomes',
  'req.model': 'Model',
  'req.token': 'Token',
  'req.allTokens': 'All tokens',
  'req.key': 'Key id (any attempt)',
  'req.from': 'From',
  'req.to': 'To',
  'req.apply': 'Apply filters',
  'req.reset': 'Clear',
  'req.more': 'Load more',
  'req.empty': 'No request matches.',
  'req.table': 'Logged requests',
  'req.disabled': 'The request log is off (request_log.retention_days = 0): nothing is recorded.',
  'req.shown': '{n} shown',
  'req.stream': 'stream',
  'req.ms': '{n} ms',
  'req.copy': 'Copy',
  'req.copyId': 'Copy the request id',
  'req.attempts': '{n} attempts',
  'req.attempt1': '1 attempt',
  'req.noAttempts': 'none',
  'req.col.time': 'Time',
  'req.col.provider': 'Provider',
  'req.col.model': 'Model',
  'req.col.token': 'Token',
  'req.col.status': 'Status',
  'req.col.outcome': 'Outcome',
  'req.col.latency': 'Latency',
  'req.col.tokens': 'Tokens (in / out)',
  'req.col.id': 'Request id',
  'req.col.attempts': 'Attempts',
  'outcome.success': 'Success',
  'outcome.cached': 'Cached',
  'outcome.client_error': 'Client error',
  'outcome.rejected': 'Rejected',
  'outcome.no_key': 'No key',
  'outcome.failed': 'Failed',
  'outcome.rate_limited': 'Rate limited',
  'outcome.auth_error': 'Key refused',
  'outcome.server_error': 'Server error',
  'outcome.timeout': 'Timeout',
  'outcome.network': 'Network error',
  'outcome.model_missing': 'Model missing',
  'outcome.stream_error': 'Stream broke',
  'outcome.cancelled': 'Cancelled',
};

const zh = {
  'app.name': 'ollama-pool',
  'nav.skip': '跳到正文',
  'nav.home': '首页',
  'nav.dashboard': '控制台',
  'nav.stats': '公开统计',
  'pref.language': '语言',
  'pref.theme': '主题',
  'theme.auto': '跟随系统',
  'theme.light': '浅色',
  'theme.dark': '深色',

  'landing.title': '大模型 API Key 池网关',
  'landing.lead': 'ollama-pool 把请求分摊到一组上游 API Key（Ollama 云、OpenRouter、任意 OpenAI 兼容服务），自动摘下故障的 Key 并在恢复后放回，并统计每一个请求。客户端用普通的 OpenAI 或 Ollama 库和客户端 Token 即可调用。',
  'landing.endpoints': '接口',
  'landing.ep.chat': 'OpenAI 对话补全',
  'landing.ep.models': '模型列表',
  'landing.ep.native': 'Ollama 原生对话',
  'landing.ep.health': '健康检查',
  'landing.ep.stats': '公开统计（JSON）',
  'landing.signin': '管理员登录',
  'landing.signin.help': '输入管理员 Token。它会换成一个会话 Cookie，本页面不会保存 Token。',
  'landing.token': '管理员 Token',
  'landing.token.hint': '首次启动时打印一次，或通过 POOL_ADMIN_TOKEN 设置。',
  'landing.submit': '登录',
  'landing.signedin': '你已登录。',
  'landing.open': '进入控制台',
  'landing.wrong': '管理员 Token 不正确。',
  'landing.empty': '请输入管理员 Token。',
  'landing.signout': '退出登录',

  'dash.title': '控制台',
  'dash.nav.overview': '概览',
  'dash.nav.keys': 'API Key',
  'dash.nav.tokens': '客户端 Token',
  'dash.nav.providers': '服务提供方',
  'dash.nav.requests': '请求日志',
  'dash.nav.settings': '设置',
  'dash.signout': '退出登录',
  'dash.expired': '会话已结束，请重新登录。',
  'dash.later': '此页面将在后续版本提供。管理 API 已可使用：{path}。',
  'dash.refresh': '刷新',
  'dash.updated': '更新于 {time}',
  'dash.paused': '标签页隐藏时暂停自动刷新',

  'ov.keys': 'API Key',
  'ov.tokens': '客户端 Token',
  'ov.requestsToday': '请求数（24 小时）',
  'ov.successRate': '成功率（24 小时）',
  'ov.tokensUsed': 'Token 用量（24 小时）',
  'ov.vsPrev': '较上一周期 {delta}',
  'ov.noPrev': '上一周期无流量',
  'ov.newIn': '24 小时内新增 {n} 个',
  'ov.activeTokens': '{n} 个有效',
  'ov.trend': '请求趋势',
  'ov.success': '成功',
  'ov.clientError': '客户端错误',
  'ov.failed': '失败',
  'ov.topModels': '热门模型',
  'ov.topKeys': '热门 Key',
  'ov.topTokens': '热门 Token',
  'ov.none': '暂无数据',
  'ov.requests': '{n} 次请求',
  'ov.chartLabel': '每个时间段的请求数：成功、客户端错误和失败',

  'state.active': '正常',
  'state.cooling': '冷却中',
  'state.failed': '校验失败',
  'state.disabled': '已禁用',
  'state.expired': '已过期',
  'state.all': '全部状态',

  'keys.search': '搜索标签、ID 前缀或完整 Key',
  'keys.provider': '提供方',
  'keys.allProviders': '全部提供方',
  'keys.state': '状态',
  'keys.col.label': '标签',
  'keys.col.key': 'Key',
  'keys.col.provider': '提供方',
  'keys.col.state': '状态',
  'keys.col.requests': '请求数',
  'keys.col.success': '成功率',
  'keys.col.lastUsed': '最近使用',
  'keys.col.actions': '操作',
  'keys.enable': '启用',
  'keys.disable': '禁用',
  'keys.delete': '删除',
  'keys.copyId': '复制 ID',
  'keys.confirmDelete': '确定删除 Key {key}？此操作无法撤销。',
  'keys.deleted': 'Key 已删除',
  'keys.enabled': 'Key 已启用',
  'keys.disabled': 'Key 已禁用一小时',
  'keys.empty': '没有匹配的 Key。',
  'keys.total': '共 {n} 个 Key',
  'keys.one': '共 1 个 Key',
  'keys.until': '至 {time}',
  'keys.noLabel': '（无标签）',

  'tok.name': '名称',
  'tok.expires': '有效期（天，留空为永久）',
  'tok.create': '创建 Token',
  'tok.shownOnce': '请立即复制：Token 只显示这一次。',
  'tok.copy': '复制',
  'tok.copied': '已复制',
  'tok.col.name': '名称',
  'tok.col.prefix': 'Token',
  'tok.col.requests': '请求数',
  'tok.col.expires': '到期',
  'tok.col.created': '创建于',
  'tok.revoke': '吊销',
  'tok.confirmRevoke': '确定吊销 Token {name}？使用它的客户端会立即失效。',
  'tok.revoked': 'Token 已吊销',
  'tok.never': '永久',
  'tok.empty': '还没有客户端 Token。',
  'tok.search': '按名称搜索',

  'prov.col.name': '提供方',
  'prov.col.kind': '类型',
  'prov.col.enabled': '启用',
  'prov.col.keys': 'Key 数',
  'prov.yes': '是',
  'prov.no': '否',

  'common.prev': '上一页',
  'common.next': '下一页',
  'common.page': '第 {page} / {pages} 页',
  'common.pageSize': '每页',
  'common.loading': '加载中…',
  'common.error': '出错了：{message}',
  'common.cancel': '取消',
  'common.never': '从未',
  'common.justNow': '刚刚',
  'common.minutesAgo': '{n} 分钟前',
  'common.hoursAgo': '{n} 小时前',
  'common.daysAgo': '{n} 天前',

  'stats.title': '公开统计',
  'stats.lead': '经过本网关的流量，每 30 秒刷新一次。',
  'stats.total': '总请求数',
  'stats.today': '今日请求',
  'stats.rate': '成功率',
  'stats.tokens': 'Token 用量',
  'stats.trend': '最近 24 小时请求',
  'stats.topModels': '最近 24 小时热门模型',
  'stats.generated': '生成于 {time}',
  'stats.col.model': '模型',
  'stats.col.requests': '请求数',
  'stats.col.tokens': 'Token',

  'req.find': '按请求 ID 查找',
  'req.findHint': '粘贴客户端错误中的 x-request-id',
  'req.findGo': '查找',
  'req.status': '状态码',
  'req.statusHint': '单个状态码（404）或一类（5xx）',
  'req.outcome': '结果',
  'req.allOutcomes': '全部结果',
  'req.model': '模型',
  'req.token': 'Token',
  'req.allTokens': '全部 Token',
  'req.key': 'Key ID（任一次尝试）',
  'req.from': '开始时间',
  'req.to': '结束时间',
  'req.apply': '应用筛选',
  'req.reset': '清除',
  'req.more': '加载更多',
  'req.empty': '没有匹配的请求。',
  'req.table': '已记录的请求',
  'req.disabled': '请求日志已关闭（request_log.retention_days = 0），不记录任何请求。',
  'req.shown': '已显示 {n} 条',
  'req.stream': '流式',
  'req.ms': '{n} 毫秒',
  'req.copy': '复制',
  'req.copyId': '复制请求 ID',
  'req.attempts': '{n} 次尝试',
  'req.attempt1': '1 次尝试',
  'req.noAttempts': '无',
  'req.col.time': '时间',
  'req.col.provider': '提供方',
  'req.col.model': '模型',
  'req.col.token': 'Token',
  'req.col.status': '状态码',
  'req.col.outcome': '结果',
  'req.col.latency': '延迟',
  'req.col.tokens': 'Token（输入 / 输出）',
  'req.col.id': '请求 ID',
  'req.col.attempts': '尝试',
  'outcome.success': '成功',
  'outcome.cached': '缓存命中',
  'outcome.client_error': '客户端错误',
  'outcome.rejected': '已拒绝',
  'outcome.no_key': '无可用 Key',
  'outcome.failed': '失败',
  'outcome.rate_limited': '限流',
  'outcome.auth_error': 'Key 被拒',
  'outcome.server_error': '服务端错误',
  'outcome.timeout': '超时',
  'outcome.network': '网络错误',
  'outcome.model_missing': '模型缺失',
  'outcome.stream_error': '流中断',
  'outcome.cancelled': '已取消',
};

// Pages with many strings keep them in a module of their own under strings/.
for (const part of [settings, docs]) {
  Object.assign(en, part.en);
  Object.assign(zh, part.zh);
}

export const dictionaries = { en, 'zh-CN': zh };
const listeners = [];

export function lang() {
  const current = document.documentElement.getAttribute('lang');
  return current === 'zh-CN' ? 'zh-CN' : 'en';
}

export function t(key, vars) {
  const table = dictionaries[lang()];
  let text = table[key] ?? en[key] ?? key;
  if (vars) {
    text = text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
  }
  return text;
}

export function translate(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.setAttribute('title', t(el.dataset.i18nTitle));
}

export function setLang(next) {
  const value = next === 'zh-CN' ? 'zh-CN' : 'en';
  document.documentElement.setAttribute('lang', value);
  try { localStorage.setItem('pool.lang', value); } catch { /* storage may be off */ }
  translate();
  for (const fn of listeners) fn(value);
}

export function onLangChange(fn) {
  listeners.push(fn);
}

export function number(n) {
  return new Intl.NumberFormat(lang()).format(n ?? 0);
}

export function percent(ratio) {
  if (ratio == null || Number.isNaN(ratio)) return '—';
  return new Intl.NumberFormat(lang(), { style: 'percent', maximumFractionDigits: 1 }).format(ratio);
}

export function dateTime(iso) {
  if (!iso) return t('common.never');
  return new Intl.DateTimeFormat(lang(), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
}

export function ago(iso) {
  if (!iso) return t('common.never');
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return t('common.justNow');
  if (s < 3600) return t('common.minutesAgo', { n: Math.floor(s / 60) });
  if (s < 86400) return t('common.hoursAgo', { n: Math.floor(s / 3600) });
  return t('common.daysAgo', { n: Math.floor(s / 86400) });
}
