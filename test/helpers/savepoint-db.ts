import type { Database, Queryable, Rows } from '../../src/store/db.ts';

// A Database over one open transaction: each transaction() of the code under test is a SAVEPOINT, with the
// deferred constraints checked at its end as a COMMIT would (SET CONSTRAINTS ALL IMMEDIATE). Property tests run
// each sequence inside one outer transaction and roll it back: a thousand sequences on one real database, each
// from the same clean state. `crashAfter` throws SimulatedCrash before the n-th statement from now: whatever the
// current transaction did is rolled back to its savepoint, as a process killed there would leave it.

export class SimulatedCrash extends Error {
  override readonly name = 'SimulatedCrash';
}

export class SavepointDb implements Database {
  readonly kind = 'postgres' as const;
  readonly target = 'savepoint';
  private sp = 0;
  private countdown: number | null = null;
  statements = 0;

  constructor(private readonly q: Queryable) {}

  /** Crash before the n-th statement from now (0 = the next one); null = never. */
  crashAfter(n: number | null): void { this.countdown = n; }

  private tick(): void {
    this.statements++;
    if (this.countdown === null) return;
    if (this.countdown-- <= 0) {
      this.countdown = null;
      throw new SimulatedCrash('simulated crash between two SQL statements');
    }
  }

  async query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Rows<R>> {
    this.tick();
    if (!process.env.PROP_SLOW) return this.q.query<R>(sql, params);
    const t = performance.now();
    const r = await this.q.query<R>(sql, params);
    const ms = performance.now() - t;
    if (ms > Number(process.env.PROP_SLOW)) process.stderr.write(`slow ${ms.toFixed(1)} ms: ${sql.replace(/\s+/g, ' ').slice(0, 140)}\n`);
    return r;
  }

  async exec(sql: string): Promise<void> {
    this.tick();
    return this.q.exec(sql);
  }

  async copyFrom(copySql: string, data: string | Uint8Array): Promise<number> {
    this.tick();
    return this.q.copyFrom(copySql, data);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const name = `prop_sp_${++this.sp}`;
    await this.q.query(`SAVEPOINT ${name}`);
    try {
      const r = await fn(this);
      // What COMMIT would check: the deferred constraint triggers (entries balance, splits add up).
      await this.q.exec(`SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED; RELEASE SAVEPOINT ${name}`);
      return r;
    } catch (e) {
      await this.q.exec(`ROLLBACK TO SAVEPOINT ${name}; SET CONSTRAINTS ALL DEFERRED`);
      throw e;
    }
  }

  async close(): Promise<void> {}
}
