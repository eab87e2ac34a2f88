import { AddressError, type NetworkName, addressToScript, isValidAddress } from '../chain/index.ts';
import type { Queryable } from '../store/db.ts';
import { ValidationError } from './errors.ts';
import { type BooksFrame, periodStart } from './params.ts';
import { MAX_SATS, SCHEMES, type Scheme } from './types.ts';

// Per-account settings: payout address (validated for the network, stored exactly as validated), threshold
// (at least the dust limit of the address type and the operator's minimum), scheme (from the operator's allowed
// list; a change takes effect at the next credit period). Every address change is logged with time and source
// and delays the next payout. Bad input is refused with the field named and nothing stored.

export interface SettingsPolicy {
  network: NetworkName;
  /** Lowest threshold an owner may set (never below the address type's dust limit). */
  minThreshold: bigint;
  defaultThreshold: bigint;
  allowedSchemes: readonly Scheme[];
}

export interface AccountSettings {
  accountId: bigint;
  account: string;
  /** The address set by the owner, or null. */
  payoutAddress: string | null;
  /** Where payouts go: the set address, or the account name when it is an address; null = nowhere yet. */
  effectiveAddress: string | null;
  payoutAddressChangedAt: string | null;
  /** The owner's threshold, or null for the operator's default. */
  threshold: bigint | null;
  effectiveThreshold: bigint;
  scheme: Scheme;
  /** A scheme change waiting for the next period, if any. */
  nextScheme: { scheme: Scheme; from: string } | null;
}

export interface SettingsChange {
  payoutAddress?: string | null;
  threshold?: bigint | number | string | null;
  scheme?: string;
}

/**
 * Dust limit of an output (Bitcoin Core's GetDustThreshold at the default 3 sat/vB dust relay fee): the cost of
 * spending it. P2PKH 546, P2SH 540, P2WPKH 294, P2WSH and P2TR 330.
 */
export function dustLimit(script: Uint8Array): bigint {
  const len = script.length;
  const isWitness = len >= 4 && len <= 42 && (script[0] === 0 || (script[0] >= 0x51 && script[0] <= 0x60)) && script[1] === len - 2;
  // serialized output = 8 (value) + varint + script; spend = 148 bytes legacy, 67 vbytes (32+4+1+107/4+4) witness
  const outSize = 8 + 1 + len;
  const spend = isWitness ? 67 : 148;
  return BigInt((outSize + spend) * 3);
}

/** Validate a payout address for the network: no whitespace anywhere, a good checksum, the right network. */
export function validatePayoutAddress(raw: unknown, network: NetworkName, field = 'payoutAddress'): { address: string; script: Buffer } {
  if (typeof raw !== 'string') throw new ValidationError(field, 'must be a string');
  if (raw.length === 0) throw new ValidationError(field, 'is empty');
  if (raw !== raw.trim()) throw new ValidationError(field, `"${raw}" has leading or trailing whitespace; send the address alone`);
  if (/\s/.test(raw)) throw new ValidationError(field, `"${raw}" contains whitespace`);
  if (raw.length > 90) throw new ValidationError(field, 'is too long to be an address');
  try {
    return { address: raw, script: addressToScript(raw, network) };
  } catch (e) {
    const why = e instanceof AddressError ? e.message : String(e);
    // Say which network it does belong to, when it is a valid address elsewhere: the commonest mistake.
    const other = (['mainnet', 'testnet', 'regtest'] as const).find((n) => n !== network && isValidAddress(raw, n));
    throw new ValidationError(field, other ? `"${raw}" is a ${other} address; this pool runs on ${network}` : why);
  }
}

export function parseThreshold(raw: unknown, field = 'threshold'): bigint {
  let sats: bigint;
  if (typeof raw === 'bigint') sats = raw;
  else if (typeof raw === 'number' && Number.isSafeInteger(raw)) sats = BigInt(raw);
  else if (typeof raw === 'string' && /^\d{1,19}$/.test(raw)) sats = BigInt(raw);
  else throw new ValidationError(field, `${JSON.stringify(raw)} is not a whole number of satoshis`);
  // 19 digits pass the pattern but not the database's bigint: a threshold no balance can reach is refused here.
  if (sats > MAX_SATS) throw new ValidationError(field, `${sats} sat is above 21,000,000 BTC (2,100,000,000,000,000 sat)`);
  return sats;
}

