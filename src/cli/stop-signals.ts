/** What a stop signal asks for: a graceful stop, nothing new (the same one delivered twice), or stop at once. */
export type StopRequest = 'stop' | 'repeat' | 'now';

/** Two deliveries of one signal arrive within milliseconds; an operator's second Ctrl-C comes later. */
export const REPEAT_MS = 1000;

/**
 * Counts stop signals, taking one signal delivered twice for one stop. A signal to the whole process group
 * (systemd's default KillMode, `timeout`, Ctrl-C in a terminal) reaches the pool directly and again through the
 * wrapper that started it (`npm start` runs tsx, which relays signals to its child): that is one stop, not the
 * operator's second ("stop now"). The same signal again within REPEAT_MS is such a repeat.
 */
export class StopSignals {
  private first: { signal: string; at: number } | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  next(signal: string): StopRequest {
    const at = this.now();
    if (!this.first) {
      this.first = { signal, at };
      return 'stop';
    }
    return signal === this.first.signal && at - this.first.at < REPEAT_MS ? 'repeat' : 'now';
  }
}
