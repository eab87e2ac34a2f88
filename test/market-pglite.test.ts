import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MarketService } from '../src/market/service.ts';
import { PgliteDatabase } from '../src/store/pglite.ts';
import { DEST, TestCapacity, TestDelivery, TestLedger, TestRoutes, migrated, seedAccounts, testConfig } from './helpers/market.ts';

// The market's SQL on PGlite, the embedded database `npm start` uses: the same migrations, a clearing and a
// settlement (the Postgres suite covers the rules; this proves the dialect).

test('market on PGlite: migrations, a clearing and a settlement', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-market-pglite-'));
  const db = await PgliteDatabase.open(dir);
  try {
    await migrated(db);
    const ledger = await TestLedger.install(db);
    const routes = new TestRoutes();
    const delivery = new TestDelivery();
    const capacity = new TestCapacity();
    const T0 = Date.UTC(2031, 2, 10);
    const clock = { now: T0 + 1000 };
    const market = new MarketService({ db, ledger, routes, delivery, capacity, config: testConfig(), now: () => clock.now });
    const { account, worker } = await seedAccounts(db, { bob: [], sue: ['r1', 'r2'] });
    for (const w of worker.values()) capacity.workers.set(w, { hs: 10n ** 14n, shares: 600 });
    await ledger.deposit(db, account.get('bob')!, 1_000_000n);
    const { bid } = await market.placeBid({ accountId: account.get('bob')!, operator: false }, { maxPrice: 50_000, limitHs: 10n ** 15n, budgetSat: 1000n, destinations: DEST });
    await market.placeAsk({ accountId: account.get('sue')!, operator: false }, { minPrice: 40_000, workers: 'all' });
    await market.runOnce(clock.now);
    const r = routes.last();
    assert.equal(r[0].workerIds.length, 2);
    // 2 × 0.1 PH/s for a minute at 45,000: 12e18 hashes × 45,000 / 8.64e19 = 6.25 sat → seller 6 (99 %), fee 0.
    delivery.set(T0, r[0].workerIds.map((workerId) => ({ bidId: bid.id, workerId, acceptedHashes: 6n * 10n ** 18n, acceptedShares: 1, rejectedShares: 0, staleBySwitchShares: 0 })));
    delivery.mark = new Date(T0 + 60_000);
    clock.now = T0 + 60_000 + 31_000;
    await market.runOnce(clock.now);
    const s = (await db.query<{ debit_sat: unknown; credit_sat: unknown; fee_sat: unknown }>(`SELECT debit_sat, credit_sat, fee_sat FROM market_settlements`)).rows;
    assert.equal(s.length, 1);
    assert.equal(BigInt(s[0].debit_sat as number), BigInt(s[0].credit_sat as number) + BigInt(s[0].fee_sat as number));
    assert.equal(await ledger.balance(db, `escrow:${bid.id}`), 1000n - BigInt(s[0].debit_sat as number));
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
