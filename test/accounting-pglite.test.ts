import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { owned, pool } from '../src/accounting/ledger.ts';
import { AccountingService, DEFAULT_ACCOUNTING } from '../src/accounting/service.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { type EmbeddedChainHandle, REGTEST_NETWORK, startEmbeddedChain } from '../src/node/regtest/index.ts';
import type { Database } from '../src/store/db.ts';
import { BACKENDS, accountId, insertBlock, openMigrated, setWatermark, share, writeShares } from './helpers/accounting.ts';
import { blockHash, blockHex, poolScript } from './helpers/accounting-blocks.ts';

// The embedded database (PGlite: PostgreSQL 18 in WASM) runs the same books with the same migrations: the whole
// path once, from stored shares to a payout confirmed on the embedded chain (with the real node values).

const pglite = BACKENDS.find((b) => b.name === 'pglite')!;

let db: Database;
let cleanup: () => Promise<void>;
let h: EmbeddedChainHandle;
let rpc: BitcoinRpc;
before(async () => {
  ({ db, cleanup } = await openMigrated(pglite));
  h = await startEmbeddedChain({ mempoolTxs: 3, mempoolRefreshMs: 0 });
  rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 20_000 });
});
after(async () => { rpc?.close(); await h?.close(); await cleanup?.(); });

test('PGlite: FPPS and PPLNS credits from stored shares (block values from the node), a block credited, a payout confirmed', async () => {
  let clock = Date.now();
  const service = new AccountingService({
    db, node: rpc, network: 'regtest', logger: pino({ level: 'silent' }), now: () => clock,
    config: { ...DEFAULT_ACCOUNTING, periodSeconds: 10, scheme: { ...DEFAULT_ACCOUNTING.scheme, defaultScheme: 'pplns', pplnsN: 1, pplnsMaxWindowSeconds: 600 },
      payouts: { ...DEFAULT_ACCOUNTING.payouts, defaultThreshold: 10_000n, addressChangeDelaySeconds: 0, confirmations: 1, fallbackSatVb: 2 } },
  });
  const frame = await service.init();
  clock = frame.startedAt + 1000;
  // The pool's coins: 20 coinbases to its (embedded wallet's) address, matured.
  await rpc.call('generatetoaddress', [20, 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080']);
  await rpc.call('generatetoaddress', [100, 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj']);
  const tip = await rpc.call<number>('getblockcount');
  const addr = { f: p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!, p: p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address! };
  const f = await accountId(db, 'lite-fpps');
  const p = await accountId(db, 'lite-pplns');
  await service.settings.update(db, frame, f, { payoutAddress: addr.f, scheme: 'fpps' }, 'test', frame.startedAt - 1);
  await service.settings.update(db, frame, p, { payoutAddress: addr.p }, 'test', frame.startedAt - 1);
  // Shares at the height being mined, with the chain's regtest bits (difficulty 4.66e-10: tiny pool difficulties).
  const list = Array.from({ length: 20 }, (_, i) => share({ time: clock + i * 100, account: i % 2 ? 'lite-fpps' : 'lite-pplns', poolDifficulty: 1e-12, height: tip + 1, nbits: 0x207fffff }));
  await writeShares(db, list);
  const hash = blockHash();
  await insertBlock(db, { hash, height: tip + 1, time: clock + 2000, account: 'lite-pplns', reward: 5_000_000_000n, status: 'confirmed',
    blockHex: blockHex({ height: tip + 1, bits: 0x207fffff, outputs: [{ value: 5_000_000_000n, scriptPubKey: poolScript() }] }) });
  await service.payouts.fund(20n * 5_000_000_000n, 'test coinbases', 'test', 'lite', clock);
  clock = frame.startedAt + 20_000;
  await setWatermark(db, clock);
  await service.tick();
  const fb = await service.engine!.ledger.balance(db, owned('balance', f));
  const pb = await service.engine!.ledger.balance(db, owned('balance', p));
  assert.ok(fb > 0n, 'FPPS credit');
  assert.ok(pb > 0n, 'PPLNS credit');
  // The value of the height came from the node's getblockstats-backed chain values.
  assert.equal((await db.query('SELECT 1 FROM chain_block_values WHERE height = $1', [tip + 1])).rows.length, 1);
  await service.payoutTick();
  await service.payoutTick();
  await rpc.call('generatetoaddress', [1, 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj']);
  const r = await service.payoutTick();
  assert.ok(r?.progressed.some((x) => x.kind === 'confirmed'), JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
  assert.equal(await service.engine!.ledger.balance(db, owned('balance', p)), 0n);
  assert.equal(await service.engine!.ledger.balance(db, pool('payouts_in_flight')), 0n);
  assert.deepEqual(await service.engine!.ledger.verify(db), []);
  await service.stop();
});
