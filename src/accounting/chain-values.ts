import type { Logger } from 'pino';
import { type NetworkName, fromHex, parseBlock } from '../chain/index.ts';
import type { Database } from '../store/db.ts';
import { blockSubsidy } from './params.ts';

// The expected value of a block at each height, for FPPS: subsidy + the mean fees of the 144 blocks before it,
// read from the node (getblockstats "totalfee"; a node without getblockstats, like bcoin, gives the same figure as
// the coinbase's outputs minus the subsidy). Each block's fees and each height's value are recorded once and
// never recomputed, so a credit period computed again (a late-share adjustment, another process) uses the same
// numbers even if the chain reorganized meanwhile.

/** The slice of a JSON-RPC client this needs (BitcoinRpc has it). */
export interface RpcCaller {
  call<T = unknown>(method: string, params?: unknown[]): Promise<T>;
}

export const FEE_WINDOW = 144;

interface FeeRow { height: number; bits: number; total_fee: string }

export class ChainValues {
  /** null until the first getblockstats call tells whether the node has it. */
  private hasBlockStats: boolean | null = null;

  constructor(
    private readonly db: Database,
    private readonly rpc: RpcCaller,
    private readonly network: NetworkName,
    private readonly log?: Logger,
  ) {}

  /** The node's tip height. */
  async tipHeight(): Promise<number> {
    return Number(await this.rpc.call<number>('getblockcount'));
  }

  /** Heights among `heights` that have no recorded value yet. */
  async missing(heights: readonly number[]): Promise<number[]> {
    if (heights.length === 0) return [];
    const r = await this.db.query<{ h: number }>(
      `SELECT h FROM unnest($1::integer[]) AS h WHERE NOT EXISTS (SELECT 1 FROM chain_block_values v WHERE v.height = h) ORDER BY h`,
      [heights],
    );
    return r.rows.map((x) => Number(x.h));
  }

  /**
   * Record the value of every height in `heights` not recorded yet. A height above tip + 1 cannot be valued yet
   * (its previous blocks do not exist): it is skipped and returned.
   */
  async ensure(heights: readonly number[]): Promise<{ recorded: number[]; notYet: number[] }> {
    const todo = await this.missing(heights);
    if (todo.length === 0) return { recorded: [], notYet: [] };
    const tip = await this.tipHeight();
    const recorded: number[] = [];
    const notYet: number[] = [];
    for (const h of todo) {
      if (h < 1 || h > tip + 1) {
        notYet.push(h);
        continue;
      }
      await this.recordValue(h, tip);
      recorded.push(h);
    }
    return { recorded, notYet };
  }

  private async recordValue(h: number, tip: number): Promise<void> {
    const from = Math.max(1, h - FEE_WINDOW);
    const need: number[] = [];
    for (let i = from; i <= h - 1; i++) need.push(i);
    const have = await this.feeRows(need);
    for (const i of need) {
      if (!have.has(i)) have.set(i, await this.fetchFees(i));
    }
    let sum = 0n;
    for (const i of need) sum += BigInt(have.get(i)!.total_fee);
    const subsidy = blockSubsidy(h, this.network);
    const value = subsidy + (need.length === 0 ? 0n : sum / BigInt(need.length));
    // Fallback nbits for shares stored without their job's: the block at h if it exists, else the one before.
    const bits = h <= tip ? (have.get(h)?.bits ?? (await this.headerAt(h)).bits) : h - 1 >= 1 ? have.get(h - 1)!.bits : (await this.headerAt(0)).bits;
    await this.db.query(
      `INSERT INTO chain_block_values (height, subsidy, fee_blocks, fee_sum, value, bits)
       VALUES ($1, $2::bigint, $3, $4::bigint, $5::bigint, $6) ON CONFLICT (height) DO NOTHING`,
      [h, subsidy.toString(), need.length, sum.toString(), value.toString(), bits],
    );
  }

  private async feeRows(heights: number[]): Promise<Map<number, FeeRow>> {
    if (heights.length === 0) return new Map();
    const r = await this.db.query<FeeRow>(
      'SELECT height, bits, total_fee::text AS total_fee FROM chain_block_fees WHERE height = ANY($1::integer[])',
      [heights],
    );
    return new Map(r.rows.map((row) => [Number(row.height), { height: Number(row.height), bits: Number(row.bits), total_fee: row.total_fee }]));
  }

  private async headerAt(height: number): Promise<{ hash: string; bits: number }> {
    const hash = await this.rpc.call<string>('getblockhash', [height]);
    const header = await this.rpc.call<{ bits: string }>('getblockheader', [hash, true]);
    return { hash, bits: parseInt(header.bits, 16) | 0 };
  }

  /** Fees of the block at `height` on the node's best chain, recorded once. */
  private async fetchFees(height: number): Promise<FeeRow> {
    const { hash, bits } = await this.headerAt(height);
    let fee: bigint | null = null;
    let source: 'getblockstats' | 'coinbase' = 'getblockstats';
    if (this.hasBlockStats !== false) {
      try {
        const s = await this.rpc.call<{ totalfee?: unknown } | null>('getblockstats', [hash, ['totalfee']]);
        const total = s?.totalfee;
        if (typeof total !== 'number' || !Number.isSafeInteger(total) || total < 0) {
          throw new Error(`the node's getblockstats for block ${hash} has no whole, non-negative totalfee (got ${JSON.stringify(total)})`);
        }
        fee = BigInt(total);
        this.hasBlockStats = true;
      } catch (e) {
        // -32601 "Method not found" (bcoin): use the coinbase instead, from now on.
        if ((e as { code?: number }).code !== -32601) throw e;
        this.hasBlockStats = false;
        this.log?.info('the node has no getblockstats: block fees are read from the coinbase (outputs − subsidy)');
      }
    }
    if (fee === null) {
      source = 'coinbase';
      const hex = await this.rpc.call<unknown>('getblock', [hash, 0]);
      // Verbosity 0 is the block's hex; anything else (a node or proxy answering another shape) is said as such.
      if (typeof hex !== 'string') throw new Error(`the node's getblock ${hash} 0 answered ${hex === null ? 'null' : typeof hex}, not the block's hex`);
      const block = parseBlock(fromHex(hex));
      const out = block.txs[0].outputs.reduce((s, o) => s + o.value, 0n);
      const subsidy = blockSubsidy(height, this.network);
      fee = out > subsidy ? out - subsidy : 0n;
    }
    await this.db.query(
      `INSERT INTO chain_block_fees (height, hash, bits, total_fee, source) VALUES ($1, $2, $3, $4::bigint, $5)
       ON CONFLICT (height) DO NOTHING`,
      [height, hash, bits, fee.toString(), source],
    );
    return { height, bits, total_fee: fee.toString() };
  }
}
