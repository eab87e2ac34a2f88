// Settling one tick from the database: the meter's deliveries for the tick, priced at the clearing that
// produced them, through the pure settlement (settlement.ts), onto the ledger (one idempotent entry per bid and
// tick, in the same transaction as the market's rows), then the candles, and the end of bids whose budget is
// spent or which were cancelled and have nothing left to settle.

import type { Queryable } from '../store/db.ts';
import { upsertCandles } from './clearing.ts';
import type { MarketConfig } from './config.ts';
import { BID_COLUMNS, type BidRow, bidFromRow } from './orders.ts';
import type { DeliveryRecord, MarketLedger } from './ports.ts';
import { type PairCarry, type SettlementBid, type SettlementLine, type TickSettlement, pairKey, settleTick } from './settlement.ts';
import { big, int, lockMarket } from './sql.ts';
import { affordableHs } from './units.ts';

export interface SettleSummary {
  tick: number;
  settled: boolean;
  debitSat: bigint;
  creditSat: bigint;
  feeSat: bigint;
  overrunSat: bigint;
  deliveredHashes: bigint;
  /** Work reported for a bid by a worker the market had not assigned to it: never billed. */
  unassigned: number;
  /** Bids that ended here (exhausted), whose routes the caller stops. */
  exhausted: number[];
}

interface Assignment { workerId: number; bidId: number; askId: number; fromTick: number; toTick: number | null }

