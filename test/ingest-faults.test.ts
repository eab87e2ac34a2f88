// Storage that fails (issue 10 items 14 and 15): the ingest writer outlives errors reading the spool, and a full
// disk or a spent disk budget refuses shares (with a Stratum error, not credited) instead of piling them up in
// memory, while block events are still recorded.

import { emptyBlockCounters } from '../src/shares/block-state.ts';
import { type TestContext, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { decodeLine } from '../src/ingest/codec.ts';
import { DurableShareLog, type DurableShareLogOptions } from '../src/ingest/durable-log.ts';
import { Spool } from '../src/ingest/spool.ts';
import { Pool } from '../src/pool/pool.ts';
import type { BlockEvent, ShareEvent } from '../src/shares/events.ts';
import type { ShareWriter, WriteResult } from '../src/store/types.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { LineClient, type Msg } from './helpers/line-client.ts';
import { REGTEST_ADDRESS, solveShare } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';
import { until } from './helpers/until.ts';
import { tinyFs } from './helpers/tmpfs.ts';
import { tmpDir } from './helpers/tmp-dir.ts';

class FakeWriter implements ShareWriter {
  readonly shares = new Map<string, ShareEvent>();
  readonly blocks = new Map<string, BlockEvent>();
  readonly deliveries = new Map<string, number>();
  down = false;

  async writeShares(batch: readonly ShareEvent[]): Promise<WriteResult> {
    await new Promise((r) => setImmediate(r));
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    let inserted = 0;
    for (const s of batch) {
      this.deliveries.set(s.id, (this.deliveries.get(s.id) ?? 0) + 1);
      if (!this.shares.has(s.id)) { this.shares.set(s.id, s); inserted++; }
    }
    return { inserted, duplicates: batch.length - inserted };
  }

  async writeBlock(b: BlockEvent): Promise<void> {
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    this.blocks.set(b.hash, b);
  }

  async ping(): Promise<void> {}
}

const tmp = (t: TestContext): string => tmpDir(t, 'hashhub-faults-');

function capture() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
  return { logger, lines, count: (re: RegExp) => lines.filter((l) => re.test(l.msg)).length };
}

let n = 0;
function share(over: Partial<ShareEvent> = {}): ShareEvent {
  n++;
  return {
    id: `f-${n}`, time: Date.now(), account: 'acct', worker: 'w1', sessionId: '1', remoteAddress: '10.0.0.1', jobId: '1', height: 800_000,
    outcome: 'accepted', poolDifficulty: 0.001, shareDifficulty: 0.002, block: false, ...over,
  };
}

function block(i: number): BlockEvent {
  return {
    kind: 'candidate', time: Date.now(), height: 800_000 + i, hash: i.toString(16).padStart(64, '0'), prevHash: '00'.repeat(32), account: 'acct',
    worker: 'w1', reward: 625_000_000n, blockHex: 'ab'.repeat(4000),
  };
}

function open(dir: string, writer: ShareWriter, over: Partial<DurableShareLogOptions> = {}): DurableShareLog {
  return new DurableShareLog({
    dir, writer, logger: pino({ level: 'silent' }), flushMs: 10, batchMax: 50, retryMinMs: 10, retryMaxMs: 50, fsyncMs: 50, closeTimeoutMs: 1000,
    ...over,
    budget: { minFreeBytes: 0, reserveFileBytes: 0, ...over.budget },
  });
}

const segments = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.spool'));
const errno = (code: string) => Object.assign(new Error(`${code}: simulated`), { code });

// ---- item 14: the writer outlives spool read errors ----------------------------------------------------------

