import { Command } from 'commander';
import { indexCommand, marketCommand } from './market-cli.ts';
import { minerCommand } from '../miner/cli.ts';
import { accountingCommand, accountsCommand, payoutsCommand } from './accounting-cli.ts';
import { CliError } from './errors.ts';
import { routeCommand } from './route-cli.ts';
import { redactUrl } from '../store/db.ts';
import { migrate, openDatabase } from '../store/index.ts';
import { ConfigError, loadConfig, redactConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { defaultIo, runPoolCommand } from './pool-command.ts';
import { clusterIndex, runClusterPrimary, workerConfig } from './cluster.ts';
import { explainStartupError } from './startup-errors.ts';

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
    if (cfg.stratum.processes > 1) {
      // Several Stratum processes sharing the port: this is the primary (supervisor) or one of them.
      const index = clusterIndex();
      if (index === null) return runClusterPrimary(cfg, log, defaultIo);
      return runPoolCommand(workerConfig(cfg, index), log.child({ proc: index }), undefined, { clusterIndex: index });
    }
    await runPoolCommand(cfg, log);
  });

program
  .command('config')
  .description('print the effective configuration (defaults < file < environment) and exit')
  .option('-c, --config <file>', 'JSON config file')
  .action((o: { config?: string }) => {
    const cfg = loadConfig({ file: o.config });
    process.stdout.write(JSON.stringify(redactConfig(cfg), null, 2) + '\n');
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
program.addCommand(marketCommand());
program.addCommand(indexCommand());
program.addCommand(payoutsCommand());
program.addCommand(accountsCommand());
program.addCommand(accountingCommand());
program.addCommand(routeCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CliError) {
    // Expected failures (an API error, a bad argument): one line, no stack.
    process.stderr.write(`hashhub: ${err.message}\n`);
    process.exit(1);
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`hashhub: ${err.message}\n`);
    process.exit(2);
  }
  // Expected failures (port in use, data directory, lock held, database login): one line, problem and fix.
  const line = explainStartupError(err);
  if (line) {
    process.stderr.write(`hashhub: ${line}\n`);
    process.exit(1);
  }
  process.stderr.write(`hashhub: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
