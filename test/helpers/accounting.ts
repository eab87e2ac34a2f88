import type { Database, Queryable } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { BACKENDS, type Backend } from './pg.ts';
import { type BooksFrame, type SchemeParams, ensureFrame, syncParams } from '../../src/accounting/params.ts';
import type { ShareEvent } from '../../src/shares/events.ts';
import { SqlShareWriter } from '../../src/store/share-writer.ts';

// Shared setup for the accounting tests: a migrated database per backend, accounts by name.

export { BACKENDS, type Backend };

export async function openMigrated(backend: Backend): Promise<{ db: Database; cleanup(): Promise<void> }> {
  const h = await backend.open();
  await migrate(h.db);
  return h;
}

/** accounts.id for a name, creating the row (what ingest does for a new miner). */
export async function accountId(q: Queryable, name: string): Promise<bigint> {
  await q.query('INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [name]);
  const r = await q.query<{ id: string }>('SELECT id::text AS id FROM accounts WHERE name = $1', [name]);
  return BigInt(r.rows[0].id);
}

/** The SQLSTATE of a rejected promise (or of its cause). */
export async function sqlstate(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; cause?: { code?: string } };
    return err.code ?? err.cause?.code ?? 'no-code';
  }
  return undefined;
}

// ---- books, shares, blocks -------------------------------------------------------------------------------------


export const DEFAULT_PARAMS: SchemeParams = {
  fppsFeeBps: 200, pplnsFeeBps: 100, soloFeeBps: 50, defaultScheme: 'pplns', pplnsN: 2, pplnsMaxWindowSeconds: 3600,
};

/** Books whose first period starts at `startedAt` (a period boundary), with params in force from then. */
export async function setupBooks(db: Database, startedAt: number, periodSeconds = 10, params: Partial<SchemeParams> = {}): Promise<BooksFrame> {
  const frame = await ensureFrame(db, { periodSeconds, network: 'regtest', now: startedAt - periodSeconds * 1000 });
  if (frame.startedAt !== startedAt) throw new Error(`books start ${frame.startedAt}, wanted ${startedAt}`);
  await syncParams(db, frame, { ...DEFAULT_PARAMS, ...params }, startedAt - periodSeconds * 1000);
  return frame;
}

let shareSeq = 0;
export function share(over: Partial<ShareEvent> & { time: number; account: string }): ShareEvent {
  shareSeq++;
  return {
    id: `s-${process.pid}-${shareSeq}`, worker: 'w1', sessionId: 'sess', remoteAddress: '127.0.0.1', jobId: 'j',
    height: 200, outcome: 'accepted', poolDifficulty: 1, shareDifficulty: 1, block: false, nbits: 0x1b0404cb, ...over,
  };
}

export async function writeShares(db: Database, shares: ShareEvent[]): Promise<void> {
  const w = new SqlShareWriter(db);
  for (let i = 0; i < shares.length; i += 5000) await w.writeShares(shares.slice(i, i + 5000));
}

export async function setWatermark(q: Queryable, t: number, source = 'test-source'): Promise<void> {
  await q.query(
    `INSERT INTO ingest_watermarks (source, committed_to) VALUES ($1, $2::timestamptz)
     ON CONFLICT (source) DO UPDATE SET committed_to = EXCLUDED.committed_to`,
    [source, new Date(t).toISOString()],
  );
}

/** A recorded block value (what ChainValues would store) for a height. */
export async function setBlockValue(q: Queryable, height: number, value: bigint, bits = 0x207fffff): Promise<void> {
  await q.query(
    `INSERT INTO chain_block_values (height, subsidy, fee_blocks, fee_sum, value, bits) VALUES ($1, $2::bigint, 1, $3::bigint, $2::bigint + $3::bigint, $4)
     ON CONFLICT (height) DO NOTHING`,
    [height, (value - (value % 1000n)).toString(), (value % 1000n).toString(), bits],
  );
}

export async function insertBlock(q: Queryable, b: { hash: string; height: number; time: number; account: string; worker?: string;
  reward: bigint; status: string; blockHex: string }): Promise<void> {
  await q.query('INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [b.account]);
  await q.query(
    `INSERT INTO workers (account_id, name, first_seen, last_seen) SELECT id, $2, now(), now() FROM accounts WHERE name = $1
     ON CONFLICT (account_id, name) DO NOTHING`, [b.account, b.worker ?? 'w1']);
  await q.query(
    `INSERT INTO blocks (hash, height, prev_hash, account_id, worker_id, reward, status, result, time, block_hex)
     SELECT $1, $2, $3, a.id, w.id, $4::bigint, $5, NULL, $6::timestamptz, $7
     FROM accounts a JOIN workers w ON w.account_id = a.id AND w.name = $8 WHERE a.name = $9`,
    [b.hash, b.height, '00'.repeat(32), b.reward.toString(), b.status, new Date(b.time).toISOString(), b.blockHex, b.worker ?? 'w1', b.account],
  );
}

export async function setBlockStatus(q: Queryable, hash: string, status: string): Promise<void> {
  await q.query('UPDATE blocks SET status = $2 WHERE hash = $1', [hash, status]);
}