export function parseScheme(raw: unknown, allowed: readonly Scheme[], field = 'scheme'): Scheme {
  if (typeof raw !== 'string' || !SCHEMES.includes(raw as Scheme)) {
    throw new ValidationError(field, `unknown scheme ${JSON.stringify(raw)}: use one of ${SCHEMES.join(', ')}`);
  }
  if (!allowed.includes(raw as Scheme)) throw new ValidationError(field, `scheme "${raw}" is not offered by this pool (offered: ${allowed.join(', ')})`);
  return raw as Scheme;
}

interface Row {
  id: string; name: string; payout_address: string | null; changed_at: Date | string | null; threshold: string | null;
}

/** Where an account's payouts go: the set address, or its name when that is an address of the network; null = nowhere. */
export function effectiveAddressOf(name: string, payoutAddress: string | null, network: NetworkName): string | null {
  if (payoutAddress) return payoutAddress;
  return isValidAddress(name, network) ? name : null;
}

export class Settings {
  constructor(private readonly policy: SettingsPolicy) {}

  get network(): NetworkName { return this.policy.network; }

  /** Where an account's payouts go: the set address, or its name when that is an address of the network. */
  effectiveAddress(name: string, payoutAddress: string | null): string | null {
    return effectiveAddressOf(name, payoutAddress, this.policy.network);
  }

  async read(q: Queryable, frame: BooksFrame, accountId: bigint, now: number): Promise<AccountSettings | null> {
    const nowIso = new Date(Math.max(now, frame.startedAt)).toISOString();
    // One round trip (the dashboard reads this under load): the account's row and its scheme now and next.
    const r = await q.query<Row & { cur: Scheme | null; next: Scheme | null; next_from: Date | string | null }>(
      `SELECT a.id::text, a.name, s.payout_address, s.payout_address_changed_at AS changed_at, s.threshold::text AS threshold,
         hashhub_scheme_at($1::bigint, $2::timestamptz) AS cur,
         (SELECT scheme FROM account_schemes WHERE account_id = $1::bigint AND effective_from > $2::timestamptz ORDER BY effective_from DESC LIMIT 1) AS next,
         (SELECT effective_from FROM account_schemes WHERE account_id = $1::bigint AND effective_from > $2::timestamptz ORDER BY effective_from DESC LIMIT 1) AS next_from
       FROM accounts a LEFT JOIN account_settings s ON s.account_id = a.id WHERE a.id = $1::bigint AND a.id <> 0`,
      [accountId.toString(), nowIso],
    );
    if (r.rows.length === 0) return null;
    const row = r.rows[0];
    const threshold = row.threshold === null ? null : BigInt(row.threshold);
    return {
      accountId,
      account: row.name,
      payoutAddress: row.payout_address,
      effectiveAddress: this.effectiveAddress(row.name, row.payout_address),
      payoutAddressChangedAt: row.changed_at ? new Date(row.changed_at).toISOString() : null,
      threshold,
      effectiveThreshold: threshold ?? this.policy.defaultThreshold,
      scheme: row.cur ?? 'pplns',
      nextScheme: row.next ? { scheme: row.next, from: new Date(row.next_from as string).toISOString() } : null,
    };
  }

