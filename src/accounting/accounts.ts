import { createHash, randomBytes } from 'node:crypto';
import { type NetworkName, isValidAddress } from '../chain/index.ts';
import type { Queryable } from '../store/db.ts';
import { ConflictError, NotFoundError, ValidationError } from './errors.ts';

// Accounts and their tokens. An owner token is issued when an account is created (shown once, stored as a
// SHA-256: tokens are 256 random bits, so a slow hash would add nothing); owners issue read-only watcher tokens.
// An account that already exists because it mined has no owner yet: only the operator can create its owner
// token (anyone could otherwise claim a miner's balance).

export type TokenRole = 'owner' | 'watcher';

/** Same rule as the pool's authorize(): what an account name can be. */
export const ACCOUNT_NAME = /^[A-Za-z0-9_-]{1,100}$/;

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function newToken(role: TokenRole | 'operator'): string {
  const prefix = role === 'owner' ? 'hho_' : role === 'watcher' ? 'hhw_' : 'hhop_';
  return prefix + randomBytes(32).toString('base64url');
}

export async function accountIdByName(q: Queryable, name: string): Promise<bigint | null> {
  const r = await q.query<{ id: string }>('SELECT id::text FROM accounts WHERE name = $1 AND id <> 0', [name]);
  return r.rows.length ? BigInt(r.rows[0].id) : null;
}

export async function issueToken(q: Queryable, accountId: bigint, role: TokenRole, label: string | null): Promise<{ id: bigint; token: string }> {
  if (label !== null && label.length > 100) throw new ValidationError('label', 'at most 100 characters');
  const token = newToken(role);
  const r = await q.query<{ id: string }>(
    'INSERT INTO account_tokens (account_id, role, token_hash, label) VALUES ($1::bigint, $2, $3, $4) RETURNING id::text',
    [accountId.toString(), role, hashToken(token), label],
  );
  return { id: BigInt(r.rows[0].id), token };
}

export async function findToken(q: Queryable, token: string): Promise<{ tokenId: bigint; accountId: bigint; account: string; role: TokenRole } | null> {
  if (!/^hh[ow]_[A-Za-z0-9_-]{43}$/.test(token)) return null;
  const r = await q.query<{ id: string; account_id: string; name: string; role: TokenRole }>(
    `SELECT t.id::text, t.account_id::text, a.name, t.role FROM account_tokens t JOIN accounts a ON a.id = t.account_id
     WHERE t.token_hash = $1 AND t.revoked_at IS NULL`,
    [hashToken(token)],
  );
  const row = r.rows[0];
  return row ? { tokenId: BigInt(row.id), accountId: BigInt(row.account_id), account: row.name, role: row.role } : null;
}

export async function listTokens(q: Queryable, accountId: bigint): Promise<{ id: bigint; role: TokenRole; label: string | null; createdAt: string; revokedAt: string | null }[]> {
  const r = await q.query<{ id: string; role: TokenRole; label: string | null; created_at: Date | string; revoked_at: Date | string | null }>(
    'SELECT t.id::text AS id, t.role, t.label, t.created_at, t.revoked_at FROM account_tokens t WHERE t.account_id = $1::bigint ORDER BY t.id', [accountId.toString()]);
  return r.rows.map((t) => ({
    id: BigInt(t.id), role: t.role, label: t.label, createdAt: new Date(t.created_at).toISOString(), revokedAt: t.revoked_at ? new Date(t.revoked_at).toISOString() : null,
  }));
}

export async function revokeToken(q: Queryable, accountId: bigint, tokenId: bigint): Promise<void> {
  const r = await q.query('UPDATE account_tokens SET revoked_at = now() WHERE id = $1::bigint AND account_id = $2::bigint AND revoked_at IS NULL',
    [tokenId.toString(), accountId.toString()]);
  if (r.rowCount === 0) throw new NotFoundError(`no live token ${tokenId} on this account`);
}

/**
 * Create an account with its owner token, in the caller's transaction. `byOperator` may also give an owner token to
 * an account that exists already (it mined before registering) and has none.
 *
 * Anyone else (open registration) only creates a new name, and never one that is an address of the pool's
 * `network`: such an account pays out to its own name by default, so whoever held its owner token before the
 * address's miner first mined could set another payout address and take that miner's earnings. Its owner token
 * comes from the operator.
 */
export async function createAccount(q: Queryable, name: string, byOperator: boolean, network?: NetworkName): Promise<{ accountId: bigint; ownerToken: string; existed: boolean }> {
  if (typeof name !== 'string' || !ACCOUNT_NAME.test(name)) throw new ValidationError('name', 'use 1 to 100 letters, digits, _ or -');
  if (!byOperator && network !== undefined && isValidAddress(name, network)) {
    throw new ConflictError(`account ${name} is a Bitcoin address: it is created by mining to it and pays out to it; ask the pool operator for its owner token`);
  }
  let id: bigint;
  let existed = false;
  // The insert decides who creates a name: two registrations at once (or one beside the account's first stored
  // shares) find it missing, and only one insert returns a row; the other waits for it and gets none.
  const inserted = await q.query<{ id: string }>('INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id::text AS id', [name]);
  if (inserted.rows.length > 0) {
    id = BigInt(inserted.rows[0].id);
  } else {
    existed = true;
    // Locked: a second operator call at the same time waits here and then sees this one's owner token.
    const row = await q.query<{ id: string }>('SELECT id::text AS id FROM accounts WHERE name = $1 FOR UPDATE', [name]);
    id = BigInt(row.rows[0].id);
    const owners = await q.query("SELECT 1 FROM account_tokens WHERE account_id = $1::bigint AND role = 'owner' AND revoked_at IS NULL", [id.toString()]);
    if (owners.rows.length > 0) throw new ConflictError(`account ${name} already has an owner`);
    if (!byOperator) throw new ConflictError(`account ${name} exists already (it has mined): ask the pool operator for its owner token`);
  }
  const { token } = await issueToken(q, id, 'owner', 'created with the account');
  return { accountId: id, ownerToken: token, existed };
}
