#!/usr/bin/env node
// Runs the build in dist/ when `npm run build` made one and no source changed since (see entry.mjs); else the
// TypeScript sources through tsx, so `npx hashhub` works from a clone without a build step.
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { chooseEntry } from './entry.mjs';

const entry = chooseEntry(path.resolve(import.meta.dirname, '..'));
if (entry.kind === 'src') {
  if (entry.stale) {
    process.stderr.write('hashhub: dist/ is older than src/ (changed since `npm run build`): running the sources through tsx; `npm run build` to run the build again\n');
  }
  const { register } = await import('tsx/esm/api');
  register();
}
await import(pathToFileURL(entry.file).href);
