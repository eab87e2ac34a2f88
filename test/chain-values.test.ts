import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChainValues, type RpcCaller } from '../src/accounting/chain-values.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { migrated } from './helpers/market.ts';
import { SKIP_PG, createTestPg } from './helpers/pg.ts';

// The block values FPPS needs come from the node's answers. A node (or a proxy, or a test node) that answers
// another shape is reported in words — it was "hex.slice is not a function", every 10 s, in a benchmark against
// a fake node whose getblock returns a stub object.

const HASH = 'ab'.repeat(32);

function node(answers: Record<string, unknown | (() => never)>): RpcCaller {
  return {
    async call<T>(method: string): Promise<T> {
      const a = answers[method];
      if (typeof a === 'function') (a as () => never)();
      return a as T;
    },
  };
}
const noBlockStats = () => { throw Object.assign(new Error('Method not found'), { code: -32601 }); };

test('a getblock or getblockstats answer of another shape is refused with a clear message, nothing recorded', { skip: SKIP_PG }, async () => {
  const pg = await createTestPg();
  const db = new PgDatabase({ url: pg.url });
  try {
    await migrated(db);
    const base = { getblockcount: 1, getblockhash: HASH, getblockheader: { bits: '207fffff' } };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...base, getblockstats: noBlockStats, getblock: { hash: HASH, tx: [] } }, /getblock (ab)+ 0 answered object, not the block's hex/],
      [{ ...base, getblockstats: noBlockStats, getblock: null }, /getblock (ab)+ 0 answered null/],
      [{ ...base, getblockstats: {} }, /getblockstats for block (ab)+ has no whole, non-negative totalfee \(got undefined\)/],
      [{ ...base, getblockstats: { totalfee: -5 } }, /no whole, non-negative totalfee \(got -5\)/],
    ];
    for (const [answers, message] of cases) {
      const values = new ChainValues(db, node(answers), 'regtest');
      await assert.rejects(values.ensure([2]), message);
    }
    assert.equal((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM chain_block_values')).rows[0].n, '0');
    // A well-formed answer is recorded.
    await new ChainValues(db, node({ ...base, getblockstats: { totalfee: 1234 } }), 'regtest').ensure([2]);
    const row = (await db.query<{ fee_sum: string }>('SELECT fee_sum::text FROM chain_block_values WHERE height = 2')).rows[0];
    assert.equal(row.fee_sum, '1234');
  } finally {
    await db.close();
    await pg.drop();
  }
});
