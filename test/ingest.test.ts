import { type TestContext, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { encodeShare } from '../src/ingest/codec.ts';
import { DECODE_SLICE, DurableShareLog, type DurableShareLogOptions, decodeSpoolLines } from '../src/ingest/durable-log.ts';
import type { SpoolLine } from '../src/ingest/spool.ts';
import type { BlockEvent, ShareEvent } from '../src/shares/events.ts';
import type { ShareWriter, WriteResult } from '../src/store/types.ts';
import { tmpDir } from './helpers/tmp-dir.ts';
import { until } from './helpers/until.ts';

// The durable share log against a fake database that can go down, be slow, or refuse one event: no event is
// lost, none is written twice after a commit, and a restart replays exactly what was not committed.

class FakeWriter implements ShareWriter {
  readonly shares = new Map<string, ShareEvent>();
  readonly blocks = new Map<string, Extract<BlockEvent, { kind: 'candidate' }>>();
  /** How many times each share id was handed to a write that committed. */
  readonly deliveries = new Map<string, number>();
  down = false;
  calls = 0;
  poison = new Set<string>();

  async writeShares(batch: readonly ShareEvent[]): Promise<WriteResult> {
    this.calls++;
    await new Promise((r) => setImmediate(r));
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const bad = batch.find((s) => this.poison.has(s.id));
    if (bad) throw Object.assign(new Error(`invalid input value for enum share_outcome: "${bad.outcome}"`), { code: '22P02' });
    let inserted = 0;
    for (const s of batch) {
      this.deliveries.set(s.id, (this.deliveries.get(s.id) ?? 0) + 1);
      if (!this.shares.has(s.id)) {
        this.shares.set(s.id, s);
        inserted++;
      }
    }
    return { inserted, duplicates: batch.length - inserted };
  }

  async writeBlock(b: BlockEvent): Promise<void> {
    if (this.down) throw Object.assign(new Error('Connection terminated unexpectedly'), { code: undefined });
    if (b.kind === 'candidate') this.blocks.set(b.hash, b);
  }

  async ping(): Promise<void> {
    if (this.down) throw new Error('down');
  }
}

const tmp = (t: TestContext): string => tmpDir(t, 'hashhub-spool-');

function capture() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
  return { logger, lines, count: (re: RegExp) => lines.filter((l) => re.test(l.msg)).length };
}

let n = 0;
function share(over: Partial<ShareEvent> = {}): ShareEvent {
  n++;
  return {
    id: `i-${n}`, time: 1_900_000_000_000 + n, account: 'acct', worker: `w${n % 3}`, sessionId: String(n % 7), remoteAddress: '10.0.0.1',
    jobId: (n % 16).toString(16), height: 800_000, outcome: n % 11 === 0 ? 'stale' : 'accepted', poolDifficulty: 0.001 * (1 + (n % 5)),
    shareDifficulty: 1 / (n + 0.5), block: false, ...over,
  };
}

function block(i: number): Extract<BlockEvent, { kind: 'candidate' }> {
  return {
    kind: 'candidate', time: 1_900_000_000_000 + i, height: 800_000 + i, hash: i.toString(16).padStart(64, '0'), prevHash: '00'.repeat(32),
    account: 'acct', worker: 'w1', reward: 625_000_000n + BigInt(i), blockHex: 'ab'.repeat(5000),
  };
}

function open(dir: string, writer: ShareWriter, over: Partial<DurableShareLogOptions> = {}): DurableShareLog {
  return new DurableShareLog({
    dir, writer, logger: pino({ level: 'silent' }), flushMs: 20, batchMax: 200, retryMinMs: 10, retryMaxMs: 100, fsyncMs: 50, ...over,
  });
}

