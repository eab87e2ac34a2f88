// The embedded wallet's file: what the chain's blocks cannot tell after a restart. The keys the wallet made
// (getnewaddress, getrawchangeaddress) or was given (importprivkey), and the real transactions sent through the
// chain that no block carries yet (a payout waiting in the mempool, which Core's wallet would rebroadcast).
//
// wallet.dat is append-only, checksummed records (record-file.ts), each fsynced before the call that made it
// answers: an address handed out is never forgotten, even on a power cut. Payloads:
//   0x10 key: 32-byte private key ‖ its 33-byte compressed public key (read back without deriving it again)
//   0x11 tx:  a transaction (witness serialization) accepted into the mempool
// At start it is rewritten (atomically) without the transactions that no longer wait, when there are any.

import { closeSync, fsyncSync, openSync } from 'node:fs';
import path from 'node:path';
import { scanFramed } from './block-file.ts';
import { appendAll, frame, fsyncDir, writeFileAtomic } from './record-file.ts';

const REC_KEY = 0x10;
const REC_TX = 0x11;

type WalletRecord = { type: typeof REC_KEY; priv: Buffer; pub: Buffer } | { type: typeof REC_TX; tx: Buffer };

export class WalletFile {
  readonly file: string;
  private fd: number | null = null;
  /** Keys, first appearance order, no repeats. */
  readonly keys: { priv: Buffer; pub: Buffer }[] = [];
  /** Transactions in the order they were accepted. */
  readonly txs: Buffer[] = [];
  /** A torn last record that was cut off at open (bytes). */
  readonly tornBytes: number;

  constructor(readonly dir: string) {
    this.file = path.join(dir, 'wallet.dat');
    const r = scanFramed<WalletRecord>(this.file, (_f, p) => {
      if (p[0] === REC_KEY && p.length === 66) return { type: REC_KEY, priv: Buffer.from(p.subarray(1, 33)), pub: Buffer.from(p.subarray(33)) };
      if (p[0] === REC_TX && p.length > 1) return { type: REC_TX, tx: Buffer.from(p.subarray(1)) };
      return null;
    });
    this.tornBytes = r.torn?.bytes ?? 0;
    const seen = new Set<string>();
    for (const rec of r.records) {
      if (rec.type === REC_TX) { this.txs.push(rec.tx); continue; }
      const hex = rec.priv.toString('hex');
      if (!seen.has(hex)) { seen.add(hex); this.keys.push({ priv: rec.priv, pub: rec.pub }); }
    }
  }

  addKey(priv: Uint8Array, pub: Uint8Array): void {
    this.append(REC_KEY, Buffer.concat([priv, pub]));
    this.keys.push({ priv: Buffer.from(priv), pub: Buffer.from(pub) });
  }

  addTx(bytes: Uint8Array): void {
    this.append(REC_TX, bytes);
    this.txs.push(Buffer.from(bytes));
  }

  /** Keeps the keys and only these transactions (the ones still waiting). */
  rewrite(txs: Buffer[]): void {
    this.close();
    writeFileAtomic(this.file, [...this.keys.map((k) => record(REC_KEY, Buffer.concat([k.priv, k.pub]))), ...txs.map((t) => record(REC_TX, t))], 0o600);
    this.txs.length = 0;
    this.txs.push(...txs);
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }

  private append(type: number, data: Uint8Array): void {
    if (this.fd === null) {
      this.fd = openSync(this.file, 'a', 0o600);
      fsyncDir(this.dir);
    }
    appendAll(this.fd, record(type, data));
    fsyncSync(this.fd);
  }
}

function record(type: number, data: Uint8Array): Buffer {
  return frame(Buffer.concat([Buffer.from([type]), data]));
}
