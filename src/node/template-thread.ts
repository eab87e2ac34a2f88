// getblocktemplate replies read on a worker thread. Reading a 3,000-transaction template (1.6 MB of JSON: decode,
// parse, check, 3,000 txids to a merkle branch, the transactions' hex to block bytes) is about 20 ms of work,
// which on the event loop is one turn that every share answer waits behind: the pool's latency spike at each
// template refresh. On the thread the loop only copies the reply into a buffer both threads share and takes back
// the template with its transactions already prepared (their bytes handed over, not copied).
//
// Nothing depends on the thread: if it cannot start, dies, or does not answer within READ_DEADLINE_MS, the
// reply is read on the event loop with the same code (template-reply.ts), so a template is never lost to it.

import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { type TemplateReading, readTemplateReply } from './template-reply.ts';
import type { BlockTemplate } from './types.ts';

/** A thread that has not answered a read by then is stopped and the reply read on the event loop (default). */
export const READ_DEADLINE_MS = 10_000;
/** Consecutive failures after which the thread is not started again (one warning, then the event loop reads). */
const MAX_FAILURES = 3;

interface WorkerRequest { id: number; status: number; shared: SharedArrayBuffer; size: number }
interface WorkerReply { id: number; reading: TemplateReading }

export class TemplateThread {
  private worker: Worker | null = null;
  private shared = new SharedArrayBuffer(0);
  /** Reads run one at a time: the shared buffer holds one reply. */
  private line: Promise<unknown> = Promise.resolve();
  private pending: { id: number; resolve: (r: TemplateReading) => void; reject: (e: Error) => void } | null = null;
  private nextId = 1;
  private failures = 0;
  private closed = false;
  /** Replies read on the thread, and on the event loop because the thread failed (for tests and metrics). */
  readonly stats = { threaded: 0, fallback: 0 };

  private readonly deadlineMs: number;

  constructor(private readonly logger?: Logger, opts: { deadlineMs?: number } = {}) {
    this.deadlineMs = opts.deadlineMs ?? READ_DEADLINE_MS;
  }

  /** The reply (status and body chunks, `size` bytes in all) as a checked template with prepared transactions. */
  read(status: number, chunks: readonly Uint8Array[], size: number): Promise<TemplateReading> {
    const run = this.line.then(() => this.readNow(status, chunks, size));
    this.line = run.catch(() => undefined);
    return run;
  }

  /** Stops the thread; later reads run on the event loop. */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private async readNow(status: number, chunks: readonly Uint8Array[], size: number): Promise<TemplateReading> {
    const worker = this.closed || this.failures >= MAX_FAILURES ? null : this.start();
    if (!worker) return this.onLoop(status, chunks);
    if (this.shared.byteLength < size) this.shared = new SharedArrayBuffer(Math.max(size + (size >> 2), 2 * this.shared.byteLength, 1 << 20));
    const view = new Uint8Array(this.shared);
    let off = 0;
    for (const c of chunks) {
      view.set(c, off);
      off += c.byteLength;
    }
    try {
      const reading = await this.ask(worker, { id: this.nextId++, status, shared: this.shared, size: off });
      this.failures = 0;
      this.stats.threaded++;
      return reading;
    } catch (err) {
      this.failures++;
      this.stop(worker);
      // A stopped thread may still have been reading the shared buffer: the next read gets a new one.
      this.shared = new SharedArrayBuffer(0);
      const last = this.failures >= MAX_FAILURES ? '; templates are read on the event loop from now on' : '';
      this.logger?.warn({ err: (err as Error).message }, `template thread failed: this template is read on the event loop${last}`);
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
      if (!p || p.id !== m.id) return;
      this.pending = null;
      p.resolve(fromWorker(m.reading));
    });
    const died = (why: string) => {
      if (this.worker === w) this.worker = null;
      const p = this.pending;
      this.pending = null;
      p?.reject(new Error(why));
    };
    w.on('error', (err) => died(`template thread error: ${err.message}`));
    w.on('exit', (code) => died(`template thread exited (code ${code})`));
    w.once('online', () => this.logger?.debug('template thread started'));
    this.worker = w;
    return w;
  }

  private ask(worker: Worker, req: WorkerRequest): Promise<TemplateReading> {
    return new Promise<TemplateReading>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = null;
        reject(new Error(`no answer from the template thread within ${this.deadlineMs} ms`));
      }, this.deadlineMs);
      const done = () => { clearTimeout(timer); worker.unref(); };
      this.pending = {
        id: req.id,
        resolve: (r) => { done(); resolve(r); },
        reject: (e) => { done(); reject(e); },
      };
      worker.ref();
      worker.postMessage(req);
    });
  }

  private stop(worker: Worker): void {
    if (this.worker === worker) this.worker = null;
    worker.removeAllListeners('exit');
    void worker.terminate().catch(() => undefined);
  }
}

/**
 * The worker is this file's sibling in the same form: template-worker.js in dist/, or template-worker.ts run
 * from the sources (npm start, tests), where the thread needs tsx's loader too: a worker does not inherit the
 * loader tsx gave this thread, so it registers it before importing the worker module.
 */
function workerFor(here: string): Worker {
  if (!here.endsWith('.ts')) return new Worker(new URL('./template-worker.js', here));
  const api = import.meta.resolve('tsx/esm/api');
  const worker = new URL('./template-worker.ts', here).href;
  return new Worker(`import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(worker)}); })`, { eval: true });
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
