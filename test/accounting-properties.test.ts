import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { REGTEST_NETWORK } from '../src/node/regtest/wallet.ts';
import pg from 'pg';
import pino from 'pino';
import { AccountingEngine } from '../src/accounting/engine.ts';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import { type BooksFrame, periodStart } from '../src/accounting/params.ts';
import { DEFAULT_POLICY, Payouts } from '../src/accounting/payouts/payouts.ts';
import { addressToScript } from '../src/chain/index.ts';
import type { Queryable } from '../src/store/db.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { migrate } from '../src/store/migrate.ts';
import { setBlockValue, setupBooks } from './helpers/accounting.ts';
import { blockHex, poolScript } from './helpers/accounting-blocks.ts';
import { CHANGE_SCRIPT, FakeWallet } from './helpers/fake-wallet.ts';
import { Q, ZERO, hamilton, pplnsModel, shareValue } from './helpers/money-model.ts';
import { SKIP_PG, createTestPg, type TestPg } from './helpers/pg.ts';
import { SavepointDb, SimulatedCrash } from './helpers/savepoint-db.ts';

// The books under random histories, on the real database: shares over several accounts and schemes, blocks
// found, confirmed, orphaned and brought back, late shares, ingest watermarks that lag, payouts through a wallet
// that is locked, unreachable or dies around the broadcast, and a crash injected before a random SQL statement of
// any step (the step's transaction rolls back; the next step runs as a restarted process would). After each
// history everything is allowed to settle, and then:
//   - the ledger balances (running balances = postings, every entry sums to zero, nothing negative);
//   - FPPS credits equal the exact formula over every stored share, rounded down once, to the satoshi;
//   - each block's split equals the PPLNS/SOLO model and lines + fee + pool revenue = its reward, to the satoshi;
//     only confirmed blocks are credited, and once; an orphan never reaches a balance;
//   - every balance equals its credits minus its payouts, from the source tables;
//   - nothing is paid twice: what each address received on chain equals its confirmed payout lines.
// Each history runs in one transaction rolled back at its end (savepoints inside): a thousand of them in CI.

const RUNS = Number(process.env.HASHHUB_PROPERTY_RUNS ?? 1000);
/** Time box (the benchmark's long run): stop after this many seconds, however many histories that is. */
const SECONDS = Number(process.env.HASHHUB_PROPERTY_SECONDS ?? 0);
const P = 10;
const T0 = Date.UTC(2032, 0, 4, 1, 0, 0);
const BITS = 0x1d00ffff;
const VALUE = 5_000_000_000n + 7_777n;
const HEIGHTS = [300, 301, 302];
const FEES = { fpps: 250, pplns: 100, solo: 100 };
const PPLNS_N = 0.004;
const MAX_WINDOW_S = 120;
const NAMES = ['f1', 'f2', 'p1', 'p2', 's1'] as const;
const SCHEME: Record<string, 'fpps' | 'pplns' | 'solo'> = { f1: 'fpps', f2: 'fpps', p1: 'pplns', p2: 'pplns', s1: 'solo' };
const DIFFS = [0.0005, 0.001, 0.0013, 0.002, 0.00075];
const FUNDS = 1_000n * 100_000_000n;

type Op =
  | { t: 'shares'; a: number; n: number; d: number; h: number }
  | { t: 'tick'; periods: number; ms: number; lag: number }
  | { t: 'block'; finder: number; reward: number }
  | { t: 'flip'; block: number; to: 'orphaned' | 'pending' | 'confirmed' }
  | { t: 'late'; a: number; d: number }
  | { t: 'account'; crash: number | null }
  | { t: 'payout'; crash: number | null; fault: 'locked' | 'unreachable' | null; send: 'before' | 'after' | null }
  | { t: 'mine' }
  | { t: 'bump' }
  | { t: 'cancel' };

/**
 * Histories that once failed, run first on worker 0 every time:
 * 1. a cancelled batch that never went out, paid again from the same coins to the same change script, signed
 *    into the txid already on record (duplicate key);
 * 2. a share stored late (after the sums passed its time) in the block's own bucket, before the block was split:
 *    the window read it from the raw shares (the model wrongly left every late share out);
 * 3. the same in an older bucket, which the window reads from the sums: it was missing there until the split
 *    re-summed buckets that hold fewer shares than are stored.
 */
