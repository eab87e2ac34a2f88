/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The dashboard tests' ways of holding a page to one API answer while they compare the screen with it: the live
// numbers move, so a comparison is only meaningful against the exact answer the page rendered.

import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { until } from './until.ts';

/** Every figure on screen (data-k → text) under `scope`, and the data-asof of the elements that hold them. */
export async function screenNumbers(page: Page, scope: string): Promise<{ asOf: string[]; n: Record<string, string> }> {
  return page.evaluate((sel) => {
    const n: Record<string, string> = {};
    const asOf = new Set<string>();
    for (const root of document.querySelectorAll(sel)) {
      asOf.add(root.getAttribute('data-asof') ?? '');
      for (const el of root.querySelectorAll('[data-k]')) n[el.getAttribute('data-k')!] = el.textContent ?? '';
    }
    return { asOf: [...asOf], n };
  }, scope);
}

export function assertShown(shown: Record<string, string>, expected: Record<string, string>, what: string): void {
  for (const [k, v] of Object.entries(expected)) assert.equal(shown[k], v, `${what}: ${k}`);
}

/** Wait (bounded) until the figures under `scope` are `expected`, then assert them (a failure names the field). */
export async function expectShown(page: Page, scope: string, expected: Record<string, string>, what: string, timeoutMs = 5000): Promise<void> {
  const same = async () => {
    const { n } = await screenNumbers(page, scope);
    return Object.entries(expected).every(([k, v]) => n[k] === v);
  };
  await until(same, timeoutMs, what).catch(() => undefined);
  assertShown((await screenNumbers(page, scope)).n, expected, what);
}

/** The page's live WebSocket (/api/v1/live), with frames from the server held until release(). */
export async function holdFeed(page: Page) {
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  const frames: { type: string; data?: { asOf?: number } }[] = [];
  await page.routeWebSocket(/\/api\/v1\/live/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage(async (m) => {
      await held;
      frames.push(JSON.parse(String(m)));
      ws.send(m);
    });
  });
  return { release, frames };
}

/**
 * The page's GET requests to `pathname` go to the real API and their answers to the page, until one satisfies
 * `catches`: that answer reaches the page, and every other answer to that path waits until release(). So the
 * screen shows exactly that answer, and nothing newer, while the test compares them. answer() waits for it, bounded.
 */
export async function holdAnswer<T>(page: Page, pathname: string, catches: (body: T) => boolean, what: string) {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  let resolve!: (body: T) => void;
  const caught = new Promise<T>((r) => { resolve = r; });
  let held = false;
  let last = '';
  const match = (u: URL) => u.pathname === pathname;
  await page.route(match, async (route) => {
    // Only reads are held: a POST, PATCH or DELETE to the same path goes through untouched.
    if (route.request().method() !== 'GET') return route.continue();
    const res = await route.fetch();
    const text = await res.text();
    last = text;
    let mine = false;
    if (!held && res.ok() && catches(JSON.parse(text) as T)) {
      held = true;
      mine = true;
      resolve(JSON.parse(text) as T);
    }
    if (held && !mine) await released;
    await route.fulfill({ response: res, body: text });
  });
  return {
    async answer(timeoutMs: number): Promise<T> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last answer to ${pathname}: ${last.slice(0, 600)})`)), timeoutMs);
      });
      try {
        return await Promise.race([caught, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async release() {
      release();
      await page.unroute(match);
    },
  };
}
