import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AccountingEngine } from '../src/accounting/engine.ts';
import type { BooksFrame } from '../src/accounting/params.ts';
import type { ShareEvent } from '../src/shares/events.ts';
import type { Database } from '../src/store/db.ts';
import { BACKENDS, accountId, insertBlock, openMigrated, setWatermark, setupBooks, share, writeShares } from './helpers/accounting.ts';
import { blockHash, blockHex, poolScript } from './helpers/accounting-blocks.ts';
import { type ModelShare, Q, hamilton, pplnsModel } from './helpers/money-model.ts';
import { SKIP_PG } from './helpers/pg.ts';

// A share stored after the share sums passed its time (a spool replayed late) counts in the PPLNS window of a
// block split after it was stored, whichever bucket it fell in: the window reads older buckets from the sums and
// the newest ones share by share, and both must hold it. Minute buckets (a period of a minute or more) find such
// buckets from the minute rollups ingest keeps, as a real deployment does; the property test covers shorter ones.

const P = 60;
const T0 = Date.UTC(2031, 6, 1, 0, 0, 0);
const BITS = 0x1d00ffff;
const FEE_BPS = 100;
const N = 1000; // far more than the shares below: the window is capped by time
const MAX_WINDOW_S = 900;

for (const backend of BACKENDS) {
  describe(`PPLNS windows and late shares on ${backend.name}`, { skip: backend.name === 'postgres' && SKIP_PG }, () => {
    let db: Database;
    let cleanup: () => Promise<void>;
    let frame: BooksFrame;
    const ids = new Map<string, bigint>();
    const model: ModelShare[] = [];
    before(async () => {
      ({ db, cleanup } = await openMigrated(backend));
      frame = await setupBooks(db, T0, P, { pplnsFeeBps: FEE_BPS, defaultScheme: 'pplns', pplnsN: N, pplnsMaxWindowSeconds: MAX_WINDOW_S });
      for (const name of ['p1', 'p2', 'p3']) ids.set(name, await accountId(db, name));
    });
    after(async () => { await cleanup?.(); });

    async function addShares(list: ShareEvent[]) {
      await writeShares(db, list);
      for (const s of list) model.push({ time: s.time, id: s.id, account: s.account, pd: s.poolDifficulty });
    }

    async function splitLines(hash: string): Promise<Map<string, bigint>> {
      const r = await db.query<{ name: string; amount: string }>(
        'SELECT a.name, l.amount::text FROM block_split_lines l JOIN accounts a ON a.id = l.account_id WHERE l.block_hash = $1', [hash]);
      return new Map(r.rows.map((x) => [x.name, BigInt(x.amount)]));
    }

    function expected(T: number, reward: bigint, shares: ModelShare[]): Map<string, bigint> {
      const w = pplnsModel(shares, T, BITS, Q.of(N), MAX_WINDOW_S * 1000, () => false);
      const lines = [...w.entries()].sort((a, b) => (ids.get(a[0])! < ids.get(b[0])! ? -1 : 1));
      const sum = lines.reduce((s, [, x]) => s.add(x), Q.of(0));
      const amounts = hamilton(reward, [...lines.map(([, x]) => x.mul(Q.of(10_000 - FEE_BPS))), sum.mul(Q.of(FEE_BPS)), Q.of(0)]);
      return new Map(lines.map(([a], i) => [a, amounts[i]]));
    }

    test('a share stored after the sums passed its minute counts in a window split later; not in one split before', async () => {
      // p1 and p2 mine for eight minutes; the sums are folded up to minute 5 (the watermark is there).
      const list: ShareEvent[] = [];
      for (let i = 0; i < 96; i++) list.push(share({ time: T0 + 2_000 + i * 5_000, account: i % 2 ? 'p2' : 'p1', poolDifficulty: 1 + (i % 3), nbits: BITS }));
      await addShares(list);
      const engine = new AccountingEngine(db, frame, null);
      await setWatermark(db, T0 + 300_000);
      await engine.runOnce(T0 + 300_000);
      const cursor = await db.query<{ t: Date | string }>('SELECT aggregated_to AS t FROM accounting_cursor');
      assert.ok(new Date(cursor.rows[0].t).getTime() >= T0 + 240_000, 'the sums passed minute 2');

      const T = T0 + 480_000;
      const hash = blockHash();
      const reward = 5_000_000_000n;
      await insertBlock(db, { hash, height: 300, time: T, account: 'p1', reward, status: 'pending', blockHex: blockHex({ height: 300, bits: BITS, outputs: [{ value: reward, scriptPubKey: poolScript() }] }) });
      // Replayed late, into minute 2 (read from the sums, well inside the window): p3's only shares.
      const late = [share({ time: T0 + 150_000, account: 'p3', poolDifficulty: 7, nbits: BITS }), share({ time: T0 + 150_001, account: 'p3', poolDifficulty: 5, nbits: BITS })];
      await addShares(late);
      await setWatermark(db, T + 1);
      const r = await engine.runOnce(T + 1);
      assert.deepEqual(r.splits.map((s) => s.kind), ['split']);
      assert.deepEqual(r.splits[0].kind === 'split' && r.splits[0].late, { resummed: 1, kept: 0 }, 'the split says it took in late shares');
      const got = await splitLines(hash);
      assert.ok((got.get('p3') ?? 0n) > 0n, 'the late shares are in the window');
      assert.deepEqual(got, expected(T, reward, model));
      const w = await db.query<{ n: string }>('SELECT window_shares::text AS n FROM block_splits WHERE block_hash = $1', [hash]);
      assert.equal(w.rows[0].n, String(model.filter((s) => s.time <= T).length));

      // A share stored after the split changes nothing: a split is computed once.
      await addShares([share({ time: T0 + 150_002, account: 'p3', poolDifficulty: 50, nbits: BITS })]);
      await engine.runOnce(T + 2);
      assert.deepEqual(await splitLines(hash), got);
      // The sums hold every stored share again (the next window reads them right).
      const sums = await db.query<{ n: string }>("SELECT coalesce(sum(n), 0)::text AS n FROM share_sums_bucket WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz",
        [new Date(T0).toISOString(), new Date(T0 + 240_000).toISOString()]);
      assert.equal(sums.rows[0].n, String(model.filter((s) => s.time < T0 + 240_000).length - 1));
    });

    test('a bucket whose raw shares are gone (retention) is never re-summed to fewer shares than its sums hold', async () => {
      const engine = new AccountingEngine(db, frame, null);
      // p4 alone mines minute 10; the sums fold it; then its raw shares are dropped (as retention drops a day).
      await writeShares(db, Array.from({ length: 5 }, (_, i) => share({ time: T0 + 600_000 + i * 10_000, account: 'p4', poolDifficulty: 3, nbits: BITS })));
      await writeShares(db, [share({ time: T0 + 700_000, account: 'p1', poolDifficulty: 1, nbits: BITS })]);
      await setWatermark(db, T0 + 880_000);
      await engine.runOnce(T0 + 880_000);
      await db.query('DELETE FROM shares WHERE time >= $1::timestamptz AND time < $2::timestamptz', [new Date(T0 + 600_000).toISOString(), new Date(T0 + 660_000).toISOString()]);
      // A share replayed late into that minute: the rollups count 6, the raw table holds 1, the sums 5.
      await writeShares(db, [share({ time: T0 + 630_001, account: 'p3', poolDifficulty: 1, nbits: BITS })]);
      const T = T0 + 870_000;
      const hash = blockHash();
      await insertBlock(db, { hash, height: 300, time: T, account: 'p1', reward: 1_000_000_000n, status: 'pending', blockHex: blockHex({ height: 300, bits: BITS, outputs: [{ value: 1_000_000_000n, scriptPubKey: poolScript() }] }) });
      await setWatermark(db, T + 1);
      const r = await engine.runOnce(T + 1);
      assert.deepEqual(r.splits.map((x) => x.kind), ['split']);
      // (Re-summed too: minute 2, where the first test stored a share after its split.)
      assert.deepEqual(r.splits[0].kind === 'split' && r.splits[0].late, { resummed: 1, kept: 1 }, 'the split says it kept the sums');
      const got = await splitLines(hash);
      // p4's 15 of difficulty stay in the window (its sums were kept).
      assert.ok((got.get('p4') ?? 0n) > 0n, `p4's summed shares are still in the window: ${[...got].map(([a, v]) => `${a} ${v}`).join(", ")}`);
    });
  });
}

