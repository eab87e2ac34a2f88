// Embedded regtest chain: an in-process Bitcoin chain served over the Bitcoin Core JSON-RPC subset a pool uses,
// so the pool runs (and tests run) without a bitcoind, through the same RPC client as for a real node.

import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { hashToDisplay, parseTx, txid } from '../../chain/index.ts';
import { ChainDataError } from './block-file.ts';
import { EmbeddedChain, type EmbeddedChainOptions } from './chain.ts';
import { openChainData } from './restore.ts';
import { createDispatch } from './rpc-methods.ts';
import { createRpcServer } from './rpc-server.ts';
import { transactionMethods, walletMethods } from './rpc-wallet.ts';
import { EmbeddedWallet } from './wallet.ts';
import { WalletFile } from './wallet-file.ts';
import { HashBlockPublisher } from './zmq-publisher.ts';

export { EmbeddedChain, type EmbeddedChainOptions, type LongpollWait, type MineBlockOptions, type MinedBlock } from './chain.ts';
export { ChainDataError } from './block-file.ts';
export type { BlockEntry } from './block-index.ts';
export type { OfferedTx } from './mempool.ts';
export { syntheticTx } from './mempool.ts';
export type { EmbeddedBlockTemplate } from './template.ts';
export { RpcFault } from './errors.ts';
export { EmbeddedWallet, REGTEST_NETWORK } from './wallet.ts';

/**
 * Private key 1: its P2WPKH address is bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080 (the BIP173 example, the
 * pool's default regtest payout address), so the embedded wallet owns the coinbases of a pool left at defaults.
 * Regtest only: everyone knows this key.
 */
export const WELL_KNOWN_REGTEST_KEY = Buffer.from('00'.repeat(31) + '01', 'hex');
export {
  REGTEST_BITS, REGTEST_GENESIS_HASH, REGTEST_HALVING_INTERVAL, SIGNET_GENESIS_HASH, bitsForDifficulty, blockSubsidy,
  regtestGenesis, signetGenesis,
} from './params.ts';

export interface StartEmbeddedChainOptions extends EmbeddedChainOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default "hashhub" (with a password), "__cookie__" with cookie authentication. */
  rpcUser?: string;
  /**
   * Default: 32 random hex characters; or, with `dataDir` and no password, cookie authentication as Core does
   * it: a fresh `<dataDir>/.cookie` ("__cookie__:<64 hex>", mode 0600) at every start, deleted at close.
   */
  rpcPassword?: string;
  /**
   * The chain's data directory: blocks (blocks.dat), the coins at the pruned height (chainstate.dat) and the
   * wallet's keys and waiting transactions (wallet.dat) are kept there and read back at start, so a restart
   * (after a clean stop or a kill) continues with the same tip, coins and wallet; the cookie lives there too.
   * Unset: the chain lives in memory only.
   */
  dataDir?: string;
  /** A getblocktemplate long poll answers with the unchanged template after this long, ms. Default: never (Core). */
  longpollTimeoutMs?: number;
  /** A long poll notices mempool changes after this long, ms. Default 60000 (Core). */
  longpollMempoolFirstMs?: number;
  /** …and then at this interval, ms. Default 10000 (Core). */
  longpollMempoolEveryMs?: number;
  /** Default 32 MiB. */
  maxBodyBytes?: number;
  /** Requests run at once (-rpcthreads). Default 16. */
  rpcThreads?: number;
  /** Requests that may wait for a worker before new ones get HTTP 503 "Work queue depth exceeded" (-rpcworkqueue). Default 64. */
  rpcWorkQueue?: number;
  /** Publish hashblock over ZMQ here (-zmqpubhashblock), e.g. tcp://127.0.0.1:28332; port 0 picks a free one. */
  zmqPubHashBlock?: string;
  /** Private keys the wallet starts with; default [WELL_KNOWN_REGTEST_KEY]. */
  walletKeys?: Uint8Array[];
}

export interface EmbeddedChainHandle {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  host: string;
  port: number;
  user: string;
  password: string;
  /** `<dataDir>/.cookie` when the chain uses cookie authentication. */
  cookieFile?: string;
  /** The ZMQ hashblock publisher's address (the real port when 0 was asked). */
  zmqAddress?: string;
  chain: EmbeddedChain;
  /** RPC work items running and queued, and requests refused with 503 so far. */
  readonly work: { running: number; queued: number; rejected: number };
  /** The chain's wallet (Core's wallet RPC on the same endpoint, also under /wallet/<name>). */
  wallet: EmbeddedWallet;
  /** Stops the chain's timers, answers pending long polls, closes every socket and the listener. */
  close(): Promise<void>;
}

/**
 * Starts the chain and its JSON-RPC server. With `dataDir`, blocks stored there are replayed first; a damaged
 * block file or a data dir made with other settings rejects with a one-line ChainDataError.
 */
