import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineFramer } from '../src/stratum/framing.ts';
import { Sessions } from '../src/stratum/sessions.ts';
import { ProtocolError, parseMessage } from '../src/stratum/protocol.ts';
import { DEFAULT_VARDIFF, Vardiff, tidyDifficulty } from '../src/stratum/vardiff.ts';
import { ExtranonceAllocator } from '../src/stratum/extranonce.ts';
import { BanList } from '../src/stratum/bans.ts';

describe('line framing', () => {
  const collect = (max = 64) => {
    const lines: string[] = [];
    const errors: Error[] = [];
    const f = new LineFramer(max, (l) => lines.push(l), (e) => errors.push(e));
    return { f, lines, errors };
  };

  test('byte by byte gives the same lines as one chunk', () => {
    const input = Buffer.from('{"id":1}\n{"id":2}\r\n\n  \n{"id":"é"}\n{"partial"');
    const whole = collect();
    whole.f.push(input);
    const bytes = collect();
    for (const b of input) bytes.f.push(Buffer.from([b]));
    assert.deepEqual(whole.lines, ['{"id":1}', '{"id":2}', '{"id":"é"}']);
    assert.deepEqual(bytes.lines, whole.lines, 'multi-byte UTF-8 split across chunks survives');
  });

  test('every split point of a two-line input', () => {
    const input = Buffer.from('{"method":"a"}\n{"method":"b"}\n');
    for (let i = 0; i <= input.length; i++) {
      const c = collect();
      c.f.push(input.subarray(0, i));
      c.f.push(input.subarray(i));
      assert.deepEqual(c.lines, ['{"method":"a"}', '{"method":"b"}'], `split at ${i}`);
    }
  });

  test('an oversized line is an error, with or without a newline, and stops the framer', () => {
    const a = collect(16);
    a.f.push(Buffer.from('x'.repeat(17) + '\n{"ok":1}\n'));
    assert.equal(a.errors.length, 1);
    assert.deepEqual(a.lines, []);
    const b = collect(16);
    for (let i = 0; i < 10; i++) b.f.push(Buffer.from('xxxx')); // never a newline
    assert.equal(b.errors.length, 1);
    const c = collect(16);
    c.f.push(Buffer.from('x'.repeat(16) + '\n'));
    assert.equal(c.errors.length, 0, 'exactly the limit is fine');
    assert.equal(c.lines.length, 1);
  });

  test('hold() after any line keeps the rest, in order, across later chunks and split lines, until release()', () => {
    const input = Buffer.from('{"a":1}\n{"a":2}\n{"a":3}\n{"a":4}\n{"a":');
    const tail = Buffer.from('5}\n{"a":6}\n');
    for (let holdAfter = 1; holdAfter <= 4; holdAfter++) {
      for (let split = 0; split <= input.length; split++) {
        const lines: string[] = [];
        const f = new LineFramer(64, (l) => { lines.push(l); if (lines.length === holdAfter) f.hold(); }, () => assert.fail('no error'));
        f.push(input.subarray(0, split));
        f.push(input.subarray(split));
        f.push(tail);
        assert.equal(lines.length, holdAfter, `held after ${holdAfter} (split ${split})`);
        f.release();
        assert.deepEqual(lines, ['{"a":1}', '{"a":2}', '{"a":3}', '{"a":4}', '{"a":5}', '{"a":6}'], `split ${split}, hold after ${holdAfter}`);
      }
    }
  });

  /**
   * Lines split at random, held and released at random between chunks. `reuse`: every chunk is pushed from one
   * buffer that is overwritten after each push, as a socket reading into the shared buffer does.
   */
  function framingProperty(reuse: boolean) {
    fc.assert(fc.property(
      fc.array(fc.stringMatching(/^[a-z0-9{}":,]{1,20}$/), { minLength: 1, maxLength: 40 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 30 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 60 }),
      (want, cuts, holdPattern, releasesBetween) => {
        const text = Buffer.from(want.join('\n') + '\n');
        const shared = Buffer.alloc(64);
        const lines: string[] = [];
        let k = 0;
        const f = new LineFramer(64, (l) => { lines.push(l); if (holdPattern[k++ % holdPattern.length]) f.hold(); }, () => assert.fail('no error'));
        let at = 0;
        let step = 0;
        while (at < text.length) {
          const n = Math.min(cuts[step % cuts.length], text.length - at);
          if (reuse) {
            text.copy(shared, 0, at, at + n);
            f.push(shared.subarray(0, n));
            shared.fill(0x58); // the next read (any socket's) overwrites it
          } else {
            f.push(text.subarray(at, at + n));
          }
          at += n;
          // Between chunks, release a random number of times (0: the next chunk arrives while still held).
          for (let r = releasesBetween[step % releasesBetween.length]; r > 0; r--) f.release();
          step++;
        }
        for (let guard = 0; f.isHolding && guard < 10_000; guard++) f.release();
        assert.equal(f.isHolding, false);
        assert.equal(f.heldBytes, 0);
        assert.deepEqual(lines, want);
      },
    ), { numRuns: 500 });
  }

  test('stop() or an oversized line while held lines are being released: nothing more is delivered, later pushes are ignored', () => {
    // stop() from a line's handler, partway through a release of held chunks.
    const lines: string[] = [];
    const f: LineFramer = new LineFramer(16, (l) => { lines.push(l); if (l === 'a') f.hold(); if (l === 'c') f.stop(); }, () => assert.fail('no error'));
    f.push(Buffer.from('a\nb\n'));
    f.push(Buffer.from('c\nd\n'));
    f.push(Buffer.from('e\n'));
    assert.deepEqual(lines, ['a']);
    assert.equal(f.heldBytes, 8);
    f.release();
    assert.deepEqual(lines, ['a', 'b', 'c'], 'stopped at c: d and the chunk after it are dropped');
    assert.equal(f.heldBytes, 0);
    f.push(Buffer.from('f\n'));
    f.release();
    assert.deepEqual(lines, ['a', 'b', 'c']);

    // A line over the cap inside a held chunk: the error when it is reached, in order, and nothing after it.
    const got: string[] = [];
    const errors: Error[] = [];
    const g: LineFramer = new LineFramer(8, (l) => { got.push(l); if (l === 'a') g.hold(); }, (e) => errors.push(e));
    g.push(Buffer.from('a\nb\n'));
    g.push(Buffer.from('x'.repeat(9) + '\nc\n'));
    assert.deepEqual(errors, []);
    g.release();
    assert.deepEqual(got, ['a', 'b']);
    assert.equal(errors.length, 1);
    g.push(Buffer.from('d\n'));
    assert.deepEqual(got, ['a', 'b']);
    // A partial line kept across chunks, then stop(): its bytes are gone, and the framer stays stopped.
    const h = collect();
    h.f.push(Buffer.from('{"par'));
    h.f.stop();
    h.f.push(Buffer.from('tial":1}\n'));
    assert.deepEqual(h.lines, []);
  });

  test('property: any chunking, held and released any number of times (chunks arriving while held), gives every line once, in order', () => {
    framingProperty(false);
  });

  test('property: chunks pushed from one reused buffer, overwritten after each push (a socket reading into the shared buffer), still give every line once, in order', () => {
    framingProperty(true);
  });
});

describe('stratum message parsing', () => {
  test('submit with and without version bits; numeric job id', () => {
    const m = parseMessage('{"id":4,"method":"mining.submit","params":["a.w","1f","00000001","5f5e1000","c7181100"]}');
    assert.ok(!('kind' in m) && m.method === 'mining.submit');
    if ('kind' in m || m.method !== 'mining.submit') return;
    assert.deepEqual(m.submit, { worker: 'a.w', jobId: '1f', extranonce2: '00000001', ntime: '5f5e1000', nonce: 'c7181100', versionBits: undefined });
    const v = parseMessage('{"id":5,"method":"mining.submit","params":["a.w",31,"00","00","00","1fffe000"]}');
    assert.ok(!('kind' in v) && v.method === 'mining.submit' && v.submit.jobId === '31' && v.submit.versionBits === '1fffe000');
  });

  test('suggest_difficulty as integer, fraction, string, bare number', () => {
    for (const [params, d] of [['[1024]', 1024], ['[0.0001]', 0.0001], ['["512"]', 512], ['64', 64]] as const) {
      const m = parseMessage(`{"id":1,"method":"mining.suggest_difficulty","params":${params}}`);
      assert.ok(!('kind' in m) && m.method === 'mining.suggest_difficulty' && m.difficulty === d, params);
    }
    assert.throws(() => parseMessage('{"id":1,"method":"mining.suggest_difficulty","params":[-1]}'), ProtocolError);
  });

  test('subscribe with no params, null params, user agent and session id', () => {
    for (const p of ['[]', 'null', '["cpuminer/2.5.1"]', '["bmminer/1.0","abcd"]']) {
      const m = parseMessage(`{"id":1,"method":"mining.subscribe","params":${p}}`);
      assert.ok(!('kind' in m) && m.method === 'mining.subscribe');
    }
    const m = parseMessage('{"id":1,"method":"mining.subscribe"}');
    assert.ok(!('kind' in m) && m.method === 'mining.subscribe' && m.userAgent === '');
  });

  test('configure and authorize shapes', () => {
    const c = parseMessage('{"id":1,"method":"mining.configure","params":[["version-rolling","minimum-difficulty"],{"version-rolling.mask":"ffffffff","minimum-difficulty.value":2048}]}');
    assert.ok(!('kind' in c) && c.method === 'mining.configure' && c.extensions.length === 2);
    const a = parseMessage('{"id":2,"method":"mining.authorize","params":["acct.rig1"]}');
    assert.ok(!('kind' in a) && a.method === 'mining.authorize' && a.password === '');
  });

  test('errors carry JSON-RPC codes and the request id', () => {
    const cases: [string, number, unknown][] = [
      ['not json', -32700, null],
      ['[1,2]', -32600, null],
      ['{"id":7}', -32600, 7],
      ['{"id":8,"method":"mining.frobnicate","params":[]}', -32601, 8],
      ['{"id":9,"method":"mining.submit","params":["a"]}', -32602, 9],
      ['{"id":10,"method":"mining.submit","params":[1,2,3,4,5]}', -32602, 10],
      ['{"id":11,"method":"mining.authorize","params":[42]}', -32602, 11],
      ['{"id":12,"method":"mining.configure","params":"x"}', -32602, 12],
    ];
    for (const [line, code, id] of cases) {
      assert.throws(() => parseMessage(line), (e: unknown) => e instanceof ProtocolError && e.code === code && e.id === id, line);
    }
  });

  test('responses from the miner are recognised, not errors', () => {
    assert.deepEqual(parseMessage('{"id":3,"result":"cgminer/4.10","error":null}'), { kind: 'response', id: 3 });
  });
});

describe('vardiff', () => {
  /** Poisson shares of a miner with `hashrate` H/s, driven in simulated time; returns the final difficulty. */
  function simulate(hashrate: number, startDiff: number, seconds: number, seed = 1): { diff: number; lastRates: number[] } {
    let s = seed;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1);
    const opts = { ...DEFAULT_VARDIFF, targetIntervalMs: 10_000, minDifficulty: 1e-6, maxDifficulty: 1e12 };
    const v = new Vardiff(opts, startDiff, 0);
    let t = 0;
    const rates: number[] = [];
    let windowStart = 0;
    let windowShares = 0;
    // Shares arrive as a Poisson process; the pool's sweeper ticks every second (it lowers the difficulty of
    // a miner that stopped finding shares). A difficulty change redraws the next arrival (memoryless).
    const nextArrival = () => t + -Math.log(rand()) * (v.current * 2 ** 32 / hashrate) * 1000;
    let next = nextArrival();
    let tick = 1000;
    while (t < seconds * 1000) {
      if (next < tick) {
        t = next;
        v.onShare(t);
        windowShares++;
        next = nextArrival();
      } else {
        t = tick;
        tick += 1000;
        if (v.onTick(t) !== null) next = nextArrival();
      }
      if (t - windowStart > 600_000) { rates.push(windowShares / ((t - windowStart) / 1000)); windowStart = t; windowShares = 0; }
    }
    return { diff: v.current, lastRates: rates };
  }

  test('converges to within 2x of one share per 10 s, from far below and far above', () => {
    const hashrate = 100e12; // 100 TH/s: the ideal difficulty is 100e12 * 10 / 2^32 ≈ 232,831
    const ideal = (hashrate * 10) / 2 ** 32;
    for (const start of [1, 1e9]) {
      for (const seed of [1, 2, 3]) {
        const { diff, lastRates } = simulate(hashrate, start, 4 * 3600, seed);
        assert.ok(diff > ideal / 2 && diff < ideal * 2, `start ${start} seed ${seed}: ${diff} vs ${ideal}`);
        const rate = lastRates[lastRates.length - 1];
        assert.ok(rate > 0.05 && rate < 0.2, `share rate ${rate}/s`);
      }
    }
  });

  test('a very slow device (200 kH/s ESP32) at the mainnet start difficulty reaches workable work within minutes', () => {
    const hashrate = 200e3;
    const ideal = (hashrate * 10) / 2 ** 32; // ≈ 0.000466
    for (const seed of [1, 2, 3]) {
      // 16384 is the mainnet start difficulty; the idle timeout is 15 minutes.
      const { diff } = simulate(hashrate, 16384, 240, seed);
      assert.ok(diff < ideal * 20, `seed ${seed}: after 4 min ${diff} (ideal ${ideal})`);
    }
  });

  test('a miner that goes quiet gets a lower difficulty on tick', () => {
    const v = new Vardiff({ ...DEFAULT_VARDIFF, targetIntervalMs: 10_000 }, 1000, 0);
    assert.equal(v.onTick(20_000), null);
    const next = v.onTick(125_000);
    assert.ok(next !== null && next < 1000);
  });

  test('pinned difficulty (min = max, not a round number) never changes', () => {
    const d = 2 ** -30;
    const v = new Vardiff({ ...DEFAULT_VARDIFF, minDifficulty: d, maxDifficulty: d }, d, 0);
    for (let t = 1; t < 10_000; t++) assert.equal(v.onShare(t), null, 'a flood of shares');
    assert.equal(v.onTick(1_000_000), null, 'silence');
    assert.equal(v.current, d);
  });

  test('tidy difficulty keeps 4 significant digits', () => {
    assert.equal(tidyDifficulty(232831.7), 232832);
    assert.equal(tidyDifficulty(0.000123456), 0.0001235);
    assert.equal(tidyDifficulty(1.23456), 1.235);
  });
});

test('extranonce1: node prefix, unique while in use, released values come back', () => {
  const a = new ExtranonceAllocator(7, 4);
  const seen = new Set<string>();
  const all = Array.from({ length: 5000 }, () => a.allocate());
  for (const b of all) { assert.equal(b[0], 7); assert.equal(b.length, 4); seen.add(b.toString('hex')); }
  assert.equal(seen.size, 5000);
  a.release(all[0]);
  assert.equal(a.used, 4999);
  assert.throws(() => new ExtranonceAllocator(256, 4));
});

test('ban list doubles on repeat offences and caps', () => {
  const b = new BanList(1000, 5000);
  assert.equal(b.ban('1.2.3.4', 0), 1000);
  assert.equal(b.isBanned('1.2.3.4', 999), true);
  assert.equal(b.isBanned('1.2.3.4', 1000), false);
  assert.equal(b.ban('1.2.3.4', 2000), 2000);
  assert.equal(b.ban('1.2.3.4', 5000), 4000);
  assert.equal(b.ban('1.2.3.4', 10000), 5000);
});

test('broadcast in chunks: a newer job supersedes one under way; sessions on an older tip get clean_jobs', async () => {
  const { StratumServer, BROADCAST_CHUNK, REFRESH_CHUNK } = await import('../src/stratum/server.ts');
  const { DEFAULT_STRATUM_OPTIONS } = await import('../src/stratum/options.ts');
  const server = new StratumServer({ now: Date.now } as never, DEFAULT_STRATUM_OPTIONS);
  type Sent = { job: string; clean: boolean };
  const got: Sent[][] = [];
  const n = BROADCAST_CHUNK * 3;
  const tipA = Buffer.alloc(32, 1);
  const tipB = Buffer.alloc(32, 2);
  for (let k = 0; k < n; k++) {
    const log: Sent[] = [];
    got.push(log);
    let last: { prevHash: Buffer } | null = { prevHash: tipA };
    // Fake sessions with StratumSession.sendJob's tip rule.
    server.sessions.add({
      id: String(k),
      sendJob(job: { id: string; prevHash: Buffer }, clean: boolean) {
        if (last && !last.prevHash.equals(job.prevHash)) clean = true;
        last = job;
        log.push({ job: job.id, clean });
      },
    } as never);
  }
  server.broadcast({ id: 'newTip', prevHash: tipB } as never, true);
  server.broadcast({ id: 'refresh', prevHash: tipB } as never, false); // supersedes before the 2nd chunk
  // The refresh supersedes a new-tip broadcast under way: it goes out at once and at the new tip's pace.
  assert.deepEqual(got[0], [{ job: 'newTip', clean: true }, { job: 'refresh', clean: false }], 'first chunks go out at once');
  assert.equal(got[BROADCAST_CHUNK - 1].length, 2);
  for (let turn = 1; turn < 3; turn++) await new Promise((r) => setImmediate(r));
  for (let k = 0; k < n; k++) {
    const last = got[k][got[k].length - 1];
    assert.equal(last.job, 'refresh', `session ${k} ends on the newest job`);
    // Every session got clean_jobs exactly once for the new tip.
    assert.equal(got[k].filter((s) => s.clean).length, 1, `session ${k}`);
  }
  assert.ok(got[n - 1].length === 1, 'sessions past the first chunk got only the newest job');

  // Once every session is on the new tip, a refresh is not urgent: nothing in this turn, REFRESH_CHUNK a turn after.
  // The clock stands still here: a refresh turn also ends at REFRESH_STEP_MS (the next test), which a preempted or
  // collecting test process can reach before 100 of these sends (it failed CI once so).
  await new Promise((r) => setImmediate(r));
  const realNow = performance.now;
  const frozen = performance.now();
  performance.now = () => frozen;
  try {
    server.broadcast({ id: 'refresh2', prevHash: tipB } as never, false);
    assert.equal(got[0].at(-1)!.job, 'refresh', 'a refresh does not go out in the turn that built it');
    await new Promise((r) => setImmediate(r));
    assert.equal(got[REFRESH_CHUNK - 1].at(-1)!.job, 'refresh2');
    assert.equal(got[REFRESH_CHUNK].at(-1)!.job, 'refresh', 'one REFRESH_CHUNK per turn');
    for (let turn = 0; turn < n / REFRESH_CHUNK; turn++) await new Promise((r) => setImmediate(r));
  } finally {
    performance.now = realNow;
  }
  assert.equal(got[n - 1].at(-1)!.job, 'refresh2');
  assert.equal(got[n - 1].filter((x) => x.job === 'refresh2' && x.clean).length, 0, 'a refresh on the same tip never asks to drop work');
});

test('a refresh broadcast spends at most REFRESH_STEP_MS a turn, whatever a notify costs; a new tip goes out at full pace', async () => {
  const { StratumServer, REFRESH_CHUNK, REFRESH_STEP_MS } = await import('../src/stratum/server.ts');
  const { DEFAULT_STRATUM_OPTIONS } = await import('../src/stratum/options.ts');
  const server = new StratumServer({ now: Date.now } as never, DEFAULT_STRATUM_OPTIONS);
  // Each notify costs a quarter of the step's budget (a slow write: TLS, a busy kernel).
  const costMs = REFRESH_STEP_MS / 4;
  const n = REFRESH_CHUNK * 2;
  const sent: string[][] = [];
  for (let k = 0; k < n; k++) {
    const log: string[] = [];
    sent.push(log);
    server.sessions.add({
      id: String(k),
      sendJob(job: { id: string }) {
        const until = performance.now() + costMs;
        while (performance.now() < until) { /* the write's cost */ }
        log.push(job.id);
      },
    } as never);
  }
  const tip = Buffer.alloc(32, 7);
  const reached = (id: string) => sent.filter((l) => l.includes(id)).length;
  server.broadcast({ id: 'refresh', prevHash: tip } as never, false);
  await new Promise((r) => setImmediate(r));
  const first = reached('refresh');
  assert.ok(first >= 1, 'at least one session a turn');
  // 4 fit in the budget; a slow machine may fit fewer, never a chunk's worth.
  assert.ok(first <= 6, `the first refresh turn reached ${first} sessions (REFRESH_CHUNK is ${REFRESH_CHUNK})`);
  for (let turn = 0; turn < n && reached('refresh') < n; turn++) await new Promise((r) => setImmediate(r));
  assert.equal(reached('refresh'), n, 'every session gets the refresh, over later turns');
  assert.ok(sent.every((l) => l.length === 1), 'once each');

  // A new tip is not held to the refresh's budget: its first chunk goes out in the turn that built it.
  server.broadcast({ id: 'tip', prevHash: Buffer.alloc(32, 8) } as never, true);
  assert.equal(reached('tip'), n);
});

test('the sessions\' periodic checks spend about TICK_STEP_MS a turn, every session once a pass; authorized counted over the pass', async () => {
  const { StratumServer, TICK_STEP_MS } = await import('../src/stratum/server.ts');
  const { DEFAULT_STRATUM_OPTIONS } = await import('../src/stratum/options.ts');
  const server = new StratumServer({ now: Date.now } as never, DEFAULT_STRATUM_OPTIONS);
  // Each check costs a twentieth of the budget (a retarget: set_difficulty and a notify written).
  const costMs = TICK_STEP_MS / 20;
  const n = 400;
  let turn = 0;
  const ticks: number[][] = [];
  for (let k = 0; k < n; k++) {
    const at: number[] = [];
    ticks.push(at);
    server.sessions.add({
      id: String(k),
      authorized: k % 2 === 0,
      tick() {
        const until = performance.now() + costMs;
        while (performance.now() < until) { /* the check's cost */ }
        at.push(turn);
      },
    } as never);
  }
  (server as unknown as { tick(): void }).tick();
  const firstTurn = ticks.filter((t) => t.length > 0).length;
  assert.ok(firstTurn >= 16 && firstTurn <= 60, `the first turn checked ${firstTurn} sessions (about 20 fit, at least 16)`);
  assert.equal(server.stats.authorized, 0, 'not counted before the pass ends');
  (server as unknown as { tick(): void }).tick(); // the interval again while the pass goes on: no second pass
  const passUnderWay = () => (server as unknown as { tickPass: unknown }).tickPass !== null;
  for (; turn < n && passUnderWay(); ) { turn++; await new Promise((r) => setImmediate(r)); }
  assert.ok(ticks.every((t) => t.length === 1), 'every session checked, once');
  assert.ok(new Set(ticks.map((t) => t[0])).size >= 5, 'over several turns');
  assert.equal(server.stats.authorized, n / 2);
  // The next pass checks them all again.
  (server as unknown as { tick(): void }).tick();
  for (let i = 0; i < n && passUnderWay(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(ticks.every((t) => t.length === 2));
});

test('answer lines: the text JSON.stringify gives for any id, result, error and rejected outcome', async () => {
  const { errorLine, rejectLine, resultLine } = await import('../src/stratum/protocol.ts');
  const { REJECT_ERRORS } = await import('../src/shares/outcome.ts');
  const outcomes = Object.keys(REJECT_ERRORS) as (keyof typeof REJECT_ERRORS)[];
  assert.ok(outcomes.length >= 9);
  const ids = [0, 1, 1234, 2 ** 31, 2 ** 53, -7, 1.5, 1e21, 'abc', 'a"b\\c\n\u2028', '', null];
  for (const id of ids) {
    for (const o of outcomes) {
      const [code, message] = REJECT_ERRORS[o];
      assert.equal(rejectLine(id, o), JSON.stringify({ id, result: null, error: [code, message, null] }) + '\n', `${o} ${String(id)}`);
    }
    for (const result of [true, false, 'pong', null, [['mining.notify', 'x']], { 'version-rolling': true }]) {
      assert.equal(resultLine(id, result), JSON.stringify({ id, result, error: null }) + '\n');
    }
    assert.equal(errorLine(id, 24, 'bad "worker"\n'), JSON.stringify({ id, result: null, error: [24, 'bad "worker"\n', null] }) + '\n');
  }
});

test('Sessions: found by id, iterated and counted in arrival order; a stale object with a live id is neither there nor deleted', () => {
  const set = new Sessions<{ id: string; n: number }>();
  const a = { id: '1', n: 1 };
  const b = { id: '2', n: 2 };
  set.add(a).add(b);
  assert.equal(set.size, 2);
  assert.equal(set.get('2'), b);
  assert.equal(set.get('3'), undefined);
  assert.deepEqual([...set].map((s) => s.n), [1, 2]);
  assert.deepEqual([...set.values()].map((s) => s.n), [1, 2]);
  const stale = { id: '1', n: 9 };
  assert.equal(set.has(stale), false);
  assert.equal(set.delete(stale), false, 'another object under a live id is not that session');
  assert.equal(set.get('1'), a);
  assert.equal(set.delete(a), true);
  assert.equal(set.delete(a), false);
  assert.equal(set.has(a), false);
  assert.equal(set.get('1'), undefined);
  assert.equal(set.size, 1);
});
