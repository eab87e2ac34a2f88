import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import pino from 'pino';
import fc from 'fast-check';
import { encodeShare } from '../src/ingest/codec.ts';
import { DurableShareLog, type DurableShareLogOptions } from '../src/ingest/durable-log.ts';
import type { BlockEvent, ShareEvent } from '../src/shares/events.ts';
import type { IngestStats, ShareRowMeta, ShareWriter, WriteResult } from '../src/store/types.ts';
import { tmpDir } from './helpers/tmp-dir.ts';

// A batched DurableShareLog under random histories: turns of shares (multi-byte and escaped names, unauthorized
// shares, shares a COPY row cannot hold, spooled as JSON), block events mid-turn, tiny queues, batches and segments
// (read-back from the spool, rotation, deletion), a database that goes down, a write that commits and then throws,
// restarts on the same directory. Once the database is up and the log idle: every event reached the database, first
// deliveries in append order, no second delivery without an excuse, every COPY row byte-identical to encodeShare
// with a matching meta, and nothing lost, corrupt, dead-lettered or missing.

const RUNS = Number(process.env.HASHHUB_INGEST_PROPERTY_RUNS ?? 40);

const SHARE_KINDS = ['plain', 'plain', 'plain', 'multibyte', 'emoji', 'unauthorized', 'jsonTime', 'jsonHeight', 'found', 'escaped'] as const;
type ShareKind = (typeof SHARE_KINDS)[number];

let n = 0;
function share(kind: ShareKind): ShareEvent {
  n++;
  const s: ShareEvent = {
    id: `p-${n}`, time: 1_900_000_000_000 + n, account: 'acct', worker: `w${n % 3}`, sessionId: String(n % 7), remoteAddress: '10.0.0.1',
    jobId: (n % 16).toString(16), height: 800_000, outcome: n % 11 === 0 ? 'stale' : 'accepted', poolDifficulty: 0.001 * (1 + (n % 5)),
    shareDifficulty: 1 / (n + 0.5), block: false,
  };
  switch (kind) {
    case 'plain': return s;
    case 'multibyte': return { ...s, account: 'äccount', worker: 'wörker-✓' };
    case 'emoji': return { ...s, worker: 'rig😀', sessionId: `sess-😀-${n % 5}` };
    // The name the miner sent: its row holds it, its meta says '' (see entryOf).
    case 'unauthorized': return { ...s, account: '', worker: `stranger-${n}-ü`, outcome: 'unauthorized' };
    // A row cannot hold these: the line is the JSON form ('s2'), and even a rows writer gets the whole event.
    case 'jsonTime': return { ...s, time: s.time + 0.5 };
    case 'jsonHeight': return { ...s, height: 2 ** 60 };
    case 'found': return { ...s, block: true, blockHash: n.toString(16).padStart(64, '0'), nbits: 0x1703a30c };
    case 'escaped': return { ...s, worker: 'tab\there\\back', jobId: 'j\\1' };
  }
}

let b = 0;
function block(kind: BlockEvent['kind']): BlockEvent {
  const [time, hash] = [1_900_000_000_000 + ++b, `b${b}`.padStart(64, '0')];
  if (kind === 'answer') return { kind, time, hash, endpoint: 'node-1', answer: b % 2 ? null : 'duplicate' };
  if (kind === 'status') return { kind, time, hash, status: 'unconfirmed', result: null, confirmations: b % 3, settled: false };
  return { kind, time, height: 800_000 + b, hash, prevHash: '00'.repeat(32), account: 'acct', worker: 'wörker-✓', reward: 625_000_000n + BigInt(b), blockHex: 'ab'.repeat(40 + (b % 7) * 300) };
}
const blockKey = (e: BlockEvent) => `${e.kind}:${e.hash}`;

/**
 * A database that records what it is given. `epoch` grows at each thing that excuses a second delivery of what was
 * committed before it: a write that committed and then threw, a restart, and a failed write after another write of
 * the same batch committed (a batch is runs of shares and of block events, one call each; when one fails the whole
 * batch is retried, runs that committed included).
 */
