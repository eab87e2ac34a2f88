// The embedded chain's wallet: real keys (secp256k1, via @scure/btc-signer), addresses, the coins of the chain
// that pay them, and the Bitcoin Core wallet RPC subset a payout needs (listunspent, getrawchangeaddress,
// walletprocesspsbt, signrawtransactionwithwallet, dumpprivkey, gettransaction, getbalance, lockunspent, and
// encryption/locking to exercise "wallet locked"). Its signatures are checked by the chain's own code
// (script-check.ts), and its spends become real coins of the chain.

import { randomBytes } from 'node:crypto';
import { TEST_NETWORK, Transaction, WIF, p2pkh, p2wpkh } from '@scure/btc-signer';
import { pubECDSA } from '@scure/btc-signer/utils.js';
import { type Tx, hashToDisplay, parseBlock, parseTx, serializeTx, toHex, txid } from '../../chain/index.ts';
import type { EmbeddedChain } from './chain.ts';
import {
  RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER, RPC_WALLET_ERROR, RPC_WALLET_PASSPHRASE_INCORRECT, RPC_WALLET_UNLOCK_NEEDED,
  RPC_WALLET_WRONG_ENC_STATE, RpcFault,
} from './errors.ts';
import { COINBASE_MATURITY } from './params.ts';
import { type Coin, inputKey, outKey } from './utxo.ts';

export const REGTEST_NETWORK = { ...TEST_NETWORK, bech32: 'bcrt' };
/** secp256k1 group order: a private key is in [1, N). */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

interface Key { priv: Uint8Array; pub: Uint8Array; address: string }

export interface WalletUtxo {
  txid: string;
  vout: number;
  address: string;
  scriptPubKey: string;
  amount: number;
  confirmations: number;
  spendable: boolean;
  solvable: boolean;
  safe: boolean;
}

const btc = (sats: bigint): number => Number(sats) / 1e8;

export class EmbeddedWallet {
  /** scriptPubKey hex → key (each key answers for its P2WPKH and P2PKH scripts). */
  private readonly keys = new Map<string, Key>();
  private readonly locked = new Set<string>();
  /** address → label (getnewaddress's label; listsinceblock reports it, as Core does). */
  private readonly labels = new Map<string, string>();
  private passphrase: string | null = null;
  private unlockedUntil = 0;
  private readonly now: () => number;
  /** Makes a new key durable (the data dir's wallet.dat) before its address is handed out. */
  private readonly saveKey?: (priv: Uint8Array, pub: Uint8Array) => void;

  constructor(private readonly chain: EmbeddedChain, opts: {
    importKeys?: Uint8Array[];
    /** Keys read back from the wallet file, with their public keys (deriving them is the slow part). */
    savedKeys?: { priv: Uint8Array; pub: Uint8Array }[];
    now?: () => number;
    saveKey?: (priv: Uint8Array, pub: Uint8Array) => void;
  } = {}) {
    this.now = opts.now ?? Date.now;
    this.saveKey = opts.saveKey;
    for (const k of opts.importKeys ?? []) this.importKey(k);
    for (const k of opts.savedKeys ?? []) this.importKey(k.priv, k.pub);
  }

  /** importprivkey: as importKey, and kept across restarts. */
  addKey(priv: Uint8Array): string {
    const key = this.addKeyEntry(priv);
    this.saveKey?.(key.priv, key.pub);
    return key.address;
  }

  /** Add a private key (32 bytes; its compressed public key when known); returns its P2WPKH address. */
  importKey(priv: Uint8Array, knownPub?: Uint8Array): string {
    return this.addKeyEntry(priv, knownPub).address;
  }

