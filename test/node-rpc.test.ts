// BitcoinRpc and TemplateSource against a fake Bitcoin Core JSON-RPC server on 127.0.0.1.
// The fake answers like Core's legacy JSON-RPC (src/httprpc.cpp): errors as HTTP 500 + JSON body, 401 with an
// empty body, 503 "Work queue depth exceeded" as plain text, and BIP22 long polls held until the tip moves.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { pino } from 'pino';
import { BitcoinRpc, RpcError } from '../src/node/rpc.ts';
import { TemplateSource, type TemplateMeta, type TemplateStatus } from '../src/node/template-source.ts';
import type { BlockTemplate, NodeClient } from '../src/node/types.ts';
import { captureLogger } from './helpers/capture-logger.ts';
import { until } from './helpers/until.ts';
import { freePort } from './helpers/free-port.ts';

// ---------- fake node ----------

interface RpcRequest {
  method: string;
  params: unknown[];
  auth?: string;
  body: Record<string, unknown>;
}

/** What a handler does: answer a result, an RPC error, a raw HTTP reply, or never answer. */
type Action =
  | { result: unknown }
  | { rpcError: { code: number; message: string } }
  | { status: number; text: string }
  | { hang: true };

interface FakeNode {
  url: string;
  port: number;
  requests: RpcRequest[];
  /** Override per request; return undefined to fall through to the simulated bitcoind. */
  intercept?: (req: RpcRequest) => Action | undefined;
  /** Simulated chain state. */
  tip: string;
  height: number;
  /** Send longpollid in templates. */
  longpoll: boolean;
  /** Mine a block on the fake chain; answers parked long polls. */
  advance(): void;
  openConnections(): Promise<number>;
  close(): Promise<void>;
}

let hashCounter = 0;
function fakeHash(): string {
  hashCounter++;
  return hashCounter.toString(16).padStart(64, '0');
}

function makeTemplate(node: FakeNode): BlockTemplate {
  return {
    version: 0x20000000,
    rules: ['csv', '!segwit', 'taproot'],
    previousblockhash: node.tip,
    transactions: [],
    coinbasevalue: 5_000_000_000,
    ...(node.longpoll ? { longpollid: `${node.tip}${node.height}` } : {}),
    target: '7fffff0000000000000000000000000000000000000000000000000000000000',
    mintime: 1_700_000_000,
    curtime: 1_700_000_100,
    bits: '207fffff',
    height: node.height + 1,
    default_witness_commitment: '6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9',
  };
}

async function startFakeNode(): Promise<FakeNode> {
  const parked: Array<{ res: http.ServerResponse; id: unknown }> = [];
  const send = (res: http.ServerResponse, id: unknown, action: Action): void => {
    if ('hang' in action) return;
    if ('status' in action) {
      res.writeHead(action.status, { 'content-type': 'text/plain' }).end(action.text);
      return;
    }
    const isError = 'rpcError' in action;
    const body = isError
      ? { result: null, error: action.rpcError, id }
      : { result: action.result, error: null, id };
    res.writeHead(isError ? 500 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };

  const node: FakeNode = {
    url: '',
    port: 0,
    requests: [],
    tip: fakeHash(),
    height: 100,
    longpoll: true,
    advance() {
      node.tip = fakeHash();
      node.height++;
      for (const p of parked.splice(0)) send(p.res, p.id, { result: makeTemplate(node) });
    },
    openConnections: () => new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n)))),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      const r: RpcRequest = {
        method: String(body.method),
        params: (body.params as unknown[]) ?? [],
        auth: req.headers.authorization,
        body,
      };
      node.requests.push(r);
      const action = node.intercept?.(r);
      if (action) return send(res, body.id, action);
      switch (r.method) {
        case 'getbestblockhash':
          return send(res, body.id, { result: node.tip });
        case 'getblocktemplate': {
          const lp = (r.params[0] as { longpollid?: string } | undefined)?.longpollid;
          if (lp !== undefined && lp === makeTemplate(node).longpollid) {
            // BIP22: hold the request until something changes.
            const entry = { res, id: body.id };
            parked.push(entry);
            res.on('close', () => {
              const i = parked.indexOf(entry);
              if (i >= 0) parked.splice(i, 1);
            });
            return;
          }
          return send(res, body.id, { result: makeTemplate(node) });
        }
        case 'submitblock':
          return send(res, body.id, { result: null });
        case 'getblockchaininfo':
          return send(res, body.id, {
            result: {
              chain: 'regtest',
              blocks: node.height,
              headers: node.height,
              bestblockhash: node.tip,
              difficulty: 4.6e-10,
              initialblockdownload: false,
              warnings: '',
            },
          });
        default:
          return send(res, body.id, { rpcError: { code: -32601, message: 'Method not found' } });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  node.port = (server.address() as AddressInfo).port;
  node.url = `http://127.0.0.1:${node.port}`;
  return node;
}

