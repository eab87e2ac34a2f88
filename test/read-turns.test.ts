import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadTurns } from '../src/stratum/read-turns.ts';
import net from 'node:net';
import { READ_BUFFER_BYTES, readIntoShared } from '../src/stratum/read-into.ts';
import { floodMiner, floodPool } from './helpers/flood.ts';
import { LineClient, type Msg } from './helpers/line-client.ts';
import { FakeSocket } from './helpers/fake-socket.ts';
import { stubHost } from './helpers/stub-host.ts';
import { until } from './helpers/until.ts';
import { DEFAULT_STRATUM_OPTIONS, type StratumOptions } from '../src/stratum/options.ts';
import { StratumSession } from '../src/stratum/session.ts';

const nextImmediate = () => new Promise<void>((r) => setImmediate(r));

test('ReadTurns: waiting connections resume in arrival order, only while the turn budget lasts, at least one a turn', async () => {
  let now = 0;
  const turns = new ReadTurns(4, () => now);
  const order: string[] = [];
  // Each resumed connection spends 3 ms of the turn.
  const waiter = (name: string) => ({ resumeReads: () => { order.push(name); now += 3; } });
  assert.equal(turns.hasBudget(), true, 'a new phase has budget');
  now += 5;
  assert.equal(turns.hasBudget(), false, 'spent past its budget');
  for (const n of ['a', 'b', 'c', 'd', 'e']) turns.wait(waiter(n));
  await nextImmediate();
  assert.deepEqual(order, ['a', 'b'], 'a (3 ms) and b (6 ms: past the budget) at the first turn end');
  assert.equal(turns.waitingCount, 3);
  assert.equal(turns.hasBudget(), true, 'the next poll phase has a budget of its own');
  await nextImmediate();
  assert.deepEqual(order, ['a', 'b', 'c', 'd']);
  // A connection that still has more goes to the back of the line.
  turns.wait(waiter('a2'));
  await nextImmediate();
  assert.deepEqual(order, ['a', 'b', 'c', 'd', 'e', 'a2']);
  assert.equal(turns.waitingCount, 0);
  assert.equal(turns.deferredTurns, 2);

  // A connection that takes longer than the whole budget still lets the next one go in the following turn.
  const slow = new ReadTurns(1, () => now);
  const seen: string[] = [];
  slow.wait({ resumeReads: () => { seen.push('x'); now += 50; } });
  slow.wait({ resumeReads: () => { seen.push('y'); } });
  await nextImmediate();
  assert.deepEqual(seen, ['x']);
  await nextImmediate();
  assert.deepEqual(seen, ['x', 'y']);
});

test('past the turn budget, many connections flooding shares are all answered, in order, none dropped; the budget did engage', async () => {
  // A tiny budget, so that this flood (small for a real pool) goes past it many times.
  const { pool, port } = await floodPool(0.2);
  const clients: LineClient[] = [];
  try {
    const CONNS = 30;
    const PER_CONN = 200;
    const miners = await Promise.all(Array.from({ length: CONNS }, async (_, k) => {
      const m = await floodMiner(new LineClient(port, `127.0.1.${k + 1}`));
      clients.push(m.c);
      return m;
    }));
    const deferredBefore = pool.server.readTurns.deferredTurns;
    // Every connection sends all its shares in one write: the pool sees thousands of lines at once.
    for (const m of miners) m.c.send(m.shares(PER_CONN));
    for (const m of miners) {
      await m.c.waitFor((x: Msg) => x.id === 1000 + PER_CONN - 1, 30_000);
      const answers = m.c.messages.filter((x) => typeof x.id === 'number' && x.id >= 1000);
      assert.deepEqual(answers.map((x) => x.id), Array.from({ length: PER_CONN }, (_, i) => 1000 + i), 'every share answered once, in order');
      assert.ok(answers.length > 0 && answers.every((x) => x.result === true), 'every one accepted');
      assert.equal(m.c.closed, false);
    }
    assert.ok(pool.server.readTurns.deferredTurns > deferredBefore, 'connections waited for later turns');
  } finally {
    for (const c of clients) c.close();
    await pool.stop(100);
  }
});

