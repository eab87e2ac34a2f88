import { DEFAULT_STRATUM_OPTIONS, type StratumOptions } from '../../src/stratum/options.ts';
import type { LineClient, Msg } from './line-client.ts';
import { startTestPool, solveShare } from './pool.ts';
import { StubNode } from './stub-node.ts';

/** Shares at this difficulty are found at once. */
export const FLOOD_DIFFICULTY = 1e-7;

/** A pool whose turn budget is `readTurnBudgetMs`, with the other limits out of the way of a flood of valid shares. */
export function floodPool(readTurnBudgetMs: number, more: Partial<StratumOptions> = {}) {
  const D = FLOOD_DIFFICULTY;
  return startTestPool(new StubNode(), {
    readTurnBudgetMs,
    messagesPerSecond: 20, messageBurst: 40, readLinesPerSecond: 1e9,
    vardiff: { ...DEFAULT_STRATUM_OPTIONS.vardiff, minDifficulty: D, maxDifficulty: D },
    initialDifficulty: D,
    ...more,
  });
}

/** Subscribe and authorize `c` as `worker`; then `shares(n)` is n valid submits (ids 1000…) as one text. */
export async function floodMiner(c: LineClient, worker = 'acct.w1') {
  await c.connected();
  const sub = await c.request(2, 'mining.subscribe', ['flood/1.0']);
  await c.request(4, 'mining.authorize', [worker, 'x']);
  const notify = await c.waitFor((m: Msg) => m.method === 'mining.notify');
  const [, en1, en2Size] = sub.result as [unknown, string, number];
  const shares = (n: number): string => {
    let text = '';
    for (let i = 0; i < n; i++) {
      const sh = solveShare(notify, en1, en2Size, FLOOD_DIFFICULTY, { en2: i.toString(16).padStart(en2Size * 2, '0') });
      sh[0] = worker;
      text += JSON.stringify({ id: 1000 + i, method: 'mining.submit', params: sh }) + '\n';
    }
    return text;
  };
  return { c, shares };
}
