// A fleet: many StratumMiners in one process sharing one GrindScheduler, ramped up at a bounded connect rate so
// 10,000 connects do not arrive as one SYN flood, spread over several source addresses so they are not capped by
// the ~28k ephemeral ports of one address.

import { type ShareRecord, StratumMiner, type StratumMinerOptions } from './client.ts';
import { GrindScheduler, defaultScheduler } from './grinder.ts';
import { LocalPortAllocator } from './ports.ts';
import { LatencyReservoir, type MinerStatsSnapshot, sumSnapshots, summarizeLatency } from './stats.ts';
import { parseStratumUrl } from './units.ts';

export interface FleetOptions
  extends Omit<StratumMinerOptions, 'host' | 'port' | 'tls' | 'user' | 'hashrate' | 'localAddress' | 'scheduler'> {
  count: number;
  /** H/s for the whole fleet, split evenly; 0 = every miner as fast as the CPU allows. */
  totalHashrate: number;
  /** stratum+tcp://host:port or stratum+ssl://host:port. */
  url: string;
  /** Base user; miner i gets `user.w{i}` (or `user{i}` when user already has a .worker part). */
  user: string;
  /** Source addresses, assigned round-robin. */
  localAddresses?: string[];
  /** Connects started per second during ramp-up. Default 200. */
  connectRatePerSec?: number;
  /** Force TLS (otherwise taken from the URL scheme). */
  tls?: boolean;
  /** Default: the process-wide scheduler. */
  scheduler?: GrindScheduler;
  /** Latency samples kept for the fleet as a whole. Default 10000. */
  fleetReservoirSize?: number;
  /** Called with every share answer (after the fleet's own accounting). */
  onShare?: (miner: StratumMiner, share: ShareRecord) => void;
}

export interface FleetStats extends MinerStatsSnapshot {
  miners: number;
  /** Miners with a live, subscribed connection. */
  connected: number;
  /** Miners that connected at least once. */
  everConnected: number;
  /** Miners that gave up (e.g. authorization refused). */
  failed: number;
}

export interface Fleet {
  /** Grows during ramp-up until it holds `count` miners. */
  readonly miners: StratumMiner[];
  /** Resolves once every miner has been started (not necessarily connected). */
  readonly rampedUp: Promise<void>;
  stats(): FleetStats;
  /** Stop ramping and stop every miner (see StratumMiner.stop for drainMs). */
  stop(drainMs?: number): Promise<void>;
}

/** Worker name for miner `i` of a fleet of `count`. */
export function fleetWorkerName(user: string, i: number, count: number): string {
  if (count === 1) return user;
  return user.includes('.') ? `${user}${i}` : `${user}.w${i}`;
}

export function runFleet(opts: FleetOptions): Fleet {
  const { count, totalHashrate, url, user, localAddresses, connectRatePerSec = 200, onShare, fleetReservoirSize = 10_000, ...minerOpts } = opts;
  if (!Number.isInteger(count) || count < 1) throw new Error(`fleet count must be a positive integer, got ${count}`);
  if (!(totalHashrate >= 0) || !Number.isFinite(totalHashrate)) throw new Error(`totalHashrate must be >= 0, got ${totalHashrate}`);
  if (!(connectRatePerSec > 0)) throw new Error(`connectRatePerSec must be > 0, got ${connectRatePerSec}`);
  const target = parseStratumUrl(url);
  const scheduler = opts.scheduler ?? defaultScheduler;
  const perMiner = totalHashrate / count;
  const latency = new LatencyReservoir(fleetReservoirSize);
  const miners: StratumMiner[] = [];
  const failed = new Set<StratumMiner>();
  // Shared by all miners so ports are handed out once per address across the fleet.
  const localPorts = localAddresses?.length ? (opts.localPorts ?? new LocalPortAllocator()) : undefined;
  let stopped = false;
  let rampTimer: NodeJS.Timeout | null = null;
  let finishRamp!: () => void;
  const rampedUp = new Promise<void>((r) => { finishRamp = r; });

  const startOne = (i: number): void => {
    const m = new StratumMiner({
      ...minerOpts,
      host: target.host,
      port: target.port,
      tls: opts.tls ?? target.tls,
      user: fleetWorkerName(user, i, count),
      hashrate: perMiner,
      localAddress: localAddresses?.length ? localAddresses[i % localAddresses.length] : undefined,
      localPorts,
      scheduler,
      // The fleet keeps its own reservoir; per-miner ones only need to be small (10k miners × 1024 floats is 80 MB).
      latencyReservoirSize: minerOpts.latencyReservoirSize ?? 16,
    });
    m.on('share', (s) => {
      if (Number.isFinite(s.latencyMs)) latency.record(s.latencyMs);
      onShare?.(m, s);
    });
    m.on('fatal', () => failed.add(m));
    miners.push(m);
    m.start();
  };

  // Ramp in ticks of at most 100/s granularity: start as many as the rate allows since the ramp began.
  const tickMs = Math.max(10, Math.min(1000, Math.floor(1000 / connectRatePerSec)));
  const rampStart = Date.now();
  const ramp = (): void => {
    rampTimer = null;
    if (stopped) return;
    const due = Math.min(count, Math.floor(((Date.now() - rampStart) / 1000) * connectRatePerSec) + 1);
    while (miners.length < due) startOne(miners.length);
    if (miners.length < count) rampTimer = setTimeout(ramp, tickMs);
    else finishRamp();
  };
  ramp();

  return {
    miners,
    rampedUp,
    stats(): FleetStats {
      const total = sumSnapshots(miners.map((m) => m.stats()), summarizeLatency(latency));
      return {
        ...total,
        miners: miners.length,
        connected: miners.reduce((n, m) => n + (m.connected ? 1 : 0), 0),
        everConnected: miners.reduce((n, m) => n + (m.hasConnected ? 1 : 0), 0),
        failed: failed.size,
      };
    },
    async stop(drainMs = 0): Promise<void> {
      stopped = true;
      if (rampTimer) clearTimeout(rampTimer);
      rampTimer = null;
      finishRamp();
      await Promise.all(miners.map((m) => m.stop(drainMs)));
    },
  };
}
