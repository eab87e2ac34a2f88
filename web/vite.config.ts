// Builds the dashboard (web/src) into static files in web/dist that the API process serves (src/api/dashboard.ts).
// No inline scripts or styles in the output: the page runs under a strict Content Security Policy.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  plugins: [{
    // The market's published methodology (docs/market.md), served beside the pages for the index's link.
    name: 'hashhub-methodology',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'methodology.md', source: readFileSync(new URL('../docs/market.md', import.meta.url), 'utf8') });
    },
  }],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Modern browsers only: no polyfill injected inline.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: 'es2022',
    chunkSizeWarningLimit: 200,
  },
});
