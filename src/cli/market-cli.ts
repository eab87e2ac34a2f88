// `hashhub market …`: the market from the command line, through the REST API (an account token, or the operator
// token acting for an account). `hashhub index …`: the daily index straight from the database, to recompute a
// day bit for bit and compare it with what was published, or to correct it with a logged reason.

import { Command } from 'commander';
import { loadConfig } from './config.ts';
import { openDatabase } from '../store/index.ts';
import { marketConfigFrom } from '../market/config.ts';
import { MarketError } from '../market/errors.ts';
import { correctIndexInTx, recomputeIndex } from '../market/index-run.ts';
import { formatRational } from '../market/units.ts';
import { apiCall, operatorTokenFromConfig } from './api-client.ts';
import { CliError } from './errors.ts';


interface ApiOpts { api?: string; token?: string; account?: string; json?: boolean; config?: string }

/** --price as a whole number of sat/PH/day. Number() would pass "45,000" or "45k" on as NaN, which JSON sends as null. */
function priceArg(v: string): number {
  if (!/^\d{1,12}$/.test(v.trim())) throw new CliError(`--price must be a whole number of sat/PH/day (got "${v}")`);
  return Number(v.trim());
}

function tokenOf(o: ApiOpts): string | undefined {
  return o.token ?? process.env.HASHHUB_TOKEN ?? process.env.HASHHUB_OPERATOR_TOKEN ?? operatorTokenFromConfig(o.config);
}

const api = (o: ApiOpts, method: string, url: string, body?: unknown): Promise<unknown> =>
  apiCall({ api: o.api, config: o.config, token: tokenOf(o), account: o.account }, method, url, body);

const out = (o: ApiOpts, v: unknown, human: () => string) => process.stdout.write((o.json ? JSON.stringify(v, null, 2) : human()) + '\n');

function withApi(c: Command): Command {
  return c
    .option('--api <url>', 'API base URL (HASHHUB_API_URL, default from the config: api.host, api.port)', undefined)
    .option('--token <token>', 'account or operator token (also HASHHUB_TOKEN; the operator token file otherwise)')
    .option('--account <name>', 'with the operator token: the account to act for')
    .option('-c, --config <file>', 'config file (the API\'s host and port, the operator token file)')
    .option('--json', 'print the API answer as JSON');
}

function orderLine(x: Record<string, unknown>): string {
  const last = x.lastTick as Record<string, unknown> | null;
  const reason = last?.reason ? ` (${(last.reason as { code: string }).code})` : '';
  const price = x.side === 'bid' ? `max ${x.maxPrice}` : `min ${x.minPrice}`;
  const size = x.side === 'bid' ? `limit ${x.limit} PH/s, budget ${x.budget} sat, spent ${x.spent}` : `cap ${x.cap ?? 'none'}, workers ${Array.isArray(x.workers) ? (x.workers as unknown[]).length : x.workers}`;
  const fill = last ? `; tick ${last.tick}: fill ${last.fill} PH/s${last.queuePosition ? `, queue #${last.queuePosition}` : ''}${reason}` : '';
  return `${x.side} ${x.id}  ${x.state}${x.stateCode ? ` [${x.stateCode}: ${x.stateMessage}]` : ''}  ${price} sat/PH/day, ${size}${fill}`;
}

