// Block validation in Bitcoin Core's order and with its reject reasons (src/validation.cpp CheckBlockHeader,
// CheckBlock, ContextualCheckBlockHeader, ContextualCheckBlock; src/consensus/tx_check.cpp CheckTransaction).
// Scripts are not executed: the chain's own synthetic transactions spend fake outpoints. Connect-time checks
// (inputs, coinbase amount) need the chain's state and live in chain.ts.

import {
  type Block, type BlockHeader, type Tx, Reader, bitsToTarget, findWitnessCommitment, hashToBigInt, headerHash, merkleRoot,
  hasWitness, parseBlock, pushHeight, serializeBlock, serializeTx, sha256d, txid, witnessCommitment, witnessMerkleRoot, wtxid, u32Hex,
} from '../../chain/index.ts';
import type { BlockEntry } from './block-index.ts';
import type { KnownTxForms } from './mempool.ts';
import { RPC_DESERIALIZATION_ERROR, RpcFault } from './errors.ts';
import {
  LOCKTIME_THRESHOLD, MAX_BLOCK_SIGOPS_COST, MAX_BLOCK_WEIGHT, MAX_FUTURE_BLOCK_TIME, MAX_MONEY, REGTEST_POW_LIMIT,
  SIGNET_HEADER, WITNESS_SCALE_FACTOR,
} from './params.ts';

export interface DecodedBlock {
  block: Block;
  hash: Buffer;
  txids: Buffer[];
  size: number;
  strippedSize: number;
  weight: number;
}

/** A reject reason; `mutated` ones say nothing about the header (Core's BLOCK_MUTATED: not cached as invalid). */
export interface Rejection {
  reason: string;
  mutated?: boolean;
}

/** DecodeHexBlk: undecodable bytes, trailing bytes or a non-canonical encoding is RPC error -22. */
export function decodeBlock(bytes: Uint8Array): DecodedBlock {
  let block: Block;
  try {
    block = parseBlock(bytes);
  } catch {
    throw new RpcFault(RPC_DESERIALIZATION_ERROR, 'Block decode failed');
  }
  // Core refuses non-minimal CompactSizes and a witness flag on a tx without witness ("Superfluous witness
  // record"); both show up as bytes that do not re-encode identically.
  if (!serializeBlock(block).equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) {
    throw new RpcFault(RPC_DESERIALIZATION_ERROR, 'Block decode failed');
  }
  return describeBlock(block);
}

/**
 * A block this chain stored itself (read back from its checksummed block file): parsed once, each transaction
 * serialized once per form, no canonical-encoding check (it passed when the block arrived).
 */
export function decodeStoredBlock(bytes: Buffer): DecodedBlock & { forms: KnownTxForms[] } {
  const block = parseBlock(bytes);
  const forms: KnownTxForms[] = block.txs.map((tx) => {
    const stripped = serializeTx(tx, false);
    const id = sha256d(stripped);
    const full = hasWitness(tx) ? serializeTx(tx, true) : stripped;
    return { bytes: full, strippedSize: stripped.length, txid: id, wtxid: full === stripped ? id : sha256d(full) };
  });
  const n = block.txs.length;
  const strippedSize = 80 + (n < 0xfd ? 1 : n <= 0xffff ? 3 : 5) + forms.reduce((s, f) => s + f.strippedSize, 0);
  return {
    block, hash: headerHash(block.header), txids: forms.map((f) => f.txid), size: bytes.length, strippedSize,
    weight: strippedSize * (WITNESS_SCALE_FACTOR - 1) + bytes.length, forms,
  };
}

export function describeBlock(block: Block): DecodedBlock {
  const size = serializeBlock(block, true).length;
  const strippedSize = serializeBlock(block, false).length;
  return {
    block,
    hash: headerHash(block.header),
    txids: block.txs.map(txid),
    size,
    strippedSize,
    weight: strippedSize * (WITNESS_SCALE_FACTOR - 1) + size,
  };
}

export function isCoinbase(tx: Tx): boolean {
  return tx.inputs.length === 1 && tx.inputs[0].vout === 0xffffffff && tx.inputs[0].prevTxid.every((b) => b === 0);
}

