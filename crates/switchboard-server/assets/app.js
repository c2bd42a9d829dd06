// Switchboard's one browser script. The server renders pages; this module adds what needs a
// script: the chat's event stream (fetch + a small SSE parser, so an own key can go in a
// request header), the composer, message actions, the model picker, dialogs and the drawer.
// Data comes from the page's <script type="application/json" id="sb-data"> block.

const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => [...r.querySelectorAll(s)];
const DATA = JSON.parse($('#sb-data').textContent);
const CFG = DATA.config || {};
const t = (k, vars = {}) => Object.entries(vars).reduce((s, [n, v]) => s.replace(`{${n}}`, v), DATA.i18n[k] ?? k);
const ls = {
  get: (k, d = '') => { try { return localStorage.getItem('sb_' + k) ?? d; } catch { return d; } },
  set: (k, v) => { try { v === '' || v == null ? localStorage.removeItem('sb_' + k) : localStorage.setItem('sb_' + k, v); } catch {} },
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const VENDORS = 'openai anthropic google gemma mistral xai meta deepseek qwen moonshot openrouter cohere nvidia microsoft amazon zhipu minimax mock other'.split(' ');
const SVGNS = 'http://www.w3.org/2000/svg';

/** Build an element: h('p', {class: 'x'}, 'text', child). Text is never parsed as HTML. */
function h(tag, attrs = {}, ...kids) {
  const el = tag === 'svg' || tag === 'use' ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c);
  return el;
}
const icon = (name, cls = 'i') => h('svg', { class: cls, 'aria-hidden': 'true' }, h('use', { href: `${DATA.icons}#${name}` }));

function authHeaders(extra = {}) {
  const key = CFG.hideUserApiKey ? '' : ls.get('key');
  if (key) {
    extra['X-Switchboard-User-Key'] = key;
    const ep = ls.get('endpoint');
    if (ep) extra['X-Switchboard-Endpoint'] = ep;
  }
  return extra;
}

async function api(method, url, body) {
  const opts = { method, headers: authHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
  if (body !== undefined) opts.body = typeof body === 'string' ? body : JSON.stringify(body);
  const r = await fetch(url, opts);
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error.message || msg; } catch {}
    // The server explains in English; the page says what happened in its own language first.
    const said = DATA.i18n['http_' + r.status];
    if (said && DATA.lang !== 'en') msg = `${said} (${msg})`;
    throw Object.assign(new Error(msg), { status: r.status });
  }
  return r.status === 204 ? null : r.json();
}

function setCookie(name, value) {
  document.cookie = `${name}=${encodeURIComponent(value)}; Path=/; Max-Age=31536000; SameSite=Lax`;
}

function applyTheme() {
  const theme = ls.get('theme') || document.documentElement.dataset.theme || 'system';
  document.documentElement.dataset.theme = theme;
}

function download(name, type, text) {
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

async function copyText(text) {
  try { await navigator.clipboard.writeText(text); return; } catch {}
  const ta = h('textarea', {}, text);
  document.body.append(ta);
  ta.select();
  document.execCommand('copy');
  ta.remove();
}

// ---------------------------------------------------------------- login page
function initLogin() {
  const form = $('#login-form');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/api/login', { code: $('#login-code').value });
      location.reload();
    } catch {
      $('#login-error').hidden = false;
      $('#login-code').select();
    }
  });
}

// ---------------------------------------------------------------- chat page state
const chat = DATA.chat;
const msgs = new Map();
let lastEvent = 0;
let models = null; // the /api/models list, fetched once
let defaultModel = '';
let images = [];
let docs = []; // attached PDFs and text files: {name, data_url}
const log = $('#log');

const isStreaming = () => [...msgs.values()].some((m) => m.status === 'streaming');
const currentModel = () => chat.settings?.model || defaultModel;

// Numbers as the page's language writes them (Danish: a decimal comma).
const num = (v, digits) => new Intl.NumberFormat(DATA.lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v);

function thinkLabel(m) {
  if (m.status === 'streaming' && !m.content) return t('thinking');
  let ms = m._thinkMs;
  if (ms == null) {
    // From the first reasoning token to the first answer token, as stored (survives a reload).
    const end = m.reasoning_ended_at ?? m.finished_at;
    const start = m.first_token_at ?? m.created_at;
    if (end != null && start) ms = Math.max(0, end - start);
  }
  return ms == null ? t('thinking_done') : t('thought_for', { s: num(ms / 1000, 1) });
}

/** The footer's line: "Stopped · model · 12 + 34 tokens · $0.0012". The one place it is made:
 *  server-rendered messages get theirs from here too (`fillMeta`). */
function meta(m) {
  if (m.role === 'user') return '';
  const parts = [];
  if (m.status === 'stopped' || m.status === 'interrupted') parts.push(t(m.status));
  if (m.model) parts.push(m.model);
  const u = m.usage;
  if (u && u.prompt_tokens != null && u.completion_tokens != null) parts.push(t('tokens', { n: `${u.prompt_tokens} + ${u.completion_tokens}` }));
  if (u && u.cost != null) parts.push('$' + num(Number(u.cost), 4));
  return parts.join(' · ');
}

function prettyArgs(a) {
  if (a == null) return '';
  try { return JSON.stringify(typeof a === 'string' ? JSON.parse(a) : a, null, 2); } catch { return String(a); }
}

/** A tool call, the same markup as templates/message.html. Its result is untrusted text: only
 *  ever set as text, never as HTML. */
function toolCard(c, streaming) {
  const f = c.function || {};
  let state = c.state || '';
  if (!streaming && ['waiting', 'running', 'pending'].includes(state)) state = 'cancelled';
  const asks = state === 'waiting';
  const summary = h('summary', {}, t('tool_call') + ' ', h('code', {}, c.name ?? f.name ?? '?'), state ? ' ' : null, state ? h('span', { class: 'tool-state' }, t('tool_' + state)) : null);
  const card = h('details', { class: 'tool', 'data-state': state, 'data-call': c.id || '', open: asks }, summary, h('pre', { class: 'tool-args' }, prettyArgs(c.arguments ?? f.arguments)));
  if (typeof c.result === 'string') card.append(h('div', { class: 'tool-label' }, t('tool_result')), h('pre', { class: 'tool-result' }, c.result));
  if (asks) {
    const b = (act, label, cls) => h('button', { type: 'button', class: cls, 'data-act': act, 'data-call': c.id }, label);
    card.append(h('div', { class: 'tool-ask', role: 'group', 'aria-label': t('tool_approval') }, b('tool-allow', t('tool_allow'), 'btn primary'), ' ', b('tool-deny', t('tool_deny'), 'btn'), ' ', b('tool-always', t('tool_always'), 'btn')));
  }
  return card;
}

// "Always allow" is remembered by this browser, per server and tool: such calls are approved as
// soon as the page sees them wait.
const alwaysKey = (c) => `always_tool_${c.server || ''}/${c.name || ''}`;
async function decideTool(m, callId, approve) {
  try {
    await api('POST', `/api/chats/${encodeURIComponent(chat.id)}/tool-calls/${encodeURIComponent(callId)}`, { approve });
  } catch (e) {
    // 409: decided elsewhere already; the event stream shows what became of it.
    if (e.status !== 409) note(t('error_generic', { message: e.message }));
  }
}
function autoApprove(m) {
  if (m.status !== 'streaming') return;
  for (const c of m.tool_calls || []) {
    if (c.state === 'waiting' && !c._asked && ls.get(alwaysKey(c))) { c._asked = true; decideTool(m, c.id, true); }
  }
}

const actBtn = (act, label, name) => h('button', { type: 'button', class: 'icon-btn', 'data-act': act, 'aria-label': label, title: label }, icon(name));

/** A message's stored files, the same markup as templates/message.html: generated images shown
 *  (fetched from their cached route), every file downloadable, the rest as chips. */
function renderFiles(files) {
  const isImage = (f) => ['image/png', 'image/jpeg', 'image/gif', 'image/webp'].includes(f.mime);
  return h('div', { class: 'files' }, files.map((f) => isImage(f)
    ? h('figure', { class: 'gen-image' }, h('img', { src: f.url, alt: f.name, loading: 'lazy' }),
      h('figcaption', {}, h('a', { href: f.url + '?download=1', download: f.name }, `${t('download')} ${f.name}`)))
    : h('a', { class: 'file-chip', href: f.url + '?download=1', download: f.name, title: f.mime }, f.name)));
}

/** A reply's error, with what a person can do about it: a 402 that says what the credits afford
 *  offers a retry within it; a 429 says when the limit resets and offers another model (the
 *  chat's first fallback, or a free one from the catalog). */
function errorBox(m) {
  const code = Number(m.error.code);
  let text = m.error.message || '';
  const resets = text.match(/ ?The limit resets at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\./);
  if (resets) text = text.replace(resets[0], '');
  const msg = m.error.code != null ? `${text} (${m.error.code})` : text;
  const box = h('div', { class: 'msg-error', role: 'alert' }, h('span', {}, msg));
  if (resets) box.append(h('span', { class: 'resets' }, t('rate_limit_resets', { time: new Date(resets[1]).toLocaleTimeString() })));
  box.append(' ', h('button', { type: 'button', class: 'btn', 'data-act': 'retry' }, t('retry')));
  const afford = code === 402 && text.match(/can only afford (\d+)/);
  if (afford && Number(afford[1]) > 0) {
    box.append(' ', h('button', { type: 'button', class: 'btn primary', 'data-act': 'retry-max', 'data-n': afford[1] }, t('retry_max_tokens', { n: afford[1] })));
  }
  if (code === 429) {
    const b = h('button', { type: 'button', class: 'btn primary', 'data-act': 'try-fallback', hidden: true });
    const offer = (model) => { if (model) { b.dataset.model = model; b.textContent = t('try_fallback', { model }); b.hidden = false; } };
    const fallback = (chat.settings?.fallback_models || [])[0];
    if (fallback) offer(fallback);
    else loadModels().then((list) => {
      const current = m.model || currentModel();
      const free = list.filter((x) => x.free && x.id !== current);
      offer((free.find((x) => x.id.endsWith(':free')) || free[0])?.id);
    });
    box.append(' ', b);
  }
  return box;
}

/** One message, the same markup as templates/message.html (a compare column's head is in
 *  templates/chat.html and `layoutCompare`). */
