import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { SINGLE_THREADED_GC, gcSingleThreaded, singleCoreGcAdvice, workerExecArgv } from '../src/cli/gc-threads.ts';

// V8's GC helper threads and a Stratum process that has one core: see src/cli/gc-threads.ts.

test('the cluster gives its Stratum processes --single-threaded-gc when they are no fewer than the cores', () => {
  assert.deepEqual(workerExecArgv(2, [], 2), [SINGLE_THREADED_GC]);
  assert.deepEqual(workerExecArgv(4, ['--enable-source-maps'], 2), ['--enable-source-maps', SINGLE_THREADED_GC]);
  assert.deepEqual(workerExecArgv(2, ['--enable-source-maps'], 8), ['--enable-source-maps'], 'cores to spare: V8 default');
  // The operator's own choice, either way, stands (and is not repeated).
  assert.deepEqual(workerExecArgv(2, [SINGLE_THREADED_GC], 8), [SINGLE_THREADED_GC]);
  assert.deepEqual(workerExecArgv(8, ['--no-single-threaded-gc'], 2), ['--no-single-threaded-gc']);
});

test('whether a process collects garbage on its own thread: the last of contradicting flags wins, as in V8', () => {
  assert.equal(gcSingleThreaded([]), false);
  assert.equal(gcSingleThreaded([SINGLE_THREADED_GC]), true);
  assert.equal(gcSingleThreaded([SINGLE_THREADED_GC, '--no-single-threaded-gc']), false);
  assert.equal(gcSingleThreaded(['--no-single-threaded-gc', SINGLE_THREADED_GC]), true);
});

test('a single process with one core is told to start node with --single-threaded-gc; otherwise nothing is said', () => {
  assert.match(singleCoreGcAdvice([], 1) ?? '', /one CPU core.*--single-threaded-gc/);
  assert.equal(singleCoreGcAdvice([SINGLE_THREADED_GC], 1), null);
  assert.equal(singleCoreGcAdvice([], 2), null);
});

test('a process pinned to one core sees one core (what the advice and the cluster count)', { skip: !hasTaskset() }, () => {
  const cores = execFileSync('taskset', ['-c', '0', process.execPath, '-p', 'require("node:os").availableParallelism()'], { encoding: 'utf8' });
  assert.equal(Number(cores.trim()), 1);
  // And the flag is one V8 takes at start (a process given it runs).
  const out = execFileSync(process.execPath, [SINGLE_THREADED_GC, '-p', '1+1'], { encoding: 'utf8' });
  assert.equal(out.trim(), '2');
});

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
