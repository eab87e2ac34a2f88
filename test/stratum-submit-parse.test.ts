import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError, parseMessage, parseMessageGeneric, parseSubmitLine } from '../src/stratum/protocol.ts';

// The mining.submit fast path (no generic JSON object) against the generic parse: on every line, parseMessage
// (fast path, then generic) gives exactly what the generic parse gives (the same value or the same error), and
// whatever the fast path accepts the generic parse accepts identically.

type Outcome = { ok: unknown } | { err: { id: unknown; code: number; message: string } } | { other: string };

function run(f: (l: string) => unknown, line: string): Outcome {
  try {
    return { ok: f(line) };
  } catch (e) {
    if (e instanceof ProtocolError) return { err: { id: e.id, code: e.code, message: e.message } };
    return { other: String(e) };
  }
}

function agree(line: string): void {
  const generic = run(parseMessageGeneric, line);
  assert.deepEqual(run(parseMessage, line), generic, line);
  // The fast path alone: a value or an error, identical to the generic parse's; or null (not its shape).
  const fast = run(parseSubmitLine, line);
  if (!('ok' in fast) || fast.ok !== null) assert.deepEqual(fast, generic, `fast path: ${line}`);
}

const hex = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('hex'));
const ws = fc.constantFrom('', ' ', '  ', '\t', '\r', '\n ');
const jsonString = fc.oneof(
  fc.string({ maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 10 }), fc.constantFrom('a.w', 'acct.rig1', '', ' a.w ', 'x'.repeat(300)),
).map((s) => JSON.stringify(s));
const param = fc.oneof(
  hex(4).map((h) => `"${h}"`), hex(8).map((h) => `"${h}"`), jsonString, fc.integer().map(String), fc.double({ noNaN: true }).map((d) => JSON.stringify(d)),
  fc.constantFrom('null', 'true', 'false', '{}', '[]', '{"a":1}', '1e400', '-0', '0.5', '"\\u0061"', '"a\\"b"'),
);
const id = fc.oneof(fc.nat().map(String), fc.integer().map(String), fc.constantFrom('null', 'true', '"abc"', '1.5', '-1', `"${'i'.repeat(65)}"`, '{}', '[1]', '"\\n"'), jsonString);
const method = fc.constantFrom('"mining.submit"', '"mining.submit"', '"mining.submit"', '"mining.subscribe"', '"mining.Submit"', 'null', '"mining.submit "', '"mining.sub\\u006dit"');

/** Submit-like objects: keys in any order, sometimes missing, repeated or extra; any spacing. */
const submitLine = fc.record({
  id, method, params: fc.array(param, { maxLength: 8 }), spaces: fc.array(ws, { minLength: 12, maxLength: 12 }),
  order: fc.shuffledSubarray(['id', 'method', 'params', 'params', 'extra', 'jsonrpc', 'id'], { minLength: 1, maxLength: 5 }),
  canonical: fc.constantFrom(null, ['id', 'method', 'params'], ['params', 'id', 'method']),
}).map(({ id: i, method: m, params, spaces: s, order, canonical }) => {
  const keys = canonical ?? order;
  const value: Record<string, string> = { id: i, method: m, params: `[${s[0]}${params.join(`,${s[1]}`)}${s[2]}]`, extra: '1', jsonrpc: '"2.0"' };
  return `${s[3]}{${s[4]}${keys.map((k) => `"${k}"${s[5]}:${s[6]}${value[k]}`).join(`${s[7]},${s[8]}`)}${s[9]}}${s[10]}`;
});

test('the fast path takes the shapes miners send (cgminer, cpuminer, numeric job ids, version bits)', () => {
  for (const line of [
    '{"id":4,"method":"mining.submit","params":["a.w","1f","0000000100000002","5f5e1000","c7181100"]}',
    '{"params": ["acct.rig1", "1f", "00000001", "5f5e1000", "c7181100", "1fffe000"], "id": 12345, "method": "mining.submit"}',
    '{"id":4,"method":"mining.submit","params":["a.w","1f","0000000100000002","5f5e1000","c7181100"]}\r',
    '{"id": "s1", "method": "mining.submit", "params": ["a.w", 31, "00", "00", "00"]}',
    '{"id":null,"method":"mining.submit","params":["a.w","1f","00","00","00",null]}',
  ]) {
    assert.notEqual(parseSubmitLine(line), null, line);
    agree(line);
  }
  for (const line of ['{"id":1,"method":"mining.subscribe","params":[]}', '{"id":1,"method":"mining.submit","params":["a\\u0062","1","2","3","4"]}',
    '{"id":1,"method":"mining.submit","params":["a","1","2","3","4"],"jsonrpc":"2.0"}',
    '{"method":"mining.submit","params":["a.w","1f","00","00","00"],"id":1}', '{"id":1,"method":"mining.submit","params":["a","1","2","3","4","5","6"]}']) {
    assert.equal(parseSubmitLine(line), null, `generic: ${line}`);
    agree(line);
  }
});

test('fast path and generic parse agree on random submit-like lines', () => {
  fc.assert(fc.property(submitLine, agree), { numRuns: 3000 });
});

test('fast path and generic parse agree on mutated submit lines (a character deleted, inserted or replaced)', () => {
  const bases = ['{"id": 7, "method": "mining.submit", "params": ["acct.rig1", "1f", "0000000100000002", "5f5e1000", "c7181100", "00002000"]}',
    '{"params": ["acct.rig1", 31, "0000000100000002", "5f5e1000", "c7181100"], "id": "x7", "method": "mining.submit"}'];
  const chars = fc.constantFrom('"', ',', ':', '[', ']', '{', '}', ' ', '\\', 'n', 'u', '0', '-', '.', 'e', '\u2028', '\u0000', 'é', '\t');
  fc.assert(fc.property(fc.constantFrom(...bases), fc.array(fc.tuple(fc.nat(), fc.constantFrom('del', 'ins', 'rep'), chars), { minLength: 1, maxLength: 4 }), (base, edits) => {
    let line = base;
    for (const [at, op, c] of edits) {
      const i = at % (line.length + 1);
      line = op === 'del' ? line.slice(0, i) + line.slice(i + 1) : op === 'ins' ? line.slice(0, i) + c + line.slice(i) : line.slice(0, i) + c + line.slice(i + 1);
    }
    agree(line);
  }), { numRuns: 5000 });
});

test('fast path and generic parse agree on arbitrary strings and JSON values', () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ id: 1, method: 'mining.submit', params: v }))), agree), { numRuns: 2000 });
});
