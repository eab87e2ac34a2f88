import fs from 'node:fs';

// A pid lock file: one process per spool directory / embedded database. A lock left by a process that died
// (SIGKILL, power loss) is taken over; one held by a live process is refused with its pid.

const held = new Set<string>();

/** The resource is locked by another live process (or already open in this one): an expected start-up failure. */
export class LockHeldError extends Error {
  constructor(readonly what: string, readonly file: string, readonly pid: number | null) {
    super(pid === null ? `${what} is already open in this process` : `${what} is in use by process ${pid} (lock ${file})`);
    this.name = 'LockHeldError';
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the lock at `file` or throw naming the holder. `what` names the resource in messages. */
export function acquireLock(file: string, what: string): () => void {
  if (held.has(file)) throw new LockHeldError(what, file, null);
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw new Error(`cannot lock ${what} (${file}): ${(e as Error).message}`);
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new LockHeldError(what, file, pid);
      }
      fs.rmSync(file, { force: true });
    }
  }
  held.add(file);
  return () => {
    held.delete(file);
    fs.rmSync(file, { force: true });
  };
}