function renderMessage(m) {
  const streaming = m.status === 'streaming';
  const user = m.role === 'user';
  const el = h('article', { class: `msg ${m.role}`, id: `m-${m.id}`, 'data-id': m.id, 'data-seq': m.seq, 'data-status': m.status, 'aria-label': user ? t('you') : t('assistant') });
  if (m.reasoning) {
    const open = streaming && !m.content;
    el.append(h('details', { class: 'thinking', open }, h('summary', {}, thinkLabel(m)), h('div', { class: 'thinking-body' }, m.reasoning)));
  }
  const imgs = (m.attachments || []).filter((s) => typeof s === 'string' && /^data:image\/(png|jpeg|jpg|gif|webp);base64,/.test(s));
  if (imgs.length) el.append(h('div', { class: 'images' }, imgs.map((src) => h('img', { src, alt: t('image') }))));
  const files = (m.files || []).filter((f) => /^\/api\/chats\//.test(f.url || ''));
  if (files.length) el.append(renderFiles(files));
  for (const c of m.tool_calls || []) el.append(toolCard(c, streaming));
  const body = h('div', { class: 'body md' });
  paintBody(body, m);
  el.append(body);
  const cites = (m.annotations || []).map((a) => a.url_citation || a).filter((c) => /^https?:\/\//.test(c.url || ''));
  if (cites.length) el.append(h('ol', { class: 'citations', 'aria-label': t('sources') }, cites.map((c) => h('li', {}, h('a', { href: c.url, target: '_blank', rel: 'noopener noreferrer nofollow' }, c.title || c.url)))));
  if (m.error) el.append(errorBox(m));
  el.append(h('footer', { class: 'msg-foot' }, branchNav(m), h('span', { class: 'meta' }, meta(m)), h('span', { class: 'acts' },
    actBtn('copy', t('copy'), 'copy'),
    user ? actBtn('edit', t('edit'), 'edit') : actBtn('retry', t('regenerate'), 'redo'),
    actBtn('fork', t('fork'), 'fork'),
    actBtn('delete', t('delete'), 'trash'))));
  localize(el);
  return el;
}

/** How much of `m.content` its `html` renders: all of it as the server sent it; while streaming,
 *  the text `liveRender` last had rendered. */
function settle(m) {
  m._rendered ??= m.html ? (m.content || '').length : 0;
  return m;
}

/** A message's body: the server's rendering of its text (for a streaming reply, of the text so
 *  far), then, as plain text, whatever arrived after that rendering. */
function paintBody(body, m) {
  if (m.html) body.innerHTML = m.html; // rendered and sanitized by the server
  else body.replaceChildren();
  const rest = (m.content || '').slice(m.html ? m._rendered ?? 0 : 0);
  if (rest || m.status === 'streaming') {
    // Inside the last paragraph, where the words continue, until the next rendering.
    const last = body.lastElementChild;
    if (last?.tagName === 'P') last.append(h('span', { class: 'plain tail' }, rest));
    else body.append(h('p', { class: 'plain tail' }, rest));
  }
  localize(body);
}

// A streaming reply's text goes to the server's renderer (the one that renders stored messages)
// at most this often, and its HTML replaces the plain text shown so far.
const RENDER_EVERY = 250;
async function liveRender(m) {
  if (m._rendering) return;
  m._rendering = true;
  try {
    while (msgs.get(m.id) === m && m.status === 'streaming' && m._rendered < m.content.length) {
      const text = m.content;
      const r = await api('POST', '/api/render', { markdown: text });
      // A `done` or `message` event replaced the message meanwhile: its HTML is newer.
      if (msgs.get(m.id) !== m) break;
      m.html = r.html;
      m._rendered = text.length;
      const body = $(`#m-${CSS.escape(m.id)} .body`);
      if (body) {
        const stick = nearBottom();
        paintBody(body, m);
        if (stick) toBottom();
      }
      await sleep(RENDER_EVERY);
    }
  } catch {
    // The plain text stays; `done` brings the rendering.
  }
  m._rendering = false;
}

function fillMeta(root) {
  for (const el of $$('article.msg', root)) {
    const m = msgs.get(el.dataset.id);
    const span = m && $('.meta', el);
    if (span) span.textContent = meta(m);
  }
}

function localize(root) {
  for (const b of $$('.copy-code', root)) { b.textContent = t('copy'); b.setAttribute('aria-label', t('copy')); }
}

function nearBottom() {
  const s = $('#messages');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
}
function toBottom() { const s = $('#messages'); s.scrollTop = s.scrollHeight; }

/** Insert or replace a message in seq order. */
function upsert(m) {
  settle(m);
  const old = msgs.get(m.id);
  if (old && old._thinkMs != null && m._thinkMs == null) m._thinkMs = old._thinkMs;
  // Events carry a message without its branches; the page's last view of them stays.
  if (old && !m.siblings?.length && old.siblings?.length) m.siblings = old.siblings;
  msgs.set(m.id, m);
  const stick = nearBottom();
  const el = renderMessage(m);
  const existing = document.getElementById(`m-${m.id}`);
  if (existing) existing.replaceWith(el);
  else {
    const after = $$('article.msg', log).find((a) => Number(a.dataset.seq) > m.seq);
    log.insertBefore(el, after?.closest('#compare') || after || null);
  }
  $('#empty').hidden = msgs.size > 0;
  markAlternative(m);
  layoutCompare();
  updateBusy();
  if (stick) toBottom();
  updateJump();
}

function updateBusy() {
  const busy = isStreaming();
  // Stop vanishes when the reply ends: its focus goes to the composer, not to the page.
  const stopFocused = document.activeElement === $('#stop');
  $('#send').hidden = busy;
  $('#stop').hidden = !busy;
  if (stopFocused && !busy) input().focus();
}

// ---------------------------------------------------------------- event stream
const handlers = {
  message: (d) => {
    upsert(d.message);
    // The turn after a compare: its other columns leave the page, the chosen one stays.
    if (d.message.role === 'user' && alternatives.size) refreshPath();
  },
  done: (d) => upsert(d.message),
  delta: (d) => {
    const m = msgs.get(d.message_id);
    if (!m) return;
    const now = Date.now();
    if (d.reasoning) { m.reasoning = (m.reasoning || '') + d.reasoning; m._thinkStart ??= now; }
    if (d.content) {
      if (!m.content && m._thinkStart != null && m._thinkMs == null) m._thinkMs = now - m._thinkStart;
      m.content = (m.content || '') + d.content;
    }
    m._firstAt ??= now;
    const el = document.getElementById(`m-${m.id}`);
    const details = el && $('.thinking', el);
    if (!el || (m.reasoning && !details)) return upsert(m);
    if (alternatives.size) columnStats(m);
    const stick = nearBottom();
    if (d.reasoning) $('.thinking-body', el).textContent = m.reasoning;
    if (d.content) {
      let tail = $('.body .tail', el);
      if (!tail) $('.body', el).append((tail = h('p', { class: 'plain tail' })));
      tail.textContent = m.content.slice(m.html ? m._rendered : 0);
      liveRender(m);
      if (details && details.open && !details.dataset.touched) details.open = false;
      if (details) $('summary', details).textContent = thinkLabel(m);
    }
    if (stick) toBottom();
  },
  tool_calls: (d) => { const m = msgs.get(d.message_id); if (m) { m.tool_calls = d.tool_calls; upsert(m); autoApprove(m); } },
  // The card comes with the `tool_calls` event; a decision shows as the next state.
  tool_approval: () => {},
  tool_decision: () => {},
  annotations: (d) => { const m = msgs.get(d.message_id); if (m) { m.annotations = d.annotations; upsert(m); } },
  deleted: (d) => {
    for (const id of d.message_ids || []) { msgs.delete(id); document.getElementById(`m-${id}`)?.remove(); }
    $('#empty').hidden = msgs.size > 0;
    renderWelcome();
    updateBusy();
  },
  // The active path moved (an edit, a regenerate, a select here or on another device): the
  // server's view says what the path and its branches are now.
  branch: () => refreshPath(),
  chat: (d) => {
    if (d.title != null) setTitle(d.title);
    if (d.settings) { chat.settings = d.settings; showModel(); }
  },
};

function dispatch(ev) {
  if (ev.id != null) {
    const id = Number(ev.id);
    if (id <= lastEvent) return; // already seen (a resume may repeat the edge)
    lastEvent = id;
  }
  let data;
  try { data = JSON.parse(ev.data.join('\n')); } catch { return; }
  handlers[ev.event || 'message']?.(data);
}

// The event stream of the chat on screen; switching chats aborts it and follows the next one.
let following = null;
async function subscribe() {
  following?.abort();
  if (!chat.id) return; // a new chat, not stored until its first message
  const ctrl = new AbortController();
  following = ctrl;
  let backoff = 500;
  for (;;) {
    try {
      const r = await fetch(`/api/chats/${encodeURIComponent(chat.id)}/events?after=${lastEvent}`, { headers: authHeaders({ Accept: 'text/event-stream' }), signal: ctrl.signal });
      if (r.status === 404 || r.status === 401) return;
      if (!r.ok) throw new Error(String(r.status));
      backoff = 500;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      let ev = { data: [] };
      for (;;) {
        const { value, done } = await reader.read();
        if (done || ctrl.signal.aborted) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          let line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (line === '') { if (ev.data.length && !ctrl.signal.aborted) dispatch(ev); ev = { data: [] }; continue; }
          if (line[0] === ':') continue;
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let v = c < 0 ? '' : line.slice(c + 1);
          if (v[0] === ' ') v = v.slice(1);
          if (field === 'data') ev.data.push(v);
          else if (field === 'event') ev.event = v;
          else if (field === 'id') ev.id = v;
        }
      }
    } catch {}
    if (ctrl.signal.aborted) return;
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 5000);
  }
}

// ---------------------------------------------------------------- branches and compare
// A chat is a tree: `siblings` lists the branches at a message, and a select makes one the
// active path. A compare is one turn answered by several models: replies stored together under
// one user message. The one on the path and the others (`alternatives`) show as columns.
const alternatives = new Set();
let compareTab = null;
let compareOn = false;
let comparePicked = (ls.get('compare_models') || '').split('\n').filter(Boolean);

/** The `‹ 2 / 3 ›` switch, the same markup as templates/message.html. */
function branchNav(m) {
  const sibs = m.siblings || [];
  const at = sibs.findIndex((s) => s.id === m.id);
  if (sibs.length < 2 || at < 0) return null;
  const b = (to, label, text) => h('button', { type: 'button', class: 'icon-btn', 'data-act': 'branch', 'data-to': to, disabled: !to, 'aria-label': label }, text);
  return h('span', { class: 'branch', role: 'group', 'aria-label': t('branches') },
    b(sibs[at - 1]?.id, t('branch_prev'), '‹'), h('span', { class: 'branch-pos' }, `${at + 1} / ${sibs.length}`), b(sibs[at + 1]?.id, t('branch_next'), '›'));
}

