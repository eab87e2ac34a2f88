import { EventEmitter } from 'node:events';

/** What a StratumSession uses of a net.Socket, in memory: lines written are kept in `out`. */
export class FakeSocket extends EventEmitter {
  remoteAddress = '127.0.0.1'; destroyed = false; writableLength = 0; out: string[] = []; paused = false;
  write(s: string | Buffer, cb?: () => void) { this.out.push(s.toString()); cb?.(); return true; }
  cork() {} uncork() {} pause() { this.paused = true; } resume() { this.paused = false; } isPaused() { return this.paused; } end() {} destroy() { this.destroyed = true; }
}