class RecordingWriter implements ShareWriter {
  down = false;
  failAfterCommit = false;
  epoch = 0;
  /** A write of the batch in progress committed (cleared by the log's onWrite at each committed batch). */
  committedInBatch = false;
  calls = 0;
  readonly firstOrder: string[] = [];
  readonly problems: string[] = [];
  private readonly lastEpoch = new Map<string, number>();
  writeShareRows?: ShareWriter['writeShareRows'];
  writeBlocks?: ShareWriter['writeBlocks'];

  constructor(private readonly shares: Map<string, ShareEvent>, private readonly blocks: Map<string, BlockEvent>, rows: boolean, blockRuns: boolean) {
    if (rows) this.writeShareRows = (metas, body) => this.rows(metas, body);
    if (blockRuns) this.writeBlocks = (bs) => this.commit(bs.map((e) => this.blockSeen(e)));
  }

  private problem(p: string): void {
    if (this.problems.length < 10) this.problems.push(p); // enough to see what broke
  }

  private async commit(keys: string[]): Promise<void> {
    this.calls++;
    await new Promise((r) => setImmediate(r));
    if (this.down) {
      if (this.committedInBatch) this.epoch++;
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    }
    for (const k of keys) {
      const last = this.lastEpoch.get(k);
      if (last === undefined) this.firstOrder.push(k);
      else if (last >= this.epoch) this.problem(`${k} delivered again with nothing to excuse it`);
      this.lastEpoch.set(k, this.epoch);
    }
    this.committedInBatch = true;
    if (this.failAfterCommit) {
      [this.failAfterCommit, this.epoch] = [false, this.epoch + 1];
      throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
    }
  }

  async writeShares(batch: readonly ShareEvent[]): Promise<WriteResult> {
    for (const s of batch) if (!isDeepStrictEqual(s, this.shares.get(s.id))) this.problem(`${s.id} arrived changed: ${JSON.stringify(s)}`);
    await this.commit(batch.map((s) => s.id));
    return { inserted: batch.length, duplicates: 0 };
  }

  /** Metas are read at once, never kept (one may be the queue's own entry, holding its spool write's bytes). */
  private async rows(metas: readonly ShareRowMeta[], body: string | Uint8Array): Promise<WriteResult> {
    const bytes = Buffer.from(body);
    const ids = bytes.toString('utf8').split('\n').slice(0, -1).map((row) => row.split('\t')[1]);
    const sent = ids.map((id) => this.shares.get(id));
    if (ids.length !== metas.length) this.problem(`${ids.length} rows for ${metas.length} metas`);
    // Byte for byte what encodeShare wrote for each share, in order (newlines included).
    if (sent.some((s) => s === undefined) || !bytes.equals(Buffer.from(sent.map((s) => encodeShare(s!)).join('')))) this.problem(`rows differ: ${ids.join(',')}`);
    metas.forEach((m, i) => {
      const s = sent[i];
      const want = s && { time: s.time, account: s.account, worker: s.account === '' ? '' : s.worker, sessionId: s.sessionId, outcome: s.outcome, blockHash: s.blockHash };
      const got = { time: m.time, account: m.account, worker: m.worker, sessionId: m.sessionId, outcome: m.outcome, blockHash: m.blockHash };
      if (!isDeepStrictEqual(got, want)) this.problem(`meta of ${ids[i]}: ${JSON.stringify(got)}`);
    });
    await this.commit(ids);
    return { inserted: metas.length, duplicates: 0 };
  }

  private blockSeen(e: BlockEvent): string {
    if (!isDeepStrictEqual(e, this.blocks.get(blockKey(e)))) this.problem(`block ${blockKey(e)} arrived changed`);
    return blockKey(e);
  }

  writeBlock = (e: BlockEvent): Promise<void> => this.commit([this.blockSeen(e)]);
  async ping(): Promise<void> {}
}

