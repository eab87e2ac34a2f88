// Newline-delimited JSON framing as a push parser with a hard line cap. Bytes arrive in any split; a line
// longer than the cap is an error (and the connection is dropped), never an unbounded buffer.

export class LineTooLongError extends Error {
  constructor(readonly limit: number) { super(`line exceeds ${limit} bytes`); }
}

export class LineFramer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failed = false;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onError: (err: LineTooLongError) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
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
    }
    if (start < chunk.length) {
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > this.maxLineBytes) return this.fail();
      // Copy: the socket may reuse its buffer.
      this.pending.push(Buffer.from(chunk.subarray(start)));
    }
  }

  /** Stop delivering lines (e.g. after the session decided to close). */
  stop(): void { this.failed = true; this.pending = []; this.pendingBytes = 0; }

  private fail(): void {
    this.stop();
    this.onError(new LineTooLongError(this.maxLineBytes));
  }
}
