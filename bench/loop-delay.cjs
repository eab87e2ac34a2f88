// Preloaded into the pool by `npm run bench:stratum` (never by hashhub itself): the pool's own event-loop delay
// over the measured window, as a second view of latency beside the generator's. The generator times each submit
// from its side on one core of a 2-core box, so its tail includes its own scheduling; this is how late the
// pool's loop was to run anything, sampled every 2 ms: the wait a submit arriving at a random moment sees
// before the pool starts on it. SIGUSR2 starts the window (resets the histogram), SIGWINCH writes the figures
// to HASHHUB_BENCH_ELD_FILE.
'use strict';
const fs = require('node:fs');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const file = process.env.HASHHUB_BENCH_ELD_FILE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 2 });
  h.enable();
  // HASHHUB_BENCH_HEAP_SNAPSHOT=<file>: a heap snapshot 10 s into the window (HASHHUB_BENCH_HEAP_SNAPSHOT_DELAY_MS),
  // while every connection is still up (at the window's end the generator may already be closing them). A pause of
  // seconds: diagnosis only, never for the figures.
  process.on('SIGUSR2', () => {
    h.reset();
    if (process.env.HASHHUB_BENCH_HEAP_SNAPSHOT) {
      setTimeout(() => require('node:v8').writeHeapSnapshot(process.env.HASHHUB_BENCH_HEAP_SNAPSHOT),
        Number(process.env.HASHHUB_BENCH_HEAP_SNAPSHOT_DELAY_MS ?? 10_000)).unref();
    }
  });
  process.on('SIGWINCH', () => {
    const ms = (ns) => Math.round(ns / 1e4) / 100;
    // Where the pool's memory is at the window's end (MB): RSS against V8's spaces and memory outside the heap.
    const mb = (b) => Math.round(b / 1e5) / 10;
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(require('node:v8').getHeapSpaceStatistics()
      .map((x) => [x.space_name.replace(/_space$/, ''), { size: mb(x.space_size), used: mb(x.space_used_size) }]));
    fs.writeFileSync(file, JSON.stringify({
      samples: h.count, p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), p999: ms(h.percentile(99.9)), max: ms(h.max),
      memory: { rss: mb(m.rss), heapTotal: mb(m.heapTotal), heapUsed: mb(m.heapUsed), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers), spaces },
    }));
  });
}
