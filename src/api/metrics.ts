// Prometheus metrics, in a Registry of our own (not prom-client's global one), so two API instances in one
// process (tests) never collide and nothing else in the process can register into ours.
//
// The pool exposes running totals (plain numbers it increments), not prom-client counters: the hot path
// stays free of any metrics library. At scrape time, collect() reads a snapshot and increments each counter
// by the *delta* since the previous scrape. Counters rather than gauges-set-to-the-total because the type
// matters downstream (rate()/increase() and the `_total` convention); deltas rather than reset()+inc(total)
// because then the exported value is monotonic even if the source is replaced (a new Pool object whose
// totals start again from 0): a smaller total is read as "restarted" and its whole value counts as the delta.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SHARE_OUTCOMES } from '../shares/outcome.ts';
import type { IngestSnapshot, MetricsSources } from './deps.ts';

export const METRIC_PREFIX = 'hashhub_';

/** 50 µs to 1 s: a share is validated in tens of µs; anything near a second is a stall worth seeing. */
export const SUBMIT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** 1 ms to 10 s: a COPY batch into a healthy Postgres takes ms; seconds mean it is struggling. */
export const DB_WRITE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface ApiMetrics {
  readonly registry: Registry;
  /** Time from a mining.submit line to its answer, seconds (wire to Pool.submitObserver). */
  observeSubmit(seconds: number): void;
  /** One batch write into the database, seconds (wire to the ingest writer). */
  observeDbWrite(seconds: number): void;
}

/**
 * Counter fed from running totals by delta (see the file comment). Keys of `totals` are label values of
 * `label`, or '' for an unlabeled counter.
 */
function deltaCounter(registry: Registry, name: string, help: string, label: string | null, totals: () => Record<string, number>): Counter {
  const last = new Map<string, number>();
  return new Counter({
    name,
    help,
    labelNames: label ? [label] : [],
    registers: [registry],
    collect() {
      for (const [key, total] of Object.entries(totals())) {
        const prev = last.get(key) ?? 0;
        const delta = total >= prev ? total - prev : total;
        last.set(key, total);
        // inc by 0 as well: every known label value is exported from the first scrape, so rate() has a start.
        if (label) this.inc({ [label]: key }, delta);
        else this.inc(delta);
      }
    },
  });
}

/**
 * The node's submitblock answers become a label: Core's reasons are a small fixed set ("high-hash",
 * "duplicate", "bad-txnmrklroot", …), but the pool records transport failures as "error: <message>", whose
 * text is unbounded; those collapse to "error" so a flaky network cannot grow the series count.
 */
export function blockResultLabel(raw: string): string {
  if (raw.startsWith('error')) return 'error';
  return raw.toLowerCase().replace(/[^a-z0-9_-]/g, '_').slice(0, 48) || 'unknown';
}

function blockResultTotals(results: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = { accepted: 0 };
  for (const [raw, n] of Object.entries(results)) {
    const k = blockResultLabel(raw);
    out[k] = (out[k] ?? 0) + n;
  }
  return out;
}