/** A port where nothing listens: from freePort, not a released listen(0) port (the other test file could get it). */
async function deadPort(): Promise<number> {
  return freePort();
}

function basic(userPass: string): string {
  return 'Basic ' + Buffer.from(userPass).toString('base64');
}

async function rejectsWith(p: Promise<unknown>, check: (e: RpcError) => void): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RpcError, `expected RpcError, got ${String(err)}`);
    check(err);
    return err;
  }
  assert.fail('expected a rejection');
}

/** Resolves with the next event matching `pred`, or fails after `ms`. */
function nextTemplate(
  src: TemplateSource,
  pred: (t: BlockTemplate, m: TemplateMeta) => boolean,
  ms = 3000,
): Promise<[BlockTemplate, TemplateMeta]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      src.off('template', on);
      reject(new Error('no matching template event in time'));
    }, ms);
    const on = (t: BlockTemplate, m: TemplateMeta): void => {
      if (!pred(t, m)) return;
      clearTimeout(timer);
      src.off('template', on);
      resolve([t, m]);
    };
    src.on('template', on);
  });
}

function nextStatus(src: TemplateSource, ok: boolean, ms = 3000): Promise<TemplateStatus> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      src.off('status', on);
      reject(new Error(`no status ok=${ok} in time`));
    }, ms);
    const on = (s: TemplateStatus): void => {
      if (s.ok !== ok) return;
      clearTimeout(timer);
      src.off('status', on);
      resolve(s);
    };
    src.on('status', on);
  });
}

// ---------- BitcoinRpc ----------

test('call: success path, JSON-RPC framing, typed methods', async (t) => {
  const node = await startFakeNode();
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.url }] });
  t.after(async () => {
    rpc.close();
    await node.close();
  });

  assert.equal(await rpc.getBestBlockHash(), node.tip);
  const info = await rpc.getBlockchainInfo();
  assert.equal(info.chain, 'regtest');
  assert.equal(info.blocks, 100);

  const tpl = await rpc.getBlockTemplate();
  assert.equal(tpl.height, 101);
  assert.equal(tpl.previousblockhash, node.tip);
  const gbt = node.requests.find((r) => r.method === 'getblocktemplate');
  assert.deepEqual(gbt?.params, [{ rules: ['segwit'] }]);
  assert.equal(gbt?.body.jsonrpc, '1.0');
  assert.equal(gbt?.auth, undefined);

  const generic = await rpc.call<string>('getbestblockhash', []);
  assert.equal(generic, node.tip);

  // A long poll on a stale id returns at once (the tip moved) and sends the id.
  const lp = await rpc.getBlockTemplate('stale-id');
  assert.equal(lp.height, 101);
  assert.deepEqual(node.requests.at(-1)?.params, [{ rules: ['segwit'], longpollid: 'stale-id' }]);
});

