// The web UI in a real browser: each test starts its own mock upstream, switchboard and chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setup, openChat, send, shot, SHOTS, REPO } from '../harness.js';

/** A screenshot that README shows: refreshed in docs/ only on request (UPDATE_DOCS_SCREENSHOT=1), so
 *  a test run never dirties the tree. */
async function docShot(page, name) {
  await shot(page, name);
  const png = join(SHOTS, `${name}.png`);
  if (process.env.UPDATE_DOCS_SCREENSHOT && statSync(png).size < 300 * 1024) copyFileSync(png, join(REPO, 'docs', `screenshot-${name}.png`));
}

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
  await s.page.waitForFunction(() => (document.querySelector('.msg.assistant .body')?.textContent || '').length > 10);
  await s.page.reload();
  const before = await s.page.$eval('.msg.assistant[data-status=streaming] .body', (e) => e.textContent.length);
  assert.ok(before > 10, 'the server rendered the text so far');
  await s.page.waitForFunction((n) => document.querySelector('.msg.assistant .body').textContent.length > n + 5, before);
  await shot(s.page, 'chat-streaming-after-reload');
  await s.page.click('#stop');
  const stopped = await s.page.waitForSelector('.msg.assistant[data-status=stopped]');
  assert.ok(await s.page.isVisible('#send'));
  assert.match(await stopped.$eval('.meta', (e) => e.textContent), /^Stopped · mock\/slow/);
  // After a reload the footer, made by app.js for server-rendered messages too, still says so.
  await s.page.reload();
  assert.match(await s.page.textContent('.msg.assistant[data-status=stopped] .meta'), /^Stopped · mock\/slow/);
});