  /**
   * Validate every field first (nothing is stored when one is bad), then apply: the address with a log line, the
   * threshold, the scheme from the next period boundary. `source` says who did it (for the log).
   */
  async update(q: Queryable, frame: BooksFrame, accountId: bigint, change: SettingsChange, source: string, now: number): Promise<void> {
    let address: string | null | undefined;
    let threshold: bigint | null | undefined;
    let scheme: Scheme | undefined;
    if (change.payoutAddress !== undefined) {
      if (change.payoutAddress === null) address = null;
      else {
        const v = validatePayoutAddress(change.payoutAddress, this.policy.network);
        // Payouts leave the pool; one to a deposit address of this pool's wallet comes back as a deposit, credited to a
        // balance that is paid out again: round after round, each one's network fee paid by the pool. Matched on the
        // script, as deposits are (a wallet may print one address two ways).
        const ours = await q.query('SELECT 1 FROM deposit_addresses WHERE script = $1', [v.script.toString('hex')]);
        if (ours.rows.length > 0) {
          throw new ValidationError('payoutAddress', `"${v.address}" is a deposit address of this pool: payouts must go to an address outside it`);
        }
        address = v.address;
      }
    }
    const name = (await q.query<{ name: string }>('SELECT name FROM accounts WHERE id = $1::bigint', [accountId.toString()])).rows[0]?.name;
    if (name === undefined) throw new ValidationError('account', 'unknown account');
    if (change.threshold !== undefined && change.threshold !== null) {
      threshold = parseThreshold(change.threshold);
      if (threshold < this.policy.minThreshold) {
        throw new ValidationError('threshold', `${threshold} sat is below this pool's minimum of ${this.policy.minThreshold} sat`);
      }
      const addr = address !== undefined ? address : (await this.read(q, frame, accountId, now))?.effectiveAddress ?? null;
      if (addr) {
        const dust = dustLimit(addressToScript(addr, this.policy.network));
        if (threshold < dust) throw new ValidationError('threshold', `${threshold} sat is below the dust limit (${dust} sat) of the payout address`);
      }
    } else if (change.threshold === null) {
      threshold = null;
    }
    if (change.scheme !== undefined) {
      scheme = parseScheme(change.scheme, this.policy.allowedSchemes);
      const addr = address !== undefined ? address : this.effectiveAddress(name, (await this.read(q, frame, accountId, now))?.payoutAddress ?? null);
      if (scheme === 'solo' && !addr) {
        throw new ValidationError('scheme', 'SOLO pays the finder in the coinbase: set a payout address first (or mine with an address as the account name)');
      }
    }

    await q.query('INSERT INTO account_settings (account_id) VALUES ($1::bigint) ON CONFLICT (account_id) DO NOTHING', [accountId.toString()]);
    if (address !== undefined) {
      const old = await q.query<{ payout_address: string | null }>('SELECT payout_address FROM account_settings WHERE account_id = $1::bigint FOR UPDATE', [accountId.toString()]);
      const prev = old.rows[0]?.payout_address ?? null;
      if (prev !== address) {
        await q.query(
          `UPDATE account_settings SET payout_address = $2, payout_address_changed_at = $3::timestamptz, updated_at = now() WHERE account_id = $1::bigint`,
          [accountId.toString(), address, new Date(now).toISOString()],
        );
        await q.query(
          'INSERT INTO payout_address_changes (account_id, old_address, new_address, changed_at, source) VALUES ($1::bigint, $2, $3, $4::timestamptz, $5)',
          [accountId.toString(), prev, address, new Date(now).toISOString(), source],
        );
      }
    }
    if (threshold !== undefined) {
      await q.query('UPDATE account_settings SET threshold = $2::bigint, updated_at = now() WHERE account_id = $1::bigint',
        [accountId.toString(), threshold === null ? null : threshold.toString()]);
    }
    if (scheme !== undefined) {
      const from = Math.max(frame.startedAt, periodStart(now, frame.periodSeconds) + frame.periodSeconds * 1000);
      await q.query(
        `INSERT INTO account_schemes (account_id, effective_from, scheme, source) VALUES ($1::bigint, $2::timestamptz, $3, $4)
         ON CONFLICT (account_id, effective_from) DO UPDATE SET scheme = EXCLUDED.scheme, source = EXCLUDED.source, changed_at = now()`,
        [accountId.toString(), new Date(from).toISOString(), scheme, source],
      );
    }
  }

  /** The payout address changes of an account, newest first. */
  async addressLog(q: Queryable, accountId: bigint, limit = 50): Promise<{ oldAddress: string | null; newAddress: string | null; changedAt: string; source: string }[]> {
    const r = await q.query<{ old_address: string | null; new_address: string | null; changed_at: Date | string; source: string }>(
      'SELECT old_address, new_address, changed_at, source FROM payout_address_changes WHERE account_id = $1::bigint ORDER BY changed_at DESC, id DESC LIMIT $2',
      [accountId.toString(), limit],
    );
    return r.rows.map((x) => ({ oldAddress: x.old_address, newAddress: x.new_address, changedAt: new Date(x.changed_at).toISOString(), source: x.source }));
  }
}

/** The scriptPubKey payouts (and a SOLO coinbase) would pay for an account, or null when it has no address. */
export async function payoutScriptOf(q: Queryable, accountId: bigint, network: NetworkName): Promise<Buffer | null> {
  const r = await q.query<{ name: string; payout_address: string | null }>(
    'SELECT a.name, s.payout_address FROM accounts a LEFT JOIN account_settings s ON s.account_id = a.id WHERE a.id = $1::bigint',
    [accountId.toString()],
  );
  const row = r.rows[0];
  if (!row) return null;
  const addr = effectiveAddressOf(row.name, row.payout_address, network);
  return addr ? addressToScript(addr, network) : null;
}
