/**
 * The accepted shares of one job, for duplicate detection: a set of share header hashes, each kept as 95 of its
 * bits in an open-addressing table of 32-bit words (three per slot), outside the JavaScript heap.
 *
 * Why the header hash identifies a share: the 80-byte header is built from the job and the share's extranonce1,
 * extranonce2, ntime, nonce and version (the extranonces through the coinbase and the merkle root), so the same
 * share resubmitted (in any hex case) has the same header and the same hash, and is always found. Two different
 * shares of one job would have to agree on 95 bits of their SHA-256d for the second to be refused as a duplicate
 * (the miner's loss of one share, never a share credited twice): with a million shares in a job, about one chance
 * in 10^16. The bits are the hash's first twelve bytes in internal order, the least significant ones: the other
 * end of an accepted share's hash is the zeros its difficulty asks for.
 *
 * Why not a Set of strings (the text of the submit's fields, as before): a job keeps its accepted shares until it
 * is pruned (ten minutes by default), hundreds of thousands of them at a large pool, and each string plus its
 * entry was about 90 bytes that the garbage collector traced at every full collection. Here a share costs 24 to
 * 48 bytes (two to four slots: the table is at most half full) in an ArrayBuffer, which the collector does not look
 * into. A new table is small (16 slots, 192 bytes): a SOLO miner's coinbase makes a job of its own per pool job.
 */
export class ShareKeySet {
  /** Slots of three words: the hash's bytes 0-3, 4-7, and 8-11 with the low bit set (0 marks an empty slot). */
  private slots: Uint32Array;
  private mask: number;
  private count = 0;
  /** The latest ntime among the shares recorded (Unix seconds): how long a replay of one could pass (WorkKeySets). */
  maxNtime = 0;

  constructor(initialSlots = 16) {
    let cap = 16;
    while (cap < initialSlots) cap *= 2;
    this.slots = new Uint32Array(cap * 3);
    this.mask = cap - 1;
  }

  get size(): number { return this.count; }

  /** Record a share by its header hash (32 bytes, internal order) and ntime; false if it was recorded before. */
  add(hash: Uint8Array, ntime = 0): boolean {
    if (hash.length < 12) throw new RangeError(`a share key is a header hash, got ${hash.length} bytes`);
    const a = (hash[0] | (hash[1] << 8) | (hash[2] << 16) | (hash[3] << 24)) >>> 0;
    const b = (hash[4] | (hash[5] << 8) | (hash[6] << 16) | (hash[7] << 24)) >>> 0;
    const c = (hash[8] | (hash[9] << 8) | (hash[10] << 16) | (hash[11] << 24) | 1) >>> 0;
    const s = this.slots;
    // The hash's bits are uniform: its low word is the slot index as it is.
    let i = a & this.mask;
    for (;;) {
      const at = i * 3;
      const w = s[at + 2];
      if (w === 0) break;
      if (w === c && s[at] === a && s[at + 1] === b) return false;
      i = (i + 1) & this.mask;
    }
    const at = i * 3;
    s[at] = a; s[at + 1] = b; s[at + 2] = c;
    if (ntime > this.maxNtime) this.maxNtime = ntime;
    // At most half full: probes stay short.
    if (++this.count * 2 > this.mask + 1) this.grow();
    return true;
  }

  private grow(): void {
    const old = this.slots;
    const cap = (this.mask + 1) * 2;
    const s = new Uint32Array(cap * 3);
    const mask = cap - 1;
    for (let at = 0; at < old.length; at += 3) {
      const c = old[at + 2];
      if (c === 0) continue;
      let i = old[at] & mask;
      while (s[i * 3 + 2] !== 0) i = (i + 1) & mask;
      s[i * 3] = old[at]; s[i * 3 + 1] = old[at + 1]; s[i * 3 + 2] = c;
    }
    this.slots = s;
    this.mask = mask;
  }
}

/**
 * The work of a job as far as a share's header goes: its notify fields between the id and ntime (tip, coinbase
 * parts, merkle branch, version, bits), lowercased, without the version. A miner rolls version bits (BIP310, as
 * many as the mask the pool grants), so two jobs that differ only in their version still give a share that rolls
 * them the same header. Keying more jobs together never makes a fresh share a duplicate: only the same header
 * has the same hash.
 */