test('every appended event reaches the database once; listeners see it; committed segments are deleted', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const log = open(dir, w, { segmentBytes: 8192 });
  const seen: string[] = [];
  let blocks = 0;
  log.onShare((e) => seen.push(e.id));
  log.onBlock(() => blocks++);
  const writeSeconds: number[] = [];
  log.observeWrites((s) => writeSeconds.push(s));
  const sent: ShareEvent[] = [];
  for (let i = 0; i < 2000; i++) {
    const s = share();
    sent.push(s);
    log.appendShare(s);
    if (i === 1000) log.appendBlock(block(1));
  }
  assert.equal(seen.length, 2000, 'listeners are called synchronously');
  assert.equal(blocks, 1);
  assert.ok(await log.waitIdle(10_000), 'drained');
  assert.equal(w.shares.size, 2000);
  assert.ok([...w.deliveries.values()].every((c) => c === 1), 'each share delivered once');
  assert.deepEqual(w.shares.get(sent[7].id), sent[7], 'the event arrives unchanged');
  assert.equal(w.blocks.get(block(1).hash)?.reward, 625_000_001n);
  const st = log.stats();
  assert.equal(st.spoolBytes, 0);
  assert.equal(st.queueDepth, 0);
  assert.equal(st.written.shares, 2000);
  assert.equal(st.written.blocks, 1);
  assert.equal(st.appended.shares, 2000);
  assert.ok(st.spoolSegments <= 2, `old segments deleted (${st.spoolSegments} left)`);
  assert.equal(st.dbUp, true);
  assert.ok(st.lastWriteMs !== null);
  assert.equal(writeSeconds.length, st.written.batches, 'every committed batch is observed (metrics)');
  await log.close();
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.spool')), [], 'nothing left to replay');
});

test('database down: events wait in the spool, retries back off, one log line per state change, exactly once after', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const cap = capture();
  w.down = true;
  const log = open(dir, w, { logger: cap.logger, retryMinMs: 50, retryMaxMs: 200 });
  for (let i = 0; i < 500; i++) log.appendShare(share());
  log.appendBlock(block(2));
  await new Promise((r) => setTimeout(r, 1000));
  // Back-off from 100 ms, doubling: three attempts within about 0.7 s, or later on a loaded machine.
  await until(() => w.calls >= 3, 10_000, 'three write attempts');
  let st = log.stats();
  assert.equal(st.dbUp, false);
  assert.ok(st.dbDownSince);
  assert.match(st.lastError ?? '', /ECONNREFUSED/);
  assert.equal(st.written.shares, 0);
  assert.ok(st.spoolBytes > 500 * 60, `spooled ${st.spoolBytes} bytes`);
  assert.ok(w.calls <= 15, `back-off: ${w.calls} attempts, not one per turn`);
  assert.equal(cap.count(/database write failed/), 1, 'one error line for the whole outage');
  w.down = false;
  assert.ok(await log.waitIdle(5000));
  assert.equal(w.shares.size, 500);
  assert.ok([...w.deliveries.values()].every((c) => c === 1));
  assert.equal(w.blocks.size, 1);
  st = log.stats();
  assert.equal(st.dbUp, true);
  assert.equal(st.dbDownSince, null);
  assert.equal(cap.count(/work again/), 1);
  await log.close();
});

test('a share waiting for the database is kept as its row: not the event, nor the submit line its strings were cut from', async (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const dir = tmp(t);
  const w = new FakeWriter();
  w.down = true;
  const log = open(dir, w, { retryMinMs: 50, retryMaxMs: 100 });
  t.after(() => log.close()); // a failed assertion must not leave the writer retrying (it keeps the process up)
  const appended: ShareEvent[] = [];
  let firstEvent: WeakRef<ShareEvent> | null = null;
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1000; i++) {
    // As the pool makes them: the job id and the worker are slices of the miner's submit line (8 KB here).
    const line = `{"id":${i},"method":"mining.submit","params":["worker.rig-${String(i).padStart(6, '0')}","job-${String(i).padStart(12, '0')}"]}` + ' '.repeat(8000);
    const worker = line.slice(line.indexOf('worker.'), line.indexOf('worker.') + 17);
    const jobId = line.slice(line.indexOf('job-'), line.indexOf('job-') + 16);
    const e = share({ account: '', worker, jobId, outcome: 'unauthorized' });
    log.appendShare(e);
    appended.push({ ...e, worker: JSON.parse(JSON.stringify(worker)), jobId: JSON.parse(JSON.stringify(jobId)) });
    firstEvent ??= new WeakRef(e);
  }
  await new Promise((r) => setImmediate(r)); // a WeakRef keeps its target for the rest of the job that made it
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  assert.equal(log.stats().written.shares, 0, 'the database is down: every share is still queued');
  assert.equal(firstEvent!.deref(), undefined, 'the queue does not keep the ShareEvent');
  assert.ok(grown < 3_000_000, `1,000 queued shares cut from 8 KB lines kept ${grown} bytes (the lines are 8 MB)`);
  w.down = false;
  assert.ok(await log.waitIdle(5000));
  assert.equal(w.shares.size, 1000);
  for (const e of appended) assert.deepEqual(w.shares.get(e.id), e, 'the share written is the share appended');
});

