// getblocktemplate replies read on a worker thread. Reading a 3,000-transaction template (1.6 MB of JSON: decode,
// parse, check, 3,000 txids to a merkle branch, the transactions' hex to block bytes) is about 20 ms of work,
// which on the event loop is one turn that every share answer waits behind: the pool's latency spike at each
// template refresh. On the thread the loop only copies the reply into a buffer both threads share and takes back
// the template with its transactions already prepared (their bytes handed over, not copied).
//
// The thread runs at the process's priority. At nice +10 it gave the share path a little more of a shared core
// (task wait p99 4.7-6.6 against 7.5-8.2 ms with a busy loop), but under a saturated loop it got a tenth of the core
// and a new tip's template came 300-400 ms later (a 12.7 MB reply missed its deadline): miners would hash on the
// old tip meanwhile. A template on a new tip is worth more than a few milliseconds of answers.
//
// Nothing depends on the thread: if it cannot start, dies, or does not answer within READ_DEADLINE_MS, the
// reply is read on the event loop with the same code (template-reply.ts), so a template is never lost to it.

import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { type TemplateReading, readTemplateReply } from './template-reply.ts';
import type { BlockTemplate } from './types.ts';

/** A thread that has not answered a read this long after it took it is stopped and the reply read on the event
 *  loop (default). A 3,000-transaction template takes ~20 ms; a 4 MB block's ~10 MB of JSON a few hundred. */
export const READ_DEADLINE_MS = 3_000;
/** …and a thread gets this much more for its first read, to start (load and compile its modules). */
export const START_ALLOWANCE_MS = 10_000;
/** Consecutive failures after which the thread is not started again (one warning, then the event loop reads). */
const MAX_FAILURES = 3;
/** A shared buffer grown past this for one large reply is not kept for the next. */
const KEEP_SHARED_BYTES = 16 << 20;

interface WorkerRequest { id: number; status: number; shared: SharedArrayBuffer; size: number }
interface WorkerReply { id: number; reading: TemplateReading }
interface Pending { id: number; worker: Worker; resolve: (r: TemplateReading) => void; reject: (e: Error) => void }

export class TemplateThread {
  private worker: Worker | null = null;
  /** Whether `worker` has started (then only READ_DEADLINE_MS applies to a read). */
  private online = false;
  private shared = new SharedArrayBuffer(0);
  /** Reads run one at a time: the shared buffer holds one reply. */
  private line: Promise<unknown> = Promise.resolve();
  private pending: Pending | null = null;
  private nextId = 1;
  private failures = 0;
  private closed = false;
  /** Replies read on the thread, and on the event loop because the thread failed (for tests and metrics). */
  readonly stats = { threaded: 0, fallback: 0 };

  private readonly deadlineMs: number;
  private readonly startAllowanceMs: number;

  constructor(private readonly logger?: Logger, opts: { deadlineMs?: number; startAllowanceMs?: number } = {}) {
    this.deadlineMs = opts.deadlineMs ?? READ_DEADLINE_MS;
    this.startAllowanceMs = opts.startAllowanceMs ?? START_ALLOWANCE_MS;
  }

  /** The reply (status and body chunks, `size` bytes in all) as a checked template with prepared transactions. */
  read(status: number, chunks: readonly Uint8Array[], size: number): Promise<TemplateReading> {
    const run = this.line.then(() => this.readNow(status, chunks, size));
    this.line = run.catch(() => undefined);
    return run;
  }