test('auth: Basic header from user/password, from the URL, and from a cookie file re-read after 401', async (t) => {
  const node = await startFakeNode();
  const dir = await mkdtemp(join(tmpdir(), 'hashhub-rpc-'));
  t.after(async () => {
    await node.close();
    await rm(dir, { recursive: true, force: true });
  });

  const a = new BitcoinRpc({ endpoints: [{ url: node.url, user: 'alice', password: 's3cret' }] });
  await a.getBestBlockHash();
  assert.equal(node.requests.at(-1)?.auth, basic('alice:s3cret'));
  a.close();

  const b = new BitcoinRpc({ endpoints: [{ url: `http://bob:p%40ss@127.0.0.1:${node.port}` }] });
  assert.deepEqual(b.endpointUrls, [node.url]); // no credentials in what we show
  await b.getBestBlockHash();
  assert.equal(node.requests.at(-1)?.auth, basic('bob:p@ss'));
  b.close();

  const cookie = join(dir, '.cookie');
  let valid = '__cookie__:aaaa';
  await writeFile(cookie, valid);
  node.intercept = (r) => (r.auth === basic(valid) ? undefined : { status: 401, text: '' });
  const c = new BitcoinRpc({ endpoints: [{ url: node.url, cookieFile: cookie }] });
  t.after(() => c.close());
  await c.getBestBlockHash();
  assert.equal(node.requests.at(-1)?.auth, basic('__cookie__:aaaa'));

  // bitcoind restarted: new cookie. The first request gets 401, the client re-reads and succeeds.
  valid = '__cookie__:bbbb';
  await writeFile(cookie, valid + '\n');
  const before = node.requests.length;
  assert.equal(await c.getBestBlockHash(), node.tip);
  assert.deepEqual(
    node.requests.slice(before).map((r) => r.auth),
    [basic('__cookie__:aaaa'), basic('__cookie__:bbbb')],
  );
});

test('401 is an auth error that names the endpoint, not the password', async (t) => {
  const node = await startFakeNode();
  node.intercept = () => ({ status: 401, text: '' });
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.url, user: 'u', password: 'hunter2' }] });
  t.after(async () => {
    rpc.close();
    await node.close();
  });
  const err = await rejectsWith(rpc.getBlockTemplate(), (e) => {
    assert.equal(e.kind, 'auth');
    assert.equal(e.httpStatus, 401);
    assert.equal(e.method, 'getblocktemplate');
    assert.equal(e.endpoint, node.url);
  });
  assert.equal(err.message, `getblocktemplate on ${node.url}: HTTP 401 (check rpcuser/rpcpassword or the cookie file)`);
  assert.ok(!err.message.includes('hunter2'));

  const missing = new BitcoinRpc({ endpoints: [{ url: node.url, cookieFile: '/nonexistent/.cookie' }] });
  await rejectsWith(missing.getBestBlockHash(), (e) => {
    assert.equal(e.kind, 'auth');
    assert.match(e.message, /cannot read cookie file \/nonexistent\/\.cookie: ENOENT/);
  });
  missing.close();
});

test('HTTP 500 with an RPC error body is an rpc error with its code, and no failover', async (t) => {
  const a = await startFakeNode();
  const b = await startFakeNode();
  a.intercept = () => ({ rpcError: { code: -8, message: 'Invalid parameter' } });
  const rpc = new BitcoinRpc({ endpoints: [{ url: a.url }, { url: b.url }] });
  t.after(async () => {
    rpc.close();
    await a.close();
    await b.close();
  });
  await rejectsWith(rpc.getBlockHash(999_999), (e) => {
    assert.equal(e.kind, 'rpc');
    assert.equal(e.code, -8);
    assert.equal(e.rpcMessage, 'Invalid parameter');
    assert.equal(e.httpStatus, 500);
    assert.equal(e.retryable, false);
    assert.match(e.message, /^getblockhash on http:\/\/127\.0\.0\.1:\d+: RPC error -8: Invalid parameter$/);
  });
  assert.equal(b.requests.length, 0, 'an RPC verdict is not retried elsewhere');

  // Warm-up (-28) is about the node, not the request: the next endpoint answers.
  a.intercept = () => ({ rpcError: { code: -28, message: 'Loading block index...' } });
  assert.equal(await rpc.getBestBlockHash(), b.tip);
});

