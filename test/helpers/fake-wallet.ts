import { randomBytes } from 'node:crypto';
import { Transaction } from '@scure/btc-signer';
import { fromHex, hashToDisplay, parseTx, txid as txidOf } from '../../src/chain/index.ts';
import type { BuiltTx, Coin } from '../../src/accounting/payouts/build.ts';
import { type BroadcastOutcome, type PayoutWallet, type SignedTx, type TxStatus, WalletError, measure } from '../../src/accounting/payouts/wallet.ts';

// An in-memory wallet and chain for property tests: coins, a mempool with BIP125 replacement, blocks, and a
// record of every satoshi each script received on chain. Faults on demand: locked, unreachable, and a broadcast
// that dies before or after the transaction reached the network.

export const CHANGE_SCRIPT = Buffer.from('0014' + '11'.repeat(20), 'hex');

interface Tx { txid: string; hex: string; inputs: string[]; outputs: { script: string; value: bigint }[]; fee: bigint; rbf: boolean }

export class FakeWallet implements PayoutWallet {
  coins_ = new Map<string, Coin>();
  mempool = new Map<string, Tx>();
  /** Every transaction ever accepted, by txid. */
  seen = new Map<string, string>();
  confirmed = new Map<string, { tx: Tx; height: number }>();
  spentBy = new Map<string, string>();
  height = 1000;
  /** Satoshis each output script received in confirmed transactions. */
  received = new Map<string, bigint>();
  fault: 'locked' | 'unreachable' | null = null;
  broadcastFault: 'before' | 'after' | null = null;
  sends = 0;

  constructor(coins: { value: bigint }[]) {
    // Outpoints unique to this wallet (two wallets in one database must not share coins).
    const salt = randomBytes(8).toString('hex');
    coins.forEach((c, i) => {
      const txid = salt + (i + 1).toString(16).padStart(48, '0');
      this.coins_.set(`${txid}:0`, { txid, vout: 0, value: c.value, script: CHANGE_SCRIPT, confirmations: 200 });
    });
  }

  private check(): void {
    if (this.fault === 'unreachable') throw new WalletError('unreachable', 'wallet unreachable (ECONNREFUSED)');
  }

  async coins(): Promise<Coin[]> {
    this.check();
    const spentInMempool = new Set([...this.mempool.values()].flatMap((t) => t.inputs));
    return [...this.coins_.values()].filter((c) => !spentInMempool.has(`${c.txid}:${c.vout}`));
  }

  async changeScript(): Promise<Buffer> { this.check(); return CHANGE_SCRIPT; }

  async sign(tx: BuiltTx): Promise<SignedTx> {
    this.check();
    if (this.fault === 'locked') throw new WalletError('locked', 'wallet locked (-13)');
    const t = Transaction.fromPSBT(tx.psbt);
    return measure(t.hex);
  }

  async broadcast(hex: string): Promise<BroadcastOutcome> {
    if (this.fault === 'unreachable') return { kind: 'unreachable', reason: 'ECONNREFUSED' };
    if (this.broadcastFault === 'before') { this.broadcastFault = null; throw new Error('crash before the send'); }
    const r = this.accept(hex);
    if (this.broadcastFault === 'after') { this.broadcastFault = null; throw new Error('crash after the send'); }
    return r;
  }

  private accept(hex: string): BroadcastOutcome {
    const p = parseTx(fromHex(hex));
    const id = hashToDisplay(txidOf(p));
    if (this.mempool.has(id)) return { kind: 'known' };
    if (this.confirmed.has(id)) return { kind: 'confirmed' };
    const inputs = p.inputs.map((i) => `${hashToDisplay(i.prevTxid)}:${i.vout}`);
    let inSum = 0n;
    const conflicts = new Set<string>();
    for (const k of inputs) {
      const c = this.coins_.get(k);
      if (!c) return { kind: 'rejected', reason: 'bad-txns-inputs-missingorspent' };
      inSum += c.value;
      for (const m of this.mempool.values()) if (m.inputs.includes(k)) conflicts.add(m.txid);
    }
    const outputs = p.outputs.map((o) => ({ script: o.scriptPubKey.toString('hex'), value: o.value }));
    const fee = inSum - outputs.reduce((s, o) => s + o.value, 0n);
    if (fee <= 0n) return { kind: 'rejected', reason: 'bad-txns-in-belowout' };
    for (const c of conflicts) {
      const old = this.mempool.get(c)!;
      if (!old.rbf || fee <= old.fee) return { kind: 'rejected', reason: 'txn-mempool-conflict / insufficient fee' };
    }
    for (const c of conflicts) this.mempool.delete(c);
    this.sends++;
    this.seen.set(id, hex);
    this.mempool.set(id, { txid: id, hex, inputs, outputs, fee, rbf: p.inputs.some((i) => i.sequence < 0xfffffffe) });
    return { kind: 'accepted' };
  }

  /** A block with everything in the mempool. */
  mine(): void {
    this.height++;
    for (const t of this.mempool.values()) {
      for (const k of t.inputs) { this.coins_.delete(k); this.spentBy.set(k, t.txid); }
      t.outputs.forEach((o, vout) => {
        this.received.set(o.script, (this.received.get(o.script) ?? 0n) + o.value);
        if (o.script === CHANGE_SCRIPT.toString('hex')) this.coins_.set(`${t.txid}:${vout}`, { txid: t.txid, vout, value: o.value, script: CHANGE_SCRIPT, confirmations: 1 });
      });
      this.confirmed.set(t.txid, { tx: t, height: this.height });
    }
    this.mempool.clear();
  }

  async status(id: string): Promise<TxStatus> {
    this.check();
    const c = this.confirmed.get(id);
    if (c) return { kind: 'confirmed', confirmations: this.height - c.height + 1, blockHash: null };
    if (this.mempool.has(id)) return { kind: 'pending' };
    const hex = this.seen.get(id);
    if (hex && this.isConflicted(hex)) return { kind: 'conflicted', depth: 1 };
    return { kind: 'unknown' };
  }

  /** Conflicted: one of its inputs was spent by another confirmed transaction. */
  isConflicted(hex: string): boolean {
    const p = parseTx(fromHex(hex));
    const id = hashToDisplay(txidOf(p));
    return p.inputs.some((i) => { const s = this.spentBy.get(`${hashToDisplay(i.prevTxid)}:${i.vout}`); return s !== undefined && s !== id; });
  }

  async estimateFeeRate(): Promise<number | null> { this.check(); return null; }

  async fetchTx(id: string): Promise<string | null> {
    return this.mempool.get(id)?.hex ?? this.confirmed.get(id)?.tx.hex ?? null;
  }
}
