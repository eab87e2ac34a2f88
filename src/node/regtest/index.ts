// Embedded regtest chain: an in-process Bitcoin chain served over the Bitcoin Core JSON-RPC subset a pool uses,
// so the pool runs (and tests run) without a bitcoind, through the same RPC client as for a real node.

import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { EmbeddedChain, type EmbeddedChainOptions } from './chain.ts';
import { createDispatch } from './rpc-methods.ts';
import { createRpcServer } from './rpc-server.ts';

export { EmbeddedChain, type EmbeddedChainOptions, type MineBlockOptions, type MinedBlock } from './chain.ts';
export type { BlockEntry } from './block-index.ts';
export type { OfferedTx } from './mempool.ts';
export { syntheticTx } from './mempool.ts';
export type { EmbeddedBlockTemplate } from './template.ts';
export { RpcFault } from './errors.ts';
export {
  REGTEST_BITS, REGTEST_GENESIS_HASH, REGTEST_HALVING_INTERVAL, bitsForDifficulty, blockSubsidy, regtestGenesis,
} from './params.ts';

export interface StartEmbeddedChainOptions extends EmbeddedChainOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default "hashhub". */
  rpcUser?: string;
  /** Default: 32 random hex characters. */
  rpcPassword?: string;
  /** A getblocktemplate long poll answers with the current template after this long, ms. Default 60000. */
  longpollTimeoutMs?: number;
  /** Default 32 MiB. */
  maxBodyBytes?: number;
}

export interface EmbeddedChainHandle {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  host: string;
  port: number;
  user: string;
  password: string;
  chain: EmbeddedChain;
  /** Stops the chain's timers, answers pending long polls, closes every socket and the listener. */
  close(): Promise<void>;
}

export async function startEmbeddedChain(opts: StartEmbeddedChainOptions = {}): Promise<EmbeddedChainHandle> {
  const host = opts.host ?? '127.0.0.1';
  const user = opts.rpcUser ?? 'hashhub';
  const password = opts.rpcPassword ?? randomBytes(16).toString('hex');
  const chain = new EmbeddedChain(opts);
  const dispatch = createDispatch(chain, { longpollTimeoutMs: opts.longpollTimeoutMs ?? 60_000, startedAt: chain.nowSec() });
  const rpc = createRpcServer(dispatch, { user, password, logger: opts.logger, maxBodyBytes: opts.maxBodyBytes });
  try {
    await new Promise<void>((resolve, reject) => {
      rpc.server.once('error', reject);
      rpc.server.listen(opts.port ?? 0, host, () => { rpc.server.off('error', reject); resolve(); });
    });
  } catch (err) {
    chain.close();
    throw err;
  }
  const port = (rpc.server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${port}`;
  opts.logger?.info({ url, height: chain.height, bits: chain.bits.toString(16) }, 'embedded regtest chain listening');
  let closed: Promise<void> | null = null;
  return {
    url, host, port, user, password, chain,
    close: () => {
      closed ??= (async () => {
        chain.close();
        await rpc.close();
      })();
      return closed;
    },
  };
}
