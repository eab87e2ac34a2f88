// End-to-end delivery accuracy of the market: what hashhub A meters and bills for a bid vs what the buyer's pool
// (hashhub B, a child process with its own chain and database) stored as accepted, over a bounded run.
//   npx tsx bench/market-delivery.ts [--quick] [--seconds N] [--no-write]
// Full run: 10 minutes at production settings (60 s ticks, 60 s metering buckets). --quick: 60 s with 10 s ticks
// and 5 s buckets. Writes its section of BENCHMARKS.md (bench/sections.ts).
//
// Figures: B-accepted shares vs A's metered accepted (+ probe) shares, overall (should be equal: every answer A
// got is B's stored share) and per tick (A buckets by its submit time, B stores its receipt time: shares near a
// tick boundary can land in the neighbouring tick on B's clock; this is the spread of that), and what was billed
// (excluding probe and unassigned work).

import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { Ledger, credit, debit, owned, pool as poolRef } from '../src/accounting/ledger.ts';
import { loadConfig } from '../src/cli/config.ts';
import { type RunningPool, runPool } from '../src/cli/run-pool.ts';
import { StratumMiner } from '../src/miner/client.ts';
import { type PoolProcess, killAll, startPoolProcess } from '../test/helpers/child-pool.ts';
import { freePort } from '../test/helpers/free-port.ts';
import { until } from '../test/helpers/until.ts';
import { benchDatabase } from './pg.ts';
import { provenance, writeSection } from './sections.ts';

const quick = process.argv.includes('--quick');
const secondsArg = process.argv.indexOf('--seconds');
const RUN_S = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : quick ? 60 : 600;
const TICK_S = quick ? 10 : 60;
const BUCKET_S = quick ? 5 : 60;
const D = 2 ** -16; // B's fixed difficulty: 65,536 hashes a share, exactly
const PER_SHARE = 65_536n;
const PRICE = 50_000;
const log = (s: string) => process.stderr.write(`${s}\n`);

