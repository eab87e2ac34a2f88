// getblocktemplate replies read on the template thread (src/node/template-thread.ts) against the same replies read
// on the event loop, over real HTTP from a fake node: the same jobs (block bytes checked against the transactions'
// own hex, the merkle branch against the merkle root of every txid), the same errors, and no template lost when
// the thread dies or hangs mid-read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { captureLogger } from './helpers/capture-logger.ts';
import { hashFromDisplay, merkleRoot, merkleRootFromBranch, sha256d, toHex } from '../src/chain/index.ts';
import { BitcoinRpc, RpcError } from '../src/node/rpc.ts';
import { TemplateThread } from '../src/node/template-thread.ts';
import type { BlockTemplate, TemplateTransaction } from '../src/node/types.ts';
import { buildJob } from '../src/shares/job.ts';

/** A node whose every answer is `reply` (status and raw body) at the time of the request. */
async function fakeNode(t: { after: (fn: () => Promise<void>) => void }) {
  const state = { status: 200, body: '' };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(state.status, { 'content-type': 'application/json' }).end(state.body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.after(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  return {
    url,
    answer(result: unknown) { state.status = 200; state.body = JSON.stringify({ result, error: null, id: 1 }); },
    raw(status: number, body: string) { state.status = status; state.body = body; },
  };
}

function template(transactions: TemplateTransaction[]): BlockTemplate {
  return {
    version: 0x20000000,
    rules: ['csv', '!segwit', 'taproot'],
    previousblockhash: '11'.repeat(32),
    transactions,
    coinbasevalue: 5_000_000_000 + transactions.length,
    longpollid: `lp${transactions.length}`,
    target: '7fffff' + '00'.repeat(29),
    mintime: 1_700_000_000,
    curtime: 1_700_000_100,
    bits: '207fffff',
    height: 500,
    default_witness_commitment: '6a24aa21a9ed' + '22'.repeat(32),
  };
}

/** A transaction from its bytes, txid = sha256d of them (display order), as a node would list it. */
function tx(bytes: Uint8Array): TemplateTransaction {
  const id = toHex(Buffer.from(sha256d(bytes)).reverse());
  return { data: toHex(bytes), txid: id, hash: id, fee: bytes.length };
}

const spec = { id: 'j1', extranonceSize: 8, tag: Buffer.from('hashhub'), now: 0, outputs: (v: bigint) => [{ value: v, scriptPubKey: Buffer.from('0014' + '33'.repeat(20), 'hex') }] };

function rpcs(t: { after: (fn: () => void) => void }, url: string) {
  const threaded = new BitcoinRpc({ endpoints: [{ url }], templateThread: true });
  const onLoop = new BitcoinRpc({ endpoints: [{ url }] });
  t.after(() => { threaded.close(); onLoop.close(); });
  return { threaded, onLoop };
}

test('a template read on the thread gives the job the transactions make: bytes, branch, notify line', async (t) => {
  const node = await fakeNode(t);
  const { threaded, onLoop } = rpcs(t, node.url);
  const check = async (txs: TemplateTransaction[]) => {
    node.answer(template(txs));
    const a = await threaded.getBlockTemplate();
    const b = await onLoop.getBlockTemplate();
    assert.equal(a.prepared?.count, txs.length);
    assert.equal(a.transactions.length, 0, 'the hex strings are dropped once prepared');
    const ja = buildJob(a, spec);
    const jb = buildJob(b, spec);
    // The block bytes are the transactions' own bytes, back to back, in template order.
    assert.deepEqual(ja.txs.bytes, Buffer.concat(txs.map((x) => Buffer.from(x.data, 'hex'))));
    assert.equal(ja.txs.count, txs.length);
    // The branch leads any coinbase txid to the merkle root of the whole block.
    const coinbaseTxid = sha256d(Buffer.from('any coinbase'));
    const all = [coinbaseTxid, ...txs.map((x) => hashFromDisplay(x.txid))];
    assert.deepEqual(merkleRootFromBranch(coinbaseTxid, ja.coinbase.branch), merkleRoot(all));
    assert.ok(ja.coinbase.branch.every((h) => Buffer.isBuffer(h)));
    assert.ok(Buffer.isBuffer(ja.txs.bytes));
    // …and the job is the one the event loop makes of the same answer.
    assert.deepEqual(ja.txs.bytes, jb.txs.bytes);
    assert.equal(ja.notifyBody, jb.notifyBody);
    assert.equal(a.longpollid, b.longpollid);
  };
  await fc.assert(fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 40 }), (list) => check(list.map(tx))), { numRuns: 40 });
  // A mempool-sized template: 3,000 transactions, a 12-level branch.
  await check(Array.from({ length: 3000 }, (_, i) => tx(Buffer.from(`transaction ${i} `.repeat(1 + (i % 20))))));
  assert.equal(threaded.templateThread?.stats.fallback, 0);
  assert.ok((threaded.templateThread?.stats.threaded ?? 0) >= 41, 'read on the thread, not on the event loop');
  // What /metrics exports (hashhub_template_reads_total): every read, on the thread or on the event loop.
  assert.deepEqual(threaded.templateReads, { thread: threaded.templateThread?.stats.threaded, eventLoop: 0 });
  assert.deepEqual(onLoop.templateReads, { thread: 0, eventLoop: threaded.templateThread?.stats.threaded });
  // A thread that is gone: its reads are counted where they happen, on the event loop.
  const before = threaded.templateReads;
  await threaded.templateThread!.close();
  node.answer(template([]));
  await threaded.getBlockTemplate();
  assert.deepEqual(threaded.templateReads, { thread: before.thread, eventLoop: 1 });
});

