import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as bitcoin from 'bitcoinjs-lib';
import fc from 'fast-check';
import {
  DIFF1_TARGET, addressToScript, bitsToDifficulty, bitsToTarget, blockHashHex, buildCoinbase, coinbaseMerkleBranch,
  coinbaseWithWitness, difficultyToTarget, findWitnessCommitment, fromHex, hashDifficulty, hashToBigInt, hashToDisplay,
  headerHash, isWitnessProgram, merkleRoot, merkleRootFromBranch, parseBlock, parseTx, pushHeight, serializeBlock, serializeHeader,
  serializeTx, targetToBits, targetToDifficulty, toHex, txid, witnessCommitment, witnessMerkleRoot, wtxid, encodeVarInt, Reader,
} from '../src/chain/index.ts';
import { plainMerkleRoot } from './helpers/merkle.ts';
import { loadBlockVectors } from './helpers/vectors.ts';

const vectors = loadBlockVectors();

describe('chain: real blocks', () => {
  for (const v of vectors) {
    test(`${v.description}: parse, hash, txids, merkle root, PoW, re-serialize`, () => {
      const bytes = fromHex(v.hex);
      const block = parseBlock(bytes);
      assert.equal(toHex(serializeBlock(block)), v.hex, 'witness serialization round-trips');
      assert.equal(blockHashHex(block.header), v.hash);
      const ids = block.txs.map(txid);
      assert.ok(merkleRoot(ids).equals(block.header.merkleRoot), 'merkle root of txids matches the header');
      assert.ok(hashToBigInt(headerHash(block.header)) <= bitsToTarget(block.header.bits), 'PoW meets bits');
      // The same header hash rebuilt from the merkle branch of the coinbase.
      const branch = coinbaseMerkleBranch(ids.slice(1));
      assert.ok(merkleRootFromBranch(ids[0], branch).equals(block.header.merkleRoot));

      // Independent library agrees on everything.
      const ref = bitcoin.Block.fromHex(v.hex);
      assert.equal(ref.getId(), v.hash);
      assert.equal(ref.checkTxRoots(), true);
      assert.equal(ref.checkProofOfWork(), true);
      assert.equal(ref.transactions!.length, block.txs.length);
      ref.transactions!.forEach((t, i) => {
        assert.equal(t.getId(), hashToDisplay(ids[i]));
        // bitcoinjs reports the coinbase's wtxid as zeros (the BIP141 convention for the witness root).
        if (i > 0) assert.equal(toHex(t.getHash(true)), toHex(wtxid(block.txs[i])));
        assert.equal(toHex(t.toBuffer()), toHex(serializeTx(block.txs[i])));
      });
      assert.equal(ref.bits, block.header.bits);
      assert.equal(ref.version, block.header.version | 0);
    });
  }

  test('segwit block: witness commitment recomputed from wtxids and the reserved value', () => {
    const v = vectors.find((x) => x.witnessCommitment)!;
    const block = parseBlock(fromHex(v.hex));
    const cb = block.txs[0];
    const reserved = cb.inputs[0].witness[0];
    assert.equal(reserved.length, 32);
    const root = witnessMerkleRoot(block.txs.slice(1).map(wtxid));
    const commitment = witnessCommitment(root, reserved);
    assert.equal(toHex(commitment), v.witnessCommitment);
    assert.equal(toHex(findWitnessCommitment(cb)!), v.witnessCommitment);
    // coinbaseWithWitness rebuilds the wire form from the non-witness bytes.
    assert.equal(toHex(coinbaseWithWitness(serializeTx(cb, false), reserved)), toHex(serializeTx(cb, true)));
    // BIP34: scriptSig starts with the height push exactly as Core writes it.
    assert.ok(cb.inputs[0].scriptSig.subarray(0, 4).equals(pushHeight(v.height!)));
  });

  test('truncated and trailing bytes are rejected with a clear error', () => {
    const hex = vectors[0].hex;
    assert.throws(() => parseBlock(fromHex(hex.slice(0, hex.length - 10))), /truncated/);
    assert.throws(() => parseBlock(fromHex(hex + '00')), /trailing/);
    assert.throws(() => fromHex('abc'), /invalid hex/);
  });
});