test('spool reads failing with EMFILE then EIO: the writer backs off and retries, shows it, and loses nothing', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const cap = capture();
  let failReads = 0;
  const log = open(dir, w, {
    logger: cap.logger, queueCapacity: 10,
    io: {
      openRead: (file) => {
        if (failReads > 0) {
          failReads--;
          return Promise.reject(errno(failReads % 2 ? 'EMFILE' : 'EIO'));
        }
        return fs.promises.open(file, 'r');
      },
    },
  });
  w.down = true;
  const sent = Array.from({ length: 300 }, () => share());
  for (const s of sent) log.appendShare(s);
  assert.equal(log.stats().mode, 'spool', 'the queue overflowed: the writer must read the spool');
  failReads = 6;
  w.down = false;
  await until(() => !log.stats().writerUp, 5000, 'the writer to report it cannot read the spool');
  assert.match(log.stats().writerError ?? '', /cannot read the spool: (EMFILE|EIO)/);
  assert.ok(await log.waitIdle(10_000), 'the writer recovered and caught up');
  assert.equal(w.shares.size, sent.length);
  assert.ok([...w.deliveries.values()].every((c) => c === 1), 'each share written once');
  const st = log.stats();
  assert.equal(st.writerUp, true);
  assert.equal(st.readErrors, 6);
  assert.equal(cap.count(/cannot read the spool/), 1, 'logged once for the whole episode');
  assert.equal(cap.count(/stopped unexpectedly|failed unexpectedly/), 0);
  await log.close();
});

test('a spool segment deleted under the writer: reported, skipped, the others written, the writer lives on', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const cap = capture();
  w.down = true;
  const log = open(dir, w, { logger: cap.logger, queueCapacity: 5, segmentBytes: 4096 });
  const sent = Array.from({ length: 200 }, () => share());
  for (const s of sent) log.appendShare(s);
  const segs = segments(dir).sort();
  assert.ok(segs.length >= 4, `${segs.length} segments`);
  const victim = segs[1];
  const lost = new Set(fs.readFileSync(path.join(dir, victim), 'utf8').trim().split('\n').map((l) => (decodeLine(l).event as ShareEvent).id));
  fs.rmSync(path.join(dir, victim));
  w.down = false;
  assert.ok(await log.waitIdle(10_000), 'caught up past the missing segment');
  assert.equal(w.shares.size, sent.length - lost.size);
  for (const s of sent) assert.equal(w.shares.has(s.id), !lost.has(s.id));
  const st = log.stats();
  assert.equal(st.missingSegments, 1);
  assert.equal(st.writerUp, true);
  assert.equal(cap.count(/segment missing/), 1);
  // The writer still works for new events.
  const later = share();
  log.appendShare(later);
  assert.ok(await log.waitIdle(5000));
  assert.ok(w.shares.has(later.id));
  await log.close();
});

test('oldest unsent share age and backlog bytes: visible while the database is down, back to none after', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  w.down = true;
  const log = open(dir, w, { queueCapacity: 20 });
  assert.equal(log.stats().oldestUnsentAgeMs, null);
  log.appendShare(share({ time: Date.now() - 7000 }));
  for (let i = 0; i < 100; i++) log.appendShare(share());
  await new Promise((r) => setTimeout(r, 100));
  const st = log.stats();
  assert.ok(st.oldestUnsentAgeMs !== null && st.oldestUnsentAgeMs >= 7000, `oldest unsent ${st.oldestUnsentAgeMs} ms`);
  assert.ok(st.spoolBytes > 100 * 50, `backlog ${st.spoolBytes} bytes`);
  w.down = false;
  assert.ok(await log.waitIdle(5000));
  assert.equal(log.stats().oldestUnsentAgeMs, null);
  assert.equal(log.stats().spoolBytes, 0);
  await log.close();
});

test('oldest unsent share age counts a share still waiting for its turn\'s spool write', async (t) => {
  // Failed before: only the queue was looked at, and the metric said nothing was waiting.
  const log = open(tmp(t), new FakeWriter(), { batchAppends: true });
  log.appendShare(share({ time: Date.now() - 3000 }));
  const age = log.stats().oldestUnsentAgeMs;
  assert.ok(age !== null && age >= 3000, `oldest unsent ${age} ms`);
  assert.ok(await log.waitIdle(5000));
  await log.close();
});

// ---- item 15: a full disk, a spent budget ----------------------------------------------------------------------

