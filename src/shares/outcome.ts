// The closed set of share outcomes, each with the Stratum error it answers with (conventional codes used by
// ckpool, public-pool and most firmware: 20 other, 21 job not found, 22 duplicate, 23 low difficulty,
// 24 unauthorized, 25 not subscribed).

export const SHARE_OUTCOMES = [
  'accepted',
  'low-difficulty',
  'stale',
  'unknown-job',
  'duplicate',
  'bad-ntime',
  'bad-version',
  'bad-extranonce2',
  'malformed',
  'unauthorized',
] as const;

export type ShareOutcome = (typeof SHARE_OUTCOMES)[number];
export type RejectOutcome = Exclude<ShareOutcome, 'accepted'>;

export const REJECT_ERRORS: Record<RejectOutcome, [code: number, message: string]> = {
  'low-difficulty': [23, 'Low difficulty share'],
  stale: [21, 'Stale share: job is from a previous block'],
  'unknown-job': [21, 'Job not found'],
  duplicate: [22, 'Duplicate share'],
  'bad-ntime': [20, 'ntime out of range'],
  'bad-version': [20, 'Version bits outside the negotiated mask'],
  'bad-extranonce2': [20, 'Wrong extranonce2 size'],
  malformed: [20, 'Malformed share parameters'],
  unauthorized: [24, 'Unauthorized worker'],
};

export function emptyOutcomeCounts(): Record<ShareOutcome, number> {
  return Object.fromEntries(SHARE_OUTCOMES.map((o) => [o, 0])) as Record<ShareOutcome, number>;
}
