import { type TestContext, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import pino from 'pino';
import fc from 'fast-check';
import { SHARE_ROW_PREFIX, decodeLine, encodeShare } from '../src/ingest/codec.ts';
import { DurableShareLog, type DurableShareLogOptions, copyBody } from '../src/ingest/durable-log.ts';
import { AnswerGate } from '../src/pool/answer-gate.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { StratumSession } from '../src/stratum/session.ts';
import type { BlockEvent, ShareEvent } from '../src/shares/events.ts';
import type { ShareRowMeta, ShareWriter, WriteResult } from '../src/store/types.ts';
import { stubHost } from './helpers/stub-host.ts';
import { tmpDir } from './helpers/tmp-dir.ts';

// The spool written once per event-loop turn (batchAppends): one write(2) for a turn's shares, blocks at once
// with the shares before them, exact positions (the checkpoint), a failed turn write falling back to one write
// per line, and the pool's answers held until the turn's lines are written.

class FakeWriter implements ShareWriter {
  readonly shares = new Map<string, ShareEvent>();
  readonly deliveries = new Map<string, number>();
  readonly blocks: string[] = [];
  down = false;
  async writeShares(batch: readonly ShareEvent[]): Promise<WriteResult> {
    await new Promise((r) => setImmediate(r));
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    for (const s of batch) {
      this.deliveries.set(s.id, (this.deliveries.get(s.id) ?? 0) + 1);
      this.shares.set(s.id, s);
    }
    return { inserted: batch.length, duplicates: 0 };
  }
  async writeBlock(b: BlockEvent): Promise<void> {
    if (this.down) throw new Error('down');
    if (b.kind === 'candidate') this.blocks.push(b.hash);
  }
  async ping(): Promise<void> {}
}

const tmp = (t: TestContext): string => tmpDir(t, 'hashhub-spool-batch-');

let n = 0;
function share(over: Partial<ShareEvent> = {}): ShareEvent {
  n++;
  return {
    id: `b-${n}`, time: 1_900_000_000_000 + n, account: 'acct', worker: `w${n % 3}`, sessionId: String(n % 7), remoteAddress: '10.0.0.1',
    jobId: (n % 16).toString(16), height: 800_000, outcome: 'accepted', poolDifficulty: 1, shareDifficulty: 2, block: false, ...over,
  };
}

function block(i: number): Extract<BlockEvent, { kind: 'candidate' }> {
  return {
    kind: 'candidate', time: 1_900_000_000_000 + i, height: 800_000 + i, hash: i.toString(16).padStart(64, '0'), prevHash: '00'.repeat(32),
    account: 'acct', worker: 'w1', reward: 625_000_000n, blockHex: 'ab'.repeat(500),
  };
}

/**
 * A batched log whose spool writes are recorded (each write(2) as the text it wrote). A turn's lines wait for its end
 * however long it takes (appendWaitMs), unless a test says otherwise: the counts of writes below do not depend on
 * how fast this machine appends.
 */
function open(dir: string, writer: ShareWriter, writes: string[], over: Partial<DurableShareLogOptions> = {}): DurableShareLog {
  return new DurableShareLog({
    dir, writer, logger: pino({ level: 'silent' }), flushMs: 10, batchMax: 200, retryMinMs: 10, retryMaxMs: 50, fsyncMs: 50, batchAppends: true,
    appendWaitMs: Infinity,
    io: { write: (fd, buf, off, len) => { writes.push(buf.toString('utf8', off, off + len)); return fs.writeSync(fd, buf, off, len); } },
    ...over,
  });
}

/** Keep the event loop busy for `ms`, as a turn of hundreds of shares does. */
function longTurn(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy */ }
}

const spooled = (log: DurableShareLog) => new Promise<void>((resolve) => { assert.ok(log.whenSpooled(() => resolve()), 'lines are waiting'); });
const idsIn = (text: string) => text.split('\n').filter((l) => l.length > 0).map((l) => decodeLine(l))
  .flatMap((e) => (e.kind === 'share' ? [e.event.id] : []));

