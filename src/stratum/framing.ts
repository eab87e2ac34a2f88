// Newline-delimited JSON framing as a push parser with a hard line cap. Bytes arrive in any split; a line
// longer than the cap is an error (and the connection is dropped), never an unbounded buffer.

export class LineTooLongError extends Error {
  constructor(readonly limit: number) { super(`line exceeds ${limit} bytes`); }
}

export class LineFramer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failed = false;
  /** Set by hold(): the rest of the current chunk waits in `held` until release(). */
  private holding = false;
  private held: Buffer | null = null;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onError: (err: LineTooLongError) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    if (this.holding) {
      // Data that arrived while holding queues behind what is held (copied: the socket may reuse its buffer).
      this.held = this.held ? Buffer.concat([this.held, chunk]) : Buffer.from(chunk);
      return;
    }
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const lineBytes = this.pendingBytes + (nl - start);
      if (lineBytes > this.maxLineBytes) return this.fail();
      let line: string;
      if (this.pendingBytes === 0) {
        line = chunk.toString('utf8', start, nl);
      } else {
        this.pending.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.pending, lineBytes).toString('utf8');
        this.pending = [];
        this.pendingBytes = 0;
      }
      start = nl + 1;
      if (line.length > 0 && line.charCodeAt(line.length - 1) === 0x0d) line = line.slice(0, -1);
      if (line.trim().length > 0) this.onLine(line);
      if (this.failed) return;
      if (this.holding) {
        if (start < chunk.length) this.held = Buffer.from(chunk.subarray(start));
        return;
      }
    }
    if (start < chunk.length) {
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > this.maxLineBytes) return this.fail();
      // Copy: the socket may reuse its buffer.
      this.pending.push(Buffer.from(chunk.subarray(start)));
    }
  }

  /**
   * Stop delivering lines after the current one (called from onLine): the rest of the chunk is kept, in order,
   * until release(). Lets a connection that sent many lines at once yield the event loop between batches.
   */
  hold(): void { this.holding = true; }

  get isHolding(): boolean { return this.holding; }

  /** Deliver what was held (it may hold again partway). */
  release(): void {
    if (!this.holding) return;
    this.holding = false;
    const rest = this.held;
    this.held = null;
    if (rest) this.push(rest);
  }

  /** Stop delivering lines (e.g. after the session decided to close). */
  stop(): void { this.failed = true; this.pending = []; this.pendingBytes = 0; this.held = null; }

  private fail(): void {
    this.stop();
    this.onError(new LineTooLongError(this.maxLineBytes));
  }
}
