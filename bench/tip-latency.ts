// Tip-to-notify latency: from the moment the node announces a new block (its ZMQ hashblock goes out; the
// chain runs in its own process) to the moment a miner connected to the pool holds mining.notify with
// clean_jobs=true on that block. Three ways for the pool to learn the tip: ZMQ (goal <= 50 ms), a BIP22 long
// poll (ZMQ off), polling getbestblockhash every second (both off).
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { BitcoinRpc } from '../src/node/rpc.ts';
import type { TemplateSourceOptions } from '../src/node/template-source.ts';
import { Pool } from '../src/pool/pool.ts';
import { InProcessShareLog } from '../src/shares/events.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';

export interface TipLatency { mode: string; samples: number; p50: number; p99: number; max: number }

const now = (): number => performance.timeOrigin + performance.now();

interface NodeProc { child: ChildProcess; info: { url: string; user: string; password: string; zmq: string }; tips: Map<string, number>; mine(): void }

async function startNode(): Promise<NodeProc> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/tip-node.ts'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const tips = new Map<string, number>();
  const lines = createInterface({ input: child.stdout! });
  const info = await new Promise<NodeProc['info']>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench node exited with ${code}`)));
    lines.on('line', (l) => {
      const m = JSON.parse(l) as Record<string, unknown>;
      if (typeof m.url === 'string') resolve(m as unknown as NodeProc['info']);
      else tips.set(m.hash as string, m.at as number);
    });
  });
  return { child, info, tips, mine: () => child.stdin!.write('mine\n') };
}

/** A miner's view: subscribe, authorize, and the time each clean notify arrived, by prevhash (stratum form). */
function connectMiner(port: number): Promise<{ notified: Map<string, number>; close(): void }> {
  const notified = new Map<string, number>();
  const s = net.connect(port, '127.0.0.1');
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    const at = now();
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const m = JSON.parse(buf.slice(0, nl)) as { method?: string; params?: unknown[] };
      buf = buf.slice(nl + 1);
      if (m.method === 'mining.notify' && m.params?.[8] === true) notified.set(m.params[1] as string, at);
    }
  });
  return new Promise((resolve) => s.once('connect', () => {
    s.write('{"id":1,"method":"mining.subscribe","params":[]}\n{"id":2,"method":"mining.authorize","params":["bench.tip","x"]}\n');
    resolve({ notified, close: () => s.destroy() });
  }));
}

/** The stratum prevhash of a block hash (display hex): internal byte order, each 4-byte word swapped. */
function stratumPrev(hashHex: string): string {
  const internal = Buffer.from(hashHex, 'hex').reverse();
  for (let i = 0; i < 32; i += 4) internal.subarray(i, i + 4).reverse();
  return internal.toString('hex');
}

async function measure(node: NodeProc, mode: string, templates: TemplateSourceOptions, samples: number, gapMs: number): Promise<TipLatency> {
  const rpc = new BitcoinRpc({ endpoints: [{ url: node.info.url, user: node.info.user, password: node.info.password }] });
  const pool = new Pool(rpc, {
    network: 'regtest', payoutAddress: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', poolTag: '/bench/', requireAddressAccounts: false,
    stratum: { ...DEFAULT_STRATUM_OPTIONS, host: '127.0.0.1', port: 0, initialDifficulty: 1 },
    templates: { refreshMs: 60_000, ...templates },
    blocks: { journalDir: null },
  }, new InProcessShareLog(), pino({ level: 'warn' }));
  const { port } = await pool.start();
  const miner = await connectMiner(port);
  if (templates.zmq?.address) {
    const t0 = Date.now();
    while (!pool.templates.zmqHealthy && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 500));
  const lat: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const before = node.tips.size;
      node.mine();
      const t0 = Date.now();
      while (node.tips.size === before && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 1));
      const [hash, announced] = [...node.tips].at(-1)!;
      const key = stratumPrev(hash);
      while (!miner.notified.has(key) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 1));
      const got = miner.notified.get(key);
      if (got !== undefined) lat.push(got - announced);
      await new Promise((r) => setTimeout(r, gapMs));
    }
  } finally {
    miner.close();
    await pool.stop(100);
    rpc.close();
  }
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { mode, samples: lat.length, p50: q(0.5), p99: q(0.99), max: lat.at(-1) ?? NaN };
}

export async function benchTipLatency(quick: boolean): Promise<TipLatency[]> {
  const node = await startNode();
  try {
    const n = quick ? 10 : 50;
    return [
      await measure(node, 'ZMQ hashblock', { pollMs: 60_000, longpoll: true, zmq: { address: node.info.zmq } }, n, 100),
      await measure(node, 'long poll (no ZMQ)', { pollMs: 60_000, longpoll: true, zmq: { discover: false } }, n, 100),
      await measure(node, 'polling getbestblockhash each 1 s (no ZMQ, no long poll)', { pollMs: 1000, longpoll: false, zmq: { discover: false } }, quick ? 5 : 20, 250),
    ];
  } finally {
    node.child.stdin!.end();
    await new Promise((r) => node.child.once('exit', r));
  }
}

/** The "Tip to notify" section of BENCHMARKS.md (also written by `npm run bench` as part of its own section). */
export function tipLatencyLines(tips: TipLatency[]): string[] {
  const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');
  return [
    '## Tip to notify (alone)', '',
    'From the moment the node announces a new block (the embedded chain in its own process queues its ZMQ hashblock message) to the moment a miner connected to the pool holds `mining.notify` with clean_jobs on that block. Goal with ZMQ ≤ 50 ms. What bounds it: the template fetch after the announcement (a `getblocktemplate` round trip to the node and the job build) and the event loops of both processes on a 2-core box.', '',
    '| how the pool learns the tip | blocks | p50 ms | p99 ms | max ms |', '| --- | ---: | ---: | ---: | ---: |',
    ...tips.map((t) => `| ${t.mode} | ${t.samples} | ${f(t.p50)} | ${f(t.p99)} | ${f(t.max)} |`),
  ];
}

// `npm run bench:tip [-- --quick]`: this measurement alone, written to its own section of BENCHMARKS.md.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { provenance, writeSection } = await import('./sections.ts');
  const quick = process.argv.includes('--quick');
  const head = provenance(`npm run bench:tip${quick ? ' -- --quick' : ''}`);
  const tips = await benchTipLatency(quick);
  for (const r of tips) console.log(r);
  const lines = tipLatencyLines(tips);
  writeSection('tip-latency', [lines[0], '', ...head, ...lines.slice(1)]);
}
