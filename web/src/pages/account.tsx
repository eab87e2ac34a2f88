// Account: by address or account name. Public: workers with hashrate, share count and 95 % band, rejects by
// reason, online/offline (GET /api/v1/accounts/{a}/live, then the WebSocket). Private, with the account's owner
// or watcher token (kept in memory for this tab only): balance, earnings per period with the blocks/shares
// behind them, payouts with txids; settings (payout address, threshold, scheme) changed with the owner token.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiFailure, api, feed, getToken, setToken } from '../api.ts';
import { Chart } from '../chart.tsx';
import { btc, difficulty, hashrate, int, short, time } from '../format.ts';
import { Card, Err, N, Stat, Status } from '../ui.tsx';
import { ACCOUNT_NAME } from '../route.ts';
import { type AccountLive, REJECT_REASONS, accountNumbers } from '../views.ts';

export function AccountPage(props: { name: string }) {
  const [input, setInput] = useState(props.name);
  useEffect(() => setInput(props.name), [props.name]);
  return (
    <div class="grid">
      <Card title="Account" wide>
        <form class="row" onSubmit={(e) => { e.preventDefault(); location.hash = `#/account/${encodeURIComponent(input.trim())}`; }}>
          <label>Address or account name <input name="account" value={input} onInput={(e) => setInput(e.currentTarget.value)} placeholder="bcrt1q… or name" autocomplete="off" /></label>
          <button type="submit">Show</button>
        </form>
      </Card>
      {props.name && !ACCOUNT_NAME.test(props.name) && (
        <p class="error" role="alert" id="account-invalid">“{props.name}” is not an account name: an address or a name of letters, digits, _ or - (at most 100).</p>
      )}
      {props.name && ACCOUNT_NAME.test(props.name) && <Public name={props.name} />}
      {props.name && ACCOUNT_NAME.test(props.name) && <Private key={props.name} name={props.name} />}
    </div>
  );
}

