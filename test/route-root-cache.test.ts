import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteJobs } from '../src/routing/route-jobs.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { StratumSession, type RoutedWork, type WorkAssignment } from '../src/stratum/session.ts';
import { FakeSocket } from './helpers/fake-socket.ts';
import { stubHost } from './helpers/stub-host.ts';
import { solveShare } from './helpers/pool.ts';
import type { Msg } from './helpers/line-client.ts';
import { until } from './helpers/until.ts';

test('a route job sent again under another extranonce (moved away and back): its valid shares are accepted', async () => {
  const D = 1e-6;
  const jobs = new RouteJobs('r1');
  const job = jobs.add({ jobId: 'u1', prevHash: '00'.repeat(32), coinb1: '0100000001' + '00'.repeat(32) + 'ffffffff20', coinb2: 'ffffffff0100f2052a01000000016a00000000', branch: [], version: '20000000', nbits: '207fffff', ntime: '66000000', clean: true }, D, 12, Date.now());
  const outcomes: string[] = [];
  const route: RoutedWork = { routeId: '1', jobs, versionMask: 0, current: () => ({ job, difficulty: D }), onShare: (_s, _w, _sent, r) => { outcomes.push(r.outcome); } };
  const host = stubHost();
  const sock = new FakeSocket();
  const s = new StratumSession('1', sock as never, Buffer.from('aabbccdd', 'hex'), host, { ...DEFAULT_STRATUM_OPTIONS });
  s.subscribed = true; s.extranonceSubscribed = true; s.workers.set({ name: 'acct.w1', account: 'acct', worker: 'w1' });
  const assignment = (prefix: string): WorkAssignment => { const e = Buffer.from('11223344' + prefix, 'hex'); return { route, extranonce1: e, extranonce1Hex: e.toString('hex'), extranonce2Size: 6 }; };
  const lastNotify = (): Msg => JSON.parse(sock.out.join('').split('\n').filter((l) => l.includes('mining.notify')).pop()!) as Msg;
  const submit = (w: WorkAssignment, id: number) => {
    const p = solveShare(lastNotify(), w.extranonce1Hex, w.extranonce2Size, D, { en2: '000000000000' });
    sock.emit('data', Buffer.from(JSON.stringify({ id, method: 'mining.submit', params: p }) + '\n'));
  };
  const a1 = assignment('0001');
  const a2 = assignment('0002');
  s.switchWork(a1);
  submit(a1, 1);
  s.switchWork(s.poolWork); // to pool work and back to the same route, whose current job is still the same
  s.switchWork(a2);
  submit(a2, 2);
  // A line that took more than the session's 5 ms turn budget (a loaded machine) holds the next for a later turn.
  await until(() => outcomes.length >= 2, 5_000, 'both answers');
  // Before the fix: ['accepted', 'low-difficulty'] (the Merkle root cached for a1's extranonce1 was reused for a2).
  assert.deepEqual(outcomes, ['accepted', 'accepted']);
});
