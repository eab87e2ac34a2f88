import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import { LedgerMarketPort } from '../src/accounting/market-ledger.ts';
import type { Database } from '../src/store/db.ts';
import { BACKENDS, accountId, openMigrated } from './helpers/accounting.ts';
import { SKIP_PG } from './helpers/pg.ts';

// The market's ledger port on the real ledger: escrow, release and settlement as entries in the market's own
// transaction, idempotent on the market's keys; the books balance whatever the market does.

const pg = BACKENDS.find((b) => b.name === 'postgres')!;
let db: Database;
let cleanup: () => Promise<void>;
before(async () => { ({ db, cleanup } = await openMigrated(pg)); });
after(async () => { await cleanup?.(); });

test('escrow, release and settlement on the ledger; a refused escrow leaves the market\'s transaction usable', { skip: SKIP_PG }, async () => {
  const ledger = new Ledger();
  const port = new LedgerMarketPort(ledger);
  const buyer = Number(await accountId(db, 'buyer'));
  const sellerA = Number(await accountId(db, 'seller-a'));
  const sellerB = Number(await accountId(db, 'seller-b'));
  await ledger.postNow(db, { key: 'mkt:deposit', kind: 'operator_adjustment', effectiveAt: new Date(), postings: [debit(pool('wallet'), 100_000n), credit(owned('balance', BigInt(buyer)), 100_000n)] });
  await db.transaction(async (tx) => {
    assert.deepEqual(await port.escrow({ key: 'market:escrow:bid:1', accountId: buyer, bidId: 1, amountSat: 200_000n }, tx), { kind: 'insufficient-funds', availableSat: 100_000n });
    assert.deepEqual(await port.escrow({ key: 'market:escrow:bid:1', accountId: buyer, bidId: 1, amountSat: 60_000n }, tx), { kind: 'escrowed' });
    assert.deepEqual(await port.escrow({ key: 'market:escrow:bid:1', accountId: buyer, bidId: 1, amountSat: 60_000n }, tx), { kind: 'escrowed' });
    assert.equal(await port.available(buyer, tx), 40_000n);
    // A tick: buyer pays 10,000, sellers get 9,000 + 500, the market keeps 500.
    const settle = { key: 'market:settle:1:7', tick: 7, bidId: 1, buyerAccountId: buyer, buyerDebitSat: 10_000n,
      sellerCredits: [{ accountId: sellerA, askId: 1, amountSat: 9_000n }, { accountId: sellerB, askId: 2, amountSat: 500n }], marketFeeSat: 500n, overrunSat: 0n };
    await port.settle(settle, tx);
    await port.settle(settle, tx);
    // The last tick of a budget overran: the market bears it (a negative fee), never the seller.
    await port.settle({ key: 'market:settle:1:8', tick: 8, bidId: 1, buyerAccountId: buyer, buyerDebitSat: 1_000n,
      sellerCredits: [{ accountId: sellerA, askId: 1, amountSat: 1_200n }], marketFeeSat: -200n, overrunSat: 200n }, tx);
    await port.release({ key: 'market:release:bid:1:final', accountId: buyer, bidId: 1, amountSat: 49_000n }, tx);
  });
  assert.equal(await ledger.balance(db, owned('balance', BigInt(buyer))), 40_000n + 49_000n);
  assert.equal(await ledger.balance(db, owned('buyer_escrow', BigInt(buyer))), 0n);
  assert.equal(await ledger.balance(db, owned('balance', BigInt(sellerA))), 10_200n);
  assert.equal(await ledger.balance(db, owned('balance', BigInt(sellerB))), 500n);
  assert.equal(await ledger.balance(db, pool('market_fee')), 300n);
  assert.deepEqual(await ledger.verify(db), []);
});
