import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { RouteMeter } from '../src/routing/meter.ts';
import { DEFAULT_ROUTER_OPTIONS, Router } from '../src/routing/router.ts';
import { startTestPool } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';
import { until } from './helpers/until.ts';

// cpuminer (pooler/cpuminer 2.5.1) never sends mining.extranonce.subscribe: it is moved by client.reconnect with
// our host and port, and resumed at mining.subscribe by the subscription id it sends back. Runs when a minerd
// binary is found (HASHHUB_MINERD, or /opt/peers/cpuminer/minerd); skipped otherwise (cpuminer is not a dependency).

const MINERD = process.env.HASHHUB_MINERD ?? '/opt/peers/cpuminer/minerd';
const SKIP = existsSync(MINERD) ? false : `no minerd at ${MINERD} (set HASHHUB_MINERD)`;
const stops: (() => unknown)[] = [];
after(async () => { for (const s of stops.reverse()) await s(); });

test('cpuminer is moved by client.reconnect, resumed by its subscription id, and keeps hashing without a restart storm', { skip: SKIP, timeout: 90_000 }, async () => {
  const a = await startTestPool(new StubNode(), { initialDifficulty: 0.0005 });
  const b = await startTestPool(new StubNode(), { initialDifficulty: 0.0005, vardiff: { minDifficulty: 0.0005, maxDifficulty: 0.0005 } as never });
  stops.push(() => a.pool.stop(200), () => b.pool.stop(200));
  const meter = new RouteMeter();
  const router = new Router({ ...DEFAULT_ROUTER_OPTIONS, reconnectHost: '127.0.0.1', reconnectPort: a.port, reconcileMs: 200 }, meter);
  router.start();
  a.pool.routing = router;
  stops.push(() => router.stop());
  let out = '';
  const minerd = spawn(MINERD, ['-a', 'sha256d', '-t', '1', '-o', `stratum+tcp://127.0.0.1:${a.port}`, '-u', 'seller.cpu', '-p', 'x', '--retry-pause', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  minerd.stdout.on('data', (d) => { out += d; });
  minerd.stderr.on('data', (d) => { out += d; });
  stops.push(() => { minerd.kill('SIGKILL'); });
  await until(() => a.pool.stats.shares.accepted >= 2, 30_000, () => `cpuminer's pool shares on A:\n${out}`);
  router.upsert({ id: 1, name: 'cpu', destinations: [{ url: `stratum+tcp://127.0.0.1:${b.port}`, user: 'buyer.cpu', password: 'x' }], workers: ['seller.cpu'] });
  await until(() => router.routes.get(1)!.state === 'ready' && router.membersOf(1).length === 1, 30_000, () => `cpuminer routed (${JSON.stringify(router.routes.get(1)!.status)}, moves ${JSON.stringify(router.moves)}):\n${out}`);
  const accepted0 = b.pool.stats.shares.accepted;
  await until(() => b.pool.stats.shares.accepted >= accepted0 + 3, 30_000, () => `cpuminer's shares accepted by B:\n${out}`);
  assert.equal(router.moves.set_extranonce, 0);
  assert.ok(router.moves.reconnect === 1 && router.moves.resume === 1, JSON.stringify(router.moves));
  assert.match(out, /Server requested reconnection to stratum\+tcp:\/\/127\.0\.0\.1/);
  // Back to pool work: another client.reconnect, then pool shares again.
  const pool0 = a.pool.stats.shares.accepted;
  router.remove(1);
  await until(() => a.pool.stats.shares.accepted >= pool0 + 2, 30_000, () => `cpuminer's pool shares after the route:\n${out}`);
  // One connection at start, one per move: no storm.
  assert.ok(a.pool.server.stats.connectionsTotal <= 3, `connections: ${a.pool.server.stats.connectionsTotal}`);
  const rejected = (out.match(/\(booooo\)|rejected/gi) ?? []).length;
  process.stderr.write(`# cpuminer: routed by reconnect+resume, ${b.pool.stats.shares.accepted} shares accepted by B, ${a.pool.server.stats.connectionsTotal} connections to A, ${rejected} rejects seen by minerd\n`);
});