/** pow.cpp CheckProofOfWork: bits must decode to a positive target within powLimit, and the hash meet it. */
export function checkProofOfWork(hash: Uint8Array, bits: number): boolean {
  let target: bigint;
  try { target = bitsToTarget(bits); } catch { return false; }
  if (target === 0n || target > REGTEST_POW_LIMIT) return false;
  return hashToBigInt(hash) <= target;
}

/** CheckTransaction: context-free rules for one transaction. */
export function checkTransaction(tx: Tx): string | null {
  if (tx.inputs.length === 0) return 'bad-txns-vin-empty';
  if (tx.outputs.length === 0) return 'bad-txns-vout-empty';
  if (serializeTx(tx, false).length * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT) return 'bad-txns-oversize';
  let total = 0n;
  for (const o of tx.outputs) {
    // CAmount is int64: a value with the top bit set is negative there.
    if (o.value >= 1n << 63n) return 'bad-txns-vout-negative';
    if (o.value > MAX_MONEY) return 'bad-txns-vout-toolarge';
    total += o.value;
    if (total > MAX_MONEY) return 'bad-txns-txouttotal-toolarge';
  }
  const seen = new Set<string>();
  for (const i of tx.inputs) {
    const key = `${i.prevTxid.toString('hex')}:${i.vout}`;
    if (seen.has(key)) return 'bad-txns-inputs-duplicate';
    seen.add(key);
  }
  if (isCoinbase(tx)) {
    const len = tx.inputs[0].scriptSig.length;
    if (len < 2 || len > 100) return 'bad-cb-length';
  } else if (tx.inputs.some((i) => i.vout === 0xffffffff && i.prevTxid.every((b) => b === 0))) {
    return 'bad-txns-prevout-null';
  }
  return null;
}

/** Legacy (pre-segwit) sigop count of a script, inaccurate mode: multisig counts 20 (script.cpp GetSigOpCount). */
export function legacySigOps(script: Uint8Array): number {
  let n = 0;
  for (let pc = 0; pc < script.length;) {
    const op = script[pc++];
    if (op >= 0x01 && op <= 0x4b) pc += op;
    else if (op === 0x4c) { if (pc + 1 > script.length) break; pc += 1 + script[pc]; }
    else if (op === 0x4d) { if (pc + 2 > script.length) break; pc += 2 + (script[pc] | (script[pc + 1] << 8)); }
    else if (op === 0x4e) { if (pc + 4 > script.length) break; pc += 4 + Buffer.from(script.subarray(pc, pc + 4)).readUInt32LE(0); }
    else if (op === 0xac || op === 0xad) n += 1; // OP_CHECKSIG, OP_CHECKSIGVERIFY
    else if (op === 0xae || op === 0xaf) n += 20; // OP_CHECKMULTISIG(VERIFY), MAX_PUBKEYS_PER_MULTISIG
    if (pc > script.length) break; // truncated push: GetOp fails and counting stops
  }
  return n;
}

export function txLegacySigOps(tx: Tx): number {
  let n = 0;
  for (const i of tx.inputs) n += legacySigOps(i.scriptSig);
  for (const o of tx.outputs) n += legacySigOps(o.scriptPubKey);
  return n;
}

/** A tree with two equal hashes paired at some level (CVE-2012-2459): consensus/merkle.cpp ComputeMerkleRoot. */
function merkleMutated(hashes: readonly Buffer[]): boolean {
  if (new Set(hashes.map((h) => h.toString('hex'))).size === hashes.length) return false; // fast path: no duplicates
  let level = hashes.slice();
  while (level.length > 1) {
    for (let i = 0; i + 1 < level.length; i += 2) if (level[i].equals(level[i + 1])) return true;
    if (level.length & 1) level.push(level[level.length - 1]);
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(sha256d(Buffer.concat([level[i], level[i + 1]])));
    level = next;
  }
  return false;
}