test('batched: a turn\'s shares are one write, in order, before whenSpooled calls back; a block writes the shares before it at once', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const writes: string[] = [];
  const log = open(dir, w, writes);
  t.after(() => log.close());
  assert.equal(log.whenSpooled(() => assert.fail('nothing was waiting')), false);
  const sent = Array.from({ length: 100 }, () => share());
  for (const s of sent) log.appendShare(s);
  assert.equal(writes.length, 0, 'nothing written within the turn');
  assert.equal(log.idle, false);
  await spooled(log);
  assert.equal(writes.length, 1, 'one write for the turn');
  assert.deepEqual(idsIn(writes[0]), sent.map((s) => s.id));

  const more = [share(), share(), share()];
  for (const s of more) log.appendShare(s);
  log.appendBlock(block(1));
  assert.equal(writes.length, 3, 'the shares (one write) then the block, synchronously');
  assert.deepEqual(idsIn(writes[1]), more.map((s) => s.id));
  assert.match(writes[2], /"candidate"|0{63}1/);
  assert.equal(log.whenSpooled(() => undefined), false, 'nothing left waiting after the block');

  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.shares.size, 103);
  assert.ok([...w.deliveries.values()].every((c) => c === 1));
  assert.deepEqual(w.blocks, [block(1).hash]);
});

test('batched: a line that has waited appendWaitMs is written with the next append, mid-turn, and its answers released then', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const writes: string[] = [];
  const log = open(dir, w, writes, { appendWaitMs: 2 });
  t.after(() => log.close());
  const first = share();
  log.appendShare(first);
  let released = false;
  assert.ok(log.whenSpooled(() => { released = true; }));
  // The turn goes on (hundreds of shares, a database batch): past 2 ms the next append writes what waits.
  longTurn(5);
  const second = share();
  log.appendShare(second);
  assert.equal(writes.length, 1, 'written within the turn');
  assert.deepEqual(idsIn(writes[0]), [first.id, second.id]);
  assert.equal(released, true, 'the answers waiting for those lines are released at once');
  const third = share();
  log.appendShare(third);
  assert.equal(writes.length, 1, 'a line that has not waited stays for the turn\'s end');
  await spooled(log);
  assert.equal(writes.length, 2);
  assert.deepEqual(idsIn(writes[1]), [third.id]);
  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.shares.size, 3);
});

test('batched: line positions are exact with multi-byte characters (the checkpoint reaches the end, nothing pending)', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const writes: string[] = [];
  const log = open(dir, w, writes);
  for (let i = 0; i < 50; i++) log.appendShare(share({ worker: i % 2 ? 'wörker-✓' : 'rig😀' }));
  await spooled(log);
  for (let i = 0; i < 50; i++) log.appendShare(share());
  await spooled(log);
  assert.equal(writes.length, 2);
  assert.ok(await log.waitIdle(10_000), 'idle: the checkpoint covers the last line');
  assert.equal(log.stats().spoolBytes, 0, 'no byte after the checkpoint');
  assert.equal(w.shares.size, 100);
  await log.close();
});

test('batched: a failed turn write falls back to one write per line; nothing is lost; close writes what is waiting', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter();
  const writes: string[] = [];
  let fail = 1;
  const inner: string[] = [];
  const log = open(dir, w, writes, {
    io: {
      write: (fd, buf, off, len) => {
        if (fail-- > 0) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        inner.push(buf.toString('utf8', off, off + len));
        return fs.writeSync(fd, buf, off, len);
      },
    },
  });
  const sent = Array.from({ length: 10 }, () => share());
  for (const s of sent) log.appendShare(s);
  await spooled(log);
  assert.equal(inner.length, 10, 'one write per line after the failed turn write');
  assert.deepEqual(inner.map((l) => idsIn(l)[0]), sent.map((s) => s.id));
  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.shares.size, 10);
  assert.equal(log.stats().spoolErrors, 0, 'every line made it to the spool');

  // Appended, then closed in the same turn: the lines are in the spool and a restart replays them.
  w.down = true;
  const last = Array.from({ length: 5 }, () => share());
  for (const s of last) log.appendShare(s);
  await log.close();
  const w2 = new FakeWriter();
  const again = open(dir, w2, []);
  assert.ok(await again.waitIdle(10_000));
  for (const s of last) assert.ok(w2.shares.has(s.id), `${s.id} replayed after close`);
  await again.close();
});

