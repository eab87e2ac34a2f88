// `hashhub miner`: smoke-test a pool with real hashing, one miner or a fleet.

import net from 'node:net';
import { Command, InvalidArgumentError } from 'commander';
import { type FleetStats, runFleet } from './fleet.ts';
import { UsageError, formatHashrate, formatMs, parseDuration, parseHashrate, parseStratumUrl } from './units.ts';

export interface MinerCliOptions {
  url: string;
  user: string;
  password: string;
  /** Total H/s (0 = unthrottled). */
  hashrate: number;
  fleet: number;
  durationMs?: number;
  versionRolling: boolean;
  suggestDifficulty?: number;
  tls: boolean;
  insecure: boolean;
  localAddresses?: string[];
  connectRate: number;
  statusIntervalMs: number;
  /** Give up when no miner has connected after this long. */
  connectTimeoutMs: number;
}

export interface CliIo {
  /** Status lines and the summary. */
  out: (line: string) => void;
  /** Events worth an operator's attention (connect failures, rejects' causes, pool messages). */
  err: (line: string) => void;
}

/** Exit codes: 0 ok; 1 could not connect, authorization refused, or no share accepted. */
export async function runMinerCli(o: MinerCliOptions, io: CliIo, signal?: AbortSignal): Promise<number> {
  const target = parseStratumUrl(o.url);
  const useTls = o.tls || target.tls;
  const fleet = runFleet({
    count: o.fleet,
    totalHashrate: o.hashrate,
    url: o.url,
    user: o.user,
    password: o.password,
    tls: useTls,
    rejectUnauthorized: !o.insecure,
    versionRolling: o.versionRolling,
    suggestDifficulty: o.suggestDifficulty,
    localAddresses: o.localAddresses,
    connectRatePerSec: o.connectRate,
  });
  const where = `${useTls ? 'stratum+ssl' : 'stratum+tcp'}://${target.host}:${target.port}`;
  io.out(`hashhub miner: ${o.fleet} miner(s) → ${where} as ${o.user}, ${o.hashrate > 0 ? formatHashrate(o.hashrate) : 'unthrottled'}` +
    `${o.durationMs ? ` for ${(o.durationMs / 1000).toFixed(0)} s` : ' until Ctrl-C'}`);

  // Per-miner events are for one miner; a fleet would drown the operator, so only the first few are shown.
  let noted = 0;
  const note = (line: string): void => {
    if (noted < 20) io.err(line);
    else if (noted === 20) io.err('… further miner events suppressed');
    noted++;
  };
  const hookMiner = (i: number): void => {
    const m = fleet.miners[i];
    const tag = o.fleet > 1 ? `[${m.user}] ` : '';
    m.on('authorized', () => { if (o.fleet === 1) io.err(`${tag}authorized as ${m.user}`); });
    m.on('disconnected', ({ reason, reconnectInMs }) => note(`${tag}disconnected: ${reason}${reconnectInMs !== null ? `; retrying in ${(reconnectInMs / 1000).toFixed(1)} s` : ''}`));
    m.on('warning', (e) => note(`${tag}warning: ${e.message}`));
    m.on('fatal', (e) => io.err(`${tag}${e.message}`));
    m.on('message', (text) => note(`${tag}pool says: ${text}`));
  };
  let hooked = 0;
  const hookNew = (): void => { while (hooked < fleet.miners.length) hookMiner(hooked++); };
  hookNew();

  const started = Date.now();
  let lastAt = started;
  let lastHashes = 0;
  const statusLine = (s: FleetStats): string => {
    const now = Date.now();
    const rate = ((s.hashes - lastHashes) * 1000) / Math.max(1, now - lastAt);
    lastAt = now;
    lastHashes = s.hashes;
    return `[${((now - started) / 1000).toFixed(0).padStart(4)}s] miners ${s.connected}/${s.miners} up | ` +
      `shares ${s.accepted} ok / ${s.rejected} rej | blocks ${s.blocks} | ${formatHashrate(rate)} | ` +
      `latency p50 ${formatMs(s.latency.p50)} p99 ${formatMs(s.latency.p99)}`;
  };

  const reason = await new Promise<string>((resolve) => {
    const timers: NodeJS.Timeout[] = [];
    const finish = (why: string): void => {
      for (const t of timers) clearInterval(t);
      signal?.removeEventListener('abort', onAbort);
      resolve(why);
    };
    const onAbort = (): void => finish('interrupted');
    if (signal?.aborted) return finish('interrupted');
    signal?.addEventListener('abort', onAbort);
    timers.push(setInterval(() => {
      hookNew();
      io.out(statusLine(fleet.stats()));
    }, o.statusIntervalMs));
    timers.push(setInterval(() => {
      hookNew();
      const s = fleet.stats();
      if (s.miners === o.fleet && s.failed === s.miners) finish('every miner gave up');
      else if (s.everConnected === 0 && Date.now() - started >= o.connectTimeoutMs) finish('connect timeout');
      else if (o.durationMs !== undefined && Date.now() - started >= o.durationMs) finish('duration reached');
    }, 50));
  });

  // Give answers to shares in flight a moment so the summary counts them.
  await fleet.stop(1000);
  const s = fleet.stats();
  const secs = (Date.now() - started) / 1000;
  const reasons = Object.entries(s.rejectedByReason).map(([k, v]) => `${k}: ${v}`).join(', ');
  io.out(`summary (${reason}): ${secs.toFixed(1)} s, ${s.everConnected}/${s.miners} miner(s) connected`);
  io.out(`  hashes      ${s.hashes} (${formatHashrate(s.hashes / Math.max(secs, 0.001))} average)`);
  io.out(`  shares      submitted ${s.submitted}, accepted ${s.accepted}, rejected ${s.rejected}, unanswered ${s.pending}, dropped ${s.dropped}`);
  if (reasons) io.out(`  rejected    ${reasons}`);
  io.out(`  blocks      ${s.blocks}`);
  io.out(`  latency     p50 ${formatMs(s.latency.p50)}, p99 ${formatMs(s.latency.p99)}, max ${formatMs(s.latency.max)} (${s.latency.count} answers)`);
  io.out(`  connections ${s.connects} connects, ${s.disconnects} disconnects`);

  if (s.everConnected === 0) {
    const last = fleet.miners.map((m) => m.lastErrorMessage).find((e) => e) ?? 'no answer';
    io.err(`error: could not connect to ${where} (${last})`);
    return 1;
  }
  if (s.failed === s.miners) {
    io.err('error: the pool refused every miner (see above)');
    return 1;
  }
  if (s.accepted === 0) {
    io.err('error: no share was accepted (run longer, raise --hashrate, or check the rejects above)');
    return 1;
  }
  return 0;
}

