import { createHash } from 'node:crypto';
import { Transaction } from '@scure/btc-signer';
import type { Logger } from 'pino';
import { type NetworkName, addressToScript, fromHex, hashToDisplay, isValidAddress, isWitnessProgram, parseTx } from '../../chain/index.ts';
import type { Database, Queryable } from '../../store/db.ts';
import { ConflictError, InsufficientBalanceError, NotFoundError, ValidationError } from '../errors.ts';
import { Ledger, credit, debit, owned, pool } from '../ledger.ts';
import { MAX_SATS, type Posting } from '../types.ts';
import { type BuiltTx, type Coin, type Output, buildPayout, bumpPayout, withLockTime } from './build.ts';
import { type PayoutWallet, type SignedTx, WalletError, measure } from './wallet.ts';

// Payout batches through the node wallet, exactly once.
//
//   pending ──build+sign──▶ signed ──sendrawtransaction──▶ broadcast ──N confirmations──▶ confirmed
//      (no money moved)   (tx stored, amounts reserved:       (the same stored tx,       (in-flight and the
//                          balances → payouts_in_flight,       re-sent after a crash,      network fee leave
//                          in ONE transaction)                 never a new one)            the wallet)
//
// The signed transaction, its txid and the reserve entry are committed before anything is broadcast, so a crash
// anywhere leaves either nothing (a pending batch, rebuilt next time) or a stored transaction that is broadcast
// again, byte for byte. A fee bump replaces it by RBF over the same inputs; whichever of the batch's transactions
// confirms settles it, with its own fee. The wallet being unreachable, locked or short of coins leaves the batch
// pending with the reason (balances untouched) and it is retried on the next run. External signer mode stops
// at awaiting_signature with the PSBT; `confirm(txid)` takes it from there.

export interface PayoutPolicy {
  network: NetworkName;
  mode: 'wallet' | 'external';
  /** Paid when the balance reaches the account's threshold, or this one when it has none. */
  defaultThreshold: bigint;
  /** A payout address change holds that account's payouts for this long. */
  addressChangeDelaySeconds: number;
  /** A payout counts as paid (settled in the ledger) at this many confirmations. */
  confirmations: number;
  /** estimatesmartfee target, blocks. */
  confTarget: number;
  /** sat/vB when the node has no estimate (regtest, a young node). */
  fallbackSatVb: number;
  /** Never pay more than this rate, whatever the estimate. */
  maxSatVb: number;
  minSatVb: number;
  /** Outputs per transaction (standard transactions stop near 100 kvB: ~2,900 P2WPKH outputs). */
  maxOutputs: number;
  /** Re-send an unconfirmed payout this often (a node may have dropped it), seconds. */
  rebroadcastSeconds: number;
}

export const DEFAULT_POLICY: Omit<PayoutPolicy, 'network'> = {
  mode: 'wallet', defaultThreshold: 1_000_000n, addressChangeDelaySeconds: 86_400, confirmations: 1, confTarget: 6,
  fallbackSatVb: 2, maxSatVb: 200, minSatVb: 1, maxOutputs: 2000, rebroadcastSeconds: 600,
};

export type PendingCode =
  | 'wallet-unreachable' | 'wallet-locked' | 'wallet-error' | 'insufficient-funds' | 'ledger-wallet-short' | 'balance-changed'
  | 'broadcast-rejected' | 'broadcast-unreachable';

export type CreateOutcome =
  | { kind: 'nothing'; reason: string }
  | { kind: 'pending'; batchId: bigint; code: PendingCode; reason: string }
  | { kind: 'signed'; batchId: bigint; txid: string }
  | { kind: 'awaiting-signature'; batchId: bigint; txid: string; psbt: string };

export type ProgressOutcome =
  | { kind: 'broadcast'; batchId: bigint; txid: string }
  | { kind: 'broadcast-failed'; batchId: bigint; code: PendingCode; reason: string }
  | { kind: 'confirmed'; batchId: bigint; txid: string; fee: bigint }
  | { kind: 'waiting'; batchId: bigint; confirmations: number }
  | { kind: 'conflicted'; batchId: bigint };

/** A fee bump: the replacement stored as the batch's transaction, and whether the node took it. */
export type BumpOutcome =
  | { txid: string; fee: bigint; sent: true }
  | { txid: string; fee: bigint; sent: false; reason: string };

/** Where a fault-injection test may stop the process: between every step that moves money. */
export type FaultPoint = 'prepared' | 'signed' | 'reserved' | 'before-send' | 'after-send' | 'before-settle' | 'settled';

export interface Line { accountId: bigint; account: string; address: string; amount: bigint }

export interface BatchView {
  id: bigint;
  status: string;
  mode: string;
  reason: string | null;
  reasonCode: string | null;
  attempts: number;
  total: bigint;
  lines: number;
  txid: string | null;
  confirmedTxid: string | null;
  networkFee: bigint | null;
  confirmations: number;
  createdAt: string;
  signedAt: string | null;
  broadcastAt: string | null;
  confirmedAt: string | null;
  txids: string[];
}

interface StoredTx { txid: string; hex: string; fee: bigint; vsize: number; inputs: Coin[]; changeIndex: number; signed: boolean; broadcastAt: string | null; replaces: string | null }

const iso = (t: number) => new Date(t).toISOString();

function fingerprint(lines: readonly Line[]): string {
  const h = createHash('sha256');
  for (const l of lines) h.update(`${l.accountId}:${l.address}:${l.amount};`);
  return h.digest('hex');
}