test('the spool: a finished segment is synced and closed off the event loop; close waits for it; every line reads back', async (t) => {
  const dir = tmp(t);
  const openInDir = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try { return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir); } catch { return false; }
  });
  const spool = new Spool(dir, { segmentBytes: 64, fsyncMs: 60_000 });
  // fdatasyncSync blocks the thread that calls it for as long as the filesystem's journal takes; a rotation must
  // not call it on the event loop. The thread pool's fdatasync is slowed down, so that close has to wait for it.
  const realSync = fs.fdatasyncSync;
  const realAsync = fs.fdatasync;
  let syncsOnLoop = 0;
  let asyncDone = 0;
  fs.fdatasyncSync = (fd: number) => { syncsOnLoop++; realSync(fd); };
  (fs as { fdatasync: unknown }).fdatasync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    setTimeout(() => realAsync(fd, (err) => { asyncDone++; cb(err); }), 30);
  };
  t.after(() => { fs.fdatasyncSync = realSync; fs.fdatasync = realAsync; });
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) {
    const line = `{"n":${i},"pad":"${'x'.repeat(30)}"}`;
    lines.push(line);
    spool.append(line + '\n');
  }
  const rotations = spool.usage().segments - 1;
  assert.ok(rotations >= 10, `rotations happened (${rotations})`);
  assert.equal(syncsOnLoop, 0, 'no rotation synced on the event loop');
  assert.equal(asyncDone, 0, 'the syncs of the finished segments are still running');
  const r = await spool.read(spool.replayFrom(), 1000);
  assert.deepEqual(r.lines.map((l) => l.text), lines);
  await spool.close();
  assert.equal(asyncDone, rotations, 'close returned after every finished segment was synced');
  assert.deepEqual(openInDir(), [], 'and closed');
});

test('the spool: an append that asks for a sync and starts a new segment syncs the finished one first (what it vouches for)', async (t) => {
  const dir = tmp(t);
  const spool = new Spool(dir, { segmentBytes: 64, fsyncMs: 60_000 });
  const realSync = fs.fdatasyncSync;
  const synced: string[] = [];
  fs.fdatasyncSync = (fd: number) => { synced.push(path.basename(fs.readlinkSync(`/proc/self/fd/${fd}`))); realSync(fd); };
  t.after(() => { fs.fdatasyncSync = realSync; });
  spool.append(`{"count":1,"pad":"${'x'.repeat(40)}"}\n`);
  spool.append(`{"count":2,"pad":"${'x'.repeat(40)}"}\n`);
  assert.deepEqual(synced, []);
  // The route meter's flush marker: synced, it vouches that the counts before it are on disk.
  const marker = spool.append('{"flush":1}\n', { sync: true });
  assert.equal(marker.start.seg, 2, 'the marker went to a new segment');
  assert.deepEqual(synced, ['000000000001.spool', '000000000002.spool'], 'the counts\' segment, then the marker\'s');
  fs.fdatasyncSync = realSync;
  await spool.close();
});

test('the spool: a segment cut short on disk (by hand) reads its whole lines, then the rest as torn: no endless read, no bytes from nowhere', async (t) => {
  const dir = tmp(t);
  const spool = new Spool(dir, { fsyncMs: 60_000 });
  const lines = ['{"a":1}', '{"b":2}', `{"c":"${'3'.repeat(100)}"}`];
  for (const l of lines) spool.append(l + '\n');
  const seg = path.join(dir, '000000000001.spool');
  const within = async (p: Promise<Awaited<ReturnType<Spool['read']>>>) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([p, new Promise<never>((_r, reject) => { timer = setTimeout(() => reject(new Error('the read does not end')), 5000); })]);
    } finally {
      clearTimeout(timer);
    }
  };
  // Cut inside the third line: the first two read back, the rest is a torn line.
  fs.truncateSync(seg, lines[0].length + lines[1].length + 2 + 5);
  const r = await within(spool.read(spool.replayFrom(), 100));
  assert.deepEqual(r.lines.map((l) => l.text), lines.slice(0, 2));
  assert.equal(r.torn, 1);
  // Cut to nothing: nothing reads back (the read buffer's unwritten bytes are not searched for lines).
  fs.truncateSync(seg, 0);
  const r2 = await within(spool.read(spool.replayFrom(), 100));
  assert.deepEqual(r2.lines.map((l) => l.text), []);
  assert.equal(r2.torn, 1);
  await spool.close();
});