/** A batched log with its spool writes recorded, an AnswerGate on it, and a connected socket pair (srv: the pool's side). */
async function gatedSocket(t: TestContext, over: Partial<DurableShareLogOptions> = {}) {
  const writes: string[] = [];
  const log = open(tmp(t), new FakeWriter(), writes, over);
  t.after(() => log.close());
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => server.close());
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.after(() => client.destroy());
  const srv = await accepted;
  t.after(() => srv.destroy());
  return { writes, log, client, srv, gate: new AnswerGate(log) };
}

test('AnswerGate: the answer to a share leaves the socket only after the turn\'s spool write', async (t) => {
  const { writes, log, client, srv, gate } = await gatedSocket(t);

  const s = share();
  log.appendShare(s);
  gate.hold(srv);
  const answer = '{"id":1,"result":true,"error":null}\n';
  srv.write(answer);
  assert.equal(srv.writableLength, answer.length, 'the answer waits (corked) while the share is not written');
  assert.equal(gate.size, 1);
  const received = new Promise<string>((r) => client.once('data', (d) => r(d.toString())));
  await new Promise<void>((resolve) => {
    log.whenSpooled(() => {
      assert.equal(writes.length, 1, 'the share was written before this callback');
      assert.equal(srv.writableLength, 0, 'and the answer was handed to the kernel right after it');
      resolve();
    });
  });
  assert.equal(gate.size, 0);
  assert.match(await received, /"result":true/);

  // Nothing waiting: the gate does not hold the answer.
  gate.hold(srv);
  srv.write('x\n');
  assert.equal(srv.writableLength, 0);
});

test('AnswerGate with a write inside the turn: released once its lines are written, held again for the next ones', async (t) => {
  const { writes, log, srv, gate } = await gatedSocket(t, { appendWaitMs: 1 });
  const answer = (i: number) => `{"id":${i},"result":true,"error":null}\n`;
  log.appendShare(share());
  gate.hold(srv);
  srv.write(answer(1));
  assert.equal(srv.writableLength, answer(1).length, 'held while its line waits');
  longTurn(3);
  log.appendShare(share()); // the first line has waited 1 ms: both are written now, and the socket released
  assert.equal(writes.length, 1);
  assert.equal(srv.writableLength, 0, 'the first answer left once its line was written');
  gate.hold(srv); // its line is written already: not held
  srv.write(answer(2));
  assert.equal(srv.writableLength, 0);
  log.appendShare(share());
  gate.hold(srv);
  srv.write(answer(3));
  assert.equal(srv.writableLength, answer(3).length, 'held again: the third line waits for the turn\'s end');
  await spooled(log);
  assert.equal(writes.length, 2);
  assert.equal(srv.writableLength, 0);
  assert.equal(gate.size, 0);
});

test('a session closed by the pool with accepted answers held: they leave after the turn\'s spool write, not at the close', async (t) => {
  const { writes, log, client, srv, gate } = await gatedSocket(t);
  // What the pool does for an accepted share: append it, hold the socket's answers until the spool write.
  let shareSeen!: () => void;
  const handled = new Promise<void>((r) => { shareSeen = r; });
  const host = stubHost((sess) => { log.appendShare(share()); gate.hold(sess.socket); shareSeen(); });
  const session = new StratumSession('1', srv, Buffer.from('aabbccdd', 'hex'), host, { ...DEFAULT_STRATUM_OPTIONS });
  session.subscribed = true;
  session.workers.set({ name: 'acct.w1', account: 'acct', worker: 'w1' });
  const answered = new Promise<string>((r) => client.once('data', (d) => r(d.toString())));
  const ended = new Promise<void>((r) => client.once('end', () => r()));
  client.write('{"id":7,"method":"mining.submit","params":["acct.w1","j1","0000000000000000","66000000","00000001"]}\n');
  // The pool closes the session in the same turn as the share (a shutdown, a move, a slow reader shed): this runs
  // in the microtasks right after the read that handled the share (its answer written, corked), before the turn's
  // end. (Not a 'data' listener beside the session's: the socket reads into the shared buffer, with no data events.)
  await handled;
  assert.equal(writes.length, 0, 'the turn\'s spool write is still to come');
  session.close('shutdown');
  // Before: end() uncorked the socket here, and the answer went to the kernel ahead of the spool write.
  assert.ok(srv.writableLength > 0, 'the answer is still held at the close');
  await ended;
  assert.equal(writes.length, 1, 'the share was written');
  assert.match(await answered, /"id":7/, 'and the miner got its answer, then the end');
});