test('Markdown is rendered while the reply streams, by the server, before it is done', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/echo');
  // mock/echo streams the message back a word at a time (20 ms each): the long tail keeps the
  // reply streaming well after its heading and table have arrived.
  const tail = Array.from({ length: 1500 }, (_, i) => `w${i}`).join(' ');
  await send(s.page, `# Prices\n\n| model | price |\n| --- | --- |\n| a | $3/$15 |\n\nSome **bold** text. ${tail}`);
  // The bold words come after the table: once they are rendered, so is all before them.
  const msg = await s.page.waitForSelector('.msg.assistant[data-status=streaming]:has(.body strong)', { timeout: 15000 });
  assert.equal(await msg.evaluate((e) => e.dataset.status), 'streaming');
  assert.equal(await msg.$eval('.body h1', (e) => e.textContent), 'Prices');
  assert.equal(await msg.$eval('.body td:last-child', (e) => e.textContent), '$3/$15');
  // Never the raw syntax once rendered.
  assert.doesNotMatch(await msg.$eval('.body', (e) => e.textContent), /\| --- \||^# /m);
  await docShot(s.page, 'streaming-markdown');
  await s.page.click('#stop');
  await s.page.waitForSelector('.msg.assistant[data-status=stopped] .body table');
  assert.deepEqual(s.errors, []);
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

test('in Danish and Chinese the templates, server errors and decimals are translated', async (t) => {
  const s = await setup(t, { locale: 'da-DK' });
  await openChat(s, 'mock/reasoning');
  assert.equal(await s.page.getAttribute('html', 'lang'), 'da');
  await s.page.fill('#input', '/');
  await s.page.waitForSelector('#template-menu li');
  assert.match(await s.page.textContent('#template-menu'), /Oversæt følgende tekst til dansk/);
  await s.page.fill('#input', '');
  // "Tænkte i 1,2 s": a decimal comma, live and after a reload.
  await send(s.page, 'Hvad er svaret?');
  const done = await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  assert.match(await done.$eval('details.thinking summary', (e) => e.textContent), /\d+,\d s/);
  assert.match(await done.$eval('.meta', (e) => e.textContent), /\$\d+,\d{4}/);
  await s.page.reload();
  assert.match(await s.page.textContent('.msg.assistant details.thinking summary'), /\d+,\d s/);
  // A server error says what happened in Danish (the server's English detail follows).
  await openChat(s, 'mock/slow');
  await send(s.page, 'en lang historie');
  await s.page.waitForSelector('.msg.assistant[data-status=streaming]');
  await s.page.hover('.msg.user');
  await s.page.click('.msg.user button[data-act=edit]');
  await s.page.fill('.msg.user textarea.edit-box', 'en anden historie');
  await s.page.keyboard.press('Control+Enter');
  await s.page.waitForSelector('#composer-note:not([hidden])');
  assert.match(await s.page.textContent('#composer-note'), /Et svar er stadig ved at blive skrevet \(/);
  await s.page.click('#stop');
  await s.page.waitForSelector('.msg.assistant[data-status=stopped]');
  // 中文: the templates too.
  await s.page.click('#open-settings');
  await s.page.selectOption('#st-lang', 'zh-CN');
  await Promise.all([s.page.waitForNavigation(), s.page.click('#st-save')]);
  await s.page.fill('#input', '/tr');
  await s.page.waitForSelector('#template-menu li');
  assert.match(await s.page.textContent('#template-menu'), /将以下文字翻译成中文/);
  assert.deepEqual(s.errors.filter((e) => !/409/.test(e)), []);
});

test('picker and keyboard: the chat model is highlighted past the first 200, one Escape closes, the model button names the model, focus stays after Stop', async (t) => {
  const s = await setup(t);
  const all = (await s.api('GET', '/api/models')).models.filter((m) => m.available);
  assert.ok(all.length > 250, `${all.length} models`);
  const far = all[all.length - 1].id;
  const chat = await openChat(s, far);
  assert.match(await s.page.getAttribute('#model-btn', 'aria-label'), new RegExp(far.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  await s.page.click('#model-btn');
  const active = await s.page.waitForSelector('#picker-list li[aria-selected=true]');
  assert.equal(await active.getAttribute('data-id'), far);
  const named = await s.page.getAttribute('#picker-q', 'aria-activedescendant');
  assert.equal(named, await active.getAttribute('id'));
  await s.page.fill('#picker-q', 'qwen');
  await s.page.keyboard.press('Escape');
  await s.page.waitForSelector('#picker', { state: 'hidden' });
  // Stop keeps the keyboard in the composer.
  await s.api('PATCH', `/api/chats/${chat.id}`, { settings: { model: 'mock/slow' } });
  await s.page.reload();
  await send(s.page, 'a long story');
  await s.page.waitForSelector('#stop', { state: 'visible' });
  await s.page.focus('#stop');
  await s.page.keyboard.press('Enter');
  await s.page.waitForSelector('.msg.assistant[data-status=stopped]');
  assert.equal(await s.page.evaluate(() => document.activeElement.id), 'input');
  // Light theme: every highlighted token in a code block reads at 4.5:1 or better.
  await s.api('PATCH', `/api/chats/${chat.id}`, { settings: { model: 'mock/echo' } });
  await s.page.reload();
  await send(s.page, '```rust\n// a comment\nfn main() { let x: &str = "text"; println!("{}", 42); }\n```\n\n```html\n<div class="x">hi</div>\n```');
  await s.page.waitForSelector('.msg.assistant[data-status=complete] .code', { timeout: 15000 });
  const worst = await s.page.$eval('#log', (msg) => {
    const rgb = (c) => c.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }).reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
    let min = 99;
    for (const el of msg.querySelectorAll('.code pre [class*="hl-"]')) {
      const fg = lum(rgb(getComputedStyle(el).color));
      const bg = lum(rgb(getComputedStyle(el.closest('pre')).backgroundColor));
      min = Math.min(min, (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05));
    }
    return min;
  });
  assert.ok(worst >= 4.5 && worst < 99, `lowest code contrast ${worst.toFixed(2)}:1`);
  assert.deepEqual(s.errors, []);
});

test('at 390 px model names in the picker are shown whole', async (t) => {
  const s = await setup(t, { viewport: { width: 390, height: 844 } });
  await openChat(s, null);
  await s.page.click('#model-btn');
  await s.page.fill('#picker-q', 'claude');
  await s.page.waitForSelector('#picker-list li');
  const cut = await s.page.$$eval('#picker-list .name, #picker-list .id', (els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent));
  assert.deepEqual(cut, []);
  await docShot(s.page, 'narrow-picker');
});

test('an empty chat welcomes with its model and prompts; shortcuts, image viewer, jump to latest, favourite models', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/vision');
  await s.page.waitForSelector('#empty h2');
  await s.page.waitForFunction(() => /Vision/.test(document.querySelector('.welcome-model').textContent));
  assert.match(await s.page.textContent('.welcome-model'), /mock\/vision|Vision/);
  const suggestions = await s.page.$$('#empty .suggest');
  assert.equal(suggestions.length, 4);
  await suggestions[0].click();
  assert.equal(await s.page.inputValue('#input'), 'Explain a concept simply, with an example');
  await s.page.fill('#input', '');
  await s.page.evaluate(() => document.activeElement.blur());
  await docShot(s.page, 'welcome');
  // Shortcuts.
  await s.page.keyboard.press('Control+/');
  await s.page.waitForSelector('#shortcuts[open]');
  assert.equal(await s.page.$$eval('#shortcuts tr', (e) => e.length), 5);
  await docShot(s.page, 'shortcuts');
  await s.page.keyboard.press('Escape');
  await s.page.waitForSelector('#shortcuts', { state: 'hidden' });
  await s.page.keyboard.press('Control+k');
  assert.equal(await s.page.evaluate(() => document.activeElement.id), 'search');
  await s.page.keyboard.press('Shift+Escape');
  assert.equal(await s.page.evaluate(() => document.activeElement.id), 'input');
  // An image opens large.
  await s.page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'dot.png', { type: 'image/png' }));
    document.querySelector('#input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, PNG);
  await s.page.waitForSelector('#attachments img');
  await send(s.page, 'look');
  await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  await s.page.click('.msg.user .images img');
  await s.page.waitForSelector('#viewer[open] img.large');
  await s.page.keyboard.press('Escape');
  // Ctrl+Shift+O starts a new chat.
  await s.page.keyboard.press('Control+Shift+O');
  await s.page.waitForFunction(() => location.pathname === '/chats/new');
  // Jump to latest, in a long chat scrolled up.
  const messages = Array.from({ length: 60 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `line ${i}\n\nmore text ${i}` }));
  await s.api('POST', '/api/import/nextchat', { 'chat-next-web-store': { sessions: [{ topic: 'Long one', messages, lastUpdate: Date.now() }] } });
  await s.page.goto(s.base + '/');
  await s.page.waitForSelector('#chat-title >> text=Long one');
  assert.equal(await s.page.isVisible('#jump'), false);
  await s.page.$eval('#messages', (e) => { e.scrollTop = 0; e.dispatchEvent(new Event('scroll')); });
  await s.page.waitForSelector('#jump', { state: 'visible' });
  await s.page.click('#jump');
  await s.page.waitForSelector('#jump', { state: 'hidden' });
  // A favourite model comes first in the picker; a picked one is among the recent.
  await s.page.click('#model-btn');
  await s.page.fill('#picker-q', 'mock/web');
  await s.page.click('#picker-list li[data-id="mock/web"] .star');
  await s.page.fill('#picker-q', '');
  await s.page.waitForFunction(() => document.querySelector('#picker-list li')?.dataset.id === 'mock/web');
  await s.page.fill('#picker-q', 'mock/slow');
  await s.page.press('#picker-q', 'Enter');
  await s.page.click('#model-btn');
  await s.page.waitForSelector('#picker-list li');
  await s.page.waitForFunction(() => [...document.querySelectorAll('#picker-list li')].slice(0, 2).map((e) => e.dataset.id).join() === 'mock/web,mock/slow');
  await s.page.keyboard.press('Escape');
  assert.deepEqual(s.errors, []);
});

