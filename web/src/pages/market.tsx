// Market: book depth (total, matched, available), tick prices and candles, the daily index beside hashprice with
// a link to the methodology, recent ticks. With an account token (memory only): your bids and asks with fill,
// queue position, zero-fill reason, delivered vs ordered rate (95 % band), charges and credits; place, edit,
// cancel. Public data moves over the market's WebSocket (/api/v1/market/ws: tick and book messages).
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiFailure, api, feed, getToken, setToken } from '../api.ts';
import { CandleChart } from '../candles.tsx';
import { Chart } from '../chart.tsx';
import { band, btc, hashrate, int, phs, satPhDay, time } from '../format.ts';
import { Card, Err, N, Status } from '../ui.tsx';
import { type BookLevel as Level, type Candle, type MarketAsk as Ask, type MarketBid as Bid, levelNumbers, orderNumbers } from '../views.ts';

interface Tick {
  tick: number; startsAt: string; price: number | null; demand: string; supply: string; matched: string; allocated: string;
  depth: { bids: string; asks: string; matched: string; available: string }; bestBid: number | null; bestAsk: number | null; settled: boolean;
  deliveredHashes: string | null; debit: string | null; credit: string | null; fee: string | null;
}
interface Book { tick: Tick | null; bids: Level[]; asks: Level[] }
interface IndexRow { day: string; value: number | null; hashprice: number | null; methodology: number; volumeHashes: string; tradesUsed: number }

export function MarketPage() {
  const [book, setBook] = useState<Book | null>(null);
  const [ticks, setTicks] = useState<Tick[]>([]);
  const [candles, setCandles] = useState<Candle[]>([]);
  const [index, setIndex] = useState<IndexRow[]>([]);
  const [tickSeconds, setTickSeconds] = useState(60);
  const [err, setErr] = useState<unknown>(null);
  const [mine, setMine] = useState(0);

  const loadBook = () => api<Book>('/api/v1/market/book').then(setBook, setErr);
  // Candles change when a tick clears with a price: read again at each tick (one indexed query).
  const loadCandles = () => api<{ candles: Candle[] }>('/api/v1/market/candles?interval=1m').then((d) => setCandles(d.candles), () => undefined);
  useEffect(() => {
    void loadBook();
    api<{ ticks: Tick[] }>('/api/v1/market/ticks?limit=60').then((d) => setTicks(d.ticks), setErr);
    void loadCandles();
    api<{ index: IndexRow[] }>('/api/v1/market/index').then((d) => setIndex(d.index), () => undefined);
    return feed('/api/v1/market/ws', (m) => {
      if (m.type === 'hello') setTickSeconds(Number(m.tickSeconds) || 60);
      if (m.type === 'book') setBook((b) => ({ tick: b?.tick ?? null, bids: m.bids as Level[], asks: m.asks as Level[] }));
      if (m.type === 'tick') {
        const t = m.tick as Tick;
        setBook((b) => (b ? { ...b, tick: t } : b));
        setTicks((ts) => [t, ...ts.filter((x) => x.tick !== t.tick)].slice(0, 60));
        setMine((n) => n + 1);
        void loadCandles();
      }
    });
  }, []);

  const chart = useMemo(() => {
    const asc = [...ticks].reverse();
    return { times: asc.map((t) => Date.parse(t.startsAt) / 1000), series: [{ label: 'price', color: '#2a7ae2', values: asc.map((t) => t.price), fmt: (v: number) => `${int(v)} sat/PH/day` }] };
  }, [ticks]);

  if (err instanceof ApiFailure && err.status === 404) return <Card title="Market" wide><p class="muted">The hashrate market is not enabled on this pool.</p></Card>;
  const t = book?.tick;
  return (
    <div class="grid">
      <Err e={err} />
      <Card title="Book" id="market-book" wide>
        {t ? (
          <div class="stats">
            <div class="stat"><div class="label">Last price (tick {t.tick})</div><span class="num" data-k="tick.price">{t.price === null ? 'no trade' : satPhDay(t.price)}</span></div>
            <div class="stat"><div class="label">Bids total</div><span class="num" data-k="depth.bids">{phs(t.depth.bids)}</span></div>
            <div class="stat"><div class="label">Asks total</div><span class="num" data-k="depth.asks">{phs(t.depth.asks)}</span></div>
            <div class="stat"><div class="label">Matched</div><span class="num" data-k="depth.matched">{phs(t.depth.matched)}</span></div>
            <div class="stat"><div class="label">Available</div><span class="num" data-k="depth.available">{phs(t.depth.available)}</span></div>
          </div>
        ) : <p class="muted">No tick yet.</p>}
        <div class="two">
          <Levels title="Bids" side="bid" levels={book?.bids ?? []} />
          <Levels title="Asks" side="ask" levels={book?.asks ?? []} />
        </div>
      </Card>
      <Card title="Tick prices" id="market-ticks-chart" wide>
        {chart.series[0].values.filter((x) => x !== null).length >= 2
          ? <Chart id="market-chart" times={chart.times} series={chart.series} yFmt={(v) => int(v)} height={180} />
          : <p class="muted" id="market-chart-empty">{chart.series[0].values.some((x) => x !== null) ? 'One priced tick so far (above); the chart starts with the second.' : 'No trade price yet: ticks without a crossing have no price.'}</p>}
      </Card>
      <Card title="Candles (1 min, last 24 h)" id="market-candles" wide>
        {candles.length > 0
          ? <CandleChart id="market-candle-chart" candles={candles} seconds={60} yFmt={(v) => int(v)} height={200} />
          : <p class="muted" id="market-candles-empty">No trades yet: a candle starts with the first priced tick.</p>}
      </Card>
      <Card title="Daily index" id="market-index">
        <div class="scroll"><table class="list">
          <thead><tr><th>day</th><th class="r">index</th><th class="r">hashprice</th><th class="r">trades</th></tr></thead>
          <tbody>{index.slice(-14).reverse().map((r) => <tr><td>{r.day}</td><td class="r">{r.value === null ? '—' : satPhDay(r.value)}</td><td class="r">{satPhDay(r.hashprice)}</td><td class="r">{r.tradesUsed}</td></tr>)}</tbody>
        </table></div>
        {index.length === 0 && <p class="muted">No index published yet.</p>}
        <p class="muted">How it is computed: <a href="/methodology.md" id="methodology">the methodology</a>{index.length ? ` (version ${index[index.length - 1].methodology})` : ''}, section 7, “The daily hashhub index”.</p>
      </Card>
      <Card title="Recent ticks" id="market-recent" wide>
        <div class="scroll"><table class="list">
          <thead><tr><th>tick</th><th>start</th><th class="r">price</th><th class="r">demand</th><th class="r">supply</th><th class="r">matched</th><th>settled</th></tr></thead>
          <tbody>{ticks.slice(0, 15).map((x) => <tr><td>{x.tick}</td><td>{time(x.startsAt)}</td><td class="r">{x.price === null ? '—' : int(x.price)}</td><td class="r">{phs(x.demand)}</td><td class="r">{phs(x.supply)}</td><td class="r">{phs(x.matched)}</td><td>{x.settled ? 'yes' : 'no'}</td></tr>)}</tbody>
        </table></div>
      </Card>
      <MyOrders refresh={mine} tickSeconds={tickSeconds} onChange={loadBook} />
    </div>
  );
}

