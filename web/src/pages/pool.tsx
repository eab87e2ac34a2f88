// Pool: hashrate (chart over 1 h / 24 h / 7 d, windows with their 95 % band), miners and workers online, shares
// by reason, blocks with status, reward, finder and luck, network difficulty, height, hashprice, node and
// storage health. The first figures come from GET /api/v1/pool/live, then from the WebSocket /api/v1/live.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, feed } from '../api.ts';
import { Chart } from '../chart.tsx';
import { btc, bytes, hashrate, int, short, time } from '../format.ts';
import { Card, Err, N, Stat, Status } from '../ui.tsx';
import { type LiveBlock, type PoolLive, REJECT_REASONS, poolNumbers } from '../views.ts';

type Win = '1h' | '24h' | '7d';
interface SeriesAnswer { window: Win; bucket: number; points: { time: string; hashrate: number; accepted: number; rejected: number }[] }

export function PoolPage() {
  const [live, setLive] = useState<PoolLive | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [win, setWin] = useState<Win>('1h');
  const [series, setSeries] = useState<SeriesAnswer | null>(null);
  const [online, setOnline] = useState(false);

  useEffect(() => {
    let stop = false;
    api<PoolLive>('/api/v1/pool/live').then((d) => { if (!stop) setLive((cur) => (cur && cur.asOf > d.asOf ? cur : d)); }, setErr);
    const close = feed('/api/v1/live', (m) => {
      if (m.type === 'pool') setLive(m.data as PoolLive);
    }, setOnline);
    return () => { stop = true; close(); };
  }, []);

  useEffect(() => {
    let stop = false;
    const load = () => api<SeriesAnswer>(`/api/v1/pool/hashrate?window=${win}`).then((d) => { if (!stop) setSeries(d); }, setErr);
    void load();
    const t = setInterval(load, win === '1h' ? 15_000 : 60_000);
    return () => { stop = true; clearInterval(t); };
  }, [win]);

  const chart = useMemo(() => {
    const pts = series?.points ?? [];
    return { times: pts.map((p) => Date.parse(p.time) / 1000), series: [{ label: 'hashrate', color: '#f7931a', values: pts.map((p) => p.hashrate), fmt: hashrate }] };
  }, [series]);

  const v = live ? poolNumbers(live) : {};
  const h = live?.health;
  return (
    <div class="grid">
      <Err e={err} />
      <Card title="Hashrate" id="pool-hashrate" asOf={live?.asOf} wide>
        <div class="stats">
          <Stat label="5 min" k="hashrate.5m" sub="hashrate.5m.band" v={v} />
          <Stat label="1 hour" k="hashrate.1h" sub="hashrate.1h.band" v={v} />
          <Stat label="24 hours" k="hashrate.24h" sub="hashrate.24h.band" v={v} />
          <Stat label="Miners online" k="minersOnline" v={v} />
          <Stat label="Workers online" k="workersOnline" v={v} />
          <Stat label="Connections" k="connections" v={v} />
        </div>
        <div class="tabs" role="tablist">
          {(['1h', '24h', '7d'] as const).map((w) => <button type="button" class={w === win ? 'active' : ''} aria-selected={w === win} onClick={() => setWin(w)}>{w}</button>)}
          <span class={`live ${online ? 'on' : ''}`}>{online ? '● live' : '○ offline'}</span>
        </div>
        <Chart id="pool-chart" times={chart.times} series={chart.series} yFmt={hashrate} />
      </Card>

      <Card title="Shares (24 h)" id="pool-shares" asOf={live?.asOf}>
        <table class="kv">
          <tbody>
            <tr><th>accepted</th><td><N k="shares24h.accepted" v={v} /></td></tr>
            {REJECT_REASONS.map((r) => <tr><th>{r}</th><td><N k={`shares24h.rejected.${r}`} v={v} /></td></tr>)}
            <tr><th>reject rate</th><td><N k="shares24h.rejectRate" v={v} /></td></tr>
          </tbody>
        </table>
      </Card>

      <Card title="Network" id="pool-network" asOf={live?.asOf}>
        <table class="kv">
          <tbody>
            <tr><th>height</th><td><N k="network.height" v={v} /></td></tr>
            <tr><th>difficulty</th><td><N k="network.difficulty" v={v} /></td></tr>
            <tr><th>block reward</th><td><N k="network.reward" v={v} /></td></tr>
            <tr><th>hashprice</th><td><N k="network.hashprice" v={v} /></td></tr>
          </tbody>
        </table>
      </Card>

      <Card title="Health" id="pool-health" asOf={live?.asOf}>
        {h && (
          <table class="kv">
            <tbody>
              <tr><th>node</th><td><Status s={h.node.ok ? (h.node.synced === false ? 'syncing' : 'up') : 'down'} /> {h.node.ok ? `height ${int(h.node.height)}` : h.node.error}</td></tr>
              <tr><th>database</th><td><Status s={h.database.ok ? 'up' : 'down'} /> {h.database.error ?? ''}</td></tr>
              {h.storage && <tr><th>ingest</th><td><Status s={h.storage.accepting && h.storage.writerUp ? 'up' : 'down'} /> queue {int(h.storage.queueDepth)}, spool {bytes(h.storage.spoolBytes)}{h.storage.reason ? ` — ${h.storage.reason}` : ''}</td></tr>}
              <tr><th>stratum</th><td><Status s={h.draining ? 'draining' : 'up'} /></td></tr>
            </tbody>
          </table>
        )}
      </Card>

      <Card title="Blocks found" id="pool-blocks" asOf={live?.asOf} wide>
        <p class="muted">Found since start: <N k="blocks.found" v={v} /></p>
        <Blocks blocks={live?.blocks ?? []} />
      </Card>
    </div>
  );
}

function Blocks(props: { blocks: LiveBlock[] }) {
  if (props.blocks.length === 0) return <p class="muted">No block found yet.</p>;
  return (
    <div class="scroll">
      <table class="list">
        <thead><tr><th>height</th><th>status</th><th>reward</th><th>finder</th><th>luck</th><th>time</th><th>hash</th></tr></thead>
        <tbody>
          {props.blocks.map((b) => (
            <tr data-hash={b.hash}>
              <td>{int(b.height)}</td><td><Status s={b.status} /> {b.confirmations > 0 ? `${b.confirmations} conf` : ''}</td>
              <td class="r">{btc(b.reward)}</td><td>{b.account ? `${b.account}.${b.worker}` : '—'}</td>
              <td class="r">{b.luck === null ? '—' : `${b.luck.toFixed(1)} %`}</td><td>{time(b.time)}</td><td class="mono">{short(b.hash)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
