// /api/v1/market/*: the hashrate market over REST (OpenAPI at /docs) and a WebSocket feed.
// - Public: fee schedule, book by price level, ticks, candles, public trades, the daily index.
// - Account owners (Bearer token): place / edit / cancel bids and asks, their fills, trades, events, summary.
//   Watchers read only. The operator may act for an account (header X-Hashhub-Account: <name>).
// - Errors are JSON with a code from the market's catalogue (src/market/errors.ts) or the API's.
// - Every answer carries X-RateLimit-Limit / -Remaining / -Reset; past the limit: 429 RATE_LIMITED.
// Amounts in sat and hashrates in H/s are decimal strings (they pass 2^53); prices are integers.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import { feeSchedule } from '../../market/config.ts';
import { MARKET_ERRORS, MarketError } from '../../market/errors.ts';
import { type IndexRow, listIndex, readIndex } from '../../market/index-run.ts';
import type { Actor, AskRow, BidRow, OrderState } from '../../market/orders.ts';
import { MarketReader, type OrderStatusView, type TickView } from '../../market/reader.ts';
import type { MarketService } from '../../market/service.ts';
import { MarketInputError, formatPhs, parsePhs } from '../../market/units.ts';
import type { Queryable } from '../../store/db.ts';
import { bearerToken } from '../auth.ts';
import { ApiError } from '../errors.ts';

/** Who a token belongs to. Accounting owns the real module (src/api/auth.ts); this is the shape the market needs. */
export type MarketPrincipal = { role: 'operator' } | { role: 'owner' | 'watcher'; accountId: number };

export interface MarketAuth {
  /** The principal of a bearer token, or null when the token is unknown. */
  resolve(token: string): Promise<MarketPrincipal | null>;
}

export interface MarketApiDeps {
  market: MarketService;
  db: Queryable;
  auth: MarketAuth;
  /** Requests per minute per token (or per IP without one). Default 600. */
  rateLimitPerMinute?: number;
}

/** Longest a public market figure is served from memory, ms (see cachedPublic). */
const PUBLIC_CACHE_MS = 1000;

const STATES = ['pending-probe', 'open', 'active', 'paused', 'exhausted', 'cancelled', 'expired'] as const;
const dec = { type: 'string', pattern: '^[0-9]+$' } as const;
const phs = { type: 'string', description: 'PH/s, decimal' } as const;
const price = { type: 'integer', minimum: 0, description: 'sat/PH/day' } as const;

const marketErrorSchema = {
  $id: 'MarketError',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      // Some errors carry facts beside the message (INSUFFICIENT_FUNDS: availableSat; IDEMPOTENCY_CONFLICT: orderId).
      additionalProperties: true,
      properties: {
        code: { type: 'string', description: `One of ${Object.keys(MARKET_ERRORS).join(', ')}, or an API error code` },
        message: { type: 'string' },
        details: { type: 'array', items: { type: 'object', additionalProperties: true } },
      },
    },
  },
} as const;
const errors = {
  400: { $ref: 'MarketError#' }, 401: { $ref: 'MarketError#' }, 403: { $ref: 'MarketError#' }, 404: { $ref: 'MarketError#' },
  409: { $ref: 'MarketError#' }, 422: { $ref: 'MarketError#' }, 429: { $ref: 'MarketError#' },
} as const;

const statusSchema = {
  type: ['object', 'null'],
  properties: {
    tick: { type: 'integer' }, price: { type: ['integer', 'null'] }, demand: phs, fill: phs, workers: { type: 'integer' },
    queuePosition: { type: ['integer', 'null'] }, ahead: { type: ['string', 'null'] }, aheadAtPrice: { type: ['string', 'null'] },
    reason: { type: ['object', 'null'], additionalProperties: true, description: 'Why the fill is below the demand (docs/market.md); hashrates in H/s' },
  },
} as const;

const bidSchema = {
  $id: 'MarketBid',
  type: 'object',
  properties: {
    id: { type: 'integer' }, side: { type: 'string' }, clientOrderId: { type: ['string', 'null'] }, state: { type: 'string', enum: STATES },
    stateCode: { type: ['string', 'null'] }, stateMessage: { type: ['string', 'null'] }, maxPrice: price, limit: phs,
    budget: dec, spent: dec, released: dec, escrow: dec, endTime: { type: ['string', 'null'], format: 'date-time' },
    destinations: { type: 'array', items: { type: 'object', properties: { url: { type: 'string' }, user: { type: 'string' } } } },
    createdAt: { type: 'string', format: 'date-time' }, updatedAt: { type: 'string', format: 'date-time' }, lastTick: statusSchema,
  },
} as const;

