// The market's read side for the API, the WebSocket feed and the CLI: order views with their latest
// explanation, the public book by price level, ticks, candles, fills and trades per order.

import type { Queryable } from '../store/db.ts';
import { ASK_COLUMNS, type AskRow, BID_COLUMNS, type BidRow, type OrderState, askFromRow, bidFromRow } from './orders.ts';
import { big, bigOrNull, int, intOrNull } from './sql.ts';

export interface OrderStatusView {
  tick: number;
  price: number | null;
  demandHs: bigint;
  fillHs: bigint;
  workers: number;
  queuePosition: number | null;
  aheadHs: bigint | null;
  aheadAtPriceHs: bigint | null;
  /** The auction's reason (BidReason / AskReason), hashrates as decimal H/s strings. */
  reason: Record<string, unknown> | null;
}

export interface BookLevel {
  price: number;
  orders: number;
  /** bids: Σ demand this tick (limit, or less when the budget is short); asks: Σ measured capacity offered. */
  hs: bigint;
}

export interface TickView {
  tick: number;
  startsAt: Date;
  price: number | null;
  rangeLo: number | null;
  rangeHi: number | null;
  demandHs: bigint;
  supplyHs: bigint;
  matchedHs: bigint;
  allocatedHs: bigint;
  depth: { bidHs: bigint; askHs: bigint; availableHs: bigint };
  bestBid: number | null;
  bestAsk: number | null;
  workers: { kept: number; moved: number; started: number; stopped: number };
  settled: boolean;
  deliveredHashes: bigint | null;
  debitSat: bigint | null;
  creditSat: bigint | null;
  feeSat: bigint | null;
  /** Not cleared (the market was down): the tick whose clearing's lease its work was delivered and settled under. */
  leaseOf: number | null;
}

export interface CandleView {
  startsAt: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  ticks: number;
  volumeHashes: bigint;
}

function statusFromRow(r: Record<string, unknown> | undefined): OrderStatusView | null {
  if (!r || r.tick === null || r.tick === undefined) return null;
  return {
    tick: int(r.tick), price: intOrNull(r.price), demandHs: big(r.demand_hs), fillHs: big(r.fill_hs), workers: int(r.workers),
    queuePosition: intOrNull(r.queue_position), aheadHs: bigOrNull(r.ahead_hs), aheadAtPriceHs: bigOrNull(r.ahead_at_price_hs),
    reason: (typeof r.reason === 'string' ? JSON.parse(r.reason) : r.reason) as Record<string, unknown> | null,
  };
}

const STATUS_COLUMNS = `s.tick AS s_tick, s.price AS s_price, s.demand_hs::text AS s_demand_hs, s.fill_hs::text AS s_fill_hs, s.workers AS s_workers,
  s.queue_position AS s_queue_position, s.ahead_hs::text AS s_ahead_hs, s.ahead_at_price_hs::text AS s_ahead_at_price_hs, s.reason AS s_reason`;

function splitStatus(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) if (k.startsWith('s_')) out[k.slice(2)] = v;
  return out;
}

type OrderQuery = { states?: OrderState[]; limit?: number; id?: number };

export class MarketReader {
  constructor(private readonly db: Queryable) {}

  async bids(accountId: number | null, opts: OrderQuery = {}): Promise<{ bid: BidRow; status: OrderStatusView | null }[]> {
    return (await this.ordersWithStatus('bid', accountId, opts)).map((row) => ({ bid: bidFromRow(row), status: statusFromRow(splitStatus(row)) }));
  }

  async asks(accountId: number | null, opts: OrderQuery = {}): Promise<{ ask: AskRow; status: OrderStatusView | null }[]> {
    return (await this.ordersWithStatus('ask', accountId, opts)).map((row) => ({ ask: askFromRow(row), status: statusFromRow(splitStatus(row)) }));
  }

  /** One side's orders (newest first) with what the latest tick saw of each: the rows bids() and asks() map. */
  private async ordersWithStatus(side: 'bid' | 'ask', accountId: number | null, opts: OrderQuery) {
    const [table, columns] = side === 'bid' ? ['market_bids', BID_COLUMNS] : ['market_asks', ASK_COLUMNS];
    const where: string[] = [];
    const params: unknown[] = [];
    if (accountId !== null) { params.push(accountId); where.push(`account_id = $${params.length}`); }
    if (opts.states?.length) { params.push(opts.states); where.push(`state = ANY($${params.length}::market_order_state[])`); }
    if (opts.id !== undefined) { params.push(opts.id); where.push(`id = $${params.length}`); }
    params.push(opts.limit ?? 100);
    const r = await this.db.query(
      `SELECT x.*, ${STATUS_COLUMNS}
         FROM (SELECT ${columns} FROM ${table} ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT $${params.length}) x
         LEFT JOIN market_order_status s ON s.side = '${side}' AND s.order_id = x.id ORDER BY x.id DESC`,
      params,
    );
    return r.rows;
  }

