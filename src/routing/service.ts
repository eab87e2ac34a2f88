import type { Logger } from 'pino';
import type { Queryable } from '../store/db.ts';
import { MeterJournal } from './meter-journal.ts';
import { RouteMeter } from './meter.ts';
import type { RouteSpec } from './route.ts';
import { DEFAULT_ROUTER_OPTIONS, Router, type RouterOptions } from './router.ts';
import { RouteStore } from './store.ts';

export interface RoutingServiceOptions {
  router: Partial<RouterOptions> & Pick<RouterOptions, 'reconnectHost' | 'reconnectPort'>;
  /** Routes are read from the database this often (the CLI and the API write them there), ms. */
  syncMs: number;
  /** Metering increments are written this often, ms. */
  flushMs: number;
  /** This stratum process's name in the meter watermarks. */
  node: string;
  /** Metering bucket, ms (default a minute; see RouteMeter). */
  meterBucketMs?: number;
  /**
   * The meter's journal, a directory of this process's own (meter-journal.ts). Without one, what was metered since
   * the last flush is lost when the process dies.
   */
  journalDir?: string;
  /** At stop, wait this long at most for the upstreams' answers to forwarded shares (default 3 s). */
  stopAnswerWaitMs?: number;
  /** Clock for the warnings' pacing (tests). */
  now?: () => number;
}

/** The same failure is logged at most this often (a dead database fails every read and flush). */
const WARN_EVERY_MS = 60_000;

/**
 * Routing in a pool process: routes decided in the database (CLI, REST, market) are carried out on this process's
 * own sessions by its Router; state changes, moves and metering go back to the database.
 */
export class RoutingService {
  readonly meter: RouteMeter;
  readonly router: Router;
  readonly store: RouteStore;
  private syncTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  lastError: string | null = null;
  private readonly journal: MeterJournal | null;

  constructor(db: Queryable, private readonly opts: RoutingServiceOptions, private readonly log: Logger) {
    this.meter = new RouteMeter(Date.now, opts.meterBucketMs);
    this.journal = opts.journalDir ? new MeterJournal(opts.journalDir, { logger: log.child({ mod: 'route-meter-journal' }) }) : null;
    this.store = new RouteStore(db, opts.node, (buckets, flushId) => this.log.error({ buckets, flushId },
      'route metering for routes this database does not have (deleted, or another database): kept in route_meter_orphans, not billed'));
    this.router = new Router({ ...DEFAULT_ROUTER_OPTIONS, ...opts.router }, this.meter, log.child({ mod: 'router' }));
    this.router.on('state', (id, st) => { this.store.recordState(id, st).catch((e: unknown) => this.warn('cannot record a route state', e)); });
    this.router.on('moved', (m) => {
      const id = m.routeId ?? m.from;
      if (id !== null) this.store.recordMove(id, { worker: m.worker, session: m.session, method: m.method, to: m.routeId, from: m.from }).catch((e: unknown) => this.warn('cannot record a move', e));
    });
  }

  /** Per message: when it was last logged and how many were held back since. */
  private readonly warned = new Map<string, { at: number; held: number }>();

  private warn(what: string, e: unknown): void {
    this.lastError = `${what}: ${(e as Error).message}`;
    const now = (this.opts.now ?? Date.now)();
    const w = this.warned.get(what);
    if (w && now - w.at < WARN_EVERY_MS) {
      w.held++;
      return;
    }
    this.warned.set(what, { at: now, held: 0 });
    this.log.warn({ err: (e as Error).message, ...(w && w.held > 0 ? { repeated: w.held } : {}) }, what);
  }

  async start(): Promise<void> {
    if (this.journal) {
      // Before any share is metered: what an earlier run of this process metered and did not get into the database.
      const r = await this.meter.recover(this.journal);
      if (r.flushes > 0 || r.increments > 0 || r.setAside > 0) this.log.info({ ...r, dir: this.journal.dir }, 'route metering read back from the journal: written with the next flush');
    }
    this.router.start();
    await this.sync().catch((e: unknown) => this.warn('cannot read routes', e));
    this.syncTimer = setInterval(() => { void this.sync().catch((e: unknown) => this.warn('cannot read routes', e)); }, this.opts.syncMs);
    this.syncTimer.unref();
    this.flushTimer = setInterval(() => { this.meter.flush(this.store).catch((e: unknown) => this.warn('cannot write route metering (kept, retried)', e)); }, this.opts.flushMs);
    this.flushTimer.unref();
  }

  /** Read the routes in force and apply them (also called by the API right after a change). */
  sync(): Promise<void> {
    this.syncing ??= (async () => {
      try {
        const rows = await this.store.active();
        const keep = new Set<number>();
        for (const r of rows) {
          // A market route past its lease (no newer clearing): its workers go back to pool work; the upstream stays.
          // The router also ends the lease itself when it runs out between reads, or while they fail.
          const leaseEndMs = r.leaseUntil === null ? null : Date.parse(r.leaseUntil);
          const leased = leaseEndMs === null || leaseEndMs > Date.now();
          const spec: RouteSpec = { id: r.id, name: r.name, destinations: r.destinations, workers: leased ? r.workers : [], hashrate: r.hashrate ?? null, bidId: r.bidId ?? null, leaseEndMs };
          keep.add(r.id);
          this.router.upsert(spec);
        }
        for (const id of [...this.router.routes.keys()]) if (!keep.has(id)) this.router.remove(id);
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  async stop(): Promise<void> {
    if (this.syncTimer) clearInterval(this.syncTimer);
    if (this.flushTimer) clearInterval(this.flushTimer);
    // The miners are gone (the pool stops first): the upstreams' answers to shares already forwarded are metered
    // before their connections close, or each would count as unanswered. Bounded: an upstream may never answer.
    const end = Date.now() + (this.opts.stopAnswerWaitMs ?? 3000);
    while (this.meter.pendingAnswers > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    // A read of the routes under way would start routes again after the router stops.
    await this.syncing?.catch(() => undefined);
    this.router.stop();
    await this.meter.drain(this.store).catch((e: unknown) => this.warn('cannot write route metering at stop (what its journal holds is written at the next start)', e));
    await this.journal?.close().catch((e: unknown) => this.warn('cannot close the route meter journal', e));
  }
}
