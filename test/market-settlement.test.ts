import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CARRY_DEN, type PairCarry, type SettlementBid, ZERO_CARRY, pairKey, settleTick,
} from '../src/market/settlement.ts';
import { HASHES_PER_PH_DAY, HS_PER_PHS } from '../src/market/units.ts';

// Settlement: the buyer pays price × accepted PH·days, sellers get the same minus the fee, remainders are
// carried per trade line and rounded once, and over a day of random ticks the books balance to the satoshi.

const TH = HS_PER_PHS / 1000n;

describe('settlement: worked examples (docs/market.md)', () => {
  test('S1 one minute of 100 TH/s at 45,000 sat/PH/day is 3.125 sat: carried, never rounded per tick', () => {
    const hashes = 100n * TH * 60n; // 6e18 hashes
    let carry: PairCarry = ZERO_CARRY;
    const debits: bigint[] = [];
    for (let t = 0; t < 8; t++) {
      const s = settleTick({
        tick: t, feeBps: 0, carries: new Map([[pairKey(1, 1), carry]]),
        bids: [{ bidId: 1, buyer: 10, escrowRemainingSat: 1_000_000n, lines: [{ askId: 1, seller: 20, price: 45_000, acceptedHashes: hashes }] }],
      });
      debits.push(s.bids[0].debitSat);
      carry = s.bids[0].pairs[0].carry;
    }
    // 3.125 per tick: cumulative 3.125, 6.25, 9.375, 12.5, 15.625, 18.75, 21.875, 25 → floors 3, 6, 9, 12, 15, 18, 21, 25.
    assert.deepEqual(debits, [3n, 3n, 3n, 3n, 3n, 3n, 3n, 4n]);
    assert.equal(debits.reduce((a, b) => a + b), 25n);
    assert.deepEqual(carry, ZERO_CARRY);
  });

  test('S2 the fee: seller floor((1 − f) × value), market floor(f × value), buyer the sum; fee = debit − credits', () => {
    // 1 PH/s for one day at 45,000 with a 1.5 % fee: value 45,000; seller 44,325; fee 675.
    const s = settleTick({
      tick: 1, feeBps: 150, carries: new Map(),
      bids: [{ bidId: 1, buyer: 10, escrowRemainingSat: 100_000n, lines: [{ askId: 7, seller: 20, price: 45_000, acceptedHashes: HASHES_PER_PH_DAY }] }],
    });
    const b = s.bids[0];
    assert.equal(b.pairs[0].creditSat, 44_325n);
    assert.equal(b.pairs[0].feeSat, 675n);
    assert.equal(b.debitSat, 45_000n);
    assert.equal(b.netFeeSat, 675n);
    // A value of 100.9 sat: seller 99.3865 → 99, fee 1.5135 → 1, buyer 100 (the 0.9 never billed, carried).
    const t = settleTick({
      tick: 1, feeBps: 150, carries: new Map(),
      bids: [{ bidId: 1, buyer: 10, escrowRemainingSat: 100_000n, lines: [{ askId: 7, seller: 20, price: 1009, acceptedHashes: HASHES_PER_PH_DAY / 10n }] }],
    });
    assert.equal(t.bids[0].pairs[0].creditSat, 99n);
    assert.equal(t.bids[0].pairs[0].feeSat, 1n);
    assert.equal(t.bids[0].debitSat, 100n);
  });

  test('S3 delivery beyond the escrow: the buyer pays what is left, the seller is paid in full, the market bears the rest', () => {
    const s = settleTick({
      tick: 1, feeBps: 200, carries: new Map(),
      bids: [{ bidId: 1, buyer: 10, escrowRemainingSat: 40_000n, lines: [{ askId: 7, seller: 20, price: 45_000, acceptedHashes: HASHES_PER_PH_DAY }] }],
    });
    const b = s.bids[0];
    assert.equal(b.owedSat, 45_000n);
    assert.equal(b.debitSat, 40_000n);
    assert.equal(b.overrunSat, 5_000n);
    assert.equal(b.pairs[0].creditSat, 44_100n);
    assert.equal(b.netFeeSat, 40_000n - 44_100n); // -4,100: the 900 fee and 4,100 more from the market
    assert.equal(s.totals.debitSat, s.totals.creditSat + s.totals.netFeeSat);
  });

  test('S4 nothing delivered, nothing billed (a paused order, a dead pool, rejected or stale work never reach settlement)', () => {
    const s = settleTick({
      tick: 1, feeBps: 150, carries: new Map(),
      bids: [{ bidId: 1, buyer: 10, escrowRemainingSat: 1000n, lines: [{ askId: 7, seller: 20, price: 45_000, acceptedHashes: 0n }] }],
    });
    assert.equal(s.bids[0].debitSat, 0n);
    assert.equal(s.bids[0].pairs.length, 0);
  });

  test('bad input is refused', () => {
    assert.throws(() => settleTick({ tick: 1, feeBps: 10_001, carries: new Map(), bids: [] }), /fee must be/);
    assert.throws(() => settleTick({ tick: 1, feeBps: 0, carries: new Map(), bids: [{ bidId: 1, buyer: 1, escrowRemainingSat: 0n, lines: [{ askId: 1, seller: 2, price: 1, acceptedHashes: -1n }] }] }), /negative delivery/);
  });
});