export class Payouts {
  private readonly ledger = new Ledger();
  private readonly lastSend = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly wallet: PayoutWallet,
    readonly policy: PayoutPolicy,
    private readonly log?: Logger,
    /** Fault injection for crash tests: throw (or kill the process) at a point. */
    private readonly fault: (p: FaultPoint, batchId: bigint) => void = () => {},
  ) {}

  /** Progress batches in flight, then start a new one. Each part's failure is its own. */
  async run(now: number): Promise<{ progressed: ProgressOutcome[]; created: CreateOutcome }> {
    const progressed = await this.progress(now);
    const created = await this.create(now);
    return { progressed, created };
  }

  // ---- a new batch ---------------------------------------------------------------------------------------

  /** Accounts due a payout now, in account id order (at most maxOutputs). */
  async dueLines(q: Queryable, now: number): Promise<Line[]> {
    const r = await q.query<{ account_id: string; name: string; payout_address: string | null; balance: string }>(
      `SELECT la.account_id::text, a.name, s.payout_address, la.balance::text
       FROM ledger_accounts la
       JOIN accounts a ON a.id = la.account_id
       LEFT JOIN account_settings s ON s.account_id = la.account_id
       WHERE la.kind = 'balance' AND la.balance > 0 AND la.balance >= coalesce(s.threshold, $1::bigint)
         AND (s.payout_address_changed_at IS NULL OR s.payout_address_changed_at <= $2::timestamptz)
       ORDER BY la.account_id`,
      [this.policy.defaultThreshold.toString(), iso(now - this.policy.addressChangeDelaySeconds * 1000)],
    );
    const lines: Line[] = [];
    for (const row of r.rows) {
      // No address: the account's name when it is one, otherwise the balance waits for the owner to set one.
      const address = row.payout_address ?? (isValidAddress(row.name, this.policy.network) ? row.name : null);
      if (!address || !isValidAddress(address, this.policy.network)) continue;
      lines.push({ accountId: BigInt(row.account_id), account: row.name, address, amount: BigInt(row.balance) });
      if (lines.length >= this.policy.maxOutputs) break;
    }
    return lines;
  }

  /** Create or refresh the pending batch from the balances due now (no money moves). */
  async prepare(now: number): Promise<{ batchId: bigint; lines: Line[]; fp: string } | null> {
    return this.db.transaction(async (tx) => {
      const pending = await tx.query<{ id: string }>("SELECT id::text FROM payout_batches WHERE status = 'pending' FOR UPDATE");
      const lines = await this.dueLines(tx, now);
      let id = pending.rows[0]?.id ?? null;
      if (lines.length === 0) {
        if (id) {
          await tx.query('DELETE FROM payout_lines WHERE batch_id = $1::bigint', [id]);
          await tx.query('DELETE FROM payout_batches WHERE id = $1::bigint', [id]);
        }
        return null;
      }
      if (!id) {
        id = (await tx.query<{ id: string }>(
          "INSERT INTO payout_batches (status, mode) VALUES ('pending', $1) RETURNING id::text", [this.policy.mode])).rows[0].id;
      }
      await tx.query('DELETE FROM payout_lines WHERE batch_id = $1::bigint', [id]);
      await tx.query(
        `INSERT INTO payout_lines (batch_id, account_id, address, amount)
         SELECT $1::bigint, a, ad, m FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS x(a, ad, m)`,
        [id, lines.map((l) => l.accountId.toString()), lines.map((l) => l.address), lines.map((l) => l.amount.toString())],
      );
      const total = lines.reduce((s, l) => s + l.amount, 0n);
      await tx.query('UPDATE payout_batches SET total = $2::bigint, updated_at = now() WHERE id = $1::bigint', [id, total.toString()]);
      return { batchId: BigInt(id), lines, fp: fingerprint(lines) };
    });
  }

  private async pendingReason(batchId: bigint, code: PendingCode, reason: string): Promise<CreateOutcome> {
    await this.db.query(
      `UPDATE payout_batches SET reason = $2, reason_code = $3, attempts = attempts + 1, updated_at = now() WHERE id = $1::bigint AND status = 'pending'`,
      [batchId.toString(), reason, code],
    );
    this.log?.warn({ batch: batchId.toString(), code, reason }, 'payout batch pending');
    return { kind: 'pending', batchId, code, reason };
  }

  /** Inputs already spent by a stored payout transaction that has not confirmed: never selected again. */
  private async reservedInputs(q: Queryable): Promise<Set<string>> {
    const r = await q.query<{ inputs: { txid: string; vout: number }[] | string }>(
      `SELECT t.inputs FROM payout_txs t JOIN payout_batches b ON b.id = t.batch_id
       WHERE b.status IN ('signed', 'broadcast', 'awaiting_signature')`,
    );
    const set = new Set<string>();
    for (const row of r.rows) {
      const inputs = typeof row.inputs === 'string' ? (JSON.parse(row.inputs) as { txid: string; vout: number }[]) : row.inputs;
      for (const i of inputs) set.add(`${i.txid}:${i.vout}`);
    }
    return set;
  }

  private async txidOnRecord(txid: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM payout_txs WHERE txid = $1', [txid])).rows.length > 0;
  }

  /**
   * Sign `built` (or take its unsigned transaction, external mode). A txid already on record is another batch's
   * (a cancelled, never-sent batch over the same coins, outputs and change script: segwit txids leave the
   * signatures out), so another lock time makes this one its own; null after 16 tries.
   */
  private async signUnique(built: BuiltTx, lockTime: number): Promise<{ built: BuiltTx; signed: SignedTx } | null> {
    for (let tries = 0; tries < 16; tries++, lockTime++) {
      const b = tries === 0 ? built : withLockTime(built, lockTime);
      const signed = this.policy.mode === 'external' ? unsignedTx(b) : await this.wallet.sign(b);
      if (!(await this.txidOnRecord(signed.txid))) return { built: b, signed };
    }
    return null;
  }

  /** The fee rate to pay: the node's estimate (or the fallback), within [minSatVb, maxSatVb]. */
  async feeRate(): Promise<{ satVb: number; source: 'estimate' | 'fallback'; capped: boolean }> {
    const est = await this.wallet.estimateFeeRate(this.policy.confTarget);
    const raw = est ?? this.policy.fallbackSatVb;
    const satVb = Math.min(this.policy.maxSatVb, Math.max(this.policy.minSatVb, raw));
    return { satVb, source: est === null ? 'fallback' : 'estimate', capped: raw > this.policy.maxSatVb };
  }

  /** Build, sign and store a new batch (wallet mode), or its PSBT (external mode). Nothing is broadcast here. */
  async create(now: number): Promise<CreateOutcome> {
    const prepared = await this.prepare(now);
    if (!prepared) return { kind: 'nothing', reason: 'no account is due a payout' };
    const { batchId, lines, fp } = prepared;
    this.fault('prepared', batchId);
    let built: BuiltTx;
    let signed: SignedTx;
    try {
      const reserved = await this.reservedInputs(this.db);
      const coins = (await this.wallet.coins()).filter((c) => !reserved.has(`${c.txid}:${c.vout}`));
      const outputs: Output[] = lines.map((l) => ({ script: addressToScript(l.address, this.policy.network), value: l.amount }));
      const rate = await this.feeRate();
      const r = buildPayout(coins, outputs, await this.wallet.changeScript(), rate.satVb);
      if (r.kind === 'insufficient-funds') {
        return await this.pendingReason(batchId, 'insufficient-funds', `the wallet's spendable coins (${r.have} sat) do not cover the batch and its fee (${r.need} sat)`);
      }
      const unique = await this.signUnique(r.tx, 0);
      if (!unique) return await this.pendingReason(batchId, 'wallet-error', 'the payout transaction built is already on record and no lock time gave another');
      ({ built, signed } = unique);
    } catch (e) {
      if (e instanceof WalletError) {
        const code: PendingCode = e.code === 'unreachable' ? 'wallet-unreachable' : e.code === 'locked' ? 'wallet-locked' : 'wallet-error';
        return this.pendingReason(batchId, code, e.message);
      }
      throw e;
    }
    this.fault('signed', batchId);
    try {
      await this.commit(batchId, fp, lines, built, signed, now);
    } catch (e) {
      if (e instanceof InsufficientBalanceError) {
        return this.pendingReason(batchId, 'balance-changed', 'a balance of the batch changed while it was signed; it is rebuilt on the next run');
      }
      if (e instanceof LedgerWalletShortError) return this.pendingReason(batchId, 'ledger-wallet-short', e.message);
      if (e instanceof ConflictError) return { kind: 'nothing', reason: e.message };
      throw e;
    }
    this.fault('reserved', batchId);
    if (this.policy.mode === 'external') {
      return { kind: 'awaiting-signature', batchId, txid: signed.txid, psbt: Buffer.from(built.psbt).toString('base64') };
    }
    return { kind: 'signed', batchId, txid: signed.txid };
  }

  /**
   * The signed transaction, its inputs and the reserve entry, in one transaction, only if the batch is still the
   * pending one with the same lines, and the ledger's wallet covers it beside what is already in flight.
   */
  async commit(batchId: bigint, fp: string, lines: Line[], built: BuiltTx, signed: SignedTx, now: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      const b = await tx.query<{ status: string }>('SELECT status FROM payout_batches WHERE id = $1::bigint FOR UPDATE', [batchId.toString()]);
      if (b.rows[0]?.status !== 'pending') throw new ConflictError(`batch ${batchId} is no longer pending (another process took it)`);
      // Ordered by the column, not by its text form (which would put 10 before 9).
      const cur = await tx.query<{ account_id: string; address: string; amount: string }>(
        'SELECT l.account_id::text AS account_id, l.address, l.amount::text AS amount FROM payout_lines l WHERE l.batch_id = $1::bigint ORDER BY l.account_id',
        [batchId.toString()]);
      const now2 = cur.rows.map((r) => ({ accountId: BigInt(r.account_id), account: '', address: r.address, amount: BigInt(r.amount) }));
      if (fingerprint(now2) !== fp) throw new ConflictError(`batch ${batchId} changed while it was signed`);
      const total = lines.reduce((s, l) => s + l.amount, 0n);
      await this.checkLedgerWallet(tx, total + built.fee);
      await tx.query(
        `INSERT INTO payout_txs (txid, batch_id, hex, fee, vsize, fee_rate, inputs, change_index, signed)
         VALUES ($1, $2::bigint, $3, $4::bigint, $5, $6::numeric, $7::jsonb, $8, $9)`,
        [signed.txid, batchId.toString(), signed.hex, built.fee.toString(), signed.vsize, (Number(built.fee) / signed.vsize).toFixed(3),
          JSON.stringify(built.inputs.map(inputJson)), built.changeIndex, this.policy.mode === 'wallet'],
      );
      const postings: Posting[] = lines.map((l) => debit(owned('balance', l.accountId), l.amount));
      postings.push(credit(pool('payouts_in_flight'), total));
      await this.ledger.post(tx, {
        key: `payout:${batchId}:reserve`, kind: 'payout_reserve', effectiveAt: new Date(now),
        memo: `payout batch ${batchId}: ${lines.length} output(s), tx ${signed.txid}`, refs: { batch: batchId.toString(), txid: signed.txid }, postings,
      });
      await tx.query(
        `UPDATE payout_batches SET status = $2, txid = $3, total = $4::bigint, psbt = $5, reason = NULL, reason_code = NULL,
           signed_at = $6::timestamptz, updated_at = now() WHERE id = $1::bigint`,
        [batchId.toString(), this.policy.mode === 'external' ? 'awaiting_signature' : 'signed', signed.txid, total.toString(),
          this.policy.mode === 'external' ? Buffer.from(built.psbt).toString('base64') : null, iso(now)],
      );
    });
  }

  /** The ledger's wallet must cover this batch beside every reserved, unsettled one (else a settle would fail). */
  private async checkLedgerWallet(q: Queryable, need: bigint): Promise<void> {
    const w = await q.query<{ balance: string }>("SELECT balance::text FROM ledger_accounts WHERE kind = 'wallet' AND account_id IS NULL FOR UPDATE");
    const inFlight = await q.query<{ s: string }>(
      `SELECT coalesce(sum(b.total + t.fee), 0)::text AS s FROM payout_batches b JOIN payout_txs t ON t.txid = b.txid
       WHERE b.status IN ('signed', 'broadcast', 'awaiting_signature')`);
    const have = BigInt(w.rows[0]?.balance ?? '0') - BigInt(inFlight.rows[0].s);
    if (have < need) {
      throw new LedgerWalletShortError(`the ledger's wallet account holds ${have} sat not yet promised, the batch needs ${need}: if the node wallet holds coins the ledger does not know (blocks before accounting, a top-up), record them with \`hashhub accounting fund\``);
    }
  }

  // ---- batches in flight ---------------------------------------------------------------------------------

  /** Broadcast stored transactions, follow broadcast ones to their confirmation. */
  async progress(now: number): Promise<ProgressOutcome[]> {
    const out: ProgressOutcome[] = [];
    const r = await this.db.query<{ id: string; status: string }>(
      "SELECT b.id::text AS id, b.status FROM payout_batches b WHERE b.status IN ('signed', 'broadcast') ORDER BY b.id");
    for (const b of r.rows) {
      const id = BigInt(b.id);
      try {
        if (b.status === 'signed') {
          const sent = await this.broadcast(id, now);
          out.push(sent);
          // A replacement the node refuses (a bump) leaves earlier transactions of the batch out there, and one of
          // them may confirm: followed all the same, or the batch would stay signed for ever after it did.
          if (sent.kind !== 'broadcast' && !(await this.sentBefore(id))) continue;
        }
        out.push(await this.track(id, now));
      } catch (e) {
        // One batch's trouble never stops the others (a failed DB transaction once stopped every payout).
        this.log?.error({ batch: b.id, err: (e as Error).message }, 'payout batch step failed; retried next run');
        out.push({ kind: 'broadcast-failed', batchId: id, code: 'wallet-error', reason: (e as Error).message });
      }
    }
    return out;
  }

  /** True when a transaction of the batch other than its current one was sent (it was bumped). */
  private async sentBefore(batchId: bigint): Promise<boolean> {
    const r = await this.db.query(
      `SELECT 1 FROM payout_txs t JOIN payout_batches b ON b.id = t.batch_id
       WHERE t.batch_id = $1::bigint AND t.txid <> b.txid AND t.broadcast_at IS NOT NULL LIMIT 1`, [batchId.toString()]);
    return r.rows.length > 0;
  }

  private async txsOf(q: Queryable, batchId: bigint): Promise<StoredTx[]> {
    const r = await q.query<{ txid: string; hex: string; fee: string; vsize: number; inputs: unknown; change_index: number; signed: boolean;
      broadcast_at: Date | string | null; replaces: string | null }>(
      'SELECT txid, hex, fee::text, vsize, inputs, change_index, signed, broadcast_at, replaces FROM payout_txs WHERE batch_id = $1::bigint ORDER BY created_at, txid',
      [batchId.toString()]);
    return r.rows.map((t) => {
      const inputs = (typeof t.inputs === 'string' ? JSON.parse(t.inputs) : t.inputs) as { txid: string; vout: number; value: string; script: string; address?: string }[];
      return {
        txid: t.txid, hex: t.hex, fee: BigInt(t.fee), vsize: Number(t.vsize), changeIndex: Number(t.change_index), signed: t.signed,
        broadcastAt: t.broadcast_at ? new Date(t.broadcast_at).toISOString() : null, replaces: t.replaces,
        inputs: inputs.map((i) => ({ txid: i.txid, vout: i.vout, value: BigInt(i.value), script: Buffer.from(i.script, 'hex'), confirmations: 0, address: i.address })),
      };
    });
  }

  /** Send the batch's current stored transaction (the same bytes every time). */
  async broadcast(batchId: bigint, now: number): Promise<ProgressOutcome> {
    // Marked under the batch's lock before the send, and only while the batch may still be sent: from here on
    // the transaction may be out there. A cancel takes the same lock and looks again (a cancelled batch is
    // never sent; a sent one is never cancelled unless its transaction is seen conflicted).
    const { txid, t } = await this.db.transaction(async (q) => {
      const b = await q.query<{ txid: string | null; status: string }>('SELECT txid, status FROM payout_batches WHERE id = $1::bigint FOR UPDATE', [batchId.toString()]);
      const row = b.rows[0];
      if (!row) throw new NotFoundError(`no payout batch ${batchId}`);
      if (row.status !== 'signed' && row.status !== 'broadcast') throw new ConflictError(`batch ${batchId} is ${row.status}: not sent`);
      if (!row.txid) throw new NotFoundError(`batch ${batchId} has no transaction`);
      const stored = (await this.txsOf(q, batchId)).find((x) => x.txid === row.txid) as StoredTx;
      await q.query('UPDATE payout_txs SET broadcast_at = coalesce(broadcast_at, $2::timestamptz) WHERE txid = $1', [row.txid, iso(now)]);
      return { txid: row.txid, t: stored };
    });
    this.fault('before-send', batchId);
    const outcome = await this.wallet.broadcast(t.hex);
    this.lastSend.set(txid, now);
    this.fault('after-send', batchId);
    if (outcome.kind === 'accepted' || outcome.kind === 'known' || outcome.kind === 'confirmed') {
      await this.db.query(
        `UPDATE payout_batches SET status = 'broadcast', broadcast_at = coalesce(broadcast_at, $2::timestamptz), reason = NULL, reason_code = NULL,
           updated_at = now() WHERE id = $1::bigint AND status IN ('signed', 'broadcast')`,
        [batchId.toString(), iso(now)]);
      return { kind: 'broadcast', batchId, txid };
    }
    const code: PendingCode = outcome.kind === 'unreachable' ? 'broadcast-unreachable' : 'broadcast-rejected';
    await this.db.query('UPDATE payout_batches SET reason = $2, reason_code = $3, attempts = attempts + 1, updated_at = now() WHERE id = $1::bigint',
      [batchId.toString(), `sendrawtransaction: ${outcome.reason}`, code]);
    this.log?.warn({ batch: batchId.toString(), txid, code, reason: outcome.reason }, 'payout broadcast failed; the same transaction is sent again next run');
    return { kind: 'broadcast-failed', batchId, code, reason: outcome.reason };
  }

  /** Follow a broadcast batch: settle when one of its transactions has enough confirmations; re-send otherwise. */
  async track(batchId: bigint, now: number): Promise<ProgressOutcome> {
    const b = await this.db.query<{ txid: string; status: string }>('SELECT txid, status FROM payout_batches WHERE id = $1::bigint', [batchId.toString()]);
    const current = b.rows[0]?.txid;
    const txs = await this.txsOf(this.db, batchId);
    let best = 0;
    let conflicted = 0;
    for (const t of txs) {
      const s = await this.wallet.status(t.txid);
      if (s.kind === 'confirmed') {
        await this.db.query('UPDATE payout_txs SET confirmations = $2, block_hash = $3 WHERE txid = $1', [t.txid, s.confirmations, s.blockHash]);
        if (s.confirmations >= this.policy.confirmations) {
          this.fault('before-settle', batchId);
          await this.settle(batchId, t.txid, s.confirmations, now);
          this.fault('settled', batchId);
          return { kind: 'confirmed', batchId, txid: t.txid, fee: t.fee };
        }
        best = Math.max(best, s.confirmations);
      } else if (s.kind === 'conflicted') {
        conflicted++;
      } else if (t.txid === current) {
        const last = this.lastSend.get(t.txid) ?? 0;
        if (s.kind === 'unknown' || now - last >= this.policy.rebroadcastSeconds * 1000) {
          // A node restart or eviction can forget it: the same bytes again (never a new transaction).
          await this.wallet.broadcast(t.hex);
          this.lastSend.set(t.txid, now);
        }
      }
    }
    await this.db.query('UPDATE payout_batches SET confirmations = $2, updated_at = now() WHERE id = $1::bigint', [batchId.toString(), best]);
    if (conflicted === txs.length && txs.length > 0) {
      await this.db.query("UPDATE payout_batches SET reason = 'every transaction of the batch is conflicted: `hashhub payouts cancel` returns the amounts', reason_code = 'conflicted' WHERE id = $1::bigint", [batchId.toString()]);
      return { kind: 'conflicted', batchId };
    }
    return { kind: 'waiting', batchId, confirmations: best };
  }

  /** The payout is on chain: in-flight and the network fee leave the wallet (idempotent on the batch). */
  private async settle(batchId: bigint, txid: string, confirmations: number, now: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      const b = await tx.query<{ status: string; total: string }>('SELECT status, total::text FROM payout_batches WHERE id = $1::bigint FOR UPDATE', [batchId.toString()]);
      if (!b.rows[0] || b.rows[0].status === 'confirmed') return;
      if (b.rows[0].status === 'cancelled') throw new ConflictError(`batch ${batchId} was cancelled but ${txid} confirmed: see the operator log`);
      const fee = BigInt((await tx.query<{ fee: string }>('SELECT fee::text FROM payout_txs WHERE txid = $1', [txid])).rows[0].fee);
      const total = BigInt(b.rows[0].total);
      await this.ledger.post(tx, {
        key: `payout:${batchId}:settle`, kind: 'payout_settle', effectiveAt: new Date(now),
        memo: `payout batch ${batchId} confirmed in ${txid}`, refs: { batch: batchId.toString(), txid },
        postings: [debit(pool('payouts_in_flight'), total), debit(pool('network_fees'), fee), credit(pool('wallet'), total + fee)],
      });
      await tx.query(
        `UPDATE payout_batches SET status = 'confirmed', confirmed_txid = $2, network_fee = $3::bigint, confirmations = $4,
           confirmed_at = $5::timestamptz, reason = NULL, reason_code = NULL, updated_at = now() WHERE id = $1::bigint`,
        [batchId.toString(), txid, fee.toString(), confirmations, iso(now)]);
    });
  }

  // ---- operator actions ------------------------------------------------------------------------------------

  /**
   * Replace the batch's transaction by one paying `satVb` over the same inputs (BIP125), and send it. Refused when a
   * transaction of the batch is confirmed already (it settles the batch at the policy's confirmations: a replacement
   * could only be refused by the node). `sent` says whether the node took the replacement; refused, it is sent again
   * each run, and whichever transaction of the batch confirms settles it.
   */
  async bump(batchId: bigint, satVb: number, now: number, opts: { force?: boolean } = {}): Promise<BumpOutcome> {
    if (!(satVb > 0)) throw new ValidationError('feeRate', 'must be a positive number of sat/vB');
    if (satVb > this.policy.maxSatVb && !opts.force) throw new ValidationError('feeRate', `${satVb} sat/vB is above the cap of ${this.policy.maxSatVb} (use --force)`);
    const b = await this.db.query<{ status: string; txid: string }>('SELECT status, txid FROM payout_batches WHERE id = $1::bigint', [batchId.toString()]);
    if (!b.rows[0]) throw new NotFoundError(`no payout batch ${batchId}`);
    if (b.rows[0].status !== 'broadcast' && b.rows[0].status !== 'signed') throw new ConflictError(`batch ${batchId} is ${b.rows[0].status}: only an unconfirmed payout can be bumped`);
    const all = await this.txsOf(this.db, batchId);
    for (const t of all) {
      if (t.broadcastAt === null) continue;
      const st = await this.wallet.status(t.txid);
      if (st.kind === 'confirmed') {
        throw new ConflictError(`batch ${batchId}: ${t.txid} is confirmed (${st.confirmations} of ${this.policy.confirmations}); nothing to bump, it settles the batch`);
      }
    }
    const prev = all.find((t) => t.txid === b.rows[0].txid) as StoredTx;
    const parsed = parseTx(fromHex(prev.hex));
    const outputs = parsed.outputs.map((o) => ({ script: o.scriptPubKey, value: o.value }));
    // BIP125: more in absolute fee, by at least the incremental relay fee (1 sat/vB) of the replacement.
    const newFee = BigInt(Math.max(Math.ceil(prev.vsize * satVb), Number(prev.fee) + prev.vsize));
    const built0 = bumpPayout({ inputs: prev.inputs, outputs, changeIndex: prev.changeIndex, fee: prev.fee, lockTime: parsed.locktime }, newFee);
    if (!built0) throw new ConflictError(`batch ${batchId} has no change output large enough to pay ${newFee} sat over the same inputs`);
    let built: BuiltTx;
    let signed: SignedTx;
    try {
      const unique = await this.signUnique(built0, parsed.locktime);
      if (!unique) throw new ConflictError(`batch ${batchId}: every replacement built is already on record`);
      ({ built, signed } = unique);
    } catch (e) {
      throw e instanceof WalletError ? new ConflictError(`cannot sign the replacement: ${e.message}`) : e;
    }
    await this.db.transaction(async (tx) => {
      // A cancel or a settle may have come while the wallet signed: then the replacement is dropped, unsent.
      const now2 = await tx.query<{ status: string; txid: string }>('SELECT status, txid FROM payout_batches WHERE id = $1::bigint FOR UPDATE', [batchId.toString()]);
      if ((now2.rows[0]?.status !== 'broadcast' && now2.rows[0]?.status !== 'signed') || now2.rows[0].txid !== prev.txid) {
        throw new ConflictError(`batch ${batchId} changed while the replacement was signed (now ${now2.rows[0]?.status}); nothing was sent`);
      }
      await tx.query(
        `INSERT INTO payout_txs (txid, batch_id, hex, fee, vsize, fee_rate, inputs, change_index, signed, replaces)
         VALUES ($1, $2::bigint, $3, $4::bigint, $5, $6::numeric, $7::jsonb, $8, true, $9)`,
        [signed.txid, batchId.toString(), signed.hex, newFee.toString(), signed.vsize, (Number(newFee) / signed.vsize).toFixed(3),
          JSON.stringify(prev.inputs.map(inputJson)), built.changeIndex, prev.txid]);
      await tx.query("UPDATE payout_batches SET txid = $2, status = 'signed', updated_at = now() WHERE id = $1::bigint", [batchId.toString(), signed.txid]);
    });
    const sent = await this.broadcast(batchId, now);
    return sent.kind === 'broadcast' ? { txid: signed.txid, fee: newFee, sent: true } : { txid: signed.txid, fee: newFee, sent: false, reason: sent.kind === 'broadcast-failed' ? sent.reason : sent.kind };
  }

  /**
   * Return a batch's reserved amounts to the balances, only when no transaction of it can confirm any more:
   * never sent, or every one of them conflicted (its inputs spent elsewhere). An external batch's PSBT is out of our
   * hands: whoever holds it can sign and send it at any time, so it is cancelled only once it is void (some of its
   * segwit inputs spent by another transaction: the signer spent one elsewhere), or when the operator states that
   * the PSBT was never handed out or every copy is destroyed (`psbtDestroyed`). Before, it was cancelled while its
   * inputs were unspent, and a PSBT signed and sent afterwards paid the returned balances a second time.
   */
  async cancel(batchId: bigint, now: number, who: string, opts: { psbtDestroyed?: boolean } = {}): Promise<void> {
    const b = await this.db.query<{ status: string }>('SELECT status FROM payout_batches WHERE id = $1::bigint', [batchId.toString()]);
    const status = b.rows[0]?.status;
    if (!status) throw new NotFoundError(`no payout batch ${batchId}`);
    if (status === 'pending') {
      await this.db.transaction(async (tx) => {
        await tx.query('DELETE FROM payout_lines WHERE batch_id = $1::bigint', [batchId.toString()]);
        await tx.query("UPDATE payout_batches SET status = 'cancelled', reason = $2, updated_at = now() WHERE id = $1::bigint", [batchId.toString(), `cancelled by ${who}`]);
      });
      return;
    }
    if (status !== 'signed' && status !== 'broadcast' && status !== 'awaiting_signature') throw new ConflictError(`batch ${batchId} is ${status}: nothing to cancel`);
    const txs = await this.txsOf(this.db, batchId);
    if (status === 'awaiting_signature') await this.checkPsbtVoid(batchId, txs, opts.psbtDestroyed === true);
    const seenConflicted = new Set<string>();
    if (status !== 'awaiting_signature') {
      for (const t of txs) {
        if (t.broadcastAt === null) continue;
        const s = await this.wallet.status(t.txid);
        if (s.kind !== 'conflicted') throw new ConflictError(`batch ${batchId}: ${t.txid} was sent and is ${s.kind}; it may still confirm, so the batch cannot be cancelled`);
        seenConflicted.add(t.txid);
      }
    }
    await this.db.transaction(async (tx) => {
      const lock = await tx.query<{ status: string; total: string }>('SELECT status, total::text FROM payout_batches WHERE id = $1::bigint FOR UPDATE', [batchId.toString()]);
      if (lock.rows[0].status !== status) throw new ConflictError(`batch ${batchId} changed meanwhile`);
      // Looked at again under the lock a send takes: a transaction marked sent (or a replacement added) since
      // the check above may be out there.
      if (status !== 'awaiting_signature') {
        for (const t of await this.txsOf(tx, batchId)) {
          if (t.broadcastAt !== null && !seenConflicted.has(t.txid)) {
            throw new ConflictError(`batch ${batchId}: ${t.txid} was sent meanwhile; it may still confirm, so the batch cannot be cancelled`);
          }
        }
      }
      const lines = await tx.query<{ account_id: string; amount: string }>('SELECT account_id::text, amount::text FROM payout_lines WHERE batch_id = $1::bigint', [batchId.toString()]);
      const postings: Posting[] = lines.rows.map((l) => credit(owned('balance', BigInt(l.account_id)), BigInt(l.amount)));
      postings.push(debit(pool('payouts_in_flight'), BigInt(lock.rows[0].total)));
      await this.ledger.post(tx, { key: `payout:${batchId}:cancel`, kind: 'payout_cancel', effectiveAt: new Date(now), memo: `payout batch ${batchId} cancelled by ${who}`, refs: { batch: batchId.toString() }, postings });
      await tx.query("UPDATE payout_batches SET status = 'cancelled', reason = $2, reason_code = NULL, updated_at = now() WHERE id = $1::bigint", [batchId.toString(), `cancelled by ${who}`]);
    });
  }

  /** An external batch may be cancelled: its PSBT can no longer confirm, or the operator says no copy of it is left. */
  private async checkPsbtVoid(batchId: bigint, txs: readonly StoredTx[], destroyed: boolean): Promise<void> {
    const coins = new Set((await this.wallet.coins()).map((c) => `${c.txid}:${c.vout}`));
    const spent = txs.flatMap((t) => t.inputs).filter((i) => !coins.has(`${i.txid}:${i.vout}`));
    if (spent.length === 0) {
      if (destroyed) return;
      throw new ConflictError(`batch ${batchId}: its PSBT can still be signed and sent (its inputs are unspent), and would pay these amounts a second time once they are back in the balances: void it first (with the signer, spend one of its inputs elsewhere), or, if the PSBT was never handed out or every copy of it is destroyed, cancel with --psbt-destroyed`);
    }
    for (const t of txs) {
      const st = await this.wallet.status(t.txid);
      if (st.kind === 'confirmed' || st.kind === 'pending') throw new ConflictError(`batch ${batchId}: its PSBT was signed and sent as ${t.txid} (${st.kind}); confirm it instead (\`hashhub payouts confirm ${t.txid}\`)`);
    }
    // A segwit input's spender keeps the unsigned transaction's txid, so an unknown txid means another spent it. A
    // legacy input's signature changes the txid: the batch's own transaction could be out there under another.
    if (!destroyed && !spent.every((i) => isWitnessProgram(i.script))) {
      throw new ConflictError(`batch ${batchId}: some of its inputs are spent, but not all by segwit scripts, so whether by its own transaction (signed, under another txid) is not known: \`hashhub payouts confirm <txid>\` if it was sent, else cancel with --psbt-destroyed`);
    }
  }

  /**
   * External signer: the operator signed the PSBT and sent it; `txid` is on the node. It must spend exactly the
   * batch's inputs and pay exactly its outputs. From here the batch is followed like any broadcast one.
   */
  async confirmExternal(txid: string, now: number): Promise<{ batchId: bigint }> {
    if (!/^[0-9a-f]{64}$/i.test(txid)) throw new ValidationError('txid', 'must be 64 hex characters');
    const hex = await this.wallet.fetchTx(txid.toLowerCase());
    if (!hex) throw new NotFoundError(`the node does not know transaction ${txid} (was it sent?)`);
    const tx = parseTx(fromHex(hex));
    const ins = tx.inputs.map((i) => `${hashToDisplay(i.prevTxid)}:${i.vout}`).sort().join(',');
    const outs = tx.outputs.map((o) => `${o.scriptPubKey.toString('hex')}:${o.value}`).join(',');
    const candidates = await this.db.query<{ id: string }>("SELECT b.id::text AS id FROM payout_batches b WHERE b.status = 'awaiting_signature' ORDER BY b.id");
    for (const c of candidates.rows) {
      const id = BigInt(c.id);
      for (const t of await this.txsOf(this.db, id)) {
        const u = parseTx(fromHex(t.hex));
        const uIns = u.inputs.map((i) => `${hashToDisplay(i.prevTxid)}:${i.vout}`).sort().join(',');
        const uOuts = u.outputs.map((o) => `${o.scriptPubKey.toString('hex')}:${o.value}`).join(',');
        if (uIns !== ins || uOuts !== outs) continue;
        const m = measure(hex);
        const owner = await this.db.query<{ batch_id: string }>('SELECT batch_id::text FROM payout_txs WHERE txid = $1', [m.txid]);
        if (owner.rows[0] && BigInt(owner.rows[0].batch_id) !== id) {
          throw new ConflictError(`${m.txid} is the transaction of batch ${owner.rows[0].batch_id} (cancelled after its PSBT was handed out, then signed and sent); batch ${id} pays the same outputs from the same inputs and can no longer confirm: see the operator log`);
        }
        await this.db.transaction(async (q) => {
          if (m.txid !== t.txid) {
            await q.query(
              `INSERT INTO payout_txs (txid, batch_id, hex, fee, vsize, fee_rate, inputs, change_index, signed, replaces, broadcast_at)
               SELECT $1, batch_id, $2, fee, $3, fee_rate, inputs, change_index, true, txid, $4::timestamptz FROM payout_txs WHERE txid = $5`,
              [m.txid, hex, m.vsize, iso(now), t.txid]);
          } else {
            await q.query('UPDATE payout_txs SET signed = true, broadcast_at = coalesce(broadcast_at, $2::timestamptz) WHERE txid = $1', [t.txid, iso(now)]);
          }
          await q.query("UPDATE payout_batches SET status = 'broadcast', txid = $2, broadcast_at = $3::timestamptz, updated_at = now() WHERE id = $1::bigint",
            [c.id, m.txid, iso(now)]);
        });
        return { batchId: id };
      }
    }
    throw new NotFoundError(`no batch awaiting a signature spends the inputs and pays the outputs of ${txid}`);
  }

  /** Record coins the node wallet holds that the ledger does not know (an operator top-up, pre-accounting blocks). */
  async fund(sats: bigint, reason: string, who: string, key: string, now: number): Promise<'posted' | 'duplicate'> {
    if (sats <= 0n || sats > MAX_SATS) throw new ValidationError('amount', 'must be a whole number of satoshis between 1 and 2,100,000,000,000,000');
    if (!reason.trim()) throw new ValidationError('reason', 'say why (it is kept with the entry)');
    const r = await this.ledger.postNow(this.db, {
      key: `operator:fund:${key}`, kind: 'operator_adjustment', effectiveAt: new Date(now), memo: `${who}: ${reason}`,
      refs: { who }, postings: [debit(pool('wallet'), sats), credit(pool('operator_adjustments'), sats)],
    });
    return r.status;
  }

  /** The ledger's wallet against the node wallet's spendable coins (what is in flight is already gone from them). */
  async reconcile(): Promise<{ ledgerWallet: bigint; inFlight: bigint; expected: bigint; node: bigint; difference: bigint }> {
    const ledgerWallet = await this.ledger.balance(this.db, pool('wallet'));
    const f = await this.db.query<{ s: string }>(
      `SELECT coalesce(sum(b.total + t.fee), 0)::text AS s FROM payout_batches b JOIN payout_txs t ON t.txid = b.txid WHERE b.status = 'broadcast'`);
    const inFlight = BigInt(f.rows[0].s);
    const node = (await this.wallet.coins()).reduce((s, c) => s + c.value, 0n);
    const expected = ledgerWallet - inFlight;
    return { ledgerWallet, inFlight, expected, node, difference: node - expected };
  }

  async list(q: Queryable, opts: { limit: number; offset: number; accountId?: bigint; id?: bigint }): Promise<{ total: number; items: BatchView[] }> {
    const where = opts.id !== undefined ? 'WHERE b.id = $3::bigint'
      : opts.accountId !== undefined ? 'WHERE b.id IN (SELECT batch_id FROM payout_lines WHERE account_id = $3::bigint)' : '';
    const params: unknown[] = [opts.limit, opts.offset];
    if (opts.id !== undefined) params.push(opts.id.toString());
    else if (opts.accountId !== undefined) params.push(opts.accountId.toString());
    const r = await q.query<{ id: string; status: string; mode: string; reason: string | null; reason_code: string | null; attempts: number; total: string;
      lines: string; txid: string | null; confirmed_txid: string | null; network_fee: string | null; confirmations: number; created_at: Date | string;
      signed_at: Date | string | null; broadcast_at: Date | string | null; confirmed_at: Date | string | null; txids: string[] | null; n: string }>(
      `SELECT b.id::text, b.status, b.mode, b.reason, b.reason_code, b.attempts, b.total::text,
         (SELECT count(*) FROM payout_lines l WHERE l.batch_id = b.id)::text AS lines, b.txid, b.confirmed_txid, b.network_fee::text,
         b.confirmations, b.created_at, b.signed_at, b.broadcast_at, b.confirmed_at,
         (SELECT array_agg(t.txid ORDER BY t.created_at) FROM payout_txs t WHERE t.batch_id = b.id) AS txids,
         count(*) OVER ()::text AS n
       FROM payout_batches b ${where} ORDER BY b.id DESC LIMIT $1 OFFSET $2`, params);
    const d = (v: Date | string | null) => (v ? new Date(v).toISOString() : null);
    return {
      total: r.rows.length ? Number(r.rows[0].n) : 0,
      items: r.rows.map((x) => ({
        id: BigInt(x.id), status: x.status, mode: x.mode, reason: x.reason, reasonCode: x.reason_code, attempts: Number(x.attempts), total: BigInt(x.total),
        lines: Number(x.lines), txid: x.txid, confirmedTxid: x.confirmed_txid, networkFee: x.network_fee === null ? null : BigInt(x.network_fee),
        confirmations: Number(x.confirmations), createdAt: d(x.created_at) as string, signedAt: d(x.signed_at), broadcastAt: d(x.broadcast_at),
        confirmedAt: d(x.confirmed_at), txids: x.txids ?? [],
      })),
    };
  }

  async lines(q: Queryable, batchId: bigint): Promise<Line[]> {
    const r = await q.query<{ account_id: string; name: string; address: string; amount: string }>(
      'SELECT l.account_id::text, a.name, l.address, l.amount::text FROM payout_lines l JOIN accounts a ON a.id = l.account_id WHERE l.batch_id = $1::bigint ORDER BY l.account_id',
      [batchId.toString()]);
    return r.rows.map((x) => ({ accountId: BigInt(x.account_id), account: x.name, address: x.address, amount: BigInt(x.amount) }));
  }
}

export class LedgerWalletShortError extends Error {
  override readonly name = 'LedgerWalletShortError';
}

function inputJson(c: Coin): { txid: string; vout: number; value: string; script: string; address?: string } {
  return { txid: c.txid, vout: c.vout, value: c.value.toString(), script: c.script.toString('hex'), ...(c.address ? { address: c.address } : {}) };
}

/** External signer mode: the transaction of the PSBT, unsigned (its txid is final for segwit inputs). */
function unsignedTx(built: BuiltTx): SignedTx {
  const t = Transaction.fromPSBT(built.psbt);
  const hex = t.hex;
  return { hex, txid: t.id, vsize: built.vsize };
}
