import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { LineClient, type Msg } from './helpers/line-client.ts';
import { startTestPool, solveShare } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';

// Real miners' habits over a real socket: each must get work, its valid shares accepted, invalid ones refused with
// the right code, and never be disconnected.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isNotify = (m: Msg) => m.method === 'mining.notify';
let ip = 40;
const nextIp = () => `127.0.0.${ip++}`;
async function connect(port: number): Promise<LineClient> {
  const c = new LineClient(port, nextIp());
  await c.connected();
  return c;
}
const code = (m: Msg) => (m.error as unknown[] | null)?.[0];

describe('stratum interop', async () => {
  const node = new StubNode();
  const { pool, port } = await startTestPool(node);
  after(() => pool.stop(100));

  test('Braiins/stratum-proxy framing: string ids, null params, whitespace, CRLF, batched and split lines', async () => {
    const c = await connect(port);
    c.send('  {"id": "s1", "method": "mining.subscribe", "params": null}  \r\n{"id":"a1","method":"mining.authorize","params":["acct.w1","x"]}\r\n');
    const sub = await c.waitFor((m) => m.id === 's1');
    assert.equal(c.messages[0], sub);
    const auth = await c.waitFor((m) => m.id === 'a1');
    assert.equal(auth.result, true);
    const notify = await c.waitFor(isNotify);
    const [, en1, en2Size] = sub.result as [unknown, string, number];
    const share = solveShare(notify, en1, en2Size, 0.0001);
    const line = ` { "params" : [ ${share.map((s) => JSON.stringify(s)).join(' , ')} ] , "id" : "x-7" , "method" : "mining.submit" } \r\n`;
    for (const ch of line) { c.socket.write(ch); }
    const r = await c.waitFor((m) => m.id === 'x-7');
    assert.equal(r.result, true);
    c.close();
  });

  test('suggest_difficulty before subscribe (string), extranonce.subscribe, cgminer session id', async () => {
    const c = await connect(port);
    assert.equal((await c.request(1, 'mining.suggest_difficulty', ['0.0002'])).result, true);
    const sub = await c.request(2, 'mining.subscribe', ['cgminer/4.12.0', 'deadbeef']);
    assert.equal(c.messages[1], sub);
    assert.equal((await c.request(3, 'mining.extranonce.subscribe', [])).result, true);
    assert.equal((await c.request(4, 'mining.authorize', ['acct.w1', 'x'])).result, true);
    const notify = await c.waitFor(isNotify);
    const sd = c.messages.find((m) => m.method === 'mining.set_difficulty');
    assert.equal(sd?.params?.[0], 0.0002);
    const [, en1, en2Size] = sub.result as [unknown, string, number];
    const share = solveShare(notify, en1, en2Size, 0.0002);
    assert.equal((await c.request(5, 'mining.submit', share)).result, true);
    c.close();
  });

  test('Antminer: configure (version-rolling, minimum-difficulty, subscribe-extranonce), 6th param, uppercase hex, rolled ntime', async () => {
    const c = await connect(port);
    const conf = await c.request(1, 'mining.configure', [['version-rolling', 'minimum-difficulty', 'subscribe-extranonce'], { 'version-rolling.mask': '1fffe000', 'version-rolling.min-bit-count': 16, 'minimum-difficulty.value': 0.0001 }]);
    assert.equal((conf.result as Record<string, unknown>)['version-rolling'], true);
    assert.equal((conf.result as Record<string, unknown>)['version-rolling.mask'], '1fffe000');
    const sub = await c.request(2, 'mining.subscribe', ['Antminer S19/Tue Nov 23 2021']);
    assert.equal((await c.request(3, 'mining.authorize', ['acct.w1', '123'])).result, true);
    const notify = await c.waitFor(isNotify);
    const [, en1, en2Size] = sub.result as [unknown, string, number];
    const rolled = { ...notify, params: [...notify.params!] };
    rolled.params[7] = (parseInt(notify.params![7] as string, 16) + 5).toString(16).padStart(8, '0');
    const share = solveShare(rolled, en1, en2Size, 0.0001, { versionBits: 0x00a00000, en2: 'ABCDEF0000000001' }).map((s) => s.toUpperCase());
    share[0] = 'acct.w1';
    const r = await c.request(4, 'mining.submit', share);
    assert.equal(r.result, true, JSON.stringify(r));
    const bad = solveShare(notify, en1, en2Size, 0.0001, { versionBits: 0x00000001 << 0, en2: '0000000000000009' });
    assert.equal(code(await c.request(5, 'mining.submit', bad)), 20);
    assert.ok(!c.closed);
    c.close();
  });

  test('NiceHash-style proxy: several workers on one connection, each credited; unknown worker refused 24', async () => {
    const c = await connect(port);
    const sub = await c.request(1, 'mining.subscribe', ['NiceHash/1.0.0']);
    await c.request(2, 'mining.extranonce.subscribe', []);
    for (let i = 1; i <= 3; i++) assert.equal((await c.request(10 + i, 'mining.authorize', [`acct.w${i}`, 'x'])).result, true);
    const notify = await c.waitFor(isNotify);
    const [, en1, en2Size] = sub.result as [unknown, string, number];
    for (let i = 1; i <= 3; i++) {
      const share = solveShare(notify, en1, en2Size, 0.0001, { en2: `00000000000000${i}0` });
      share[0] = `acct.w${i}`;
      assert.equal((await c.request(20 + i, 'mining.submit', share)).result, true);
    }
    const share = solveShare(notify, en1, en2Size, 0.0001, { en2: '00000000000000ff' });
    share[0] = 'acct.w9';
    assert.equal(code(await c.request(30, 'mining.submit', share)), 24);
    c.close();
  });

  test('authorize before subscribe, then a share', async () => {
    const c = await connect(port);
    assert.equal((await c.request(1, 'mining.authorize', ['acct.w1', 'x'])).result, true);
    const sub = await c.request(2, 'mining.subscribe', []);
    const notify = await c.waitFor(isNotify);
    const [, en1, en2Size] = sub.result as [unknown, string, number];
    assert.equal((await c.request(3, 'mining.submit', solveShare(notify, en1, en2Size, 0.0001))).result, true);
    c.close();
  });
});

