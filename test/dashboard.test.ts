/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { btc, satPhDay } from '../web/src/format.ts';
import {
  type AccountLive, type BookLevel, type Candle, type MarketAsk, type MarketBid, type PoolLive, type RouteView,
  accountNumbers, levelNumbers, orderNumbers, poolNumbers, routeNumbers,
} from '../web/src/views.ts';
import { assertShown, expectShown, holdAnswer, holdFeed, screenNumbers } from './helpers/browser.ts';
import { OPERATOR_TOKEN, TICK_SECONDS, type DashboardPool, startDashboardPool } from './helpers/dashboard.ts';
import { SKIP_PG } from './helpers/pg.ts';
import { REGTEST_ADDRESS } from './helpers/pool.ts';
import { until } from './helpers/until.ts';

// The dashboard in headless Chromium against a running pool with the project's miners, wired as `hashhub pool`
// is (the market and routing on the pool's own books, a real buyer's pool to route to): the numbers on screen are
// those of the exact API answer the page rendered (the live feed and later answers are held back until that
// answer is checked, then released: the numbers move to the feed's), the charts have points (the candle chart
// the API's candles), an order placed in the page reaches the book as the API shows it and moves the seller's
// miners to the buyer's pool, the seller and the buyer see the fill and reason the API gives, the operator sees
// that route and its destination's health as /api/v1/routes gives them, a private page without a token shows and
// fetches nothing private, tokens never reach web storage, the strict CSP holds (no violation), and the pages fit
// a phone's width. Screenshots go to test-artifacts/screenshots.

const CHROMIUM = process.env.HASHHUB_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.resolve('test-artifacts', 'screenshots');
/** Bounds for what happens within a tick or two of the market's 5 s clock. */
const TICKS = (n: number) => n * TICK_SECONDS * 1000 + 5000;

type Book = { tick: { tick: number; price: number | null } | null; bids: BookLevel[]; asks: BookLevel[] };

/** The book as the page shows it: per side, each level's figures (data-k within tr[data-price]). */
async function shownBook(page: Page): Promise<{ bids: Record<string, string>[]; asks: Record<string, string>[] }> {
  // No named function inside: tsx's keepNames would wrap it in a __name() call the page does not have.
  return page.evaluate(() => {
    const out = { bids: [] as Record<string, string>[], asks: [] as Record<string, string>[] };
    for (const s of ['bids', 'asks'] as const) {
      out[s] = [...document.querySelectorAll(`#book-${s} tr[data-price]`)].map((tr) =>
        Object.fromEntries([...tr.querySelectorAll('[data-k]')].map((el) => [el.getAttribute('data-k')!, el.textContent ?? ''])));
    }
    return out;
  });
}

/** Wait (bounded) until the page's book is GET /api/v1/market/book's, level by level; returns that answer. */
async function bookAsTheApiShowsIt(page: Page, base: string, what: string): Promise<Book> {
  let book: Book | null = null;
  let shown: Awaited<ReturnType<typeof shownBook>> | null = null;
  // The book moves at each tick (the page hears it on the market's WebSocket): compare one API answer with the
  // screen at a time, until the two agree.
  await until(async () => {
    book = (await (await fetch(`${base}/api/v1/market/book`)).json()) as Book;
    shown = await shownBook(page);
    return JSON.stringify(shown) === JSON.stringify({ bids: book.bids.map(levelNumbers), asks: book.asks.map(levelNumbers) });
  }, TICKS(2), () => `${what}: the page's book ${JSON.stringify(shown)} vs GET /api/v1/market/book ${JSON.stringify(book)}`);
  return book!;
}

async function unlockMarket(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/#/market`);
  await page.locator('#market-book').waitFor();
  await page.fill('input[name="market-token"]', token);
  await page.click('#market-mine button[type="submit"]');
}

