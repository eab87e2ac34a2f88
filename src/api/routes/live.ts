// The live feed the dashboard reads: /api/v1/pool/live (the pool's figures now), /api/v1/pool/hashrate (chart
// series over 1 h / 24 h / 7 d), /api/v1/accounts/{account}/live (its workers with error bands) and the WebSocket
// /api/v1/live pushing the same payloads when they move. All from memory (LiveStats) plus the node's and the
// storage's state checked on a timer, so a request never waits for the database or the node.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { HealthChecks, IngestSnapshot, PoolSnapshot } from '../deps.ts';
import { errorResponses } from '../errors.ts';
import { type LiveStats, SERIES, type SeriesWindow } from '../live.ts';
import { type AccountParams, accountParams } from '../schemas.ts';

export interface LiveDeps {
  stats: LiveStats;
  /** Coinbase value of the current template, satoshis (subsidy + fees); null before the first template. */
  reward(): number | null;
  /** How often the node and the database are checked for the health figures, ms. Default 5 s. */
  healthEveryMs?: number;
  /** How often the WebSocket pushes the pool's figures, ms. Default 1 s. */
  pushEveryMs?: number;
  /** The node RPC endpoints (URLs without credentials), for the operator. */
  nodes?: () => string[];
}

interface Check { ok: boolean; checkedAt: string | null; error: string | null }

/** How long a computed figure is served to every request and viewer before it is computed again, ms. */
const CACHE_MS = 200;
/** The same for one account's figures and series (their cost grows with the account's workers). */
const ACCOUNT_CACHE_MS = 1000;

// Response shapes for the OpenAPI document (the answers are serialized once and shared, see `cached`).
const num = { type: 'number' } as const;
const int = { type: 'integer' } as const;
const nstr = { type: ['string', 'null'] } as const;
const rate = { type: 'object', properties: { hashrate: num, shares: int, seconds: int, error: { type: ['number', 'null'], description: '95 % band, relative (±)' } } } as const;
const rates = { type: 'object', properties: { '5m': rate, '1h': rate, '24h': rate } } as const;
const counts = { type: 'object', properties: { accepted: int, rejected: { type: 'object', additionalProperties: int }, rejectRate: num } } as const;
const block = {
  type: 'object',
  properties: { height: int, hash: { type: 'string' }, account: { type: 'string' }, worker: { type: 'string' }, reward: { type: 'string' }, status: { type: 'string' }, confirmations: int, time: { type: 'string' }, luck: { type: ['number', 'null'] } },
} as const;
const poolLiveSchema = {
  type: 'object',
  properties: {
    asOf: { type: 'integer', description: 'ms; distinct per answer' }, hashrate: rates, minersOnline: int, workersOnline: int, shares24h: counts, shares1h: counts,
    blocks: { type: 'array', items: block }, coversFrom: { type: 'string' },
    connections: { type: 'object', properties: { current: int, authorized: int } },
    network: { type: ['object', 'null'], properties: { height: int, difficulty: num, reward: { type: ['integer', 'null'] }, hashprice: { type: ['number', 'null'], description: 'sat/PH/day' } } },
    template: { type: ['object', 'null'], properties: { height: int, ageMs: { type: ['integer', 'null'] } } },
    sinceStart: { type: 'object', properties: { shares: { type: 'object', additionalProperties: int }, blocks: { type: 'object', additionalProperties: int } } },
    health: { type: 'object', additionalProperties: true },
  },
} as const;
const seriesSchema = {
  type: 'object',
  properties: { asOf: int, window: { type: 'string' }, bucket: int, points: { type: 'array', items: { type: 'object', properties: { time: { type: 'string' }, hashrate: num, accepted: int, rejected: int } } } },
} as const;
const accountLiveSchema = {
  type: 'object',
  properties: {
    asOf: int, seen: { type: 'boolean' }, account: { type: 'string' }, hashrate: { anyOf: [rates, { type: 'null' }] }, workersOnline: int, workersOffline: int,
    shares24h: { anyOf: [counts, { type: 'null' }] }, workersTotal: int,
    workers: { type: 'array', items: { type: 'object', properties: { worker: { type: 'string' }, online: { type: 'boolean' }, lastSeen: nstr, difficulty: num, hashrate: rates, shares24h: counts } } },
  },
} as const;

/** sat/PH/day a petahash earns at this difficulty and block reward (the miners' "hashprice"). */
export function hashprice(rewardSat: number, difficulty: number): number {
  return (rewardSat * 86_400 * 1e15) / (difficulty * 2 ** 32);
}

