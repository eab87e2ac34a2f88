// The dashboard's hash routes (#/pool, #/account/<name>, #/market, #/operator), parsed without throwing.

/** "#/account/a%2Fb" → ['account', 'a/b']. A part that is not valid percent-encoding (a hand-typed or
 *  truncated link such as "#/account/50%off") is kept as typed instead of throwing (decodeURIComponent's
 *  URIError would otherwise blank the whole page). */
export function parseHash(hash: string): string[] {
  return hash.replace(/^#\/?/, '').split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
}

/** Account names as the pool and API take them (src/pool/pool.ts ACCOUNT_RE, the API's params.account). */
export const ACCOUNT_NAME = /^[A-Za-z0-9_-]{1,100}$/;