test('the spool: 1,000 failed appends leave one segment file (no rotation per failure) and no partial line', async (t) => {
  const dir = tmp(t);
  let fail = false;
  const spool = new Spool(dir, {
    fsyncMs: 0,
    io: {
      write: (fd, buf, off, len) => {
        if (!fail) return fs.writeSync(fd, buf, off, len);
        // A short write, then ENOSPC: what write(2) does when the disk fills mid-line.
        fs.writeSync(fd, buf, off, Math.min(len, 7));
        throw errno('ENOSPC');
      },
    },
  });
  spool.append('{"a":1}\n');
  fail = true;
  for (let i = 0; i < 1000; i++) assert.throws(() => spool.append('{"b":2}\n'), /ENOSPC/);
  fail = false;
  spool.append('{"c":3}\n');
  assert.equal(segments(dir).length, 1);
  const r = await spool.read(spool.replayFrom(), 100);
  assert.deepEqual(r.lines.map((l) => l.text), ['{"a":1}', '{"c":3}'], 'the partial writes were truncated away');
  await spool.close();
});

test('disk full (ENOSPC): shares are refused, not held in memory; a block is recorded using the reserve file', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const cap = capture();
  const reserve = path.join(dir, 'block-reserve.bin');
  let full = false;
  const log = open(dir, w, {
    logger: cap.logger,
    budget: { reserveFileBytes: 64 * 1024, retryMinMs: 100, retryMaxMs: 100 },
    // The disk is full as long as the reserve file holds its space.
    io: { write: (fd, buf, off, len) => { if (full && fs.existsSync(reserve)) throw errno('ENOSPC'); return fs.writeSync(fd, buf, off, len); } },
  });
  assert.ok(fs.statSync(reserve).size === 64 * 1024, 'the reserve file is preallocated at start');
  w.down = true;
  for (let i = 0; i < 10; i++) { assert.equal(log.admitShare().accepting, true); log.appendShare(share()); }
  full = true;
  // The pool asks, is told yes (nothing failed yet), appends: that write fails. The share is kept for the
  // database in memory; every share after it is refused.
  assert.equal(log.admitShare().accepting, true);
  log.appendShare(share());
  const refusals = Array.from({ length: 1000 }, () => log.admitShare());
  assert.ok(refusals.every((r) => !r.accepting && r.reason === 'write-failed'), 'refused after the failed write');
  assert.match(!refusals[0].accepting ? refusals[0].message : '', /ENOSPC/);
  // A caller that appends without asking: refused too, never queued.
  for (let i = 0; i < 1000; i++) log.appendShare(share());
  let st = log.stats();
  assert.ok(st.queueDepth <= 11, `memory bounded: ${st.queueDepth} queued`);
  assert.equal(st.storage.accepting, false);
  assert.equal(st.storage.refusedShares, 2000);
  assert.ok(segments(dir).length <= 2, `${segments(dir).length} segment files`);
  assert.equal(cap.count(/refusing shares/), 1, 'one log line, not one per share');
  // A block on the full disk: the reserve file makes room for it.
  log.appendBlock(block(1));
  assert.ok(!fs.existsSync(reserve), 'reserve released');
  assert.equal(st.spoolErrors + 0 >= 1, true);
  const onDisk = segments(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('');
  assert.ok(onDisk.includes(block(1).hash), 'the block event is in the spool');
  // The disk has room again: after the back-off, shares are accepted; everything reaches the database.
  full = false;
  w.down = false;
  await until(() => log.admitShare().accepting, 3000, 'shares to be accepted again');
  assert.ok(await log.waitIdle(5000));
  assert.equal(w.shares.size, 11);
  assert.ok(w.blocks.has(block(1).hash));
  assert.equal(cap.count(/accepting shares/), 1);
  st = log.stats();
  assert.equal(st.storage.accepting, true);
  await log.close();
});

