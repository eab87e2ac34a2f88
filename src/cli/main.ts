import { Command } from 'commander';
import { minerCommand } from '../miner/cli.ts';
import { redactUrl } from '../store/db.ts';
import { migrate, openDatabase } from '../store/index.ts';
import { ConfigError, DEFAULT_REGTEST_ADDRESS, loadConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { startApi } from './run-api.ts';
import { runPool } from './run-pool.ts';

const program = new Command('hashhub')
  .description('hashhub: Bitcoin mining pool backend and hashrate spot market')
  .showHelpAfterError();

program
  .command('pool', { isDefault: true })
  .description('run the Stratum pool (embedded regtest chain when no node is configured)')
  .option('-c, --config <file>', 'JSON config file (also HASHHUB_CONFIG)')
  .option('-p, --port <port>', 'Stratum port (also HASHHUB_STRATUM_PORT)', (v) => Number(v))
  .action(async (o: { config?: string; port?: number }) => {
    const cfg = loadConfig({ file: o.config, overrides: { 'stratum.port': o.port } });
    const log = createLogger(cfg.logLevel);
    let observeDbWrite: ((s: number) => void) | undefined;
    const running = await runPool(cfg, log, { onDbWrite: (s) => observeDbWrite?.(s) });
    let api: Awaited<ReturnType<typeof startApi>> | null = null;
    if (cfg.api.enabled) {
      try {
        api = await startApi({
          pool: running.pool, node: running.rpc, stats: running.stats, dbPing: () => running.store.writer.ping(),
          ingest: () => running.ingest(), onDbWrite: (fn) => { observeDbWrite = fn; },
        }, {
          host: cfg.api.host, port: cfg.api.port,
          cors: cfg.api.cors.length === 0 ? false : cfg.api.cors.includes('*') ? true : cfg.api.cors,
          templateMaxAgeMs: 2 * cfg.node.refreshMs,
        }, log);
      } catch (e) {
        await running.stop();
        throw e;
      }
    }
    const apiWhere = cfg.api.host === '0.0.0.0' || cfg.api.host === '::' ? '127.0.0.1' : cfg.api.host;
    const address = cfg.payoutAddress ?? DEFAULT_REGTEST_ADDRESS;
    const where = cfg.stratum.host === '0.0.0.0' || cfg.stratum.host === '::' ? '127.0.0.1' : cfg.stratum.host;
    const url = `stratum+tcp://${where}:${running.port}`;
    process.stderr.write(
      `\nhashhub pool is running on ${cfg.network}${running.embedded ? ' (embedded regtest chain at ' + running.embedded.url + ')' : ''}\n` +
      `  Stratum:  ${url}${running.tlsPort ? `   TLS: stratum+ssl://${where}:${running.tlsPort}` : ''}\n` +
      `  Payout:   ${address}\n` +
      `  Database: ${running.store.db.target}\n` +
      (api ? `  API:      http://${apiWhere}:${api.port}/api/v1/pool   docs /docs   probes /health/live /health/ready   metrics /metrics\n` : '') +
      `  Point a miner at it, user "<account>.<worker>", any password (d=<n> suggests a difficulty):\n` +
      `    npx hashhub miner --url ${url} --user ${address}.rig1\n` +
      `    minerd -a sha256d -o ${url} -u ${address}.cpu -p x\n` +
      `  Ctrl-C stops it gracefully (miners are told to reconnect).\n\n`,
    );
    const statsTimer = setInterval(() => {
      const s = running.pool.stats;
      log.info({ connections: running.pool.server.stats.connections, shares: s.shares, blocks: s.blocks, height: s.templateHeight }, 'pool stats');
    }, 60_000);
    statsTimer.unref();
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      const st = running.pool.stats;
      log.info({ signal, shares: st.shares, blocks: st.blocks, blockResults: st.blockResults }, 'shutting down');
      // Pool first (readiness turns 503 via draining, miners get client.reconnect, the spool is flushed), then the API.
      running.stop().then(() => api?.app.close()).then(() => process.exit(0), (err) => { log.error({ err }, 'shutdown failed'); process.exit(1); });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });

program
  .command('config')
  .description('print the effective configuration (defaults < file < environment) and exit')
  .option('-c, --config <file>', 'JSON config file')
  .action((o: { config?: string }) => {
    const cfg = loadConfig({ file: o.config });
    const redacted = {
      ...cfg,
      node: { ...cfg.node, password: cfg.node.password ? '***' : undefined },
      database: { ...cfg.database, url: cfg.database.url ? redactUrl(cfg.database.url) : undefined },
    };
    process.stdout.write(JSON.stringify(redacted, null, 2) + '\n');
  });

program
  .command('migrate')
  .description('apply pending database migrations (DATABASE_URL, or the embedded database in the data dir) and exit')
  .option('-c, --config <file>', 'JSON config file')
  .action(async (o: { config?: string }) => {
    const cfg = loadConfig({ file: o.config });
    const log = createLogger(cfg.logLevel);
    const target = cfg.database.url ? redactUrl(cfg.database.url) : `the embedded database in ${cfg.database.dataDir}`;
    let db: Awaited<ReturnType<typeof openDatabase>> | undefined;
    try {
      db = await openDatabase({ url: cfg.database.url, dataDir: cfg.database.dataDir, connectTimeoutMs: cfg.database.connectTimeoutMs, logger: log });
      const r = await migrate(db, log);
      process.stderr.write(`hashhub: ${target}: ${r.applied.length ? `applied ${r.applied.join(', ')}` : 'already up to date'} (schema version ${r.current})\n`);
    } catch (e) {
      process.stderr.write(`hashhub: cannot migrate ${target}: ${(e as Error).message}\n`);
      process.exitCode = 1;
    } finally {
      await db?.close();
    }
  });

program.addCommand(minerCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`hashhub: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`hashhub: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
