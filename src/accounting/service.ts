import type { Logger } from 'pino';
import type { NetworkName } from '../chain/index.ts';
import type { Database } from '../store/db.ts';
import { ChainValues, type RpcCaller } from './chain-values.ts';
import { DEFAULT_DEPOSIT_POLICY, type DepositPolicy, type DepositReport, Deposits } from './deposits.ts';
import { AccountingEngine, type StepReport, type Watermark, readWatermark } from './engine.ts';
import { type BooksFrame, type SchemeParams, ensureFrame, syncParams } from './params.ts';
import { DEFAULT_POLICY, type CreateOutcome, type PayoutPolicy, Payouts, type ProgressOutcome } from './payouts/payouts.ts';
import { type PayoutWallet, RpcPayoutWallet } from './payouts/wallet.ts';
import { Settings, type SettingsPolicy } from './settings.ts';
import type { Scheme } from './types.ts';

// The accounting service: what a pool process (or a separate accounting process: everything comes from the
// database, so any number of them compute the same books) runs. Every `intervalMs` it records block values for
// the heights being mined, credits FPPS periods the ingest watermark has passed, credits late shares, splits
// found blocks and credits confirmed ones; every `payouts.intervalMs` it moves payout batches along. A failing
// step is logged, counted and retried; it never stops the others.

export interface AccountingConfig {
  periodSeconds: number;
  intervalMs: number;
  scheme: SchemeParams;
  allowedSchemes: Scheme[];
  lateCheckPeriods: number;
  payouts: Omit<PayoutPolicy, 'network'> & { enabled: boolean; intervalMs: number; minThreshold: bigint; signer: 'auto' | 'psbt' | 'dumpprivkey' };
  /** Deposits to per-account wallet addresses (issue 13); absent = the defaults, enabled. */
  deposits?: Omit<DepositPolicy, 'network'> & { enabled: boolean };
}

export const DEFAULT_ACCOUNTING: AccountingConfig = {
  periodSeconds: 3600,
  intervalMs: 10_000,
  scheme: { fppsFeeBps: 250, pplnsFeeBps: 100, soloFeeBps: 100, defaultScheme: 'pplns', pplnsN: 2, pplnsMaxWindowSeconds: 86_400 },
  allowedSchemes: ['fpps', 'pplns', 'solo'],
  lateCheckPeriods: 24,
  payouts: { ...DEFAULT_POLICY, enabled: true, intervalMs: 600_000, minThreshold: 10_000n, signer: 'auto' },
  deposits: { ...DEFAULT_DEPOSIT_POLICY, enabled: true },
};

export interface AccountingServiceOptions {
  db: Database;
  /** The node's RPC (block values; broadcasting payouts). */
  node: RpcCaller;
  /** The wallet's RPC; default the node's (Core with one wallet, the embedded chain). */
  walletRpc?: RpcCaller;
  /** Or a ready wallet (tests). */
  wallet?: PayoutWallet;
  network: NetworkName;
  config: AccountingConfig;
  logger: Logger;
  now?: () => number;
  /** Tests: stop a deposits pass at a point (throw, or SIGKILL the process). */
  depositFault?: (p: import('./deposits.ts').DepositFault, txid: string) => void;
}

export interface AccountingStatus {
  frame: BooksFrame | null;
  watermark: Watermark | null;
  nextPeriod: string | null;
  fppsWaiting: string | null;
  lastRun: string | null;
  lastPayoutRun: string | null;
  errors: number;
  lastError: string | null;
  lastPayout: CreateOutcome | null;
  creditedButOrphaned: string[];
  /** The last deposits pass (null before the first, or when deposits are disabled). */
  lastDeposits: DepositReport | null;
  /** ALERT: reversed deposits the account had already spent (owed by the account: deposit_shortfall). */
  depositShortfalls: { account: string; txid: string; vout: number; shortfall: string }[];
}

