// /api/v1/routes: hashrate routing (issue 12), operator only. A route = workers → a destination pool (backups
// after the first), from now until stopped. The routes live in the database; each pool process carries them out.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import { RouteError } from '../../routing/errors.ts';
import type { RoutingService } from '../../routing/service.ts';
import type { RouteRow } from '../../routing/store.ts';
import { parseUpstreamUrl } from '../../routing/url.ts';
import { ApiError, errorResponses } from '../errors.ts';

export interface RoutingApiDeps {
  auth: { requireOperator(req: Pick<FastifyRequest, 'headers'>): Promise<void> };
  service: RoutingService;
}

const str = { type: 'string' };
const num = { type: 'number' };
const int = { type: 'integer' };
const nullable = (s: object) => ({ ...s, nullable: true });
const security = [{ bearer: [] }];

const rate = {
  type: 'object', description: 'Counter-based delivered rate: upstream-accepted difficulty × 2^32 / window, with its share count and 1-σ relative error (√Σd²/Σd)',
  properties: { windowSeconds: int, shares: int, hashesPerSecond: num, relativeError: nullable(num) },
};
const totals = {
  type: 'object', description: 'Since this process started: our verdict (valid/invalid) and the upstream\'s answers',
  properties: { valid: int, invalid: int, forwarded: int, accepted: int, acceptedDifficulty: num, rejected: int, stale: int, noAnswer: int, switchLost: int, probeAccepted: int,
    rejectReasons: { type: 'object', additionalProperties: int } },
};
const routeView = {
  type: 'object',
  properties: {
    id: int, name: str, workers: { type: 'array', items: str }, hashrate: nullable(num), bidId: nullable(int),
    destinations: { type: 'array', items: { type: 'object', properties: { url: str, user: str } } },
    createdAt: str, startsAt: str, stoppedAt: nullable(str),
    state: { type: 'string', enum: ['probing', 'ready', 'paused', 'failed', 'stopped'] }, code: nullable(str), message: nullable(str), since: str,
    destinationIndex: int, workersFit: nullable(int), extranonce2ForMiners: nullable(int), upstreamDifficulty: nullable(num),
    routedSessions: int, switchLatencySeconds: nullable(num), upstreamRttSeconds: nullable(num),
    rate60s: rate, rate10m: rate, totals,
  },
};

function view(s: RoutingService, r: RouteRow) {
  const live = s.router.routes.get(r.id);
  const st = live?.status;
  return {
    id: r.id, name: r.name, workers: r.workers, hashrate: r.hashrate ?? null, bidId: r.bidId ?? null,
    destinations: r.destinations.map((d) => ({ url: d.url, user: d.user })),
    createdAt: r.createdAt, startsAt: r.startsAt, stoppedAt: r.stoppedAt,
    state: r.stoppedAt ? 'stopped' : st?.state ?? r.state, code: st ? st.code : r.stateCode, message: st ? st.message : r.stateMessage,
    since: st ? new Date(st.since).toISOString() : r.stateSince,
    destinationIndex: st?.destinationIndex ?? 0, workersFit: st?.workersFit ?? null, extranonce2ForMiners: st?.extranonce2ForMiners ?? null,
    upstreamDifficulty: st?.upstreamDifficulty ?? null, routedSessions: s.router.membersOf(r.id).length,
    switchLatencySeconds: s.router.switchLatency.get(r.id) ?? null, upstreamRttSeconds: live?.rttSeconds ?? null,
    rate60s: s.meter.rate(r.id, 60), rate10m: s.meter.rate(r.id, 600), totals: s.meter.tot(r.id),
  };
}

