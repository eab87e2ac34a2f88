// The dashboard's only way to the pool: the public REST API and WebSocket feed. Tokens live in memory for the
// tab's lifetime (a module variable), never in localStorage or sessionStorage: an owner token changes payout
// addresses, and storage survives the tab and is readable by any script on the origin.

export class ApiFailure extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const tokens = new Map<string, string>();

/** Keep a token for this tab only (kind: 'account:<name>', 'market', 'operator'). Empty forgets it. */
export function setToken(kind: string, token: string): void {
  if (token.trim()) tokens.set(kind, token.trim());
  else tokens.delete(kind);
}
export function getToken(kind: string): string | undefined {
  return tokens.get(kind);
}

export async function api<T>(path: string, opts: { token?: string; method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method: opts.method ?? 'GET', headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), credentials: 'omit', cache: 'no-store' });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiFailure(res.status, e?.code ?? String(res.status), e?.message ?? res.statusText);
  }
  return data as T;
}

/** A WebSocket that reconnects (1 s, 2 s, … 15 s) and hands each JSON message to onMessage. Returns close(). */
export function feed(path: string, onMessage: (m: { type: string; [k: string]: unknown }) => void, onState?: (open: boolean) => void): () => void {
  let ws: WebSocket | null = null;
  let closed = false;
  let delay = 1000;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const open = () => {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
    ws = new WebSocket(url);
    ws.onopen = () => { delay = 1000; onState?.(true); };
    ws.onmessage = (ev) => {
      try { onMessage(JSON.parse(String(ev.data))); } catch { /* a bad frame is skipped */ }
    };
    ws.onclose = () => {
      onState?.(false);
      if (closed) return;
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 15_000);
    };
  };
  open();
  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
    ws?.close();
  };
}
