import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { AddressError, addressToScript } from '../chain/index.ts';

// One typed config object, with defaults and units, checked once at start-up. Sources, later ones win:
// defaults < JSON file (--config or HASHHUB_CONFIG) < HASHHUB_* environment variables.

/** A well-known regtest address used only when nothing is configured and the embedded chain runs. */
export const DEFAULT_REGTEST_ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080';

/**
 * Longest pool tag, UTF-8 bytes. The scriptSig holds the BIP34 height (≤ 5), the extranonce (≤ 1 + 4 + 16), the
 * tag's push (1 + tag) and the job's nonce (1 + 8, JOB_NONCE_BYTES): 40 keeps it at most 76 of 100 bytes, with
 * room for the node's coinbaseaux flags.
 */
export const POOL_TAG_MAX_BYTES = 40;

const port = z.number().int().min(0).max(65535);
const positive = z.number().positive().finite();
/** A Bitcoin Core RPC URL: the RPC client speaks http and https only, and `localhost:8332` (no scheme) parses as a
 *  URL of scheme "localhost:", so z.string().url() alone lets it through to fail at start. */
const rpcUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL with a host, like http://127.0.0.1:8332 (user:password@ may come before the host)');

export const configSchema = z.object({
  network: z.enum(['mainnet', 'testnet', 'signet', 'regtest']).default('regtest'),
  /** Address the coinbase pays. Required with a real node; defaults to a regtest address on the embedded chain. */
  payoutAddress: z.string().optional(),
  /** In the coinbase scriptSig, whose consensus limit (100 bytes) counts bytes: the cap is in UTF-8 bytes. */
  poolTag: z.string().default('/hashhub/').superRefine((t, ctx) => {
    const bytes = Buffer.byteLength(t, 'utf8');
    if (bytes > POOL_TAG_MAX_BYTES) {
      ctx.addIssue({ code: 'custom', message: `is ${bytes} bytes in UTF-8; at most ${POOL_TAG_MAX_BYTES} bytes (the coinbase scriptSig is limited to 100 bytes; multi-byte characters count 2 to 4 bytes each)` });
    }
  }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  requireAddressAccounts: z.boolean().default(false),
  node: z.object({
    /** Bitcoin Core RPC URLs, tried in order with failover. Empty: run the embedded regtest chain. */
    urls: z.array(rpcUrl).default([]),
    user: z.string().optional(),
    password: z.string().optional(),
    cookieFile: z.string().optional(),
    timeoutMs: z.number().int().positive().default(10_000),
    /** Tip polling interval (fallback to GBT long polling). */
    pollMs: z.number().int().positive().default(1000),
    /** A fresh template at least this often, for new transactions. */
    refreshMs: z.number().int().positive().default(30_000),
    longpoll: z.boolean().default(true),
    /** ZMQ hashblock publisher of the node (tcp://host:port); unset: asked from the node (getzmqnotifications);
     *  "off": not used (long polls and polling only). */
    zmq: z.union([z.literal('off'), z.string().regex(/^tcp:\/\/.+:\d+$/, 'must be tcp://host:port or "off"')]).optional(),
    embedded: z.object({
      host: z.string().default('127.0.0.1'),
      port: port.default(0),
      /** Network difficulty of the embedded chain. Default 0.001: a CPU miner finds a block every few seconds
       *  and most shares are just shares; real regtest (4.66e-10) makes every share a block (and floods). */
      difficulty: positive.default(0.001),
      mempoolTxs: z.number().int().min(0).max(5000).default(40),
      /** Publish hashblock over ZMQ here (tcp://127.0.0.1:port; port 0 picks one), as bitcoind -zmqpubhashblock. */
      zmq: z.string().regex(/^tcp:\/\/.+:\d+$/, 'must be tcp://host:port').optional(),
    }).prefault({}),
  }).prefault({}),
  stratum: z.object({
    host: z.string().default('0.0.0.0'),
    port: port.default(3333),
    tls: z.object({ host: z.string().optional(), port, certFile: z.string(), keyFile: z.string() }).optional(),
    nodeId: z.number().int().min(0).max(255).default(0),
    /**
     * Stratum processes sharing the port (Node's cluster hands out the connections): one holds fewer than 20,000
     * sockets here. Each has its own spool, block journal and extranonce1 node id (nodeId, nodeId + 1, …); the
     * first also runs the API, the books and the market. More than one needs PostgreSQL (database.url).
     */
    processes: z.number().int().min(1).max(64).default(1),
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
      /** Bytes one connection may have waiting for its reader before it is closed. */
      maxWriteBufferBytes: z.number().int().min(65_536).default(1024 * 1024),
      /** All connections together: past this the slowest readers are closed first (bytes). */
      maxTotalWriteBufferBytes: z.number().int().min(1024 * 1024).default(256 * 1024 * 1024),
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
  blocks: z.object({
    /** The block journal (found blocks, fsynced before anything else happens to them); default <dataDir>/blocks. */
    journalDir: z.string().min(1).optional(),
    /** Confirmations at which a block is confirmed (Core spends a coinbase at 101). */
    maturity: z.number().int().min(1).max(1000).default(101),
    /** Recurring chain check of unsettled blocks (also at every new tip), ms. */
    checkIntervalMs: z.number().int().min(100).default(30_000),
    /** Blocks below the tip scanned at start for blocks of ours without a record. */
    recoveryScanDepth: z.number().int().min(0).max(10_000).default(20),
    /** Disk kept in reserve for block records on a full disk, bytes. */
    reserveBytes: z.number().int().min(0).default(32 * 1024 * 1024),
  }).prefault({}),
  api: z.object({
    /** REST API, /health/live, /health/ready, /metrics and /docs. */
    enabled: z.boolean().default(true),
    host: z.string().default('0.0.0.0'),
    port: port.default(8080),
    /** CORS origins: empty = off, ["*"] = any. */
    cors: z.array(z.string()).default([]),
    /** Operator token (Authorization: Bearer …). Unset: generated once into <dataDir>/operator.token (mode 0600). */
    operatorToken: z.string().min(16).optional(),
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
      /** …or when its oldest event is this old, ms. Each batch costs the pool's thread a fixed ~1-2 ms (a
       *  transaction of six round trips, the spool checkpoint, the watermark), so at low rates fewer batches save
       *  CPU: at 5k shares/s with 1k connections, 100 ms against 25 ms was 63 against 68 µs of pool CPU per submit
       *  (medians of 6 alternating runs; wire p99 2.6 against 2.8 ms). 25 ms was chosen when a batch still encoded
       *  its rows at once (a 500-row turn stalled the answers); rows are spooled as COPY text since. */
      flushMs: z.number().int().min(1).default(100),
      /** Events held in memory for the writer; past it they are read back from the spool. 100,000 held events
       *  were ~7 KB per connection of a 10k-connection pool offered 50k shares/s (the spool is the buffer). */
      queueCapacity: z.number().int().min(1).default(20_000),
      /** Longest back-off between write retries while the database is down, ms. */
      retryMaxMs: z.number().int().min(10).default(5000),
      /** On stop, how long to keep flushing to the database before leaving the rest in the spool, ms. */
      closeTimeoutMs: z.number().int().min(0).default(10_000),
      // -- disk budget (storage-ops): a share that cannot be stored is refused, never held in memory --
      /** Disk the spool may use, bytes (0 = no budget: only the disk's free space limits it). */
      maxBytes: z.number().int().min(0).default(8 * 1024 ** 3),
      /** Part of maxBytes only block events may use: shares are refused past maxBytes − this. */
      blockMarginBytes: z.number().int().min(0).default(64 * 1024 ** 2),
      /** Refuse shares when the spool's filesystem has less free space than this, bytes (0 = only on ENOSPC). */
      minFreeBytes: z.number().int().min(0).default(256 * 1024 ** 2),
      /** A file of this size kept in the spool directory and deleted to record a block when the disk is full. */
      reserveFileBytes: z.number().int().min(0).default(16 * 1024 ** 2),
    }).prefault({}),
  }).prefault({}),
  // ---- market (issue 13): the hashrate spot market; see docs/market.md ----
  market: z.object({
    /** Run the market's clock in `hashhub pool` (needs accounting and routing enabled). */
    enabled: z.boolean().default(true),
    /** One clearing per tick, seconds. */
    tickSeconds: z.number().int().min(5).max(3600).default(60),
    /** A worker's capacity is its accepted work over this window (10–30 min keeps the sampling error small). */
    capacityWindowMinutes: z.number().int().min(1).max(120).default(20),
    /** Fewer shares in the window: not offered (error ≈ 1/√shares). */
    minShares: z.number().int().min(1).default(50),
    /** Market fee, basis points of trade value, from the seller's side. */
    feeBps: z.number().int().min(0).max(10_000).default(100),
    /** Margin on the escrow reserved for ticks cleared but not settled, basis points. */
    reserveMarginBps: z.number().int().min(0).max(100_000).default(2000),
    /** A tick settles this long after its end (and once the delivery meter's watermark covers it), seconds. */
    answerTimeoutSeconds: z.number().int().min(1).max(600).default(30),
    /** Routes are valid this long past their tick's end without a newer clearing, seconds. */
    routeLeaseSeconds: z.number().int().min(1).max(3600).default(30),
    /** Market API requests per minute per token (or per IP without one); past it: 429 RATE_LIMITED. */
    rateLimitPerMinute: z.number().int().min(1).max(1_000_000).default(600),
    index: z.object({
      /** Minimum delivered volume for a day's VWAP, PH·day (below it, the fallbacks). */
      minVolumePhDay: z.number().positive().default(1),
      /** Minimum ticks with both sides for the time-weighted mid fallback. */
      minMidTicks: z.number().int().min(1).default(60),
      /** Publication this long after the UTC day ends, minutes. */
      publishAfterMinutes: z.number().int().min(0).max(1440).default(30),
    }).prefault({}),
  }).prefault({}),
  // ---- hashrate routing (issue 12): miners moved to other pools' work, metered on their answers ----
  routing: z.object({
    /** Carry out the routes in the database (`hashhub route add`, /api/v1/routes, the market). */
    enabled: z.boolean().default(true),
    /** Host sent in client.reconnect to move miners that did not subscribe to set_extranonce (the address miners
     *  use for this pool). Default: stratum.reconnectHost, else stratum.host unless it is a wildcard, else 127.0.0.1. */
    reconnectHost: z.string().min(1).optional(),
    /** Per-worker extranonce prefix within a destination's extranonce2, bytes (256^n workers per destination). */
    prefixBytes: z.number().int().min(1).max(4).default(2),
    /** Extranonce2 bytes that must be left to miners after the prefix; a destination with less is refused. */
    minExtranonce2: z.number().int().min(2).max(16).default(4),
    /** Miners get the destination's difficulty ÷ this; only shares meeting the destination's target are forwarded
     *  (and billed). 1 (default): exactly the destination's difficulty. */
    minerDifficultyDivisor: z.number().min(1).max(1_000_000).default(1),
    /** Pause a route when more than this % of our valid shares are rejected over rejectWindowSeconds. */
    maxRejectPercent: z.number().min(1).max(100).default(50),
    rejectWindowSeconds: z.number().int().min(10).max(3600).default(60),
    /** Pause when a destination sends no job for this long after authorize. */
    noJobSeconds: z.number().int().min(5).max(3600).default(60),
    /** A forwarded share without an answer this long counts as "no answer". */
    answerTimeoutSeconds: z.number().int().min(1).max(600).default(30),
    /** Refuse destinations whose share difficulty is above this (our miners would find too few shares). */
    maxUpstreamDifficulty: positive.optional(),
    /** Verify destinations' TLS certificates (stratum+ssl://). */
    tlsVerify: z.boolean().default(true),
    /** Routes are read from the database this often, ms. */
    syncMs: z.number().int().min(100).default(2000),
    /** Metering is written to the database this often, ms. */
    flushMs: z.number().int().min(100).default(1000),
    /** Metering bucket (route_minutes rows), seconds; divides a minute. The market bills ticks from whole buckets,
     *  so market.tickSeconds must be a multiple of it: 60 (default) is right for minute ticks; shorter buckets
     *  only for short ticks (tests), at the cost of more rows. */
    meterBucketSeconds: z.number().int().min(1).max(60).default(60),
  }).prefault({}),
  // ---- accounting and payouts (issue 11) -------------------------------------------------------------------
  accounting: z.object({
    enabled: z.boolean().default(true),
    /** Credit period, seconds: divides a day, and divides a minute or is whole minutes. Fixed once the books start. */
    periodSeconds: z.number().int().min(1).max(86_400).default(3600),
    /** The accounting steps run this often, ms. */
    intervalMs: z.number().int().min(100).default(10_000),
    /** The scheme of accounts that chose none. */
    defaultScheme: z.enum(['fpps', 'pplns']).default('pplns'),
    /** Schemes an account owner may choose. */
    allowedSchemes: z.array(z.enum(['fpps', 'pplns', 'solo'])).min(1).default(['fpps', 'pplns', 'solo']),
    /** Pool fees, basis points (100 = 1 %). */
    fees: z.object({
      fppsBps: z.number().int().min(0).max(10_000).default(250),
      pplnsBps: z.number().int().min(0).max(10_000).default(100),
      soloBps: z.number().int().min(0).max(10_000).default(100),
    }).prefault({}),
    pplns: z.object({
      /** Window = N × the block's network difficulty of accepted shares… */
      n: positive.default(2),
      /** …never reaching back further than this, seconds (must stay within share retention). */
      maxWindowSeconds: z.number().int().positive().default(86_400),
    }).prefault({}),
    /** How often the pool re-reads which accounts mine SOLO (and their payout addresses), ms; scheme changes
     *  are also picked up at the period start they take effect. */
    soloRefreshMs: z.number().int().min(100).default(5000),
    /** How many recent credited periods are checked for shares stored after their crediting. */
    lateCheckPeriods: z.number().int().min(1).max(10_000).default(24),
    /** Anyone may create an account (POST /api/v1/accounts) and get its owner token; otherwise the operator only. */
    openRegistration: z.boolean().default(true),
    payouts: z.object({
      /** Run payouts automatically every intervalMs (else on `hashhub payouts run`). */
      enabled: z.boolean().default(true),
      intervalMs: z.number().int().min(1000).default(600_000),
      /** wallet: build, sign and send through the node wallet; external: write a PSBT, `payouts confirm <txid>`. */
      mode: z.enum(['wallet', 'external']).default('wallet'),
      /** Default threshold, satoshis; owners may set their own, not below minThresholdSats (nor the dust limit). */
      thresholdSats: z.number().int().positive().default(1_000_000),
      minThresholdSats: z.number().int().positive().default(10_000),
      /** A payout address change holds that account's payouts this long, seconds. */
      addressChangeDelaySeconds: z.number().int().min(0).default(86_400),
      /** A payout is settled (paid, in the ledger) at this many confirmations. */
      confirmations: z.number().int().min(1).max(1000).default(3),
      /** Fee: estimatesmartfee for this many blocks, else fallbackSatVb; never above maxSatVb. */
      confTarget: z.number().int().min(1).max(1008).default(6),
      fallbackSatVb: positive.default(5),
      maxSatVb: positive.default(200),
      minSatVb: positive.default(1),
      maxOutputs: z.number().int().min(1).max(2900).default(2000),
      rebroadcastSeconds: z.number().int().min(10).default(600),
      /** The wallet's RPC (Core: <node url>/wallet/<name>). Unset: the node's RPC (one loaded wallet, or the embedded chain). */
      walletUrl: rpcUrl.optional(),
      walletUser: z.string().optional(),
      walletPassword: z.string().optional(),
      /** How to sign: walletprocesspsbt, or the inputs' keys from dumpprivkey (wallets without PSBT); auto tries both. */
      signer: z.enum(['auto', 'psbt', 'dumpprivkey']).default('auto'),
    }).prefault({}),
    /** Funding (issue 13): deposits to per-account addresses of the node wallet (the payouts' wallet RPC). */
    deposits: z.object({
      /** Watch the wallet for deposits every accounting pass. */
      enabled: z.boolean().default(true),
      /** A deposit is credited at this many confirmations; default 6 (3 on regtest). */
      confirmations: z.number().int().min(1).max(1000).optional(),
      /** A credited deposit is checked against the best chain while it is less than this many blocks deep. */
      reorgWatchBlocks: z.number().int().min(1).max(100_000).default(144),
    }).prefault({}),
  }).prefault({}),
});

type Parsed = z.infer<typeof configSchema>;
/** The validated config; network-dependent defaults are filled in by loadConfig. */
export type Config = Parsed & { stratum: { difficulty: Required<Parsed['stratum']['difficulty']> } };

export class ConfigError extends Error {}

/** Environment variables and the config path each maps to (documented in the README). */
export const ENV_MAP: Record<string, { path: string[]; type: 'string' | 'number' | 'boolean' | 'list' | 'bytes' }> = {
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
  HASHHUB_NODE_ZMQ: { path: ['node', 'zmq'], type: 'string' },
  HASHHUB_EMBEDDED_ZMQ: { path: ['node', 'embedded', 'zmq'], type: 'string' },
  HASHHUB_EMBEDDED_DIFFICULTY: { path: ['node', 'embedded', 'difficulty'], type: 'number' },
  HASHHUB_EMBEDDED_PORT: { path: ['node', 'embedded', 'port'], type: 'number' },
  HASHHUB_EMBEDDED_MEMPOOL_TXS: { path: ['node', 'embedded', 'mempoolTxs'], type: 'number' },
  HASHHUB_STRATUM_HOST: { path: ['stratum', 'host'], type: 'string' },
  HASHHUB_STRATUM_PORT: { path: ['stratum', 'port'], type: 'number' },
  HASHHUB_STRATUM_TLS_PORT: { path: ['stratum', 'tls', 'port'], type: 'number' },
  HASHHUB_TLS_CERT: { path: ['stratum', 'tls', 'certFile'], type: 'string' },
  HASHHUB_TLS_KEY: { path: ['stratum', 'tls', 'keyFile'], type: 'string' },
  HASHHUB_NODE_ID: { path: ['stratum', 'nodeId'], type: 'number' },
  HASHHUB_STRATUM_PROCESSES: { path: ['stratum', 'processes'], type: 'number' },
  HASHHUB_EXTRANONCE2_SIZE: { path: ['stratum', 'extranonce2Size'], type: 'number' },
  HASHHUB_DIFFICULTY: { path: ['stratum', 'difficulty', 'initial'], type: 'number' },
  HASHHUB_MIN_DIFFICULTY: { path: ['stratum', 'difficulty', 'min'], type: 'number' },
  HASHHUB_MAX_DIFFICULTY: { path: ['stratum', 'difficulty', 'max'], type: 'number' },
  HASHHUB_SHARE_SECONDS: { path: ['stratum', 'difficulty', 'targetShareSeconds'], type: 'number' },
  HASHHUB_MAX_CONNECTIONS_PER_IP: { path: ['stratum', 'limits', 'maxConnectionsPerIp'], type: 'number' },
  HASHHUB_MAX_WRITE_BUFFER_TOTAL: { path: ['stratum', 'limits', 'maxTotalWriteBufferBytes'], type: 'bytes' },
  HASHHUB_BLOCK_MATURITY: { path: ['blocks', 'maturity'], type: 'number' },
  HASHHUB_BLOCK_CHECK_MS: { path: ['blocks', 'checkIntervalMs'], type: 'number' },
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
  HASHHUB_INGEST_QUEUE: { path: ['database', 'ingest', 'queueCapacity'], type: 'number' },
  HASHHUB_SPOOL_MAX_BYTES: { path: ['database', 'ingest', 'maxBytes'], type: 'bytes' },
  HASHHUB_SPOOL_MIN_FREE_BYTES: { path: ['database', 'ingest', 'minFreeBytes'], type: 'bytes' },
  // market
  HASHHUB_MARKET_ENABLED: { path: ['market', 'enabled'], type: 'boolean' },
  HASHHUB_MARKET_TICK_SECONDS: { path: ['market', 'tickSeconds'], type: 'number' },
  HASHHUB_MARKET_CAPACITY_WINDOW_MINUTES: { path: ['market', 'capacityWindowMinutes'], type: 'number' },
  HASHHUB_MARKET_MIN_SHARES: { path: ['market', 'minShares'], type: 'number' },
  HASHHUB_MARKET_FEE_BPS: { path: ['market', 'feeBps'], type: 'number' },
  HASHHUB_MARKET_RATE_LIMIT_PER_MINUTE: { path: ['market', 'rateLimitPerMinute'], type: 'number' },
  HASHHUB_MARKET_INDEX_PUBLISH_AFTER_MINUTES: { path: ['market', 'index', 'publishAfterMinutes'], type: 'number' },
  // routing (issue 12)
  HASHHUB_ROUTING_ENABLED: { path: ['routing', 'enabled'], type: 'boolean' },
  HASHHUB_ROUTING_RECONNECT_HOST: { path: ['routing', 'reconnectHost'], type: 'string' },
  HASHHUB_ROUTING_MINER_DIFFICULTY_DIVISOR: { path: ['routing', 'minerDifficultyDivisor'], type: 'number' },
  HASHHUB_ROUTING_SYNC_MS: { path: ['routing', 'syncMs'], type: 'number' },
  HASHHUB_ROUTING_METER_BUCKET_SECONDS: { path: ['routing', 'meterBucketSeconds'], type: 'number' },
    // accounting and payouts (issue 11)
  HASHHUB_OPERATOR_TOKEN: { path: ['api', 'operatorToken'], type: 'string' },
  HASHHUB_ACCOUNTING_ENABLED: { path: ['accounting', 'enabled'], type: 'boolean' },
  HASHHUB_ACCOUNTING_PERIOD_SECONDS: { path: ['accounting', 'periodSeconds'], type: 'number' },
  HASHHUB_DEFAULT_SCHEME: { path: ['accounting', 'defaultScheme'], type: 'string' },
  HASHHUB_SCHEMES: { path: ['accounting', 'allowedSchemes'], type: 'list' },
  HASHHUB_FEE_FPPS_BPS: { path: ['accounting', 'fees', 'fppsBps'], type: 'number' },
  HASHHUB_FEE_PPLNS_BPS: { path: ['accounting', 'fees', 'pplnsBps'], type: 'number' },
  HASHHUB_FEE_SOLO_BPS: { path: ['accounting', 'fees', 'soloBps'], type: 'number' },
  HASHHUB_PPLNS_N: { path: ['accounting', 'pplns', 'n'], type: 'number' },
  HASHHUB_SOLO_REFRESH_MS: { path: ['accounting', 'soloRefreshMs'], type: 'number' },
  HASHHUB_PPLNS_MAX_WINDOW_SECONDS: { path: ['accounting', 'pplns', 'maxWindowSeconds'], type: 'number' },
  HASHHUB_OPEN_REGISTRATION: { path: ['accounting', 'openRegistration'], type: 'boolean' },
  HASHHUB_PAYOUTS_ENABLED: { path: ['accounting', 'payouts', 'enabled'], type: 'boolean' },
  HASHHUB_PAYOUTS_INTERVAL_MS: { path: ['accounting', 'payouts', 'intervalMs'], type: 'number' },
  HASHHUB_PAYOUT_MODE: { path: ['accounting', 'payouts', 'mode'], type: 'string' },
  HASHHUB_PAYOUT_THRESHOLD: { path: ['accounting', 'payouts', 'thresholdSats'], type: 'number' },
  HASHHUB_PAYOUT_MIN_THRESHOLD: { path: ['accounting', 'payouts', 'minThresholdSats'], type: 'number' },
  HASHHUB_PAYOUT_ADDRESS_DELAY_SECONDS: { path: ['accounting', 'payouts', 'addressChangeDelaySeconds'], type: 'number' },
  HASHHUB_PAYOUT_CONFIRMATIONS: { path: ['accounting', 'payouts', 'confirmations'], type: 'number' },
  HASHHUB_PAYOUT_MAX_FEE_RATE: { path: ['accounting', 'payouts', 'maxSatVb'], type: 'number' },
  HASHHUB_PAYOUT_FALLBACK_FEE_RATE: { path: ['accounting', 'payouts', 'fallbackSatVb'], type: 'number' },
  HASHHUB_WALLET_URL: { path: ['accounting', 'payouts', 'walletUrl'], type: 'string' },
  HASHHUB_WALLET_USER: { path: ['accounting', 'payouts', 'walletUser'], type: 'string' },
  HASHHUB_WALLET_PASSWORD: { path: ['accounting', 'payouts', 'walletPassword'], type: 'string' },
  HASHHUB_DEPOSITS_ENABLED: { path: ['accounting', 'deposits', 'enabled'], type: 'boolean' },
  HASHHUB_DEPOSIT_CONFIRMATIONS: { path: ['accounting', 'deposits', 'confirmations'], type: 'number' },
  HASHHUB_DEPOSIT_REORG_WATCH_BLOCKS: { path: ['accounting', 'deposits', 'reorgWatchBlocks'], type: 'number' },
};

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3, t: 1e12, tb: 1e12, tib: 1024 ** 4 };

