// The daily index from the database: gather the stored inputs (trades, tick mids, the previous index, the
// day's hashprice snapshot), compute (index-price.ts), publish once, recompute later bit for bit, correct with
// a logged reason. The parameters used are stored with the row, so a later config change never alters a
// recomputation of a published day.

import { createHash } from 'node:crypto';
import type { Queryable } from '../store/db.ts';
import type { MarketConfig } from './config.ts';
import { MarketError } from './errors.ts';
import { hashprice } from './hashprice.ts';
import {
  INDEX_METHODOLOGY_VERSION, type IndexInputs, type IndexParams, type IndexResult, type IndexTrade, type TickMid, computeDailyIndex, dayBounds,
} from './index-price.ts';
import type { ChainSnapshot } from './ports.ts';
import { big, int, lockMarket, stableJson } from './sql.ts';
import { type Rational, reduce } from './units.ts';

export interface IndexRow {
  day: string;
  method: IndexResult['method'];
  value: number | null;
  exact: Rational | null;
  volumeHashes: bigint;
  tradesUsed: number;
  outliers: number;
  outlierHashes: bigint;
  selfTrades: number;
  credited: number;
  median: Rational | null;
  note: string | null;
  hashprice: number | null;
  methodology: number;
  params: IndexParams;
  inputsDigest: string;
  publishedAt: Date;
  correctedAt: Date | null;
}

export function paramsOf(cfg: MarketConfig): IndexParams {
  return { minVolumeHashes: cfg.index.minVolumeHashes, outlierBps: 2500, minMidTicks: cfg.index.minMidTicks };
}

function checkDay(day: string): { start: number; end: number } {
  try {
    return dayBounds(day);
  } catch (e) {
    throw new MarketError('INVALID_DAY', (e as Error).message, 'day');
  }
}

const previousDay = (day: string) => new Date(dayBounds(day).start - 86_400_000).toISOString().slice(0, 10);

export async function gatherIndexInputs(q: Queryable, day: string, params: IndexParams): Promise<{ inputs: IndexInputs; digest: string; unsettledTicks: number; hashpriceSat: number | null }> {
  const { start, end } = checkDay(day);
  const from = new Date(start - 86_400_000).toISOString();
  const to = new Date(end).toISOString();
  const tr = await q.query<{ ms: string; price: string; hashes: string; self_trade: boolean }>(
    `SELECT (extract(epoch FROM t.starts_at) * 1000)::bigint::text AS ms, x.price, x.accepted_hashes::text AS hashes, x.self_trade
       FROM market_trades x JOIN market_ticks t ON t.tick = x.tick
      WHERE t.starts_at >= $1::timestamptz AND t.starts_at < $2::timestamptz AND x.accepted_hashes > 0
      ORDER BY x.tick, x.bid_id, x.ask_id, x.price`,
    [from, to],
  );
  const trades: IndexTrade[] = tr.rows.map((r) => ({ time: int(r.ms), price: int(r.price), hashes: big(r.hashes), selfTrade: Boolean(r.self_trade) }));
  const md = await q.query<{ ms: string; best_bid: string; best_ask: string }>(
    `SELECT (extract(epoch FROM starts_at) * 1000)::bigint::text AS ms, best_bid, best_ask FROM market_ticks
      WHERE starts_at >= $1::timestamptz AND starts_at < $2::timestamptz AND best_bid IS NOT NULL AND best_ask IS NOT NULL ORDER BY tick`,
    [new Date(start).toISOString(), to],
  );
  const mids: TickMid[] = md.rows.map((r) => ({ time: int(r.ms), bestBid: int(r.best_bid), bestAsk: int(r.best_ask) }));
  const prevDay = previousDay(day);
  const prev = await q.query<{ value: string | null }>(`SELECT value FROM market_index WHERE day = $1::date`, [prevDay]);
  const previous = prev.rows[0]?.value != null ? { day: prevDay, value: int(prev.rows[0].value) } : null;
  const hp = await q.query<{ day: string; exact_num: string; exact_den: string; value: string }>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day, exact_num::text AS exact_num, exact_den::text AS exact_den, value FROM market_hashprice WHERE day IN ($1::date, $2::date)`,
    [day, prevDay],
  );
  const hpOf = (d: string) => hp.rows.find((r) => r.day === d);
  const today = hpOf(day);
  const yesterday = hpOf(prevDay);
  const hashpriceIn = today && yesterday
    ? { day: { num: big(today.exact_num), den: big(today.exact_den) }, previousDay: { num: big(yesterday.exact_num), den: big(yesterday.exact_den) } }
    : null;
  const unsettled = await q.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM market_ticks WHERE starts_at >= $1::timestamptz AND starts_at < $2::timestamptz AND settled_at IS NULL`,
    [new Date(start).toISOString(), to],
  );
  const inputs: IndexInputs = { day, trades, mids, previous, hashprice: hashpriceIn };
  const digest = createHash('sha256').update(stableJson({ methodology: INDEX_METHODOLOGY_VERSION, params, inputs })).digest('hex');
  return { inputs, digest, unsettledTicks: int(unsettled.rows[0].n), hashpriceSat: today ? int(today.value) : null };
}

