import type { Queryable } from '../store/db.ts';

// The chain facts the market's hashprice needs (its ChainStats port, structurally: accounting does not import the
// market), read from the block values the books record for FPPS anyway (subsidy + the fees of the 144 blocks
// before the height being mined, from the node's getblockstats). One query, no RPC: the same numbers the books
// use, so the market's hashprice and FPPS's expected block value never disagree.

export interface BooksChainSnapshot {
  height: number;
  bits: number;
  subsidySat: bigint;
  feesSat: bigint;
  blocks: number;
}

export class BooksChainStats {
  constructor(private readonly db: Queryable) {}

  async snapshot(): Promise<BooksChainSnapshot> {
    const r = await this.db.query<{ height: number; bits: number; subsidy: string; fee_sum: string; fee_blocks: number }>(
      'SELECT height, bits, subsidy::text, fee_sum::text, fee_blocks FROM chain_block_values ORDER BY height DESC LIMIT 1');
    const row = r.rows[0];
    if (!row) throw new Error('no block value recorded yet (the books record one per new tip)');
    // The row is for the height being mined: the tip is the block before it, and its bits are the row's.
    return { height: Number(row.height) - 1, bits: Number(row.bits), subsidySat: BigInt(row.subsidy), feesSat: BigInt(row.fee_sum), blocks: Number(row.fee_blocks) };
  }
}
