import type { Logger } from 'pino';
import { BooksChainStats } from '../accounting/chain-stats.ts';
import { LedgerMarketPort } from '../accounting/market-ledger.ts';
import type { Auth } from '../api/auth.ts';
import { ApiError } from '../api/errors.ts';
import type { MarketApiDeps, MarketAuth } from '../api/routes/market.ts';
import { RollupCapacityMeter, SumCapacityMeter } from '../market/capacity.ts';
import { marketConfigFrom } from '../market/config.ts';
import type { CapacityMeter, DeliveryMeter, RouteController } from '../market/ports.ts';
import { MarketService } from '../market/service.ts';
import type { Database } from '../store/db.ts';
import type { Config } from './config.ts';

// The market in a pool process: its clock (MarketService) on the pool's database, with the real ports: the
// ledger (accounting's LedgerMarketPort, posting in the market's own transactions), routing (which carries out
// the routes and meters what the buyers' pools accept), capacity (pool work from the rollups + routed work from
// routing's meter) and the chain facts for hashprice (the books' block values).

export interface MarketRouting {
  routes: RouteController;
  delivery: DeliveryMeter;
  /** Routed work per worker (so a routed worker keeps its measured capacity); absent: pool work only. */
  capacity?: CapacityMeter;
}

/** The market's clock on the pool's database with the real ports (start() it once Stratum listens). */
export function createMarketService(cfg: Config, db: Database, routing: MarketRouting, log: Logger): MarketService {
  const pool = new RollupCapacityMeter(db);
  return new MarketService({
    db,
    ledger: new LedgerMarketPort(),
    routes: routing.routes,
    delivery: routing.delivery,
    capacity: routing.capacity ? new SumCapacityMeter([pool, routing.capacity]) : pool,
    chain: new BooksChainStats(db),
    config: marketConfigFrom(cfg.market),
    log: log.child({ mod: 'market' }),
  });
}

/** ApiDeps.market: the market's routes with the accounting tokens. */
export function marketApiDeps(service: MarketService, db: Database, auth: Auth, rateLimitPerMinute?: number): MarketApiDeps {
  return { market: service, db, auth: marketAuthFrom(auth), rateLimitPerMinute };
}

/** The accounting tokens as the market's auth: operator, owner or watcher of an account; unknown → null. */
export function marketAuthFrom(auth: Auth): MarketAuth {
  return {
    async resolve(token) {
      try {
        const p = await auth.principal({ headers: { authorization: `Bearer ${token}` } });
        if (p.role === 'operator') return { role: 'operator' };
        if (p.role === 'owner' || p.role === 'watcher') return { role: p.role, accountId: Number(p.accountId) };
        return null;
      } catch (e) {
        if (e instanceof ApiError) return null;
        throw e;
      }
    },
  };
}