test('503 work queue depth exceeded fails over to the next endpoint, which is then preferred', async (t) => {
  const a = await startFakeNode();
  const b = await startFakeNode();
  a.intercept = () => ({ status: 503, text: 'Work queue depth exceeded' });
  const rpc = new BitcoinRpc({ endpoints: [{ url: a.url }, { url: b.url }] });
  t.after(async () => {
    rpc.close();
    await a.close();
    await b.close();
  });
  assert.equal(await rpc.getBestBlockHash(), b.tip);
  assert.equal(a.requests.length, 1);
  await rpc.getBestBlockHash();
  assert.equal(a.requests.length, 1, 'the working endpoint is tried first afterwards');
  assert.equal(b.requests.length, 2);

  // Alone, the 503 surfaces as a retryable http error.
  const solo = new BitcoinRpc({ endpoints: [{ url: a.url }] });
  await rejectsWith(solo.getBestBlockHash(), (e) => {
    assert.equal(e.kind, 'http');
    assert.equal(e.httpStatus, 503);
    assert.equal(e.retryable, true);
    assert.match(e.message, /HTTP 503 Work queue depth exceeded/);
  });
  solo.close();
});

test('a node that never answers gives a timeout error within the bound', async (t) => {
  const node = await startFakeNode();
  node.intercept = () => ({ hang: true });
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.url }], timeoutMs: 150 });
  t.after(async () => {
    rpc.close();
    await node.close();
  });
  const t0 = Date.now();
  await rejectsWith(rpc.getBlockTemplate(), (e) => {
    assert.equal(e.kind, 'timeout');
    assert.equal(e.retryable, true);
    assert.match(e.message, /no answer within 150 ms/);
  });
  const took = Date.now() - t0;
  assert.ok(took >= 140 && took < 5000, `took ${took} ms`); // a timeout, not a hang (generous for a loaded machine)

  // Per-call override and abort.
  await rejectsWith(rpc.call('getbestblockhash', [], { timeoutMs: 50 }), (e) => assert.equal(e.kind, 'timeout'));
  const ac = new AbortController();
  const p = rpc.getBlockTemplate(undefined, ac.signal);
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(p, { name: 'AbortError' });
});

test('connection refused is a network error; with a second endpoint the call fails over', async (t) => {
  const port = await deadPort();
  const node = await startFakeNode();
  t.after(() => node.close());

  const solo = new BitcoinRpc({ endpoints: [{ url: `http://127.0.0.1:${port}` }] });
  await rejectsWith(solo.getBestBlockHash(), (e) => {
    assert.equal(e.kind, 'network');
    assert.equal(e.retryable, true);
    assert.match(e.message, /ECONNREFUSED/);
  });
  solo.close();

  const rpc = new BitcoinRpc({ endpoints: [{ url: `http://127.0.0.1:${port}` }, { url: node.url }] });
  t.after(() => rpc.close());
  assert.equal(await rpc.getBestBlockHash(), node.tip);

  const both = new BitcoinRpc({ endpoints: [{ url: `http://127.0.0.1:${port}` }, { url: `http://127.0.0.1:${port}/x` }] });
  await rejectsWith(both.getBestBlockHash(), (e) => {
    assert.equal(e.kind, 'network');
    assert.equal(e.attempts.length, 1);
    assert.match(e.message, /1 other endpoint\(s\) also failed/);
  });
  both.close();
});

