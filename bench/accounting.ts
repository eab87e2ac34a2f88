// Accounting's database timings (goal: each well under a second of database time), on the local Postgres:
//   1. crediting one FPPS hour of 10,000 workers (one share per worker every 10 s: 3.6 million shares);
//   2. a PPLNS split over a window of 1,000,000 shares;
//   3. a payout batch for 10,000 accounts (its lines, the reserve entry of 10,001 postings, the settle entry);
// and a time-boxed run of the accounting property test, its count of histories reported.
// `npx tsx bench/accounting.ts [--quick] [--property-minutes N]` prints the lines for BENCHMARKS.md; bench/run.ts
// includes them.

import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { BlockAccounting } from '../src/accounting/blocks.ts';
import { AccountingEngine } from '../src/accounting/engine.ts';
import { Fpps } from '../src/accounting/fpps.ts';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import { ensureFrame, syncParams } from '../src/accounting/params.ts';
import { buildPayout } from '../src/accounting/payouts/build.ts';
import { DEFAULT_POLICY, Payouts } from '../src/accounting/payouts/payouts.ts';
import { addressToScript, difficultyToTarget, targetToBits } from '../src/chain/index.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { migrate } from '../src/store/migrate.ts';
import { CHANGE_SCRIPT, FakeWallet } from '../test/helpers/fake-wallet.ts';
import { blockHex, poolScript } from '../test/helpers/accounting-blocks.ts';
import { benchDatabase } from './pg.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

export interface AccountingBench {
  /** Database time (waiting on statements) and wall time, ms. */
  fpps: { workers: number; shares: number; ms: number; wallMs: number; accounts: number; sumMs: number };
  pplns: { windowShares: number; ms: number; wallMs: number; lines: number; scanned: number };
  payout: { accounts: number; prepareMs: number; prepareWallMs: number; commitMs: number; commitWallMs: number; settleMs: number; settleWallMs: number; buildMs: number };
  property: { minutes: number; histories: number; ok: boolean } | null;
}

/** Log each statement's time (BENCH_TRACE=1): where a step spends its database time. */
function traced(q: import('../src/store/db.ts').Queryable, log: (s: string) => void): import('../src/store/db.ts').Queryable {
  return {
    async query(sql, params) { const t = performance.now(); const r = await q.query(sql, params); log(`    ${(performance.now() - t).toFixed(1)} ms ${sql.replace(/\s+/g, ' ').slice(0, 100)}`); return r as never; },
    async exec(sql) { const t = performance.now(); await q.exec(sql); log(`    ${(performance.now() - t).toFixed(1)} ms ${sql.replace(/\s+/g, ' ').slice(0, 100)}`); },
    copyFrom: (a, b) => q.copyFrom(a, b),
  };
}

/**
 * The database time of what runs through `db`: the time spent waiting on its statements (in or out of a
 * transaction), not the JavaScript between them (address checks, transaction building).
 */
