// Which figure of an API answer each on-screen number shows, and how it is written. Pages render these maps
// (every number carries data-k=<key>); the browser tests rebuild them from the exact answer the page rendered
// and compare them with the screen.
import { band, btc, difficulty, hashrate, int, pct, phs, satPhDay } from './format.ts';

export const REJECT_REASONS = ['low-difficulty', 'stale', 'unknown-job', 'duplicate', 'bad-ntime', 'bad-version', 'bad-extranonce2', 'malformed', 'unauthorized'] as const;
const WINDOWS = ['5m', '1h', '24h'] as const;

export interface Rate { hashrate: number; shares: number; seconds: number; error: number | null }
export interface Counts { accepted: number; rejected: Record<string, number>; rejectRate: number }
export interface LiveBlock { height: number; hash: string; account: string; worker: string; reward: string; status: string; confirmations: number; time: string; luck: number | null }
export interface PoolLive {
  asOf: number;
  hashrate: Record<(typeof WINDOWS)[number], Rate>;
  minersOnline: number;
  workersOnline: number;
  shares24h: Counts;
  shares1h: Counts;
  blocks: LiveBlock[];
  coversFrom: string;
  connections: { current: number; authorized: number };
  network: { height: number; difficulty: number; reward: number | null; hashprice: number | null } | null;
  template: { height: number; ageMs: number | null } | null;
  sinceStart: { shares: Record<string, number>; blocks: Record<string, number> };
  health: {
    node: { ok: boolean; error: string | null; height: number | null; synced: boolean | null; checkedAt: string | null };
    database: { ok: boolean; error: string | null; checkedAt: string | null };
    storage: { dbUp: boolean; writerUp: boolean; queueDepth: number; spoolBytes: number; oldestUnsentAgeMs: number | null; accepting: boolean; reason: string | null } | null;
    draining: boolean;
  };
}

export function poolNumbers(p: PoolLive): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of WINDOWS) {
    out[`hashrate.${w}`] = hashrate(p.hashrate[w].hashrate);
    out[`hashrate.${w}.band`] = band(p.hashrate[w].error);
  }
  out.minersOnline = int(p.minersOnline);
  out.workersOnline = int(p.workersOnline);
  out.connections = int(p.connections.current);
  out['shares24h.accepted'] = int(p.shares24h.accepted);
  out['shares24h.rejectRate'] = pct(p.shares24h.rejectRate);
  for (const r of REJECT_REASONS) out[`shares24h.rejected.${r}`] = int(p.shares24h.rejected[r] ?? 0);
  out['network.height'] = int(p.network?.height);
  out['network.difficulty'] = difficulty(p.network?.difficulty);
  out['network.hashprice'] = satPhDay(p.network?.hashprice);
  out['network.reward'] = p.network?.reward === null || p.network?.reward === undefined ? '—' : btc(p.network.reward);
  out['blocks.found'] = int(p.sinceStart.blocks.candidates ?? 0);
  return out;
}

export interface AccountLive {
  asOf: number;
  seen: boolean;
  account: string;
  hashrate: Record<(typeof WINDOWS)[number], Rate> | null;
  workersOnline: number;
  workersOffline: number;
  shares24h: Counts | null;
  workersTotal: number;
  workers: { worker: string; online: boolean; lastSeen: string | null; difficulty: number; hashrate: Record<(typeof WINDOWS)[number], Rate>; shares24h: Counts }[];
}

export function accountNumbers(a: AccountLive): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of WINDOWS) {
    out[`hashrate.${w}`] = hashrate(a.hashrate?.[w].hashrate ?? 0);
    out[`hashrate.${w}.band`] = band(a.hashrate?.[w].error ?? null);
  }
  out.workersOnline = int(a.workersOnline);
  out.workersOffline = int(a.workersOffline);
  out['shares24h.accepted'] = int(a.shares24h?.accepted ?? 0);
  for (const r of REJECT_REASONS) out[`shares24h.rejected.${r}`] = int(a.shares24h?.rejected[r] ?? 0);
  for (const w of a.workers) {
    out[`worker.${w.worker}.hashrate`] = hashrate(w.hashrate['1h'].hashrate);
    out[`worker.${w.worker}.band`] = band(w.hashrate['1h'].error);
    out[`worker.${w.worker}.shares`] = int(w.hashrate['1h'].shares);
    out[`worker.${w.worker}.rejected`] = int(Object.values(w.shares24h.rejected).reduce((x, y) => x + y, 0));
  }
  return out;
}

