import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

// `hashhub pool` as its own process, for tests that kill it (SIGKILL) and start it again on the same data.

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface PoolProcess {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output: () => string;
}

/** Pools still running when the test file's process exits (a test that timed out skips its after hooks): killed. */
const running = new Set<ChildProcess>();
process.once('exit', () => { for (const c of running) c.kill('SIGKILL'); });

/** Start `hashhub pool` with `env`; resolves once it prints its banner (a loaded machine may take a while). */
export function startPoolProcess(env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<PoolProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pool'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pool did not start in ${timeoutMs / 1000} s:\n${out}`)), timeoutMs);
    child.stderr!.on('data', () => {
      if (out.includes('hashhub pool is running')) { clearTimeout(timer); resolve({ child, output: () => out }); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`pool exited with ${code} before it was ready:\n${out}`)); });
  });
}

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
}

/** SIGKILL whatever of these is still running, and wait for it. */
export async function killAll(procs: readonly (PoolProcess | null)[]): Promise<void> {
  for (const p of procs) {
    if (p && p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await exited(p.child);
    }
  }
}
