// What an operator sees when starting `hashhub pool` (issue 10 items 19, 20), through the real CLI in a child
// process: with the node unreachable the API and probes come up at once (ready = 503 naming the node), the
// node is retried until it answers, Stratum then opens, and SIGINT stops it cleanly at any time; expected
// failures (port in use, unusable data directory, a lock held by another process) print one line naming the
// problem and the fix, without a stack trace.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { nodeWaitNotice } from '../src/cli/pool-command.ts';
import { startEmbeddedChain } from '../src/node/regtest/index.ts';
import { freePort } from './helpers/free-port.ts';
import { LineClient } from './helpers/line-client.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';
import { TcpProxy } from './helpers/proxy.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { until } from './helpers/until.ts';
import { tmpDir } from './helpers/tmp-dir.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const REGTEST = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';
/** A stack trace line as Node prints them. */
const STACK = /^\s+at .+(\.ts|\.js|node:)/m;

interface Cli {
  child: ChildProcess;
  stderr(): string;
  stdout(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const tmp = (t: TestContext): string => tmpDir(t, 'hashhub-cli-');

/**
 * A database for one CLI run: a fresh Postgres database (seconds faster to start than the embedded PGlite, whose
 * first start initialises a cluster), or PGlite in the data directory where there is no Postgres.
 */
async function database(t: TestContext): Promise<Record<string, string>> {
  if (SKIP_PG) return {};
  const pg = await createTestPg();
  t.after(() => pg.drop());
  return { DATABASE_URL: pg.url };
}

function startCli(t: TestContext, env: Record<string, string>): Cli {
  let out = '';
  let err = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pool'], {
    cwd: ROOT,
    env: { ...process.env, HASHHUB_LOG_LEVEL: 'warn', HASHHUB_API_HOST: '127.0.0.1', HASHHUB_API_PORT: '0', HASHHUB_STRATUM_HOST: '127.0.0.1', HASHHUB_STRATUM_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  // 'close', not 'exit': the lines a child wrote just before it ended may not be read yet at 'exit'.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return { child, stderr: () => err, stdout: () => out, exited };
}

async function occupiedPort(t: TestContext): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => s.close(() => r())));
  return (s.address() as net.AddressInfo).port;
}

/** The run ends with exit code `code` and exactly one line on stderr that matches `re`, without a stack trace. */
async function assertOneLine(cli: Cli, code: number, re: RegExp): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([cli.exited, new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`no exit; stderr: ${cli.stderr()}`)), 90_000); })])
    .finally(() => clearTimeout(timer));
  const lines = cli.stderr().split('\n').filter((l) => l.trim() !== '');
  assert.equal(r.code, code, cli.stderr());
  assert.equal(lines.length, 1, `one line on stderr, got:\n${cli.stderr()}`);
  assert.match(lines[0], re);
  assert.match(lines[0], /^hashhub: /);
  assert.doesNotMatch(cli.stderr() + cli.stdout(), STACK, 'no stack trace');
  return lines[0];
}