/** A reply stored in one turn with an earlier one (same parent, same time) is a compare column. */
function markAlternative(m) {
  if (m.role !== 'assistant' || alternatives.has(m.id)) return;
  const first = [...msgs.values()].find((o) => o.id !== m.id && o.role === 'assistant' && o.parent_id === m.parent_id && o.created_at === m.created_at && o.seq < m.seq && !alternatives.has(o.id));
  if (first) alternatives.add(m.id);
}

/** The compare's replies in seq order: the one on the path and its alternatives. */
function compareGroup() {
  const alts = [...alternatives].map((id) => msgs.get(id)).filter(Boolean);
  if (!alts.length) return [];
  const parent = alts[0].parent_id;
  return [...msgs.values()].filter((m) => m.role === 'assistant' && m.parent_id === parent && m.created_at === alts[0].created_at).sort((a, b) => a.seq - b.seq);
}

const secs = (ms) => (Math.max(0, ms) / 1000).toFixed(1);
function statsText(m) {
  const parts = [];
  const first = m.first_token_at ?? m._firstAt;
  if (first != null) parts.push(t('ttft', { s: secs(first - m.created_at) }));
  if (m.finished_at != null) parts.push(t('total_time', { s: secs(m.finished_at - m.created_at) }));
  const u = m.usage;
  if (u && u.completion_tokens != null) parts.push(t('tokens', { n: u.completion_tokens }));
  if (u && u.cost != null) parts.push('$' + Number(u.cost).toFixed(4));
  return parts.join(' · ');
}
function columnStats(m) {
  const s = document.querySelector(`#compare .col[data-id="${CSS.escape(m.id)}"] .col-stats`);
  if (s) s.textContent = statsText(m);
}

/** Puts the compare's replies side by side (tabs on narrow screens), or back in the log. */
function layoutCompare() {
  const group = compareGroup();
  let box = $('#compare');
  if (group.length < 2) {
    if (box) { for (const a of $$('article.msg', box)) box.before(a); box.remove(); }
    return;
  }
  if (!box) {
    box = h('div', { id: 'compare', class: 'compare' });
    const firstEl = document.getElementById(`m-${group[0].id}`);
    log.insertBefore(box, firstEl || null);
  }
  if (!group.some((m) => m.id === compareTab)) compareTab = (group.find((m) => !alternatives.has(m.id)) || group[0]).id;
  const tabs = h('div', { class: 'compare-tabs', role: 'tablist' }, group.map((m) => h('button', {
    type: 'button', role: 'tab', class: 'col-tab', 'data-for': m.id, 'aria-selected': String(m.id === compareTab),
  }, m.model || '?')));
  const cols = group.map((m) => {
    const onPath = !alternatives.has(m.id);
    const head = h('div', { class: 'col-head' },
      h('strong', { class: 'col-model' }, m.model || '?'),
      h('span', { class: 'col-stats' }, statsText(m)),
      m.status === 'streaming' ? h('button', { type: 'button', class: 'btn', 'data-act': 'stop-one' }, t('stop_this')) : null,
      onPath ? h('span', { class: 'badge' }, t('selected_branch')) : h('button', { type: 'button', class: 'btn primary', 'data-act': 'continue' }, t('continue_with_this')));
    const col = h('div', { class: `col${onPath ? ' selected' : ''}${m.id === compareTab ? ' on' : ''}`, 'data-id': m.id, role: 'tabpanel' }, head);
    const el = document.getElementById(`m-${m.id}`);
    if (el) col.append(el);
    return col;
  });
  for (const tab of tabs.children) {
    tab.addEventListener('click', () => { compareTab = tab.dataset.for; layoutCompare(); });
  }
  box.replaceChildren(tabs, h('div', { class: `compare-grid cols-${group.length}` }, cols));
}

/** Takes the server's view of the chat (after a select, or on a `branch` event): what is on the
 *  path, the branches at each message and the compare's columns. Text a running reply streamed
 *  here already is kept. */
function applyView(view) {
  if (!view) return;
  const shown = [...(view.messages || []), ...(view.alternatives || [])];
  const keep = new Set(shown.map((m) => m.id));
  // Without more pages the view is the whole path: whatever it lacks is off the path now (an edit
  // of the first message moves the path to a later seq). With more, older pages stay as loaded.
  const from = view.has_more && view.messages?.length ? view.messages[0].seq : -Infinity;
  for (const [id, m] of msgs) {
    if (!keep.has(id) && m.seq >= from) { msgs.delete(id); document.getElementById(`m-${id}`)?.remove(); }
  }
  alternatives.clear();
  for (const m of view.alternatives || []) alternatives.add(m.id);
  for (const m of shown) {
    const local = msgs.get(m.id);
    if (local && local.status === 'streaming' && m.status === 'streaming' && (local.content || '').length > (m.content || '').length) {
      local.siblings = m.siblings;
      upsert(local);
    } else upsert(m);
  }
  layoutCompare();
  $('#empty').hidden = msgs.size > 0;
  updateBusy();
}

async function refreshPath() {
  try { applyView(await api('GET', `/api/chats/${encodeURIComponent(chat.id)}`)); } catch {}
}

function renderCompareMenu() {
  const q = $('#compare-q').value.toLowerCase().split(/\s+/).filter(Boolean);
  const list = (models || []).filter((m) => comparePicked.includes(m.id) || q.every((w) => `${m.id} ${m.display_name}`.toLowerCase().includes(w)));
  $('#compare-list').replaceChildren(...list.slice(0, 50).map((m) => h('li', {}, h('label', {},
    h('input', { type: 'checkbox', 'data-model': m.id, checked: comparePicked.includes(m.id), disabled: !comparePicked.includes(m.id) && comparePicked.length >= 4 }), ' ', m.display_name || m.id))));
}

function showCompare() {
  const btn = $('#compare-btn');
  btn.setAttribute('aria-pressed', String(compareOn));
  btn.classList.toggle('on', compareOn);
  btn.textContent = compareOn ? t('compare_count', { n: comparePicked.length }) : t('compare');
}

function initCompare() {
  const btn = $('#compare-btn');
  const menu = $('#compare-menu');
  btn.addEventListener('click', async () => {
    const open = menu.hidden;
    if (open) { await loadModels(); renderCompareMenu(); compareOn = true; }
    else if (comparePicked.length < 2) compareOn = false;
    menu.hidden = !open;
    btn.setAttribute('aria-expanded', String(open));
    showCompare();
    if (open) $('#compare-q').focus();
  });
  $('#compare-q').addEventListener('input', renderCompareMenu);
  menu.addEventListener('change', (e) => {
    const id = e.target.dataset?.model;
    if (!id) return;
    comparePicked = e.target.checked ? [...comparePicked, id].slice(0, 4) : comparePicked.filter((x) => x !== id);
    ls.set('compare_models', comparePicked.join('\n'));
    for (const box of $$('input[data-model]', menu)) box.disabled = !box.checked && comparePicked.length >= 4;
    showCompare();
  });
  menu.addEventListener('keydown', (e) => { if (e.key === 'Escape') { menu.hidden = true; btn.setAttribute('aria-expanded', 'false'); btn.focus(); } });
  document.addEventListener('click', (e) => {
    if (!menu.hidden && !menu.contains(e.target) && !btn.contains(e.target)) {
      menu.hidden = true;
      btn.setAttribute('aria-expanded', 'false');
      if (comparePicked.length < 2) { compareOn = false; showCompare(); }
    }
  });
  showCompare();
}

// ---------------------------------------------------------------- messages: actions, history
function note(text) {
  const n = $('#composer-note');
  n.textContent = text || '';
  n.hidden = !text;
}

async function act(name, m, button) {
  const base = `/api/chats/${encodeURIComponent(chat.id)}`;
  try {
    if (name.startsWith('tool-')) {
      const id = button?.dataset.call;
      const call = (m.tool_calls || []).find((c) => c.id === id);
      if (!call) return;
      if (name === 'tool-always') ls.set(alwaysKey(call), '1');
      for (const b of $$('.tool-ask button', button.closest('details'))) b.disabled = true;
      await decideTool(m, id, name !== 'tool-deny');
    } else if (name === 'branch' || name === 'continue') {
      const to = name === 'branch' ? button?.dataset.to : m.id;
      if (to) applyView(await api('POST', `${base}/messages/${encodeURIComponent(to)}/select`, {}));
    } else if (name === 'stop-one') {
      await api('POST', `${base}/messages/${encodeURIComponent(m.id)}/stop`);
    } else if (name === 'copy') await copyText(m.content);
    else if (name === 'retry') {
      // On a user message, regenerate the reply after it; on an assistant message, that one.
      await api('POST', `${base}/messages/${m.id}/regenerate`);
    } else if (name === 'retry-max') {
      // The chat asks for no more than the credits afford from now on, then tries again.
      await saveSettings({ ...chat.settings, max_tokens: Number(button.dataset.n) });
      await api('POST', `${base}/messages/${m.id}/regenerate`);
    } else if (name === 'try-fallback') {
      await api('POST', `${base}/messages/${m.id}/regenerate`, { model: button.dataset.model });
      chat.settings = { ...chat.settings, model: button.dataset.model };
      showModel();
    } else if (name === 'edit') {
      editInPlace(m);
    } else if (name === 'fork') {
      const r = await api('POST', `${base}/fork`, { message_id: m.id });
      await loadSidebarHead();
      await openChat(r.id);
    } else if (name === 'delete') {
      const el = document.getElementById(`m-${m.id}`);
      el.hidden = true;
      undoable(t('message_deleted'), async () => {
        await api('DELETE', `${base}/messages/${m.id}`);
        handlers.deleted({ message_ids: [m.id] });
      }, () => { el.hidden = false; });
    }
  } catch (e) { note(t('error_generic', { message: e.message })); }
}

/** Edit a message in place: a multi-line box where its text was. Ctrl/Cmd+Enter saves (and
 *  replaces what followed it), Escape cancels. */