/** "8GiB", "512 MiB", "2GB", "1048576" → bytes; null when not a size. */
export function parseBytes(raw: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(raw);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) return null;
  return Math.round(Number(m[1]) * unit);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What a JSON value is, for messages: `5`, `"text"`, `null`, `an array`. */
function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/**
 * Set `path` in obj (creating sections as needed). A section that is there but is not an object (`"stratum": 5`
 * in the file) is an error naming it and `source`: replacing it would silently drop what the file said.
 */
function setPath(obj: Record<string, unknown>, path: string[], value: unknown, source: string): void {
  let o = obj;
  for (const [i, k] of path.slice(0, -1).entries()) {
    if (o[k] === undefined) o[k] = {};
    else if (!isPlainObject(o[k])) {
      throw new ConfigError(`${path.slice(0, i + 1).join('.')} is ${describe(o[k])} in the config file, not an object, so ${source} cannot set ${path.join('.')}: make it an object (or remove it)`);
    }
    o = o[k] as Record<string, unknown>;
  }
  o[path[path.length - 1]] = value;
}

function fromEnv(env: NodeJS.ProcessEnv, into: Record<string, unknown>): void {
  for (const [name, { path, type }] of Object.entries(ENV_MAP)) {
    const raw = env[name];
    // Empty is unset (VAR= in a unit file or compose file); blank is not: Number(" ") is 0, which would make a
    // port "any free port".
    if (raw === undefined || raw === '') continue;
    if (type !== 'string' && raw.trim() === '') throw new ConfigError(`${name} is blank: give it a value, or leave it empty or unset for the default`);
    let value: unknown = raw;
    if (type === 'number') {
      value = Number(raw);
      if (!Number.isFinite(value)) throw new ConfigError(`${name}="${raw}" is not a number`);
    } else if (type === 'boolean') {
      if (!/^(1|0|true|false|yes|no)$/i.test(raw)) throw new ConfigError(`${name}="${raw}" must be true or false`);
      value = /^(1|true|yes)$/i.test(raw);
    } else if (type === 'bytes') {
      value = parseBytes(raw);
      if (value === null) throw new ConfigError(`${name}="${raw}" is not a size (bytes, or e.g. 512MiB, 8GiB, 2GB)`);
    } else if (type === 'list') {
      value = raw.split(',').map((s) => s.trim()).filter(Boolean);
    }
    setPath(into, path, value, name);
  }
}