test('a miner that sends shares and leaves while they wait for a turn: every one is still validated and recorded', async () => {
  // A zero budget: each phase of a turn handles one line, so nearly all of these wait when the peer leaves.
  const { pool, port, shareLog } = await floodPool(0);
  const recorded = new Set<string>();
  shareLog.onShare((e) => { if (e.outcome === 'accepted') recorded.add(e.id); });
  try {
    const { c, shares } = await floodMiner(new LineClient(port, '127.0.2.1'), 'acct.leaver');
    const N = 50;
    // All shares and the FIN in one go: the pool sees the end while most lines still wait.
    c.socket.end(shares(N));
    await c.waitClose(5000);
    const deadline = Date.now() + 5000;
    while (recorded.size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(recorded.size, N, 'every share the miner sent is recorded');
  } finally {
    await pool.stop(100);
  }
});

test('shutdown with shares still waiting for a turn: they are handled before the connection is closed', async () => {
  const { pool, port, shareLog } = await floodPool(0);
  const recorded = new Set<string>();
  shareLog.onShare((e) => { if (e.outcome === 'accepted') recorded.add(e.id); });
  let client: LineClient | undefined;
  let stopped = false;
  try {
    const { c, shares } = await floodMiner(new LineClient(port, '127.0.2.2'));
    client = c;
    const N = 400;
    c.send(shares(N));
    // Stop as soon as the pool has read all of them, while most still wait (a zero budget handles a line or two per
    // turn). No grace: the pool closes the connection in the same turn as it asks the miner to reconnect.
    const session = [...pool.server.sessions][0];
    assert.ok(session, 'the session is there');
    for (let turns = 0; session.socket.bytesRead < c.socket.bytesWritten; turns++) {
      assert.ok(turns < 10_000, 'the pool reads what the miner sent');
      await new Promise((r) => setImmediate(r));
    }
    await pool.stop(0);
    stopped = true;
    assert.equal(recorded.size, N, 'every share read before the close is recorded');
  } finally {
    client?.close();
    if (!stopped) await pool.stop(50);
  }
});

test('a connection waiting for its turn with more than a few lines held stops being read; at its turn it reads on and every line is answered, in order', async () => {
  let now = 0;
  const turns = new ReadTurns(5, () => now);
  const host = stubHost();
  const sock = new FakeSocket();
  const s = new StratumSession('1', sock as never, Buffer.from('aabbccdd', 'hex'), host, { ...DEFAULT_STRATUM_OPTIONS }, undefined, turns);
  const pings = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, k) => `{"id":${from + k},"method":"mining.ping","params":[]}\n`).join(''));
  const answered = () => sock.out.join('').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as Msg).id);
  sock.emit('data', pings(1, 1));
  assert.deepEqual(answered(), [1], 'within the budget: answered at once');
  now += 100; // this phase's budget is spent
  const chunk = pings(2, 40);
  assert.ok(chunk.length > 1024 && chunk.length < 16 * 1024, 'more than a few lines, less than the old 16 KB');
  sock.emit('data', chunk);
  assert.deepEqual(answered(), [1], 'waiting: nothing handled yet');
  // Before: read on until 16 KB were held (and Node's own 16 KB buffer after that).
  assert.equal(sock.isPaused(), true, 'the socket stops being read while the connection waits');
  await nextImmediate();
  assert.deepEqual(answered(), Array.from({ length: 41 }, (_, k) => k + 1), 'at its turn: every line, in order');
  assert.equal(sock.isPaused(), false, 'and the socket is read again');
  s.close('test');
});

/** A pool without message limits and one raw connection to it from `ip`, with the pool's side of it. */
async function oneConnection(ip: string, more: Partial<StratumOptions> = {}) {
  const { pool, port } = await floodPool(5, { messagesPerSecond: 1e9, messageBurst: 1e9, ...more });
  const c = new LineClient(port, ip);
  try {
    await c.connected();
    await until(() => pool.server.sessions.size === 1, 5000, 'the session');
  } catch (err) {
    c.close();
    await pool.stop(100);
    throw err;
  }
  return { pool, c, sock: [...pool.server.sessions][0].socket };
}