function editInPlace(m) {
  const el = document.getElementById(`m-${m.id}`);
  if (!el || $('.edit-box', el)) return;
  const body = $('.body', el);
  const box = h('textarea', { class: 'edit-box', 'aria-label': t('edit'), rows: Math.min(12, Math.max(3, m.content.split('\n').length + 1)) }, m.content);
  const close = () => { form.remove(); body.hidden = false; $('button[data-act=edit]', el)?.focus(); };
  const save = async () => {
    const text = box.value;
    if (!text.trim()) return box.focus();
    if (text === m.content) return close();
    try {
      await api('POST', `/api/chats/${encodeURIComponent(chat.id)}/messages/${m.id}/edit`, { content: text });
      form.remove();
      body.hidden = false;
    } catch (e) { note(t('error_generic', { message: e.message })); }
  };
  const form = h('form', { class: 'edit-form', onsubmit: (e) => { e.preventDefault(); save(); } }, box,
    h('div', { class: 'row' }, h('span', { class: 'muted' }, t('edit_hint')), h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'btn', onclick: close }, t('cancel')), h('button', { type: 'submit', class: 'btn primary' }, t('save'))));
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); }
    else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
  });
  body.hidden = true;
  body.after(form);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

// Deletes wait a few seconds behind an Undo button instead of asking first. Leaving the page
// carries them out.
const UNDO_MS = 6000;
let pendingUndo = null;
function undoable(text, commit, restore) {
  flushUndo();
  const toast = $('#toast') || document.body.appendChild(h('div', { id: 'toast', class: 'toast', role: 'status' }));
  const job = { commit, timer: setTimeout(() => flushUndo(), UNDO_MS) };
  pendingUndo = job;
  const undo = h('button', { type: 'button', class: 'btn', onclick: () => {
    clearTimeout(job.timer);
    if (pendingUndo === job) pendingUndo = null;
    toast.hidden = true;
    restore();
  } }, t('undo'));
  toast.replaceChildren(h('span', {}, text), undo);
  toast.hidden = false;
  undo.focus({ preventScroll: true });
}
function flushUndo() {
  const job = pendingUndo;
  if (!job) return;
  pendingUndo = null;
  clearTimeout(job.timer);
  const toast = $('#toast');
  if (toast) toast.hidden = true;
  job.commit().catch((e) => note(t('error_generic', { message: e.message })));
}
addEventListener('pagehide', flushUndo);

let loadingOlder = false;
async function loadOlder() {
  if (loadingOlder || $('#older').hidden) return;
  loadingOlder = true;
  try {
    const first = Math.min(...[...msgs.values()].map((m) => m.seq));
    const r = await api('GET', `/api/chats/${encodeURIComponent(chat.id)}/messages?before_seq=${first}&limit=50`);
    const s = $('#messages');
    const fromBottom = s.scrollHeight - s.scrollTop;
    const frag = document.createDocumentFragment();
    for (const m of r.messages) { msgs.set(m.id, settle(m)); frag.append(renderMessage(m)); }
    log.prepend(frag);
    s.scrollTop = s.scrollHeight - fromBottom;
    $('#older').hidden = !r.has_more;
  } catch (e) { note(t('error_generic', { message: e.message })); }
  loadingOlder = false;
}

// ---------------------------------------------------------------- composer
const input = () => $('#input');
const draftKey = () => 'draft_' + chat.id;

function grow() { const i = input(); i.style.height = 'auto'; i.style.height = Math.min(i.scrollHeight + 2, innerHeight * 0.4) + 'px'; }

async function send() {
  const text = input().value.trim();
  if ((!text && !images.length && !docs.length) || isStreaming()) return;
  const body = { content: text };
  if (chat.settings?.model) body.model = chat.settings.model;
  if (images.length) body.images = images.slice();
  if (docs.length) body.files = docs.slice();
  if (chat.settings?.reasoning_effort) body.reasoning = { effort: chat.settings.reasoning_effort };
  if (compareOn) {
    if (comparePicked.length < 2 || comparePicked.length > 4) { note(t('compare_pick')); return; }
    delete body.model;
    body.models = comparePicked.slice();
  }
  $('#send').disabled = true;
  try {
    if (!chat.id) {
      // A new chat is stored with its first message, so no empty chats pile up.
      const c = await api('POST', '/api/chats', { settings: chat.settings || {} });
      ls.set(draftKey(), '');
      Object.assign(chat, { id: c.id, settings: c.settings, last_event_id: 0 });
      lastEvent = 0;
      history.replaceState({ id: c.id }, '', `/chats/${c.id}`);
      setTitle('');
      subscribe();
    }
    await api('POST', `/api/chats/${encodeURIComponent(chat.id)}/messages`, body);
    input().value = '';
    images = [];
    docs = [];
    renderAttachments();
    ls.set(draftKey(), '');
    note('');
    grow();
  } catch (e) { note(e.message); }
  $('#send').disabled = false;
}

function renderAttachments() {
  $('#attachments').replaceChildren(...images.map((src, i) => h('figure', {}, h('img', { src, alt: t('image') }),
    h('button', { type: 'button', 'aria-label': t('remove_image'), onclick: () => { images.splice(i, 1); renderAttachments(); } }, '×'))),
  ...docs.map((d, i) => h('span', { class: 'file-chip' }, d.name, ' ',
    h('button', { type: 'button', class: 'chip-x', 'aria-label': `${t('remove_file')} ${d.name}`, onclick: () => { docs.splice(i, 1); renderAttachments(); } }, '×'))));
}

/** PDFs and text files, sent with OpenRouter's file parser. */
const isDoc = (f) => f.type === 'application/pdf' || f.type === 'application/json' || f.type.startsWith('text/') || /\.(pdf|txt|md|csv|json)$/i.test(f.name);
async function addDocs(files) {
  for (const f of [...files].filter(isDoc)) {
    let url = await new Promise((res) => { const r = new FileReader(); r.onload = () => res(r.result); r.readAsDataURL(f); });
    // A file the browser could not type (a .md, say) is sent as text.
    url = url.replace(/^data:(application\/octet-stream|);base64,/, 'data:text/plain;base64,');
    docs.push({ name: f.name, data_url: url });
  }
  note('');
  renderAttachments();
}

async function addImages(files) {
  files = [...files].filter((f) => /^image\/(png|jpeg|gif|webp)$/.test(f.type));
  if (!files.length) return;
  await loadModels();
  const id = currentModel();
  const entry = models.find((m) => m.id === id);
  if (entry && !entry.vision) { note(t('cannot_see_images', { model: id })); return; }
  for (const f of files) images.push(await shrinkImage(f));
  note('');
  renderAttachments();
}

// A photo goes up at most this long on its longer side: what vision models look at anyway, and a
// phone's 5 MB picture becomes a few hundred KB.
const MAX_IMAGE_SIDE = 2048;
const readDataUrl = (f) => new Promise((res, rej) => { const r = new FileReader(); r.onload = () => res(r.result); r.onerror = () => rej(r.error); r.readAsDataURL(f); });

/** An image as a data URL, downscaled and re-encoded in the browser (JPEG; WebP for PNG and WebP,
 *  which may be transparent). GIFs (maybe animated) and small images go as they are. */
async function shrinkImage(file) {
  if (file.type === 'image/gif') return readDataUrl(file);
  let bmp;
  try { bmp = await createImageBitmap(file); } catch { return readDataUrl(file); }
  const scale = Math.min(1, MAX_IMAGE_SIDE / Math.max(bmp.width, bmp.height));
  if (scale === 1 && file.size <= 512 * 1024) { bmp.close(); return readDataUrl(file); }
  const canvas = h('canvas', { width: Math.round(bmp.width * scale), height: Math.round(bmp.height * scale) });
  const ctx = canvas.getContext('2d');
  const type = file.type === 'image/jpeg' ? 'image/jpeg' : 'image/webp';
  ctx.drawImage(bmp, 0, 0, canvas.width, canvas.height);
  bmp.close();
  let url = canvas.toDataURL(type, 0.85);
  if (!url.startsWith(`data:${type};`)) {
    // No WebP encoder here: JPEG on white, since JPEG has no transparency.
    ctx.globalCompositeOperation = 'destination-over';
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    url = canvas.toDataURL('image/jpeg', 0.85);
  }
  return url;
}

// The built-in templates, in the page's language (a user's own list replaces them).
const BUILTIN_TEMPLATES = t('builtin_templates');
function templates() {
  return ls.get('templates', BUILTIN_TEMPLATES).split('\n').map((l) => l.match(/^\/?([^\s=]+)\s*=\s*(.*)$/)).filter(Boolean)
    .map(([, name, text]) => ({ name, text: text.replace(/\\n/g, '\n') }));
}
let tplActive = 0;
function tplMenu() {
  const menu = $('#template-menu');
  const v = input().value;
  const m = v.match(/^\/(\S*)$/);
  const list = m ? templates().filter((x) => x.name.toLowerCase().startsWith(m[1].toLowerCase())) : [];
  menu.hidden = !list.length;
  if (!list.length) return [];
  tplActive = Math.min(tplActive, list.length - 1);
  menu.replaceChildren(...list.map((x, i) => h('li', { role: 'option', id: `tpl-${i}`, 'aria-selected': String(i === tplActive), onmousedown: (e) => { e.preventDefault(); useTemplate(x); } },
    h('strong', {}, '/' + x.name), ' ', h('span', { class: 'muted' }, x.text.slice(0, 60)))));
  input().setAttribute('aria-activedescendant', `tpl-${tplActive}`);
  return list;
}
function useTemplate(x) {
  input().value = x.text;
  $('#template-menu').hidden = true;
  input().removeAttribute('aria-activedescendant');
  input().focus();
  grow();
}

function initComposer() {
  const i = input();
  i.value = ls.get(draftKey());
  grow();
  $('#composer').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('#stop').addEventListener('click', () => {
    input().focus();
    api('POST', `/api/chats/${encodeURIComponent(chat.id)}/stop`).catch((e) => note(e.message));
  });
  i.addEventListener('input', () => { ls.set(draftKey(), i.value); grow(); tplActive = 0; tplMenu(); });
  i.addEventListener('keydown', (e) => {
    if (!$('#template-menu').hidden) {
      const list = tplMenu();
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') { e.preventDefault(); tplActive = (tplActive + (e.key === 'ArrowDown' ? 1 : -1) + list.length) % list.length; tplMenu(); return; }
      if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); useTemplate(list[tplActive]); return; }
      if (e.key === 'Escape') { $('#template-menu').hidden = true; return; }
    }
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing) return;
    const mod = e.ctrlKey || e.metaKey;
    if (mod || ls.get('sendkey', 'enter') === 'enter') { e.preventDefault(); send(); }
  });
  i.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.items || [])].filter((it) => it.kind === 'file').map((it) => it.getAsFile()).filter(Boolean);
    if (files.length) { e.preventDefault(); addImages(files); addDocs(files); }
  });
  const main = $('#main');
  main.addEventListener('dragover', (e) => { if (e.dataTransfer?.types.includes('Files')) e.preventDefault(); });
  main.addEventListener('drop', (e) => { if (e.dataTransfer?.files.length) { e.preventDefault(); addImages(e.dataTransfer.files); addDocs(e.dataTransfer.files); } });
  $('#image-input').addEventListener('change', (e) => { addImages(e.target.files); e.target.value = ''; });
  $('#file-input').addEventListener('change', (e) => { addDocs(e.target.files).then(() => { e.target.value = ''; }); });
}

