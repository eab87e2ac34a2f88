import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { loadConfig } from '../src/cli/config.ts';
import { startPoolApi } from './helpers/dashboard.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// A restart keeps the 7-day chart: the live figures (src/api/live.ts) are seeded at start from the store's
// rollups over the whole week, minute rows and the hour rows compaction folded older minutes into, not only the
// last 24 h. The history is written as the pool writes it (pool_rollups_minute) and compacted by the store's own
// function; then `hashhub pool`'s wiring starts on that database and /api/v1/pool/hashrate?window=7d must show it.

const HOUR = 3_600_000;
const TWO32 = 2 ** 32;

test('after a restart, /api/v1/pool/hashrate?window=7d shows the week in the store (minute and compacted hour rollups)', { skip: SKIP_PG, timeout: 60_000 }, async () => {
  const tpg = await createTestPg();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hashhub-live-seed-'));
  const cfg = loadConfig({
    env: {},
    overrides: {
      'database.dataDir': dataDir, 'database.url': tpg.url, 'api.host': '127.0.0.1', 'api.port': 0, 'api.operatorToken': 'live-seed-test-operator-token',
      'stratum.host': '127.0.0.1', 'stratum.port': 0, 'node.pollMs': 200,
    },
  });
  const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
  try {
    // First run: the schema; then a week of history as the pool's ingest leaves it (one row per minute with work).
    const first = await startPoolApi(cfg, log);
    const now = Date.now();
    const hourAt = (ago: number) => Math.floor((now - ago) / HOUR) * HOUR;
    // Work in one minute of each of these hours (difficulty, shares): 30 h ago (a minute row: outside the 24 h seed
    // of before), 3 and 6 days ago (folded into hour rows by compaction), 8 days ago (before the chart: left out).
    const history = [
      { at: hourAt(30 * HOUR) + 5 * 60_000, difficulty: 1000, accepted: 100 },
      { at: hourAt(3 * 24 * HOUR) + 7 * 60_000, difficulty: 2000, accepted: 200 },
      { at: hourAt(6 * 24 * HOUR) + 11 * 60_000, difficulty: 3000, accepted: 300 },
      { at: hourAt(8 * 24 * HOUR), difficulty: 4000, accepted: 400 },
    ];
    for (const h of history) {
      await first.running.store.db.query(`INSERT INTO pool_rollups_minute (bucket, accepted, accepted_difficulty) VALUES ($1::timestamptz, $2, $3)`, [new Date(h.at).toISOString(), h.accepted, h.difficulty]);
    }
    // Compaction as the store's maintenance runs it (database.retention.compactAfterDays, here its minimum of 2).
    await first.running.store.db.query(`SELECT hashhub_compact_rollups(2)`);
    const rows = await first.running.store.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM pool_rollups_hour`);
    assert.ok(Number(rows.rows[0].n) >= 2, 'the rows older than two days are hour rows now');
    await first.stop();

    // Restart: the 7 d chart is the week in the store.
    const second = await startPoolApi(cfg, log);
    try {
      type Series = { bucket: number; coversFrom: string; points: { time: string; hashrate: number; accepted: number }[] };
      let series: Series | null = null;
      const point = (s: Series, at: number) => s.points.find((p) => p.time === new Date(Math.floor(at / HOUR) * HOUR).toISOString());
      // The seed is read once, in the background, right after start.
      await until(async () => {
        series = (await (await fetch(`${second.base}/api/v1/pool/hashrate?window=7d`)).json()) as Series;
        return (point(series, history[2].at)?.accepted ?? 0) > 0;
      }, 10_000, () => `the 7 d chart has the history of 6 days ago: ${JSON.stringify(series).slice(0, 400)}`);
      const s = series!;
      assert.equal(s.bucket, 3600);
      for (const h of history.slice(0, 3)) {
        const p = point(s, h.at);
        assert.ok(p, `a point for ${new Date(h.at).toISOString()}`);
        assert.equal(p.accepted, h.accepted, `accepted shares of ${new Date(h.at).toISOString()}`);
        assert.ok(Math.abs(p.hashrate - (h.difficulty * TWO32) / 3600) < 1e-6 * p.hashrate, `hashrate of ${new Date(h.at).toISOString()}: ${p.hashrate}`);
      }
      assert.equal(point(s, history[3].at), undefined, 'nothing before the 7 days');
      assert.equal(s.points.reduce((n, p) => n + p.accepted, 0), 600, 'the week holds exactly the history (no miner in this test)');
      assert.ok(Date.parse(s.coversFrom) <= history[2].at, `coversFrom ${s.coversFrom} reaches back to the oldest row`);
      // The 24 h chart is unchanged by older work.
      const day = (await (await fetch(`${second.base}/api/v1/pool/hashrate?window=24h`)).json()) as Series;
      assert.equal(day.points.reduce((n, p) => n + p.accepted, 0), 0);
    } finally {
      await second.stop();
    }
  } finally {
    await tpg.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