describe('settlement: a day of random ticks (fast-check)', () => {
  // 1,440 one-minute ticks; random bids and asks come and go, prices move, deliveries vary (including zero,
  // the paused / dead-pool case), budgets run out. After every tick and at the end of the day:
  // Σ buyer debits = Σ seller credits + Σ market fee, to the satoshi; each line's credits and fees are the
  // floors of their exact cumulative values; no buyer pays more than the exact value or more than its escrow.
  const dayArb = fc.record({
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    feeBps: fc.constantFrom(0, 1, 150, 250, 999),
    nBids: fc.integer({ min: 1, max: 6 }),
    nAsks: fc.integer({ min: 1, max: 5 }),
  });

  test('Σ buyer debits = Σ seller credits + market fee, to the satoshi, every tick and over the day', () => {
    let overruns = 0;
    let lines = 0;
    fc.assert(fc.property(dayArb, ({ seed, feeBps, nBids, nAsks }) => {
      let s = seed;
      const rnd = (n: number) => { s = (s * 1103515245 + 12345) % 2147483648; return s % n; };
      const escrow = new Map<number, bigint>();
      for (let b = 1; b <= nBids; b++) escrow.set(b, BigInt(rnd(3) === 0 ? 500 + rnd(3000) : 10_000_000));
      const carries = new Map<string, PairCarry>();
      const exact = new Map<string, bigint>(); // Σ price × hashes × 10^4 per line (exact value × CARRY_DEN / 10^4... kept in CARRY_DEN units)
      const credited = new Map<string, bigint>();
      const fees = new Map<string, bigint>();
      const sellerOf = (a: number) => 100 + (a % 3);
      const debited = new Map<number, bigint>();
      let totalDebit = 0n, totalCredit = 0n, totalFee = 0n;
      for (let tick = 0; tick < 1440; tick++) {
        const price = 40_000 + rnd(10_000);
        const bids: SettlementBid[] = [];
        for (let b = 1; b <= nBids; b++) {
          if (rnd(5) === 0) continue; // not matched this tick
          const ls = [];
          for (let a = 1; a <= nAsks; a++) {
            if (rnd(3) === 0) continue;
            // 0..2 PH/s for 60 s, sometimes nothing accepted (pool down), in odd amounts of hashes.
            const hashes = rnd(10) === 0 ? 0n : BigInt(rnd(2_000_000)) * (HS_PER_PHS / 1_000_000n) * 60n + BigInt(rnd(1_000_000_007));
            ls.push({ askId: a, seller: sellerOf(a), price, acceptedHashes: hashes });
          }
          bids.push({ bidId: b, buyer: 10 + b, escrowRemainingSat: escrow.get(b)!, lines: ls });
        }
        const r = settleTick({ tick, feeBps, bids, carries });
        let tickCredit = 0n;
        for (const bs of r.bids) {
          assert.ok(bs.debitSat <= escrow.get(bs.bidId)!, 'never above the escrow');
          escrow.set(bs.bidId, escrow.get(bs.bidId)! - bs.debitSat);
          debited.set(bs.bidId, (debited.get(bs.bidId) ?? 0n) + bs.debitSat);
          if (bs.overrunSat > 0n) overruns++;
          for (const p of bs.pairs) {
            const k = pairKey(p.bidId, p.askId);
            carries.set(k, p.carry);
            exact.set(k, (exact.get(k) ?? 0n) + p.valueNum);
            credited.set(k, (credited.get(k) ?? 0n) + p.creditSat);
            fees.set(k, (fees.get(k) ?? 0n) + p.feeSat);
            tickCredit += p.creditSat;
            lines++;
          }
        }
        assert.equal(r.totals.debitSat, tickCredit + r.totals.netFeeSat, `tick ${tick}: debits = credits + fee`);
        totalDebit += r.totals.debitSat;
        totalCredit += tickCredit;
        totalFee += r.totals.netFeeSat;
      }
      assert.equal(totalDebit, totalCredit + totalFee, 'day: Σ debits = Σ credits + Σ fee');
      // Each line: credits and fees are the floors of the exact cumulative parts; the carry is the rest.
      const f = BigInt(feeBps);
      for (const [k, v] of exact) {
        assert.equal(credited.get(k), (v * (10_000n - f)) / CARRY_DEN, `line ${k} credit`);
        assert.equal(fees.get(k), (v * f) / CARRY_DEN, `line ${k} fee`);
        const c = carries.get(k)!;
        assert.equal(c.sellerRem, (v * (10_000n - f)) % CARRY_DEN);
        assert.equal(c.feeRem, (v * f) % CARRY_DEN);
      }
      // A buyer never pays more than the exact value of what was accepted, and without an overrun, at most
      // 2 sat per line less.
      for (let b = 1; b <= nBids; b++) {
        let value = 0n, nLines = 0n;
        for (const [k, v] of exact) if (k.startsWith(`${b}:`)) { value += v; nLines++; }
        const exactSat = value / HASHES_PER_PH_DAY; // floor of the exact value
        const paid = debited.get(b) ?? 0n;
        assert.ok(paid <= exactSat, `bid ${b} paid ${paid} > exact ${exactSat}`);
        if (escrow.get(b)! > 0n) assert.ok(paid >= exactSat - 2n * nLines, `bid ${b} paid ${paid}, exact ${exactSat}`);
      }
    }), { numRuns: 12 });
    assert.ok(lines > 10_000, 'the generator produced trades');
    assert.ok(overruns > 0, 'some budgets ran out (the overrun path was exercised)');
  });
});
