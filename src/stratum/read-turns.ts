import { performance } from 'node:perf_hooks';

/** A connection that can be told to go on reading (StratumSession). */
export interface TurnWaiter {
  resumeReads(): void;
}

/**
 * A time budget for handling miners' lines, shared by every connection of a server, per phase of an event-loop turn.
 *
 * Each connection already yields after LINES_PER_TURN lines, but past saturation a thousand busy connections each
 * handling their share make a turn of seconds: timers, new-tip broadcasts and every other connection wait behind
 * it. With this budget the pool reads less instead. Once the poll phase (socket reads) has spent `budgetMs` on
 * lines, a connection that has more to say keeps its bytes unparsed and waits in a FIFO (past a few KB it stops
 * being read, so TCP pushes back on the miner: see StratumSession). At the end of the turn (setImmediate, after
 * the poll phase) waiting connections are resumed in arrival order for another `budgetMs`, at least one each
 * turn. Nothing is dropped: every line is still read and hashed, in order, just later.
 */
export class ReadTurns {
  private phaseOpen = false;
  private startedAt = 0;
  private endScheduled = false;
  private readonly waiting: (TurnWaiter | undefined)[] = [];
  private head = 0;
  /** Turns that ended with connections still waiting (they went on in a later turn). */
  deferredTurns = 0;

  constructor(
    private readonly budgetMs: number,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** True while the current phase has budget left; the first call of a phase starts its clock. */
  hasBudget(): boolean {
    if (!this.phaseOpen) {
      this.phaseOpen = true;
      this.startedAt = this.clock();
      this.scheduleEnd();
      return true;
    }
    return this.clock() - this.startedAt < this.budgetMs;
  }

  /** Queue a connection that stopped reading; it is resumed at a turn's end, in arrival order. */
  wait(w: TurnWaiter): void {
    this.waiting.push(w);
    this.scheduleEnd();
  }

  get waitingCount(): number { return this.waiting.length - this.head; }

  private scheduleEnd(): void {
    if (this.endScheduled) return;
    this.endScheduled = true;
    setImmediate(this.endTurn);
  }

  private readonly endTurn = (): void => {
    this.endScheduled = false;
    // The waiting connections get a budget of their own: lines they handle now count against it.
    this.phaseOpen = true;
    this.startedAt = this.clock();
    let resumed = 0;
    try {
      while (this.head < this.waiting.length && (resumed++ === 0 || this.clock() - this.startedAt < this.budgetMs)) {
        const w = this.waiting[this.head]!;
        this.waiting[this.head++] = undefined;
        w.resumeReads();
      }
    } finally {
      // The next poll phase starts a budget of its own (also after a throw, so the others still get their turns).
      this.phaseOpen = false;
      if (this.head < this.waiting.length) this.scheduleEnd();
    }
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
      return;
    }
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    this.deferredTurns++;
  };
}