test('reading through data events (sharedReadBuffer false, as TLS does): a paused miner socket stops after the read under way, not 16 KB later', async () => {
  const { pool, c, sock } = await oneConnection('127.0.2.1', { sharedReadBuffer: false });
  try {
    assert.equal(sock.listenerCount('data'), 1, 'this session reads through data events');
    sock.pause();
    const line = (i: number) => `{"id":${i},"method":"mining.ping","params":["${'x'.repeat(50)}"]}\n`;
    // One line, read into the paused socket's buffer: with a one-byte high-water mark, that read stops reading.
    const before = sock.bytesRead;
    c.send(line(0));
    await until(() => sock.bytesRead > before, 5000, 'the first line read');
    const afterFirst = sock.bytesRead;
    // Then 40 KB more: it stays in the kernel. Before a5f91be, Node read on until its buffer held 16 KB (its default).
    for (let i = 1; i < 400; i++) c.send(line(i));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sock.bytesRead - afterFirst, 0, 'nothing more read while paused');
    sock.resume();
    await c.waitFor((m: Msg) => m.id === 399, 10_000);
    assert.equal(c.messages.filter((m) => m.result === 'pong').length, 400, 'every line answered once resumed');
  } finally {
    c.close();
    await pool.stop(100);
  }
});

test('readIntoShared leaves a socket that has a reader or bytes read already on its data path (they would never reach it)', async () => {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => { accepted.push(s); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const clients: net.Socket[] = [];
  try {
    const connect = async () => {
      const c = net.connect(port, '127.0.0.1');
      clients.push(c);
      await until(() => accepted.length === clients.length, 5000, 'accepted');
      return { c, s: accepted[accepted.length - 1] };
    };
    const onRead = () => assert.fail('not called');
    const a = await connect();
    a.s.on('data', () => {});
    assert.equal(readIntoShared(a.s, onRead), false, 'a socket with a data listener');
    const b = await connect();
    b.c.write('early\n');
    await until(() => b.s.readableLength > 0, 5000, 'bytes read into the socket');
    assert.equal(readIntoShared(b.s, onRead), false, 'a socket holding bytes it read');
    const d = await connect();
    const got: string[] = [];
    assert.equal(readIntoShared(d.s, function (this: net.Socket, n: number, buf: Buffer) { got.push(buf.toString('utf8', 0, n)); }), true, 'a fresh socket');
    d.c.write('fresh\n');
    await until(() => got.join('') === 'fresh\n', 5000, 'the bytes through onRead');
    assert.equal(readIntoShared(d.s, onRead), false, 'set up once only');
  } finally {
    for (const c of clients) c.destroy();
    for (const s of accepted) s.destroy();
    await new Promise((r) => server.close(r));
  }
});

test('a TCP miner socket reads into the one shared buffer (no Buffer per read), a paused one reads nothing', async () => {
  const { pool, c, sock } = await oneConnection('127.0.2.2');
  try {
    // This Node's sockets have what readIntoShared needs; if an upgrade takes it away, this says so (the pool
    // still works, reading through 'data' as before).
    assert.equal(sock.listenerCount('data'), 0, 'the session reads through the shared buffer, not through data events');
    sock.pause();
    const before = sock.bytesRead;
    const line = (i: number) => `{"id":${i},"method":"mining.ping","params":[]}\n`;
    for (let i = 0; i < 200; i++) c.send(line(i));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sock.bytesRead - before, 0, 'nothing read while paused');
    sock.resume();
    await c.waitFor((m: Msg) => m.id === 199, 10_000);
    const ids = c.messages.filter((m) => m.result === 'pong').map((m) => m.id);
    assert.deepEqual(ids, Array.from({ length: 200 }, (_, i) => i), 'every line answered, in order');
  } finally {
    c.close();
    await pool.stop(100);
  }
});

test('closing a session whose peer stopped reading still handles every held line (a full write buffer during the drain does not cut it short)', async () => {
  let now = 0;
  const turns = new ReadTurns(5, () => now);
  const shares: string[] = [];
  const host = stubHost((_s, _w, _d, r) => { shares.push(r.outcome); });
  const sock = new FakeSocket();
  const s = new StratumSession('1', sock as never, Buffer.from('aabbccdd', 'hex'), host, { ...DEFAULT_STRATUM_OPTIONS }, undefined, turns);
  s.subscribed = true;
  s.workers.set({ name: 'acct.w1', account: 'acct', worker: 'w1' });
  const submits = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, k) =>
    `{"id":${from + k},"method":"mining.submit","params":["acct.w1","j1","0000000000000000","66000000","${(from + k).toString(16).padStart(8, '0')}"]}\n`).join(''));
  sock.emit('data', submits(1, 1));
  now += 100; // the turn's budget is spent: the next ten wait, held
  sock.emit('data', submits(2, 10));
  assert.equal(shares.length, 1);
  sock.writableLength = 1 << 30; // the peer stopped reading
  s.close('shutdown');
  // Before: the first held line's answer found the write buffer full and closed the session from inside the
  // drain, which stopped the framer: 2 handled, 9 dropped unhashed.
  assert.equal(shares.length, 11, 'every line the miner sent is handled');
});

