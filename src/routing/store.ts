import type { Queryable } from '../store/db.ts';
import type { FlushPosition, MeterFlush } from '../market/ports.ts';
import type { MeterSink, MinuteDelta, RouteMinute } from './meter.ts';
import type { Destination, RouteSpec, RouteStatus } from './route.ts';

// Routes and their metering in the database (migration 020): the one place that decides which workers go where
// (every stratum process reads it and routes its own sessions), and where delivered work is kept.

export interface RouteRow extends RouteSpec {
  createdAt: string;
  startsAt: string;
  stoppedAt: string | null;
  state: string;
  stateCode: string | null;
  stateMessage: string | null;
  stateSince: string;
  leaseUntil: string | null;
  appliedTick: number | null;
}

/** What a route delivered per worker over an interval: the meter's counts summed over its buckets. */
export type RouteDelivery = Pick<RouteMinute, 'routeId' | 'worker' | 'valid' | 'validDifficulty' | 'invalid' | 'forwarded' | 'accepted'
  | 'acceptedDifficulty' | 'acceptedDifficultySq' | 'rejected' | 'stale' | 'noAnswer' | 'switchLost' | 'probeAccepted'>;

interface RawRoute {
  id: string; name: string; destinations: Destination[]; workers: string[]; hashrate: number | null; bid_id: string | null; created_at: Date; starts_at: Date;
  stopped_at: Date | null; state: string; state_code: string | null; state_message: string | null; state_since: Date;
  lease_until: Date | null; applied_tick: string | null;
}

function toRow(r: RawRoute): RouteRow {
  return {
    id: Number(r.id), name: r.name, destinations: typeof r.destinations === 'string' ? JSON.parse(r.destinations) as Destination[] : r.destinations,
    workers: r.workers, hashrate: r.hashrate === null ? null : Number(r.hashrate), bidId: r.bid_id === null ? null : Number(r.bid_id),
    createdAt: new Date(r.created_at).toISOString(), startsAt: new Date(r.starts_at).toISOString(), stoppedAt: r.stopped_at ? new Date(r.stopped_at).toISOString() : null,
    state: r.state, stateCode: r.state_code, stateMessage: r.state_message, stateSince: new Date(r.state_since).toISOString(),
    leaseUntil: r.lease_until ? new Date(r.lease_until).toISOString() : null, appliedTick: r.applied_tick === null ? null : Number(r.applied_tick),
  };
}

const COLS = 'id, name, destinations, workers, hashrate, bid_id, created_at, starts_at, stopped_at, state, state_code, state_message, state_since, lease_until, applied_tick';

export class RouteStore implements MeterSink {
  /**
   * `onOrphans`: told when a flush carried counts for routes this database does not have (kept in
   * route_meter_orphans, never billed), so the operator hears of it.
   */
  constructor(private readonly db: Queryable, private readonly node = 'node-0',
    private readonly onOrphans: (buckets: number, flushId: string) => void = () => undefined) {}

  async create(r: { name: string; destinations: Destination[]; workers: string[]; hashrate?: number | null; bidId?: number | null; startsAt?: Date }): Promise<RouteRow> {
    const res = await this.db.query<RawRoute>(
      `INSERT INTO routes (name, destinations, workers, bid_id, starts_at, hashrate) VALUES ($1, $2::jsonb, $3::text[], $4, COALESCE($5::timestamptz, now()), $6) RETURNING ${COLS}`,
      [r.name, JSON.stringify(r.destinations), r.workers, r.bidId ?? null, r.startsAt?.toISOString() ?? null, r.hashrate ?? null]);
    return toRow(res.rows[0]);
  }

  async list(opts: { active?: boolean } = {}): Promise<RouteRow[]> {
    const res = await this.db.query<RawRoute>(`SELECT ${COLS} FROM routes ${opts.active ? 'WHERE stopped_at IS NULL' : ''} ORDER BY id`);
    return res.rows.map(toRow);
  }

  /**
   * Routes in force now (started, not stopped), on the database's clock: starts_at is the database's now() to the
   * microsecond, and this process's clock (milliseconds, maybe skewed) read a route created in the same millisecond
   * as not started yet, so it waited for the next sync.
   */
  async active(): Promise<RouteRow[]> {
    const res = await this.db.query<RawRoute>(`SELECT ${COLS} FROM routes WHERE stopped_at IS NULL AND starts_at <= now() ORDER BY id`);
    return res.rows.map(toRow);
  }

  async get(id: number): Promise<RouteRow | null> {
    const res = await this.db.query<RawRoute>(`SELECT ${COLS} FROM routes WHERE id = $1`, [id]);
    return res.rows[0] ? toRow(res.rows[0]) : null;
  }

