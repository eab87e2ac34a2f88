import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { registerAccountingMetrics } from '../accounting/metrics.ts';
import type { Auth } from '../api/auth.ts';
import type { AccountingApiDeps } from '../api/routes/accounting.ts';
import { AccountingService, type AccountingConfig } from '../accounting/service.ts';
import type { RpcCaller } from '../accounting/chain-values.ts';
import { BitcoinRpc } from '../node/rpc.ts';
import type { Database } from '../store/db.ts';
import type { Config } from './config.ts';

// From the config file to the accounting service. The pool process starts it with its database and node RPC
// client (wiring into run-pool comes with the block path); a separate process could run it the same way.

export function accountingConfigFrom(cfg: Config): AccountingConfig {
  const a = cfg.accounting;
  const p = a.payouts;
  return {
    periodSeconds: a.periodSeconds,
    intervalMs: a.intervalMs,
    scheme: {
      fppsFeeBps: a.fees.fppsBps, pplnsFeeBps: a.fees.pplnsBps, soloFeeBps: a.fees.soloBps, defaultScheme: a.defaultScheme,
      pplnsN: a.pplns.n, pplnsMaxWindowSeconds: a.pplns.maxWindowSeconds,
    },
    allowedSchemes: a.allowedSchemes,
    lateCheckPeriods: a.lateCheckPeriods,
    payouts: {
      enabled: p.enabled, intervalMs: p.intervalMs, mode: p.mode, defaultThreshold: BigInt(p.thresholdSats), minThreshold: BigInt(p.minThresholdSats),
      addressChangeDelaySeconds: p.addressChangeDelaySeconds, confirmations: p.confirmations, confTarget: p.confTarget, fallbackSatVb: p.fallbackSatVb,
      maxSatVb: p.maxSatVb, minSatVb: p.minSatVb, maxOutputs: p.maxOutputs, rebroadcastSeconds: p.rebroadcastSeconds, signer: p.signer,
    },
    deposits: {
      enabled: a.deposits.enabled, confirmations: a.deposits.confirmations ?? (cfg.network === 'regtest' ? 3 : 6), reorgWatchBlocks: a.deposits.reorgWatchBlocks,
    },
  };
}

/** The accounting service for a pool process: its database, its node RPC client, the wallet RPC from config. */
export function createAccountingService(cfg: Config, db: Database, node: RpcCaller & { close?(): void }, log: Logger): { service: AccountingService; close(): void } {
  const p = cfg.accounting.payouts;
  const walletRpc = p.walletUrl
    ? new BitcoinRpc({ endpoints: [{ url: p.walletUrl, user: p.walletUser, password: p.walletPassword }], logger: log.child({ mod: 'wallet-rpc' }) })
    : undefined;
  const service = new AccountingService({
    db, node, walletRpc, network: cfg.network, config: accountingConfigFrom(cfg), logger: log.child({ mod: 'accounting' }),
  });
  return { service, close: () => walletRpc?.close() };
}

/** What the API needs to serve accounting (ApiDeps.accounting), and its metrics on the API's registry. */
export function accountingApi(cfg: Config, service: AccountingService, auth: Auth, registry?: Registry): AccountingApiDeps {
  if (registry) registerAccountingMetrics(registry, service);
  return { service, auth, openRegistration: cfg.accounting.openRegistration };
}