type Turn = { shares: ShareKind[]; blocks: { at: number; kind: BlockEvent['kind'] }[]; end: 'spooled' | 'yield' | 'flush' | 'none' };
type Step = { kind: 'turn'; turn: Turn } | { kind: 'stream'; turns: Turn[] } | { kind: 'down' | 'up' | 'failAfterCommit' | 'restart' } | { kind: 'pause'; ms: number };

const turnArb = (shares: fc.Arbitrary<ShareKind[]>, blocks: number, end: fc.Arbitrary<Turn['end']>): fc.Arbitrary<Turn> => fc.record({
  shares, end,
  blocks: fc.array(fc.record({ at: fc.nat(), kind: fc.constantFrom('candidate' as const, 'answer' as const, 'status' as const) }), { maxLength: blocks }),
});
const kinds = (maxLength: number) => fc.array(fc.constantFrom(...SHARE_KINDS), { minLength: 1, maxLength, size: 'max' });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  // fast-check's default size would keep arrays to a dozen: a long turn is asked for (size 'max').
  // 'none': the next step runs in the same turn (its shares join this turn's write, or a restart's close writes them).
  { weight: 6, arbitrary: turnArb(fc.oneof({ weight: 2, arbitrary: kinds(12) }, { weight: 1, arbitrary: kinds(300) }), 3,
    fc.constantFrom('spooled' as const, 'yield' as const, 'flush' as const, 'none' as const)).map((turn): Step => ({ kind: 'turn', turn })) },
  // A live pool: a few shares a turn, a block event now and then, while the writer commits and deletes segments.
  { weight: 2, arbitrary: fc.array(turnArb(kinds(4), 2, fc.constant('yield' as const)), { minLength: 2, maxLength: 30 }).map((turns): Step => ({ kind: 'stream', turns })) },
  { weight: 2, arbitrary: fc.constantFrom<Step>({ kind: 'down' }, { kind: 'up' }) },
  { weight: 1, arbitrary: fc.constantFrom<Step>({ kind: 'failAfterCommit' }, { kind: 'restart' }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }).map((ms): Step => ({ kind: 'pause', ms })) },
);
const historyArb = fc.record({
  queueCapacity: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 100 })),
  batchMax: fc.integer({ min: 1, max: 100 }),
  // Often tiny (a block line or a few share lines fill one), so that segments rotate and are deleted within a history.
  segmentBytes: fc.oneof(fc.integer({ min: 400, max: 1024 }), fc.integer({ min: 400, max: 64 * 1024 })),
  flushMs: fc.integer({ min: 1, max: 20 }),
  appendWaitMs: fc.constantFrom(1, Infinity),
  rows: fc.boolean(),
  blockRuns: fc.boolean(),
  /** A slow disk: removing a finished segment takes this long while the history runs (appends go on meanwhile). */
  removeMs: fc.constantFrom(0, 0, 1, 4),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 10 }),
});

/**
 * Idle, or false after three seconds or more of polls with no call to the writer: a stuck writer fails a run quickly
 * (shrinking runs the failing history dozens of times), a slow machine (a spool read or a segment's sync taking a
 * second on a busy disk) still gets all the time it needs.
 */
async function settle(log: DurableShareLog, w: RecordingWriter): Promise<boolean> {
  for (let calls = -1, quiet = 0; !log.idle; await new Promise((r) => setTimeout(r, 2))) {
    if (w.calls !== calls) [calls, quiet] = [w.calls, 0];
    else if (++quiet > 1500) return false;
  }
  return true;
}