export class AccountingService {
  frame: BooksFrame | null = null;
  engine: AccountingEngine | null = null;
  readonly payouts: Payouts;
  readonly deposits: Deposits;
  readonly settings: Settings;
  readonly values: ChainValues;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private payoutTimer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private payoutRunning: Promise<unknown> | null = null;
  private stopped = false;
  readonly stats = { runs: 0, errors: 0, periods: 0, blocksCredited: 0, payoutsConfirmed: 0, depositsCredited: 0, depositsReversed: 0 };
  private st: Omit<AccountingStatus, 'frame' | 'watermark' | 'nextPeriod' | 'creditedButOrphaned' | 'depositShortfalls'> = {
    fppsWaiting: null, lastRun: null, lastPayoutRun: null, errors: 0, lastError: null, lastPayout: null, lastDeposits: null,
  };
  private readonly log: Logger;

  constructor(private readonly o: AccountingServiceOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.logger;
    const policy: PayoutPolicy = { ...o.config.payouts, network: o.network };
    const wallet = o.wallet ?? new RpcPayoutWallet({ node: o.node, wallet: o.walletRpc ?? o.node, network: o.network, signer: o.config.payouts.signer, logger: o.logger });
    this.payouts = new Payouts(o.db, wallet, policy, o.logger.child({ mod: 'payouts' }));
    const sp: SettingsPolicy = {
      network: o.network, minThreshold: o.config.payouts.minThreshold, defaultThreshold: o.config.payouts.defaultThreshold,
      allowedSchemes: o.config.allowedSchemes,
    };
    this.settings = new Settings(sp);
    this.values = new ChainValues(o.db, o.node, o.network, o.logger);
    const dep = o.config.deposits ?? DEFAULT_ACCOUNTING.deposits!;
    this.deposits = new Deposits(o.db, { node: o.node, wallet: o.walletRpc ?? o.node }, { ...dep, network: o.network },
      o.logger.child({ mod: 'deposits' }), o.depositFault);
  }

  get db(): Database { return this.o.db; }
  get config(): AccountingConfig { return this.o.config; }
  get network(): NetworkName { return this.o.network; }

  /** Create or check the books' frame and parameters. Throws ValidationError on a config the books refuse. */
  async init(): Promise<BooksFrame> {
    if (this.frame) return this.frame;
    const now = this.now();
    const frame = await ensureFrame(this.o.db, { periodSeconds: this.o.config.periodSeconds, network: this.o.network, now });
    const r = await syncParams(this.o.db, frame, this.o.config.scheme, now);
    if (r.changed) this.log.info({ effectiveFrom: new Date(r.effectiveFrom).toISOString() }, 'accounting parameters recorded');
    this.frame = frame;
    this.engine = new AccountingEngine(this.o.db, frame, this.values, this.log.child({ mod: 'accounting' }), this.o.config.lateCheckPeriods);
    return frame;
  }

  /** Start the loops (init first). */
  async start(): Promise<void> {
    await this.init();
    this.log.info({ period: this.frame!.periodSeconds, startedAt: new Date(this.frame!.startedAt).toISOString() }, 'accounting started');
    const loop = () => { if (!this.running) this.running = this.tick().finally(() => { this.running = null; }); };
    this.timer = setInterval(loop, this.o.config.intervalMs);
    this.timer.unref();
    loop();
    if (this.o.config.payouts.enabled) {
      const ploop = () => { if (!this.payoutRunning) this.payoutRunning = this.payoutTick().finally(() => { this.payoutRunning = null; }); };
      this.payoutTimer = setInterval(ploop, this.o.config.payouts.intervalMs);
      this.payoutTimer.unref();
    }
  }

  /** One pass of the accounting steps (one at a time in this process; other processes wait on the database lock). */
  tick(): Promise<StepReport | null> {
    const run = this.tickChain.then(() => this.tickOnce());
    this.tickChain = run.catch(() => undefined);
    return run;
  }

