import { DEFAULT_VARDIFF, type VardiffOptions } from './vardiff.ts';

export interface BanOptions {
  /** Window over which rejects and garbage are counted. */
  windowMs: number;
  /** Ban when a window holds at least this many rejected shares (stale ones excluded)… */
  maxRejects: number;
  /** …and they are at least this fraction of the window's shares. */
  minRejectRatio: number;
  /** Ban after this many malformed/oversized/rate-limited messages in a window. */
  maxGarbage: number;
  /** Offences from one IP (each closes the offending connection) within strikeWindowMs before the IP is banned. */
  offencesBeforeBan: number;
  strikeWindowMs: number;
  /** First ban length; doubles with every repeat offence from the same IP, up to maxMs. */
  baseMs: number;
  maxMs: number;
}

export interface StratumOptions {
  host: string;
  port: number;
  tls?: { host?: string; port: number; cert: string | Buffer; key: string | Buffer };
  /** Node id prefix of every extranonce1 (0..255), so several stratum nodes never hand out overlapping work. */
  nodeId: number;
  extranonce1Size: number;
  extranonce2Size: number;
  initialDifficulty: number;
  vardiff: VardiffOptions;
  /** Minimum difficulty per user-agent prefix (some ASIC firmware floods or crashes at low difficulty). */
  userAgentMinDifficulty: Record<string, number>;
  /** BIP310 mask the pool allows; the session's mask is its intersection with the miner's. */
  versionMask: number;
  maxNtimeAheadSec: number;
  maxLineBytes: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Close connections that have not subscribed (resp. authorized) this long after connecting. */
  subscribeTimeoutMs: number;
  authorizeTimeoutMs: number;
  /** Close authorized connections with no share for this long (stale connection eviction). */
  shareTimeoutMs: number;
  /** Per-connection rate of messages other than shares, and of invalid shares (token bucket). Valid and stale
   *  shares never count: a miner is never closed for finding shares fast. */
  messagesPerSecond: number;
  messageBurst: number;
  /** Lines read per second per connection before its socket is paused for the rest of a 100 ms window
   *  (CPU per connection is bounded by reading less, never by dropping or closing). */
  readLinesPerSecond: number;
  /** Time one event-loop turn may spend handling miners' lines, all connections together; past it, connections
   *  with more to say wait for a later turn, unread (see ReadTurns). Keeps the loop on time past saturation. */
  readTurnBudgetMs: number;
  /**
   * TCP sockets read into one buffer shared by all (read-into.ts; default true where this Node has what it needs).
   * false: each read is a Buffer of its own, through 'data' (the path TLS sockets always take).
   */
  sharedReadBuffer?: boolean;
  /** A peer that does not read its socket gets dropped past this many buffered bytes. */
  maxWriteBufferBytes: number;
  /** All connections together: past this many buffered bytes the slowest readers are closed (see WriteBudget). */
  maxTotalWriteBufferBytes: number;
  ban: BanOptions;
  /** Host/port sent in client.reconnect at graceful shutdown; empty params when unset. */
  reconnectHost?: string;
  reconnectPort?: number;
  /** Sweep interval for timeouts and vardiff of idle miners. */
  tickMs: number;
}

export const DEFAULT_STRATUM_OPTIONS: StratumOptions = {
  host: '0.0.0.0',
  port: 3333,
  nodeId: 0,
  extranonce1Size: 4,
  extranonce2Size: 8,
  initialDifficulty: 1,
  vardiff: DEFAULT_VARDIFF,
  userAgentMinDifficulty: {},
  versionMask: 0x1fffe000,
  maxNtimeAheadSec: 600,
  maxLineBytes: 8192,
  maxConnections: 18_000,
  maxConnectionsPerIp: 5_000,
  subscribeTimeoutMs: 15_000,
  authorizeTimeoutMs: 60_000,
  shareTimeoutMs: 15 * 60_000,
  messagesPerSecond: 100,
  messageBurst: 500,
  readLinesPerSecond: 5000,
  readTurnBudgetMs: 5,
  maxWriteBufferBytes: 1 << 20,
  maxTotalWriteBufferBytes: 256 * 1024 * 1024,
  ban: { windowMs: 60_000, maxRejects: 200, minRejectRatio: 0.9, maxGarbage: 20, offencesBeforeBan: 3, strikeWindowMs: 600_000, baseMs: 60_000, maxMs: 3_600_000 },
  tickMs: 1000,
};