async function main() {
  const [dbA, dbB] = await Promise.all([benchDatabase(), benchDatabase()]);
  if (!dbA || !dbB) throw new Error('no Postgres for the benchmark (HASHHUB_BENCH_PG_URL)');
  const dirA = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-bench-market-a-'));
  const dirB = fs.mkdtempSync(path.join(tmpdir(), 'hashhub-bench-market-b-'));
  const portB = await freePort();
  const envB: NodeJS.ProcessEnv = {
    ...process.env, DATABASE_URL: dbB.url, HASHHUB_DATA_DIR: dirB, HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_STRATUM_PORT: String(portB), HASHHUB_API_ENABLED: 'false',
    HASHHUB_LOG_LEVEL: 'warn', HASHHUB_NODE_POLL_MS: '200', HASHHUB_DIFFICULTY: String(D), HASHHUB_MIN_DIFFICULTY: String(D), HASHHUB_MAX_DIFFICULTY: String(D),
    HASHHUB_EMBEDDED_DIFFICULTY: '1000', HASHHUB_ACCOUNTING_ENABLED: 'false', HASHHUB_ROUTING_ENABLED: 'false', HASHHUB_MARKET_ENABLED: 'false', HASHHUB_INGEST_FLUSH_MS: '50',
  };
  delete envB.HASHHUB_CONFIG;
  const cfgA = loadConfig({
    env: { DATABASE_URL: dbA.url, HASHHUB_DATA_DIR: dirA },
    overrides: {
      'stratum.host': '127.0.0.1', 'stratum.port': 0, 'stratum.difficulty.initial': 0.00002, 'node.embedded.difficulty': 1000, 'node.pollMs': 200,
      'routing.reconnectHost': '127.0.0.1', 'routing.syncMs': 300, 'routing.flushMs': 200, 'routing.answerTimeoutSeconds': 5, 'routing.meterBucketSeconds': BUCKET_S,
      'market.tickSeconds': TICK_S, 'market.capacityWindowMinutes': 1, 'market.minShares': 1, 'market.answerTimeoutSeconds': 2, 'market.routeLeaseSeconds': 5,
    },
  });
  let a: RunningPool | null = null;
  let b: PoolProcess | null = null;
  const miners: StratumMiner[] = [];
  const pgB = new pg.Client({ connectionString: dbB.url });
  try {
    log(`market delivery: ${RUN_S} s, ticks ${TICK_S} s, buckets ${BUCKET_S} s; starting A and B…`);
    [a, b] = await Promise.all([runPool(cfgA, pino({ level: 'silent' })), startPoolProcess(envB)]);
    await pgB.connect();
    const A = a;
    const market = A.market!;
    const q = async (sql: string, p: unknown[] = []) => (await A.store.db.query<Record<string, string>>(sql, p)).rows;
    for (const [user, xn] of [['sellerx.w1', true], ['sellery.w1', false]] as const) {
      miners.push(new StratumMiner({ host: '127.0.0.1', port: A.port, user, extranonceSubscribe: xn, hashrate: 150_000 }).start());
    }
    await until(async () => (await q(`SELECT DISTINCT a.name FROM worker_rollups_minute r JOIN accounts a ON a.id = r.account_id`)).length === 2, 60_000, 'sellers mining on A');
    const ids = new Map((await q(`SELECT id::text, name FROM accounts`)).map((r) => [r.name, Number(r.id)]));
    const buyer = Number((await q(`INSERT INTO accounts (name) VALUES ('buyer') RETURNING id::text`))[0].id);
    const ledger = new Ledger();
    await A.store.db.transaction((tx) => ledger.post(tx, {
      key: 'bench:fund', kind: 'operator_adjustment', effectiveAt: new Date(),
      postings: [debit(poolRef('operator_adjustments'), 1_000_000n), credit(owned('balance', BigInt(buyer)), 1_000_000n)],
    }));
    for (const s of ['sellerx', 'sellery']) await market.placeAsk({ accountId: ids.get(s)!, operator: false }, { minPrice: PRICE, workers: 'all' });
    const bid = (await market.placeBid({ accountId: buyer, operator: false }, {
      maxPrice: PRICE, limitHs: 10n ** 12n, budgetSat: 1_000_000n, destinations: [{ url: `stratum+tcp://127.0.0.1:${portB}`, user: 'buyerB.x', password: 'x' }],
    })).bid.id;
    const onRoute = (m: StratumMiner) => m.currentJob?.jobId.startsWith('r') === true;
    await until(() => miners.every(onRoute), 120_000, 'miners on B');
    log('  delivering…');
    await new Promise((r) => setTimeout(r, RUN_S * 1000));
    await market.cancelBid({ accountId: buyer, operator: false }, bid);
    const route = Number((await q(`SELECT id::text FROM routes WHERE bid_id = $1`, [bid]))[0].id);
    await until(async () => {
      const last = (await q(`SELECT extract(epoch FROM max(minute))::text AS m FROM route_minutes WHERE route_id = $1`, [route]))[0].m;
      return (await q(`SELECT 1 FROM market_ticks WHERE settled_at IS NULL AND starts_at <= to_timestamp($1)`, [Number(last)])).length === 0;
    }, TICK_S * 3000 + 30_000, 'settled');
    const m = (await q(`SELECT sum(accepted)::text AS acc, sum(probe_accepted)::text AS probe, sum(rejected)::text AS rej, sum(stale)::text AS stale, sum(no_answer)::text AS na FROM route_minutes WHERE route_id = $1`, [route]))[0];
    await until(async () => (await pgB.query(`SELECT count(*)::text AS n FROM shares`)).rows[0].n === String(Number(m.acc) + Number(m.probe)), 15_000, 'B flushed').catch(() => undefined);
    const bN = Number((await pgB.query(`SELECT count(*)::text AS n FROM shares`)).rows[0].n);
    const billed = BigInt((await q(`SELECT coalesce(sum(accepted_hashes), 0)::text AS h FROM market_trades WHERE bid_id = $1`, [bid]))[0].h) / PER_SHARE;
    const unassigned = BigInt((await q(`SELECT coalesce(sum(accepted_hashes), 0)::text AS h FROM market_unassigned_work WHERE bid_id = $1`, [bid]))[0].h) / PER_SHARE;
    // Per tick: A's billed shares vs B's stored shares by B's clock.
    const ticks = await q(`SELECT t.tick::text, extract(epoch FROM k.starts_at)::text AS s, extract(epoch FROM k.ends_at)::text AS e, sum(t.accepted_hashes)::text AS h
      FROM market_trades t JOIN market_ticks k ON k.tick = t.tick WHERE t.bid_id = $1 GROUP BY t.tick, k.starts_at, k.ends_at ORDER BY t.tick`, [bid]);
    const devs: number[] = [];
    for (const t of ticks.slice(1, -1)) { // whole ticks only (the first and the last are partial)
      const nB = Number((await pgB.query(`SELECT count(*)::text AS n FROM shares WHERE time >= to_timestamp($1) AND time < to_timestamp($2)`, [Number(t.s), Number(t.e)])).rows[0].n);
      const nA = Number(BigInt(t.h) / PER_SHARE);
      if (nB > 0) devs.push(Math.abs(nA - nB) / nB);
    }
    devs.sort((x, y) => x - y);
    const metered = Number(m.acc) + Number(m.probe);
    const lines = [
      '## Market: end-to-end delivery accuracy (metered vs buyer-pool-accepted)',
      '',
      ...provenance(`npx tsx bench/market-delivery.ts${quick ? ' --quick' : ''}${secondsArg > 0 ? ` --seconds ${RUN_S}` : ''}`),
      `- Setup: hashhub A (in-process, market on) sells 2 CPU miners' work (150 kH/s each; one moved by set_extranonce, one by client.reconnect) to a bid whose pool is hashhub B (child process, own chain and Postgres, share difficulty 2^-16); ${RUN_S} s of delivery, ${TICK_S} s ticks, ${BUCKET_S} s metering buckets; then the bid is cancelled and every tick settled.`,
      `- B stored ${bN} accepted shares; A metered ${metered} accepted answers (${m.acc} billable + ${m.probe} probe): ${metered === bN ? 'equal' : `differ by ${metered - bN} (${(((metered - bN) / Math.max(1, bN)) * 100).toFixed(3)} %)`}; upstream rejected ${m.rej}, stale ${m.stale}, no answer ${m.na}.`,
      `- Billed ${billed} shares (${billed * PER_SHARE} hashes), unassigned (never billed) ${unassigned}; billed + probe + unassigned = ${Number(billed + unassigned) + Number(m.probe)} vs B's ${bN}.`,
      `- Per whole tick (${devs.length} ticks), |A billed − B stored by B's clock| / B: median ${devs.length ? (devs[Math.floor(devs.length / 2)] * 100).toFixed(2) : '–'} %, max ${devs.length ? (devs[devs.length - 1] * 100).toFixed(2) : '–'} % (boundary shares: A buckets by its submit time, B by its receipt time; the totals are what bills).`,
    ];
    log(lines.join('\n'));
    if (!process.argv.includes('--no-write')) writeSection('market-delivery', lines);
  } finally {
    await Promise.all(miners.map((x) => x.stop()));
    await pgB.end().catch(() => undefined);
    await a?.stop().catch(() => undefined);
    await killAll([b]);
    await dbA.drop();
    await dbB.drop();
    fs.rmSync(dirA, { recursive: true, force: true });
    fs.rmSync(dirB, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => { log((e as Error).stack ?? String(e)); process.exit(1); });