export function workKeyOf(notifyBody: string): string {
  // `…,"<version>","<bits>","`
  const bitsAt = notifyBody.lastIndexOf('","', notifyBody.length - 4);
  const versionAt = bitsAt > 0 ? notifyBody.lastIndexOf(',"', bitsAt - 1) : -1;
  return (versionAt < 0 ? notifyBody : notifyBody.slice(0, versionAt) + notifyBody.slice(bitsAt + 2)).toLowerCase();
}

/** Key sets kept aside at most (WorkKeySets). */
export const ASIDE_MAX = 256;

/**
 * The key sets of a source's live jobs, one per distinct work (workKeyOf): two such jobs give the same header, and
 * so the same hash, to the same share under either id, and a share keyed per job would be accepted, and credited,
 * once under each. An upstream pool makes them (routed jobs: it re-sends the same work under a new id, or rolls only
 * the version), and so would the template refresh when the node's template has not changed, but JobManager gives
 * each template's job a coinbase nonce of its own (JOB_NONCE_BYTES), so its jobs, and their SOLO variants, are
 * each a work of their own; a job registered with addJob has none.
 *
 * When the last job of a work is forgotten, a job of that work made later (the node back on exactly the same
 * transactions, on the same tip) could take a share recorded before, if that share's ntime is at or past the new
 * job's (a miner may roll ntime up to maxNtimeAheadSec ahead). So the set is kept aside while its latest ntime is
 * at or past the current job's, `now` below, and a job of the same work takes it back; it goes once the current
 * job's ntime has passed it. Shares with the usual ntime (about when they were sent) keep it at most until the next
 * template, a refresh interval. This relies on a later job's ntime being at least the current one's: a template's
 * time is its node's clock, so a node clock stepped back, or a failover to a node whose clock is behind (and back
 * to exactly the same transactions on the same tip after the work was gone for retentionMs), reopens the window
 * by the difference (for the pool's own template jobs the nonce closes it). At most ASIDE_MAX sets are kept aside,
 * the oldest going first: a routed upstream chooses its jobs' ntimes.
 */
export class WorkKeySets {
  private readonly byWork = new Map<string, { keys: ShareKeySet; jobs: number }>();
  /** Sets whose last job is gone but whose shares' ntimes a later job could still take (see above). */
  private readonly aside = new Map<string, ShareKeySet>();

  /** The key set for a job's work (`notifyBody`: the notify's fields between the job id and ntime). */
  acquire(notifyBody: string): ShareKeySet {
    const work = workKeyOf(notifyBody);
    const held = this.byWork.get(work);
    if (held) {
      held.jobs++;
      return held.keys;
    }
    const keys = this.aside.get(work) ?? new ShareKeySet();
    this.aside.delete(work);
    this.byWork.set(work, { keys, jobs: 1 });
    return keys;
  }

  /**
   * A job with this work is forgotten; `now` is the current job's ntime (Unix seconds). With the last of them the
   * set goes, or is kept aside while a share in it has an ntime at or past `now`.
   */
  release(notifyBody: string, now: number): void {
    const work = workKeyOf(notifyBody);
    const held = this.byWork.get(work);
    if (!held || --held.jobs > 0) return;
    this.byWork.delete(work);
    // An empty set has nothing a later job could take.
    if (held.keys.size === 0 || held.keys.maxNtime < now) return;
    this.aside.set(work, held.keys);
    if (this.aside.size > ASIDE_MAX) this.aside.delete(this.aside.keys().next().value as string);
  }

  /** The current job's ntime moved on to `now`: sets kept aside whose shares' ntimes are all before it go. */
  sweep(now: number): void {
    for (const [work, keys] of this.aside) if (keys.maxNtime < now) this.aside.delete(work);
  }

  /** Distinct works held (for tests). */
  get size(): number { return this.byWork.size; }

  /** Sets kept aside (for tests). */
  get asideCount(): number { return this.aside.size; }
}
