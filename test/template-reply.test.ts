import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { coinbaseMerkleBranch, hashFromDisplay } from '../src/chain/index.ts';
import { prepareTransactions } from '../src/node/template-reply.ts';
import type { TemplateTransaction } from '../src/node/types.ts';

const tx = (txid: string): TemplateTransaction => ({ data: '00', txid, hash: txid, fee: 0 }) as TemplateTransaction;

test('prepareTransactions: the merkle branch from one decode of every txid is the branch from each txid on its own', () => {
  fc.assert(fc.property(fc.nat(70), fc.boolean(), (n, upper) => {
    const ids = Array.from({ length: n }, () => randomBytes(32).toString('hex')).map((h, i) => (upper && i % 2 === 0 ? h.toUpperCase() : h));
    const txs = ids.map(tx);
    const expected = coinbaseMerkleBranch(ids.map((id) => hashFromDisplay(id)));
    const got = prepareTransactions(txs).branch;
    assert.deepEqual(got.map((b) => b.toString('hex')), expected.map((b) => b.toString('hex')));
    assert.deepEqual(txs.map((t) => t.txid), ids, 'the template is left as it was');
  }), { numRuns: 150 });
});

test('prepareTransactions: a txid that is not 64 hex digits fails as it did, naming it (never a branch from misaligned bytes)', () => {
  const good = randomBytes(32).toString('hex');
  // 62 + 66 digits: the same length joined as two good ones.
  assert.throws(() => prepareTransactions([tx(good.slice(0, 62)), tx(good + 'ab'), tx(good)]), /hash must be 32 bytes|invalid hex/);
  assert.throws(() => prepareTransactions([tx(good), tx('zz' + good.slice(2))]), /invalid hex: zz/);
  // Buffer.from would read these as hex digits by their low byte ('İ' as '0', 'š' as 'a').
  for (const odd of ['\u0130', '\u0161', '\u3030']) {
    assert.throws(() => prepareTransactions([tx(good), tx(good.slice(0, 40) + odd + good.slice(41))]), /invalid hex/, `U+${odd.charCodeAt(0).toString(16)}`);
  }
});

test('prepareTransactions: transaction data with a character above U+00FF is not hex (never bytes from its low byte)', () => {
  const id = randomBytes(32).toString('hex');
  const ok = prepareTransactions([{ data: '0200', txid: id, hash: id, fee: 0 } as TemplateTransaction]);
  assert.equal(ok.error, undefined);
  assert.equal(ok.bytes.toString('hex'), '0200');
  for (const odd of ['\u0130', '\u0161', '\u3030']) {
    const r = prepareTransactions([{ data: '02' + odd + '0', txid: id, hash: id, fee: 0 } as TemplateTransaction]);
    assert.equal(r.error, 'template transaction data is not hex', `U+${odd.charCodeAt(0).toString(16)}`);
  }
});
