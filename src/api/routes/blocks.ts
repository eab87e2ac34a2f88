// GET /api/v1/blocks: blocks found by the pool, newest first, paginated.

import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps.ts';
import { errorResponses } from '../errors.ts';
import { type PageQuery, pageOf, pageQuery } from '../schemas.ts';

export function blockRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get<{ Querystring: PageQuery }>('/api/v1/blocks', {
    schema: {
      tags: ['blocks'],
      summary: 'Blocks found by the pool, newest first',
      querystring: pageQuery,
      response: { 200: pageOf('Block'), ...errorResponses },
    },
  }, async (req) => {
    const { limit, offset } = req.query;
    const page = await deps.stats.blocks({ limit, offset });
    return { total: page.total, limit, offset, items: page.items };
  });
}
