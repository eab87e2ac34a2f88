import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { AddressError, addressToScript } from '../chain/index.ts';

// One typed config object, with defaults and units, checked once at start-up. Sources, later ones win:
// defaults < JSON file (--config or HASHHUB_CONFIG) < HASHHUB_* environment variables.

/** A well-known regtest address used only when nothing is configured and the embedded chain runs. */
export const DEFAULT_REGTEST_ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';

const port = z.number().int().min(0).max(65535);
const positive = z.number().positive().finite();

export const configSchema = z.object({
  network: z.enum(['mainnet', 'testnet', 'signet', 'regtest']).default('regtest'),
  /** Address the coinbase pays. Required with a real node; defaults to a regtest address on the embedded chain. */
  payoutAddress: z.string().optional(),
  poolTag: z.string().max(40).default('/hashhub/'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  requireAddressAccounts: z.boolean().default(false),
  node: z.object({
    /** Bitcoin Core RPC URLs, tried in order with failover. Empty: run the embedded regtest chain. */
    urls: z.array(z.string().url()).default([]),
    user: z.string().optional(),
    password: z.string().optional(),
    cookieFile: z.string().optional(),
    timeoutMs: z.number().int().positive().default(10_000),
    /** Tip polling interval (fallback to GBT long polling). */
    pollMs: z.number().int().positive().default(1000),
    /** A fresh template at least this often, for new transactions. */
    refreshMs: z.number().int().positive().default(30_000),
    longpoll: z.boolean().default(true),
    embedded: z.object({
      host: z.string().default('127.0.0.1'),
      port: port.default(0),
      /** Network difficulty of the embedded chain. Default 0.001: a CPU miner finds a block every few seconds
       *  and most shares are just shares; real regtest (4.66e-10) makes every share a block (and floods). */
      difficulty: positive.default(0.001),
      mempoolTxs: z.number().int().min(0).max(5000).default(40),
    }).prefault({}),
  }).prefault({}),
  stratum: z.object({
    host: z.string().default('0.0.0.0'),
    port: port.default(3333),
    tls: z.object({ host: z.string().optional(), port, certFile: z.string(), keyFile: z.string() }).optional(),
    nodeId: z.number().int().min(0).max(255).default(0),
    extranonce2Size: z.number().int().min(2).max(16).default(8),
    difficulty: z.object({
      /** Start difficulty; default 0.0001 on regtest (CPU miners), 16384 elsewhere (ASICs; vardiff moves it). */
      initial: positive.optional(),
      /** Floor; default 1e-8 on regtest, 0.0001 elsewhere. */
      min: positive.optional(),
      max: positive.default(1e15),
      /** Vardiff aims at one share per this many seconds per connection. */
      targetShareSeconds: positive.default(10),
      userAgentMin: z.record(z.string(), positive).default({}),
    }).prefault({}),
    versionMask: z.string().regex(/^[0-9a-fA-F]{1,8}$/).default('1fffe000'),
    maxNtimeAheadSec: z.number().int().positive().default(600),
    limits: z.object({
      maxLineBytes: z.number().int().min(512).default(8192),
      maxConnections: z.number().int().positive().default(18_000),
      maxConnectionsPerIp: z.number().int().positive().default(5_000),
      subscribeTimeoutMs: z.number().int().positive().default(15_000),
      authorizeTimeoutMs: z.number().int().positive().default(60_000),
      shareTimeoutMs: z.number().int().positive().default(15 * 60_000),
      messagesPerSecond: positive.default(100),
      messageBurst: positive.default(500),
      banMaxRejects: z.number().int().positive().default(200),
      banRejectRatio: z.number().min(0).max(1).default(0.9),
      banMaxGarbage: z.number().int().positive().default(20),
      /** Abusive connections from one IP (each closed) within 10 minutes before the IP itself is banned. */
      banOffences: z.number().int().positive().default(3),
      banBaseMs: z.number().int().positive().default(60_000),
      banMaxMs: z.number().int().positive().default(3_600_000),
    }).prefault({}),
    reconnectHost: z.string().optional(),
  }).prefault({}),
  api: z.object({
    /** REST API, /health/live, /health/ready, /metrics and /docs. */
    enabled: z.boolean().default(true),
    host: z.string().default('0.0.0.0'),
    port: port.default(8080),
    /** CORS origins: empty = off, ["*"] = any. */
    cors: z.array(z.string()).default([]),
  }).prefault({}),
  database: z.object({
    /** Postgres URL (DATABASE_URL). Absent: the embedded PGlite in <dataDir>/pglite, same schema. */
    url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL').optional(),
    /** Local state: the embedded database and, unless ingest.spoolDir is set, the spool (<dataDir>/spool). */
    dataDir: z.string().min(1).default('./data'),
    /** Apply pending migrations at start (otherwise start refuses a schema that is behind: `hashhub migrate`). */
    autoMigrate: z.boolean().default(true),
    maxConnections: z.number().int().min(1).max(100).default(4),
    connectTimeoutMs: z.number().int().positive().default(5000),
    /** Client-side limit on a read query (the API's), ms. */
    queryTimeoutMs: z.number().int().positive().default(30_000),
    /** A share batch transaction taking longer is aborted and retried (idempotent), ms. */
    writeTimeoutMs: z.number().int().positive().default(30_000),
    /** A worker is online when its last share is at most this many minutes old. */
    workerOnlineMinutes: z.number().positive().default(10),
    retention: z.object({
      /** Raw shares and rejects are kept this many days (dropped a day partition at a time); rollups stay. */
      shareDays: z.number().int().min(1).default(30),
      /** Minute rollups older than this become hourly rows (>= 2: 24 h windows read minutes). */
      compactAfterDays: z.number().int().min(2).default(7),
      /** Day partitions created ahead. */
      partitionsAhead: z.number().int().min(1).max(60).default(2),
    }).prefault({}),
    /** Partition creation, retention and compaction run this often (and at start), ms. */
    maintenanceIntervalMs: z.number().int().min(1000).default(600_000),
    ingest: z.object({
      /** Write-ahead spool of share and block events; default <dataDir>/spool. One per pool process. */
      spoolDir: z.string().min(1).optional(),
      /** fdatasync interval of the spool, ms (0 = every event; blocks are always synced at once). */
      fsyncMs: z.number().int().min(0).max(10_000).default(100),
      /** Spool segment size before rotation, bytes. */
      segmentBytes: z.number().int().min(65_536).default(64 * 1024 * 1024),
      /** A batch is written at this many events… */
      batchMax: z.number().int().min(1).max(100_000).default(5000),
      /** …or when its oldest event is this old, ms. */
      flushMs: z.number().int().min(1).default(100),
      /** Events held in memory for the writer; past it they are read back from the spool. */
      queueCapacity: z.number().int().min(1).default(100_000),
      /** Longest back-off between write retries while the database is down, ms. */
      retryMaxMs: z.number().int().min(10).default(5000),
      /** On stop, how long to keep flushing to the database before leaving the rest in the spool, ms. */
      closeTimeoutMs: z.number().int().min(0).default(10_000),
    }).prefault({}),
  }).prefault({}),
});

type Parsed = z.infer<typeof configSchema>;
/** The validated config; network-dependent defaults are filled in by loadConfig. */
export type Config = Parsed & { stratum: { difficulty: Required<Parsed['stratum']['difficulty']> } };

export class ConfigError extends Error {}

/** Environment variables and the config path each maps to (documented in the README). */
export const ENV_MAP: Record<string, { path: string[]; type: 'string' | 'number' | 'boolean' | 'list' }> = {
  HASHHUB_NETWORK: { path: ['network'], type: 'string' },
  HASHHUB_PAYOUT_ADDRESS: { path: ['payoutAddress'], type: 'string' },
  HASHHUB_POOL_TAG: { path: ['poolTag'], type: 'string' },
  HASHHUB_LOG_LEVEL: { path: ['logLevel'], type: 'string' },
  HASHHUB_REQUIRE_ADDRESS_ACCOUNTS: { path: ['requireAddressAccounts'], type: 'boolean' },
  HASHHUB_NODE_URLS: { path: ['node', 'urls'], type: 'list' },
  HASHHUB_NODE_USER: { path: ['node', 'user'], type: 'string' },
  HASHHUB_NODE_PASSWORD: { path: ['node', 'password'], type: 'string' },
  HASHHUB_NODE_COOKIE: { path: ['node', 'cookieFile'], type: 'string' },
  HASHHUB_NODE_POLL_MS: { path: ['node', 'pollMs'], type: 'number' },
  HASHHUB_TEMPLATE_REFRESH_MS: { path: ['node', 'refreshMs'], type: 'number' },
  HASHHUB_EMBEDDED_DIFFICULTY: { path: ['node', 'embedded', 'difficulty'], type: 'number' },
  HASHHUB_EMBEDDED_PORT: { path: ['node', 'embedded', 'port'], type: 'number' },
  HASHHUB_EMBEDDED_MEMPOOL_TXS: { path: ['node', 'embedded', 'mempoolTxs'], type: 'number' },
  HASHHUB_STRATUM_HOST: { path: ['stratum', 'host'], type: 'string' },
  HASHHUB_STRATUM_PORT: { path: ['stratum', 'port'], type: 'number' },
  HASHHUB_STRATUM_TLS_PORT: { path: ['stratum', 'tls', 'port'], type: 'number' },
  HASHHUB_TLS_CERT: { path: ['stratum', 'tls', 'certFile'], type: 'string' },
  HASHHUB_TLS_KEY: { path: ['stratum', 'tls', 'keyFile'], type: 'string' },
  HASHHUB_NODE_ID: { path: ['stratum', 'nodeId'], type: 'number' },
  HASHHUB_EXTRANONCE2_SIZE: { path: ['stratum', 'extranonce2Size'], type: 'number' },
  HASHHUB_DIFFICULTY: { path: ['stratum', 'difficulty', 'initial'], type: 'number' },
  HASHHUB_MIN_DIFFICULTY: { path: ['stratum', 'difficulty', 'min'], type: 'number' },
  HASHHUB_MAX_DIFFICULTY: { path: ['stratum', 'difficulty', 'max'], type: 'number' },
  HASHHUB_SHARE_SECONDS: { path: ['stratum', 'difficulty', 'targetShareSeconds'], type: 'number' },
  HASHHUB_MAX_CONNECTIONS_PER_IP: { path: ['stratum', 'limits', 'maxConnectionsPerIp'], type: 'number' },
  HASHHUB_API_ENABLED: { path: ['api', 'enabled'], type: 'boolean' },
  HASHHUB_API_HOST: { path: ['api', 'host'], type: 'string' },
  HASHHUB_API_PORT: { path: ['api', 'port'], type: 'number' },
  HASHHUB_API_CORS: { path: ['api', 'cors'], type: 'list' },
  DATABASE_URL: { path: ['database', 'url'], type: 'string' },
  HASHHUB_DATA_DIR: { path: ['database', 'dataDir'], type: 'string' },
  HASHHUB_AUTO_MIGRATE: { path: ['database', 'autoMigrate'], type: 'boolean' },
  HASHHUB_DB_MAX_CONNECTIONS: { path: ['database', 'maxConnections'], type: 'number' },
  HASHHUB_WORKER_ONLINE_MINUTES: { path: ['database', 'workerOnlineMinutes'], type: 'number' },
  HASHHUB_SHARE_RETENTION_DAYS: { path: ['database', 'retention', 'shareDays'], type: 'number' },
  HASHHUB_ROLLUP_COMPACT_DAYS: { path: ['database', 'retention', 'compactAfterDays'], type: 'number' },
  HASHHUB_SPOOL_DIR: { path: ['database', 'ingest', 'spoolDir'], type: 'string' },
  HASHHUB_SPOOL_FSYNC_MS: { path: ['database', 'ingest', 'fsyncMs'], type: 'number' },
  HASHHUB_INGEST_BATCH: { path: ['database', 'ingest', 'batchMax'], type: 'number' },
  HASHHUB_INGEST_FLUSH_MS: { path: ['database', 'ingest', 'flushMs'], type: 'number' },
};

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[path[path.length - 1]] = value;
}

