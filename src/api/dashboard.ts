// The web dashboard: static files built by Vite (web/ → web/dist, `npm run build:web`) served by the API process
// on its own port, under a strict Content Security Policy (scripts, styles and connections from this origin only;
// no inline script, no framing). The page reads the same REST API and WebSocket feed as anyone else.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** web/dist, from src/api (tsx) or dist/api (compiled): both are two levels below the package root. */
export const DASHBOARD_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web/dist');

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  // 'self' covers ws:// and wss:// to this host (CSP Level 3).
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function secure(reply: FastifyReply): void {
  reply.header('Content-Security-Policy', CSP);
  reply.header('X-Content-Type-Options', 'nosniff');
  reply.header('Referrer-Policy', 'no-referrer');
  reply.header('X-Frame-Options', 'DENY');
  reply.header('Cross-Origin-Opener-Policy', 'same-origin');
}

/** Serve the dashboard at / (index.html) and /assets/*. Without a build: / says how to build it. */
export async function dashboardRoutes(app: FastifyInstance, dir = DASHBOARD_DIR): Promise<void> {
  if (!fs.existsSync(path.join(dir, 'index.html'))) {
    app.get('/', { schema: { hide: true } }, async (_req, reply) => {
      secure(reply);
      return reply.code(503).type('text/plain; charset=utf-8')
        .send(`The dashboard is not built (no ${path.join(dir, 'index.html')}): run \`npm run build:web\` (npm install does it).\n`);
    });
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    // One route per built file (fixed after the build), so unknown paths still get the API's JSON 404.
    wildcard: false,
    index: 'index.html',
    schemaHide: true,
    setHeaders: (reply, file) => {
      secure(reply);
      // Hashed asset names may be cached for ever; index.html must not be (it names the current assets).
      reply.header('Cache-Control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
    cacheControl: false,
  });
}
