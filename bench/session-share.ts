import type { Socket } from 'node:net';
import { difficultyToTarget, hashToBigInt, sha256d, toHex } from '../src/chain/index.ts';
import type { Job } from '../src/shares/job.ts';
import { JobManager } from '../src/shares/jobs.ts';
import { u32Hex } from '../src/shares/work.ts';
import { DEFAULT_STRATUM_OPTIONS, type StratumOptions } from '../src/stratum/options.ts';
import { type StratumHost, StratumSession } from '../src/stratum/session.ts';
import { FakeSocket as RecordingSocket } from '../test/helpers/fake-socket.ts';
import { bigTemplate } from './validator.ts';

// A share through the whole session path (framing, parse, validation, answer) on a fake socket, one core: the
// pool-share figure the routing refactor must not slow down (and, in bench/routing.ts, the routed-share one).

/** The test suite's FakeSocket, its writes dropped instead of kept: nothing but the session's own work is measured. */
export class FakeSocket extends RecordingSocket {
  override write(_s: string | Buffer, cb?: () => void): boolean { cb?.(); return true; }
}

export const BENCH_OPTS: StratumOptions = {
  ...DEFAULT_STRATUM_OPTIONS, readLinesPerSecond: 1e12, messagesPerSecond: 1e9, messageBurst: 1e9,
  vardiff: { ...DEFAULT_STRATUM_OPTIONS.vardiff, minDifficulty: 1e-12, maxDifficulty: 1e-12 }, initialDifficulty: 1e-12,
  ban: { ...DEFAULT_STRATUM_OPTIONS.ban, maxRejects: 1e9, maxGarbage: 1e9 },
};

export function poolHost(jobs: JobManager): StratumHost {
  return {
    jobs,
    authorize: (user) => ({ ok: true, name: user, account: 'a', worker: 'w' }),
    onShare: () => undefined,
    onAbuse: () => undefined,
    onClose: () => undefined,
    now: () => Date.now(),
  };
}

/** Submits `n` distinct accepted shares (every hash passes the session's 1e-12 difficulty) on `jobId`. */
export function submitLines(jobId: string, n: number, ntime: number, en2Bytes: number, from = 0): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const en2 = (from + i).toString(16).padStart(en2Bytes * 2, '0');
    out.push(Buffer.from(`{"id":${i + 10},"method":"mining.submit","params":["a.w","${jobId}","${en2}","${u32Hex(ntime)}","${u32Hex(i)}"]}\n`));
  }
  return out;
}

export function benchPoolSessionShares(shares: number): Promise<{ usPerShare: number; shares: number; wallMs: number }> {
  const jobs = new JobManager({ extranonceSize: 12, tag: Buffer.from('/hashhub/'), outputs: (v) => [{ value: v, scriptPubKey: Buffer.from('0014751e76e8199196d454941c45d1b3a323f1433bd6', 'hex') }] });
  const { job } = jobs.addTemplate(bigTemplate(3000), Date.now());
  const sock = new FakeSocket();
  const s = new StratumSession('1', sock as unknown as Socket, Buffer.from('00abcdef', 'hex'), poolHost(jobs), BENCH_OPTS);
  sock.emit('data', Buffer.from('{"id":1,"method":"mining.subscribe","params":["bench"]}\n{"id":2,"method":"mining.authorize","params":["a.w","x"]}\n'));
  return run(sock, job, shares, 8, job.id, () => s.counts.accepted ?? 0);
}

/**
 * `shares` distinct submit lines are prepared beforehand (not measured), then fed 32 per event-loop turn; the
 * figure is this process's CPU time (user + system) from the first line until every share is answered, per
 * share: framing, parse, validation, the answer, and for routed shares the forward and reading the upstream's
 * answer (what a hold or a setImmediate defers is counted too).
 */
export async function run(sock: FakeSocket, job: Pick<Job, 'id' | 'ntime'>, shares: number, en2Bytes: number, jobId: string, answered: () => number, done: () => boolean = () => true): Promise<{ usPerShare: number; shares: number; wallMs: number }> {
  const lines = submitLines(jobId, shares, job.ntime, en2Bytes);
  const before = answered();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < lines.length; i += 32) {
    for (let j = i; j < Math.min(i + 32, lines.length); j++) sock.emit('data', lines[j]);
    await new Promise((r) => setImmediate(r));
  }
  const deadline = Date.now() + 60_000;
  while (answered() - before < shares || !done()) {
    if (Date.now() > deadline) throw new Error(`only ${answered() - before} of ${shares} shares answered`);
    await new Promise((r) => setImmediate(r));
  }
  const cpu = process.cpuUsage(cpu0);
  return { usPerShare: (cpu.user + cpu.system) / shares, shares, wallMs: performance.now() - t0 };
}

void difficultyToTarget; void hashToBigInt; void sha256d; void toHex;

if (import.meta.url === `file://${process.argv[1]}`) {
  for (let r = 0; r < 5; r++) console.log('pool share via session', (await benchPoolSessionShares(20_000)).usPerShare.toFixed(2), 'µs CPU/share');
}
