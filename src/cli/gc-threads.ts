import { availableParallelism } from 'node:os';

// V8 collects garbage with helper threads besides the JavaScript thread: parallel scavenges, concurrent marking
// and sweeping. Where a Stratum process has a core to itself (pinned, or one process per core), those threads
// run on that same core: the kernel takes the core from the event loop for whole time slices while they run, and
// every miner's answer waits. `node --single-threaded-gc` does the same work on the JavaScript thread, in small
// steps between turns. Measured with bench:stratum (pool pinned to one core, 10k connections, 5k submits/s), the
// pool's event-loop delay p99.9 was 5.9-11.2 ms with the flag over 12 runs, and 6.8-20.8 ms without over 6 (5 of
// them above 15 ms); with a template refresh every 2 s, 11.0-15.4 (9 runs) against 17.5-21.3 ms (2). With cores
// to spare the helper threads run beside the loop instead, and shorten its pauses: there V8's default stays.
//
// The flag is read when V8 starts (NODE_OPTIONS refuses it, and setting it later aborts the process), so a
// process can only give it to the processes it starts: the cluster's Stratum processes.

export const SINGLE_THREADED_GC = '--single-threaded-gc';
const PARALLEL_GC = '--no-single-threaded-gc';

/** Whether this process (given its node flags) collects garbage on its JavaScript thread only. */
export function gcSingleThreaded(execArgv: readonly string[] = process.execArgv): boolean {
  // V8 takes the last of contradicting flags.
  for (let i = execArgv.length - 1; i >= 0; i--) {
    if (execArgv[i] === SINGLE_THREADED_GC) return true;
    if (execArgv[i] === PARALLEL_GC) return false;
  }
  return false;
}

/**
 * Node flags for the cluster's Stratum processes: this process's own, plus --single-threaded-gc when there are at
 * least as many processes as cores (each has about one core, see above), unless the operator chose either way on
 * the command line.
 */
export function workerExecArgv(processes: number, execArgv: readonly string[] = process.execArgv, cores = availableParallelism()): string[] {
  const chosen = execArgv.includes(SINGLE_THREADED_GC) || execArgv.includes(PARALLEL_GC);
  return chosen || processes < cores ? [...execArgv] : [...execArgv, SINGLE_THREADED_GC];
}

/**
 * The advice for a single Stratum process that has one core and still runs V8's GC helper threads on it; null when
 * it does not apply.
 */
export function singleCoreGcAdvice(execArgv: readonly string[] = process.execArgv, cores = availableParallelism()): string | null {
  if (cores > 1 || gcSingleThreaded(execArgv)) return null;
  return `this process has one CPU core and V8's garbage collector runs helper threads on it, which take the core from miners' answers: start node with ${SINGLE_THREADED_GC} (README: Deploying)`;
}
