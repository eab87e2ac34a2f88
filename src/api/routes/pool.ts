// GET /api/v1/pool: the pool at a glance. Windows and 24 h share counts come from the store's rollups (they
// survive restarts and cover every stratum node); connections, template and since-start counters come from
// this process's pool snapshot.

import type { FastifyInstance } from 'fastify';
import { BLOCK_COUNTER_KEYS } from '../../shares/block-state.ts';
import { SHARE_OUTCOMES } from '../../shares/outcome.ts';
import type { RejectCounts } from '../../store/types.ts';
import type { ApiDeps } from '../deps.ts';
import { errorResponses } from '../errors.ts';

const DAY_SECONDS = 86_400;
const REJECT_OUTCOMES = SHARE_OUTCOMES.filter((o) => o !== 'accepted');
const intMap = (keys: readonly string[]) => ({ type: 'object', properties: Object.fromEntries(keys.map((k) => [k, { type: 'integer' }])) });
const numMap = (keys: readonly string[]) => ({ type: 'object', properties: Object.fromEntries(keys.map((k) => [k, { type: 'number' }])) });

const poolResponse = {
  type: 'object',
  required: ['hashrate', 'miners', 'workers', 'connections', 'network', 'template', 'lastBlock', 'shares24h', 'sinceStart', 'draining'],
  properties: {
    hashrate: { $ref: 'HashrateWindows#' },
    miners: { type: 'integer', description: 'Accounts with accepted shares in the last 24 h.' },
    workers: { type: 'integer', description: 'Workers with accepted shares in the last 24 h.' },
    connections: {
      type: 'object',
      required: ['current', 'authorized'],
      properties: { current: { type: 'integer' }, authorized: { type: 'integer', description: 'Sessions with an authorized worker.' } },
    },
    network: {
      type: ['object', 'null'],
      description: 'The chain tip the current template builds on; null before the first template.',
      required: ['height', 'difficulty'],
      properties: { height: { type: 'integer' }, difficulty: { type: 'number' } },
    },
    template: {
      type: ['object', 'null'],
      required: ['height', 'ageMs'],
      properties: { height: { type: 'integer', description: 'Height of the block being mined.' }, ageMs: { type: ['integer', 'null'] } },
    },
    lastBlock: { anyOf: [{ $ref: 'Block#' }, { type: 'null' }], description: 'Last block found (from the store).' },
    shares24h: {
      type: 'object',
      required: ['accepted', 'rejected', 'rejectRate', 'perSecond', 'rejectRateByClass'],
      properties: {
        accepted: { type: 'integer' },
        rejected: intMap(REJECT_OUTCOMES),
        rejectRate: { type: 'number' },
        perSecond: { ...numMap(['accepted', 'rejected']), description: 'Average shares per second over 24 h.' },
        rejectRateByClass: { ...numMap(REJECT_OUTCOMES), description: 'Share of all shares rejected for each class.' },
      },
    },
    sinceStart: {
      type: 'object',
      description: 'Counters of this pool process since it started.',
      required: ['shares', 'blocks', 'lastBlock'],
      properties: {
        shares: intMap(SHARE_OUTCOMES),
        blocks: { ...intMap(BLOCK_COUNTER_KEYS), description: 'Block candidates found, submitblock rounds, and blocks per status, since start.' },
        lastBlock: {
          type: ['object', 'null'],
          properties: {
            height: { type: 'integer' }, hash: { type: 'string' }, account: { type: 'string' }, worker: { type: 'string' },
            result: { type: ['string', 'null'] }, time: { type: 'string', format: 'date-time' },
          },
        },
      },
    },
    draining: { type: 'boolean' },
  },
} as const;

function shareRates(c: RejectCounts) {
  const rejected = Object.values(c.rejected).reduce((a, b) => a + (b ?? 0), 0);
  const total = c.accepted + rejected;
  const rejectRateByClass = Object.fromEntries(
    REJECT_OUTCOMES.map((o) => [o, total === 0 ? 0 : (c.rejected[o] ?? 0) / total]),
  );
  return {
    accepted: c.accepted,
    rejected: c.rejected,
    rejectRate: c.rejectRate,
    perSecond: { accepted: c.accepted / DAY_SECONDS, rejected: rejected / DAY_SECONDS },
    rejectRateByClass,
  };
}

export function poolRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/api/v1/pool', {
    schema: { tags: ['pool'], summary: 'Pool hashrate, miners, network, last block and share rates', response: { 200: poolResponse, ...errorResponses } },
  }, async () => {
    const [stats, lastBlock] = await Promise.all([deps.stats.poolHashrate(), deps.stats.lastBlock()]);
    const snap = deps.pool();
    return {
      hashrate: { '5m': stats['5m'], '1h': stats['1h'], '24h': stats['24h'] },
      miners: stats.miners,
      workers: stats.workers,
      connections: { current: snap.connections, authorized: snap.authorizedSessions },
      network: snap.network,
      template: snap.template,
      lastBlock,
      shares24h: shareRates(stats.shares24h),
      sinceStart: {
        shares: snap.shares,
        blocks: snap.blocks,
        lastBlock: snap.lastBlock && { ...snap.lastBlock, time: new Date(snap.lastBlock.time).toISOString() },
      },
      draining: snap.draining,
    };
  });
}
