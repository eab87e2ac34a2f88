// Scripts as Bitcoin Core prints them in getblock verbosity 2 (src/core_io.cpp ScriptToAsmStr / ScriptToUniv,
// src/script/solver.cpp Solver, src/script/descriptor.cpp InferDescriptor with no keys known, BIP380 checksums).

import { Address, OutScript, TEST_NETWORK } from '@scure/btc-signer';

const OP_NAMES: Record<number, string> = {
  0x00: '0', 0x4c: 'OP_PUSHDATA1', 0x4d: 'OP_PUSHDATA2', 0x4e: 'OP_PUSHDATA4', 0x4f: '-1', 0x50: 'OP_RESERVED',
  0x61: 'OP_NOP', 0x62: 'OP_VER', 0x63: 'OP_IF', 0x64: 'OP_NOTIF', 0x65: 'OP_VERIF', 0x66: 'OP_VERNOTIF',
  0x67: 'OP_ELSE', 0x68: 'OP_ENDIF', 0x69: 'OP_VERIFY', 0x6a: 'OP_RETURN', 0x6b: 'OP_TOALTSTACK',
  0x6c: 'OP_FROMALTSTACK', 0x6d: 'OP_2DROP', 0x6e: 'OP_2DUP', 0x6f: 'OP_3DUP', 0x70: 'OP_2OVER', 0x71: 'OP_2ROT',
  0x72: 'OP_2SWAP', 0x73: 'OP_IFDUP', 0x74: 'OP_DEPTH', 0x75: 'OP_DROP', 0x76: 'OP_DUP', 0x77: 'OP_NIP',
  0x78: 'OP_OVER', 0x79: 'OP_PICK', 0x7a: 'OP_ROLL', 0x7b: 'OP_ROT', 0x7c: 'OP_SWAP', 0x7d: 'OP_TUCK',
  0x7e: 'OP_CAT', 0x7f: 'OP_SUBSTR', 0x80: 'OP_LEFT', 0x81: 'OP_RIGHT', 0x82: 'OP_SIZE', 0x83: 'OP_INVERT',
  0x84: 'OP_AND', 0x85: 'OP_OR', 0x86: 'OP_XOR', 0x87: 'OP_EQUAL', 0x88: 'OP_EQUALVERIFY', 0x89: 'OP_RESERVED1',
  0x8a: 'OP_RESERVED2', 0x8b: 'OP_1ADD', 0x8c: 'OP_1SUB', 0x8d: 'OP_2MUL', 0x8e: 'OP_2DIV', 0x8f: 'OP_NEGATE',
  0x90: 'OP_ABS', 0x91: 'OP_NOT', 0x92: 'OP_0NOTEQUAL', 0x93: 'OP_ADD', 0x94: 'OP_SUB', 0x95: 'OP_MUL',
  0x96: 'OP_DIV', 0x97: 'OP_MOD', 0x98: 'OP_LSHIFT', 0x99: 'OP_RSHIFT', 0x9a: 'OP_BOOLAND', 0x9b: 'OP_BOOLOR',
  0x9c: 'OP_NUMEQUAL', 0x9d: 'OP_NUMEQUALVERIFY', 0x9e: 'OP_NUMNOTEQUAL', 0x9f: 'OP_LESSTHAN',
  0xa0: 'OP_GREATERTHAN', 0xa1: 'OP_LESSTHANOREQUAL', 0xa2: 'OP_GREATERTHANOREQUAL', 0xa3: 'OP_MIN', 0xa4: 'OP_MAX',
  0xa5: 'OP_WITHIN', 0xa6: 'OP_RIPEMD160', 0xa7: 'OP_SHA1', 0xa8: 'OP_SHA256', 0xa9: 'OP_HASH160',
  0xaa: 'OP_HASH256', 0xab: 'OP_CODESEPARATOR', 0xac: 'OP_CHECKSIG', 0xad: 'OP_CHECKSIGVERIFY',
  0xae: 'OP_CHECKMULTISIG', 0xaf: 'OP_CHECKMULTISIGVERIFY', 0xb0: 'OP_NOP1', 0xb1: 'OP_CHECKLOCKTIMEVERIFY',
  0xb2: 'OP_CHECKSEQUENCEVERIFY', 0xb3: 'OP_NOP4', 0xb4: 'OP_NOP5', 0xb5: 'OP_NOP6', 0xb6: 'OP_NOP7',
  0xb7: 'OP_NOP8', 0xb8: 'OP_NOP9', 0xb9: 'OP_NOP10', 0xba: 'OP_CHECKSIGADD', 0xff: 'OP_INVALIDOPCODE',
};
for (let n = 1; n <= 16; n++) OP_NAMES[0x50 + n] = String(n);