test('submitBlock: null on acceptance, the reason string otherwise, every endpoint tried', async (t) => {
  const a = await startFakeNode();
  const b = await startFakeNode();
  const port = await deadPort();
  t.after(async () => {
    await a.close();
    await b.close();
  });

  const rpc = new BitcoinRpc({ endpoints: [{ url: a.url }] });
  t.after(() => rpc.close());
  assert.equal(await rpc.submitBlock('00'), null);
  assert.deepEqual(a.requests.at(-1)?.params, ['00']);

  a.intercept = () => ({ result: 'high-hash' });
  assert.equal(await rpc.submitBlock('00'), 'high-hash');

  a.intercept = () => ({ rpcError: { code: -22, message: 'Block decode failed' } });
  await rejectsWith(rpc.submitBlock('zz'), (e) => {
    assert.equal(e.kind, 'rpc');
    assert.equal(e.code, -22);
  });

  // A dead first endpoint and a busy one do not lose the block: the third accepts it.
  a.intercept = () => ({ status: 503, text: 'Work queue depth exceeded' });
  const multi = new BitcoinRpc({ endpoints: [{ url: `http://127.0.0.1:${port}` }, { url: a.url }, { url: b.url }] });
  t.after(() => multi.close());
  assert.equal(await multi.submitBlock('00'), null);
  assert.equal(b.requests.filter((r) => r.method === 'submitblock').length, 1);

  // Acceptance anywhere wins over another node's reason (it may already have the block).
  a.intercept = () => ({ result: 'duplicate' });
  const answers = await multi.submitBlockAll('00');
  assert.equal(answers.length, 3);
  assert.equal(await multi.submitBlock('00'), null);

  // No endpoint reachable: retried per submitRetryDelaysMs, then a network error.
  const dead = new BitcoinRpc({ endpoints: [{ url: `http://127.0.0.1:${port}` }], submitRetryDelaysMs: [10, 10] });
  await rejectsWith(dead.submitBlock('00'), (e) => assert.equal(e.kind, 'network'));
  dead.close();
});

test('a 200 answer that is not JSON-RPC, or a template missing fields, is a parse error', async (t) => {
  const node = await startFakeNode();
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.url }] });
  t.after(async () => {
    rpc.close();
    await node.close();
  });
  node.intercept = () => ({ status: 200, text: '<html>proxy</html>' });
  await rejectsWith(rpc.getBestBlockHash(), (e) => assert.equal(e.kind, 'parse'));
  node.intercept = (r) => (r.method === 'getblocktemplate' ? { result: { ...makeTemplate(node), bits: 7 } } : undefined);
  await rejectsWith(rpc.getBlockTemplate(), (e) => {
    assert.equal(e.kind, 'parse');
    assert.match(e.message, /bits/);
  });
  // A transaction with a bad field: the path names the transaction and the field.
  const withTx = (tx: Record<string, unknown>) => () => {
    const t = makeTemplate(node);
    const good = { data: '00', txid: 'ab'.repeat(32), hash: 'cd'.repeat(32), fee: 1 };
    return { result: { ...t, transactions: [good, { ...good, ...tx }] } };
  };
  for (const [tx, path] of [[{ txid: 'xyz' }, /transactions\.1\.txid/], [{ fee: '1' }, /transactions\.1\.fee/], [{ data: 5 }, /transactions\.1\.data/], [{ weight: 'heavy' }, /transactions\.1\.weight/]] as const) {
    node.intercept = (r) => (r.method === 'getblocktemplate' ? withTx(tx)() : undefined);
    await rejectsWith(rpc.getBlockTemplate(), (e) => {
      assert.equal(e.kind, 'parse');
      assert.match(e.message, path);
    });
  }
  node.intercept = (r) => (r.method === 'getblocktemplate' ? { result: { ...makeTemplate(node), transactions: [7] } } : undefined);
  await rejectsWith(rpc.getBlockTemplate(), (e) => assert.match(e.message, /transactions\.0/));
});