const askSchema = {
  $id: 'MarketAsk',
  type: 'object',
  properties: {
    id: { type: 'integer' }, side: { type: 'string' }, clientOrderId: { type: ['string', 'null'] }, state: { type: 'string', enum: STATES },
    stateCode: { type: ['string', 'null'] }, stateMessage: { type: ['string', 'null'] }, minPrice: price, cap: { type: ['string', 'null'] },
    workers: { oneOf: [{ type: 'string', enum: ['all'] }, { type: 'array', items: { type: 'integer' } }] },
    endTime: { type: ['string', 'null'], format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' }, updatedAt: { type: 'string', format: 'date-time' }, lastTick: statusSchema,
  },
} as const;

const destinationBody = {
  type: 'object', required: ['url', 'user'], additionalProperties: false,
  properties: { url: { type: 'string', maxLength: 300 }, user: { type: 'string', maxLength: 256 }, password: { type: 'string', maxLength: 256 } },
} as const;
const hashrateInput = { anyOf: [{ type: 'string', maxLength: 40 }, { type: 'number', exclusiveMinimum: 0 }], description: 'PH/s (decimals allowed)' } as const;
const satInput = { anyOf: [{ type: 'string', pattern: '^[0-9]{1,16}$' }, { type: 'integer', minimum: 1 }], description: 'satoshis' } as const;

const bidBody = {
  type: 'object', required: ['maxPrice', 'limit', 'budget', 'destinations'], additionalProperties: false,
  properties: {
    clientOrderId: { type: 'string', maxLength: 64 }, maxPrice: { type: 'integer', minimum: 1 }, limit: hashrateInput, budget: satInput,
    endTime: { type: 'string', format: 'date-time' }, destinations: { type: 'array', minItems: 1, maxItems: 5, items: destinationBody },
  },
} as const;
const askBody = {
  type: 'object', required: ['minPrice', 'workers'], additionalProperties: false,
  properties: {
    clientOrderId: { type: 'string', maxLength: 64 }, minPrice: { type: 'integer', minimum: 0 }, cap: hashrateInput,
    workers: { anyOf: [{ type: 'string', enum: ['all'] }, { type: 'array', minItems: 1, maxItems: 100_000, items: { type: 'string', maxLength: 201 } }] },
    endTime: { type: 'string', format: 'date-time' },
  },
} as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'integer', minimum: 1 } } } as const;
const stateQuery = { type: 'object', additionalProperties: false, properties: { state: { type: 'string', enum: STATES }, limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 } } } as const;

// The times a query may name: the four-digit years of the formats, less year 0, which Postgres does not have.
const EARLIEST = Date.parse('0001-01-01T00:00:00Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * A time (format date-time) or day (YYYY-MM-DD) in ms, or why it is not one. The schema checks only the shape:
 * 2024-13-45, a leap second (JavaScript has none), year 0 or a time past 9999-12-31 in UTC reached Date or Postgres
 * and answered 500, and Date rolls 2024-02-30 over into March.
 */
function apiTime(raw: string, kind: 'time' | 'day'): number | string {
  const t = Date.parse(kind === 'day' ? `${raw}T00:00:00Z` : raw);
  // The calendar day as written (before any offset) must exist: it reads back as itself through Date.UTC.
  const day = /^(\d{4})-(\d{2})-(\d{2})/.exec(raw);
  const realDay = day !== null && +day[2] >= 1 && +day[2] <= 12 && new Date(Date.UTC(+day[1], +day[2] - 1, +day[3])).getUTCDate() === +day[3];
  if (Number.isNaN(t) || !realDay) return kind === 'day' ? `is not a calendar day: ${raw}` : `is not a valid time: ${raw}`;
  if (t < EARLIEST || t > LATEST) return `${raw} is outside the supported range 0001-01-01 to 9999-12-31`;
  return t;
}

/** A query's time or day in ms; 400 naming the parameter otherwise. */
function queryTime(raw: string, param: string, kind: 'time' | 'day'): number {
  const t = apiTime(raw, kind);
  if (typeof t === 'string') throw new ApiError('VALIDATION_FAILED', `querystring.${param} ${t}`, [{ in: 'querystring', path: `/${param}`, message: t }]);
  return t;
}

/** An order's endTime from a body (absent: none); 400 INVALID_END_TIME naming it otherwise. */
function bodyEndTime(raw: unknown): Date | null {
  if (raw === undefined || raw === null) return null;
  const t = apiTime(String(raw), 'time');
  if (typeof t === 'string') throw new MarketError('INVALID_END_TIME', `endTime ${t}`, 'endTime');
  return new Date(t);
}

const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);

