// Keeps a current block template fresh from a NodeClient and says when the tip changes.
//
// Ways to learn about a new tip, any of which may be missing or slow on a given node:
// - ZMQ `hashblock` (fastest: pushed the moment the node connects a block), configured or discovered with
//   getzmqnotifications;
// - BIP22 long polling (`longpollid`): the node answers when its tip or mempool changed. Used only while ZMQ
//   is not healthy. At most one is outstanding, and none is ever abandoned: Core has no server-side timeout
//   and does not notice a client that gave up, so an abandoned long poll pins one of its RPC threads until the
//   next block (the client relies on TCP keepalive instead of a deadline). Only stop() aborts one;
// - polling `getbestblockhash` every `pollMs` (cheap: no template built, so it does not fill the node's
//   RPC work queue the way polling getblocktemplate does): always on, it catches what ZMQ lost;
// - `notifyNewTip()` from outside (the pool after finding a block).
// A new tip seen by ZMQ or polling is announced at once ('tip'), before a template for it is fetched: jobs on
// the old tip are stale even when getblocktemplate fails. When the node fails, the last good template stays
// current: the pool keeps serving its jobs.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { BlockTemplate, NodeClient } from './types.ts';
import { type TipNotifier, ZmqTipListener } from './zmq.ts';

export interface TemplateSourceOptions {
  /** Re-fetch and emit (newTip=false) when no template came for this long, ms. Default 30000. */
  refreshMs?: number;
  /** getbestblockhash polling interval, ms. Default 1000. */
  pollMs?: number;
  /** Use BIP22 long polling when the template offers it. Default true. */
  longpoll?: boolean;
  /** start() rejects (and stops the source) if no template arrived within this, ms. Default 30000. */
  startTimeoutMs?: number;
  /** Retry delay after the first failure, doubling per failure, ms. Default 250. */
  backoffMinMs?: number;
  /** Longest retry delay, ms. Default 10000. */
  backoffMaxMs?: number;
  logger?: Logger;
  /** Clock for template ages (ms). Default Date.now. */
  now?: () => number;
  /**
   * ZMQ hashblock: `address` (tcp://host:port) to subscribe to; otherwise, unless `discover` is false, the
   * node's own pubhashblock from getzmqnotifications (asked when the node answers). `notifier` replaces the
   * ZMQ listener (tests).
   */
  zmq?: { address?: string; discover?: boolean; heartbeatMs?: number; notifier?: TipNotifier;
    /** How long the first long poll waits for ZMQ to connect (a long poll sent is never taken back), ms.
     *  Default 2000. */
    graceMs?: number };
}

export type TemplateReason = 'start' | 'longpoll' | 'poll' | 'notify' | 'refresh' | 'recovery' | 'zmq';

/** How a new tip was seen before its template arrived. */
export type TipSource = 'poll' | 'zmq';

export interface TemplateMeta {
  /** previousblockhash differs from the last emitted template's: older jobs are stale. */
  newTip: boolean;
  reason: TemplateReason;
  receivedAt: number;
}

export interface TemplateStatus {
  ok: boolean;
  error?: string;
  /** ms since the current template arrived; null before the first. */
  templateAgeMs: number | null;
  /** The ZMQ subscription, when there is one. */
  zmq?: { address: string; healthy: boolean };
}

export interface TemplateSourceEvents {
  template: [template: BlockTemplate, meta: TemplateMeta];
  status: [status: TemplateStatus];
  /**
   * The node's best block is now `hash` (display hex), seen by ZMQ or polling, before (or without) a template
   * on it: work on any other tip is stale from now on. Emitted once per change of the node's tip.
   */
  tip: [hash: string, source: TipSource];
}

interface FetchRequest {
  reason: TemplateReason;
  /** Emit even when the tip did not change (refresh, recovery). */
  emitSameTip: boolean;
  /** Tip the node just reported: a template on it is current even if its height went down (reorg). */
  confirmedTip?: string;
  /** A block the node just took: a template still on its parent is Core's cached one, so ask again shortly. */
  expectTip?: { hash: string; triesLeft: number };
}

/** After one of our blocks: re-ask this many times, this far apart, for a template on it. */
const EXPECT_TIP_TRIES = 20;
const EXPECT_TIP_RETRY_MS = 25;

export class TemplateSource extends EventEmitter<TemplateSourceEvents> {
  private readonly refreshMs: number;
  private readonly pollMs: number;
  private readonly useLongpoll: boolean;
  private readonly startTimeoutMs: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly logger?: Logger;
  private readonly now: () => number;

  private running = false;
  private abort = new AbortController();
  private template?: BlockTemplate;
  private receivedAt = 0;
  /** undefined until the first success or failure. */
  private ok?: boolean;
  private lastError?: string;
  private failures = 0;

