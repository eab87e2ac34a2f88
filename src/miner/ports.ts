// Source ports for a fleet that binds its own source addresses.
//
// Binding a source address with port 0 makes Linux search its ephemeral range for a free port on every
// connect (inet_csk_find_open_port); with thousands of live and TIME_WAIT sockets per address that search made
// 10,000 connects block the event loop for seconds (measured: ~12 s of CPU in net's internalConnect). Naming
// the port ourselves turns bind() into one hash lookup; a port that is taken fails fast with EADDRINUSE and the
// miner simply asks for the next one.

export class LocalPortAllocator {
  private readonly cursors = new Map<string, number>();

  /** Ports [lo, hi] are handed out round-robin per source address. Default 1024..65535 (no root needed). */
  constructor(readonly lo = 1024, readonly hi = 65535) {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
      throw new Error(`bad local port range ${lo}..${hi}`);
    }
  }

  next(localAddress: string): number {
    const span = this.hi - this.lo + 1;
    // Start each address at a random point so successive runs do not collide with the previous run's TIME_WAIT.
    const cur = this.cursors.get(localAddress) ?? Math.floor(Math.random() * span);
    this.cursors.set(localAddress, (cur + 1) % span);
    return this.lo + cur;
  }
}

/** Errors that mean "this source port is busy", not "the pool is unreachable". */
export function isPortBusy(e: NodeJS.ErrnoException): boolean {
  return e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL';
}