test('errors read on the thread are the errors read on the event loop', async (t) => {
  const node = await fakeNode(t);
  const { threaded, onLoop } = rpcs(t, node.url);
  const errorOf = async (rpc: BitcoinRpc) => {
    try {
      await rpc.getBlockTemplate();
    } catch (err) {
      assert.ok(err instanceof RpcError, String(err));
      return { kind: err.kind, message: err.message, code: err.code, retryable: err.retryable, status: err.httpStatus, rpcMessage: err.rpcMessage };
    }
    assert.fail('expected an error');
  };
  const good = tx(Buffer.from('a transaction'));
  const cases: Array<[string, () => void, RegExp]> = [
    ['an RPC error (warm-up, retryable)', () => node.raw(500, JSON.stringify({ result: null, error: { code: -28, message: 'Loading block index… ü' }, id: 1 })), /RPC error -28: Loading block index… ü/],
    ['HTTP 503', () => node.raw(503, 'Work queue depth exceeded'), /HTTP 503 Work queue depth exceeded/],
    ['not JSON', () => node.raw(200, '<html>proxy</html>'), /unreadable JSON-RPC answer/],
    ['a bad txid', () => node.answer(template([good, { ...good, txid: 'xyz' }])), /transactions\.1\.txid/],
    ['bits of the wrong type', () => node.answer({ ...template([]), bits: 7 }), /bits/],
  ];
  for (const [what, set, expected] of cases) {
    set();
    const a = await errorOf(threaded);
    const b = await errorOf(onLoop);
    assert.match(a.message, expected, what);
    assert.deepEqual(a, b, what);
  }
  // Bad hex is the job builder's verdict, as for a template read on the event loop.
  for (const [data, expected] of [['0g', /not hex/], ['abc', /odd-length/]] as const) {
    node.answer(template([good, { ...good, data }]));
    const a = await threaded.getBlockTemplate();
    const b = await onLoop.getBlockTemplate();
    assert.throws(() => buildJob(a, spec), expected);
    assert.throws(() => buildJob(b, spec), expected);
  }
  assert.equal(threaded.templateThread?.stats.fallback, 0);
});

/** The reply of a template of `n` transactions (distinct per `seed`), as the HTTP layer hands it over, and its block bytes. */
function reply(n = 2, seed = 0) {
  const txs = Array.from({ length: n }, (_, i) => tx(Buffer.from(`transaction ${seed}.${i} `.repeat(1 + (i % 20)))));
  const body = Buffer.from(JSON.stringify({ result: template(txs), error: null, id: 1 }));
  return { chunks: [body.subarray(0, 100), body.subarray(100)], size: body.length, bytes: Buffer.concat(txs.map((x) => Buffer.from(x.data, 'hex'))) };
}

type Inner = { worker: { postMessage: (m: unknown) => void; terminate: () => Promise<number> } | null };

test('a thread that dies or hangs with a read costs no template: the event loop reads it, then a new thread', async (t) => {
  const { logger, lines } = captureLogger();
  const thread = new TemplateThread(logger, { deadlineMs: 500 });
  t.after(() => thread.close());
  const { chunks, size, bytes } = reply();
  const first = await thread.read(200, chunks, size);
  assert.ok(first.ok && first.template.prepared?.count === 2);
  assert.deepEqual(first.template.prepared.bytes, bytes);
  assert.deepEqual(thread.stats, { threaded: 1, fallback: 0 });
  const worker = () => (thread as unknown as Inner).worker!;

  // Dies as it is handed the reply.
  const dying = worker();
  dying.postMessage = () => { void dying.terminate(); };
  const second = await thread.read(200, chunks, size);
  assert.ok(second.ok);
  assert.deepEqual(second.template.prepared?.bytes, bytes);
  assert.deepEqual(thread.stats, { threaded: 1, fallback: 1 });

  // A new thread is started for the next read; this one takes the reply and never answers.
  const third = await thread.read(200, chunks, size);
  assert.ok(third.ok);
  assert.deepEqual(thread.stats, { threaded: 2, fallback: 1 });
  worker().postMessage = () => undefined;
  const started = Date.now();
  const fourth = await thread.read(200, chunks, size);
  assert.ok(fourth.ok);
  assert.deepEqual(fourth.template.prepared?.bytes, bytes);
  // 450, not 490: a timer runs from libuv's loop time, which may be older than `started` on a loaded machine.
  assert.ok(Date.now() - started >= 450, 'waited for the deadline');
  assert.deepEqual(thread.stats, { threaded: 2, fallback: 2 });
  assert.equal(lines.filter((l) => l.msg.startsWith('template thread failed')).length, 2);
});