  private wanted?: FetchRequest;
  private fetchLoop?: Promise<void>;
  private pollLoop?: Promise<void>;
  private longpollLoop?: Promise<void>;
  private refreshTimer?: NodeJS.Timeout;
  private startTimer?: NodeJS.Timeout;
  private starting?: Promise<BlockTemplate>;
  private settleStart?: (err: Error | null) => void;
  /** The node's best block as last seen (template, ZMQ or poll). */
  private nodeTip?: string;
  private notifier?: TipNotifier;
  private discovering = false;
  /** ZMQ was healthy at least once (after that, an unhealthy ZMQ means long polls at once). */
  private zmqEverHealthy = false;
  private zmqGraceUntil = 0;
  private graceTimer?: NodeJS.Timeout;
  private readonly zmqOpts: NonNullable<TemplateSourceOptions['zmq']>;

  constructor(
    private readonly node: NodeClient,
    opts: TemplateSourceOptions = {},
  ) {
    super();
    this.refreshMs = opts.refreshMs ?? 30_000;
    this.pollMs = opts.pollMs ?? 1_000;
    this.useLongpoll = opts.longpoll ?? true;
    this.startTimeoutMs = opts.startTimeoutMs ?? 30_000;
    this.backoffMinMs = opts.backoffMinMs ?? 250;
    this.backoffMaxMs = opts.backoffMaxMs ?? 10_000;
    this.logger = opts.logger;
    this.now = opts.now ?? Date.now;
    this.zmqOpts = opts.zmq ?? {};
  }

  /** ZMQ is connected: long polls are not needed. */
  get zmqHealthy(): boolean {
    return this.notifier?.healthy === true;
  }

  /** The last good template (kept while the node fails). */
  get current(): BlockTemplate | undefined {
    return this.template;
  }

  get status(): TemplateStatus {
    return {
      ok: this.ok === true,
      ...(this.lastError !== undefined && this.ok !== true ? { error: this.lastError } : {}),
      templateAgeMs: this.template ? this.now() - this.receivedAt : null,
      ...(this.notifier ? { zmq: { address: this.notifier.address, healthy: this.notifier.healthy } } : {}),
    };
  }

  /** Resolves with the first template; rejects after `startTimeoutMs` (the source is then stopped). */
  start(): Promise<BlockTemplate> {
    if (this.starting) return this.starting;
    this.running = true;
    this.abort = new AbortController();
    this.starting = new Promise<BlockTemplate>((resolve, reject) => {
      this.settleStart = (err) => {
        clearTimeout(this.startTimer);
        this.settleStart = undefined;
        if (err) reject(err);
        else resolve(this.template as BlockTemplate);
      };
    });
    // The rejection reaches whoever awaits start(); this handler only keeps a caller that did not await
    // from turning it into an unhandled rejection (the failure is also logged and in `status`).
    this.starting.catch(() => undefined);
    this.startTimer = setTimeout(() => {
      const why = this.lastError ? `: ${this.lastError}` : '';
      const err = new Error(`no block template from the node within ${this.startTimeoutMs} ms${why}`);
      this.logger?.error({ err: err.message }, 'template source failed to start');
      this.settleStart?.(err);
      void this.stop();
    }, this.startTimeoutMs);
    this.zmqGraceUntil = this.now() + (this.zmqOpts.graceMs ?? 2000);
    this.requestFetch({ reason: 'start', emitSameTip: true });
    this.pollLoop = this.guard('poll', () => this.runPoll());
    if (this.zmqOpts.notifier) this.useNotifier(this.zmqOpts.notifier);
    else if (this.zmqOpts.address) {
      this.useNotifier(new ZmqTipListener(this.zmqOpts.address, { logger: this.logger, heartbeatMs: this.zmqOpts.heartbeatMs }));
    }
    return this.starting;
  }

  /** Fetch a template now (a block was found, ZMQ said hashblock, ...). Emits only if the tip changed. */
  notifyNewTip(): void {
    if (this.running) this.requestFetch({ reason: 'notify', emitSameTip: false });
  }

  /**
   * One of our blocks was just taken by the node: fetch the next template now. A getblocktemplate that raced
   * the block's connection returns Core's cached template on the old tip; until a template builds on `hash`
   * (or a few quick tries pass), ask again.
   */
  expectTip(hash: string): void {
    if (this.running) this.requestFetch({ reason: 'notify', emitSameTip: false, expectTip: { hash, triesLeft: EXPECT_TIP_TRIES } });
  }

