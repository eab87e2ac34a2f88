import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { Ledger, credit, debit, owned, pool as poolRef } from '../src/accounting/ledger.ts';
import { loadConfig } from '../src/cli/config.ts';
import { type RunningPool, runPool } from '../src/cli/run-pool.ts';
import { CARRY_DEN } from '../src/market/settlement.ts';
import { BPS } from '../src/market/units.ts';
import { StratumMiner } from '../src/miner/client.ts';
import { type PoolProcess, exited, killAll, startPoolProcess } from './helpers/child-pool.ts';
import { freePort } from './helpers/free-port.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// The market end to end, on real pools: hashhub A (in-process, the market on, its own Postgres database) sells
// its sellers' hashrate to a buyer whose pool is hashhub B (a child process with its own embedded chain and
// database). A bid and two asks clear, the sellers' miners move to B (one by set_extranonce, one by
// client.reconnect), B accepts their work, the ticks settle on A's ledger; we compare A's bill with exactly what
// B stored in its `shares` table. A cancel mid-tick frees the budget. Then a second bid, B SIGKILLed: the bid
// pauses, nothing is charged for the paused time, the sellers are back on A's pool work within 5 s.
//
// Ticks of 10 s with 5 s metering buckets (routing.meterBucketSeconds), so a few ticks fit in a test.
//
// Money at test scale: CPU miners do ~10^5–10^6 H/s, so even at a price of 5·10^10 sat/PH/day a tick is worth
// a tiny fraction of a satoshi and every whole-satoshi amount is 0. The test therefore checks the billing rule
// on its exact numerators: the value of the work (Σ price × accepted hashes, over 8.64e19 sat) equals the price
// times what B accepted minus the probe work, to the hash; the cumulative credit and fee of each trade line are
// the floors of its exact parts and the carried remainders the rest (docs/market.md "Rounding, once"), so the
// buyer's charge is within [V − 2 sat × lines, V] of the exact value V; and the ledger's sums hold to the sat.

const TWO_32 = 2n ** 32n;
/** B's fixed share difficulty, 2^-16: a dyadic number, so Σ d × 2^32 is an exact integer (65,536 per share). */
const D = 2 ** -16;
const HASHES_PER_SHARE = 65_536n;
const PRICE = 50_000_000_000; // sat/PH/day
const BUDGET = 1_000n;
const TICK_S = 10;
const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

type Row = Record<string, string>;