function hs(v: unknown, field: string): bigint {
  try {
    return parsePhs(typeof v === 'number' ? String(v) : String(v));
  } catch (e) {
    throw new MarketError('INVALID_HASHRATE', `${field}: ${(e as MarketInputError).message}`, field);
  }
}

function statusView(s: OrderStatusView | null) {
  if (!s) return null;
  return {
    tick: s.tick, price: s.price, demand: formatPhs(s.demandHs), fill: formatPhs(s.fillHs), workers: s.workers, queuePosition: s.queuePosition,
    ahead: s.aheadHs === null ? null : formatPhs(s.aheadHs), aheadAtPrice: s.aheadAtPriceHs === null ? null : formatPhs(s.aheadAtPriceHs), reason: s.reason,
  };
}

export function bidView(b: BidRow, status: OrderStatusView | null = null) {
  return {
    id: b.id, side: 'bid', clientOrderId: b.clientOrderId, state: b.state, stateCode: b.stateCode, stateMessage: b.stateMessage, maxPrice: b.maxPrice,
    limit: formatPhs(b.limitHs), budget: String(b.budgetSat), spent: String(b.spentSat), released: String(b.releasedSat),
    escrow: String(b.budgetSat - b.spentSat - b.releasedSat), endTime: b.endTime?.toISOString() ?? null,
    destinations: b.destinations.map((d) => ({ url: d.url, user: d.user })), // never the password
    createdAt: b.createdAt.toISOString(), updatedAt: b.updatedAt.toISOString(), lastTick: statusView(status),
  };
}

export function askView(a: AskRow, status: OrderStatusView | null = null) {
  return {
    id: a.id, side: 'ask', clientOrderId: a.clientOrderId, state: a.state, stateCode: a.stateCode, stateMessage: a.stateMessage, minPrice: a.minPrice,
    cap: a.capHs === null ? null : formatPhs(a.capHs), workers: a.allWorkers ? 'all' : a.workerIds, endTime: a.endTime?.toISOString() ?? null,
    createdAt: a.createdAt.toISOString(), updatedAt: a.updatedAt.toISOString(), lastTick: statusView(status),
  };
}

export function tickView(t: TickView) {
  return {
    tick: t.tick, startsAt: t.startsAt.toISOString(), price: t.price, range: t.rangeLo === null ? null : { lo: t.rangeLo, hi: t.rangeHi },
    demand: formatPhs(t.demandHs), supply: formatPhs(t.supplyHs), matched: formatPhs(t.matchedHs), allocated: formatPhs(t.allocatedHs),
    depth: { bids: formatPhs(t.depth.bidHs), asks: formatPhs(t.depth.askHs), matched: formatPhs(t.allocatedHs), available: formatPhs(t.depth.availableHs) },
    bestBid: t.bestBid, bestAsk: t.bestAsk, workers: t.workers, settled: t.settled,
    deliveredHashes: t.deliveredHashes?.toString() ?? null, debit: t.debitSat?.toString() ?? null, credit: t.creditSat?.toString() ?? null, fee: t.feeSat?.toString() ?? null,
    leaseOf: t.leaseOf,
  };
}

function indexView(r: IndexRow) {
  const rat = (x: { num: bigint; den: bigint } | null) => (x ? { num: x.num.toString(), den: x.den.toString() } : null);
  return {
    day: r.day, method: r.method, value: r.value, exact: rat(r.exact), volumeHashes: r.volumeHashes.toString(), tradesUsed: r.tradesUsed,
    excluded: { outliers: r.outliers, outlierHashes: r.outlierHashes.toString(), selfTrades: r.selfTrades, credited: r.credited },
    median: rat(r.median), note: r.note, hashprice: r.hashprice, methodology: r.methodology, inputsDigest: r.inputsDigest,
    publishedAt: r.publishedAt.toISOString(), correctedAt: r.correctedAt?.toISOString() ?? null,
  };
}

/** Fixed one-minute windows per key. */
class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  constructor(readonly limit: number) {}

  take(key: string, now = Date.now()): { remaining: number; resetSeconds: number; ok: boolean } {
    const start = Math.floor(now / 60_000) * 60_000;
    let w = this.windows.get(key);
    if (!w || w.start !== start) {
      if (this.windows.size > 50_000) for (const [k, v] of this.windows) if (v.start !== start) this.windows.delete(k);
      w = { start, count: 0 };
      this.windows.set(key, w);
    }
    w.count++;
    return { remaining: Math.max(0, this.limit - w.count), resetSeconds: Math.ceil((start + 60_000 - now) / 1000), ok: w.count <= this.limit };
  }

  /** Seconds until the key's window ends when it is used up, else null (nothing counted). */
  spent(key: string, now = Date.now()): number | null {
    const start = Math.floor(now / 60_000) * 60_000;
    const w = this.windows.get(key);
    return w && w.start === start && w.count >= this.limit ? Math.ceil((start + 60_000 - now) / 1000) : null;
  }
}