function storageOf(i: IngestSnapshot | undefined) {
  if (!i) return null;
  return {
    dbUp: i.dbUp, writerUp: i.writerUp ?? true, queueDepth: i.queueDepth, spoolBytes: i.spoolBytes,
    oldestUnsentAgeMs: i.oldestUnsentAgeMs ?? null, accepting: i.storage?.accepting ?? true, reason: i.storage?.message ?? i.storage?.reason ?? null,
  };
}

export interface LiveRouteDeps {
  live: LiveDeps;
  pool: () => PoolSnapshot;
  health: HealthChecks;
  /** Rejects unless the request carries the operator token (accounting's Auth); absent: no operator route. */
  requireOperator?: (req: FastifyRequest) => Promise<void>;
}

export function liveRoutes(app: FastifyInstance, deps: LiveRouteDeps): { wsRoute(app: FastifyInstance): void } {
  const { stats } = deps.live;
  const node: Check & { height: number | null; synced: boolean | null } = { ok: false, checkedAt: null, error: 'not checked yet', height: null, synced: null };
  const db: Check = { ok: false, checkedAt: null, error: 'not checked yet' };
  const check = async () => {
    const at = new Date().toISOString();
    await Promise.all([
      deps.health.node().then(
        (n) => Object.assign(node, { ok: true, checkedAt: at, error: null, height: n.height, synced: n.synced }),
        (e: Error) => Object.assign(node, { ok: false, checkedAt: at, error: e.message }),
      ),
      deps.health.db().then(
        () => Object.assign(db, { ok: true, checkedAt: at, error: null }),
        (e: Error) => Object.assign(db, { ok: false, checkedAt: at, error: e.message }),
      ),
    ]);
  };
  let timer: NodeJS.Timeout | null = null;
  app.addHook('onReady', async () => {
    void check();
    timer = setInterval(() => void check(), deps.live.healthEveryMs ?? 5000);
    timer.unref();
  });
  app.addHook('onClose', async () => { if (timer) clearInterval(timer); });

  let asOf = 0;
  // Figures are computed at most every CACHE_MS and shared by every request and viewer meanwhile: with a
  // thousand workers in an account, one computation costs about a millisecond, and a hundred dashboards must
  // not multiply it.
  const cache = new Map<string, { at: number; value: object; json: string }>();
  const cached = (key: string, compute: () => object, maxAgeMs = CACHE_MS) => {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && now - hit.at < maxAgeMs) return hit;
    if (cache.size > 10_000) cache.clear();
    const value = compute();
    const entry = { at: now, value, json: JSON.stringify(value) };
    cache.set(key, entry);
    return entry;
  };
  const computePool = () => {
    const snap = deps.pool();
    const reward = deps.live.reward();
    // Distinct and increasing, so the page can say which answer it shows and a test can find that answer.
    asOf = Math.max(Date.now(), asOf + 1);
    return {
      asOf,
      ...stats.poolFigures(),
      connections: { current: snap.connections, authorized: snap.authorizedSessions },
      network: snap.network && {
        ...snap.network,
        reward,
        hashprice: reward !== null && snap.network.difficulty > 0 ? hashprice(reward, snap.network.difficulty) : null,
      },
      template: snap.template,
      sinceStart: { shares: snap.shares, blocks: snap.blocks },
      health: { node: { ...node }, database: { ...db }, storage: storageOf(deps.health.ingest?.()), draining: snap.draining },
    };
  };
  const poolLive = () => cached('pool', computePool);
  const computeAccount = (name: string) => {
    asOf = Math.max(Date.now(), asOf + 1);
    const a = stats.account(name);
    return a
      ? { asOf, seen: true, ...a }
      : { asOf, seen: false, account: name, hashrate: null, workersOnline: 0, workersOffline: 0, shares24h: null, workersTotal: 0, workers: [] };
  };

  // An account's figures cost in proportion to its workers (~35 ms for a thousand on a busy core): computed at
  // most once a second, the feed's pace.
  const accountLive = (name: string) => cached(`account:${name}`, () => computeAccount(name), ACCOUNT_CACHE_MS);

  app.get('/api/v1/pool/live', {
    schema: { tags: ['pool'], summary: 'The pool now, from memory: hashrate with error bands, workers online, shares by reason, recent blocks with luck, network, hashprice, health', response: { 200: poolLiveSchema } },
  }, async (_req, reply) => reply.type('application/json; charset=utf-8').send(poolLive().json));

  app.get<{ Querystring: { window: SeriesWindow } }>('/api/v1/pool/hashrate', {
    schema: {
      tags: ['pool'], summary: "The pool's hashrate as a chart series (1 h: per minute, 24 h: per 5 min, 7 d: per hour), from memory",
      querystring: { type: 'object', additionalProperties: false, properties: { window: { type: 'string', enum: Object.keys(SERIES), default: '1h' } } },
      response: { 200: seriesSchema, ...errorResponses },
    },
  }, async (req, reply) => reply.type('application/json; charset=utf-8').send(cached(`series:${req.query.window}`, () => ({ asOf: Date.now(), ...stats.series(req.query.window) })).json));

  app.get<{ Params: AccountParams; Querystring: { window: '1h' | '24h' } }>('/api/v1/accounts/:account/live/hashrate', {
    schema: {
      tags: ['accounts'], summary: "An account's hashrate as a chart series from memory (1 h: per minute, 24 h: per 15 min); empty buckets when this process has not seen it",
      params: accountParams,
      querystring: { type: 'object', additionalProperties: false, properties: { window: { type: 'string', enum: ['1h', '24h'], default: '24h' } } },
      response: { 200: seriesSchema, ...errorResponses },
    },
  }, async (req, reply) => reply.type('application/json; charset=utf-8')
    .send(cached(`aseries:${req.query.window}:${req.params.account}`, () => ({ asOf: Date.now(), ...stats.accountSeries(req.params.account, req.query.window) }), ACCOUNT_CACHE_MS).json));

  app.get<{ Params: AccountParams }>('/api/v1/accounts/:account/live', {
    schema: {
      tags: ['accounts'], summary: "An account's workers now, from memory: hashrate per window with share count and 95 % error band, rejects by reason, online/offline (the first 100 workers by name; totals over all)",
      params: accountParams, response: { 200: accountLiveSchema, ...errorResponses },
    },
  }, async (req, reply) => reply.type('application/json; charset=utf-8').send(accountLive(req.params.account).json));

  const requireOperator = deps.requireOperator;
  if (requireOperator) {
    app.get('/api/v1/operator/status', {
      schema: { tags: ['operations'], summary: 'Operator: node endpoints and their last check, the ingest pipeline (queue, spool backlog, disk budget), the template', security: [{ bearer: [] }] },
    }, async (req) => {
      await requireOperator(req);
      const snap = deps.pool();
      return { nodes: (deps.live.nodes?.() ?? []).map((url) => ({ url })), node: { ...node }, ingest: deps.health.ingest?.() ?? null, template: snap.template };
    });
  }

  // One timer for every viewer: each figure is computed and serialized once per push, whoever watches it.
  interface Viewer { send(m: string): void; account?: string }
  const viewers = new Set<Viewer>();
  const pushEveryMs = deps.live.pushEveryMs ?? 1000;
  let pusher: NodeJS.Timeout | null = null;
  let lastSeq = -1;
  let quiet = 0;
  const push = () => {
    if (viewers.size === 0) {
      if (pusher) clearInterval(pusher);
      pusher = null;
      return;
    }
    // Nothing moved: a push every 5 s anyway (connections, health and the clock still change).
    if (stats.seq === lastSeq && ++quiet < 5) return;
    quiet = 0;
    lastSeq = stats.seq;
    const pool = `{"type":"pool","data":${poolLive().json}}`;
    const accounts = new Map<string, string>();
    for (const v of viewers) {
      v.send(pool);
      if (!v.account) continue;
      let a = accounts.get(v.account);
      if (a === undefined) accounts.set(v.account, (a = `{"type":"account","data":${accountLive(v.account).json}}`));
      v.send(a);
    }
  };
  const startPushing = () => {
    if (pusher) return;
    pusher = setInterval(push, pushEveryMs);
    pusher.unref();
  };
  app.addHook('onClose', async () => { if (pusher) clearInterval(pusher); });

  return {
    /** The WebSocket route; registered where @fastify/websocket is (see app.ts). */
    wsRoute(ws: FastifyInstance) {
      ws.get<{ Querystring: { account?: string } }>('/api/v1/live', {
        websocket: true,
        schema: {
          tags: ['pool'], summary: 'WebSocket: {type:"pool"} every second while shares arrive (the /api/v1/pool/live payload), {type:"block"} on a block change, {type:"account"} with ?account=',
          querystring: { type: 'object', properties: { account: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,100}$' } } },
        },
      }, (socket, req) => {
        const viewer: Viewer = { send: (m) => { if (socket.readyState === 1) socket.send(m); }, account: req.query.account };
        viewers.add(viewer);
        const off = stats.onBlockChange((b) => viewer.send(JSON.stringify({ type: 'block', data: b })));
        socket.on('close', () => { viewers.delete(viewer); off(); });
        viewer.send(JSON.stringify({ type: 'hello', pushEveryMs }));
        viewer.send(`{"type":"pool","data":${poolLive().json}}`);
        if (viewer.account) viewer.send(`{"type":"account","data":${accountLive(viewer.account).json}}`);
        startPushing();
      });
    },
  };
}
