import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { readWatermark } from '../src/accounting/engine.ts';
import { decodeLine, encodeShare } from '../src/ingest/codec.ts';
import { DurableShareLog } from '../src/ingest/durable-log.ts';
import type { ShareEvent } from '../src/shares/events.ts';
import { SqlShareWriter } from '../src/store/share-writer.ts';
import type { ShareWriter } from '../src/store/types.ts';
import { openMigrated } from './helpers/accounting.ts';
import { BACKENDS, SKIP_PG } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

// What accounting needs from ingest: each share's job nbits stored, and a per-spool watermark that never claims
// a share is stored before it is.

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hashhub-acct-ingest-'));
}

let seq = 0;
function share(over: Partial<ShareEvent> = {}): ShareEvent {
  seq++;
  return {
    id: `wm-${seq}`, time: Date.now(), account: 'acct', worker: 'w1', sessionId: 's', remoteAddress: '127.0.0.1', jobId: 'j',
    height: 10, outcome: 'accepted', poolDifficulty: 0.5, shareDifficulty: 1, block: false, nbits: 0x1b0404cb, ...over,
  };
}

test('spool lines carry nbits; lines of the previous layouts (JSON with and without nbits) still replay', () => {
  const s = share({ nbits: 0x17034219 });
  const line = encodeShare(s);
  assert.ok(line.startsWith('s3\t'));
  assert.deepEqual(decodeLine(line.trimEnd()), { kind: 'share', event: s });
  const json = JSON.stringify(['s2', s.id, s.time, s.account, s.worker, s.sessionId, s.remoteAddress, s.jobId, s.height, s.outcome, s.poolDifficulty, s.shareDifficulty, 0, null, s.nbits]);
  assert.deepEqual(decodeLine(json), { kind: 'share', event: s });
  const old = JSON.stringify(['s', 'old-1', 1, 'a', 'w', 's', 'ip', 'j', 5, 'accepted', 1, 2, 0, null]);
  const d = decodeLine(old);
  assert.equal(d.kind, 'share');
  assert.equal((d.event as ShareEvent).nbits, undefined);
  const noJob = share({ outcome: 'unknown-job' });
  delete noJob.nbits;
  assert.deepEqual(decodeLine(encodeShare(noJob).trimEnd()).event, noJob);
});

const pgBackend = BACKENDS.find((b) => b.name === 'postgres')!;

test('the ingest writer stores nbits and records a watermark that never passes a share not yet stored', { skip: SKIP_PG }, async () => {
  const { db, cleanup } = await openMigrated(pgBackend);
  const dir = tmp();
  const real = new SqlShareWriter(db);
  let down = false;
  // The real writer, with an off switch for share batches (the database "down" for ingest).
  const writer: ShareWriter = {
    writeShares: (s) => (down ? Promise.reject(Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' })) : real.writeShares(s)),
    writeBlock: (b) => real.writeBlock(b),
    ping: () => real.ping(),
    recordWatermark: (...a) => real.recordWatermark(...a),
  };
  const log = new DurableShareLog({ dir, writer, logger: pino({ level: 'silent' }), flushMs: 10, retryMinMs: 20, retryMaxMs: 50, watermarkMs: 30 });
  try {
    const a = share({ nbits: 0x17034219 });
    log.appendShare(a);
    assert.ok(await log.waitIdle(10_000));
    const stored = await db.query<{ nbits: number }>('SELECT nbits FROM shares WHERE id = $1', [a.id]);
    assert.equal(stored.rows[0].nbits, 0x17034219);
    // Idle: the watermark follows the clock.
    const t1 = Date.now();
    await until(async () => ((await readWatermark(db)).at ?? 0) >= t1, 5000, 'the idle watermark to pass t1');
    const wm = await readWatermark(db);
    assert.equal(wm.sources.length, 1);
    assert.equal(wm.sources[0].source, fs.readFileSync(path.join(dir, 'source-id'), 'utf8').trim());

    // Database down for share batches: a share waits, and the watermark stays at or before its time.
    down = true;
    const b = share();
    log.appendShare(b);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(((await readWatermark(db)).at ?? Infinity) <= b.time, 'watermark held back by the pending share');
    down = false;
    assert.ok(await log.waitIdle(10_000));
    await until(async () => ((await readWatermark(db)).at ?? 0) > b.time, 5000, 'the watermark to pass the stored share');
    assert.equal((await db.query('SELECT 1 FROM shares WHERE id = $1', [b.id])).rows.length, 1);
  } finally {
    await log.close();
    await cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the watermark does not pass a share still buffered for the spool write at the end of its turn', async () => {
  const dir = tmp();
  const stored = new Set<string>();
  const appended: ShareEvent[] = [];
  const lies: string[] = [];
  let last = 0;
  const writer: ShareWriter = {
    writeShares: async (s) => { for (const x of s) stored.add(x.id); },
    writeBlock: async () => {},
    ping: async () => {},
    recordWatermark: async (_source, t) => {
      for (const x of appended) if (!stored.has(x.id) && x.time < t) lies.push(`watermark ${t} passed ${x.id} at ${x.time}, not stored`);
      last = Math.max(last, t);
    },
  };
  const log = new DurableShareLog({ dir, writer, logger: pino({ level: 'silent' }), flushMs: 1, watermarkMs: 2, batchAppends: true });
  try {
    for (let round = 0; round < 20; round++) {
      // A share handled at the end of a turn (as a waiting connection's lines are, in ReadTurns' setImmediate): its
      // spool write is scheduled from inside the check phase, so it waits for the next turn, whose timers (the
      // watermark's among them) run first.
      await new Promise<void>((resolve) => setImmediate(() => {
        const b = share({ time: Date.now() - 1000 });
        appended.push(b);
        log.appendShare(b);
        const until = Date.now() + 5;
        while (Date.now() < until) { /* the watermark timer falls due */ }
        resolve();
      }));
      assert.ok(await log.waitIdle(5000));
    }
    assert.equal(stored.size, 20);
    assert.deepEqual(lies, []);
    // Held back only while a share waits: once all are stored, it moves past the last one.
    await until(async () => last > appended.at(-1)!.time, 5000, 'the watermark to pass the last stored share');
  } finally {
    await log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a restarted spool keeps its source id', () => {
  const dir = tmp();
  const w: ShareWriter = { writeShares: async () => {}, writeBlock: async () => {}, ping: async () => {} };
  const a = new DurableShareLog({ dir, writer: w, logger: pino({ level: 'silent' }) });
  const id = a.source;
  return a.close().then(async () => {
    const b = new DurableShareLog({ dir, writer: w, logger: pino({ level: 'silent' }) });
    assert.equal(b.source, id);
    await b.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
