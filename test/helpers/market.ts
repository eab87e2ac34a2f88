// Test doubles for the market's ports, until the ledger (issue 11) and routing (issue 12) implement them.
// TestLedger posts into a table of the test database through the market's own transaction, so a rollback
// undoes its postings exactly as the real ledger's will; idempotency keys are unique there too.

import type { Database, Queryable } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { DEFAULT_MARKET_CONFIG, type MarketConfig } from '../../src/market/config.ts';
import type {
  CapacityMeter, DeliveryMeter, DeliveryRecord, Destination, DestinationState, EscrowOp, EscrowOutcome, MarketLedger, OrderRoute, ReleaseOp,
  RouteController, SettlementPosting, WorkerCapacity,
} from '../../src/market/ports.ts';

export class TestLedger implements MarketLedger {
  /** Throw inside settle() for this key once (a crash between the market's rows and the ledger's entry). */
  failOnce: string | null = null;
  calls = { escrow: 0, release: 0, settle: 0 };

  static async install(db: Queryable): Promise<TestLedger> {
    await db.exec(`CREATE TABLE IF NOT EXISTS test_ledger (
      entry_key text NOT NULL, account text NOT NULL, amount bigint NOT NULL, PRIMARY KEY (entry_key, account))`);
    return new TestLedger();
  }

  async deposit(db: Queryable, accountId: number, sat: bigint): Promise<void> {
    await this.post(db, `test:deposit:${accountId}:${sat}:${Math.random()}`, [['external', -sat], [`balance:${accountId}`, sat]]);
  }

  async available(accountId: number, tx: Queryable): Promise<bigint> {
    return this.balance(tx, `balance:${accountId}`);
  }

  async balance(q: Queryable, account: string): Promise<bigint> {
    const r = await q.query<{ s: string | null }>(`SELECT sum(amount)::text AS s FROM test_ledger WHERE account = $1`, [account]);
    return BigInt(r.rows[0]?.s ?? '0');
  }

  async escrow(op: EscrowOp, tx: Queryable): Promise<EscrowOutcome> {
    this.calls.escrow++;
    const done = await tx.query(`SELECT 1 FROM test_ledger WHERE entry_key = $1 LIMIT 1`, [op.key]);
    if (done.rows.length) return { kind: 'escrowed' };
    const avail = await this.available(op.accountId, tx);
    if (avail < op.amountSat) return { kind: 'insufficient-funds', availableSat: avail };
    await this.post(tx, op.key, [[`balance:${op.accountId}`, -op.amountSat], [`escrow:${op.bidId}`, op.amountSat]]);
    return { kind: 'escrowed' };
  }

  async release(op: ReleaseOp, tx: Queryable): Promise<void> {
    this.calls.release++;
    await this.post(tx, op.key, [[`escrow:${op.bidId}`, -op.amountSat], [`balance:${op.accountId}`, op.amountSat]]);
  }

  async settle(op: SettlementPosting, tx: Queryable): Promise<void> {
    this.calls.settle++;
    if (this.failOnce === op.key) {
      this.failOnce = null;
      throw new Error(`injected ledger failure at ${op.key}`);
    }
    const legs = new Map<string, bigint>();
    const add = (a: string, v: bigint) => legs.set(a, (legs.get(a) ?? 0n) + v);
    add(`escrow:${op.bidId}`, -op.buyerDebitSat);
    for (const c of op.sellerCredits) add(`earnings:${c.accountId}`, c.amountSat);
    add('market-fee', op.marketFeeSat);
    await this.post(tx, op.key, [...legs.entries()]);
  }

  /** Every entry sums to zero (what the real ledger's deferred trigger enforces). */
  async unbalancedEntries(q: Queryable): Promise<string[]> {
    const r = await q.query<{ entry_key: string }>(`SELECT entry_key FROM test_ledger GROUP BY entry_key HAVING sum(amount) <> 0`);
    return r.rows.map((x) => x.entry_key);
  }

