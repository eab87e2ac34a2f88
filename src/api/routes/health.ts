// Kubernetes probes: the status code decides (200 pass, 503 fail); the small JSON body is for humans.
// /health/live  — restart me: the process answers and its event loop is not stalling.
// /health/ready — send me traffic: database, node (reachable, synced), fresh template, not draining.
// Liveness never looks at dependencies: a database outage must not make the kubelet restart every pool.

import type { FastifyInstance } from 'fastify';
import type { ApiDeps, IngestSnapshot } from '../deps.ts';
import type { LoopMonitor } from '../loop-monitor.ts';

export interface HealthOptions {
  /** Template older than this → not ready, ms. Default 60000: twice the default 30 s template refresh. */
  templateMaxAgeMs?: number;
  /** Per check (db, node), ms. Default 800: under the kubelet's default 1 s probe timeout. */
  checkTimeoutMs?: number;
  /** Event-loop delay above this → not live, ms. Default 1000. */
  maxEventLoopDelayMs?: number;
}

interface CheckResult { ok: boolean; error?: string; ms: number }

async function timed<T>(fn: () => Promise<T>, timeoutMs: number): Promise<{ value?: T; error?: string; ms: number }> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const value = await Promise.race([fn(), timeout]);
    return { value, ms: Math.round(performance.now() - t0) };
  } catch (err) {
    // Not swallowed: the reason is the check's result, shown in the probe body and counted as a failure.
    return { error: err instanceof Error ? err.message : String(err), ms: Math.round(performance.now() - t0) };
  } finally {
    clearTimeout(timer);
  }
}

const check = {
  type: 'object',
  required: ['ok'],
  properties: { ok: { type: 'boolean' }, error: { type: 'string' }, ms: { type: 'integer' } },
} as const;

const readyResponse = {
  type: 'object',
  required: ['status', 'failing', 'checks'],
  properties: {
    status: { type: 'string', enum: ['ready', 'not-ready'] },
    failing: { type: 'array', items: { type: 'string', enum: ['db', 'node', 'template', 'draining', 'ingest'] } },
    checks: {
      type: 'object',
      properties: {
        db: check,
        node: { ...check, properties: { ...check.properties, synced: { type: 'boolean' }, height: { type: 'integer' } } },
        template: { ...check, properties: { ...check.properties, ageMs: { type: ['integer', 'null'] }, maxAgeMs: { type: 'integer' } } },
        draining: { ...check, properties: { ...check.properties, draining: { type: 'boolean' } } },
        ingest: {
          ...check,
          properties: {
            ...check.properties,
            writerUp: { type: 'boolean' }, acceptingShares: { type: 'boolean' }, backlogBytes: { type: 'integer' },
            oldestUnsentAgeMs: { type: ['integer', 'null'] },
          },
        },
      },
    },
  },
} as const;

const liveResponse = {
  type: 'object',
  required: ['status', 'eventLoopDelayMs', 'thresholdMs'],
  properties: {
    status: { type: 'string', enum: ['ok', 'stalled'] },
    eventLoopDelayMs: {
      type: 'object',
      properties: { max: { type: 'number' }, p99: { type: 'number' }, mean: { type: 'number' } },
    },
    thresholdMs: { type: 'number' },
    uptimeSeconds: { type: 'number' },
  },
} as const;

/** Ingest: the writer makes progress and new shares can be stored (a pool refusing shares must not get miners). */
function ingestCheck(s: IngestSnapshot) {
  const problems: string[] = [];
  if (s.writerUp === false) problems.push(`ingest writer down: ${s.writerError ?? 'unknown error'}`);
  if (s.storage && !s.storage.accepting) problems.push(`refusing shares: ${s.storage.message ?? s.storage.reason ?? 'storage full'}`);
  return {
    ok: problems.length === 0,
    ...(problems.length ? { error: problems.join('; ') } : {}),
    writerUp: s.writerUp !== false,
    acceptingShares: s.storage?.accepting !== false,
    backlogBytes: s.spoolBytes,
    oldestUnsentAgeMs: s.oldestUnsentAgeMs == null ? null : Math.round(s.oldestUnsentAgeMs),
  };
}

export function healthRoutes(app: FastifyInstance, deps: ApiDeps, loop: LoopMonitor, opts: HealthOptions = {}): void {
  const templateMaxAgeMs = opts.templateMaxAgeMs ?? 60_000;
  const checkTimeoutMs = opts.checkTimeoutMs ?? 800;
  const maxDelayMs = opts.maxEventLoopDelayMs ?? 1_000;
  // Probes come every few seconds from every kubelet: logging each would drown the useful lines.
  const logLevel = 'warn';

  app.get('/health/live', {
    logLevel,
    schema: { tags: ['health'], summary: 'Liveness: the process answers and its event loop is not stalling', response: { 200: liveResponse, 503: liveResponse } },
  }, async (_req, reply) => {
    const d = loop.delay();
    const stalled = d.maxMs > maxDelayMs;
    return reply.status(stalled ? 503 : 200).send({
      status: stalled ? 'stalled' : 'ok',
      eventLoopDelayMs: { max: d.maxMs, p99: d.p99Ms, mean: d.meanMs },
      thresholdMs: maxDelayMs,
      uptimeSeconds: Math.round(process.uptime()),
    });
  });

  app.get('/health/ready', {
    logLevel,
    schema: { tags: ['health'], summary: 'Readiness: database, node synced, template fresh, not draining', response: { 200: readyResponse, 503: readyResponse } },
  }, async (_req, reply) => {
    const [db, node] = await Promise.all([timed(() => deps.health.db(), checkTimeoutMs), timed(() => deps.health.node(), checkTimeoutMs)]);
    const ageMs = deps.health.templateAgeMs();
    const draining = deps.health.draining();

    const checks = {
      db: { ok: db.error === undefined, ...(db.error !== undefined ? { error: db.error } : {}), ms: db.ms } satisfies CheckResult,
      node: node.value
        ? { ok: node.value.synced, ...(node.value.synced ? {} : { error: 'node is in initial block download' }), ms: node.ms, synced: node.value.synced, height: node.value.height }
        : { ok: false, error: node.error ?? 'no answer', ms: node.ms },
      template: {
        ok: ageMs !== null && ageMs < templateMaxAgeMs,
        ...(ageMs === null ? { error: 'no template yet' } : ageMs >= templateMaxAgeMs ? { error: `template is ${ageMs} ms old` } : {}),
        ageMs,
        maxAgeMs: templateMaxAgeMs,
      },
      draining: { ok: !draining, ...(draining ? { error: 'pool is draining (shutting down)' } : {}), draining },
      ...(deps.health.ingest ? { ingest: ingestCheck(deps.health.ingest()) } : {}),
    };
    const failing = (Object.keys(checks) as (keyof typeof checks)[]).filter((k) => !checks[k]?.ok);
    return reply.status(failing.length ? 503 : 200).send({ status: failing.length ? 'not-ready' : 'ready', failing, checks });
  });
}