// ---- unknown keys ---------------------------------------------------------------------------------------------

type ZodInternals = { _zod: { def: { type: string; innerType?: unknown; in?: unknown; shape?: Record<string, unknown>; valueType?: unknown; element?: unknown } } };

/** The schema under optional/default/prefault/nullable/pipe wrappers. */
function unwrap(schema: unknown): ZodInternals['_zod']['def'] {
  let def = (schema as ZodInternals)._zod.def;
  for (;;) {
    if (def.innerType !== undefined && ['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch'].includes(def.type)) def = (def.innerType as ZodInternals)._zod.def;
    else if (def.type === 'pipe' && def.in !== undefined) def = (def.in as ZodInternals)._zod.def;
    else return def;
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length];
}

/** The known key `key` was most likely meant to be, or null when none is close. */
function closest(key: string, known: string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) { best = k; bestD = d; }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

/**
 * Keys of `value` the schema does not know, each as `path: unknown key (did you mean …?)`. zod drops them without a
 * word, so a misspelt `acounting.openRegistration: false` would leave registration open: every one is an error.
 */
export function unknownKeys(value: unknown, schema: unknown = configSchema, path: string[] = []): string[] {
  const def = unwrap(schema);
  const out: string[] = [];
  if (def.type === 'object' && def.shape && isPlainObject(value)) {
    const known = Object.keys(def.shape);
    for (const [k, v] of Object.entries(value)) {
      const here = [...path, k];
      if (!(k in def.shape)) {
        const near = closest(k, known);
        out.push(`${here.join('.')}: unknown key${near ? ` (did you mean ${[...path, near].join('.')}?)` : path.length ? ` (${path.join('.')} has ${known.join(', ')})` : ''}`);
      } else {
        out.push(...unknownKeys(v, def.shape[k], here));
      }
    }
  } else if (def.type === 'record' && def.valueType && isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) out.push(...unknownKeys(v, def.valueType, [...path, k]));
  } else if (def.type === 'array' && def.element && Array.isArray(value)) {
    value.forEach((v, i) => out.push(...unknownKeys(v, def.element, [...path, String(i)])));
  }
  return out;
}

