import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pg from 'pg';
import { PG_ADMIN_URL, SKIP_PG } from './helpers/pg.ts';
import { SHARE_OUTCOMES } from '../src/shares/outcome.ts';
import { type StagedShare, copyFloat, copyText, isPlainTime, shareRowLine, sharesToCopy } from '../src/store/copy.ts';
import { encodeShare } from '../src/ingest/codec.ts';

// sharesToCopy is written for speed (one concatenation per row, the time formatted once per second). This is
// the plain form it replaced (columns in queries.COPY_STAGING's order), one array and one Date per row: the fast
// one must produce the same bytes.
function referenceCopy(shares: readonly StagedShare[]): string {
  return shares.map((s) => [
    copyText(s.id), new Date(s.time).toISOString(), copyText(s.account.slice(0, 100)), copyText(s.worker.slice(0, 64)),
    copyText(s.outcome), copyFloat(s.poolDifficulty), copyFloat(s.shareDifficulty), copyText(s.jobId.slice(0, 64)),
    String(Math.trunc(s.height)), copyText(s.blockHash ?? null), s.nbits === undefined ? '\\N' : String(s.nbits | 0),
    copyText(s.userAgent ? s.userAgent.slice(0, 200) : null),
  ].join('\t') + '\n').join('');
}

const NOW = Date.UTC(2026, 10, 28, 17, 0, 0);
const text = fc.string({ unit: 'binary', maxLength: 80 });
const share: fc.Arbitrary<StagedShare> = fc.record({
  id: text,
  // Runs of shares within a second, across second boundaries, and times the cache must not take (far
  // past and future, before 1970, fractional).
  time: fc.oneof(
    fc.integer({ min: NOW - 5_000, max: NOW + 5_000 }),
    fc.integer({ min: -62_198_755_200_000, max: 253_402_300_799_999 }),
    fc.double({ min: 0, max: 4e12, noNaN: true }),
  ),
  account: text, worker: text, sessionId: text, remoteAddress: fc.constant('127.0.0.1'), jobId: text,
  height: fc.oneof(fc.integer({ min: 0, max: 2_000_000 }), fc.double({ min: 0, max: 1e7, noNaN: true })),
  outcome: fc.constantFrom(...SHARE_OUTCOMES),
  poolDifficulty: fc.double(), shareDifficulty: fc.double(),
  block: fc.boolean(),
  blockHash: fc.option(fc.stringMatching(/^[0-9a-f]{64}$/), { nil: undefined }),
  nbits: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
  userAgent: fc.option(text, { nil: undefined }),
}, { requiredKeys: ['id', 'time', 'account', 'worker', 'sessionId', 'remoteAddress', 'jobId', 'height', 'outcome', 'poolDifficulty', 'shareDifficulty', 'block'] });

test('sharesToCopy writes the same COPY text as the plain per-row form, for any shares', () => {
  fc.assert(fc.property(fc.array(share, { minLength: 1, maxLength: 40 }), (shares) => {
    assert.equal(sharesToCopy(shares), referenceCopy(shares));
  }), { numRuns: 2000 });
});

// The spool's share line in the plain form: the tag, the 14 row columns (queries.COPY_STAGING_ROWS), one array and
// one Date per share. shareRowLine fills one array for every share: no field may carry over from the share before.
function referenceLine(tag: string, s: StagedShare): string {
  return [tag, copyText(s.id), new Date(s.time).toISOString(), copyText(s.account.slice(0, 100)), copyText(s.worker.slice(0, 64)),
    copyText(s.outcome), copyFloat(s.poolDifficulty), copyFloat(s.shareDifficulty), copyText(s.jobId.slice(0, 64)),
    String(Math.trunc(s.height)), copyText(s.blockHash ?? null), s.nbits === undefined ? '\\N' : String(s.nbits | 0),
    copyText(s.sessionId), copyText(s.remoteAddress), s.block ? '1' : '0'].join('\t') + '\n';
}

