import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { AuthorizedWorker, StratumSession, WorkAssignment } from '../stratum/session.ts';
import type { RouteMeter } from './meter.ts';
import { DEFAULT_ROUTE_OPTIONS, Route, type RouteOptions, type RouteSpec, type RouteStatus } from './route.ts';
import { DEFAULT_UPSTREAM_OPTIONS } from './upstream.ts';

export type MoveMethod = 'set_extranonce' | 'reconnect' | 'resume';

export interface MoveEvent {
  routeId: number | null;
  /** null: back to pool work. */
  from: number | null;
  worker: string;
  session: string;
  method: MoveMethod;
  at: number;
}

export interface RouterEvents {
  moved: [MoveEvent];
  state: [number, RouteStatus];
  /** A worker that came back from client.reconnect without its subscription id: it stays on pool work. */
  cannotMove: [string, string];
}

export interface RouterOptions extends RouteOptions {
  /** Host and port in client.reconnect (cpuminer ignores an empty one). */
  reconnectHost: string;
  reconnectPort: number;
  /** The TLS port, for miners connected over TLS (they are sent back to it). */
  reconnectTlsPort?: number;
  /** How long a subscription id is remembered for a reconnecting miner, ms. */
  resumeMemoryMs: number;
  /** Period of the reconcile pass (every route change also runs it), ms. */
  reconcileMs: number;
}

export const DEFAULT_ROUTER_OPTIONS: Omit<RouterOptions, 'reconnectHost' | 'reconnectPort'> = {
  ...DEFAULT_ROUTE_OPTIONS, resumeMemoryMs: 15 * 60_000, reconcileMs: 1000,
};

const MAX_REMEMBERED = 200_000;
/** After a client.reconnect, a miner back within this long without its id is not sent another (no storm). */
const RECONNECT_GUARD_MS = 30_000;
/** How long a place on a route is held for a miner sent client.reconnect to it (see Router.reserved). */
const RESERVE_MS = 30_000;
/** A removed route keeps its connection at least this long: late shares for its jobs come within a second or two. */
const LATE_SHARES_MS = 5000;

function canonical(w: AuthorizedWorker): string {
  return `${w.account}.${w.worker}`;
}

/** A session's authorized workers as remembered for its subscription id, and when it was last known alive. */
interface Remembered { worker: AuthorizedWorker; workers: AuthorizedWorker[] | null; at: number }

/**
 * The whole set: a proxy coming back after client.reconnect is resumed only where all of them may go (an array
 * only for a proxy: nearly every connection is one worker). Undefined for a session with no worker.
 */
function rememberedOf(session: StratumSession, at: number): Remembered | undefined {
  const first = session.workers.first;
  if (!first) return undefined;
  return { worker: first, workers: session.workers.size > 1 ? [...session.workers.values()] : null, at };
}

/**
 * Whether a connection with these workers may work for this route: every one of them must match it. A proxy's
 * connection carries several workers (accounts), and every share on it goes to the route it works for, metered
 * under the share's worker: routed by its first worker only, a share of another was delivered to that buyer under
 * a (route, worker) no assignment names, never billed nor paid, and no pool credit either. Such a connection is
 * routed only as a whole; a worker that does not match authorizing on a routed one sends it back to pool work
 * (and its shares on the route's jobs are refused: Route.admits). Refusing the other workers' shares while the
 * connection stays routed would throw their hashrate away instead: an operator expects each worker's work paid to
 * it, by the pool or by the buyer it was sold to.
 */
function fitsAll(r: Route, workers: Iterable<AuthorizedWorker>): boolean {
  let any = false;
  for (const w of workers) {
    if (!r.matches(w)) return false;
    any = true;
  }
  return any;
}

/**
 * Routing inside one stratum process: which of its sessions work for which route, carried out with
 * mining.set_extranonce where the miner subscribed to it, else client.reconnect (our host and port) and a resume
 * at mining.subscribe by the subscription id the miner sends back (cpuminer does). Which workers go where is
 * decided elsewhere (routes in the database, or the market): this only executes it for its own sessions.
 */