test('node unreachable at start: API and probes at once (ready 503 naming the node), Stratum opens when the node answers, SIGINT stops cleanly', { timeout: 180_000 }, async (t) => {
  const dir = tmp(t);
  const nodePort = await freePort();
  const cli = startCli(t, {
    ...(await database(t)),
    HASHHUB_DATA_DIR: dir,
    HASHHUB_NODE_URLS: `http://pooluser:s3cret@127.0.0.1:${nodePort}`,
    HASHHUB_PAYOUT_ADDRESS: REGTEST,
  });
  await until(() => /waiting for the node/.test(cli.stderr()), 90_000, () => `the waiting line; stderr: ${cli.stderr()}`);
  const line = cli.stderr().split('\n').find((l) => /waiting for the node/.test(l))!;
  assert.match(line, new RegExp(`waiting for the node at http://pooluser:\\*\\*\\*@127\\.0\\.0\\.1:${nodePort}`), 'names the node, not its password');
  assert.doesNotMatch(cli.stderr(), /s3cret/);
  assert.match(line, /HASHHUB_NODE_URLS/, 'says what to check');
  const api = /(http:\/\/127\.0\.0\.1:\d+)\/health\/ready/.exec(line)?.[1];
  assert.ok(api, line);
  const ready = await fetch(`${api}/health/ready`);
  assert.equal(ready.status, 503);
  const body = (await ready.json()) as { failing: string[]; checks: { node: { error: string } } };
  assert.ok(body.failing.includes('node'), JSON.stringify(body));
  assert.match(body.checks.node.error, new RegExp(`127\\.0\\.0\\.1:${nodePort}`), 'the node check names the node');
  // Liveness is served too (its verdict depends on event-loop stalls, which a loaded CI machine can cause).
  const live = (await (await fetch(`${api}/health/live`)).json()) as { status: string };
  assert.ok(['ok', 'stalled'].includes(live.status));

  // The node comes up: the pool keeps trying, gets its first template and opens Stratum.
  const node = await startEmbeddedChain({ port: nodePort, rpcUser: 'pooluser', rpcPassword: 's3cret', difficulty: 0.001, mempoolTxs: 0 });
  t.after(() => node.close());
  await until(() => /Stratum: +stratum\+tcp:\/\/127\.0\.0\.1:\d+/.test(cli.stderr()), 60_000, () => `Stratum to open; stderr: ${cli.stderr()}`);
  const stratumPort = Number(/Stratum: +stratum\+tcp:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())![1]);
  const miner = new LineClient(stratumPort);
  await miner.connected();
  const sub = await miner.request(1, 'mining.subscribe', ['test/1']);
  assert.equal(sub.error, null);
  miner.close();
  await until(async () => (await fetch(`${api}/health/ready`)).status === 200, 30_000, 'ready once the node answers');
  // The template it mines on is counted where it was read (the thread, or the event loop if the thread was slow to
  // start on a loaded machine): the pool process's RPC client is wired to /metrics.
  const metrics = await (await fetch(`${api}/metrics`)).text();
  const reads = (where: string) => Number(new RegExp(`^hashhub_template_reads_total\\{where="${where}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? NaN);
  assert.ok(reads('thread') + reads('event_loop') >= 1, metrics.split('\n').filter((l) => l.includes('template_reads')).join('\n'));

  // The books run in the pool process and their routes are served: the operator token is made once, in the
  // data directory, and the banner says where; an account made through the API gets its owner token.
  const tokenFile = path.join(dir, 'operator.token');
  assert.match(cli.stderr(), new RegExp(`Operator: token in ${tokenFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(new\\)`));
  const operator = fs.readFileSync(tokenFile, 'utf8').trim();
  assert.equal((await fetch(`${api}/api/v1/accounting/status`)).status, 401, 'no token, no books');
  const status = await fetch(`${api}/api/v1/accounting/status`, { headers: { authorization: `Bearer ${operator}` } });
  assert.equal(status.status, 200, await status.clone().text());
  const books = (await status.json()) as { frame: { periodSeconds: number; network: string } | null };
  assert.equal(books.frame?.network, 'regtest');
  assert.equal(books.frame?.periodSeconds, 3600);
  const created = await fetch(`${api}/api/v1/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'carol' }) });
  assert.equal(created.status, 201, await created.clone().text());
  const { ownerToken: token } = (await created.json()) as { ownerToken: string };
  const balance = await fetch(`${api}/api/v1/accounts/carol/balance`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(balance.status, 200, await balance.clone().text());
  // The market and routing are served too, with the same tokens.
  const book = await fetch(`${api}/api/v1/market/book`);
  assert.equal(book.status, 200, await book.clone().text());
  assert.equal((await fetch(`${api}/api/v1/routes`)).status, 401, 'routes are the operator\'s');
  assert.equal((await fetch(`${api}/api/v1/routes`, { headers: { authorization: `Bearer ${operator}` } })).status, 200);
  assert.match(cli.stderr(), /Market: +http:\/\/127\.0\.0\.1:\d+\/api\/v1\/market\/book/);

  const t0 = Date.now();
  cli.child.kill('SIGINT');
  const r = await cli.exited;
  assert.equal(r.code, 0);
  // Bounded against a hang, with room for a loaded machine.
  assert.ok(Date.now() - t0 < 25_000, `stopped in ${Date.now() - t0} ms`);
  assert.doesNotMatch(cli.stderr() + cli.stdout(), STACK);
});