class DbClock {
  ms = 0;
  constructor(private readonly inner: import('../src/store/db.ts').Database) {}
  private wrap(q: import('../src/store/db.ts').Queryable): import('../src/store/db.ts').Queryable {
    const self = this;
    const time = async <T>(p: Promise<T>) => { const t = performance.now(); try { return await p; } finally { self.ms += performance.now() - t; } };
    return {
      query: (sql, params) => time(q.query(sql, params)) as never,
      exec: (sql) => time(q.exec(sql)),
      copyFrom: (a, b) => time(q.copyFrom(a, b)),
    };
  }
  get db(): import('../src/store/db.ts').Database {
    const inner = this.inner;
    const w = this.wrap(inner);
    return {
      kind: inner.kind, target: inner.target, ...w,
      transaction: (fn, o) => inner.transaction((tx) => fn(this.wrap(tx)), o),
      close: () => inner.close(),
    };
  }
  async measure<T>(fn: () => Promise<T>): Promise<[T, number, number]> {
    const before = this.ms;
    const t = performance.now();
    const r = await fn();
    return [r, this.ms - before, performance.now() - t];
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
}

export async function benchAccounting(url: string, opts: { quick: boolean; propertyMinutes: number; log: (s: string) => void }): Promise<AccountingBench> {
  const db = new PgDatabase({ url, maxConnections: 4, queryTimeoutMs: 0 });
  const log = opts.log;
  try {
    await migrate(db);
    await db.exec(`ALTER TABLE blocks DROP CONSTRAINT IF EXISTS blocks_status_check;
      ALTER TABLE blocks ADD CONSTRAINT blocks_status_check CHECK (status IN ('submitted', 'unconfirmed', 'pending', 'confirmed', 'orphaned', 'rejected', 'accepted'))`);
    const T0 = Date.UTC(2033, 0, 1, 0, 0, 0);
    const frame = await ensureFrame(db, { periodSeconds: 3600, network: 'regtest', now: T0 - 3600_000 });
    const workers = opts.quick ? 1000 : 10_000;
    const perWorker = 360; // one share every 10 s for an hour
    const accounts = workers / 5;
    // Network difficulty such that N = 1 covers about a million shares of difficulty 1.
    const windowShares = opts.quick ? 100_000 : 1_000_000;
    // (Shares of difficulty 0.5, 1, 1 and 2: 1.125 on average.)
    const bits = targetToBits(difficultyToTarget(windowShares * 1.125));
    await syncParams(db, frame, { fppsFeeBps: 250, pplnsFeeBps: 100, soloFeeBps: 100, defaultScheme: 'fpps', pplnsN: 1, pplnsMaxWindowSeconds: 3600 }, T0 - 3600_000);
    await db.query("SELECT hashhub_ensure_partitions('2033-01-01', '2033-01-01')");

    log(`accounting: ${f(accounts)} accounts, ${f(workers)} workers, ${f(workers * perWorker)} shares in one hour…`);
    await db.exec(`
      INSERT INTO accounts (name) SELECT 'acct' || g FROM generate_series(1, ${accounts}) g;
      INSERT INTO workers (account_id, name, first_seen, last_seen) SELECT a.id, 'w' || k, now(), now() FROM accounts a, generate_series(1, 5) k WHERE a.id <> 0;
      INSERT INTO chain_block_values (height, subsidy, fee_blocks, fee_sum, value, bits) SELECT h, 312500000, 144, 144 * 2000000, 312500000 + 2000000, ${bits}
        FROM generate_series(900000, 900010) h;`);
    // Vardiff: each worker on one of a few difficulties; heights advance every 10 minutes.
    await db.query(`
      INSERT INTO shares (id, time, account_id, worker_id, pool_difficulty, share_difficulty, job_id, height, nbits)
      SELECT 'b' || w.id || '-' || s, $1::timestamptz + make_interval(secs => s * 10 + (w.id % 10)), w.account_id, w.id,
        (ARRAY[0.5, 1, 1, 2])[1 + (w.id % 4)], 4, 'j', 900000 + s / 60, ${bits}
      FROM generate_series(0, ${perWorker - 1}) s, workers w WHERE w.id <> 0
      ORDER BY s, w.id`, [new Date(T0).toISOString()]);
    // (In time order, as ingest writes them: the BRIN index on time depends on it.) The minute rollups ingest keeps
    // with them: a PPLNS split compares them with the share sums to find shares stored late.
    await db.exec(`INSERT INTO pool_rollups_minute (bucket, accepted, accepted_difficulty)
      SELECT date_trunc('minute', time, 'UTC'), count(*), sum(pool_difficulty) FROM shares GROUP BY 1`);
    await db.exec('ANALYZE shares');

    // Folding the hour's shares into the share sums: in production a few seconds of shares at every tick.
    const clock = new DbClock(db);
    const mdb = clock.db;
    const engine = new AccountingEngine(mdb, frame, null);
    // (The cursor starts a PPLNS window before the books: that empty hour is folded first, outside the timing.)
    while (((await engine.aggregate(T0)) ?? 0) < T0) { /* next chunk */ }
    const [, sumMs] = await timed(async () => { while (((await engine.aggregate(T0 + 3600_000)) ?? 0) < T0 + 3600_000) { /* next chunk */ } });
    log(`  folding the hour into the share sums: ${f(sumMs)} ms (${f(sumMs / 60, 1)} ms per minute of shares)`);
    const fpps = new Fpps(new Ledger());
    const [out, fppsMs, fppsWall] = await clock.measure(() => mdb.transaction((tx) => fpps.creditPeriod(tx, frame, T0)));
    if (out.kind !== 'credited') throw new Error(`FPPS bench: ${out.kind}`);
    log(`  FPPS hour: ${f(fppsMs)} ms database, ${f(fppsWall)} ms wall (${f(out.accounts)} accounts credited)`);

    // PPLNS: a block at the end of the hour; the window of N × difficulty reaches back ~windowShares shares.
    const blocks = new BlockAccounting(new Ledger());
    const hash = 'ab'.repeat(32);
    await db.query(`INSERT INTO blocks (hash, height, prev_hash, account_id, worker_id, reward, status, time, block_hex)
      SELECT $1, 900006, $2, w.account_id, w.id, 314500000, 'pending', $3::timestamptz, $4 FROM workers w WHERE w.id = 1`,
      [hash, '00'.repeat(32), new Date(T0 + 3599_000).toISOString(), blockHex({ height: 900006, bits, outputs: [{ value: 314_500_000n, scriptPubKey: poolScript() }] })]);

    // Half the accounts on PPLNS from the start.
    await db.query(`INSERT INTO account_schemes (account_id, effective_from, scheme) SELECT id, $1::timestamptz, 'pplns' FROM accounts WHERE id % 2 = 0 AND id <> 0`, [new Date(T0).toISOString()]);
    const hex = blockHex({ height: 900006, bits, outputs: [{ value: 314_500_000n, scriptPubKey: poolScript() }] });
    const [split, pplnsMs, pplnsWall] = await clock.measure(() => mdb.transaction((raw) => blocks.split(process.env.BENCH_TRACE ? traced(raw, log) : raw, frame, {
      hash, height: 900006, time: T0 + 3599_000, accountId: 1n, reward: 314_500_000n, status: 'pending', blockHex: hex,
    })));
    const w = await db.query<{ n: string }>('SELECT window_shares::text AS n FROM block_splits WHERE block_hash = $1', [hash]);
    log(`  PPLNS split: ${f(pplnsMs)} ms database, ${f(pplnsWall)} ms wall, over ${f(Number(w.rows[0].n))} shares (${split.kind === 'split' ? split.lines : 0} lines)`);

    // Payouts: every account owed 0.01 BTC, one batch of all of them.
    const ledger = new Ledger();
    const ids = (await db.query<{ id: string }>('SELECT id::text FROM accounts WHERE id <> 0 ORDER BY id LIMIT $1', [10_000])).rows.map((r) => BigInt(r.id));
    const extra = Math.max(0, 10_000 - ids.length);
    if (extra > 0) {
      await db.query(`INSERT INTO accounts (name) SELECT 'payee' || g FROM generate_series(1, ${extra}) g`);
      ids.push(...(await db.query<{ id: string }>("SELECT id::text FROM accounts WHERE name LIKE 'payee%' ORDER BY id")).rows.map((r) => BigInt(r.id)));
    }
    const payees = opts.quick ? ids.slice(0, 1000) : ids;
    const addr = 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj';
    await db.query(`INSERT INTO account_settings (account_id, payout_address, payout_address_changed_at, threshold)
      SELECT a, $2, '2000-01-01', 1000000 FROM unnest($1::bigint[]) a ON CONFLICT (account_id) DO UPDATE SET payout_address = EXCLUDED.payout_address`,
      [payees.map(String), addr]);
    const each = 1_000_000n;
    const total = each * BigInt(payees.length);
    // Balances: zero what FPPS credited, then give each exactly 0.01 BTC (one operator entry).
    const current = await db.query<{ account_id: string; balance: string }>("SELECT account_id::text, balance::text FROM ledger_accounts WHERE kind = 'balance' AND balance > 0");
    if (current.rows.length > 0) {
      await ledger.postNow(db, { key: 'bench:reset', kind: 'operator_adjustment', effectiveAt: new Date(T0), postings: [
        ...current.rows.map((r) => debit(owned('balance', BigInt(r.account_id)), BigInt(r.balance))),
        credit(pool('pool_revenue'), current.rows.reduce((s, r) => s + BigInt(r.balance), 0n)) ] });
    }
    await ledger.postNow(db, { key: 'bench:balances', kind: 'operator_adjustment', effectiveAt: new Date(T0), postings: [
      debit(pool('pool_revenue'), total), ...payees.map((id) => credit(owned('balance', id), each)) ] });
    await ledger.postNow(db, { key: 'bench:fund', kind: 'operator_adjustment', effectiveAt: new Date(T0), postings: [debit(pool('wallet'), total * 2n), credit(pool('operator_adjustments'), total * 2n)] });
    const wallet = new FakeWallet(Array.from({ length: 4 }, () => ({ value: total })));
    const payouts = new Payouts(mdb, wallet, { ...DEFAULT_POLICY, network: 'regtest', maxOutputs: 10_000, defaultThreshold: 1_000_000n, addressChangeDelaySeconds: 0 }, pino({ level: 'silent' }));
    const now = T0 + 7200_000;
    const [prep, prepareMs, prepareWall] = await clock.measure(() => payouts.prepare(now));
    if (!prep) throw new Error('payout bench: nothing due');
    const tb = performance.now();
    const script = addressToScript(addr, 'regtest');
    const built = buildPayout(await wallet.coins(), prep.lines.map((l) => ({ script, value: l.amount })), CHANGE_SCRIPT, 2);
    if (built.kind !== 'built') throw new Error('payout bench: insufficient');
    const signed = await wallet.sign(built.tx);
    const buildMs = performance.now() - tb;
    const [, commitMs, commitWall] = await clock.measure(() => payouts.commit(prep.batchId, prep.fp, prep.lines, built.tx, signed, now));
    await payouts.broadcast(prep.batchId, now);
    wallet.mine();
    const [, settleMs, settleWall] = await clock.measure(() => payouts.track(prep.batchId, now));
    log(`  payout batch of ${f(prep.lines.length)} (database / wall ms): lines ${f(prepareMs)} / ${f(prepareWall)}, reserve ${f(commitMs)} / ${f(commitWall)}, settle ${f(settleMs)} / ${f(settleWall)} (building + signing the transaction: ${f(buildMs)} ms, not database)`);
    const problems = await ledger.verify(db);
    if (problems.length) throw new Error(`ledger inconsistent after the bench: ${problems[0]}`);

    let property: AccountingBench['property'] = null;
    if (opts.propertyMinutes > 0) {
      log(`accounting properties: as many random histories as ${opts.propertyMinutes} minute(s) allow…`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', 'test/accounting-properties.test.ts'], {
        cwd: ROOT, encoding: 'utf8', env: { ...process.env, HASHHUB_PROPERTY_RUNS: '100000000', HASHHUB_PROPERTY_SECONDS: String(opts.propertyMinutes * 60) },
        maxBuffer: 256 * 1024 * 1024,
      });
      const m = /accounting properties: (\d+) histories/.exec(r.stderr + r.stdout);
      property = { minutes: opts.propertyMinutes, histories: m ? Number(m[1]) : 0, ok: r.status === 0 };
      log(`  ${f(property.histories)} histories, ${property.ok ? 'all passed' : 'FAILED (see the test output)'}`);
    }
    return {
      fpps: { workers, shares: workers * perWorker, ms: fppsMs, wallMs: fppsWall, accounts: out.accounts, sumMs },
      pplns: { windowShares: Number(w.rows[0].n), ms: pplnsMs, wallMs: pplnsWall, lines: split.kind === 'split' ? split.lines : 0, scanned: windowShares },
      payout: { accounts: prep.lines.length, prepareMs, prepareWallMs: prepareWall, commitMs, commitWallMs: commitWall, settleMs, settleWallMs: settleWall, buildMs },
      property,
    };
  } finally {
    await db.close();
  }
}

