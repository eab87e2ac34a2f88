// JSON schemas shared by the routes. Registered once with addSchema (by $id) so fastify validates and
// serializes with them and @fastify/swagger lists them once under components.schemas.
//
// Response schemas double as an allow-list: fast-json-stringify writes only the properties named here, so a
// field the store adds later does not leak out of the API until it is given a schema.

import { BLOCK_STATUSES } from '../shares/block-state.ts';
import { SHARE_OUTCOMES } from '../shares/outcome.ts';
import { errorSchema } from './errors.ts';

const REJECT_OUTCOMES = SHARE_OUTCOMES.filter((o) => o !== 'accepted');

/** Same rule as the pool's authorize(): what an account name can be. */
export const ACCOUNT_PATTERN = '^[A-Za-z0-9_-]{1,100}$';
export const WORKER_PATTERN = '^[A-Za-z0-9_.:-]{1,64}$';

export const PAGE_LIMIT_DEFAULT = 50;
export const PAGE_LIMIT_MAX = 500;
/** OFFSET pagination scans what it skips; past this a client should narrow its query instead. */
export const PAGE_OFFSET_MAX = 100_000;

const windowRate = {
  type: 'object',
  required: ['hashrate', 'seconds', 'shares'],
  properties: {
    hashrate: { type: 'number', description: 'H/s: accepted difficulty × 2^32 / seconds.' },
    seconds: {
      type: 'number',
      description: "Seconds the window actually covers: from the window's start or, for a worker seen for the first time within it, from its first share, to now. A worker that started 30 s ago has a 5m window of 30 s.",
    },
    shares: { type: 'integer', description: 'Accepted shares in the window (how much the rate rests on).' },
  },
} as const;

const hashrateWindows = {
  $id: 'HashrateWindows',
  description: 'Hashrate over each window, with the span it covers and the shares it rests on.',
  type: 'object',
  required: ['5m', '1h', '24h'],
  properties: { '5m': windowRate, '1h': windowRate, '24h': windowRate },
} as const;

const rejectCounts = {
  $id: 'RejectCounts',
  type: 'object',
  required: ['accepted', 'rejected', 'rejectRate'],
  properties: {
    accepted: { type: 'integer' },
    rejected: {
      type: 'object',
      description: 'Rejected shares per class; a class with none may be absent.',
      properties: Object.fromEntries(REJECT_OUTCOMES.map((o) => [o, { type: 'integer' }])),
    },
    rejectRate: { type: 'number', description: 'rejected / (accepted + rejected); 0 when no shares.' },
  },
} as const;

const block = {
  $id: 'Block',
  type: 'object',
  required: ['height', 'hash', 'account', 'worker', 'reward', 'status', 'settled', 'result', 'time', 'confirmations'],
  properties: {
    height: { type: 'integer' },
    hash: { type: 'string' },
    account: { type: 'string' },
    worker: { type: 'string' },
    reward: { type: 'string', pattern: '^[0-9]+$', description: 'Satoshis, as a decimal string (exceeds 2^53 safely).' },
    status: {
      type: 'string', enum: [...BLOCK_STATUSES],
      description: 'submitted (no verdict yet, being resubmitted), unconfirmed (the node had it or could not say: the chain decides), ' +
        'pending (on the best chain, immature), confirmed (mature), orphaned (valid, not on the best chain), rejected (invalid).',
    },
    settled: { type: 'boolean', description: 'Final: nothing can change the status any more.' },
    result: { type: ['string', 'null'], description: "The node's last answer or the chain observation behind the status; null when on the chain." },
    time: { type: 'string', format: 'date-time' },
    confirmations: { type: 'integer' },
  },
} as const;

const worker = {
  $id: 'Worker',
  type: 'object',
  required: ['account', 'worker', 'firstSeen', 'lastSeen', 'online', 'hashrate', 'shares24h'],
  properties: {
    account: { type: 'string' },
    worker: { type: 'string' },
    firstSeen: { type: 'string', format: 'date-time' },
    lastSeen: { type: 'string', format: 'date-time' },
    online: { type: 'boolean' },
    hashrate: { $ref: 'HashrateWindows#' },
    shares24h: { $ref: 'RejectCounts#' },
  },
} as const;

const seriesPoint = {
  $id: 'SeriesPoint',
  type: 'object',
  required: ['time', 'hashrate', 'accepted', 'rejected'],
  properties: {
    time: { type: 'string', format: 'date-time', description: 'Start of the bucket.' },
    hashrate: { type: 'number', description: 'H/s over the bucket.' },
    accepted: { type: 'integer' },
    rejected: { type: 'integer' },
  },
} as const;

export const SHARED_SCHEMAS = [errorSchema, hashrateWindows, rejectCounts, block, worker, seriesPoint];

export const pageQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT },
    offset: { type: 'integer', minimum: 0, maximum: PAGE_OFFSET_MAX, default: 0 },
  },
} as const;

export interface PageQuery { limit: number; offset: number }

/** A page of T: the total lets a client draw its pager without a second request. */
export function pageOf(itemRef: string) {
  return {
    type: 'object',
    required: ['total', 'limit', 'offset', 'items'],
    properties: {
      total: { type: 'integer' },
      limit: { type: 'integer' },
      offset: { type: 'integer' },
      items: { type: 'array', items: { $ref: `${itemRef}#` } },
    },
  } as const;
}

export const accountParams = {
  type: 'object',
  required: ['account'],
  properties: { account: { type: 'string', pattern: ACCOUNT_PATTERN, description: 'Account (the part of the Stratum user name before the dot).' } },
} as const;

export interface AccountParams { account: string }
