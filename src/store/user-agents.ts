import { NAME_CAPS, storableText } from './copy.ts';
import type { ShareRowMeta } from './types.ts';

/**
 * How long a user agent this writer stored for a worker is trusted to be still there (another process, or an
 * operator, may have written another since): after that it is sent again with the worker's next batch.
 */
export const AGENT_RECHECK_MS = 10 * 60_000;

/** UPDATE_USER_AGENTS_OF's arrays for one batch, and what the writer notes or forgets once it commits. */
export interface AgentUpdates {
  accounts: string[];
  workers: string[];
  userAgents: string[];
  /** Workers with one agent in the batch: noted in `written` once the batch commits. */
  remember: [string, string][];
  /** Workers with several: UPDATE_USER_AGENTS_OF stores the greatest; forgotten, so the next batch sends again. */
  forget: string[];
}

/**
 * A worker as the staging table keeps its names ("account\0worker"), and the agents its sessions had in the batch
 * numbered `batch`: the first, and any others (rare: two sessions of one worker with different agents).
 */
interface WorkerAgents {
  account: string;
  worker: string;
  key: string;
  batch: number;
  agent: string;
  more: string[] | null;
}

/**
 * A session's last share: its names and agent as they came ('' for none), the agent as stored, and the worker they
 * resolved to (null: nothing to store, no agent or no account); `batch`, the last batch it was seen in.
 */
interface SessionLast {
  account: string;
  worker: string;
  userAgent: string;
  storedAgent: string;
  to: WorkerAgents | null;
  batch: number;
}

/** Sessions and workers remembered between batches; both maps are emptied at a batch's start past this. */
const REMEMBERED_MAX = 50_000;

/**
 * UPDATE_USER_AGENTS_OF's arrays per batch: each account and worker (as the staging table keeps the names) with its
 * sessions' user agents, once each, in the order the batch first names them. A worker whose one agent in the batch
 * is the one this writer stored for it (in `written`, within AGENT_RECHECK_MS) is left out: the update would change
 * nothing.
 *
 * Why it remembers sessions between batches: with 10k connections nearly every share of a batch is its session's
 * only one, and working out its worker afresh (capped and cleaned names, the "account\0worker" key, a map entry per
 * batch for the session and one for the worker) was about 450 bytes of garbage per share. A session whose names and
 * agent are those of its last share resolves to the same worker object, stamped with the batch's number.
 */
export class UserAgentSteps {
  private readonly sessions = new Map<string, SessionLast>();
  private readonly workers = new Map<string, WorkerAgents>();
  private batch = 0;

  forBatch(shares: readonly ShareRowMeta[], userAgentOf: (sessionId: string) => string | undefined,
    written: ReadonlyMap<string, { userAgent: string; at: number }>, now: number): AgentUpdates {
    const batch = ++this.batch;
    if (this.sessions.size > REMEMBERED_MAX || this.workers.size > REMEMBERED_MAX) {
      this.sessions.clear();
      this.workers.clear();
    }
    const touched: WorkerAgents[] = [];
    for (const s of shares) {
      let last = this.sessions.get(s.sessionId);
      // Most shares repeat their session's last names within the batch: nothing new (the agent is looked up once
      // per session and batch).
      if (last && last.batch === batch && s.account === last.account && s.worker === last.worker) continue;
      const ua = userAgentOf(s.sessionId) ?? '';
      if (!last || s.account !== last.account || s.worker !== last.worker || ua !== last.userAgent) {
        const stores = ua !== '' && s.account !== '';
        last = {
          account: s.account, worker: s.worker, userAgent: ua,
          storedAgent: stores ? storableText(ua.slice(0, NAME_CAPS.userAgent)) : '',
          to: stores ? this.workerOf(s.account, s.worker) : null, batch,
        };
        this.sessions.set(s.sessionId, last);
      }
      last.batch = batch;
      const w = last.to;
      if (w === null) continue;
      const agent = last.storedAgent;
      if (w.batch !== batch) {
        w.batch = batch;
        w.agent = agent;
        w.more = null;
        touched.push(w);
      } else if (agent !== w.agent && !(w.more?.includes(agent) ?? false)) {
        (w.more ??= []).push(agent);
      }
    }
    const out: AgentUpdates = { accounts: [], workers: [], userAgents: [], remember: [], forget: [] };
    for (const w of touched) {
      if (w.more === null) {
        const stored = written.get(w.key);
        if (stored && stored.userAgent === w.agent && now - stored.at < AGENT_RECHECK_MS) continue;
        out.remember.push([w.key, w.agent]);
      } else {
        out.forget.push(w.key);
      }
      out.accounts.push(w.account);
      out.workers.push(w.worker);
      out.userAgents.push(w.agent);
      for (const ua of w.more ?? []) {
        out.accounts.push(w.account);
        out.workers.push(w.worker);
        out.userAgents.push(ua);
      }
    }
    return out;
  }

  private workerOf(rawAccount: string, rawWorker: string): WorkerAgents {
    const account = storableText(rawAccount.slice(0, NAME_CAPS.account));
    const worker = storableText(rawWorker.slice(0, NAME_CAPS.worker));
    const key = account + '\0' + worker;
    let w = this.workers.get(key);
    if (!w) {
      w = { account, worker, key, batch: 0, agent: '', more: null };
      this.workers.set(key, w);
    }
    return w;
  }
}
