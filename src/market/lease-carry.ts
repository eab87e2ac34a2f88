// Ticks the market never cleared still had work in them: the routes of the last clearing go on until their lease
// runs out (market.routeLeaseSeconds past that tick's end), and their answers come in up to
// market.answerTimeoutSeconds after that. Each tick such work can fall in gets a row carrying the last clearing
// (lease_of; its price and fee, and its fills, which hold back the bids' reserve until these ticks settle), so the
// work is settled at the price it was routed for instead of going unbilled (migration 036).

import type { Queryable } from '../store/db.ts';
import type { MarketConfig } from './config.ts';
import { big, int, lockMarket } from './sql.ts';

/**
 * Carry the last clearing before `tick` into the ticks after it that were not cleared and never will be (only the
 * current tick is ever cleared: every tick before `tick` that has no row is past). Idempotent; a no-op without a gap,
 * or when the last clearing routed nothing. Called before anything reads the reserves of ticks in flight: a
 * clearing (its bids' budgets), an order closed (the escrow it holds back), a pass expiring orders.
 */
export async function carryLease(tx: Queryable, cfg: Pick<MarketConfig, 'tickSeconds' | 'routeLeaseSeconds' | 'answerTimeoutSeconds'>, tick: number): Promise<void> {
  const tickMs = cfg.tickSeconds * 1000;
  // Cheap check first: most calls find the tick before has its row (cleared, or carried already).
  const top = await tx.query<{ t: string | null }>(`SELECT max(tick)::text AS t FROM market_ticks WHERE tick < $1`, [tick]);
  if (top.rows[0]?.t == null || int(top.rows[0].t) === tick - 1) return;
  await lockMarket(tx);
  // The last real clearing: a carried row is never carried on.
  const r = await tx.query<{ tick: string; price: string | null; allocated_hs: string; fee_bps: number }>(
    `SELECT tick::text AS tick, price, allocated_hs::text AS allocated_hs, fee_bps FROM market_ticks
      WHERE tick < $1 AND lease_of IS NULL ORDER BY tick DESC LIMIT 1`, [tick]);
  const row = r.rows[0];
  if (!row || row.price === null || big(row.allocated_hs) === 0n) return;
  const last = int(row.tick);
  const workEndMs = (last + 1) * tickMs + (cfg.routeLeaseSeconds + cfg.answerTimeoutSeconds) * 1000;
  for (let g = last + 1; g < tick && g * tickMs < workEndMs; g++) {
    // No auction ran: the book fields are empty.
    const ins = await tx.query(
      `INSERT INTO market_ticks (tick, starts_at, ends_at, price, demand_hs, supply_hs, matched_hs, allocated_hs, depth_bid_hs, depth_ask_hs,
         available_hs, bids, asks, workers_kept, workers_moved, workers_started, workers_stopped, fee_bps, input_digest, lease_of)
       VALUES ($1, $2::timestamptz, $3::timestamptz, $4, 0, 0, 0, $5::numeric, 0, 0, 0, 0, 0, 0, 0, 0, 0, $6, $7, $8)
       ON CONFLICT (tick) DO NOTHING RETURNING tick`,
      [g, new Date(g * tickMs).toISOString(), new Date((g + 1) * tickMs).toISOString(), row.price, row.allocated_hs, row.fee_bps, `lease:${last}`, last],
    );
    if (!ins.rows.length) continue;
    await tx.query(
      `INSERT INTO market_fills (tick, side, order_id, price, demand_hs, fill_hs, workers)
       SELECT $1, side, order_id, price, demand_hs, fill_hs, workers FROM market_fills WHERE tick = $2`, [g, last]);
  }
}
