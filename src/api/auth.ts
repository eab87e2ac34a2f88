// Who is calling: the operator (one token: config api.operatorToken / HASHHUB_OPERATOR_TOKEN, or generated once
// into <dataDir>/operator.token, mode 0600), an account's owner, or a read-only watcher of an account (tokens
// issued by accounting, stored hashed). `Authorization: Bearer <token>` on every request that needs one. The
// market and routing use the same module for their operator actions and account access.

import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyRequest } from 'fastify';
import { findToken, newToken } from '../accounting/accounts.ts';
import type { Queryable } from '../store/db.ts';
import { ApiError } from './errors.ts';

export type Principal =
  | { role: 'operator' }
  | { role: 'owner'; accountId: bigint; account: string; tokenId: bigint }
  | { role: 'watcher'; accountId: bigint; account: string; tokenId: bigint }
  | { role: 'anonymous' };

export interface OperatorToken {
  token: string;
  /** Where it was read from or written to; null when it came from the config/environment. */
  file: string | null;
  /** Generated just now (print where it is). */
  created: boolean;
  /** Generated just now because the file was there but empty (see resolveOperatorToken). */
  regenerated?: boolean;
}

/** The operator token file cannot be used: the message names the file, why, and what to do (one line at start). */
export class OperatorTokenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OperatorTokenError';
  }
}

function why(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM' ? 'permission denied'
    : code === 'EISDIR' ? 'it is a directory'
      : code === 'ENOSPC' ? 'the disk is full'
        : code === 'EROFS' ? 'the filesystem is read-only'
          : (e as Error).message;
}

/**
 * Write `token` to a new file beside `file` and fsync it, then put it in place with `place` (link: only if there is
 * none; rename: replacing one), so no reader ever sees a half-written or empty token file.
 */
