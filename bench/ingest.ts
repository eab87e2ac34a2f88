import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { ShareEvent } from '../src/shares/events.ts';
import { openStore } from '../src/store/index.ts';

export interface IngestResult { shares: number; seconds: number; perSecond: number; batch: number; backend: string }

/** Batched COPY writes of accepted shares (with their rollup and worker updates) into a fresh Postgres database. */
export async function benchIngest(url: string, opts: { shares: number; batch: number }): Promise<IngestResult> {
  const store = await openStore({
    url, dataDir: mkdtempSync(path.join(tmpdir(), 'hashhub-bench-')), autoMigrate: true, writeTimeoutMs: 60_000,
    retention: { shareDays: 30, compactAfterDays: 7, partitionsAhead: 2 }, maintenanceIntervalMs: 3_600_000, onlineMinutes: 10,
    logger: pino({ level: 'warn' }),
  });
  try {
    await store.ensureSchema();
    const now = Date.now();
    const make = (i: number): ShareEvent => ({
      id: `bench-${i}`, time: now - 60_000 + (i % 60_000), account: `acct${i % 500}`, worker: `w${i % 20}`, sessionId: String(i % 10_000),
      remoteAddress: '127.0.0.1', jobId: (i % 50).toString(16), height: 900_000, outcome: 'accepted', poolDifficulty: 65536,
      shareDifficulty: 70000 + (i % 1000), block: false,
    });
    // Warm-up batch (connections, partitions, plans).
    await store.writer.writeShares(Array.from({ length: opts.batch }, (_, i) => make(-1 - i)));
    const t0 = process.hrtime.bigint();
    for (let start = 0; start < opts.shares; start += opts.batch) {
      const n = Math.min(opts.batch, opts.shares - start);
      await store.writer.writeShares(Array.from({ length: n }, (_, i) => make(start + i)));
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { shares: opts.shares, seconds, perSecond: opts.shares / seconds, batch: opts.batch, backend: 'postgres' };
  } finally {
    await store.close();
  }
}
