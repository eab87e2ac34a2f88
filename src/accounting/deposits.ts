import { Transaction } from '@scure/btc-signer';
import type { Logger } from 'pino';
import type { NetworkName } from '../chain/index.ts';
import { RpcError } from '../node/rpc.ts';
import type { Database, Queryable } from '../store/db.ts';
import type { RpcCaller } from './chain-values.ts';
import { NotFoundError, ValidationError } from './errors.ts';
import { Ledger, credit, debit, owned, pool } from './ledger.ts';
import { walletAddressScript, walletError } from './payouts/wallet.ts';
import { MAX_SATS } from './types.ts';

// Funding from the chain: each account gets an address of the node wallet (getnewaddress "hashhub:<account>");
// every pass reads the wallet's receipts since the last pass (listsinceblock, the cursor kept in the database),
// records those to deposit addresses, credits the account's balance from the ledger's wallet once a deposit has
// `confirmations` (key deposit:<txid>:<vout>), and reverses a credited deposit whose block left the best chain.
//
// Why the crediting reads the deposits table and not the wallet's listing: a deposit is recorded (committed)
// before it is credited, and the credit, its ledger entry and the state change commit in one transaction under
// the outpoint's key, so a crash anywhere leaves either "seen" (credited next pass) or "credited" (never again).
//
// A reversal takes the amount back from the account's balance. When the account already spent it (escrowed in
// the market, paid out) the balance gives what it has and the rest goes to the account's deposit_shortfall
// (what it owes the pool): the wallet's ledger account still loses the whole deposit, nothing goes negative,
// and the outcome is 'reversed-short' (logged as an error, listed in the accounting status) for the operator.

export interface DepositPolicy {
  /** Confirmations before a deposit is credited (≥ 1). */
  confirmations: number;
  /** How deep a credited deposit is still checked against the best chain (blocks). */
  reorgWatchBlocks: number;
  network: NetworkName;
}

export const DEFAULT_DEPOSIT_POLICY: Omit<DepositPolicy, 'network'> = { confirmations: 6, reorgWatchBlocks: 144 };

/** Points where a test stops the pass (throws or SIGKILLs): after recording, inside the credit's transaction, after it. */
export type DepositFault = 'recorded' | 'credit-posted' | 'credited';

export type DepositOutcome =
  | { kind: 'credited'; txid: string; vout: number; accountId: bigint; amount: bigint; key: string }
  | { kind: 'reversed'; txid: string; vout: number; accountId: bigint; amount: bigint; key: string }
  /** Reversed, but the balance held less than the deposit: `shortfall` is owed by the account (operator alerted). */
  | { kind: 'reversed-short'; txid: string; vout: number; accountId: bigint; amount: bigint; key: string; shortfall: bigint }
  | { kind: 'failed'; txid: string; vout: number; error: string };

export interface DepositReport {
  /** Receipts to deposit addresses recorded or refreshed this pass. */
  recorded: number;
  /** Deposits seen but below the confirmation threshold. */
  waiting: number;
  outcomes: DepositOutcome[];
}

export interface DepositView {
  txid: string; vout: number; address: string; amount: bigint; state: string; confirmations: number;
  blockHash: string | null; blockHeight: number | null; credits: number; shortfall: bigint;
  firstSeenAt: string; creditedAt: string | null; reversedAt: string | null;
}

interface SinceBlockEntry {
  address?: string; category: string; amount: number; vout: number; confirmations: number; txid: string;
  blockhash?: string; blockheight?: number;
}
interface WalletTx { confirmations: number; blockhash?: string; blockheight?: number }

const KEY_RE = /^[A-Za-z0-9_.:-]{1,100}$/;
const iso = (t: number) => new Date(t).toISOString();

/** The ledger keys of the n-th credit of an outpoint and of its reversal (n = 1 keeps the plain key). */
export function depositKeys(txid: string, vout: number, n: number): { credit: string; reversal: string } {
  const base = `deposit:${txid}:${vout}`;
  return n === 1 ? { credit: base, reversal: `${base}:reversal` } : { credit: `${base}:credit${n}`, reversal: `${base}:reversal${n}` };
}

