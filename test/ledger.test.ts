import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { IdempotencyConflictError, InsufficientBalanceError, LedgerIntegrityError, UnbalancedEntryError } from '../src/accounting/errors.ts';
import { Ledger, credit, debit, owned, pool, withSavepoint } from '../src/accounting/ledger.ts';
import type { EntryInput } from '../src/accounting/types.ts';
import type { Database } from '../src/store/db.ts';
import { BACKENDS, accountId, openMigrated, sqlstate } from './helpers/accounting.ts';
import { SKIP_PG } from './helpers/pg.ts';

// The ledger's rules are the database's: these tests go around the TypeScript API (raw SQL) to show that the
// database itself refuses an unbalanced entry, a negative miner balance, an edit of history.

const T = new Date('2031-03-10T12:00:00Z');
const ledger = new Ledger();

function entry(key: string, lines: EntryInput['postings'], kind: EntryInput['kind'] = 'operator_adjustment'): EntryInput {
  return { key, kind, effectiveAt: T, postings: lines };
}

for (const backend of BACKENDS) {
  describe(`ledger on ${backend.name}`, { skip: backend.name === 'postgres' && SKIP_PG }, () => {
    let db: Database;
    let cleanup: () => Promise<void>;
    let alice: bigint;
    let bob: bigint;
    before(async () => {
      ({ db, cleanup } = await openMigrated(backend));
      alice = await accountId(db, 'alice');
      bob = await accountId(db, 'bob');
    });
    after(async () => { await cleanup?.(); });

    test('an entry moves balances in each account\'s natural sign; a repeat of its key changes nothing', async () => {
      // 2^53 + 1 satoshis: never passes through a float.
      const big = 9_007_199_254_740_993n;
      const e = entry('t1:credit', [debit(pool('pool_revenue'), big), credit(owned('balance', alice), big)]);
      const r1 = await ledger.postNow(db, e);
      assert.equal(r1.status, 'posted');
      const r2 = await ledger.postNow(db, e);
      assert.deepEqual(r2, { status: 'duplicate', entryId: (r1 as { entryId: bigint }).entryId });
      assert.equal(await ledger.balance(db, owned('balance', alice)), big);
      // pool_revenue is credit-normal and may go negative (FPPS: the pool bears the luck).
      assert.equal(await ledger.balance(db, pool('pool_revenue')), -big);
      assert.deepEqual(await ledger.verify(db), []);
    });

    test('the same key with other lines is a conflict, not a silent no-op', async () => {
      await ledger.postNow(db, entry('t2', [debit(pool('pool_revenue'), 5n), credit(owned('balance', bob), 5n)]));
      await assert.rejects(
        ledger.postNow(db, entry('t2', [debit(pool('pool_revenue'), 6n), credit(owned('balance', bob), 6n)])),
        IdempotencyConflictError,
      );
      assert.equal(await ledger.balance(db, owned('balance', bob)), 5n);
    });

    test('no miner balance below zero: the database refuses, the whole entry is rolled back', async () => {
      const before = await ledger.balance(db, owned('balance', bob));
      await assert.rejects(
        ledger.postNow(db, entry('t3:overdraw', [debit(owned('balance', bob), before + 1n), credit(pool('payouts_in_flight'), before + 1n)])),
        InsufficientBalanceError,
      );
      assert.equal(await ledger.balance(db, owned('balance', bob)), before);
      assert.equal(await ledger.balance(db, pool('payouts_in_flight')), 0n);
      // Exactly the balance is fine.
      await ledger.postNow(db, entry('t3:exact', [debit(owned('balance', bob), before), credit(pool('payouts_in_flight'), before)]));
      assert.equal(await ledger.balance(db, owned('balance', bob)), 0n);
    });

    test('the database refuses an entry whose postings do not sum to zero (deferred trigger, raw SQL)', async () => {
      const [a, b] = await ledger.resolve(db, [pool('pool_revenue'), owned('balance', alice)]);
      const code = await sqlstate(db.transaction(async (tx) => {
        const e = await tx.query<{ id: string }>("INSERT INTO journal_entries (idempotency_key, kind, effective_at) VALUES ('raw:unbalanced', 'x', now()) RETURNING id::text");
        await tx.query('INSERT INTO postings (entry_id, ledger_account_id, amount) VALUES ($1, $2, 10), ($1, $3, -9)', [e.rows[0].id, a.toString(), b.toString()]);
      }));
      assert.equal(code, 'HH001');
      // A single-line or empty entry is refused too.
      assert.equal(await sqlstate(db.transaction(async (tx) => {
        await tx.query("INSERT INTO journal_entries (idempotency_key, kind, effective_at) VALUES ('raw:empty', 'x', now())");
      })), 'HH001');
      // Lines inserted in any order within the transaction are fine: the check runs at COMMIT.
      await db.transaction(async (tx) => {
        const e = await tx.query<{ id: string }>("INSERT INTO journal_entries (idempotency_key, kind, effective_at) VALUES ('raw:ok', 'x', now()) RETURNING id::text");
        await tx.query('INSERT INTO postings (entry_id, ledger_account_id, amount) VALUES ($1, $2, 7)', [e.rows[0].id, a.toString()]);
        await tx.query('INSERT INTO postings (entry_id, ledger_account_id, amount) VALUES ($1, $2, -7)', [e.rows[0].id, b.toString()]);
      });
      assert.equal((await db.query("SELECT 1 FROM journal_entries WHERE idempotency_key IN ('raw:unbalanced', 'raw:empty')")).rows.length, 0);
      assert.deepEqual(await ledger.verify(db), []);
    });

    test('the API refuses an unbalanced entry before the database sees it', async () => {
      await assert.rejects(ledger.postNow(db, entry('t4', [debit(pool('wallet'), 3n), credit(pool('pool_fee'), 2n)])), UnbalancedEntryError);
    });

    test('history is append-only: no update, delete or truncate of postings or entries, no hand-set balance', async () => {
      assert.equal(await sqlstate(db.query('UPDATE postings SET amount = amount + 1')), 'HH002');
      assert.equal(await sqlstate(db.query('DELETE FROM postings')), 'HH002');
      assert.equal(await sqlstate(db.query('TRUNCATE postings CASCADE')), 'HH002');
      assert.equal(await sqlstate(db.query("UPDATE journal_entries SET memo = 'x'")), 'HH002');
      assert.equal(await sqlstate(db.query('DELETE FROM journal_entries')), 'HH002');
      assert.equal(await sqlstate(db.query('UPDATE ledger_accounts SET balance = balance + 1000')), 'HH005');
      assert.equal(await sqlstate(db.query('DELETE FROM ledger_accounts')), 'HH002');
      assert.equal(await sqlstate(db.query("UPDATE ledger_accounts SET allow_negative = true WHERE kind = 'balance'")), 'HH002');
      // A pool-level kind cannot be given an owner, a per-account kind needs one.
      assert.equal(await sqlstate(db.query("INSERT INTO ledger_accounts (kind, account_id, normal_sign, allow_negative) VALUES ('balance', NULL, 1, true)")), 'HH004');
      assert.deepEqual(await ledger.verify(db), []);
    });

    test('a committed entry is closed: postings added later are refused', async () => {
      const r = await ledger.postNow(db, entry('t5', [debit(pool('pool_revenue'), 4n), credit(owned('balance', alice), 4n)]));
      assert.equal(r.status, 'posted');
      const [a, b] = await ledger.resolve(db, [pool('wallet'), pool('pool_fee')]);
      const code = await sqlstate(db.transaction(async (tx) => {
        await tx.query('INSERT INTO postings (entry_id, ledger_account_id, amount) VALUES ($1, $2, 1), ($1, $3, -1)',
          [(r as { entryId: bigint }).entryId.toString(), a.toString(), b.toString()]);
      }));
      assert.equal(code, 'HH003');
    });

    test('history pages newest first with the balance after each line; verify finds nothing wrong', async () => {
      const carol = await accountId(db, 'carol');
      for (let i = 1; i <= 5; i++) {
        await ledger.postNow(db, entry(`h${i}`, [debit(pool('pool_revenue'), BigInt(i * 10)), credit(owned('balance', carol), BigInt(i * 10))]));
      }
      await ledger.postNow(db, entry('h-out', [debit(owned('balance', carol), 25n), credit(pool('payouts_in_flight'), 25n)]));
      const all = await ledger.history(db, owned('balance', carol), { limit: 100 });
      assert.deepEqual(all.map((h) => h.key), ['h-out', 'h5', 'h4', 'h3', 'h2', 'h1']);
      assert.deepEqual(all.map((h) => h.balanceAfter), [125n, 150n, 100n, 60n, 30n, 10n]);
      assert.deepEqual(all.map((h) => h.change), [-25n, 50n, 40n, 30n, 20n, 10n]);
      const page2 = await ledger.history(db, owned('balance', carol), { limit: 2, before: all[1].postingId });
      assert.deepEqual(page2.map((h) => [h.key, h.balanceAfter]), [['h4', 100n], ['h3', 60n]]);
      assert.deepEqual(await ledger.verify(db), []);
    });

    test('a savepoint keeps the outer transaction usable after a refused entry', async () => {
      const dave = await accountId(db, 'dave');
      await db.transaction(async (tx) => {
        await assert.rejects(withSavepoint(tx, () => ledger.post(tx, entry('sp:bad', [debit(owned('balance', dave), 1n), credit(pool('payouts_in_flight'), 1n)]))), InsufficientBalanceError);
        await ledger.post(tx, entry('sp:good', [debit(pool('pool_revenue'), 3n), credit(owned('balance', dave), 3n)]));
      });
      assert.equal(await ledger.balance(db, owned('balance', dave)), 3n);
      await assert.rejects(Promise.reject(new LedgerIntegrityError('x', 'HH002')), LedgerIntegrityError);
    });

    if (backend.name === 'postgres') {
      test('concurrent entries over the same accounts in opposite orders neither deadlock nor lose an update', async () => {
        const x = await accountId(db, 'conc-x');
        const y = await accountId(db, 'conc-y');
        await ledger.postNow(db, entry('conc:seed', [debit(pool('pool_revenue'), 2000n), credit(owned('balance', x), 1000n), credit(owned('balance', y), 1000n)]));
        const jobs = Array.from({ length: 40 }, (_, i) => ledger.postNow(db, entry(`conc:${i}`, i % 2
          ? [debit(owned('balance', x), 10n), credit(owned('balance', y), 10n)]
          : [debit(owned('balance', y), 10n), credit(owned('balance', x), 10n)])));
        await Promise.all(jobs);
        assert.equal(await ledger.balance(db, owned('balance', x)), 1000n);
        assert.equal(await ledger.balance(db, owned('balance', y)), 1000n);
        assert.deepEqual(await ledger.verify(db), []);
      });
    }
  });
}
