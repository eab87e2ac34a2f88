import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BlockEvent, ShareEvent } from '../src/shares/events.ts';
import { SHARE_OUTCOMES, type ShareOutcome } from '../src/shares/outcome.ts';
import type { Database } from '../src/store/db.ts';
import { Maintenance } from '../src/store/maintenance.ts';
import { loadMigrations, migrate } from '../src/store/migrate.ts';
import { SqlShareWriter } from '../src/store/share-writer.ts';
import { SqlStatsReader, windowStart } from '../src/store/stats-reader.ts';
import { BACKENDS, SKIP_PG } from './helpers/pg.ts';

// The store against both engines it runs on: the real Postgres server and PGlite. Same SQL, same answers.

const MIN = 60_000;
const DAY = 86_400_000;
/** A fixed clock, mid-minute, so windows and buckets are deterministic. */
const NOW = Date.UTC(2031, 2, 10, 12, 30, 20, 500);

let seq = 0;
function share(over: Partial<ShareEvent> = {}): ShareEvent {
  seq++;
  return {
    id: `t-${seq}`, time: NOW - 1000, account: 'alice', worker: 'rig1', sessionId: 's1', remoteAddress: '127.0.0.1',
    jobId: 'j1', height: 900_000, outcome: 'accepted', poolDifficulty: 1, shareDifficulty: 1.5, block: false, ...over,
  };
}

type Candidate = Extract<BlockEvent, { kind: 'candidate' }>;
type StatusEvent = Extract<BlockEvent, { kind: 'status' }>;

function block(over: Partial<Candidate> = {}): Candidate {
  return {
    kind: 'candidate', time: NOW - 500, height: 900_001, hash: '00'.repeat(31) + 'aa', prevHash: '11'.repeat(32), account: 'alice',
    // More than 2^53 satoshis: proves the reward never passes through a float.
    worker: 'rig1', reward: 9_007_199_254_740_993n, blockHex: 'deadbeef', ...over,
  };
}

function status(hash: string, over: Partial<StatusEvent> = {}): StatusEvent {
  return { kind: 'status', time: NOW - 400, hash, status: 'pending', result: null, confirmations: 1, settled: false, ...over };
}