test('a batched share log under random histories delivers every event, in order, as spooled, and loses nothing', async (t) => {
  await fc.assert(fc.asyncProperty(historyArb, async (h) => {
    const dir = tmpDir(t, 'hashhub-spool-prop-');
    const [shares, blocks, appended] = [new Map<string, ShareEvent>(), new Map<string, BlockEvent>(), [] as string[]];
    const w = new RecordingWriter(shares, blocks, h.rows, h.blockRuns);
    let removeMs = h.removeMs;
    const opts: DurableShareLogOptions = {
      dir, writer: w, logger: pino({ level: 'silent' }), batchAppends: true, appendWaitMs: h.appendWaitMs,
      queueCapacity: h.queueCapacity, batchMax: h.batchMax, segmentBytes: h.segmentBytes, flushMs: h.flushMs,
      retryMinMs: 1, retryMaxMs: 10, fsyncMs: 1000, closeTimeoutMs: 20, watermarkMs: 0,
      onWrite: () => { w.committedInBatch = false; },
      io: { remove: async (file) => { if (removeMs > 0) await new Promise((r) => setTimeout(r, removeMs)); await fs.promises.rm(file, { force: true }); } },
    };
    const stats: IngestStats[] = [];
    let log = new DurableShareLog(opts);
    const runTurn = async (turn: Turn) => {
      turn.shares.forEach((kind, i) => {
        for (const x of turn.blocks.filter((x) => x.at % turn.shares.length === i)) {
          const e = block(x.kind);
          blocks.set(blockKey(e), e);
          appended.push(blockKey(e));
          log.appendBlock(e);
        }
        const s = share(kind);
        shares.set(s.id, s);
        appended.push(s.id);
        log.appendShare(s);
      });
      // whenSpooled is false when nothing waits (written mid-turn after appendWaitMs, or with a block).
      if (turn.end === 'spooled') await new Promise<void>((resolve) => { if (!log.whenSpooled(() => resolve())) resolve(); });
      else if (turn.end === 'yield') await new Promise((r) => setImmediate(r));
      else if (turn.end === 'flush') log.flushPending();
    };
    try {
      for (const step of h.steps) {
        if (step.kind === 'turn') await runTurn(step.turn);
        else if (step.kind === 'stream') for (const turn of step.turns) await runTurn(turn);
        else if (step.kind === 'down' || step.kind === 'up') w.down = step.kind === 'down';
        else if (step.kind === 'failAfterCommit') w.failAfterCommit = true;
        else if (step.kind === 'pause') await new Promise((r) => setTimeout(r, step.ms));
        else {
          await log.close();
          stats.push(log.stats());
          // What was committed but not checkpointed is replayed: a second delivery is excused.
          [w.epoch, w.committedInBatch] = [w.epoch + 1, false];
          log = new DurableShareLog(opts);
        }
      }
      // Slow removals matter only while appends go on: the catch-up runs at full speed.
      [w.down, w.failAfterCommit, removeMs] = [false, false, 0];
      assert.ok(await settle(log, w), 'the log catches up once the database is up');
      // A quiet pool's next share: the writer, idle, must wake for it.
      await runTurn({ shares: ['plain'], blocks: [], end: 'spooled' });
      assert.ok(await settle(log, w), 'a share appended to an idle log is written');
      const end = log.stats();
      assert.equal(end.spoolBytes, 0, 'the checkpoint is at the last line');
      assert.equal(end.spoolSegments, 1, 'finished segments are deleted (only the head is left)');
      assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.spool')).length, 1, 'and gone from the disk');
    } finally {
      await log.close();
      stats.push(log.stats());
    }
    assert.deepEqual(w.problems, []);
    assert.deepEqual(w.firstOrder, appended, 'every event delivered, first deliveries in append order');
    for (const st of stats) {
      assert.deepEqual(
        [st.lostShares, st.corruptLines, st.deadLettered, st.missingSegments, st.spoolErrors, st.readErrors, st.writerRestarts], [0, 0, 0, 0, 0, 0, 0],
        'lost shares, corrupt lines, dead-lettered, missing segments, spool errors, read errors, writer restarts',
      );
    }
    // Everything committed and checkpointed: a restart replays nothing (a delivery now would have no excuse).
    const again = new DurableShareLog(opts);
    const replayed = await settle(again, w).finally(() => again.close());
    assert.ok(replayed && w.problems.length === 0, `nothing delivered again after a clean close: ${w.problems.join('; ')}`);
  }), { numRuns: RUNS, includeErrorInReport: true });
});
