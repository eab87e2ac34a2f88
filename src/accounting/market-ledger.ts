import type { Queryable } from '../store/db.ts';
import { Ledger, credit, debit, owned, pool } from './ledger.ts';
import type { Posting } from './types.ts';

// The ledger side of the market's MarketLedger port (src/market/ports.ts, issue 13), implemented on the real
// ledger: every call posts in the market's own transaction, under the market's keys, so the market's rows and
// the entry commit together and a retry is a no-op. Structural types here: accounting does not import the market.
//
//   escrow:  balance(buyer) → buyer_escrow(buyer)
//   release: buyer_escrow(buyer) → balance(buyer)
//   settle:  buyer_escrow(buyer) −debit; balance(seller) +credit each (paid out with pool earnings); market_fee ± the
//            rest (negative only when delivery went beyond the escrow: the market bears it).

export type EscrowOutcome = { kind: 'escrowed' } | { kind: 'insufficient-funds'; availableSat: bigint };
export interface EscrowOp { key: string; accountId: number; bidId: number; amountSat: bigint }
export interface ReleaseOp { key: string; accountId: number; bidId: number; amountSat: bigint }
export interface SettlementPosting {
  key: string; tick: number; bidId: number; buyerAccountId: number; buyerDebitSat: bigint;
  sellerCredits: readonly { accountId: number; askId: number; amountSat: bigint }[]; marketFeeSat: bigint; overrunSat: bigint;
}

export class LedgerMarketPort {
  constructor(private readonly ledger: Ledger = new Ledger()) {}

  private async posted(tx: Queryable, key: string): Promise<boolean> {
    return (await tx.query('SELECT 1 FROM journal_entries WHERE idempotency_key = $1', [key])).rows.length > 0;
  }

  /** The account's spendable balance (what is escrowed or reserved for a payout is not in it). */
  async available(accountId: number, tx: Queryable): Promise<bigint> {
    return this.ledger.balance(tx, owned('balance', BigInt(accountId)));
  }

  async escrow(op: EscrowOp, tx: Queryable): Promise<EscrowOutcome> {
    if (await this.posted(tx, op.key)) return { kind: 'escrowed' };
    // Locked, then compared: a concurrent payout reserve or escrow waits, and no refused INSERT aborts the
    // market's transaction.
    const r = await tx.query<{ balance: string }>(
      "SELECT balance::text FROM ledger_accounts WHERE kind = 'balance' AND account_id = $1::bigint FOR UPDATE", [String(op.accountId)]);
    const available = BigInt(r.rows[0]?.balance ?? '0');
    if (available < op.amountSat) return { kind: 'insufficient-funds', availableSat: available };
    if (op.amountSat === 0n) return { kind: 'escrowed' };
    const id = BigInt(op.accountId);
    await this.ledger.post(tx, {
      key: op.key, kind: 'market_escrow', effectiveAt: new Date(), refs: { bid: op.bidId },
      postings: [debit(owned('balance', id), op.amountSat), credit(owned('buyer_escrow', id), op.amountSat)],
    });
    return { kind: 'escrowed' };
  }

  async release(op: ReleaseOp, tx: Queryable): Promise<void> {
    if (op.amountSat === 0n || await this.posted(tx, op.key)) return;
    const id = BigInt(op.accountId);
    await this.ledger.post(tx, {
      key: op.key, kind: 'market_release', effectiveAt: new Date(), refs: { bid: op.bidId },
      postings: [debit(owned('buyer_escrow', id), op.amountSat), credit(owned('balance', id), op.amountSat)],
    });
  }

  async settle(op: SettlementPosting, tx: Queryable): Promise<void> {
    if (await this.posted(tx, op.key)) return;
    const postings: Posting[] = [debit(owned('buyer_escrow', BigInt(op.buyerAccountId)), op.buyerDebitSat)];
    for (const c of op.sellerCredits) postings.push(credit(owned('balance', BigInt(c.accountId)), c.amountSat));
    postings.push(credit(pool('market_fee'), op.marketFeeSat));
    const nonZero = postings.filter((p) => p.amount !== 0n);
    if (nonZero.length === 0) return;
    await this.ledger.post(tx, {
      key: op.key, kind: 'market_settle', effectiveAt: new Date(), refs: { bid: op.bidId, tick: op.tick, overrun: op.overrunSat.toString() },
      postings: nonZero,
    });
  }
}