/** The environment variable that set the value at `path` (or the section it is in), when one did. */
function envFor(path: (string | number | symbol)[], env: NodeJS.ProcessEnv): string | null {
  const p = path.map(String).join('.');
  for (const [name, e] of Object.entries(ENV_MAP)) {
    const ep = e.path.join('.');
    if ((p === ep || p.startsWith(`${ep}.`)) && env[name] !== undefined && env[name] !== '') return name;
  }
  return null;
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
    let parsedFile: unknown;
    try {
      parsedFile = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(e as Error).message}`);
    }
    if (!isPlainObject(parsedFile)) throw new ConfigError(`config file ${file} must hold a JSON object ({ "stratum": { "port": 3333 }, … }), not ${describe(parsedFile)}`);
    raw = parsedFile;
  }
  // Before the environment and overrides are merged in, so every key named is one the file has.
  const unknown = unknownKeys(raw);
  fromEnv(env, raw);
  for (const [k, v] of Object.entries(opts.overrides ?? {})) if (v !== undefined) setPath(raw, k.split('.'), v, `--${k.split('.').pop()}`);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success || unknown.length > 0) {
    const issues = [
      ...unknown,
      ...(parsed.success ? [] : parsed.error.issues.map((i) => {
        const name = envFor(i.path, env);
        return `${i.path.map(String).join('.') || '(root)'}: ${i.message}${name ? ` (${name})` : ''}`;
      })),
    ];
    const where = `invalid configuration${file ? ` (${file})` : ''}`;
    throw new ConfigError(issues.length === 1 ? `${where}: ${issues[0]}` : `${where}:\n${issues.map((l) => `  - ${l}`).join('\n')}`);
  }
  const cfg = parsed.data;
  const d = cfg.stratum.difficulty;
  d.initial ??= cfg.network === 'regtest' ? 0.0001 : 16384;
  d.min ??= cfg.network === 'regtest' ? 1e-8 : 0.0001;
  cfg.accounting.deposits.confirmations ??= cfg.network === 'regtest' ? 3 : 6;
  if (d.min > d.max) throw new ConfigError(`stratum.difficulty.min (${d.min}) is above stratum.difficulty.max (${d.max})`);
  const ing = cfg.database.ingest;
  if (ing.maxBytes > 0 && ing.blockMarginBytes >= ing.maxBytes) {
    throw new ConfigError(`database.ingest.blockMarginBytes (${ing.blockMarginBytes}) must be below database.ingest.maxBytes (${ing.maxBytes}, HASHHUB_SPOOL_MAX_BYTES)`);
  }
  if (cfg.node.urls.length > 0 && !cfg.payoutAddress) {
    throw new ConfigError('payoutAddress (HASHHUB_PAYOUT_ADDRESS) is required when a real node is configured');
  }
  if (cfg.node.urls.length === 0 && cfg.network !== 'regtest') {
    throw new ConfigError(`the embedded chain is regtest only: set node.urls (HASHHUB_NODE_URLS) for ${cfg.network}`);
  }
  if (cfg.market.enabled && (!cfg.accounting.enabled || !cfg.routing.enabled)) {
    throw new ConfigError(`market.enabled needs accounting.enabled and routing.enabled (it settles on the books and delivers by routing); set HASHHUB_MARKET_ENABLED=false to run without the market`);
  }
  if (cfg.stratum.processes > 1 && !cfg.database.url) {
    throw new ConfigError(`stratum.processes (${cfg.stratum.processes}, HASHHUB_STRATUM_PROCESSES) needs PostgreSQL (database.url, DATABASE_URL): the embedded database belongs to one process`);
  }
  if (cfg.stratum.nodeId + cfg.stratum.processes - 1 > 255) {
    throw new ConfigError(`stratum.nodeId (${cfg.stratum.nodeId}) + stratum.processes (${cfg.stratum.processes}) − 1 is above 255: each process takes the next node id`);
  }
  const bucket = cfg.routing.meterBucketSeconds;
  if (60 % bucket !== 0) throw new ConfigError(`routing.meterBucketSeconds: ${bucket} must divide a minute (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)`);
  if (cfg.market.enabled && cfg.market.tickSeconds % bucket !== 0) {
    throw new ConfigError(`market.tickSeconds (${cfg.market.tickSeconds}) must be a multiple of routing.meterBucketSeconds (${bucket}): a tick is billed from whole metering buckets`);
  }
  // Ticks are numbered from the epoch and a tick's work counts at its start (the daily index, the 1h and 1d candles,
  // "every tick of the day settled" before publication): a tick that does not divide an hour runs across hours and
  // UTC midnights, and its work after 00:00 went into the previous day.
  if (cfg.market.enabled && 3600 % cfg.market.tickSeconds !== 0) {
    throw new ConfigError(`market.tickSeconds (${cfg.market.tickSeconds}) must divide an hour (e.g. 60, 300, 900, 3600), so that every UTC hour and day is whole ticks`);
  }
  const acct = cfg.accounting;
  const ps = acct.periodSeconds;
  if (86_400 % ps !== 0 || (60 % ps !== 0 && ps % 60 !== 0)) {
    throw new ConfigError(`accounting.periodSeconds: ${ps} must divide a day and either divide a minute or be whole minutes (e.g. 60, 600, 3600)`);
  }
  if (acct.pplns.maxWindowSeconds > cfg.database.retention.shareDays * 86_400) {
    throw new ConfigError(`accounting.pplns.maxWindowSeconds (${acct.pplns.maxWindowSeconds}) reaches past share retention (${cfg.database.retention.shareDays} days)`);
  }
  if (acct.payouts.thresholdSats < acct.payouts.minThresholdSats) {
    throw new ConfigError(`accounting.payouts.thresholdSats (${acct.payouts.thresholdSats}) is below minThresholdSats (${acct.payouts.minThresholdSats})`);
  }
  if (acct.payouts.minSatVb > acct.payouts.maxSatVb) throw new ConfigError('accounting.payouts.minSatVb is above maxSatVb');
  if (!acct.allowedSchemes.includes(acct.defaultScheme)) throw new ConfigError(`accounting.defaultScheme "${acct.defaultScheme}" is not in accounting.allowedSchemes`);
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

// ---- printing ------------------------------------------------------------------------------------------------

const SECRET_KEY = /password|secret|token/i;
const SECRET_PARAM = /^(password|pass|pwd|secret|token|api[-_]?key|sslpassword)$/i;

/** A URL with its password (user:password@ and ?password=…) replaced by ***; other strings unchanged. */
export function redactSecretsInUrl(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    // Not parsable, yet it looked like a URL: it may still hold a password between "//" and "@".
    return value.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@');
  }
  let changed = false;
  if (u.password) { u.password = '***'; changed = true; }
  for (const k of [...u.searchParams.keys()]) {
    if (SECRET_PARAM.test(k)) { u.searchParams.set(k, '***'); changed = true; }
  }
  return changed ? u.toString() : value;
}

/**
 * The configuration as `hashhub config` prints it: every field named like a secret (password, token, secret)
 * becomes "***", and every URL (node URLs, the database URL) loses its password. Walks the whole object, so a
 * section added later is covered without anyone remembering to list it here.
 */
export function redactConfig<T>(value: T, key = ''): T {
  if (typeof value === 'string') return (SECRET_KEY.test(key) && value !== '' ? '***' : redactSecretsInUrl(value)) as T;
  if (Array.isArray(value)) return value.map((v) => redactConfig(v, key)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactConfig(v, k)])) as T;
  }
  return value;
}