const SIGHASH_NAMES: Record<number, string> = {
  0x01: 'ALL', 0x81: 'ALL|ANYONECANPAY', 0x02: 'NONE', 0x82: 'NONE|ANYONECANPAY', 0x03: 'SINGLE', 0x83: 'SINGLE|ANYONECANPAY',
};

interface Op { op: number; data: Buffer | null }

/** CScript::GetOp over the whole script; `error` when a push runs past the end. */
function ops(script: Buffer): { list: Op[]; error: boolean } {
  const list: Op[] = [];
  for (let pc = 0; pc < script.length;) {
    const op = script[pc++];
    if (op > 0x4e) { list.push({ op, data: null }); continue; }
    let n = op;
    if (op === 0x4c) { if (pc + 1 > script.length) return { list, error: true }; n = script[pc]; pc += 1; }
    else if (op === 0x4d) { if (pc + 2 > script.length) return { list, error: true }; n = script.readUInt16LE(pc); pc += 2; }
    else if (op === 0x4e) { if (pc + 4 > script.length) return { list, error: true }; n = script.readUInt32LE(pc); pc += 4; }
    if (pc + n > script.length) return { list, error: true };
    list.push({ op, data: script.subarray(pc, pc + n) });
    pc += n;
  }
  return { list, error: false };
}

/** CScriptNum(vch, false).getint() for pushes of at most 4 bytes. */
function scriptNumValue(v: Buffer): number {
  if (v.length === 0) return 0;
  let r = 0;
  for (let i = 0; i < v.length; i++) r += v[i] * 2 ** (8 * i);
  const top = v[v.length - 1];
  if (top & 0x80) return -(r - 0x80 * 2 ** (8 * (v.length - 1)));
  return r;
}

/** BIP66 IsValidSignatureEncoding (DER with a trailing sighash byte). */
function isValidSignatureEncoding(sig: Buffer): boolean {
  if (sig.length < 9 || sig.length > 73) return false;
  if (sig[0] !== 0x30 || sig[1] !== sig.length - 3) return false;
  const lenR = sig[3];
  if (5 + lenR >= sig.length) return false;
  const lenS = sig[5 + lenR];
  if (lenR + lenS + 7 !== sig.length) return false;
  if (sig[2] !== 0x02 || lenR === 0 || sig[4] & 0x80) return false;
  if (lenR > 1 && sig[4] === 0x00 && !(sig[5] & 0x80)) return false;
  if (sig[lenR + 4] !== 0x02 || lenS === 0 || sig[lenR + 6] & 0x80) return false;
  if (lenS > 1 && sig[lenR + 6] === 0x00 && !(sig[lenR + 7] & 0x80)) return false;
  return true;
}

/** ScriptToAsmStr; `sighashDecode` for scriptSigs (signatures end in "[ALL]" etc.). */
export function scriptToAsm(script: Buffer, sighashDecode = false): string {
  const { list, error } = ops(script);
  const unspendable = script.length > 0 && script[0] === 0x6a;
  const parts = list.map(({ op, data }) => {
    if (data === null) return OP_NAMES[op] ?? 'OP_UNKNOWN';
    if (data.length <= 4) return String(scriptNumValue(data));
    if (sighashDecode && !unspendable && isValidSignatureEncoding(data)) {
      const name = SIGHASH_NAMES[data[data.length - 1] & 0xff];
      if (name) return `${data.subarray(0, -1).toString('hex')}[${name}]`;
    }
    return data.toString('hex');
  });
  if (error) parts.push('[error]');
  return parts.join(' ');
}

type OutputType =
  | 'nonstandard' | 'anchor' | 'pubkey' | 'pubkeyhash' | 'scripthash' | 'multisig' | 'nulldata'
  | 'witness_v0_scripthash' | 'witness_v0_keyhash' | 'witness_v1_taproot' | 'witness_unknown';

const isPushOnly = (script: Buffer): boolean => {
  const { list, error } = ops(script);
  return !error && list.every(({ op }) => op <= 0x60);
};

function pubkeySizeOk(k: Buffer): boolean {
  if (k.length === 33) return k[0] === 0x02 || k[0] === 0x03;
  if (k.length === 65) return k[0] === 0x04 || k[0] === 0x06 || k[0] === 0x07;
  return false;
}

