import { createRequire } from 'node:module';
import path from 'node:path';

// The share path's SHA-256 in native code with the x86 SHA extensions (native/sha256.c, built by `npm install`
// when a C compiler and Node's headers are there). Where it is not built, the CPU lacks SHA-NI, or
// HASHHUB_NATIVE_SHA=0, everything runs on the JS words (sha256-words.ts) with the same results — the property
// test in test/sha256-native.test.ts holds the two to each other.

export interface NativeSha {
  /** sha256d(coinbase) from the midstate of its first `from` bytes, then up the branch (8 words per level): the root's 32 bytes into out. */
  merkleRoot(mid: Int32Array, coinbase: Uint8Array, from: number, branch: Int32Array, out: Uint8Array): void;
  /** sha256d(msg) into out[0..32). */
  sha256d(msg: Uint8Array, out: Uint8Array): void;
  /** One merkle level in place (8 words per node): see sha256dPairLevel. */
  pairLevel(w: Int32Array, from: number, len: number): void;
}

export const NATIVE_SHA_PATH = path.resolve(import.meta.dirname, '..', '..', 'native', 'build', 'Release', 'hashhub_sha.node');

function load(): NativeSha | null {
  if (process.env.HASHHUB_NATIVE_SHA === '0') return null;
  try {
    const m = createRequire(import.meta.url)(NATIVE_SHA_PATH) as NativeSha & { supported: boolean };
    // An addon built from an older source (no pairLevel) is not used: npm install rebuilds it.
    return m.supported && typeof m.pairLevel === 'function' ? m : null;
  } catch {
    return null;
  }
}

/** The native functions, or null (JS words are used). */
export const nativeSha: NativeSha | null = load();
