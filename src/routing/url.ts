import { RouteError } from './errors.ts';

export interface UpstreamAddress {
  tls: boolean;
  host: string;
  port: number;
}

/** stratum+tcp://host:port or stratum+ssl://host:port (also stratum+tls://); anything else is a RouteError. */
export function parseUpstreamUrl(url: string): UpstreamAddress {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(\[[^\]]+\]|[^/:?#@]+):(\d{1,5})\/?$/i.exec(url.trim());
  if (!m) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !/^stratum\+(tcp|ssl|tls):\/\//i.test(url)) {
      throw new RouteError('unknown-scheme', `unknown scheme in "${url.slice(0, 200)}": use stratum+tcp:// or stratum+ssl://`);
    }
    throw new RouteError('bad-url', `"${url.slice(0, 200)}" is not stratum+tcp://host:port or stratum+ssl://host:port`);
  }
  const scheme = m[1].toLowerCase();
  if (scheme !== 'stratum+tcp' && scheme !== 'stratum+ssl' && scheme !== 'stratum+tls') {
    throw new RouteError('unknown-scheme', `unknown scheme "${m[1]}": use stratum+tcp:// or stratum+ssl://`);
  }
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new RouteError('bad-url', `port ${m[3]} out of range in "${url.slice(0, 200)}"`);
  const host = m[2].startsWith('[') ? m[2].slice(1, -1) : m[2];
  return { tls: scheme !== 'stratum+tcp', host, port };
}