// Commander argument parsers: turn our UsageErrors into commander's "option ... is invalid" messages.
function arg<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (e) {
      if (e instanceof UsageError) throw new InvalidArgumentError(e.message);
      throw e;
    }
  };
}

function positiveInt(what: string): (v: string) => number {
  return arg((v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${what} must be a positive integer, got "${v}"`);
    return n;
  });
}

function positiveNumber(what: string): (v: string) => number {
  return arg((v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${what} must be a number > 0, got "${v}"`);
    return n;
  });
}

export function minerCommand(): Command {
  return new Command('miner')
    .description('Stratum V1 miner with real sha256d, to smoke-test a pool (one miner or a fleet)')
    .requiredOption('--url <url>', 'pool, e.g. stratum+tcp://127.0.0.1:3333 or stratum+ssl://host:port', arg((v) => { parseStratumUrl(v); return v; }))
    .requiredOption('--user <user>', 'address.worker (a fleet adds an index to the worker name)')
    .option('--password <password>', 'Stratum password', 'x')
    .option('--hashrate <rate>', 'total hash rate, e.g. 500k, 2M, 1G (0 = as fast as possible)', arg(parseHashrate), 0)
    .option('--fleet <n>', 'number of miners (connections) in this process', positiveInt('--fleet'), 1)
    .option('--duration <time>', 'stop after e.g. 60s, 5m (default: until Ctrl-C)', arg(parseDuration))
    .option('--version-rolling', 'negotiate BIP310 version rolling (mask 1fffe000)', false)
    .option('--suggest-difficulty <d>', 'send mining.suggest_difficulty', positiveNumber('--suggest-difficulty'))
    .option('--tls', 'connect with TLS (implied by stratum+ssl://)', false)
    .option('--insecure', 'with TLS, do not verify the pool certificate', false)
    .option('--local-address <addrs>', 'comma-separated source addresses for a large fleet, e.g. 127.0.0.2,127.0.0.3',
      arg((v) => {
        const addrs = v.split(',').map((s) => s.trim()).filter(Boolean);
        const bad = addrs.find((a) => net.isIP(a) === 0);
        if (addrs.length === 0 || bad !== undefined) throw new UsageError(`--local-address takes IP addresses, got "${bad ?? v}"`);
        return addrs;
      }))
    .option('--connect-rate <n>', 'fleet connects per second during ramp-up', positiveNumber('--connect-rate'), 200)
    .option('--status-interval <time>', 'status line period', arg(parseDuration), 5000)
    .option('--connect-timeout <time>', 'give up when no miner could connect within this time', arg(parseDuration), 15_000)
    .action(async (raw: {
      url: string; user: string; password: string; hashrate: number; fleet: number; duration?: number;
      versionRolling: boolean; suggestDifficulty?: number; tls: boolean; insecure: boolean; localAddress?: string[];
      connectRate: number; statusInterval: number; connectTimeout: number;
    }) => {
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        process.exitCode = await runMinerCli({
          url: raw.url,
          user: raw.user,
          password: raw.password,
          hashrate: raw.hashrate,
          fleet: raw.fleet,
          durationMs: raw.duration,
          versionRolling: raw.versionRolling,
          suggestDifficulty: raw.suggestDifficulty,
          tls: raw.tls,
          insecure: raw.insecure,
          localAddresses: raw.localAddress,
          connectRate: raw.connectRate,
          statusIntervalMs: Math.max(100, raw.statusInterval),
          connectTimeoutMs: raw.connectTimeout,
        }, {
          out: (l) => process.stdout.write(`${l}\n`),
          err: (l) => process.stderr.write(`${l}\n`),
        }, abort.signal);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
