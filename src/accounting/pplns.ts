import type { Queryable } from '../store/db.ts';
import { commonScale } from './exact.ts';
import type { BooksFrame } from './params.ts';
import { type Resum, resumLateShares } from './sums.ts';

// The PPLNS window of a block, from the stored shares: the last N × (the block's network difficulty) of accepted
// pooled difficulty before the block (newest first, the share that crosses the line counted in part), but no
// share older than maxWindowSeconds before the block. SOLO accounts' shares never count (they mine for
// themselves); FPPS accounts' shares count (their part of the reward goes to pool_revenue, which paid them).
//
// To stay fast over a million shares the window is found in two passes: the share sums per (bucket, account)
// (migration 014; bucket = min(60 s, period), so a bucket never straddles a scheme change) are loaded over a
// growing time range until the cumulative pooled difficulty crosses the target; only the crossing bucket is then
// walked share by share. The block's own bucket (it holds shares after the block) and the bucket of the time cap
// come from the raw shares. A share stored after the sums passed its time (replayed late) counts like any other
// share stored before the split is computed: where the buckets read from the sums hold fewer shares than ingest's
// rollups count, they are re-summed from the raw shares (a split is computed once: a share stored after it is not
// in it).
//
// Weights are exact: difficulty (float8 → numeric, 15 significant digits) × hashhub_bits_ratio(block bits), so
// the target is exactly N × 65535 in the same units and the partial share is target − what came after it.

export interface WindowLine {
  accountId: bigint;
  scheme: 'fpps' | 'pplns';
  /** Exact decimal string (numeric). */
  weight: string;
  shares: number;
}

export interface PplnsWindow {
  lines: WindowLine[];
  target: string;
  /** Σ weights (= target unless capped by time). */
  weight: string;
  shares: number;
  /** Time of the oldest share counted (ms); null when the window is empty. */
  start: number | null;
  cappedByTime: boolean;
  /** Ranges re-summed for shares stored late, and ranges whose raw shares are gone (kept as summed). */
  late: Resum;
}

/**
 * Each share's scheme is its account's at the share's period, else the default of the params in force then.
 * Resolved with range joins over the (few) scheme and params versions, not a lookup per row: a window holds
 * tens of thousands of (bucket, account) rows.
 */
const WITH_SCHEMES = (source: string) => `
WITH g AS (${source}),
sv AS (
  SELECT account_id, effective_from AS f, lead(effective_from) OVER (PARTITION BY account_id ORDER BY effective_from) AS u, scheme
  FROM account_schemes WHERE account_id IN (SELECT DISTINCT account_id FROM g)
), pv AS (
  SELECT effective_from AS f, lead(effective_from) OVER (ORDER BY effective_from) AS u, default_scheme FROM accounting_params
)
SELECT g.b, g.account_id, g.d, g.n, g.first, coalesce(sv.scheme, pv.default_scheme)
FROM g
LEFT JOIN sv ON sv.account_id = g.account_id AND g.b >= sv.f AND (sv.u IS NULL OR g.b < sv.u)
LEFT JOIN pv ON g.b >= pv.f AND (pv.u IS NULL OR g.b < pv.u)`;

/** Whole buckets [lo, hi) from the share sums. $1 lo, $2 hi, both bucket starts. */
const ADD_SUMS = `
INSERT INTO pplns_buckets (b, account_id, d, n, first, scheme)
${WITH_SCHEMES(`
  SELECT bucket AS b, account_id, sum(pool_difficulty::numeric * n) AS d, sum(n) AS n, min(first_time) AS first
  FROM share_sums_bucket WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz
  GROUP BY 1, 2`)}`;

