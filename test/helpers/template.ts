import { randomBytes } from 'node:crypto';
import { bitsToTarget, hashFromDisplay, serializeTx, targetToBits, toHex, txidHex, witnessCommitment, witnessCommitmentScript, witnessMerkleRoot } from '../../src/chain/index.ts';
import type { BlockTemplate } from '../../src/node/types.ts';

/** A hand-made template (fake transactions: enough for job building and merkle branches, not for a node). */
export function fakeTemplate(opts: { prevHash?: string; height?: number; bits?: number; txs?: number; curtime?: number } = {}): BlockTemplate {
  const bits = opts.bits ?? 0x207fffff;
  const txs = Array.from({ length: opts.txs ?? 5 }, () => {
    // A parseable legacy transaction spending a random outpoint.
    const tx = { version: 2, locktime: 0, inputs: [{ prevTxid: randomBytes(32), vout: 0, scriptSig: randomBytes(20), sequence: 0xffffffff, witness: [] }], outputs: [{ value: 1000n, scriptPubKey: Buffer.from('51', 'hex') }] };
    const id = txidHex(tx);
    return { data: toHex(serializeTx(tx)), txid: id, hash: id, fee: 1000 };
  });
  return {
    version: 0x20000000,
    rules: ['csv', '!segwit', 'taproot'],
    previousblockhash: opts.prevHash ?? toHex(randomBytes(32)),
    transactions: txs,
    coinbasevalue: 5_000_000_000 + txs.length * 1000,
    target: bitsToTarget(bits).toString(16).padStart(64, '0'),
    mintime: (opts.curtime ?? Math.floor(Date.now() / 1000)) - 600,
    curtime: opts.curtime ?? Math.floor(Date.now() / 1000),
    bits: bits.toString(16).padStart(8, '0'),
    height: opts.height ?? 200,
    default_witness_commitment: toHex(witnessCommitmentScript(witnessCommitment(witnessMerkleRoot(txs.map((t) => hashFromDisplay(t.hash)))))),
  };
}

export { targetToBits };