  private async post(q: Queryable, key: string, legs: [string, bigint][]): Promise<void> {
    const total = legs.reduce((s, [, v]) => s + v, 0n);
    if (total !== 0n) throw new Error(`unbalanced entry ${key}: ${total}`);
    const done = await q.query(`SELECT 1 FROM test_ledger WHERE entry_key = $1 LIMIT 1`, [key]);
    if (done.rows.length) return;
    for (const [account, amount] of legs) {
      if (amount === 0n) continue;
      await q.query(`INSERT INTO test_ledger (entry_key, account, amount) VALUES ($1, $2, $3)`, [key, account, amount.toString()]);
    }
  }
}

export class TestRoutes implements RouteController {
  states = new Map<number, DestinationState>();
  /** Probes answer 'ready' at once unless told otherwise. */
  autoReady = true;
  probes: number[] = [];
  applied: { tick: number; routes: OrderRoute[]; leaseUntil: Date }[] = [];
  stopped: number[] = [];
  stoppedWorkers: number[] = [];

  async probe(bidId: number, _d: readonly Destination[]): Promise<void> {
    this.probes.push(bidId);
    this.states.set(bidId, this.autoReady ? { state: 'ready', destinationIndex: 0 } : { state: 'probing' });
  }

  async apply(tick: number, routes: readonly OrderRoute[], leaseUntil: Date): Promise<void> {
    this.applied.push({ tick, routes: routes.map((r) => ({ ...r, workerIds: [...r.workerIds] })), leaseUntil });
  }

  async stop(bidId: number): Promise<void> {
    this.stopped.push(bidId);
  }

  async stopWorkers(ids: readonly number[]): Promise<void> {
    this.stoppedWorkers.push(...ids);
  }

  async destinationStates(bidIds: readonly number[]): Promise<Map<number, DestinationState>> {
    return new Map(bidIds.filter((id) => this.states.has(id)).map((id) => [id, this.states.get(id)!]));
  }

  last(): OrderRoute[] {
    return this.applied[this.applied.length - 1]?.routes ?? [];
  }
}

/** Deliveries as the test says they happened: per tick start, the records of that tick. */
export class TestDelivery implements DeliveryMeter {
  byFrom = new Map<number, DeliveryRecord[]>();
  mark = new Date(0);

  set(from: number, records: DeliveryRecord[]): void {
    this.byFrom.set(from, records);
  }

  async delivered(from: Date, _to: Date): Promise<DeliveryRecord[]> {
    return this.byFrom.get(from.getTime()) ?? [];
  }

  async watermark(): Promise<Date> {
    return this.mark;
  }
}

export class TestCapacity implements CapacityMeter {
  workers = new Map<number, { hs: bigint; shares: number }>();

  async capacities(ids: readonly number[], _end: Date, windowSeconds: number): Promise<WorkerCapacity[]> {
    return ids.filter((id) => this.workers.has(id)).map((id) => {
      const w = this.workers.get(id)!;
      return { workerId: id, hashes: w.hs * BigInt(windowSeconds), shares: w.shares };
    });
  }
}

export function testConfig(over: Partial<MarketConfig> = {}): MarketConfig {
  return { ...DEFAULT_MARKET_CONFIG, ...over, index: { ...DEFAULT_MARKET_CONFIG.index, ...(over.index ?? {}) } };
}

/** Accounts and workers as the pool creates them. Returns ids by name. */
export async function seedAccounts(db: Database, spec: Record<string, string[]>): Promise<{ account: Map<string, number>; worker: Map<string, number> }> {
  const account = new Map<string, number>();
  const worker = new Map<string, number>();
  for (const [name, workers] of Object.entries(spec)) {
    const a = await db.query<{ id: string }>(`INSERT INTO accounts (name) VALUES ($1) RETURNING id`, [name]);
    const aid = Number(a.rows[0].id);
    account.set(name, aid);
    for (const w of workers) {
      const r = await db.query<{ id: string }>(
        `INSERT INTO workers (account_id, name, first_seen, last_seen) VALUES ($1, $2, now() - interval '100 days', '2100-01-01') RETURNING id`, [aid, w]);
      worker.set(`${name}.${w}`, Number(r.rows[0].id));
    }
  }
  return { account, worker };
}

export async function migrated(db: Database): Promise<void> {
  await migrate(db);
}

export const DEST: Destination[] = [{ url: 'stratum+tcp://127.0.0.1:3334', user: 'buyer.rig', password: 'x' }];