/** Compute the index of `day` from what is stored, with the given parameters (a published row's own, or config's). */
export async function computeIndexFromDb(q: Queryable, day: string, params: IndexParams) {
  const g = await gatherIndexInputs(q, day, params);
  return { result: computeDailyIndex(g.inputs, params), digest: g.digest, unsettledTicks: g.unsettledTicks, hashpriceSat: g.hashpriceSat };
}

/** Store the chain facts of `day` once (the first snapshot taken at or after the day's end stands). */
export async function recordHashprice(q: Queryable, day: string, s: ChainSnapshot): Promise<void> {
  const h = hashprice({ difficulty: { bits: s.bits }, subsidySat: s.subsidySat, feesSat: s.feesSat, blocks: s.blocks });
  const exact = reduce(h.exact);
  await q.query(
    `INSERT INTO market_hashprice (day, height, bits, subsidy_sat, fees_sat, blocks, value, exact_num, exact_den)
     VALUES ($1::date, $2, $3, $4, $5, $6, $7, $8::numeric, $9::numeric) ON CONFLICT (day) DO NOTHING`,
    [day, s.height, s.bits, s.subsidySat.toString(), s.feesSat.toString(), s.blocks, h.sat, exact.num.toString(), exact.den.toString()],
  );
}

export async function readIndex(q: Queryable, day: string): Promise<IndexRow | null> {
  checkDay(day);
  const r = await q.query(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day, method, value, exact_num::text AS exact_num, exact_den::text AS exact_den, volume_hashes::text AS volume_hashes,
            trades_used, outliers, outlier_hashes::text AS outlier_hashes, self_trades, credited, median_num::text AS median_num, median_den::text AS median_den,
            note, hashprice, methodology, params, inputs_digest, published_at, corrected_at
       FROM market_index WHERE day = $1::date`, [day]);
  return r.rows[0] ? indexFromRow(r.rows[0]) : null;
}

export async function listIndex(q: Queryable, from: string, to: string): Promise<IndexRow[]> {
  const r = await q.query(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day, method, value, exact_num::text AS exact_num, exact_den::text AS exact_den, volume_hashes::text AS volume_hashes,
            trades_used, outliers, outlier_hashes::text AS outlier_hashes, self_trades, credited, median_num::text AS median_num, median_den::text AS median_den,
            note, hashprice, methodology, params, inputs_digest, published_at, corrected_at
       FROM market_index WHERE day >= $1::date AND day <= $2::date ORDER BY day`, [from, to]);
  return r.rows.map(indexFromRow);
}

function indexFromRow(r: Record<string, unknown>): IndexRow {
  const p = (typeof r.params === 'string' ? JSON.parse(r.params) : r.params) as { minVolumeHashes: string; outlierBps: number; minMidTicks: number };
  const rat = (n: unknown, d: unknown) => (n == null ? null : { num: big(n), den: big(d) });
  return {
    day: String(r.day), method: r.method as IndexResult['method'], value: r.value == null ? null : int(r.value), exact: rat(r.exact_num, r.exact_den),
    volumeHashes: big(r.volume_hashes), tradesUsed: int(r.trades_used), outliers: int(r.outliers), outlierHashes: big(r.outlier_hashes),
    selfTrades: int(r.self_trades), credited: int(r.credited), median: rat(r.median_num, r.median_den), note: (r.note as string | null) ?? null,
    hashprice: r.hashprice == null ? null : int(r.hashprice), methodology: int(r.methodology),
    params: { minVolumeHashes: big(p.minVolumeHashes), outlierBps: p.outlierBps, minMidTicks: p.minMidTicks },
    inputsDigest: String(r.inputs_digest), publishedAt: new Date(String(r.published_at)), correctedAt: r.corrected_at ? new Date(String(r.corrected_at)) : null,
  };
}

