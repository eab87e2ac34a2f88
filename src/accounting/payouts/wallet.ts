import { createHash } from 'node:crypto';
import { Address, NETWORK, OutScript, TEST_NETWORK, Transaction } from '@scure/btc-signer';
import type { Logger } from 'pino';
import { type NetworkName, fromHex, hashToDisplay, parseTx, serializeTx, txid as txidOf } from '../../chain/index.ts';
import { RpcError } from '../../node/rpc.ts';
import type { RpcCaller } from '../chain-values.ts';
import type { BuiltTx, Coin } from './build.ts';

// The node wallet as payouts see it: coins, a change address, signing, broadcasting, a transaction's status, a
// fee estimate. One implementation over JSON-RPC serves Bitcoin Core, the embedded chain and bcoin:
// - signing: `walletprocesspsbt` (Core, embedded) or, for a wallet without PSBT support (bcoin), the keys of
//   the inputs from `dumpprivkey`, signing locally; either way the transaction we built is what gets signed;
// - coins: `listunspent`, minus immature coinbases (bcoin lists them) and unconfirmed coins not known safe;
// - broadcasting to the node (`sendrawtransaction`), separately from the wallet endpoint (bcoin serves them on
//   two ports; Core on one).

export type WalletErrorCode = 'unreachable' | 'locked' | 'error';

/** A wallet call failed; `code` says whether waiting (unreachable), an operator (locked) or a fix (error) helps. */
export class WalletError extends Error {
  override readonly name = 'WalletError';
  constructor(readonly code: WalletErrorCode, message: string) {
    super(message);
  }
}

export type BroadcastOutcome =
  | { kind: 'accepted' }
  | { kind: 'known' }
  | { kind: 'confirmed' }
  | { kind: 'rejected'; reason: string }
  | { kind: 'unreachable'; reason: string };

export type TxStatus =
  | { kind: 'confirmed'; confirmations: number; blockHash: string | null }
  | { kind: 'pending' }
  | { kind: 'conflicted'; depth: number }
  | { kind: 'unknown' };

export interface SignedTx { hex: string; txid: string; vsize: number }

export interface PayoutWallet {
  coins(): Promise<Coin[]>;
  changeScript(): Promise<Buffer>;
  sign(tx: BuiltTx): Promise<SignedTx>;
  broadcast(hex: string): Promise<BroadcastOutcome>;
  status(txid: string): Promise<TxStatus>;
  /** sat/vB for confirmation within `target` blocks; null when the node has no estimate. */
  estimateFeeRate(target: number): Promise<number | null>;
  /** A transaction by id from the wallet or the node (external signer mode), or null. */
  fetchTx(txid: string): Promise<string | null>;
}

export function walletError(e: unknown, what: string): WalletError {
  if (e instanceof WalletError) return e;
  if (e instanceof RpcError) {
    if (e.kind === 'network' || e.kind === 'timeout' || (e.kind === 'http' && (e.httpStatus ?? 0) >= 500)) {
      return new WalletError('unreachable', `${what}: wallet unreachable (${e.detail})`);
    }
    if (e.kind === 'rpc' && (e.code === -13 || /locked|passphrase/i.test(e.rpcMessage ?? ''))) {
      return new WalletError('locked', `${what}: wallet locked (${e.rpcMessage})`);
    }
    if (e.kind === 'auth') return new WalletError('unreachable', `${what}: ${e.detail}`);
    return new WalletError('error', `${what}: ${e.rpcMessage ?? e.detail}`);
  }
  return new WalletError('error', `${what}: ${(e as Error).message ?? String(e)}`);
}

const BCOIN_REGTEST = { ...TEST_NETWORK, bech32: 'rb', pubKeyHash: 0x3c, scriptHash: 0x26, wif: 0x5a };
const NETS: Record<NetworkName, (typeof NETWORK)[]> = {
  mainnet: [NETWORK],
  testnet: [TEST_NETWORK],
  signet: [TEST_NETWORK],
  // bcoin 1.0.2's getnewaddress/getrawchangeaddress print regtest addresses in mainnet encoding: the script is
  // what matters, so on regtest every encoding is accepted.
  regtest: [{ ...TEST_NETWORK, bech32: 'bcrt' }, BCOIN_REGTEST, TEST_NETWORK, NETWORK],
};

