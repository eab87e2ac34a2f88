// `npm run bench`: validator throughput and a fleet load against the pool in its own process; results go to
// BENCHMARKS.md with the machine and date. Performance goals live here, never in timed unit tests.
import os from 'node:os';
import { writeFileSync } from 'node:fs';
import { benchValidator } from './validator.ts';
import { type FleetResult, runFleetPhase, startPoolProcess } from './fleet.ts';
import { type IngestResult, benchIngest } from './ingest.ts';
import { benchDatabase } from './pg.ts';
import { type TipLatency, benchTipLatency } from './tip-latency.ts';
import { benchMarket, marketSection } from './market.ts';
import { type AccountingBench, accountingLines, benchAccounting } from './accounting.ts';

const quick = process.argv.includes('--quick');
const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');

async function main() {
  const started = new Date();
  const lines: string[] = [];
  const log = (s: string) => { process.stderr.write(s + '\n'); };

  log('validator: 3,000-tx template (12-level branch), distinct shares, one core…');
  const vLow = benchValidator({ txs: 3000, seconds: quick ? 1 : 4, accepted: false });
  const vAcc = benchValidator({ txs: 3000, seconds: quick ? 1 : 4, accepted: true });
  const vSame = benchValidator({ txs: 3000, seconds: quick ? 1 : 4, accepted: true, sameExtranonce2: true });
  log(`  ${f(vLow.perSecond)} shares/s (rejected low-diff path), ${f(vAcc.perSecond)} shares/s (accepted path), ${f(vSame.perSecond)} shares/s (accepted, extranonce2 reused)`);

  log('tip-to-notify latency: node announces a block → miner holds clean work on it…');
  const tips: TipLatency[] = await benchTipLatency(quick);
  for (const t of tips) log(`  ${t.mode}: p50 ${f(t.p50, 1)} ms, p99 ${f(t.p99, 1)} ms (${t.samples} blocks)`);
  log('market: auction tick for 10,000 orders over 20,000 workers, settlement of a tick…');
  const market = benchMarket({ quick });
  log(`  auction ${f(market.steadyTickMs.p50, 1)} ms (CPU ${f(market.steadyTickCpuMs.p50, 1)} ms), settlement ${f(market.settleMs.p50, 1)} ms`);

  let ingest: IngestResult | null = null;
  const ingestDb = await benchDatabase();
  if (ingestDb) {
    log('ingest: COPY batches of 5,000 accepted shares into Postgres…');
    try {
      ingest = await benchIngest(ingestDb.url, { shares: quick ? 50_000 : 300_000, batch: 5000 });
      log(`  ${f(ingest.perSecond)} shares/s`);
    } finally {
      await ingestDb.drop();
    }
  } else {
    log('ingest: skipped (no Postgres at ' + 'HASHHUB_BENCH_PG_URL / 127.0.0.1:5432)');
  }

  // Accounting's database timings and a time-boxed property run (HASHHUB_BENCH_PROPERTY_MINUTES, default 30).
  let accounting: AccountingBench | null = null;
  const acctDb = await benchDatabase();
  if (acctDb) {
    try {
      accounting = await benchAccounting(acctDb.url, { quick, propertyMinutes: Number(process.env.HASHHUB_BENCH_PROPERTY_MINUTES ?? (quick ? 1 : 30)), log });
    } finally {
      await acctDb.drop();
    }
  }

  const phases = quick
    ? [{ connections: 200, sharesPerSec: 2000, localAddress: '127.0.0.2', apiLoad: true }]
    : [
        { connections: 1000, sharesPerSec: 5000, localAddress: '127.0.0.2', apiLoad: true },
        { connections: 10000, sharesPerSec: 5000, localAddress: '127.0.0.3' },
        { connections: 10000, sharesPerSec: 10000, localAddress: '127.0.0.4' },
        { connections: 10000, sharesPerSec: 20000, localAddress: '127.0.0.5' },
      ];
  const results: FleetResult[] = [];
  for (const phase of phases) {
    // A fresh pool per phase, so memory per connection is measured from a clean start.
    const db = await benchDatabase();
    const pool = await startPoolProcess(db?.url);
    try {
      log(`fleet: ${f(phase.connections)} connections at ${f(phase.sharesPerSec)} shares/s…`);
      const r = await runFleetPhase(pool, phase, quick ? 5 : 15);
      results.push(r);
      log(`  ${f(r.connected)} connected, ${f(r.answeredPerSec)} answered/s, p50 ${f(r.p50, 2)} ms, p99 ${f(r.p99, 2)} ms, pool CPU ${f(r.poolCpuPct)}%, ${f(r.kbPerConnection, 1)} KB/conn`);
    } finally {
      await pool.stop();
      await db?.drop();
    }
  }

  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  lines.push('# hashhub benchmarks', '');
  lines.push(`- Date: ${started.toISOString()}`);
  lines.push(`- Machine: ${os.cpus().length} × ${cpu}, ${f(os.totalmem() / 2 ** 30, 1)} GiB RAM, ${os.type()} ${os.release()}`);
  lines.push(`- Node ${process.version}; command: \`npm run bench${quick ? ' -- --quick' : ''}\``);
  lines.push('', '## Share validator (one core)', '');
  lines.push('Distinct shares against a job built from a 3,000-transaction template (12-level merkle branch): coinbase hash, merkle path, header hash, duplicate-set insert. Goal ≥ 100,000 shares/s per core.', '');
  lines.push('| path | shares/s | µs/share |', '| --- | ---: | ---: |');
  lines.push(`| rejected low difficulty, every share a new extranonce2 | ${f(vLow.perSecond)} | ${f(vLow.usPerShare, 2)} |`);
  lines.push(`| accepted, every share a new extranonce2 (worst case) | ${f(vAcc.perSecond)} | ${f(vAcc.usPerShare, 2)} |`);
  lines.push(`| accepted, 1,000 shares per extranonce2 (ASIC habit; merkle root cached per session) | ${f(vSame.perSecond)} | ${f(vSame.usPerShare, 2)} |`);
  lines.push('', '## Tip to notify', '');
  lines.push('From the moment the node announces a new block (the embedded chain in its own process, with 200 transactions in its mempool, queues its ZMQ hashblock message) to the moment a miner connected to the pool holds `mining.notify` with clean_jobs on that block: the pool learns the tip, fetches the template and broadcasts the job. Goal with ZMQ ≤ 50 ms.', '');
  lines.push('| how the pool learns the tip | blocks | p50 ms | p99 ms | max ms |', '| --- | ---: | ---: | ---: | ---: |');
  for (const t of tips) lines.push(`| ${t.mode} | ${f(t.samples)} | ${f(t.p50, 1)} | ${f(t.p99, 1)} | ${f(t.max, 1)} |`);
  lines.push('', '## Fleet load', '');
  lines.push('The pool runs in its own process (`hashhub pool` on the embedded chain serving a 3,000-transaction template, refreshed every 10 s, network difficulty 1 so no share is a block); the load generator is `hashhub miner --fleet` in this process on the other core, grinding real sha256d at pool difficulty 2^-30. Latency is submit → answer as the miner sees it (includes the load generator\'s own event-loop delay). Memory per connection = pool RSS growth from start to all connections subscribed, authorized and mining, divided by connections. First goal: 10k connections with p99 < 10 ms.', '');
  lines.push('| connections | offered shares/s | answered/s | accepted | rejected | p50 ms | p99 ms | max ms | pool CPU % | pool CPU µs/share | pool RSS MB | KB/conn |');
  lines.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    lines.push(`| ${f(r.connected)} / ${f(r.connections)} | ${f(r.sharesPerSec)} | ${f(r.answeredPerSec)} | ${f(r.accepted)} | ${f(r.rejected)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.max, 1)} | ${f(r.poolCpuPct)} | ${f(r.poolCpuUsPerShare, 1)} | ${f(r.poolRssMb)} | ${f(r.kbPerConnection, 1)} |`);
  }
  lines.push('');
  lines.push('## Ingest into Postgres', '');
  if (ingest) {
    lines.push('Accepted shares written by the store\'s writer: COPY into a staging table, insert idempotent on the share id, per-minute rollups and worker rows updated from the inserted rows only, one transaction per batch. PostgreSQL 15 on the same machine. Goal ≥ 50,000 shares/s.', '');
    lines.push('| shares | batch | seconds | shares/s |', '| ---: | ---: | ---: | ---: |');
    lines.push(`| ${f(ingest.shares)} | ${f(ingest.batch)} | ${f(ingest.seconds, 2)} | ${f(ingest.perSecond)} |`);
  } else {
    lines.push('Skipped: no Postgres reachable.');
  }
  const apiRows = results.filter((r) => r.api);
  lines.push('', '## API under load', '');
  lines.push('Four HTTP clients looping over `/api/v1/pool`, `/accounts/{a}`, `/accounts/{a}/workers`, `/accounts/{a}/hashrate?window=1h&bucket=60` and `/blocks` during a fleet phase (same pool process, which also serves Stratum and writes shares).', '');
  lines.push('| during | requests/s | p50 ms | p99 ms | errors |', '| --- | ---: | ---: | ---: | ---: |');
  for (const r of apiRows) lines.push(`| ${f(r.connections)} connections, ${f(r.sharesPerSec)} shares/s | ${f(r.api!.perSecond)} | ${f(r.api!.p50, 2)} | ${f(r.api!.p99, 2)} | ${f(r.api!.errors)} |`);
  if (accounting) lines.push(...accountingLines(accounting));
  lines.push('');
  lines.push(...marketSection(market));
  writeFileSync('BENCHMARKS.md', lines.join('\n') + '\n');
  log('written to BENCHMARKS.md');
}

main().then(() => process.exit(0), (err) => { process.stderr.write(`bench failed: ${(err as Error).stack}\n`); process.exit(1); });
