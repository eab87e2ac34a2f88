import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AuthorizedWorker } from '../src/stratum/session.ts';
import { AuthorizedWorkers, interned } from '../src/stratum/workers.ts';

// A connection's workers were a Map; AuthorizedWorkers holds the first in a field and must answer as the Map did
// (lookups, size, order of first authorization, a re-authorized name keeping its place with the new value).

test('AuthorizedWorkers answers as a Map of name to worker, over any sequence of authorizations', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('a.1', 'a.2', 'b.1', 'b.2', 'c'), fc.nat(9)), { maxLength: 30 }), (ops) => {
    const model = new Map<string, AuthorizedWorker>();
    const ws = new AuthorizedWorkers();
    for (const [name, tag] of ops) {
      const w: AuthorizedWorker = { name, account: name.split('.')[0], worker: `${tag}` };
      model.set(name, w);
      ws.set(w);
      assert.equal(ws.size, model.size);
      assert.deepEqual([...ws.values()], [...model.values()]);
      assert.equal(ws.first, model.values().next().value);
      for (const n of ['a.1', 'a.2', 'b.1', 'b.2', 'c', 'x']) {
        assert.equal(ws.get(n), model.get(n));
        assert.equal(ws.has(n), model.has(n));
      }
    }
    if (ops.length === 0) assert.equal(ws.first, undefined);
  }));
});

test('interned gives back the value it is given, also past its bound', () => {
  for (let i = 0; i < 10_000; i++) assert.equal(interned(`ua/${i % 5000}`), `ua/${i % 5000}`);
});

test('interned keeps a value, not the line it was sliced from', () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const keep: string[] = [];
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1000; i++) {
    const line = `{"id":1,"method":"mining.subscribe","params":["bmminer/2.0.0-antminer-${i}",` + 'x'.repeat(8000) + ']}';
    const at = line.indexOf("bmminer/");
    keep.push(interned(line.slice(at, at + `bmminer/2.0.0-antminer-${i}`.length))); // a slice of an 8 KB line
  }
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  assert.equal(keep[999], 'bmminer/2.0.0-antminer-999');
  assert.ok(grown < 2_000_000, `interning 1,000 slices of 8 KB lines kept ${grown} bytes`);
});
