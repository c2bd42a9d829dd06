// Starts the real binaries (mock-openrouter and switchboard) and Debian's chromium for one test.
// Binary paths come from SWITCHBOARD_BIN and MOCK_OPENROUTER_BIN (set by
// crates/switchboard/tests/browser.rs); screenshots go to SCREENSHOT_DIR.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..');
export const SHOTS = process.env.SCREENSHOT_DIR || join(REPO, 'target', 'browser-screenshots');
mkdirSync(SHOTS, { recursive: true });

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through cargo test -p switchboard --test browser)`);
  return v;
}

/** Spawn a process and resolve with its base URL once it prints `listening on http://…`. */
function startProcess(cmd, args, env, cleanups) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${out}${err}`)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${cmd} exited with ${code}: ${err}`)); });
    cleanups.push(() => new Promise((res) => {
      if (child.exitCode !== null) return res();
      child.once('exit', res);
      child.kill('SIGTERM');
      setTimeout(() => { child.kill('SIGKILL'); res(); }, 3000);
    }));
  });
}

/**
 * One mock upstream, one switchboard on a fresh database, one browser with a fresh profile.
 * Returns { base, mock, context, page, api } where api(method, path, body) calls the JSON API.
 */
export async function setup(t, { env = {}, viewport = { width: 1280, height: 860 }, locale = 'en-US', colorScheme = 'light', waitCatalog = true, browserArgs = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-browser-'));
  // Undo in reverse order: browser, then servers, then the directory they wrote to.
  const cleanups = [() => rmSync(dir, { recursive: true, force: true, maxRetries: 5 })];
  t.after(async () => { for (const f of cleanups.reverse()) await f(); });
  const mock = await startProcess(need('MOCK_OPENROUTER_BIN'), ['--port', '0', '--delta-ms', '20'], {}, cleanups);
  const base = await startProcess(need('SWITCHBOARD_BIN'), ['serve'], {
    SWITCHBOARD_ADDR: '127.0.0.1:0',
    OPENROUTER_URL: `${mock}/api`,
    OPENROUTER_API_KEY: 'sk-or-test',
    DATABASE_URL: `sqlite://${join(dir, 'sb.db')}`,
    SWITCHBOARD_CATALOG_REFRESH: '1h',
    DEFAULT_MODEL: 'mock/echo',
    RUST_LOG: 'warn',
    ...env,
  }, cleanups);
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', ...browserArgs],
    viewport,
    locale,
    colorScheme,
  });
  cleanups.push(() => context.close());
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const api = async (method, path, body) => {
    const r = await context.request.fetch(base + path, { method, data: body, headers: { Origin: base } });
    if (!r.ok()) throw new Error(`${method} ${path}: ${r.status()} ${await r.text()}`);
    return r.status() === 204 ? null : r.json();
  };
  if (waitCatalog && !env.CODE) {
    // The catalog loads in the background at start; wait for the full list.
    for (let i = 0; i < 100; i++) {
      const r = await api('GET', '/api/models?q=qwen3-32b');
      if (r.models.some((m) => m.id === 'qwen/qwen3-32b:free')) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  return { base, mock, context, page, api, errors };
}

/** A new chat using `model`, opened in the page. */
export async function openChat(s, model, title) {
  const chat = await s.api('POST', '/api/chats', { title, settings: model ? { model } : {} });
  await s.page.goto(`${s.base}/chats/${chat.id}`);
  await s.page.waitForSelector('#input');
  return chat;
}

/** Type a message and send it with Enter. */
export async function send(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

export const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`) });
