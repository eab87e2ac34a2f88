// `hashhub route add|list|show|stop`: hashrate routing (issue 12) through the REST API with the operator token
// (--token, HASHHUB_OPERATOR_TOKEN, or <dataDir>/operator.token from the config).

import { Command } from 'commander';
import { apiCall, operatorTokenFromConfig } from './api-client.ts';
import { CliError } from './errors.ts';

interface Opts { api?: string; token?: string; json?: boolean; config?: string }

function operatorToken(o: Opts): string | undefined {
  return o.token ?? process.env.HASHHUB_OPERATOR_TOKEN ?? operatorTokenFromConfig(o.config);
}

const call = (o: Opts, method: string, url: string, body?: unknown): Promise<unknown> =>
  apiCall({ api: o.api, config: o.config, token: operatorToken(o) }, method, url, body);

interface RouteView {
  id: number; name: string; state: string; code: string | null; message: string | null; workers: string[]; destinations: { url: string; user: string }[];
  routedSessions: number; workersFit: number | null; rate60s: { shares: number; hashesPerSecond: number; relativeError: number | null };
  totals: { accepted: number; rejected: number; stale: number; switchLost: number };
}

function line(r: RouteView): string {
  const rate = r.rate60s.shares ? `${(r.rate60s.hashesPerSecond / 1e9).toPrecision(4)} GH/s ±${((r.rate60s.relativeError ?? 0) * 100).toFixed(1)}% (${r.rate60s.shares} shares/60s)` : '0 H/s (no accepted share in 60 s)';
  return `#${r.id} ${r.state}${r.code ? ` [${r.code}: ${r.message}]` : ''}  ${r.workers.join(',')} → ${r.destinations.map((d) => d.url).join(' | ')}  ` +
    `sessions ${r.routedSessions}  ${rate}  accepted ${r.totals.accepted} rejected ${r.totals.rejected} stale ${r.totals.stale} switch-lost ${r.totals.switchLost}`;
}

const common = (c: Command) => c
  .option('--api <url>', 'API base URL (HASHHUB_API_URL, default from the config: api.host, api.port)')
  .option('--token <token>', 'operator token (HASHHUB_OPERATOR_TOKEN, else <dataDir>/operator.token)')
  .option('-c, --config <file>', 'config file (the API\'s host and port, the data directory)')
  .option('--json', 'print JSON');

function print(o: Opts, v: unknown, text: () => string): void {
  process.stdout.write(o.json ? `${JSON.stringify(v, null, 2)}\n` : `${text()}\n`);
}

export function routeCommand(): Command {
  const cmd = new Command('route').description('route workers to another pool (hashrate routing), metered on its answers');
  common(cmd.command('add'))
    .description('route workers ("account.worker" or "account") to a pool: stratum+tcp://host:port or stratum+ssl://…')
    .requiredOption('-w, --workers <list>', 'comma-separated workers or accounts')
    .requiredOption('-u, --url <url>', 'destination (repeat --backup for backups tried in order)')
    .requiredOption('--user <user>', 'user at the destination')
    .option('--password <password>', 'password at the destination', 'x')
    .option('--backup <url...>', 'backup destinations (same user and password)')
    .option('--name <name>', 'a name for the route')
    .option('--hashrate <hs>', 'take only this much hashrate from those workers, H/s (e.g. 5e12)', (v) => Number(v))
    .action(async (o: Opts & { workers: string; url: string; user: string; password: string; backup?: string[]; name?: string; hashrate?: number }) => {
      if (o.hashrate !== undefined && !(o.hashrate > 0 && Number.isFinite(o.hashrate))) throw new CliError('--hashrate must be a positive number of H/s');
      const workers = o.workers.split(',').map((w) => w.trim()).filter(Boolean);
      if (workers.length === 0) throw new CliError('--workers: at least one worker or account');
      const destinations = [o.url, ...(o.backup ?? [])].map((url) => ({ url, user: o.user, password: o.password }));
      const r = await call(o, 'POST', '/api/v1/routes', { name: o.name, workers, destinations, hashrate: o.hashrate }) as RouteView;
      print(o, r, () => `route ${line(r)}\n(probing: ready after the destination's first accepted share; \`hashhub route list\` shows its state)`);
    });
  common(cmd.command('list')).description('routes with their state, 60 s delivered rate and counts').action(async (o: Opts) => {
    const r = await call(o, 'GET', '/api/v1/routes') as { items: RouteView[] };
    print(o, r, () => (r.items.length ? r.items.map(line).join('\n') : 'no routes'));
  });
  common(cmd.command('show <id>')).description('one route: pauses, events, delivery per worker over the last hour').action(async (id: string, o: Opts) => {
    if (!/^\d+$/.test(id)) throw new CliError(`route id must be a number, got "${id}"`);
    const r = await call(o, 'GET', `/api/v1/routes/${id}`);
    print(o, r, () => JSON.stringify(r, null, 2));
  });
  common(cmd.command('stop <id>')).description('stop a route: its workers go back to pool work now').action(async (id: string, o: Opts) => {
    if (!/^\d+$/.test(id)) throw new CliError(`route id must be a number, got "${id}"`);
    const r = await call(o, 'POST', `/api/v1/routes/${id}/stop`) as RouteView;
    print(o, r, () => `stopped ${line(r)}`);
  });
  return cmd;
}