export function accountingLines(r: AccountingBench): string[] {
  const lines = ['', '## Accounting (database time)', '',
    'On the local PostgreSQL 15, one transaction each. Database time = time spent waiting on the statements; wall time adds the JavaScript between them (address checks, building entries). Goal: each well under a second of database time. The machine is shared: the load average at the end of the run is given below.', '',
    '| step | size | database ms | wall ms |', '| --- | --- | ---: | ---: |',
    `| share sums: fold an hour of shares (done incrementally, a few seconds of shares per tick) | ${f(r.fpps.shares)} shares | ${f(r.fpps.sumMs)} (${f(r.fpps.sumMs / 60, 1)} per minute of shares) | |`,
    `| FPPS: credit one hour | ${f(r.fpps.workers)} workers, ${f(r.fpps.shares)} shares, ${f(r.fpps.accounts)} accounts credited | ${f(r.fpps.ms)} | ${f(r.fpps.wallMs)} |`,
    `| PPLNS: split a block | window of ${f(r.pplns.windowShares)} shares, ${f(r.pplns.lines)} PPLNS lines | ${f(r.pplns.ms)} | ${f(r.pplns.wallMs)} |`,
    `| payout batch: lines from the balances | ${f(r.payout.accounts)} accounts | ${f(r.payout.prepareMs)} | ${f(r.payout.prepareWallMs)} |`,
    `| payout batch: store the signed transaction, post the reserve (${f(r.payout.accounts + 1)} postings) | ${f(r.payout.accounts)} accounts | ${f(r.payout.commitMs)} | ${f(r.payout.commitWallMs)} |`,
    `| payout batch: settle on confirmation | ${f(r.payout.accounts)} accounts | ${f(r.payout.settleMs)} | ${f(r.payout.settleWallMs)} |`,
    '',
    `Building and signing the ${f(r.payout.accounts)}-output transaction (CPU, not database) took ${f(r.payout.buildMs)} ms; a standard transaction stops near 100 kvB (~2,900 P2WPKH outputs), so pools that large pay in several batches (\`accounting.payouts.maxOutputs\`, default 2,000).`,
    `Load average at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(', ')}.`];
  if (r.property) {
    lines.push('', `Accounting properties, time-boxed to ${r.property.minutes} minute(s): ${f(r.property.histories)} random histories (4 databases side by side), ${r.property.ok ? 'all passed' : 'FAILED'}.`);
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const i = process.argv.indexOf('--property-minutes');
  const minutes = i > 0 ? Number(process.argv[i + 1]) : quick ? 0 : 30;
  const bdb = await benchDatabase();
  if (!bdb) {
    process.stderr.write('no Postgres for the accounting bench\n');
    process.exit(1);
  }
  try {
    const r = await benchAccounting(bdb.url, { quick, propertyMinutes: minutes, log: (s) => process.stderr.write(`${s}\n`) });
    process.stdout.write(`${accountingLines(r).join('\n')}\n`);
  } finally {
    if (process.env.BENCH_KEEP) process.stderr.write(`kept ${bdb.url}\n`);
    else await bdb.drop();
  }
}