test('shareRowLine and encodeShare write the plain form\'s line for any run of shares (the JSON form where a row cannot hold one)', () => {
  let rows = 0;
  fc.assert(fc.property(fc.array(share, { minLength: 1, maxLength: 40 }), (shares) => {
    for (const s of shares) {
      const line = encodeShare(s);
      if (isPlainTime(s.time) && Number.isSafeInteger(Math.trunc(s.height))) {
        rows++;
        assert.equal(line, referenceLine('s3', s));
        assert.equal(shareRowLine('s3', s), line);
      } else {
        assert.equal(shareRowLine('s3', s), null);
        assert.ok(line.startsWith('["s2",') && line.endsWith(']\n'), line);
      }
    }
  }), { numRuns: 2000 });
  assert.ok(rows > 1_000, `only ${rows} shares took the row form`);
});

test('sharesToCopy: consecutive shares in and across seconds carry their own milliseconds', () => {
  const base = { id: 'x', account: 'a', worker: 'w', sessionId: 's', remoteAddress: '127.0.0.1', jobId: 'j', height: 1, outcome: 'accepted' as const, poolDifficulty: 1, shareDifficulty: 2, block: false };
  const times = [NOW + 999, NOW + 1000, NOW + 1001, NOW + 1010, NOW + 1100, NOW + 5];
  const rows = sharesToCopy(times.map((time) => ({ ...base, time }))).trimEnd().split('\n');
  assert.deepEqual(rows.map((r) => r.split('\t')[1]), times.map((t) => new Date(t).toISOString()));
});

// copyFloat writes a non-integer in exponent form (toExponential: no number-to-string cache); Postgres and the spool's
// decoder must read back the very same double, whatever it is.
const FLOAT_EDGES = [0, -0, 1, -1, 0.1, 1234.5, 2 ** 53, 2 ** 53 + 2, 1e21, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308,
  2 ** -30, 65536.00000000001, 4294967295.5, -123.456e-7];

test('copyFloat: every double reads back as itself (Number, as the spool decoder reads it)', () => {
  // -0 is written as 0, as String wrote it (a share difficulty is never negative).
  for (const v of FLOAT_EDGES) assert.equal(Number(copyFloat(v)), v === 0 ? 0 : v, `${v} as ${copyFloat(v)}`);
  fc.assert(fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (v) => {
    assert.equal(Number(copyFloat(v)), v === 0 ? 0 : v);
  }), { numRuns: 20_000 });
  assert.equal(copyFloat(1234.5), '1.2345e+3', 'non-integers in exponent form');
  assert.equal(copyFloat(65536), '65536', 'integers as they are');
});

test('copyFloat: Postgres float8 reads every form back as the same double', { skip: SKIP_PG }, async () => {
  const values = [...FLOAT_EDGES, ...fc.sample(fc.double({ noNaN: true, noDefaultInfinity: true }), { numRuns: 3000, seed: 7 }),
    ...fc.sample(fc.double({ min: 1e-12, max: 1e15, noNaN: true }), { numRuns: 2000, seed: 8 })];
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    // float8send: the double's own bits, so nothing is lost on the way back to JavaScript.
    const r = await c.query<{ i: string; b: Buffer }>('SELECT i, float8send(x::float8) AS b FROM unnest($1::text[]) WITH ORDINALITY AS t(x, i)', [values.map(copyFloat)]);
    assert.equal(r.rows.length, values.length);
    for (const row of r.rows) {
      const v = values[Number(row.i) - 1];
      assert.equal(row.b.readDoubleBE(0), v === 0 ? 0 : v, `${v} written as ${copyFloat(v)}`);
    }
    const special = await c.query<{ x: number }>('SELECT x::float8 AS x FROM unnest($1::text[]) AS t(x)', [[copyFloat(NaN), copyFloat(Infinity), copyFloat(-Infinity)]]);
    assert.deepEqual(special.rows.map((x) => Number(x.x)), [NaN, Infinity, -Infinity]);
  } finally {
    await c.end();
  }
});