test('database down at start with the books and the market on: the pool comes up (Stratum, ready 503 naming the database), one warning, and the books start once the database answers', { skip: SKIP_PG, timeout: 180_000 }, async (t) => {
  const dir = tmp(t);
  const pg = await createTestPg();
  t.after(() => pg.drop());
  const target = new URL(pg.url);
  const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
  t.after(() => proxy.close());
  await proxy.cut(); // nobody listens on the URL's port: ECONNREFUSED, as with Postgres down
  const cli = startCli(t, { HASHHUB_DATA_DIR: dir, DATABASE_URL: pg.urlVia('127.0.0.1', proxy.port), HASHHUB_LOG_LEVEL: 'info' });
  const alive = () => {
    if (cli.child.exitCode !== null) throw new Error(`the pool exited ${cli.child.exitCode}; stderr: ${cli.stderr()}`);
  };
  await until(() => { alive(); return /Stratum: +stratum\+tcp:\/\/127\.0\.0\.1:\d+/.test(cli.stderr()); }, 90_000, () => `Stratum to open; stderr: ${cli.stderr()}`);
  const stratumPort = Number(/Stratum: +stratum\+tcp:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())![1]);
  const miner = new LineClient(stratumPort);
  await miner.connected();
  assert.equal((await miner.request(1, 'mining.subscribe', ['test/1'])).error, null);
  miner.close();
  const api = /API: +(http:\/\/127\.0\.0\.1:\d+)\/api\/v1\/pool/.exec(cli.stderr())![1];
  const ready = await fetch(`${api}/health/ready`);
  assert.equal(ready.status, 503);
  const body = (await ready.json()) as { failing: string[]; checks: { db: { error: string } } };
  assert.deepEqual(body.failing, ['db'], JSON.stringify(body));
  assert.match(body.checks.db.error, /database unreachable/);
  const logs = () => cli.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string });
  const booksWarnings = logs().filter((l) => /accounting and the market start once it is/.test(l.msg));
  assert.equal(booksWarnings.length, 1, 'one warning line about the books');
  assert.equal(booksWarnings[0].level, 40);
  assert.doesNotMatch(cli.stderr() + cli.stdout(), STACK);

  // The database appears: the store migrates, the books make their frame and the market's clock starts, without a
  // request asking for them.
  await proxy.restore();
  await until(() => { alive(); return logs().some((l) => l.msg === 'database ready: accounting and the market started'); }, 60_000, () => `the books to start; stdout: ${cli.stdout().slice(-2000)}`);
  const direct = new PgDatabase({ url: pg.url });
  try {
    const frame = await direct.query<{ network: string; period_seconds: number }>('SELECT network, period_seconds FROM accounting_state');
    assert.deepEqual(frame.rows.map((r) => [r.network, Number(r.period_seconds)]), [['regtest', 3600]]);
  } finally {
    await direct.close();
  }
  await until(async () => (await fetch(`${api}/health/ready`)).status === 200, 60_000, 'ready once the database answers');
  cli.child.kill('SIGINT');
  assert.equal((await cli.exited).code, 0, cli.stderr());
  assert.doesNotMatch(cli.stderr() + cli.stdout(), STACK);
});