test('masks: a built-in persona sets the chat up; NextChat masks are imported as masks', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, 'mock/echo');
  await s.page.click('#empty .masks button >> text=Code reviewer');
  await s.page.waitForSelector('#composer-note >> text=Code reviewer');
  assert.match((await s.api('GET', `/api/chats/${chat.id}`)).settings.system_prompt, /senior software engineer/);
  assert.equal(await s.page.getAttribute('#empty .masks button >> text=Code reviewer', 'aria-pressed'), 'true');
  const backup = {
    'chat-next-web-store': { sessions: [] },
    'mask-store': { masks: { m1: { id: 'm1', name: 'Pirate', context: [{ role: 'system', content: 'Talk like a pirate.' }], modelConfig: { model: 'mock/echo', temperature: 0.9 } } } },
  };
  await s.page.click('#open-settings');
  await s.page.setInputFiles('#st-import', { name: 'backup.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(backup)) });
  await s.page.waitForSelector('#st-import-out >> text=1 masks');
  await s.page.goto(s.base + '/chats/new');
  await s.page.click('#empty .masks button >> text=Pirate');
  await send(s.page, 'ahoy');
  await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  const id = await s.page.evaluate(() => location.pathname.slice('/chats/'.length));
  const made = await s.api('GET', `/api/chats/${id}`);
  assert.equal(made.settings.system_prompt, 'Talk like a pirate.');
  assert.equal(made.settings.temperature, 0.9);
  assert.deepEqual(s.errors, []);
});