// ---- market (GET /api/v1/market/*) ----

export interface BookLevel { price: number; orders: number; hashrate: string }
export interface Candle { startsAt: string; open: number; high: number; low: number; close: number; ticks: number; volumeHashes: string }
/** An order's latest clearing (the API's lastTick): demand, fill, queue position and why the fill is short. */
export interface OrderStatus { tick: number; price: number | null; demand: string; fill: string; workers: number; queuePosition: number | null; reason: { code?: string } | null }
export interface MarketBid { id: number; side: 'bid'; state: string; stateMessage: string | null; maxPrice: number; limit: string; budget: string; spent: string; escrow: string; lastTick: OrderStatus | null }
export interface MarketAsk { id: number; side: 'ask'; state: string; stateMessage: string | null; minPrice: number; cap: string | null; workers: 'all' | number[]; lastTick: OrderStatus | null }

/** A book level's row (data-k within tr[data-price]). */
export function levelNumbers(l: BookLevel): Record<string, string> {
  return { price: int(l.price), orders: int(l.orders), hashrate: phs(l.hashrate) };
}

/** Why the last fill is below the demand: the API's reason code; 'filled' without one; '—' before a first tick. */
export function reasonText(s: OrderStatus | null): string {
  if (!s) return '—';
  if (s.reason?.code) return s.reason.code;
  return s.fill !== '0' ? 'filled' : '—';
}

/** One of your orders' row (data-k within tr[data-order="<side>-<id>"]). */
export function orderNumbers(o: MarketBid | MarketAsk): Record<string, string> {
  return {
    state: o.state,
    price: int(o.side === 'bid' ? o.maxPrice : o.minPrice),
    ordered: o.side === 'bid' ? phs(o.limit) : o.cap === null ? 'all workers' : phs(o.cap),
    fill: phs(o.lastTick?.fill),
    queue: o.lastTick?.queuePosition == null ? '—' : int(o.lastTick.queuePosition),
    reason: reasonText(o.lastTick),
    charged: o.side === 'bid' ? btc(o.spent) : '—',
  };
}

// ---- routing (GET /api/v1/routes, operator) ----

export interface RouteView {
  id: number; name: string; workers: string[]; bidId: number | null; destinations: { url: string; user: string }[];
  state: string; code: string | null; message: string | null; since: string; destinationIndex: number; routedSessions: number;
  upstreamDifficulty: number | null; upstreamRttSeconds: number | null; rate60s: { hashesPerSecond: number; shares: number; relativeError: number | null };
  totals: { accepted: number; rejected: number; stale: number; noAnswer: number };
}

/** A route's row: its state and its current destination's health (data-k within tr[data-route]). */
export function routeNumbers(r: RouteView): Record<string, string> {
  return {
    state: r.state,
    why: `${r.code ?? ''}${r.message ? `: ${r.message}` : ''}`,
    destination: r.destinations[r.destinationIndex]?.url ?? '—',
    workers: `${int(r.routedSessions)} of ${int(r.workers.length)}`,
    delivered: hashrate(r.rate60s.hashesPerSecond),
    // rate60s.relativeError is 1 σ; the page shows the 95 % band like every other rate.
    band: band(r.rate60s.relativeError === null ? null : 1.96 * r.rate60s.relativeError),
    answers: `${int(r.totals.accepted)} / ${int(r.totals.rejected)} / ${int(r.totals.stale)} / ${int(r.totals.noAnswer)}`,
    difficulty: difficulty(r.upstreamDifficulty),
    rtt: r.upstreamRttSeconds === null ? '—' : `${(r.upstreamRttSeconds * 1000).toFixed(0)} ms`,
  };
}
