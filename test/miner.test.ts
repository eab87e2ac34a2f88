import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as bitcoin from 'bitcoinjs-lib';
import { CommanderError } from 'commander';
import { buildCoinbase } from '../src/chain/index.ts';
import { StratumMiner, type StratumMinerOptions, type ShareRecord } from '../src/miner/client.ts';
import { Grinder, GrindScheduler, depositBits } from '../src/miner/grinder.ts';
import { parseServerLine } from '../src/miner/messages.ts';
import { fleetWorkerName, runFleet } from '../src/miner/fleet.ts';
import { LatencyReservoir, percentile } from '../src/miner/stats.ts';
import { parseDuration, parseHashrate, parseStratumUrl, UsageError } from '../src/miner/units.ts';
import { minerCommand, runMinerCli } from '../src/miner/cli.ts';
import { plainMerkleRoot, plainSha256d } from './helpers/merkle.ts';

// ---------------------------------------------------------------------------------------------------------------
// Independent share check: plain node:crypto and bitcoinjs-lib, none of the pool's WorkHasher.

const DIFF1 = 0xffffn << 208n;
const sha256d = plainSha256d;
const leBigInt = (h: Uint8Array): bigint => BigInt(`0x${Buffer.from(h).reverse().toString('hex')}`);

/** Stratum branch for leaf 0, computed here from the full tree (not with src/chain's helper). */
function branchFor(others: Buffer[]): Buffer[] {
  const branch: Buffer[] = [];
  let level: Buffer[] = [Buffer.alloc(32), ...others];
  while (level.length > 1) {
    branch.push(level[1] ?? level[0]);
    const next: Buffer[] = [Buffer.alloc(32)];
    for (let i = 2; i < level.length; i += 2) next.push(sha256d(Buffer.concat([level[i], level[i + 1] ?? level[i]])));
    level = next;
  }
  return branch;
}

/** A share difficulty 1/n with its exact target. */
interface Diff { value: number; target: bigint }
const diffOneIn = (n: number): Diff => ({ value: 1 / n, target: DIFF1 * BigInt(n) });

interface TestJob {
  id: string;
  prevHash: Buffer; // internal order, as in the header
  coinb1: Buffer;
  coinb2: Buffer;
  txids: Buffer[];
  version: number;
  bits: number;
  ntime: number;
}

let jobSeq = 0;
function makeJob(opts: { bits?: number; version?: number } = {}): TestJob {
  const { coinb1, coinb2 } = buildCoinbase({
    height: 1000 + jobSeq,
    extranonceSize: 8,
    tag: Buffer.from('/hashhub-test/'),
    outputs: [{ value: 5_000_000_000n, scriptPubKey: Buffer.concat([Buffer.from([0x00, 0x14]), crypto.randomBytes(20)]) }],
  });
  return {
    id: `j${++jobSeq}`,
    prevHash: crypto.randomBytes(32),
    coinb1,
    coinb2,
    txids: [crypto.randomBytes(32), crypto.randomBytes(32), crypto.randomBytes(32)],
    version: opts.version ?? 0x20000000,
    bits: opts.bits ?? 0x207fffff, // regtest
    ntime: Math.floor(Date.now() / 1000),
  };
}

function notifyParams(job: TestJob, clean: boolean): unknown[] {
  const swapped = Buffer.alloc(32); // notify prevhash: each 4-byte word byte-swapped
  for (let i = 0; i < 32; i += 4) for (let k = 0; k < 4; k++) swapped[i + k] = job.prevHash[i + 3 - k];
  const hex8 = (v: number) => (v >>> 0).toString(16).padStart(8, '0');
  return [job.id, swapped.toString('hex'), job.coinb1.toString('hex'), job.coinb2.toString('hex'),
    branchFor(job.txids).map((b) => b.toString('hex')), hex8(job.version), hex8(job.bits), hex8(job.ntime), clean];
}

interface Checked {
  ok: boolean;
  why: string;
  jobId: string;
  /** Achieved difficulty, as diff1/hash. */
  achieved: number;
  versionBits: number | null;
  block: boolean;
}