/** A writer that takes COPY rows (as the SQL store does) and keeps the text it was given, batch by batch. */
class RowWriter extends FakeWriter {
  readonly rowTexts: string[] = [];
  readonly metaIds: string[][] = [];
  bodiesAsBytes = 0;
  async writeShareRows(metas: readonly ShareRowMeta[], rows: string | Uint8Array): Promise<WriteResult> {
    await new Promise((r) => setImmediate(r));
    if (typeof rows !== 'string') this.bodiesAsBytes++;
    this.rowTexts.push(typeof rows === 'string' ? rows : Buffer.from(rows).toString('utf8'));
    this.metaIds.push(metas.map((m) => `${m.sessionId}/${m.worker}/${m.time}`));
    return { inserted: metas.length, duplicates: 0 };
  }
}

test('batched: the rows handed to COPY are the spool lines as written, in order (turns of one share and of many, multi-byte names)', async (t) => {
  const dir = tmp(t);
  const w = new RowWriter();
  const writes: string[] = [];
  const log = open(dir, w, writes);
  const sent: ShareEvent[] = [];
  const append = (s: ShareEvent) => { sent.push(s); log.appendShare(s); };
  for (const turn of [1, 7, 1, 1, 30, 2, 1]) {
    for (let i = 0; i < turn; i++) append(share({ worker: i % 3 === 1 ? 'wörker-✓' : i % 3 === 2 ? 'rig😀' : `w${i}` }));
    await spooled(log);
  }
  assert.ok(await log.waitIdle(10_000));
  assert.equal(w.rowTexts.join(''), sent.map((s) => encodeShare(s)).join(''), 'every row once, exactly as spooled, in order');
  assert.deepEqual(w.metaIds.flat(), sent.map((s) => `${s.sessionId}/${s.worker}/${s.time}`));
  assert.ok(w.rowTexts.length < sent.length, 'rows went in batches');
  assert.ok(w.bodiesAsBytes > 0, 'the rows of a turn of several shares are handed over where the spool wrote them');
  await log.close();
});

test('copyBody: rows as text and as places in spool writes give the same COPY text, whatever their mix', () => {
  const row = fc.array(fc.constantFrom('a', '7', '\t', '\\N', 'ü', '✓', '😀'), { maxLength: 12 }).map((p) => SHARE_ROW_PREFIX + p.join(''));
  // Writes: each a run of lines in one Buffer; a row is text, or its place in one of them.
  // Each line of a write is handed over as text, as its place in the write, or not at all (rows of one write that
  // are not next to each other must not be taken as one piece).
  const how = fc.constantFrom('text', 'bytes', 'bytes', 'skipped');
  fc.assert(fc.property(fc.array(fc.array(fc.tuple(row, how), { minLength: 1, maxLength: 6 }), { maxLength: 5 }), (writes) => {
    const rows: Parameters<typeof copyBody>[0][number][] = [];
    let expected = '';
    for (const lines of writes) {
      const pad = Buffer.from('xx');
      const bytes = Buffer.concat([pad, Buffer.from(lines.map(([r]) => r + '\n').join(''), 'utf8')]).subarray(pad.length);
      let off = 0;
      for (const [r, as] of lines) {
        const len = Buffer.byteLength(r, 'utf8');
        if (as !== 'skipped') {
          rows.push(as === 'text' ? r : { bytes, off, len });
          expected += r + '\n';
        }
        off += len + 1;
      }
    }
    const body = copyBody(rows);
    assert.equal(typeof body === 'string' ? body : body.toString('utf8'), expected);
    if (rows.every((r) => typeof r === 'string')) assert.equal(typeof body, 'string');
  }), { numRuns: 300 });
});