test('a line split across reads, with other connections read into the shared buffer in between, arrives whole', async () => {
  const { pool, port } = await floodPool(5, { messagesPerSecond: 1e9, messageBurst: 1e9 });
  const a = new LineClient(port, '127.0.2.3');
  const b = new LineClient(port, '127.0.2.4');
  try {
    await Promise.all([a.connected(), b.connected()]);
    await until(() => pool.server.sessions.size === 2, 5000, 'both sessions');
    const sa = [...pool.server.sessions].find((s) => s.remoteAddress === '127.0.2.3')!.socket;
    // Longer than the shared read buffer, so it takes several reads however the kernel delivers it.
    const id = 'id-' + 'q'.repeat(60);
    const line = `{"id":"${id}","method":"mining.ping","params":["${'p'.repeat(READ_BUFFER_BYTES + 2000)}"]}\n`;
    const cuts = [20, 40, READ_BUFFER_BYTES + 100, line.length];
    let from = 0;
    let bId = 0;
    for (const cut of cuts) {
      const before = sa.bytesRead;
      a.send(line.slice(from, cut));
      from = cut;
      await until(() => sa.bytesRead >= before + 1, 5000, 'the piece read');
      // The other connection's bytes go through the same buffer before the next piece arrives.
      const mine = ++bId;
      b.send(`{"id":${mine},"method":"mining.ping","params":["${'z'.repeat(3000)}"]}\n`);
      await b.waitFor((m: Msg) => m.id === mine, 5000);
    }
    const answer = await a.waitFor((m: Msg) => m.id === id, 5000);
    assert.equal(answer.result, 'pong');
    assert.equal(a.messages.length, 1, 'one answer: the line was not cut into others');
    assert.equal(b.messages.filter((m) => m.result === 'pong').length, cuts.length);
  } finally {
    a.close();
    b.close();
    await pool.stop(100);
  }
});

test('the answers to a chunk of several lines leave together (the socket corked while they are handled); a chunk of one line is not corked', () => {
  class CorkSocket extends FakeSocket {
    depth = 0;
    corks = 0;
    corkedWrites: boolean[] = [];
    override cork() { this.depth++; this.corks++; }
    override uncork() { this.depth--; }
    override write(s: string | Buffer, cb?: () => void) { this.corkedWrites.push(this.depth > 0); return super.write(s, cb); }
  }
  const sock = new CorkSocket();
  const s = new StratumSession('1', sock as never, Buffer.from('aabbccdd', 'hex'), stubHost(), { ...DEFAULT_STRATUM_OPTIONS });
  const ping = (id: number) => `{"id":${id},"method":"mining.ping","params":[]}\n`;
  const answered = () => sock.out.join('').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as Msg).id);

  sock.emit('data', Buffer.from(ping(1)));
  assert.deepEqual(answered(), [1]);
  assert.equal(sock.corks, 0, 'one line: no cork (an answer written corked is buffered and written in a second pass)');

  const two = ping(2) + ping(3);
  sock.emit('data', Buffer.from(two + ping(4).slice(0, 10))); // two lines and the start of a third
  assert.deepEqual(answered(), [1, 2, 3]);
  assert.equal(sock.corks, 1, 'several lines: corked once');
  assert.deepEqual(sock.corkedWrites.slice(1), [true, true], 'both answers written while corked (one writev)');
  assert.equal(sock.depth, 0, 'and uncorked after');

  sock.emit('data', Buffer.from(ping(4).slice(10))); // the rest of the third: one line
  assert.deepEqual(answered(), [1, 2, 3, 4]);
  assert.equal(sock.corks, 1, 'the line completed by this chunk alone: no cork');
  s.close('test');
});