export class Deposits {
  readonly ledger = new Ledger();

  constructor(
    private readonly db: Database,
    /** The node (getblockcount) and the wallet (getnewaddress, listsinceblock, gettransaction). */
    private readonly rpc: { node: RpcCaller; wallet: RpcCaller },
    readonly policy: DepositPolicy,
    private readonly log: Logger,
    private readonly fault: (p: DepositFault, txid: string) => void = () => {},
  ) {
    if (!Number.isInteger(policy.confirmations) || policy.confirmations < 1) throw new ValidationError('confirmations', 'must be a whole number ≥ 1');
  }

  /** The account's current deposit address, made by the node wallet the first time it is asked for. */
  async address(accountId: bigint, account: string): Promise<{ address: string; label: string; createdAt: string; created: boolean }> {
    const cur = await this.current(accountId);
    if (cur) return { ...cur, created: false };
    const label = `hashhub:${account}`;
    let address: string;
    try {
      address = (await this.rpc.wallet.call<string>('getnewaddress', [label])).trim();
    } catch (e) {
      if (!(e instanceof RpcError && e.kind === 'rpc' && /account not found/i.test(e.rpcMessage ?? ''))) throw walletError(e, 'getnewaddress');
      // bcoin reads the argument as an account that must exist: an unlabelled address (the label is ours anyway).
      try {
        address = (await this.rpc.wallet.call<string>('getnewaddress', [''])).trim();
      } catch (e2) {
        throw walletError(e2, 'getnewaddress');
      }
    }
    // An address of another network is refused here, not later.
    const script = walletAddressScript(address, this.policy.network).toString('hex');
    const ins = await this.db.query(
      `INSERT INTO deposit_addresses (address, account_id, script, label) VALUES ($1, $2::bigint, $3, $4)
       ON CONFLICT (account_id) WHERE current DO NOTHING`, [address, accountId.toString(), script, label]);
    const won = await this.current(accountId);
    if (!won) throw new Error(`no current deposit address for account ${accountId} after inserting one`);
    return { ...won, created: ins.rowCount > 0 && won.address === address };
  }

  private async current(accountId: bigint): Promise<{ address: string; label: string; createdAt: string } | null> {
    const r = await this.db.query<{ address: string; label: string; created_at: Date | string }>(
      'SELECT address, label, created_at FROM deposit_addresses WHERE account_id = $1::bigint AND current', [accountId.toString()]);
    return r.rows.length ? { address: r.rows[0].address, label: r.rows[0].label, createdAt: new Date(r.rows[0].created_at).toISOString() } : null;
  }

  /** One pass: record new receipts, credit what has enough confirmations, reverse what a reorg removed. */
  async run(now: number): Promise<DepositReport> {
    // No address handed out yet: nothing to watch (and a node without a wallet is no error until then).
    const any = await this.db.query('SELECT 1 FROM deposit_addresses LIMIT 1');
    if (any.rows.length === 0) return { recorded: 0, waiting: 0, outcomes: [] };
    const recorded = await this.scan();
    const outcomes: DepositOutcome[] = [];
    let tip: number;
    try {
      tip = await this.rpc.node.call<number>('getblockcount', []);
    } catch (e) {
      throw walletError(e, 'getblockcount');
    }
    // Credited deposits first: a reorg that removed one must be seen before anything is credited on top. Whether
    // a block is still in the best chain is the node's answer (getblockheader: confirmations -1 off the main
    // chain), not the wallet's: a wallet that lost a transaction must not reverse a deposit the chain still has.
    const watched = await this.db.query<{ txid: string; vout: number; block_hash: string | null }>(
      `SELECT txid, vout, block_hash FROM deposits WHERE state = 'credited' AND (block_height IS NULL OR block_height > $1)
       ORDER BY block_height, txid, vout`,
      [tip - this.policy.reorgWatchBlocks]);
    const inBest = new Map<string, boolean>();
    for (const d of watched.rows) {
      const o = await this.guard(d, async () => {
        const gone = d.block_hash === null ? await this.walletSaysGone(d.txid) : !(await this.blockInBest(d.block_hash, inBest));
        return gone ? this.reverse(d.txid, d.vout, d.block_hash, now) : null;
      });
      if (o) outcomes.push(o);
    }
    // What the listing shows for credited deposits: their depth now (beyond the watch window it stops moving).
    await this.db.query(
      `UPDATE deposits SET confirmations = $1 - block_height + 1 WHERE state = 'credited' AND block_height > $2 AND confirmations <> $1 - block_height + 1`,
      [tip, tip - this.policy.reorgWatchBlocks]);
    const open = await this.db.query<{ txid: string; vout: number; state: 'seen' | 'reversed' }>(
      `SELECT txid, vout, state FROM deposits WHERE state IN ('seen', 'reversed') ORDER BY first_seen_at, txid, vout`);
    let waiting = 0;
    for (const d of open.rows) {
      const o = await this.guard(d, () => this.creditIfDeep(d.txid, d.vout, now, d.state === 'reversed'));
      if (o === null) waiting++;
      else outcomes.push(o);
    }
    return { recorded, waiting, outcomes };
  }

