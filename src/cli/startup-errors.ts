import fs from 'node:fs';
import path from 'node:path';
import { SchemaBehindError } from '../store/index.ts';
import { LockHeldError } from '../store/lockfile.ts';
import { OperatorTokenError } from '../api/auth.ts';

// Expected start-up failures (a port in use, a data directory that cannot be used, a lock held by another
// process, a database that refuses the login) are the operator's to fix, not bugs: they get one line naming the
// problem and the fix, without a stack trace. Anything not recognised here is a bug and keeps its stack.

export class StartupError extends Error {
  constructor(readonly problem: string, readonly fix: string, options?: { cause?: unknown }) {
    super(`${problem}: ${fix}`, options);
    this.name = 'StartupError';
  }
}

type Errno = NodeJS.ErrnoException & { code?: string };

/** Fails with a StartupError unless `dir` exists (created if needed) and this process can write in it. */
export function ensureWritableDir(dir: string, what: string, setting: string): void {
  const abs = path.resolve(dir);
  try {
    fs.mkdirSync(abs, { recursive: true });
    const probe = path.join(abs, `.write-test-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe, { force: true });
  } catch (e) {
    const code = (e as Errno).code;
    const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied'
      : code === 'EROFS' ? 'the filesystem is read-only'
        : code === 'ENOTDIR' || code === 'EEXIST' ? 'a file of that name is in the way'
          : code === 'ENOSPC' ? 'the disk is full'
            : (e as Error).message;
    throw new StartupError(`cannot use the ${what} ${abs} (${why})`, `set ${setting} to a directory this user can write`, { cause: e });
  }
}

/** The host setting beside a port setting: HASHHUB_API_PORT → HASHHUB_API_HOST; Stratum's list of port settings → its host. */
function hostSetting(portSetting: string): string {
  if (portSetting.startsWith('HASHHUB_STRATUM_PORT')) return 'HASHHUB_STRATUM_HOST; TLS: stratum.tls.host';
  if (portSetting === 'HASHHUB_EMBEDDED_PORT') return 'node.embedded.host';
  return portSetting.replace(/PORT/g, 'HOST');
}

/** A listen() failure as a StartupError naming the port, the setting to change and why. */
export function listenError(err: unknown, what: string, setting: string): unknown {
  const e = err as Errno & { host?: string; port?: number };
  const where = e.host !== undefined && e.port !== undefined ? `${e.host}:${e.port}` : /(\S+:\d+)/.exec(e.message ?? '')?.[1] ?? 'its port';
  switch (e.code) {
    case 'EADDRINUSE':
      return new StartupError(`cannot listen for ${what} on ${where}: the port is already in use (another hashhub, or another program)`, `stop that program, or choose another port (${setting})`, { cause: err });
    case 'EACCES':
      return new StartupError(`not allowed to listen for ${what} on ${where} (ports below 1024 need privileges)`, `choose a port above 1023 (${setting})`, { cause: err });
    case 'EADDRNOTAVAIL':
      return new StartupError(`cannot listen for ${what} on ${where}: no such address on this machine`, `set the host to an address of this machine or 0.0.0.0 (${hostSetting(setting)})`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NONAME': {
      // getaddrinfo: the host to listen on is a name that does not resolve (or DNS is not answering).
      const host = (e as Errno & { hostname?: string }).hostname ?? e.host ?? /getaddrinfo \S+ (\S+)/.exec(e.message ?? '')?.[1] ?? 'its host';
      const why = e.code === 'EAI_AGAIN' ? 'the name server did not answer (getaddrinfo EAI_AGAIN)' : `no such host name (getaddrinfo ${e.code})`;
      return new StartupError(`cannot listen for ${what} on ${host}: ${why}`, `set the host to an address or name of this machine, or 0.0.0.0 for all (${hostSetting(setting)})`, { cause: err });
    }
    default:
      return err;
  }
}

const PG_LOGIN = new Set(['28P01', '28000']);

/** One line for an expected failure; null when err is not one (then it is a bug: show its stack). */
export function explainStartupError(err: unknown): string | null {
  if (err instanceof StartupError) return `${err.problem}: ${err.fix}`;
  if (err instanceof LockHeldError) {
    const setting = err.what.startsWith('the spool') ? 'HASHHUB_SPOOL_DIR' : 'HASHHUB_DATA_DIR';
    return err.pid === null
      ? `${err.what} is already open in this process: give each pool its own data directory (${setting})`
      : `${err.what} is in use by process ${err.pid} (lock ${err.file}): stop that process first, or give this pool its own data directory (${setting})`;
  }
  if (err instanceof SchemaBehindError) return err.message;
  if (err instanceof OperatorTokenError) return err.message;
  // A database error may come wrapped (migrate: "migration 001_schema failed: …", the driver's error as its cause).
  const pg = pgCause(err);
  if (pg && PG_LOGIN.has(pg.code)) return `the database refused the login (${pg.message}): check the user and password in DATABASE_URL`;
  if (pg?.code === '3D000') return `${pg.message}: create it (e.g. createdb) or fix the database name in DATABASE_URL`;
  const code = (err as Errno | null)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    // A host name that does not resolve, from a place that did not name its setting (listenError does).
    const host = (err as Errno & { hostname?: string }).hostname ?? 'a host name';
    return `${host} does not resolve (getaddrinfo ${code}): check the host names in the configuration (HASHHUB_STRATUM_HOST, HASHHUB_API_HOST, HASHHUB_NODE_URLS, DATABASE_URL)`;
  }
  return null;
}

/** The first error along the cause chain (the error itself first) with one of the PostgreSQL codes explained here. */
function pgCause(err: unknown): { code: string; message: string } | null {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++, e = (e as Error).cause) {
    const code = (e as Errno).code;
    if (typeof code === 'string' && (PG_LOGIN.has(code) || code === '3D000')) return { code, message: e.message };
  }
  return null;
}