export class Router extends EventEmitter<RouterEvents> {
  readonly routes = new Map<number, Route>();
  /** Authorized sessions by id (= the subscription id a miner presents when it comes back), in authorization order. */
  private readonly sessions = new Map<string, StratumSession>();
  /**
   * Subscription id → the worker a closed session had authorized, for a miner that comes back after
   * client.reconnect, and when that session closed: the resume memory counts from then (a live session is known
   * from `sessions`, alive now). Counted from the authorization, a miner that had mined longer than resumeMemoryMs
   * came back from our client.reconnect unknown, and was left on pool work for good. Only closed sessions: an
   * entry for every live one was about 100 bytes of each idle connection's heap.
   */
  private readonly known = new Map<string, Remembered>();
  private readonly reconnectSent = new Map<string, number>();
  private readonly cannot = new Map<string, number>();
  private readonly leaving = new WeakSet<StratumSession>();
  /** Sessions that presented a subscription id we knew at mining.subscribe. */
  private readonly presented = new WeakSet<StratumSession>();
  /** Of those, the ones sent client.reconnect to a route that the resume did not put there (on pool work now). */
  private readonly unresumed = new WeakSet<StratumSession>();
  private readonly guardLogged = new WeakSet<StratumSession>();
  /**
   * Places held for miners sent client.reconnect to a route, by the subscription id they come back with (the id of
   * the session sent it): counted in the route's hashrate amount and against its free prefixes until that miner is
   * resumed (or RESERVE_MS has passed). The returning session is neither a member nor authorized at its subscribe,
   * so without its place a route with a hashrate amount never chose it there: its resume failed, and the miner was
   * sent client.reconnect again at its authorize, and so on (2,758 client.reconnects in 8 s).
   */
  private readonly reserved = new Map<string, { routeId: number; hashrate: number; until: number }>();
  /** Probing takes one worker: the one sent client.reconnect for it holds the place until it is back. */
  private readonly probeReserved = new Map<number, { name: string; until: number }>();
  /** Routes removed and still answering their late shares (stopped a few seconds later, or at stop()). */
  private readonly retiring = new Set<Route>();
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;
  readonly moves: Record<MoveMethod, number> = { set_extranonce: 0, reconnect: 0, resume: 0 };
  /** Route start (or resume) → first upstream-accepted share, seconds, per route (last value). */
  readonly switchLatency = new Map<number, number>();
  private readonly startedAt = new Map<number, number>();

  constructor(readonly opts: RouterOptions, readonly meter: RouteMeter, private readonly log?: Logger, private readonly now: () => number = Date.now) {
    super();
  }

  start(): void {
    this.timer = setInterval(() => this.reconcile(), this.opts.reconcileMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const r of this.routes.values()) r.stop();
    for (const r of this.retiring) r.stop();
    this.retiring.clear();
  }

  setReconnectTarget(host: string, port: number, tlsPort?: number): void {
    this.opts.reconnectHost = host;
    this.opts.reconnectPort = port;
    this.opts.reconnectTlsPort = tlsPort;
  }

  /** Add or replace a route (same id and spec: nothing happens). */
  upsert(spec: RouteSpec): Route {
    const old = this.routes.get(spec.id);
    if (old && JSON.stringify(old.spec) === JSON.stringify(spec)) return old;
    if (old && JSON.stringify(old.spec.destinations) === JSON.stringify(spec.destinations)) {
      // Only the workers changed (the market's next tick): same upstream connection, sessions move at reconcile.
      old.spec.workers = [...spec.workers];
      old.spec.name = spec.name;
      old.spec.leaseEndMs = spec.leaseEndMs;
      this.schedule();
      return old;
    }
    if (old) this.remove(spec.id);
    const r = new Route(spec, this.opts, this.meter, this.now);
    this.routes.set(spec.id, r);
    this.startedAt.set(spec.id, this.now());
    r.on('changed', () => this.schedule());
    r.on('state', (st) => {
      // A route replaced under its id (new destinations) retires on its own: its final states are not the id's.
      const current = this.routes.get(spec.id);
      if (current !== undefined && current !== r) return;
      if (st.state === 'ready' && this.startedAt.has(spec.id)) {
        this.switchLatency.set(spec.id, (this.now() - this.startedAt.get(spec.id)!) / 1000);
        this.startedAt.delete(spec.id);
      }
      if (st.state === 'paused') this.startedAt.set(spec.id, this.now());
      this.log?.info({ route: spec.id, state: st.state, code: st.code, message: st.message }, 'route state');
      this.emit('state', spec.id, st);
      this.schedule();
    });
    r.start();
    this.schedule();
    return r;
  }