  /** The public book: live orders by price level, with what the latest tick saw of each (no owners). */
  async book(): Promise<{ tick: TickView | null; bids: BookLevel[]; asks: BookLevel[] }> {
    const bids = await this.db.query<{ price: string; orders: string; hs: string }>(
      `SELECT b.max_price AS price, count(*)::text AS orders, coalesce(sum(coalesce(s.demand_hs, b.limit_hs)), 0)::text AS hs
         FROM market_bids b LEFT JOIN market_order_status s ON s.side = 'bid' AND s.order_id = b.id
        WHERE b.state IN ('open', 'active') GROUP BY b.max_price ORDER BY b.max_price DESC LIMIT 200`);
    const asks = await this.db.query<{ price: string; orders: string; hs: string }>(
      `SELECT a.min_price AS price, count(*)::text AS orders, coalesce(sum(s.demand_hs), 0)::text AS hs
         FROM market_asks a LEFT JOIN market_order_status s ON s.side = 'ask' AND s.order_id = a.id
        WHERE a.state IN ('open', 'active') GROUP BY a.min_price ORDER BY a.min_price ASC LIMIT 200`);
    const level = (r: { price: string; orders: string; hs: string }) => ({ price: int(r.price), orders: int(r.orders), hs: big(r.hs) });
    const [tick] = await this.ticks({ limit: 1 });
    return { tick: tick ?? null, bids: bids.rows.map(level), asks: asks.rows.map(level) };
  }

  async ticks(opts: { from?: Date; to?: Date; limit?: number } = {}): Promise<TickView[]> {
    const r = await this.db.query(
      `SELECT tick, starts_at, price, range_lo, range_hi, demand_hs::text AS demand_hs, supply_hs::text AS supply_hs, matched_hs::text AS matched_hs,
              allocated_hs::text AS allocated_hs, depth_bid_hs::text AS depth_bid_hs, depth_ask_hs::text AS depth_ask_hs, available_hs::text AS available_hs,
              best_bid, best_ask, workers_kept, workers_moved, workers_started, workers_stopped, settled_at,
              delivered_hashes::text AS delivered_hashes, debit_sat, credit_sat, fee_sat, lease_of
         FROM market_ticks WHERE ($1::timestamptz IS NULL OR starts_at >= $1::timestamptz) AND ($2::timestamptz IS NULL OR starts_at < $2::timestamptz)
        ORDER BY tick DESC LIMIT $3`,
      [opts.from?.toISOString() ?? null, opts.to?.toISOString() ?? null, opts.limit ?? 60],
    );
    return r.rows.map((x) => ({
      tick: int(x.tick), startsAt: new Date(String(x.starts_at)), price: intOrNull(x.price), rangeLo: intOrNull(x.range_lo), rangeHi: intOrNull(x.range_hi),
      demandHs: big(x.demand_hs), supplyHs: big(x.supply_hs), matchedHs: big(x.matched_hs), allocatedHs: big(x.allocated_hs),
      depth: { bidHs: big(x.depth_bid_hs), askHs: big(x.depth_ask_hs), availableHs: big(x.available_hs) },
      bestBid: intOrNull(x.best_bid), bestAsk: intOrNull(x.best_ask),
      workers: { kept: int(x.workers_kept), moved: int(x.workers_moved), started: int(x.workers_started), stopped: int(x.workers_stopped) },
      settled: x.settled_at !== null && x.settled_at !== undefined, deliveredHashes: bigOrNull(x.delivered_hashes),
      debitSat: bigOrNull(x.debit_sat), creditSat: bigOrNull(x.credit_sat), feeSat: bigOrNull(x.fee_sat), leaseOf: intOrNull(x.lease_of),
    }));
  }

  async candles(interval: '1m' | '1h' | '1d', from: Date, to: Date, limit = 1440): Promise<CandleView[]> {
    const r = await this.db.query(
      `SELECT starts_at, open, high, low, close, ticks, volume_hashes::text AS volume_hashes FROM market_candles
        WHERE interval = $1 AND starts_at >= $2::timestamptz AND starts_at < $3::timestamptz ORDER BY starts_at LIMIT $4`,
      [interval, from.toISOString(), to.toISOString(), limit],
    );
    return r.rows.map((x) => ({
      startsAt: new Date(String(x.starts_at)), open: int(x.open), high: int(x.high), low: int(x.low), close: int(x.close), ticks: int(x.ticks), volumeHashes: big(x.volume_hashes),
    }));
  }

  /** A bid's ticks: fill, then what was delivered and paid (null until settled). */
  async bidFills(bidId: number, limit = 100) {
    const r = await this.db.query(
      `SELECT f.tick, f.price, f.demand_hs::text AS demand_hs, f.fill_hs::text AS fill_hs, f.workers,
              s.delivered_hashes::text AS delivered_hashes, s.debit_sat, s.overrun_sat
         FROM market_fills f LEFT JOIN market_settlements s ON s.tick = f.tick AND s.bid_id = f.order_id
        WHERE f.side = 'bid' AND f.order_id = $1 ORDER BY f.tick DESC LIMIT $2`, [bidId, limit]);
    return r.rows.map((x) => ({
      tick: int(x.tick), price: int(x.price), demandHs: big(x.demand_hs), fillHs: big(x.fill_hs), workers: int(x.workers),
      deliveredHashes: bigOrNull(x.delivered_hashes), debitSat: bigOrNull(x.debit_sat), overrunSat: bigOrNull(x.overrun_sat),
    }));
  }