describe('dashboard in a browser', { skip: SKIP_PG, timeout: 120_000 }, () => {
  let pool: DashboardPool;
  let browser: Browser;
  let ctx: BrowserContext;
  const cspErrors: string[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does), or HASHHUB_CHROMIUM=<path>`);
    mkdirSync(SHOTS, { recursive: true });
    // The page under test is built from the sources these assertions import (npm test does this too).
    execFileSync(process.execPath, ['web/ensure-built.mjs'], { stdio: 'inherit' });
    [pool, browser] = await Promise.all([
      startDashboardPool(),
      chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] }),
    ]);
    pool.startFleet();
    // Data within seconds of the first share: accepted shares and a block before the pages are opened.
    // A block comes about every 4 s at this hashrate (one share in 40 is one): 60 s, not 30, leaves no block to luck
    // (about 0.15 % of runs found none in 28 s).
    await until(() => pool.running.pool.stats.shares.accepted >= 20 && pool.running.pool.stats.blocks.candidates >= 1, 60_000, 'shares and a block from the fleet');
    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    ctx.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspErrors.push(m.text()); });
  });
  after(async () => {
    await ctx?.close();
    await browser?.close();
    await pool?.stop();
  });

  test('pool page: the numbers of the answer it rendered, then the feed’s; the chart has points; strict CSP', async () => {
    const page = await ctx.newPage();
    page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspErrors.push(m.text()); });
    const feed = await holdFeed(page);
    const answer = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/pool/live');
    const seriesAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/pool/hashrate');
    const doc = await page.goto(`${pool.base}/#/pool`);
    const csp = doc!.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);

    const res = await answer;
    const body = (await res.json()) as PoolLive;
    assert.ok(body.shares24h.accepted > 0 && body.hashrate['5m'].hashrate > 0, `the pool has shares: ${JSON.stringify(body).slice(0, 600)}`);
    await page.waitForFunction((a) => document.querySelector('#pool-hashrate')?.getAttribute('data-asof') === String(a), body.asOf);
    const shown = await screenNumbers(page, '#pool-hashrate, #pool-shares, #pool-network, #pool-blocks');
    assert.deepEqual(shown.asOf, [String(body.asOf)]);
    assertShown(shown.n, poolNumbers(body), 'pool page vs GET /api/v1/pool/live');
    // The blocks table lists the answer's blocks with their status.
    for (const b of body.blocks) assert.equal(await page.locator(`#pool-blocks tr[data-hash="${b.hash}"]`).count(), 1, `block ${b.height} listed`);

    // The chart: uPlot drew the series the API answered, with non-zero points.
    const series = (await (await seriesAnswer).json()) as { points: { hashrate: number }[] };
    assert.ok(series.points.some((p) => p.hashrate > 0), 'the hashrate series has non-zero points');
    await page.waitForFunction((n) => Number(document.querySelector('#pool-chart')?.getAttribute('data-points')) === n, series.points.length);
    assert.equal(await page.locator('#pool-chart canvas').count(), 1);

    // Live: released, the feed's frames replace the numbers, and the screen shows the frame it rendered.
    feed.release();
    await until(() => feed.frames.some((f) => f.type === 'pool' && f.data!.asOf! > body.asOf), 10_000, 'a pool frame from the feed');
    await page.waitForFunction((a) => Number(document.querySelector('#pool-hashrate')?.getAttribute('data-asof')) > a, body.asOf);
    const moved = await screenNumbers(page, '#pool-hashrate, #pool-shares, #pool-network, #pool-blocks');
    const frame = feed.frames.find((f) => f.type === 'pool' && String(f.data!.asOf) === moved.asOf[0]);
    assert.ok(frame, `the screen shows a frame the feed sent (asOf ${moved.asOf[0]})`);
    assertShown(moved.n, poolNumbers(frame.data as PoolLive), 'pool page vs the WebSocket frame');
    await page.screenshot({ path: path.join(SHOTS, 'pool.png'), fullPage: true });
    await page.close();
  });

  test('account page: public figures equal the answer; without a token nothing private is shown or fetched; with it, the balance', async () => {
    const page = await ctx.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    const feed = await holdFeed(page);
    const answer = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/accounts/alice/live');
    const seriesAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/accounts/alice/live/hashrate');
    await page.goto(`${pool.base}/#/account/alice`);
    const body = (await (await answer).json()) as AccountLive;
    assert.equal(body.seen, true);
    assert.ok(body.workers.length >= 2, 'the fleet’s workers');
    await page.waitForFunction((a) => document.querySelector('#account-hashrate')?.getAttribute('data-asof') === String(a), body.asOf);
    const shown = await screenNumbers(page, '#account-hashrate, #account-workers, #account-rejects');
    assertShown(shown.n, accountNumbers(body), 'account page vs GET /api/v1/accounts/alice/live');
    const series = (await (await seriesAnswer).json()) as { points: { hashrate: number }[] };
    assert.ok(series.points.some((p) => p.hashrate > 0), 'the account’s series has non-zero points');
    await page.waitForFunction((n) => Number(document.querySelector('#account-chart')?.getAttribute('data-points')) === n, series.points.length);

    // Private: nothing without a token.
    const priv = page.locator('#account-private');
    await priv.waitFor();
    assert.match(await priv.innerText(), /owner or watcher token/);
    for (const k of ['balance', 'immature', 'inFlight', 'paid']) assert.equal(await page.locator(`[data-k="${k}"]`).count(), 0, `no ${k} without a token`);
    assert.equal(await page.locator('#account-settings, #account-earnings, #account-payouts').count(), 0);
    assert.deepEqual(requests.filter((p) => /\/(balance|earnings|payouts|settings|ledger|tokens)$/.test(p)), [], 'no private request without a token');
    feed.release();

    // With the owner token: the balance the API answered.
    const balance = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/accounts/alice/balance');
    await page.fill('input[name="token"]', pool.tokens.alice);
    await page.click('#account-private button[type="submit"]');
    const b = (await (await balance).json()) as { balance: string; paid: string };
    await page.locator('[data-k="balance"]').waitFor();
    assert.equal(await page.locator('[data-k="balance"]').innerText(), btc(b.balance));
    assert.equal(await page.locator('[data-k="paid"]').innerText(), btc(b.paid));
    await page.locator('#account-settings').waitFor();
    // Settings with the owner token: a new payout address, saved through PATCH and shown back.
    await page.fill('#account-settings input[name="payoutAddress"]', REGTEST_ADDRESS);
    const patched = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/accounts/alice/settings' && r.request().method() === 'PATCH');
    await page.click('#account-settings button[type="submit"]');
    const set = await patched;
    assert.equal(set.status(), 200, await set.text());
    assert.equal(((await set.json()) as { payoutAddress: string }).payoutAddress, REGTEST_ADDRESS);
    await page.getByText('Settings saved.').waitFor();
    // The token is in memory only.
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    assert.ok(!stored.includes(pool.tokens.alice), 'the token never reaches web storage or cookies');
    await page.screenshot({ path: path.join(SHOTS, 'account.png'), fullPage: true });

    // A phone: nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(200);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scroll on a phone (${overflow} px too wide)`);
    await page.screenshot({ path: path.join(SHOTS, 'account-phone.png'), fullPage: false });
    await page.close();
  });

  /** The bid placed in the market page (the operator's routes and the edit/cancel test follow it). */
  let bidId = 0;

  test('market page: a bid placed in the page reaches the book as the API shows it; seller and buyer see the fill and reason the API gives; the candle chart draws the API’s candles', async () => {
    // A seller: alice offers her fleet's workers at 40,000 sat/PH/day; the market measures their capacity from the
    // pool's rollups (market.capacityWindowMinutes).
    const ask = await fetch(`${pool.base}/api/v1/market/asks`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${pool.tokens.alice}` }, body: JSON.stringify({ minPrice: 40_000, workers: 'all' }),
    });
    const askText = await ask.text();
    assert.equal(ask.status, 201, askText);
    const askId = (JSON.parse(askText) as MarketAsk).id;

    const page = await ctx.newPage();
    // Held for the comparisons below: bob's first orders answer with a fill, and the first candles answer with a candle.
    const mine = await holdAnswer<{ bids: MarketBid[] }>(page, '/api/v1/market/bids', (b) => b.bids.some((x) => x.lastTick !== null && x.lastTick.fill !== '0'), 'bob’s bid with a fill');
    const candles = await holdAnswer<{ candles: Candle[] }>(page, '/api/v1/market/candles', (c) => c.candles.length > 0, 'a candle');
    await unlockMarket(page, pool.base, pool.tokens.bob);
    await page.locator('#place-order').waitFor();
    await page.fill('#place-order input[name="price"]', '54321');
    await page.fill('#place-order input[name="amount"]', '0.25');
    await page.fill('#place-order input[name="budget"]', '100000');
    await page.fill('#place-order input[name="url"]', pool.buyerPoolUrl);
    await page.fill('#place-order input[name="user"]', 'bob.rig');
    const placed = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/market/bids' && r.request().method() === 'POST');
    await page.click('#place-order button[type="submit"]');
    const res = await placed;
    const bidText = await res.text();
    assert.equal(res.status(), 201, bidText);
    const bid = JSON.parse(bidText) as MarketBid;
    bidId = bid.id;
    // Escrowed from the operator's credit; live once routing's probe of the buyer's pool has passed.
    assert.equal(bid.state, 'pending-probe');
    await page.locator(`#my-orders tr[data-order="bid-${bid.id}"]`).waitFor();

    // The probe passes, the next tick clears: the bid is in the book the page shows, as the API shows it.
    await page.locator('#book-bids tr[data-price="54321"]').waitFor({ timeout: TICKS(3) });
    const book = await bookAsTheApiShowsIt(page, pool.base, 'the book with the bid');
    assert.deepEqual(book.bids.map((l) => [l.price, l.orders]), [[54321, 1]], 'the API’s book has the bid');
    assert.deepEqual(book.asks.map((l) => [l.price, l.orders]), [[40000, 1]], 'and alice’s ask');

    // The buyer: the fill, queue position and reason of the answer the page rendered.
    const b = (await mine.answer(TICKS(2))).bids.find((x) => x.id === bid.id)!;
    assert.ok(b.lastTick && b.lastTick.fill !== '0', `bob’s bid filled: ${JSON.stringify(b)}`);
    await expectShown(page, `#my-orders tr[data-order="bid-${bid.id}"]`, orderNumbers(b), 'bob’s bid vs GET /api/v1/market/bids');
    await mine.release();

    // The clearing price: between the ask and the bid, shown; the candle chart draws the API's candles.
    const c = (await candles.answer(TICKS(2))).candles;
    await page.waitForFunction((n) => {
      const el = document.querySelector('#market-candle-chart');
      return Number(el?.getAttribute('data-points')) === n && Number(el?.getAttribute('data-drawn')) === n && el?.querySelector('canvas') !== null;
    }, c.length, { timeout: 5000 });
    assert.ok(c.every((x) => x.low >= 40_000 && x.high <= 54_321), `candles between the ask and the bid: ${JSON.stringify(c)}`);
    await candles.release();
    const tick = ((await (await fetch(`${pool.base}/api/v1/market/book`)).json()) as Book).tick!;
    assert.ok(tick.price !== null && tick.price >= 40_000 && tick.price <= 54_321, `a clearing price between the ask and the bid: ${JSON.stringify(tick)}`);
    // Every tick of these two orders clears at the same price, so the screen settles on it whatever tick it shows.
    await page.locator('[data-k="tick.price"]').filter({ hasText: satPhDay(tick.price) }).waitFor({ timeout: TICKS(1) });

    // The seller, in a page of her own: her ask's fill and reason as the API gives them.
    const seller = await ctx.newPage();
    const asks = await holdAnswer<{ asks: MarketAsk[] }>(seller, '/api/v1/market/asks', (a) => a.asks.some((x) => x.id === askId && x.lastTick !== null && x.lastTick.fill !== '0'), 'alice’s ask with a fill');
    await unlockMarket(seller, pool.base, pool.tokens.alice);
    const a = (await asks.answer(TICKS(2))).asks.find((x) => x.id === askId)!;
    await expectShown(seller, `#my-orders tr[data-order="ask-${askId}"]`, orderNumbers(a), 'alice’s ask vs GET /api/v1/market/asks');
    await asks.release();
    await seller.close();

    // A second priced tick: the tick prices chart has its points.
    await page.waitForFunction(() => Number(document.querySelector('#market-chart')?.getAttribute('data-points')) >= 2, undefined, { timeout: TICKS(2) });
    await page.screenshot({ path: path.join(SHOTS, 'market.png'), fullPage: true });
    // The index's methodology link leads to the published methodology, served by the API process.
    const href = await page.locator('#methodology').getAttribute('href');
    const doc = await fetch(`${pool.base}${href}`);
    assert.equal(doc.status, 200);
    assert.match(await doc.text(), /daily index/i);
    await page.close();
  });

  test('operator page: the routes table is /api/v1/routes’ answer: the bid’s route to the buyer’s pool and that pool’s health; spool backlog, node endpoints', async () => {
    assert.ok(bidId > 0, 'the market test placed a bid');
    const page = await ctx.newPage();
    // Held: the first routes answer in which the bid's route is delivering (ready, with the buyer's pool's answers).
    const routes = await holdAnswer<{ items: RouteView[] }>(page, '/api/v1/routes',
      (r) => r.items.some((x) => x.bidId === bidId && x.state === 'ready' && x.routedSessions > 0 && x.totals.accepted > 0), 'the bid’s route ready, with accepted shares');
    await page.goto(`${pool.base}/#/operator`);
    await page.fill('input[name="operator-token"]', OPERATOR_TOKEN);
    const status = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/operator/status');
    await page.click('#operator-login button[type="submit"]');
    const s = (await (await status).json()) as { nodes: { url: string }[] };
    assert.ok(s.nodes.length >= 1);
    const answer = await routes.answer(TICKS(3));
    const route = answer.items.find((x) => x.bidId === bidId)!;
    assert.equal(route.destinations[route.destinationIndex].url, pool.buyerPoolUrl, 'the route goes to the bid’s destination');
    await expectShown(page, `#routes tr[data-route="${route.id}"]`, routeNumbers(route), 'routes table vs GET /api/v1/routes');
    assert.equal(await page.locator('#routes tr[data-route]').count(), answer.items.filter((x) => x.state !== 'stopped').length, 'every active route listed');
    // Its health is the buyer's pool's: every share it accepted reached it, none was refused, it answers in time.
    assert.ok(pool.buyerPool.submits.length >= route.totals.accepted, `the buyer's pool received ${pool.buyerPool.submits.length} shares, the route counts ${route.totals.accepted} accepted`);
    assert.equal(route.totals.rejected, 0);
    assert.ok(route.upstreamRttSeconds !== null && route.rate60s.hashesPerSecond > 0, JSON.stringify(route));
    await page.locator('#operator-spool [data-k="spoolBytes"]').waitFor();
    assert.equal(await page.locator('#operator-nodes li').count(), s.nodes.length);
    await page.screenshot({ path: path.join(SHOTS, 'operator.png'), fullPage: true });
    await routes.release();
    await page.close();
  });

  test('market page: edited below the ask, the bid moves in the book with the zero-fill reason the API gives; cancelled, it leaves the book and its route stops', async () => {
    assert.ok(bidId > 0, 'the market test placed a bid');
    const page = await ctx.newPage();
    let editedInTick = Infinity;
    // Held: bob's first orders answer from a clearing after the edit.
    const after = await holdAnswer<{ bids: MarketBid[] }>(page, '/api/v1/market/bids',
      (b) => b.bids.some((x) => x.id === bidId && x.lastTick !== null && x.lastTick.tick > editedInTick), 'a clearing after the edit');
    await unlockMarket(page, pool.base, pool.tokens.bob);
    const mine = page.locator(`#my-orders tr[data-order="bid-${bidId}"]`);
    await mine.waitFor();
    await mine.locator(`input[name="price-bid-${bidId}"]`).fill('30000');
    const edited = page.waitForResponse((r) => new URL(r.url()).pathname === `/api/v1/market/bids/${bidId}` && r.request().method() === 'PATCH');
    await mine.getByRole('button', { name: 'edit' }).click();
    assert.equal((await edited).status(), 200);
    editedInTick = Math.floor(Date.now() / 1000 / TICK_SECONDS);
    const b = (await after.answer(TICKS(2))).bids.find((x) => x.id === bidId)!;
    assert.equal(b.lastTick!.fill, '0', `below the ask, nothing: ${JSON.stringify(b)}`);
    assert.ok(b.lastTick!.reason?.code, 'with a reason');
    await expectShown(page, `#my-orders tr[data-order="bid-${bidId}"]`, orderNumbers(b), 'bob’s unfilled bid vs GET /api/v1/market/bids');
    await after.release();
    await page.locator('#book-bids tr[data-price="30000"]').waitFor({ timeout: TICKS(1) });
    const book = await bookAsTheApiShowsIt(page, pool.base, 'the book with the edited bid');
    assert.deepEqual(book.bids.map((l) => [l.price, l.orders]), [[30000, 1]]);

    // Cancel it: gone from the book at the next tick, shown as cancelled; routing stops its route.
    const cancelled = page.waitForResponse((r) => new URL(r.url()).pathname === `/api/v1/market/bids/${bidId}` && r.request().method() === 'DELETE');
    await mine.getByRole('button', { name: 'cancel' }).click();
    assert.equal((await cancelled).status(), 200);
    await page.locator('#book-bids tr[data-price="30000"]').waitFor({ state: 'detached', timeout: TICKS(1) });
    await mine.locator('.badge.cancelled').waitFor();
    await bookAsTheApiShowsIt(page, pool.base, 'the book without the bid');
    const r = (await (await fetch(`${pool.base}/api/v1/routes`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } })).json()) as { items: RouteView[] };
    assert.equal(r.items.find((x) => x.bidId === bidId)?.state, 'stopped');
    await page.close();
    assert.deepEqual(cspErrors, [], 'no Content Security Policy violation on any page');
  });
});
