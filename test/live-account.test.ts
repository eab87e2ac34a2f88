import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LiveStats } from '../src/api/live.ts';
import type { ShareEvent } from '../src/shares/events.ts';
import { SHARE_OUTCOMES } from '../src/shares/outcome.ts';

// An account's live figures are computed without per-worker allocations (a farm has thousands of workers and the
// dashboard reads them every second under load). Whatever the shortcut, the totals must add up to the rows.

const T0 = Date.UTC(2031, 0, 1, 12, 0, 0);
const MIN = 60_000;

const shareArb = fc.record({
  worker: fc.constantFrom('w1', 'w2', 'W3', 'rig-10', 'rig-9', 'Ärger', 'a'),
  minutesAgo: fc.double({ min: 0, max: 23.5 * 60, noNaN: true }), // workers a day silent are forgotten (another test),
  outcome: fc.constantFrom(...SHARE_OUTCOMES),
  difficulty: fc.constantFrom(0.5, 1, 2, 1024),
});

test('account figures: totals are the sums of every worker row; rows are the first by name; the series adds up to the counts', () => {
  fc.assert(fc.property(fc.array(shareArb, { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 8 }), (shares, maxWorkers) => {
    const now = T0 + 30 * 60 * MIN;
    const live = new LiveStats({ now: () => now });
    // Shares arrive in time order, as from the share log.
    const sorted = shares.map((s) => ({ ...s, time: Math.floor(now - s.minutesAgo * MIN) })).sort((a, b) => a.time - b.time);
    for (const s of sorted) {
      live.addShare({
        id: `${s.time}`, time: s.time, account: 'acct', worker: s.worker, sessionId: 's', remoteAddress: '127.0.0.1', jobId: 'j', height: 1,
        outcome: s.outcome, poolDifficulty: s.difficulty, shareDifficulty: s.difficulty, block: false,
      } satisfies ShareEvent);
    }
    const all = live.account('acct', Infinity)!;
    const names = [...new Set(sorted.map((s) => s.worker))].sort(new Intl.Collator().compare);
    assert.deepEqual(all.workers.map((w) => w.worker), names);
    assert.equal(all.workersTotal, names.length);
    assert.equal(all.workersOnline + all.workersOffline, names.length);
    assert.equal(all.workersOnline, all.workers.filter((w) => w.online).length);
    for (const win of ['5m', '1h', '24h'] as const) {
      const shares = all.workers.reduce((n, w) => n + w.hashrate[win].shares, 0);
      const rate = all.workers.reduce((n, w) => n + w.hashrate[win].hashrate, 0);
      assert.equal(all.hashrate[win].shares, shares);
      assert.ok(Math.abs(all.hashrate[win].hashrate - rate) <= 1e-9 * Math.max(1, rate));
      assert.equal(all.hashrate[win].seconds, Math.max(...all.workers.map((w) => w.hashrate[win].seconds)));
    }
    assert.equal(all.shares24h.accepted, all.workers.reduce((n, w) => n + w.shares24h.accepted, 0));
    for (const r of Object.keys(all.shares24h.rejected) as (keyof typeof all.shares24h.rejected)[]) {
      assert.equal(all.shares24h.rejected[r], all.workers.reduce((n, w) => n + w.shares24h.rejected[r], 0), r);
    }
    // Fewer rows listed: the same totals, the first rows by name.
    const some = live.account('acct', maxWorkers)!;
    assert.deepEqual(some.workers.map((w) => w.worker), names.slice(0, maxWorkers));
    assert.deepEqual(some.hashrate, all.hashrate);
    assert.deepEqual(some.shares24h, all.shares24h);
    // The 24 h series covers the same buckets as the 24 h counts.
    const day = live.accountSeries('acct', '24h');
    const rejectedAll = Object.values(all.shares24h.rejected).reduce((a, b) => a + b, 0);
    assert.equal(day.points.reduce((n, p) => n + p.accepted, 0), all.shares24h.accepted);
    assert.equal(day.points.reduce((n, p) => n + p.rejected, 0), rejectedAll);
  }), { numRuns: 200 });
});