  /** Trades of an order (either side): per tick, counterpart order, price, accepted / rejected / stale work. */
  async trades(side: 'bid' | 'ask', orderId: number, limit = 100) {
    const r = await this.db.query(
      `SELECT t.tick, t.bid_id, t.ask_id, t.price, t.accepted_hashes::text AS accepted_hashes, t.accepted_shares, t.rejected_shares, t.stale_shares,
              l.credit_sat, l.fee_sat
         FROM market_trades t LEFT JOIN market_line_settlements l ON l.tick = t.tick AND l.bid_id = t.bid_id AND l.ask_id = t.ask_id
        WHERE ${side === 'bid' ? 't.bid_id' : 't.ask_id'} = $1 ORDER BY t.tick DESC, t.bid_id, t.ask_id, t.price LIMIT $2`, [orderId, limit]);
    return r.rows.map((x) => ({
      tick: int(x.tick), bidId: int(x.bid_id), askId: int(x.ask_id), price: int(x.price), acceptedHashes: big(x.accepted_hashes),
      acceptedShares: int(x.accepted_shares), rejectedShares: int(x.rejected_shares), staleShares: int(x.stale_shares),
      lineCreditSat: bigOrNull(x.credit_sat), lineFeeSat: bigOrNull(x.fee_sat),
    }));
  }

  /** Public trades: per tick and price, the delivered volume (no orders, no owners). */
  async publicTrades(limit = 100) {
    const r = await this.db.query(
      `SELECT tick, price, sum(accepted_hashes)::text AS hashes FROM market_trades WHERE NOT self_trade AND accepted_hashes > 0
        GROUP BY tick, price ORDER BY tick DESC, price LIMIT $1`, [limit]);
    return r.rows.map((x) => ({ tick: int(x.tick), price: int(x.price), acceptedHashes: big(x.hashes) }));
  }

  /** An account's market money: escrow held, paid, earned (the balances themselves live in the ledger). */
  async accountSummary(accountId: number) {
    const b = await this.db.query<{ escrow: string; spent: string; live: string }>(
      `SELECT coalesce(sum(budget_sat - spent_sat - released_sat), 0)::text AS escrow, coalesce(sum(spent_sat), 0)::text AS spent,
              count(*) FILTER (WHERE state IN ('pending-probe', 'open', 'active', 'paused'))::text AS live
         FROM market_bids WHERE account_id = $1`, [accountId]);
    const e = await this.db.query<{ earned: string }>(`SELECT coalesce(sum(credit_sat), 0)::text AS earned FROM market_line_settlements WHERE seller_id = $1`, [accountId]);
    const a = await this.db.query<{ live: string }>(`SELECT count(*)::text AS live FROM market_asks WHERE account_id = $1 AND state IN ('open', 'active', 'paused')`, [accountId]);
    return { escrowSat: big(b.rows[0].escrow), spentSat: big(b.rows[0].spent), earnedSat: big(e.rows[0].earned), liveBids: int(b.rows[0].live), liveAsks: int(a.rows[0].live) };
  }

  async orderEvents(side: 'bid' | 'ask', orderId: number, limit = 100) {
    const r = await this.db.query(
      `SELECT time, kind, from_state, to_state, code, message, actor FROM market_order_events WHERE side = $1 AND order_id = $2 ORDER BY id DESC LIMIT $3`,
      [side, orderId, limit]);
    return r.rows.map((x) => ({
      time: new Date(String(x.time)), kind: String(x.kind), from: (x.from_state as string | null) ?? null, to: (x.to_state as string | null) ?? null,
      code: (x.code as string | null) ?? null, message: (x.message as string | null) ?? null, actor: String(x.actor),
    }));
  }

  /** An ask's workers as the latest clearing saw them: measured capacity, shares, status, the bid served. */
  async askWorkers(askId: number) {
    const r = await this.db.query(
      `SELECT s.worker_id, w.name, s.tick, s.capacity_hs::text AS capacity_hs, s.shares, s.status, s.bid_id
         FROM market_worker_status s JOIN workers w ON w.id = s.worker_id WHERE s.ask_id = $1 ORDER BY w.name`, [askId]);
    return r.rows.map((x) => ({
      workerId: int(x.worker_id), name: String(x.name), tick: int(x.tick), capacityHs: big(x.capacity_hs), shares: int(x.shares),
      status: String(x.status), bidId: intOrNull(x.bid_id),
    }));
  }

  async accountId(name: string): Promise<number | null> {
    const r = await this.db.query<{ id: string }>(`SELECT id FROM accounts WHERE name = $1 AND id <> 0`, [name]);
    return r.rows[0] ? int(r.rows[0].id) : null;
  }
}