test('SIGINT while waiting for an unreachable node: a clean stop, no 30 s hang, no stack trace', { timeout: 120_000 }, async (t) => {
  const dir = tmp(t);
  const cli = startCli(t, { ...(await database(t)), HASHHUB_DATA_DIR: dir, HASHHUB_NODE_URLS: `http://127.0.0.1:${await freePort()}`, HASHHUB_PAYOUT_ADDRESS: REGTEST });
  await until(() => /waiting for the node/.test(cli.stderr()), 90_000, () => `the waiting line; stderr: ${cli.stderr()}`);
  const t0 = Date.now();
  cli.child.kill('SIGINT');
  const r = await cli.exited;
  assert.equal(r.code, 0, cli.stderr());
  // The hang this guards against is 30 s (the node's wait); a loaded machine's stop takes a few.
  assert.ok(Date.now() - t0 < 25_000, `stopped in ${Date.now() - t0} ms`);
  assert.doesNotMatch(cli.stderr() + cli.stdout(), STACK);
  assert.ok(fs.existsSync(path.join(dir, 'spool')), 'the spool was opened');
  assert.ok(!fs.existsSync(path.join(dir, 'spool', 'spool.lock')), 'and closed (its lock released)');
});

test('expected start-up failures: one line naming the problem and the fix, exit 1, no stack trace', { timeout: 240_000 }, async (t) => {
  const base = tmp(t);
  // A lock held by a live process (this test process) on the embedded database.
  const locked = path.join(base, 'locked');
  fs.mkdirSync(locked);
  fs.writeFileSync(path.join(locked, 'pglite.lock'), String(process.pid));
  const aFile = path.join(base, 'a-file');
  fs.writeFileSync(aFile, 'not a directory');
  const stratumTaken = await occupiedPort(t);
  const apiTaken = await occupiedPort(t);
  const cases: [string, Record<string, string>, RegExp][] = [
    ['Stratum port in use', { ...(await database(t)), HASHHUB_DATA_DIR: path.join(base, 'a'), HASHHUB_STRATUM_PORT: String(stratumTaken) },
      new RegExp(`cannot listen for Stratum on 127\\.0\\.0\\.1:${stratumTaken}: the port is already in use .*: stop that program, or choose another port \\(HASHHUB_STRATUM_PORT`)],
    ['API port in use', { ...(await database(t)), HASHHUB_DATA_DIR: path.join(base, 'b'), HASHHUB_API_PORT: String(apiTaken) },
      new RegExp(`cannot listen for the API on 127\\.0\\.0\\.1:${apiTaken}: the port is already in use .*\\(HASHHUB_API_PORT\\)`)],
    ['unusable data directory', { HASHHUB_DATA_DIR: path.join(aFile, 'data') },
      /cannot use the data directory .*a-file\/data \(a file of that name is in the way\): set HASHHUB_DATA_DIR/],
    ['database lock held', { HASHHUB_DATA_DIR: locked },
      new RegExp(`the embedded database .*locked/pglite is in use by process ${process.pid} .*: stop that process first, or give this pool its own data directory \\(HASHHUB_DATA_DIR\\)`)],
  ];
  // Concurrently: each is mostly the child's start-up time.
  const results = await Promise.allSettled(cases.map(async ([name, env, re]) => {
    const cli = startCli(t, env);
    try {
      await assertOneLine(cli, 1, re);
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`);
    }
  }));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
  assert.deepEqual(failed, []);
});

test('bad TLS files, host names that do not resolve, an unreadable operator token: one line naming the setting, no stack trace', { timeout: 240_000 }, async (t) => {
  const base = tmp(t);
  const garbage = path.join(base, 'garbage.pem');
  fs.writeFileSync(garbage, 'garbage\n');
  const cases: [string, Record<string, string>, number, RegExp][] = [
    ['TLS certificate not PEM', { HASHHUB_STRATUM_TLS_PORT: '0', HASHHUB_TLS_CERT: garbage, HASHHUB_TLS_KEY: garbage }, 2,
      /the TLS certificate .*garbage\.pem is not a PEM certificate .*HASHHUB_TLS_CERT/],
    ['API host does not resolve', { HASHHUB_API_HOST: 'no-such-host.invalid' }, 1,
      /cannot listen for the API on no-such-host\.invalid: no such host name \(getaddrinfo ENOTFOUND\): .*\(HASHHUB_API_HOST\)/],
    ['Stratum host does not resolve', { HASHHUB_STRATUM_HOST: 'no-such-host.invalid' }, 1,
      /cannot listen for Stratum on no-such-host\.invalid: no such host name \(getaddrinfo ENOTFOUND\): .*\(HASHHUB_STRATUM_HOST/],
    ['operator token file is a directory', {}, 1,
      /cannot read the operator token .*operator\.token \(it is a directory\): fix or remove it .*HASHHUB_OPERATOR_TOKEN/],
  ];
  // A key that is PEM but not the certificate's (two self-signed pairs, the key of the other).
  const pair = (name: string) => {
    const cert = path.join(base, `${name}.crt`);
    const key = path.join(base, `${name}.key`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    return { cert, key };
  };
  try {
    const [a, b] = [pair('a'), pair('b')];
    cases.push(['TLS key of another certificate', { HASHHUB_STRATUM_TLS_PORT: '0', HASHHUB_TLS_CERT: a.cert, HASHHUB_TLS_KEY: b.key }, 2,
      /the TLS key .*b\.key does not belong to the certificate .*a\.crt/]);
  } catch (e) {
    t.diagnostic(`openssl unavailable, no key-mismatch case: ${(e as Error).message}`);
  }
  const results = await Promise.allSettled(cases.map(async ([name, env, code, re], i) => {
    const dir = path.join(base, `d${i}`);
    if (name.startsWith('operator token')) fs.mkdirSync(path.join(dir, 'operator.token'), { recursive: true });
    const cli = startCli(t, { ...(await database(t)), HASHHUB_DATA_DIR: dir, ...env });
    try {
      await assertOneLine(cli, code, re);
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`);
    }
  }));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
  assert.deepEqual(failed, []);
});