describe('chain: targets and difficulty', () => {
  test('bits <-> target <-> difficulty', () => {
    assert.equal(bitsToTarget(0x1d00ffff), DIFF1_TARGET);
    assert.equal(bitsToDifficulty(0x1d00ffff), 1);
    assert.equal(targetToBits(DIFF1_TARGET), 0x1d00ffff);
    assert.equal(bitsToTarget(0x207fffff), 0x7fffffn << 232n);
    assert.equal(targetToBits(0x7fffffn << 232n), 0x207fffff);
    // Block 542213's bits (mainnet, difficulty 7,019,199,231,177 as explorers show).
    const b = parseBlock(fromHex(vectors.find((x) => x.height === 542213)!.hex));
    assert.equal(targetToBits(bitsToTarget(b.header.bits)), b.header.bits);
    assert.ok(Math.abs(bitsToDifficulty(b.header.bits) - 7019199231177.173) / 7.02e12 < 1e-12);
    // Sign bit: targetToBits never sets 0x00800000.
    assert.equal(targetToBits(0x80n), 0x02008000);
    assert.equal(bitsToTarget(0x02008000), 0x80n);
    assert.throws(() => bitsToTarget(0x04923456), /negative/);
  });

  test('fractional pool difficulty to target and back', () => {
    assert.equal(difficultyToTarget(1), DIFF1_TARGET);
    assert.equal(difficultyToTarget(2), DIFF1_TARGET / 2n);
    for (const d of [0.0001, 0.5, 3, 1024, 65536, 1e12]) {
      assert.ok(Math.abs(targetToDifficulty(difficultyToTarget(d)) - d) / d < 1e-12, `difficulty ${d}`);
    }
    assert.equal(difficultyToTarget(1e-30), (1n << 256n) - 1n, 'clamped');
    assert.throws(() => difficultyToTarget(0));
    assert.throws(() => difficultyToTarget(NaN));
  });

  test('hash difficulty matches diff1 / hash', () => {
    const v = vectors[0];
    const h = headerHash(parseBlock(fromHex(v.hex)).header);
    const exact = Number(DIFF1_TARGET) / Number(hashToBigInt(h));
    assert.ok(Math.abs(hashDifficulty(h) - exact) / exact < 1e-12);
    assert.ok(hashDifficulty(h) >= 1);
  });
});

describe('chain: coinbase and scripts', () => {
  test('BIP34 height pushes', () => {
    assert.equal(toHex(pushHeight(0)), '00');
    assert.equal(toHex(pushHeight(1)), '51');
    assert.equal(toHex(pushHeight(16)), '60');
    assert.equal(toHex(pushHeight(17)), '0111');
    assert.equal(toHex(pushHeight(127)), '017f');
    assert.equal(toHex(pushHeight(128)), '028000');
    assert.equal(toHex(pushHeight(255)), '02ff00');
    assert.equal(toHex(pushHeight(256)), '020001');
    assert.equal(toHex(pushHeight(542213)), '03054608');
    assert.equal(toHex(pushHeight(8388608)), '0400008000');
  });

  test('coinbase parts join into a valid transaction that the independent library parses', () => {
    const script = addressToScript('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', 'mainnet');
    const commitment = fromHex('6a24aa21a9ed' + '11'.repeat(32));
    const parts = buildCoinbase({ height: 840000, extranonceSize: 12, tag: Buffer.from('/hashhub/'), outputs: [{ value: 312500000n, scriptPubKey: script }], witnessCommitmentScript: commitment });
    const en = fromHex('0102030405060708090a0b0c');
    const nonWitness = Buffer.concat([parts.coinb1, en, parts.coinb2]);
    const tx = parseTx(nonWitness);
    assert.equal(tx.inputs.length, 1);
    assert.ok(tx.inputs[0].scriptSig.subarray(0, 4).equals(pushHeight(840000)));
    assert.ok(tx.inputs[0].scriptSig.includes(en));
    assert.ok(tx.inputs[0].scriptSig.includes(Buffer.from('/hashhub/')));
    assert.equal(tx.outputs[0].value, 312500000n);
    assert.ok(tx.outputs[0].scriptPubKey.equals(script));
    assert.ok(tx.outputs[1].scriptPubKey.equals(commitment));
    const ref = bitcoin.Transaction.fromBuffer(coinbaseWithWitness(nonWitness));
    assert.equal(ref.isCoinbase(), true);
    assert.equal(ref.getId(), hashToDisplay(txid(tx)));
    assert.equal(ref.ins[0].witness.length, 1);
    assert.equal(ref.ins[0].witness[0].length, 32);
  });

  test('a scriptSig over 100 bytes is refused with a clear error', () => {
    assert.throws(() => buildCoinbase({ height: 1000, extranonceSize: 16, tag: Buffer.alloc(80, 0x41), outputs: [{ value: 1n, scriptPubKey: Buffer.from([0x51]) }] }), /max 100/);
  });

  test('varints', () => {
    for (const n of [0, 252, 253, 65535, 65536, 0xffffffff, 0x100000000]) {
      assert.equal(new Reader(encodeVarInt(n)).varInt(), n);
    }
    assert.equal(toHex(encodeVarInt(253)), 'fdfd00');
  });
});