function checkShare(job: TestJob, en1: Buffer, params: string[], diff: Diff, mask: number | null): Checked {
  const [, jobId, en2hex, ntimeHex, nonceHex, vbitsHex] = params;
  const fail = (why: string): Checked => ({ ok: false, why, jobId, achieved: 0, versionBits: null, block: false });
  if (!/^[0-9a-f]{8}$/.test(ntimeHex) || !/^[0-9a-f]{8}$/.test(nonceHex)) return fail('ntime/nonce not 8 hex digits');
  const coinbase = Buffer.concat([job.coinb1, en1, Buffer.from(en2hex, 'hex'), job.coinb2]);
  const cbTxid = Buffer.from(bitcoin.Transaction.fromBuffer(coinbase).getHash());
  let version = job.version;
  let versionBits: number | null = null;
  if (mask === null) {
    if (vbitsHex !== undefined) return fail('version bits sent without version rolling');
  } else {
    if (vbitsHex === undefined) return fail('no version bits with version rolling');
    versionBits = parseInt(vbitsHex, 16) >>> 0;
    if ((versionBits & ~mask) !== 0) return fail(`version bits ${vbitsHex} outside mask ${mask.toString(16)}`);
    version = ((job.version & ~mask) | versionBits) >>> 0;
  }
  const block = new bitcoin.Block();
  block.version = version | 0;
  block.prevHash = job.prevHash;
  block.merkleRoot = plainMerkleRoot([cbTxid, ...job.txids]);
  block.timestamp = parseInt(ntimeHex, 16);
  block.bits = job.bits;
  block.nonce = parseInt(nonceHex, 16);
  const h = leBigInt(block.getHash());
  if (block.timestamp < job.ntime || block.timestamp > job.ntime + 120) return fail('ntime out of range');
  if (h > diff.target) return fail(`hash above share target`);
  return { ok: true, why: '', jobId, achieved: Number(DIFF1) / Number(h), versionBits, block: block.checkProofOfWork() };
}

// ---------------------------------------------------------------------------------------------------------------
// A scripted fake pool.

interface Submit { conn: FakeConn; id: number; params: string[]; check: Checked; at: number }

class FakeConn {
  readonly received: { id: unknown; method: string; params: unknown[] }[] = [];
  readonly en1: Buffer;
  mask: number | null = null;
  diff: Diff = diffOneIn(1);
  /** Difficulty and mask in force for each job sent on this connection. */
  readonly jobState = new Map<string, { diff: Diff; mask: number | null }>();
  private buf = '';
  readonly connectedAt = Date.now();
  constructor(readonly pool: FakePool, readonly socket: net.Socket, index: number) {
    this.en1 = Buffer.from((0xa0000000 + index).toString(16), 'hex');
    socket.setNoDelay(true);
    socket.on('data', (d) => {
      this.buf += d.toString('utf8');
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) !== -1) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (line.trim()) this.onMessage(JSON.parse(line));
      }
    });
    socket.on('error', () => { /* the miner side closing first is normal here */ });
  }
  send(obj: unknown): void {
    if (!this.socket.destroyed) this.socket.write(`${JSON.stringify(obj)}\n`);
  }
  reply(id: unknown, result: unknown, error: unknown = null): void {
    this.send({ id, result, error });
  }
  setDifficulty(d: Diff): void {
    this.diff = d;
    this.send({ id: null, method: 'mining.set_difficulty', params: [d.value] });
  }
  notify(job: TestJob, clean = true): void {
    this.pool.jobs.set(job.id, job);
    this.jobState.set(job.id, { diff: this.diff, mask: this.mask });
    this.send({ id: null, method: 'mining.notify', params: notifyParams(job, clean) });
  }
  private onMessage(m: { id: number; method: string; params: unknown[] }): void {
    this.received.push(m);
    const hooks = this.pool.hooks;
    switch (m.method) {
      case 'mining.configure': {
        const granted = this.pool.grantMask;
        if (granted === undefined) return; // a pool that ignores configure
        this.mask = granted;
        this.reply(m.id, granted === null ? { 'version-rolling': false } : { 'version-rolling': true, 'version-rolling.mask': granted.toString(16).padStart(8, '0') });
        return;
      }
      case 'mining.subscribe':
        this.reply(m.id, [[['mining.notify', 'sub1']], this.en1.toString('hex'), 4]);
        return;
      case 'mining.authorize':
        if (hooks.authorize) return hooks.authorize(this, m.id, m.params as string[]);
        this.reply(m.id, true);
        hooks.afterAuthorize?.(this);
        return;
      case 'mining.submit': {
        const params = m.params as string[];
        const job = this.pool.jobs.get(params[1]);
        const st = this.jobState.get(params[1]);
        const check = job && st ? checkShare(job, this.en1, params, st.diff, st.mask) : { ok: false, why: 'unknown job', jobId: params[1], achieved: 0, versionBits: null, block: false };
        const s: Submit = { conn: this, id: m.id, params, check, at: Date.now() };
        this.pool.submits.push(s);
        if (!check.ok) this.pool.invalid.push(`${params.join(',')}: ${check.why}`);
        if (hooks.submit) return hooks.submit(s);
        this.reply(m.id, check.ok, check.ok ? null : [23, check.why, null]);
        return;
      }
      case 'mining.suggest_difficulty':
      case 'mining.extranonce.subscribe':
        this.reply(m.id, true);
        return;
      default:
        this.reply(m.id, null, [20, 'unknown method', null]);
    }
  }
}