/** CheckBlockHeader + CheckBlock: everything that needs no other block. `signet`: the chain is a signet. */
export function checkBlock(d: DecodedBlock, opts: { checkPow: boolean; signet?: boolean }): Rejection | null {
  const { block } = d;
  if (opts.checkPow && !checkProofOfWork(d.hash, block.header.bits)) return { reason: 'high-hash' };
  // Core checks the signet solution right after the header, and only when it checks proof of work (not for
  // getblocktemplate proposals).
  if (opts.signet && opts.checkPow && !checkSignetSolution(block)) return { reason: 'bad-signet-blksig' };
  if (block.txs.length === 0 || !merkleRoot(d.txids).equals(block.header.merkleRoot)) return { reason: 'bad-txnmrklroot', mutated: true };
  if (merkleMutated(d.txids)) return { reason: 'bad-txns-duplicate', mutated: true };
  if (block.txs.length * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT || d.strippedSize * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT) {
    return { reason: 'bad-blk-length' };
  }
  if (!isCoinbase(block.txs[0])) return { reason: 'bad-cb-missing' };
  for (let i = 1; i < block.txs.length; i++) if (isCoinbase(block.txs[i])) return { reason: 'bad-cb-multiple' };
  for (const tx of block.txs) {
    const r = checkTransaction(tx);
    if (r) return { reason: r };
  }
  let sigops = 0;
  for (const tx of block.txs) sigops += txLegacySigOps(tx);
  if (sigops * WITNESS_SCALE_FACTOR > MAX_BLOCK_SIGOPS_COST) return { reason: 'bad-blk-sigops' };
  return null;
}

/**
 * What is checked again of a block read back from the chain's own block file (it passed every check when it
 * arrived): proof of work and merkle root, so damage the file's checksum cannot see (older records) is caught.
 */
export function checkStoredBlock(d: DecodedBlock): Rejection | null {
  if (!checkProofOfWork(d.hash, d.block.header.bits)) return { reason: 'high-hash' };
  if (d.block.txs.length === 0 || !merkleRoot(d.txids).equals(d.block.header.merkleRoot)) return { reason: 'bad-txnmrklroot', mutated: true };
  return null;
}

/** ContextualCheckBlockHeader: bits, time against the parent's median time past and the clock, version. */
export function contextualCheckHeader(header: BlockHeader, prev: BlockEntry, expectedBits: number, nowSec: number): Rejection | null {
  if (header.bits !== expectedBits) return { reason: 'bad-diffbits' };
  if (header.time <= prev.mtp) return { reason: 'time-too-old' };
  if (header.time > nowSec + MAX_FUTURE_BLOCK_TIME) return { reason: 'time-too-new' };
  // BIP34/66/65 are active from height 1 on regtest: versions below 4 are obsolete.
  if ((header.version | 0) < 4) return { reason: `bad-version(0x${u32Hex(header.version)})` };
  return null;
}

/** IsFinalTx with the BIP113 cutoff (median time past of the parent). */
function isFinal(tx: Tx, height: number, mtpCutoff: number): boolean {
  if (tx.locktime === 0) return true;
  if (tx.locktime < (tx.locktime < LOCKTIME_THRESHOLD ? height : mtpCutoff)) return true;
  return tx.inputs.every((i) => i.sequence === 0xffffffff);
}

/** ContextualCheckBlock: finality, BIP34 height, BIP141 witness commitment, weight. Segwit is active. */
export function contextualCheckBlock(d: DecodedBlock, prev: BlockEntry): Rejection | null {
  const { block } = d;
  const height = prev.height + 1;
  for (const tx of block.txs) if (!isFinal(tx, height, prev.mtp)) return { reason: 'bad-txns-nonfinal' };
  const expect = pushHeight(height);
  const sig = block.txs[0].inputs[0].scriptSig;
  if (sig.length < expect.length || !sig.subarray(0, expect.length).equals(expect)) return { reason: 'bad-cb-height' };

  const cb = block.txs[0];
  const commitment = findWitnessCommitment(cb);
  if (commitment) {
    const w = cb.inputs[0].witness;
    if (w.length !== 1 || w[0].length !== 32) return { reason: 'bad-witness-nonce-size', mutated: true };
    const root = witnessMerkleRoot(block.txs.slice(1).map(wtxid));
    if (!witnessCommitment(root, w[0]).equals(commitment)) return { reason: 'bad-witness-merkle-match', mutated: true };
  } else if (block.txs.some((tx) => tx.inputs.some((i) => i.witness.length > 0))) {
    return { reason: 'unexpected-witness', mutated: true };
  }
  if (d.weight > MAX_BLOCK_WEIGHT) return { reason: 'bad-blk-weight' };
  return null;
}

