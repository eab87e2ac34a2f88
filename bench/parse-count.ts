// A fixed number of mining.submit lines through the generic parse or the fast path, for instruction counts:
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/x node --import tsx bench/parse-count.ts 100000 fast
// Run with two counts and subtract: the difference is the per-line cost.
import { parseMessageGeneric, parseSubmitLine } from '../src/stratum/protocol.ts';

const n = Number(process.argv[2] ?? 100000);
const fast = process.argv[3] === 'fast';
const lines = Array.from({ length: 256 }, (_, i) =>
  `{"id":${i + 1000},"method":"mining.submit","params":["bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq.rig${i % 7}","${(i % 16).toString(16)}","${i.toString(16).padStart(16, '0')}","6745a1c0","${(i * 7919).toString(16).padStart(8, '0')}","00002000"]}`);
let sink = 0;
const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  const m = fast ? parseSubmitLine(lines[i & 255]) : parseMessageGeneric(lines[i & 255]);
  if (m && 'method' in m && m.method === 'mining.submit') sink += m.submit.nonce.length;
}
const s = Number(process.hrtime.bigint() - t0) / 1e9;
// CPU time of this process (user + system): steadier than wall time on a shared machine.
const cu = process.cpuUsage(c0);
const cpuS = (cu.user + cu.system) / 1e6;
console.log(`${n} lines (${fast ? 'fast' : 'generic'}) in ${s.toFixed(3)} s: ${((s * 1e9) / n).toFixed(0)} ns/line; CPU ${((cpuS * 1e9) / n).toFixed(0)} ns/line (${sink})`);
