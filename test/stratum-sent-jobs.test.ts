import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { JobManager } from '../src/shares/jobs.ts';
import type { Job } from '../src/shares/job.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { RouteJobs } from '../src/routing/route-jobs.ts';
import { StratumSession, type RoutedWork, type StratumHost } from '../src/stratum/session.ts';
import { FakeSocket } from './helpers/fake-socket.ts';
import { solveShare } from './helpers/pool.ts';
import { fakeTemplate } from './helpers/template.ts';
import { until } from './helpers/until.ts';
import type { Msg } from './helpers/line-client.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Full GCs with turns between them, so what nothing references is gone before WeakRefs are read. */
async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 5; i++) { gc(); await new Promise((r) => setImmediate(r)); }
}

const P2WPKH = Buffer.from('0014751e76e8199196d454941c45d1b3a323f1433bd6', 'hex');
const MINUTE = 60_000;

test('a session forgets the jobs its source has dropped: a pruned job (and its template) is not kept alive by the miners it was sent to', async () => {
  let now = 1_700_000_000_000;
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.alloc(0), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 10 * MINUTE });
  const answers: string[] = [];
  const host = {
    jobs, now: () => now,
    authorize: () => ({ ok: false, reason: '' }),
    onShare(_s: unknown, _w: unknown, _d: unknown, r: { outcome: string }) { answers.push(r.outcome); },
    onAbuse() {}, onClose() {},
  } as unknown as StratumHost;
  const sock = new FakeSocket();
  const s = new StratumSession('1', sock as never, Buffer.from('aabbccdd', 'hex'), host, { ...DEFAULT_STRATUM_OPTIONS, initialDifficulty: 1e-6 });
  s.subscribed = true;
  s.workers.set({ name: 'acct.w1', account: 'acct', worker: 'w1' });
  const prevHash = '11'.repeat(32);
  const curtime = Math.floor(now / 1000);
  // One job every 30 s, on one tip, for 40 minutes: 80 jobs, more than the session's 64 slots.
  const refs: WeakRef<Job>[] = [];
  const send = () => {
    const job = jobs.addTemplate(fakeTemplate({ prevHash, curtime, txs: 50 }), now).job;
    refs.push(new WeakRef(job));
    s.sendJob(job, refs.length === 1);
  };
  for (let i = 0; i < 80; i++) { send(); now += 30_000; }
  send();
  // The manager keeps 10 minutes of jobs (and the current one): 21 of the 81.
  assert.equal(jobs.size, 21);
  const notifies = sock.out.join('').split('\n').filter((l) => l.includes('mining.notify')).map((l) => JSON.parse(l) as Msg);
  assert.equal(notifies.length, 81);
  const submit = (n: Msg, id: number) => {
    const p = solveShare(n, 'aabbccdd', 8, 1e-6, { en2: '0000000000000001' });
    sock.emit('data', Buffer.from(JSON.stringify({ id, method: 'mining.submit', params: p }) + '\n'));
  };
  // The oldest job the manager still has is still the miner's: its share is credited.
  submit(notifies[60], 1);
  // One it has dropped is unknown, as before.
  submit(notifies[59], 2);
  // A line that took more than the session's 5 ms turn budget (a loaded machine) holds the next for a later turn.
  await until(() => answers.length >= 2, 5_000, 'both answers');
  assert.deepEqual(answers, ['accepted', 'unknown-job']);
  // And nothing of the session keeps a dropped job alive. Before: the session held the last 64 sent (jobs 17-80),
  // so jobs 17-59 lived on, templates and all, 43 jobs past the manager's retention.
  await collectGarbage();
  const alive = refs.map((r, i) => (r.deref() ? i : -1)).filter((i) => i >= 0);
  assert.ok(alive.length > 0, 'the retained jobs are alive');
  assert.deepEqual(alive, Array.from({ length: 21 }, (_, k) => 60 + k), 'alive: exactly the jobs the manager retains');
  s.close('test');
});

test('a session whose oldest entries are another source\'s, still known, also forgets the pool jobs behind them once its list is half full', async () => {
  let now = 1_700_000_000_000;
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.alloc(0), outputs: (v) => [{ value: v, scriptPubKey: P2WPKH }], retentionMs: 10 * MINUTE });
  const host = { jobs, now: () => now, authorize: () => ({ ok: false, reason: '' }), onShare() {}, onAbuse() {}, onClose() {} } as unknown as StratumHost;
  const sock = new FakeSocket();
  const s = new StratumSession('1', sock as never, Buffer.from('aabbccdd', 'hex'), host, { ...DEFAULT_STRATUM_OPTIONS, initialDifficulty: 1e-6 });
  s.subscribed = true; s.extranonceSubscribed = true;
  s.workers.set({ name: 'acct.w1', account: 'acct', worker: 'w1' });
  // A route the session worked on and left: its one job stays known (nobody prunes a route that sends nothing).
  const routeJobs = new RouteJobs('r1');
  const rjob = routeJobs.add({ jobId: 'u1', prevHash: '00'.repeat(32), coinb1: '0100000001' + '00'.repeat(32) + 'ffffffff20', coinb2: 'ffffffff0100f2052a01000000016a00000000', branch: [], version: '20000000', nbits: '207fffff', ntime: '66000000', clean: true }, 1e-6, 12, now);
  const route: RoutedWork = { routeId: '1', jobs: routeJobs, versionMask: 0, current: () => ({ job: rjob, difficulty: 1e-6 }), onShare() {} };
  const e = Buffer.from('1122334455', 'hex');
  s.switchWork({ route, extranonce1: e, extranonce1Hex: e.toString('hex'), extranonce2Size: 7 });
  s.switchWork(s.poolWork);
  const refs: WeakRef<Job>[] = [];
  // 60 jobs: fewer than the 64 slots, so the cap alone never pushes the route's entry out.
  for (let i = 0; i < 60; i++) {
    const job = jobs.addTemplate(fakeTemplate({ prevHash: '22'.repeat(32), curtime: Math.floor(now / 1000), txs: 5 }), now).job;
    refs.push(new WeakRef(job));
    s.sendJob(job, i === 0);
    now += 30_000;
  }
  // Retained by the manager: the last 21 (10 minutes at one per 30 s).
  const retained = refs.map((r) => r.deref()).filter((j): j is Job => j !== undefined && jobs.get(j.id) === j).length;
  assert.equal(retained, 21);
  await collectGarbage();
  const alive = refs.map((r, i) => (r.deref() ? i : -1)).filter((i) => i >= 0);
  // Before: the route's entry at the head kept the list from being trimmed, so all 60 jobs stayed alive.
  assert.ok(alive.length >= 21 && alive.length <= 31, `alive: ${alive.length} jobs`);
  s.close('test');
});
