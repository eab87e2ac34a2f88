// What a restart of the embedded chain must keep, as plain data to compare: tip, every coin, and the wallet's
// view (balance, unspent outputs, which addresses are its own, the transactions it knows).

import { createHash } from 'node:crypto';
import { Transaction } from '@scure/btc-signer';
import { type EmbeddedChainHandle, REGTEST_NETWORK } from '../../src/node/regtest/index.ts';
import type { EmbeddedChain } from '../../src/node/regtest/index.ts';

/** Every coin of the active chain, sorted: "txid:vout value height coinbase script". */
export function utxoDump(chain: EmbeddedChain): string[] {
  return [...chain.utxo.entries()]
    .map(([k, c]) => `${k} ${c.value} ${c.height} ${c.coinbase ? 1 : 0} ${c.script.toString('hex')}`)
    .sort();
}

export function utxoDigest(chain: EmbeddedChain): string {
  return createHash('sha256').update(utxoDump(chain).join('\n')).digest('hex');
}

export function chainView(h: EmbeddedChainHandle, addresses: string[], txids: string[]) {
  return {
    tip: h.chain.tip.hashHex,
    height: h.chain.height,
    utxo: utxoDigest(h.chain),
    coins: h.chain.utxo.size,
    balance: h.wallet.balance(),
    balances: h.wallet.balances(),
    unspent: h.wallet.listUnspent(0),
    mine: addresses.map((a) => h.wallet.dumpPrivKey(a)),
    txs: txids.map((id) => {
      try {
        const t = h.wallet.getTransaction(id);
        // An unconfirmed transaction's time is the clock's now (the embedded wallet keeps no receive time).
        return t.confirmations === 0 ? { ...t, time: 'now' } : t;
      } catch (e) {
        return (e as Error).message;
      }
    }),
    mempool: [...h.chain.mempool.values()].filter((o) => o.real).map((o) => o.txidHex).sort(),
  };
}

/**
 * A payment from the wallet: its largest spendable coin to `to` (amount sats), the change back to `change`,
 * signed by the wallet and accepted by the chain. Returns the txid, or null when the wallet has no coin.
 */
export function walletPay(h: EmbeddedChainHandle, to: string, amount: bigint, change: string): string | null {
  const coins = h.wallet.listUnspent(1).sort((a, b) => b.amount - a.amount);
  const u = coins[0];
  if (!u) return null;
  const value = BigInt(Math.round(u.amount * 1e8));
  const fee = 1000n;
  if (value < amount + fee + 1000n) return null;
  const tx = new Transaction({ allowUnknownOutputs: true });
  tx.addInput({ txid: u.txid, index: u.vout, sequence: 0xfffffffd, witnessUtxo: { script: Buffer.from(u.scriptPubKey, 'hex'), amount: value } });
  tx.addOutputAddress(to, amount, REGTEST_NETWORK);
  tx.addOutputAddress(change, value - amount - fee, REGTEST_NETWORK);
  const signed = h.wallet.processPsbt(Buffer.from(tx.toPSBT()).toString('base64'));
  if (!signed.hex) throw new Error('the wallet did not sign');
  return h.chain.acceptTransaction(Buffer.from(signed.hex, 'hex'));
}