function Levels(props: { title: string; side: string; levels: Level[] }) {
  return (
    <div>
      <h3>{props.title}</h3>
      <table class="list" id={`book-${props.side}s`}>
        <thead><tr><th class="r">price (sat/PH/day)</th><th class="r">orders</th><th class="r">hashrate</th></tr></thead>
        <tbody>{props.levels.map((l) => {
          const v = levelNumbers(l);
          return <tr data-price={l.price}><td class="r"><N k="price" v={v} /></td><td class="r"><N k="orders" v={v} /></td><td class="r"><N k="hashrate" v={v} /></td></tr>;
        })}</tbody>
      </table>
      {props.levels.length === 0 && <p class="muted">Empty.</p>}
    </div>
  );
}

function MyOrders(props: { refresh: number; tickSeconds: number; onChange: () => void }) {
  const [token, setTok] = useState(getToken('market') ?? '');
  const [has, setHas] = useState(Boolean(getToken('market')));
  const [bids, setBids] = useState<Bid[]>([]);
  const [asks, setAsks] = useState<Ask[]>([]);
  const [money, setMoney] = useState<{ escrow: string; spent: string; earned: string } | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [detail, setDetail] = useState<{ id: number; side: 'bid' | 'ask'; rows: { tick: number; ordered: string; delivered: number | null; band: number | null; money: string | null }[] } | null>(null);
  const tok = () => getToken('market');
  const load = async () => {
    if (!tok()) return;
    try {
      const [b, a, m] = await Promise.all([
        api<{ bids: Bid[] }>('/api/v1/market/bids?limit=50', { token: tok() }), api<{ asks: Ask[] }>('/api/v1/market/asks?limit=50', { token: tok() }),
        api<{ escrow: string; spent: string; earned: string }>('/api/v1/market/account', { token: tok() }),
      ]);
      setBids(b.bids); setAsks(a.asks); setMoney(m); setErr(null);
    } catch (e) { setErr(e); }
  };
  useEffect(() => { void load(); }, [has, props.refresh]);
  // An order's refusal is kept until the next action: the reload at each tick (load) clears only its own error.
  const [actErr, setActErr] = useState<unknown>(null);
  const act = async (fn: () => Promise<unknown>) => {
    try { await fn(); setActErr(null); await load(); props.onChange(); } catch (e) { setActErr(e); }
  };
  const showDetail = async (side: 'bid' | 'ask', id: number) => {
    try {
      const trades = (await api<{ trades: { tick: number; acceptedHashes: string; acceptedShares: number; lineCredit: string | null }[] }>(`/api/v1/market/${side}s/${id}/trades`, { token: tok() })).trades;
      const shares = new Map<number, number>();
      const hashes = new Map<number, number>();
      const credit = new Map<number, bigint>();
      for (const x of trades) {
        shares.set(x.tick, (shares.get(x.tick) ?? 0) + x.acceptedShares);
        hashes.set(x.tick, (hashes.get(x.tick) ?? 0) + Number(x.acceptedHashes));
        credit.set(x.tick, (credit.get(x.tick) ?? 0n) + BigInt(x.lineCredit ?? '0'));
      }
      let rows;
      if (side === 'bid') {
        const fills = (await api<{ fills: { tick: number; demand: string; fill: string; deliveredHashes: string | null; debit: string | null }[] }>(`/api/v1/market/bids/${id}/fills`, { token: tok() })).fills;
        rows = fills.map((f) => {
          const n = shares.get(f.tick) ?? 0;
          return { tick: f.tick, ordered: phs(f.fill), delivered: f.deliveredHashes === null ? null : Number(f.deliveredHashes) / props.tickSeconds, band: n > 0 ? 1.96 / Math.sqrt(n) : null, money: f.debit === null ? null : `−${btc(f.debit)}` };
        });
      } else {
        rows = [...hashes.keys()].sort((a, b) => b - a).map((tk) => {
          const n = shares.get(tk) ?? 0;
          return { tick: tk, ordered: '—', delivered: (hashes.get(tk) ?? 0) / props.tickSeconds, band: n > 0 ? 1.96 / Math.sqrt(n) : null, money: `+${btc(credit.get(tk) ?? 0n)}` };
        });
      }
      setDetail({ id, side, rows });
    } catch (e) { setErr(e); }
  };

  if (!has) {
    return (
      <Card title="Your orders" id="market-mine" wide>
        <p class="muted">Enter an account token to see and place your bids and asks. It stays in this tab's memory only.</p>
        <form class="row" onSubmit={(e) => { e.preventDefault(); setToken('market', token); setHas(Boolean(token.trim())); }}>
          <label>Token <input type="password" name="market-token" value={token} onInput={(e) => setTok(e.currentTarget.value)} autocomplete="off" /></label>
          <button type="submit">Unlock</button>
        </form>
      </Card>
    );
  }
  return (
    <>
      <Card title="Your orders" id="market-mine" wide>
        {money && <p>Escrow {btc(money.escrow)} · charged {btc(money.spent)} · credited {btc(money.earned)} <button type="button" onClick={() => { setToken('market', ''); setHas(false); setTok(''); }}>Forget token</button></p>}
        <Err e={err} />
        <Err e={actErr} />
        <div class="scroll"><table class="list" id="my-orders">
          <thead><tr><th>order</th><th>state</th><th class="r">price</th><th class="r">ordered</th><th class="r">fill (last tick)</th><th class="r">queue</th><th>why not filled</th><th class="r">charged</th><th></th></tr></thead>
          <tbody>
            {[...bids, ...asks].map((o) => {
              const v = orderNumbers(o);
              const price = o.side === 'bid' ? o.maxPrice : o.minPrice;
              const ended = o.side === 'bid' ? ['cancelled', 'expired', 'exhausted'] : ['cancelled', 'expired'];
              return (
                <tr data-order={`${o.side}-${o.id}`}>
                  <td>{o.side} #{o.id}</td><td data-k="state"><Status s={o.state} /></td><td class="r"><N k="price" v={v} /></td><td class="r"><N k="ordered" v={v} /></td>
                  <td class="r"><N k="fill" v={v} /></td><td class="r"><N k="queue" v={v} /></td><td><N k="reason" v={v} /></td><td class="r"><N k="charged" v={v} /></td>
                  <td><OrderActions side={o.side} id={o.id} price={price} live={!ended.includes(o.state)} act={act} details={() => showDetail(o.side, o.id)} /></td>
                </tr>
              );
            })}
          </tbody>
        </table></div>
        {detail && (
          <div class="detail">
            <h3>{detail.side} #{detail.id}: ordered vs delivered per tick</h3>
            <table class="list"><thead><tr><th>tick</th><th class="r">allocated</th><th class="r">delivered</th><th class="r">95 % band</th><th class="r">{detail.side === 'bid' ? 'charge' : 'credit'}</th></tr></thead>
              <tbody>{detail.rows.map((r) => <tr><td>{r.tick}</td><td class="r">{r.ordered}</td><td class="r">{hashrate(r.delivered)}</td><td class="r">{band(r.band)}</td><td class="r">{r.money ?? '—'}</td></tr>)}</tbody></table>
            {detail.rows.length === 0 && <p class="muted">Nothing delivered yet.</p>}
          </div>
        )}
      </Card>
      <PlaceOrder act={act} />
    </>
  );
}