test('read back from the spool (a full queue): the rows handed to COPY are the bytes read, exactly and in order, across a read chunk', async (t) => {
  const dir = tmp(t);
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  class GatedRowWriter extends RowWriter {
    readonly bodyBytes: number[] = [];
    override async writeShareRows(metas: readonly ShareRowMeta[], rows: string | Uint8Array): Promise<WriteResult> {
      await gate;
      this.bodyBytes.push(typeof rows === 'string' ? Buffer.byteLength(rows) : rows.length);
      return super.writeShareRows(metas, rows);
    }
  }
  const w = new GatedRowWriter();
  const writes: string[] = [];
  // A queue of 50: the rest is read back from the spool, up to 8,000 lines at once (more than the spool's 1 MB read).
  const log = open(dir, w, writes, { queueCapacity: 50, batchMax: 8000 });
  const sent: ShareEvent[] = [];
  const long = 'x'.repeat(60);
  for (let turn = 0; turn < 80; turn++) {
    if (turn === 70) log.appendBlock(block(1));
    for (let i = 0; i < 100; i++) {
      // Names long enough to be slices of the line when decoded, within the row's caps (NAME_CAPS).
      const s = share({ account: `acct-${long}`, worker: i % 3 === 1 ? `wörker-✓-${long.slice(20)}` : i % 3 === 2 ? 'rig😀' : `w${i}`, sessionId: `session-${turn % 4}-${long}` });
      sent.push(s);
      log.appendShare(s);
    }
    await spooled(log);
  }
  release();
  assert.ok(await log.waitIdle(20_000));
  assert.equal(w.rowTexts.join(''), sent.map((s) => encodeShare(s)).join(''), 'every row once, exactly as spooled, in order');
  assert.deepEqual(w.metaIds.flat(), sent.map((s) => `${s.sessionId}/${s.worker}/${s.time}`));
  assert.deepEqual(w.blocks, [block(1).hash]);
  assert.ok(w.rowTexts.length >= 3, `the queue's batch, then the read-back ones either side of the block (${w.rowTexts.length})`);
  assert.equal(w.bodiesAsBytes, w.rowTexts.length, 'rows read back are handed over as the bytes read, not as text');
  assert.ok(Math.max(...w.bodyBytes) > 1 << 20, `one read-back batch spans two of the spool's reads (${w.bodyBytes.join(', ')} bytes)`);
  await log.close();
});

test('batched: a queued share whose row does not read back goes to the dead-letter file with its row and meta, not its turn\'s bytes', async (t) => {
  const dir = tmp(t);
  const w = new FakeWriter(); // no writeShareRows: the writer needs the whole events back from the rows
  const writes: string[] = [];
  const log = open(dir, w, writes, { retryMinMs: 5, retryMaxMs: 10 });
  t.after(() => log.close());
  // The encoder writes any outcome; the decoder takes known ones only (a bug elsewhere could make such a share).
  const bad = share({ outcome: 'bogus' as ShareEvent['outcome'] });
  const good = [share(), share(), share()];
  for (const s of [good[0], bad, good[1], good[2]]) log.appendShare(s);
  await spooled(log);
  assert.equal(writes.length, 1, 'the four shares were one turn\'s write, queued where it lies');
  assert.ok(await log.waitIdle(5000), 'the writer is not stuck on the share it cannot read back');
  assert.deepEqual([...w.shares.keys()].sort(), good.map((e) => e.id).sort());
  const dead = fs.readFileSync(`${dir}/dead-letter.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(dead.length, 1);
  assert.match(dead[0].event.row, new RegExp(`^s3\\t${bad.id}\\t`), 'the row itself is kept');
  assert.deepEqual(Object.keys(dead[0].event).sort(), ['account', 'outcome', 'row', 'sessionId', 'time', 'worker'],
    'what the queue kept of the share, and nothing of the write its row lies in');
  assert.deepEqual({ ...dead[0].event, row: undefined }, { time: bad.time, account: bad.account, worker: bad.worker, sessionId: bad.sessionId, outcome: 'bogus', row: undefined });
});
