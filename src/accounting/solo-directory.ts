import type { Logger } from 'pino';
import { type NetworkName, addressToScript, toHex } from '../chain/index.ts';
import type { SoloDirectory, SoloPayout } from '../pool/solo.ts';
import type { Queryable } from '../store/db.ts';
import { paramsAt } from './params.ts';
import { effectiveAddressOf } from './settings.ts';

// Which accounts mine SOLO right now, to which script and at what fee: the books' answer, kept in memory for the
// pool (asked once per job sent, never per share) and refreshed from the database. A scheme change takes effect
// at a period boundary that is known in advance, so a refresh is also timed for the next one; payout address
// changes are picked up by the periodic refresh.
//
// A payout address changed less than `addressChangeDelaySeconds` ago is not paid in the coinbase: the pool's
// coinbase is used instead and the books owe the finder reward − fee, paid out only after the same delay that
// holds every other payout (a stolen owner token cannot redirect a SOLO block at once).

export interface SoloBookOptions {
  db: Queryable;
  network: NetworkName;
  addressChangeDelaySeconds: number;
  /** Periodic refresh, ms. */
  refreshMs: number;
  /** Accounts whose SOLO payout changed (the pool re-sends them work). */
  onChange: (accounts: string[]) => void;
  logger: Logger;
  now?: () => number;
}

export class SoloBook implements SoloDirectory {
  private payouts = new Map<string, SoloPayout>();
  private timer: NodeJS.Timeout | null = null;
  private boundaryTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly now: () => number;
  readonly stats = { refreshes: 0, errors: 0, lastError: null as string | null };

  constructor(private readonly o: SoloBookOptions) {
    this.now = o.now ?? Date.now;
  }

  get active(): boolean { return this.payouts.size > 0; }

  payoutFor(account: string): SoloPayout | null { return this.payouts.get(account) ?? null; }

  /** Accounts mining SOLO now (for status pages and tests). */
  accounts(): string[] { return [...this.payouts.keys()]; }

  /** The periodic refresh (after a first read, unless one already succeeded, as the pool does before Stratum opens). */
  async start(): Promise<void> {
    if (this.stats.refreshes === 0) await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.o.refreshMs);
    this.timer.unref();
  }

  /** Read the SOLO accounts again; tell the pool which changed. One read at a time; errors keep the last view. */
  refresh(): Promise<void> {
    this.running ??= this.load().finally(() => { this.running = null; });
    return this.running;
  }

  private async load(): Promise<void> {
    if (this.stopped) return;
    const now = this.now();
    const at = new Date(now).toISOString();
    try {
      const params = await paramsAt(this.o.db, now);
      const r = await this.o.db.query<{ name: string; payout_address: string | null; changed_at: Date | string | null }>(
        `SELECT a.name, s.payout_address, s.payout_address_changed_at AS changed_at
         FROM accounts a
         JOIN LATERAL (SELECT x.scheme FROM account_schemes x WHERE x.account_id = a.id AND x.effective_from <= $1::timestamptz
                       ORDER BY x.effective_from DESC LIMIT 1) sc ON sc.scheme = 'solo'
         LEFT JOIN account_settings s ON s.account_id = a.id
         WHERE a.id <> 0`,
        [at],
      );
      const next = new Map<string, SoloPayout>();
      const feeBps = params?.soloFeeBps ?? 0;
      for (const row of r.rows) {
        const address = effectiveAddressOf(row.name, row.payout_address, this.o.network);
        if (!address) continue; // nowhere to pay it: the pool's coinbase, the books owe the finder
        const changedAt = row.changed_at ? new Date(row.changed_at).getTime() : null;
        if (row.payout_address && changedAt !== null && now - changedAt < this.o.addressChangeDelaySeconds * 1000) continue;
        let script: Buffer;
        try {
          script = addressToScript(address, this.o.network);
        } catch {
          continue;
        }
        next.set(row.name, { key: `${toHex(script)}:${feeBps}`, script, feeBps });
      }
      const changed: string[] = [];
      for (const [name, p] of next) if (this.payouts.get(name)?.key !== p.key) changed.push(name);
      for (const name of this.payouts.keys()) if (!next.has(name)) changed.push(name);
      this.payouts = next;
      this.stats.refreshes++;
      if (changed.length > 0) {
        this.o.logger.info({ accounts: changed.slice(0, 20), changed: changed.length, solo: next.size }, 'SOLO payouts changed: their miners get new work');
        this.o.onChange(changed);
      }
      await this.timeNextBoundary(at);
    } catch (e) {
      this.stats.errors++;
      this.stats.lastError = (e as Error).message;
      this.o.logger.warn({ err: (e as Error).message }, 'could not read SOLO accounts; keeping the last view');
    }
  }

  /** Scheme changes wait for a period start: refresh right then rather than up to refreshMs later. */
  private async timeNextBoundary(at: string): Promise<void> {
    const r = await this.o.db.query<{ t: Date | string | null }>(
      'SELECT min(effective_from) AS t FROM account_schemes WHERE effective_from > $1::timestamptz', [at]);
    const t = r.rows[0]?.t;
    if (this.boundaryTimer) clearTimeout(this.boundaryTimer);
    this.boundaryTimer = null;
    if (!t || this.stopped) return;
    const wait = new Date(t).getTime() - this.now();
    if (wait < this.o.refreshMs) {
      this.boundaryTimer = setTimeout(() => void this.refresh(), Math.max(0, wait) + 5);
      this.boundaryTimer.unref();
    }
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.boundaryTimer) clearTimeout(this.boundaryTimer);
    return this.running ?? Promise.resolve();
  }
}
