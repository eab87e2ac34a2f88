// hashhub dashboard: four pages behind hash routes (#/pool, #/account/<name>, #/market, #/operator), so the
// server serves one index.html and a reload keeps the page (tokens are kept in memory only and are asked again).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { AccountPage } from './pages/account.tsx';
import { MarketPage } from './pages/market.tsx';
import { OperatorPage } from './pages/operator.tsx';
import { PoolPage } from './pages/pool.tsx';
import { parseHash } from './route.ts';
import './style.css';

function route(): string[] {
  return parseHash(location.hash);
}

function App() {
  const [parts, setParts] = useState(route());
  useEffect(() => {
    const on = () => setParts(route());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const page = parts[0] ?? 'pool';
  const link = (p: string, label: string) => <a href={`#/${p}`} class={page === p ? 'active' : ''}>{label}</a>;
  return (
    <>
      <header>
        <strong class="brand">hashhub</strong>
        <nav>{link('pool', 'Pool')}{link('account', 'Account')}{link('market', 'Market')}{link('operator', 'Operator')}</nav>
      </header>
      <main>
        {page === 'account' ? <AccountPage name={parts[1] ?? ''} />
          : page === 'market' ? <MarketPage />
          : page === 'operator' ? <OperatorPage />
          : <PoolPage />}
      </main>
      <footer>Figures from the public API (<a href="/docs">/docs</a>); live ones over the WebSocket feed /api/v1/live.</footer>
    </>
  );
}

render(<App />, document.getElementById('app')!);