  /** The workers of a route, as the market applies them at a tick (a later tick only; the lease with it). */
  async setWorkers(id: number, workers: readonly string[], lease: { tick: number; until: Date } | null): Promise<boolean> {
    const res = lease
      ? await this.db.query(`UPDATE routes SET workers = $2::text[], applied_tick = $3, lease_until = $4::timestamptz WHERE id = $1 AND stopped_at IS NULL AND (applied_tick IS NULL OR applied_tick <= $3)`,
        [id, workers, lease.tick, lease.until.toISOString()])
      : await this.db.query(`UPDATE routes SET workers = $2::text[] WHERE id = $1 AND stopped_at IS NULL`, [id, workers]);
    return res.rowCount > 0;
  }

  /** The active route of a market bid. */
  async forBid(bidId: number): Promise<RouteRow | null> {
    const res = await this.db.query<RawRoute>(`SELECT ${COLS} FROM routes WHERE bid_id = $1 AND stopped_at IS NULL`, [bidId]);
    return res.rows[0] ? toRow(res.rows[0]) : null;
  }

  /** Stop a route (idempotent); false when there is no such route. */
  async stop(id: number): Promise<boolean> {
    const res = await this.db.query(`UPDATE routes SET stopped_at = COALESCE(stopped_at, now()), state = 'stopped', state_since = CASE WHEN stopped_at IS NULL THEN now() ELSE state_since END WHERE id = $1`, [id]);
    if (res.rowCount === 0) return false;
    await this.db.query(`UPDATE route_pauses SET ended_at = now() WHERE route_id = $1 AND ended_at IS NULL`, [id]);
    return true;
  }

  /** A state change seen by a stratum process: the route's row, an event, and the pause record. */
  async recordState(id: number, st: RouteStatus): Promise<void> {
    const at = new Date(st.since).toISOString();
    await this.db.query(`UPDATE routes SET state = $2, state_code = $3, state_message = $4, state_since = $5::timestamptz WHERE id = $1 AND stopped_at IS NULL`,
      [id, st.state, st.code, st.message, at]);
    await this.db.query(`INSERT INTO route_events (route_id, at, kind, code, message) VALUES ($1, $2::timestamptz, $3, $4, $5)`, [id, at, st.state, st.code, st.message]);
    if (st.state === 'paused' || st.state === 'failed') {
      await this.db.query(`INSERT INTO route_pauses (route_id, started_at, code, message) SELECT $1, $2::timestamptz, $3, $4
        WHERE NOT EXISTS (SELECT 1 FROM route_pauses WHERE route_id = $1 AND ended_at IS NULL)`, [id, at, st.code ?? 'unknown', st.message]);
    } else {
      await this.db.query(`UPDATE route_pauses SET ended_at = $2::timestamptz WHERE route_id = $1 AND ended_at IS NULL`, [id, at]);
    }
  }

  async recordMove(id: number, data: Record<string, unknown>): Promise<void> {
    await this.db.query(`INSERT INTO route_events (route_id, kind, data) VALUES ($1, 'moved', $2::jsonb)`, [id, JSON.stringify(data)]);
  }

  async events(id: number, limit = 100): Promise<{ at: string; kind: string; code: string | null; message: string | null; data: unknown }[]> {
    const res = await this.db.query<{ at: Date; kind: string; code: string | null; message: string | null; data: unknown }>(
      `SELECT at, kind, code, message, data FROM route_events WHERE route_id = $1 ORDER BY id DESC LIMIT $2`, [id, limit]);
    return res.rows.map((r) => ({ ...r, at: new Date(r.at).toISOString() }));
  }

  async pauses(id: number): Promise<{ startedAt: string; endedAt: string | null; code: string; message: string | null }[]> {
    const res = await this.db.query<{ started_at: Date; ended_at: Date | null; code: string; message: string | null }>(
      `SELECT started_at, ended_at, code, message FROM route_pauses WHERE route_id = $1 ORDER BY started_at`, [id]);
    return res.rows.map((r) => ({ startedAt: new Date(r.started_at).toISOString(), endedAt: r.ended_at ? new Date(r.ended_at).toISOString() : null, code: r.code, message: r.message }));
  }