describe('chain: addresses', () => {
  const cases: [string, 'mainnet' | 'testnet' | 'signet' | 'regtest', string][] = [
    ['1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa', 'mainnet', '76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac'],
    ['3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy', 'mainnet', 'a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87'],
    ['bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', 'mainnet', '0014751e76e8199196d454941c45d1b3a323f1433bd6'],
    ['bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3', 'mainnet', '00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262'],
    ['bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0', 'mainnet', '512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'],
    ['tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 'testnet', '0014751e76e8199196d454941c45d1b3a323f1433bd6'],
    ['tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 'signet', '0014751e76e8199196d454941c45d1b3a323f1433bd6'],
    ['mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn', 'testnet', '76a914243f1394f44554f4ce3fd68649c19adc483ce92488ac'],
    ['bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', 'regtest', '0014751e76e8199196d454941c45d1b3a323f1433bd6'],
  ];
  test('segwit output scripts (witness programs) and the others', () => {
    // The payouts' external-signer cancel relies on it: a segwit input's spender keeps the unsigned txid.
    const segwit = (a: string) => a.startsWith('bc1') || a.startsWith('tb1') || a.startsWith('bcrt1');
    for (const [addr, net, script] of cases) assert.equal(isWitnessProgram(fromHex(script)), segwit(addr), `${addr} (${net})`);
    assert.equal(isWitnessProgram(fromHex('6a24aa21a9ed' + '00'.repeat(32))), false, 'OP_RETURN');
    assert.equal(isWitnessProgram(fromHex('0015' + '00'.repeat(20))), false, 'push length not the rest');
    assert.equal(isWitnessProgram(fromHex('6114' + '00'.repeat(20))), false, 'not OP_0..OP_16');
    assert.equal(isWitnessProgram(fromHex('6002' + '0000')), true, 'OP_16, two bytes');
  });
  for (const [addr, net, script] of cases) {
    test(`${net} ${addr.slice(0, 12)}…`, () => {
      assert.equal(toHex(addressToScript(addr, net)), script);
      if (!addr.startsWith('bc1p')) {
        const n = net === 'mainnet' ? bitcoin.networks.bitcoin : net === 'regtest' ? bitcoin.networks.regtest : bitcoin.networks.testnet;
        assert.equal(toHex(bitcoin.address.toOutputScript(addr, n)), script, 'independent library agrees');
      }
    });
  }
  test('bad addresses get clear errors', () => {
    assert.throws(() => addressToScript('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5', 'mainnet'), /not a valid mainnet address/);
    assert.throws(() => addressToScript('bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', 'mainnet'), /is a regtest address, but this pool runs on mainnet/);
    assert.throws(() => addressToScript(' 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa', 'mainnet'), /whitespace/);
    assert.throws(() => addressToScript('', 'mainnet'));
  });
});

test('header serialization is 80 bytes, little-endian integers', () => {
  const h = serializeHeader({ version: 0x20000000, prevHash: Buffer.alloc(32, 1), merkleRoot: Buffer.alloc(32, 2), time: 0x5f5e1000, bits: 0x1d00ffff, nonce: 0xdeadbeef });
  assert.equal(h.length, 80);
  assert.equal(toHex(h.subarray(0, 4)), '00000020');
  assert.equal(toHex(h.subarray(72, 76)), 'ffff001d');
  assert.equal(toHex(h.subarray(76, 80)), 'efbeadde');
});

test('merkle root and the coinbase branch equal the plain pairwise double-SHA tree (Core: an odd level pairs its last node with itself)', () => {

  fc.assert(fc.property(fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 1, maxLength: 70 }), (raw) => {
    const hashes = raw.map((h) => Buffer.from(h));
    const root = plainMerkleRoot(hashes);
    assert.ok(merkleRoot(hashes).equals(root));
    assert.ok(merkleRootFromBranch(hashes[0], coinbaseMerkleBranch(hashes.slice(1))).equals(root));
    // Inputs are not changed by the in-place levels.
    assert.deepEqual(hashes, raw.map((h) => Buffer.from(h)));
  }), { numRuns: 300 });
});
