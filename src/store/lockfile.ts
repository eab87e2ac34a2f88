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

function readPid(file: string): number | null {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** A live process other than this one holds (or, for a lock of ours, held) the pid. */
function liveOther(pid: number | null): pid is number {
  return pid !== null && pid !== process.pid && pidAlive(pid);
}

/**
 * Take the lock at `file` or throw naming the holder. `what` names the resource in messages.
 *
 * Atomic against other processes starting at the same moment (systemd's restart and an operator's start on one data
 * dir): the lock appears with its pid already in it (link of a file of our own, never an empty file another process
 * could read as stale), and a stale lock is moved aside (rename: of several processes taking it over, one moves it)
 * before it is replaced. It was read, removed and created again: a process that had read the stale pid removed the
 * lock another had just taken over, and both held it (two pools appending to one spool).
 */
export function acquireLock(file: string, what: string): () => void {
  if (held.has(file)) throw new LockHeldError(what, file, null);
  const mine = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(mine, String(process.pid));
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        fs.linkSync(mine, file);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 3) throw new Error(`cannot lock ${what} (${file}): ${(e as Error).message}`);
      }
      const pid = readPid(file);
      if (liveOther(pid)) throw new LockHeldError(what, file, pid);
      // Stale (its process is gone): moved aside under a name of our own, then judged again as moved. A live
      // process's lock taken over meanwhile (after our read) is put back, and is its.
      const aside = `${file}.stale.${process.pid}`;
      try {
        fs.renameSync(file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // another process moved it: try again
        throw new Error(`cannot lock ${what} (${file}): ${(e as Error).message}`);
      }
      const moved = readPid(aside);
      if (moved !== pid && liveOther(moved)) {
        try { fs.linkSync(aside, file); } catch { /* taken again meanwhile: that one is a holder too */ }
        fs.rmSync(aside, { force: true });
        throw new LockHeldError(what, file, moved);
      }
      fs.rmSync(aside, { force: true });
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
  held.add(file);
  return () => {
    held.delete(file);
    fs.rmSync(file, { force: true });
  };
}
