// MarketService: the market's clock. Each step runs from the database and is safe to repeat or to run in a
// second process (an advisory lock serialises clearing and settlement; every money step has its key):
//   sync   – bids follow their destination's state from routing (probe ready → open, pool down → paused);
//   expire – orders past their end time close (escrow released, routes stopped);
//   clear  – the current tick clears once, at its start; the routes go to routing with a lease;
//   settle – each cleared tick settles, in order, once its end + the answer timeout has passed and the
//            delivery meter's watermark covers it;
//   publish – each UTC day's index is published after the day's end + the publication delay, once every
//            tick of the day is settled.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Database } from '../store/db.ts';
import { type ClearSummary, clearInTx, currentRoutes } from './clearing.ts';
import { type MarketConfig, tickAt } from './config.ts';
import { MarketError } from './errors.ts';
import { MarketInputError } from './units.ts';
import { type IndexRow, correctIndexInTx, publishIndexInTx, recomputeIndex, recordHashprice } from './index-run.ts';
import { type Actor, type AskRequest, type BidRequest, LIVE_BID_STATES, OrderBook, BID_COLUMNS, bidFromRow } from './orders.ts';
import type { CapacityMeter, ChainStats, DeliveryMeter, DestinationState, MarketLedger, RouteController } from './ports.ts';
import { type LateDelivery, checkLateDeliveries } from './late-delivery.ts';
import { type SettleSummary, settleInTx } from './settle-run.ts';
import { int } from './sql.ts';

export interface MarketDeps {
  db: Database;
  ledger: MarketLedger;
  routes: RouteController;
  delivery: DeliveryMeter;
  capacity: CapacityMeter;
  /** For hashprice beside the index (optional: without it, no hashprice and no scaled fallback). */
  chain?: ChainStats;
  config: MarketConfig;
  log?: Logger;
  now?: () => number;
}

/** What the WebSocket feed listens to. */
export interface MarketEvents {
  tick: [ClearSummary];
  settled: [SettleSummary];
  /** An order changed (placed, edited, cancelled, paused, resumed, exhausted, expired). */
  order: [{ side: 'bid' | 'ask'; id: number; accountId: number }];
}

export class MarketService {
  readonly orders: OrderBook;
  readonly events = new EventEmitter<MarketEvents>();
  readonly cfg: MarketConfig;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  /** Where the next check for late deliveries starts (checkLate); null until the first. */
  private lateAfter: Date | null = null;
  private running: Promise<void> | null = null;
  /** Clearing + route hand-off and cancel + route stop run one at a time, so a cancel can never be overtaken by
   *  the hand-off of a clearing that still had the order in it. */
  private chain: Promise<unknown> = Promise.resolve();

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  constructor(private readonly deps: MarketDeps) {
    this.cfg = deps.config;
    this.now = deps.now ?? Date.now;
    this.orders = new OrderBook(deps.db, deps.ledger, deps.config, this.now);
  }

  get tickMs(): number {
    return this.cfg.tickSeconds * 1000;
  }

  tickOf(ms: number): number {
    return tickAt(this.cfg, ms);
  }

  // ---- orders (the routing side effects follow the commit) ----

  async placeBid(actor: Actor, req: BidRequest) {
    const r = await this.orders.placeBid(actor, req);
    if (r.created) {
      await this.routing(`probe bid ${r.bid.id}`, () => this.deps.routes.probe(r.bid.id, r.bid.destinations));
      this.emitOrder('bid', r.bid.id, r.bid.accountId);
    }
    return r;
  }

  async placeAsk(actor: Actor, req: AskRequest) {
    const r = await this.orders.placeAsk(actor, req);
    if (r.created) this.emitOrder('ask', r.ask.id, r.ask.accountId);
    return r;
  }

  async editBid(actor: Actor, id: number, edit: { maxPrice?: number; limitHs?: bigint }) {
    const r = await this.orders.editBid(actor, id, edit);
    this.emitOrder('bid', r.id, r.accountId);
    return r;
  }

  async editAsk(actor: Actor, id: number, edit: { minPrice?: number; capHs?: bigint | null }) {
    const r = await this.orders.editAsk(actor, id, edit);
    this.emitOrder('ask', r.id, r.accountId);
    return r;
  }