function fromEnv(env: NodeJS.ProcessEnv, into: Record<string, unknown>): void {
  for (const [name, { path, type }] of Object.entries(ENV_MAP)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (type === 'number') {
      value = Number(raw);
      if (!Number.isFinite(value)) throw new ConfigError(`${name}="${raw}" is not a number`);
    } else if (type === 'boolean') {
      if (!/^(1|0|true|false|yes|no)$/i.test(raw)) throw new ConfigError(`${name}="${raw}" must be true or false`);
      value = /^(1|true|yes)$/i.test(raw);
    } else if (type === 'list') {
      value = raw.split(',').map((s) => s.trim()).filter(Boolean);
    }
    setPath(into, path, value);
  }
}

/** Load, merge and validate. Throws ConfigError with every problem listed, each with its path. */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Record<string, unknown> } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.HASHHUB_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(e as Error).message}`);
    }
  }
  fromEnv(env, raw);
  for (const [k, v] of Object.entries(opts.overrides ?? {})) if (v !== undefined) setPath(raw, k.split('.'), v);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration${file ? ` (${file})` : ''}:\n${lines.join('\n')}`);
  }
  const cfg = parsed.data;
  const d = cfg.stratum.difficulty;
  d.initial ??= cfg.network === 'regtest' ? 0.0001 : 16384;
  d.min ??= cfg.network === 'regtest' ? 1e-8 : 0.0001;
  if (d.min > d.max) throw new ConfigError(`stratum.difficulty.min (${d.min}) is above stratum.difficulty.max (${d.max})`);
  if (cfg.node.urls.length > 0 && !cfg.payoutAddress) {
    throw new ConfigError('payoutAddress (HASHHUB_PAYOUT_ADDRESS) is required when a real node is configured');
  }
  if (cfg.node.urls.length === 0 && cfg.network !== 'regtest') {
    throw new ConfigError(`the embedded chain is regtest only: set node.urls (HASHHUB_NODE_URLS) for ${cfg.network}`);
  }
  if (cfg.payoutAddress) {
    try {
      addressToScript(cfg.payoutAddress, cfg.network);
    } catch (e) {
      if (e instanceof AddressError) throw new ConfigError(`payoutAddress: ${e.message}`);
      throw e;
    }
  }
  return cfg as Config;
}