// The same where maintenance has compacted the minute rollups into hours (a window longer than compactAfterDays):
// the late share's minute row holds only the late count, so those hours are compared whole.
const H = 3_600_000;
const D = 86_400_000;
for (const backend of BACKENDS) {
  describe(`PPLNS windows and late shares in compacted rollups on ${backend.name}`, { skip: backend.name === 'postgres' && SKIP_PG }, () => {
    let db: Database;
    let cleanup: () => Promise<void>;
    let frame: BooksFrame;
    before(async () => {
      ({ db, cleanup } = await openMigrated(backend));
      frame = await setupBooks(db, T0, 3600, { pplnsFeeBps: FEE_BPS, defaultScheme: 'pplns', pplnsN: 100_000, pplnsMaxWindowSeconds: 3 * 86_400 });
      for (const name of ['p1', 'p2', 'p3']) await accountId(db, name);
    });
    after(async () => { await cleanup?.(); });

    test('a late share in a compacted hour counts in a window split after it was stored', async () => {
      const list: ShareEvent[] = [];
      for (let i = 0; i < 3 * 144; i++) list.push(share({ time: T0 + 2_000 + i * 600_000, account: i % 2 ? 'p2' : 'p1', poolDifficulty: 1, nbits: BITS }));
      await writeShares(db, list);
      const engine = new AccountingEngine(db, frame, null);
      await setWatermark(db, T0 + 3 * D);
      await engine.aggregate(T0 + 3 * D, 600_000);
      // Maintenance at T0 + 3 d + 1 h, compactAfterDays = 2: the minutes of the first day become hour rows.
      await db.query('SELECT hashhub_compact_rollups(2, $1::timestamptz)', [new Date(T0 + 3 * D + H).toISOString()]);
      const T = T0 + 3 * D - 30 * 60_000;
      const hash = blockHash();
      await insertBlock(db, { hash, height: 300, time: T, account: 'p1', reward: 5_000_000_000n, status: 'pending', blockHex: blockHex({ height: 300, bits: BITS, outputs: [{ value: 5_000_000_000n, scriptPubKey: poolScript() }] }) });
      // Replayed late into T0 + 12 h, a minute that already holds one summed share.
      await writeShares(db, [share({ time: T0 + 12 * H + 30_000, account: 'p3', poolDifficulty: 1000, nbits: BITS })]);
      const r = await engine.runOnce(T0 + 3 * D + H);
      assert.deepEqual(r.splits.map((s) => s.kind), ['split']);
      const lines = await db.query<{ name: string; amount: string }>(
        'SELECT a.name, l.amount::text FROM block_split_lines l JOIN accounts a ON a.id = l.account_id WHERE l.block_hash = $1', [hash]);
      const p3 = lines.rows.find((x) => x.name === 'p3');
      // p3's 1000 of the window's 430 + 1000 difficulty (every share up to T: the cap is 3 days), less the fee.
      assert.ok(p3 && BigInt(p3.amount) > 2_000_000_000n, `the late share is in the window (${JSON.stringify(lines.rows)})`);
    });
  });
}