  /** Free and immediate: out of the book, route stopped, escrow released except what ticks in flight may owe. */
  cancelBid(actor: Actor, id: number) {
    return this.serial(async () => {
      const r = await this.orders.cancelBid(actor, id);
      await this.routing(`stop bid ${id}`, () => this.deps.routes.stop(id));
      this.emitOrder('bid', id, r.bid.accountId);
      return r;
    });
  }

  cancelAsk(actor: Actor, id: number) {
    return this.serial(async () => {
      const r = await this.orders.cancelAsk(actor, id);
      if (r.workerIds.length) await this.routing(`stop ask ${id}'s workers`, () => this.deps.routes.stopWorkers(r.workerIds));
      this.emitOrder('ask', id, r.ask.accountId);
      return r;
    });
  }

  private emitOrder(side: 'bid' | 'ask', id: number, accountId: number): void {
    this.events.emit('order', { side, id, accountId });
  }

  // ---- the clock ----

  /** Bids follow routing's view of their destination. */
  async syncDestinations(): Promise<void> {
    const rows = await this.deps.db.query(`SELECT ${BID_COLUMNS} FROM market_bids WHERE state IN ('pending-probe', 'open', 'active', 'paused') ORDER BY id`);
    const bids = rows.rows.map(bidFromRow);
    if (!bids.length) return;
    const states = await this.deps.routes.destinationStates(bids.map((b) => b.id));
    for (const b of bids) {
      const s: DestinationState | undefined = states.get(b.id);
      if (!s) {
        // Routing does not know the bid (it restarted): probe again.
        if (b.state === 'pending-probe') await this.routing(`probe bid ${b.id}`, () => this.deps.routes.probe(b.id, b.destinations));
        continue;
      }
      let to: typeof b.state = b.state;
      let code: string | null = b.stateCode;
      let message: string | null = b.stateMessage;
      if (s.state === 'ready') {
        if (b.state === 'pending-probe' || b.state === 'paused') { to = 'open'; code = null; message = null; }
      } else if (s.state === 'failed' || s.state === 'paused') {
        if (b.state === 'pending-probe') { code = s.code; message = s.message; } else { to = 'paused'; code = s.code; message = s.message; }
      }
      if (to === b.state && code === b.stateCode && message === b.stateMessage) continue;
      await this.deps.db.transaction(async (tx) => {
        const u = await tx.query(
          `UPDATE market_bids SET state = $2, state_code = $3, state_message = $4, updated_at = now() WHERE id = $1 AND state = $5 RETURNING id`,
          [b.id, to, code, message, b.state],
        );
        if (!u.rows.length) return; // changed meanwhile (cancelled): leave it
        await tx.query(
          `INSERT INTO market_order_events (side, order_id, kind, from_state, to_state, code, message, actor) VALUES ('bid', $1, 'probe', $2, $3, $4, $5, 'routing')`,
          [b.id, b.state, to, code, message],
        );
      });
      this.deps.log?.info({ bid: b.id, from: b.state, to, code }, 'bid destination state');
      this.emitOrder('bid', b.id, b.accountId);
    }
  }

  /** Close orders whose end time has passed. */
  expireDue(now = this.now()): Promise<void> {
    return this.serial(() => this.expireDueNow(now));
  }

  private async expireDueNow(now: number): Promise<void> {
    const at = new Date(now).toISOString();
    const bids = await this.deps.db.query<{ id: string }>(
      `SELECT id FROM market_bids WHERE state IN ('pending-probe', 'open', 'active', 'paused') AND end_time <= $1::timestamptz ORDER BY id`, [at]);
    for (const r of bids.rows) {
      const id = int(r.id);
      await this.orders.closeBid('market', id, 'expired', 'end-time', 'end time reached').catch((e) => { if (!(e instanceof MarketError)) throw e; });
      await this.routing(`stop bid ${id}`, () => this.deps.routes.stop(id));
    }
    const asks = await this.deps.db.query<{ id: string }>(
      `SELECT id FROM market_asks WHERE state IN ('open', 'active', 'paused') AND end_time <= $1::timestamptz ORDER BY id`, [at]);
    for (const r of asks.rows) {
      const res = await this.orders.cancelAsk('market', int(r.id), 'expired').catch((e) => { if (e instanceof MarketError) return null; throw e; });
      if (res?.workerIds.length) await this.routing(`stop ask ${r.id}'s workers`, () => this.deps.routes.stopWorkers(res.workerIds));
    }
  }

