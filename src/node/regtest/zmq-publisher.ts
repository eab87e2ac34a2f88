// `-zmqpubhashblock` for the embedded chain, byte for byte as Bitcoin Core publishes it
// (src/zmq/zmqpublishnotifier.cpp): a three-part message "hashblock" ‖ the 32-byte block hash in display
// (reversed) order ‖ a 4-byte little-endian sequence number, counting from 0 per publisher, sent once per new
// tip (src/zmq/zmqnotificationinterface.cpp UpdatedBlockTip: not when blocks were only disconnected).

import { Publisher } from 'zeromq';
import { ChainDataError } from './block-file.ts';

/** Core's default outbound high water mark (-zmqpubhashblockhwm). */
export const DEFAULT_ZMQ_HWM = 1000;

export class HashBlockPublisher {
  private sequence = 0;
  private sending: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(private readonly socket: Publisher, readonly address: string, readonly hwm: number) {}

  /** Binds `address` (tcp://host:port; port 0 or * picks a free one: `address` then holds the real one). */
  static async bind(address: string, hwm = DEFAULT_ZMQ_HWM): Promise<HashBlockPublisher> {
    const socket = new Publisher({ sendHighWaterMark: hwm, linger: 0 });
    const wanted = address.replace(/:0$/, ':*');
    try {
      await socket.bind(wanted);
    } catch (err) {
      socket.close();
      throw new ChainDataError(`embedded chain: cannot publish ZMQ on ${address} (${(err as Error).message})`, 'choose another address or port for it');
    }
    return new HashBlockPublisher(socket, socket.lastEndpoint ?? address, hwm);
  }

  /** Queues one hashblock message (a ZMQ socket takes one send at a time; a publisher never blocks on it). */
  publish(hashHex: string): void {
    if (this.closed) return;
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(this.sequence >>> 0);
    this.sequence++;
    const parts = [Buffer.from('hashblock'), Buffer.from(hashHex, 'hex'), seq];
    this.sending = this.sending.then(() => (this.closed ? undefined : this.socket.send(parts))).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.sending;
    this.closed = true;
    this.socket.close();
  }
}