async function writeIndex(q: Queryable, result: IndexResult, params: IndexParams, digest: string, hashpriceSat: number | null, mode: 'insert' | 'update'): Promise<void> {
  const values = [
    result.day, result.method, result.value, result.exact?.num.toString() ?? null, result.exact?.den.toString() ?? null, result.volumeHashes.toString(),
    result.tradesUsed, result.excluded.outliers, result.excluded.outlierHashes.toString(), result.excluded.selfTrades, result.excluded.credited,
    result.median?.num.toString() ?? null, result.median?.den.toString() ?? null, result.note, hashpriceSat, INDEX_METHODOLOGY_VERSION,
    stableJson(params), digest,
  ];
  if (mode === 'insert') {
    await q.query(
      `INSERT INTO market_index (day, method, value, exact_num, exact_den, volume_hashes, trades_used, outliers, outlier_hashes, self_trades, credited,
         median_num, median_den, note, hashprice, methodology, params, inputs_digest)
       VALUES ($1::date, $2, $3, $4::numeric, $5::numeric, $6::numeric, $7, $8, $9::numeric, $10, $11, $12::numeric, $13::numeric, $14, $15, $16, $17::jsonb, $18)`,
      values,
    );
  } else {
    await q.query(
      `UPDATE market_index SET method = $2, value = $3, exact_num = $4::numeric, exact_den = $5::numeric, volume_hashes = $6::numeric, trades_used = $7,
         outliers = $8, outlier_hashes = $9::numeric, self_trades = $10, credited = $11, median_num = $12::numeric, median_den = $13::numeric, note = $14,
         hashprice = $15, methodology = $16, params = $17::jsonb, inputs_digest = $18, corrected_at = now()
       WHERE day = $1::date`,
      values,
    );
  }
}

/** Publish `day` once; a second call returns the published row unchanged. Refuses while a tick of the day is unsettled. */
export async function publishIndexInTx(tx: Queryable, cfg: MarketConfig, day: string): Promise<{ row: IndexRow; published: boolean }> {
  // The market's lock first: no settlement commits between reading the day's trades and counting its unsettled
  // ticks (without it, a tick settled in between counted as settled while its trades were missed, and the day was
  // published without them), and a second process publishing the same day waits, then finds the row.
  await lockMarket(tx);
  const existing = await readIndex(tx, day);
  if (existing) return { row: existing, published: false };
  const params = paramsOf(cfg);
  const c = await computeIndexFromDb(tx, day, params);
  if (c.unsettledTicks > 0) throw new MarketError('INDEX_NOT_READY', `${day}: ${c.unsettledTicks} ticks are not settled yet`);
  await writeIndex(tx, c.result, params, c.digest, c.hashpriceSat, 'insert');
  return { row: (await readIndex(tx, day))!, published: true };
}

export interface Recompute {
  published: IndexRow | null;
  recomputed: IndexResult;
  digest: string;
  /** Published value, method, exact rational and inputs digest all equal to the recomputation. */
  identical: boolean;
}

/** Recompute a day from stored data with the parameters it was published with (config's when unpublished). */
export async function recomputeIndex(q: Queryable, cfg: MarketConfig, day: string): Promise<Recompute> {
  const published = await readIndex(q, day);
  const c = await computeIndexFromDb(q, day, published?.params ?? paramsOf(cfg));
  const same = (a: Rational | null, b: Rational | null) => (a === null || b === null ? a === b : a.num * b.den === b.num * a.den);
  const identical = !!published && published.method === c.result.method && published.value === c.result.value
    && same(published.exact, c.result.exact) && published.inputsDigest === c.digest;
  return { published, recomputed: c.result, digest: c.digest, identical };
}

/** Re-publish a day after its stored inputs changed (a trade corrected), logging who and why. */
export async function correctIndexInTx(tx: Queryable, cfg: MarketConfig, day: string, actor: string, reason: string): Promise<{ row: IndexRow; changed: boolean }> {
  if (!reason.trim()) throw new MarketError('INVALID_ORDER', 'a correction needs a reason', 'reason');
  await lockMarket(tx); // as publishIndexInTx: one consistent view of the day, one writer at a time
  const before = await readIndex(tx, day);
  if (!before) throw new MarketError('INDEX_NOT_FOUND', `no index published for ${day}`);
  const c = await computeIndexFromDb(tx, day, before.params);
  if (before.inputsDigest === c.digest && before.value === c.result.value && before.method === c.result.method) return { row: before, changed: false };
  await writeIndex(tx, c.result, before.params, c.digest, c.hashpriceSat, 'update');
  await tx.query(
    `INSERT INTO market_index_corrections (day, old_value, new_value, old_method, new_method, actor, reason) VALUES ($1::date, $2, $3, $4, $5, $6, $7)`,
    [day, before.value, c.result.value, before.method, c.result.method, actor, reason],
  );
  return { row: (await readIndex(tx, day))!, changed: true };
}
