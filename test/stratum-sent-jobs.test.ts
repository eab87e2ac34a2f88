import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { JobManager } from '../src/shares/jobs.ts';
import type { Job } from '../src/shares/job.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { StratumSession, type StratumHost } from '../src/stratum/session.ts';
import { FakeSocket } from './helpers/fake-socket.ts';
import { solveShare } from './helpers/pool.ts';
import { fakeTemplate } from './helpers/template.ts';
import type { Msg } from './helpers/line-client.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

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
  assert.deepEqual(answers, ['accepted', 'unknown-job']);
  // And nothing of the session keeps a dropped job alive. Before: the session held the last 64 sent (jobs 17-80),
  // so jobs 17-59 lived on, templates and all, 43 jobs past the manager's retention.
  for (let i = 0; i < 5; i++) { gc(); await new Promise((r) => setImmediate(r)); }
  const alive = refs.map((r, i) => (r.deref() ? i : -1)).filter((i) => i >= 0);
  assert.ok(alive.length > 0, 'the retained jobs are alive');
  assert.deepEqual(alive, Array.from({ length: 21 }, (_, k) => 60 + k), 'alive: exactly the jobs the manager retains');
  s.close('test');
});