const REGRESSIONS: Op[][] = [
  JSON.parse('[{"t":"shares","a":1,"n":2,"d":4,"h":0},{"t":"payout","crash":20,"fault":null,"send":"after"},{"t":"tick","periods":2,"ms":6291,"lag":7308},{"t":"account","crash":null},{"t":"flip","block":4,"to":"pending"},{"t":"payout","crash":null,"fault":null,"send":"after"},{"t":"cancel"},{"t":"tick","periods":1,"ms":5693,"lag":13691},{"t":"cancel"},{"t":"account","crash":24},{"t":"payout","crash":null,"fault":null,"send":"before"},{"t":"bump"}]') as Op[],
  JSON.parse('[{"t":"cancel"},{"t":"shares","a":0,"n":1,"d":1,"h":1},{"t":"flip","block":1,"to":"orphaned"},{"t":"block","finder":2,"reward":6236299817},{"t":"account","crash":null},{"t":"block","finder":4,"reward":5838627396},{"t":"shares","a":3,"n":3,"d":2,"h":0},{"t":"tick","periods":1,"ms":2253,"lag":2143},{"t":"shares","a":2,"n":2,"d":3,"h":1},{"t":"account","crash":37},{"t":"late","a":0,"d":1}]') as Op[],
  // A block with no finder (account 0) after shares of every scheme: split over the PPLNS window, credited when
  // confirmed (before 2f81197 such blocks were never split).
  JSON.parse('[{"t":"shares","a":2,"n":3,"d":1,"h":0},{"t":"shares","a":0,"n":2,"d":2,"h":0},{"t":"shares","a":3,"n":1,"d":3,"h":1},{"t":"block","finder":-1,"reward":625000000},{"t":"tick","periods":1,"ms":100,"lag":0},{"t":"account","crash":null},{"t":"flip","block":0,"to":"confirmed"},{"t":"account","crash":3},{"t":"account","crash":null}]') as Op[],
  JSON.parse('[{"t":"account","crash":27},{"t":"tick","periods":1,"ms":7019,"lag":1948},{"t":"block","finder":2,"reward":1269284387},{"t":"account","crash":null},{"t":"late","a":1,"d":2},{"t":"account","crash":null},{"t":"tick","periods":2,"ms":5412,"lag":940},{"t":"shares","a":1,"n":2,"d":4,"h":2}]') as Op[],
];

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('shares' as const), a: fc.nat(4), n: fc.integer({ min: 1, max: 4 }), d: fc.nat(DIFFS.length - 1), h: fc.nat(HEIGHTS.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('tick' as const), periods: fc.nat(2), ms: fc.nat(9999), lag: fc.nat(15_000) }) },
  // finder -1: a block with no finder (account 0: recovered by the start-up chain scan), split over the PPLNS window.
  { weight: 2, arbitrary: fc.record({ t: fc.constant('block' as const), finder: fc.integer({ min: -1, max: 4 }), reward: fc.integer({ min: 1, max: 6_250_000_000 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('flip' as const), block: fc.nat(5), to: fc.constantFrom('orphaned' as const, 'pending' as const, 'confirmed' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('late' as const), a: fc.nat(4), d: fc.nat(DIFFS.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('account' as const), crash: fc.option(fc.nat(40), { freq: 2 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('payout' as const), crash: fc.option(fc.nat(25), { freq: 2 }),
    fault: fc.constantFrom(null, null, null, 'locked' as const, 'unreachable' as const), send: fc.constantFrom(null, null, 'before' as const, 'after' as const) }) },
  { weight: 2, arbitrary: fc.constant({ t: 'mine' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'bump' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'cancel' as const }) },
);

const WORKERS = Math.max(1, Number(process.env.HASHHUB_PROPERTY_WORKERS ?? 4));
const ledger = new Ledger();

/** One database with the books' frame, five accounts and their settings: a worker runs its histories on it. */
interface World { tpg: TestPg; client: pg.Client; frame: BooksFrame; ids: Map<string, bigint>; workers: Map<string, bigint>; addresses: Map<string, string> }
const worlds: World[] = [];

function clientQueryable(c: pg.Client): Queryable {
  return {
    async query(sql, params = []) { const r = await c.query({ text: sql, values: params as unknown[] }); return { rows: r.rows as never[], rowCount: r.rowCount ?? 0 }; },
    async exec(sql) { await c.query(sql); },
    async copyFrom() { throw new Error('no COPY here'); },
  };
}

async function makeWorld(): Promise<World> {
  const tpg = await createTestPg();
  const db = new PgDatabase({ url: tpg.url, maxConnections: 2 });
  await migrate(db);
  const frame = await setupBooks(db, T0, P, { fppsFeeBps: FEES.fpps, pplnsFeeBps: FEES.pplns, soloFeeBps: FEES.solo, defaultScheme: 'pplns', pplnsN: PPLNS_N, pplnsMaxWindowSeconds: MAX_WINDOW_S });
  for (const h of HEIGHTS) await setBlockValue(db, h, VALUE, BITS);
  await db.query("SELECT hashhub_ensure_partitions('2032-01-04', '2032-01-05')");
  // Miners' own addresses (keys 2..6: outside the pool's wallet).
  const outside = [2, 3, 4, 5, 6].map((k) => p2wpkh(pubECDSA(Buffer.from(k.toString(16).padStart(64, '0'), 'hex'), true), REGTEST_NETWORK).address!);
  const ids = new Map<string, bigint>();
  const workers = new Map<string, bigint>();
  const addresses = new Map<string, string>();
  for (const [i, name] of NAMES.entries()) {
    await db.query('INSERT INTO accounts (name) VALUES ($1)', [name]);
    const id = BigInt((await db.query<{ id: string }>('SELECT id::text FROM accounts WHERE name = $1', [name])).rows[0].id);
    ids.set(name, id);
    const w = await db.query<{ id: string }>("INSERT INTO workers (account_id, name, first_seen, last_seen) VALUES ($1, 'w', now(), now()) RETURNING id::text", [id.toString()]);
    workers.set(name, BigInt(w.rows[0].id));
    await db.query('INSERT INTO account_schemes (account_id, effective_from, scheme) VALUES ($1, $2::timestamptz, $3)', [id.toString(), new Date(T0).toISOString(), SCHEME[name]]);
    addresses.set(name, outside[i]);
    await db.query('INSERT INTO account_settings (account_id, payout_address, payout_address_changed_at, threshold) VALUES ($1, $2, $3::timestamptz, 1000000)',
      [id.toString(), outside[i], new Date(T0 - 86_400_000).toISOString()]);
  }
  await ledger.postNow(db, { key: 'prop:fund', kind: 'operator_adjustment', effectiveAt: new Date(T0), postings: [debit(pool('wallet'), FUNDS), credit(pool('operator_adjustments'), FUNDS)] });
  await db.close();
  const client = new pg.Client({ connectionString: tpg.url });
  await client.connect();
  return { tpg, client, frame, ids, workers, addresses };
}

before(async () => {
  if (SKIP_PG) return;
  worlds.push(...(await Promise.all(Array.from({ length: WORKERS }, () => makeWorld()))));
});

after(async () => {
  for (const w of worlds) {
    await w.client.end();
    await w.tpg.drop();
  }
});

/**
 * late: stored after the share sums passed its time (FPPS credits it by an adjustment). It counts in the PPLNS
 * window of a block split after it was stored, like any share, and is missing from those split before (`splitBefore`).
 */
interface ShareRec { id: string; time: number; account: string; pd: number; height: number; late?: boolean; splitBefore?: Set<string> }
interface BlockRec { hash: string; time: number; finder: string; reward: bigint; status: string; confirmedOnce: boolean }

async function runHistory(world: World, ops: Op[], seq: number): Promise<void> {
  const { client, frame, ids, workers, addresses } = world;
  const q = clientQueryable(client);
  const t0 = performance.now();
  await q.query('BEGIN');
  try {
    const db = new SavepointDb(q);
    let wallet = new FakeWallet(Array.from({ length: 10 }, () => ({ value: FUNDS / 10n })));
    const policy = { ...DEFAULT_POLICY, network: 'regtest' as const, defaultThreshold: 1_000_000n, addressChangeDelaySeconds: 0, fallbackSatVb: 2, confirmations: 1, rebroadcastSeconds: 0 };
    const mkEngine = () => new AccountingEngine(db, frame, null, undefined, 100_000);
    const mkPayouts = () => new Payouts(db, wallet, policy, pino({ level: 'silent' }));
    let engine = mkEngine();
    let payouts = mkPayouts();
    let now = T0 + 1;
    const shares: ShareRec[] = [];
    const blocks: BlockRec[] = [];
    let n = 0;
    const insertShare = async (account: string, pd: number, height: number, time: number, late = false, splitBefore?: Set<string>) => {
      const id = `h${seq}-${++n}`;
      await q.query(`INSERT INTO shares (id, time, account_id, worker_id, pool_difficulty, share_difficulty, job_id, height, nbits)
        VALUES ($1, $2::timestamptz, $3, $4, $5, $5, 'j', $6, $7)`, [id, new Date(time).toISOString(), ids.get(account)!.toString(), workers.get(account)!.toString(), pd, height, BITS]);
      // (Ingest counts every stored share in the minute rollups, in the same transaction.)
      await q.query(`INSERT INTO pool_rollups_minute AS r (bucket, accepted) VALUES (date_trunc('minute', $1::timestamptz, 'UTC'), 1)
        ON CONFLICT (bucket) DO UPDATE SET accepted = r.accepted + 1`, [new Date(time).toISOString()]);
      shares.push({ id, time, account, pd, height, late, splitBefore });
    };
    /** A step of a process that may crash; a crash (or a fault) is a restart for the next step. */
    const step = async (fn: () => Promise<unknown>, crash: number | null) => {
      db.crashAfter(crash);
      try {
        await fn();
      } catch (e) {
        if (!(e instanceof SimulatedCrash) && !/crash (before|after) the send/.test((e as Error).message)) throw e;
        engine = mkEngine();
        payouts = mkPayouts();
      } finally {
        db.crashAfter(null);
      }
    };

    for (const op of ops) {
      switch (op.t) {
        case 'shares':
          for (let i = 0; i < op.n; i++) await insertShare(NAMES[op.a], DIFFS[op.d], HEIGHTS[op.h], now += 7);
          break;
        case 'tick':
          now += op.periods * P * 1000 + op.ms;
          await q.query(`INSERT INTO ingest_watermarks (source, committed_to) VALUES ('prop', $1::timestamptz)
            ON CONFLICT (source) DO UPDATE SET committed_to = greatest(ingest_watermarks.committed_to, EXCLUDED.committed_to)`,
            [new Date(Math.max(T0, now - op.lag)).toISOString()]);
          break;
        case 'block': {
          // No finder (op.finder -1): account 0, worker 0, the pool's coinbase; no share of its own.
          const finder = op.finder < 0 ? '' : NAMES[op.finder];
          const reward = BigInt(op.reward);
          const hash = `${seq.toString(16).padStart(8, '0')}${blocks.length.toString(16).padStart(56, '0')}`;
          if (finder) await insertShare(finder, DIFFS[0], HEIGHTS[0], now += 7);
          else now += 7;
          const outputs = finder && SCHEME[finder] === 'solo'
            ? [{ value: reward - reward / 100n, scriptPubKey: addressToScript(addresses.get(finder)!, 'regtest') }, { value: reward / 100n, scriptPubKey: poolScript() }]
            : [{ value: reward, scriptPubKey: poolScript() }];
          await q.query(`INSERT INTO blocks (hash, height, prev_hash, account_id, worker_id, reward, status, time, block_hex)
            VALUES ($1, 300, $2, $3, $4, $5::bigint, 'pending', $6::timestamptz, $7)`,
            [hash, '00'.repeat(32), finder ? ids.get(finder)!.toString() : '0', finder ? workers.get(finder)!.toString() : '0', reward.toString(), new Date(now).toISOString(), blockHex({ height: 300, bits: BITS, outputs })]);
          blocks.push({ hash, time: now, finder, reward, status: 'pending', confirmedOnce: false });
          break;
        }
        case 'flip': {
          const b = blocks[op.block % Math.max(1, blocks.length)];
          // The block path's rules: confirmed is final; orphaned may come back to pending.
          if (!b || b.status === 'confirmed') break;
          if (op.to === 'confirmed' && b.status !== 'pending') break;
          b.status = op.to;
          await q.query('UPDATE blocks SET status = $2 WHERE hash = $1', [b.hash, op.to]);
          break;
        }
        case 'late': {
          const credited = await q.query<{ p: Date | null }>('SELECT max(period_start) AS p FROM fpps_periods');
          if (!credited.rows[0].p) break;
          const split = await q.query<{ h: string }>('SELECT block_hash AS h FROM block_splits');
          await insertShare(NAMES[op.a], DIFFS[op.d], HEIGHTS[1], new Date(credited.rows[0].p).getTime() + 3, true, new Set(split.rows.map((r) => r.h)));
          break;
        }
        case 'account':
          await step(() => engine.runOnce(now), op.crash);
          break;
        case 'payout':
          wallet.fault = op.fault;
          wallet.broadcastFault = op.send;
          await step(() => payouts.run(now), op.crash);
          wallet.fault = null;
          wallet.broadcastFault = null;
          break;
        case 'mine':
          wallet.mine();
          break;
        case 'bump': {
          const b = await q.query<{ id: string }>("SELECT id::text FROM payout_batches WHERE status = 'broadcast' ORDER BY id LIMIT 1");
          if (b.rows[0]) await payouts.bump(BigInt(b.rows[0].id), 9, now).catch((e: Error) => assert.match(e.message, /change output|cannot sign|is (signed|confirmed)/));
          break;
        }
        case 'cancel': {
          const b = await q.query<{ id: string }>("SELECT id::text FROM payout_batches WHERE status IN ('signed', 'broadcast') ORDER BY id LIMIT 1");
          if (b.rows[0]) await payouts.cancel(BigInt(b.rows[0].id), now, 'prop').catch((e: Error) => assert.match(e.message, /may still confirm|changed meanwhile|nothing to cancel/));
          break;
        }
      }
    }

    const tOps = performance.now();
    // ---- settle: the clock and the watermark move on, no more faults, everything runs to completion -----------
    now = periodStart(now, P) + 3 * P * 1000;
    await q.query(`INSERT INTO ingest_watermarks (source, committed_to) VALUES ('prop', $1::timestamptz)
      ON CONFLICT (source) DO UPDATE SET committed_to = EXCLUDED.committed_to`, [new Date(now).toISOString()]);
    engine = mkEngine();
    payouts = mkPayouts();
    for (let i = 0; i < 2; i++) await engine.runOnce(now);
    for (let i = 0; i < 6; i++) {
      const r = await payouts.run(now);
      const inFlight = await q.query<{ n: string }>("SELECT count(*)::text AS n FROM payout_batches WHERE status IN ('pending', 'signed', 'broadcast')");
      if (r.created.kind === 'nothing' && inFlight.rows[0].n === '0') break;
      if (r.progressed.some((p) => p.kind === 'broadcast' || p.kind === 'waiting')) wallet.mine();
    }
    const settled = db.statements;
    const tSettle = performance.now();
    await check(world, db, shares, blocks, wallet);
    if (process.env.PROP_DEBUG) process.stderr.write(`history ${seq}: ${ops.length} ops, ${settled} statements before the checks, ${db.statements} in all; ops ${(tOps - t0).toFixed(0)} ms, settle ${(tSettle - tOps).toFixed(0)} ms, check ${(performance.now() - tSettle).toFixed(0)} ms\n`);
    void wallet;
    wallet = wallet;
  } finally {
    await q.query('ROLLBACK');
  }
}

async function check(world: World, db: SavepointDb, shares: ShareRec[], blocks: BlockRec[], wallet: FakeWallet): Promise<void> {
  const { ids, addresses } = world;
  assert.deepEqual(await ledger.verify(db), [], 'the ledger balances');

  // FPPS: every share of an FPPS account in a credited period, valued exactly, rounded down once per account.
  const last = (await db.query<{ p: Date | null }>('SELECT max(period_end) AS p FROM fpps_periods')).rows[0].p;
  const creditedEnd = last ? new Date(last).getTime() : T0;
  const fpps = await db.query<{ name: string; c: string }>('SELECT a.name, sum(c.credited)::text AS c FROM fpps_credits c JOIN accounts a ON a.id = c.account_id GROUP BY a.name');
  const fppsBy = new Map(fpps.rows.map((r) => [r.name, BigInt(r.c)]));
  for (const name of NAMES) {
    const exact = shares.filter((s) => s.account === name && s.time < creditedEnd && SCHEME[name] === 'fpps')
      .reduce((sum, s) => sum.add(shareValue(s.pd, BITS, VALUE, FEES.fpps)), ZERO);
    assert.equal(fppsBy.get(name) ?? 0n, exact.floor(), `FPPS credits of ${name}`);
  }

  // Splits against the model; credits only for confirmed blocks.
  const splitRows = await db.query<{ block_hash: string; kind: string; fee: string; to_pool_revenue: string; reward: string }>('SELECT block_hash, kind, fee::text, to_pool_revenue::text, reward::text FROM block_splits');
  const splits = new Map(splitRows.rows.map((r) => [r.block_hash, r]));
  const lineRows = await db.query<{ block_hash: string; name: string; amount: string }>('SELECT l.block_hash, a.name, l.amount::text FROM block_split_lines l JOIN accounts a ON a.id = l.account_id');
  const credits = new Set((await db.query<{ key: string }>("SELECT idempotency_key AS key FROM journal_entries WHERE idempotency_key LIKE 'block:%'")).rows.map((r) => r.key));
  for (const b of blocks) {
    const s = splits.get(b.hash);
    if (b.status !== 'orphaned') assert.ok(s, `block ${b.hash} (${b.status}) was split`);
    if (!s) continue;
    const lines = new Map(lineRows.rows.filter((l) => l.block_hash === b.hash).map((l) => [l.name, BigInt(l.amount)]));
    assert.equal([...lines.values()].reduce((x, y) => x + y, 0n) + BigInt(s.fee) + BigInt(s.to_pool_revenue), b.reward, 'lines + fee + pool revenue = reward');
    if (SCHEME[b.finder] === 'solo') {
      assert.equal(lines.get(b.finder), b.reward - b.reward / 100n, 'SOLO: the finder\'s coinbase output');
    } else {
      const w = pplnsModel(shares.filter((x) => !x.splitBefore?.has(b.hash)).map((x) => ({ time: x.time, id: x.id, account: x.account, pd: x.pd })), b.time, BITS, new Q(4n, 1000n), MAX_WINDOW_S * 1000, (a) => SCHEME[a] === 'solo');
      const pp = [...w.entries()].filter(([a]) => SCHEME[a] === 'pplns').sort((x, y) => (ids.get(x[0])! < ids.get(y[0])! ? -1 : 1));
      const ff = [...w.entries()].filter(([a]) => SCHEME[a] === 'fpps');
      const sumP = pp.reduce((x, [, v]) => x.add(v), ZERO);
      const sumF = ff.reduce((x, [, v]) => x.add(v), ZERO);
      const amounts = hamilton(b.reward, [...pp.map(([, v]) => v.mul(Q.of(10_000 - FEES.pplns))), sumP.mul(Q.of(FEES.pplns)), sumF.mul(Q.of(10_000))]);
      assert.deepEqual(lines, new Map(pp.map(([a], i) => [a, amounts[i]])), `PPLNS lines of ${b.hash}`);
      assert.equal(BigInt(s.fee), amounts[pp.length]);
      assert.equal(BigInt(s.to_pool_revenue), amounts[pp.length + 1]);
    }
    assert.equal(credits.has(`block:${b.hash}:credit`), b.status === 'confirmed', `block ${b.hash} credited iff confirmed (${b.status})`);
  }

  // Every balance = its credits − its payouts, from the source tables.
  for (const name of NAMES) {
    const id = ids.get(name)!.toString();
    const r = await db.query<{ s: string }>(`SELECT (
        coalesce((SELECT sum(credited) FROM fpps_credits WHERE account_id = $1::bigint), 0)
      + coalesce((SELECT sum(l.amount) FROM block_split_lines l JOIN block_splits s ON s.block_hash = l.block_hash
          JOIN journal_entries e ON e.idempotency_key = 'block:' || l.block_hash || ':credit'
          WHERE l.account_id = $1::bigint AND NOT (s.kind = 'solo' AND s.paid_in_coinbase)), 0)
      - coalesce((SELECT sum(l.amount) FROM payout_lines l JOIN payout_batches b ON b.id = l.batch_id
          WHERE l.account_id = $1::bigint AND b.status IN ('signed', 'broadcast', 'awaiting_signature', 'confirmed')), 0))::text AS s`, [id]);
    assert.equal(await ledger.balance(db, owned('balance', BigInt(id))), BigInt(r.rows[0].s), `balance of ${name}`);
  }

  // Nothing paid twice: on chain, each address got exactly its confirmed payout lines; one transaction per batch.
  const paid = await db.query<{ address: string; s: string }>(`SELECT l.address, sum(l.amount)::text AS s FROM payout_lines l
    JOIN payout_batches b ON b.id = l.batch_id WHERE b.status = 'confirmed' GROUP BY l.address`);
  const paidBy = new Map(paid.rows.map((r) => [r.address, BigInt(r.s)]));
  for (const name of NAMES) {
    const script = addressToScript(addresses.get(name)!, 'regtest').toString('hex');
    assert.equal(wallet.received.get(script) ?? 0n, paidBy.get(addresses.get(name)!) ?? 0n, `paid on chain to ${name}`);
  }
  const perBatch = await db.query<{ batch_id: string; txid: string }>('SELECT batch_id::text, txid FROM payout_txs');
  const confirmedPerBatch = new Map<string, number>();
  for (const t of perBatch.rows) if (wallet.confirmed.has(t.txid)) confirmedPerBatch.set(t.batch_id, (confirmedPerBatch.get(t.batch_id) ?? 0) + 1);
  for (const [b, c] of confirmedPerBatch) assert.equal(c, 1, `batch ${b} confirmed once`);
  const stuck = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM payout_batches WHERE status IN ('signed', 'broadcast')");
  assert.equal(stuck.rows[0].n, '0', 'every stored payout went out and confirmed once the faults stopped');
  // The ledger's wallet = funding + credited pool rewards − confirmed payouts and their fees.
  const change = wallet.received.get(CHANGE_SCRIPT.toString('hex')) ?? 0n;
  void change;
}

test(`accounting properties over ${RUNS} random histories (crashes before any SQL statement, wallet faults around the broadcast)`, { skip: SKIP_PG, timeout: SECONDS ? SECONDS * 1000 + 300_000 : 900_000 }, async () => {
  // The histories are split over WORKERS databases and run side by side (fast-check per worker, own seed).
  const seed = Number(process.env.HASHHUB_PROPERTY_SEED ?? Date.now() % 2 ** 31);
  const deadline = SECONDS ? Date.now() + SECONDS * 1000 : Infinity;
  let total = 0;
  // The first failing history stops the other workers at their next history (their databases stay open until
  // every worker is done, so the failure printed is the real one, not a closed client's).
  let stopped = false;
  const results = await Promise.allSettled(worlds.map(async (world, k) => {
    let seq = 0;
    // Time-boxed: ordinary fast-check runs in batches of 25 (each with its own seed) until the time is up, so a
    // history is never cut off half-way. Otherwise: RUNS / workers histories.
    const perWorker = Math.ceil(RUNS / worlds.length);
    for (let batch = 0, done = 0; done < perWorker && Date.now() < deadline; batch++) {
      const n = SECONDS ? 25 : perWorker;
      if (stopped) return;
      await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 12 }), async (ops) => {
        if (stopped) return;
        try {
          await runHistory(world, ops, ++seq);
          total++;
        } catch (e) {
          // fast-check prints the history and its seed; this prints why it failed.
          process.stderr.write(`worker ${k} history ${seq} failed: ${(e as Error).stack ?? String(e)}\n`);
          stopped = true;
          throw e;
        }
      }), { numRuns: n, seed: seed + k * 100_003 + batch, endOnFailure: true, verbose: 1, examples: k === 0 && batch === 0 ? REGRESSIONS.map((h) => [h] as [Op[]]) : [] });
      done += n;
    }
  }));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  if (!SECONDS) assert.ok(total >= RUNS, `${total} histories ran`);
  process.stderr.write(`accounting properties: ${total} histories, seed ${seed}\n`);
});
