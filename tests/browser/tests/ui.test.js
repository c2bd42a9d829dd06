// The web UI in a real browser: each test starts its own mock upstream, switchboard and chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setup, openChat, send, shot, SHOTS, REPO } from '../harness.js';

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==';

test('a reply streams in, with a Thinking block that collapses to its duration', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/reasoning');
  await send(s.page, 'What is the answer?');
  await s.page.waitForSelector('.msg.user >> text=What is the answer?');
  await s.page.waitForSelector('.msg.assistant[data-status=streaming]');
  await s.page.waitForSelector('.msg.assistant details.thinking');
  const done = await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  assert.match(await done.$eval('.body', (e) => e.textContent), /42/);
  assert.match(await done.$eval('details.thinking summary', (e) => e.textContent), /Thought for [\d.]+ s/);
  assert.equal(await done.$eval('details.thinking', (e) => e.open), false);
  assert.match(await done.$eval('.meta', (e) => e.textContent), /mock\/reasoning · \d+ \+ \d+ tokens · \$/);
  await done.$eval('details.thinking', (e) => { e.open = true; });
  await s.page.evaluate(() => { document.activeElement.blur(); });
  await shot(s.page, 'chat-reasoning-light');
  const png = join(SHOTS, 'chat-reasoning-light.png');
  // README's screenshot is refreshed on request only, so a test run never dirties the tree.
  if (process.env.UPDATE_DOCS_SCREENSHOT && statSync(png).size < 300 * 1024) {
    copyFileSync(png, join(REPO, 'docs', 'screenshot-chat.png'));
  }
  assert.deepEqual(s.errors, []);
});

test('a reload mid-stream shows the text so far and continues', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/slow');
  await send(s.page, 'Tell me a long story');
  await s.page.waitForFunction(() => (document.querySelector('.msg.assistant .plain')?.textContent || '').length > 10);
  await s.page.reload();
  const before = await s.page.$eval('.msg.assistant[data-status=streaming] .plain', (e) => e.textContent.length);
  assert.ok(before > 10, 'the server rendered the text so far');
  await s.page.waitForFunction((n) => document.querySelector('.msg.assistant .plain').textContent.length > n + 5, before);
  await shot(s.page, 'chat-streaming-after-reload');
  await s.page.click('#stop');
  await s.page.waitForSelector('.msg.assistant[data-status=stopped]');
  assert.ok(await s.page.isVisible('#send'));
});

test('the model picker finds qwen/qwen3-32b:free by "qwen3 32b free" and saves it with the chat', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, null);
  await s.page.click('#model-btn');
  await s.page.fill('#picker-q', 'qwen3 32b free');
  await s.page.waitForSelector('#picker-list li[data-id="qwen/qwen3-32b:free"]');
  const first = await s.page.$eval('#picker-list li[aria-selected=true]', (e) => e.dataset.id);
  assert.equal(first, 'qwen/qwen3-32b:free');
  await shot(s.page, 'picker');
  await s.page.press('#picker-q', 'Enter');
  await s.page.waitForFunction(() => document.querySelector('#model-name').textContent === 'qwen/qwen3-32b:free');
  const saved = await s.api('GET', `/api/chats/${chat.id}`);
  assert.equal(saved.settings.model, 'qwen/qwen3-32b:free');
  // Arrow keys move the selection; filters narrow the list.
  await s.page.click('#model-btn');
  await s.page.fill('#picker-q', 'mock');
  await s.page.press('#picker-q', 'ArrowDown');
  assert.equal(await s.page.$eval('#picker-list li[aria-selected=true]', (e) => e.id), 'opt-1');
  await s.page.check('#f-vision');
  const ids = await s.page.$$eval('#picker-list li', (els) => els.map((e) => e.dataset.id));
  assert.ok(ids.includes('mock/vision') && !ids.includes('mock/slow'), ids.join(','));
});

