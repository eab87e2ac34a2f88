import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newToken } from '../src/accounting/accounts.ts';
import { Auth, TOKEN_CACHE_MS } from '../src/api/auth.ts';
import type { Queryable } from '../src/store/db.ts';

// Token lookups are cached for a moment (a page load sends several requests with one token). What that may and
// may not change: a revocation made elsewhere (another process, the CLI) holds for at most TOKEN_CACHE_MS; an
// unknown token is never cached; tokensChanged() (this process's own revoke) forgets at once.

function fakeDb() {
  const state = { revoked: false, queries: 0 };
  const db = {
    async query() {
      state.queries++;
      return { rows: state.revoked ? [] : [{ id: '7', account_id: '3', name: 'alice', role: 'owner' }], rowCount: 0 };
    },
    async exec() {},
  } as unknown as Queryable;
  return { db, state };
}

test('a token looked up once is trusted for TOKEN_CACHE_MS, not longer; this process’s revocation forgets it at once; unknown tokens are not cached', async () => {
  const { db, state } = fakeDb();
  const clock = { now: 1_000_000 };
  const auth = new Auth(db, 'operator-token-of-the-test', () => clock.now);
  const token = newToken('owner');
  const req = { headers: { authorization: `Bearer ${token}` } };
  assert.deepEqual(await auth.principal(req), { role: 'owner', accountId: 3n, account: 'alice', tokenId: 7n });
  assert.deepEqual(await auth.principal(req), { role: 'owner', accountId: 3n, account: 'alice', tokenId: 7n });
  assert.equal(state.queries, 1, 'the second request did not ask the database');

  // Revoked by another process: still trusted until the entry ages out, then refused.
  state.revoked = true;
  clock.now += TOKEN_CACHE_MS - 1;
  assert.equal((await auth.principal(req)).role, 'owner');
  clock.now += 1;
  await assert.rejects(auth.principal(req), /Unknown or revoked token/);
  // Refusals are not cached: the token works again the moment the database says so.
  state.revoked = false;
  assert.equal((await auth.principal(req)).role, 'owner');
  // This process's own revocation: forgotten at once.
  state.revoked = true;
  auth.tokensChanged();
  await assert.rejects(auth.principal(req), /Unknown or revoked token/);
  // The operator token never touches the database.
  const before = state.queries;
  assert.deepEqual(await auth.principal({ headers: { authorization: 'Bearer operator-token-of-the-test' } }), { role: 'operator' });
  assert.equal(state.queries, before);
});

test('a lookup that was in flight when this process revoked the token does not put it back in the cache', async () => {
  // Failed before: the lookup read the token's row before the revocation, tokensChanged() emptied the cache, then
  // the lookup stored its answer: the revoked token worked for TOKEN_CACHE_MS more, though the revocation had
  // answered 204 ("takes effect at once").
  const { db, state } = fakeDb();
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  const slow = {
    async query(...a: unknown[]) {
      const answer = await (db.query as (...x: unknown[]) => Promise<unknown>)(...a);
      await held;
      return answer;
    },
    async exec() {},
  } as unknown as Queryable;
  const auth = new Auth(slow, 'operator-token-of-the-test');
  const req = { headers: { authorization: `Bearer ${newToken('watcher')}` } };
  const inFlight = auth.principal(req);
  await new Promise((r) => setTimeout(r, 10));
  state.revoked = true;
  auth.tokensChanged();
  release();
  assert.equal((await inFlight).role, 'owner', 'the request that started before the revocation is answered as it was');
  await assert.rejects(auth.principal(req), /Unknown or revoked token/);
});