test('installable: a manifest and a service worker that caches the shell, never the API; settings fit 860 px', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/echo');
  const manifest = await (await fetch(s.base + '/manifest.webmanifest')).json();
  assert.equal(manifest.display, 'standalone');
  assert.equal(manifest.start_url, '/');
  assert.ok(await s.page.evaluate(() => navigator.serviceWorker.ready.then((r) => !!r.active)));
  await s.page.reload();
  await send(s.page, 'cache check');
  await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
  const cached = await s.page.evaluate(async () => (await Promise.all((await caches.keys()).map(async (k) => (await (await caches.open(k)).keys()).map((r) => new URL(r.url).pathname)))).flat());
  assert.ok(cached.length > 0 && cached.every((p) => p.startsWith('/assets/')), cached.join(' '));
  // The settings dialog's Save button is on screen at 1280×860.
  await s.page.click('#open-settings');
  const save = await s.page.waitForSelector('#st-save');
  const box = await save.boundingBox();
  assert.ok(box.y + box.height <= 860, `Save ends at ${box.y + box.height}`);
  assert.ok(await s.page.evaluate(() => { const b = document.querySelector('#st-save').getBoundingClientRect(); return document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2)?.id === 'st-save'; }));
  await docShot(s.page, 'settings');
  await s.page.keyboard.press('Escape');
  await s.page.emulateMedia({ colorScheme: 'dark' });
  await s.page.evaluate(() => document.activeElement.blur());
  await docShot(s.page, 'dark');
  assert.deepEqual(s.errors, []);
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

test('a 5 MB photo is downscaled in the browser and sent', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, 'mock/vision');
  // A phone-sized picture, made here: a gradient with noise, so JPEG cannot shrink it to nothing.
  const size = await s.page.evaluate(async () => {
    const c = document.createElement('canvas');
    c.width = 4032;
    c.height = 3024;
    const ctx = c.getContext('2d');
    const img = ctx.createImageData(c.width, c.height);
    let x = 1;
    for (let i = 0, n = 0; i < img.data.length; i += 4, n++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const px = n % c.width, py = (n / c.width) | 0;
      img.data[i] = (px * 255) / c.width + ((x >>> 8) % 96);
      img.data[i + 1] = (py * 255) / c.height + ((x >>> 16) % 96);
      img.data[i + 2] = 128 + ((x >>> 24) % 96);
      img.data[i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const blob = await new Promise((r) => c.toBlob(r, 'image/jpeg', 0.92));
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'photo.jpg', { type: 'image/jpeg' }));
    document.querySelector('#input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    return blob.size;
  });
  assert.ok(size > 5_000_000, `the photo weighs ${size} bytes`);
  await s.page.waitForSelector('#attachments img');
  await send(s.page, 'What is in this photo?');
  const reply = await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 30000 });
  assert.match(await reply.textContent(), /I see 1 image/);
  const sent = await s.page.$eval('.msg.user .images img', (e) => new Promise((res) => (e.complete ? res([e.naturalWidth, e.naturalHeight]) : e.addEventListener('load', () => res([e.naturalWidth, e.naturalHeight])))));
  assert.deepEqual(sent, [2048, 1536]);
  // Still over the 1 MiB every other API takes: the chat API's own limit let it in.
  const stored = (await s.api('GET', `/api/chats/${chat.id}`)).messages[0].attachments[0];
  assert.match(stored, /^data:image\/jpeg;base64,/);
  assert.ok(stored.length > 1 << 20, `${stored.length} bytes`);
  assert.deepEqual(s.errors, []);
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

