// Operator-facing configuration checks (issue 10 items 17, 21, 24): pool tag length in bytes, secrets never
// printed by `hashhub config`, and an address of the wrong network named as such.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import pino from 'pino';
import { addressNetworks, addressToScript } from '../src/chain/index.ts';
import { ConfigError, POOL_TAG_MAX_BYTES, loadConfig, redactConfig } from '../src/cli/config.ts';
import { JobManager } from '../src/shares/jobs.ts';
import { Pool } from '../src/pool/pool.ts';
import { InProcessShareLog } from '../src/shares/events.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import type { StratumSession } from '../src/stratum/session.ts';
import { StubNode } from './helpers/stub-node.ts';
import { fakeTemplate } from './helpers/template.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const MAINNET = 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4';
const MAINNET_P2PKH = '1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2';
const TESTNET = 'tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx';
const REGTEST = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

// ---- item 17: poolTag in bytes ----------------------------------------------------------------------------

test('poolTag: multi-byte UTF-8 is counted in bytes, and the error names the limit', () => {
  const tag = '/ハッシュハブのプール・テスト/'; // 16 characters, 44 bytes
  assert.ok(tag.length <= POOL_TAG_MAX_BYTES && Buffer.byteLength(tag) > POOL_TAG_MAX_BYTES);
  assert.throws(() => loadConfig({ env: { HASHHUB_POOL_TAG: tag } }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /poolTag: is 44 bytes in UTF-8; at most 40 bytes/);
    return true;
  });
  const ok = '/ハッシュハブ・プール/'; // 12 characters, 32 bytes
  assert.equal(loadConfig({ env: { HASHHUB_POOL_TAG: ok } }).poolTag, ok);
});

test('poolTag: the longest tag allowed still builds a job with the largest extranonce', () => {
  const tag = 'é'.repeat(POOL_TAG_MAX_BYTES / 2); // 40 bytes
  const cfg = loadConfig({ env: { HASHHUB_POOL_TAG: tag, HASHHUB_EXTRANONCE2_SIZE: '16' } });
  const jobs = new JobManager({
    extranonceSize: 4 + cfg.stratum.extranonce2Size,
    tag: Buffer.from(cfg.poolTag, 'utf8'),
    outputs: (value) => [{ value, scriptPubKey: addressToScript(REGTEST, 'regtest') }],
  });
  // A height that needs the longest BIP34 push (4 bytes of height).
  const { job } = jobs.addTemplate(fakeTemplate({ height: 0x7fffff00 }), Date.now());
  assert.ok(job.id);
});

// ---- item 21: hashhub config redacts secrets ---------------------------------------------------------------

test('redactConfig: passwords in node URLs, database URLs (user:pass@ and ?password=) and secret fields', () => {
  const out = redactConfig({
    node: { urls: ['http://rpcuser:s3cret@127.0.0.1:8332/', 'http://10.0.0.2:8332'], password: 'hunter2', user: 'rpcuser' },
    database: { url: 'postgres://pool:pgs3cret@db:5432/hashhub?sslmode=require&password=other' },
    api: { operatorToken: 'tok', port: 8080 },
    poolTag: '/x/',
  });
  const text = JSON.stringify(out);
  for (const secret of ['s3cret', 'hunter2', 'pgs3cret', 'other', 'tok"']) assert.ok(!text.includes(secret), `${secret} printed: ${text}`);
  assert.equal(out.node.urls[0], 'http://rpcuser:***@127.0.0.1:8332/');
  assert.equal(out.node.urls[1], 'http://10.0.0.2:8332', 'a URL without a password is unchanged');
  assert.equal(out.node.user, 'rpcuser');
  assert.match(out.database.url, /^postgres:\/\/pool:\*\*\*@db:5432\/hashhub\?sslmode=require&password=\*\*\*$/);
  assert.equal(out.api.port, 8080);
});

test('`hashhub config` (the CLI) never prints the node or database password', async () => {
  const r = await cli(['config'], {
    HASHHUB_NETWORK: 'regtest',
    HASHHUB_NODE_URLS: 'http://alice:nodepass123@127.0.0.1:18443',
    HASHHUB_PAYOUT_ADDRESS: REGTEST,
    DATABASE_URL: 'postgres://pool:dbpass456@127.0.0.1:5432/hashhub',
    HASHHUB_NODE_PASSWORD: 'envpass789',
  });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /nodepass123|dbpass456|envpass789/);
  const cfg = JSON.parse(r.stdout) as { node: { urls: string[]; password: string }; database: { url: string } };
  assert.deepEqual(cfg.node.urls, ['http://alice:***@127.0.0.1:18443/']);
  assert.equal(cfg.node.password, '***');
  assert.equal(cfg.database.url, 'postgres://pool:***@127.0.0.1:5432/hashhub');
});

