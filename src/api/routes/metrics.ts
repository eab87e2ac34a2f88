// GET /metrics: Prometheus text exposition of the registry built by createMetrics().

import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps.ts';

export function metricsRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const registry = deps.metrics.registry;
  app.get('/metrics', {
    // Scraped every 15–60 s forever: per-request info logs would be noise.
    logLevel: 'warn',
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics (text exposition format)',
      produces: ['text/plain'],
      response: { 200: { description: 'Prometheus text format 0.0.4', type: 'string' } },
    },
  }, async (_req, reply) => {
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });
}
