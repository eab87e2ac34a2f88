import { Address, NETWORK, OutScript, TEST_NETWORK } from '@scure/btc-signer';

// Addresses are decoded by a well-kept library (bech32/bech32m/base58check are not ours to hand-write).

export type NetworkName = 'mainnet' | 'testnet' | 'signet' | 'regtest';

const REGTEST = { ...TEST_NETWORK, bech32: 'bcrt' };
const NETWORKS = { mainnet: NETWORK, testnet: TEST_NETWORK, signet: TEST_NETWORK, regtest: REGTEST } as const;

/** What a user sees for each network's addresses, for messages. */
const LOOKS = {
  mainnet: 'bc1…, 1… or 3…',
  testnet: 'tb1…, m…, n… or 2…',
  signet: 'tb1…, m…, n… or 2…',
  regtest: 'bcrt1…, m…, n… or 2…',
} as const satisfies Record<NetworkName, string>;

export class AddressError extends Error {}

/**
 * The networks an address decodes on (testnet and signet share their formats; regtest shares testnet's base58
 * prefixes). Empty when it is not a valid address anywhere.
 */
export function addressNetworks(address: string): NetworkName[] {
  const out: NetworkName[] = [];
  for (const name of Object.keys(NETWORKS) as NetworkName[]) {
    try {
      Address(NETWORKS[name]).decode(address);
      out.push(name);
    } catch { /* not this one */ }
  }
  return out;
}

/** scriptPubKey for any standard address type (P2PKH, P2SH, P2WPKH, P2WSH, P2TR) on the given network. */
export function addressToScript(address: string, network: NetworkName): Buffer {
  const net = NETWORKS[network];
  if (!net) throw new AddressError(`unknown network "${network}"`);
  if (address !== address.trim() || address.length === 0) throw new AddressError(`address "${address}" has stray whitespace or is empty`);
  try {
    return Buffer.from(OutScript.encode(Address(net).decode(address)));
  } catch (e) {
    // The decoder's own words ("Unknown letter "0"", "Invalid address prefix") do not say what is wrong when the
    // address is fine but for another network, the usual mistake: say which network it is for.
    const elsewhere = addressNetworks(address).filter((n) => n !== network);
    if (elsewhere.length > 0) {
      const names = elsewhere.filter((n) => n !== 'signet' || !elsewhere.includes('testnet')).map((n) => (n === 'testnet' && elsewhere.includes('signet') ? 'testnet/signet' : n));
      throw new AddressError(`"${address}" is a ${names.join(' or ')} address, but this pool runs on ${network} (${network} addresses look like ${LOOKS[network]})`);
    }
    throw new AddressError(`"${address}" is not a valid ${network} address: ${(e as Error).message}`);
  }
}

export function isValidAddress(address: string, network: NetworkName): boolean {
  try { addressToScript(address, network); return true; } catch { return false; }
}