  /** Clear one tick (once; a repeat returns the stored clearing) and hand its routes to routing. */
  clearTick(tick: number): Promise<ClearSummary> {
    return this.serial(() => this.clearTickNow(tick));
  }

  private async clearTickNow(tick: number): Promise<ClearSummary> {
    const s = await this.deps.db.transaction((tx) => clearInTx(tx, { cfg: this.cfg, capacity: this.deps.capacity }, tick));
    const leaseUntil = new Date((tick + 1) * this.tickMs + this.cfg.routeLeaseSeconds * 1000);
    // A bid closed by another process since the clearing committed is not handed to routing.
    const live = s.routes.length
      ? new Set((await this.deps.db.query<{ id: string }>(`SELECT id FROM market_bids WHERE id = ANY($1::bigint[]) AND state IN ('open', 'active')`, [s.routes.map((r) => String(r.bidId))])).rows.map((r) => int(r.id)))
      : new Set<number>();
    s.routes = s.routes.filter((r) => live.has(r.bidId));
    await this.routing(`apply tick ${tick}`, () => this.deps.routes.apply(tick, s.routes, leaseUntil));
    if (s.cleared) {
      this.deps.log?.info({ tick, price: s.price, allocatedHs: s.allocatedHs.toString(), workers: s.assignments }, 'market tick cleared');
      this.events.emit('tick', s);
    }
    return s;
  }

  /** Settle one cleared tick with the meter's deliveries (the caller checked it is due). */
  async settleTick(tick: number): Promise<SettleSummary> {
    const from = new Date(tick * this.tickMs);
    const to = new Date((tick + 1) * this.tickMs);
    const deliveries = await this.deps.delivery.delivered(from, to);
    const s = await this.deps.db.transaction((tx) => settleInTx(tx, this.cfg, this.deps.ledger, tick, deliveries));
    for (const id of s.exhausted) await this.routing(`stop bid ${id}`, () => this.deps.routes.stop(id));
    if (s.settled) {
      this.deps.log?.info({ tick, debit: s.debitSat.toString(), credit: s.creditSat.toString(), fee: s.feeSat.toString(), unassigned: s.unassigned }, 'market tick settled');
      this.events.emit('settled', s);
    }
    return s;
  }

  /** Every cleared tick whose settlement is due, in order. */
  async settleDue(now = this.now()): Promise<SettleSummary[]> {
    const watermark = (await this.deps.delivery.watermark()).getTime();
    const out: SettleSummary[] = [];
    for (;;) {
      const r = await this.deps.db.query<{ tick: string }>(`SELECT tick FROM market_ticks WHERE settled_at IS NULL ORDER BY tick LIMIT 1`);
      if (!r.rows.length) break;
      const tick = int(r.rows[0].tick);
      const end = (tick + 1) * this.tickMs;
      if (now < end + this.cfg.answerTimeoutSeconds * 1000 || watermark < end) break;
      out.push(await this.settleTick(tick));
    }
    return out;
  }

  /**
   * Routed work that reached the database after its tick was settled (late-delivery.ts): recorded and logged. The
   * first pass looks two hours back (a process that comes back replays its journal as it starts).
   */
  async checkLate(now = this.now()): Promise<LateDelivery[]> {
    const source = this.deps.delivery.marketFlushes?.bind(this.deps.delivery);
    if (!source) return [];
    const { late, next } = await checkLateDeliveries(this.deps.db, source, this.lateAfter ?? new Date(now - 2 * 3_600_000), this.deps.log);
    this.lateAfter = next;
    return late;
  }

