// Operator (operator token, memory only): routes and their destinations' health (GET /api/v1/routes when routing
// is enabled), spool backlog and ingest, node endpoints (GET /api/v1/operator/status), payouts pending
// (GET /api/v1/payouts).
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, api, getToken, setToken } from '../api.ts';
import { btc, bytes, int, time } from '../format.ts';
import { Card, Err, N, Status } from '../ui.tsx';
import { type RouteView, routeNumbers } from '../views.ts';

interface OperatorStatus {
  nodes: { url: string }[];
  node: { ok: boolean; error: string | null; height: number | null; synced: boolean | null; checkedAt: string | null };
  ingest: { queueDepth: number; spoolBytes: number; dbUp: boolean; writerUp?: boolean; oldestUnsentAgeMs?: number | null; storage?: { accepting: boolean; message?: string; usedBytes: number; maxBytes: number } } | null;
  template: { height: number; ageMs: number | null } | null;
}
interface Batch { id: string; status: string; reason: string | null; total: string; lines: number; txid: string | null; confirmations: number; createdAt: string }
type Routes = { state: 'off' } | { state: 'on'; data: unknown } | { state: 'error'; e: unknown };

export function OperatorPage() {
  const [token, setTok] = useState(getToken('operator') ?? '');
  const [has, setHas] = useState(Boolean(getToken('operator')));
  const [status, setStatus] = useState<OperatorStatus | null>(null);
  const [payouts, setPayouts] = useState<Batch[] | null>(null);
  const [routes, setRoutes] = useState<Routes | null>(null);
  const [err, setErr] = useState<unknown>(null);
  useEffect(() => {
    const t = getToken('operator');
    if (!t) return;
    const load = () => {
      api<OperatorStatus>('/api/v1/operator/status', { token: t }).then((s) => { setStatus(s); setErr(null); }, setErr);
      api<{ items: Batch[] }>('/api/v1/payouts?limit=50', { token: t }).then((p) => setPayouts(p.items), () => setPayouts(null));
      api<unknown>('/api/v1/routes', { token: t }).then(
        (d) => setRoutes({ state: 'on', data: d }),
        (e) => setRoutes(e instanceof ApiFailure && e.status === 404 ? { state: 'off' } : { state: 'error', e }),
      );
    };
    load();
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, [has]);

  if (!has) {
    return (
      <Card title="Operator" id="operator-login" wide>
        <p class="muted">The operator token (api.operatorToken or &lt;dataDir&gt;/operator.token). It stays in this tab's memory only.</p>
        <form class="row" onSubmit={(e) => { e.preventDefault(); setToken('operator', token); setHas(Boolean(token.trim())); }}>
          <label>Operator token <input type="password" name="operator-token" value={token} onInput={(e) => setTok(e.currentTarget.value)} autocomplete="off" /></label>
          <button type="submit">Unlock</button>
        </form>
      </Card>
    );
  }
  const pending = payouts?.filter((p) => p.status !== 'confirmed' && p.status !== 'cancelled') ?? [];
  return (
    <div class="grid">
      <Err e={err} />
      <Card title="Routes" id="operator-routes" wide>
        {routes?.state === 'off' && <p class="muted">Routing not enabled on this pool.</p>}
        {routes?.state === 'error' && <Err e={routes.e} />}
        {routes?.state === 'on' && <RoutesView data={routes.data} />}
      </Card>
      <Card title="Node endpoints" id="operator-nodes">
        {status && (
          <>
            <p><Status s={status.node.ok ? 'up' : 'down'} /> {status.node.ok ? `height ${int(status.node.height)}${status.node.synced === false ? ' (syncing)' : ''}` : status.node.error}</p>
            <ul>{status.nodes.map((n) => <li class="mono">{n.url}</li>)}</ul>
            <p class="muted">Template: {status.template ? `height ${int(status.template.height)}, ${status.template.ageMs === null ? '—' : `${Math.round(status.template.ageMs / 1000)} s old`}` : 'none yet'}</p>
          </>
        )}
      </Card>
      <Card title="Spool backlog" id="operator-spool">
        {status?.ingest && (
          <table class="kv"><tbody>
            <tr><th>database</th><td><Status s={status.ingest.dbUp ? 'up' : 'down'} /></td></tr>
            <tr><th>writer</th><td><Status s={status.ingest.writerUp === false ? 'down' : 'up'} /></td></tr>
            <tr><th>queue</th><td data-k="queueDepth">{int(status.ingest.queueDepth)}</td></tr>
            <tr><th>spool backlog</th><td data-k="spoolBytes">{bytes(status.ingest.spoolBytes)}</td></tr>
            <tr><th>oldest unsent</th><td>{status.ingest.oldestUnsentAgeMs == null ? '—' : `${(status.ingest.oldestUnsentAgeMs / 1000).toFixed(1)} s`}</td></tr>
            {status.ingest.storage && <tr><th>disk budget</th><td>{bytes(status.ingest.storage.usedBytes)} of {status.ingest.storage.maxBytes ? bytes(status.ingest.storage.maxBytes) : 'no limit'}{status.ingest.storage.accepting ? '' : ` — refusing: ${status.ingest.storage.message ?? ''}`}</td></tr>}
          </tbody></table>
        )}
      </Card>
      <Card title="Payouts pending" id="operator-payouts" wide>
        {payouts === null ? <p class="muted">Accounting is not enabled on this pool.</p> : (
          <>
            <div class="scroll"><table class="list">
              <thead><tr><th>batch</th><th>status</th><th>why</th><th class="r">total</th><th class="r">lines</th><th>txid</th><th>created</th></tr></thead>
              <tbody>{pending.map((p) => <tr><td>{p.id}</td><td><Status s={p.status} /></td><td>{p.reason ?? ''}</td><td class="r">{btc(p.total)}</td><td class="r">{p.lines}</td><td class="mono">{p.txid ?? '—'}</td><td>{time(p.createdAt)}</td></tr>)}</tbody>
            </table></div>
            {pending.length === 0 && <p class="muted">Nothing pending.</p>}
          </>
        )}
      </Card>
      <p><button type="button" onClick={() => { setToken('operator', ''); setHas(false); setTok(''); }}>Forget token</button></p>
    </div>
  );
}

/** GET /api/v1/routes: each route's state and its current destination's health (delivered rate with its band,
 *  the destination's answers, its difficulty, round-trip time). Stopped routes are history: not listed. */
function RoutesView(props: { data: unknown }) {
  const items = ((props.data as { items?: RouteView[] }).items ?? []).filter((r) => r.state !== 'stopped');
  if (items.length === 0) return <p class="muted">No active routes.</p>;
  return (
    <div class="scroll"><table class="list" id="routes">
      <thead><tr><th>route</th><th>state</th><th>destination</th><th class="r">workers</th><th class="r">delivered (60 s)</th><th class="r">accepted / rejected / stale / no answer</th><th class="r">difficulty</th><th class="r">RTT</th></tr></thead>
      <tbody>{items.map((r) => {
        const v = routeNumbers(r);
        return (
          <tr data-route={r.id}>
            <td>#{r.id} {r.name}{r.bidId !== null ? ` (bid #${r.bidId})` : ''}</td>
            <td><span data-k="state"><Status s={r.state} /></span> <span class="muted" data-k="why">{v.why}</span></td>
            <td class="mono"><N k="destination" v={v} /></td>
            <td class="r"><N k="workers" v={v} /></td>
            <td class="r"><N k="delivered" v={v} /> <N k="band" v={v} /></td>
            <td class="r"><N k="answers" v={v} /></td>
            <td class="r"><N k="difficulty" v={v} /></td>
            <td class="r"><N k="rtt" v={v} /></td>
          </tr>
        );
      })}</tbody>
    </table></div>
  );
}
