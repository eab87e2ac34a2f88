/** Per-IP bans with back-off: each repeat offence doubles the ban, up to a cap; offences are forgotten after a quiet day. */
export class BanList {
  private readonly bans = new Map<string, { until: number; offences: number; last: number }>();
  /** Offences per IP in the current window, before a ban (many miners share one NAT address). */
  private readonly strikes = new Map<string, { count: number; since: number }>();

  /**
   * Count an offence from this IP; true when it reaches `threshold` within `windowMs` (then ban it). One bad
   * device behind a farm's NAT address costs its own connection, not every sibling's ability to reconnect.
   */
  strike(ip: string, now: number, threshold: number, windowMs: number): boolean {
    const s = this.strikes.get(ip);
    const cur = s && now - s.since < windowMs ? { count: s.count + 1, since: s.since } : { count: 1, since: now };
    this.strikes.set(ip, cur);
    if (cur.count < threshold) return false;
    this.strikes.delete(ip);
    return true;
  }

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
    for (const [ip, s] of this.strikes) if (now - s.since > 3_600_000) this.strikes.delete(ip);
  }

  get size(): number { return this.bans.size; }
}