test('getBlockHeader: bcoin\'s null nextblockhash (the tip) and previousblockhash (genesis) read as absent', async (t) => {
  const node = await startFakeNode();
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.url }] });
  t.after(async () => {
    rpc.close();
    await node.close();
  });
  // bcoin 1.0.2 answers the tip's header with "nextblockhash": null where Core leaves the field out.
  const tip = { hash: 'ab'.repeat(32), confirmations: 1, height: 637, time: 1796109394, previousblockhash: 'cd'.repeat(32), nextblockhash: null };
  // (The best chain's block at each height is this one: getBlockHeader checks a positive answer against it.)
  const headerIs = (header: unknown) => (r: RpcRequest): Action | undefined =>
    r.method === 'getblockheader' ? { result: header } : r.method === 'getblockhash' ? { result: tip.hash } : undefined;
  node.intercept = headerIs(tip);
  const h = await rpc.getBlockHeader(tip.hash);
  assert.equal(h?.confirmations, 1);
  assert.equal(h?.nextblockhash, undefined);
  node.intercept = headerIs({ ...tip, height: 0, previousblockhash: null });
  assert.equal((await rpc.getBlockHeader(tip.hash))?.previousblockhash, undefined);
  // Anything else in those fields is still refused.
  node.intercept = (r) => (r.method === 'getblockheader' ? { result: { ...tip, nextblockhash: 7 } } : undefined);
  await rejectsWith(rpc.getBlockHeader(tip.hash), (e) => assert.match(e.message, /nextblockhash/));
});

test('getBlockHeader: a positive depth for a block that is not the best chain\'s at its height (bcoin counts stale blocks) reads -1', async (t) => {
  const node = await startFakeNode();
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.url }] });
  t.after(async () => {
    rpc.close();
    await node.close();
  });
  const stale = { hash: 'ab'.repeat(32), confirmations: 3, height: 637, previousblockhash: 'cd'.repeat(32), nextblockhash: 'ef'.repeat(32) };
  let atHeight: Action = { result: 'AB'.repeat(32) };
  const asked: number[] = [];
  node.intercept = (r) => {
    if (r.method === 'getblockheader') return { result: stale };
    if (r.method !== 'getblockhash') return undefined;
    asked.push((r.params as number[])[0]);
    return atHeight;
  };
  assert.equal((await rpc.getBlockHeader(stale.hash))?.confirmations, 3, 'on the best chain (hex case aside)');
  assert.deepEqual(asked, [637]);
  atHeight = { result: '12'.repeat(32) };
  const h = await rpc.getBlockHeader(stale.hash);
  assert.equal(h?.confirmations, -1, 'another block holds its height');
  assert.equal(h?.nextblockhash, undefined);
  // The chain shrank below its height between the two calls: off the best chain too.
  atHeight = { rpcError: { code: -8, message: 'Block height out of range' } };
  assert.equal((await rpc.getBlockHeader(stale.hash))?.confirmations, -1);
  // Any other failure is the node's, not a verdict.
  atHeight = { rpcError: { code: -1, message: 'boom' } };
  await rejectsWith(rpc.getBlockHeader(stale.hash), (e) => assert.match(e.message, /boom/));
});

// ---------- TemplateSource ----------

function setup(
  t: { after: (fn: () => Promise<void> | void) => void },
  node: FakeNode,
  opts = {},
  logger?: pino.Logger,
) {
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.url }], timeoutMs: 300, logger });
  const src = new TemplateSource(rpc, {
    pollMs: 50,
    refreshMs: 60_000,
    backoffMinMs: 20,
    backoffMaxMs: 100,
    logger,
    ...opts,
  });
  t.after(async () => {
    await src.stop();
    rpc.close();
    await node.close();
  });
  return { rpc, src };
}