test('the UI speaks 中文 and Dansk', async (t) => {
  const s = await setup(t);
  await openChat(s, null);
  assert.equal(await s.page.getAttribute('html', 'lang'), 'en');
  for (const [tag, word] of [['zh-CN', '新对话'], ['da', 'Ny samtale']]) {
    await s.page.click('#open-settings');
    await s.page.selectOption('#st-lang', tag);
    await Promise.all([s.page.waitForNavigation(), s.page.click('#st-save')]);
    assert.equal(await s.page.getAttribute('html', 'lang'), tag);
    assert.match(await s.page.textContent('#new-chat'), new RegExp(word));
    await shot(s.page, `lang-${tag}`);
  }
  assert.match(await s.page.getAttribute('#input', 'placeholder'), /Skriv en besked/);
});

test('Accept-Language picks the language when no cookie is set', async (t) => {
  const s = await setup(t, { locale: 'zh-CN' });
  await openChat(s, null);
  assert.equal(await s.page.getAttribute('html', 'lang'), 'zh-CN');
});

test('a pasted image goes to a vision model; other models say they cannot see', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/vision');
  const paste = (b64) => s.page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'dot.png', { type: 'image/png' }));
    document.querySelector('#input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, b64);
  await paste(PNG);
  await s.page.waitForSelector('#attachments img');
  await send(s.page, 'What do you see?');
  await s.page.waitForSelector('.msg.user .images img');
  const reply = await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  assert.match(await reply.textContent(), /I see 1 image/);
  await shot(s.page, 'vision');
  await openChat(s, 'mock/reasoning');
  await paste(PNG);
  await s.page.waitForSelector('#composer-note:not([hidden])');
  assert.match(await s.page.textContent('#composer-note'), /mock\/reasoning cannot see images/);
  assert.equal(await s.page.$$eval('#attachments img', (e) => e.length), 0);
});

test('script in model output never runs', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/echo');
  const payloads = ['<script>window.__xss=1</script>', '<img src=x onerror="window.__xss=1">', '[x](javascript:window.__xss=1)'];
  for (const [i, p] of payloads.entries()) {
    await send(s.page, p);
    await s.page.waitForFunction((n) => document.querySelectorAll('.msg.assistant[data-status=complete]').length >= n, i + 1, { timeout: 15000 });
  }
  await s.page.$$eval('.msg a', (as) => as.forEach((a) => a.click()));
  assert.equal(await s.page.evaluate(() => window.__xss), undefined);
  assert.equal(await s.page.$$eval('.msg script, .msg img[onerror], .msg [onerror]', (e) => e.length), 0);
  const texts = await s.page.$$eval('.msg.assistant .body', (els) => els.map((e) => e.textContent));
  assert.ok(texts.some((x) => x.includes('<script>window.__xss=1</script>')), texts.join('|'));
  // Reloaded, the server-rendered page is just as inert.
  await s.page.reload();
  await s.page.waitForSelector('.msg.assistant');
  assert.equal(await s.page.evaluate(() => window.__xss), undefined);
  assert.equal(await s.page.$$eval('.msg img[onerror]', (e) => e.length), 0);
  await shot(s.page, 'xss-inert');
});

test('at 390 px the sidebar is a drawer opened by the menu button', async (t) => {
  const s = await setup(t, { viewport: { width: 390, height: 844 } });
  await openChat(s, null, 'Drawer test');
  assert.equal(await s.page.isVisible('#sidebar'), false);
  assert.ok(await s.page.isVisible('#open-drawer'));
  await shot(s.page, 'narrow-closed');
  await s.page.click('#open-drawer');
  await s.page.waitForSelector('#sidebar', { state: 'visible' });
  assert.equal(await s.page.getAttribute('#open-drawer', 'aria-expanded'), 'true');
  // The drawer slides in: wait for its transition to end, not for a fixed time.
  await s.page.evaluate(() => Promise.all(document.getAnimations().map((a) => a.finished)));
  await shot(s.page, 'narrow-drawer-open');
  await s.page.keyboard.press('Escape');
  await s.page.waitForSelector('#sidebar', { state: 'hidden' });
});

test('an access-code server asks for the code, then works', async (t) => {
  const s = await setup(t, { env: { CODE: 'letmein' } });
  await s.page.goto(s.base + '/');
  await s.page.waitForSelector('#login-code');
  await shot(s.page, 'login');
  await s.page.fill('#login-code', 'wrong');
  await s.page.press('#login-code', 'Enter');
  await s.page.waitForSelector('#login-error', { state: 'visible' });
  await s.page.fill('#login-code', 'letmein');
  await Promise.all([s.page.waitForNavigation(), s.page.press('#login-code', 'Enter')]);
  await s.page.waitForSelector('#input');
  await send(s.page, 'hello after login');
  await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
});