export function marketCommand(): Command {
  const market = new Command('market').description('the hashrate market through the REST API: bid, ask, cancel, book, orders, index');

  withApi(market.command('bid'))
    .description('place a bid (the budget is escrowed from your balance)')
    .requiredOption('--price <sat>', 'maximum price, sat/PH/day', priceArg)
    .requiredOption('--limit <PH/s>', 'hashrate limit, PH/s (decimals allowed)')
    .requiredOption('--budget <sat>', 'budget, sat')
    .requiredOption('--pool <url>', 'your pool: stratum+tcp://host:port or stratum+ssl://host:port')
    .requiredOption('--user <user>', 'user name at your pool')
    .option('--password <password>', 'password at your pool', 'x')
    .option('--backup <url,user[,password]...>', 'a backup pool (repeatable)', (v, acc: string[]) => [...acc, v], [])
    .option('--client-id <id>', 'client order id (a repeat returns the first order)')
    .option('--end <time>', 'end time, ISO 8601')
    .action(async (o: ApiOpts & { price: number; limit: string; budget: string; pool: string; user: string; password: string; backup: string[]; clientId?: string; end?: string }) => {
      const destinations = [{ url: o.pool, user: o.user, password: o.password }, ...o.backup.map((b) => {
        const [url, user, password] = b.split(',');
        if (!url || !user) throw new CliError(`--backup "${b}": expected url,user[,password]`);
        return { url, user, password: password ?? 'x' };
      })];
      const r = await api(o, 'POST', '/api/v1/market/bids', {
        maxPrice: o.price, limit: o.limit, budget: o.budget, destinations, ...(o.clientId ? { clientOrderId: o.clientId } : {}), ...(o.end ? { endTime: o.end } : {}),
      });
      out(o, r, () => orderLine(r as Record<string, unknown>));
    });

  withApi(market.command('ask'))
    .description('offer your workers (or the operator: any account.worker) at a minimum price')
    .requiredOption('--price <sat>', 'minimum price, sat/PH/day', priceArg)
    .requiredOption('--workers <names>', '"all", or comma-separated worker names')
    .option('--cap <PH/s>', 'hashrate cap, PH/s')
    .option('--client-id <id>', 'client order id')
    .option('--end <time>', 'end time, ISO 8601')
    .action(async (o: ApiOpts & { price: number; workers: string; cap?: string; clientId?: string; end?: string }) => {
      const workers = o.workers === 'all' ? 'all' : o.workers.split(',').map((s) => s.trim()).filter(Boolean);
      const r = await api(o, 'POST', '/api/v1/market/asks', {
        minPrice: o.price, workers, ...(o.cap ? { cap: o.cap } : {}), ...(o.clientId ? { clientOrderId: o.clientId } : {}), ...(o.end ? { endTime: o.end } : {}),
      });
      out(o, r, () => orderLine(r as Record<string, unknown>));
    });

  withApi(market.command('cancel'))
    .description('cancel an order: free and immediate')
    .argument('<side>', 'bid or ask')
    .argument('<id>', 'order id')
    .action(async (side: string, id: string, o: ApiOpts) => {
      if (side !== 'bid' && side !== 'ask') throw new CliError(`side must be bid or ask (got "${side}")`);
      if (!/^\d+$/.test(id)) throw new CliError(`order id must be a number (got "${id}")`);
      const r = await api(o, 'DELETE', `/api/v1/market/${side}s/${id}`) as Record<string, unknown>;
      out(o, r, () => `${orderLine(r)}${r.releasedNow !== undefined ? `; ${r.releasedNow} sat released now` : ''}`);
    });

  withApi(market.command('orders'))
    .description('your bids and asks with their latest fill and reason')
    .action(async (o: ApiOpts) => {
      const bids = (await api(o, 'GET', '/api/v1/market/bids') as { bids: Record<string, unknown>[] }).bids;
      const asks = (await api(o, 'GET', '/api/v1/market/asks') as { asks: Record<string, unknown>[] }).asks;
      out(o, { bids, asks }, () => [...bids, ...asks].map(orderLine).join('\n') || 'no orders');
    });

  withApi(market.command('book'))
    .description('the book by price level and the latest tick')
    .action(async (o: ApiOpts) => {
      const b = await api(o, 'GET', '/api/v1/market/book') as {
        tick: { tick: number; price: number | null; depth: Record<string, string> } | null;
        bids: { price: number; orders: number; hashrate: string }[]; asks: { price: number; orders: number; hashrate: string }[];
      };
      out(o, b, () => {
        const lines = [b.tick ? `tick ${b.tick.tick}: price ${b.tick.price ?? 'none (no crossing)'}; depth bids ${b.tick.depth.bids} PH/s, asks ${b.tick.depth.asks}, matched ${b.tick.depth.matched}, available ${b.tick.depth.available}` : 'no tick cleared yet'];
        lines.push('  asks (sat/PH/day  PH/s  orders)');
        for (const a of [...b.asks].reverse()) lines.push(`    ${String(a.price).padStart(9)}  ${a.hashrate.padStart(10)}  ${a.orders}`);
        lines.push('  bids');
        for (const x of b.bids) lines.push(`    ${String(x.price).padStart(9)}  ${x.hashrate.padStart(10)}  ${x.orders}`);
        return lines.join('\n');
      });
    });

  withApi(market.command('index'))
    .description('the published daily index (default: yesterday, UTC)')
    .option('--day <YYYY-MM-DD>', 'UTC day')
    .action(async (o: ApiOpts & { day?: string }) => {
      const day = o.day ?? new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      const r = await api(o, 'GET', `/api/v1/market/index/${encodeURIComponent(day)}`) as Record<string, unknown>;
      out(o, r, () => `${r.day}: ${r.value ?? 'none'} sat/PH/day (${r.method}${r.note ? `: ${r.note}` : ''}); hashprice ${r.hashprice ?? 'n/a'}`);
    });
  return market;
}

