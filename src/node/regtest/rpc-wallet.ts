// Transaction and wallet RPC methods of the embedded chain, in Bitcoin Core's shapes (src/rpc/rawtransaction.cpp,
// src/rpc/fees.cpp, src/rpc/blockchain.cpp getblockstats, src/wallet/rpc/*.cpp): what a pool's payouts use.

import { addressToScript, fromHex, hashToDisplay, parseBlock, txid } from '../../chain/index.ts';
import type { EmbeddedChain } from './chain.ts';
import { RPC_DESERIALIZATION_ERROR, RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER, RPC_MISC_ERROR, RpcFault } from './errors.ts';
import { blockSubsidy } from './params.ts';
import { type Method, btc, opt, p, parseHash, toInt, txJson } from './rpc-methods.ts';
import type { EmbeddedWallet } from './wallet.ts';
import { REGTEST_NETWORK } from './wallet.ts';
import { WIF } from '@scure/btc-signer';

function hexArg(v: unknown, what = 'TX decode failed'): Buffer {
  try {
    return fromHex(String(v));
  } catch {
    throw new RpcFault(RPC_DESERIALIZATION_ERROR, what);
  }
}

function blockAt(chain: EmbeddedChain, v: unknown) {
  if (typeof v === 'number') {
    const h = toInt(v, 'hash_or_height');
    if (h < 0 || h > chain.height) throw new RpcFault(RPC_INVALID_PARAMETER, `Target block height ${h} after current tip ${chain.height}`);
    return chain.index.active[h];
  }
  return chain.lookup(parseHash(v, 'hash_or_height'));
}

export function transactionMethods(chain: EmbeddedChain): Record<string, Method> {
  return {
    sendrawtransaction: {
      params: [p('hexstring', 'string'), opt('maxfeerate', 'number', 'string')],
      run: ([hex]) => chain.acceptTransaction(hexArg(hex)),
    },
    getrawtransaction: {
      params: [p('txid', 'string'), opt('verbose', 'bool', 'number'), opt('blockhash', 'string')],
      run: ([id, verbose]) => {
        const found = chain.locateTx(parseHash(id, 'parameter 1'));
        if (!found || (!found.block && !found.inMempool)) throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'No such mempool or blockchain transaction. Use gettransaction for wallet transactions.');
        if (!verbose) return found.bytes.toString('hex');
        return {
          ...txJson(chain, found.tx),
          ...(found.block ? { blockhash: found.block.hashHex, confirmations: chain.height - found.block.height + 1, blocktime: found.block.header.time } : {}),
        };
      },
    },
    getmempoolentry: {
      params: [p('txid', 'string')],
      run: ([id]) => {
        const found = chain.locateTx(parseHash(id, 'parameter 1'));
        if (!found?.inMempool) throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'Transaction not in mempool');
        const o = chain.getOffered(hashToDisplay(txid(found.tx)));
        return { vsize: Math.ceil((o?.weight ?? 0) / 4), weight: o?.weight ?? 0, fees: { base: btc(o?.fee ?? 0) }, 'bip125-replaceable': true };
      },
    },
    estimatesmartfee: {
      params: [p('conf_target', 'number'), opt('estimate_mode', 'string')],
      run: ([target]) => {
        const t = toInt(target, 'conf_target');
        if (t < 1 || t > 1008) throw new RpcFault(RPC_INVALID_PARAMETER, 'Invalid conf_target, must be between 1 and 1008');
        if (chain.feeEstimate === null) return { errors: ['Insufficient data or no feerate found'], blocks: 0 };
        // BTC/kvB, as Core answers.
        return { feerate: (chain.feeEstimate * 1000) / 1e8, blocks: t };
      },
    },
    getblockstats: {
      params: [p('hash_or_height', 'number', 'string'), opt('stats', 'array')],
      run: ([which, stats]) => {
        const e = blockAt(chain, which);
        if (!chain.index.isActive(e)) throw new RpcFault(RPC_MISC_ERROR, 'Block is not in chain');
        const bytes = chain.blockBytes(e);
        if (!bytes) throw new RpcFault(RPC_MISC_ERROR, 'Block not available (pruned data)');
        const block = parseBlock(bytes);
        const fees = e.fees ?? 0n;
        const totalOut = block.txs.slice(1).reduce((s, tx) => s + tx.outputs.reduce((a, o) => a + o.value, 0n), 0n);
        const all: Record<string, unknown> = {
          avgfee: block.txs.length > 1 ? Number(fees / BigInt(block.txs.length - 1)) : 0,
          blockhash: e.hashHex,
          height: e.height,
          ins: block.txs.slice(1).reduce((s, tx) => s + tx.inputs.length, 0),
          outs: block.txs.reduce((s, tx) => s + tx.outputs.length, 0),
          mediantime: e.mtp,
          subsidy: Number(blockSubsidy(e.height)),
          time: e.header.time,
          total_out: Number(totalOut),
          total_size: e.size - 80,
          total_weight: e.weight,
          totalfee: Number(fees),
          txs: block.txs.length,
        };
        if (!Array.isArray(stats) || stats.length === 0) return all;
        const out: Record<string, unknown> = {};
        for (const k of stats as unknown[]) {
          if (typeof k !== 'string' || !(k in all)) throw new RpcFault(RPC_INVALID_PARAMETER, `Invalid selected statistic '${String(k)}'`);
          out[k] = all[k];
        }
        return out;
      },
    },
  };
}