function Public(props: { name: string }) {
  const [a, setA] = useState<AccountLive | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [series, setSeries] = useState<{ time: string; hashrate: number }[]>([]);
  useEffect(() => {
    let stop = false;
    setA(null);
    api<AccountLive>(`/api/v1/accounts/${encodeURIComponent(props.name)}/live`).then((d) => { if (!stop) setA((cur) => (cur && cur.asOf > d.asOf ? cur : d)); }, setErr);
    const close = feed(`/api/v1/live?account=${encodeURIComponent(props.name)}`, (m) => { if (m.type === 'account') setA(m.data as AccountLive); });
    const loadSeries = () => api<{ points: { time: string; hashrate: number }[] }>(`/api/v1/accounts/${encodeURIComponent(props.name)}/live/hashrate?window=24h`)
      .then((d) => { if (!stop) setSeries(d.points); }, () => { if (!stop) setSeries([]); });
    void loadSeries();
    const t = setInterval(loadSeries, 60_000);
    return () => { stop = true; close(); clearInterval(t); };
  }, [props.name]);
  const chart = useMemo(() => ({ times: series.map((p) => Date.parse(p.time) / 1000), series: [{ label: 'hashrate', color: '#2a7ae2', values: series.map((p) => p.hashrate), fmt: hashrate }] }), [series]);
  const v = a ? accountNumbers(a) : {};
  return (
    <>
      <Err e={err} />
      <Card title={`Hashrate — ${props.name}`} id="account-hashrate" asOf={a?.asOf} wide>
        {a && !a.seen && <p class="muted">No shares from this account since the pool started.</p>}
        <div class="stats">
          <Stat label="5 min" k="hashrate.5m" sub="hashrate.5m.band" v={v} />
          <Stat label="1 hour" k="hashrate.1h" sub="hashrate.1h.band" v={v} />
          <Stat label="24 hours" k="hashrate.24h" sub="hashrate.24h.band" v={v} />
          <Stat label="Workers online" k="workersOnline" v={v} />
          <Stat label="Workers offline" k="workersOffline" v={v} />
          <Stat label="Accepted (24 h)" k="shares24h.accepted" v={v} />
        </div>
        <Chart id="account-chart" times={chart.times} series={chart.series} yFmt={hashrate} height={180} />
      </Card>
      <Card title="Workers" id="account-workers" asOf={a?.asOf} wide>
        {a && a.workersTotal > a.workers.length && <p class="muted">The first {a.workers.length} of {int(a.workersTotal)} workers, by name.</p>}
        <div class="scroll">
          <table class="list">
            <thead><tr><th>worker</th><th>status</th><th class="r">hashrate (1 h)</th><th class="r">95 % band</th><th class="r">shares (1 h)</th><th class="r">rejected (24 h)</th><th class="r">difficulty</th><th>last share</th></tr></thead>
            <tbody>
              {a?.workers.map((w) => (
                <tr data-worker={w.worker}>
                  <td>{w.worker}</td><td><Status s={w.online ? 'online' : 'offline'} /></td>
                  <td class="r"><N k={`worker.${w.worker}.hashrate`} v={v} /></td><td class="r"><N k={`worker.${w.worker}.band`} v={v} /></td>
                  <td class="r"><N k={`worker.${w.worker}.shares`} v={v} /></td><td class="r"><N k={`worker.${w.worker}.rejected`} v={v} /></td>
                  <td class="r">{difficulty(w.difficulty)}</td><td>{time(w.lastSeen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Card>
      <Card title="Rejects by reason (24 h)" id="account-rejects" asOf={a?.asOf}>
        <table class="kv"><tbody>{REJECT_REASONS.map((r) => <tr><th>{r}</th><td><N k={`shares24h.rejected.${r}`} v={v} /></td></tr>)}</tbody></table>
      </Card>
    </>
  );
}

interface Balance { balance: string; immature: string; inFlight: string; paid: string; scheme: string; payoutAddress: string | null; threshold: string }
interface Earning { kind: 'fpps' | 'block'; time: string; amount: string; shares: number; periodStart?: string; periodEnd?: string; hash?: string; height?: number; blockStatus?: string }
interface Payout { batchId: string; amount: string; address: string; status: string; txid: string | null; confirmations: number; createdAt: string }
interface Period { periodStart: string; periodEnd: string; groups: { height: number; nbits: number | null; shares: number; difficulty: string; blockValue: string | null; networkDifficulty: string | null }[] }
interface Settings { payoutAddress: string | null; effectiveAddress: string | null; threshold: string | null; effectiveThreshold: string; scheme: string; nextScheme: { scheme: string; from: string } | null }

function Private(props: { name: string }) {
  const kind = `account:${props.name}`;
  const [token, setTok] = useState(getToken(kind) ?? '');
  const [has, setHas] = useState(Boolean(getToken(kind)));
  const [data, setData] = useState<{ balance: Balance; earnings: Earning[]; payouts: Payout[]; settings: Settings } | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [period, setPeriod] = useState<Period | null>(null);
  const showPeriod = async (start: string) => {
    try {
      setPeriod(await api<Period>(`/api/v1/accounts/${encodeURIComponent(props.name)}/earnings/periods/${encodeURIComponent(start)}`, { token: getToken(kind) }));
    } catch (e) { setErr(e); }
  };
  const load = async () => {
    const t = getToken(kind);
    if (!t) return setData(null);
    const base = `/api/v1/accounts/${encodeURIComponent(props.name)}`;
    try {
      const [balance, earnings, payouts, settings] = await Promise.all([
        api<Balance>(`${base}/balance`, { token: t }), api<{ items: Earning[] }>(`${base}/earnings?limit=20`, { token: t }),
        api<{ items: Payout[] }>(`${base}/payouts?limit=20`, { token: t }), api<Settings>(`${base}/settings`, { token: t }),
      ]);
      setErr(null);
      setData({ balance, earnings: earnings.items, payouts: payouts.items, settings });
    } catch (e) {
      setData(null);
      setErr(e instanceof ApiFailure && e.status === 404 && e.code !== 'ACCOUNT_NOT_FOUND' ? new Error('Accounting is not enabled on this pool.') : e);
    }
  };
  useEffect(() => { void load(); }, [has]);
  if (!has || !data) {
    return (
      <Card title="Balance, earnings, payouts, settings" id="account-private" wide>
        <p class="muted">Private: enter this account's owner or watcher token. It stays in this tab's memory only (never stored); reloading the page forgets it.</p>
        <form class="row" onSubmit={(e) => { e.preventDefault(); setToken(kind, token); setHas(Boolean(token.trim())); void load(); }}>
          <label>Token <input type="password" name="token" value={token} onInput={(e) => setTok(e.currentTarget.value)} autocomplete="off" /></label>
          <button type="submit">Unlock</button>
        </form>
        <Err e={err} />
      </Card>
    );
  }
  const b = data.balance;
  return (
    <>
      <Card title="Balance" id="account-balance" wide>
        <div class="stats">
          <div class="stat"><div class="label">Balance</div><span class="num" data-k="balance">{btc(b.balance)}</span></div>
          <div class="stat"><div class="label">Immature</div><span class="num" data-k="immature">{btc(b.immature)}</span></div>
          <div class="stat"><div class="label">In flight</div><span class="num" data-k="inFlight">{btc(b.inFlight)}</span></div>
          <div class="stat"><div class="label">Paid</div><span class="num" data-k="paid">{btc(b.paid)}</span></div>
        </div>
        <p class="muted">Scheme {b.scheme}, threshold {btc(b.threshold)}, pays to {b.payoutAddress ?? '—'}. <button type="button" onClick={() => { setToken(kind, ''); setHas(false); setTok(''); }}>Forget token</button></p>
      </Card>
      <Card title="Earnings" id="account-earnings" wide>
        <div class="scroll"><table class="list">
          <thead><tr><th>kind</th><th>period / block</th><th class="r">shares</th><th class="r">amount</th><th>time</th></tr></thead>
          <tbody>{data.earnings.map((e) => (
            <tr><td>{e.kind}</td><td>{e.kind === 'block' ? <>block {int(e.height)} <Status s={e.blockStatus ?? ''} /> <span class="mono">{e.hash ? short(e.hash) : ''}</span></> : <>{time(e.periodStart)} – {time(e.periodEnd)} <button type="button" onClick={() => void showPeriod(e.periodStart!)}>shares</button></>}</td>
              <td class="r">{int(e.shares)}</td><td class="r">{btc(e.amount)}</td><td>{time(e.time)}</td></tr>
          ))}</tbody>
        </table></div>
        {data.earnings.length === 0 && <p class="muted">No earnings yet.</p>}
        {period && (
          <div class="detail" id="account-period">
            <h3>Shares behind the period from {time(period.periodStart)}</h3>
            <table class="list"><thead><tr><th>height</th><th class="r">shares</th><th class="r">difficulty</th><th class="r">network difficulty</th><th class="r">block value</th></tr></thead>
              <tbody>{period.groups.map((g) => <tr><td>{int(g.height)}</td><td class="r">{int(g.shares)}</td><td class="r">{g.difficulty}</td><td class="r">{g.networkDifficulty ?? '—'}</td><td class="r">{g.blockValue === null ? '—' : btc(g.blockValue)}</td></tr>)}</tbody></table>
          </div>
        )}
      </Card>
      <Card title="Payouts" id="account-payouts" wide>
        <div class="scroll"><table class="list">
          <thead><tr><th>batch</th><th>status</th><th class="r">amount</th><th>address</th><th>txid</th><th>time</th></tr></thead>
          <tbody>{data.payouts.map((p) => (
            <tr><td>{p.batchId}</td><td><Status s={p.status} /> {p.confirmations ? `${p.confirmations} conf` : ''}</td><td class="r">{btc(p.amount)}</td>
              <td class="mono">{p.address}</td><td class="mono">{p.txid ?? '—'}</td><td>{time(p.createdAt)}</td></tr>
          ))}</tbody>
        </table></div>
        {data.payouts.length === 0 && <p class="muted">No payouts yet.</p>}
      </Card>
      <SettingsForm name={props.name} s={data.settings} onSaved={(m) => { setSaved(m); void load(); }} />
      {saved && <p class="ok">{saved}</p>}
      <Err e={err} />
    </>
  );
}

function SettingsForm(props: { name: string; s: Settings; onSaved: (m: string) => void }) {
  const [addr, setAddr] = useState(props.s.payoutAddress ?? '');
  const [thr, setThr] = useState(props.s.threshold ?? '');
  const [scheme, setScheme] = useState(props.s.scheme);
  const [err, setErr] = useState<unknown>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    const body: Record<string, unknown> = {};
    if (addr !== (props.s.payoutAddress ?? '')) body.payoutAddress = addr || null;
    if (thr !== (props.s.threshold ?? '')) body.threshold = thr || null;
    if (scheme !== props.s.scheme) body.scheme = scheme;
    if (Object.keys(body).length === 0) return;
    try {
      await api(`/api/v1/accounts/${encodeURIComponent(props.name)}/settings`, { method: 'PATCH', body, token: getToken(`account:${props.name}`) });
      setErr(null);
      props.onSaved('Settings saved.');
    } catch (x) {
      setErr(x);
    }
  };
  return (
    <Card title="Settings (owner token)" id="account-settings" wide>
      <form class="form" onSubmit={save}>
        <label>Payout address <input name="payoutAddress" value={addr} onInput={(e) => setAddr(e.currentTarget.value)} placeholder={props.s.effectiveAddress ?? ''} /></label>
        <label>Threshold (sat) <input name="threshold" inputMode="numeric" value={thr} onInput={(e) => setThr(e.currentTarget.value)} placeholder={props.s.effectiveThreshold} /></label>
        <label>Scheme <select name="scheme" value={scheme} onChange={(e) => setScheme(e.currentTarget.value)}>{['fpps', 'pplns', 'solo'].map((x) => <option value={x}>{x}</option>)}</select></label>
        <button type="submit">Save</button>
      </form>
      {props.s.nextScheme && <p class="muted">Scheme {props.s.nextScheme.scheme} from {time(props.s.nextScheme.from)}.</p>}
      <p class="muted">Threshold in effect: {btc(props.s.effectiveThreshold)}.</p>
      <Err e={err} />
    </Card>
  );
}
