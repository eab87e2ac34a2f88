// Minimal script pushes for the coinbase scriptSig (BIP34) and OP_RETURN outputs.

export const OP_0 = 0x00;
export const OP_PUSHDATA1 = 0x4c;
export const OP_1NEGATE = 0x4f;
export const OP_1 = 0x51;
export const OP_16 = 0x60;
export const OP_RETURN = 0x6a;

/** A segwit output script (BIP141: v0 P2WPKH/P2WSH, v1+ such as P2TR): OP_0..OP_16, then one push of 2 to 40 bytes. */
export function isWitnessProgram(script: Uint8Array): boolean {
  if (script.length < 4 || script.length > 42) return false;
  const version = script[0];
  if (version !== OP_0 && (version < OP_1 || version > OP_16)) return false;
  return script[1] === script.length - 2 && script[1] >= 2 && script[1] <= 40;
}

/** Minimal CScriptNum encoding (little-endian, sign bit in the top byte). */
export function scriptNum(n: number): Buffer {
  if (!Number.isSafeInteger(n)) throw new Error(`script number out of range: ${n}`);
  if (n === 0) return Buffer.alloc(0);
  const neg = n < 0;
  let abs = Math.abs(n);
  const out: number[] = [];
  while (abs > 0) { out.push(abs & 0xff); abs = Math.floor(abs / 256); }
  if (out[out.length - 1] & 0x80) out.push(neg ? 0x80 : 0x00);
  else if (neg) out[out.length - 1] |= 0x80;
  return Buffer.from(out);
}

/** A data push with the smallest opcode (no OP_n shortcuts: use pushNumber for numbers). */
export function pushData(data: Uint8Array): Buffer {
  if (data.length <= 75) return Buffer.concat([Buffer.from([data.length]), data]);
  if (data.length <= 0xff) return Buffer.concat([Buffer.from([OP_PUSHDATA1, data.length]), data]);
  throw new Error(`push of ${data.length} bytes not supported here`);
}

/**
 * BIP34 height push as Bitcoin Core writes it (`CScript() << nHeight`): OP_0 / OP_1..OP_16 for small
 * heights, otherwise a minimal CScriptNum push. Core's validation compares against this exact prefix.
 */
export function pushHeight(height: number): Buffer {
  if (!Number.isSafeInteger(height) || height < 0) throw new Error(`bad height ${height}`);
  if (height === 0) return Buffer.from([OP_0]);
  if (height <= 16) return Buffer.from([OP_1 + height - 1]);
  return pushData(scriptNum(height));
}