  private addKeyEntry(priv: Uint8Array, knownPub?: Uint8Array): Key {
    const n = BigInt(`0x${Buffer.from(priv).toString('hex')}`);
    if (priv.length !== 32 || n === 0n || n >= N) throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'Invalid private key encoding');
    const pub = knownPub ?? pubECDSA(priv, true);
    const w = p2wpkh(pub, REGTEST_NETWORK);
    const key: Key = { priv: Uint8Array.from(priv), pub, address: w.address as string };
    this.keys.set(toHex(w.script), key);
    this.keys.set(toHex(p2pkh(pub, REGTEST_NETWORK).script), key);
    return key;
  }

  newAddress(label?: string): string {
    for (;;) {
      const priv = randomBytes(32);
      const n = BigInt(`0x${priv.toString('hex')}`);
      if (n > 0n && n < N) {
        const address = this.addKey(priv);
        // Labels live in memory only (wallet.dat keeps keys): hashhub keeps its own label with the address.
        if (label) this.labels.set(address, label);
        return address;
      }
    }
  }

  /**
   * listsinceblock (Core's src/wallet/rpc/transactions.cpp): the wallet's receipts in active blocks after
   * `blockhash` (from its fork point when it left the best chain; everything when absent) and in the mempool,
   * and `lastblock` = the block `targetConfirmations` deep, so a caller that passes it back sees again what has
   * fewer confirmations. Receipts only (what a deposit scanner needs): sends are not listed.
   */
  listSinceBlock(blockhash: string | null, targetConfirmations = 1): { transactions: Record<string, unknown>[]; removed: never[]; lastblock: string } {
    const active = this.chain.index.active;
    let from = 1;
    if (blockhash) {
      let e: (typeof active)[number] | null = this.chain.lookup(blockhash);
      while (e && !this.chain.index.isActive(e)) e = e.parent;
      from = (e?.height ?? 0) + 1;
    }
    const tip = this.chain.height;
    const out: Record<string, unknown>[] = [];
    const receipts = (tx: Tx, id: string, conf: number, block: (typeof active)[number] | null) => {
      const cb = tx.inputs.length === 1 && tx.inputs[0].vout === 0xffffffff && tx.inputs[0].prevTxid.every((b) => b === 0);
      tx.outputs.forEach((o, vout) => {
        const key = this.keys.get(toHex(o.scriptPubKey));
        if (!key) return;
        const address = o.scriptPubKey[0] === 0x00 ? key.address : (p2pkh(key.pub, REGTEST_NETWORK).address as string);
        const label = this.labels.get(address);
        out.push({
          address, category: cb ? (conf >= COINBASE_MATURITY + 1 ? 'generate' : 'immature') : 'receive', amount: btc(o.value),
          ...(label !== undefined ? { label } : {}), vout, confirmations: conf, ...(cb ? { generated: true } : {}),
          ...(block ? { blockhash: block.hashHex, blockheight: block.height, blocktime: block.header.time } : {}),
          txid: id, time: block?.header.time ?? Math.floor(this.now() / 1000),
        });
      });
    };
    for (let h = from; h <= tip; h++) {
      const e = active[h];
      const bytes = this.chain.blockBytes(e);
      if (!bytes) continue; // pruned: Core would refuse; the embedded chain skips what it no longer has
      for (const tx of parseBlock(bytes).txs) receipts(tx, hashToDisplay(txid(tx)), tip - h + 1, e);
    }
    for (const o of this.chain.templateCandidates()) if (o.real) receipts(o.real.tx, o.txidHex, 0, null);
    const depth = Math.max(1, targetConfirmations);
    const last = active[Math.max(0, tip - depth + 1)];
    return { transactions: out, removed: [], lastblock: last.hashHex };
  }

  isMine(script: Uint8Array): boolean { return this.keys.has(toHex(script)); }

  private get isLocked(): boolean {
    return this.passphrase !== null && this.now() >= this.unlockedUntil;
  }

  private requireUnlocked(): void {
    if (this.isLocked) throw new RpcFault(RPC_WALLET_UNLOCK_NEEDED, 'Error: Please enter the wallet passphrase with walletpassphrase first.');
  }

  encrypt(passphrase: string): string {
    if (this.passphrase !== null) throw new RpcFault(RPC_WALLET_WRONG_ENC_STATE, 'Error: running with an encrypted wallet, but encryptwallet was called.');
    if (!passphrase) throw new RpcFault(RPC_INVALID_PARAMETER, 'passphrase cannot be empty');
    this.passphrase = passphrase;
    this.unlockedUntil = 0;
    return 'wallet encrypted; The keypool has been flushed and a new HD seed was generated (if you are using HD). You need to make a new backup.';
  }

  unlock(passphrase: string, timeoutSec: number): null {
    if (this.passphrase === null) throw new RpcFault(RPC_WALLET_WRONG_ENC_STATE, 'Error: running with an unencrypted wallet, but walletpassphrase was called.');
    if (passphrase !== this.passphrase) throw new RpcFault(RPC_WALLET_PASSPHRASE_INCORRECT, 'Error: The wallet passphrase entered was incorrect.');
    this.unlockedUntil = this.now() + Math.min(Math.max(timeoutSec, 0), 100_000_000) * 1000;
    return null;
  }

  lock(): null {
    if (this.passphrase === null) throw new RpcFault(RPC_WALLET_WRONG_ENC_STATE, 'Error: running with an unencrypted wallet, but walletlock was called.');
    this.unlockedUntil = 0;
    return null;
  }

  lockUnspent(unlock: boolean, outputs?: { txid: string; vout: number }[]): boolean {
    if (!outputs) {
      if (unlock) this.locked.clear();
      return true;
    }
    for (const o of outputs) {
      const k = outKey(String(o.txid).toLowerCase(), Number(o.vout));
      if (unlock) this.locked.delete(k);
      else this.locked.add(k);
    }
    return true;
  }

  listLockUnspent(): { txid: string; vout: number }[] {
    return [...this.locked].map((k) => ({ txid: k.slice(0, 64), vout: Number(k.slice(65)) }));
  }

  /** The wallet's coins: mature chain coins and its mempool outputs, minus what the mempool spends. */
  private coins(): { key: string; coin: Coin; confirmations: number; safe: boolean }[] {
    const { spentBy } = this.chain.mempoolCoins();
    const tip = this.chain.height;
    const out: { key: string; coin: Coin; confirmations: number; safe: boolean }[] = [];
    for (const [key, coin] of this.chain.utxo.entries()) {
      if (!this.isMine(coin.script) || spentBy.has(key)) continue;
      const confirmations = tip - coin.height + 1;
      // The wallet spends a coinbase at 101 confirmations (Core's GetBlocksToMaturity).
      if (coin.coinbase && confirmations < COINBASE_MATURITY + 1) continue;
      out.push({ key, coin, confirmations, safe: true });
    }
    for (const o of this.chain.templateCandidates()) {
      if (!o.real) continue;
      // Unconfirmed outputs are safe when the transaction spends only our own coins (our change).
      const ours = o.real.inputs.every((k) => { const c = this.chain.utxo.get(k); return c ? this.isMine(c.script) : true; });
      o.real.tx.outputs.forEach((out2, vout) => {
        const key = outKey(o.txidHex, vout);
        if (!this.isMine(out2.scriptPubKey) || spentBy.has(key)) return;
        out.push({ key, coin: { value: out2.value, script: out2.scriptPubKey, height: tip + 1, coinbase: false }, confirmations: 0, safe: ours });
      });
    }
    return out;
  }

  listUnspent(minconf = 1, maxconf = 9_999_999, addresses?: string[]): WalletUtxo[] {
    const want = addresses ? new Set(addresses) : null;
    return this.coins()
      .filter((c) => c.confirmations >= minconf && c.confirmations <= maxconf && !this.locked.has(c.key))
      .map((c) => {
        const key = this.keys.get(toHex(c.coin.script)) as Key;
        const isWitness = c.coin.script[0] === 0x00;
        return {
          txid: c.key.slice(0, 64), vout: Number(c.key.slice(65)),
          address: isWitness ? key.address : (p2pkh(key.pub, REGTEST_NETWORK).address as string),
          scriptPubKey: toHex(c.coin.script), amount: btc(c.coin.value), confirmations: c.confirmations,
          spendable: true, solvable: true, safe: c.safe,
        };
      })
      .filter((u) => !want || want.has(u.address))
      .sort((a, b) => (a.txid === b.txid ? a.vout - b.vout : a.txid < b.txid ? -1 : 1));
  }

  /** getbalance: trusted (confirmed, mature, and our own unconfirmed change), in BTC. */
  balance(): number {
    return btc(this.coins().filter((c) => c.safe).reduce((s, c) => s + c.coin.value, 0n));
  }

  balances(): Record<string, unknown> {
    const all = this.coins();
    let immature = 0n;
    for (const [, coin] of this.chain.utxo.entries()) {
      if (this.isMine(coin.script) && coin.coinbase && this.chain.height - coin.height + 1 < COINBASE_MATURITY + 1) immature += coin.value;
    }
    return {
      mine: {
        trusted: btc(all.filter((c) => c.safe).reduce((s, c) => s + c.coin.value, 0n)),
        untrusted_pending: btc(all.filter((c) => !c.safe).reduce((s, c) => s + c.coin.value, 0n)),
        immature: btc(immature),
      },
    };
  }

  /** walletprocesspsbt: sign the inputs whose witness UTXO pays one of our keys, finalize them. */
  processPsbt(psbtBase64: string, sign = true, finalize = true): { psbt: string; complete: boolean; hex?: string } {
    let tx: Transaction;
    try {
      tx = Transaction.fromPSBT(Buffer.from(psbtBase64, 'base64'), { allowLegacyWitnessUtxo: true });
    } catch (e) {
      throw new RpcFault(-22, `TX decode failed ${(e as Error).message}`);
    }
    if (sign) {
      this.requireUnlocked();
      for (let i = 0; i < tx.inputsLength; i++) {
        const inp = tx.getInput(i);
        const script = inp.witnessUtxo?.script;
        const key = script ? this.keys.get(toHex(script)) : undefined;
        if (!key || inp.finalScriptWitness || inp.finalScriptSig) continue;
        tx.signIdx(key.priv, i);
        if (finalize) tx.finalizeIdx(i);
      }
    }
    let complete = true;
    for (let i = 0; i < tx.inputsLength; i++) {
      const inp = tx.getInput(i);
      if (!inp.finalScriptWitness && !inp.finalScriptSig) complete = false;
    }
    const psbt = Buffer.from(tx.toPSBT()).toString('base64');
    return complete && finalize ? { psbt, complete, hex: toHex(tx.extract()) } : { psbt, complete };
  }

  /** signrawtransactionwithwallet: sign what spends our coins (found on the chain or in the mempool). */
  signRawTransaction(hex: string): { hex: string; complete: boolean } {
    this.requireUnlocked();
    let raw: Tx;
    try {
      raw = parseTx(Buffer.from(hex, 'hex'));
    } catch {
      throw new RpcFault(-22, 'TX decode failed');
    }
    const { view } = this.chain.mempoolCoins();
    const tx = Transaction.fromRaw(Buffer.from(hex, 'hex'), { allowUnknownOutputs: true });
    let complete = true;
    for (let i = 0; i < raw.inputs.length; i++) {
      const coin = view.get(inputKey(raw, i));
      const key = coin ? this.keys.get(toHex(coin.script)) : undefined;
      if (!coin || !key) { complete = false; continue; }
      tx.updateInput(i, { witnessUtxo: { script: coin.script, amount: coin.value } }, true);
      tx.signIdx(key.priv, i);
      tx.finalizeIdx(i);
    }
    return { hex: toHex(tx.extract()), complete };
  }

  dumpPrivKey(address: string): string {
    this.requireUnlocked();
    for (const k of this.keys.values()) {
      if (k.address === address || p2pkh(k.pub, REGTEST_NETWORK).address === address) return WIF(REGTEST_NETWORK).encode(k.priv);
    }
    throw new RpcFault(RPC_WALLET_ERROR, 'Private key for address is not known');
  }

  addressInfo(address: string, script: Uint8Array): Record<string, unknown> {
    return { address, scriptPubKey: toHex(script), ismine: this.isMine(script), iswatchonly: false, solvable: this.isMine(script), iswitness: script[0] === 0 };
  }

  /** gettransaction: a transaction that pays or spends the wallet, with its confirmations (negative = conflicted). */
  getTransaction(id: string): Record<string, unknown> {
    const found = this.chain.locateTx(id);
    if (!found) throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'Invalid or non-wallet transaction id');
    const { tx, block, inMempool } = found;
    const isCb = tx.inputs.length === 1 && tx.inputs[0].vout === 0xffffffff && tx.inputs[0].prevTxid.every((b) => b === 0);
    let received = 0n;
    for (const o of tx.outputs) if (this.isMine(o.scriptPubKey)) received += o.value;
    let sent = 0n;
    let inTotal = 0n;
    let known = true;
    if (!isCb) {
      for (let i = 0; i < tx.inputs.length; i++) {
        const prev = this.chain.locateTx(hashToDisplay(tx.inputs[i].prevTxid));
        const out = prev?.tx.outputs[tx.inputs[i].vout];
        if (!out) { known = false; continue; }
        inTotal += out.value;
        if (this.isMine(out.scriptPubKey)) sent += out.value;
      }
    }
    if (received === 0n && sent === 0n) throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'Invalid or non-wallet transaction id');
    const outTotal = tx.outputs.reduce((s, o) => s + o.value, 0n);
    let confirmations = 0;
    if (block) confirmations = this.chain.height - block.height + 1;
    else if (!inMempool && !isCb) {
      // Not mined, not waiting: conflicted when one of its inputs is gone from the chain's coins.
      const { view } = this.chain.mempoolCoins();
      if (tx.inputs.some((_, i) => !view.get(inputKey(tx, i)))) confirmations = -1;
    }
    const txidHex = hashToDisplay(txid(tx));
    return {
      amount: btc(received - sent + (sent > 0n && known ? inTotal - outTotal : 0n)),
      ...(sent > 0n && known ? { fee: -btc(inTotal - outTotal) } : {}),
      confirmations,
      ...(isCb ? { generated: true } : {}),
      ...(block ? { blockhash: block.hashHex, blockheight: block.height, blocktime: block.header.time } : {}),
      trusted: confirmations > 0 || inMempool,
      txid: txidHex,
      walletconflicts: [],
      time: block?.header.time ?? Math.floor(this.now() / 1000),
      'bip125-replaceable': tx.inputs.some((i) => i.sequence < 0xfffffffe) ? 'yes' : 'no',
      details: [],
      hex: serializeTx(tx, true).toString('hex'),
    };
  }

  info(): Record<string, unknown> {
    return {
      walletname: 'embedded', walletversion: 169900, format: 'embedded', balance: this.balance(), txcount: 0, keypoolsize: 1000,
      ...(this.passphrase !== null ? { unlocked_until: Math.floor(Math.max(this.unlockedUntil, 0) / 1000) } : {}),
      private_keys_enabled: true, avoid_reuse: false, scanning: false, descriptors: false,
    };
  }
}