test('disk budget: shares refused past the budget less the block margin; blocks still recorded; accepted again once drained', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const cap = capture();
  w.down = true;
  const maxBytes = 64 * 1024;
  const marginBytes = 16 * 1024;
  const log = open(dir, w, { logger: cap.logger, segmentBytes: 8 * 1024, queueCapacity: 50, budget: { maxBytes, blockMarginBytes: marginBytes } });
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    if (!log.admitShare().accepting) break;
    log.appendShare(share());
    accepted++;
  }
  assert.ok(accepted > 100 && accepted < 5000, `${accepted} shares before the budget`);
  const st = log.stats();
  assert.equal(st.storage.accepting, false);
  assert.equal(st.storage.reason, 'budget');
  assert.match(st.storage.message ?? '', /spool budget reached/);
  assert.ok(st.storage.usedBytes <= maxBytes - marginBytes, `${st.storage.usedBytes} bytes used`);
  // Blocks use the margin.
  for (let i = 1; i <= 2; i++) log.appendBlock(block(10 + i));
  assert.equal(log.stats().appended.blocks, 2);
  assert.ok(log.stats().storage.usedBytes > maxBytes - marginBytes, 'blocks went into the margin');
  assert.equal(cap.count(/refusing shares/), 1);
  w.down = false;
  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.shares.size, accepted);
  assert.equal(w.blocks.size, 2);
  assert.equal(log.admitShare().accepting, true, 'committed segments are deleted: room again');
  assert.equal(cap.count(/accepting shares/), 1);
  await log.close();
});

test('a real full filesystem (2 MiB tmpfs): refuse shares, record the block, recover', async (t) => {
  const dir = tinyFs(t, '2m');
  if (!dir) return t.skip('cannot mount a tmpfs here (not root)');
  const w = new FakeWriter();
  const cap = capture();
  w.down = true;
  const log = open(dir, w, { logger: cap.logger, fsyncMs: 0, queueCapacity: 100, budget: { maxBytes: 0, reserveFileBytes: 256 * 1024, retryMinMs: 50, retryMaxMs: 50 } });
  assert.equal(fs.statSync(path.join(dir, 'block-reserve.bin')).size, 256 * 1024);
  let accepted = 0;
  for (let i = 0; i < 50_000; i++) {
    if (!log.admitShare().accepting) break;
    log.appendShare(share());
    accepted++;
  }
  const st = log.stats();
  assert.ok(accepted > 1000 && accepted < 50_000, `${accepted} shares fit`);
  assert.equal(st.storage.reason, 'write-failed');
  assert.match(st.storage.message ?? '', /ENOSPC/);
  assert.ok(segments(dir).length <= 2, `${segments(dir).length} segment files`);
  assert.ok(st.queueDepth <= 101, `memory bounded: ${st.queueDepth}`);
  log.appendBlock(block(99));
  assert.equal(log.stats().appended.blocks, 1);
  assert.ok(segments(dir).some((f) => fs.readFileSync(path.join(dir, f), 'utf8').includes(block(99).hash)), 'the block is on disk');
  w.down = false;
  assert.ok(await log.waitIdle(20_000), 'drained');
  assert.equal(w.shares.size, accepted, 'every share that was accepted reached the database');
  assert.ok(w.blocks.has(block(99).hash));
  await until(() => log.admitShare().accepting, 3000, 'room again once the committed segments are deleted');
  assert.equal(cap.count(/refusing shares/), 1);
  await log.close();
});

// ---- item 15 at the Stratum edge: the answer is an error, the block is still submitted ---------------------

