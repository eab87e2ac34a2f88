import fs from 'node:fs';

// For child processes that tests SIGKILL and judge by the lines they printed: a line is printed only once it is in
// the pipe. process.stdout queues a line in the child while the pipe is full (the test's process slow to read, on a
// loaded machine), and a SIGKILL loses what is queued, so the test would judge the child by fewer lines than it
// printed (seen in CI: a meter child's restart billed 1,856 shares, its last line read said 1,510). Here a full
// pipe holds the child until the test reads (the pipe is non-blocking: EAGAIN, wait 1 ms, again), so every line
// printed before the kill is read after it.

const waitCell = new Int32Array(new SharedArrayBuffer(4));

/** Write `line` (with its newline) to fd 1, returning once all of it is in the pipe. */
export function printLine(line: string): void {
  const bytes = Buffer.from(line);
  let done = 0;
  while (done < bytes.length) {
    try {
      done += fs.writeSync(1, bytes, done);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(waitCell, 0, 0, 1);
    }
  }
}