  private async guard(d: { txid: string; vout: number }, fn: () => Promise<DepositOutcome | null>): Promise<DepositOutcome | null> {
    try {
      return await fn();
    } catch (e) {
      // One deposit's trouble (a wallet error, a ledger refusal) must not stop the others: retried next pass.
      this.log.error({ txid: d.txid, vout: d.vout, err: (e as Error).message }, 'deposit step failed; retried next pass');
      return { kind: 'failed', txid: d.txid, vout: d.vout, error: (e as Error).message };
    }
  }

  /** listsinceblock from the stored cursor; receipts to deposit addresses are recorded with the new cursor. */
  private async scan(): Promise<number> {
    const c = await this.db.query<{ last_block: string | null }>('SELECT last_block FROM deposit_scan');
    let cursor = c.rows[0]?.last_block ?? null;
    // A cursor a reorg took off the best chain: bcoin 1.0.2's listsinceblock fails on it ("Cannot read properties
    // of undefined (reading 'height')", every pass, so nothing was credited or reversed again); Core lists from
    // the fork. Either way, read everything again (it changes nothing already recorded).
    if (cursor && !(await this.blockInBest(cursor, new Map()).catch(() => true))) {
      this.log.warn({ cursor }, 'deposit cursor left the best chain: rescanning from the start');
      await this.db.query('DELETE FROM deposit_scan');
      cursor = null;
    }
    let r: { transactions: SinceBlockEntry[]; lastblock: string };
    try {
      // No cursor yet: from the genesis block, which Core reads as "everything" and bcoin (which has no "no
      // block" case that works, and reads the second argument as a minimum depth) reads the same way.
      const from = cursor ?? (await this.rpc.node.call<string>('getblockhash', [0]));
      r = await this.rpc.wallet.call('listsinceblock', [from, this.policy.confirmations, false, false]);
    } catch (e) {
      if (cursor && e instanceof RpcError && e.kind === 'rpc' && e.code === -5) {
        // The wallet does not know the cursor's block (a new wallet, a chain reset): read everything again.
        this.log.warn({ cursor }, 'deposit cursor unknown to the wallet: rescanning from the start');
        await this.db.query('DELETE FROM deposit_scan');
        return this.scan();
      }
      throw walletError(e, 'listsinceblock');
    }
    // Receipts by output script, read from the transaction itself, one per output. Not the listing's amount,
    // address and vout: Core lists one entry per output, but bcoin 1.0.2 lists one entry per transaction whose
    // amount is the sum of every wallet output, with the address and vout of the last one: a transaction paying
    // two deposit addresses (an exchange's batched withdrawal) would credit both amounts to the last account,
    // and a deposit followed by an output to another wallet address would not be credited at all.
    const listed = new Map<string, SinceBlockEntry>();
    for (const t of r.transactions) {
      if (t.category !== 'receive' || !(t.amount > 0) || typeof t.txid !== 'string') continue;
      const id = t.txid.toLowerCase();
      if (!listed.has(id)) listed.set(id, t);
    }
    const receipts: (SinceBlockEntry & { script: string; sats: bigint })[] = [];
    for (const [id, t] of listed) {
      for (const o of await this.txOutputs(id)) receipts.push({ ...t, txid: id, vout: o.vout, script: o.script, sats: o.amount });
    }
    const scripts = [...new Set(receipts.map((t) => t.script))];
    let n = 0;
    await this.db.transaction(async (tx) => {
      const owners = new Map<string, { address: string; account: string }>();
      if (scripts.length) {
        const a = await tx.query<{ address: string; script: string; account_id: string }>(
          'SELECT address, script, account_id::text FROM deposit_addresses WHERE script = ANY($1::text[])', [scripts]);
        for (const row of a.rows) owners.set(row.script, { address: row.address, account: row.account_id });
      }
      for (const t of receipts) {
        const owner = owners.get(t.script);
        if (!owner) continue;
        const conf = t.confirmations;
        await tx.query(
          `INSERT INTO deposits (txid, vout, address, account_id, amount, block_hash, block_height, confirmations, state)
           VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6, $7, $8, 'seen')
           ON CONFLICT (txid, vout) DO UPDATE SET block_hash = EXCLUDED.block_hash, block_height = EXCLUDED.block_height,
             confirmations = EXCLUDED.confirmations, updated_at = now()
           WHERE deposits.state <> 'credited'`,
          [t.txid, t.vout, owner.address, owner.account, t.sats.toString(), conf > 0 ? t.blockhash ?? null : null,
            conf > 0 ? t.blockheight ?? null : null, conf]);
        n++;
      }
      // bcoin answers an all-zero lastblock when it listed nothing: keep the cursor we have.
      if (r.lastblock && !/^0+$/.test(r.lastblock)) {
        await tx.query(
          `INSERT INTO deposit_scan (id, last_block) VALUES (true, $1) ON CONFLICT (id) DO UPDATE SET last_block = EXCLUDED.last_block, updated_at = now()`,
          [r.lastblock]);
      }
    });
    if (n) this.fault('recorded', receipts[0].txid);
    return n;
  }