async function count(db: Database, sql: string, params: unknown[] = []): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT (${sql})::float8 AS n`, params);
  return Number(r.rows[0].n);
}

/** Empty every table (partitions stay), so each test starts clean on the shared database. */
async function reset(db: Database): Promise<void> {
  await db.exec(`
    TRUNCATE shares, share_rejects, worker_rollups_minute, worker_rollups_hour, pool_rollups_minute, pool_rollups_hour, blocks, block_answers CASCADE;
    DELETE FROM workers WHERE id <> 0; DELETE FROM accounts WHERE id <> 0;`);
}

for (const backend of BACKENDS) {
  describe(`store on ${backend.name}`, { skip: backend.name === 'postgres' && SKIP_PG }, () => {
    let db: Database;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ db, cleanup } = await backend.open());
    });
    after(async () => {
      await cleanup?.();
    });

    test('migrations apply once, in order, and are recorded; concurrent runs apply each once', async () => {
      const [a, b] = await Promise.all([migrate(db), migrate(db)]);
      const all = loadMigrations();
      assert.deepEqual([...a.applied, ...b.applied].sort(), all.map((m) => `${String(m.version).padStart(3, '0')}_${m.name}`));
      const again = await migrate(db);
      assert.deepEqual(again.applied, []);
      const rows = (await db.query<{ version: number; checksum: string }>('SELECT version, checksum FROM schema_migrations ORDER BY version')).rows;
      assert.deepEqual(rows.map((r) => Number(r.version)), all.map((m) => m.version));
      assert.deepEqual(rows.map((r) => r.checksum), all.map((m) => m.checksum));
      // The database's share classes are exactly the pool's.
      const labels = (await db.query<{ l: string }>("SELECT unnest(enum_range(NULL::share_outcome))::text AS l")).rows.map((r) => r.l);
      assert.deepEqual(labels, [...SHARE_OUTCOMES]);
    });

    test('a COPY batch is written once: the same batch again, or overlapping, adds nothing twice', async () => {
      await reset(db);
      const w = new SqlShareWriter(db);
      const rejects = SHARE_OUTCOMES.filter((o) => o !== 'accepted');
      // 1,200 accepted rows: more than one COPY slice (the writer encodes 500 rows a turn); the escaping rows last.
      const batch: ShareEvent[] = [
        ...Array.from({ length: 1200 }, (_, i) => share({ worker: `rig${i % 3}`, poolDifficulty: 0.5 + (i % 4), shareDifficulty: 1 + i / 7, time: NOW - 5000 - i * 10 })),
        ...rejects.map((o) => share({ outcome: o, worker: 'rig0', poolDifficulty: 2 })),
        // Before authorization: no account; counted in the pool's rejects, no account created.
        share({ outcome: 'unauthorized', account: '', worker: 'who\tknows\n\\', poolDifficulty: 1 }),
        // Names COPY must escape.
        share({ account: 'bob', worker: 'we\\ird', jobId: 'j\t2' }),
      ];
      const r1 = await w.writeShares(batch);
      assert.deepEqual(r1, { inserted: batch.length, duplicates: 0 });
      const r2 = await w.writeShares(batch);
      assert.deepEqual(r2, { inserted: 0, duplicates: batch.length });
      const extra = share({ worker: 'rig0', poolDifficulty: 8 });
      const r3 = await w.writeShares([...batch.slice(0, 50), extra, extra]);
      assert.deepEqual(r3, { inserted: 1, duplicates: 51 });

      const accepted = [...batch, extra].filter((s) => s.outcome === 'accepted');
      assert.equal(await count(db, 'SELECT count(*) FROM shares'), accepted.length);
      assert.equal(await count(db, 'SELECT count(*) FROM share_rejects'), rejects.length + 1);
      const sumDiff = accepted.reduce((s, x) => s + x.poolDifficulty, 0);
      const pool = (await db.query<Record<string, number>>(`SELECT sum(accepted)::float8 AS accepted, sum(accepted_difficulty)::float8 AS diff,
        sum(unauthorized)::float8 AS unauthorized, sum(stale)::float8 AS stale, sum(rejected_difficulty)::float8 AS rdiff FROM pool_rollups_minute`)).rows[0];
      assert.equal(pool.accepted, accepted.length);
      assert.ok(Math.abs(pool.diff - sumDiff) < 1e-9 * sumDiff);
      assert.equal(pool.unauthorized, 2, 'one from an authorized worker, one before authorization');
      assert.equal(pool.stale, 1);
      assert.equal(pool.rdiff, rejects.length * 2 + 1);
      const workers = await count(db, 'SELECT sum(accepted) FROM worker_rollups_minute');
      assert.equal(workers, accepted.length);
      // Every reject class has its column, once.
      for (const o of rejects) {
        assert.equal(await count(db, `SELECT sum(${o.replace(/-/g, '_')}) FROM worker_rollups_minute`), o === 'unauthorized' ? 2 : 1, o);
      }
      assert.equal(await count(db, "SELECT count(*) FROM accounts WHERE id <> 0"), 2, 'alice and bob; none for the unauthorized share');
      const odd = (await db.query<{ name: string; job_id: string }>("SELECT w.name, s.job_id FROM shares s JOIN workers w ON w.id = s.worker_id JOIN accounts a ON a.id = s.account_id WHERE a.name = 'bob'")).rows;
      assert.deepEqual(odd, [{ name: 'we\\ird', job_id: 'j\t2' }]);
      // Exact doubles survive the trip (the ingest tests match miners' shares on them).
      const d = (await db.query<{ share_difficulty: number }>('SELECT share_difficulty FROM shares ORDER BY share_difficulty')).rows.map((x) => x.share_difficulty);
      assert.deepEqual(d, accepted.map((s) => s.shareDifficulty).sort((a, b) => a - b));
    });

    test('workers: first/last seen, current difficulty, user agent; online status from the last share', async () => {
      await reset(db);
      const w = new SqlShareWriter(db);
      await w.writeShares([share({ worker: 'a', time: NOW - 20 * MIN, poolDifficulty: 1 }), share({ worker: 'b', time: NOW - 2 * MIN, poolDifficulty: 3 })]);
      await w.writeShares([{ ...share({ worker: 'a', time: NOW - 15 * MIN, poolDifficulty: 2 }), userAgent: 'bmminer/2.0' }]);
      // An older share arriving late (a replay) moves first_seen back but not the difficulty.
      await w.writeShares([share({ worker: 'a', time: NOW - 30 * MIN, poolDifficulty: 9 })]);
      const r = new SqlStatsReader(db, { onlineMinutes: 10 });
      const page = await r.workers('alice', { limit: 10, offset: 0 }, new Date(NOW));
      assert.equal(page.total, 2);
      const [a, b] = page.items;
      assert.equal(a.worker, 'a');
      assert.equal(a.firstSeen, new Date(NOW - 30 * MIN).toISOString());
      assert.equal(a.lastSeen, new Date(NOW - 15 * MIN).toISOString());
      assert.equal(a.difficulty, 2);
      assert.equal(a.userAgent, 'bmminer/2.0');
      assert.equal(a.online, false);
      assert.equal(b.online, true);
      assert.equal(b.difficulty, 3);
      const acct = await r.account('alice', new Date(NOW));
      assert.equal(acct?.workers, 2);
      assert.equal(acct?.workersOnline, 1);
      const pool = await r.poolHashrate(new Date(NOW));
      assert.equal(pool.workers, 1);
      assert.equal(pool.miners, 1);
      assert.equal(await r.account('nobody', new Date(NOW)), null);
      assert.deepEqual(await r.workers('nobody', { limit: 10, offset: 0 }), { total: 0, items: [] });
      const second = await r.workers('alice', { limit: 1, offset: 1 }, new Date(NOW));
      assert.deepEqual(second.items.map((x) => x.worker), ['b']);
    });

    test('hashrate from the rollups = Σ accepted difficulty × 2^32 / seconds, per pool, account, worker and series', async () => {
      await reset(db);
      const w = new SqlShareWriter(db);
      // Shares spread over the last 30 hours; rejects carry difficulty too but must not count.
      const shares: ShareEvent[] = [];
      for (let i = 0; i < 600; i++) {
        const t = NOW - Math.floor((i * i * 300) % (30 * 3600 * 1000)) - 1;
        shares.push(share({ time: t, worker: `rig${i % 4}`, account: i % 5 === 0 ? 'bob' : 'alice', poolDifficulty: 0.25 * (1 + (i % 7)) }));
        if (i % 10 === 0) shares.push(share({ time: t, outcome: 'low-difficulty', poolDifficulty: 100 }));
      }
      await w.writeShares(shares);
      const now = new Date(NOW);
      const expect = (pred: (s: ShareEvent) => boolean, win: '5m' | '1h' | '24h') => {
        const start = windowStart(NOW, win);
        const sum = shares.filter((s) => s.outcome === 'accepted' && pred(s) && s.time >= start && s.time <= NOW).reduce((a, s) => a + s.poolDifficulty, 0);
        return (sum * 2 ** 32) / ((NOW - start) / 1000);
      };
      const close = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(1, want), `${what}: ${got} vs ${want}`);
      const r = new SqlStatsReader(db);
      const pool = await r.poolHashrate(now);
      const alice = await r.account('alice', now);
      const rig1 = (await r.workers('alice', { limit: 10, offset: 0 }, now)).items.find((x) => x.worker === 'rig1')!;
      for (const win of ['5m', '1h', '24h'] as const) {
        close(pool[win].hashrate, expect(() => true, win), `pool ${win}`);
        close(alice!.hashrate[win].hashrate, expect((s) => s.account === 'alice', win), `alice ${win}`);
        close(rig1.hashrate[win].hashrate, expect((s) => s.account === 'alice' && s.worker === 'rig1', win), `alice.rig1 ${win}`);
      }
      assert.ok(pool['24h'].hashrate > 0 && pool['1h'].hashrate > 0);
      const in24h = shares.filter((s) => s.time >= windowStart(NOW, '24h'));
      assert.equal(pool.shares24h.accepted, in24h.filter((s) => s.outcome === 'accepted').length);
      assert.equal(pool.shares24h.rejected['low-difficulty'], in24h.filter((s) => s.outcome === 'low-difficulty').length);
      const rej = in24h.filter((s) => s.outcome !== 'accepted').length;
      close(pool.shares24h.rejectRate, rej / in24h.length, 'reject rate');

      // Series: hourly buckets over 24 h; full buckets divide by 3600 s, the current one by the time passed.
      const series = await r.hashrateSeries({ account: 'alice' }, '24h', 3600, now);
      assert.equal(series.length, 24);
      const lastStart = Math.floor(NOW / 3_600_000) * 3_600_000;
      assert.equal(series[23].time, new Date(lastStart).toISOString());
      for (const p of series) {
        const start = Date.parse(p.time);
        const inB = shares.filter((s) => s.account === 'alice' && s.outcome === 'accepted' && s.time >= start && s.time < start + 3_600_000);
        const seconds = start === lastStart ? (NOW - start) / 1000 : 3600;
        close(p.hashrate, (inB.reduce((a, s) => a + s.poolDifficulty, 0) * 2 ** 32) / seconds, `bucket ${p.time}`);
        assert.equal(p.accepted, inB.length);
      }
      const workerSeries = await r.hashrateSeries({ account: 'alice', worker: 'rig1' }, '1h', 300, now);
      assert.equal(workerSeries.length, 12);
      const poolSeries = await r.hashrateSeries({}, '5m', 60, now);
      assert.equal(poolSeries.length, 5);
      await assert.rejects(r.hashrateSeries({}, '1h', 90, now), RangeError);
      await assert.rejects(r.hashrateSeries({ worker: 'rig1' }, '1h', 60, now), RangeError);
      assert.equal((await r.hashrateSeries({ account: 'nobody' }, '5m', 60, now)).every((p) => p.hashrate === 0), true);
    });

    test('a worker 30 s old: its windows span 30 s and carry its share count, so its rate is not shown at a tenth (issue 10 item 25)', async () => {
      await reset(db);
      const w = new SqlShareWriter(db);
      const TWO_32 = 2 ** 32;
      // 'young' sent its first share 30 s ago and one every 10 s since, at difficulty 2. The window covers the
      // 30 s from that first share (the pool cannot see work done before it) with all four shares in it.
      const young = [30_000, 20_000, 10_000, 0].map((ago) => share({ worker: 'young', time: NOW - ago, poolDifficulty: 2 }));
      await w.writeShares(young);
      // An old worker of another account, steady over the last 2 h: its windows are whole.
      const veteran: ShareEvent[] = [];
      for (let t = NOW - 120 * MIN; t <= NOW; t += 30_000) veteran.push(share({ account: 'bob', worker: 'old', time: t, poolDifficulty: 1 }));
      await w.writeShares(veteran);
      const r = new SqlStatsReader(db);
      const now = new Date(NOW);
      const rig = (await r.workers('alice', { limit: 10, offset: 0 }, now)).items.find((x) => x.worker === 'young')!;
      const alice = (await r.account('alice', now))!;
      for (const win of ['5m', '1h', '24h'] as const) {
        for (const [what, rate] of [['worker', rig.hashrate[win]], ['account', alice.hashrate[win]]] as const) {
          assert.equal(rate.seconds, 30, `${what} ${win} spans the 30 s since its first share`);
          assert.equal(rate.shares, 4, `${what} ${win} share count`);
          assert.ok(Math.abs(rate.hashrate - (4 * 2 * TWO_32) / 30) < 1e-6, `${what} ${win}: ${rate.hashrate}`);
        }
      }
      const bob = (await r.account('bob', now))!;
      for (const win of ['5m', '1h'] as const) {
        const start = windowStart(NOW, win);
        const inWin = veteran.filter((s) => s.time >= start);
        assert.equal(bob.hashrate[win].seconds, (NOW - start) / 1000, `veteran ${win} covers the whole window`);
        assert.equal(bob.hashrate[win].shares, inWin.length);
        assert.ok(Math.abs(bob.hashrate[win].hashrate - (inWin.length * TWO_32) / ((NOW - start) / 1000)) < 1e-6);
      }
      // The 24 h window of a 2 h old worker covers 2 h; the pool's oldest worker is 2 h old.
      assert.equal(bob.hashrate['24h'].seconds, 2 * 3600);
      assert.equal(bob.hashrate['24h'].shares, veteran.length);
      const pool = await r.poolHashrate(now);
      assert.equal(pool['5m'].seconds, (NOW - windowStart(NOW, '5m')) / 1000);
      assert.equal(pool['24h'].seconds, 2 * 3600);
      assert.equal(pool['24h'].shares, veteran.length + young.length);
    });

    test('blocks: written once per hash, reward exact, paginated newest first', async () => {
      await reset(db);
      const w = new SqlShareWriter(db);
      const b1 = block();
      await w.writeBlock(b1);
      await w.writeBlock(b1);
      await w.writeBlock(status(b1.hash));
      const b2 = block({ hash: '00'.repeat(31) + 'bb', time: NOW, height: 900_002, reward: 312_500_000n, worker: 'rig9' });
      await w.writeBlock(b2);
      await w.writeBlock({ kind: 'answer', time: NOW, hash: b2.hash, endpoint: 'http://n1', answer: 'high-hash' });
      await w.writeBlock(status(b2.hash, { time: NOW, status: 'rejected', result: 'high-hash', confirmations: 0, settled: true }));
      const r = new SqlStatsReader(db);
      const page = await r.blocks({ limit: 1, offset: 0 });
      assert.equal(page.total, 2);
      assert.equal(page.items[0].height, 900_002);
      assert.equal(page.items[0].status, 'rejected');
      assert.equal(page.items[0].result, 'high-hash');
      assert.equal(page.items[0].worker, 'rig9');
      const older = await r.blocks({ limit: 10, offset: 1 });
      assert.deepEqual(older.items.map((b) => [b.hash, b.reward, b.status, b.account]), [[b1.hash, '9007199254740993', 'pending', 'alice']]);
      assert.equal(page.items[0].settled, true);
      assert.equal(older.items[0].settled, false);
      assert.equal(await count(db, 'SELECT count(*) FROM block_answers WHERE hash = $1', [b2.hash]), 1);
      assert.equal((await r.lastBlock())?.height, 900_002);
      assert.equal(await count(db, 'SELECT count(*) FROM blocks'), 2);
    });

    test('a block share alone records the candidate as submitted; the block event completes it once', async () => {
      await reset(db);
      const w = new SqlShareWriter(db);
      const b = block({ hash: '00'.repeat(31) + 'cc' });
      const s = share({ block: true, blockHash: b.hash, height: b.height, time: b.time });
      await w.writeShares([s]);
      const r = new SqlStatsReader(db);
      let last = await r.lastBlock();
      assert.equal(last?.status, 'submitted', 'recorded before the node answered');
      assert.equal(last?.reward, '0');
      await w.writeBlock(b);
      last = await r.lastBlock();
      assert.deepEqual([last?.status, last?.reward, last?.height], ['submitted', b.reward.toString(), b.height], 'the candidate completes the row, not its status');
      await w.writeBlock(status(b.hash, { time: NOW - 300, confirmations: 3 }));
      await w.writeBlock(status(b.hash, { time: NOW - 350, status: 'orphaned', confirmations: 0 }));
      last = await r.lastBlock();
      assert.deepEqual([last?.status, last?.confirmations], ['pending', 3], 'an older observation does not roll a newer one back');
      await w.writeBlock(status(b.hash, { time: NOW - 200, status: 'confirmed', confirmations: 101, settled: true }));
      // Replays (the share, the block, an old status) change nothing; a settled status is final.
      await w.writeShares([s]);
      await w.writeBlock(b);
      await w.writeBlock(status(b.hash, { time: NOW - 100, status: 'orphaned', confirmations: 0 }));
      last = await r.lastBlock();
      assert.deepEqual([last?.status, last?.confirmations, last?.settled], ['confirmed', 101, true]);
      assert.deepEqual((await r.unsettledBlocks()).map((u) => u.hash), [], 'settled blocks are not taken up again');
      assert.equal(await count(db, 'SELECT count(*) FROM blocks'), 1);
      assert.equal(await count(db, 'SELECT count(*) FROM shares WHERE block_hash = $1', [b.hash]), 1);
    });

    test('two statuses of one block with the same time in one batch: the later one is kept', async () => {
      // Failed before (DISTINCT ON ordered by time alone picks either of a tie): 'pending' could be kept over the
      // 'confirmed' that followed it in the same batch.
      await reset(db);
      const w = new SqlShareWriter(db);
      const b = block({ hash: '00'.repeat(31) + 'dd' });
      await w.writeBlock(b);
      const r = new SqlStatsReader(db);
      for (const [first, second] of [['pending', 'orphaned'], ['orphaned', 'pending']] as const) {
        await w.writeBlocks([status(b.hash, { time: NOW - 300, status: first }), status(b.hash, { time: NOW - 300, status: second })]);
        assert.equal((await r.lastBlock())?.status, second);
      }
    });

    test('partitions: created ahead and on demand; retention drops old days, rollups stay (compacted to hours)', async () => {
      await reset(db);
      const w = new SqlShareWriter(db);
      const days = [40, 10, 1, 0];
      await w.writeShares(days.flatMap((d) => [share({ time: NOW - d * DAY, poolDifficulty: 2 }), share({ time: NOW - d * DAY + 1, outcome: 'stale' })]));
      const m = new Maintenance(db, { shareDays: 7, compactAfterDays: 3, partitionsAhead: 2, intervalMs: 60_000 });
      const s = await m.runOnce(new Date(NOW));
      assert.ok(s.dropped >= 4, `dropped ${s.dropped}`);
      assert.ok(s.compacted >= 2, `compacted ${s.compacted}`);
      const partitions = async (parent: string) => (await db.query<{ name: string }>('SELECT name FROM hashhub_partition_days($1) ORDER BY day', [parent])).rows.map((r) => r.name);
      const day = (offset: number) => new Date(NOW + offset * DAY).toISOString().slice(0, 10).replace(/-/g, '');
      const shareParts = await partitions('shares');
      assert.ok(!shareParts.includes(`shares_p${day(-40)}`) && !shareParts.includes(`shares_p${day(-10)}`), 'expired days dropped');
      for (const d of [-1, 0, 1, 2]) assert.ok(shareParts.includes(`shares_p${day(d)}`), `shares_p${day(d)} exists`);
      assert.equal(await count(db, 'SELECT count(*) FROM shares'), 2, 'raw shares of the last 7 days remain');
      assert.equal(await count(db, 'SELECT count(*) FROM share_rejects'), 2);
      // Rollups: nothing lost, old minutes folded into hours.
      const total = `SELECT sum(accepted) FROM (SELECT accepted FROM worker_rollups_minute UNION ALL SELECT accepted FROM worker_rollups_hour) x`;
      assert.equal(await count(db, total), 4);
      assert.equal(await count(db, 'SELECT sum(accepted) FROM worker_rollups_hour'), 2);
      assert.equal(await count(db, 'SELECT sum(stale) FROM pool_rollups_hour'), 2);
      assert.equal(await count(db, 'SELECT sum(accepted_difficulty) FROM pool_rollups_hour'), 4);
      assert.equal(await count(db, `SELECT count(*) FROM pool_rollups_minute WHERE bucket < $1::timestamptz`, [new Date(NOW - 3 * DAY).toISOString()]), 0);
      // A late share for a dropped day: the writer recreates the partition and counts it once.
      w.forgetPartitions();
      const late = share({ time: NOW - 10 * DAY, poolDifficulty: 5 });
      await w.writeShares([late]);
      await w.writeShares([late]);
      assert.equal(await count(db, total), 5);
      // Compacting that day again adds to the hour rows instead of replacing them.
      await m.runOnce(new Date(NOW));
      assert.equal(await count(db, total), 5);
      assert.equal(await count(db, 'SELECT sum(accepted_difficulty) FROM worker_rollups_hour'), 9);
    });

    test('bad input is refused with a clear error, not half-written', async () => {
      await reset(db);
      const w = new SqlShareWriter(db);
      const bad = share({ outcome: 'exploded' as ShareOutcome });
      const newcomer = share({ account: 'newcomer', worker: 'rig9' });
      await assert.rejects(w.writeShares([newcomer, bad]), /share_outcome|exploded/);
      assert.equal(await count(db, 'SELECT count(*) FROM shares'), 0, 'the batch rolled back as a whole');
      // The statements before the failing one (the same script) rolled back too.
      assert.equal(await count(db, "SELECT count(*) FROM accounts WHERE name = 'newcomer'"), 0);
      assert.equal(await count(db, "SELECT count(*) FROM workers WHERE name = 'rig9'"), 0);
    });
  });
}
