// Accounting and payouts over HTTP (OpenAPI at /docs). Public: the pool's totals and its blocks (with their split
// totals, never an account's share). An account's token (owner, or read-only watcher): its balance, earnings per
// credit period and per block with what they came from, its ledger lines, payouts with txids and confirmations,
// settings (owner changes them), tokens. The operator token: payouts (run, bump, cancel, confirm an external
// signer's transaction), reconciliation, funding, the books' status and self-check.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { accountIdByName, createAccount, issueToken, listTokens, revokeToken } from '../../accounting/accounts.ts';
import { AccountingError, ConflictError, NotFoundError, ValidationError } from '../../accounting/errors.ts';
import { owned } from '../../accounting/ledger.ts';
import { WalletError } from '../../accounting/payouts/wallet.ts';
import { accountMoney, accountPayouts, blockLines, blocksView, earnings, periodShares, poolTotals } from '../../accounting/reports.ts';
import { paramsAt } from '../../accounting/params.ts';
import type { AccountingService } from '../../accounting/service.ts';
import { type Auth, describePrincipal } from '../auth.ts';
import { ApiError, errorResponses } from '../errors.ts';
import { ACCOUNT_PATTERN, PAGE_LIMIT_MAX, PAGE_OFFSET_MAX } from '../schemas.ts';

export interface AccountingApiDeps {
  service: AccountingService;
  auth: Auth;
  /** Anyone may create an account (and get its owner token); otherwise only the operator. */
  openRegistration: boolean;
  now?: () => number;
}

// ---- schema helpers -------------------------------------------------------------------------------------------
const sats = { type: 'string', pattern: '^-?[0-9]+$', description: 'satoshis (a decimal string: exceeds 2^53 safely)' } as const;
const str = { type: 'string' } as const;
const nstr = { type: ['string', 'null'] } as const;
const int = { type: 'integer' } as const;
const bool = { type: 'boolean' } as const;
const obj = (properties: Record<string, unknown>, required: string[] = Object.keys(properties)) => ({ type: 'object', properties, required } as const);
const list = (items: unknown) => obj({ items: { type: 'array', items } });
const page = (items: unknown) => obj({ total: int, limit: int, offset: int, items: { type: 'array', items } });
const auth401 = {
  401: { description: 'Missing or unknown token (UNAUTHORIZED)', $ref: 'Error#' },
  403: { description: 'The token may not do that (FORBIDDEN)', $ref: 'Error#' },
  404: { description: 'Unknown account or object (ACCOUNT_NOT_FOUND, NOT_FOUND)', $ref: 'Error#' },
  409: { description: 'Conflicts with the current state (CONFLICT)', $ref: 'Error#' },
  503: { description: 'The node wallet is unavailable (WALLET_UNAVAILABLE)', $ref: 'Error#' },
} as const;
const security = [{ bearer: [] }];
const accountParam = obj({ account: { type: 'string', pattern: ACCOUNT_PATTERN } });
const pageQ = { type: 'object', additionalProperties: false, properties: {
  limit: { type: 'integer', minimum: 1, maximum: PAGE_LIMIT_MAX, default: 50 }, offset: { type: 'integer', minimum: 0, maximum: PAGE_OFFSET_MAX, default: 0 } } } as const;

/** bigint → decimal string, Date → ISO, deeply: what the JSON answers carry. */
function json(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(json);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, json(x)]));
  return v;
}

/** Accounting's typed errors as API errors (the field of a bad input named in details). */
function apiError(e: unknown): unknown {
  if (e instanceof ValidationError) return new ApiError('VALIDATION_FAILED', e.message, [{ in: 'body', path: `/${e.field}`, message: e.message }]);
  if (e instanceof NotFoundError) return new ApiError('NOT_FOUND', e.message);
  if (e instanceof ConflictError) return new ApiError('CONFLICT', e.message);
  if (e instanceof WalletError) return new ApiError('WALLET_UNAVAILABLE', e.message);
  if (e instanceof AccountingError) return new ApiError('CONFLICT', e.message);
  return e;
}

type Handler<R> = (req: FastifyRequest, reply: FastifyReply) => Promise<R>;
function guarded<R>(fn: Handler<R>): Handler<unknown> {
  return async (req, reply) => {
    try {
      return json(await fn(req, reply));
    } catch (e) {
      throw apiError(e);
    }
  };
}