export function indexCommand(): Command {
  const index = new Command('index').description('the daily hashhub index from the database');
  index.command('compute')
    .description('recompute a UTC day from the stored data and compare it with the published index (exit 1 if they differ)')
    .requiredOption('--day <YYYY-MM-DD>', 'UTC day')
    .option('-c, --config <file>', 'config file (DATABASE_URL or the embedded database)')
    .option('--json', 'print JSON')
    .action(async (o: { day: string; config?: string; json?: boolean }) => {
      await withDb(o.config, async (db, cfg) => {
        const r = await recomputeIndex(db, cfg, o.day);
        const exact = r.recomputed.exact ? formatRational(r.recomputed.exact, 4) : 'none';
        const report = {
          day: o.day, method: r.recomputed.method, value: r.recomputed.value, exact, digest: r.digest, note: r.recomputed.note,
          published: r.published ? { method: r.published.method, value: r.published.value, digest: r.published.inputsDigest } : null,
          identical: r.identical,
        };
        if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
        else {
          process.stdout.write(`${o.day}: ${r.recomputed.value ?? 'none'} sat/PH/day (${r.recomputed.method}, exact ${exact}, inputs ${r.digest.slice(0, 16)}…)\n`);
          if (r.recomputed.note) process.stdout.write(`  ${r.recomputed.note}\n`);
          process.stdout.write(r.published
            ? `  published: ${r.published.value ?? 'none'} (${r.published.method}, inputs ${r.published.inputsDigest.slice(0, 16)}…): ${r.identical ? 'identical' : 'DIFFERS'}\n`
            : '  not published yet\n');
        }
        if (r.published && !r.identical) process.exitCode = 1;
      });
    });
  index.command('correct')
    .description('re-publish a day from the stored data, logged with who and why (operator)')
    .requiredOption('--day <YYYY-MM-DD>', 'UTC day')
    .requiredOption('--reason <text>', 'why (kept in the public corrections log)')
    .option('--actor <name>', 'who', 'operator')
    .option('-c, --config <file>', 'config file')
    .action(async (o: { day: string; reason: string; actor: string; config?: string }) => {
      await withDb(o.config, async (db, cfg) => {
        const r = await db.transaction((tx) => correctIndexInTx(tx, cfg, o.day, o.actor, o.reason));
        process.stdout.write(r.changed ? `${o.day}: corrected to ${r.row.value ?? 'none'} (${r.row.method})\n` : `${o.day}: unchanged (${r.row.value ?? 'none'}); nothing logged\n`);
      });
    });
  return index;
}

async function withDb<T>(configFile: string | undefined, fn: (db: Awaited<ReturnType<typeof openDatabase>>, cfg: ReturnType<typeof marketConfigFrom>) => Promise<T>): Promise<T> {
  const cfg = loadConfig({ file: configFile });
  const db = await openDatabase({ url: cfg.database.url, dataDir: cfg.database.dataDir, connectTimeoutMs: cfg.database.connectTimeoutMs });
  try {
    return await fn(db, marketConfigFrom(cfg.market));
  } catch (e) {
    if (e instanceof MarketError) throw new CliError(`${e.code}: ${e.message}`);
    throw e;
  } finally {
    await db.close();
  }
}