export async function settleInTx(
  tx: Queryable, cfg: MarketConfig, ledger: MarketLedger, tick: number, deliveries: readonly DeliveryRecord[],
): Promise<SettleSummary> {
  await lockMarket(tx);
  const t = await tx.query<{ price: string | null; settled_at: unknown; fee_bps: number }>(`SELECT price, settled_at, fee_bps FROM market_ticks WHERE tick = $1`, [tick]);
  const row = t.rows[0];
  if (!row) throw new Error(`tick ${tick} was never cleared`);
  const empty = { tick, debitSat: 0n, creditSat: 0n, feeSat: 0n, overrunSat: 0n, deliveredHashes: 0n, unassigned: 0, exhausted: [] };
  if (row.settled_at) return { ...empty, settled: false };
  const before = await tx.query(`SELECT 1 FROM market_ticks WHERE tick < $1 AND settled_at IS NULL LIMIT 1`, [tick]);
  if (before.rows.length) throw new Error(`tick ${tick}: an earlier tick is not settled yet (ticks settle in order)`);

  // Price each delivery at the clearing that produced it: the assignment covering this tick, or one that ended at
  // this tick's start (late shares and answers of a worker just moved away) at its last tick's price.
  const live = deliveries.filter((d) => d.acceptedHashes > 0n || d.rejectedShares > 0 || d.staleBySwitchShares > 0);
  const bidIds = [...new Set(live.map((d) => d.bidId))];
  const assignments = new Map<string, Assignment[]>();
  if (bidIds.length) {
    const r = await tx.query<{ worker_id: string; bid_id: string; ask_id: string; from_tick: string; to_tick: string | null }>(
      `SELECT worker_id, bid_id, ask_id, from_tick, to_tick FROM market_assignments
        WHERE bid_id = ANY($1::bigint[]) AND from_tick <= $2 AND (to_tick IS NULL OR to_tick >= $2)`,
      [bidIds.map(String), tick],
    );
    for (const a of r.rows) {
      const k = `${a.bid_id}:${a.worker_id}`;
      const list = assignments.get(k) ?? [];
      list.push({ workerId: int(a.worker_id), bidId: int(a.bid_id), askId: int(a.ask_id), fromTick: int(a.from_tick), toTick: a.to_tick === null ? null : int(a.to_tick) });
      assignments.set(k, list);
    }
  }
  const prices = new Map<number, number>();
  const priceOf = async (tk: number): Promise<number | null> => {
    if (!prices.has(tk)) {
      const p = await tx.query<{ price: string | null }>(`SELECT price FROM market_ticks WHERE tick = $1`, [tk]);
      prices.set(tk, p.rows[0]?.price === null || p.rows[0]?.price === undefined ? -1 : int(p.rows[0].price));
    }
    const v = prices.get(tk)!;
    return v < 0 ? null : v;
  };

  const bidRows = bidIds.length
    ? new Map((await tx.query(`SELECT ${BID_COLUMNS} FROM market_bids WHERE id = ANY($1::bigint[]) FOR UPDATE`, [bidIds.map(String)])).rows.map(bidFromRow).map((b) => [b.id, b]))
    : new Map<number, BidRow>();
  const askOwner = new Map<number, number>();
  const unassigned: DeliveryRecord[] = [];
  // Trades per (bid, ask, price); lines per bid for the money.
  const trades = new Map<string, { bidId: number; askId: number; price: number; hashes: bigint; accepted: number; rejected: number; stale: number }>();
  for (const d of live) {
    const cands = assignments.get(`${d.bidId}:${d.workerId}`) ?? [];
    const covering = cands.find((a) => a.toTick === null || a.toTick > tick);
    const ended = cands.filter((a) => a.toTick === tick).sort((a, b) => b.fromTick - a.fromTick)[0];
    const a = covering ?? ended;
    const price = a ? await priceOf(covering ? tick : tick - 1) : null;
    if (!a || price === null || !bidRows.has(d.bidId)) {
      unassigned.push(d);
      continue;
    }
    askOwner.set(a.askId, -1);
    const k = `${d.bidId}:${a.askId}:${price}`;
    const tr = trades.get(k) ?? { bidId: d.bidId, askId: a.askId, price, hashes: 0n, accepted: 0, rejected: 0, stale: 0 };
    tr.hashes += d.acceptedHashes;
    tr.accepted += d.acceptedShares;
    tr.rejected += d.rejectedShares;
    tr.stale += d.staleBySwitchShares;
    trades.set(k, tr);
  }
  if (askOwner.size) {
    const r = await tx.query<{ id: string; account_id: string }>(`SELECT id, account_id FROM market_asks WHERE id = ANY($1::bigint[])`, [[...askOwner.keys()].map(String)]);
    for (const x of r.rows) askOwner.set(int(x.id), int(x.account_id));
  }

  const byBid = new Map<number, SettlementLine[]>();
  for (const tr of trades.values()) {
    const l = byBid.get(tr.bidId) ?? [];
    l.push({ askId: tr.askId, seller: askOwner.get(tr.askId)!, price: tr.price, acceptedHashes: tr.hashes });
    byBid.set(tr.bidId, l);
  }
  const carries = new Map<string, PairCarry>();
  if (byBid.size) {
    const r = await tx.query<{ bid_id: string; ask_id: string; seller_rem: string; fee_rem: string }>(
      `SELECT bid_id, ask_id, seller_rem::text AS seller_rem, fee_rem::text AS fee_rem FROM market_line_carry WHERE bid_id = ANY($1::bigint[])`,
      [[...byBid.keys()].map(String)],
    );
    for (const c of r.rows) carries.set(pairKey(int(c.bid_id), int(c.ask_id)), { sellerRem: big(c.seller_rem), feeRem: big(c.fee_rem) });
  }
  const input: SettlementBid[] = [...byBid.entries()].map(([bidId, lines]) => {
    const b = bidRows.get(bidId)!;
    return { bidId, buyer: b.accountId, escrowRemainingSat: b.budgetSat - b.spentSat - b.releasedSat, lines };
  });
  const s: TickSettlement = settleTick({ tick, feeBps: row.fee_bps, bids: input, carries });

  for (const b of s.bids) {
    const key = `market:settle:${b.bidId}:${tick}`;
    const credits = new Map<number, bigint>();
    for (const p of b.pairs) credits.set(p.askId, (credits.get(p.askId) ?? 0n) + p.creditSat);
    const creditSat = b.pairs.reduce((x, p) => x + p.creditSat, 0n);
    await tx.query(
      `INSERT INTO market_settlements (tick, bid_id, buyer_id, delivered_hashes, owed_sat, debit_sat, credit_sat, fee_sat, overrun_sat, ledger_key)
       VALUES ($1, $2, $3, $4::numeric, $5, $6, $7, $8, $9, $10)`,
      [tick, b.bidId, b.buyer, b.acceptedHashes.toString(), b.owedSat.toString(), b.debitSat.toString(), creditSat.toString(), b.netFeeSat.toString(), b.overrunSat.toString(), key],
    );
    if (b.pairs.length) {
      await tx.query(
        `INSERT INTO market_line_settlements (tick, bid_id, ask_id, seller_id, accepted_hashes, value_num, credit_sat, fee_sat)
         SELECT $1, $2, a, s, h::numeric, v::numeric, c, f FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) AS x(a, s, h, v, c, f)`,
        [tick, b.bidId, b.pairs.map((p) => String(p.askId)), b.pairs.map((p) => String(p.seller)), b.pairs.map((p) => p.acceptedHashes.toString()),
          b.pairs.map((p) => p.valueNum.toString()), b.pairs.map((p) => p.creditSat.toString()), b.pairs.map((p) => p.feeSat.toString())],
      );
      await tx.query(
        `INSERT INTO market_line_carry (bid_id, ask_id, seller_rem, fee_rem, last_tick)
         SELECT $1, a, s::numeric, f::numeric, $2 FROM unnest($3::bigint[], $4::text[], $5::text[]) AS x(a, s, f)
         ON CONFLICT (bid_id, ask_id) DO UPDATE SET seller_rem = EXCLUDED.seller_rem, fee_rem = EXCLUDED.fee_rem, last_tick = EXCLUDED.last_tick`,
        [b.bidId, tick, b.pairs.map((p) => String(p.askId)), b.pairs.map((p) => p.carry.sellerRem.toString()), b.pairs.map((p) => p.carry.feeRem.toString())],
      );
    }
    await ledger.settle({
      key, tick, bidId: b.bidId, buyerAccountId: b.buyer, buyerDebitSat: b.debitSat,
      sellerCredits: b.pairs.filter((p) => p.creditSat > 0n).map((p) => ({ accountId: p.seller, askId: p.askId, amountSat: p.creditSat })),
      marketFeeSat: b.netFeeSat, overrunSat: b.overrunSat,
    }, tx);
    await tx.query(`UPDATE market_bids SET spent_sat = spent_sat + $2, updated_at = now() WHERE id = $1`, [b.bidId, b.debitSat.toString()]);
  }
  const tradeRows = [...trades.values()];
  if (tradeRows.length) {
    await tx.query(
      `INSERT INTO market_trades (tick, bid_id, ask_id, price, buyer_id, seller_id, accepted_hashes, accepted_shares, rejected_shares, stale_shares, self_trade)
       SELECT $1, b, a, p, bu, se, h::numeric, ac, rj, st, bu = se
         FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[]) AS x(b, a, p, bu, se, h, ac, rj, st)`,
      [tick, tradeRows.map((x) => String(x.bidId)), tradeRows.map((x) => String(x.askId)), tradeRows.map((x) => String(x.price)),
        tradeRows.map((x) => String(bidRows.get(x.bidId)!.accountId)), tradeRows.map((x) => String(askOwner.get(x.askId))), tradeRows.map((x) => x.hashes.toString()),
        tradeRows.map((x) => String(x.accepted)), tradeRows.map((x) => String(x.rejected)), tradeRows.map((x) => String(x.stale))],
    );
  }
  if (unassigned.length) {
    await tx.query(
      `INSERT INTO market_unassigned_work (tick, bid_id, worker_id, accepted_hashes)
       SELECT $1, b, w, h::numeric FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS x(b, w, h)
       ON CONFLICT DO NOTHING`,
      [tick, unassigned.map((d) => String(d.bidId)), unassigned.map((d) => String(d.workerId)), unassigned.map((d) => d.acceptedHashes.toString())],
    );
  }
  await tx.query(
    `UPDATE market_ticks SET settled_at = now(), delivered_hashes = $2::numeric, debit_sat = $3, credit_sat = $4, fee_sat = $5, overrun_sat = $6 WHERE tick = $1`,
    [tick, s.totals.acceptedHashes.toString(), s.totals.debitSat.toString(), s.totals.creditSat.toString(), s.totals.netFeeSat.toString(), s.totals.overrunSat.toString()],
  );
  await upsertCandles(tx, cfg, tick * cfg.tickSeconds * 1000);
  const exhausted = await closeFinishedBids(tx, cfg, ledger);
  return {
    tick, settled: true, debitSat: s.totals.debitSat, creditSat: s.totals.creditSat, feeSat: s.totals.netFeeSat, overrunSat: s.totals.overrunSat,
    deliveredHashes: s.totals.acceptedHashes, unassigned: unassigned.length, exhausted,
  };
}