  /** A transaction's outputs (script hex, exact satoshis): the wallet's copy (Core), else the node's (bcoin, txindex). */
  private async txOutputs(txid: string): Promise<{ vout: number; script: string; amount: bigint }[]> {
    let hex: string | undefined;
    try {
      hex = (await this.rpc.wallet.call<{ hex?: string }>('gettransaction', [txid]))?.hex;
    } catch (e) {
      if (!(e instanceof RpcError && e.kind === 'rpc')) throw walletError(e, 'gettransaction');
    }
    if (typeof hex !== 'string' || !hex) {
      try {
        hex = await this.rpc.node.call<string>('getrawtransaction', [txid, false]);
      } catch (e) {
        throw walletError(e, 'getrawtransaction');
      }
    }
    const tx = Transaction.fromRaw(Buffer.from(hex, 'hex'), { allowUnknownOutputs: true, allowUnknownInputs: true, disableScriptCheck: true });
    if (tx.id !== txid) throw new Error(`transaction ${txid}: the raw transaction read back has txid ${tx.id}`);
    const out: { vout: number; script: string; amount: bigint }[] = [];
    for (let i = 0; i < tx.outputsLength; i++) {
      const o = tx.getOutput(i);
      if (o.script && o.amount !== undefined) out.push({ vout: i, script: Buffer.from(o.script).toString('hex'), amount: o.amount });
    }
    return out;
  }

