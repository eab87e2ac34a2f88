// Fills a PoolSnapshot from the pool's live objects. PoolView is the structural subset of Pool this reads,
// so `poolSnapshot(pool)` type-checks against the real Pool without the api importing src/pool (imports point
// down; only cli knows every part).

import { bitsToDifficulty } from '../chain/index.ts';
import type { BlockCounters } from '../shares/block-state.ts';
import type { ShareOutcome } from '../shares/outcome.ts';
import type { PoolSnapshot } from './deps.ts';

export interface PoolView {
  stats: {
    shares: Record<ShareOutcome, number>;
    blocks: BlockCounters;
    blockResults: Record<string, number>;
    lastBlock: PoolSnapshot['lastBlock'];
  };
  server: { stats: { connections: number; authorized: number; writeBuffers?: { bufferedBytes: number; slowReadersClosed: number } }; isDraining: boolean };
  templates: { status: { templateAgeMs: number | null }; current: { height: number; bits: string } | undefined };
}

export function poolSnapshot(pool: PoolView): PoolSnapshot {
  const s = pool.stats;
  const t = pool.templates.current;
  return {
    connections: pool.server.stats.connections,
    authorizedSessions: pool.server.stats.authorized,
    // Copies: the snapshot must not change under a caller that compares it with a later one.
    shares: { ...s.shares },
    blocks: { ...s.blocks },
    blockResults: { ...s.blockResults },
    lastBlock: s.lastBlock ? { ...s.lastBlock } : null,
    template: t ? { height: t.height, ageMs: pool.templates.status.templateAgeMs } : null,
    network: t ? { height: t.height - 1, difficulty: bitsToDifficulty(parseInt(t.bits, 16)) } : null,
    draining: pool.server.isDraining,
    ...(pool.server.stats.writeBuffers ? { writeBuffers: { ...pool.server.stats.writeBuffers } } : {}),
  };
}
