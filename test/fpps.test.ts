import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AccountingEngine, type ValueSource } from '../src/accounting/engine.ts';
import { owned, pool } from '../src/accounting/ledger.ts';
import type { BooksFrame } from '../src/accounting/params.ts';
import { Settings } from '../src/accounting/settings.ts';
import type { ShareEvent } from '../src/shares/events.ts';
import type { Database } from '../src/store/db.ts';
import {
  BACKENDS, accountId, openMigrated, setBlockValue, setWatermark, setupBooks, share, writeShares,
} from './helpers/accounting.ts';
import { type Q, ZERO, creditRun, shareValue } from './helpers/money-model.ts';
import { SKIP_PG } from './helpers/pg.ts';
import { Maintenance } from '../src/store/maintenance.ts';

// FPPS from stored shares: credited per period after the watermark passes its end, to the satoshi against an
// exact model of the formula, with the remainder carried; exactly once, including shares that arrive late.

const P = 10; // seconds per period
const T0 = Date.UTC(2031, 2, 10, 12, 0, 0);
const MAINNET_BITS = 0x17034219; // a real mainnet target: 48 fractional bits in the ratio
// Difficulty ~16,307 (testnet-like): every pool difficulty below stays below the network's, as the pool enforces.
const LOW_BITS = 0x1b0404cb;
const VALUE = new Map<number, bigint>([[200, 5_000_000_000n + 123_457n], [201, 5_000_000_000n + 99n], [150_000, 312_500_000n + 2_500_001n]]);

function expected(shares: ShareEvent[], frame: BooksFrame, account: string, periods: number[], feeBps: number, legacyBits = LOW_BITS): bigint[] {
  const exacts: Q[] = periods.map((p) => shares
    .filter((s) => s.account === account && s.time >= p && s.time < p + frame.periodSeconds * 1000)
    .reduce((sum, s) => sum.add(shareValue(s.poolDifficulty, s.nbits ?? legacyBits, VALUE.get(s.height)!, feeBps)), ZERO));
  return creditRun(exacts).credited;
}

async function credits(db: Database, account: string): Promise<Map<number, bigint>> {
  const r = await db.query<{ p: Date | string; c: string }>(
    `SELECT c.period_start AS p, sum(c.credited)::text AS c FROM fpps_credits c JOIN accounts a ON a.id = c.account_id
     WHERE a.name = $1 GROUP BY 1 ORDER BY 1`, [account]);
  return new Map(r.rows.map((x) => [new Date(x.p).getTime(), BigInt(x.c)]));
}