test('TemplateSource: first template, then newTip=true via long poll', async (t) => {
  const node = await startFakeNode();
  // Polling slowed down so only the long poll can see the new tip in time.
  const { src } = setup(t, node, { pollMs: 60_000 });
  const first = nextTemplate(src, () => true);
  const tpl = await src.start();
  assert.equal(tpl.height, 101);
  const [, meta] = await first;
  assert.equal(meta.newTip, true);
  assert.equal(meta.reason, 'start');
  assert.equal(src.status.ok, true);

  // Wait until the long poll is parked at the node, then mine.
  while (!node.requests.some((r) => (r.params[0] as { longpollid?: string } | undefined)?.longpollid)) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const next = nextTemplate(src, (_, m) => m.newTip, 1000);
  node.advance();
  const [t2, m2] = await next;
  assert.equal(m2.reason, 'longpoll');
  assert.equal(t2.previousblockhash, node.tip);
  assert.equal(src.current?.height, 102);
});

test('TemplateSource: newTip=true via getbestblockhash polling when the node offers no long poll', async (t) => {
  const node = await startFakeNode();
  node.longpoll = false;
  const { src } = setup(t, node);
  await src.start();
  const next = nextTemplate(src, (_, m) => m.newTip, 1000);
  node.advance();
  const [t2, m2] = await next;
  assert.equal(m2.reason, 'poll');
  assert.equal(t2.previousblockhash, node.tip);
  assert.ok(!node.requests.some((r) => (r.params[0] as { longpollid?: string } | undefined)?.longpollid));
});

test('TemplateSource: notifyNewTip fetches at once', async (t) => {
  const node = await startFakeNode();
  node.longpoll = false;
  const { src } = setup(t, node, { pollMs: 60_000 });
  await src.start();
  node.advance();
  const next = nextTemplate(src, (_, m) => m.newTip, 1000);
  src.notifyNewTip();
  const [, m] = await next;
  assert.equal(m.reason, 'notify');
});

test('TemplateSource: periodic refresh emits newTip=false', async (t) => {
  const node = await startFakeNode();
  let clock = 1_000_000;
  const { src } = setup(t, node, { refreshMs: 80, now: () => clock });
  await src.start();
  clock += 500;
  assert.equal(src.status.templateAgeMs, 500);
  const [tpl, meta] = await nextTemplate(src, () => true, 1000);
  assert.equal(meta.newTip, false);
  assert.equal(meta.reason, 'refresh');
  assert.equal(tpl.previousblockhash, node.tip);
  assert.equal(src.status.templateAgeMs, 0);
});

test('TemplateSource: survives the node failing, keeps the last template, recovers', async (t) => {
  const node = await startFakeNode();
  node.longpoll = false;
  const { logger, lines } = captureLogger();
  const { src } = setup(t, node, {}, logger);
  const statuses: TemplateStatus[] = [];
  src.on('status', (s) => statuses.push(s));
  const tpl = await src.start();

  const down = nextStatus(src, false);
  node.intercept = () => ({ status: 500, text: 'Internal Server Error' });
  const s = await down;
  assert.match(s.error ?? '', /HTTP 500/);
  assert.equal(src.current, tpl, 'the last good template stays');

  // Several failed retries happen meanwhile; only the transition was reported. (Waited for, not slept on: a
  // loaded machine can take longer than any fixed pause for three round trips.)
  const afterDown = node.requests.length;
  await until(() => node.requests.length >= afterDown + 3, 10_000, 'three retries after the failure');
  assert.equal(statuses.filter((x) => !x.ok).length, 1);
  assert.equal(lines.filter((l) => l.level >= 40).length, 2, 'one warning from the source, one from the endpoint');

  const up = nextStatus(src, true);
  const fresh = nextTemplate(src, () => true);
  node.intercept = undefined;
  node.advance();
  await up;
  const [t2, m2] = await fresh;
  assert.equal(m2.newTip, true);
  assert.equal(t2.height, 102);
  assert.deepEqual(
    statuses.map((x) => x.ok),
    [true, false, true],
  );
  assert.ok(lines.some((l) => l.msg === 'node answers again; templates are fresh'));
});

