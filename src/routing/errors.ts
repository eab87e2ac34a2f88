// Why a route is not delivering, as one closed set: each failure of an upstream pool has its own code, shown on
// the route (CLI, API, metrics) and recorded with its times (MARKET.md complaint 9: a specific error, not "failed").

export const ROUTE_ERROR_CODES = [
  'bad-url', // not a stratum+tcp:// or stratum+ssl:// URL with host and port
  'unknown-scheme',
  'dns', // the host name does not resolve
  'unreachable', // refused, timed out, reset before the handshake
  'tls', // TLS handshake or certificate failure
  'subscribe-refused',
  'auth-refused',
  'extranonce2-too-small', // not enough extranonce2 left to miners after our per-worker prefix
  'difficulty-too-high', // upstream difficulty above the route's ceiling (our miners would barely find shares)
  'no-job', // subscribed and authorized, but no mining.notify in time
  'garbage', // a line that is not JSON-RPC, or a malformed notify/answer
  'line-too-long', // a line over the miners' line limit
  'no-answer', // the upstream stopped answering requests
  'rejects', // too many of our valid shares rejected over the window
  'disconnected', // the upstream closed a working connection
] as const;

export type RouteErrorCode = (typeof ROUTE_ERROR_CODES)[number];

export class RouteError extends Error {
  constructor(readonly code: RouteErrorCode, message: string) {
    super(message);
    this.name = 'RouteError';
  }
}
