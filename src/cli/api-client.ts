import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type Config, loadConfig } from './config.ts';
import { CliError } from './errors.ts';

// The CLI commands that work through a running pool's REST API (`hashhub market …`, `hashhub route …`): where
// the API is, which token to send, and one line (CliError) for every way a call can fail.

export interface ApiTarget {
  /** API base URL (--api); without it, see apiBaseUrl. */
  api?: string;
  /** The config file (--config) that names the API's host and port. */
  config?: string;
  /** The token, already chosen by the command. */
  token?: string;
  /** With the operator token: the account to act for (x-hashhub-account). */
  account?: string;
}

/**
 * The API's base URL: --api, else HASHHUB_API_URL, else the configured api.host and api.port (HASHHUB_API_HOST /
 * HASHHUB_API_PORT, the config file), a wildcard host reached on 127.0.0.1. Every command that talks to the API
 * finds it this way, so a token goes to the pool's API and not to whatever listens on a default port.
 */
export function apiBaseUrl(api: string | undefined, config: () => Config): string {
  const given = api ?? process.env.HASHHUB_API_URL;
  if (given !== undefined) return given.replace(/\/+$/, '');
  const { host, port } = config().api;
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

/** The operator token file of the config's data dir (<dataDir>/operator.token), if there is one. */
export function operatorTokenFromConfig(configFile: string | undefined): string | undefined {
  try {
    const file = path.join(loadConfig({ file: configFile }).database.dataDir, 'operator.token');
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  } catch {
    // no usable config: no token from it
  }
  return undefined;
}

/** One REST call; the parsed JSON answer, or a CliError naming the API's error code and message. */
export async function apiCall(t: ApiTarget, method: string, url: string, body?: unknown): Promise<unknown> {
  const base = apiBaseUrl(t.api, () => loadConfig({ file: t.config }));
  const headers: Record<string, string> = {};
  if (t.token) headers.authorization = `Bearer ${t.token}`;
  if (t.account) headers['x-hashhub-account'] = t.account;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(base + url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
  } catch (e) {
    throw new CliError(`cannot reach the API at ${base}: ${(e as Error).cause ? ((e as Error).cause as Error).message : (e as Error).message}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    throw new CliError(`${method} ${url}: HTTP ${res.status}, not JSON`);
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new CliError(`${err?.code ?? `HTTP ${res.status}`}: ${err?.message ?? text.slice(0, 200)}`);
  }
  return json;
}
