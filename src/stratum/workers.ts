import { InternedStrings } from '../shares/interned.ts';
import type { AuthorizedWorker } from './session.ts';

/**
 * The workers authorized on one connection, by name, in the order they were first authorized (as a Map). Almost
 * every connection is one machine with one worker, held in a field: a Map for it cost about 240 bytes of heap
 * per connection (the Map and its smallest table). A proxy's further workers go into a Map made for them.
 */
export class AuthorizedWorkers {
  private one: AuthorizedWorker | null = null;
  private more: Map<string, AuthorizedWorker> | null = null;

  get size(): number {
    return this.one === null ? 0 : 1 + (this.more?.size ?? 0);
  }

  /** The first worker authorized (the machine's own name); undefined before any. */
  get first(): AuthorizedWorker | undefined {
    return this.one ?? undefined;
  }

  get(name: string): AuthorizedWorker | undefined {
    if (this.one !== null && this.one.name === name) return this.one;
    return this.more?.get(name);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Adds or replaces `w` under its name; a replaced worker keeps its place. */
  set(w: AuthorizedWorker): void {
    if (this.one === null || this.one.name === w.name) this.one = w;
    else (this.more ??= new Map()).set(w.name, w);
  }

  *values(): IterableIterator<AuthorizedWorker> {
    if (this.one !== null) yield this.one;
    if (this.more !== null) yield* this.more.values();
  }
}

/**
 * One copy of a string many connections share (an account's name, a firmware's user agent) instead of one per
 * connection: a farm's thousands of machines all send the same two (see InternedStrings).
 */
export const interned = new InternedStrings(4096).get;

/**
 * One copy of a peer address many connections share: a farm's machines behind one NAT all come from the same
 * address, and the bench's 10,000 connections from 127.0.0.1 (a copy each was 32 bytes of every connection's heap).
 * Its own table, so that thousands of distinct addresses do not push the accounts out of `interned`'s.
 */
export const internedAddress = new InternedStrings(1024).get;
