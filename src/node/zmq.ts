// New tips from Bitcoin Core's ZMQ publisher (`-zmqpubhashblock=tcp://…`, doc/zmq.md): a SUB socket on the
// "hashblock" topic. Each message is three frames: "hashblock" ‖ 32-byte block hash, display (reversed) order ‖
// 4-byte little-endian sequence number (per publisher, from 0 at every bitcoind start).
//
// ZMQ gives no delivery guarantee and a SUB socket cannot tell a quiet publisher from a dead one, so:
// - ZMTP heartbeats (libzmq answers PINGs by itself, bitcoind's included) drop a silent connection;
// - "healthy" means a completed handshake with the publisher and no disconnect since; the template source
//   uses long polls only while ZMQ is not healthy, and keeps polling getbestblockhash regardless, so a lost
//   message (high water mark, a gap in the sequence) costs at most one poll interval.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Subscriber } from 'zeromq';

export interface TipNotifierEvents {
  /** A block hash (display hex) the node announced as its new tip. */
  hashblock: [hash: string];
  /** Connected to the publisher (true) or not (false); emitted on changes only. */
  health: [healthy: boolean];
}

/** What a template source needs from a tip notifier (ZMQ here; a test may bring its own). */
export interface TipNotifier extends EventEmitter<TipNotifierEvents> {
  readonly address: string;
  readonly healthy: boolean;
  start(): void;
  close(): Promise<void>;
}

export interface ZmqTipListenerOptions {
  logger?: Logger;
  /** ZMTP heartbeat interval, ms; a connection silent for 3× this is dropped and retried. Default 2000. */
  heartbeatMs?: number;
  /** Reconnect back-off, ms (doubles up to reconnectMaxMs). Defaults 100 and 5000. */
  reconnectMs?: number;
  reconnectMaxMs?: number;
}

export class ZmqTipListener extends EventEmitter<TipNotifierEvents> implements TipNotifier {
  private socket: Subscriber | null = null;
  private loop: Promise<void> | null = null;
  private isHealthy = false;
  private lastSeq: number | null = null;
  private closed = false;
  private readonly log?: Logger;

  constructor(readonly address: string, private readonly opts: ZmqTipListenerOptions = {}) {
    super();
    this.log = opts.logger;
  }

  get healthy(): boolean {
    return this.isHealthy;
  }

  start(): void {
    if (this.socket || this.closed) return;
    const hb = this.opts.heartbeatMs ?? 2000;
    const socket = new Subscriber({
      heartbeatInterval: hb,
      heartbeatTimeout: hb * 3,
      reconnectInterval: this.opts.reconnectMs ?? 100,
      reconnectMaxInterval: this.opts.reconnectMaxMs ?? 5000,
      linger: 0,
    });
    this.socket = socket;
    socket.events.on('handshake', () => this.setHealthy(true));
    socket.events.on('disconnect', () => this.setHealthy(false));
    socket.events.on('close', () => this.setHealthy(false));
    socket.subscribe('hashblock');
    try {
      socket.connect(this.address);
    } catch (err) {
      // A malformed address: nothing will ever arrive. Polling and long polls carry on.
      this.log?.error({ address: this.address, err: (err as Error).message }, 'ZMQ: cannot connect (check node.zmq)');
      return;
    }
    this.log?.info({ address: this.address }, 'ZMQ: subscribing to hashblock');
    this.loop = this.receive(socket);
  }

  private async receive(socket: Subscriber): Promise<void> {
    try {
      for await (const frames of socket) {
        const [topic, body, seq] = frames;
        if (topic?.toString() !== 'hashblock' || body?.length !== 32) {
          this.log?.warn({ frames: frames.length }, 'ZMQ: ignoring a message that is not a hashblock');
          continue;
        }
        const hash = body.toString('hex');
        if (seq?.length === 4) this.checkSequence(seq.readUInt32LE(0));
        this.emit('hashblock', hash);
      }
    } catch (err) {
      if (!this.closed) this.log?.error({ err: (err as Error).message }, 'ZMQ: receive loop ended');
    }
  }

  /** A gap means missed announcements (the poll fallback covers them); a reset means the node restarted. */
  private checkSequence(seq: number): void {
    const last = this.lastSeq;
    this.lastSeq = seq;
    if (last === null || seq === ((last + 1) >>> 0)) return;
    if (seq < last) this.log?.info({ seq, last }, 'ZMQ: sequence restarted (the node restarted)');
    else this.log?.warn({ missed: seq - last - 1 }, 'ZMQ: missed hashblock notifications');
  }

  private setHealthy(healthy: boolean): void {
    if (this.isHealthy === healthy || (this.closed && healthy)) return;
    this.isHealthy = healthy;
    if (healthy) this.log?.info({ address: this.address }, 'ZMQ: connected; new tips arrive by hashblock');
    else if (!this.closed) this.log?.warn({ address: this.address }, 'ZMQ: disconnected; falling back to long polling');
    this.emit('health', healthy);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.setHealthy(false);
    this.socket?.close();
    await this.loop;
    this.socket = null;
  }
}