export function createMetrics(sources: MetricsSources, opts: { defaultMetrics?: boolean } = {}): ApiMetrics {
  const registry = new Registry();
  const p = METRIC_PREFIX;
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: p });

  new Gauge({
    name: `${p}stratum_connections`, help: 'Open Stratum connections.', registers: [registry],
    collect() { this.set(sources.pool().connections); },
  });
  new Gauge({
    name: `${p}stratum_authorized_sessions`, help: 'Stratum connections with an authorized worker.', registers: [registry],
    collect() { this.set(sources.pool().authorizedSessions); },
  });
  deltaCounter(registry, `${p}shares_total`, 'Shares submitted, by outcome (accepted or the reject class).', 'outcome', () => {
    const shares = sources.pool().shares;
    return Object.fromEntries(SHARE_OUTCOMES.map((o) => [o, shares[o] ?? 0]));
  });
  deltaCounter(registry, `${p}blocks_found_total`, 'Block candidates found (shares meeting the network target).', null,
    () => ({ '': sources.pool().blocks.candidates }));
  deltaCounter(registry, `${p}block_submits_total`, "Block submissions by the node's answer (accepted, a reject reason, or error).", 'result',
    () => blockResultTotals(sources.pool().blockResults));
  new Gauge({
    name: `${p}template_age_seconds`, help: 'Age of the current block template; NaN before the first.', registers: [registry],
    // NaN, not 0: "no template" must not read as "perfectly fresh". Alert on `> N or absent/NaN`.
    collect() { const age = sources.pool().template?.ageMs; this.set(age == null ? NaN : age / 1000); },
  });
  new Gauge({
    name: `${p}template_height`, help: 'Height of the block being mined; NaN before the first template.', registers: [registry],
    collect() { this.set(sources.pool().template?.height ?? NaN); },
  });
  new Gauge({
    name: `${p}network_difficulty`, help: 'Network difficulty from the current template bits.', registers: [registry],
    collect() { this.set(sources.pool().network?.difficulty ?? NaN); },
  });
  new Gauge({
    name: `${p}stratum_write_buffer_bytes`, help: 'Bytes buffered for miners that have not read them yet, all connections (capped pool-wide).', registers: [registry],
    collect() { this.set(sources.pool().writeBuffers?.bufferedBytes ?? 0); },
  });
  deltaCounter(registry, `${p}stratum_slow_readers_closed_total`, 'Connections closed because the pool-wide write buffer cap was reached (slowest readers first).', null,
    () => ({ '': sources.pool().writeBuffers?.slowReadersClosed ?? 0 }));
  const templateReads = sources.templateReads;
  if (templateReads) {
    deltaCounter(registry, `${p}template_reads_total`,
      "getblocktemplate replies read, by where: on the template thread, or on the event loop (the thread failed, could not start or was given up: each such read is a pause in miners' answers).",
      'where', () => { const r = templateReads(); return { thread: r.thread, event_loop: r.eventLoop }; });
  }
  new Gauge({
    name: `${p}pool_draining`, help: '1 while the pool shuts down gracefully.', registers: [registry],
    collect() { this.set(sources.pool().draining ? 1 : 0); },
  });
  const submit = new Histogram({
    name: `${p}share_submit_seconds`, help: 'Time from a mining.submit line to its answer.', buckets: SUBMIT_BUCKETS, registers: [registry],
  });
  const dbWrite = new Histogram({
    name: `${p}db_write_seconds`, help: 'Duration of one batch write into the database.', buckets: DB_WRITE_BUCKETS, registers: [registry],
  });

  const ingest = sources.ingest;
  if (ingest) {
    new Gauge({
      name: `${p}ingest_queue_depth`, help: 'Shares waiting in memory for a database batch.', registers: [registry],
      collect() { this.set(ingest().queueDepth); },
    });
    new Gauge({
      name: `${p}spool_bytes`, help: 'Bytes in the local spool awaiting replay into the database.', registers: [registry],
      collect() { this.set(ingest().spoolBytes); },
    });
    new Gauge({
      name: `${p}db_up`, help: '1 when the last database write or ping succeeded.', registers: [registry],
      collect() { this.set(ingest().dbUp ? 1 : 0); },
    });
    ingestHealthMetrics(registry, ingest);
  }

  return {
    registry,
    observeSubmit: (s) => submit.observe(s),
    observeDbWrite: (s) => dbWrite.observe(s),
  };
}

/**
 * The ingest writer's health and the spool's disk budget. Alert on hashhub_storage_refusing_shares == 1 (shares
 * are being refused: page), hashhub_spool_budget_used_ratio > 0.8 (the database has been behind for long),
 * hashhub_ingest_writer_up == 0 and a growing hashhub_ingest_oldest_unsent_seconds.
 */
function ingestHealthMetrics(registry: Registry, ingest: () => IngestSnapshot): void {
  const p = METRIC_PREFIX;
  const gauge = (name: string, help: string, value: (s: IngestSnapshot) => number | undefined) => new Gauge({
    name: `${p}${name}`, help, registers: [registry],
    collect() { const v = value(ingest()); if (v !== undefined) this.set(v); },
  });
  gauge('ingest_writer_up', '1 while the ingest writer makes progress on its own (0: it cannot read the spool, or it is restarting).',
    (s) => (s.writerUp === undefined ? undefined : s.writerUp ? 1 : 0));
  gauge('ingest_oldest_unsent_seconds', 'Age of the oldest share or block not yet in the database (0 when none).',
    (s) => (s.oldestUnsentAgeMs === undefined ? undefined : (s.oldestUnsentAgeMs ?? 0) / 1000));
  gauge('storage_refusing_shares', '1 while shares are refused because they cannot be stored (disk budget, disk full, spool write errors).',
    (s) => (s.storage ? (s.storage.accepting ? 0 : 1) : undefined));
  gauge('spool_disk_bytes', 'Bytes of spool segment files on disk.', (s) => s.storage?.usedBytes);
  gauge('spool_budget_bytes', 'The spool disk budget (0 = none).', (s) => s.storage?.maxBytes);
  gauge('spool_budget_used_ratio', 'Spool bytes on disk / the part of the budget shares may use; shares are refused at 1. NaN without a budget.',
    (s) => (s.storage ? (s.storage.maxBytes > 0 ? s.storage.usedBytes / (s.storage.maxBytes - s.storage.blockMarginBytes) : NaN) : undefined));
  gauge('spool_fs_free_bytes', "Free bytes on the spool's filesystem (NaN if unknown).", (s) => (s.storage ? (s.storage.freeBytes ?? NaN) : undefined));
  gauge('block_reserve_held', '1 while the preallocated reserve file for block events is in place (0 after it was used on a full disk).',
    (s) => (s.storage ? (s.storage.reserveFileHeld ? 1 : 0) : undefined));
  deltaCounter(registry, `${p}shares_refused_total`, 'Valid shares refused (not credited) because the pool could not store them.', null,
    () => ({ '': ingest().storage?.refusedShares ?? 0 }));
}
