// Settlement of one tick: what each buyer pays and each seller earns for the work the buyer's pool ACCEPTED.
// Pure: deliveries, prices, the fee and the carried remainders in; amounts and new remainders out.
//
// The rule (docs/market.md, "Settlement"):
// - A trade line is a (bid, ask) pair. Its value this tick is Σ price × accepted hashes / 8.64e19 sat (price in
//   sat/PH/day, one PH·day = 8.64e19 hashes): an exact rational, never a float.
// - The value splits exactly into the seller's part (1 − fee) and the market's part (fee, in basis points).
//   Each part is carried per trade line as an exact remainder and paid in whole satoshis: the cumulative credit
//   of a line is always floor(cumulative exact seller part), the cumulative fee floor(cumulative exact fee
//   part). Rounding happens once, on the cumulative amount, so nothing drifts however many ticks a line lives.
// - The buyer is debited the sum of its lines' credits and fees: never more than the exact value, at most
//   2 sat less over a line's whole life (its two remainders, < 1 sat each, are never billed).
// - Fee = buyer debit − Σ seller credits, by construction: nothing is created or lost.
// - Escrow: a bid's debit never exceeds what is left of its escrow. Delivery beyond it (the last tick of a
//   budget, when the pool accepted more than the reserve covered) is still credited to the sellers in full; the
//   market bears it: the tick's net fee for that bid is reduced by the overrun and may be negative.
// - Only accepted work is ever an input: undelivered time, rejected shares and stale work caused by our own
//   switching are never billed because they never reach this function (the DeliveryMeter port).

import { BPS, HASHES_PER_PH_DAY, MarketInputError, isPrice } from './units.ts';

/** Remainders of a trade line, as numerators over HASHES_PER_PH_DAY × 10,000 (always 0 <= r < that). */
export interface PairCarry {
  sellerRem: bigint;
  feeRem: bigint;
}

/** The common denominator of carried remainders: sat × 8.64e19 × 10,000. */
export const CARRY_DEN = HASHES_PER_PH_DAY * BPS;
export const ZERO_CARRY: PairCarry = Object.freeze({ sellerRem: 0n, feeRem: 0n });

export const pairKey = (bidId: number, askId: number): string => `${bidId}:${askId}`;

export interface SettlementLine {
  askId: number;
  /** Seller of record (account id). */
  seller: number;
  /** The price the work was done at: the clearing price of the tick whose allocation produced it. */
  price: number;
  /** Accepted hashes (Σ buyer-pool difficulty × 2^32 of accepted shares). */
  acceptedHashes: bigint;
}

export interface SettlementBid {
  bidId: number;
  buyer: number;
  /** Escrow not yet debited (sat). */
  escrowRemainingSat: bigint;
  lines: readonly SettlementLine[];
}

export interface SettleInput {
  tick: number;
  /** Market fee, basis points of trade value (0..10,000). */
  feeBps: number;
  bids: readonly SettlementBid[];
  /** Carried remainders by pairKey(bid, ask); a missing line starts at zero. */
  carries: ReadonlyMap<string, PairCarry>;
}

export interface PairSettlement {
  bidId: number;
  askId: number;
  seller: number;
  acceptedHashes: bigint;
  /** Σ price × hashes: the exact value is valueNum / 8.64e19 sat. */
  valueNum: bigint;
  creditSat: bigint;
  feeSat: bigint;
  carry: PairCarry;
}

export interface BidSettlement {
  bidId: number;
  buyer: number;
  acceptedHashes: bigint;
  /** Σ (credit + fee) of its lines: what the work costs in whole sat. */
  owedSat: bigint;
  /** What the buyer pays: owed, capped by the escrow left. */
  debitSat: bigint;
  /** owed − debit: delivered beyond the escrow, borne by the market. */
  overrunSat: bigint;
  /** debit − Σ credits (= Σ line fees − overrun). */
  netFeeSat: bigint;
  pairs: PairSettlement[];
}

export interface TickSettlement {
  tick: number;
  feeBps: number;
  bids: BidSettlement[];
  totals: { debitSat: bigint; creditSat: bigint; netFeeSat: bigint; overrunSat: bigint; acceptedHashes: bigint };
}

export function settleTick(input: SettleInput): TickSettlement {
  const { feeBps } = input;
  if (!Number.isSafeInteger(feeBps) || feeBps < 0 || feeBps > 10_000) throw new MarketInputError(`fee must be 0..10000 basis points (got ${feeBps})`);
  const sellerShare = BPS - BigInt(feeBps);
  const feeShare = BigInt(feeBps);
  const seenBids = new Set<number>();
  const out: BidSettlement[] = [];
  const totals = { debitSat: 0n, creditSat: 0n, netFeeSat: 0n, overrunSat: 0n, acceptedHashes: 0n };

  for (const bid of [...input.bids].sort((a, b) => a.bidId - b.bidId)) {
    if (seenBids.has(bid.bidId)) throw new MarketInputError(`bid ${bid.bidId} appears twice in one settlement`);
    seenBids.add(bid.bidId);
    if (bid.escrowRemainingSat < 0n) throw new MarketInputError(`bid ${bid.bidId}: negative escrow`);
    const byAsk = new Map<number, { seller: number; hashes: bigint; value: bigint }>();
    for (const l of bid.lines) {
      if (l.acceptedHashes < 0n) throw new MarketInputError(`bid ${bid.bidId}: negative delivery`);
      if (!isPrice(l.price)) throw new MarketInputError(`bid ${bid.bidId}: price must be an integer >= 0`);
      if (l.acceptedHashes === 0n) continue;
      const a = byAsk.get(l.askId);
      if (a && a.seller !== l.seller) throw new MarketInputError(`ask ${l.askId} has two sellers`);
      const v = BigInt(l.price) * l.acceptedHashes;
      if (a) { a.hashes += l.acceptedHashes; a.value += v; } else byAsk.set(l.askId, { seller: l.seller, hashes: l.acceptedHashes, value: v });
    }
    const pairs: PairSettlement[] = [];
    let owed = 0n, credits = 0n, hashes = 0n;
    for (const askId of [...byAsk.keys()].sort((a, b) => a - b)) {
      const a = byAsk.get(askId)!;
      const c = input.carries.get(pairKey(bid.bidId, askId)) ?? ZERO_CARRY;
      const sNum = c.sellerRem + a.value * sellerShare;
      const fNum = c.feeRem + a.value * feeShare;
      const credit = sNum / CARRY_DEN;
      const fee = fNum / CARRY_DEN;
      pairs.push({
        bidId: bid.bidId, askId, seller: a.seller, acceptedHashes: a.hashes, valueNum: a.value, creditSat: credit, feeSat: fee,
        carry: { sellerRem: sNum % CARRY_DEN, feeRem: fNum % CARRY_DEN },
      });
      owed += credit + fee;
      credits += credit;
      hashes += a.hashes;
    }
    const debit = owed <= bid.escrowRemainingSat ? owed : bid.escrowRemainingSat;
    const s: BidSettlement = {
      bidId: bid.bidId, buyer: bid.buyer, acceptedHashes: hashes, owedSat: owed, debitSat: debit, overrunSat: owed - debit,
      netFeeSat: debit - credits, pairs,
    };
    out.push(s);
    totals.debitSat += s.debitSat;
    totals.creditSat += credits;
    totals.netFeeSat += s.netFeeSat;
    totals.overrunSat += s.overrunSat;
    totals.acceptedHashes += hashes;
  }
  return { tick: input.tick, feeBps, bids: out, totals };
}