  /** Stop a route: its workers go back to pool work now (late shares for its jobs are still forwarded). */
  remove(id: number): void {
    const r = this.routes.get(id);
    if (!r) return;
    this.routes.delete(id);
    this.reconcile();
    // Late shares for its jobs still go to it (they come within a second or two of the switch), and its answers to
    // them still count: the connection goes once LATE_SHARES_MS have passed and nothing waits for an answer, at the
    // latest when the last of them would have timed out. (It went after 5 s whatever was waiting: a slow destination's
    // answers after that were lost, the buyer's accepted work unbilled.)
    this.retiring.add(r);
    const lastAt = this.now() + LATE_SHARES_MS + (this.opts.upstream.answerTimeoutMs ?? DEFAULT_UPSTREAM_OPTIONS.answerTimeoutMs);
    const retire = (): void => {
      if (!this.retiring.has(r)) return;
      const now = this.now();
      if (r.pendingAnswers > 0 && now < lastAt) { setTimeout(retire, Math.min(500, lastAt - now)).unref(); return; }
      this.retiring.delete(r);
      r.stop();
    };
    setTimeout(retire, LATE_SHARES_MS).unref();
    r.status = { ...r.status, state: 'stopped' };
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => { this.scheduled = false; this.reconcile(); });
  }

  // ---- StratumHost hooks (through Pool) ----------------------------------------------------------------------

  resumeWork(session: StratumSession, subscriptionId: string | undefined): WorkAssignment | null {
    if (!subscriptionId) return null;
    const k = this.knownOf(subscriptionId);
    if (!k || this.now() - k.at > this.opts.resumeMemoryMs) { this.reserved.delete(subscriptionId); return null; }
    this.presented.add(session);
    // The place held for it (if any) counts as this session's in the route's choice, then is given up: from here
    // the session is a member, or on pool work like any other.
    const sentToRoute = this.reserved.has(subscriptionId);
    const route = this.desired(k.worker, session, subscriptionId, k.workers ?? [k.worker]);
    this.reserved.delete(subscriptionId);
    const m = route?.assign(session, canonical(k.worker));
    if (!route || !m) {
      // Sent client.reconnect to a route and not resumed there (not a miner we sent back to pool work).
      if (sentToRoute) this.unresumed.add(session);
      return null;
    }
    this.mayHaveRouted = true;
    this.moves.resume++;
    this.emit('moved', { routeId: route.spec.id, from: null, worker: canonical(k.worker), session: session.id, method: 'resume', at: this.now() });
    return m.assignment;
  }

  onAuthorized(session: StratumSession, worker: AuthorizedWorker): void {
    this.sessions.set(session.id, session);
    const route = session.route;
    if (route instanceof Route && route.matches(worker)) route.admit(session, canonical(worker));
    this.reconcileSession(session);
  }

  onClose(session: StratumSession): void {
    // Remembered from its close: a miner sent client.reconnect comes back with this id.
    if (this.sessions.delete(session.id)) {
      const k = rememberedOf(session, this.now());
      if (k) this.known.set(session.id, k);
      if (this.known.size > MAX_REMEMBERED) this.known.delete(this.known.keys().next().value as string);
    }
    for (const r of this.routes.values()) r.release(session);
    // A route removed meanwhile (still answering late shares) may hold it too.
    if (session.route instanceof Route) session.route.release(session);
  }

  /** What a subscription id stands for: a live session's workers (alive now), or a closed one's remembered. */
  private knownOf(id: string): Remembered | undefined {
    const live = this.sessions.get(id);
    return live ? rememberedOf(live, this.now()) : this.known.get(id);
  }

  // ---- deciding and moving ----------------------------------------------------------------------------------

  /**
   * Routes with a hashrate amount: which sessions they take. Members stay (no churn), then sessions in id order
   * until the estimated hashrate reaches the amount.
   */
  private chosenFor(r: Route, resuming?: { session: StratumSession; id: string }): Set<StratumSession> {
    const want = r.spec.hashrate ?? 0;
    const chosen = new Set<StratumSession>();
    let sum = 0;
    for (const s of r.members.keys()) {
      if (s.closed || sum >= want) continue;
      chosen.add(s);
      sum += s.estimatedHashrate();
    }
    // Then the places held for miners sent client.reconnect here (at the hashrate they had): the one coming back
    // now (resuming) takes its own.
    const now = this.now();
    for (const [id, h] of this.reserved) {
      if (sum >= want) break;
      if (h.routeId !== r.spec.id || h.until <= now) continue;
      if (resuming && id === resuming.id) chosen.add(resuming.session);
      sum += h.hashrate;
    }
    for (const s of this.sessions.values()) {
      if (sum >= want) break;
      // A session leaving (sent client.reconnect) is counted by its held place, if it is coming here.
      if (chosen.has(s) || s.closed || this.leaving.has(s)) continue;
      if (!fitsAll(r, s.workers.values())) continue;
      chosen.add(s);
      sum += s.estimatedHashrate();
    }
    // A returning session without a held place: a candidate where it will be once authorized (after the others).
    if (resuming && sum < want) chosen.add(resuming.session);
    return chosen;
  }

  /** Places held on this route for miners sent client.reconnect to it and not back yet. */
  private heldPlaces(routeId: number): number {
    const now = this.now();
    let n = 0;
    for (const h of this.reserved.values()) if (h.routeId === routeId && h.until > now) n++;
    return n;
  }

  /** Whether a miner sent client.reconnect to this route now would find a prefix at its resume. */
  private canTakeReconnected(r: Route): boolean {
    return r.freePrefixes() > this.heldPlaces(r.spec.id);
  }

  private chosenCache: Map<Route, Set<StratumSession>> | null = null;

  /**
   * The route this session's worker should work for now, if it can take it. resumingId: the subscription id the
   * session presented at its subscribe (it is being resumed: not authorized yet, not in this.sessions).
   */
  private desired(worker: AuthorizedWorker, session: StratumSession, resumingId?: string, workers?: readonly AuthorizedWorker[]): Route | null {
    const name = canonical(worker);
    const until = this.cannot.get(name);
    if (until !== undefined && until > this.now()) return null;
    for (const r of this.routes.values()) {
      if (!fitsAll(r, workers ?? session.workers.values())) continue;
      if (r.spec.hashrate) {
        let chosen: Set<StratumSession>;
        if (resumingId !== undefined) chosen = this.chosenFor(r, { session, id: resumingId });
        else {
          chosen = this.chosenCache?.get(r) ?? this.chosenFor(r);
          this.chosenCache?.set(r, chosen);
        }
        if (!chosen.has(session)) continue; // not taken for this amount: another route, or pool work
      }
      const a = r.accepting;
      if (a === 'all') return r;
      if (a === 'one') {
        // Probing: one worker's real hashrate until the first accepted share.
        const others = [...r.members.keys()].filter((s) => s !== session && !s.closed);
        const held = this.probeReserved.get(r.spec.id);
        if (held && held.name !== name && held.until > this.now()) return null;
        return others.length === 0 ? r : null;
      }
      return null; // a route that matches but cannot take work: pool work, not another route
    }
    return null;
  }

  /** Some session may be on a route's work (set when one is moved there; cleared by a pass with no routes). */
  private mayHaveRouted = false;

  reconcile(): void {
    if (this.routes.size === 0) {
      // No route: only sessions still on a removed route's work need a move back, and once a pass has made
      // them there are none. Walking 10,000 sessions every pass for nothing was a 4–5 ms stall each time.
      if (!this.mayHaveRouted) return;
      this.mayHaveRouted = false;
    }
    const now = this.now();
    for (const [id, h] of this.reserved) if (h.until <= now) this.reserved.delete(id);
    this.chosenCache = new Map();
    try {
      for (const s of this.sessions.values()) this.reconcileSession(s);
    } finally {
      this.chosenCache = null;
    }
  }

  private reconcileSession(session: StratumSession): void {
    if (session.closed || !session.subscribed || this.leaving.has(session)) return;
    const worker = session.workers.first;
    if (!worker) return;
    const current = session.route as Route | null;
    const member = current ? current.members.get(session) : undefined;
    let target = this.desired(worker, session);
    // Same route but no membership: the upstream session changed (new extranonce1), so it is assigned again.
    if (current === target && (target === null || member)) return;
    if (target && !session.extranonceSubscribed && !this.canTakeReconnected(target)) {
      // Every prefix is in use or in its grace (or held for miners already sent there): a miner sent
      // client.reconnect now would come back to a resume that cannot assign it. It stays on pool work (or goes
      // back to it from a route it should leave); a later pass moves it once a prefix is free.
      if (current === null) return;
      target = null;
    }
    const name = canonical(worker);
    if (current && current !== target) current.release(session);
    let next: WorkAssignment = session.poolWork;
    let to: Route | null = null;
    if (target) {
      if (!session.extranonceSubscribed) {
        // The miner's extranonce1 is fixed by its subscribe reply: it must reconnect, and is resumed by its id.
        return this.reconnect(session, name, target.spec.id, current?.spec.id ?? null);
      }
      const m = target.assign(session, name);
      if (m) { next = m.assignment; to = target; this.mayHaveRouted = true; }
    }
    if (!to && !current) return; // nothing to do: pool work stays pool work
    if (!to && current && !session.extranonceSubscribed) return this.reconnect(session, name, null, current.spec.id);
    if (session.switchWork(next)) {
      this.moves.set_extranonce++;
      this.emit('moved', { routeId: to?.spec.id ?? null, from: current?.spec.id ?? null, worker: name, session: session.id, method: 'set_extranonce', at: this.now() });
    }
  }

  private reconnect(session: StratumSession, name: string, to: number | null, from: number | null): void {
    const sent = this.reconnectSent.get(name);
    if (to !== null && sent !== undefined && this.now() - sent < RECONNECT_GUARD_MS && session.connectedAt >= sent) {
      if (!this.presented.has(session)) {
        // It reconnected after our client.reconnect but without its subscription id: it cannot be resumed, so it
        // stays on pool work (sending another reconnect would only start a storm).
        this.cannot.set(name, this.now() + 10 * 60_000);
        this.log?.warn({ worker: name, session: session.id }, 'routed miner came back without its subscription id: left on pool work');
        this.emit('cannotMove', name, 'reconnected without its subscription id (mining.subscribe session id)');
        return;
      }
      if (this.unresumed.has(session)) {
        // It came back with its id but the resume could not put it on the route: another client.reconnect now
        // would bring it back the same way, and again (a storm). It stays on pool work until the guard has passed.
        if (!this.guardLogged.has(session)) {
          this.guardLogged.add(session);
          this.log?.warn({ worker: name, session: session.id, route: to }, 'routed miner came back and could not be resumed: on pool work, no client.reconnect for now');
        }
        return;
      }
    }
    this.reconnectSent.set(name, this.now());
    if (to !== null) this.reserved.set(session.id, { routeId: to, hashrate: session.estimatedHashrate(), until: this.now() + RESERVE_MS });
    if (to !== null && this.routes.get(to)?.accepting === 'one') this.probeReserved.set(to, { name, until: this.now() + 10_000 });
    this.leaving.add(session);
    this.moves.reconnect++;
    this.emit('moved', { routeId: to, from, worker: name, session: session.id, method: 'reconnect', at: this.now() });
    // A miner on TLS comes back on TLS (cpuminer keeps its URL's scheme and takes only host and port).
    const tls = (session.socket as { encrypted?: boolean }).encrypted === true && this.opts.reconnectTlsPort;
    session.sendReconnect(this.opts.reconnectHost, tls ? this.opts.reconnectTlsPort : this.opts.reconnectPort);
    // A miner that ignores client.reconnect is closed after a grace: it reconnects by itself (and is resumed).
    setTimeout(() => { if (!session.closed) session.close('moved by client.reconnect'); }, 3000).unref();
  }

  /** Sessions working for this route now (for the API and tests). */
  membersOf(id: number): StratumSession[] {
    const r = this.routes.get(id);
    return r ? [...r.members.keys()].filter((s) => !s.closed && s.route === r) : [];
  }
}
