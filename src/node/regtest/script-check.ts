// Spending checks for the embedded chain's real transactions (the wallet's payouts): the signature of each input
// against the output it spends. Written from BIP143 (segwit v0) and the legacy SIGHASH_ALL rules, with ECDSA
// verified by Node's OpenSSL (secp256k1), so the chain checks the wallet's signatures with code the wallet
// (@scure/btc-signer) does not share. Supported: P2WPKH and P2PKH with SIGHASH_ALL; anything else is refused
// with a clear reason rather than accepted unchecked.

import { createHash, createPublicKey, verify } from 'node:crypto';
import { Writer, type Tx, sha256d } from '../../chain/index.ts';

const SIGHASH_ALL = 1;
const SPKI_SECP256K1_COMPRESSED = Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex');
const SPKI_SECP256K1_UNCOMPRESSED = Buffer.from('3056301006072a8648ce3d020106052b8104000a034200', 'hex');

export interface SpentOutput {
  value: bigint;
  script: Buffer;
}

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();
const hash160 = (b: Uint8Array): Buffer => createHash('ripemd160').update(sha256(b)).digest();

/** BIP143 preimage (before the double SHA-256) for input `idx`, SIGHASH_ALL. */
export function bip143Preimage(tx: Tx, idx: number, scriptCode: Buffer, value: bigint): Buffer {
  const prevouts = new Writer();
  const sequences = new Writer();
  for (const i of tx.inputs) {
    prevouts.bytes(i.prevTxid).u32(i.vout);
    sequences.u32(i.sequence);
  }
  const outputs = new Writer();
  for (const o of tx.outputs) outputs.u64(o.value).varBytes(o.scriptPubKey);
  const inp = tx.inputs[idx];
  return new Writer()
    .i32(tx.version)
    .bytes(sha256d(prevouts.finish()))
    .bytes(sha256d(sequences.finish()))
    .bytes(inp.prevTxid).u32(inp.vout)
    .varBytes(scriptCode)
    .u64(value)
    .u32(inp.sequence)
    .bytes(sha256d(outputs.finish()))
    .u32(tx.locktime)
    .u32(SIGHASH_ALL)
    .finish();
}

/** Legacy preimage for input `idx`, SIGHASH_ALL: every scriptSig emptied but this one's = the spent script. */
export function legacyPreimage(tx: Tx, idx: number, spentScript: Buffer): Buffer {
  const w = new Writer().i32(tx.version).varInt(tx.inputs.length);
  tx.inputs.forEach((i, k) => w.bytes(i.prevTxid).u32(i.vout).varBytes(k === idx ? spentScript : Buffer.alloc(0)).u32(i.sequence));
  w.varInt(tx.outputs.length);
  for (const o of tx.outputs) w.u64(o.value).varBytes(o.scriptPubKey);
  return w.u32(tx.locktime).u32(SIGHASH_ALL).finish();
}

function checkEcdsa(pubkey: Buffer, sigWithType: Buffer, preimage: Buffer): string | null {
  if (sigWithType.length < 9 || sigWithType.length > 73) return 'non-mandatory-script-verify-flag (Non-canonical DER signature)';
  if (sigWithType[sigWithType.length - 1] !== SIGHASH_ALL) return 'non-mandatory-script-verify-flag (only SIGHASH_ALL is supported by the embedded chain)';
  let prefix: Buffer;
  if (pubkey.length === 33 && (pubkey[0] === 2 || pubkey[0] === 3)) prefix = SPKI_SECP256K1_COMPRESSED;
  else if (pubkey.length === 65 && pubkey[0] === 4) prefix = SPKI_SECP256K1_UNCOMPRESSED;
  else return 'non-mandatory-script-verify-flag (Public key is neither compressed or uncompressed)';
  try {
    const key = createPublicKey({ key: Buffer.concat([prefix, pubkey]), format: 'der', type: 'spki' });
    // Node hashes the data once with SHA-256: passing SHA-256(preimage) verifies over SHA-256d(preimage).
    const ok = verify('sha256', sha256(preimage), { key, dsaEncoding: 'der' }, sigWithType.subarray(0, -1));
    return ok ? null : 'mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)';
  } catch {
    return 'mandatory-script-verify-flag-failed (Non-canonical DER signature or bad public key)';
  }
}

/** Parse a scriptSig of exactly two data pushes (signature, public key). */
function twoPushes(script: Buffer): [Buffer, Buffer] | null {
  const out: Buffer[] = [];
  for (let pc = 0; pc < script.length;) {
    const op = script[pc++];
    if (op < 1 || op > 75 || pc + op > script.length) return null;
    out.push(script.subarray(pc, pc + op));
    pc += op;
  }
  return out.length === 2 ? [out[0], out[1]] : null;
}

/** Check input `idx` of tx spending `spent`. null = valid, else a Core-style reason. */
export function checkInput(tx: Tx, idx: number, spent: SpentOutput): string | null {
  const s = spent.script;
  const inp = tx.inputs[idx];
  // P2WPKH: OP_0 <20>
  if (s.length === 22 && s[0] === 0x00 && s[1] === 0x14) {
    if (inp.scriptSig.length !== 0) return 'mandatory-script-verify-flag-failed (Witness requires empty scriptSig)';
    if (inp.witness.length !== 2) return 'mandatory-script-verify-flag-failed (Witness program hash mismatch)';
    const [sig, pub] = inp.witness;
    if (!hash160(pub).equals(s.subarray(2))) return 'mandatory-script-verify-flag-failed (Witness program hash mismatch)';
    const scriptCode = Buffer.concat([Buffer.from([0x76, 0xa9, 0x14]), s.subarray(2), Buffer.from([0x88, 0xac])]);
    return checkEcdsa(pub, sig, bip143Preimage(tx, idx, scriptCode, spent.value));
  }
  // P2PKH: OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG
  if (s.length === 25 && s[0] === 0x76 && s[1] === 0xa9 && s[2] === 0x14 && s[23] === 0x88 && s[24] === 0xac) {
    if (inp.witness.length !== 0) return 'mandatory-script-verify-flag-failed (Witness provided for non-witness script)';
    const pushes = twoPushes(inp.scriptSig);
    if (!pushes) return 'mandatory-script-verify-flag-failed (Operation not valid with the current stack size)';
    const [sig, pub] = pushes;
    if (!hash160(pub).equals(s.subarray(3, 23))) return 'mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)';
    return checkEcdsa(pub, sig, legacyPreimage(tx, idx, s));
  }
  return 'non-mandatory-script-verify-flag (the embedded chain checks P2WPKH and P2PKH spends only)';
}
