import { Address, NETWORK, OutScript, TEST_NETWORK } from '@scure/btc-signer';

// Addresses are decoded by a well-kept library (bech32/bech32m/base58check are not ours to hand-write).

export type NetworkName = 'mainnet' | 'testnet' | 'signet' | 'regtest';

const REGTEST = { ...TEST_NETWORK, bech32: 'bcrt' };
const NETWORKS = { mainnet: NETWORK, testnet: TEST_NETWORK, signet: TEST_NETWORK, regtest: REGTEST } as const;

export class AddressError extends Error {}

/** scriptPubKey for any standard address type (P2PKH, P2SH, P2WPKH, P2WSH, P2TR) on the given network. */
export function addressToScript(address: string, network: NetworkName): Buffer {
  const net = NETWORKS[network];
  if (!net) throw new AddressError(`unknown network "${network}"`);
  if (address !== address.trim() || address.length === 0) throw new AddressError(`address "${address}" has stray whitespace or is empty`);
  try {
    return Buffer.from(OutScript.encode(Address(net).decode(address)));
  } catch (e) {
    throw new AddressError(`"${address}" is not a valid ${network} address: ${(e as Error).message}`);
  }
}

export function isValidAddress(address: string, network: NetworkName): boolean {
  try { addressToScript(address, network); return true; } catch { return false; }
}