export function walletMethods(chain: EmbeddedChain, wallet: EmbeddedWallet): Record<string, Method> {
  const address = (a: unknown): Uint8Array => {
    try {
      return addressToScript(String(a), 'regtest');
    } catch {
      throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, `Invalid address: ${String(a)}`);
    }
  };
  return {
    getnewaddress: { params: [opt('label', 'string'), opt('address_type', 'string')], run: ([label]) => wallet.newAddress(typeof label === 'string' ? label : undefined) },
    listsinceblock: {
      params: [opt('blockhash', 'string'), opt('target_confirmations', 'number'), opt('include_watchonly', 'bool'), opt('include_removed', 'bool')],
      run: ([hash, target]) => {
        const t = target === undefined || target === null ? 1 : toInt(target, 'target_confirmations');
        if (t < 1) throw new RpcFault(RPC_INVALID_PARAMETER, 'Invalid parameter');
        return wallet.listSinceBlock(typeof hash === 'string' && hash !== '' ? parseHash(hash, 'blockhash') : null, t);
      },
    },
    getrawchangeaddress: { params: [opt('address_type', 'string')], run: () => wallet.newAddress() },
    getaddressinfo: { params: [p('address', 'string')], run: ([a]) => wallet.addressInfo(String(a), address(a)) },
    listunspent: {
      params: [opt('minconf', 'number'), opt('maxconf', 'number'), opt('addresses', 'array'), opt('include_unsafe', 'bool'), opt('query_options', 'object')],
      run: ([min, max, addrs]) => wallet.listUnspent(min === undefined || min === null ? 1 : toInt(min, 'minconf'),
        max === undefined || max === null ? 9_999_999 : toInt(max, 'maxconf'), addrs as string[] | undefined),
    },
    lockunspent: {
      params: [p('unlock', 'bool'), opt('transactions', 'array'), opt('persistent', 'bool')],
      run: ([unlock, outs]) => wallet.lockUnspent(unlock as boolean, outs as { txid: string; vout: number }[] | undefined),
    },
    listlockunspent: { params: [], run: () => wallet.listLockUnspent() },
    getbalance: { params: [opt('dummy', 'string'), opt('minconf', 'number'), opt('include_watchonly', 'bool'), opt('avoid_reuse', 'bool')], run: () => wallet.balance() },
    getbalances: { params: [], run: () => wallet.balances() },
    walletprocesspsbt: {
      params: [p('psbt', 'string'), opt('sign', 'bool'), opt('sighashtype', 'string'), opt('bip32derivs', 'bool'), opt('finalize', 'bool')],
      run: ([psbt, sign, sighash, , finalize]) => {
        if (sighash !== undefined && sighash !== null && sighash !== 'ALL' && sighash !== 'DEFAULT') throw new RpcFault(RPC_INVALID_PARAMETER, 'the embedded wallet signs with SIGHASH_ALL only');
        return wallet.processPsbt(String(psbt), sign !== false, finalize !== false);
      },
    },
    signrawtransactionwithwallet: {
      params: [p('hexstring', 'string'), opt('prevtxs', 'array'), opt('sighashtype', 'string')],
      run: ([hex]) => wallet.signRawTransaction(String(hex)),
    },
    dumpprivkey: { params: [p('address', 'string')], run: ([a]) => { address(a); return wallet.dumpPrivKey(String(a)); } },
    importprivkey: {
      params: [p('privkey', 'string'), opt('label', 'string'), opt('rescan', 'bool')],
      run: ([wif]) => {
        let key: Uint8Array;
        try {
          key = WIF(REGTEST_NETWORK).decode(String(wif));
        } catch {
          throw new RpcFault(RPC_INVALID_ADDRESS_OR_KEY, 'Invalid private key encoding');
        }
        wallet.addKey(key);
        return null;
      },
    },
    gettransaction: {
      params: [p('txid', 'string'), opt('include_watchonly', 'bool'), opt('verbose', 'bool')],
      run: ([id]) => wallet.getTransaction(parseHash(id, 'txid')),
    },
    getwalletinfo: { params: [], run: () => wallet.info() },
    encryptwallet: { params: [p('passphrase', 'string')], run: ([pass]) => wallet.encrypt(String(pass)) },
    walletpassphrase: { params: [p('passphrase', 'string'), p('timeout', 'number')], run: ([pass, t]) => wallet.unlock(String(pass), toInt(t, 'timeout')) },
    walletlock: { params: [], run: () => wallet.lock() },
  };
}

