// Parsing and formatting of the units an operator types: hash rates, durations, pool URLs.

export class UsageError extends Error {}

const RATE_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };

/**
 * "2M", "500k", "1.5G", "2 MH/s", "750000" -> H/s. Unit letters are case-insensitive: a milli-hash makes no
 * sense, so "m" is mega as in common miner output.
 */
export function parseHashrate(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)(?:e([+-]?\d+))?\s*([kmgtp]?)(?:h(?:\/s)?)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`invalid hash rate "${text}": use a number with an optional k, M, G or T suffix, e.g. 2M`);
  const value = Number(m[1]) * 10 ** Number(m[2] ?? 0) * RATE_UNITS[m[3].toLowerCase()];
  if (!Number.isFinite(value)) throw new UsageError(`hash rate "${text}" is out of range`);
  return value;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, '': 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/** "60s", "5m", "1h", "250ms", "90" (seconds) -> ms. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|)\s*$/i.exec(text);
  if (!m) throw new UsageError(`invalid duration "${text}": use e.g. 500ms, 60s, 5m or 1h (a bare number is seconds)`);
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2].toLowerCase()]);
}

export interface StratumUrl {
  host: string;
  port: number;
  tls: boolean;
}

/**
 * stratum+tcp://host:port, stratum+ssl:// or stratum+tls:// (TLS), tcp://, ssl://, tls://, or bare host:port.
 * IPv6 hosts in brackets: stratum+tcp://[::1]:3333.
 */
export function parseStratumUrl(text: string): StratumUrl {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `stratum+tcp://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new UsageError(`invalid pool URL "${text}": expected stratum+tcp://host:port`);
  }
  const scheme = u.protocol.replace(/:$/, '').toLowerCase();
  const tlsSchemes = ['stratum+ssl', 'stratum+tls', 'ssl', 'tls'];
  if (![...tlsSchemes, 'stratum+tcp', 'tcp', 'stratum'].includes(scheme)) {
    throw new UsageError(`unsupported scheme "${scheme}" in "${text}": use stratum+tcp:// or stratum+ssl://`);
  }
  if (!u.hostname) throw new UsageError(`pool URL "${text}" has no host`);
  if (!u.port) throw new UsageError(`pool URL "${text}" has no port (e.g. stratum+tcp://${u.hostname}:3333)`);
  if ((u.pathname && u.pathname !== '/') || u.search || u.username) {
    throw new UsageError(`pool URL "${text}" must be scheme://host:port only (user and password have their own options)`);
  }
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: Number(u.port), tls: tlsSchemes.includes(scheme) };
}

export function formatHashrate(hs: number): string {
  const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s', 'EH/s'];
  let v = hs;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 2)} ${units[i]}`;
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(0)} ms`;
}