  /** Aborts long polls and timers; resolves when every loop has ended. Safe to call twice. */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    clearTimeout(this.refreshTimer);
    clearTimeout(this.graceTimer);
    this.settleStart?.(new Error('template source stopped before the first template'));
    this.wanted = undefined;
    const notifier = this.notifier;
    this.notifier = undefined;
    notifier?.removeAllListeners();
    await Promise.all([this.fetchLoop, this.pollLoop, this.longpollLoop, notifier?.close()]);
    this.starting = undefined;
  }

  private useNotifier(n: TipNotifier): void {
    this.notifier = n;
    n.on('hashblock', (hash) => {
      if (!this.running) return;
      this.noteNodeTip(hash, 'zmq');
      if (hash !== this.template?.previousblockhash) this.requestFetch({ reason: 'zmq', emitSameTip: false, confirmedTip: hash });
    });
    n.on('health', (healthy) => {
      if (healthy) this.zmqEverHealthy = true;
      this.safeEmit(() => this.emit('status', this.status));
      // While ZMQ is healthy the long poll loop sends no new request; when it is not, long polls resume.
      if (!healthy) this.kickLongpoll();
    });
    n.start();
  }

  /** Asks the node for its ZMQ hashblock publisher (once the node answers), unless one is configured. */
  private discoverZmq(): void {
    if (this.notifier || this.discovering || this.zmqOpts.discover === false || !this.node.getZmqNotifications) return;
    this.discovering = true;
    this.node.getZmqNotifications().then((list) => {
      const pub = list.find((n) => n.type === 'pubhashblock');
      if (!this.running || this.notifier) return;
      if (!pub) {
        this.logger?.info('the node publishes no hashblock over ZMQ (-zmqpubhashblock): using long polls and polling');
        return;
      }
      this.useNotifier(new ZmqTipListener(pub.address, { logger: this.logger, heartbeatMs: this.zmqOpts.heartbeatMs }));
    }, (err: unknown) => {
      // Asked again when the node recovers from a failure.
      this.logger?.debug({ err: (err as Error).message }, 'getzmqnotifications failed');
    }).finally(() => {
      this.discovering = false;
      this.kickLongpoll(); // no ZMQ after all (or not yet): long polls need not wait for it
    });
  }

  /** Records the node's best block; a change is announced at once (jobs on other tips are stale). */
  private noteNodeTip(hash: string, source: TipSource): void {
    if (hash === this.nodeTip) return;
    this.nodeTip = hash;
    if (this.template === undefined) return; // nothing to be stale yet
    this.logger?.info({ hash, source }, 'node has a new tip');
    this.safeEmit(() => this.emit('tip', hash, source));
  }

  private requestFetch(req: FetchRequest): void {
    this.mergeWanted(req);
    this.kickFetches();
  }

  /** Several reasons to fetch make one fetch; it emits if any of them wanted a same-tip emit. */
  private mergeWanted(req: FetchRequest): void {
    const prev = this.wanted;
    this.wanted = prev
      ? {
          reason: prev.reason === 'refresh' ? req.reason : prev.reason,
          emitSameTip: prev.emitSameTip || req.emitSameTip,
          confirmedTip: req.confirmedTip ?? prev.confirmedTip,
          expectTip: req.expectTip ?? prev.expectTip,
        }
      : req;
  }

  private kickFetches(): void {
    if (this.fetchLoop || !this.running) return;
    this.fetchLoop = this.guard('fetch', () => this.runFetches()).finally(() => {
      this.fetchLoop = undefined;
      // A request may have landed between the loop's last check and now.
      if (this.wanted) this.kickFetches();
    });
  }

  private kickLongpoll(): void {
    if (this.longpollLoop || !this.running || !this.useLongpoll || this.template?.longpollid === undefined) return;
    if (this.zmqHealthy) return;
    // ZMQ being found or connecting at start: give it a moment before a long poll goes out (polling covers it).
    const connecting = this.discovering || (this.notifier !== undefined && !this.zmqEverHealthy);
    const wait = this.zmqGraceUntil - this.now();
    if (connecting && wait > 0) {
      clearTimeout(this.graceTimer);
      this.graceTimer = setTimeout(() => this.kickLongpoll(), wait);
      return;
    }
    this.longpollLoop = this.guard('longpoll', () => this.runLongpoll()).finally(() => {
      this.longpollLoop = undefined;
      this.kickLongpoll();
    });
  }

  /** Serves fetch requests one at a time; requests arriving meanwhile merge into one more fetch. */
  private async runFetches(): Promise<void> {
    while (this.running && this.wanted) {
      const req = this.wanted;
      this.wanted = undefined;
      const signal = this.abort.signal;
      try {
        const t = await this.node.getBlockTemplate(undefined, signal);
        if (!this.running) return;
        this.markOk();
        this.accept(t, req);
        const want = req.expectTip;
        if (want && t.previousblockhash !== want.hash && want.triesLeft > 1 && this.template?.previousblockhash !== want.hash) {
          this.mergeWanted({ reason: req.reason, emitSameTip: false, expectTip: { hash: want.hash, triesLeft: want.triesLeft - 1 } });
          await delay(EXPECT_TIP_RETRY_MS, signal);
        }
      } catch (err) {
        if (signal.aborted) return;
        this.markFailed(err);
        // Retry the same request (merged with any newer one) after the back-off.
        this.mergeWanted(req);
        await delay(this.backoff(), signal);
      }
    }
  }

  private async runPoll(): Promise<void> {
    const signal = this.abort.signal;
    while (this.running) {
      await delay(this.ok === false ? this.backoff() : this.pollMs, signal);
      if (!this.running) return;
      try {
        const best = await this.node.getBestBlockHash(signal);
        if (!this.running) return;
        this.noteNodeTip(best, 'poll');
        if (this.ok === false) {
          // The node answers again: a template fetch decides whether we are healthy (and refreshes work
          // that may have aged during the outage).
          this.requestFetch({ reason: 'recovery', emitSameTip: true, confirmedTip: best });
        } else if (this.template && best !== this.template.previousblockhash) {
          this.requestFetch({ reason: 'poll', emitSameTip: false, confirmedTip: best });
        }
      } catch (err) {
        if (signal.aborted) return;
        this.markFailed(err);
      }
    }
  }

  private async runLongpoll(): Promise<void> {
    const signal = this.abort.signal;
    while (this.running) {
      // ZMQ tells new tips: no long poll is sent while it is healthy (restarted when it stops being so).
      if (this.zmqHealthy) return;
      const sent = this.template?.longpollid;
      if (sent === undefined) return; // restarted by accept() when a template offers long polling again
      try {
        const t = await this.node.getBlockTemplate(sent, signal);
        if (!this.running) return;
        this.markOk();
        // Same-tip answers are new work only when the node's longpollid moved (mempool changed).
        this.accept(t, { reason: 'longpoll', emitSameTip: t.longpollid !== this.template?.longpollid });
        // A node that answers at once with an unchanged id does not hold long polls: don't spin on it.
        if (t.longpollid === sent) await delay(this.pollMs, signal);
      } catch (err) {
        if (signal.aborted) return;
        this.markFailed(err);
        await delay(this.backoff(), signal);
      }
    }
  }

  private accept(t: BlockTemplate, req: FetchRequest): void {
    const prev = this.template;
    const newTip = !prev || t.previousblockhash !== prev.previousblockhash;
    if (newTip && prev && t.height < prev.height && t.previousblockhash !== req.confirmedTip) {
      // An answer that left the node before the current tip arrived (e.g. a slow refresh overtaken by a
      // long poll): going back would hand miners stale work. A real reorg to a lower height is confirmed
      // by getbestblockhash on the next poll.
      this.logger?.debug({ height: t.height, current: prev.height }, 'ignoring template older than current');
      return;
    }
    if (!newTip && !req.emitSameTip) return;
    this.template = t;
    this.nodeTip = t.previousblockhash;
    this.receivedAt = this.now();
    this.armRefresh();
    if (newTip) this.logger?.info({ height: t.height, prev: t.previousblockhash, reason: req.reason }, 'new tip');
    const meta: TemplateMeta = { newTip, reason: req.reason, receivedAt: this.receivedAt };
    this.safeEmit(() => this.emit('template', t, meta));
    this.settleStart?.(null);
    this.kickLongpoll();
  }

  private armRefresh(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      if (this.running) this.requestFetch({ reason: 'refresh', emitSameTip: true });
    }, this.refreshMs);
  }

  private markOk(): void {
    this.failures = 0;
    if (this.ok === true) return;
    const wasFailing = this.ok === false;
    this.ok = true;
    this.lastError = undefined;
    if (wasFailing) this.logger?.info('node answers again; templates are fresh');
    this.safeEmit(() => this.emit('status', this.status));
    this.discoverZmq();
  }

  private markFailed(err: unknown): void {
    this.failures++;
    this.lastError = err instanceof Error ? err.message : String(err);
    if (this.ok === false) return; // logged and emitted at the transition already
    this.ok = false;
    this.logger?.warn({ err: this.lastError }, 'node failing; keeping the last template and retrying');
    this.safeEmit(() => this.emit('status', this.status));
  }

  private backoff(): number {
    return Math.min(this.backoffMinMs * 2 ** Math.max(0, this.failures - 1), this.backoffMaxMs);
  }

  /** A listener's exception must not look like a node failure or kill a loop. */
  private safeEmit(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger?.error({ err }, 'template source listener threw');
    }
  }

  /** Loops never reject: an unexpected error is logged, reported as a failure, and the loop ends. */
  private guard(name: string, loop: () => Promise<void>): Promise<void> {
    return loop().catch((err: unknown) => {
      this.logger?.error({ err, loop: name }, 'template source loop crashed');
      this.markFailed(err);
    });
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (callers check `running` afterwards). */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
