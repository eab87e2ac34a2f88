// Newline framing for Stratum V1 (JSON-RPC, one message per '\n'-terminated line), as a push parser with a
// line cap: a pool that never sends '\n' must not make the miner buffer without bound.

export class LineTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`line exceeds ${limit} bytes without a newline`);
  }
}

export class LineSplitter {
  private parts: Buffer[] = [];
  private partsLength = 0;

  constructor(private readonly maxLineLength: number) {
    if (!(maxLineLength > 0)) throw new Error(`maxLineLength must be positive, got ${maxLineLength}`);
  }

  /**
   * Feed bytes; returns the complete lines they finish (without '\n' or a trailing '\r'; empty lines skipped).
   * Throws LineTooLongError once the unfinished line passes the cap; the splitter is unusable after that.
   */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      let line: Buffer = chunk.subarray(start, nl);
      if (this.partsLength > 0) {
        line = Buffer.concat([...this.parts, line]);
        this.parts = [];
        this.partsLength = 0;
      }
      if (line.length > this.maxLineLength) throw new LineTooLongError(this.maxLineLength);
      const end = line.length > 0 && line[line.length - 1] === 13 ? line.length - 1 : line.length;
      if (end > 0) lines.push(line.toString('utf8', 0, end));
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.partsLength += rest.length;
      if (this.partsLength > this.maxLineLength) throw new LineTooLongError(this.maxLineLength);
      // Copy: the socket may reuse its chunk buffer after this call returns.
      this.parts.push(Buffer.from(rest));
    }
    return lines;
  }

  /** Bytes held for an unfinished line. */
  get buffered(): number {
    return this.partsLength;
  }
}