test('the sidebar reaches all of 150 chats, grouped by day; a pinned chat stays on top; search finds titles, one row per chat', async (t) => {
  const s = await setup(t);
  await openChat(s, 'mock/echo');
  const now = Date.now(), day = 864e5;
  const ages = (i) => (i < 40 ? 0 : i < 60 ? 1 : i < 90 ? 3 : 30);
  const sessions = Array.from({ length: 150 }, (_, i) => {
    const at = now - ages(i) * day - i * 100;
    return { topic: `Imported chat ${i}`, messages: [{ role: 'user', content: `the **body** of chat ${i}`, date: new Date(at).toISOString() }], lastUpdate: at };
  });
  await s.api('POST', '/api/import/nextchat', { 'chat-next-web-store': { sessions } });
  await s.page.reload();
  await s.page.waitForSelector('#chat-list li.group');
  // Scroll to the end until nothing more loads.
  while (await s.page.$('#chat-more')) {
    const before = await s.page.$$eval('#chat-list li[data-id]', (e) => e.length);
    await s.page.$eval('.chat-nav', (e) => { e.scrollTop = e.scrollHeight; });
    await s.page.waitForFunction((n) => !document.querySelector('#chat-more') || document.querySelectorAll('#chat-list li[data-id]').length > n, before);
  }
  const ids = await s.page.$$eval('#chat-list li[data-id]', (els) => els.map((e) => e.dataset.id));
  assert.equal(ids.length, 151);
  assert.equal(new Set(ids).size, 151);
  assert.deepEqual(await s.page.$$eval('#chat-list li.group', (els) => els.map((e) => e.textContent)), ['Today', 'Yesterday', 'Last 7 days', 'Older']);
  assert.match(await s.page.textContent('#chat-list li[data-id]:last-child'), /Imported chat 149/);
  // Pin the oldest: it moves to the top, under "Pinned", and stays there after a reload.
  const oldest = ids[ids.length - 1];
  await s.page.hover(`#chat-list li[data-id="${oldest}"]`);
  await s.page.click(`#chat-list li[data-id="${oldest}"] button[data-act=pin]`);
  await s.page.waitForFunction((id) => document.querySelector('#chat-list li[data-id]').dataset.id === id, oldest);
  await s.page.reload();
  await s.page.waitForSelector('#chat-list li.group');
  assert.deepEqual(await s.page.$$eval('#chat-list li', (els) => els.slice(0, 2).map((e) => e.dataset.id || e.textContent)), ['Pinned', oldest]);
  // One tab stop per chat: the actions are reached by keys on the link.
  assert.equal(await s.page.$$eval('#chat-list li[data-id] button', (els) => els.filter((b) => b.tabIndex >= 0).length), 0);
  await docShot(s.page, 'sidebar');
  // Search matches titles as well as text, one row per chat, without raw Markdown.
  await s.page.fill('#search', 'Imported chat 14');
  await s.page.waitForSelector('#search-results li[data-id]');
  const rows = await s.page.$$eval('#search-results li[data-id]', (els) => els.map((e) => e.dataset.id));
  assert.equal(rows.length, new Set(rows).size, 'one row per chat');
  assert.ok(rows.length >= 11, rows.length); // 14 and 140–149
  await s.page.fill('#search', 'body chat');
  await s.page.waitForFunction(() => document.querySelectorAll('#search-results li[data-id]').length >= 30);
  assert.doesNotMatch(await s.page.textContent('#search-results'), /\*\*/);
  // Pages: scrolling the results reaches all 150.
  while (await s.page.$('#search-more')) {
    const before = await s.page.$$eval('#search-results li[data-id]', (e) => e.length);
    await s.page.$eval('.chat-nav', (e) => { e.scrollTop = e.scrollHeight; });
    await s.page.waitForFunction((n) => !document.querySelector('#search-more') || document.querySelectorAll('#search-results li[data-id]').length > n, before);
  }
  assert.equal(await s.page.$$eval('#search-results li[data-id]', (e) => e.length), 150);
  assert.deepEqual(s.errors, []);
});