  /** `goneIsZero`: a transaction both wallet and node answer they do not know has no confirmations (not an error). */
  private async walletTx(txid: string, goneIsZero = false): Promise<WalletTx> {
    let first: unknown = new Error('the wallet\'s answer has no confirmations');
    try {
      const w = await this.rpc.wallet.call<WalletTx>('gettransaction', [txid]);
      if (typeof w?.confirmations === 'number') return w;
    } catch (e) {
      if (!(e instanceof RpcError && e.kind === 'rpc')) throw walletError(e, 'gettransaction');
      first = e;
    }
    // A wallet that cannot answer for a confirmed transaction (bcoin 1.0.2: "Invalid integer value.", or no
    // confirmations at all): the node's view (its transaction index), with the block's height from its header.
    let t: { confirmations?: number; blockhash?: string };
    try {
      t = await this.rpc.node.call<{ confirmations?: number; blockhash?: string }>('getrawtransaction', [txid, true]);
    } catch (e) {
      // Answers from both (not a wallet or node that is down: the wallet's transport errors were thrown above, and
      // bcoin's wallet answers for such a transaction without confirmations): neither knows it.
      if (goneIsZero && e instanceof RpcError && e.kind === 'rpc') return { confirmations: 0 };
      throw walletError(first, 'gettransaction');
    }
    if (!t || typeof t !== 'object') throw walletError(first, 'gettransaction');
    if (!t.blockhash || !t.confirmations) return { confirmations: t.confirmations ?? 0 };
    try {
      const hdr = await this.rpc.node.call<{ height: number }>('getblockheader', [t.blockhash, true]);
      return { confirmations: t.confirmations, blockhash: t.blockhash, blockheight: hdr.height };
    } catch {
      throw walletError(first, 'gettransaction');
    }
  }

  /**
   * A seen (or reversed) deposit with enough confirmations: credit it, entry and state in one transaction. A reversed
   * deposit's transaction may be known to neither wallet nor node (bcoin drops one a reorg made invalid; Core keeps it
   * as conflicted): it waits, at no confirmations, in case it is mined again.
   */
  private async creditIfDeep(txid: string, vout: number, now: number, reversed: boolean): Promise<DepositOutcome | null> {
    const w = await this.walletTx(txid, reversed);
    if (w.confirmations < this.policy.confirmations) {
      await this.db.query('UPDATE deposits SET confirmations = $3, updated_at = now() WHERE txid = $1 AND vout = $2 AND confirmations <> $3',
        [txid, vout, w.confirmations]);
      return null;
    }
    const out = await this.db.transaction(async (tx) => {
      const d = await lockDeposit(tx, txid, vout);
      if (d.state === 'credited') return null; // another process was first
      const n = d.credits + 1;
      const key = depositKeys(txid, vout, n).credit;
      await this.ledger.post(tx, {
        key, kind: 'deposit_credit', effectiveAt: new Date(now), memo: `deposit to ${d.address}`,
        refs: { txid, vout, block: w.blockhash ?? null }, postings: [debit(pool('wallet'), d.amount), credit(owned('balance', d.accountId), d.amount)],
      });
      await tx.query(
        `UPDATE deposits SET state = 'credited', credits = $3, confirmations = $4, block_hash = $5, block_height = $6,
           credited_at = $7::timestamptz, shortfall = 0, updated_at = now() WHERE txid = $1 AND vout = $2`,
        [txid, vout, n, w.confirmations, w.blockhash ?? null, w.blockheight ?? null, iso(now)]);
      this.fault('credit-posted', txid);
      return { kind: 'credited', txid, vout, accountId: d.accountId, amount: d.amount, key } as const;
    });
    if (out) {
      this.log.info({ txid, vout, account: out.accountId.toString(), amount: out.amount.toString() }, 'deposit credited');
      this.fault('credited', txid);
    }
    return out;
  }

  private async blockInBest(hash: string, cache: Map<string, boolean>): Promise<boolean> {
    const known = cache.get(hash);
    if (known !== undefined) return known;
    let h: { confirmations: number; height: number };
    let atHeight: string | null = null;
    try {
      h = await this.rpc.node.call<{ confirmations: number; height: number }>('getblockheader', [hash, true]);
      // Core answers -1 off the best chain; bcoin 1.0.2 answers tip - height + 1 for any block it knows, so a
      // block a longer chain replaced still looks confirmed there: the best chain's block at its height decides.
      if (h.confirmations >= 1) atHeight = await this.rpc.node.call<string>('getblockhash', [h.height]);
    } catch (e) {
      // A block the node never heard of (a reset chain) is an operator's problem, not a reorg: no reversal.
      throw walletError(e, 'getblockheader');
    }
    const active = h.confirmations >= 1 && atHeight !== null && atHeight.toLowerCase() === hash.toLowerCase();
    cache.set(hash, active);
    return active;
  }