test('provider errors show in the message with a retry; tools and citations are shown', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/status-402');
  await send(s.page, 'hi');
  const err = await s.page.waitForSelector('.msg.assistant .msg-error', { timeout: 15000 });
  assert.match(await err.textContent(), /402|credit/i);
  assert.ok(await err.$('button[data-act=retry]'));
  await openChat(s, 'mock/tools');
  await send(s.page, 'weather?');
  await s.page.waitForSelector('.msg.assistant details.tool code', { timeout: 15000 });
  await openChat(s, 'mock/web');
  await send(s.page, 'news?');
  await s.page.waitForSelector('.msg.assistant .citations a[target=_blank]', { timeout: 15000 });
  await shot(s.page, 'citations');
});

test('a NextChat backup imports from settings; a long chat opens at its end and loads earlier messages on scroll', async (t) => {
  const s = await setup(t);
  await openChat(s, null);
  const messages = [];
  for (let i = 1; i <= 240; i++) messages.push({ role: i % 2 ? 'user' : 'assistant', content: `message number ${i}`, date: new Date(1700000000000 + i * 1000).toISOString() });
  const backup = { 'chat-next-web-store': { sessions: [{ topic: 'Long imported chat', messages, lastUpdate: Date.now() }] } };
  await s.page.click('#open-settings');
  await s.page.setInputFiles('#st-import', { name: 'backup.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(backup)) });
  await s.page.waitForSelector('#st-import-out >> text=1');
  await s.page.waitForSelector('#chat-list a >> text=Long imported chat');
  await Promise.all([s.page.waitForNavigation(), s.page.click('#chat-list a >> text=Long imported chat')]);
  assert.equal(await s.page.$$eval('article.msg', (e) => e.length), 50);
  assert.match(await s.page.textContent('article.msg:last-of-type'), /message number 240/);
  await s.page.$eval('#messages', (e) => { e.scrollTop = 0; });
  await s.page.waitForFunction(() => document.querySelectorAll('article.msg').length >= 100);
  const seqs = await s.page.$$eval('article.msg', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'messages stay in order');
  // Search finds a message in it.
  await s.page.fill('#search', 'number 17');
  await s.page.waitForSelector('#search-results a >> text=Long imported chat');
});

test('a chat shared from its settings reads without the code, until the link is revoked', async (t) => {
  const s = await setup(t, { env: { CODE: 'letmein' } });
  await s.page.goto(s.base + '/');
  await s.page.fill('#login-code', 'letmein');
  await Promise.all([s.page.waitForNavigation(), s.page.press('#login-code', 'Enter')]);
  await s.page.waitForSelector('#input');
  await send(s.page, 'a **bold** answer to share');
  await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  await s.page.click('#chat-settings-btn');
  await s.page.click('#share-link');
  await s.page.waitForSelector('#composer-note >> text=/\\/s\\//');
  const link = (await s.page.textContent('#composer-note')).match(/https?:\/\/\S+\/s\/[a-z2-7]+/)[0];
  // Another device, with no login cookie: the shared page, read-only and script-free.
  const res = await fetch(link);
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /<strong>bold<\/strong> answer to share/);
  assert.doesNotMatch(html, /<script/);
  await s.page.click('#share-revoke');
  await s.page.waitForSelector('#composer-note >> text=no longer works');
  assert.equal((await fetch(link)).status, 404);
});

test('a tool call waits for Allow on a card that survives a reload; its result is shown as text', async (t) => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const entry = join(REPO, 'tests', 'mcp', 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
  const config = join(mkdtempSync(join(tmpdir(), 'sb-mcp-')), 'mcp.json');
  writeFileSync(config, JSON.stringify({ mcpServers: { everything: { command: 'node', args: [entry, 'stdio'] } } }));
  const s = await setup(t, { env: { SWITCHBOARD_MCP_CONFIG: config } });
  for (let i = 0; i < 200; i++) {
    const r = await s.api('GET', '/api/tools');
    if (r.servers[0]?.state === 'ready') break;
    await new Promise((res) => setTimeout(res, 50));
  }
  await openChat(s, 'mock/use-tool');
  // The tools menu in the composer enables the server for this chat.
  await s.page.waitForSelector('#tools-btn', { state: 'visible' });
  await s.page.click('#tools-btn');
  await s.page.check('#tools-menu input[data-server=everything]');
  await s.page.waitForSelector('#tools-btn.on');
  const xss = '<img src=x onerror=window.__xss=1>';
  await send(s.page, `call echo ${JSON.stringify({ message: xss })}`);
  await s.page.waitForSelector('.msg.assistant details.tool[data-state=waiting] button[data-act=tool-allow]', { timeout: 15000 });
  await shot(s.page, 'tool-approval');
  // A reload shows the same card, still waiting.
  await s.page.reload();
  const allow = await s.page.waitForSelector('.msg.assistant details.tool[data-state=waiting] button[data-act=tool-allow]');
  await allow.click();
  await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  // Collapsed once done: in the page, not shown until opened.
  const result = await s.page.waitForSelector('.msg.assistant details.tool[data-state=done] .tool-result', { state: 'attached' });
  assert.equal(await result.textContent(), `Echo: ${xss}`);
  await s.page.click('.msg.assistant details.tool summary');
  await shot(s.page, 'tool-result');
  await s.page.reload();
  await s.page.waitForSelector('.msg.assistant details.tool[data-state=done] .tool-result', { state: 'attached' });
  assert.equal(await s.page.evaluate(() => window.__xss), undefined);
  assert.equal(await s.page.$$eval('.msg img[onerror], .msg [onerror]', (e) => e.length), 0);
  assert.match(await s.page.textContent('.msg.assistant .body'), /Tool result: Echo: <img/);
  assert.deepEqual(s.errors, []);
});

test('a 402 that says what the credits afford retries within it in one click', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, 'mock/status-402');
  await send(s.page, 'within my means');
  const err = await s.page.waitForSelector('.msg.assistant .msg-error', { timeout: 15000 });
  assert.match(await err.textContent(), /can only afford 3395/);
  const retry = await err.waitForSelector('button[data-act=retry-max]');
  assert.equal(await retry.textContent(), 'Retry with max 3395 tokens');
  await retry.click();
  const done = await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  assert.equal((await done.$eval('.body', (e) => e.textContent)).trim(), 'within my means');
  const saved = await s.api('GET', `/api/chats/${chat.id}`);
  assert.equal(saved.settings.max_tokens, 3395);
  assert.deepEqual(s.errors, []);
});