// ---------------------------------------------------------------- model picker
async function loadModels() {
  if (models) return models;
  try {
    const r = await api('GET', '/api/models');
    models = r.models.filter((m) => m.available);
    defaultModel = (r.default || '').replace(/@[^@/]*$/, '');
  } catch { models = []; }
  return models;
}

// Masks: personas (a system prompt, maybe a model and sampling settings) a chat starts from. A
// few built in, in the page's language; NextChat's masks join them when its backup is imported.
// They live in this browser.
function masks() {
  const builtin = t('builtin_masks').split('\n').map((l) => l.split(' = ')).filter((x) => x.length === 2).map(([name, system_prompt]) => ({ name, system_prompt }));
  return [...lsList('masks'), ...builtin];
}

/** NextChat's masks (`mask-store.masks`, an object or a list) as ours. */
function importMasks(backup) {
  let list = backup?.['mask-store']?.masks;
  if (list && !Array.isArray(list)) list = Object.values(list);
  const ours = (list || []).filter((m) => m && !m.builtin && m.name).map((m) => {
    const c = m.modelConfig || {};
    const system = (m.context || []).filter((x) => x.role === 'system').map((x) => (typeof x.content === 'string' ? x.content : '')).join('\n\n');
    return { name: String(m.name).slice(0, 80), system_prompt: system || undefined, model: c.model || undefined, temperature: c.temperature, top_p: c.top_p, max_tokens: c.max_tokens };
  });
  if (ours.length) lsSet('masks', [...ours, ...lsList('masks').filter((x) => !ours.some((o) => o.name === x.name))]);
  return ours.length;
}

async function useMask(mask) {
  const { name, ...rest } = mask;
  const settings = { ...chat.settings };
  for (const [k, v] of Object.entries(rest)) if (v != null && v !== '') settings[k] = v;
  await saveSettings(settings);
  note(t('mask_applied', { name }));
  input().focus();
}

/** The empty chat: what the model is and can do, and a few prompts to start from. */
function renderWelcome() {
  const box = $('#empty');
  if (!box || box.hidden) return;
  const id = currentModel();
  const m = models?.find((x) => x.id === id);
  const facts = [];
  if (m?.vision) facts.push(t('vision'));
  if (m?.reasoning) facts.push(t('reasoning'));
  if (m?.free) facts.push(t('free'));
  else if (m?.pricing) facts.push(`$${money(m.pricing.prompt_per_mtok)}/$${money(m.pricing.completion_per_mtok)} /1M`);
  if (m?.context_length) facts.push(t('context', { n: m.context_length >= 1000 ? Math.round(m.context_length / 1000) + 'K' : m.context_length }));
  const prompt = (text) => h('button', { type: 'button', class: 'suggest', onclick: () => { input().value = text; grow(); input().focus(); } }, text);
  box.replaceChildren(
    h('h2', {}, t('welcome_title')),
    h('p', { class: 'welcome-model' }, h('strong', {}, m?.display_name || id || t('default_model')), facts.length ? ' · ' + facts.join(' · ') : ''),
    h('div', { class: 'suggestions' }, t('welcome_prompts').split('\n').filter(Boolean).map(prompt)),
    h('p', { class: 'masks', role: 'group', 'aria-label': t('masks') }, h('span', { class: 'muted' }, t('masks') + ': '),
      masks().map((mk) => h('button', { type: 'button', class: 'chip', title: mk.system_prompt || '', 'aria-pressed': String(!!mk.system_prompt && chat.settings?.system_prompt === mk.system_prompt), onclick: () => useMask(mk) }, mk.name))),
    h('p', { class: 'muted' }, t('shortcuts_hint')));
}

function showModel() {
  const name = chat.settings?.model || (defaultModel ? defaultModel : t('default_model'));
  renderWelcome();
  $('#model-name').textContent = name;
  // The button's accessible name says the model, not only what the button does.
  $('#model-btn').setAttribute('aria-label', t('model_button', { model: name }));
  $('#model-btn').title = name;
  if (toolServers?.length) toolsNote();
}