function writeTokenFile(file: string, token: string, place: 'link' | 'rename'): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeFileSync(fd, `${token}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (place === 'link') fs.linkSync(tmp, file);
    else fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * The operator token: the configured one, else <dataDir>/operator.token (created once, mode 0600). A file that
 * cannot be read (a directory, no permission) is an OperatorTokenError naming it.
 *
 * A file that exists but is empty (or only whitespace) is replaced by a new token, atomically, and `regenerated`
 * says so (the banner prints it). Why not refuse to start: an empty file holds no credential anybody could be using
 * (it is what a write cut short by a full disk leaves, and before this the pool ran with an empty token that
 * matched no request), so nothing is lost by replacing it, while refusing would keep a pool down (no miner paid)
 * over a file the pool itself makes; the operator reads the new token from the same file, as on the first start.
 */
export function resolveOperatorToken(opts: { token?: string; dataDir: string }): OperatorToken {
  if (opts.token) {
    if (opts.token.length < 16) throw new OperatorTokenError('api.operatorToken (HASHHUB_OPERATOR_TOKEN) must be at least 16 characters');
    return { token: opts.token, file: null, created: false };
  }
  const file = path.resolve(opts.dataDir, 'operator.token');
  const fix = 'fix or remove it (a new one is made at the next start), or set HASHHUB_OPERATOR_TOKEN';
  const read = (): string | null => {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new OperatorTokenError(`cannot read the operator token ${file} (${why(e)}): ${fix}`, { cause: e });
    }
  };
  const existing = read();
  if (existing) return { token: existing, file, created: false };
  const token = newToken('operator');
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeTokenFile(file, token, existing === null ? 'link' : 'rename');
  } catch (e) {
    // Another process created it first: use theirs (complete: it was linked into place after its fsync).
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      const theirs = read();
      if (theirs) return { token: theirs, file, created: false };
    }
    throw new OperatorTokenError(`cannot write the operator token ${file} (${why(e)}): free the disk or fix the permissions of ${path.dirname(file)}, or set HASHHUB_OPERATOR_TOKEN`, { cause: e });
  }
  return { token, file, created: true, regenerated: existing !== null };
}

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** The token of an Authorization header `Bearer <token>` (the scheme in any case: RFC 9110 §11.1), else null. */
export function bearerToken(header: string): string | null {
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? null;
}

/**
 * How long a looked-up account token is trusted without asking the database again, ms. A page load sends several
 * requests with one token, and every lookup was a round trip on the pool's busy event loop. A revocation through
 * this process's API takes effect at once (tokensChanged); one made by another process within this long.
 */
export const TOKEN_CACHE_MS = 2000;
const TOKEN_CACHE_MAX = 10_000;

export class Auth {
  private readonly operatorHash: Buffer;
  private readonly tokens = new Map<string, { p: Principal; until: number }>();
  /** Counts tokensChanged(): a lookup that started before one does not put its answer in the cache. */
  private generation = 0;

  constructor(private readonly db: Queryable, operatorToken: string, private readonly now: () => number = Date.now) {
    this.operatorHash = sha(operatorToken);
  }

  /** A token was revoked or issued: forget every cached lookup. */
  tokensChanged(): void {
    this.generation++;
    this.tokens.clear();
  }

  /** The caller of a request. A token that is presented but unknown is an error, never "anonymous". */
  async principal(req: Pick<FastifyRequest, 'headers'>): Promise<Principal> {
    const h = req.headers.authorization;
    if (!h) return { role: 'anonymous' };
    const token = bearerToken(h);
    if (!token) throw new ApiError('UNAUTHORIZED', 'Authorization must be "Bearer <token>"');
    const hash = sha(token);
    if (timingSafeEqual(hash, this.operatorHash)) return { role: 'operator' };
    const key = hash.toString('base64');
    const now = this.now();
    const hit = this.tokens.get(key);
    if (hit && hit.until > now) return hit.p;
    const generation = this.generation;
    const t = await findToken(this.db, token);
    // Unknown tokens are not cached: one issued a moment later works at once.
    if (!t) throw new ApiError('UNAUTHORIZED', 'Unknown or revoked token');
    const p: Principal = { role: t.role, accountId: t.accountId, account: t.account, tokenId: t.tokenId };
    // Read before a revocation this process made meanwhile: answered, not kept.
    if (generation !== this.generation) return p;
    if (this.tokens.size >= TOKEN_CACHE_MAX) this.tokens.clear();
    this.tokens.set(key, { p, until: now + TOKEN_CACHE_MS });
    return p;
  }

  async requireOperator(req: Pick<FastifyRequest, 'headers'>): Promise<void> {
    const p = await this.principal(req);
    if (p.role === 'anonymous') throw new ApiError('UNAUTHORIZED', 'The operator token is required');
    if (p.role !== 'operator') throw new ApiError('FORBIDDEN', 'Only the operator may do that');
  }

  /** The caller may read this account's private data (owner, watcher, operator). */
  async requireRead(req: Pick<FastifyRequest, 'headers'>, accountId: bigint): Promise<Principal> {
    const p = await this.principal(req);
    if (p.role === 'operator') return p;
    if (p.role === 'anonymous') throw new ApiError('UNAUTHORIZED', "This account's token (owner or watcher) is required");
    if (p.accountId !== accountId) throw new ApiError('FORBIDDEN', 'This token belongs to another account');
    return p;
  }

  /** The caller may change this account (owner, operator). */
  async requireWrite(req: Pick<FastifyRequest, 'headers'>, accountId: bigint): Promise<Principal> {
    const p = await this.requireRead(req, accountId);
    if (p.role === 'watcher') throw new ApiError('FORBIDDEN', 'A watcher token is read-only');
    return p;
  }
}

/** "who" for logs: the operator, or the token id and role, with the client address. */
export function describePrincipal(p: Principal, ip: string): string {
  if (p.role === 'operator') return `operator from ${ip}`;
  if (p.role === 'anonymous') return `anonymous from ${ip}`;
  return `${p.role} token ${p.tokenId} from ${ip}`;
}