/** Raw shares of (lo, hi] into pplns_buckets. $1 lo (exclusive), $2 hi (inclusive), $3 bucket width. */
const ADD_BUCKETS = `
INSERT INTO pplns_buckets (b, account_id, d, n, first, scheme)
${WITH_SCHEMES(`
  SELECT b, account_id, sum(pool_difficulty::numeric * n) AS d, sum(n) AS n, min(first) AS first
  FROM (
    -- Per distinct float difficulty first: converted to numeric once per value, not once per share.
    SELECT date_bin($3::interval, time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b, account_id, pool_difficulty,
      count(*) AS n, min(time) AS first
    FROM shares WHERE time > $1::timestamptz AND time <= $2::timestamptz
    GROUP BY 1, 2, 3
  ) x GROUP BY 1, 2`)}`;

/** The newest bucket at which the cumulative pooled weight (newest first) reaches the target. $1 ratio, $2 target. */
const CROSSING = `
SELECT b, (cum - tot)::text AS after FROM (
  SELECT b, sum(d) AS tot, sum(sum(d)) OVER (ORDER BY b DESC) AS cum
  FROM pplns_buckets WHERE scheme <> 'solo' GROUP BY b
) x WHERE cum * $1::numeric >= $2::numeric ORDER BY b DESC LIMIT 1`;

/**
 * The crossing bucket share by share, newest first: each share counts min(its weight, what is left of the
 * target). $1 bucket start, $2 bucket end (exclusive), $3 block time, $4 ratio, $5 target, $6 weight after
 * (scaled), $7 lower cap (exclusive).
 */
const WALK_BUCKET = `
SELECT account_id::text, scheme, sum(counted)::text AS weight, count(*) FILTER (WHERE counted > 0)::text AS shares,
  min(time) FILTER (WHERE counted > 0) AS oldest
FROM (
  SELECT s.account_id, s.time, b.scheme,
    greatest(0, least(s.pool_difficulty::numeric * $4::numeric,
      $5::numeric - $6::numeric - coalesce(sum(s.pool_difficulty::numeric * $4::numeric) OVER (
        ORDER BY s.time DESC, s.id COLLATE "C" DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))) AS counted
  FROM shares s JOIN pplns_buckets b ON b.b = $1::timestamptz AND b.account_id = s.account_id
  WHERE s.time >= $1::timestamptz AND s.time < $2::timestamptz AND s.time <= $3::timestamptz AND s.time > $7::timestamptz
    AND b.scheme <> 'solo'
) w
GROUP BY account_id, scheme`;

/** Everything newer than the crossing bucket (or all buckets when the window is capped), per account and scheme. */
const WHOLE_BUCKETS = `
SELECT account_id::text, scheme, (sum(d) * $1::numeric)::text AS weight, sum(n)::text AS shares
FROM pplns_buckets WHERE scheme <> 'solo' AND ($2::timestamptz IS NULL OR b > $2::timestamptz)
GROUP BY account_id, scheme`;

export async function pplnsWindow(tx: Queryable, frame: BooksFrame, block: { time: number; bits: number },
  params: { pplnsN: number; pplnsMaxWindowSeconds: number }): Promise<PplnsWindow> {
  const bucketSec = Math.min(60, frame.periodSeconds);
  const bucketMs = bucketSec * 1000;
  const T = block.time;
  const cap = T - params.pplnsMaxWindowSeconds * 1000;
  const ratio = (await tx.query<{ r: string }>('SELECT hashhub_bits_ratio($1)::text AS r', [block.bits])).rows[0].r;
  const target = (await tx.query<{ t: string }>('SELECT ($1::numeric * 65535)::text AS t', [String(params.pplnsN)])).rows[0].t;
  const iso = (ms: number) => new Date(ms).toISOString();

  await tx.exec(`CREATE TEMP TABLE IF NOT EXISTS pplns_buckets (b timestamptz, account_id bigint, d numeric, n bigint,
    first timestamptz, scheme text) ON COMMIT DROP`);
  await tx.exec('TRUNCATE pplns_buckets');
  // The block's own bucket from the raw shares (the sums hold shares after the block too), then whole buckets
  // from the sums growing back (10 buckets, then doubling), then the cap's bucket from the raw shares, until the
  // target is crossed in a bucket that is wholly loaded.
  const blockBucket = Math.floor(T / bucketMs) * bucketMs;
  const capBucket = Math.floor(cap / bucketMs) * bucketMs;
  const width = `${bucketSec} seconds`;
  await tx.query(ADD_BUCKETS, [iso(Math.max(cap, blockBucket - 1)), iso(T), width]);
  let hi = blockBucket; // buckets below hi are still to load
  let done = capBucket >= blockBucket;
  let span = 10 * bucketMs;
  let crossing: { b: number; after: string } | null = null;
  const late: Resum = { resummed: 0, kept: 0 };
  for (;;) {
    const c = await tx.query<{ b: Date | string; after: string }>(CROSSING, [ratio, target]);
    if (c.rows.length > 0) {
      const b = new Date(c.rows[0].b).getTime();
      // Complete unless older buckets, still to load, could hold more of it (they cannot: loads are whole buckets).
      if (b >= hi || done) {
        crossing = { b, after: c.rows[0].after };
        break;
      }
    }
    if (done) break;
    const lo = Math.max(capBucket + bucketMs, hi - span);
    if (lo < hi) {
      await tx.query(ADD_SUMS, [iso(lo), iso(hi)]);
      // Shares stored after the sums passed them: re-summed, and those buckets loaded again.
      const r = await resumLateShares(tx, frame, lo, hi);
      late.resummed += r.resummed;
      late.kept += r.kept;
      if (r.resummed > 0) {
        await tx.query('DELETE FROM pplns_buckets WHERE b >= $1::timestamptz AND b < $2::timestamptz', [iso(lo), iso(hi)]);
        await tx.query(ADD_SUMS, [iso(lo), iso(hi)]);
      }
      hi = lo;
    } else {
      // Only the cap's bucket is left: its shares after the cap.
      await tx.query(ADD_BUCKETS, [iso(cap), iso(capBucket + bucketMs - 1), width]);
      hi = capBucket;
      done = true;
    }
    span *= 2;
  }

  const byKey = new Map<string, { accountId: bigint; scheme: 'fpps' | 'pplns'; parts: string[]; shares: number }>();
  const add = (account: string, scheme: 'fpps' | 'pplns', weight: string, shares: number) => {
    const k = `${account}:${scheme}`;
    const cur = byKey.get(k) ?? { accountId: BigInt(account), scheme, parts: [], shares: 0 };
    cur.parts.push(weight);
    cur.shares += shares;
    byKey.set(k, cur);
  };
  let oldest: number | null = null;
  const whole = await tx.query<{ account_id: string; scheme: 'fpps' | 'pplns'; weight: string; shares: string }>(
    WHOLE_BUCKETS, [ratio, crossing ? iso(crossing.b) : null]);
  for (const r of whole.rows) add(r.account_id, r.scheme, r.weight, Number(r.shares));
  if (crossing) {
    const afterScaled = (await tx.query<{ a: string }>('SELECT ($1::numeric * $2::numeric)::text AS a', [crossing.after, ratio])).rows[0].a;
    const walked = await tx.query<{ account_id: string; scheme: 'fpps' | 'pplns'; weight: string; shares: string; oldest: Date | string | null }>(
      WALK_BUCKET, [iso(crossing.b), iso(crossing.b + bucketMs), iso(T), ratio, target, afterScaled, iso(cap)]);
    for (const r of walked.rows) {
      if (Number(r.shares) > 0) add(r.account_id, r.scheme, r.weight, Number(r.shares));
      if (r.oldest) oldest = Math.min(oldest ?? Infinity, new Date(r.oldest).getTime());
    }
  } else {
    const o = await tx.query<{ t: Date | string | null }>("SELECT min(first) AS t FROM pplns_buckets WHERE scheme <> 'solo'");
    oldest = o.rows[0]?.t ? new Date(o.rows[0].t).getTime() : null;
  }

  const lines: WindowLine[] = [];
  for (const v of byKey.values()) {
    const { values, scale } = commonScale(v.parts);
    const sum = values.reduce((s, x) => s + x, 0n);
    if (sum === 0n) continue;
    lines.push({ accountId: v.accountId, scheme: v.scheme, weight: scaledToString(sum, scale), shares: v.shares });
  }
  lines.sort((a, b) => (a.accountId === b.accountId ? a.scheme.localeCompare(b.scheme) : a.accountId < b.accountId ? -1 : 1));
  const total = commonScale(lines.length ? lines.map((l) => l.weight) : ['0']);
  const weight = scaledToString(total.values.reduce((s, x) => s + x, 0n), total.scale);
  return {
    lines, target, weight, shares: lines.reduce((s, l) => s + l.shares, 0), start: oldest, cappedByTime: crossing === null, late,
  };
}

function scaledToString(v: bigint, scale: number): string {
  if (scale === 0) return v.toString();
  const s = v.toString().padStart(scale + 1, '0');
  return `${s.slice(0, s.length - scale)}.${s.slice(s.length - scale)}`;
}