const money = (v) => (v === 0 ? '0' : num(v, v < 0.01 ? 4 : v < 1 ? 3 : 2));
let pickActive = 0;
let pickList = [];
const PICK_ROWS = 200;
let pickWant = null; // the model to select once the list is made (the chat's, on opening)
function renderPicker() {
  const words = $('#picker-q').value.toLowerCase().split(/\s+/).filter(Boolean);
  const free = $('#f-free').checked, vision = $('#f-vision').checked, reasoning = $('#f-reasoning').checked;
  const imageOut = $('#f-image-output').checked;
  pickList = models.filter((m) => {
    if ((free && !m.free) || (vision && !m.vision) || (reasoning && !m.reasoning) || (imageOut && !m.image_output)) return false;
    const hay = `${m.id} ${m.display_name} ${m.free ? 'free' : ''}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
  // Favourites, then recently used models, come first (in that order), then the catalog's order.
  const favs = lsList('fav_models'), recent = lsList('recent_models');
  const rank = (m) => (favs.includes(m.id) ? favs.indexOf(m.id) : recent.includes(m.id) ? 1000 + recent.indexOf(m.id) : 1e6);
  pickList = pickList.map((m, i) => [rank(m), i, m]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2]);
  if (pickWant != null) { pickActive = Math.max(0, pickList.findIndex((m) => m.id === pickWant)); pickWant = null; }
  pickActive = Math.min(pickActive, Math.max(0, pickList.length - 1));
  // At most 200 rows at a time, a window around the active one, so the chat's model is shown
  // (and named by aria-activedescendant) wherever it is in the list.
  const start = Math.max(0, Math.min(pickActive - 100, pickList.length - PICK_ROWS));
  const shown = pickList.slice(start, start + PICK_ROWS);
  $('#picker-list').replaceChildren(...shown.map((m, j) => {
    const i = start + j;
    const facts = [];
    if (m.pricing) facts.push(m.free ? t('free') : `$${money(m.pricing.prompt_per_mtok)}/$${money(m.pricing.completion_per_mtok)} /1M`);
    else if (m.free) facts.push(t('free'));
    if (m.context_length) facts.push(t('context', { n: m.context_length >= 1000 ? Math.round(m.context_length / 1000) + 'K' : m.context_length }));
    const vendor = VENDORS.includes(m.vendor) ? m.vendor : 'other';
    const fav = favs.includes(m.id);
    const star = h('button', { type: 'button', class: 'star', tabindex: -1, 'aria-pressed': String(fav), 'aria-label': t('favourite'), title: t('favourite'), onclick: (e) => {
      e.stopPropagation();
      lsSet('fav_models', fav ? favs.filter((x) => x !== m.id) : [m.id, ...favs]);
      renderPicker();
    } }, fav ? '★' : '☆');
    return h('li', { role: 'option', id: `opt-${i}`, 'data-id': m.id, 'aria-selected': String(i === pickActive), class: fav ? 'fav' : recent.includes(m.id) ? 'recent' : null, onclick: () => pick(m) },
      icon(`v-${vendor}`, 'vb'),
      h('span', { class: 'name' }, star, m.display_name || m.id, m.is_default ? h('span', { class: 'badge def' }, t('default_badge')) : null,
        m.vision ? h('span', { class: 'badge' }, t('vision')) : null, m.reasoning ? h('span', { class: 'badge' }, t('reasoning')) : null,
        m.image_output ? h('span', { class: 'badge' }, t('image_output')) : null),
      h('span', { class: 'facts' }, facts[0] || ''),
      h('span', { class: 'id' }, m.id),
      h('span', { class: 'facts' }, facts[1] || ''));
  }));
  $('#picker-q').setAttribute('aria-activedescendant', pickList.length ? `opt-${pickActive}` : '');
  $('#picker-count').textContent = pickList.length ? (pickList.length === 1 ? t('models_count_one') : t('models_count', { n: pickList.length })) : t('no_results');
  $(`#opt-${pickActive}`)?.scrollIntoView({ block: 'nearest' });
}

const lsList = (k) => { try { return JSON.parse(ls.get(k, '[]')); } catch { return []; } };
const lsSet = (k, list) => ls.set(k, JSON.stringify(list.slice(0, 50)));

async function pick(m) {
  lsSet('recent_models', [m.id, ...lsList('recent_models').filter((x) => x !== m.id)].slice(0, 5));
  $('#picker').close();
  await saveSettings({ ...chat.settings, model: m.id });
}

// ---------------------------------------------------------------- tools menu (MCP servers)
let toolServers = null; // GET /api/tools, fetched once
async function loadTools() {
  if (toolServers) return toolServers;
  try { toolServers = (await api('GET', '/api/tools')).servers || []; } catch { toolServers = []; }
  return toolServers;
}

function renderToolsMenu() {
  const menu = $('#tools-menu');
  const on = new Set(chat.settings?.mcp_servers || []);
  menu.replaceChildren();
  if (!toolServers.length) { menu.append(h('li', { class: 'muted' }, t('tools_none'))); return; }
  for (const s of toolServers) {
    const box = h('input', { type: 'checkbox', checked: on.has(s.name), 'data-server': s.name });
    const down = s.state === 'ready' ? null : h('span', { class: 'muted' }, ` (${t('tool_server_down')})`);
    const names = s.tools.filter((x) => x.allowed).map((x) => x.name).join(', ');
    menu.append(h('li', {}, h('label', { title: names }, box, ' ', s.name, down)));
  }
}

function toolsNote() {
  const servers = chat.settings?.mcp_servers || [];
  const entry = models?.find((m) => m.id === currentModel());
  $('#tools-btn').classList.toggle('on', servers.length > 0);
  if (servers.length && entry && entry.tools === false) note(t('tools_not_supported', { model: entry.id }));
}

function initTools() {
  const btn = $('#tools-btn');
  const menu = $('#tools-menu');
  loadTools().then((list) => { btn.hidden = !list.length; toolsNote(); });
  btn.addEventListener('click', async () => {
    const open = menu.hidden;
    if (open) { await loadTools(); renderToolsMenu(); }
    menu.hidden = !open;
    btn.setAttribute('aria-expanded', String(open));
  });
  menu.addEventListener('change', async () => {
    const picked = $$('input[data-server]', menu).filter((b) => b.checked).map((b) => b.dataset.server);
    await saveSettings({ ...chat.settings, mcp_servers: picked.length ? picked : null });
    toolsNote();
  });
  document.addEventListener('click', (e) => {
    if (!menu.hidden && !menu.contains(e.target) && !btn.contains(e.target)) { menu.hidden = true; btn.setAttribute('aria-expanded', 'false'); }
  });
}

async function saveSettings(settings) {
  for (const k of Object.keys(settings)) if (settings[k] === '' || settings[k] == null || Number.isNaN(settings[k])) delete settings[k];
  // A new chat keeps its settings in the page until its first message stores it.
  if (!chat.id) { chat.settings = settings; showModel(); return; }
  try {
    const r = await api('PATCH', `/api/chats/${encodeURIComponent(chat.id)}`, { settings });
    chat.settings = r?.settings || settings;
  } catch (e) { note(t('error_generic', { message: e.message })); }
  showModel();
}

function initPicker() {
  const dlg = $('#picker');
  $('#model-btn').addEventListener('click', async () => {
    dlg.showModal();
    $('#picker-q').value = '';
    $('#picker-count').textContent = t('loading');
    await loadModels();
    pickWant = currentModel();
    renderPicker();
    $('#picker-q').focus();
  });
  $('#picker-q').addEventListener('input', () => { pickActive = 0; renderPicker(); });
  for (const f of ['#f-free', '#f-vision', '#f-reasoning', '#f-image-output']) $(f).addEventListener('change', () => { pickActive = 0; renderPicker(); });
  $('#picker-q').addEventListener('keydown', (e) => {
    const n = pickList.length;
    if (e.key === 'Escape') {
      // A search box's first Escape would only clear it: close the picker at once.
      e.preventDefault();
      dlg.close();
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (n) { pickActive = (pickActive + (e.key === 'ArrowDown' ? 1 : -1) + n) % n; renderPicker(); }
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (pickList[pickActive]) pick(pickList[pickActive]);
    }
  });
}

// ---------------------------------------------------------------- dialogs
// ---------------------------------------------------------------- routing panel
// The chat's `provider` setting, OpenRouter's provider preferences: sort, data policy, max price,
// and the model's endpoints (from our endpoints route) to put in order or leave out.
let routeRows = []; // [{tag, name, price, ignored}] in the chosen order
async function routingOpen(p) {
  $('#rt-sort').value = p.sort || '';
  $('#rt-deny').checked = p.data_collection === 'deny';
  $('#rt-zdr').checked = p.zdr === true;
  $('#rt-max-prompt').value = p.max_price?.prompt ?? '';
  $('#rt-max-completion').value = p.max_price?.completion ?? '';
  routeRows = [];
  renderRoutes();
  const model = currentModel();
  if (!/^[^@/]+\/[^/]+$/.test(model)) return;
  try {
    const r = await api('GET', `/api/models/${model.split('/').map(encodeURIComponent).join('/')}/endpoints`);
    const eps = (r.data?.endpoints || []).map((e) => ({
      tag: e.tag || e.provider_name, name: e.provider_name || e.tag,
      price: e.pricing ? `$${money(Number(e.pricing.prompt) * 1e6)} / $${money(Number(e.pricing.completion) * 1e6)}` : '',
      ignored: (p.ignore || []).includes(e.tag || e.provider_name),
    }));
    const order = p.order || [];
    const rank = (e) => { const i = order.indexOf(e.tag); return i < 0 ? order.length : i; };
    routeRows = eps.sort((a, b) => rank(a) - rank(b));
    routeRows.ordered = order.length > 0;
  } catch { routeRows = []; }
  renderRoutes();
}
function renderRoutes() {
  $('#rt-endpoints').replaceChildren(...routeRows.map((e, i) => h('li', { 'data-tag': e.tag, class: e.ignored ? 'ignored' : '' },
    h('span', { class: 'rt-name' }, e.name), ' ', h('span', { class: 'muted' }, e.price), ' ',
    i > 0 ? h('button', { type: 'button', class: 'btn', 'data-rt': 'up', 'aria-label': `${t('routing_up')} ${e.name}`, onclick: () => { [routeRows[i - 1], routeRows[i]] = [routeRows[i], routeRows[i - 1]]; routeRows.ordered = true; renderRoutes(); } }, '↑') : null,
    h('button', { type: 'button', class: 'btn', 'data-rt': 'exclude', 'aria-pressed': String(e.ignored), onclick: () => { e.ignored = !e.ignored; renderRoutes(); } }, e.ignored ? t('routing_include') : t('routing_exclude')))));
}
/** The preferences the panel shows, over what the chat had (fields the panel does not edit stay). */
function routingValue(old) {
  const p = { ...old };
  const set = (k, v) => { if (v === undefined) delete p[k]; else p[k] = v; };
  set('sort', $('#rt-sort').value || undefined);
  set('data_collection', $('#rt-deny').checked ? 'deny' : undefined);
  set('zdr', $('#rt-zdr').checked ? true : undefined);
  const num = (id) => ($(id).value === '' ? undefined : Number($(id).value));
  const max = { prompt: num('#rt-max-prompt'), completion: num('#rt-max-completion') };
  set('max_price', max.prompt != null || max.completion != null ? JSON.parse(JSON.stringify(max)) : undefined);
  if (routeRows.length) {
    const kept = routeRows.filter((e) => !e.ignored).map((e) => e.tag);
    const ignored = routeRows.filter((e) => e.ignored).map((e) => e.tag);
    set('order', routeRows.ordered && kept.length ? kept : undefined);
    set('ignore', ignored.length ? ignored : undefined);
  }
  return Object.keys(p).length ? p : null;
}

function initChatSettings() {
  const dlg = $('#chat-settings');
  const form = $('#cs-form');
  $('#chat-settings-btn').addEventListener('click', () => {
    const s = chat.settings || {};
    for (const el of form.elements) if (el.name) el.value = s[el.name] ?? '';
    routingOpen(s.provider || {});
    dlg.showModal();
  });
  form.addEventListener('submit', () => {
    const s = { ...chat.settings };
    for (const el of form.elements) {
      if (!el.name) continue;
      s[el.name] = el.type === 'number' ? (el.value === '' ? null : Number(el.value)) : el.value;
    }
    s.provider = routingValue(s.provider || {});
    saveSettings(s);
  });
  $('#export-md').addEventListener('click', () => exportChat('md'));
  $('#export-json').addEventListener('click', () => exportChat('json'));
  $('#share-link').addEventListener('click', () => share(true));
  $('#share-revoke').addEventListener('click', () => share(false));
}

// A read-only link to the chat as it is now (sharing again refreshes it); revoking ends it.
async function share(on) {
  const url = `/api/chats/${encodeURIComponent(chat.id)}/share`;
  try {
    if (on) {
      const r = await api('POST', url, {});
      const link = new URL(r.url, location.origin).href;
      await copyText(link);
      note(t('share_copied', { url: link }));
    } else {
      await api('DELETE', url);
      note(t('share_revoked'));
    }
  } catch (e) {
    note(e.message);
  }
}

async function exportChat(kind) {
  try {
    const base = `/api/chats/${encodeURIComponent(chat.id)}`;
    const full = await api('GET', base);
    let all = full.messages;
    let more = full.has_more;
    while (more && all.length) {
      const r = await api('GET', `${base}/messages?before_seq=${all[0].seq}&limit=200`);
      all = r.messages.concat(all);
      more = r.has_more && r.messages.length > 0;
    }
    full.messages = all;
    full.has_more = false;
    const name = (full.title || 'chat').replace(/[^\p{L}\p{N}]+/gu, '-').slice(0, 60);
    // JSON carries the whole tree (every branch, each with `on_path`); Markdown the active path.
    if (kind === 'json') full.tree = (await api('GET', `${base}/tree`)).messages;
    if (kind === 'json') return download(`${name}.json`, 'application/json', JSON.stringify(full, null, 2));
    const md = [`# ${full.title || t('new_chat')}`, ''];
    for (const m of all) {
      md.push(`## ${m.role === 'user' ? t('you') : t('assistant')}${m.model ? ` (${m.model})` : ''}`, '');
      for (const c of m.tool_calls || []) {
        md.push(`${t('tool_call')} \`${c.name ?? c.function?.name ?? '?'}\`${c.state ? ` (${t('tool_' + c.state)})` : ''}`, '', '```json', prettyArgs(c.arguments ?? c.function?.arguments), '```', '');
        if (typeof c.result === 'string') md.push(`${t('tool_result')}:`, '', '```', c.result, '```', '');
      }
      md.push(m.content, '');
    }
    download(`${name}.md`, 'text/markdown', md.join('\n'));
  } catch (e) { note(t('error_generic', { message: e.message })); }
}

/** The key's spending limit and what is left of it (OpenRouter's `/v1/key`), when the key has one. */
async function showKeyLimit() {
  const k = (await api('GET', '/api/openrouter/v1/key').catch(() => null))?.data;
  const box = $('#st-key-info');
  box.hidden = !(k && k.limit != null);
  if (box.hidden) return;
  $('#st-key-limit').textContent = '$' + money(Number(k.limit)) + (k.limit_reset ? ` (${k.limit_reset})` : '');
  $('#st-key-remaining').textContent = '$' + money(Number(k.limit_remaining ?? (k.limit - (k.usage || 0))));
}

function initSettings() {
  const dlg = $('#settings');
  const lang = $('#st-lang');
  lang.replaceChildren(...DATA.languages.map((l) => h('option', { value: l.tag, selected: l.tag === DATA.lang }, l.name)));
  $('#st-code').hidden = !CFG.needCode;
  $('#st-key').hidden = !!CFG.hideUserApiKey;
  $('#st-balance').hidden = !!CFG.hideBalanceQuery;
  $('#open-settings').addEventListener('click', () => {
    $('#st-theme').value = document.documentElement.dataset.theme || 'system';
    $('#st-send').value = ls.get('sendkey', 'enter');
    $('#st-apikey').value = ls.get('key');
    $('#st-endpoint').value = ls.get('endpoint');
    $('#st-templates').value = ls.get('templates', BUILTIN_TEMPLATES);
    dlg.showModal();
    if (!CFG.hideBalanceQuery) showKeyLimit();
  });
  $('#st-save').addEventListener('click', () => {
    const theme = $('#st-theme').value;
    ls.set('theme', theme);
    setCookie('sb_theme', theme);
    applyTheme();
    ls.set('sendkey', $('#st-send').value);
    if (!CFG.hideUserApiKey) { ls.set('key', $('#st-apikey').value.trim()); ls.set('endpoint', $('#st-endpoint').value.trim()); }
    // Unchanged built-ins are not stored: they follow the page's language.
    const tpl = $('#st-templates').value;
    ls.set('templates', tpl === BUILTIN_TEMPLATES ? '' : tpl);
    dlg.close();
    if (lang.value !== DATA.lang) { setCookie('sb_lang', lang.value); location.reload(); }
  });
  $('#st-login').addEventListener('click', async () => {
    try { await api('POST', '/api/login', { code: $('#st-code-input').value }); location.reload(); } catch { note(t('login_wrong')); dlg.close(); }
  });
  $('#st-logout').addEventListener('click', async () => { await api('POST', '/api/logout').catch(() => {}); location.reload(); });
  $('#st-balance-btn').addEventListener('click', async () => {
    const out = $('#st-balance-out');
    out.textContent = t('loading');
    try {
      const c = (await api('GET', '/api/openrouter/v1/credits')).data || {};
      const total = Number(c.total_credits ?? 0), used = Number(c.total_usage ?? 0);
      out.textContent = t('balance_fmt', { total: '$' + money(total), used: '$' + money(used), left: '$' + money(total - used) });
      await showKeyLimit();
    } catch (e) { out.textContent = t('error_generic', { message: e.message }); }
  });
  $('#st-import').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    const out = $('#st-import-out');
    try {
      const text = await f.text();
      const r = await api('POST', '/api/import/nextchat', text);
      let masksIn = 0;
      try { masksIn = importMasks(JSON.parse(text)); } catch {}
      out.textContent = t('imported', { n: r.imported }) + (masksIn ? ' · ' + t('masks_imported', { n: masksIn }) : '');
      setTimeout(() => location.reload(), 800);
    } catch (err) { out.textContent = t('error_generic', { message: err.message }); }
  });
}