test('storage full: a valid share is answered with error 20 (not credited), its block still submitted and recorded', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  w.down = true;
  const shareLog = open(dir, w, { segmentBytes: 8 * 1024, budget: { maxBytes: 16 * 1024, blockMarginBytes: 15 * 1024 } });
  // Every hash is a block on this template.
  const node = new StubNode({ bits: 0x207fffff });
  const pool = new Pool(node, {
    network: 'regtest', payoutAddress: REGTEST_ADDRESS, poolTag: '/t/', requireAddressAccounts: false,
    stratum: { ...DEFAULT_STRATUM_OPTIONS, host: '127.0.0.1', port: 0, initialDifficulty: 1e-6, tickMs: 100, vardiff: { ...DEFAULT_STRATUM_OPTIONS.vardiff, minDifficulty: 1e-8 } },
    templates: { pollMs: 100, refreshMs: 60_000, longpoll: false }, blocks: { journalDir: null },
  }, shareLog, pino({ level: 'silent' }));
  const { port } = await pool.start();
  t.after(async () => { await pool.stop(100); await shareLog.close(); });
  const kinds: string[] = [];
  shareLog.onBlock((e) => kinds.push(e.kind));
  const c = new LineClient(port, '127.0.0.1');
  await c.connected();
  const sub = await c.request(1, 'mining.subscribe', ['test/1']);
  assert.equal((await c.request(2, 'mining.authorize', ['acct.w1', 'x'])).result, true);
  const notify = await c.waitFor((m: Msg) => m.method === 'mining.notify');
  const [, en1, en2Size] = sub.result as [unknown, string, number];
  // Fill the budget (1 KiB for shares) directly through the log.
  while (shareLog.admitShare().accepting) shareLog.appendShare(share());
  const params = solveShare(notify, en1, en2Size, 1e-6);
  const answer = await c.request(3, 'mining.submit', params);
  assert.equal(answer.result, null);
  assert.deepEqual(answer.error, [20, 'Pool cannot record shares right now (storage full); not credited', null]);
  assert.equal(node.submitted.length, 1, 'the block candidate went to the node all the same');
  await until(() => kinds.includes('candidate') && shareLog.stats().appended.blocks === kinds.length, 3000, 'the block candidate to be recorded');
  assert.equal(pool.stats.shares.accepted, 0, 'not counted as an accepted share');
  assert.equal(c.closed, false, 'not treated as abuse');
  c.close();
});

// ---- what an operator sees: /health/ready and /metrics ---------------------------------------------------------

test('readiness and metrics show the writer down, the backlog, the oldest unsent share and the storage refusing shares', async (t) => {
  const { buildApi } = await import('../src/api/app.ts');
  const { createMetrics } = await import('../src/api/metrics.ts');
  const { emptyOutcomeCounts } = await import('../src/shares/outcome.ts');
  const dir = tmp(t);
  const w = new FakeWriter();
  let failReads = 0;
  const log = open(dir, w, {
    queueCapacity: 5, segmentBytes: 4096, budget: { maxBytes: 32 * 1024, blockMarginBytes: 8 * 1024 },
    io: { openRead: (file) => (failReads > 0 ? Promise.reject(errno('EIO')) : fs.promises.open(file, 'r')) },
  });
  t.after(() => log.close());
  const pool = {
    connections: 0, authorizedSessions: 0, shares: emptyOutcomeCounts(), blocks: emptyBlockCounters(),
    blockResults: {}, lastBlock: null, template: { height: 1, ageMs: 1 }, network: { height: 0, difficulty: 1 }, draining: false,
  };
  const app = buildApi({
    stats: {} as never, pool: () => pool,
    metrics: createMetrics({ pool: () => pool, ingest: () => log.stats() }, { defaultMetrics: false }),
    health: { db: async () => {}, node: async () => ({ synced: true, height: 0 }), templateAgeMs: () => 1, draining: () => false, ingest: () => log.stats() },
  }, { docs: false });
  t.after(() => app.close());
  const ready = async () => { const r = await app.inject('/health/ready'); return { status: r.statusCode, body: r.json() as { failing: string[]; checks: { ingest: { error?: string; writerUp: boolean; acceptingShares: boolean; backlogBytes: number; oldestUnsentAgeMs: number | null } } } }; };
  const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec((await app.inject('/metrics')).body)?.[1]);

  assert.equal((await ready()).status, 200);
  assert.equal(await metric('hashhub_ingest_writer_up'), 1);
  assert.equal(await metric('hashhub_storage_refusing_shares'), 0);

  // The database is down and the spool fills its budget; then the spool cannot be read.
  w.down = true;
  for (let i = 0; i < 5; i++) log.appendShare(share());
  // The queue (5) is full: this one and the rest go to the spool, which the writer then cannot read.
  log.appendShare(share({ time: Date.now() - 60_000 }));
  while (log.admitShare().accepting) log.appendShare(share());
  failReads = 1;
  w.down = false;
  await until(() => !log.stats().writerUp, 5000, 'the writer to fail reading');
  const r = await ready();
  assert.equal(r.status, 503);
  assert.deepEqual(r.body.failing, ['ingest']);
  assert.match(r.body.checks.ingest.error ?? '', /ingest writer down: cannot read the spool: EIO.*refusing shares: spool budget reached/);
  assert.equal(r.body.checks.ingest.writerUp, false);
  assert.equal(r.body.checks.ingest.acceptingShares, false);
  assert.ok(r.body.checks.ingest.backlogBytes > 16 * 1024);
  assert.ok((r.body.checks.ingest.oldestUnsentAgeMs ?? 0) >= 60_000);
  assert.equal(await metric('hashhub_ingest_writer_up'), 0);
  assert.equal(await metric('hashhub_storage_refusing_shares'), 1);
  assert.ok((await metric('hashhub_ingest_oldest_unsent_seconds')) >= 60);
  assert.ok((await metric('hashhub_spool_budget_used_ratio')) >= 0.99);
  assert.ok((await metric('hashhub_shares_refused_total')) >= 1);
  assert.ok((await metric('hashhub_spool_bytes')) > 16 * 1024);

  // Reads work again: the writer drains the spool, shares are accepted, ready again.
  failReads = 0;
  assert.ok(await log.waitIdle(10_000));
  await until(() => log.admitShare().accepting, 3000, 'room again');
  assert.equal((await ready()).status, 200);
  assert.equal(await metric('hashhub_ingest_oldest_unsent_seconds'), 0);
});

