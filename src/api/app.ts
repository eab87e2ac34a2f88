// The HTTP API: build() without listen(), so tests drive it with inject() and the CLI decides where it
// listens (fastify/fastify docs/Guides/Testing.md).

import cors from '@fastify/cors';
import websocket from '@fastify/websocket';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { ApiDeps } from './deps.ts';
import { frameworkErrors, installErrorHandling } from './errors.ts';
import { LoopMonitor } from './loop-monitor.ts';
import { dashboardRoutes } from './dashboard.ts';
import { accountRoutes } from './routes/accounts.ts';
import { accountingRoutes } from './routes/accounting.ts';
import { blockRoutes } from './routes/blocks.ts';
import { type HealthOptions, healthRoutes } from './routes/health.ts';
import { liveRoutes } from './routes/live.ts';
import { marketRoutes } from './routes/market.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { poolRoutes } from './routes/pool.ts';
import { registerRoutingMetrics, routingRoutes } from './routes/routing.ts';
import { SHARED_SCHEMAS } from './schemas.ts';

export interface ApiOptions {
  /** Off by default. true = any origin (`*`); a list = exactly those origins (e.g. the dashboard's). */
  cors?: string[] | boolean;
  logger?: Logger;
  health?: HealthOptions;
  /** Serve the OpenAPI UI at /docs and the document at /docs/json. Default true. */
  docs?: boolean;
  /** Serve the web dashboard at / (web/dist, or this directory). Default true. */
  dashboard?: boolean | string;
}

/**
 * A URL as the log shows it: the value of every `token` query parameter (the market feed takes one from browsers,
 * which cannot set headers on a WebSocket) replaced by ***, whatever the key's percent-encoding.
 */
export function urlForLog(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return url;
  const params = url.slice(q + 1).split('&').map((kv) => {
    const eq = kv.indexOf('=');
    let key = eq === -1 ? kv : kv.slice(0, eq);
    try { key = decodeURIComponent(key.replace(/\+/g, ' ')); } catch { /* a malformed key is logged as it came */ }
    return key === 'token' ? `${kv.slice(0, eq === -1 ? kv.length : eq)}=***` : kv;
  });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

/** Fastify's request serializer (lib/logger-pino.js), with the URL through urlForLog. */
function requestForLog(req: FastifyRequest) {
  return {
    method: req.method, url: urlForLog(req.url), version: req.headers?.['accept-version'], host: req.host,
    remoteAddress: req.ip, remotePort: req.socket ? req.socket.remotePort : undefined,
  };
}

export function buildApi(deps: ApiDeps, opts: ApiOptions = {}): FastifyInstance {
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger.child({ mod: 'api' }, { serializers: { req: requestForLog } }) } : { logger: false }),
    // Fastify's defaults, spelled out because the routes rely on them: query strings arrive as strings and are
    // coerced to the schema's integers, and schema defaults (limit 50, offset 0, window 1h) are filled in.
    ajv: { customOptions: { coerceTypes: 'array', useDefaults: true, removeAdditional: true, allowUnionTypes: true } },
    // Above the longest account name (100), so an over-long one fails the schema with a clear 400 instead
    // of the router's bare 414.
    routerOptions: { maxParamLength: 200 },
    frameworkErrors,
  }) as unknown as FastifyInstance;

  installErrorHandling(app);
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);

  if (opts.cors) {
    app.register(cors, {
      origin: opts.cors === true ? '*' : opts.cors,
      methods: deps.accounting || deps.routing ? ['GET', 'HEAD', 'OPTIONS', 'POST', 'PATCH', 'DELETE'] : ['GET', 'HEAD', 'OPTIONS'],
      allowedHeaders: ['Authorization', 'Content-Type'],
    });
  }
  if (opts.docs !== false) {
    app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: { title: 'hashhub API', version: '1', description: 'Pool statistics, health probes and metrics.' },
        tags: [
          { name: 'pool' }, { name: 'blocks' }, { name: 'accounts' },
          { name: 'accounting', description: 'Balances, earnings, settings, tokens (Authorization: Bearer <token>)' },
          { name: 'payouts', description: 'Operator: payout batches' },
          { name: 'funding', description: 'Deposit addresses, on-chain deposits, operator credits (docs/accounting.md)' },
          { name: 'health', description: 'Kubernetes probes' }, { name: 'operations' },
          { name: 'market', description: 'Hashrate spot market (docs/market.md)' },
          { name: 'routing', description: 'Operator: route workers to other pools, metered on their answers' },
        ],
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Operator, account owner or watcher token' } } },
      },
      // Keep each shared schema's $id as its name under components.schemas (instead of def-0, def-1, …).
      refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    });
    app.register(swaggerUi, { routePrefix: '/docs' });
  }

  if (deps.routing) registerRoutingMetrics(deps.metrics.registry, deps.routing.service);
  const loop = new LoopMonitor();
  app.addHook('onClose', async () => loop.close());

  // Routes in a plugin registered after swagger, so its onRoute hook sees every one of them.
  app.register(async (api) => {
    poolRoutes(api, deps);
    blockRoutes(api, deps);
    accountRoutes(api, deps);
    if (deps.accounting) accountingRoutes(api, deps.accounting);
    healthRoutes(api, deps, loop, opts.health);
    metricsRoutes(api, deps);
    const auth = deps.accounting?.auth;
    const live = deps.live
      ? liveRoutes(api, { live: deps.live, pool: deps.pool, health: deps.health, requireOperator: auth && ((req) => auth.requireOperator(req)) })
      : null;
    if (deps.routing) routingRoutes(api, deps.routing);
    // Its own context: the market's error handler and rate limit apply to its routes only. @fastify/websocket may
    // be registered once per server (each registration answers every upgrade), and the market registers it in
    // its context: the live feed's socket goes there too, or in a context of its own without the market.
    const market = deps.market;
    if (market) {
      api.register(async (m) => {
        await marketRoutes(m, market);
        live?.wsRoute(m);
      });
    } else if (live) {
      api.register(async (w) => {
        await w.register(websocket);
        live.wsRoute(w);
      });
    }
  });
  if (opts.dashboard !== false) app.register(async (d) => dashboardRoutes(d, typeof opts.dashboard === 'string' ? opts.dashboard : undefined));
  return app;
}

/** Listen; resolves with the bound port (port 0 picks a free one). */
export async function listenApi(app: FastifyInstance, host: string, port: number): Promise<number> {
  await app.listen({ host, port });
  const addr = app.server.address();
  return typeof addr === 'object' && addr ? addr.port : port;
}
