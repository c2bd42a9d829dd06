// Cross-site attacks as a browser makes them (issue 20, item 1): a page on another localhost port
// — same-site, so a SameSite=Lax cookie rides along — tries to spend the server's key, write a
// chat and log the user out; a DNS-rebound name tries to reach an open server's chats.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { setup } from '../harness.js';

/** Serves `html` on a fresh 127.0.0.1 port until the test ends; resolves with its base URL. */
function attackerSite(t, html) {
  return new Promise((resolve) => {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
    t.after(() => new Promise((res) => server.close(res)));
  });
}

// Every write a forging page can make without reading the answer: "simple" requests (text/plain,
// no-cors) need no preflight, so only the server's own origin check can refuse them.
function forgeryPage(target) {
  const body = JSON.stringify({ model: 'mock/echo', messages: [{ role: 'user', content: 'forged' }] });
  return `<!doctype html><title>loading</title><script>
    const shot = (path, body) => fetch(${JSON.stringify(target)} + path, {
      method: 'POST', mode: 'no-cors', credentials: 'include',
      headers: { 'content-type': 'text/plain' }, body,
    }).then(() => 'sent', (e) => 'failed: ' + e);
    Promise.all([
      shot('/api/openrouter/v1/chat/completions', ${JSON.stringify(body)}),
      shot('/v1/chat/completions', ${JSON.stringify(body)}),
      shot('/api/chats', '{"title":"forged"}'),
      shot('/api/logout', ''),
    ]).then((r) => { document.title = 'done ' + r.join(','); });
  </script>`;
}

async function upstreamCompletions(mock) {
  const all = await (await fetch(`${mock}/__mock/requests`)).json();
  return all.filter((r) => r.path.includes('/chat/completions'));
}

for (const variant of ['an open server', 'an access-code server']) {
  test(`a page on another port cannot make ${variant} spend its key, write or log out`, async (t) => {
    const env = variant === 'an open server' ? {} : { CODE: 'letmein' };
    const s = await setup(t, { env });
    if (env.CODE) {
      await s.page.goto(s.base + '/');
      await s.page.fill('#login-code', 'letmein');
      await Promise.all([s.page.waitForNavigation(), s.page.press('#login-code', 'Enter')]);
      await s.page.waitForSelector('#input');
    }
    const before = await s.api('GET', '/api/chats');
    const evil = await attackerSite(t, forgeryPage(s.base));
    assert.notEqual(new URL(evil).port, new URL(s.base).port);

    const attack = await s.context.newPage();
    await attack.goto(evil);
    await attack.waitForFunction(() => document.title.startsWith('done'));
    // The browser did send them (a refusal happens on the server, not in the browser).
    assert.match(await attack.title(), /^done sent,sent,sent,sent$/);

    assert.deepEqual(await upstreamCompletions(s.mock), [], 'the server key was spent');
    const after = await s.api('GET', '/api/chats');
    assert.equal(after.chats.length, before.chats.length, 'a chat was forged');
    // Still logged in: the forged logout did nothing, and the user's own page still sends.
    await s.page.goto(s.base + '/');
    await s.page.waitForSelector('#input');
    await s.page.fill('#input', 'still here');
    await s.page.press('#input', 'Enter');
    await s.page.waitForSelector('.msg.assistant[data-status=complete]', { timeout: 15000 });
    const sent = JSON.stringify(await upstreamCompletions(s.mock));
    assert.match(sent, /still here/);
    assert.doesNotMatch(sent, /forged/);
  });
}

test('a DNS-rebound name cannot reach an open server', async (t) => {
  // rebind.test resolves to 127.0.0.1 in this browser, as an attacker's DNS would make it.
  const s = await setup(t, { browserArgs: ['--host-resolver-rules=MAP rebind.test 127.0.0.1'] });
  const port = new URL(s.base).port;
  const page = await s.context.newPage();
  const res = await page.goto(`http://rebind.test:${port}/api/chats`);
  assert.equal(res.status(), 421);
  const body = await res.json();
  assert.equal(typeof body.error.message, 'string');
  // The loopback address itself still works.
  const ok = await page.goto(`${s.base}/api/chats`);
  assert.equal(ok.status(), 200);
});
