import type { NetworkName } from '../chain/index.ts';
import type { Queryable } from '../store/db.ts';
import { ValidationError } from './errors.ts';
import type { Scheme } from './types.ts';

// The books' fixed frame (period length, start, network) and the versioned scheme parameters, kept in the
// database so every process computes with the same numbers. A change of parameters in the config takes effect at
// the next period boundary, recorded as a new row; a period never mixes two fee levels.

export interface SchemeParams {
  fppsFeeBps: number;
  pplnsFeeBps: number;
  soloFeeBps: number;
  defaultScheme: Exclude<Scheme, 'solo'>;
  /** PPLNS window = N × the block's network difficulty of accepted pooled shares… */
  pplnsN: number;
  /** …but never reaching back further than this (a small pool at mainnet difficulty would reach back years). */
  pplnsMaxWindowSeconds: number;
}

export interface BooksFrame {
  periodSeconds: number;
  /** The first credited period's start (ms). */
  startedAt: number;
  network: NetworkName;
}

/** FPPS amounts are numerators over this constant: 0xFFFF (diff1 / 2^208) × 10000 (basis points). */
export const FPPS_DENOM = 655_350_000n;

/** Start of the period containing t (periods are aligned to the epoch). */
export function periodStart(t: number, periodSeconds: number): number {
  const p = periodSeconds * 1000;
  return Math.floor(t / p) * p;
}

/** Bitcoin's subsidy schedule: 50 BTC halved every 210,000 blocks (150 on regtest). */
export function blockSubsidy(height: number, network: NetworkName): bigint {
  const interval = network === 'regtest' ? 150 : 210_000;
  const halvings = Math.floor(height / interval);
  return halvings >= 64 ? 0n : 5_000_000_000n >> BigInt(halvings);
}

export function checkPeriodSeconds(s: number): void {
  if (!Number.isInteger(s) || s < 1 || s > 86_400 || 86_400 % s !== 0 || (60 % s !== 0 && s % 60 !== 0)) {
    throw new ValidationError('accounting.periodSeconds', `${s} must divide a day and either divide a minute or be whole minutes (e.g. 1, 10, 60, 600, 3600)`);
  }
}

/**
 * Create the books' frame on first start (crediting starts at the next period boundary), or check that the
 * configured period matches the one the books were started with.
 */
export async function ensureFrame(q: Queryable, want: { periodSeconds: number; network: NetworkName; now: number }): Promise<BooksFrame> {
  checkPeriodSeconds(want.periodSeconds);
  const start = periodStart(want.now, want.periodSeconds) + want.periodSeconds * 1000;
  await q.query(
    `INSERT INTO accounting_state (singleton, period_seconds, started_at, network) VALUES (true, $1, $2::timestamptz, $3)
     ON CONFLICT (singleton) DO NOTHING`,
    [want.periodSeconds, new Date(start).toISOString(), want.network],
  );
  const frame = await readFrame(q);
  if (!frame) throw new Error('accounting_state missing after insert');
  if (frame.periodSeconds !== want.periodSeconds) {
    throw new ValidationError('accounting.periodSeconds', `the books were started with ${frame.periodSeconds} s periods; it cannot change to ${want.periodSeconds}`);
  }
  if (frame.network !== want.network) {
    throw new ValidationError('network', `the books are for ${frame.network}, not ${want.network}`);
  }
  return frame;
}

export async function readFrame(q: Queryable): Promise<BooksFrame | null> {
  const r = await q.query<{ period_seconds: number; started_at: Date | string; network: NetworkName }>(
    'SELECT period_seconds, started_at, network FROM accounting_state',
  );
  if (r.rows.length === 0) return null;
  const row = r.rows[0];
  return { periodSeconds: Number(row.period_seconds), startedAt: new Date(row.started_at).getTime(), network: row.network };
}

interface ParamsRow {
  effective_from: Date | string; fpps_fee_bps: number; pplns_fee_bps: number; solo_fee_bps: number;
  default_scheme: Exclude<Scheme, 'solo'>; pplns_n: string; pplns_max_window_seconds: number;
}

function fromRow(r: ParamsRow): SchemeParams & { effectiveFrom: number } {
  return {
    effectiveFrom: new Date(r.effective_from).getTime(),
    fppsFeeBps: Number(r.fpps_fee_bps),
    pplnsFeeBps: Number(r.pplns_fee_bps),
    soloFeeBps: Number(r.solo_fee_bps),
    defaultScheme: r.default_scheme,
    pplnsN: Number(r.pplns_n),
    pplnsMaxWindowSeconds: Number(r.pplns_max_window_seconds),
  };
}