test('a proxy authorizing 700 workers at once on one connection: every worker authorized, never disconnected', async () => {
  const { pool, port } = await startTestPool(new StubNode());
  try {
    const c = await connect(port);
    await c.request(1, 'mining.subscribe', ['stratum-proxy/1.0']);
    let lines = '';
    for (let i = 0; i < 700; i++) lines += JSON.stringify({ id: 100 + i, method: 'mining.authorize', params: [`acct.rig${i}`, 'x'] }) + '\n';
    c.send(lines);
    await c.waitFor((m) => m.id === 799, 10_000).catch(() => {});
    await sleep(200);
    const answers = c.messages.filter((m) => typeof m.id === 'number' && m.id >= 100);
    const refused = answers.filter((m) => m.result !== true);
    assert.equal(c.closed, false, `closed; ${refused.length} refused, first: ${JSON.stringify(refused[0])}`);
    assert.equal(refused.length, 0, `first refused: ${JSON.stringify(refused[0])}`);
    assert.equal(answers.length, 700);
    c.close();
  } finally { await pool.stop(100); }
});

test('client.reconnect carries the port as a string: cgminer/bmminer read it with json_string_value only', async () => {
  // cgminer's parse_reconnect (and bmminer, Antminer firmware built on it): `port = json_string_value(...)`, else the
  // current port; a number sent the miner to the new host on its old port. ckpool sends a string; cpuminer, bfgminer
  // and hashhub's own upstream client take either.
  const { pool, port } = await startTestPool(new StubNode(), { reconnectHost: 'pool2.example.com', reconnectPort: 3334 });
  const c = await connect(port);
  await c.request(1, 'mining.subscribe', ['bmminer/2.0.0']);
  await c.request(2, 'mining.authorize', ['acct.w1', 'x']);
  await c.waitFor(isNotify);
  const stopped = pool.stop(300);
  await c.waitFor((m) => m.method === 'client.reconnect');
  const line = c.raw.find((l) => l.includes('client.reconnect'));
  assert.equal(line, '{"id":null,"method":"client.reconnect","params":["pool2.example.com","3334",0]}');
  await stopped;
});

test('a very slow miner: idle retarget steps far below the start, the re-issued job takes shares at the new difficulty', async () => {
  const { pool, port } = await startTestPool(new StubNode(), { initialDifficulty: 1, vardiff: { targetIntervalMs: 100, idleRetargetMs: 200 } as never });
  try {
    const c = await connect(port);
    const sub = await c.request(1, 'mining.subscribe', ['NerdMiner/1.6']);
    await c.request(2, 'mining.authorize', ['acct.w1', 'x']);
    await c.waitFor(isNotify);
    const isLow = (m: Msg) => m.method === 'mining.set_difficulty' && (m.params![0] as number) <= 0.0003;
    const from = c.messages.findIndex(isLow) >= 0 ? 0 : c.messages.length;
    const low = await c.waitFor(isLow, 10_000, from);
    const d = low.params![0] as number;
    const job = await c.waitFor(isNotify, 5000, c.messages.indexOf(low));
    const [, en1, en2Size] = sub.result as [unknown, string, number];
    assert.equal((await c.request(3, 'mining.submit', solveShare(job, en1, en2Size, d))).result, true);
    assert.ok(!c.closed);
    c.close();
  } finally { await pool.stop(100); }
});