// ---------------------------------------------------------------- sidebar and drawer
function setTitle(title) {
  if (title === DATA.defaultTitle) title = '';
  const shown = title || t('new_chat');
  chat.title = title;
  $('#chat-title').textContent = shown;
  document.title = `${shown} · Switchboard`;
  if (!chat.id) return; // a new chat is in the sidebar once stored
  for (const c of [...side.chats, ...side.pinned]) if (c.id === chat.id) c.title = title;
  const a = $(`#chat-list li[data-id="${CSS.escape(chat.id)}"] a`);
  if (a) a.textContent = shown;
  else { side.chats.unshift({ id: chat.id, title, updated_at: Date.now() }); renderSidebar(); }
}

// The sidebar: pinned chats, then the rest grouped by when they were last active, a page at a
// time (more load as it scrolls to its end).
const side = { pinned: [], chats: [], next: null, loading: false };

/** Which group a chat active at `ms` goes in, by the browser's own calendar. */
function dayGroup(ms) {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const day = 864e5, today = midnight.getTime();
  if (ms >= today) return 'today';
  if (ms >= today - day) return 'yesterday';
  if (ms >= today - 7 * day) return 'last_7_days';
  return 'older';
}

function renderSidebar() {
  const pinned = new Set(side.pinned.map((c) => c.id));
  const items = [];
  if (side.pinned.length) items.push(h('li', { class: 'group', role: 'presentation' }, t('group_pinned')), ...side.pinned.map(chatItem));
  let group = null;
  for (const c of side.chats) {
    if (pinned.has(c.id)) continue;
    const g = dayGroup(c.updated_at);
    if (g !== group) { items.push(h('li', { class: 'group', role: 'presentation' }, t('group_' + g))); group = g; }
    items.push(chatItem(c));
  }
  if (side.next) items.push(h('li', { id: 'chat-more', class: 'muted', role: 'presentation' }, t('loading')));
  const nav = $('.chat-nav');
  const top = nav.scrollTop;
  $('#chat-list').replaceChildren(...items);
  nav.scrollTop = top;
  const more = $('#chat-more');
  if (more) sideObserver.observe(more);
}

const sideObserver = new IntersectionObserver((es) => { if (es.some((x) => x.isIntersecting)) loadMoreChats(); }, { rootMargin: '200px' });
/** The first page of the sidebar again (a chat appeared that is not in it). */
async function loadSidebarHead() {
  try {
    const r = await api('GET', '/api/chats?limit=50');
    const fresh = new Set(r.chats.map((c) => c.id));
    side.chats = r.chats.concat(side.chats.filter((c) => !fresh.has(c.id) && c.updated_at < (r.chats.at(-1)?.updated_at ?? 0)));
    side.pinned = r.pinned || [];
    if (!side.next || !r.next) side.next = r.next;
    renderSidebar();
  } catch {}
}

async function loadMoreChats() {
  if (side.loading || !side.next) return;
  side.loading = true;
  try {
    const r = await api('GET', `/api/chats?limit=50&before=${encodeURIComponent(side.next)}`);
    const known = new Set(side.chats.map((c) => c.id));
    side.chats.push(...r.chats.filter((c) => !known.has(c.id)));
    side.next = r.next;
    renderSidebar();
  } catch (e) { note(t('error_generic', { message: e.message })); }
  side.loading = false;
}

function chatItem(c) {
  if (c.title === DATA.defaultTitle) c.title = '';
  // One tab stop per chat: the actions show on hover and focus, and keys on the link reach them
  // (F2 renames, Delete deletes).
  const b = (act, label, name) => Object.assign(actBtn(act, label, name), { tabIndex: -1 });
  return h('li', { 'data-id': c.id, class: c.pinned ? 'pinned' : null }, h('a', { href: `/chats/${c.id}`, 'aria-current': c.id === chat.id ? 'page' : null }, c.title || t('new_chat')),
    b('pin', c.pinned ? t('unpin') : t('pin'), 'pin'), b('rename', t('rename'), 'edit'), b('delete-chat', t('delete'), 'trash'));
}

/** Rename a chat where its name is: Enter or leaving the box saves, Escape cancels. */
function renameInline(li) {
  const a = $('a', li);
  const id = li.dataset.id;
  const c = [...side.chats, ...side.pinned].find((x) => x.id === id);
  const box = h('input', { type: 'text', class: 'rename-box', value: c?.title || '', 'aria-label': t('rename'), maxlength: 200 });
  let done = false;
  const finish = async (keep) => {
    if (done) return;
    done = true;
    const title = box.value.trim();
    box.replaceWith(a);
    a.focus();
    if (!keep || title === (c?.title || '')) return;
    try {
      await api('PATCH', `/api/chats/${encodeURIComponent(id)}`, { title });
      for (const x of [...side.chats, ...side.pinned]) if (x.id === id) x.title = title;
      a.textContent = title || t('new_chat');
      if (id === chat.id) setTitle(title);
    } catch (err) { note(t('error_generic', { message: err.message })); }
  };
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); finish(true); }
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); finish(false); }
  });
  box.addEventListener('blur', () => finish(true));
  a.replaceWith(box);
  box.focus();
  box.select();
}

function setDrawer(open) {
  $('#app').classList.toggle('drawer-open', open);
  $('#scrim').hidden = !open;
  $('#open-drawer').setAttribute('aria-expanded', String(open));
  if (open) $('#new-chat').focus();
}

// Search results: one row per chat (its title, and the best message's excerpt), a page at a
// time as the list scrolls.
let search = { q: '', next: null };
const searchObserver = new IntersectionObserver((es) => { if (es.some((x) => x.isIntersecting)) searchMore(); }, { rootMargin: '200px' });
async function searchMore() {
  const res = $('#search-results');
  const { q, next } = search;
  if (next == null || search.loading) return;
  search.loading = true;
  try {
    const r = await api('GET', `/api/search?q=${encodeURIComponent(q)}&offset=${next}`);
    if (search.q !== q) return;
    // The "loading" row stays until the page it stands for is in.
    $('#search-more')?.remove();
    const title = (x) => (x.chat_title === DATA.defaultTitle ? '' : x.chat_title) || t('new_chat');
    res.append(...r.results.map((x) => h('li', { 'data-id': x.chat_id }, h('a', { href: `/chats/${x.chat_id}${x.message_id ? '#m-' + x.message_id : ''}` }, title(x), x.snippet ? h('small', {}, x.snippet) : null))));
    if (!next && !r.results.length) res.append(h('li', { class: 'muted' }, t('no_results')));
    search.next = r.next;
    if (r.next != null) { const more = h('li', { id: 'search-more', class: 'muted', role: 'presentation' }, t('loading')); res.append(more); searchObserver.observe(more); }
  } catch (err) {
    $('#search-more')?.remove();
    res.append(h('li', { class: 'error' }, err.message));
  } finally {
    if (search.q === q) search.loading = false;
  }
}