test('the notice while the first template has not come: an external node after 2 s with what to check; the embedded chain after 10 s, without advice about bitcoind', () => {
  const externalNotice = nodeWaitNotice({ embedded: false, where: 'http://u:***@127.0.0.1:8332', apiUrl: 'http://127.0.0.1:8080' });
  const external = { afterMs: externalNotice.afterMs, text: externalNotice.text('ECONNREFUSED') };
  assert.equal(external.afterMs, 2000);
  assert.match(external.text, /^hashhub: waiting for the node at http:\/\/u:\*\*\*@127\.0\.0\.1:8332 \(ECONNREFUSED\): is bitcoind running with server=1, and are HASHHUB_NODE_URLS/);
  assert.match(external.text, /http:\/\/127\.0\.0\.1:8080\/health\/ready answers 503/);
  // The embedded chain is this process: on a loaded machine its first template took more than 2 s (the start-up
  // failures test saw the notice before its one error line), and checking bitcoind or HASHHUB_NODE_URLS is no help.
  const embeddedNotice = nodeWaitNotice({ embedded: true, where: 'http://127.0.0.1:18443', apiUrl: null });
  const embedded = { afterMs: embeddedNotice.afterMs, text: embeddedNotice.text('no answer yet') };
  assert.equal(embedded.afterMs, 10_000);
  assert.match(embedded.text, /^hashhub: waiting for the embedded regtest chain at http:\/\/127\.0\.0\.1:18443 to give its first block template \(no answer yet\): Stratum opens then\. Ctrl-C stops\.\n$/);
  assert.doesNotMatch(embedded.text, /bitcoind|HASHHUB_NODE_URLS/);
  for (const n of [external, embedded]) assert.equal(n.text.split('\n').length, 2, 'one line');
});