  /** A credited deposit without a stored block (never expected): the wallet says whether it is still mined. */
  private async walletSaysGone(txid: string): Promise<boolean> {
    return (await this.walletTx(txid)).confirmations < 1;
  }

  /** Reverse a credited deposit whose block left the best chain. */
  private async reverse(txid: string, vout: number, stored: string | null, now: number): Promise<DepositOutcome | null> {
    // Where the wallet sees the transaction now (back in the mempool, in another block), for the row only.
    const w = await this.walletTx(txid).catch(() => ({ confirmations: 0 } as WalletTx));
    const out = await this.db.transaction(async (tx) => {
      const d = await lockDeposit(tx, txid, vout);
      if (d.state !== 'credited') return null;
      const key = depositKeys(txid, vout, d.credits).reversal;
      // The account's balance row is locked by FOR UPDATE so what we read is what the entry may take.
      const [balId] = await this.ledger.resolve(tx, [owned('balance', d.accountId)]);
      const b = await tx.query<{ balance: string }>('SELECT balance::text FROM ledger_accounts WHERE id = $1::bigint FOR UPDATE', [balId.toString()]);
      const have = BigInt(b.rows[0].balance);
      const back = have < d.amount ? have : d.amount;
      const shortfall = d.amount - back;
      const postings = [credit(pool('wallet'), d.amount)];
      if (back > 0n) postings.push(debit(owned('balance', d.accountId), back));
      if (shortfall > 0n) postings.push(debit(owned('deposit_shortfall', d.accountId), shortfall));
      await this.ledger.post(tx, {
        key, kind: 'deposit_reversal', effectiveAt: new Date(now),
        memo: `deposit's block ${stored ?? '?'} left the best chain${shortfall > 0n ? `; ${shortfall} sat already spent: owed by the account` : ''}`,
        refs: { txid, vout, block: stored, shortfall: shortfall.toString() }, postings,
      });
      await tx.query(
        `UPDATE deposits SET state = 'reversed', reversed_at = $3::timestamptz, shortfall = $4::bigint, confirmations = $5,
           block_hash = $6, block_height = $7, updated_at = now() WHERE txid = $1 AND vout = $2`,
        [txid, vout, iso(now), shortfall.toString(), w.confirmations, w.confirmations >= 1 ? w.blockhash ?? null : null,
          w.confirmations >= 1 ? w.blockheight ?? null : null]);
      const base = { txid, vout, accountId: d.accountId, amount: d.amount, key };
      return shortfall > 0n ? { kind: 'reversed-short', ...base, shortfall } as const : { kind: 'reversed', ...base } as const;
    });
    if (out?.kind === 'reversed-short') {
      this.log.error({ txid, vout, account: out.accountId.toString(), amount: out.amount.toString(), shortfall: out.shortfall.toString() },
        'ALERT: a reorg removed a credited deposit the account had already spent; the shortfall is owed by the account (deposit_shortfall)');
    } else if (out) {
      this.log.warn({ txid, vout, account: out.accountId.toString(), amount: out.amount.toString() }, 'deposit reversed: its block left the best chain');
    }
    return out;
  }

