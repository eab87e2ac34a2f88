// Preloaded into the pool by `npm run bench:stratum` when HASHHUB_BENCH_HEAP_SAMPLE names a file (never by hashhub
// itself): V8's sampling heap profiler over the measured window, counting objects the GC has already collected too,
// so the profile is where the share path allocates (what the scavenger and mark-compact then pay for), not only
// what is still alive. SIGUSR2 starts it (the window's start), SIGWINCH writes the profile (its end), the same
// signals bench/loop-delay.cjs uses. Read it with `npx tsx bench/heap-sites.ts <file> <shares>`.
// HASHHUB_BENCH_HEAP_SAMPLE_SURVIVORS=1 leaves out what the scavenger collected: what remains is what lived through
// a scavenge (promoted to the old generation, the mark-compact's work and the heap's growth), by where it was made.
'use strict';
const fs = require('node:fs');
const inspector = require('node:inspector');

const file = process.env.HASHHUB_BENCH_HEAP_SAMPLE;
if (file) {
  const session = new inspector.Session();
  session.connect();
  session.post('HeapProfiler.enable');
  process.on('SIGUSR2', () => {
    session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.HASHHUB_BENCH_HEAP_SAMPLE_SURVIVORS !== '1' });
  });
  process.on('SIGWINCH', () => {
    session.post('HeapProfiler.stopSampling', (err, res) => {
      fs.writeFileSync(file, JSON.stringify(err ? { error: err.message } : res.profile));
    });
  });
}