function OrderActions(props: { side: 'bid' | 'ask'; id: number; price: number; live: boolean; act: (fn: () => Promise<unknown>) => Promise<void>; details: () => void }) {
  const [price, setPrice] = useState(String(props.price));
  const tok = getToken('market');
  return (
    <span class="actions">
      <button type="button" onClick={props.details}>details</button>
      {props.live && <>
        <input class="small" aria-label="new price" name={`price-${props.side}-${props.id}`} inputMode="numeric" value={price} onInput={(e) => setPrice(e.currentTarget.value)} />
        <button type="button" onClick={() => props.act(() => api(`/api/v1/market/${props.side}s/${props.id}`, { method: 'PATCH', token: tok, body: props.side === 'bid' ? { maxPrice: Number(price) } : { minPrice: Number(price) } }))}>edit</button>
        <button type="button" class="danger" onClick={() => props.act(() => api(`/api/v1/market/${props.side}s/${props.id}`, { method: 'DELETE', token: tok }))}>cancel</button>
      </>}
    </span>
  );
}

function PlaceOrder(props: { act: (fn: () => Promise<unknown>) => Promise<void> }) {
  const [side, setSide] = useState<'bid' | 'ask'>('bid');
  const [f, setF] = useState({ price: '', amount: '', budget: '', url: '', user: '' });
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const submit = (e: Event) => {
    e.preventDefault();
    const tok = getToken('market');
    const body = side === 'bid'
      ? { maxPrice: Number(f.price), limit: f.amount, budget: f.budget, destinations: [{ url: f.url, user: f.user }] }
      : { minPrice: Number(f.price), workers: 'all', ...(f.amount ? { cap: f.amount } : {}) };
    void props.act(() => api(`/api/v1/market/${side}s`, { method: 'POST', token: tok, body }));
  };
  return (
    <Card title="Place an order" id="market-place" wide>
      <form class="form" id="place-order" onSubmit={submit}>
        <label>Side <select name="side" value={side} onChange={(e) => setSide(e.currentTarget.value as 'bid' | 'ask')}><option value="bid">bid (buy hashrate)</option><option value="ask">ask (sell hashrate)</option></select></label>
        <label>{side === 'bid' ? 'Max price' : 'Min price'} (sat/PH/day) <input name="price" inputMode="numeric" required value={f.price} onInput={set('price')} /></label>
        <label>{side === 'bid' ? 'Limit' : 'Cap (optional)'} (PH/s) <input name="amount" inputMode="decimal" required={side === 'bid'} value={f.amount} onInput={set('amount')} /></label>
        {side === 'bid' && <>
          <label>Budget (sat) <input name="budget" inputMode="numeric" required value={f.budget} onInput={set('budget')} /></label>
          <label>Destination pool URL <input name="url" required placeholder="stratum+tcp://host:port" value={f.url} onInput={set('url')} /></label>
          <label>Destination user <input name="user" required value={f.user} onInput={set('user')} /></label>
        </>}
        <button type="submit">Place {side}</button>
      </form>
    </Card>
  );
}