// ---- item 24: an address of another network is named as such -----------------------------------------------

test('addressNetworks tells the network of an address', () => {
  assert.deepEqual(addressNetworks(MAINNET), ['mainnet']);
  assert.deepEqual(addressNetworks(REGTEST), ['regtest']);
  assert.deepEqual(addressNetworks(TESTNET), ['testnet', 'signet']);
  assert.deepEqual(addressNetworks('nonsense'), []);
});

test('payoutAddress of mainnet on regtest (and the reverse): the message names the networks', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ HASHHUB_PAYOUT_ADDRESS: MAINNET }, /payoutAddress: ".*" is a mainnet address, but this pool runs on regtest \(regtest addresses look like bcrt1…/],
    [{ HASHHUB_PAYOUT_ADDRESS: MAINNET_P2PKH }, /is a mainnet address, but this pool runs on regtest/],
    [{ HASHHUB_NETWORK: 'mainnet', HASHHUB_NODE_URLS: 'http://127.0.0.1:8332', HASHHUB_PAYOUT_ADDRESS: REGTEST }, /is a regtest address, but this pool runs on mainnet \(mainnet addresses look like bc1…/],
    [{ HASHHUB_NETWORK: 'mainnet', HASHHUB_NODE_URLS: 'http://127.0.0.1:8332', HASHHUB_PAYOUT_ADDRESS: TESTNET }, /is a testnet\/signet address, but this pool runs on mainnet/],
  ];
  for (const [env, re] of cases) {
    assert.throws(() => loadConfig({ env }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, re);
      assert.doesNotMatch(e.message, /Unknown letter|Invalid address prefix/);
      return true;
    });
  }
  // Invalid everywhere: the decoder's reason is still given.
  assert.throws(() => loadConfig({ env: { HASHHUB_PAYOUT_ADDRESS: 'bcrt1qnotanaddress' } }), /not a valid regtest address/);
});

test('a miner logging in with a mainnet address on a regtest pool is told which network it is for', () => {
  const pool = new Pool(new StubNode(), {
    network: 'regtest', payoutAddress: REGTEST, poolTag: '/t/', requireAddressAccounts: true,
    stratum: { ...DEFAULT_STRATUM_OPTIONS, host: '127.0.0.1', port: 0 }, templates: { pollMs: 1000, refreshMs: 60_000, longpoll: false }, blocks: { journalDir: null },
  }, new InProcessShareLog(), pino({ level: 'silent' }));
  const session = { id: '1', remoteAddress: '127.0.0.1', userAgent: '' } as StratumSession;
  const r = pool.authorize(`${MAINNET}.rig1`, 'x', session);
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /is a mainnet address, but this pool runs on regtest/);
  assert.equal(pool.authorize(`${REGTEST}.rig1`, 'x', session).ok, true);
});

// ---- the operator token file ---------------------------------------------------------------------------------

test('operator token: an empty or whitespace-only file is replaced atomically by a new token and says so; a good one is kept; a directory is one clear error', async () => {
  const { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, statSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { OperatorTokenError, resolveOperatorToken } = await import('../src/api/auth.ts');
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-token-'));
  try {
    const file = path.join(dir, 'operator.token');
    const first = resolveOperatorToken({ dataDir: dir });
    assert.deepEqual([first.file, first.created, first.regenerated ?? false], [file, true, false]);
    assert.equal(readFileSync(file, 'utf8'), `${first.token}\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const again = resolveOperatorToken({ dataDir: dir });
    assert.deepEqual([again.token, again.created], [first.token, false]);
    for (const empty of ['', ' \n\t\n']) {
      writeFileSync(file, empty);
      const r = resolveOperatorToken({ dataDir: dir });
      assert.ok(r.token.length >= 16, 'a real token, not ""');
      assert.deepEqual([r.created, r.regenerated], [true, true]);
      assert.equal(readFileSync(file, 'utf8').trim(), r.token, 'the file holds the token the pool uses');
      assert.equal(statSync(file).mode & 0o777, 0o600);
    }
    assert.deepEqual(readdirSync(dir), ['operator.token'], 'no temporary file left behind');
    rmSync(file);
    mkdirSync(file);
    assert.throws(() => resolveOperatorToken({ dataDir: dir }), (e: unknown) => e instanceof OperatorTokenError
      && /^cannot read the operator token .*operator\.token \(it is a directory\): fix or remove it/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