test('chats open in place without a page load, keeping the sidebar scrolled; New chat stores nothing until its first message', async (t) => {
  const s = await setup(t);
  const sessions = Array.from({ length: 80 }, (_, i) => ({ topic: `Switch chat ${i}`, messages: [{ role: 'user', content: `question ${i}` }, { role: 'assistant', content: `answer number ${i}` }], lastUpdate: Date.now() - i * 1000 }));
  await s.api('POST', '/api/import/nextchat', { 'chat-next-web-store': { sessions } });
  const modelLists = [];
  s.page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/models') modelLists.push(r.url()); });
  await s.page.goto(s.base + '/');
  await s.page.waitForSelector('#chat-list li[data-id]');
  assert.match(await s.page.textContent('#chat-title'), /Switch chat 0/);
  await s.page.evaluate(() => { window.__samePage = true; });
  await s.page.$eval('.chat-nav', (e) => { e.scrollTop = 600; });
  const scrolled = await s.page.$eval('.chat-nav', (e) => e.scrollTop);
  assert.ok(scrolled > 0);
  const link = await s.page.waitForSelector('#chat-list a >> text=Switch chat 20');
  const id = await link.evaluate((a) => a.closest('li').dataset.id);
  await link.click();
  await s.page.waitForFunction(() => document.querySelector('#chat-title').textContent === 'Switch chat 20');
  await s.page.waitForSelector('.msg.assistant >> text=answer number 20');
  assert.equal(await s.page.evaluate(() => location.pathname), `/chats/${id}`);
  assert.equal(await s.page.evaluate(() => window.__samePage), true, 'no page load');
  assert.equal(await s.page.$eval('.chat-nav', (e) => e.scrollTop), scrolled);
  assert.equal(await s.page.getAttribute(`#chat-list li[data-id="${id}"] a`, 'aria-current'), 'page');
  // The event stream follows the chat on screen: a message sent here is answered here.
  await send(s.page, 'hello after switching');
  await s.page.waitForSelector('.msg.assistant[data-status=complete] >> text=hello after switching', { timeout: 15000 });
  // Back goes to the previous chat, still without a load.
  await s.page.goBack();
  await s.page.waitForFunction(() => document.querySelector('#chat-title').textContent === 'Switch chat 0');
  await s.page.waitForSelector('.msg.assistant >> text=answer number 0');
  assert.equal(await s.page.$$eval('.msg', (e) => e.length), 2);
  assert.equal(await s.page.evaluate(() => window.__samePage), true);
  // New chat, three times: nothing stored until the first message.
  const count = async () => {
    let n = 0;
    for (let r = await s.api('GET', '/api/chats?limit=200'); ; r = await s.api('GET', `/api/chats?limit=200&before=${encodeURIComponent(r.next)}`)) {
      n += r.chats.length;
      if (!r.next) return n;
    }
  };
  assert.equal(await count(), 80);
  for (let i = 0; i < 3; i++) await s.page.click('#new-chat');
  assert.equal(await s.page.evaluate(() => location.pathname), '/chats/new');
  assert.equal(await s.page.$$eval('.msg', (e) => e.length), 0);
  assert.equal(await count(), 80);
  await send(s.page, 'a new chat begins');
  await s.page.waitForSelector('.msg.assistant[data-status=complete] >> text=a new chat begins', { timeout: 15000 });
  assert.equal(await count(), 81);
  const newId = await s.page.evaluate(() => location.pathname.slice('/chats/'.length));
  assert.notEqual(newId, 'new');
  await s.page.waitForSelector(`#chat-list li[data-id="${newId}"]`);
  assert.equal(await s.page.evaluate(() => window.__samePage), true);
  // A reload of /chats/new is a new chat again, and the model list comes from the cache.
  await s.page.goto(s.base + '/chats/new');
  await s.page.waitForSelector('#input');
  assert.equal(await count(), 81);
  assert.ok(modelLists.length <= 3, modelLists.join(' '));
  assert.deepEqual(s.errors, []);
});

