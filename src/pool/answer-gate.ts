import type { Socket } from 'node:net';
import type { ShareLog } from '../shares/events.ts';

/**
 * Holds the answers to accepted shares until the share log has them in its spool. The log writes a turn's
 * share lines with one write(2) at the turn's end, or within the turn once the oldest has waited a millisecond
 * (DurableShareLog.whenSpooled; a socket released then and held again waits for the next write). The answer to a
 * share must not reach the miner before its line is written, or a crash in between would lose a share the miner
 * saw accepted.
 * A held socket is corked: the session writes its answers as usual, Node buffers them, and they leave together
 * (one writev per socket) once the lines are written, in the same turn.
 */
export class AnswerGate {
  private readonly held = new Set<Socket>();
  private readonly release = (written: boolean): void => {
    // Lines that could not be written (a full disk, EIO) are shares held only in memory, lost to a stop or a crash
    // before the database takes them: the answers waiting for them ("accepted") are not sent. The connection is
    // dropped with them (destroy discards what the cork held; nothing else can take an answer back); the miner
    // reconnects and is told the pool cannot record shares (error 20) until the spool takes writes again.
    for (const s of this.held) {
      if (written) s.uncork();
      else s.destroy();
    }
    this.held.clear();
  };

  constructor(private readonly log: Pick<ShareLog, 'whenSpooled'>) {}

  /** Called after a share is appended and before its answer is written. */
  hold(socket: Socket): void {
    if (!this.log.whenSpooled || this.held.has(socket)) return;
    // One callback per flush: sockets held after it was registered are released by the same one.
    if (this.held.size === 0 && !this.log.whenSpooled(this.release)) return;
    socket.cork();
    this.held.add(socket);
  }

  get size(): number {
    return this.held.size;
  }
}
