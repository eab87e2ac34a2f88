import type { Socket } from 'node:net';
import type { Logger } from 'pino';

// Memory held for miners that do not read their sockets, across all connections. Each connection may buffer up
// to maxWriteBufferBytes (1 MiB) before it is closed, but 18,000 of them at once would be 18 GiB: past a global
// cap the slowest readers (the most bytes waiting) are closed until the total is well under it again.
//
// Counted exactly: a line's bytes are added when written to the socket and removed when the socket's write
// callback says they were handed to the kernel (or dropped, when the socket is destroyed).

/** What the budget needs from a session. */
export interface BufferedWriter {
  readonly socket: Socket;
  /** Bytes written by this session that the kernel has not taken yet. */
  pendingWriteBytes: number;
  readonly closed: boolean;
  close(reason: string): void;
}

export interface WriteBudgetStats {
  /** Bytes waiting in user space for slow readers, all connections. */
  bufferedBytes: number;
  /** Connections closed because the total went past the cap. */
  slowReadersClosed: number;
}

export class WriteBudget {
  readonly stats: WriteBudgetStats = { bufferedBytes: 0, slowReadersClosed: 0 };
  private shedding = false;

  /**
   * @param capBytes total across connections; past it the slowest readers are closed.
   * @param sessions the live sessions (read when shedding only).
   */
  constructor(
    private readonly capBytes: number,
    private readonly sessions: () => Iterable<BufferedWriter>,
    private readonly log?: Logger,
  ) {}

  /** Write one line for a session, counting its bytes until the kernel has them. */
  write(session: BufferedWriter, line: string | Buffer): void {
    // Stratum lines are ASCII JSON but for rare fields (user agents, messages): a string's length is close enough and
    // free (a Buffer's is its bytes).
    const n = line.length;
    session.pendingWriteBytes += n;
    this.stats.bufferedBytes += n;
    session.socket.write(line, () => {
      session.pendingWriteBytes -= n;
      this.stats.bufferedBytes -= n;
    });
    if (this.stats.bufferedBytes > this.capBytes && !this.shedding) {
      this.shedding = true;
      // Not from inside a write (a broadcast loop, a submit answer): once the current turn is done.
      setImmediate(() => this.shed());
    }
  }

  /** Close the sessions with the most bytes waiting until the total is at most 3/4 of the cap. */
  private shed(): void {
    this.shedding = false;
    let total = this.stats.bufferedBytes;
    if (total <= this.capBytes) return;
    const target = this.capBytes * 0.75;
    const slow = [...this.sessions()].filter((s) => !s.closed && s.pendingWriteBytes > 0).sort((a, b) => b.pendingWriteBytes - a.pendingWriteBytes);
    let closed = 0;
    let freed = 0;
    for (const s of slow) {
      if (total <= target) break;
      total -= s.pendingWriteBytes;
      freed += s.pendingWriteBytes;
      s.close('peer is not reading (pool-wide write buffer cap reached; slowest readers closed first)');
      // Its data will never be read: drop it now (end() would queue the FIN behind it).
      s.socket.destroy();
      closed++;
    }
    this.stats.slowReadersClosed += closed;
    this.log?.warn({ closed, freedBytes: freed, capBytes: this.capBytes, bufferedBytes: this.stats.bufferedBytes }, 'write buffers for slow readers past the pool-wide cap: closed the slowest connections');
  }
}