export function routingRoutes(app: FastifyInstance, d: RoutingApiDeps): void {
  const s = d.service;
  app.get('/api/v1/routes', {
    schema: { tags: ['routing'], summary: 'Routes (newest last), with live state, 60 s delivered rate and totals', security,
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: routeView } } }, ...errorResponses } },
  }, async (req) => {
    await d.auth.requireOperator(req);
    return { items: (await s.store.list()).map((r) => view(s, r)) };
  });

  app.post<{ Body: { name?: string; workers: string[]; hashrate?: number; destinations: { url: string; user: string; password?: string }[] } }>('/api/v1/routes', {
    schema: {
      tags: ['routing'], summary: 'Route workers to another pool (probed first; ready after its first accepted share)', security,
      body: {
        type: 'object', required: ['workers', 'destinations'], additionalProperties: false,
        properties: {
          name: { type: 'string', maxLength: 100 },
          hashrate: { type: 'number', exclusiveMinimum: 0, description: 'Take only this much (H/s, the pool\'s estimate) from those workers; absent: all of them' },
          workers: { type: 'array', minItems: 1, maxItems: 10_000, items: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,100}(\\.[A-Za-z0-9_.:-]{0,64})?$' } },
          destinations: { type: 'array', minItems: 1, maxItems: 8, items: { type: 'object', required: ['url', 'user'], additionalProperties: false,
            properties: { url: { type: 'string', maxLength: 300 }, user: { type: 'string', minLength: 1, maxLength: 256 }, password: { type: 'string', maxLength: 256 } } } },
        },
      },
      response: { 201: routeView, ...errorResponses },
    },
  }, async (req, reply) => {
    await d.auth.requireOperator(req);
    const b = req.body;
    for (const dest of b.destinations) {
      try {
        parseUpstreamUrl(dest.url);
      } catch (e) {
        if (e instanceof RouteError) throw new ApiError('VALIDATION_FAILED', `${e.code}: ${e.message}`);
        throw e;
      }
    }
    const row = await s.store.create({ name: b.name ?? b.workers.join(','), workers: b.workers, hashrate: b.hashrate ?? null, destinations: b.destinations.map((x) => ({ url: x.url, user: x.user, password: x.password ?? 'x' })) });
    await s.sync();
    req.log.info({ route: row.id, workers: row.workers, to: row.destinations.map((x) => x.url) }, 'route added');
    reply.status(201);
    return view(s, row);
  });

  app.get<{ Params: { id: number } }>('/api/v1/routes/:id', {
    schema: { tags: ['routing'], summary: 'One route with its pauses, recent events and delivery per worker over the last hour', security,
      params: { type: 'object', properties: { id: int } },
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses } },
  }, async (req) => {
    await d.auth.requireOperator(req);
    const r = await s.store.get(req.params.id);
    if (!r) throw new ApiError('NOT_FOUND', `no route ${req.params.id}`);
    const now = new Date();
    const [pauses, events, delivered] = await Promise.all([s.store.pauses(r.id), s.store.events(r.id, 50), s.store.delivered(new Date(now.getTime() - 3_600_000), new Date(now.getTime() + 60_000), [r.id])]);
    return { ...view(s, r), pauses, events, deliveredLastHour: delivered };
  });

  app.post<{ Params: { id: number } }>('/api/v1/routes/:id/stop', {
    schema: { tags: ['routing'], summary: 'Stop a route: its workers go back to pool work now', security,
      params: { type: 'object', properties: { id: int } }, response: { 200: routeView, ...errorResponses } },
  }, async (req) => {
    await d.auth.requireOperator(req);
    if (!(await s.store.stop(req.params.id))) throw new ApiError('NOT_FOUND', `no route ${req.params.id}`);
    await s.sync();
    req.log.info({ route: req.params.id }, 'route stopped');
    return view(s, (await s.store.get(req.params.id))!);
  });
}

/** Prometheus gauges per route, read at scrape time. */
export function registerRoutingMetrics(registry: Registry, s: RoutingService, prefix = 'hashhub_'): void {
  const each = (fn: (id: number) => number | null) => function (this: Gauge) {
    this.reset();
    for (const id of s.router.routes.keys()) {
      const v = fn(id);
      if (v !== null) this.set({ route: String(id) }, v);
    }
  };
  new Gauge({ name: `${prefix}route_delivered_hashrate`, help: 'Upstream-accepted work over the last 60 s, H/s.', labelNames: ['route'], registers: [registry], collect: each((id) => s.meter.rate(id, 60).hashesPerSecond) });
  new Gauge({ name: `${prefix}route_switch_latency_seconds`, help: 'Route start (or resume) to its first upstream-accepted share.', labelNames: ['route'], registers: [registry], collect: each((id) => s.router.switchLatency.get(id) ?? null) });
  new Gauge({ name: `${prefix}route_upstream_rtt_seconds`, help: 'Smoothed upstream round-trip time.', labelNames: ['route'], registers: [registry], collect: each((id) => s.router.routes.get(id)?.rttSeconds ?? null) });
  new Gauge({ name: `${prefix}route_sessions`, help: 'Sessions working for the route now.', labelNames: ['route'], registers: [registry], collect: each((id) => s.router.membersOf(id).length) });
  new Gauge({ name: `${prefix}route_ready`, help: '1 when the route is ready (delivering), else 0.', labelNames: ['route'], registers: [registry], collect: each((id) => (s.router.routes.get(id)?.state === 'ready' ? 1 : 0)) });
  new Gauge({
    name: `${prefix}route_shares`, help: 'Routed shares since start by our verdict and the upstream\'s answer.', labelNames: ['route', 'kind'], registers: [registry],
    collect() {
      this.reset();
      for (const id of s.router.routes.keys()) {
        const t = s.meter.tot(id);
        for (const k of ['valid', 'invalid', 'forwarded', 'accepted', 'rejected', 'stale', 'noAnswer', 'switchLost', 'probeAccepted'] as const) this.set({ route: String(id), kind: k }, t[k]);
      }
    },
  });
}
