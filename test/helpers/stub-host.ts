import type { StratumHost } from '../../src/stratum/session.ts';

/**
 * A StratumHost with no pool jobs (a share naming one is "unknown job") and nobody authorized by it: for tests of a
 * session's own paths (framing, turns, close, routed work), with the shares it classifies handed to `onShare`.
 */
export function stubHost(onShare: StratumHost['onShare'] = () => {}): StratumHost {
  return {
    jobs: { current: null, get: () => undefined, isStale: () => false, markSeen: () => true },
    now: () => Date.now(),
    authorize: () => ({ ok: false, reason: '' }),
    onShare, onAbuse() {}, onClose() {},
  } as unknown as StratumHost;
}