  async list(q: Queryable, accountId: bigint, opts: { limit: number; offset: number }): Promise<{ total: number; items: DepositView[] }> {
    const r = await q.query<{ txid: string; vout: number; address: string; amount: string; state: string; confirmations: number; block_hash: string | null;
      block_height: number | null; credits: number; shortfall: string; first_seen_at: Date | string; credited_at: Date | string | null;
      reversed_at: Date | string | null; n: string }>(
      `SELECT txid, vout, address, amount::text, state, confirmations, block_hash, block_height, credits, shortfall::text, first_seen_at,
         credited_at, reversed_at, count(*) OVER ()::text AS n
       FROM deposits WHERE account_id = $1::bigint ORDER BY first_seen_at DESC, txid, vout LIMIT $2 OFFSET $3`,
      [accountId.toString(), opts.limit, opts.offset]);
    const d = (v: Date | string | null) => (v ? new Date(v).toISOString() : null);
    return {
      total: r.rows.length ? Number(r.rows[0].n) : 0,
      items: r.rows.map((x) => ({
        txid: x.txid, vout: Number(x.vout), address: x.address, amount: BigInt(x.amount), state: x.state, confirmations: Number(x.confirmations),
        blockHash: x.block_hash, blockHeight: x.block_height === null ? null : Number(x.block_height), credits: Number(x.credits),
        shortfall: BigInt(x.shortfall), firstSeenAt: d(x.first_seen_at) as string, creditedAt: d(x.credited_at), reversedAt: d(x.reversed_at),
      })),
    };
  }

  /** Reversed deposits the account could not give back (for the operator's status). */
  async shortfalls(q: Queryable): Promise<{ account: string; txid: string; vout: number; shortfall: string }[]> {
    const r = await q.query<{ name: string; txid: string; vout: number; shortfall: string }>(
      `SELECT a.name, d.txid, d.vout, d.shortfall::text FROM deposits d JOIN accounts a ON a.id = d.account_id
       WHERE d.state = 'reversed' AND d.shortfall > 0 ORDER BY d.reversed_at DESC LIMIT 100`);
    return r.rows.map((x) => ({ account: x.name, txid: x.txid, vout: Number(x.vout), shortfall: x.shortfall }));
  }

  /**
   * An operator's credit to an account's balance, from the pool's operator_adjustments (the operator's equity:
   * it may go negative; no coin moves). Who and why are kept in the entry and in operator_credits; the same key
   * twice is one credit ('duplicate'); the same key with another account or amount is IdempotencyConflictError.
   */
  async operatorCredit(accountId: bigint, amount: bigint, reason: string, who: string, key: string, now: number): Promise<{ status: 'posted' | 'duplicate'; entryId: bigint }> {
    if (amount <= 0n || amount > MAX_SATS) throw new ValidationError('amount', 'must be a whole number of satoshis between 1 and 2,100,000,000,000,000');
    const why = reason.trim();
    if (!why) throw new ValidationError('reason', 'say why (it is kept with the entry)');
    if (why.length > 500) throw new ValidationError('reason', 'at most 500 characters');
    if (!KEY_RE.test(key)) throw new ValidationError('key', 'an idempotency key of 1-100 characters [A-Za-z0-9_.:-]');
    return this.db.transaction(async (tx) => {
      const r = await this.ledger.post(tx, {
        key: `operator:credit:${key}`, kind: 'operator_credit', effectiveAt: new Date(now), memo: `${who}: ${why}`,
        refs: { who, reason: why }, postings: [debit(pool('operator_adjustments'), amount), credit(owned('balance', accountId), amount)],
      });
      if (r.status === 'posted') {
        await tx.query(
          `INSERT INTO operator_credits (account_id, amount, reason, who, idempotency_key, entry_id) VALUES ($1::bigint, $2::bigint, $3, $4, $5, $6::bigint)`,
          [accountId.toString(), amount.toString(), why, who, key, r.entryId.toString()]);
        this.log.info({ account: accountId.toString(), amount: amount.toString(), who, reason: why, key }, 'operator credit');
      }
      return r;
    });
  }
}

async function lockDeposit(tx: Queryable, txid: string, vout: number): Promise<{ state: string; credits: number; amount: bigint; accountId: bigint; address: string }> {
  const r = await tx.query<{ state: string; credits: number; amount: string; account_id: string; address: string }>(
    'SELECT state, credits, amount::text, account_id::text, address FROM deposits WHERE txid = $1 AND vout = $2 FOR UPDATE', [txid, vout]);
  if (!r.rows.length) throw new NotFoundError(`deposit ${txid}:${vout} not recorded`);
  const d = r.rows[0];
  return { state: d.state, credits: Number(d.credits), amount: BigInt(d.amount), accountId: BigInt(d.account_id), address: d.address };
}
