import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NAME_CAPS, storableText } from '../src/store/copy.ts';
import type { ShareRowMeta } from '../src/store/types.ts';
import { AGENT_RECHECK_MS, UserAgentSteps } from '../src/store/user-agents.ts';

/** The plain form: each batch worked out afresh, with a map per batch (what share-writer did before UserAgentSteps). */
function plainUpdates(shares: readonly ShareRowMeta[], userAgentOf: (sessionId: string) => string | undefined,
  written: ReadonlyMap<string, { userAgent: string; at: number }>, now: number) {
  const agents = new Map<string, { account: string; worker: string; userAgents: string[] }>();
  const lastOfSession = new Map<string, ShareRowMeta>();
  for (const s of shares) {
    const last = lastOfSession.get(s.sessionId);
    if (last && s.account === last.account && s.worker === last.worker) continue;
    lastOfSession.set(s.sessionId, s);
    const ua = userAgentOf(s.sessionId);
    if (!ua || s.account === '') continue;
    const account = storableText(s.account.slice(0, NAME_CAPS.account));
    const worker = storableText(s.worker.slice(0, NAME_CAPS.worker));
    const userAgent = storableText(ua.slice(0, NAME_CAPS.userAgent));
    const key = account + '\0' + worker;
    const a = agents.get(key);
    if (!a) agents.set(key, { account, worker, userAgents: [userAgent] });
    else if (!a.userAgents.includes(userAgent)) a.userAgents.push(userAgent);
  }
  const out = { accounts: [] as string[], workers: [] as string[], userAgents: [] as string[], remember: [] as [string, string][], forget: [] as string[] };
  for (const [key, a] of agents) {
    if (a.userAgents.length === 1) {
      const w = written.get(key);
      if (w && w.userAgent === a.userAgents[0] && now - w.at < AGENT_RECHECK_MS) continue;
      out.remember.push([key, a.userAgents[0]]);
    } else {
      out.forget.push(key);
    }
    for (const ua of a.userAgents) {
      out.accounts.push(a.account);
      out.workers.push(a.worker);
      out.userAgents.push(ua);
    }
  }
  return out;
}

// Names that collide once capped or cleaned of NUL, the empty account, and agents that do too.
const ACCOUNTS = ['alice', 'bob', '', 'a\0lice', 'x'.repeat(NAME_CAPS.account + 3), 'x'.repeat(NAME_CAPS.account) + 'y'];
const WORKERS = ['rig1', 'rig2', 'default', 'r\0ig1', 'w'.repeat(NAME_CAPS.worker + 1)];
const AGENTS = [undefined, '', 'cgminer/4.12', 'cgminer/4.13', 'bmminer\t2', 'c\0gminer/4.12', 'u'.repeat(NAME_CAPS.userAgent + 2), 'u'.repeat(NAME_CAPS.userAgent)];

test('UserAgentSteps gives the plain form\'s updates, batch after batch, with what it remembers between them', () => {
  const share = fc.record({ session: fc.nat(7), account: fc.nat(ACCOUNTS.length - 1), worker: fc.nat(WORKERS.length - 1) });
  const batch = fc.record({
    shares: fc.array(share, { maxLength: 30 }),
    // A session's agent as this batch sees it (a reconnect under the same id, a lookup that misses).
    agents: fc.array(fc.nat(AGENTS.length - 1), { minLength: 8, maxLength: 8 }),
    advanceMs: fc.oneof(fc.constant(1000), fc.constant(AGENT_RECHECK_MS)),
    commits: fc.boolean(),
  });
  let nonEmpty = 0;
  fc.assert(fc.property(fc.array(batch, { minLength: 1, maxLength: 25 }), (batches) => {
    const steps = new UserAgentSteps();
    const written = new Map<string, { userAgent: string; at: number }>();
    let now = 1_700_000_000_000;
    for (const b of batches) {
      now += b.advanceMs;
      const metas: ShareRowMeta[] = b.shares.map((s) => ({
        time: now, account: ACCOUNTS[s.account], worker: WORKERS[s.worker], sessionId: `s${s.session}`, outcome: 'accepted', blockHash: undefined,
      }));
      const agentOf = (id: string) => AGENTS[b.agents[Number(id.slice(1))]];
      const expected = plainUpdates(metas, agentOf, written, now);
      assert.deepEqual(steps.forBatch(metas, agentOf, written, now), expected);
      if (expected.accounts.length > 0) nonEmpty++;
      // As the writer does once the batch commits, or after a failed one.
      if (b.commits) {
        for (const [key, userAgent] of expected.remember) written.set(key, { userAgent, at: now });
        for (const key of expected.forget) written.delete(key);
      } else {
        for (const [key] of expected.remember) written.delete(key);
      }
    }
  }), { numRuns: 300 });
  assert.ok(nonEmpty > 100, `batches with updates: ${nonEmpty}`);
});
