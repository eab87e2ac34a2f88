import { readFileSync } from 'node:fs';

// Where the pool allocates per share: reads a profile written by bench/heap-sample.cjs (HASHHUB_BENCH_HEAP_SAMPLE)
// and prints bytes per share by allocating function and by its call stack, largest first.
//   npx tsx bench/heap-sites.ts <profile.json> <shares answered in the window> [rows]

interface Frame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: Frame; children: ProfileNode[] }
interface Profile { head: ProfileNode; samples: { size: number; nodeId: number }[] }

const [file, sharesArg, rowsArg] = process.argv.slice(2);
if (!file || !sharesArg) {
  console.error('usage: npx tsx bench/heap-sites.ts <profile.json> <shares> [rows]');
  process.exit(1);
}
const shares = Number(sharesArg);
const rows = Number(rowsArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile & { error?: string };
if (!profile.head) {
  console.error(`${file} holds no profile${profile.error ? `: ${profile.error}` : ''}`);
  process.exit(1);
}
const byId = new Map<number, { node: ProfileNode; parent: number | null }>();
const walk = (n: ProfileNode, parent: number | null): void => {
  byId.set(n.id, { node: n, parent });
  for (const c of n.children) walk(c, n.id);
};
walk(profile.head, null);

const name = (f: Frame) => `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
const bySite = new Map<string, number>();
const byStack = new Map<string, number>();
let total = 0;
for (const s of profile.samples) {
  total += s.size;
  const at = byId.get(s.nodeId)!;
  bySite.set(name(at.node.callFrame), (bySite.get(name(at.node.callFrame)) ?? 0) + s.size);
  const stack: string[] = [];
  for (let id: number | null = s.nodeId; id !== null && stack.length < 4; id = byId.get(id)!.parent) stack.push(name(byId.get(id)!.node.callFrame));
  const key = stack.join(' < ');
  byStack.set(key, (byStack.get(key) ?? 0) + s.size);
}
const top = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, rows);
const perShare = (b: number) => (b / shares).toFixed(0).padStart(6);
console.log(`${(total / 1e6).toFixed(1)} MB sampled over ${shares} shares: ${(total / shares).toFixed(0)} B per share`);
console.log('\nB/share  by allocating function');
for (const [k, v] of top(bySite)) console.log(`${perShare(v)}  ${k}`);
console.log('\nB/share  by call stack (innermost first)');
for (const [k, v] of top(byStack)) console.log(`${perShare(v)}  ${k}`);