test('a queued share whose row does not read back is set aside in the dead-letter file; the shares behind it are written', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter(); // no writeShareRows: the writer needs the whole events back from the rows
  const log = open(dir, w, { retryMinMs: 5, retryMaxMs: 10 });
  t.after(() => log.close());
  // The encoder writes any outcome; the decoder takes known ones only (a bug elsewhere could make such a share).
  const bad = share({ outcome: 'bogus' as ShareEvent['outcome'] });
  const good = [share(), share(), share()];
  log.appendShare(good[0]);
  log.appendShare(bad);
  log.appendShare(good[1]);
  log.appendShare(good[2]);
  assert.ok(await log.waitIdle(5000), 'the writer is not stuck on the share it cannot read back');
  assert.deepEqual([...w.shares.keys()].sort(), good.map((e) => e.id).sort());
  assert.equal(log.stats().deadLettered, 1);
  const dead = fs.readFileSync(path.join(dir, 'dead-letter.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(dead.length, 1);
  assert.match(dead[0].event.row, new RegExp(`^s3\\t${bad.id}\\t`), 'the row itself is kept');
  assert.match(dead[0].error, /outcome/);
});

test('spool lines read back are decoded a slice per event-loop turn, in order, corrupt lines reported', async () => {
  const lines: SpoolLine[] = [];
  const shares: ShareEvent[] = [];
  for (let i = 0; i < 2 * DECODE_SLICE + 250; i++) {
    const e = share();
    shares.push(e);
    lines.push({ text: i === 700 ? 's3\tdamaged' : encodeShare(e).slice(0, -1), start: i, end: { seg: 1, off: i } });
  }
  const decoded: ShareEvent[] = [];
  const corrupt: number[] = [];
  const yieldsAfter: number[] = [];
  await decodeSpoolLines(lines, (_l, ev) => { if (ev.kind === 'share') decoded.push(ev.event); }, (l) => corrupt.push(l.end.off),
    async () => { yieldsAfter.push(decoded.length + corrupt.length); });
  assert.deepEqual(yieldsAfter, [DECODE_SLICE, 2 * DECODE_SLICE], 'the loop is let go between slices, not once per batch');
  assert.deepEqual(corrupt, [700]);
  assert.deepEqual(decoded.map((e) => e.id), shares.filter((_e, i) => i !== 700).map((e) => e.id));
});

test('queue full: the writer reads the events back from the spool, then returns to the queue', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  w.down = true;
  const log = open(dir, w, { queueCapacity: 50, batchMax: 64 });
  for (let i = 0; i < 1000; i++) log.appendShare(share());
  let st = log.stats();
  assert.equal(st.mode, 'spool');
  assert.equal(st.queueDepth, 50, 'memory stays bounded');
  w.down = false;
  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.shares.size, 1000);
  assert.ok([...w.deliveries.values()].every((c) => c === 1), 'the queued 50 and the spooled 950 do not overlap');
  st = log.stats();
  assert.equal(st.mode, 'memory');
  for (let i = 0; i < 10; i++) log.appendShare(share());
  assert.equal(log.stats().queueDepth, 10, 'back on the in-memory queue');
  assert.ok(await log.waitIdle(5000));
  assert.equal(w.shares.size, 1010);
  await log.close();
});

