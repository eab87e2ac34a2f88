// chain: Bitcoin primitives. Imports nothing of hashhub's.
export * from './bytes.ts';
export * from './hash.ts';
export * from './sha256-words.ts';
export { nativeSha, NATIVE_SHA_PATH, type NativeSha } from './sha256-native.ts';
export * from './target.ts';
export * from './tx.ts';
export * from './block.ts';
export * from './merkle.ts';
export * from './script.ts';
export * from './witness.ts';
export * from './coinbase.ts';
export * from './address.ts';