test('TemplateSource: stop() aborts the long poll and leaves no timers or sockets', async (t) => {
  const node = await startFakeNode();
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.url }] });
  const src = new TemplateSource(rpc, { pollMs: 30, refreshMs: 60_000 });
  t.after(() => node.close());
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  await src.start();
  while (!node.requests.some((r) => (r.params[0] as { longpollid?: string } | undefined)?.longpollid)) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const t0 = Date.now();
  await src.stop();
  // The fake node holds the long poll until its tip moves (never, here): a stop within seconds did not wait for it.
  assert.ok(Date.now() - t0 < 5_000, 'stop does not wait for the long poll');
  rpc.close();
  // The server needs a turn or two to see the closes: waited for, bounded.
  await until(async () => (await node.openConnections()) === 0, 5_000, 'the server sees every socket closed');
  const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  assert.ok(timersAfter <= timersBefore, `timers before ${timersBefore}, after ${timersAfter}`);
  const count = node.requests.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(node.requests.length, count, 'no requests after stop');
  await src.stop(); // twice is fine
});

test('TemplateSource: start() rejects after startTimeoutMs with the node error', async (t) => {
  const port = await deadPort();
  const rpc = new BitcoinRpc({ endpoints: [{ url: `http://127.0.0.1:${port}` }] });
  const src = new TemplateSource(rpc, { startTimeoutMs: 200, backoffMinMs: 20, backoffMaxMs: 50, pollMs: 20 });
  t.after(async () => {
    await src.stop();
    rpc.close();
  });
  const t0 = Date.now();
  await assert.rejects(src.start(), /no block template from the node within 200 ms: .*ECONNREFUSED/);
  // A timeout, not a hang (a loaded machine can add a second or more to 200 ms).
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(src.status.ok, false);
});

test('TemplateSource: a slow answer from before the current tip does not roll jobs back', async (t) => {
  // Fake NodeClient: the refresh fetch is answered with the old tip after a long poll already brought the new one.
  const old = { ...makeTemplateFor('aa'.repeat(32), 200), longpollid: 'lp1' };
  const newer = { ...makeTemplateFor('bb'.repeat(32), 201), longpollid: 'lp2' };
  let releaseLongpoll!: () => void;
  let releaseRefresh!: () => void;
  let calls = 0;
  const node: NodeClient = {
    async getBlockTemplate(longpollId?: string, signal?: AbortSignal) {
      calls++;
      if (calls === 1) return old;
      await new Promise<void>((resolve, reject) => {
        if (longpollId) releaseLongpoll = resolve;
        else releaseRefresh = resolve;
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
      return longpollId ? newer : old;
    },
    submitBlock: async () => null,
    submitBlockAll: async () => assert.fail('unused'),
    getBlockHeader: async () => assert.fail('unused'),
    getBlockchainInfo: async () => assert.fail('unused'),
    getBestBlockHash: async () => (calls > 2 ? newer.previousblockhash : old.previousblockhash),
    getBlockHash: async () => assert.fail('unused'),
    getBlock: async () => assert.fail('unused'),
  };
  const src = new TemplateSource(node, { pollMs: 60_000, refreshMs: 30 });
  t.after(() => src.stop());
  const seen: Array<[number, boolean]> = [];
  src.on('template', (tpl, m) => seen.push([tpl.height, m.newTip]));
  await src.start();
  while (!releaseLongpoll || !releaseRefresh) await new Promise((r) => setTimeout(r, 5));
  releaseLongpoll();
  await new Promise((r) => setTimeout(r, 5));
  releaseRefresh();
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(seen, [
    [200, true],
    [201, true],
  ]);
  assert.equal(src.current?.height, 201);
});

function makeTemplateFor(prev: string, height: number): BlockTemplate {
  return {
    version: 0x20000000,
    rules: ['segwit'],
    previousblockhash: prev,
    transactions: [],
    coinbasevalue: 5_000_000_000,
    target: '7fffff0000000000000000000000000000000000000000000000000000000000',
    mintime: 0,
    curtime: 0,
    bits: '207fffff',
    height,
  };
}