const WS_ROUTE = '/api/v1/market/ws';

function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  // Another scheme (Basic from a proxy in front, say) is not ours: the request goes on without a token.
  const fromHeader = typeof h === 'string' ? bearerToken(h) : null;
  if (fromHeader) return fromHeader;
  // WebSocket clients in browsers cannot set headers: ?token= on the feed's route, matched as a route (never a
  // substring of the URL), and nowhere else, where it would end up in access logs and Referer headers.
  const q = (req.query as Record<string, unknown> | undefined)?.token;
  return typeof q === 'string' && req.routeOptions.url === WS_ROUTE ? q : null;
}

export async function marketRoutes(app: FastifyInstance, deps: MarketApiDeps): Promise<void> {
  const reader = new MarketReader(deps.db);
  // The public figures (book, ticks, candles, index) are the same for every viewer and change only when an order
  // or a tick does: one read serves every request and WebSocket viewer until then (at most PUBLIC_CACHE_MS, for
  // a market clock in another process). A read that fails is not kept.
  const publicCache = new Map<string, { at: number; value: Promise<unknown> }>();
  const forgetPublic = () => publicCache.clear();
  deps.market.events.on('order', forgetPublic);
  deps.market.events.on('tick', forgetPublic);
  deps.market.events.on('settled', forgetPublic);
  app.addHook('onClose', async () => {
    deps.market.events.off('order', forgetPublic);
    deps.market.events.off('tick', forgetPublic);
    deps.market.events.off('settled', forgetPublic);
  });
  const cachedPublic = <T>(key: string, read: () => Promise<T>): Promise<T> => {
    const now = Date.now();
    const hit = publicCache.get(key);
    if (hit && now - hit.at < PUBLIC_CACHE_MS) return hit.value as Promise<T>;
    const value = read();
    publicCache.set(key, { at: now, value });
    value.catch(() => { if (publicCache.get(key)?.value === value) publicCache.delete(key); });
    return value;
  };
  const book = () => cachedPublic('book', () => reader.book());
  const { market } = deps;
  const limiter = new RateLimiter(deps.rateLimitPerMinute ?? 600);
  app.addSchema(marketErrorSchema);
  app.addSchema(bidSchema);
  app.addSchema(askSchema);

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof MarketError) {
      const details = err.field ? [{ in: 'body', path: '/' + err.field.replace(/[.[\]]+/g, '/').replace(/\/$/, ''), message: err.message }] : undefined;
      return reply.status(err.status).send({ error: { code: err.code, message: err.message, ...(details ? { details } : {}), ...(err.extra ?? {}) } });
    }
    throw err; // the API's handler formats everything else
  });

  const principals = new WeakMap<FastifyRequest, MarketPrincipal | null>();
  app.addHook('onRequest', async (req, reply) => {
    const token = bearer(req);
    // Unknown tokens count per address, apart from its requests without one: past the limit, no token from there
    // is looked up until the window ends (they were refused before any count, so guessing went unmetered).
    const guesses = `unknown-token:${req.ip}`;
    const wait = token ? limiter.spent(guesses) : null;
    if (wait !== null) {
      reply.header('Retry-After', String(wait));
      throw new MarketError('RATE_LIMITED', `more than ${limiter.limit} unknown tokens a minute from this address; retry in ${wait} s`);
    }
    const principal = token ? await deps.auth.resolve(token) : null;
    if (token && !principal) {
      limiter.take(guesses);
      throw new MarketError('UNAUTHORIZED', 'unknown or revoked token');
    }
    principals.set(req, principal);
    const key = principal ? (principal.role === 'operator' ? 'operator' : `account:${principal.accountId}`) : `ip:${req.ip}`;
    const r = limiter.take(key);
    reply.header('X-RateLimit-Limit', String(limiter.limit)).header('X-RateLimit-Remaining', String(r.remaining)).header('X-RateLimit-Reset', String(r.resetSeconds));
    if (!r.ok) {
      reply.header('Retry-After', String(r.resetSeconds));
      throw new MarketError('RATE_LIMITED', `more than ${limiter.limit} requests a minute; retry in ${r.resetSeconds} s`);
    }
  });

  // The API's Ajv coerces types (for query strings), in JSON bodies too: a price of null or false became 0 and true 1,
  // so an ask sent with "minPrice": null (the CLI's --price 45,000 is NaN, which JSON writes as null) was stored with
  // a floor of 0 and sold at any clearing price. A price in a body must be a JSON number; the schema checks the rest.
  app.addHook('preValidation', async (req) => {
    const body = req.body as Record<string, unknown> | null | undefined;
    if (!body || typeof body !== 'object' || !req.routeOptions.url?.startsWith('/api/v1/market/')) return;
    for (const field of ['maxPrice', 'minPrice'] as const) {
      if (field in body && typeof body[field] !== 'number') {
        throw new MarketError('INVALID_PRICE', `${field} must be a whole number of sat/PH/day (got ${JSON.stringify(body[field])?.slice(0, 40)})`, field);
      }
    }
  });

  /** The account a request acts for; `write` refuses watchers. */
  const actorOf = async (req: FastifyRequest, write: boolean): Promise<Actor> => {
    const p = principals.get(req);
    if (!p) throw new MarketError('UNAUTHORIZED', 'this needs an account token: Authorization: Bearer <token>');
    if (p.role === 'operator') {
      const name = req.headers['x-hashhub-account'];
      if (typeof name !== 'string' || !name) throw new MarketError('INVALID_ORDER', 'the operator acts for an account: set X-Hashhub-Account: <account name>', 'X-Hashhub-Account');
      const id = await reader.accountId(name);
      if (id === null) throw new MarketError('ACCOUNT_NOT_FOUND', `account ${name} not found`);
      return { accountId: id, operator: true };
    }
    if (write && p.role === 'watcher') throw new MarketError('FORBIDDEN', 'a watcher token is read-only');
    return { accountId: p.accountId, operator: false };
  };
  const requireOperator = (req: FastifyRequest) => {
    if (principals.get(req)?.role !== 'operator') throw new MarketError('FORBIDDEN', 'operator token required');
  };
  const tags = ['market'];
  const secured = [{ bearer: [] }];

  // ---- public ----
  app.get('/api/v1/market/fees', { schema: { tags, summary: 'Fee schedule (no fees to place, edit or cancel)' } }, async () => feeSchedule(market.cfg));

  app.get('/api/v1/market/book', { schema: { tags, summary: 'The book by price level and the latest tick (depth: total, matched, available)' } }, async () => {
    const b = await book();
    const lv = (l: { price: number; orders: number; hs: bigint }) => ({ price: l.price, orders: l.orders, hashrate: formatPhs(l.hs) });
    return { tick: b.tick ? tickView(b.tick) : null, bids: b.bids.map(lv), asks: b.asks.map(lv) };
  });

  app.get<{ Querystring: { limit: number } }>('/api/v1/market/ticks', {
    schema: { tags, summary: 'Latest ticks: price, curves, depth, delivered volume, settlement', querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1440, default: 60 } } } },
  }, async (req) => ({ ticks: (await cachedPublic(`ticks:${req.query.limit}`, () => reader.ticks({ limit: req.query.limit }))).map(tickView) }));

  app.get<{ Querystring: { interval: '1m' | '1h' | '1d'; from?: string; to?: string } }>('/api/v1/market/candles', {
    schema: {
      tags, summary: 'OHLC candles of tick prices with delivered volume',
      querystring: { type: 'object', required: ['interval'], properties: { interval: { type: 'string', enum: ['1m', '1h', '1d'] }, from: { type: 'string', format: 'date-time' }, to: { type: 'string', format: 'date-time' } } },
    },
  }, async (req) => {
    const to = new Date(req.query.to ? queryTime(req.query.to, 'to', 'time') : Date.now());
    const span = { '1m': 86_400_000, '1h': 30 * 86_400_000, '1d': 365 * 86_400_000 }[req.query.interval];
    const from = new Date(req.query.from ? queryTime(req.query.from, 'from', 'time') : Math.max(EARLIEST, to.getTime() - span));
    // The page's own question (no from/to: the latest span) is the same for every viewer.
    const c = req.query.from || req.query.to ? await reader.candles(req.query.interval, from, to) : await cachedPublic(`candles:${req.query.interval}`, () => reader.candles(req.query.interval, from, to));
    return { interval: req.query.interval, candles: c.map((x) => ({ startsAt: x.startsAt.toISOString(), open: x.open, high: x.high, low: x.low, close: x.close, ticks: x.ticks, volumeHashes: x.volumeHashes.toString() })) };
  });

  app.get('/api/v1/market/trades', { schema: { tags, summary: 'Recent trades: per tick and price, delivered accepted volume' } }, async () =>
    ({ trades: (await reader.publicTrades()).map((t) => ({ tick: t.tick, price: t.price, acceptedHashes: t.acceptedHashes.toString() })) }));

  app.get<{ Params: { day: string } }>('/api/v1/market/index/:day', {
    schema: { tags, summary: 'The published daily index of a UTC day, with hashprice beside it', params: { type: 'object', properties: { day: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' } } }, response: { 404: { $ref: 'MarketError#' } } },
  }, async (req) => {
    const r = await readIndex(deps.db, req.params.day);
    if (!r) throw new MarketError('INDEX_NOT_FOUND', `no index published for ${req.params.day}`);
    return indexView(r);
  });

  app.get<{ Querystring: { from?: string; to?: string } }>('/api/v1/market/index', {
    schema: { tags, summary: 'Published daily index values', querystring: { type: 'object', properties: { from: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' }, to: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' } } } },
  }, async (req) => {
    const toDay = req.query.to ? queryTime(req.query.to, 'to', 'day') : Date.parse(`${isoDay(Date.now())}T00:00:00Z`);
    const to = isoDay(toDay);
    const from = req.query.from ? isoDay(queryTime(req.query.from, 'from', 'day')) : isoDay(Math.max(EARLIEST, toDay - 90 * 86_400_000));
    const rows = req.query.from || req.query.to ? await listIndex(deps.db, from, to) : await cachedPublic(`index:${to}`, () => listIndex(deps.db, from, to));
    return { index: rows.map(indexView) };
  });

  // ---- account owners ----
  app.post<{ Body: Record<string, unknown> }>('/api/v1/market/bids', {
    schema: { tags, security: secured, summary: 'Place a bid (budget escrowed; clientOrderId makes a repeat return the first order)', body: bidBody, response: { 200: { $ref: 'MarketBid#' }, 201: { $ref: 'MarketBid#' }, ...errors } },
  }, async (req, reply) => {
    const actor = await actorOf(req, true);
    const b = req.body;
    const r = await market.placeBid(actor, {
      clientOrderId: (b.clientOrderId as string | undefined) ?? null, maxPrice: b.maxPrice as number, limitHs: hs(b.limit, 'limit'),
      budgetSat: BigInt(b.budget as string | number), endTime: bodyEndTime(b.endTime),
      destinations: b.destinations as never,
    });
    return reply.status(r.created ? 201 : 200).send(bidView(r.bid));
  });

  app.post<{ Body: Record<string, unknown> }>('/api/v1/market/asks', {
    schema: { tags, security: secured, summary: 'Place an ask (workers by name, or "all")', body: askBody, response: { 200: { $ref: 'MarketAsk#' }, 201: { $ref: 'MarketAsk#' }, ...errors } },
  }, async (req, reply) => {
    const actor = await actorOf(req, true);
    const b = req.body;
    const r = await market.placeAsk(actor, {
      clientOrderId: (b.clientOrderId as string | undefined) ?? null, minPrice: b.minPrice as number, capHs: b.cap === undefined ? null : hs(b.cap, 'cap'),
      workers: b.workers as 'all' | string[], endTime: bodyEndTime(b.endTime),
    });
    return reply.status(r.created ? 201 : 200).send(askView(r.ask));
  });

  for (const side of ['bid', 'ask'] as const) {
    const ref = side === 'bid' ? 'MarketBid#' : 'MarketAsk#';
    app.get<{ Querystring: { state?: OrderState; limit: number } }>(`/api/v1/market/${side}s`, {
      schema: { tags, security: secured, summary: `Your ${side}s with their latest explanation`, querystring: stateQuery, response: { 200: { type: 'object', properties: { [`${side}s`]: { type: 'array', items: { $ref: ref } } } }, ...errors } },
    }, async (req) => {
      const actor = await actorOf(req, false);
      const opts = { states: req.query.state ? [req.query.state] : undefined, limit: req.query.limit };
      return side === 'bid'
        ? { bids: (await reader.bids(actor.accountId, opts)).map((x) => bidView(x.bid, x.status)) }
        : { asks: (await reader.asks(actor.accountId, opts)).map((x) => askView(x.ask, x.status)) };
    });

    const one = async (req: FastifyRequest<{ Params: { id: number } }>) => {
      const actor = await actorOf(req, false);
      const found = side === 'bid' ? (await reader.bids(actor.accountId, { id: req.params.id }))[0] : (await reader.asks(actor.accountId, { id: req.params.id }))[0];
      if (!found) throw new MarketError('ORDER_NOT_FOUND', `${side} ${req.params.id} not found`);
      return found;
    };
    app.get<{ Params: { id: number } }>(`/api/v1/market/${side}s/:id`, {
      schema: { tags, security: secured, summary: `One ${side}: state, money, latest fill, queue position and reason`, params: idParams, response: { 200: { $ref: ref }, ...errors } },
    }, async (req) => {
      const f = await one(req);
      return 'bid' in f ? bidView(f.bid, f.status) : askView(f.ask, f.status);
    });

    app.patch<{ Params: { id: number }; Body: Record<string, unknown> }>(`/api/v1/market/${side}s/:id`, {
      schema: {
        tags, security: secured, summary: `Edit a ${side} (next tick; a price change or an increase loses time priority)`, params: idParams,
        body: side === 'bid'
          ? { type: 'object', additionalProperties: false, properties: { maxPrice: { type: 'integer', minimum: 1 }, limit: hashrateInput } }
          : { type: 'object', additionalProperties: false, properties: { minPrice: { type: 'integer', minimum: 0 }, cap: { anyOf: [hashrateInput, { type: 'null' }] } } },
        response: { 200: { $ref: ref }, ...errors },
      },
    }, async (req) => {
      const actor = await actorOf(req, true);
      const b = req.body;
      if (side === 'bid') {
        const r = await market.editBid(actor, req.params.id, { maxPrice: b.maxPrice as number | undefined, limitHs: b.limit === undefined ? undefined : hs(b.limit, 'limit') });
        return bidView(r);
      }
      const r = await market.editAsk(actor, req.params.id, { minPrice: b.minPrice as number | undefined, capHs: b.cap === undefined ? undefined : b.cap === null ? null : hs(b.cap, 'cap') });
      return askView(r);
    });

    app.delete<{ Params: { id: number } }>(`/api/v1/market/${side}s/:id`, {
      schema: { tags, security: secured, summary: `Cancel a ${side}: free and immediate`, params: idParams, response: { 200: { type: 'object', additionalProperties: true }, ...errors } },
    }, async (req) => {
      const actor = await actorOf(req, true);
      if (side === 'bid') {
        const r = await market.cancelBid(actor, req.params.id);
        return { ...bidView(r.bid), releasedNow: String(r.releasedSat) };
      }
      const r = await market.cancelAsk(actor, req.params.id);
      return askView(r.ask);
    });

    app.get<{ Params: { id: number } }>(`/api/v1/market/${side}s/:id/trades`, {
      schema: { tags, security: secured, summary: `Trades of a ${side}: per tick, counterpart, price, accepted / rejected / stale work, credit and fee`, params: idParams },
    }, async (req) => {
      await one(req);
      const t = await reader.trades(side, req.params.id);
      return {
        trades: t.map((x) => ({
          tick: x.tick, bidId: x.bidId, askId: x.askId, price: x.price, acceptedHashes: x.acceptedHashes.toString(), acceptedShares: x.acceptedShares,
          rejectedShares: x.rejectedShares, staleShares: x.staleShares, lineCredit: x.lineCreditSat?.toString() ?? null, lineFee: x.lineFeeSat?.toString() ?? null,
        })),
      };
    });

    app.get<{ Params: { id: number } }>(`/api/v1/market/${side}s/:id/events`, {
      schema: { tags, security: secured, summary: `History of a ${side}: every state change and edit, with who and why`, params: idParams },
    }, async (req) => {
      await one(req);
      return { events: (await reader.orderEvents(side, req.params.id)).map((e) => ({ ...e, time: e.time.toISOString() })) };
    });
  }

  app.get<{ Params: { id: number } }>('/api/v1/market/asks/:id/workers', {
    schema: { tags, security: secured, summary: "An ask's workers: measured capacity with its share count and error, status, the bid each serves", params: idParams },
  }, async (req) => {
    const actor = await actorOf(req, false);
    if (!(await reader.asks(actor.accountId, { id: req.params.id }))[0]) throw new MarketError('ORDER_NOT_FOUND', `ask ${req.params.id} not found`);
    const ws = await reader.askWorkers(req.params.id);
    return {
      workers: ws.map((w) => ({
        worker: w.name, tick: w.tick, capacity: formatPhs(w.capacityHs), shares: w.shares,
        // ≈ 1/√N at one difficulty: the relative error of the measured rate.
        errorPct: w.shares > 0 ? Math.round(10_000 / Math.sqrt(w.shares)) / 100 : null,
        status: w.status, bidId: w.bidId,
      })),
    };
  });

  app.get<{ Params: { id: number } }>('/api/v1/market/bids/:id/fills', {
    schema: { tags, security: secured, summary: 'Fills of a bid per tick, with delivered work and what was paid', params: idParams },
  }, async (req) => {
    await one(req);
    const f = await reader.bidFills(req.params.id);
    return {
      fills: f.map((x) => ({ tick: x.tick, price: x.price, demand: formatPhs(x.demandHs), fill: formatPhs(x.fillHs), workers: x.workers, deliveredHashes: x.deliveredHashes?.toString() ?? null, debit: x.debitSat?.toString() ?? null, overrun: x.overrunSat?.toString() ?? null })),
    };
    async function one(r: FastifyRequest<{ Params: { id: number } }>) {
      const actor = await actorOf(r, false);
      if (!(await reader.bids(actor.accountId, { id: r.params.id }))[0]) throw new MarketError('ORDER_NOT_FOUND', `bid ${r.params.id} not found`);
    }
  });

  app.get('/api/v1/market/account', { schema: { tags, security: secured, summary: 'Your market money: available balance, escrow held, paid, earned' } }, async (req) => {
    const actor = await actorOf(req, false);
    const s = await reader.accountSummary(actor.accountId);
    return { escrow: String(s.escrowSat), spent: String(s.spentSat), earned: String(s.earnedSat), liveBids: s.liveBids, liveAsks: s.liveAsks };
  });

  // ---- operator ----
  app.post<{ Params: { day: string }; Body: { reason: string } }>('/api/v1/market/index/:day/correct', {
    schema: {
      tags, security: secured, summary: 'Re-publish a day from the stored data (logged with who and why)',
      params: { type: 'object', properties: { day: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' } } },
      body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 1000 } } },
    },
  }, async (req) => {
    requireOperator(req);
    const r = await market.correctIndex(req.params.day, 'operator', req.body.reason);
    forgetPublic();
    return { changed: r.changed, index: indexView(r.row) };
  });

  // ---- WebSocket feed: ticks and the book for everyone; your orders when authenticated ----
  await app.register(websocket);
  app.get(WS_ROUTE, { websocket: true, schema: { tags, summary: 'WebSocket: {type:"tick"|"book"|"order"} messages; token via Authorization or ?token=' } }, (socket, req) => {
    const principal = principals.get(req) ?? null;
    const accountId = principal && principal.role !== 'operator' ? principal.accountId : null;
    const send = (m: unknown) => { if (socket.readyState === 1) socket.send(JSON.stringify(m)); };
    // The token is asked again before each push of the account's orders (the auth's short cache answers most of
    // these): one revoked after the feed opened closes it (1008), where it went on watching the orders for ever.
    const token = accountId !== null ? bearer(req) : null;
    const stillAuthorized = async (): Promise<boolean> => {
      if (token === null || (await deps.auth.resolve(token)) !== null) return true;
      if (socket.readyState === 1) socket.close(1008, 'token revoked');
      return false;
    };
    const onTick = async () => {
      const b = await book();
      const lv = (l: { price: number; orders: number; hs: bigint }) => ({ price: l.price, orders: l.orders, hashrate: formatPhs(l.hs) });
      if (b.tick) send({ type: 'tick', tick: tickView(b.tick) });
      send({ type: 'book', bids: b.bids.map(lv), asks: b.asks.map(lv) });
      if (accountId !== null && await stillAuthorized()) {
        for (const x of await reader.bids(accountId, { states: ['pending-probe', 'open', 'active', 'paused'] })) send({ type: 'order', order: bidView(x.bid, x.status) });
        for (const x of await reader.asks(accountId, { states: ['open', 'active', 'paused'] })) send({ type: 'order', order: askView(x.ask, x.status) });
      }
    };
    const onOrder = async (e: { side: 'bid' | 'ask'; id: number; accountId: number }) => {
      if (e.accountId !== accountId || !(await stillAuthorized())) return;
      const o = e.side === 'bid' ? (await reader.bids(accountId, { id: e.id }))[0] : (await reader.asks(accountId, { id: e.id }))[0];
      if (o) send({ type: 'order', order: 'bid' in o ? bidView(o.bid, o.status) : askView(o.ask, o.status) });
    };
    const tickListener = () => { onTick().catch((err: Error) => req.log.warn({ err: err.message }, 'market ws: tick')); };
    const orderListener = (e: { side: 'bid' | 'ask'; id: number; accountId: number }) => { onOrder(e).catch((err: Error) => req.log.warn({ err: err.message }, 'market ws: order')); };
    market.events.on('tick', tickListener);
    market.events.on('order', orderListener);
    socket.on('close', () => { market.events.off('tick', tickListener); market.events.off('order', orderListener); });
    send({ type: 'hello', authenticated: principal !== null, tickSeconds: market.cfg.tickSeconds });
    tickListener();
  });
}