/** w, recording every watermark that passes a share appended (to `appended`) and not yet stored (in `lies`). */
function watermarkChecked(w: FakeWriter) {
  const appended: ShareEvent[] = [];
  const lies: string[] = [];
  const watermarked: ShareWriter = {
    writeShares: (b) => w.writeShares(b), writeBlock: (b) => w.writeBlock(b), ping: () => w.ping(),
    recordWatermark: async (_source, at) => {
      for (const s of appended) if (!w.shares.has(s.id) && s.time < at) lies.push(`watermark ${at} passed ${s.id} at ${s.time}, not stored`);
    },
  };
  return { appended, lies, watermarked };
}

test('the watermark does not pass spooled shares not yet read back when a newer event had to wait in memory', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const { appended, lies, watermarked } = watermarkChecked(w);
  let failing = false;
  const log = open(dir, watermarked, {
    queueCapacity: 5, watermarkMs: 0,
    io: { write: (fd, buf, off, len) => { if (failing) throw errno('EIO'); return fs.writeSync(fd, buf, off, len); } },
  });
  w.down = true;
  // The database is down: 5 shares wait in memory, the rest only in the spool (read back later).
  const old = Date.now() - 60_000;
  for (let i = 0; i < 30; i++) { const s = share({ time: old + i }); appended.push(s); log.appendShare(s); }
  // Then the spool cannot be written either: a block event (always kept) waits in memory, behind the 5.
  failing = true;
  log.appendBlock(block(7));
  failing = false;
  await new Promise((r) => setTimeout(r, 100)); // the writer's batches fail meanwhile, and are retried
  w.down = false;
  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.shares.size, 30);
  assert.ok(w.blocks.has(block(7).hash));
  assert.deepEqual(lies, []);
  await log.close();
});