  /** Publish every day whose publication time has come (and whose ticks are all settled). */
  async publishDue(now = this.now()): Promise<IndexRow[]> {
    const last = await this.deps.db.query<{ day: string | null }>(`SELECT to_char(max(day), 'YYYY-MM-DD') AS day FROM market_index`);
    const first = await this.deps.db.query<{ day: string | null }>(`SELECT to_char(min(starts_at), 'YYYY-MM-DD') AS day FROM market_ticks`);
    let day = last.rows[0]?.day ? nextDay(last.rows[0].day) : first.rows[0]?.day ?? null;
    const out: IndexRow[] = [];
    while (day) {
      const end = Date.parse(`${day}T00:00:00Z`) + 86_400_000;
      if (now < end + this.cfg.index.publishAfterSeconds * 1000) break;
      try {
        out.push(await this.publishIndex(day));
      } catch (e) {
        if (e instanceof MarketError && e.code === 'INDEX_NOT_READY') break;
        throw e;
      }
      day = nextDay(day);
    }
    return out;
  }

  async publishIndex(day: string): Promise<IndexRow> {
    if (this.deps.chain) {
      const snap = await this.deps.chain.snapshot().catch((e: Error) => { this.deps.log?.warn({ err: e.message, day }, 'hashprice: chain snapshot failed'); return null; });
      // A hashprice that cannot be computed (e.g. no block in the fee window yet: a fresh chain) is logged and
      // left out; it must never hold back the day's index, which does not depend on it.
      if (snap) await recordHashprice(this.deps.db, day, snap).catch((e: unknown) => {
        if (!(e instanceof MarketInputError)) throw e;
        this.deps.log?.warn({ err: e.message, day }, 'hashprice left out of the index');
      });
    }
    const r = await this.deps.db.transaction((tx) => publishIndexInTx(tx, this.cfg, day));
    if (r.published) this.deps.log?.info({ day, method: r.row.method, value: r.row.value }, 'market index published');
    return r.row;
  }

  recomputeIndex(day: string) {
    return recomputeIndex(this.deps.db, this.cfg, day);
  }

  correctIndex(day: string, actor: string, reason: string) {
    return this.deps.db.transaction((tx) => correctIndexInTx(tx, this.cfg, day, actor, reason));
  }

  /** One pass of every step for the current time. */
  async runOnce(now = this.now()): Promise<void> {
    await this.syncDestinations();
    await this.expireDue(now);
    const tick = this.tickOf(now);
    const cleared = await this.deps.db.query(`SELECT 1 FROM market_ticks WHERE tick >= $1 LIMIT 1`, [tick]);
    if (!cleared.rows.length) await this.clearTick(tick);
    await this.settleDue(now);
    await this.publishDue(now);
    // Finding late work must never hold back clearing, settling or publishing: a failed check is retried next pass.
    await this.checkLate(now).catch((e: Error) => this.deps.log?.error({ err: e.message }, 'market: checking for late deliveries failed'));
  }

  /** Run the clock: a pass every few seconds (clearing happens in the first pass of each tick). */
  start(): void {
    if (this.timer) return;
    // Routing may have restarted: give it the current routes again (same tick: idempotent).
    void this.reapply().catch((e: Error) => this.deps.log?.error({ err: e.message }, 'market: re-applying routes failed'));
    const every = Math.min(5000, Math.max(250, this.tickMs / 12));
    const loop = () => {
      this.running = this.runOnce().catch((e: Error) => { this.deps.log?.error({ err: e.message }, 'market pass failed'); }).finally(() => {
        this.running = null;
        if (this.timer) this.timer = setTimeout(loop, every);
      });
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private async reapply(): Promise<void> {
    const r = await this.deps.db.query<{ tick: string | null }>(`SELECT max(tick)::text AS tick FROM market_ticks`);
    if (!r.rows[0]?.tick) return;
    const tick = int(r.rows[0].tick);
    if (tick !== this.tickOf(this.now())) return; // stale: the next clearing will send fresh routes
    const routes = await currentRoutes(this.deps.db);
    await this.deps.routes.apply(tick, routes, new Date((tick + 1) * this.tickMs + this.cfg.routeLeaseSeconds * 1000));
  }

  /** Routing calls after a commit: a failure is logged, never undoes the market's decision (routing reads it again). */
  private async routing(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.deps.log?.error({ err: (e as Error).message }, `market → routing: ${what} failed`);
    }
  }
}

function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

export { LIVE_BID_STATES };