/** scriptPubKey of an address the wallet gave us (bcoin's regtest encodes addresses its own way). */
export function walletAddressScript(address: string, network: NetworkName): Buffer {
  for (const n of NETS[network]) {
    try {
      return Buffer.from(OutScript.encode(Address(n).decode(address)));
    } catch { /* next */ }
  }
  throw new WalletError('error', `the wallet returned an address this pool cannot decode for ${network}: ${address}`);
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/** A WIF private key (any network's version byte): the 32-byte key. */
export function decodeWif(wif: string): Uint8Array {
  let n = 0n;
  for (const ch of wif) {
    const v = B58.indexOf(ch);
    if (v < 0) throw new WalletError('error', 'dumpprivkey returned a malformed key');
    n = n * 58n + BigInt(v);
  }
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const lead = wif.match(/^1*/)?.[0].length ?? 0;
  const bytes = Buffer.concat([Buffer.alloc(lead), Buffer.from(hex, 'hex')]);
  const body = bytes.subarray(0, -4);
  const check = createHash('sha256').update(createHash('sha256').update(body).digest()).digest().subarray(0, 4);
  if (!check.equals(bytes.subarray(-4))) throw new WalletError('error', 'dumpprivkey returned a key with a bad checksum');
  if (body.length === 34 && body[33] === 1) return body.subarray(1, 33);
  if (body.length === 33) return body.subarray(1);
  throw new WalletError('error', 'dumpprivkey returned a key of an unexpected length');
}

interface ListUnspentEntry {
  txid: string; vout: number; address?: string; scriptPubKey: string; amount: number; confirmations: number;
  spendable?: boolean; safe?: boolean;
}

export interface RpcWalletOptions {
  /** Node RPC: sendrawtransaction, estimatesmartfee, getrawtransaction. */
  node: RpcCaller;
  /** Wallet RPC (Core: the node's /wallet/<name>; bcoin: its wallet port). */
  wallet: RpcCaller;
  network: NetworkName;
  /** 'auto' tries walletprocesspsbt and falls back to dumpprivkey when the wallet lacks it. */
  signer?: 'auto' | 'psbt' | 'dumpprivkey';
  logger?: Logger;
}

export class RpcPayoutWallet implements PayoutWallet {
  private signer: 'auto' | 'psbt' | 'dumpprivkey';
  private readonly coinbaseCache = new Map<string, boolean>();

  constructor(private readonly o: RpcWalletOptions) {
    this.signer = o.signer ?? 'auto';
  }

  async coins(): Promise<Coin[]> {
    let list: ListUnspentEntry[];
    try {
      list = await this.o.wallet.call<ListUnspentEntry[]>('listunspent', [0, 9_999_999]);
    } catch (e) {
      throw walletError(e, 'listunspent');
    }
    const out: Coin[] = [];
    for (const u of list) {
      if (u.spendable === false) continue;
      // Unconfirmed coins only when the wallet vouches for them (our own change); bcoin does not say: skip.
      if (u.confirmations < 1 && u.safe !== true) continue;
      if (u.confirmations < 101 && (await this.isCoinbase(u.txid))) continue;
      out.push({
        txid: u.txid, vout: u.vout, value: BigInt(Math.round(u.amount * 1e8)), script: Buffer.from(u.scriptPubKey, 'hex'),
        confirmations: u.confirmations, address: u.address,
      });
    }
    return out;
  }

  /** Core and the embedded wallet hide immature coinbases; bcoin lists them: ask the transaction. */
  private async isCoinbase(id: string): Promise<boolean> {
    const cached = this.coinbaseCache.get(id);
    if (cached !== undefined) return cached;
    let cb = false;
    try {
      const t = await this.o.wallet.call<{ hex?: string; generated?: boolean }>('gettransaction', [id]);
      if (t.generated) cb = true;
      else if (t.hex) {
        const tx = parseTx(fromHex(t.hex));
        cb = tx.inputs.length === 1 && tx.inputs[0].vout === 0xffffffff && tx.inputs[0].prevTxid.every((b) => b === 0);
      }
    } catch (e) {
      throw walletError(e, 'gettransaction');
    }
    if (this.coinbaseCache.size > 10_000) this.coinbaseCache.clear();
    this.coinbaseCache.set(id, cb);
    return cb;
  }

  async changeScript(): Promise<Buffer> {
    let addr: string;
    try {
      addr = await this.o.wallet.call<string>('getrawchangeaddress', []);
    } catch (e) {
      throw walletError(e, 'getrawchangeaddress');
    }
    return walletAddressScript(addr, this.o.network);
  }

  async sign(tx: BuiltTx): Promise<SignedTx> {
    let hex: string;
    if (this.signer !== 'dumpprivkey') {
      try {
        hex = await this.signPsbt(tx);
        this.signer = 'psbt';
        return measure(hex);
      } catch (e) {
        if (!(this.signer === 'auto' && e instanceof RpcError && e.kind === 'rpc' && e.code === -32601)) throw walletError(e, 'walletprocesspsbt');
        this.o.logger?.info('the wallet has no walletprocesspsbt: signing with the keys of the inputs (dumpprivkey)');
        this.signer = 'dumpprivkey';
      }
    }
    try {
      hex = await this.signWithKeys(tx);
    } catch (e) {
      throw walletError(e, 'dumpprivkey');
    }
    return measure(hex);
  }

  private async signPsbt(tx: BuiltTx): Promise<string> {
    const r = await this.o.wallet.call<{ psbt: string; complete: boolean; hex?: string }>('walletprocesspsbt', [Buffer.from(tx.psbt).toString('base64'), true, 'ALL', true, true]);
    if (!r.complete) throw new WalletError('error', 'the wallet could not sign every input of the payout');
    if (r.hex) return r.hex;
    const t = Transaction.fromPSBT(Buffer.from(r.psbt, 'base64'));
    return Buffer.from(t.extract()).toString('hex');
  }

  private async signWithKeys(tx: BuiltTx): Promise<string> {
    // The amounts come from our own listunspent, so a legacy input's witness UTXO is trusted (no fee attack here).
    const t = Transaction.fromPSBT(tx.psbt, { allowLegacyWitnessUtxo: true });
    const keys = new Map<string, Uint8Array>();
    for (let i = 0; i < tx.inputs.length; i++) {
      const c = tx.inputs[i];
      const address = c.address ?? Address(NETS[this.o.network][0]).encode(OutScript.decode(c.script));
      let key = keys.get(address);
      if (!key) {
        key = decodeWif(await this.o.wallet.call<string>('dumpprivkey', [address]));
        keys.set(address, key);
      }
      t.signIdx(key, i);
      t.finalizeIdx(i);
    }
    return Buffer.from(t.extract()).toString('hex');
  }

  async broadcast(hex: string): Promise<BroadcastOutcome> {
    try {
      await this.o.node.call<string>('sendrawtransaction', [hex]);
      return { kind: 'accepted' };
    } catch (e) {
      if (!(e instanceof RpcError)) return { kind: 'rejected', reason: (e as Error).message };
      if (e.kind !== 'rpc') return { kind: 'unreachable', reason: e.detail };
      const msg = e.rpcMessage ?? e.detail;
      if (e.code === -27 || /already in (the )?block ?chain|outputs already in utxo set/i.test(msg)) return { kind: 'confirmed' };
      if (/already (in|have)|txn-already-known|txn-already-in-mempool/i.test(msg)) return { kind: 'known' };
      return { kind: 'rejected', reason: msg };
    }
  }

  async status(id: string): Promise<TxStatus> {
    try {
      const t = await this.o.wallet.call<{ confirmations: number; blockhash?: string | null }>('gettransaction', [id]);
      if (t.confirmations > 0) return { kind: 'confirmed', confirmations: t.confirmations, blockHash: t.blockhash ?? null };
      if (t.confirmations < 0) return { kind: 'conflicted', depth: -t.confirmations };
      return { kind: 'pending' };
    } catch (e) {
      if (!(e instanceof RpcError && e.kind === 'rpc')) throw walletError(e, 'gettransaction');
    }
    // Not a wallet transaction (an external signer's): ask the node.
    try {
      const t = await this.o.node.call<{ confirmations?: number; blockhash?: string }>('getrawtransaction', [id, true]);
      return t.confirmations && t.confirmations > 0 ? { kind: 'confirmed', confirmations: t.confirmations, blockHash: t.blockhash ?? null } : { kind: 'pending' };
    } catch (e) {
      if (e instanceof RpcError && e.kind === 'rpc') return { kind: 'unknown' };
      throw walletError(e, 'getrawtransaction');
    }
  }

  async estimateFeeRate(target: number): Promise<number | null> {
    try {
      const r = await this.o.node.call<{ feerate?: number; fee?: number; errors?: string[] }>('estimatesmartfee', [target]);
      const btcPerKvb = r.feerate ?? r.fee;
      return typeof btcPerKvb === 'number' && btcPerKvb > 0 ? (btcPerKvb * 1e8) / 1000 : null;
    } catch (e) {
      if (e instanceof RpcError && e.kind === 'rpc') return null;
      throw walletError(e, 'estimatesmartfee');
    }
  }

  async fetchTx(id: string): Promise<string | null> {
    for (const [caller, method, params] of [[this.o.wallet, 'gettransaction', [id]], [this.o.node, 'getrawtransaction', [id, false]]] as const) {
      try {
        const r = await caller.call<{ hex?: string } | string>(method, [...params]);
        const hex = typeof r === 'string' ? r : r.hex;
        if (hex) return hex;
      } catch (e) {
        if (!(e instanceof RpcError && e.kind === 'rpc')) throw walletError(e, method);
      }
    }
    return null;
  }
}

/** txid and virtual size of a signed transaction. */
export function measure(hex: string): SignedTx {
  const tx = parseTx(fromHex(hex));
  const weight = serializeTx(tx, false).length * 3 + fromHex(hex).length;
  return { hex, txid: hashToDisplay(txidOf(tx)), vsize: Math.ceil(weight / 4) };
}