interface Hooks {
  afterAuthorize?: (c: FakeConn) => void;
  authorize?: (c: FakeConn, id: number, params: string[]) => void;
  submit?: (s: Submit) => void;
}

class FakePool {
  readonly conns: FakeConn[] = [];
  readonly jobs = new Map<string, TestJob>();
  readonly submits: Submit[] = [];
  readonly invalid: string[] = [];
  hooks: Hooks;
  /** undefined: ignore mining.configure; null: refuse version rolling. */
  grantMask: number | null | undefined;
  private constructor(readonly server: net.Server, opts: { hooks?: Hooks; grantMask?: number | null }) {
    this.hooks = opts.hooks ?? {};
    this.grantMask = 'grantMask' in opts ? opts.grantMask : 0x1fffe000;
  }
  static async start(opts: { hooks?: Hooks; grantMask?: number | null; tls?: tls.TlsOptions } = {}): Promise<FakePool> {
    let pool!: FakePool;
    const onConn = (s: net.Socket) => pool.conns.push(new FakeConn(pool, s, pool.conns.length));
    const server = opts.tls ? tls.createServer(opts.tls, onConn) : net.createServer(onConn);
    pool = new FakePool(server, opts);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    openPools.add(pool);
    return pool;
  }
  get port(): number { return (this.server.address() as net.AddressInfo).port; }
  get url(): string { return `stratum+tcp://127.0.0.1:${this.port}`; }
  submitsFor(jobId: string): Submit[] { return this.submits.filter((s) => s.params[1] === jobId); }
  async close(): Promise<void> {
    openPools.delete(this);
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const openPools = new Set<FakePool>();
const openMiners = new Set<StratumMiner>();
after(async () => {
  await Promise.all([...openMiners].map((m) => m.stop()));
  await Promise.all([...openPools].map((p) => p.close()));
});

function miner(opts: Partial<StratumMinerOptions> & { port: number }): StratumMiner {
  const m = new StratumMiner({ host: '127.0.0.1', user: 'bcrt1qtest.rig', reconnectInitialMs: 30, ...opts });
  openMiners.add(m);
  return m.start();
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------

describe('miner: framing, parsing, units', () => {
  test('server messages parse into types; malformed known ones are errors, unknown ones ignored', () => {
    const job = makeJob();
    const n = parseServerLine(JSON.stringify({ id: null, method: 'mining.notify', params: notifyParams(job, true) }));
    assert.equal(n.kind, 'notify');
    assert.equal(n.kind === 'notify' && n.params.bits, 0x207fffff);
    assert.deepEqual(parseServerLine('{"id":3,"result":null,"error":[21,"Job not found",null]}'),
      { kind: 'response', id: 3, result: null, error: { code: 21, message: 'Job not found' } });
    assert.deepEqual(parseServerLine('{"id":null,"method":"client.reconnect","params":["pool2","3334","5"]}'),
      { kind: 'reconnect', host: 'pool2', port: 3334, waitSec: 5 });
    assert.deepEqual(parseServerLine('{"id":null,"method":"mining.set_difficulty","params":[0.0001]}'), { kind: 'set_difficulty', difficulty: 0.0001 });
    assert.deepEqual(parseServerLine('{"id":null,"method":"vendor.thing","params":[]}'), { kind: 'unknown', method: 'vendor.thing' });
    assert.throws(() => parseServerLine('{"id":null,"method":"mining.set_difficulty","params":[0]}'), /malformed/);
    assert.throws(() => parseServerLine('{"id":null,"method":"mining.notify","params":["x"]}'), /malformed/);
    assert.throws(() => parseServerLine('not json'), /invalid JSON/);
    // An error answer in a shape nobody documented is still an error answer, not a hang until timeout.
    assert.deepEqual(parseServerLine('{"id":4,"result":null,"error":[21]}'), { kind: 'response', id: 4, result: null, error: { code: 21, message: '' } });
    assert.deepEqual(parseServerLine('{"id":4,"result":null,"error":{"reason":"x"}}'), { kind: 'response', id: 4, result: null, error: { code: null, message: '{"reason":"x"}' } });
    assert.deepEqual(parseServerLine('{"id":null,"method":"client.reconnect","params":[null,null,null]}'), { kind: 'reconnect', host: undefined, port: undefined, waitSec: 0 });
  });

  test('units: hash rates, durations, pool URLs', () => {
    assert.equal(parseHashrate('2M'), 2e6);
    assert.equal(parseHashrate('500k'), 5e5);
    assert.equal(parseHashrate('1.5G'), 1.5e9);
    assert.equal(parseHashrate('2 MH/s'), 2e6);
    assert.equal(parseHashrate('0'), 0);
    assert.throws(() => parseHashrate('fast'), UsageError);
    assert.throws(() => parseHashrate('-1M'), UsageError);
    assert.equal(parseDuration('60s'), 60_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('90'), 90_000);
    assert.throws(() => parseDuration('soon'), UsageError);
    assert.deepEqual(parseStratumUrl('stratum+tcp://127.0.0.1:3333'), { host: '127.0.0.1', port: 3333, tls: false });
    assert.deepEqual(parseStratumUrl('stratum+ssl://pool.example:443'), { host: 'pool.example', port: 443, tls: true });
    assert.deepEqual(parseStratumUrl('[::1]:3333'), { host: '::1', port: 3333, tls: false });
    assert.throws(() => parseStratumUrl('http://x:1'), /unsupported scheme/);
    assert.throws(() => parseStratumUrl('stratum+tcp://host'), /no port/);
    assert.throws(() => parseStratumUrl('stratum+tcp://u:p@host:1'), /host:port only/);
  });

  test('depositBits scatters a counter into the mask; reservoir and percentiles', () => {
    assert.equal(depositBits(0b11, 0x1fffe000), 0x6000);
    assert.equal(depositBits(0xffff, 0x1fffe000), 0x1fffe000);
    assert.equal(depositBits(0x1_0000, 0x1fffe000), 0); // beyond the mask's 16 bits: wraps
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
    assert.equal(percentile([5, 1, 3, 2, 4], 99), 5);
    assert.ok(Number.isNaN(percentile([], 50)));
    const r = new LatencyReservoir(100);
    for (let i = 1; i <= 10_000; i++) r.record(i);
    assert.equal(r.values().length, 100);
    assert.equal(r.count, 10_000);
    assert.equal(r.max, 10_000);
    assert.ok(r.p50() > 2000 && r.p50() < 8000, `uniform sample median ${r.p50()}`);
    assert.equal(fleetWorkerName('addr', 3, 10), 'addr.w3');
    assert.equal(fleetWorkerName('addr.rig', 3, 10), 'addr.rig3');
    assert.equal(fleetWorkerName('addr.rig', 0, 1), 'addr.rig');
  });

  test('grinder (no network): every share it reports is real work at the target', () => {
    const job = makeJob();
    const en1 = Buffer.from('01020304', 'hex');
    const d = diffOneIn(2_000_000);
    const found: string[][] = [];
    const g = new Grinder({
      hashrate: 0,
      onShare: (s) => found.push(['u', s.job.jobId, s.extranonce2.toString('hex'), s.ntime.toString(16).padStart(8, '0'), s.nonce.toString(16).padStart(8, '0'), (s.versionBits as number).toString(16).padStart(8, '0')]),
    });
    g.setVersionMask(0x1fffe000);
    g.setJob({
      jobId: job.id, prevHash: job.prevHash, coinb1: job.coinb1, coinb2: job.coinb2, branch: branchFor(job.txids), version: job.version,
      bits: job.bits, ntime: job.ntime, clean: true, difficulty: d.value, extranonce1: en1, extranonce2Size: 4, receivedAtMs: Date.now(),
    });
    while (found.length < 5) g.grind(1000, Date.now());
    for (const p of found) {
      const c = checkShare(job, en1, p, d, 0x1fffe000);
      assert.ok(c.ok, c.why);
      assert.ok(c.block, 'regtest bits: every share is also a block');
    }
    assert.ok(new Set(found.map((p) => p[5])).size > 1, 'version bits are rolled');
  });
});

describe('miner against a scripted pool', () => {
  test('handshake, valid shares, version bits only within the granted mask, set_version_mask', async () => {
    const d = diffOneIn(1_000_000);
    const job1 = makeJob();
    const job2 = makeJob();
    const pool = await FakePool.start({
      grantMask: 0x007fe000, // narrower than asked: the miner must use what the pool answers
      hooks: { afterAuthorize: (c) => { c.setDifficulty(d); c.notify(job1); } },
    });
    const m = miner({ port: pool.port, versionRolling: true, suggestDifficulty: 0.5, extranonceSubscribe: true, password: 'pw', userAgent: 'test-agent/1' });
    await waitFor(() => pool.submitsFor(job1.id).length >= 15, '15 shares for job 1');
    const c = pool.conns[0];
    const methods = c.received.map((r) => r.method).slice(0, 5);
    assert.deepEqual(methods, ['mining.configure', 'mining.subscribe', 'mining.suggest_difficulty', 'mining.authorize', 'mining.extranonce.subscribe']);
    assert.deepEqual(c.received[0].params, [['version-rolling'], { 'version-rolling.mask': '1fffe000', 'version-rolling.min-bit-count': 2 }]);
    assert.deepEqual(c.received[1].params, ['test-agent/1']);
    assert.deepEqual(c.received[2].params, [0.5]);
    assert.deepEqual(c.received[3].params, ['bcrt1qtest.rig', 'pw']);
    const ids = c.received.map((r) => r.id as number);
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), `request ids increase: ${ids.join(',')}`);
    assert.equal(m.versionMask, 0x007fe000);

    const bits1 = pool.submitsFor(job1.id).map((s) => s.check.versionBits as number);
    assert.ok(bits1.every((b) => (b & ~0x007fe000) === 0));
    assert.ok(new Set(bits1).size > 1, 'version bits vary');
    // The pool narrows the mask; work from the next job on must respect it.
    c.mask = 0x0000e000;
    c.send({ id: null, method: 'mining.set_version_mask', params: ['0000e000'] });
    c.notify(job2);
    await waitFor(() => pool.submitsFor(job2.id).length >= 10, '10 shares for job 2');
    assert.deepEqual(pool.invalid, [], 'every submitted share verified independently');
    assert.ok(pool.submits.every((s) => s.check.block), 'regtest bits: every share is a block');
    await m.stop(2000); // waits for the answers to shares in flight
    const st = m.stats();
    assert.equal(st.submitted, pool.submits.length);
    assert.equal(st.accepted, st.submitted);
    assert.equal(st.pending, 0);
    assert.equal(st.blocks, st.submitted);
    assert.ok(st.hashes > st.submitted * 1000, `hashes counted (${st.hashes})`);
    await pool.close();
  });

  test('set_difficulty applies from the next notify; no version param without rolling; no blocks at mainnet bits', async () => {
    const d1 = diffOneIn(200_000);
    const d2 = diffOneIn(2_000_000); // 10x easier
    const job1 = makeJob({ bits: 0x1d00ffff });
    const job2 = makeJob({ bits: 0x1d00ffff });
    const pool = await FakePool.start({ hooks: { afterAuthorize: (c) => { c.setDifficulty(d1); c.notify(job1); } } });
    const shares: ShareRecord[] = [];
    const m = miner({ port: pool.port });
    m.on('share', (s) => shares.push(s));
    await waitFor(() => pool.submitsFor(job1.id).length >= 3, 'shares for job 1');
    const c = pool.conns[0];
    c.setDifficulty(d2); // no notify yet: job 1 keeps d1 (the check uses the difficulty recorded at its notify)
    const n1 = pool.submitsFor(job1.id).length;
    await waitFor(() => pool.submitsFor(job1.id).length >= n1 + 3, 'more shares for job 1');
    assert.ok(pool.submitsFor(job1.id).every((s) => s.check.achieved >= d1.value), 'job 1 shares stay at the old difficulty');
    c.notify(job2);
    await waitFor(() => pool.submitsFor(job2.id).length >= 20, 'shares for job 2');
    const easy = pool.submitsFor(job2.id).filter((s) => s.check.achieved < d1.value).length;
    assert.ok(easy > 0, 'the new (lower) difficulty is used for job 2');
    assert.deepEqual(pool.invalid, []);
    assert.ok(pool.submits.every((s) => s.params.length === 5), 'no version bits param without version rolling');
    await waitFor(() => shares.length === pool.submits.length, 'answers');
    assert.equal(m.stats().blocks, 0);
    assert.ok(shares.every((s) => !s.block && s.difficulty >= s.jobDifficulty));
    assert.ok(shares.filter((s) => s.jobId === job2.id).every((s) => s.jobDifficulty === d2.value));
    await m.stop();
    await pool.close();
  });

  test('clean_jobs: work switches to the new job at once; stale shares are counted by reason', async () => {
    const d = diffOneIn(1_000_000);
    const job1 = makeJob();
    const job2 = makeJob();
    const pool = await FakePool.start({ hooks: { afterAuthorize: (c) => { c.setDifficulty(d); c.notify(job1); } } });
    let switched = false;
    pool.hooks.submit = (s) => {
      const stale = switched && s.params[1] === job1.id;
      s.conn.reply(s.id, stale ? null : s.check.ok, stale ? [21, 'Job not found', null] : null);
    };
    const m = miner({ port: pool.port });
    let jobEvents = 0;
    m.on('job', () => jobEvents++);
    await waitFor(() => pool.submitsFor(job1.id).length >= 3, 'shares for job 1');
    const before = pool.submits.length;
    switched = true;
    pool.conns[0].notify(job2, true);
    await waitFor(() => pool.submitsFor(job2.id).length >= 10, 'shares for job 2');
    const after = pool.submits.slice(before).map((s) => s.params[1]);
    const firstNew = after.indexOf(job2.id);
    // TCP keeps order: only shares written before the miner read the notify can precede the first job-2 share.
    // How many that is depends on how long the notify waited in this shared process's event loop (a CI run saw 3
    // once native hashing made the miner faster); the switch itself is the next assertion: none after it.
    assert.ok(firstNew <= 8, `only the job-1 shares in flight when the notify was read, got ${firstNew}`);
    assert.ok(after.slice(firstNew).every((id) => id === job2.id), 'no job-1 share after switching');
    assert.equal(jobEvents, 2);
    await waitFor(() => m.stats().pending === 0, 'answers');
    const st = m.stats();
    assert.equal(st.rejectedByReason['Job not found'] ?? 0, firstNew);
    assert.deepEqual(pool.invalid, []);
    await m.stop();
    await pool.close();
  });

  test('reconnects after the pool drops the connection, follows client.reconnect, survives an overlong line', async () => {
    const d = diffOneIn(1_000_000);
    const jobB = makeJob();
    const poolB = await FakePool.start({ hooks: { afterAuthorize: (c) => { c.setDifficulty(d); c.notify(jobB); } } });
    const jobA = makeJob();
    const poolA = await FakePool.start({ hooks: { afterAuthorize: (c) => { c.setDifficulty(d); c.notify(jobA); } } });
    const reasons: string[] = [];
    const m = miner({ port: poolA.port, maxLineLength: 4096 });
    m.on('disconnected', (e) => reasons.push(e.reason));
    await waitFor(() => poolA.submits.length >= 1, 'a share on the first connection');
    poolA.conns[0].socket.destroy();
    await waitFor(() => poolA.conns.length === 2 && poolA.submits.some((s) => s.conn === poolA.conns[1]), 'a share after reconnecting');
    assert.notDeepEqual(poolA.conns[0].en1, poolA.conns[1].en1);
    // A line longer than the cap: framing is lost, so the miner drops the connection and comes back.
    poolA.conns[1].socket.write('x'.repeat(5000));
    await waitFor(() => poolA.conns.length === 3 && m.connected, 'reconnect after an overlong line');
    assert.ok(reasons.some((r) => /exceeds 4096/.test(r)), reasons.join(' | '));
    poolA.conns[2].send({ id: null, method: 'client.reconnect', params: ['127.0.0.1', poolB.port, 0] });
    await waitFor(() => poolB.submits.length >= 2, 'shares on the pool named by client.reconnect');
    assert.deepEqual([...poolA.invalid, ...poolB.invalid], []);
    const st = m.stats();
    assert.equal(st.connects, 4);
    assert.equal(st.disconnects, 3);
    await m.stop();
    await poolA.close();
    await poolB.close();
  });

  test('rejects are counted by reason; latency is measured per answer; unanswered submits time out', async () => {
    const d = diffOneIn(1_000_000);
    const job = makeJob();
    const pool = await FakePool.start({ hooks: { afterAuthorize: (c) => { c.setDifficulty(d); c.notify(job); } } });
    const answered = { ok: 0, low: 0, dup: 0, silent: 0 };
    pool.hooks.submit = (s) => {
      const k = pool.submits.length % 4;
      if (k === 0 && answered.silent === 0) {
        answered.silent++; // never answered: the miner must time it out
        return;
      }
      // Answer after ~15 ms so the measured latency has a known floor.
      setTimeout(() => {
        if (k === 1) { answered.low++; s.conn.reply(s.id, null, [23, 'Low difficulty share', null]); }
        else if (k === 2) { answered.dup++; s.conn.reply(s.id, false, [22, 'Duplicate share', null]); }
        else { answered.ok++; s.conn.reply(s.id, true); }
      }, 15);
    };
    // The timeout is well above the pool's 15 ms, so a loaded machine's pause does not turn an answer into a timeout.
    const m = miner({ port: pool.port, requestTimeoutMs: 2_000 });
    await waitFor(() => pool.submits.length >= 12, '12 submits');
    m.hashrate = 1; // slow down so answers catch up
    await waitFor(() => m.stats().pending === 0, 'every submit answered or timed out', 10_000);
    const st = m.stats();
    assert.equal(st.accepted, answered.ok);
    assert.deepEqual(st.rejectedByReason, { 'Low difficulty share': answered.low, 'Duplicate share': answered.dup, timeout: 1 });
    assert.equal(st.rejected, answered.low + answered.dup + 1);
    assert.equal(st.submitted, st.accepted + st.rejected);
    assert.equal(st.latency.count, answered.ok + answered.low + answered.dup);
    assert.ok(st.latency.p50 >= 14, `p50 ${st.latency.p50} ms includes the pool's 15 ms`);
    assert.ok(st.latency.p99 >= st.latency.p50 && st.latency.p99 < 2_000, `p99 ${st.latency.p99} ms: answers, not the timeout`);
    await m.stop();
    await pool.close();
  });

  test('throttle: hash rate near the requested one while an unthrottled miner shares the loop, which stays responsive', async () => {
    const job = makeJob({ bits: 0x1d00ffff });
    const pool = await FakePool.start({ hooks: { afterAuthorize: (c) => { c.setDifficulty(diffOneIn(1)); c.notify(job); } } });
    // A backlog of at most 0.25 s of hashing may be banked, so a 1 s window sees at most 1.25 × the asked rate.
    const scheduler = new GrindScheduler({ maxBacklogSec: 0.25 });
    const slow = miner({ port: pool.port, hashrate: 40_000, scheduler });
    const fast = miner({ port: pool.port, hashrate: 0, scheduler, user: 'bcrt1qtest.fast' });
    await waitFor(() => slow.currentJob !== null && fast.currentJob !== null, 'jobs');
    await sleep(200);
    let maxLag = 0;
    let last = performance.now();
    const probe = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last - 10);
      last = now;
    }, 10);
    const h0 = slow.stats().hashes;
    const f0 = fast.stats().hashes;
    const t0 = performance.now();
    // 3 s, not 1: the throttled miner banks at most 0.25 s of work, so a stall of ~750 ms in a 1 s window put it
    // under the bound with correct code.
    await sleep(3000);
    const rate = ((slow.stats().hashes - h0) * 1000) / (performance.now() - t0);
    const fastRate = ((fast.stats().hashes - f0) * 1000) / (performance.now() - t0);
    clearInterval(probe);
    assert.ok(rate > 20_000 && rate < 60_000, `throttled miner at ${rate.toFixed(0)} H/s, asked 40000`);
    assert.ok(fastRate > 1000, `unthrottled miner gets the rest of the CPU (${fastRate.toFixed(0)} H/s)`);
    // Slices are ~4 ms, but a loaded machine can keep the process off its core for 100 ms and more; a loop that
    // hashed without yielding would show a lag of the whole 3 s window.
    assert.ok(maxLag < 1500, `event loop lag ${maxLag.toFixed(1)} ms`);
    await Promise.all([slow.stop(), fast.stop()]);
    assert.equal(scheduler.size, 0);
    await pool.close();
  });

  test('authorization refused is fatal: the miner stops instead of hammering the pool', async () => {
    const pool = await FakePool.start({ hooks: { authorize: (c, id) => c.reply(id, false, [24, 'Unauthorized worker', null]) } });
    const m = miner({ port: pool.port });
    const fatal = await new Promise<Error>((r) => m.once('fatal', r));
    assert.match(fatal.message, /Unauthorized worker/);
    await sleep(100);
    assert.equal(pool.conns.length, 1, 'no reconnect after a refused authorization');
    await pool.close();
  });

  test('TLS: connects with rejectUnauthorized=false, refuses a self-signed certificate by default', async (t) => {
    let dir: string;
    try {
      dir = mkdtempSync(path.join(tmpdir(), 'hashhub-miner-tls-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=localhost', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    } catch (e) {
      t.skip(`openssl unavailable to make a test certificate: ${(e as Error).message}`);
      return;
    }
    const key = readFileSync(path.join(dir, 'key.pem'));
    const cert = readFileSync(path.join(dir, 'cert.pem'));
    rmSync(dir, { recursive: true });
    const job = makeJob();
    const pool = await FakePool.start({ tls: { key, cert }, hooks: { afterAuthorize: (c) => { c.setDifficulty(diffOneIn(1_000_000)); c.notify(job); } } });
    const strict = miner({ port: pool.port, tls: true, reconnect: false });
    const why = await new Promise<string>((r) => strict.once('disconnected', (e) => r(e.reason)));
    assert.match(why, /self[- ]signed|certificate/i);
    await strict.stop();
    const m = miner({ port: pool.port, tls: true, rejectUnauthorized: false });
    await waitFor(() => pool.submits.length >= 2, 'shares over TLS');
    assert.deepEqual(pool.invalid, []);
    await m.stop();
    await pool.close();
  });
});