test('a message is edited in place, a chat renamed inline, deletes wait behind Undo; no prompt or confirm', async (t) => {
  const s = await setup(t);
  s.page.on('dialog', (d) => { s.errors.push(`dialog: ${d.message()}`); d.dismiss(); });
  const other = await s.api('POST', '/api/chats', { title: 'Other chat' });
  const c = await openChat(s, 'mock/echo');
  await send(s.page, 'first version');
  await s.page.waitForSelector('.msg.assistant[data-status=complete] >> text=first version', { timeout: 15000 });
  await s.page.hover('.msg.user');
  await s.page.click('.msg.user button[data-act=edit]');
  const box = await s.page.waitForSelector('.msg.user textarea.edit-box');
  assert.equal(await box.inputValue(), 'first version');
  await box.fill('never sent');
  await s.page.keyboard.press('Escape');
  await s.page.waitForSelector('.msg.user textarea.edit-box', { state: 'detached' });
  assert.equal((await s.page.textContent('.msg.user .body')).trim(), 'first version');
  await s.page.hover('.msg.user');
  await s.page.click('.msg.user button[data-act=edit]');
  await s.page.fill('.msg.user textarea.edit-box', 'second version');
  await s.page.keyboard.press('Shift+Enter');
  await s.page.keyboard.type('on two lines');
  await shot(s.page, 'edit-in-place');
  await s.page.keyboard.press('Control+Enter');
  await s.page.waitForSelector('.msg.assistant[data-status=complete] >> text=on two lines', { timeout: 15000 });
  // The old turn is kept as a branch: the path shows the new one, with a switch to the old.
  assert.equal(await s.page.$$eval('.msg', (e) => e.length), 2, 'only the active path is shown');
  assert.equal(await s.page.textContent('.msg.user .branch-pos'), '2 / 2');
  assert.match(await s.page.textContent('.msg.user .body'), /second version\s+on two lines/);
  // Rename where the name is.
  const li = `#chat-list li[data-id="${c.id}"]`;
  await s.page.hover(li);
  await s.page.click(`${li} button[data-act=rename]`);
  await s.page.fill(`${li} input.rename-box`, 'Renamed inline');
  await s.page.keyboard.press('Enter');
  await s.page.waitForFunction(() => document.querySelector('#chat-title').textContent === 'Renamed inline');
  assert.equal((await s.api('GET', `/api/chats/${c.id}`)).title, 'Renamed inline');
  assert.equal(await s.page.textContent(`${li} a`), 'Renamed inline');
  // Deleting a message hides it behind Undo; Undo brings it back and nothing is deleted.
  await s.page.hover('.msg.assistant');
  await s.page.click('.msg.assistant button[data-act=delete]');
  await s.page.waitForSelector('.msg.assistant', { state: 'hidden' });
  await s.page.click('#toast button');
  await s.page.waitForSelector('.msg.assistant', { state: 'visible' });
  assert.equal((await s.api('GET', `/api/chats/${c.id}`)).messages.length, 2);
  // Deleting a chat: gone from the list at once, deleted when the toast goes.
  const otherLi = `#chat-list li[data-id="${other.id}"]`;
  await s.page.hover(otherLi);
  await s.page.click(`${otherLi} button[data-act=delete-chat]`);
  await s.page.waitForSelector(otherLi, { state: 'detached' });
  assert.ok(await s.page.isVisible('#toast'));
  await shot(s.page, 'undo-toast');
  await s.page.waitForSelector('#toast', { state: 'hidden', timeout: 10000 });
  // The toast went as the delete was sent: wait for it to land.
  while ((await s.context.request.get(`${s.base}/api/chats/${other.id}`)).status() !== 404) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(s.errors, []);
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

test('regenerate keeps the old reply: ‹ 1 / 2 › switches between the branches, and a reload keeps the choice', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, 'mock/echo');
  await send(s.page, 'Hello branches');
  const first = await s.page.waitForSelector('.msg.assistant[data-status=complete]');
  const oldId = await first.getAttribute('data-id');
  await s.page.click(`#m-${oldId} [data-act=retry]`);
  await s.page.waitForFunction((old) => {
    const a = document.querySelector('.msg.assistant[data-status=complete]');
    return a && a.dataset.id !== old && a.querySelector('.branch-pos')?.textContent === '2 / 2';
  }, oldId);
  assert.equal(await s.page.$$eval('.msg.assistant', (els) => els.length), 1, 'one branch shown at a time');
  await s.page.click('.msg.assistant .branch [data-act=branch]:not([disabled])');
  await s.page.waitForSelector(`#m-${oldId} .branch-pos >> text=1 / 2`);
  await shot(s.page, 'branches');
  await s.page.reload();
  await s.page.waitForSelector(`#m-${oldId} .branch-pos >> text=1 / 2`);
  const saved = await s.api('GET', `/api/chats/${chat.id}`);
  assert.equal(saved.messages[1].id, oldId);
  assert.deepEqual(s.errors, []);
});