  /** Stops the thread; a read under way, and later ones, run on the event loop. */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    if (!w) return;
    this.settle(w, new Error('the template thread was closed'));
    await this.stop(w);
  }

  private async readNow(status: number, chunks: readonly Uint8Array[], size: number): Promise<TemplateReading> {
    const worker = this.closed || this.failures >= MAX_FAILURES ? null : this.start();
    if (!worker) return this.onLoop(status, chunks);
    try {
      if (this.shared.byteLength < size) this.shared = new SharedArrayBuffer(Math.max(size + (size >> 2), 2 * this.shared.byteLength, 1 << 20));
      const view = new Uint8Array(this.shared);
      let off = 0;
      for (const c of chunks) {
        view.set(c, off);
        off += c.byteLength;
      }
      const reading = await this.ask(worker, { id: this.nextId++, status, shared: this.shared, size: off });
      if (this.shared.byteLength > KEEP_SHARED_BYTES) this.shared = new SharedArrayBuffer(0);
      this.failures = 0;
      this.stats.threaded++;
      return reading;
    } catch (err) {
      void this.stop(worker);
      // A stopped thread may still have been reading the shared buffer: the next read gets a new one.
      this.shared = new SharedArrayBuffer(0);
      if (!this.closed) {
        this.failures++;
        const last = this.failures >= MAX_FAILURES ? '; templates are read on the event loop from now on' : '';
        this.logger?.warn({ err: (err as Error).message }, `template thread failed: this template is read on the event loop${last}`);
      }
      return this.onLoop(status, chunks);
    }
  }

  private onLoop(status: number, chunks: readonly Uint8Array[]): TemplateReading {
    this.stats.fallback++;
    return readTemplateReply(status, Buffer.concat(chunks), true);
  }

  private start(): Worker | null {
    if (this.worker) return this.worker;
    let w: Worker;
    try {
      w = workerFor(import.meta.url);
    } catch (err) {
      this.failures = MAX_FAILURES;
      this.logger?.warn({ err: (err as Error).message }, 'cannot start the template thread; templates are read on the event loop');
      return null;
    }
    w.unref(); // it never keeps the process alive: a read in flight refs it (ask)
    w.on('message', (m: WorkerReply) => {
      const p = this.pending;
      if (!p || p.worker !== w || p.id !== m.id) return;
      this.pending = null;
      p.resolve(fromWorker(m.reading));
    });
    w.on('error', (err) => this.settle(w, new Error(`template thread error: ${err.message}`)));
    // An answer this thread cannot take (it failed to deserialize) fails the read at once, not at its deadline.
    w.on('messageerror', (err) => this.settle(w, new Error(`template thread answer unreadable: ${err.message}`)));
    w.on('exit', (code) => this.settle(w, new Error(`template thread exited (code ${code})`)));
    w.once('online', () => {
      if (this.worker === w) this.online = true;
      this.logger?.debug('template thread started');
    });
    this.worker = w;
    this.online = false;
    return w;
  }

  /** `w` failed: its read under way (if any; never another thread's) fails over to the event loop. */
  private settle(w: Worker, err: Error): void {
    if (this.worker === w) this.worker = null;
    const p = this.pending;
    if (!p || p.worker !== w) return;
    this.pending = null;
    p.reject(err);
  }

  private ask(worker: Worker, req: WorkerRequest): Promise<TemplateReading> {
    return new Promise<TemplateReading>((resolve, reject) => {
      const ms = this.deadlineMs + (this.online ? 0 : this.startAllowanceMs);
      const timer = setTimeout(() => {
        if (this.pending?.id === req.id) this.pending = null;
        reject(new Error(`no answer from the template thread within ${ms} ms`));
      }, ms);
      const done = () => { clearTimeout(timer); worker.unref(); };
      this.pending = {
        id: req.id,
        worker,
        resolve: (r) => { done(); resolve(r); },
        reject: (e) => { done(); reject(e); },
      };
      worker.ref();
      try {
        worker.postMessage(req);
      } catch (err) {
        this.pending = null;
        done();
        reject(err as Error);
      }
    });
  }

  /** Stops `w` for good: its late events (an 'error' while terminating) change nothing. */
  private stop(w: Worker): Promise<void> {
    if (this.worker === w) this.worker = null;
    const already = this.stopping.get(w);
    if (already) return already; // (removing listeners again would drop the first terminate()'s 'exit' listener)
    w.removeAllListeners('message');
    w.removeAllListeners('messageerror');
    w.removeAllListeners('exit');
    w.removeAllListeners('error');
    w.on('error', () => undefined); // an 'error' with no listener would be thrown on this thread
    w.ref(); // until it has exited: the exit of an unref'd thread would not keep the process up for close()
    const stopped = w.terminate().then(() => undefined, () => undefined);
    this.stopping.set(w, stopped);
    return stopped;
  }

  private readonly stopping = new WeakMap<Worker, Promise<void>>();
}

/**
 * The thread's young generation: V8 grows it to 32 MB for a thread that parses a 1.6 MB template now and then,
 * which (with the old generation it promotes into) was ~60 MB of RSS beside the pool's own heap; at 4 MB it is
 * about half of that, for the same CPU per template (measured: 52-56 ms against 57-61 ms, both threads on one core).
 */
const resourceLimits = { maxYoungGenerationSizeMb: 4 };
/** None of the process's own Node options: the thread needs none, and some are refused in a worker (--input-type). */
const execArgv: string[] = [];

/**
 * The worker is this file's sibling in the same form: template-worker.js in dist/, or template-worker.ts run
 * from the sources (npm start, tests), where the thread needs tsx's loader too: a worker does not inherit the
 * loader tsx gave this thread, so it registers it before importing the worker module.
 */
function workerFor(here: string): Worker {
  if (!here.endsWith('.ts')) return new Worker(new URL('./template-worker.js', here), { resourceLimits, execArgv });
  const api = import.meta.resolve('tsx/esm/api');
  const worker = new URL('./template-worker.ts', here).href;
  return new Worker(`import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(worker)}); })`, { eval: true, resourceLimits, execArgv });
}

/** Structured cloning turns Buffers into Uint8Arrays: the prepared bytes and branch are Buffers again. */
function fromWorker(r: TemplateReading): TemplateReading {
  if (!r.ok) return r;
  const t: BlockTemplate = r.template;
  const p = t.prepared;
  if (p) {
    const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    t.prepared = { ...p, bytes: asBuffer(p.bytes), branch: p.branch.map(asBuffer) };
  }
  return r;
}
