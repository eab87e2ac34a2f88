// /api/v1/accounts/{account}[/workers|/hashrate]: one account's summary, its workers, its hashrate series.
// An account the store has never seen is a 404 on all three, so a typo is not mistaken for an idle miner.

import type { FastifyInstance } from 'fastify';
import type { Window } from '../../store/types.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, errorResponses } from '../errors.ts';
import { type AccountParams, type PageQuery, WORKER_PATTERN, accountParams, pageOf, pageQuery } from '../schemas.ts';

const WINDOW_SECONDS: Record<Window, number> = { '5m': 300, '1h': 3_600, '24h': 86_400 };
/** Rollups are per minute: a finer bucket would only repeat or split minutes. */
export const SERIES_RESOLUTION_SECONDS = 60;
/** Upper bound on points per series, whatever the window: a request cannot ask the store for millions. */
export const MAX_SERIES_POINTS = 1_440;
const DEFAULT_BUCKET: Record<Window, number> = { '5m': 60, '1h': 60, '24h': 900 };

const notFound = { 404: { description: 'Unknown account (ACCOUNT_NOT_FOUND)', $ref: 'Error#' } } as const;

const accountResponse = {
  type: 'object',
  required: ['account', 'hashrate', 'workers', 'workersOnline', 'shares24h'],
  properties: {
    account: { type: 'string' },
    hashrate: { $ref: 'HashrateWindows#' },
    workers: { type: 'integer' },
    workersOnline: { type: 'integer' },
    shares24h: { $ref: 'RejectCounts#' },
  },
} as const;

const seriesQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    window: { type: 'string', enum: Object.keys(WINDOW_SECONDS), default: '1h' },
    bucket: {
      type: 'integer',
      minimum: SERIES_RESOLUTION_SECONDS,
      maximum: WINDOW_SECONDS['24h'],
      multipleOf: SERIES_RESOLUTION_SECONDS,
      description: `Bucket width in seconds, a multiple of ${SERIES_RESOLUTION_SECONDS} and at most the window; default 60 (5m, 1h) or 900 (24h). At most ${MAX_SERIES_POINTS} points.`,
    },
    worker: { type: 'string', pattern: WORKER_PATTERN, description: "Only this worker's shares." },
  },
} as const;

const seriesResponse = {
  type: 'object',
  required: ['account', 'worker', 'window', 'bucket', 'points'],
  properties: {
    account: { type: 'string' },
    worker: { type: ['string', 'null'] },
    window: { type: 'string' },
    bucket: { type: 'integer' },
    points: { type: 'array', items: { $ref: 'SeriesPoint#' } },
  },
} as const;

interface SeriesQuery { window: Window; bucket?: number; worker?: string }

function checkBucket(window: Window, bucket: number): void {
  const windowSeconds = WINDOW_SECONDS[window];
  const fail = (message: string) => new ApiError('VALIDATION_FAILED', message, [{ in: 'querystring', path: '/bucket', message }]);
  if (bucket > windowSeconds) throw fail(`bucket must be at most the window (${windowSeconds} s)`);
  // Redundant with the schema's minimum today; kept so raising the resolution cannot lift the cap by accident.
  if (Math.ceil(windowSeconds / bucket) > MAX_SERIES_POINTS) throw fail(`at most ${MAX_SERIES_POINTS} points per series`);
}

export function accountRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const requireAccount = async (account: string) => {
    const found = await deps.stats.account(account);
    if (!found) throw new ApiError('ACCOUNT_NOT_FOUND', `Account ${account} not found`);
    return found;
  };

  app.get<{ Params: AccountParams }>('/api/v1/accounts/:account', {
    schema: {
      tags: ['accounts'],
      summary: 'Hashrate, workers and 24 h share counts of one account',
      params: accountParams,
      response: { 200: accountResponse, ...notFound, ...errorResponses },
    },
  }, async (req) => requireAccount(req.params.account));

  app.get<{ Params: AccountParams; Querystring: PageQuery }>('/api/v1/accounts/:account/workers', {
    schema: {
      tags: ['accounts'],
      summary: "An account's workers with hashrate and online status",
      params: accountParams,
      querystring: pageQuery,
      response: { 200: pageOf('Worker'), ...notFound, ...errorResponses },
    },
  }, async (req) => {
    const { limit, offset } = req.query;
    // In parallel: the existence check costs no extra round trip on the common (existing) path.
    const [, page] = await Promise.all([requireAccount(req.params.account), deps.stats.workers(req.params.account, { limit, offset })]);
    return { total: page.total, limit, offset, items: page.items };
  });

  app.get<{ Params: AccountParams; Querystring: SeriesQuery }>('/api/v1/accounts/:account/hashrate', {
    schema: {
      tags: ['accounts'],
      summary: "An account's (or one worker's) hashrate as a time series",
      params: accountParams,
      querystring: seriesQuery,
      response: { 200: seriesResponse, ...notFound, ...errorResponses },
    },
  }, async (req) => {
    const { account } = req.params;
    const { window, worker } = req.query;
    const bucket = req.query.bucket ?? DEFAULT_BUCKET[window];
    checkBucket(window, bucket);
    const [, points] = await Promise.all([
      requireAccount(account),
      deps.stats.hashrateSeries(worker ? { account, worker } : { account }, window, bucket),
    ]);
    return { account, worker: worker ?? null, window, bucket, points };
  });
}
