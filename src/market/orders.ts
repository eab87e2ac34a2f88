// The order book's write side: place (idempotent on client_order_id), edit, cancel; each bid's budget is
// escrowed on the ledger in the same transaction that stores it, and released on cancel. Validation gives one
// specific error per field; a refused order stores nothing and escrows nothing.

import type { Database, Queryable } from '../store/db.ts';
import { type MarketConfig, tickAt } from './config.ts';
import { MarketError } from './errors.ts';
import { carryLease } from './lease-carry.ts';
import type { Destination, MarketLedger } from './ports.ts';
import { big, bigOrNull, dateOrNull, int, stableJson } from './sql.ts';
import { BPS, HASHES_PER_PH_DAY } from './units.ts';

export interface Actor {
  /** The account the order belongs to. */
  accountId: number;
  /** Operator actions (pool-capacity asks, acting for an account) are logged as such. */
  operator: boolean;
}

export interface BidRequest {
  clientOrderId?: string | null;
  /** sat/PH/day */
  maxPrice: number;
  limitHs: bigint;
  budgetSat: bigint;
  endTime?: Date | null;
  destinations: readonly Destination[];
}

export interface AskRequest {
  clientOrderId?: string | null;
  minPrice: number;
  capHs?: bigint | null;
  /** 'all' = every worker of the account not named by another live ask; or worker names ("rig1"; the operator
   *  may name any account's worker as "account.worker"). */
  workers: 'all' | readonly string[];
  endTime?: Date | null;
}

export type OrderState = 'pending-probe' | 'open' | 'active' | 'paused' | 'exhausted' | 'cancelled' | 'expired';
export const LIVE_BID_STATES: readonly OrderState[] = ['pending-probe', 'open', 'active', 'paused'];
export const LIVE_ASK_STATES: readonly OrderState[] = ['open', 'active', 'paused'];

export const MAX_PRICE = 100_000_000_000; // 1e11 sat/PH/day: far above any market, below float trouble
export const MAX_HS = 10n ** 24n; // a million EH/s
export const MAX_BUDGET = 2_100_000_000_000_000n; // 21 M BTC
const CLIENT_ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const WORKER_NAME_RE = /^[A-Za-z0-9._-]{1,100}$/;

