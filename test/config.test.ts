import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, ENV_MAP, loadConfig, unknownKeys } from '../src/cli/config.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('defaults: regtest on the embedded chain with CPU-friendly difficulty', () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.network, 'regtest');
  assert.deepEqual(c.node.urls, []);
  assert.equal(c.stratum.port, 3333);
  assert.equal(c.stratum.difficulty.initial, 0.0001);
  assert.equal(c.stratum.extranonce2Size, 8);
});

test('mainnet defaults suit ASICs', () => {
  const c = loadConfig({ env: { HASHHUB_NETWORK: 'mainnet', HASHHUB_NODE_URLS: 'http://127.0.0.1:8332', HASHHUB_PAYOUT_ADDRESS: 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4' } });
  assert.equal(c.stratum.difficulty.initial, 16384);
  assert.equal(c.stratum.difficulty.min, 0.0001);
});

test('environment overrides the file; file overrides defaults', () => {
  const file = path.join(dir, 'a.json');
  writeFileSync(file, JSON.stringify({ stratum: { port: 4000, difficulty: { initial: 2 } }, poolTag: '/file/' }));
  const c = loadConfig({ file, env: { HASHHUB_STRATUM_PORT: '5000' } });
  assert.equal(c.stratum.port, 5000);
  assert.equal(c.stratum.difficulty.initial, 2);
  assert.equal(c.poolTag, '/file/');
});

const bad: [string, Parameters<typeof loadConfig>[0], RegExp][] = [
  ['unknown network', { env: { HASHHUB_NETWORK: 'moonnet' } }, /network/],
  ['port not a number', { env: { HASHHUB_STRATUM_PORT: 'abc' } }, /HASHHUB_STRATUM_PORT="abc" is not a number/],
  ['port out of range', { env: { HASHHUB_STRATUM_PORT: '70000' } }, /stratum\.port/],
  ['real node without a payout address', { env: { HASHHUB_NODE_URLS: 'http://127.0.0.1:8332' } }, /payoutAddress .* is required/],
  ['invalid payout address', { env: { HASHHUB_PAYOUT_ADDRESS: 'bcrt1qnotanaddress' } }, /payoutAddress: .*not a valid regtest address/],
  ['address of another network', { env: { HASHHUB_PAYOUT_ADDRESS: 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4' } }, /is a mainnet address, but this pool runs on regtest/],
  ['address with stray whitespace', { env: { HASHHUB_PAYOUT_ADDRESS: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080 ' } }, /whitespace/],
  ['embedded chain on mainnet', { env: { HASHHUB_NETWORK: 'mainnet' } }, /embedded chain is regtest only/],
  ['min above max', { env: { HASHHUB_MIN_DIFFICULTY: '10', HASHHUB_MAX_DIFFICULTY: '1' } }, /min .* is above/],
  ['bad boolean', { env: { HASHHUB_REQUIRE_ADDRESS_ACCOUNTS: 'maybe' } }, /must be true or false/],
  ['missing file', { file: path.join(dir, 'nope.json'), env: {} }, /cannot read config file/],
  ['several Stratum processes on the embedded database', { env: { HASHHUB_STRATUM_PROCESSES: '2' } }, /stratum\.processes \(2, HASHHUB_STRATUM_PROCESSES\) needs PostgreSQL/],
  ['node ids past 255', { env: { HASHHUB_STRATUM_PROCESSES: '4', HASHHUB_NODE_ID: '253', DATABASE_URL: 'postgres://127.0.0.1/x' } }, /stratum\.nodeId \(253\) \+ stratum\.processes \(4\)/],
  ['bad node URL', { env: { HASHHUB_NODE_URLS: 'not a url', HASHHUB_PAYOUT_ADDRESS: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' } }, /node\.urls\.0/],
];
for (const [name, opts, re] of bad) {
  test(`bad config is refused with a clear message: ${name}`, () => {
    assert.throws(() => loadConfig(opts), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  });
}

test('invalid JSON file', () => {
  const file = path.join(dir, 'bad.json');
  writeFileSync(file, '{ "network": ');
  assert.throws(() => loadConfig({ file, env: {} }), /not valid JSON/);
});

test('the CLI exits 2 with the message, no stack trace, on bad config', async () => {
  const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pool'], { env: { ...process.env, HASHHUB_NETWORK: 'moonnet' }, cwd: path.resolve(import.meta.dirname, '..') }, (err, _stdout, stderr) => {
      resolve({ code: err ? (err as NodeJS.ErrnoException & { code: number }).code : 0, stderr });
    });
  });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /hashhub: invalid configuration/);
  assert.match(out.stderr, /network/);
  assert.doesNotMatch(out.stderr, /at .*\.ts:\d+/);
});

test('routing.meterBucketSeconds divides a minute, and market ticks are whole buckets', () => {
  assert.equal(loadConfig({ env: {} }).routing.meterBucketSeconds, 60);
  const c = loadConfig({ env: { HASHHUB_ROUTING_METER_BUCKET_SECONDS: '5', HASHHUB_MARKET_TICK_SECONDS: '10' } });
  assert.equal(c.routing.meterBucketSeconds, 5);
  assert.throws(() => loadConfig({ env: { HASHHUB_ROUTING_METER_BUCKET_SECONDS: '7', HASHHUB_MARKET_TICK_SECONDS: '14' } }), (e: unknown) => e instanceof ConfigError && /must divide a minute/.test(e.message));
  assert.throws(() => loadConfig({ env: { HASHHUB_MARKET_TICK_SECONDS: '10' } }), (e: unknown) => e instanceof ConfigError && /multiple of routing.meterBucketSeconds \(60\)/.test(e.message));
  // A tick divides an hour (so a UTC day and an hour are whole ticks): a 7-minute tick (420 s, whole buckets) began
  // at 23:55 and ran past midnight, and its work after 00:00 went into the day before's index and 1d candle, which
  // are keyed by the tick's start. Accepted before.
  assert.throws(() => loadConfig({ env: { HASHHUB_MARKET_TICK_SECONDS: '420' } }), (e: unknown) => e instanceof ConfigError && /must divide an hour/.test(e.message));
  assert.throws(() => loadConfig({ env: { HASHHUB_MARKET_TICK_SECONDS: '2880' } }), (e: unknown) => e instanceof ConfigError && /must divide an hour/.test(e.message));
  for (const t of ['60', '300', '900', '3600']) assert.equal(loadConfig({ env: { HASHHUB_MARKET_TICK_SECONDS: t } }).market.tickSeconds, Number(t));
  // Without the market, any tick setting is left alone.
  assert.equal(loadConfig({ env: { HASHHUB_MARKET_TICK_SECONDS: '10', HASHHUB_MARKET_ENABLED: 'false' } }).market.tickSeconds, 10);
});

// ---- audit: unknown keys, malformed files, blank values, node URLs -------------------------------------------

const refused = (opts: Parameters<typeof loadConfig>[0], ...res: RegExp[]) => {
  assert.throws(() => loadConfig(opts), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    for (const re of res) assert.match(e.message, re);
    return true;
  });
};

test('misspelt or unknown keys in the file are refused, each named with its path and the key it was likely meant to be', () => {
  const file = path.join(dir, 'typos.json');
  writeFileSync(file, JSON.stringify({ acounting: { openRegistration: false }, stratum: { prot: 4444, limits: { maxConectionsPerIp: 10 } } }));
  refused({ file, env: {} },
    /acounting: unknown key \(did you mean accounting\?\)/,
    /stratum\.prot: unknown key \(did you mean stratum\.port\?\)/,
    /stratum\.limits\.maxConectionsPerIp: unknown key \(did you mean stratum\.limits\.maxConnectionsPerIp\?\)/);
  // Environment variables still work beside a file (and never count as unknown keys).
  writeFileSync(file, JSON.stringify({ accounting: { openRegistration: false }, stratum: { port: 4444, limits: { maxConnectionsPerIp: 10 }, difficulty: { userAgentMin: { bmminer: 4096 } } } }));
  const c = loadConfig({ file, env: { HASHHUB_STRATUM_PORT: '5000', HASHHUB_MAX_CONNECTIONS_PER_IP: '7' } });
  assert.equal(c.accounting.openRegistration, false);
  assert.equal(c.stratum.port, 5000);
  assert.equal(c.stratum.limits.maxConnectionsPerIp, 7);
  assert.deepEqual(c.stratum.difficulty.userAgentMin, { bmminer: 4096 });
});

test('every environment variable maps to a key the schema knows, and the README example config has no unknown key', () => {
  for (const [name, { path: p }] of Object.entries(ENV_MAP)) {
    const obj: Record<string, unknown> = {};
    let o = obj;
    for (const k of p.slice(0, -1)) o = (o[k] = {}) as Record<string, unknown>;
    o[p[p.length - 1]] = 1;
    assert.deepEqual(unknownKeys(obj), [], name);
  }
  const readme = readFileSync(path.resolve(import.meta.dirname, '..', 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]) as unknown);
  assert.ok(blocks.length >= 1);
  for (const b of blocks) assert.deepEqual(unknownKeys(b), []);
});

test('a config file that is not a JSON object (null, a string, an array) is one line, also with an environment override', () => {
  for (const [name, text] of [['null', 'null'], ['string', '"stratum"'], ['array', '[1]']]) {
    const file = path.join(dir, `${name}.json`);
    writeFileSync(file, text);
    for (const env of [{}, { HASHHUB_STRATUM_PORT: '4000' }]) {
      assert.throws(() => loadConfig({ file, env }), (e: unknown) => e instanceof ConfigError && /must hold a JSON object/.test(e.message) && !e.message.includes('\n'));
    }
  }
});

test('a section that is not an object is not silently replaced by an environment variable', () => {
  const file = path.join(dir, 'section.json');
  writeFileSync(file, JSON.stringify({ stratum: 5 }));
  refused({ file, env: { HASHHUB_STRATUM_PORT: '4000' } }, /stratum is 5 in the config file, not an object, so HASHHUB_STRATUM_PORT cannot set stratum\.port/);
  refused({ file, env: {} }, /stratum: .*expected object/);
});

test('blank numeric, boolean and size variables are refused (" " is not port 0); empty still means unset', () => {
  refused({ env: { HASHHUB_STRATUM_PORT: ' ' } }, /HASHHUB_STRATUM_PORT is blank/);
  refused({ env: { HASHHUB_API_ENABLED: '  ' } }, /HASHHUB_API_ENABLED is blank/);
  refused({ env: { HASHHUB_SPOOL_MAX_BYTES: '\t' } }, /HASHHUB_SPOOL_MAX_BYTES is blank/);
  assert.equal(loadConfig({ env: { HASHHUB_STRATUM_PORT: '' } }).stratum.port, 3333);
});

test('a node URL without http:// or https:// is refused at load, naming the setting and the form', () => {
  const payout = { HASHHUB_PAYOUT_ADDRESS: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' };
  for (const url of ['localhost:8332', 'ftp://127.0.0.1:8332', '127.0.0.1:8332']) {
    assert.throws(() => loadConfig({ env: { ...payout, HASHHUB_NODE_URLS: url } }), (e: unknown) => e instanceof ConfigError
      && /^invalid configuration: node\.urls\.0: must be an http:\/\/ or https:\/\/ URL .*http:\/\/127\.0\.0\.1:8332.*\(HASHHUB_NODE_URLS\)$/.test(e.message), url);
  }
  refused({ env: { HASHHUB_WALLET_URL: 'localhost:8332' } }, /accounting\.payouts\.walletUrl: must be an http:\/\/ or https:\/\/ URL.*\(HASHHUB_WALLET_URL\)/);
  assert.deepEqual(loadConfig({ env: { ...payout, HASHHUB_NODE_URLS: 'http://u:p@127.0.0.1:8332,https://node.example/wallet/w' } }).node.urls, ['http://u:p@127.0.0.1:8332', 'https://node.example/wallet/w']);
});

test('the CLI: a null config file with an environment override exits 2 with one line, no stack trace', async () => {
  const file = path.join(dir, 'null-cli.json');
  writeFileSync(file, 'null');
  const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'config'], { env: { ...process.env, HASHHUB_CONFIG: file, HASHHUB_STRATUM_PORT: '4000' }, cwd: path.resolve(import.meta.dirname, '..') }, (err, _stdout, stderr) => {
      resolve({ code: err ? (err as NodeJS.ErrnoException & { code: number }).code : 0, stderr });
    });
  });
  assert.equal(out.code, 2, out.stderr);
  assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr);
  assert.match(out.stderr, /^hashhub: config file .* must hold a JSON object/);
});
