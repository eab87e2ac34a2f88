/// <reference lib="dom" />
// Deep links the dashboard must survive, in headless Chromium against web/dist served as files (no pool needed:
// the API answers 404): a hash that is not valid percent-encoding (a hand-typed or cut link) must not blank the
// page with an uncaught URIError, and an account name the API cannot take must say so instead of asking the API
// (which answers a raw schema message) and opening a WebSocket that is refused and retried forever.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Browser, type Page, chromium } from 'playwright-core';

const CHROMIUM = process.env.HASHHUB_CHROMIUM ?? '/usr/bin/chromium';
const DIST = path.resolve('web', 'dist');

describe('dashboard deep links', { skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}`, timeout: 60_000 }, () => {
  let server: Server;
  let browser: Browser;
  let base = '';
  const apiCalls: string[] = [];

  before(async () => {
    execFileSync(process.execPath, ['web/ensure-built.mjs'], { stdio: 'inherit' });
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname.startsWith('/api/')) {
        apiCalls.push(url.pathname + url.search);
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"not here"}}');
        return;
      }
      const file = path.join(DIST, url.pathname === '/' ? 'index.html' : path.normalize(url.pathname));
      if (!file.startsWith(DIST) || !existsSync(file)) return void res.writeHead(404).end();
      const type = file.endsWith('.js') ? 'text/javascript' : file.endsWith('.css') ? 'text/css' : 'text/html';
      res.writeHead(200, { 'content-type': type }).end(readFileSync(file));
    });
    server.on('upgrade', (req, socket) => { apiCalls.push(`ws ${req.url}`); socket.destroy(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
  });

  async function open(hash: string): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/${hash}`);
    return { page, errors };
  }

  test('a link with a bad percent escape (#/account/50%off) renders the account page, no uncaught error', async () => {
    const { page, errors } = await open('#/account/50%off');
    await page.locator('nav a.active').waitFor({ timeout: 5000 });
    assert.equal(await page.locator('nav a.active').textContent(), 'Account');
    assert.equal(await page.inputValue('input[name="account"]'), '50%off');
    assert.deepEqual(errors, []);
    // and a hash change to such a link from another page
    await page.evaluate(() => { location.hash = '#/pool'; });
    await page.evaluate(() => { location.hash = '#/account/%E0%A4%A'; });
    await page.waitForFunction(() => document.querySelector('nav a.active')?.textContent === 'Account');
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('an account name the API cannot take says so and asks the API nothing', async () => {
    apiCalls.length = 0;
    const { page, errors } = await open('#/account/a%2Fb');
    const msg = page.locator('#account-invalid');
    await msg.waitFor({ timeout: 5000 });
    assert.match((await msg.textContent()) ?? '', /“a\/b” is not an account name/);
    await page.waitForTimeout(1500);
    assert.deepEqual(apiCalls.filter((c) => c.includes('account')), []);
    assert.equal(await page.locator('#account-hashrate, #account-private').count(), 0);
    // a valid name still asks the API
    await page.fill('input[name="account"]', 'alice_1');
    await page.click('form.row button[type="submit"]');
    await page.locator('#account-hashrate').waitFor({ timeout: 5000 });
    assert.ok(apiCalls.some((c) => c.startsWith('/api/v1/accounts/alice_1/live')), JSON.stringify(apiCalls));
    assert.deepEqual(errors, []);
    await page.close();
  });
});