/**
 * submitblock's UpdateUncommittedBlockStructures: a block that commits to witness data but whose coinbase has no
 * witness gets the 32 zero bytes of the default witness reserved value. Returns whether it changed the block.
 */
export function addDefaultCoinbaseWitness(block: Block): boolean {
  const cb = block.txs[0];
  if (!cb || cb.inputs.length === 0 || !findWitnessCommitment(cb)) return false;
  if (cb.inputs.some((i) => i.witness.length > 0)) return false;
  cb.inputs[0].witness = [Buffer.alloc(32)];
  return true;
}

/**
 * signet.cpp CheckSignetBlockSolution for the challenge OP_TRUE (`-signetchallenge=51`), the only challenge the
 * embedded chain runs (any other needs signatures it does not verify). Like Core: the coinbase must carry a
 * BIP141 witness commitment; a solution after SIGNET_HEADER in that output, when present, must parse as
 * scriptSig ‖ witness stack with nothing left over; then the scriptSig and OP_TRUE must evaluate to true. The
 * scriptSig is evaluated for push-only scripts (what a solution is); anything else is refused here.
 */
export function checkSignetSolution(block: Block): boolean {
  const cb = block.txs[0];
  if (!cb) return false;
  let commitmentScript: Buffer | null = null;
  for (let i = cb.outputs.length - 1; i >= 0; i--) {
    const s = cb.outputs[i].scriptPubKey;
    if (s.length >= 38 && s[0] === 0x6a && s[1] === 0x24 && s.readUInt32BE(2) === 0xaa21a9ed) { commitmentScript = s; break; }
  }
  if (!commitmentScript) return false; // "require a witness commitment"
  const pushes = scriptPushes(commitmentScript);
  if (!pushes) return true; // GetOp stops at a bad push; no solution found: OP_TRUE needs none
  const section = pushes.find((p) => p.length > SIGNET_HEADER.length && p.subarray(0, 4).equals(SIGNET_HEADER));
  if (!section) return true; // no solution: allowed so that OP_TRUE works as a trivial challenge
  let scriptSig: Buffer;
  let stackItems: number;
  try {
    const r = new Reader(section.subarray(4));
    scriptSig = r.varBytes();
    stackItems = r.varInt();
    for (let i = 0; i < stackItems; i++) r.varBytes();
    if (r.remaining !== 0) return false; // extraneous data
  } catch {
    return false; // parse error
  }
  // OP_TRUE is no witness program: a non-empty witness is SCRIPT_ERR_WITNESS_UNEXPECTED.
  if (stackItems !== 0) return false;
  return scriptPushes(scriptSig) !== null && isPushOnly(scriptSig);
}

/** The data pushes of a script (opcodes skipped), or null when a push runs past the end. */
function scriptPushes(script: Buffer): Buffer[] | null {
  const out: Buffer[] = [];
  for (let pc = 0; pc < script.length;) {
    const op = script[pc++];
    let n = -1;
    if (op >= 0x01 && op <= 0x4b) n = op;
    else if (op === 0x4c) { if (pc + 1 > script.length) return null; n = script[pc]; pc += 1; }
    else if (op === 0x4d) { if (pc + 2 > script.length) return null; n = script.readUInt16LE(pc); pc += 2; }
    else if (op === 0x4e) { if (pc + 4 > script.length) return null; n = script.readUInt32LE(pc); pc += 4; }
    if (n < 0) continue;
    if (pc + n > script.length) return null;
    out.push(script.subarray(pc, pc + n));
    pc += n;
  }
  return out;
}

/** IsPushOnly: every opcode is a push (OP_0..OP_PUSHDATA4, OP_1NEGATE, OP_1..OP_16). */
function isPushOnly(script: Buffer): boolean {
  for (let pc = 0; pc < script.length;) {
    const op = script[pc++];
    if (op > 0x60 || op === 0x50) return false; // OP_RESERVED counts as a push in Core but fails when executed
    if (op >= 0x01 && op <= 0x4b) pc += op;
    else if (op === 0x4c) pc += 1 + script[pc];
    else if (op === 0x4d) pc += 2 + script.readUInt16LE(pc);
    else if (op === 0x4e) pc += 4 + script.readUInt32LE(pc);
  }
  return true;
}
