#!/usr/bin/env node
// Runs the build in dist/ when `npm run build` made one from the sources as they are (see entry.mjs); else the
// TypeScript sources through tsx, so `npx hashhub` works from a clone without a build step.
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import cluster from 'node:cluster';
import { chooseEntry } from './entry.mjs';

const entry = chooseEntry(path.resolve(import.meta.dirname, '..'));
if (entry.kind === 'src') {
  // Once per pool: a cluster's Stratum processes run this file again and would repeat it.
  if (entry.why !== null && cluster.isPrimary) {
    process.stderr.write(`hashhub: running the sources through tsx, not dist/: ${entry.why}; \`npm run build\` to build again\n`);
  }
  const { register } = await import('tsx/esm/api');
  register();
}
await import(pathToFileURL(entry.file).href);