test('threads stopped in the middle of reading: every template still comes, each with its own bytes', async (t) => {
  // A 1 ms deadline once a thread is up: it is stopped while it reads a 3,000-transaction template (~20 ms of work),
  // and the next read goes to a new thread (which has its start allowance, so it answers) with a new shared buffer.
  const thread = new TemplateThread(undefined, { deadlineMs: 1 });
  t.after(() => thread.close());
  for (let seed = 0; seed < 6; seed++) {
    const { chunks, size, bytes } = reply(3000, seed);
    const r = await thread.read(200, chunks, size);
    assert.ok(r.ok, `template ${seed}`);
    assert.equal(r.template.prepared?.count, 3000);
    assert.ok(Buffer.isBuffer(r.template.prepared.bytes));
    assert.ok(r.template.prepared.bytes.equals(bytes), `template ${seed}: its own bytes`);
  }
  assert.ok(thread.stats.threaded >= 1 && thread.stats.fallback >= 1, JSON.stringify(thread.stats));
});

test('an answer the event loop cannot take fails the read at once, not at its deadline', async (t) => {
  const thread = new TemplateThread(undefined, { deadlineMs: 5000 });
  t.after(() => thread.close());
  const { chunks, size, bytes } = reply(2, 7);
  await thread.read(200, chunks, size); // started
  const w = (thread as unknown as { worker: { postMessage: (m: unknown) => void; emit: (e: string, err: Error) => boolean } }).worker;
  w.postMessage = () => { setTimeout(() => w.emit('messageerror', new Error('could not deserialize')), 10); };
  const started = Date.now();
  const r = await thread.read(200, chunks, size);
  assert.ok(r.ok && r.template.prepared?.bytes.equals(bytes));
  assert.ok(Date.now() - started < 2000, `fell back in ${Date.now() - started} ms`);
  assert.deepEqual(thread.stats, { threaded: 1, fallback: 1 });
});

test('closing the thread during a read: the read is done on the event loop, without a warning', async (t) => {
  const { logger, lines } = captureLogger();
  const thread = new TemplateThread(logger);
  const { chunks, size, bytes } = reply(3000, 9);
  await thread.read(200, chunks, size); // started
  (thread as unknown as Inner).worker!.postMessage = () => undefined; // holds the next read
  const reading = thread.read(200, chunks, size);
  await new Promise((r) => setTimeout(r, 20));
  await thread.close();
  const r = await reading;
  assert.ok(r.ok && r.template.prepared?.bytes.equals(bytes));
  assert.deepEqual(thread.stats, { threaded: 1, fallback: 1 });
  assert.deepEqual(lines.filter((l) => l.level >= 40), []);
  const later = await thread.read(200, chunks, size);
  assert.ok(later.ok);
  assert.deepEqual(thread.stats, { threaded: 1, fallback: 2 });
  t.after(() => thread.close());
});

test('after repeated failures the thread is given up with one warning, and reads go on on the event loop', async (t) => {
  const { logger, lines } = captureLogger();
  const thread = new TemplateThread(logger, { deadlineMs: 100, startAllowanceMs: 0 });
  t.after(() => thread.close());
  const { chunks, size } = reply();
  // Every thread started from now on takes the reply and never answers.
  const inner = thread as unknown as { start: () => { postMessage: (m: unknown) => void } | null };
  const start = inner.start.bind(thread);
  let started = 0;
  inner.start = () => {
    const w = start();
    if (w) { started++; w.postMessage = () => undefined; }
    return w;
  };
  for (let i = 0; i < 5; i++) {
    const r = await thread.read(200, chunks, size);
    assert.ok(r.ok && r.template.prepared?.count === 2, `read ${i}`);
  }
  const last = await thread.read(200, chunks, size);
  assert.ok(last.ok && last.template.prepared?.count === 2);
  const warnings = lines.filter((l) => l.msg.startsWith('template thread failed'));
  assert.equal(warnings.length, 3);
  assert.match(warnings[2].msg, /read on the event loop from now on/);
  assert.equal(started, 3, 'no thread started after the third failure');
  assert.deepEqual(thread.stats, { threaded: 0, fallback: 6 });
});