export async function startEmbeddedChain(opts: StartEmbeddedChainOptions = {}): Promise<EmbeddedChainHandle> {
  const host = opts.host ?? '127.0.0.1';
  const useCookie = opts.dataDir !== undefined && opts.rpcPassword === undefined;
  const user = opts.rpcUser ?? (useCookie ? '__cookie__' : 'hashhub');
  const password = opts.rpcPassword ?? randomBytes(useCookie ? 32 : 16).toString('hex');
  const chain = new EmbeddedChain(opts);
  const cleanups: Array<() => void | Promise<void>> = [() => chain.close()];
  const undo = async (): Promise<void> => { for (const c of cleanups.reverse()) await c(); };
  let cookieFile: string | undefined;
  let publisher: HashBlockPublisher | null = null;
  let walletFile: WalletFile | null = null;
  try {
    if (opts.dataDir !== undefined) {
      const data = openChainData(chain, opts.dataDir, opts.logger);
      cleanups.push(() => data.close());
      opts.logger?.info({ dir: opts.dataDir, height: chain.height, ...data.restored }, 'embedded chain: blocks read from the data dir');
      const wf = new WalletFile(opts.dataDir);
      walletFile = wf;
      cleanups.push(() => wf.close());
      if (wf.tornBytes > 0) opts.logger?.warn({ file: wf.file, bytes: wf.tornBytes }, 'embedded chain: a partial record at the end of the wallet file (a crash during its write) was cut off');
    }
    if (opts.zmqPubHashBlock !== undefined) {
      const pub = await HashBlockPublisher.bind(opts.zmqPubHashBlock);
      publisher = pub;
      cleanups.push(() => pub.close());
      chain.on('tip', (tip, previous) => {
        // Core notifies only when the new tip is not an ancestor of the old one (blocks were connected).
        if (chain.index.ancestor(previous, tip.height) !== tip) pub.publish(tip.hashHex);
      });
    }
  } catch (err) {
    await undo();
    throw err;
  }
  const wf = walletFile;
  const wallet = new EmbeddedWallet(chain, {
    importKeys: opts.walletKeys ?? [WELL_KNOWN_REGTEST_KEY], savedKeys: wf?.keys, now: opts.now,
    saveKey: wf ? (priv, pub) => wf.addKey(priv, pub) : undefined,
  });
  if (wf) {
    resubmitTransactions(chain, wf, opts.logger);
    chain.on('tx', (id) => {
      try {
        wf.addTx((chain.getOffered(id) as { bytes: Buffer }).bytes);
      } catch (err) {
        opts.logger?.error({ file: wf.file, txid: id, err: (err as Error).message }, 'embedded chain: cannot write to the wallet file');
      }
    });
  }
  const zmqNotifications = () => (publisher ? [{ type: 'pubhashblock', address: publisher.address, hwm: publisher.hwm }] : []);
  const dispatch = createDispatch(chain, {
    longpoll: {
      mempoolFirstMs: opts.longpollMempoolFirstMs ?? 60_000,
      mempoolEveryMs: opts.longpollMempoolEveryMs ?? 10_000,
      timeoutMs: opts.longpollTimeoutMs,
    },
    zmqNotifications,
    startedAt: chain.nowSec(),
    extraMethods: { ...transactionMethods(chain), ...walletMethods(chain, wallet) },
  });
  const rpc = createRpcServer(dispatch, {
    user, password, logger: opts.logger, maxBodyBytes: opts.maxBodyBytes, rpcThreads: opts.rpcThreads, rpcWorkQueue: opts.rpcWorkQueue,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      rpc.server.once('error', reject);
      rpc.server.listen(opts.port ?? 0, host, () => { rpc.server.off('error', reject); resolve(); });
    });
    if (useCookie) cookieFile = writeCookie(opts.dataDir as string, `${user}:${password}`);
  } catch (err) {
    await rpc.close();
    await undo();
    throw err;
  }
  const port = (rpc.server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${port}`;
  opts.logger?.info({ url, network: chain.network, height: chain.height, bits: chain.bits.toString(16), zmq: publisher?.address }, 'embedded chain listening');
  let closed: Promise<void> | null = null;
  return {
    url, host, port, user, password, chain, wallet, cookieFile, zmqAddress: publisher?.address,
    get work() { return { ...rpc.work }; },
    close: () => {
      closed ??= (async () => {
        chain.close();
        await rpc.close();
        // Core deletes its cookie at shutdown: a client holding the old one gets 401 and re-reads it.
        if (cookieFile) rmSync(cookieFile, { force: true });
        await undo();
      })();
      return closed;
    },
  };
}

/**
 * The transactions of the wallet file that no block carries go back to the mempool, as Core's wallet
 * rebroadcasts its own at start (one now spent by a block, or otherwise refused, is dropped). The file then keeps
 * only what the chain still remembers.
 */
function resubmitTransactions(chain: EmbeddedChain, wf: WalletFile, logger?: StartEmbeddedChainOptions['logger']): void {
  const keep: Buffer[] = [];
  for (const bytes of wf.txs) {
    let id: string;
    try {
      id = hashToDisplay(txid(parseTx(bytes)));
    } catch {
      continue;
    }
    const found = chain.locateTx(id);
    if (!found?.block && !found?.inMempool) {
      try {
        chain.acceptTransaction(bytes);
      } catch (err) {
        logger?.info({ txid: id, reason: (err as Error).message }, 'embedded chain: a wallet transaction is not valid any more, dropped');
        continue;
      }
    }
    if (chain.getOffered(id)) keep.push(bytes);
  }
  if (keep.length === wf.txs.length) return;
  try {
    wf.rewrite(keep);
  } catch (err) {
    logger?.error({ file: wf.file, err: (err as Error).message }, 'embedded chain: cannot rewrite the wallet file');
  }
}

/** Core's GenerateAuthCookie: written to a temporary file, then renamed; readable by the owner only. */
function writeCookie(dir: string, cookie: string): string {
  const file = path.join(dir, '.cookie');
  const tmp = `${file}.tmp`;
  try {
    writeFileSync(tmp, cookie, { mode: 0o600 });
    renameSync(tmp, file);
  } catch (err) {
    throw new ChainDataError(`embedded chain: cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'check the permissions of the data dir');
  }
  return file;
}
