import { Counter, Gauge, type Registry } from 'prom-client';
import { readWatermark } from './engine.ts';
import type { AccountingService } from './service.ts';

// Accounting's Prometheus metrics, read at scrape time from the database and the service: payout batches per
// status and why pending ones wait (an alert on hashhub_payout_pending catches a locked or empty wallet), how
// far crediting lags the clock, and the steps' errors.

export function registerAccountingMetrics(registry: Registry, service: AccountingService, now: () => number = Date.now): void {
  const db = service.db;
  new Gauge({
    name: 'hashhub_payout_batches', help: 'Payout batches by status', labelNames: ['status'], registers: [registry],
    async collect() {
      this.reset();
      const r = await db.query<{ status: string; n: string }>('SELECT status, count(*)::text AS n FROM payout_batches GROUP BY status');
      for (const s of ['pending', 'signed', 'broadcast', 'confirmed', 'awaiting_signature', 'cancelled']) this.set({ status: s }, 0);
      for (const row of r.rows) this.set({ status: row.status }, Number(row.n));
    },
  });
  new Gauge({
    name: 'hashhub_payout_pending', help: 'Payout batches held back, by reason (wallet-locked, wallet-unreachable, insufficient-funds, …)',
    labelNames: ['reason'], registers: [registry],
    async collect() {
      this.reset();
      const r = await db.query<{ code: string; n: string }>(
        `SELECT coalesce(reason_code, 'none') AS code, count(*)::text AS n FROM payout_batches
         WHERE reason_code IS NOT NULL AND status IN ('pending', 'signed', 'broadcast') GROUP BY 1`);
      for (const row of r.rows) this.set({ reason: row.code }, Number(row.n));
    },
  });
  new Gauge({
    name: 'hashhub_accounting_watermark_lag_seconds', help: 'Now minus the ingest watermark (every live spool has stored every share before it)',
    registers: [registry],
    async collect() {
      const w = await readWatermark(db);
      this.set(w.at === null ? -1 : Math.max(0, (now() - w.at) / 1000));
    },
  });
  new Gauge({
    name: 'hashhub_accounting_uncredited_seconds', help: 'Now minus the start of the next FPPS period to credit', registers: [registry],
    async collect() {
      if (!service.engine) return;
      this.set(Math.max(0, (now() - (await service.engine.nextPeriod())) / 1000));
    },
  });
  new Gauge({
    name: 'hashhub_deposits', help: 'Deposits to account addresses by state (seen, credited, reversed)', labelNames: ['state'], registers: [registry],
    async collect() {
      this.reset();
      for (const st of ['seen', 'credited', 'reversed']) this.set({ state: st }, 0);
      const r = await db.query<{ state: string; n: string }>('SELECT state, count(*)::text AS n FROM deposits GROUP BY state');
      for (const row of r.rows) this.set({ state: row.state }, Number(row.n));
    },
  });
  new Gauge({
    name: 'hashhub_deposit_shortfall_sats', help: 'ALERT when > 0: reversed deposits the accounts had already spent (owed by them)', registers: [registry],
    async collect() {
      const r = await db.query<{ s: string }>("SELECT coalesce(sum(balance), 0)::text AS s FROM ledger_accounts WHERE kind = 'deposit_shortfall'");
      this.set(Number(r.rows[0].s));
    },
  });
  let lastErrors = 0;
  new Counter({
    name: 'hashhub_accounting_errors_total', help: 'Accounting and payout steps that failed (each is retried)', registers: [registry],
    collect() {
      const e = service.stats.errors;
      this.inc(Math.max(0, e - lastErrors));
      lastErrors = e;
    },
  });
}
