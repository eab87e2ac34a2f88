import type { CoinbaseOutput } from '../chain/index.ts';

// SOLO mining: the finder is paid in the coinbase itself (its address as the main output, the pool's fee as a
// second output), so the pool never holds SOLO money. Which accounts mine SOLO, to which address and at what
// fee is the books' decision (accounting); the pool only asks, once per job it sends, never per share.

export interface SoloPayout {
  /** Same key, same coinbase outputs (e.g. script hex + fee): one job variant per key and template. */
  key: string;
  /** The finder's payout script. */
  script: Buffer;
  /** The pool's fee, basis points of the coinbase value. */
  feeBps: number;
}

export interface SoloDirectory {
  /** The account's SOLO payout now, or null when it mines with the pool (or has no usable payout address). */
  payoutFor(account: string): SoloPayout | null;
  /** Whether any account mines SOLO (when none, sessions skip the lookup). */
  readonly active: boolean;
}

/**
 * The coinbase of a SOLO block: the finder gets the value less the fee (rounded down, so the finder keeps no
 * fraction the pool did not earn... and the pool never takes more than its fee), the pool its fee. The pool's
 * output is there even when the fee is 0, so the block is recognisably the pool's (tag + pool output) when the
 * start-up chain scan looks for blocks of ours without a record.
 */
export function soloOutputs(coinbaseValue: bigint, payout: SoloPayout, poolScript: Buffer): CoinbaseOutput[] {
  const fee = (coinbaseValue * BigInt(payout.feeBps)) / 10_000n;
  return [
    { value: coinbaseValue - fee, scriptPubKey: payout.script },
    { value: fee, scriptPubKey: poolScript },
  ];
}