test('restart replays exactly what was not committed (checkpoint), blocks included', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const first = open(dir, w, { closeTimeoutMs: 0, segmentBytes: 16_384 });
  const committed: ShareEvent[] = [];
  for (let i = 0; i < 100; i++) {
    const s = share();
    committed.push(s);
    first.appendShare(s);
  }
  assert.ok(await first.waitIdle(5000));
  w.down = true;
  const pending: ShareEvent[] = [];
  for (let i = 0; i < 300; i++) {
    const s = share();
    pending.push(s);
    first.appendShare(s);
  }
  first.appendBlock(block(3));
  await first.close(); // gives up at once: the database is down
  assert.equal(w.shares.size, 100);
  assert.equal(w.blocks.size, 0);

  w.down = false;
  const second = open(dir, w);
  assert.equal(second.stats().mode, 'spool', 'replaying');
  assert.ok(await second.waitIdle(10_000));
  assert.equal(w.shares.size, 400);
  for (const s of committed) assert.equal(w.deliveries.get(s.id), 1, 'committed before the restart: not replayed');
  for (const s of pending) assert.equal(w.deliveries.get(s.id), 1);
  assert.equal(w.blocks.size, 1);
  await second.close();
  // A third start has nothing to replay.
  const third = open(dir, w);
  assert.equal(third.stats().mode, 'memory');
  assert.equal(third.stats().spoolBytes, 0);
  await third.close();
});

test('a torn last line (crash mid-write) is skipped and a corrupt line set aside in the dead-letter file; every whole line is replayed', async (t) => {
  const dir = tmp(t);
  const good = [share(), share(), share()];
  const text = Buffer.concat([Buffer.from(encodeShare(good[0])), Buffer.from('{"garb\xffage\n', 'latin1'),
    Buffer.from(encodeShare(good[1]) + encodeShare(good[2]) + encodeShare(share()).slice(0, 30))]);
  fs.writeFileSync(path.join(dir, '000000000007.spool'), text);
  const w = new FakeWriter();
  const log = open(dir, w);
  assert.ok(await log.waitIdle(5000));
  assert.deepEqual([...w.shares.keys()].sort(), good.map((s) => s.id).sort());
  assert.equal(log.stats().corruptLines, 1);
  await log.close();
  assert.ok(!fs.existsSync(path.join(dir, '000000000007.spool')), 'replayed segment deleted');
  // The corrupt line outlives its segment, byte for byte (a byte that is not UTF-8 included).
  const dead = fs.readFileSync(path.join(dir, 'dead-letter.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(dead.length, 1);
  assert.deepEqual(Buffer.from(dead[0].event.bytes, 'base64'), Buffer.from('{"garb\xffage', 'latin1'));
  assert.equal(dead[0].event.segment, 7);
  assert.equal(dead[0].event.start, Buffer.byteLength(encodeShare(good[0])));
  assert.equal(log.stats().deadLettered, 1);
});

test('an event the database refuses as invalid goes to the dead-letter file; the rest are written', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const log = open(dir, w, { retryMinMs: 5, retryMaxMs: 10 });
  const events = Array.from({ length: 20 }, () => share());
  w.poison.add(events[5].id);
  for (const e of events) log.appendShare(e);
  assert.ok(await log.waitIdle(5000));
  assert.equal(w.shares.size, 19);
  assert.equal(log.stats().deadLettered, 1);
  const dead = fs.readFileSync(path.join(dir, 'dead-letter.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(dead.length, 1);
  assert.equal(dead[0].event.id, events[5].id);
  assert.match(dead[0].error, /invalid input value/);
  await log.close();
});

test('one spool directory, one log: a second one is refused with a clear message', async (t) => {
  const dir = tmp(t);
  const a = open(dir, new FakeWriter());
  assert.throws(() => open(dir, new FakeWriter()), /already open in this process/);
  await a.close();
  // A lock left by a dead process is taken over.
  fs.writeFileSync(path.join(dir, 'spool.lock'), '999999999');
  const b = open(dir, new FakeWriter());
  await b.close();
});

test('the hot path: appendShare is a synchronous write of one line (µs, not ms)', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const log = open(dir, w, { batchMax: 5000, queueCapacity: 200_000 });
  const events = Array.from({ length: 50_000 }, () => share());
  const t0 = performance.now();
  for (const e of events) log.appendShare(e);
  const us = ((performance.now() - t0) * 1000) / events.length;
  // Every appended line is in the file (page cache) when appendShare returns.
  const onDisk = fs.readdirSync(dir).filter((f) => f.endsWith('.spool')).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
  assert.ok(onDisk >= events.length * 100, `${onDisk} bytes on disk`);
  t.diagnostic(`appendShare: ${us.toFixed(2)} µs per share (spool write + queue)`);
  assert.ok(us < 200, `${us} µs per append`);
  assert.ok(await log.waitIdle(20_000));
  assert.equal(w.shares.size, events.length);
  await log.close();
});
