import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RollupCapacityMeter, SumCapacityMeter, relativeError } from '../src/market/capacity.ts';
import type { ShareEvent } from '../src/shares/events.ts';
import type { Database } from '../src/store/db.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { SqlShareWriter } from '../src/store/share-writer.ts';
import { migrated } from './helpers/market.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

// Seller capacity from what the pool stored: shares written by the pool's own writer (COPY → shares →
// per-minute rollups), read back by the market's meter over a window.

const NOW = Date.UTC(2031, 2, 10, 12, 0, 0);

describe('capacity meter over the pool rollups', { skip: SKIP_PG }, () => {
  let db: Database;
  let drop: () => Promise<void>;
  before(async () => {
    const pg = await createTestPg();
    db = new PgDatabase({ url: pg.url, maxConnections: 2 });
    drop = async () => { await db.close(); await pg.drop(); };
    await migrated(db);
  });
  after(async () => { await drop?.(); });

  test('Σ accepted difficulty × 2^32 and the share count over exactly the window; rejects and other windows left out', async () => {
    const shares: ShareEvent[] = [];
    let n = 0;
    const share = (worker: string, minutesAgo: number, d: number, outcome: ShareEvent['outcome'] = 'accepted'): ShareEvent => ({
      id: `c-${n++}`, time: NOW - minutesAgo * 60_000 + 1000, account: 'sue', worker, sessionId: 's', remoteAddress: '127.0.0.1', jobId: 'j',
      height: 1, outcome, poolDifficulty: d, shareDifficulty: d * 2, block: false,
    });
    // rig1: 20 minutes × 10 shares at difficulty 65,536 in the window; rig2: 2 shares at 0.5.
    for (let m = 1; m <= 20; m++) for (let k = 0; k < 10; k++) shares.push(share('rig1', m, 65_536));
    shares.push(share('rig2', 3, 0.5), share('rig2', 4, 0.5));
    shares.push(share('rig1', 21, 1e9)); // before the window
    shares.push(share('rig1', 0, 1e9)); // at the window's end: the next window's
    shares.push(share('rig1', 5, 1e9, 'stale')); // rejected: never capacity
    await new SqlShareWriter(db).writeShares(shares);
    const ids = await db.query<{ id: string; name: string }>(`SELECT id, name FROM workers ORDER BY name`);
    const id = (name: string) => Number(ids.rows.find((r) => r.name === name)!.id);

    const meter = new RollupCapacityMeter(db);
    const got = await meter.capacities([id('rig1'), id('rig2'), 999_999], new Date(NOW), 1200);
    assert.deepEqual(got, [
      { workerId: id('rig1'), hashes: 200n * 65_536n * 4_294_967_296n, shares: 200 },
      { workerId: id('rig2'), hashes: 4_294_967_296n, shares: 2 },
    ]);
    // 200 shares: ±7 %. Capacity = hashes / 1,200 s.
    assert.equal(Math.round(relativeError(200)! * 1000) / 10, 7.1);
    assert.equal(got[0].hashes / 1200n, 200n * 65_536n * 4_294_967_296n / 1200n);

    // Routed work (another meter) adds to the same worker.
    const routed = { capacities: async () => [{ workerId: id('rig1'), hashes: 1000n, shares: 3 }] };
    const sum = await new SumCapacityMeter([meter, routed]).capacities([id('rig1')], new Date(NOW), 1200);
    assert.equal(sum.find((x) => x.workerId === id('rig1'))!.shares, 203);
  });
});