test('a compare streams side by side, resumes after a reload, stops one column, and continues with the chosen one', async (t) => {
  const s = await setup(t);
  const chat = await openChat(s, 'mock/echo');
  await s.page.click('#compare-btn');
  await s.page.check('#compare-list input[data-model="mock/echo"]');
  await s.page.fill('#compare-q', 'slow');
  await s.page.check('#compare-list input[data-model="mock/slow"]');
  await s.page.click('#input');
  assert.equal(await s.page.getAttribute('#compare-btn', 'aria-pressed'), 'true');
  await send(s.page, 'Compare this please');
  await s.page.waitForFunction(() => document.querySelectorAll('#compare .col').length === 2);
  // Columns are in the order the replies were stored: mock/echo, then mock/slow.
  const slowCol = '#compare .col:last-child';
  assert.equal(await s.page.textContent(`${slowCol} .col-model`), 'mock/slow');
  await s.page.waitForFunction((sel) => (document.querySelector(`${sel} .body`)?.textContent || '').length > 10, slowCol);
  // A reload mid-compare shows every column where it is (the server renders them), and they go on.
  const html = await (await s.context.request.get(`${s.base}/chats/${chat.id}`)).text();
  assert.equal((html.match(/<div class="col[ "]/g) || []).length, 2, 'the page has both columns');
  await s.page.reload();
  await s.page.waitForFunction(() => document.querySelectorAll('#compare .col').length === 2);
  const before = await s.page.$eval(`${slowCol} .body`, (e) => e.textContent.length);
  assert.ok(before > 10, 'the slow column kept its text');
  await s.page.waitForFunction(({ sel, n }) => document.querySelector(`${sel} .body`).textContent.length > n + 5, { sel: slowCol, n: before });
  assert.match(await s.page.textContent('#compare .col:first-child .col-stats'), /first token [\d.]+ s/);
  await shot(s.page, 'compare-columns');
  // Below 700 px the columns are tabs.
  await s.page.setViewportSize({ width: 600, height: 800 });
  assert.ok(await s.page.isVisible('.compare-tabs'));
  assert.equal(await s.page.$$eval('#compare .col', (cols) => cols.filter((c) => c.offsetParent !== null).length), 1);
  await s.page.click('.compare-tabs [data-for]:last-child');
  assert.ok(await s.page.isVisible(`${slowCol} .msg`));
  await shot(s.page, 'compare-tabs');
  await s.page.setViewportSize({ width: 1280, height: 860 });
  // Stop the slow one alone, then continue with it.
  await s.page.click(`${slowCol} [data-act=stop-one]`);
  await s.page.waitForSelector(`${slowCol} .msg[data-status=stopped]`);
  const slowId = await s.page.getAttribute(slowCol, 'data-id');
  await s.page.click(`${slowCol} [data-act=continue]`);
  await s.page.waitForSelector(`${slowCol}.selected`);
  await send(s.page, 'And then?');
  await s.page.waitForFunction(() => !document.querySelector('#compare'));
  await s.page.waitForSelector('.msg.assistant[data-status=complete] >> text=And then?');
  await s.page.waitForSelector(`#m-${slowId} .branch-pos >> text=2 / 2`);
  const saved = await s.api('GET', `/api/chats/${chat.id}`);
  assert.deepEqual(saved.messages.map((m) => m.id).slice(1, 2), [slowId]);
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