describe('fleet and CLI', () => {
  test('fleet: worker suffixes, source addresses, ramp-up, aggregate stats, clean stop', async () => {
    const job = makeJob();
    const pool = await FakePool.start({ hooks: { afterAuthorize: (c) => { c.setDifficulty(diffOneIn(1_000_000)); c.notify(job); } } });
    const fleet = runFleet({
      count: 6, totalHashrate: 120_000, url: pool.url, user: 'bcrt1qfleet', password: 'x',
      localAddresses: ['127.0.0.2', '127.0.0.3'], connectRatePerSec: 12, reconnectInitialMs: 30,
    });
    await fleet.rampedUp;
    await waitFor(() => fleet.stats().connected === 6, 'all miners connected');
    await waitFor(() => pool.conns.length === 6 && pool.conns.every((c) => c.received.some((r) => r.method === 'mining.authorize')), 'all authorized');
    const users = pool.conns.map((c) => c.received.find((r) => r.method === 'mining.authorize')?.params[0]).sort();
    assert.deepEqual(users, ['bcrt1qfleet.w0', 'bcrt1qfleet.w1', 'bcrt1qfleet.w2', 'bcrt1qfleet.w3', 'bcrt1qfleet.w4', 'bcrt1qfleet.w5']);
    assert.deepEqual([...new Set(pool.conns.map((c) => c.socket.remoteAddress))].sort(), ['127.0.0.2', '127.0.0.3']);
    const times = pool.conns.map((c) => c.connectedAt);
    // 6 at 12/s: the last starts 417 ms after the first, so only a stall of ~370 ms could bunch them under 50 ms (at
    // 60/s, 83 ms apart, a 35 ms stall did: the ramp timer then starts every miner that is due at once).
    assert.ok(Math.max(...times) - Math.min(...times) >= 50, 'connects are spread by the ramp-up (6 at 12/s)');
    await waitFor(() => fleet.stats().accepted >= 6, 'accepted shares');
    const s = fleet.stats();
    const sum = fleet.miners.reduce((n, m) => n + m.stats().hashes, 0);
    assert.ok(s.hashes >= sum - 1000 && s.hashes > 0);
    assert.equal(s.miners, 6);
    assert.ok(fleet.miners.every((m) => m.hashrate === 20_000));
    assert.ok(s.latency.count >= 6 && s.latency.p50 > 0);
    await fleet.stop();
    await waitFor(() => pool.conns.every((c) => c.socket.destroyed || c.socket.readableEnded), 'pool sees every miner leave');
    assert.deepEqual(pool.invalid, []);
    await pool.close();
  });

  test('cli: runs for a duration and summarizes; exit 1 when nothing connects; clear argument errors', async () => {
    const job = makeJob();
    const pool = await FakePool.start({ hooks: { afterAuthorize: (c) => { c.setDifficulty(diffOneIn(2_000_000)); c.notify(job); } } });
    const out: string[] = [];
    const err: string[] = [];
    const code = await runMinerCli({
      url: pool.url, user: 'bcrt1qcli.rig', password: 'x', hashrate: 0, fleet: 1, durationMs: 700, versionRolling: true,
      tls: false, insecure: false, connectRate: 100, statusIntervalMs: 250, connectTimeoutMs: 2000,
    }, { out: (l) => out.push(l), err: (l) => err.push(l) });
    assert.equal(code, 0, [...out, ...err].join('\n'));
    assert.ok(out.some((l) => /miners 1\/1 up \| shares \d+ ok/.test(l)), out.join('\n'));
    assert.ok(out.some((l) => /^summary \(duration reached\)/.test(l)));
    assert.ok(out.some((l) => /accepted [1-9]/.test(l)));
    await pool.close();

    const closed = await FakePool.start();
    const port = closed.port;
    await closed.close();
    const err2: string[] = [];
    const code2 = await runMinerCli({
      url: `127.0.0.1:${port}`, user: 'u', password: 'x', hashrate: 1000, fleet: 1, versionRolling: false,
      tls: false, insecure: false, connectRate: 100, statusIntervalMs: 10_000, connectTimeoutMs: 300,
    }, { out: () => {}, err: (l) => err2.push(l) });
    assert.equal(code2, 1);
    assert.ok(err2.some((l) => /could not connect to stratum\+tcp:\/\/127\.0\.0\.1:\d+ \(.*ECONNREFUSED/.test(l)), err2.join('\n'));

    const parse = async (...args: string[]): Promise<string> => {
      let msg = '';
      const cmd = minerCommand().exitOverride().configureOutput({ writeErr: (s) => { msg += s; }, writeOut: () => {} });
      await assert.rejects(cmd.parseAsync(args, { from: 'user' }), CommanderError);
      return msg;
    };
    assert.match(await parse('--url', 'http://x:1', '--user', 'u'), /unsupported scheme "http"/);
    assert.match(await parse('--url', '127.0.0.1:1', '--user', 'u', '--hashrate', '2X'), /invalid hash rate "2X"/);
    assert.match(await parse('--url', '127.0.0.1:1', '--user', 'u', '--fleet', '0'), /--fleet must be a positive integer/);
    assert.match(await parse('--user', 'u'), /required option '--url <url>'/);
    assert.match(await parse('--url', '127.0.0.1:1', '--user', 'u', '--local-address', '127.0.0.2,localhost'), /IP addresses, got "localhost"/);
  });

  test('after stop nothing of the miner is left running', async () => {
    await Promise.all([...openMiners].map((m) => m.stop()));
    await Promise.all([...openPools].map((p) => p.close()));
    await sleep(20);
    const left = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate' || r === 'TCPSocketWrap' || r === 'TCPServerWrap');
    assert.deepEqual(left, []);
  });
});