  /**
   * MeterSink: the increments and this process's watermark in one statement (atomic without a transaction), applied
   * once per flush id: a retry of a flush that committed behind an error finds its id and adds nothing.
   */
  async addMinutes(unsorted: readonly MinuteDelta[], watermark: Date | null, flushId: string): Promise<void> {
    if (unsorted.length === 0) {
      if (!watermark) return;
      // The watermark alone: moving it again changes nothing (GREATEST), so no flush id is needed.
      await this.db.query(MOVE_WATERMARK, [this.node, watermark.toISOString()]);
      return;
    }
    // In key order, so two processes adding to the same buckets lock them in the same order (no deadlock).
    const deltas = [...unsorted].sort((a, b) => a.routeId - b.routeId || (a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : 0) || a.minute - b.minute);
    const col = <K extends keyof MinuteDelta>(k: K) => deltas.map((d) => d[k]);
    const res = await this.db.query<{ orphaned: number }>(ADD_MINUTES, [
      this.node, flushId, watermark?.toISOString() ?? null,
      col('routeId'), col('worker'), deltas.map((d) => new Date(d.minute).toISOString()), col('valid'), col('validDifficulty'), col('invalid'),
      col('forwarded'), col('accepted'), col('acceptedDifficulty'), col('acceptedDifficultySq'), col('rejected'), col('stale'), col('noAnswer'),
      col('switchLost'), col('switchLostDifficulty'), col('probeAccepted'), col('probeDifficulty'),
    ]);
    const orphaned = Number(res.rows[0]?.orphaned ?? 0);
    if (orphaned > 0) this.onOrphans(orphaned, flushId);
  }

  /** Per route and worker over [from, to) (minute buckets by submit time). */
  async delivered(from: Date, to: Date, routeIds?: readonly number[]): Promise<RouteDelivery[]> {
    const res = await this.db.query<Record<string, string | number>>(
      `SELECT route_id, worker, sum(valid) AS valid, sum(valid_difficulty) AS valid_difficulty, sum(invalid) AS invalid, sum(forwarded) AS forwarded,
              sum(accepted) AS accepted, sum(accepted_difficulty) AS accepted_difficulty, sum(accepted_difficulty_sq) AS accepted_difficulty_sq,
              sum(rejected) AS rejected, sum(stale) AS stale, sum(no_answer) AS no_answer, sum(switch_lost) AS switch_lost, sum(probe_accepted) AS probe_accepted
         FROM route_minutes WHERE minute >= $1::timestamptz AND minute < $2::timestamptz ${routeIds ? 'AND route_id = ANY($3::bigint[])' : ''}
        GROUP BY route_id, worker ORDER BY route_id, worker`,
      routeIds ? [from.toISOString(), to.toISOString(), routeIds] : [from.toISOString(), to.toISOString()]);
    return res.rows.map((r) => ({
      routeId: Number(r.route_id), worker: String(r.worker), valid: Number(r.valid), validDifficulty: Number(r.valid_difficulty), invalid: Number(r.invalid),
      forwarded: Number(r.forwarded), accepted: Number(r.accepted), acceptedDifficulty: Number(r.accepted_difficulty), acceptedDifficultySq: Number(r.accepted_difficulty_sq),
      rejected: Number(r.rejected), stale: Number(r.stale), noAnswer: Number(r.no_answer), switchLost: Number(r.switch_lost), probeAccepted: Number(r.probe_accepted),
    }));
  }

  /**
   * Flushes that added to market routes, in (applied at, id) order after `after` (at most `limit`): when, by which
   * process, their oldest bucket, and their exact place in that order (`at` to the microsecond, as text).
   */
  async marketFlushes(after: FlushPosition, limit: number): Promise<MeterFlush[]> {
    const res = await this.db.query<{ flush_id: string; node: string; at: Date; at_text: string; oldest_market_minute: Date }>(
      `SELECT flush_id, node, at, at::text AS at_text, oldest_market_minute FROM route_meter_flushes
        WHERE oldest_market_minute IS NOT NULL AND (at, flush_id) > ($1::timestamptz, $2) ORDER BY at, flush_id LIMIT $3`, [after.at, after.flushId, limit]);
    return res.rows.map((r) => ({ flushId: r.flush_id, node: r.node, at: new Date(r.at), oldestMinute: new Date(r.oldest_market_minute), position: { at: r.at_text, flushId: r.flush_id } }));
  }

  /** The slowest process's watermark (every process that metered in the last hour). */
  async watermark(): Promise<Date> {
    const res = await this.db.query<{ w: Date | null }>(`SELECT min(watermark) AS w FROM route_meter_watermarks WHERE updated_at > now() - interval '1 hour'`);
    return res.rows[0]?.w ? new Date(res.rows[0].w) : new Date(0);
  }
}

/** A node's watermark only moves forward (a replayed flush carries an older one). */
const WATERMARK_FORWARD = 'ON CONFLICT (node) DO UPDATE SET watermark = GREATEST(route_meter_watermarks.watermark, EXCLUDED.watermark), updated_at = now()';