export interface BidRow {
  id: number;
  accountId: number;
  clientOrderId: string | null;
  state: OrderState;
  stateCode: string | null;
  stateMessage: string | null;
  maxPrice: number;
  limitHs: bigint;
  budgetSat: bigint;
  spentSat: bigint;
  releasedSat: bigint;
  destinations: Destination[];
  endTime: Date | null;
  priority: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface AskRow {
  id: number;
  accountId: number;
  clientOrderId: string | null;
  state: OrderState;
  stateCode: string | null;
  stateMessage: string | null;
  minPrice: number;
  capHs: bigint | null;
  allWorkers: boolean;
  workerIds: number[];
  endTime: Date | null;
  priority: number;
  createdAt: Date;
  updatedAt: Date;
}

export const BID_COLUMNS = `id, account_id, client_order_id, state, state_code, state_message, max_price, limit_hs::text AS limit_hs,
  budget_sat, spent_sat, released_sat, destinations, end_time, priority, created_at, updated_at`;
export const ASK_COLUMNS = `id, account_id, client_order_id, state, state_code, state_message, min_price, cap_hs::text AS cap_hs,
  all_workers, end_time, priority, created_at, updated_at,
  ARRAY(SELECT worker_id FROM market_ask_workers w WHERE w.ask_id = market_asks.id ORDER BY worker_id)::bigint[]::text[] AS worker_ids`;

export function bidFromRow(r: Record<string, unknown>): BidRow {
  return {
    id: int(r.id), accountId: int(r.account_id), clientOrderId: (r.client_order_id as string | null) ?? null,
    state: r.state as OrderState, stateCode: (r.state_code as string | null) ?? null, stateMessage: (r.state_message as string | null) ?? null,
    maxPrice: int(r.max_price), limitHs: big(r.limit_hs), budgetSat: big(r.budget_sat), spentSat: big(r.spent_sat),
    releasedSat: big(r.released_sat), destinations: (typeof r.destinations === 'string' ? JSON.parse(r.destinations) : r.destinations) as Destination[],
    endTime: dateOrNull(r.end_time), priority: int(r.priority), createdAt: dateOrNull(r.created_at)!, updatedAt: dateOrNull(r.updated_at)!,
  };
}

export function askFromRow(r: Record<string, unknown>): AskRow {
  return {
    id: int(r.id), accountId: int(r.account_id), clientOrderId: (r.client_order_id as string | null) ?? null,
    state: r.state as OrderState, stateCode: (r.state_code as string | null) ?? null, stateMessage: (r.state_message as string | null) ?? null,
    minPrice: int(r.min_price), capHs: bigOrNull(r.cap_hs), allWorkers: Boolean(r.all_workers),
    workerIds: ((r.worker_ids as unknown[]) ?? []).map(int), endTime: dateOrNull(r.end_time), priority: int(r.priority),
    createdAt: dateOrNull(r.created_at)!, updatedAt: dateOrNull(r.updated_at)!,
  };
}

// ---- validation: one specific error per field ----

function checkPrice(p: unknown, field: string): number {
  if (typeof p !== 'number' || !Number.isSafeInteger(p) || p < 0 || p > MAX_PRICE) {
    throw new MarketError('INVALID_PRICE', `${field} must be a whole number of sat/PH/day between 0 and ${MAX_PRICE}`, field);
  }
  return p;
}

function checkHs(h: unknown, field: string): bigint {
  if (typeof h !== 'bigint' || h <= 0n || h > MAX_HS) throw new MarketError('INVALID_HASHRATE', `${field} must be a hashrate above 0 and at most 1,000,000 EH/s`, field);
  return h;
}

function checkClientId(c: unknown): string | null {
  if (c === undefined || c === null) return null;
  if (typeof c !== 'string' || !CLIENT_ID_RE.test(c)) {
    throw new MarketError('INVALID_ORDER', 'clientOrderId must be 1-64 characters of A-Z a-z 0-9 . _ : -', 'clientOrderId');
  }
  return c;
}

const LATEST_END = Date.parse('9999-12-31T23:59:59.999Z');

function checkEnd(e: unknown, now: number): Date | null {
  if (e === undefined || e === null) return null;
  if (!(e instanceof Date) || Number.isNaN(e.getTime())) throw new MarketError('INVALID_END_TIME', 'endTime must be an ISO 8601 time', 'endTime');
  if (e.getTime() <= now) throw new MarketError('INVALID_END_TIME', `endTime ${e.toISOString()} is in the past`, 'endTime');
  // Postgres stores later times, but an ISO string past year 9999 (+010000-…) is not one it reads back.
  if (e.getTime() > LATEST_END) throw new MarketError('INVALID_END_TIME', `endTime ${e.toISOString()} is past 9999-12-31`, 'endTime');
  return e;
}

export function checkDestinations(ds: unknown): Destination[] {
  if (!Array.isArray(ds) || ds.length === 0 || ds.length > 5) {
    throw new MarketError('INVALID_DESTINATION', 'destinations must list 1 to 5 pools (the first, then backups in order)', 'destinations');
  }
  return ds.map((d, i) => {
    const field = `destinations[${i}]`;
    const x = d as Partial<Destination>;
    if (typeof x?.url !== 'string') throw new MarketError('INVALID_DESTINATION', `${field}.url is required`, `${field}.url`);
    let u: URL;
    try {
      u = new URL(x.url);
    } catch {
      throw new MarketError('INVALID_DESTINATION', `${field}.url is not a URL: ${x.url.slice(0, 100)}`, `${field}.url`);
    }
    if (u.protocol !== 'stratum+tcp:' && u.protocol !== 'stratum+ssl:') {
      throw new MarketError('INVALID_DESTINATION', `${field}.url must be stratum+tcp:// or stratum+ssl:// (got ${u.protocol}//)`, `${field}.url`);
    }
    if (!u.hostname || !u.port) throw new MarketError('INVALID_DESTINATION', `${field}.url needs a host and a port`, `${field}.url`);
    if (typeof x.user !== 'string' || x.user.length === 0 || x.user.length > 256) throw new MarketError('INVALID_DESTINATION', `${field}.user must be 1-256 characters`, `${field}.user`);
    const password = x.password ?? 'x';
    if (typeof password !== 'string' || password.length > 256) throw new MarketError('INVALID_DESTINATION', `${field}.password must be at most 256 characters`, `${field}.password`);
    return { url: `${u.protocol}//${u.host}`, user: x.user, password };
  });
}

/** The escrow a cleared-but-unsettled tick may still cost: fill × price × tick, plus the margin, rounded up. */
export function reserveSat(fillHs: bigint, price: number, tickSeconds: number, marginBps: number): bigint {
  const num = fillHs * BigInt(price) * BigInt(tickSeconds) * (BPS + BigInt(marginBps));
  const den = HASHES_PER_PH_DAY * BPS;
  return (num + den - 1n) / den;
}

/** Reserve per bid for every cleared tick not yet settled. */
export async function reserves(tx: Queryable, cfg: MarketConfig, bidIds?: readonly number[]): Promise<Map<number, bigint>> {
  const r = await tx.query<{ order_id: string; price: string; fill_hs: string; tick: string }>(
    `SELECT f.order_id, f.price, f.fill_hs::text AS fill_hs, f.tick FROM market_fills f JOIN market_ticks t ON t.tick = f.tick
      WHERE f.side = 'bid' AND t.settled_at IS NULL ${bidIds ? 'AND f.order_id = ANY($1::bigint[])' : ''}`,
    bidIds ? [bidIds.map(String)] : [],
  );
  const out = new Map<number, bigint>();
  for (const row of r.rows) {
    const id = int(row.order_id);
    out.set(id, (out.get(id) ?? 0n) + reserveSat(big(row.fill_hs), int(row.price), cfg.tickSeconds, cfg.reserveMarginBps));
  }
  return out;
}

async function event(tx: Queryable, side: 'bid' | 'ask', id: number, kind: string, actor: string, o: { from?: OrderState | null; to?: OrderState | null; code?: string | null; message?: string | null } = {}): Promise<void> {
  await tx.query(
    `INSERT INTO market_order_events (side, order_id, kind, from_state, to_state, code, message, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [side, id, kind, o.from ?? null, o.to ?? null, o.code ?? null, o.message ?? null, actor],
  );
}

export const actorLabel = (a: Actor) => (a.operator ? 'operator' : `account:${a.accountId}`);

export class OrderBook {
  constructor(private readonly db: Database, private readonly ledger: MarketLedger, private readonly cfg: MarketConfig, private readonly now: () => number) {}

  async getBid(id: number, tx: Queryable = this.db): Promise<BidRow | null> {
    const r = await tx.query(`SELECT ${BID_COLUMNS} FROM market_bids WHERE id = $1`, [id]);
    return r.rows[0] ? bidFromRow(r.rows[0]) : null;
  }

  async getAsk(id: number, tx: Queryable = this.db): Promise<AskRow | null> {
    const r = await tx.query(`SELECT ${ASK_COLUMNS} FROM market_asks WHERE id = $1`, [id]);
    return r.rows[0] ? askFromRow(r.rows[0]) : null;
  }

  /**
   * Place a bid: validated, stored pending-probe and its budget escrowed, in one transaction. With a
   * client_order_id already used by this account, the first order is returned (created: false) if the
   * parameters are the same, and IDEMPOTENCY_CONFLICT otherwise.
   */
  async placeBid(actor: Actor, req: BidRequest): Promise<{ bid: BidRow; created: boolean }> {
    const clientOrderId = checkClientId(req.clientOrderId);
    const maxPrice = checkPrice(req.maxPrice, 'maxPrice');
    if (maxPrice === 0) throw new MarketError('INVALID_PRICE', 'maxPrice must be at least 1 sat/PH/day', 'maxPrice');
    const limitHs = checkHs(req.limitHs, 'limit');
    if (typeof req.budgetSat !== 'bigint' || req.budgetSat <= 0n || req.budgetSat > MAX_BUDGET) {
      throw new MarketError('INVALID_BUDGET', 'budget must be a whole number of sat above 0 and at most 21 M BTC', 'budget');
    }
    const endTime = checkEnd(req.endTime, this.now());
    const destinations = checkDestinations(req.destinations);
    const params = stableJson({ maxPrice, limitHs, budgetSat: req.budgetSat, endTime: endTime?.toISOString() ?? null, destinations });

    return this.db.transaction(async (tx) => {
      await this.requireAccount(tx, actor.accountId);
      const inserted = await tx.query<{ id: string }>(
        `INSERT INTO market_bids (account_id, client_order_id, max_price, limit_hs, budget_sat, destinations, end_time)
         VALUES ($1, $2, $3, $4::numeric, $5, $6::jsonb, $7::timestamptz)
         ON CONFLICT (account_id, client_order_id) DO NOTHING RETURNING id`,
        [actor.accountId, clientOrderId, maxPrice, limitHs.toString(), req.budgetSat.toString(), JSON.stringify(destinations), endTime?.toISOString() ?? null],
      );
      if (inserted.rows.length === 0) {
        const r = await tx.query(`SELECT ${BID_COLUMNS} FROM market_bids WHERE account_id = $1 AND client_order_id = $2`, [actor.accountId, clientOrderId]);
        const first = bidFromRow(r.rows[0]);
        const same = stableJson({ maxPrice: first.maxPrice, limitHs: first.limitHs, budgetSat: first.budgetSat, endTime: first.endTime?.toISOString() ?? null, destinations: first.destinations }) === params;
        if (!same) throw new MarketError('IDEMPOTENCY_CONFLICT', `clientOrderId ${clientOrderId} was used for bid ${first.id} with other parameters`, 'clientOrderId', { orderId: first.id });
        return { bid: first, created: false };
      }
      const id = int(inserted.rows[0].id);
      const escrow = await this.ledger.escrow({ key: `market:escrow:bid:${id}`, accountId: actor.accountId, bidId: id, amountSat: req.budgetSat }, tx);
      if (escrow.kind === 'insufficient-funds') {
        throw new MarketError('INSUFFICIENT_FUNDS', `budget ${req.budgetSat} sat exceeds the available balance of ${escrow.availableSat} sat`, 'budget', { availableSat: escrow.availableSat.toString() });
      }
      await event(tx, 'bid', id, 'placed', actorLabel(actor), { to: 'pending-probe', message: `budget ${req.budgetSat} sat escrowed` });
      return { bid: (await this.getBid(id, tx))!, created: true };
    });
  }

  async placeAsk(actor: Actor, req: AskRequest): Promise<{ ask: AskRow; created: boolean }> {
    const clientOrderId = checkClientId(req.clientOrderId);
    const minPrice = checkPrice(req.minPrice, 'minPrice');
    const capHs = req.capHs === undefined || req.capHs === null ? null : checkHs(req.capHs, 'cap');
    const endTime = checkEnd(req.endTime, this.now());
    if (req.workers !== 'all' && (!Array.isArray(req.workers) || req.workers.length === 0 || req.workers.length > 100_000)) {
      throw new MarketError('INVALID_WORKERS', 'workers must be "all" or a list of 1 to 100,000 worker names', 'workers');
    }
    return this.db.transaction(async (tx) => {
      await this.requireAccount(tx, actor.accountId);
      const workerIds = req.workers === 'all' ? [] : await this.resolveWorkers(tx, actor, req.workers);
      const params = stableJson({ minPrice, capHs, endTime: endTime?.toISOString() ?? null, workers: req.workers === 'all' ? 'all' : workerIds });
      if (clientOrderId) {
        const r = await tx.query(`SELECT ${ASK_COLUMNS} FROM market_asks WHERE account_id = $1 AND client_order_id = $2`, [actor.accountId, clientOrderId]);
        if (r.rows[0]) {
          const first = askFromRow(r.rows[0]);
          const same = stableJson({ minPrice: first.minPrice, capHs: first.capHs, endTime: first.endTime?.toISOString() ?? null, workers: first.allWorkers ? 'all' : first.workerIds }) === params;
          if (!same) throw new MarketError('IDEMPOTENCY_CONFLICT', `clientOrderId ${clientOrderId} was used for ask ${first.id} with other parameters`, 'clientOrderId', { orderId: first.id });
          return { ask: first, created: false };
        }
      }
      if (workerIds.length) {
        const taken = await tx.query<{ worker_id: string; ask_id: string }>(
          `SELECT w.worker_id, w.ask_id FROM market_ask_workers w JOIN market_asks a ON a.id = w.ask_id
            WHERE w.worker_id = ANY($1::bigint[]) AND a.state IN ('open', 'active', 'paused') ORDER BY w.worker_id LIMIT 1`,
          [workerIds.map(String)],
        );
        if (taken.rows[0]) {
          throw new MarketError('WORKER_IN_ANOTHER_ASK', `worker ${taken.rows[0].worker_id} is already offered by ask ${taken.rows[0].ask_id}`, 'workers');
        }
      }
      const inserted = await tx.query<{ id: string }>(
        `INSERT INTO market_asks (account_id, client_order_id, min_price, cap_hs, all_workers, end_time)
         VALUES ($1, $2, $3, $4::numeric, $5, $6::timestamptz)
         ON CONFLICT (account_id, client_order_id) DO NOTHING RETURNING id`,
        [actor.accountId, clientOrderId, minPrice, capHs?.toString() ?? null, req.workers === 'all', endTime?.toISOString() ?? null],
      );
      if (inserted.rows.length === 0) {
        // A concurrent placement with the same client_order_id committed first: answer with it.
        const r = await tx.query(`SELECT ${ASK_COLUMNS} FROM market_asks WHERE account_id = $1 AND client_order_id = $2`, [actor.accountId, clientOrderId]);
        return { ask: askFromRow(r.rows[0]), created: false };
      }
      const id = int(inserted.rows[0].id);
      if (workerIds.length) {
        await tx.query(`INSERT INTO market_ask_workers (ask_id, worker_id) SELECT $1, unnest($2::bigint[])`, [id, workerIds.map(String)]);
      }
      await event(tx, 'ask', id, 'placed', actorLabel(actor), { to: 'open' });
      return { ask: (await this.getAsk(id, tx))!, created: true };
    });
  }

  /** Edit price and/or limit; effective at the next tick. A price change or a limit increase loses time priority. */
  async editBid(actor: Actor, id: number, edit: { maxPrice?: number; limitHs?: bigint }): Promise<BidRow> {
    if (edit.maxPrice === undefined && edit.limitHs === undefined) throw new MarketError('INVALID_ORDER', 'nothing to edit: give maxPrice and/or limit', 'body');
    const maxPrice = edit.maxPrice === undefined ? undefined : checkPrice(edit.maxPrice, 'maxPrice');
    if (maxPrice === 0) throw new MarketError('INVALID_PRICE', 'maxPrice must be at least 1 sat/PH/day', 'maxPrice');
    const limitHs = edit.limitHs === undefined ? undefined : checkHs(edit.limitHs, 'limit');
    return this.db.transaction(async (tx) => {
      const bid = await this.ownedBid(tx, actor, id, true);
      if (!LIVE_BID_STATES.includes(bid.state)) throw new MarketError('ORDER_CLOSED', `bid ${id} is ${bid.state}`);
      const newPrice = maxPrice ?? bid.maxPrice;
      const newLimit = limitHs ?? bid.limitHs;
      const losesPriority = newPrice !== bid.maxPrice || newLimit > bid.limitHs;
      await tx.query(
        `UPDATE market_bids SET max_price = $2, limit_hs = $3::numeric, updated_at = now()
           ${losesPriority ? ", priority = nextval('market_priority_seq')" : ''} WHERE id = $1`,
        [id, newPrice, newLimit.toString()],
      );
      await event(tx, 'bid', id, 'edit', actorLabel(actor), { message: `maxPrice ${bid.maxPrice} → ${newPrice}, limit ${bid.limitHs} → ${newLimit} H/s${losesPriority ? ' (new time priority)' : ''}` });
      return (await this.getBid(id, tx))!;
    });
  }

  async editAsk(actor: Actor, id: number, edit: { minPrice?: number; capHs?: bigint | null }): Promise<AskRow> {
    if (edit.minPrice === undefined && edit.capHs === undefined) throw new MarketError('INVALID_ORDER', 'nothing to edit: give minPrice and/or cap', 'body');
    const minPrice = edit.minPrice === undefined ? undefined : checkPrice(edit.minPrice, 'minPrice');
    const capHs = edit.capHs === undefined || edit.capHs === null ? edit.capHs : checkHs(edit.capHs, 'cap');
    return this.db.transaction(async (tx) => {
      const ask = await this.ownedAsk(tx, actor, id, true);
      if (!LIVE_ASK_STATES.includes(ask.state)) throw new MarketError('ORDER_CLOSED', `ask ${id} is ${ask.state}`);
      const newPrice = minPrice ?? ask.minPrice;
      const newCap = capHs === undefined ? ask.capHs : capHs;
      const raisesCap = newCap === null ? ask.capHs !== null : ask.capHs !== null && newCap > ask.capHs;
      const losesPriority = newPrice !== ask.minPrice || raisesCap;
      await tx.query(
        `UPDATE market_asks SET min_price = $2, cap_hs = $3::numeric, updated_at = now()
           ${losesPriority ? ", priority = nextval('market_priority_seq')" : ''} WHERE id = $1`,
        [id, newPrice, newCap?.toString() ?? null],
      );
      await event(tx, 'ask', id, 'edit', actorLabel(actor), { message: `minPrice ${ask.minPrice} → ${newPrice}, cap ${ask.capHs ?? 'none'} → ${newCap ?? 'none'}${losesPriority ? ' (new time priority)' : ''}` });
      return (await this.getAsk(id, tx))!;
    });
  }

  /**
   * Cancel a bid: free and immediate. Out of the book at once; the escrow is released now except the reserve for
   * ticks already cleared and not yet settled (their delivered work is still owed); the rest of that reserve is
   * released when the last of them settles. The caller stops its route.
   */
  async cancelBid(actor: Actor, id: number): Promise<{ bid: BidRow; releasedSat: bigint }> {
    return this.closeBid(actor, id, 'cancelled', 'cancelled', 'cancelled by its owner');
  }

  async closeBid(actor: Actor | 'market', id: number, to: 'cancelled' | 'expired', code: string, message: string): Promise<{ bid: BidRow; releasedSat: bigint }> {
    return this.db.transaction(async (tx) => {
      // After ticks the market did not clear (it was down), the last clearing's lease may have delivered into them:
      // they hold reserve too, so they are carried first (a no-op without a gap; before the bid's row is locked, in
      // the order clearing and settlement take their locks).
      await carryLease(tx, this.cfg, tickAt(this.cfg, this.now()));
      const bid = actor === 'market' ? (await this.getBidForUpdate(tx, id))! : await this.ownedBid(tx, actor, id, true);
      if (!LIVE_BID_STATES.includes(bid.state)) throw new MarketError('ORDER_CLOSED', `bid ${id} is already ${bid.state}`);
      const reserve = (await reserves(tx, this.cfg, [id])).get(id) ?? 0n;
      const free = bid.budgetSat - bid.spentSat - bid.releasedSat - reserve;
      const releasedSat = free > 0n ? free : 0n;
      const key = `market:release:bid:${id}:${to === 'cancelled' ? 'cancel' : 'expire'}`;
      if (releasedSat > 0n) await this.release(tx, bid, key, releasedSat);
      await tx.query(`UPDATE market_bids SET state = $2, state_code = $3, state_message = $4, updated_at = now() WHERE id = $1`, [id, to, code, message]);
      await event(tx, 'bid', id, 'state', actor === 'market' ? 'market' : actorLabel(actor), { from: bid.state, to, code, message: `${message}; ${releasedSat} sat released now, ${reserve} sat held for ticks not yet settled` });
      return { bid: (await this.getBid(id, tx))!, releasedSat };
    });
  }

  async cancelAsk(actor: Actor | 'market', id: number, to: 'cancelled' | 'expired' = 'cancelled'): Promise<{ ask: AskRow; workerIds: number[] }> {
    return this.db.transaction(async (tx) => {
      const ask = actor === 'market' ? (await this.getAsk(id, tx))! : await this.ownedAsk(tx, actor, id, true);
      if (!LIVE_ASK_STATES.includes(ask.state)) throw new MarketError('ORDER_CLOSED', `ask ${id} is already ${ask.state}`);
      // The state and its code are one word but two parameters: one $2 for the enum and the text column is refused by
      // Postgres ("inconsistent types deduced for parameter $2").
      await tx.query(`UPDATE market_asks SET state = $2, state_code = $3, state_message = $4, updated_at = now() WHERE id = $1`,
        [id, to, to, to === 'cancelled' ? 'cancelled by its owner' : 'end time reached']);
      await event(tx, 'ask', id, 'state', actor === 'market' ? 'market' : actorLabel(actor), { from: ask.state, to });
      const routed = await tx.query<{ worker_id: string }>(`SELECT worker_id FROM market_assignments WHERE ask_id = $1 AND to_tick IS NULL`, [id]);
      return { ask: (await this.getAsk(id, tx))!, workerIds: routed.rows.map((r) => int(r.worker_id)) };
    });
  }

  /** Ledger release plus its row; idempotent on the key. */
  async release(tx: Queryable, bid: BidRow, key: string, amountSat: bigint): Promise<void> {
    const r = await tx.query(`INSERT INTO market_releases (ledger_key, bid_id, amount_sat) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING ledger_key`, [key, bid.id, amountSat.toString()]);
    if (r.rows.length === 0) return;
    await this.ledger.release({ key, accountId: bid.accountId, bidId: bid.id, amountSat }, tx);
    await tx.query(`UPDATE market_bids SET released_sat = released_sat + $2 WHERE id = $1`, [bid.id, amountSat.toString()]);
  }

  private async requireAccount(tx: Queryable, accountId: number): Promise<void> {
    const r = await tx.query(`SELECT 1 FROM accounts WHERE id = $1 AND id <> 0`, [accountId]);
    if (!r.rows.length) throw new MarketError('ACCOUNT_NOT_FOUND', `account ${accountId} not found`);
  }

  private async getBidForUpdate(tx: Queryable, id: number): Promise<BidRow | null> {
    const r = await tx.query(`SELECT ${BID_COLUMNS} FROM market_bids WHERE id = $1 FOR UPDATE`, [id]);
    return r.rows[0] ? bidFromRow(r.rows[0]) : null;
  }

  /** The bid, locked, if the actor may change it; another account's order is "not found" (no existence leak). */
  private async ownedBid(tx: Queryable, actor: Actor, id: number, lock: boolean): Promise<BidRow> {
    const r = await tx.query(`SELECT ${BID_COLUMNS} FROM market_bids WHERE id = $1 ${lock ? 'FOR UPDATE' : ''}`, [id]);
    const bid = r.rows[0] ? bidFromRow(r.rows[0]) : null;
    if (!bid || (!actor.operator && bid.accountId !== actor.accountId)) throw new MarketError('ORDER_NOT_FOUND', `bid ${id} not found`);
    return bid;
  }

  private async ownedAsk(tx: Queryable, actor: Actor, id: number, lock: boolean): Promise<AskRow> {
    if (lock) await tx.query(`SELECT 1 FROM market_asks WHERE id = $1 FOR UPDATE`, [id]);
    const ask = await this.getAsk(id, tx);
    if (!ask || (!actor.operator && ask.accountId !== actor.accountId)) throw new MarketError('ORDER_NOT_FOUND', `ask ${id} not found`);
    return ask;
  }

  private async resolveWorkers(tx: Queryable, actor: Actor, names: readonly string[]): Promise<number[]> {
    const own: string[] = [];
    const qualified: { account: string; worker: string }[] = [];
    for (const n of names) {
      if (typeof n !== 'string') throw new MarketError('INVALID_WORKERS', 'worker names must be strings', 'workers');
      const dot = n.indexOf('.');
      if (dot > 0 && actor.operator) qualified.push({ account: n.slice(0, dot), worker: n.slice(dot + 1) });
      else if (WORKER_NAME_RE.test(n)) own.push(n);
      else throw new MarketError('INVALID_WORKERS', `bad worker name "${n.slice(0, 100)}"`, 'workers');
    }
    const ids = new Map<string, number>();
    if (own.length) {
      const r = await tx.query<{ id: string; name: string }>(`SELECT id, name FROM workers WHERE account_id = $1 AND name = ANY($2::text[])`, [actor.accountId, own]);
      for (const row of r.rows) ids.set(row.name, int(row.id));
    }
    if (qualified.length) {
      const r = await tx.query<{ id: string; name: string }>(
        `SELECT w.id, a.name || '.' || w.name AS name FROM workers w JOIN accounts a ON a.id = w.account_id
          WHERE (a.name || '.' || w.name) = ANY($1::text[])`,
        [qualified.map((q) => `${q.account}.${q.worker}`)],
      );
      for (const row of r.rows) ids.set(row.name, int(row.id));
    }
    const missing = names.find((n) => !ids.has(n));
    if (missing) throw new MarketError('WORKER_NOT_FOUND', `worker "${missing.slice(0, 100)}" has never connected to this pool${actor.operator ? '' : ' under this account'}`, 'workers');
    return [...new Set(ids.values())].sort((a, b) => a - b);
  }
}