/** Solver's classification (multisig is not recognised here: the embedded chain never produces it). */
function solve(s: Buffer): OutputType {
  if (s.length === 23 && s[0] === 0xa9 && s[1] === 0x14 && s[22] === 0x87) return 'scripthash';
  if (s.length >= 4 && s.length <= 42 && (s[0] === 0 || (s[0] >= 0x51 && s[0] <= 0x60)) && s[1] === s.length - 2) {
    const version = s[0] === 0 ? 0 : s[0] - 0x50;
    const program = s.length - 2;
    if (version === 0 && program === 20) return 'witness_v0_keyhash';
    if (version === 0 && program === 32) return 'witness_v0_scripthash';
    if (version === 1 && program === 32) return 'witness_v1_taproot';
    if (version === 1 && program === 2 && s[2] === 0x4e && s[3] === 0x73) return 'anchor';
    if (version !== 0) return 'witness_unknown';
    return 'nonstandard';
  }
  if (s.length >= 1 && s[0] === 0x6a && isPushOnly(s.subarray(1))) return 'nulldata';
  if ((s.length === 67 && s[0] === 0x41 || s.length === 35 && s[0] === 0x21) && s[s.length - 1] === 0xac
    && pubkeySizeOk(s.subarray(1, s.length - 1))) return 'pubkey';
  if (s.length === 25 && s[0] === 0x76 && s[1] === 0xa9 && s[2] === 0x14 && s[23] === 0x88 && s[24] === 0xac) return 'pubkeyhash';
  return 'nonstandard';
}

const NETWORKS = { regtest: { ...TEST_NETWORK, bech32: 'bcrt' }, signet: TEST_NETWORK } as const;

function encodeAddress(script: Buffer, network: keyof typeof NETWORKS): string | undefined {
  try {
    return Address(NETWORKS[network]).encode(OutScript.decode(script));
  } catch {
    return undefined; // e.g. witness v2+: not encoded here
  }
}

// secp256k1 field prime: an x-only key is valid when x < p and x³ + 7 is a square mod p.
const P = 2n ** 256n - 2n ** 32n - 977n;
function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}
function isValidXOnly(x: Buffer): boolean {
  const v = BigInt(`0x${x.toString('hex')}`);
  if (v >= P) return false;
  return modPow((v * v * v + 7n) % P, (P - 1n) / 2n, P) === 1n;
}

const INPUT_CHARSET = "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
const CHECKSUM_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATOR = [0xf5dee51989n, 0xa9fdca3312n, 0x1bab10e32dn, 0x3706b1677an, 0x644d626ffdn];

/** BIP380 descriptor checksum appended as "#xxxxxxxx". */
export function withDescriptorChecksum(desc: string): string {
  const symbols: number[] = [];
  let groups: number[] = [];
  for (const c of desc) {
    const v = INPUT_CHARSET.indexOf(c);
    if (v < 0) throw new Error(`descriptor character ${c} not allowed`);
    symbols.push(v & 31);
    groups.push(v >> 5);
    if (groups.length === 3) { symbols.push(groups[0] * 9 + groups[1] * 3 + groups[2]); groups = []; }
  }
  if (groups.length === 1) symbols.push(groups[0]);
  else if (groups.length === 2) symbols.push(groups[0] * 3 + groups[1]);
  let chk = 1n;
  for (const value of [...symbols, 0, 0, 0, 0, 0, 0, 0, 0]) {
    const top = chk >> 35n;
    chk = ((chk & 0x7ffffffffn) << 5n) ^ BigInt(value);
    for (let i = 0; i < 5; i++) if ((top >> BigInt(i)) & 1n) chk ^= GENERATOR[i];
  }
  chk ^= 1n;
  let out = '';
  for (let i = 0; i < 8; i++) out += CHECKSUM_CHARSET[Number((chk >> BigInt(5 * (7 - i))) & 31n)];
  return `${desc}#${out}`;
}

/** ScriptToUniv(script, include_hex=true, include_address=true): asm, desc, hex, address (not for P2PK), type. */
export function scriptPubKeyJson(script: Buffer, network: 'regtest' | 'signet'): Record<string, unknown> {
  const type = solve(script);
  const address = type === 'pubkey' || type === 'nulldata' || type === 'nonstandard' ? undefined : encodeAddress(script, network);
  let desc: string;
  if (type === 'pubkey') desc = `pk(${script.subarray(1, script.length - 1).toString('hex')})`;
  else if (type === 'witness_v1_taproot' && isValidXOnly(script.subarray(2))) desc = `rawtr(${script.subarray(2).toString('hex')})`;
  else if (address !== undefined) desc = `addr(${address})`;
  else desc = `raw(${script.toString('hex')})`;
  return {
    asm: scriptToAsm(script),
    desc: withDescriptorChecksum(desc),
    hex: script.toString('hex'),
    ...(address !== undefined ? { address } : {}),
    type,
  };
}