const MOVE_WATERMARK = `
INSERT INTO route_meter_watermarks (node, watermark) VALUES ($1, $2::timestamptz)
${WATERMARK_FORWARD}`;

/**
 * One meter flush ($1 node, $2 flush id, $3 watermark, $4… the buckets as arrays): recorded in route_meter_flushes
 * first, and the rest only if that row is new. Every part of a statement sees the same snapshot, so the watermark
 * and the buckets go in together or not at all.
 */
const ADD_MINUTES = `
WITH flush AS (
  -- With its oldest bucket of billable work (shares the destination accepted) for a market route (migration 024):
  -- the market finds work that came after its tick was settled.
  INSERT INTO route_meter_flushes (flush_id, node, oldest_market_minute)
  SELECT $2, $1, (SELECT min(u.minute) FROM unnest($4::bigint[], $6::timestamptz[], $11::bigint[]) AS u (route_id, minute, accepted)
                    JOIN routes r ON r.id = u.route_id AND r.bid_id IS NOT NULL WHERE u.accepted > 0)
  ON CONFLICT DO NOTHING RETURNING 1
), d AS (
  SELECT u.*, EXISTS (SELECT 1 FROM routes r WHERE r.id = u.route_id) AS known
    FROM unnest($4::bigint[], $5::text[], $6::timestamptz[], $7::bigint[], $8::float8[], $9::bigint[], $10::bigint[], $11::bigint[],
      $12::float8[], $13::float8[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::float8[], $19::bigint[], $20::float8[])
      AS u (route_id, worker, minute, valid, valid_difficulty, invalid, forwarded, accepted, accepted_difficulty, accepted_difficulty_sq,
            rejected, stale, no_answer, switch_lost, switch_lost_difficulty, probe_accepted, probe_difficulty)
   WHERE EXISTS (SELECT 1 FROM flush)
), buckets AS (
  INSERT INTO route_minutes AS m (route_id, worker, minute, valid, valid_difficulty, invalid, forwarded, accepted, accepted_difficulty,
    accepted_difficulty_sq, rejected, stale, no_answer, switch_lost, switch_lost_difficulty, probe_accepted, probe_difficulty)
  SELECT route_id, worker, minute, valid, valid_difficulty, invalid, forwarded, accepted, accepted_difficulty, accepted_difficulty_sq,
         rejected, stale, no_answer, switch_lost, switch_lost_difficulty, probe_accepted, probe_difficulty
    FROM d WHERE known
  ON CONFLICT (route_id, worker, minute) DO UPDATE SET
    valid = m.valid + EXCLUDED.valid, valid_difficulty = m.valid_difficulty + EXCLUDED.valid_difficulty, invalid = m.invalid + EXCLUDED.invalid,
    forwarded = m.forwarded + EXCLUDED.forwarded, accepted = m.accepted + EXCLUDED.accepted,
    accepted_difficulty = m.accepted_difficulty + EXCLUDED.accepted_difficulty, accepted_difficulty_sq = m.accepted_difficulty_sq + EXCLUDED.accepted_difficulty_sq,
    rejected = m.rejected + EXCLUDED.rejected, stale = m.stale + EXCLUDED.stale, no_answer = m.no_answer + EXCLUDED.no_answer,
    switch_lost = m.switch_lost + EXCLUDED.switch_lost, switch_lost_difficulty = m.switch_lost_difficulty + EXCLUDED.switch_lost_difficulty,
    probe_accepted = m.probe_accepted + EXCLUDED.probe_accepted, probe_difficulty = m.probe_difficulty + EXCLUDED.probe_difficulty
), orphans AS (
  -- A route this database does not have (migration 023): kept apart, so the rest of the flush is written.
  INSERT INTO route_meter_orphans (flush_id, node, route_id, worker, minute, counts)
  SELECT $2, $1, route_id, worker, minute, to_jsonb(d) - 'route_id' - 'worker' - 'minute' - 'known' FROM d WHERE NOT known
  RETURNING 1
), mark AS (
  INSERT INTO route_meter_watermarks (node, watermark) SELECT $1, $3::timestamptz WHERE EXISTS (SELECT 1 FROM flush) AND $3::timestamptz IS NOT NULL
  ${WATERMARK_FORWARD}
), pruned AS (
  DELETE FROM route_meter_flushes WHERE node = $1 AND at < now() - interval '7 days'
)
-- Those of this flush: written now, or (a retry after a lost reply) before this statement's snapshot.
SELECT ((SELECT count(*) FROM orphans) + (SELECT count(*) FROM route_meter_orphans WHERE flush_id = $2))::int AS orphaned`;