test('market e2e: a bid and two asks clear, B accepts, A bills exactly B-accepted work; cancel frees the budget; B killed → paused, no charge, sellers home in 5 s',
  { skip: SKIP_PG, timeout: 170_000 }, async () => {
    const [dbA, dbB] = await Promise.all([createTestPg(), createTestPg()]);
    const dirA = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-market-a-'));
    const dirB = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-market-b-'));
    const [portB, apiB] = [await freePort(), await freePort()];
    const envB: NodeJS.ProcessEnv = {
      ...process.env, DATABASE_URL: dbB.url, HASHHUB_DATA_DIR: dirB, HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_STRATUM_PORT: String(portB),
      HASHHUB_API_HOST: '127.0.0.1', HASHHUB_API_PORT: String(apiB), HASHHUB_API_ENABLED: 'false', HASHHUB_LOG_LEVEL: 'warn', HASHHUB_NODE_POLL_MS: '200',
      HASHHUB_DIFFICULTY: String(D), HASHHUB_MIN_DIFFICULTY: String(D), HASHHUB_MAX_DIFFICULTY: String(D), HASHHUB_EMBEDDED_DIFFICULTY: '1000',
      HASHHUB_ACCOUNTING_ENABLED: 'false', HASHHUB_ROUTING_ENABLED: 'false', HASHHUB_MARKET_ENABLED: 'false', HASHHUB_INGEST_FLUSH_MS: '50',
    };
    delete envB.HASHHUB_CONFIG;
    const cfgA = loadConfig({
      env: { DATABASE_URL: dbA.url, HASHHUB_DATA_DIR: dirA },
      overrides: {
        'stratum.host': '127.0.0.1', 'stratum.port': 0, 'stratum.difficulty.initial': 0.00002, 'node.embedded.difficulty': 1000, 'node.pollMs': 200,
        'database.ingest.flushMs': 50,
        'routing.reconnectHost': '127.0.0.1', 'routing.syncMs': 300, 'routing.flushMs': 200, 'routing.answerTimeoutSeconds': 5, 'routing.meterBucketSeconds': 5,
        'market.tickSeconds': TICK_S, 'market.capacityWindowMinutes': 1, 'market.minShares': 1, 'market.feeBps': 100,
        'market.answerTimeoutSeconds': 2, 'market.routeLeaseSeconds': 5,
        // Test volumes are ~10^-8 PH·day: a minimum that rounds to 0 hashes lets the day's VWAP be computed.
        'market.index.minVolumePhDay': 1e-9,
      },
    });
    const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
    let a: RunningPool | null = null;
    let b: PoolProcess | null = null;
    const miners: StratumMiner[] = [];
    const pgB = new pg.Client({ connectionString: dbB.url });
    try {
      [a, b] = await Promise.all([runPool(cfgA, log), startPoolProcess(envB)]);
      const A = a;
      const market = A.market!;
      assert.ok(market, 'the market runs in hashhub pool');
      const db = A.store.db;
      const q = async (sql: string, params: unknown[] = []): Promise<Row[]> => (await db.query<Row>(sql, params)).rows;
      await pgB.connect();

      // ---- sellers mine on A; a buyer funded on A's ledger ----
      for (const [user, xn] of [['sellerx.w1', true], ['sellery.w1', false]] as const) {
        miners.push(new StratumMiner({ host: '127.0.0.1', port: A.port, user, extranonceSubscribe: xn, hashrate: 150_000, reconnectInitialMs: 50, reconnectMaxMs: 300 }).start());
      }
      const onRoute = (m: StratumMiner) => m.currentJob?.jobId.startsWith('r') === true;
      const onPool = (m: StratumMiner) => m.currentJob !== null && !onRoute(m);
      await until(async () => miners.every(onPool) && (await q(`SELECT 1 FROM worker_rollups_minute r JOIN accounts a ON a.id = r.account_id WHERE a.name IN ('sellerx', 'sellery') GROUP BY a.name`)).length === 2,
        30_000, 'both sellers\' pool work in A\'s rollups');
      const ids = new Map((await q(`SELECT id::text, name FROM accounts`)).map((r) => [r.name, Number(r.id)]));
      const buyer = Number((await q(`INSERT INTO accounts (name) VALUES ('buyer') RETURNING id::text`))[0].id);
      const sellerX = ids.get('sellerx')!;
      const sellerY = ids.get('sellery')!;
      // Until operator credits land: a balanced, keyed entry from the operator's adjustments to the buyer.
      const ledger = new Ledger();
      await db.transaction((tx) => ledger.post(tx, {
        key: 'test:fund-buyer', kind: 'operator_adjustment', effectiveAt: new Date(), memo: 'market e2e: fund the buyer',
        postings: [debit(poolRef('operator_adjustments'), 2n * BUDGET), credit(owned('balance', BigInt(buyer)), 2n * BUDGET)],
      }));
      const balance = async (kind: 'balance' | 'buyer_escrow', id: number) => ledger.balance(db, owned(kind, BigInt(id)));

      // ---- phase 1: two asks and a bid clear; the workers move to B; B accepts; ticks settle ----
      const askX = (await market.placeAsk({ accountId: sellerX, operator: false }, { minPrice: PRICE, workers: 'all' })).ask.id;
      const askY = (await market.placeAsk({ accountId: sellerY, operator: false }, { minPrice: PRICE, workers: 'all' })).ask.id;
      const dest = [{ url: `stratum+tcp://127.0.0.1:${portB}`, user: 'buyerB.x', password: 'x' }];
      const bid1 = (await market.placeBid({ accountId: buyer, operator: false }, { maxPrice: PRICE, limitHs: 10n ** 12n, budgetSat: BUDGET, destinations: dest })).bid.id;
      assert.equal(await balance('buyer_escrow', buyer), BUDGET, 'the budget is escrowed at placement');
      let bidState = '';
      await until(async () => { bidState = JSON.stringify(await q(`SELECT state, state_code FROM market_bids WHERE id = $1`, [bid1])); return miners.every(onRoute); },
        60_000, () => `both sellers' miners on B's work (bid: ${bidState})`);
      const settledWork = async (bid: number) => BigInt((await q(`SELECT coalesce(sum(accepted_hashes), 0)::text AS h FROM market_trades WHERE bid_id = $1`, [bid]))[0].h);
      await until(async () => (await q(`SELECT DISTINCT t.tick FROM market_trades t WHERE bid_id = $1 AND accepted_hashes > 0`, [bid1])).length >= 2, 60_000, 'two ticks with delivery settled');
      const prices = await q(`SELECT DISTINCT price::text FROM market_ticks WHERE tick IN (SELECT tick FROM market_trades WHERE bid_id = $1)`, [bid1]);
      assert.deepEqual(prices.map((p) => p.price), [String(PRICE)], 'one price per tick: the crossing price');
      const trades1 = await q(`SELECT tick::text, ask_id::text, price::text, accepted_hashes::text, self_trade::text FROM market_trades WHERE bid_id = $1`, [bid1]);
      assert.ok(trades1.every((t) => t.price === String(PRICE) && t.self_trade === 'false'), JSON.stringify(trades1));
      assert.deepEqual(new Set(trades1.filter((t) => t.accepted_hashes !== '0').map((t) => Number(t.ask_id))), new Set([askX, askY]), 'both asks delivered');

      // ---- cancel mid-tick: the escrow is released except what the ticks in flight may owe ----
      await until(() => { const s = (Date.now() / 1000) % TICK_S; return s > 3 && s < 7; }, TICK_S * 1000, 'the middle of a tick');
      const beforeCancel = await q(`SELECT spent_sat::text, released_sat::text FROM market_bids WHERE id = $1`, [bid1]);
      const cancelled = await market.cancelBid({ accountId: buyer, operator: false }, bid1);
      const afterCancel = (await q(`SELECT state::text, spent_sat::text, released_sat::text FROM market_bids WHERE id = $1`, [bid1]))[0];
      assert.equal(afterCancel.state, 'cancelled');
      const heldBack = BUDGET - BigInt(afterCancel.spent_sat) - BigInt(afterCancel.released_sat);
      assert.ok(BigInt(afterCancel.released_sat) > 0n, `released at once: ${json({ beforeCancel, afterCancel, cancelled })}`);
      assert.ok(heldBack >= 0n && heldBack < BUDGET, `held back for the ticks in flight: ${heldBack}`);
      await until(() => miners.every(onPool), 5000, 'sellers back on A\'s pool work after the cancel');
      // Every tick with the bid's work settles; then the rest of the escrow is released.
      const routeOf = async (bid: number) => Number((await q(`SELECT id::text FROM routes WHERE bid_id = $1`, [bid]))[0].id);
      const route1 = await routeOf(bid1);
      await until(async () => {
        const last = (await q(`SELECT extract(epoch FROM max(minute))::text AS m FROM route_minutes WHERE route_id = $1`, [route1]))[0].m;
        const open = await q(`SELECT 1 FROM market_ticks WHERE settled_at IS NULL AND starts_at <= to_timestamp($1)`, [Number(last)]);
        const bidRow = (await q(`SELECT spent_sat::text, released_sat::text FROM market_bids WHERE id = $1`, [bid1]))[0];
        return open.length === 0 && BigInt(bidRow.spent_sat) + BigInt(bidRow.released_sat) === BUDGET;
      }, 40_000, 'the cancelled bid\'s ticks settled and its escrow fully released');
      assert.equal(await balance('buyer_escrow', buyer), 0n, 'nothing left in escrow');

      // ---- what B accepted (its own database) vs what A billed ----
      await until(async () => {
        const m = (await q(`SELECT coalesce(sum(accepted + probe_accepted), 0)::text AS n FROM route_minutes WHERE route_id = $1`, [route1]))[0].n;
        const r = await pgB.query<{ n: string }>(`SELECT count(*)::text AS n FROM shares s JOIN accounts a ON a.id = s.account_id WHERE a.name = 'buyerB'`);
        return r.rows[0].n === m;
      }, 15_000, 'B\'s shares table holds every share A metered as accepted');
      const bShares = (await pgB.query<{ n: string; d: string }>(
        `SELECT count(*)::text AS n, count(*) FILTER (WHERE pool_difficulty <> $1)::text AS d FROM shares s JOIN accounts a ON a.id = s.account_id WHERE a.name = 'buyerB'`, [D])).rows[0];
      assert.equal(bShares.d, '0', 'B stored every share at its fixed difficulty');
      const bHashes = BigInt(bShares.n) * HASHES_PER_SHARE;
      const meter = (await q(`SELECT sum(accepted)::text AS acc, sum(probe_accepted)::text AS probe, sum(rejected)::text AS rej, sum(switch_lost)::text AS lost FROM route_minutes WHERE route_id = $1`, [route1]))[0];
      const probeHashes = BigInt(meter.probe) * HASHES_PER_SHARE;
      const billedHashes = await settledWork(bid1);
      const unassigned = BigInt((await q(`SELECT coalesce(sum(accepted_hashes), 0)::text AS h FROM market_unassigned_work WHERE bid_id = $1`, [bid1]))[0].h);
      assert.ok(BigInt(meter.probe) >= 1n, 'the probe\'s work is metered apart');
      // Exact, to the hash: B-accepted = billed + probe (never billed) + work the market never assigned (never billed).
      assert.equal(billedHashes + unassigned + probeHashes, bHashes, `B accepted ${bShares.n} shares; A billed ${billedHashes / HASHES_PER_SHARE}, probe ${meter.probe}, unassigned ${unassigned / HASHES_PER_SHARE}`);
      assert.ok(unassigned <= bHashes / 10n, `unassigned work is the cancel's tail only (${unassigned / HASHES_PER_SHARE} shares)`);

      // ---- the money of bid 1, under the stated rounding ----
      const lines = await q(`SELECT ask_id::text, seller_id::text, sum(value_num)::text AS v, sum(credit_sat)::text AS c, sum(fee_sat)::text AS f FROM market_line_settlements WHERE bid_id = $1 GROUP BY ask_id, seller_id`, [bid1]);
      const carries = new Map((await q(`SELECT ask_id::text, seller_rem::text, fee_rem::text FROM market_line_carry WHERE bid_id = $1`, [bid1])).map((r) => [r.ask_id, r]));
      const valueNum = lines.reduce((s, l) => s + BigInt(l.v), 0n);
      assert.equal(valueNum, BigInt(PRICE) * billedHashes, 'value = tick price × billed (B-accepted, non-probe) hashes, exactly');
      const fee = 100n;
      for (const l of lines) {
        const v = BigInt(l.v);
        const c = carries.get(l.ask_id)!;
        // Cumulative amounts are the floors of the exact parts; the carries are the rest (docs/market.md).
        assert.equal(BigInt(l.c), (v * (BPS - fee)) / CARRY_DEN, `ask ${l.ask_id}: credit = ⌊seller part⌋`);
        assert.equal(BigInt(l.f), (v * fee) / CARRY_DEN, `ask ${l.ask_id}: fee = ⌊fee part⌋`);
        assert.equal(BigInt(c.seller_rem), (v * (BPS - fee)) % CARRY_DEN);
        assert.equal(BigInt(c.fee_rem), (v * fee) % CARRY_DEN);
      }
      const s1 = (await q(`SELECT coalesce(sum(debit_sat), 0)::text AS d, coalesce(sum(credit_sat), 0)::text AS c, coalesce(sum(fee_sat), 0)::text AS f FROM market_settlements WHERE bid_id = $1`, [bid1]))[0];
      const debit1 = BigInt(s1.d);
      // Tolerance: the buyer pays the exact value V rounded down per line (at most 1 sat per part, 2 parts per line).
      const exactSatNum = valueNum * BPS; // V = exactSatNum / CARRY_DEN sat
      assert.ok(debit1 * CARRY_DEN <= exactSatNum && exactSatNum - debit1 * CARRY_DEN < 2n * BigInt(lines.length) * CARRY_DEN, `charge ${debit1} sat vs exact ${Number(exactSatNum) / Number(CARRY_DEN)} sat`);
      assert.equal(debit1, BigInt(s1.c) + BigInt(s1.f), 'buyer debit = seller credits + market fee');
      assert.equal(BigInt(BUDGET) - BigInt(afterCancel.spent_sat) >= 0n, true);
      assert.equal(BigInt((await q(`SELECT spent_sat::text FROM market_bids WHERE id = $1`, [bid1]))[0].spent_sat), debit1, 'spent = Σ debits');

      // ---- phase 2: a second bid; B killed → paused, nothing charged while paused, sellers home in 5 s ----
      const bid2 = (await market.placeBid({ accountId: buyer, operator: false }, { maxPrice: PRICE, limitHs: 10n ** 12n, budgetSat: BUDGET, destinations: dest })).bid.id;
      await until(() => miners.every(onRoute), 60_000, 'both miners on B\'s work for bid 2');
      await until(async () => (await q(`SELECT 1 FROM route_minutes WHERE route_id = $1 AND accepted > 0`, [await routeOf(bid2)])).length > 0, 30_000, 'bid 2 delivering');
      const killedAt = Date.now();
      b.child.kill('SIGKILL');
      await exited(b.child);
      await until(() => miners.every(onPool), 5000, 'both sellers on A\'s pool work within 5 s of B\'s death');
      const homeMs = Date.now() - killedAt;
      await until(async () => (await q(`SELECT state::text FROM market_bids WHERE id = $1`, [bid2]))[0].state === 'paused', 15_000, 'bid 2 paused');
      const pausedRow = (await q(`SELECT state_code FROM market_bids WHERE id = $1`, [bid2]))[0];
      // Two whole ticks after the kill, settled: nothing delivered, nothing charged.
      const firstPausedTick = Math.floor(killedAt / 1000 / TICK_S) + 1;
      await until(async () => (await q(`SELECT 1 FROM market_ticks WHERE tick = $1 AND settled_at IS NOT NULL`, [firstPausedTick + 1])).length === 1, 60_000, 'two ticks after the kill settled');
      const pausedMoney = (await q(`SELECT coalesce(sum(debit_sat), 0)::text AS d, coalesce(sum(delivered_hashes), 0)::text AS h FROM market_settlements WHERE bid_id = $1 AND tick >= $2`, [bid2, firstPausedTick]))[0];
      const pausedTrades = await q(`SELECT tick::text, accepted_hashes::text FROM market_trades WHERE bid_id = $1 AND tick >= $2 AND accepted_hashes > 0`, [bid2, firstPausedTick]);
      assert.equal(pausedMoney.d, '0');
      assert.equal(pausedMoney.h, '0');
      assert.deepEqual(pausedTrades, []);
      const fills = await q(`SELECT tick FROM market_fills WHERE side = 'bid' AND order_id = $1 AND tick >= $2`, [bid2, firstPausedTick]);
      assert.deepEqual(fills, [], 'a paused bid gets no fill');
      await market.cancelBid({ accountId: buyer, operator: false }, bid2);

      // ---- the whole book: Σ buyer debits = Σ seller credits + market fee, on the ledger too; verify() clean ----
      await until(async () => (await q(`SELECT 1 FROM market_ticks WHERE settled_at IS NULL AND ends_at <= now() - interval '3 seconds'`)).length === 0, 30_000, 'every past tick settled');
      const tot = (await q(`SELECT coalesce(sum(debit_sat), 0)::text AS d, coalesce(sum(credit_sat), 0)::text AS c, coalesce(sum(fee_sat), 0)::text AS f FROM market_settlements`))[0];
      assert.equal(BigInt(tot.d), BigInt(tot.c) + BigInt(tot.f));
      const ledgerSum = async (kind: string) => BigInt((await q(
        `SELECT coalesce(sum(p.amount), 0)::text AS s FROM postings p JOIN journal_entries e ON e.id = p.entry_id JOIN ledger_accounts l ON l.id = p.ledger_account_id
          WHERE e.kind = 'market_settle' AND l.kind = $1`, [kind]))[0].s);
      assert.equal(await ledgerSum('buyer_escrow'), BigInt(tot.d), 'the ledger\'s escrow debits are the settlements\' debits');
      assert.equal(-(await ledgerSum('balance')), BigInt(tot.c), 'the sellers\' credits on the ledger');
      assert.equal(-(await ledgerSum('market_fee')), BigInt(tot.f), 'the market fee on the ledger');
      assert.deepEqual(await ledger.verify(db), []);
      assert.equal(await balance('balance', buyer), 2n * BUDGET - BigInt(tot.d), 'the buyer has its money back less what it was charged');

      // ---- the daily index: published from the database and recomputed bit-identical ----
      await market.stop();
      // The day of the last trade, not today's date: midnight (UTC) may fall between the trading and this line.
      const day = (await q(`SELECT to_char(max(k.starts_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS d FROM market_ticks k
                               WHERE k.tick IN (SELECT tick FROM market_trades WHERE accepted_hashes > 0)`))[0].d as string;
      let indexNote = '';
      // The clock is stopped: no tick clears any more; the last cleared one settles once its end + the answer
      // timeout has passed and the meter's watermark covers it. Then today's ticks are all settled.
      await until(async () => { await market.settleDue(Date.now()); return (await q(`SELECT 1 FROM market_ticks WHERE settled_at IS NULL`)).length === 0; },
        TICK_S * 1000 + 10_000, 'the last tick settled');
      try {
        const row = await market.publishIndex(day);
        assert.equal(row.method, 'vwap');
        assert.equal(row.value, PRICE, 'every trade of the day was at the one price');
        const re = await market.recomputeIndex(day);
        assert.ok(re.identical, `recomputed ${json(re.recomputed)} vs published`);
        indexNote = `index ${day}: ${row.method} ${row.value}`;
      } catch (e) {
        if ((e as { code?: string }).code !== 'INDEX_NOT_READY') throw e;
        indexNote = `index skipped: ${(e as Error).message}`;
      }
      process.stderr.write(`# market e2e: bid 1 billed ${billedHashes / HASHES_PER_SHARE} shares (+${meter.probe} probe, ${unassigned / HASHES_PER_SHARE} unassigned) = B's ${bShares.n}; `
        + `charge ${debit1} sat of exact ${Number(exactSatNum) / Number(CARRY_DEN)} sat; held back at cancel ${heldBack} sat; B killed → sellers home in ${homeMs} ms, bid 2 ${pausedRow.state_code}; ${indexNote}\n`);
    } finally {
      await Promise.all(miners.map((m) => m.stop()));
      await pgB.end().catch(() => undefined);
      await a?.stop().catch(() => undefined);
      await killAll([b]);
      await Promise.all([dbA.drop(), dbB.drop()]);
      fs.rmSync(dirA, { recursive: true, force: true });
      fs.rmSync(dirB, { recursive: true, force: true });
    }
  });
