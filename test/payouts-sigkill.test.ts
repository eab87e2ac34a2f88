import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { Ledger, credit, debit, owned, pool } from '../src/accounting/ledger.ts';
import { Payouts, DEFAULT_POLICY } from '../src/accounting/payouts/payouts.ts';
import { RpcPayoutWallet } from '../src/accounting/payouts/wallet.ts';
import { Settings } from '../src/accounting/settings.ts';
import { addressToScript } from '../src/chain/index.ts';
import { BitcoinRpc } from '../src/node/rpc.ts';
import { type EmbeddedChainHandle, REGTEST_NETWORK, startEmbeddedChain } from '../src/node/regtest/index.ts';
import { PgDatabase } from '../src/store/pg.ts';
import { migrate } from '../src/store/migrate.ts';
import { setupBooks } from './helpers/accounting.ts';
import { SKIP_PG, type TestPg, createTestPg } from './helpers/pg.ts';

// Real SIGKILLs of a payout process at the worst moments: right after sendrawtransaction and before the batch is
// marked sent (the double payout of UNOMP #122 when a retry builds a new transaction), right after the signed
// transaction and its reserve are committed, and before the settle entry. A restarted process pays exactly once.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const T0 = Date.UTC(2031, 8, 1);

describe('payouts survive SIGKILL', { skip: SKIP_PG }, () => {
  let tpg: TestPg;
  let db: PgDatabase;
  let h: EmbeddedChainHandle;
  let rpc: BitcoinRpc;
  const ledger = new Ledger();
  let now = T0 + 60_000;

  before(async () => {
    tpg = await createTestPg();
    db = new PgDatabase({ url: tpg.url, maxConnections: 2 });
    await migrate(db);
    await setupBooks(db, T0, 10);
    h = await startEmbeddedChain({ mempoolTxs: 0, mempoolRefreshMs: 0 });
    rpc = new BitcoinRpc({ endpoints: [{ url: h.url, user: h.user, password: h.password }], timeoutMs: 20_000 });
    await rpc.call('generatetoaddress', [10, 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080']);
    await rpc.call('generatetoaddress', [100, 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj']);
    const p = new Payouts(db, new RpcPayoutWallet({ node: rpc, wallet: rpc, network: 'regtest' }), { ...DEFAULT_POLICY, network: 'regtest' });
    await p.fund(10n * 5_000_000_000n, 'test coinbases', 'test', 'sigkill', now);
  });
  after(async () => { rpc?.close(); await h?.close(); await db?.close(); await tpg?.drop(); });

  function child(killAt: string | null): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
    return new Promise((resolve, reject) => {
      const c = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/payout-child.ts'], {
        cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, HASHHUB_TEST_DB: tpg.url, HASHHUB_TEST_NODE: h.url, HASHHUB_TEST_NODE_USER: h.user, HASHHUB_TEST_NODE_PASSWORD: h.password,
          HASHHUB_TEST_NOW: String(now), ...(killAt ? { HASHHUB_KILL_AT: killAt } : {}) },
      });
      let out = '';
      let err = '';
      c.stdout.on('data', (d: Buffer) => { out += d; });
      c.stderr.on('data', (d: Buffer) => { err += d; });
      c.on('error', reject);
      c.on('exit', (code, signal) => (code && code !== 0 ? reject(new Error(`payout child failed (${code}): ${err}`)) : resolve({ code, signal, out })));
    });
  }

  async function received(address: string): Promise<bigint> {
    const script = addressToScript(address, 'regtest').toString('hex');
    let sum = 0n;
    for (let hgt = 111; hgt <= h.chain.height; hgt++) {
      const b = await rpc.call<{ tx: { vout: { value: number; scriptPubKey: { hex: string } }[] }[] }>('getblock', [await rpc.call<string>('getblockhash', [hgt]), 2]);
      for (const tx of b.tx) for (const o of tx.vout) if (o.scriptPubKey.hex === script) sum += BigInt(Math.round(o.value * 1e8));
    }
    return sum;
  }

  for (const point of ['after-send', 'reserved', 'before-settle']) {
    test(`killed at "${point}": the restarted process pays exactly once`, async () => {
      now += 60_000;
      const name = `kill-${point}`;
      const address = p2wpkh(pubECDSA(randomBytes(32), true), REGTEST_NETWORK).address!;
      await db.query('INSERT INTO accounts (name) VALUES ($1)', [name]);
      const id = BigInt((await db.query<{ id: string }>('SELECT id::text FROM accounts WHERE name = $1', [name])).rows[0].id);
      await new Settings({ network: 'regtest', minThreshold: 1000n, defaultThreshold: 100_000n, allowedSchemes: ['pplns'] })
        .update(db, (await import('../src/accounting/params.ts').then((m) => m.readFrame(db)))!, id, { payoutAddress: address }, 'test', now - 1000);
      await ledger.postNow(db, { key: `kill:${point}`, kind: 'operator_adjustment', effectiveAt: new Date(now), postings: [debit(pool('pool_revenue'), 3_333_333n), credit(owned('balance', id), 3_333_333n)] });
      // Runs until the process dies at the point (the first run signs; the broadcast is in the second; settle after a block).
      let killed = false;
      for (let i = 0; i < 4 && !killed; i++) {
        const r = await child(point);
        killed = r.signal === 'SIGKILL';
        if (!killed && i >= 1) await rpc.call('generatetoaddress', [1, 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj']);
      }
      assert.ok(killed, `the child reached "${point}" and was killed`);
      // Restarts, each a fresh process, until the batch settles.
      for (let i = 0; i < 5; i++) {
        await child(null);
        const open = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM payout_batches WHERE status IN ('pending', 'signed', 'broadcast')");
        if (open.rows[0].n === '0') break;
        await rpc.call('generatetoaddress', [1, 'bcrt1q0ht9tyks4vh7p5p904t340cr9nvahy7uevmqwj']);
      }
      assert.equal(await received(address), 3_333_333n, 'paid exactly once');
      assert.equal(await ledger.balance(db, owned('balance', id)), 0n);
      assert.equal(await ledger.balance(db, pool('payouts_in_flight')), 0n);
      assert.deepEqual(await ledger.verify(db), []);
    });
  }
});