test('a 429 shows the provider\'s words and the reset time, and tries a fallback model in one click', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, 'mock/status-429');
  await send(s.page, 'are you there?');
  const err = await s.page.waitForSelector('.msg.assistant .msg-error', { timeout: 15000 });
  assert.match(await err.textContent(), /Google: mock\/status-429 is temporarily rate-limited upstream/);
  assert.match(await err.$eval('.resets', (e) => e.textContent), /^The limit resets at .+\.$/);
  const fallback = await err.waitForSelector('button[data-act=try-fallback]:not([hidden])');
  const model = await fallback.getAttribute('data-model');
  assert.match(model, /:free$/);
  await shot(s.page, 'rate-limited');
  await fallback.click();
  const done = await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  assert.match(await done.$eval('.body', (e) => e.textContent), new RegExp(`Hello from ${model.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  const saved = await s.api('GET', `/api/chats/${chat.id}`);
  assert.equal(saved.settings.model, model);
  // With a fallback list, OpenRouter (the mock) falls back by itself and says who served.
  await s.api('PATCH', `/api/chats/${chat.id}`, { settings: { model: 'mock/status-429', fallback_models: ['mock/echo'] } });
  await s.page.reload();
  await s.page.waitForSelector('#input');
  await send(s.page, 'fall back please');
  await s.page.waitForFunction(() => [...document.querySelectorAll('.msg.assistant[data-status=complete] .body')].some((b) => b.textContent.includes('fall back please')), null, { timeout: 15000 });
  assert.deepEqual(s.errors, []);
});

test('with ENABLE_BALANCE_QUERY the settings show the key\'s limit and remaining credit', async (t) => {
  const s = await setup(t, { env: { ENABLE_BALANCE_QUERY: 'true' } });
  await openChat(s, 'mock/echo');
  await s.page.click('#open-settings');
  await s.page.waitForSelector('#st-key-info:not([hidden])', { timeout: 15000 });
  assert.equal(await s.page.$eval('#st-key-limit', (e) => e.textContent), '$100.00');
  assert.match(await s.page.$eval('#st-key-remaining', (e) => e.textContent), /^\$\d+\.\d\d$/);
  assert.deepEqual(s.errors, []);
});

test('the routing panel orders and excludes the model\'s endpoints and the upstream request carries them', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, 'mock/echo');
  await s.page.click('#chat-settings-btn');
  await s.page.waitForSelector('#rt-endpoints li[data-tag=groq]', { timeout: 15000 });
  assert.deepEqual(await s.page.$$eval('#rt-endpoints li', (l) => l.map((e) => e.dataset.tag)), ['mock', 'deepinfra/fp8', 'groq']);
  await s.page.selectOption('#rt-sort', 'throughput');
  await s.page.check('#rt-deny');
  await s.page.check('#rt-zdr');
  await s.page.fill('#rt-max-prompt', '2');
  await s.page.click('#rt-endpoints li[data-tag="deepinfra/fp8"] button[data-rt=up]');
  await s.page.click('#rt-endpoints li[data-tag=groq] button[data-rt=exclude]');
  await shot(s.page, 'routing-panel');
  await s.page.click('#cs-form button[type=submit]');
  const want = { sort: 'throughput', data_collection: 'deny', zdr: true, max_price: { prompt: 2 }, order: ['deepinfra/fp8', 'mock'], ignore: ['groq'] };
  let saved;
  for (let i = 0; i < 50; i++) {
    saved = (await s.api('GET', `/api/chats/${chat.id}`)).settings.provider;
    if (saved) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(saved, want);
  await send(s.page, 'route me');
  await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  const recorded = await (await s.context.request.get(`${s.mock}/__mock/requests`)).json();
  const sent = recorded.find((r) => r.path.endsWith('/chat/completions') && r.body.session_id === chat.id);
  assert.deepEqual(sent.body.provider, want);
  assert.deepEqual(s.errors, []);
});

test('a PDF picked in the composer goes as a chip and comes back downloadable; a drawn image is shown from its route', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, 'mock/echo');
  await s.page.setInputFiles('#file-input', { name: 'brief.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n%mock\n') });
  await s.page.waitForSelector('#attachments .file-chip >> text=brief.pdf');
  await send(s.page, 'summarize the brief');
  const user = await s.page.waitForSelector('.msg.user a.file-chip[download="brief.pdf"]', { timeout: 15000 });
  const href = await user.getAttribute('href');
  assert.match(href, new RegExp(`^/api/chats/${chat.id}/files/f_[a-z2-7]+\\?download=1$`));
  assert.equal(await s.page.$$eval('#attachments .file-chip', (l) => l.length), 0, 'the composer is cleared');
  await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  const file = await s.context.request.get(s.base + href);
  assert.equal(await file.text(), '%PDF-1.4\n%mock\n');
  const recorded = await (await s.context.request.get(`${s.mock}/__mock/requests`)).json();
  const sent = recorded.find((r) => r.path.endsWith('/chat/completions') && r.body.session_id === chat.id);
  assert.deepEqual(sent.body.plugins, [{ id: 'file-parser', pdf: { engine: 'pdf-text' } }]);

  await openChat(s, 'mock/image');
  await send(s.page, 'draw');
  const img = await s.page.waitForSelector('.msg.assistant[data-status=complete] .gen-image img', { timeout: 15000 });
  assert.match(await img.getAttribute('src'), /^\/api\/chats\/[^/]+\/files\/f_[a-z2-7]+$/);
  await s.page.waitForFunction(() => document.querySelector('.gen-image img').naturalWidth === 1);
  await s.page.reload();
  await s.page.waitForSelector('.msg.assistant .gen-image img');
  assert.deepEqual(s.errors, []);
});
