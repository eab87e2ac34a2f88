import assert from 'node:assert/strict';
import type pg from 'pg';

// Checks shared by the ingest tests: the miners' own record of accepted shares against the shares table.
// A miner does not know the pool's share id; it knows the job and its hash. The achieved difficulty is a pure
// function of the hash (diff1 / hash, the same hashDifficulty on both sides) and is stored as an exact double,
// so (account.worker, job id, achieved difficulty) identifies a share.

export interface MinedShare {
  /** "account.worker" as the miner logged in. */
  user: string;
  jobId: string;
  difficulty: number;
  hash: string;
  block: boolean;
}

export { until } from './until.ts';

const key = (user: string, job: string, difficulty: number) => `${user}|${job}|${difficulty}`;

/**
 * Every share in `mined` is in the shares table exactly once, nothing in the table is there twice, and the
 * rollups count each stored share once. With `expectedRows`, the table holds exactly that many shares.
 */
export async function assertExactlyOnce(client: pg.Client, mined: MinedShare[], expectedRows?: number): Promise<{ rows: number }> {
  const r = await client.query<{ account: string; worker: string; job_id: string; share_difficulty: number; block_hash: string | null }>(`
    SELECT a.name AS account, w.name AS worker, s.job_id, s.share_difficulty, s.block_hash
    FROM shares s JOIN workers w ON w.id = s.worker_id JOIN accounts a ON a.id = s.account_id`);
  const counts = new Map<string, number>();
  const blockHash = new Map<string, string | null>();
  for (const row of r.rows) {
    const k = key(`${row.account}.${row.worker}`, row.job_id, row.share_difficulty);
    counts.set(k, (counts.get(k) ?? 0) + 1);
    blockHash.set(k, row.block_hash);
  }
  const missing = mined.filter((m) => !counts.has(key(m.user, m.jobId, m.difficulty)));
  const twice = [...counts].filter(([, c]) => c > 1);
  assert.equal(missing.length, 0, `${missing.length} of ${mined.length} accepted shares missing from the database, e.g. ${JSON.stringify(missing.slice(0, 3))}`);
  assert.equal(twice.length, 0, `${twice.length} shares stored more than once, e.g. ${JSON.stringify(twice.slice(0, 3))}`);
  for (const m of mined.filter((x) => x.block)) {
    assert.equal(blockHash.get(key(m.user, m.jobId, m.difficulty)), m.hash, 'a block share carries its block hash');
  }
  if (expectedRows !== undefined) assert.equal(r.rows.length, expectedRows, 'every share the pool accepted is stored');
  const sums = (await client.query<{ w: string; p: string }>(`
    SELECT (SELECT coalesce(sum(accepted), 0) FROM worker_rollups_minute)::text AS w,
           (SELECT coalesce(sum(accepted), 0) FROM pool_rollups_minute)::text AS p`)).rows[0];
  assert.equal(Number(sums.w), r.rows.length, 'worker rollups count each stored share once');
  assert.equal(Number(sums.p), r.rows.length, 'pool rollups count each stored share once');
  return { rows: r.rows.length };
}