const PARAM_COLS = `effective_from, fpps_fee_bps, pplns_fee_bps, solo_fee_bps, default_scheme, pplns_n::text AS pplns_n,
  pplns_max_window_seconds`;

/** The parameters in force at time t (ms); null before any were recorded. */
export async function paramsAt(q: Queryable, t: number): Promise<(SchemeParams & { effectiveFrom: number }) | null> {
  const r = await q.query<ParamsRow>(
    `SELECT ${PARAM_COLS} FROM accounting_params WHERE effective_from <= $1::timestamptz ORDER BY effective_from DESC LIMIT 1`,
    [new Date(t).toISOString()],
  );
  return r.rows.length ? fromRow(r.rows[0]) : null;
}

function same(a: SchemeParams, b: SchemeParams): boolean {
  return a.fppsFeeBps === b.fppsFeeBps && a.pplnsFeeBps === b.pplnsFeeBps && a.soloFeeBps === b.soloFeeBps
    && a.defaultScheme === b.defaultScheme && a.pplnsN === b.pplnsN && a.pplnsMaxWindowSeconds === b.pplnsMaxWindowSeconds;
}

export function checkParams(p: SchemeParams): void {
  for (const [field, v] of [['fees.fppsBps', p.fppsFeeBps], ['fees.pplnsBps', p.pplnsFeeBps], ['fees.soloBps', p.soloFeeBps]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 10_000) throw new ValidationError(`accounting.${field}`, `${v} is not a fee in basis points (0..10000)`);
  }
  if (p.defaultScheme !== 'fpps' && p.defaultScheme !== 'pplns') throw new ValidationError('accounting.defaultScheme', `unknown scheme "${String(p.defaultScheme)}"`);
  if (!(p.pplnsN > 0) || !Number.isFinite(p.pplnsN)) throw new ValidationError('accounting.pplns.n', `${p.pplnsN} must be a positive number`);
  if (!Number.isInteger(p.pplnsMaxWindowSeconds) || p.pplnsMaxWindowSeconds <= 0) {
    throw new ValidationError('accounting.pplns.maxWindowSeconds', `${p.pplnsMaxWindowSeconds} must be a positive whole number of seconds`);
  }
}

/**
 * Make the configured parameters the ones in force: unchanged → nothing; changed → a row effective at the next
 * period boundary (or at the start of the books when none exists yet). A row not yet in force is replaced.
 */
export async function syncParams(q: Queryable, frame: BooksFrame, want: SchemeParams, now: number, source = 'config'): Promise<{ changed: boolean; effectiveFrom: number }> {
  checkParams(want);
  const latest = await q.query<ParamsRow>(`SELECT ${PARAM_COLS} FROM accounting_params ORDER BY effective_from DESC LIMIT 1`);
  const cur = latest.rows.length ? fromRow(latest.rows[0]) : null;
  if (cur && same(cur, want)) return { changed: false, effectiveFrom: cur.effectiveFrom };
  const next = periodStart(now, frame.periodSeconds) + frame.periodSeconds * 1000;
  const from = cur ? Math.max(next, frame.startedAt) : Math.min(frame.startedAt, next);
  await q.query(
    `INSERT INTO accounting_params (effective_from, fpps_fee_bps, pplns_fee_bps, solo_fee_bps, default_scheme, pplns_n,
       pplns_max_window_seconds, source)
     VALUES ($1::timestamptz, $2, $3, $4, $5, $6::numeric, $7, $8)
     ON CONFLICT (effective_from) DO UPDATE SET fpps_fee_bps = EXCLUDED.fpps_fee_bps, pplns_fee_bps = EXCLUDED.pplns_fee_bps,
       solo_fee_bps = EXCLUDED.solo_fee_bps, default_scheme = EXCLUDED.default_scheme, pplns_n = EXCLUDED.pplns_n,
       pplns_max_window_seconds = EXCLUDED.pplns_max_window_seconds, source = EXCLUDED.source, recorded_at = now()
     WHERE accounting_params.effective_from > $9::timestamptz`,
    [new Date(from).toISOString(), want.fppsFeeBps, want.pplnsFeeBps, want.soloFeeBps, want.defaultScheme, String(want.pplnsN),
      want.pplnsMaxWindowSeconds, source, new Date(now).toISOString()],
  );
  return { changed: true, effectiveFrom: from };
}