function initSidebar() {
  Object.assign(side, DATA.sidebar || {});
  renderSidebar();
  $('#chat-list a[aria-current]')?.scrollIntoView({ block: 'nearest' });
  $('#new-chat').addEventListener('click', () => newChat());
  // Chats open in place: no page load, the sidebar stays where it was scrolled.
  $('#sidebar').addEventListener('click', (e) => {
    const a = e.target.closest('a[href^="/chats/"]');
    if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    const url = new URL(a.href);
    e.preventDefault();
    openChat(url.pathname.slice('/chats/'.length), { hash: url.hash });
  });
  addEventListener('popstate', () => {
    const id = location.pathname.startsWith('/chats/') ? location.pathname.slice('/chats/'.length) : '';
    if (id && id !== 'new') openChat(id, { push: false, hash: location.hash });
    else newChat({ push: false });
  });
  $('#chat-list').addEventListener('keydown', (e) => {
    const li = e.target.closest('li[data-id]');
    if (!li || e.target.tagName !== 'A') return;
    const act = e.key === 'F2' ? 'rename' : e.key === 'Delete' ? 'delete-chat' : null;
    if (act) { e.preventDefault(); $(`button[data-act="${act}"]`, li).click(); }
  });
  $('#chat-list').addEventListener('click', async (e) => {
    const b = e.target.closest('button[data-act]');
    if (!b) return;
    const li = b.closest('li');
    const id = li.dataset.id;
    try {
      if (b.dataset.act === 'pin') {
        const pinned = !li.classList.contains('pinned');
        await api('PATCH', `/api/chats/${encodeURIComponent(id)}`, { pinned });
        const c = side.chats.find((x) => x.id === id) || side.pinned.find((x) => x.id === id) || { id, title: li.querySelector('a').textContent, updated_at: Date.now() };
        c.pinned = pinned;
        side.pinned = side.pinned.filter((x) => x.id !== id);
        if (pinned) side.pinned.unshift(c);
        renderSidebar();
        $(`#chat-list li[data-id="${CSS.escape(id)}"] a`)?.focus();
      } else if (b.dataset.act === 'rename') {
        renameInline(li);
      } else {
        // Gone from the list at once; deleted when the Undo toast goes away.
        const keep = { chats: side.chats, pinned: side.pinned };
        side.chats = side.chats.filter((c) => c.id !== id);
        side.pinned = side.pinned.filter((c) => c.id !== id);
        renderSidebar();
        if (id === chat.id) newChat();
        undoable(t('chat_deleted'), () => api('DELETE', `/api/chats/${encodeURIComponent(id)}`), () => {
          side.chats = keep.chats.filter((c) => c.id === id || side.chats.some((x) => x.id === c.id));
          side.pinned = keep.pinned.filter((c) => c.id === id || side.pinned.some((x) => x.id === c.id));
          renderSidebar();
        });
      }
    } catch (err) { note(t('error_generic', { message: err.message })); }
  });
  let timer;
  $('#search').addEventListener('input', (e) => {
    clearTimeout(timer);
    const q = e.target.value.trim();
    timer = setTimeout(async () => {
      const res = $('#search-results');
      $('#chat-list').hidden = !!q;
      res.hidden = !q;
      if (!q) return;
      res.replaceChildren();
      search = { q, next: 0 };
      await searchMore();
    }, 250);
  });
  $('#open-drawer').addEventListener('click', () => setDrawer(true));
  $('#close-drawer').addEventListener('click', () => { setDrawer(false); $('#open-drawer').focus(); });
  $('#scrim').addEventListener('click', () => setDrawer(false));
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && $('#app').classList.contains('drawer-open')) { setDrawer(false); $('#open-drawer').focus(); } });
}

// ---------------------------------------------------------------- switching chats
/** Show `next` (a chat as `GET /api/chats/{id}` returns it, or a new one without an id). */
function showChat(next, hash = '') {
  following?.abort();
  following = null;
  for (const k of Object.keys(chat)) delete chat[k];
  Object.assign(chat, next);
  msgs.clear();
  log.replaceChildren();
  for (const m of chat.messages || []) { msgs.set(m.id, settle(m)); log.append(renderMessage(m)); }
  lastEvent = chat.last_event_id || 0;
  $('#older').hidden = !chat.has_more;
  $('#empty').hidden = msgs.size > 0;
  images = [];
  renderAttachments();
  input().value = ls.get(draftKey());
  grow();
  note('');
  setTitle(chat.title || '');
  for (const a of $$('#chat-list a')) a.toggleAttribute('aria-current', a.closest('li').dataset.id === chat.id);
  $('#chat-list a[aria-current]')?.setAttribute('aria-current', 'page');
  $('#chat-list a[aria-current]')?.scrollIntoView({ block: 'nearest' });
  updateBusy();
  showModel();
  if (hash.startsWith('#m-') && document.getElementById(hash.slice(1))) document.getElementById(hash.slice(1)).scrollIntoView();
  else toBottom();
  for (const m of msgs.values()) { autoApprove(m); if (m.status === 'streaming') liveRender(m); }
  subscribe();
  if ($('#app').classList.contains('drawer-open')) setDrawer(false);
  input().focus();
}

let opening = 0;
async function openChat(id, { push = true, hash = '' } = {}) {
  if (id === chat.id && !hash) { setDrawer(false); return; }
  const ticket = ++opening;
  let next;
  try { next = await api('GET', `/api/chats/${encodeURIComponent(id)}`); } catch {
    location.href = `/chats/${encodeURIComponent(id)}${hash}`; // deleted, or another problem: let the server answer
    return;
  }
  if (ticket !== opening) return; // another chat was chosen meanwhile
  if (next.title === DATA.defaultTitle) next.title = '';
  if (push) history.pushState({ id }, '', `/chats/${encodeURIComponent(id)}${hash}`);
  showChat(next, hash);
}

/** A new chat: only in the page until its first message is sent. */
function newChat({ push = true } = {}) {
  if (!chat.id && !msgs.size) { input().focus(); return; }
  opening++;
  const model = chat.settings?.model;
  if (push) history.pushState({ id: null }, '', '/chats/new');
  showChat({ id: null, title: '', settings: model ? { model } : {}, messages: [], has_more: false, last_event_id: 0 });
}

// ---------------------------------------------------------------- shortcuts, images, jump to latest
const SHORTCUTS = [
  ['Ctrl+Shift+O', 'shortcut_new_chat'],
  ['Ctrl+K', 'shortcut_search'],
  ['Shift+Esc', 'shortcut_composer'],
  ['Esc', 'shortcut_stop'],
  ['Ctrl+/', 'shortcut_help'],
];

/** A dialog built on first use (so pages carry no markup for it). */
function lazyDialog(id, title, ...body) {
  let d = document.getElementById(id);
  if (!d) {
    d = h('dialog', { id, class: 'dlg', 'aria-labelledby': `${id}-title` },
      h('div', { class: 'dlg-head' }, h('h2', { id: `${id}-title` }, title), h('button', { type: 'button', class: 'icon-btn', 'data-close': true, 'aria-label': t('close') }, icon('close'))), ...body);
    d.addEventListener('click', (e) => { if (e.target === d || e.target.closest('[data-close]')) d.close(); });
    document.body.append(d);
  }
  return d;
}

function showShortcuts() {
  const mod = /Mac|iPhone|iPad/.test(navigator.platform) ? '⌘' : 'Ctrl';
  lazyDialog('shortcuts', t('shortcuts'), h('table', { class: 'keys' }, SHORTCUTS.map(([k, label]) => h('tr', {}, h('td', {}, h('kbd', {}, k.replace('Ctrl', mod))), h('td', {}, t(label)))))).showModal();
}

function initShortcuts() {
  $('.side-foot').prepend(h('button', { type: 'button', id: 'open-shortcuts', class: 'btn wide', onclick: showShortcuts }, t('shortcuts')));
  document.addEventListener('keydown', (e) => {
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (mod && e.shiftKey && key === 'o') { e.preventDefault(); newChat(); }
    else if (mod && !e.shiftKey && key === 'k') { e.preventDefault(); if (matchMedia('(max-width: 760px)').matches) setDrawer(true); $('#search').focus(); }
    else if (mod && key === '/') { e.preventDefault(); showShortcuts(); }
    else if (e.shiftKey && e.key === 'Escape') { e.preventDefault(); input().focus(); }
    else if (e.key === 'Escape' && isStreaming() && !document.querySelector('dialog[open]') && $('#template-menu').hidden && !e.target.closest?.('.edit-form, .rename-box')) {
      $('#stop').click();
    }
  });
}

// Images in messages open large on click.
function showImage(src) {
  const d = lazyDialog('viewer', t('image'));
  d.classList.add('viewer');
  $$('img.large', d).forEach((x) => x.remove());
  d.append(h('img', { class: 'large', src, alt: t('image') }));
  d.showModal();
}

// "Jump to latest" while scrolled up.
function updateJump() {
  const b = $('#jump');
  if (b) b.hidden = nearBottom();
}
function initJump() {
  const b = h('button', { type: 'button', id: 'jump', class: 'btn jump', hidden: true, onclick: () => { toBottom(); input().focus(); } }, '↓ ', t('jump_latest'));
  $('#composer').before(b);
  $('#messages').addEventListener('scroll', updateJump, { passive: true });
}

// ---------------------------------------------------------------- start
function initChat() {
  for (const m of chat.messages || []) msgs.set(m.id, settle(m));
  // The server rendered the compare's columns; a page from an older cache may lack them.
  for (const m of chat.alternatives || []) {
    msgs.set(m.id, settle(m));
    alternatives.add(m.id);
    if (!document.getElementById(`m-${m.id}`)) log.append(renderMessage(m));
  }
  // The server renders an error with its retry; the page adds what only a script can offer.
  for (const m of msgs.values()) if (m.error) document.querySelector(`#m-${CSS.escape(m.id)} .msg-error`)?.replaceWith(errorBox(m));
  lastEvent = chat.last_event_id || 0;
  localize(log);
  fillMeta(log);
  for (const m of msgs.values()) if (m.status === 'streaming') liveRender(m);
  log.addEventListener('click', async (e) => {
    const copy = e.target.closest('.copy-code');
    if (copy) {
      await copyText($('pre code', copy.closest('.code'))?.textContent || '');
      copy.textContent = t('copied');
      setTimeout(() => { copy.textContent = t('copy'); }, 1200);
      return;
    }
    const b = e.target.closest('button[data-act]');
    const m = b && msgs.get((b.closest('article') || b.closest('.col'))?.dataset.id);
    if (m) act(b.dataset.act, m, b);
  });
  log.addEventListener('click', (e) => {
    const img = e.target.closest('.images img');
    if (img) showImage(img.src);
  });
  log.addEventListener('toggle', (e) => { if (e.target.classList?.contains('thinking')) e.target.dataset.touched = '1'; }, true);
  // Older messages: a button, and automatically when it scrolls into view.
  $('#load-older').addEventListener('click', loadOlder);
  new IntersectionObserver((es) => { if (es.some((x) => x.isIntersecting)) loadOlder(); }, { root: $('#messages') }).observe($('#older'));
  for (const d of $$('dialog')) {
    d.addEventListener('click', (e) => { if (e.target === d || e.target.closest('[data-close]')) d.close(); });
  }
  initComposer();
  initPicker();
  initChatSettings();
  initTools();
  initCompare();
  initSettings();
  initSidebar();
  layoutCompare();
  initShortcuts();
  initJump();
  updateBusy();
  showModel();
  if (location.hash.startsWith('#m-')) document.getElementById(location.hash.slice(1))?.scrollIntoView();
  else toBottom();
  loadModels().then(showModel);
  subscribe();
  for (const m of msgs.values()) autoApprove(m);
  input().focus();
}

applyTheme();
// Installable: the service worker caches the app's shell (never the API).
if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
if ($('#login-form')) initLogin();
else if (chat) initChat();