test('the watermark follows shares, not a block status queued ahead of an older share', async (t) => {
  // Failed before: the watermark after a batch was the time of the queue's head, a block status stamped a
  // millisecond ahead (a block's statuses get strictly increasing times), with a share of the millisecond before
  // it behind: the watermark passed that share before it was stored.
  const dir = tmp(t);
  const w = new FakeWriter();
  const { appended, lies, watermarked } = watermarkChecked(w);
  const log = open(dir, watermarked, { batchMax: 1, watermarkMs: 0 });
  w.down = true;
  const at = Date.now() - 60_000;
  const add = (time: number) => { const s = share({ time }); appended.push(s); log.appendShare(s); };
  add(at);
  log.appendBlock({ kind: 'status', time: at + 11, hash: 'ee'.repeat(32), status: 'pending', result: null, confirmations: 1, settled: false });
  add(at + 10);
  await new Promise((r) => setTimeout(r, 50));
  w.down = false;
  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.shares.size, 2);
  assert.deepEqual(lies, []);
  await log.close();
});

test('the watermark does not follow a spooled block event\'s own time (a block header\'s) past shares not yet read back', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const { appended, lies, watermarked } = watermarkChecked(w);
  const log = open(dir, watermarked, { queueCapacity: 5, batchMax: 10, watermarkMs: 0 });
  w.down = true;
  const old = Date.now() - 60_000;
  const add = (i: number) => { const s = share({ time: old + i }); appended.push(s); log.appendShare(s); };
  // 5 shares queued; then 9 shares and a block event only in the spool, the block last in the writer's first read
  // back (10 lines); then 20 more shares. The block event carries a time two hours ahead, as a block header may.
  for (let i = 0; i < 14; i++) add(i);
  log.appendBlock({ ...block(8), time: Date.now() + 2 * 3600_000 });
  for (let i = 14; i < 34; i++) add(i);
  await new Promise((r) => setTimeout(r, 100));
  w.down = false;
  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.shares.size, 34);
  assert.deepEqual(lies, []);
  await log.close();
});

test('close() reports a block held only in memory that the writer gave up on at the deadline', async (t) => {
  // Failed before: the block was in the batch being retried, no longer counted as waiting, and its loss went unsaid.
  const dir = tmp(t);
  const cap = capture();
  const w = new FakeWriter();
  w.down = true;
  let failing = false;
  const log = open(dir, w, {
    logger: cap.logger, closeTimeoutMs: 300, watermarkMs: 0,
    io: { write: (fd, buf, off, len) => { if (failing) throw errno('EIO'); return fs.writeSync(fd, buf, off, len); } },
  });
  failing = true;
  log.appendBlock(block(9));
  failing = false;
  await until(() => w.blocks.size === 0 && log.stats().writeErrors > 0, 3000, 'the writer retrying the block');
  await log.close();
  assert.equal(cap.count(/held only in memory.*lost/), 1);
});

test('the spool: a checkpoint at the head\'s end does not delete that segment once it fills and rotates while an older segment is being removed', async (t) => {
  const dir = tmpDir(t, 'hashhub-spool-cp-');
  const line = (i: number) => `{"n":${i},"pad":"${'x'.repeat(40)}"}\n`;
  let appendDuringRemove: (() => void) | null = null;
  const spool = new Spool(dir, {
    segmentBytes: 100, fsyncMs: 60_000,
    io: { remove: async (file) => { appendDuringRemove?.(); appendDuringRemove = null; await fs.promises.rm(file, { force: true }); } },
  });
  t.after(() => spool.close());
  spool.append(line(1));
  spool.append(line(2)); // segment 1 is full
  spool.append(line(3)); // segment 2, the head
  assert.equal(spool.head.seg, 2);
  const cp = { ...spool.head };
  // While segment 1's file is removed, line 4 goes into segment 2 and line 5 rotates to segment 3.
  appendDuringRemove = () => { spool.append(line(4)); spool.append(line(5)); };
  await spool.setCheckpoint(cp);
  assert.equal(appendDuringRemove, null, 'the appends ran during a removal');
  assert.equal(spool.head.seg, 3);
  const r = await spool.read(cp, 100);
  assert.deepEqual(r.lines.map((l) => JSON.parse(l.text).n), [4, 5], 'the lines after the checkpoint read back');
  assert.ok(fs.existsSync(path.join(dir, '000000000002.spool')), 'segment 2 holds line 4: not deleted');
  assert.ok(!fs.existsSync(path.join(dir, '000000000001.spool')), 'segment 1 is wholly before the checkpoint: deleted');
});