  private tickChain: Promise<unknown> = Promise.resolve();
  private payoutChain: Promise<unknown> = Promise.resolve();

  private async tickOnce(): Promise<StepReport | null> {
    if (this.stopped) return null;
    await this.init();
    const now = this.now();
    try {
      // Keep the value of the height being mined recorded (one getblockstats per new block).
      const tip = await this.values.tipHeight();
      await this.values.ensure([tip + 1]);
    } catch (e) {
      this.fail('block values', e);
    }
    let report: StepReport | null = null;
    try {
      report = await this.engine!.runOnce(now);
      this.st.fppsWaiting = report.fppsWaiting;
      this.stats.periods += report.periods.filter((p) => p.kind === 'credited').length;
      this.stats.blocksCredited += report.credits.filter((c) => c.kind === 'credited').length;
      for (const e of report.errors) this.fail(`${e.step} ${e.unit}`, new Error(e.error));
    } catch (e) {
      this.fail('accounting', e);
    }
    if (this.o.config.deposits?.enabled ?? true) {
      try {
        const d = await this.deposits.run(now);
        this.st.lastDeposits = d;
        this.stats.depositsCredited += d.outcomes.filter((x) => x.kind === 'credited').length;
        this.stats.depositsReversed += d.outcomes.filter((x) => x.kind === 'reversed' || x.kind === 'reversed-short').length;
        for (const x of d.outcomes) if (x.kind === 'failed') this.fail(`deposit ${x.txid}:${x.vout}`, new Error(x.error));
      } catch (e) {
        this.fail('deposits', e);
      }
    }
    this.stats.runs++;
    this.st.lastRun = new Date(now).toISOString();
    return report;
  }

  /** One pass of payouts: progress batches in flight, start a new one (one pass at a time in this process). */
  payoutTick(): Promise<{ progressed: ProgressOutcome[]; created: CreateOutcome } | null> {
    const run = this.payoutChain.then(() => this.payoutOnce());
    this.payoutChain = run.catch(() => undefined);
    return run;
  }

  private async payoutOnce(): Promise<{ progressed: ProgressOutcome[]; created: CreateOutcome } | null> {
    if (this.stopped) return null;
    await this.init();
    const now = this.now();
    try {
      const r = await this.payouts.run(now);
      this.st.lastPayout = r.created;
      this.stats.payoutsConfirmed += r.progressed.filter((p) => p.kind === 'confirmed').length;
      this.st.lastPayoutRun = new Date(now).toISOString();
      return r;
    } catch (e) {
      this.fail('payouts', e);
      return null;
    }
  }

  private fail(what: string, e: unknown): void {
    this.stats.errors++;
    this.st.errors++;
    this.st.lastError = `${what}: ${(e as Error).message}`;
    this.log.error({ step: what, err: (e as Error).message }, 'accounting step failed; retried next time');
  }

  async status(): Promise<AccountingStatus> {
    await this.init();
    const [watermark, next, orphaned, shortfalls] = await Promise.all([
      readWatermark(this.o.db), this.engine!.nextPeriod(), this.engine!.blocks.creditedButOrphaned(this.o.db), this.deposits.shortfalls(this.o.db),
    ]);
    return {
      ...this.st, frame: this.frame, watermark, nextPeriod: new Date(next).toISOString(), creditedButOrphaned: orphaned, depositShortfalls: shortfalls,
    };
  }

  /** A spool that is gone for good stops holding crediting back (its shares so far are stored). */
  async retireSource(source: string): Promise<boolean> {
    const r = await this.o.db.query('UPDATE ingest_watermarks SET retired_at = now() WHERE source = $1 AND retired_at IS NULL', [source]);
    if (r.rowCount > 0) this.log.warn({ source }, 'ingest source retired: the watermark no longer waits for it');
    return r.rowCount > 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.payoutTimer) clearInterval(this.payoutTimer);
    await Promise.allSettled([this.running, this.payoutRunning]);
  }
}
