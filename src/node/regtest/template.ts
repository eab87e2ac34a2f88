// getblocktemplate answers (BIP22, BIP23, BIP145) built like Bitcoin Core's BlockAssembler + getblocktemplate
// (src/node/miner.cpp, src/rpc/mining.cpp).

import {
  bitsToTarget, toHex, witnessCommitment, witnessCommitmentScript, witnessMerkleRoot, u32Hex,
} from '../../chain/index.ts';
import type { BlockTemplate, TemplateTransaction } from '../types.ts';
import type { BlockEntry } from './block-index.ts';
import type { OfferedTx } from './mempool.ts';
import {
  COINBASE_RESERVED_SIGOPS, COINBASE_RESERVED_WEIGHT, MAX_BLOCK_SERIALIZED_SIZE, MAX_BLOCK_SIGOPS_COST,
  MAX_BLOCK_WEIGHT, TEMPLATE_RULES, TEMPLATE_VERSION, blockSubsidy,
} from './params.ts';

/** Core's answer has a few fields our BlockTemplate type leaves optional or out. */
export interface EmbeddedBlockTemplate extends BlockTemplate {
  capabilities: string[];
  vbavailable: Record<string, number>;
  vbrequired: number;
  coinbaseaux: Record<string, string>;
  longpollid: string;
  mutable: string[];
  noncerange: string;
  sigoplimit: number;
  sizelimit: number;
  weightlimit: number;
  default_witness_commitment: string;
}

export interface TemplateInput {
  tip: BlockEntry;
  /** Candidates in assembly order (highest fee rate first). */
  mempool: readonly OfferedTx[];
  bits: number;
  longpollid: string;
  nowSec: number;
  halvingInterval?: number;
}

/** The transactions a block on `tip` would carry: greedy by fee rate within the weight and sigop limits. */
export function selectTransactions(candidates: readonly OfferedTx[]): OfferedTx[] {
  let weight = COINBASE_RESERVED_WEIGHT;
  let sigops = COINBASE_RESERVED_SIGOPS;
  const out: OfferedTx[] = [];
  for (const tx of candidates) {
    if (weight + tx.weight > MAX_BLOCK_WEIGHT || sigops + tx.sigops > MAX_BLOCK_SIGOPS_COST) continue;
    weight += tx.weight;
    sigops += tx.sigops;
    out.push(tx);
  }
  return out;
}

/** BIP141 commitment output script for a block carrying `txs` after the coinbase (reserved value: 32 zero bytes). */
export function defaultWitnessCommitment(txs: readonly OfferedTx[]): Buffer {
  const root = witnessMerkleRoot(txs.map((t) => t.wtxid));
  return witnessCommitmentScript(witnessCommitment(root));
}

export function buildTemplate(input: TemplateInput): EmbeddedBlockTemplate {
  const { tip } = input;
  const height = tip.height + 1;
  const txs = selectTransactions(input.mempool);
  const fees = txs.reduce((s, t) => s + BigInt(t.fee), 0n);
  const mintime = tip.mtp + 1;
  const transactions: TemplateTransaction[] = txs.map((t) => ({
    data: toHex(t.bytes),
    txid: t.txidHex,
    hash: t.wtxidHex,
    depends: [],
    fee: t.fee,
    sigops: t.sigops,
    weight: t.weight,
  }));
  return {
    capabilities: ['proposal'],
    version: TEMPLATE_VERSION,
    rules: [...TEMPLATE_RULES],
    vbavailable: {},
    vbrequired: 0,
    previousblockhash: tip.hashHex,
    transactions,
    coinbaseaux: {},
    coinbasevalue: Number(blockSubsidy(height, input.halvingInterval) + fees),
    longpollid: input.longpollid,
    target: bitsToTarget(input.bits).toString(16).padStart(64, '0'),
    mintime,
    mutable: ['time', 'transactions', 'prevblock'],
    noncerange: '00000000ffffffff',
    sigoplimit: MAX_BLOCK_SIGOPS_COST,
    sizelimit: MAX_BLOCK_SERIALIZED_SIZE,
    weightlimit: MAX_BLOCK_WEIGHT,
    // UpdateTime: never before the median time past + 1.
    curtime: Math.max(input.nowSec, mintime),
    bits: u32Hex(input.bits),
    height,
    default_witness_commitment: toHex(defaultWitnessCommitment(txs)),
  };
}
