/** Per-IP bans with back-off: each repeat offence doubles the ban, up to a cap; offences are forgotten after a quiet day. */
export class BanList {
  private readonly bans = new Map<string, { until: number; offences: number; last: number }>();

  constructor(private readonly baseMs: number, private readonly maxMs: number) {}

  ban(ip: string, now: number): number {
    const prev = this.bans.get(ip);
    const offences = prev && now - prev.last < 86_400_000 ? prev.offences + 1 : 1;
    const duration = Math.min(this.maxMs, this.baseMs * 2 ** (offences - 1));
    this.bans.set(ip, { until: now + duration, offences, last: now });
    return duration;
  }

  isBanned(ip: string, now: number): boolean {
    const b = this.bans.get(ip);
    return !!b && b.until > now;
  }

  /** Drop expired, forgotten entries (called from the sweeper). */
  sweep(now: number): void {
    for (const [ip, b] of this.bans) if (b.until <= now && now - b.last > 86_400_000) this.bans.delete(ip);
  }

  get size(): number { return this.bans.size; }
}