for (const backend of BACKENDS) {
  describe(`FPPS on ${backend.name}`, { skip: backend.name === 'postgres' && SKIP_PG }, () => {
    let db: Database;
    let cleanup: () => Promise<void>;
    let frame: BooksFrame;
    let engine: AccountingEngine;
    before(async () => {
      ({ db, cleanup } = await openMigrated(backend));
      frame = await setupBooks(db, T0, P, { fppsFeeBps: 250, defaultScheme: 'fpps' });
      for (const [h, v] of VALUE) await setBlockValue(db, h, v, LOW_BITS);
      engine = new AccountingEngine(db, frame, null);
    });
    after(async () => { await cleanup?.(); });

    const all: ShareEvent[] = [];
    beforeEach(() => { /* shares accumulate across tests on purpose: each test adds later periods */ });

    test('credits each period once the watermark is past it, to the satoshi, with the fraction carried', async () => {
      const diffs = [1, 0.0001, 3.7, 65536, 1e-8, 1234.56789012345, 0.5];
      const batch: ShareEvent[] = [];
      for (let i = 0; i < 140; i++) {
        batch.push(share({
          time: T0 + i * 150, account: i % 3 === 0 ? 'alice' : 'bob', poolDifficulty: diffs[i % diffs.length],
          nbits: i % 4 === 0 ? MAINNET_BITS : LOW_BITS, height: i % 5 === 0 ? 201 : 200,
        }));
      }
      // One at a height past the second halving, and one stored the old way (no nbits: the chain's bits apply).
      batch.push(share({ time: T0 + 5_000, account: 'alice', poolDifficulty: 7, height: 150_000, nbits: MAINNET_BITS }));
      batch.push(share({ time: T0 + 6_000, account: 'alice', poolDifficulty: 2, nbits: undefined }));
      all.push(...batch);
      await writeShares(db, batch);

      // Watermark inside the second period: only the first is credited.
      await setWatermark(db, T0 + 15_000);
      const r1 = await engine.creditPeriods(T0 + 15_000);
      assert.deepEqual(r1.outcomes.map((o) => o.kind), ['credited']);
      await setWatermark(db, T0 + 30_000);
      const r2 = await engine.creditPeriods(T0 + 30_000);
      assert.deepEqual(r2.outcomes.map((o) => o.kind), ['credited', 'credited']);
      // Again: nothing new.
      assert.deepEqual((await engine.creditPeriods(T0 + 30_000)).outcomes, []);

      const periods = [T0, T0 + 10_000, T0 + 20_000];
      for (const who of ['alice', 'bob']) {
        const want = expected(all, frame, who, periods, 250);
        const got = await credits(db, who);
        assert.deepEqual(periods.map((p) => got.get(p) ?? 0n), want, `${who}'s credits`);
        const id = await accountId(db, who);
        assert.equal(await engine.ledger.balance(db, owned('balance', id)), want.reduce((s, x) => s + x, 0n));
      }
      const total = [...(await credits(db, 'alice')).values(), ...(await credits(db, 'bob')).values()].reduce((s, x) => s + x, 0n);
      assert.ok(total > 0n);
      // The pool pays FPPS out of its revenue (negative here: no block found yet).
      assert.equal(await engine.ledger.balance(db, pool('pool_revenue')), -total);
      assert.deepEqual(await engine.ledger.verify(db), []);
    });

    test('shares replayed into a period before the watermark passes it are credited with it, once', async () => {
      const bobs = share({ time: T0 + 32_000, account: 'bob', poolDifficulty: 3 });
      const late = share({ time: T0 + 31_000, account: 'alice', poolDifficulty: 100 });
      await writeShares(db, [bobs]);
      all.push(bobs);
      // Another pool process is behind (its spool has not reached the database): its watermark holds the period.
      await setWatermark(db, T0 + 45_000);
      await setWatermark(db, T0 + 30_500, 'process-b');
      assert.deepEqual((await engine.creditPeriods(T0 + 30_500)).outcomes, []);
      // Its spool replays now, and its watermark moves on.
      await writeShares(db, [late]);
      all.push(late);
      await setWatermark(db, T0 + 40_000, 'process-b');
      const r = await engine.creditPeriods(T0 + 40_000);
      assert.equal(r.outcomes.length, 1);
      const got = await credits(db, 'alice');
      const want = expected(all, frame, 'alice', [T0, T0 + 10_000, T0 + 20_000, T0 + 30_000], 250);
      assert.equal(got.get(T0 + 30_000), want[3]);
      assert.ok(want[3] > 0n);
    });

    test('shares stored after their period was credited are credited by an adjustment, exactly the difference', async () => {
      const id = await accountId(db, 'alice');
      const before = await engine.ledger.balance(db, owned('balance', id));
      // A process nobody knew of (no watermark row) delivers a share into an already credited period.
      const late = share({ time: T0 + 12_345, account: 'alice', poolDifficulty: 50_000 });
      await writeShares(db, [late]);
      all.push(late);
      const adj = await engine.adjustLate(T0 + 41_000);
      assert.deepEqual(adj.map((a) => a.kind), ['credited']);
      assert.equal(adj[0].kind === 'credited' && adj[0].revision, 1);
      // Cumulative credits now equal the model with the late share in its own period (and the carry through it).
      const want = expected(all, frame, 'alice', [T0, T0 + 10_000, T0 + 20_000, T0 + 30_000], 250);
      const wantTotal = want.reduce((s, x) => s + x, 0n);
      const after = await engine.ledger.balance(db, owned('balance', id));
      assert.ok(after > before);
      // Credits + carry always equal the exact sum and the carry is below a satoshi, so the total credited is
      // floor(exact sum) whichever period the late share was paid in: the model's total, exactly.
      assert.equal(after, wantTotal);
      assert.deepEqual(await engine.adjustLate(T0 + 41_000), []);
      assert.deepEqual(await engine.ledger.verify(db), []);
    });

    test('PPLNS and SOLO accounts get no FPPS credit; a scheme change applies from the next period', async () => {
      const settings = new Settings({ network: 'regtest', minThreshold: 10_000n, defaultThreshold: 100_000n, allowedSchemes: ['fpps', 'pplns', 'solo'] });
      const carol = await accountId(db, 'carol');
      const dan = await accountId(db, 'dan');
      await settings.update(db, frame, carol, { scheme: 'pplns' }, 'test', T0 + 41_000);
      await settings.update(db, frame, dan, { scheme: 'solo', payoutAddress: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' }, 'test', T0 + 41_000);
      // Shares in the current period (40..50 s) are still FPPS: the change takes effect at 50 s.
      const s = [
        share({ time: T0 + 45_000, account: 'carol', poolDifficulty: 10 }), share({ time: T0 + 45_000, account: 'dan', poolDifficulty: 10 }),
        share({ time: T0 + 55_000, account: 'carol', poolDifficulty: 10 }), share({ time: T0 + 55_000, account: 'dan', poolDifficulty: 10 }),
      ];
      await writeShares(db, s);
      all.push(...s);
      await setWatermark(db, T0 + 60_000);
      await engine.creditPeriods(T0 + 60_000);
      const c = await credits(db, 'carol');
      const d = await credits(db, 'dan');
      assert.ok((c.get(T0 + 40_000) ?? 0n) > 0n && (d.get(T0 + 40_000) ?? 0n) > 0n);
      assert.equal(c.get(T0 + 50_000), undefined);
      assert.equal(d.get(T0 + 50_000), undefined);
    });

    test('a height without a recorded block value holds its period until the value source records it', async () => {
      await writeShares(db, [share({ time: T0 + 61_000, account: 'alice', height: 202, poolDifficulty: 1, nbits: LOW_BITS })]);
      await setWatermark(db, T0 + 70_000);
      const noValues = await engine.creditPeriods(T0 + 70_000);
      assert.match(noValues.waiting ?? '', /202/);
      const asked: number[][] = [];
      const values: ValueSource = {
        async ensure(heights) {
          asked.push([...heights]);
          for (const h of heights) await setBlockValue(db, h, 5_000_000_000n, LOW_BITS);
          return { recorded: [...heights], notYet: [] };
        },
      };
      const withValues = new AccountingEngine(db, frame, values);
      const r = await withValues.creditPeriods(T0 + 70_000);
      assert.deepEqual(asked, [[202]]);
      assert.deepEqual(r.outcomes.map((o) => o.kind), ['credited']);
      assert.equal(r.waiting, null);
    });
  });
}

for (const backend of BACKENDS) {
  describe(`FPPS with daily periods and compacted rollups on ${backend.name}`, { skip: backend.name === 'postgres' && SKIP_PG }, () => {
    test('periods whose minute rollups compaction folded into hours are not taken for periods with late shares', async () => {
      // Failed before: the late-share check compared a period's credited shares with its minute rollups only; with
      // daily periods it looks back 24 days, past compaction (minutes folded into hours after a few days), so every
      // older period looked changed and got a new revision on every accounting pass.
      const { db, cleanup } = await openMigrated(backend);
      try {
        const D = 86_400_000;
        const start = Date.UTC(2031, 3, 1);
        const frame = await setupBooks(db, start, 86_400, { fppsFeeBps: 100, defaultScheme: 'fpps' });
        await setBlockValue(db, 200, 5_000_000_000n, LOW_BITS);
        const engine = new AccountingEngine(db, frame, null);
        const batch: ShareEvent[] = [];
        for (let d = 0; d < 8; d++) for (let h = 0; h < 24; h += 6) batch.push(share({ time: start + d * D + h * 3_600_000 + 61_000, account: 'dana', poolDifficulty: 2 }));
        await writeShares(db, batch);
        const now = start + 8 * D + 1000;
        await setWatermark(db, now);
        // Eight days of ten-minute sums: a pass folds what its 5 s budget allows (one pass on a loaded machine folded
        // three days), so passes run until every period is credited, as the service's ticks would.
        const credited = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM fpps_periods WHERE revisions = 0')).rows[0].n;
        for (let pass = 0; pass < 20 && (await credited()) < 8; pass++) await engine.runOnce(now);
        assert.equal(await credited(), 8, 'eight daily periods credited');
        const folded = await new Maintenance(db, { shareDays: 30, compactAfterDays: 2, partitionsAhead: 1, intervalMs: 60_000 }).runOnce(new Date(now));
        assert.ok((folded.compacted ?? 0) > 0, `compaction folded minutes into hours: ${JSON.stringify(folded)}`);
        assert.deepEqual(await engine.adjustLate(now + 1000), [], 'no period changed');
        const revised = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM fpps_periods WHERE revisions > 0');
        assert.equal(revised.rows[0].n, 0);
        // A share that really is late, into a folded day, is still found and credited by an adjustment.
        await writeShares(db, [share({ time: start + 1 * D + 7_200_000 + 5_000, account: 'dana', poolDifficulty: 2 })]);
        const adj = await engine.adjustLate(now + 2000);
        assert.deepEqual(adj.map((a) => a.kind === 'credited' && a.periodStart), [start + D]);
        assert.deepEqual(await engine.ledger.verify(db), []);
      } finally {
        await cleanup();
      }
    });
  });
}
