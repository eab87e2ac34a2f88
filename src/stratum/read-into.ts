import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/**
 * Bytes one read(2) of a miner's socket may return. Every socket reads into one buffer of this size, shared by
 * all of them: the session handles the bytes at once and copies only what it keeps (a partial line, or lines
 * waiting for the connection's turn), so a connection waiting for its turn holds at most this much of a read.
 */
export const READ_BUFFER_BYTES = 4096;

/** One buffer for every socket's reads: a read is handled before the next one starts (one thread). */
const shared = Buffer.allocUnsafe(READ_BUFFER_BYTES);

interface ReadIntoKeys { buffer: symbol; callback: symbol; generator: symbol }
let keys: ReadIntoKeys | null | undefined;

/**
 * Node's own `onread` option of net.Socket (documented for client sockets: a socket reads into a buffer it was
 * given and hands the byte count to a callback, with no new Buffer per read) is not offered for the sockets a
 * net.Server accepts. This sets up the same thing on an accepted socket: the handle's user buffer
 * (StreamBase::UseUserBuffer, what `onread` calls) and the fields Node's read callback looks at, found by their
 * symbols' names. Feature-checked: on a Node whose sockets do not have the three fields (kBuffer, kBufferCb,
 * kBufferGen, all null on a socket built without `onread`) or whose handle lacks useUserBuffer, on a TLS socket (its
 * handle is the TLS layer's), or on a socket that has read or has a reader already, nothing is changed and false
 * is returned; the caller then reads through 'data' as before. Call it as the socket is accepted, before any read.
 *
 * Why: a Buffer per read was an ArrayBuffer with memory of its own, up to 64 KB, for every chunk a miner sent. The
 * young-generation GC sweeps each one it finds, and past saturation a connection waiting for its turn kept its
 * whole last read (25-58 MB of array buffers in three runs with 10k connections at 50k shares/s offered).
 *
 * `onRead` is called with `this` = the socket, the number of bytes read, and the shared buffer, which is
 * overwritten by the next read: it must copy whatever it keeps.
 */
export function readIntoShared(socket: Socket, onRead: (this: Socket, nread: number, buf: Buffer) => void): boolean {
  if (socket instanceof TLSSocket) return false;
  // Bytes Node read already (or a reader of its own) would never reach onRead: such a socket keeps its 'data' path.
  if (socket.readableLength > 0 || socket.listenerCount('data') > 0 || socket.readableEncoding !== null) return false;
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Uint8Array) => void } | null })._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function') return false;
  if (keys === undefined) keys = findKeys(socket);
  if (keys === null) return false;
  const s = socket as unknown as Record<symbol, unknown>;
  // Node's read callback calls the generator when it is not null: it must be null, as the fields are on a socket
  // built without `onread`.
  if (s[keys.buffer] !== null || s[keys.callback] !== null || s[keys.generator] !== null) return false;
  handle.useUserBuffer(shared);
  s[keys.buffer] = shared;
  s[keys.callback] = onRead;
  return true;
}

function findKeys(socket: Socket): ReadIntoKeys | null {
  const own = Object.getOwnPropertySymbols(socket);
  const buffer = own.find((k) => k.description === 'kBuffer');
  const callback = own.find((k) => k.description === 'kBufferCb');
  const generator = own.find((k) => k.description === 'kBufferGen');
  if (!buffer || !callback || !generator) return null;
  return { buffer, callback, generator };
}