export function accountingRoutes(app: FastifyInstance, d: AccountingApiDeps): void {
  const s = d.service;
  const db = s.db;
  const now = d.now ?? Date.now;

  // Account names never change owner (accounts are never renamed or deleted), so a name found once is not
  // looked up again: one database round trip less on every account request. Misses are not kept.
  const accountIds = new Map<string, bigint>();
  async function accountOf(req: FastifyRequest): Promise<bigint> {
    const name = (req.params as { account: string }).account;
    const known = accountIds.get(name);
    if (known !== undefined) return known;
    const id = await accountIdByName(db, name);
    if (id === null) throw new ApiError('ACCOUNT_NOT_FOUND', `Account ${name} not found`);
    if (accountIds.size >= 100_000) accountIds.clear();
    accountIds.set(name, id);
    return id;
  }

  // ---- public ----------------------------------------------------------------------------------------------
  app.get('/api/v1/accounting/pool', {
    schema: {
      tags: ['accounting'], summary: 'The pool\'s schemes, fees and public totals (never an account\'s)',
      response: { 200: obj({
        periodSeconds: int, schemes: { type: 'array', items: str }, defaultScheme: str, fees: obj({ fppsBps: int, pplnsBps: int, soloBps: int }),
        pplns: obj({ n: { type: 'number' }, maxWindowSeconds: int }),
        totals: obj({ blocksCredited: int, rewardsCredited: sats, paid: sats, payouts: int, accountsPaid: int }),
        payoutThreshold: sats, minThreshold: sats,
      }), ...errorResponses },
    },
  }, guarded(async () => {
    const frame = await s.init();
    const p = await paramsAt(db, Math.max(now(), frame.startedAt));
    return {
      periodSeconds: frame.periodSeconds, schemes: s.config.allowedSchemes, defaultScheme: p?.defaultScheme ?? s.config.scheme.defaultScheme,
      fees: { fppsBps: p?.fppsFeeBps ?? 0, pplnsBps: p?.pplnsFeeBps ?? 0, soloBps: p?.soloFeeBps ?? 0 },
      pplns: { n: p?.pplnsN ?? 0, maxWindowSeconds: p?.pplnsMaxWindowSeconds ?? 0 },
      totals: await poolTotals(db), payoutThreshold: s.config.payouts.defaultThreshold, minThreshold: s.config.payouts.minThreshold,
    };
  }));

  const blockItem = obj({
    hash: str, height: int, time: str, status: str, confirmations: int, reward: { type: ['string', 'null'] }, split: nstr, fee: { type: ['string', 'null'] },
    toPoolRevenue: { type: ['string', 'null'] }, lines: int, windowShares: { type: ['integer', 'null'] }, cappedByTime: { type: ['boolean', 'null'] }, credited: bool,
  });
  app.get<{ Querystring: { limit: number; offset: number } }>('/api/v1/accounting/blocks', {
    schema: { tags: ['accounting'], summary: 'Blocks with their status and how their reward was split (totals)', querystring: pageQ, response: { 200: page(blockItem), ...errorResponses } },
  }, guarded(async (req) => {
    const { limit, offset } = req.query as { limit: number; offset: number };
    const r = await blocksView(db, { limit, offset });
    return { total: r.total, limit, offset, items: r.items };
  }));

  // ---- accounts ----------------------------------------------------------------------------------------------
  app.post<{ Body: { name: string } }>('/api/v1/accounts', {
    schema: {
      tags: ['accounting'], summary: 'Create an account; the answer carries its owner token (shown once)', security,
      body: obj({ name: { type: 'string', pattern: ACCOUNT_PATTERN } }),
      response: { 201: obj({ account: str, ownerToken: str, existed: bool }), ...auth401, ...errorResponses },
    },
  }, guarded(async (req, reply) => {
    const p = await d.auth.principal(req);
    const byOperator = p.role === 'operator';
    if (!byOperator && !d.openRegistration) throw new ApiError('FORBIDDEN', 'Accounts are created by the operator on this pool');
    const name = (req.body as { name: string }).name;
    const r = await db.transaction((tx) => createAccount(tx, name, byOperator, s.settings.network));
    req.log.info({ account: name, by: describePrincipal(p, req.ip) }, 'account created');
    reply.status(201);
    return { account: name, ownerToken: r.ownerToken, existed: r.existed };
  }));

  app.get('/api/v1/accounts/:account/balance', {
    schema: {
      tags: ['accounting'], summary: 'An account\'s money: balance, immature, in flight, paid', security, params: accountParam,
      response: { 200: obj({ account: str, balance: sats, immature: sats, inFlight: sats, paid: sats, soloEarnings: sats, fppsCarryMsat: sats, scheme: str,
        payoutAddress: nstr, threshold: sats }), ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireRead(req, id);
    const frame = await s.init();
    const [money, set] = await Promise.all([accountMoney(db, id), s.settings.read(db, frame, id, now())]);
    return { account: set!.account, ...money, scheme: set!.scheme, payoutAddress: set!.effectiveAddress, threshold: set!.effectiveThreshold };
  }));

  const earningItem = obj({
    kind: { type: 'string', enum: ['fpps', 'block'] }, time: str, amount: sats, shares: int,
    periodStart: str, periodEnd: str, revision: int, difficulty: str,
    hash: str, height: int, blockStatus: str, split: str, inBalance: bool, paidInCoinbase: bool,
  }, ['kind', 'time', 'amount', 'shares']);
  app.get<{ Querystring: { limit: number; before?: string } }>('/api/v1/accounts/:account/earnings', {
    schema: {
      tags: ['accounting'], summary: 'Earnings, newest first: FPPS credits per period and block credits (with status); the next page is `before` = the last item\'s time (a page can hold more than `limit` items when several share its last time)', security, params: accountParam,
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: PAGE_LIMIT_MAX, default: 50 }, before: { type: 'string', format: 'date-time' } } },
      response: { 200: list(earningItem), ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireRead(req, id);
    const q = req.query as { limit: number; before?: string };
    return { items: await earnings(db, id, q) };
  }));

  app.get('/api/v1/accounts/:account/earnings/periods/:start', {
    schema: {
      tags: ['accounting'], summary: 'One FPPS period of an account: its credits and the shares they came from (per height and nbits)', security,
      params: obj({ account: { type: 'string', pattern: ACCOUNT_PATTERN }, start: { type: 'string', format: 'date-time' } }),
      response: { 200: obj({
        periodStart: str, periodEnd: str,
        credits: { type: 'array', items: obj({ revision: int, shares: int, difficulty: str, credited: sats, exactSat: str }) },
        groups: { type: 'array', items: obj({ height: int, nbits: { type: ['integer', 'null'] }, shares: int, difficulty: str, blockValue: { type: ['string', 'null'] }, networkDifficulty: nstr }) },
      }), ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireRead(req, id);
    const r = await periodShares(db, id, (req.params as { start: string }).start);
    if (!r) throw new NotFoundError('no credited period starts there');
    return r;
  }));

  app.get<{ Querystring: { limit: number; before?: string } }>('/api/v1/accounts/:account/ledger', {
    schema: {
      tags: ['accounting'], summary: 'The account\'s balance lines in the ledger, newest first, with the balance after each', security, params: accountParam,
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 }, before: { type: 'string', pattern: '^[0-9]{1,18}$' } } },
      response: { 200: list(obj({ postingId: sats, entryId: sats, key: str, entryKind: str, effectiveAt: str, memo: nstr, change: sats, balanceAfter: sats },
        ['postingId', 'key', 'entryKind', 'effectiveAt', 'change', 'balanceAfter'])), ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireRead(req, id);
    const q = req.query as { limit: number; before?: string };
    return { items: await s.engine!.ledger.history(db, owned('balance', id), { limit: q.limit, before: q.before ? BigInt(q.before) : undefined }) };
  }));

  app.get<{ Querystring: { limit: number; offset: number } }>('/api/v1/accounts/:account/payouts', {
    schema: {
      tags: ['accounting'], summary: 'The account\'s payouts with txids and confirmations', security, params: accountParam, querystring: pageQ,
      response: { 200: list(obj({ batchId: sats, amount: sats, address: str, status: str, txid: nstr, confirmations: int, createdAt: str, confirmedAt: nstr })), ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireRead(req, id);
    const q = req.query as { limit: number; offset: number };
    return { items: await accountPayouts(db, id, q) };
  }));

  const settingsOut = obj({
    account: str, payoutAddress: nstr, effectiveAddress: nstr, payoutAddressChangedAt: nstr, threshold: { type: ['string', 'null'] }, effectiveThreshold: sats,
    scheme: str, nextScheme: { type: ['object', 'null'], properties: { scheme: str, from: str } },
  });
  app.get('/api/v1/accounts/:account/settings', {
    schema: { tags: ['accounting'], summary: 'Payout address, threshold, scheme', security, params: accountParam, response: { 200: settingsOut, ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireRead(req, id);
    return s.settings.read(db, await s.init(), id, now());
  }));

  app.patch('/api/v1/accounts/:account/settings', {
    schema: {
      tags: ['accounting'], summary: 'Change payout address (logged, delays the next payout), threshold (>= dust and the pool minimum), scheme (from the next period)',
      security, params: accountParam,
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: {
        payoutAddress: { type: ['string', 'null'] }, threshold: { type: ['string', 'integer', 'null'] }, scheme: { type: 'string' } } },
      response: { 200: settingsOut, ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    const p = await d.auth.requireWrite(req, id);
    const frame = await s.init();
    await db.transaction((tx) => s.settings.update(tx, frame, id, req.body as Record<string, never>, describePrincipal(p, req.ip), now()));
    return s.settings.read(db, frame, id, now());
  }));

  app.get('/api/v1/accounts/:account/settings/address-log', {
    schema: { tags: ['accounting'], summary: 'Every payout address change, with when and by whom', security, params: accountParam,
      response: { 200: list(obj({ oldAddress: nstr, newAddress: nstr, changedAt: str, source: str })), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireRead(req, id);
    return { items: await s.settings.addressLog(db, id) };
  }));

  const tokenItem = obj({ id: sats, role: str, label: nstr, createdAt: str, revokedAt: nstr });
  app.get('/api/v1/accounts/:account/tokens', {
    schema: { tags: ['accounting'], summary: 'The account\'s tokens (never the secrets)', security, params: accountParam, response: { 200: list(tokenItem), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireWrite(req, id);
    return { items: await listTokens(db, id) };
  }));

  app.post('/api/v1/accounts/:account/tokens', {
    schema: {
      tags: ['accounting'], summary: 'Issue a read-only watcher token (owner), or an owner token (operator); the secret is shown once', security, params: accountParam,
      body: { type: 'object', additionalProperties: false, properties: { role: { type: 'string', enum: ['watcher', 'owner'], default: 'watcher' }, label: { type: 'string', maxLength: 100 } } },
      response: { 201: obj({ id: sats, role: str, token: str }), ...auth401, ...errorResponses },
    },
  }, guarded(async (req, reply) => {
    const id = await accountOf(req);
    const p = await d.auth.requireWrite(req, id);
    const body = (req.body ?? {}) as { role?: 'watcher' | 'owner'; label?: string };
    const role = body.role ?? 'watcher';
    if (role === 'owner' && p.role !== 'operator') throw new ApiError('FORBIDDEN', 'Only the operator issues owner tokens');
    const t = await issueToken(db, id, role, body.label ?? null);
    req.log.info({ account: id.toString(), role, tokenId: t.id.toString(), by: describePrincipal(p, req.ip) }, 'token issued');
    reply.status(201);
    return { id: t.id, role, token: t.token };
  }));

  app.delete('/api/v1/accounts/:account/tokens/:id', {
    schema: { tags: ['accounting'], summary: 'Revoke a token', security,
      params: obj({ account: { type: 'string', pattern: ACCOUNT_PATTERN }, id: { type: 'string', pattern: '^[0-9]{1,18}$' } }),
      response: { 204: { type: 'null' }, ...auth401, ...errorResponses } },
  }, guarded(async (req, reply) => {
    const id = await accountOf(req);
    await d.auth.requireWrite(req, id);
    await revokeToken(db, id, BigInt((req.params as { id: string }).id));
    d.auth.tokensChanged();
    reply.status(204);
    return null;
  }));

  // ---- operator ----------------------------------------------------------------------------------------------
  const batchItem = obj({
    id: sats, status: str, mode: str, reason: nstr, reasonCode: nstr, attempts: int, total: sats, lines: int, txid: nstr, confirmedTxid: nstr,
    networkFee: { type: ['string', 'null'] }, confirmations: int, createdAt: str, signedAt: nstr, broadcastAt: nstr, confirmedAt: nstr, txids: { type: 'array', items: str },
  });
  app.get<{ Querystring: { limit: number; offset: number } }>('/api/v1/payouts', {
    schema: { tags: ['payouts'], summary: 'Payout batches, newest first (pending ones show why)', security, querystring: pageQ, response: { 200: page(batchItem), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    const { limit, offset } = req.query as { limit: number; offset: number };
    const r = await s.payouts.list(db, { limit, offset });
    return { total: r.total, limit, offset, items: r.items };
  }));

  app.get('/api/v1/payouts/:id', {
    schema: { tags: ['payouts'], summary: 'One batch with its lines', security, params: obj({ id: { type: 'string', pattern: '^[0-9]{1,18}$' } }),
      response: { 200: obj({ batch: batchItem, lines: { type: 'array', items: obj({ account: str, address: str, amount: sats }) } }), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    const id = BigInt((req.params as { id: string }).id);
    const r = await s.payouts.list(db, { limit: 1, offset: 0, id });
    if (!r.items[0]) throw new NotFoundError(`no payout batch ${id}`);
    return { batch: r.items[0], lines: (await s.payouts.lines(db, id)).map((l) => ({ account: l.account, address: l.address, amount: l.amount })) };
  }));

  app.post('/api/v1/payouts/run', {
    schema: { tags: ['payouts'], summary: 'Run payouts now: send stored transactions, follow them, start a batch', security,
      response: { 200: obj({ progressed: { type: 'array', items: obj({ kind: str, batchId: sats }, ['kind']) }, created: obj({ kind: str, reason: str, batchId: sats, code: str, txid: str, psbt: str }, ['kind']) }), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    const r = await s.payoutTick();
    if (!r) throw new ApiError('CONFLICT', 'payouts are stopping or failed; see the status');
    return r;
  }));

  app.post('/api/v1/payouts/:id/bump', {
    schema: { tags: ['payouts'], summary: 'Replace the batch\'s transaction by RBF over the same inputs at a higher fee rate', security,
      params: obj({ id: { type: 'string', pattern: '^[0-9]{1,18}$' } }),
      body: { type: 'object', additionalProperties: false, required: ['feeRate'], properties: { feeRate: { type: 'number', exclusiveMinimum: 0 }, force: { type: 'boolean' } } },
      response: { 200: { type: 'object', additionalProperties: false, required: ['txid', 'fee', 'sent'], properties: { txid: str, fee: sats, sent: bool, reason: str } }, ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    const b = req.body as { feeRate: number; force?: boolean };
    return s.payouts.bump(BigInt((req.params as { id: string }).id), b.feeRate, now(), { force: b.force });
  }));

  app.post('/api/v1/payouts/:id/cancel', {
    schema: { tags: ['payouts'], summary: 'Return a batch\'s amounts to the balances (only when none of its transactions can confirm)', security,
      params: obj({ id: { type: 'string', pattern: '^[0-9]{1,18}$' } }),
      // psbtDestroyed: an external batch's PSBT was never handed out or every copy is destroyed (else it must be void).
      body: { type: ['object', 'null'], additionalProperties: false, properties: { psbtDestroyed: bool } },
      response: { 200: obj({ cancelled: bool }), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    const body = req.body as { psbtDestroyed?: boolean } | null | undefined;
    await s.payouts.cancel(BigInt((req.params as { id: string }).id), now(), `operator from ${req.ip}`, { psbtDestroyed: body?.psbtDestroyed === true });
    return { cancelled: true };
  }));

  app.post('/api/v1/payouts/confirm', {
    schema: { tags: ['payouts'], summary: 'External signer: the batch\'s PSBT was signed and sent as this transaction', security,
      body: obj({ txid: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' } }), response: { 200: obj({ batchId: sats }), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    return s.payouts.confirmExternal((req.body as { txid: string }).txid, now());
  }));

  app.get('/api/v1/accounting/reconcile', {
    schema: { tags: ['accounting'], summary: 'The ledger\'s wallet account against the node wallet\'s spendable coins', security,
      response: { 200: obj({ ledgerWallet: sats, inFlight: sats, expected: sats, node: sats, difference: sats }), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    return s.payouts.reconcile();
  }));

  app.post('/api/v1/accounting/fund', {
    schema: { tags: ['accounting'], summary: 'Record coins the node wallet holds that the ledger does not know (a top-up, blocks before accounting)', security,
      body: obj({ amount: { type: 'string', pattern: '^[0-9]{1,19}$' }, reason: { type: 'string', minLength: 1, maxLength: 500 }, key: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,100}$' } }),
      response: { 200: obj({ status: str }), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    const b = req.body as { amount: string; reason: string; key: string };
    return { status: await s.payouts.fund(BigInt(b.amount), b.reason, `operator from ${req.ip}`, b.key, now()) };
  }));

  // ---- funding (issue 13): deposit addresses, deposits, operator credits --------------------------------------
  app.get('/api/v1/accounts/:account/deposit-address', {
    schema: {
      tags: ['funding'], summary: 'The account\'s deposit address (made by the node wallet the first time; owner or operator)', security, params: accountParam,
      response: { 200: obj({ account: str, address: str, label: str, createdAt: str, confirmations: int }), ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireWrite(req, id);
    const name = (req.params as { account: string }).account;
    const a = await s.deposits.address(id, name);
    return { account: name, address: a.address, label: a.label, createdAt: a.createdAt, confirmations: s.deposits.policy.confirmations };
  }));

  const depositItem = obj({
    txid: str, vout: int, address: str, amount: sats, state: { type: 'string', enum: ['seen', 'credited', 'reversed'] }, confirmations: int,
    blockHash: nstr, blockHeight: { type: ['integer', 'null'] }, credits: int, shortfall: sats, firstSeenAt: str, creditedAt: nstr, reversedAt: nstr,
  });
  app.get<{ Querystring: { limit: number; offset: number } }>('/api/v1/accounts/:account/deposits', {
    schema: {
      tags: ['funding'], summary: 'Deposits to the account\'s addresses, newest first (seen, credited at the confirmation threshold, reversed by a reorg)',
      security, params: accountParam, querystring: pageQ, response: { 200: page(depositItem), ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireRead(req, id);
    const { limit, offset } = req.query as { limit: number; offset: number };
    return { ...(await s.deposits.list(db, id, { limit, offset })), limit, offset };
  }));

  app.post('/api/v1/accounts/:account/credits', {
    schema: {
      tags: ['funding'], summary: 'Operator credit to the account\'s balance (from operator_adjustments), kept with who and why; idempotent by key', security,
      params: accountParam,
      body: { type: 'object', additionalProperties: false, required: ['amount', 'reason', 'key'], properties: {
        amount: { type: 'string', pattern: '^[0-9]{1,19}$', description: 'satoshis (decimal string), at least 1' },
        reason: { type: 'string', minLength: 1, maxLength: 500 }, key: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,100}$' } } },
      response: { 200: obj({ account: str, status: { type: 'string', enum: ['posted', 'duplicate'] }, entryId: sats, amount: sats, balance: sats }), ...auth401, ...errorResponses },
    },
  }, guarded(async (req) => {
    const id = await accountOf(req);
    await d.auth.requireOperator(req);
    const b = req.body as { amount: string; reason: string; key: string };
    const r = await s.deposits.operatorCredit(id, BigInt(b.amount), b.reason, `operator from ${req.ip}`, b.key, now());
    return { account: (req.params as { account: string }).account, status: r.status, entryId: r.entryId, amount: b.amount, balance: await s.deposits.ledger.balance(db, owned('balance', id)) };
  }));

  app.get('/api/v1/accounting/status', {
    schema: { tags: ['accounting'], summary: 'Watermark and its sources, FPPS progress, errors, the last payout run', security,
      response: { 200: { type: 'object', additionalProperties: true }, ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    return { ...(await s.status()), stats: s.stats };
  }));

  app.post('/api/v1/accounting/sources/:source/retire', {
    schema: { tags: ['accounting'], summary: 'A pool process (spool) gone for good: the ingest watermark stops waiting for it', security,
      params: obj({ source: { type: 'string', minLength: 1, maxLength: 200 } }), response: { 200: obj({ retired: bool }), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    const retired = await s.retireSource((req.params as { source: string }).source);
    if (!retired) throw new NotFoundError('no live ingest source by that id');
    return { retired };
  }));

  app.get('/api/v1/accounting/blocks/:hash/credits', {
    schema: { tags: ['accounting'], summary: 'Per-account credits of a block (operator: these are accounts\' earnings)', security,
      params: obj({ hash: { type: 'string', pattern: '^[0-9a-f]{64}$' } }),
      response: { 200: list(obj({ account: str, shares: int, weight: str, amount: sats })), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    return { items: await blockLines(db, (req.params as { hash: string }).hash) };
  }));

  app.get('/api/v1/accounting/verify', {
    schema: { tags: ['accounting'], summary: 'The ledger\'s self-check: running balances against postings, every entry balanced', security,
      response: { 200: obj({ ok: bool, problems: { type: 'array', items: str } }), ...auth401, ...errorResponses } },
  }, guarded(async (req) => {
    await d.auth.requireOperator(req);
    const problems = await s.engine!.ledger.verify(db);
    return { ok: problems.length === 0, problems };
  }));
}
