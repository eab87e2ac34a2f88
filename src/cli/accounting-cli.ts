import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { apiBaseUrl } from './api-client.ts';
import { type Config, loadConfig } from './config.ts';
import { CliError } from './errors.ts';

// `hashhub payouts run|list|show|confirm|bump|cancel`, `hashhub accounts create|show`, `hashhub accounting
// status|verify|reconcile|fund`: clients of the running pool's API (the embedded chain and its wallet live inside
// that process), authenticated with the operator token from HASHHUB_OPERATOR_TOKEN, the config, or
// <dataDir>/operator.token, or with an account's token (--token) where an owner or watcher may ask.


interface Ctx { cfg: Config; api: string; token: string | null; json: boolean }

function context(o: { config?: string; api?: string; token?: string; json?: boolean }): Ctx {
  const cfg = loadConfig({ file: o.config });
  const api = apiBaseUrl(o.api, () => cfg);
  let token = o.token ?? cfg.api.operatorToken ?? null;
  if (!token) {
    try {
      token = fs.readFileSync(path.resolve(cfg.database.dataDir, 'operator.token'), 'utf8').trim() || null;
    } catch { /* no token: the call will say what is missing */ }
  }
  return { cfg, api, token, json: !!o.json };
}

async function call<T>(ctx: Ctx, method: string, url: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(ctx.api + url, {
      method,
      headers: { ...(ctx.token ? { authorization: `Bearer ${ctx.token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new CliError(`cannot reach the pool's API at ${ctx.api} (${(e as Error).cause ? String((e as Error & { cause: Error }).cause.message) : (e as Error).message}): is the pool running? (--api <url>)`);
  }
  const text = await res.text();
  let data: unknown = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new CliError(`${err?.code ?? `HTTP ${res.status}`}: ${err?.message ?? text.slice(0, 200)}`);
  }
  return data as T;
}

const sat = (s: string | number) => `${BigInt(s).toLocaleString('en-US')} sat`;

function out(ctx: Ctx, data: unknown, human: () => string): void {
  process.stdout.write(ctx.json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
}

function common(c: Command): Command {
  return c.option('-c, --config <file>', 'JSON config file').option('--api <url>', 'the pool\'s API (default from the config, or HASHHUB_API_URL)')
    .option('--token <token>', 'a token to use instead of the operator\'s').option('--json', 'print JSON');
}

type Opts = { config?: string; api?: string; token?: string; json?: boolean };

interface Batch { id: string; status: string; reason: string | null; total: string; lines: number; txid: string | null; confirmations: number; networkFee: string | null; createdAt: string }

function batchLine(b: Batch): string {
  return `#${b.id}  ${b.status.padEnd(18)} ${sat(b.total).padStart(22)}  ${String(b.lines).padStart(5)} output(s)  ${b.txid ?? '-'}  ${b.confirmations} conf${b.networkFee ? `  fee ${sat(b.networkFee)}` : ''}${b.reason ? `\n      why: ${b.reason}` : ''}`;
}

export function payoutsCommand(): Command {
  const cmd = new Command('payouts').description('payout batches (operator)');
  common(cmd.command('run').description('send stored payouts, follow them, start a batch now')).option('--psbt-dir <dir>', 'external signer mode: where to write the PSBT')
    .action(async (o: Opts & { psbtDir?: string }) => {
      const ctx = context(o);
      const r = await call<{ progressed: { kind: string; batchId?: string; txid?: string; reason?: string }[]; created: { kind: string; batchId?: string; txid?: string; reason?: string; psbt?: string; code?: string } }>(ctx, 'POST', '/api/v1/payouts/run');
      let psbtFile: string | null = null;
      if (r.created.kind === 'awaiting-signature' && r.created.psbt) {
        const dir = path.resolve(o.psbtDir ?? path.join(ctx.cfg.database.dataDir, 'psbt'));
        fs.mkdirSync(dir, { recursive: true });
        psbtFile = path.join(dir, `batch-${r.created.batchId}.psbt`);
        fs.writeFileSync(psbtFile, `${r.created.psbt}\n`, { mode: 0o600 });
      }
      out(ctx, { ...r, psbtFile }, () => [
        ...r.progressed.map((p) => `batch #${p.batchId}: ${p.kind}${p.txid ? ` ${p.txid}` : ''}${p.reason ? ` (${p.reason})` : ''}`),
        r.created.kind === 'nothing' ? `no new batch: ${r.created.reason}`
          : r.created.kind === 'pending' ? `batch #${r.created.batchId} pending (${r.created.code}): ${r.created.reason}`
            : r.created.kind === 'awaiting-signature' ? `batch #${r.created.batchId}: sign the PSBT in ${psbtFile}, send it, then \`hashhub payouts confirm <txid>\``
              : `batch #${r.created.batchId} signed and stored: ${r.created.txid} (sent on the next run)`,
      ].join('\n'));
    });
  common(cmd.command('list').description('payout batches, newest first')).option('-n, --limit <n>', 'how many', (v) => Number(v), 20)
    .action(async (o: Opts & { limit: number }) => {
      const ctx = context(o);
      const r = await call<{ total: number; items: Batch[] }>(ctx, 'GET', `/api/v1/payouts?limit=${o.limit}`);
      out(ctx, r, () => (r.items.length ? r.items.map(batchLine).join('\n') : 'no payout batches yet'));
    });
  common(cmd.command('show <batch>').description('one batch with its outputs')).action(async (id: string, o: Opts) => {
    const ctx = context(o);
    const r = await call<{ batch: Batch; lines: { account: string; address: string; amount: string }[] }>(ctx, 'GET', `/api/v1/payouts/${encodeURIComponent(id)}`);
    out(ctx, r, () => [batchLine(r.batch), ...r.lines.map((l) => `  ${l.account.padEnd(24)} ${l.address}  ${sat(l.amount)}`)].join('\n'));
  });
  common(cmd.command('confirm <txid>').description('external signer: the batch\'s PSBT was signed and sent as <txid>')).action(async (txid: string, o: Opts) => {
    const ctx = context(o);
    const r = await call<{ batchId: string }>(ctx, 'POST', '/api/v1/payouts/confirm', { txid });
    out(ctx, r, () => `batch #${r.batchId} is followed as ${txid} until it confirms`);
  });
  common(cmd.command('bump <batch> <satPerVb>').description('replace the batch\'s transaction (RBF, same inputs) at this fee rate'))
    .option('--force', 'above the configured fee rate cap').action(async (id: string, rate: string, o: Opts & { force?: boolean }) => {
      const ctx = context(o);
      const feeRate = Number(rate);
      if (!(feeRate > 0)) throw new CliError(`fee rate "${rate}" is not a positive number of sat/vB`);
      const r = await call<{ txid: string; fee: string; sent: boolean; reason?: string }>(ctx, 'POST', `/api/v1/payouts/${encodeURIComponent(id)}/bump`, { feeRate, force: !!o.force });
      out(ctx, r, () => r.sent
        ? `batch #${id} replaced by ${r.txid} (fee ${sat(r.fee)})`
        : `batch #${id}: the node refused the replacement ${r.txid} (fee ${sat(r.fee)}): ${r.reason}; it is sent again each run, and whichever transaction of the batch confirms settles it`);
    });
  common(cmd.command('cancel <batch>').description('return a batch\'s amounts to the balances (only when none of its transactions can confirm)'))
    .option('--psbt-destroyed', 'external signer: the batch\'s PSBT was never handed out, or every copy of it is destroyed (else void it first)')
    .action(async (id: string, o: Opts & { psbtDestroyed?: boolean }) => {
      const ctx = context(o);
      const r = await call<{ cancelled: boolean }>(ctx, 'POST', `/api/v1/payouts/${encodeURIComponent(id)}/cancel`, o.psbtDestroyed ? { psbtDestroyed: true } : undefined);
      out(ctx, r, () => `batch #${id} cancelled: its amounts are back in the balances`);
    });
  return cmd;
}

export function accountsCommand(): Command {
  const cmd = new Command('accounts').description('accounts and their tokens');
  common(cmd.command('create <name>').description('create an account (or give an account that mined its first owner token); prints the owner token once'))
    .action(async (name: string, o: Opts) => {
      const ctx = context(o);
      const r = await call<{ account: string; ownerToken: string; existed: boolean }>(ctx, 'POST', '/api/v1/accounts', { name });
      out(ctx, r, () => `account ${r.account}${r.existed ? ' (it had mined already)' : ''}\nowner token (shown once, keep it): ${r.ownerToken}`);
    });
  common(cmd.command('show <name>').description('balance, settings and recent payouts of an account')).action(async (name: string, o: Opts) => {
    const ctx = context(o);
    const a = encodeURIComponent(name);
    const [bal, set, pays] = await Promise.all([
      call<Record<string, string>>(ctx, 'GET', `/api/v1/accounts/${a}/balance`),
      call<{ payoutAddress: string | null; effectiveAddress: string | null; effectiveThreshold: string; scheme: string; nextScheme: { scheme: string; from: string } | null }>(ctx, 'GET', `/api/v1/accounts/${a}/settings`),
      call<{ items: { batchId: string; amount: string; status: string; txid: string | null; confirmations: number }[] }>(ctx, 'GET', `/api/v1/accounts/${a}/payouts?limit=10`),
    ]);
    out(ctx, { balance: bal, settings: set, payouts: pays.items }, () => [
      `account ${name}  scheme ${set.scheme}${set.nextScheme ? ` (→ ${set.nextScheme.scheme} from ${set.nextScheme.from})` : ''}`,
      `  balance ${sat(bal.balance)}  immature ${sat(bal.immature)}  in flight ${sat(bal.inFlight)}  paid ${sat(bal.paid)}${BigInt(bal.soloEarnings) > 0n ? `  solo ${sat(bal.soloEarnings)}` : ''}`,
      `  pays to ${set.effectiveAddress ?? '(no address yet)'} at ${sat(set.effectiveThreshold)}`,
      ...pays.items.map((p) => `  payout #${p.batchId} ${sat(p.amount)} ${p.status} ${p.txid ?? ''} ${p.confirmations} conf`),
    ].join('\n'));
  });
  common(cmd.command('credit <name> <sats>').description('operator credit to an account\'s balance (from operator_adjustments), kept with who and why'))
    .requiredOption('--reason <text>', 'why (kept with the entry)').requiredOption('--key <key>', 'an idempotency key (running it twice credits once)')
    .action(async (name: string, amount: string, o: Opts & { reason: string; key: string }) => {
      const ctx = context(o);
      if (!/^\d+$/.test(amount) || BigInt(amount) <= 0n) throw new CliError(`"${amount}" is not a positive whole number of satoshis`);
      if (!o.reason.trim()) throw new CliError('--reason must say why (it is kept with the entry)');
      const r = await call<{ status: string; balance: string }>(ctx, 'POST', `/api/v1/accounts/${encodeURIComponent(name)}/credits`, { amount, reason: o.reason, key: o.key });
      out(ctx, r, () => `${r.status === 'posted' ? `credited ${sat(amount)} to ${name}` : 'already credited under that key'}; balance ${sat(r.balance)}`);
    });
  common(cmd.command('deposit-address <name>').description('the account\'s deposit address (made by the node wallet the first time)')).action(async (name: string, o: Opts) => {
    const ctx = context(o);
    const r = await call<{ address: string; confirmations: number }>(ctx, 'GET', `/api/v1/accounts/${encodeURIComponent(name)}/deposit-address`);
    out(ctx, r, () => `${r.address}  (credited after ${r.confirmations} confirmation(s))`);
  });
  common(cmd.command('deposits <name>').description('deposits to the account\'s addresses, newest first')).option('-n, --limit <n>', 'how many', (v) => Number(v), 20)
    .action(async (name: string, o: Opts & { limit: number }) => {
      const ctx = context(o);
      const r = await call<{ items: { txid: string; vout: number; amount: string; state: string; confirmations: number; shortfall: string }[] }>(ctx, 'GET',
        `/api/v1/accounts/${encodeURIComponent(name)}/deposits?limit=${o.limit}`);
      out(ctx, r, () => (r.items.length ? r.items.map((x) => `${x.txid}:${x.vout}  ${sat(x.amount).padStart(20)}  ${x.state.padEnd(8)} ${x.confirmations} conf${
        BigInt(x.shortfall) > 0n ? `  SHORTFALL ${sat(x.shortfall)}` : ''}`).join('\n') : 'no deposits yet'));
    });
  return cmd;
}

export function accountingCommand(): Command {
  const cmd = new Command('accounting').description('the books (operator)');
  common(cmd.command('status').description('watermark, crediting progress, errors')).action(async (o: Opts) => {
    const ctx = context(o);
    const s = await call<{ watermark: { at: number | null; laggard: { source: string; committedTo: string; description: string | null } | null }; nextPeriod: string; fppsWaiting: string | null; lastError: string | null; errors: number; creditedButOrphaned: string[]; depositShortfalls?: { account: string; txid: string; vout: number; shortfall: string }[] }>(ctx, 'GET', '/api/v1/accounting/status');
    out(ctx, s, () => [
      `next period to credit: ${s.nextPeriod}${s.fppsWaiting ? ` (waiting: ${s.fppsWaiting})` : ''}`,
      `watermark: ${s.watermark.at === null ? 'no ingest source yet' : new Date(s.watermark.at).toISOString()}${s.watermark.laggard ? ` (held by ${s.watermark.laggard.description ?? s.watermark.laggard.source})` : ''}`,
      `errors: ${s.errors}${s.lastError ? ` (last: ${s.lastError})` : ''}`,
      ...(s.creditedButOrphaned.length ? [`ALERT: credited blocks that left the chain: ${s.creditedButOrphaned.join(', ')}`] : []),
      ...(s.depositShortfalls?.length ? [`ALERT: reversed deposits already spent (owed by the account): ${s.depositShortfalls.map((x) => `${x.account} ${x.txid}:${x.vout} ${sat(x.shortfall)}`).join(', ')}`] : []),
    ].join('\n'));
  });
  common(cmd.command('retire <source>').description('a pool process (spool) gone for good: stop waiting for its watermark')).action(async (source: string, o: Opts) => {
    const ctx = context(o);
    const r = await call<{ retired: boolean }>(ctx, 'POST', `/api/v1/accounting/sources/${encodeURIComponent(source)}/retire`);
    out(ctx, r, () => `source ${source} retired`);
  });
  common(cmd.command('verify').description('the ledger\'s self-check')).action(async (o: Opts) => {
    const ctx = context(o);
    const r = await call<{ ok: boolean; problems: string[] }>(ctx, 'GET', '/api/v1/accounting/verify');
    out(ctx, r, () => (r.ok ? 'the ledger is consistent' : r.problems.join('\n')));
    if (!r.ok) process.exitCode = 1;
  });
  common(cmd.command('reconcile').description('the ledger\'s wallet against the node wallet')).action(async (o: Opts) => {
    const ctx = context(o);
    const r = await call<Record<string, string>>(ctx, 'GET', '/api/v1/accounting/reconcile');
    out(ctx, r, () => `ledger wallet ${sat(r.ledgerWallet)} − in flight ${sat(r.inFlight)} = ${sat(r.expected)}; node wallet ${sat(r.node)}; difference ${sat(r.difference)}`);
  });
  common(cmd.command('fund <sats>').description('record coins the node wallet holds that the ledger does not know'))
    .requiredOption('--reason <text>', 'why (kept with the entry)').requiredOption('--key <key>', 'an idempotency key (running it twice records it once)')
    .action(async (amount: string, o: Opts & { reason: string; key: string }) => {
      const ctx = context(o);
      if (!/^\d+$/.test(amount)) throw new CliError(`"${amount}" is not a whole number of satoshis`);
      const r = await call<{ status: string }>(ctx, 'POST', '/api/v1/accounting/fund', { amount, reason: o.reason, key: o.key });
      out(ctx, r, () => (r.status === 'posted' ? `recorded ${sat(amount)}` : 'already recorded under that key'));
    });
  return cmd;
}
