// GET /metrics: Prometheus text exposition of the registry built by createMetrics().

import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps.ts';
import { errorResponses } from '../errors.ts';

export function metricsRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const registry = deps.metrics.registry;
  app.get('/metrics', {
    // Scraped every 15–60 s forever: per-request info logs would be noise.
    logLevel: 'warn',
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics (text exposition format)',
      produces: ['text/plain'],
      // A source that throws fails the whole scrape (500): Prometheus then marks the target down, which is
      // more honest than a partial page.
      response: { 200: { description: 'Prometheus text format 0.0.4', type: 'string' }, 500: errorResponses[500] },
    },
  }, async (_req, reply) => {
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });
}