/**
 * After a settlement: cancelled or expired bids with no tick left to settle get the rest of their escrow back
 * (release key …:final); live bids whose remaining escrow cannot buy a single H/s for a tick at their maximum
 * end as exhausted, with the same final release. Returns the bids newly exhausted. A bid about to be closed is
 * locked and read again first: a cancel or expiry that committed since the first read is seen, never overwritten.
 */
export async function closeFinishedBids(tx: Queryable, cfg: MarketConfig, ledger: MarketLedger): Promise<number[]> {
  const UNFINISHED = `b.state IN ('open', 'active', 'paused') OR (b.state IN ('cancelled', 'expired') AND b.spent_sat + b.released_sat < b.budget_sat)`;
  const r = await tx.query(
    `SELECT ${BID_COLUMNS} FROM market_bids b
      WHERE (${UNFINISHED})
        AND NOT EXISTS (SELECT 1 FROM market_fills f JOIN market_ticks t ON t.tick = f.tick
                         WHERE f.side = 'bid' AND f.order_id = b.id AND t.settled_at IS NULL)`);
  const exhausted: number[] = [];
  const finished = (b: BidRow) => b.state === 'cancelled' || b.state === 'expired' || affordableHs(b.budgetSat - b.spentSat - b.releasedSat, b.maxPrice, cfg.tickSeconds) === 0n;
  for (const seen of r.rows.map(bidFromRow)) {
    if (!finished(seen)) continue;
    // Only the bids acted on are locked (not every idle bid, at every settlement). The unsettled-fills condition needs
    // no second look: fills are written only under the market's lock (a clearing, carryLease), which this holds.
    const again = (await tx.query(`SELECT ${BID_COLUMNS} FROM market_bids b WHERE id = $1 AND (${UNFINISHED}) FOR UPDATE`, [seen.id])).rows.map(bidFromRow)[0];
    if (!again || !finished(again)) continue;
    const b = again;
    const rest = b.budgetSat - b.spentSat - b.releasedSat;
    const closed = b.state === 'cancelled' || b.state === 'expired';
    const key = `market:release:bid:${b.id}:final`;
    const ins = await tx.query(`INSERT INTO market_releases (ledger_key, bid_id, amount_sat) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING ledger_key`, [key, b.id, rest.toString()]);
    if (ins.rows.length) {
      if (rest > 0n) await ledger.release({ key, accountId: b.accountId, bidId: b.id, amountSat: rest }, tx);
      await tx.query(`UPDATE market_bids SET released_sat = released_sat + $2, updated_at = now() WHERE id = $1`, [b.id, rest.toString()]);
    }
    if (!closed) {
      await tx.query(`UPDATE market_bids SET state = 'exhausted', state_code = 'budget-spent', state_message = $2, updated_at = now() WHERE id = $1`,
        [b.id, `budget spent: ${b.spentSat} sat paid for delivered work, ${rest} sat returned`]);
      await tx.query(`INSERT INTO market_order_events (side, order_id, kind, from_state, to_state, code, message, actor) VALUES ('bid', $1, 'state', $2, 'exhausted', 'budget-spent', $3, 'market')`,
        [b.id, b.state, `${rest} sat returned`]);
      exhausted.push(b.id);
    }
  }
  return exhausted;
}
