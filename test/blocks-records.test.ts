// A found block's row in the database, whatever the order its records arrive in: the block tracker's events written
// through the real share writer (both backends). A block without a row is never split by accounting, nor shown.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { BlockJournal } from '../src/ingest/block-journal.ts';
import type { BlockHeaderInfo, BlockchainInfo, SubmitAnswer } from '../src/node/types.ts';
import { type BlockNode, BlockTracker, DEFAULT_BLOCK_TRACKER_OPTIONS } from '../src/pool/block-tracker.ts';
import type { BlockEvent } from '../src/shares/events.ts';
import type { Database } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { SqlShareWriter } from '../src/store/share-writer.ts';
import { BACKENDS, SKIP_PG } from './helpers/pg.ts';
import { until } from './helpers/until.ts';

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const hashN = (n: number) => n.toString(16).padStart(64, '0');
const realBlock = (JSON.parse(fs.readFileSync(new URL('./fixtures/blocks.json', import.meta.url), 'utf8')) as { blocks: { hash: string; hex: string }[] }).blocks[0];

/** A node that takes every block onto its best chain at height 101, and whose chain holds `chain` from the tip down. */
class Node implements BlockNode {
  best = new Map<string, number>();
  chain: { hash: string; hex: string }[] = [];
  async submitBlockAll(hex: string): Promise<SubmitAnswer[]> { this.best.set(hex, 101); return [{ endpoint: 'n1', result: null }]; }
  async getBlockHeader(hash: string): Promise<BlockHeaderInfo | null> {
    const h = this.best.get(hash);
    return h === undefined ? null : { hash, height: h, confirmations: 1 };
  }
  async getBlockchainInfo(): Promise<BlockchainInfo> {
    return { chain: 'regtest', blocks: 101, headers: 101, bestblockhash: '00'.repeat(32), difficulty: 1, initialblockdownload: false };
  }
  async getBlockHash(h: number): Promise<string> { return this.chain[101 - h]?.hash ?? 'ff'.repeat(32); }
  async getBlock(hash: string): Promise<unknown> { return this.chain.find((c) => c.hash === hash)?.hex ?? null; }
}

const OPTS = {
  ...DEFAULT_BLOCK_TRACKER_OPTIONS, maturity: 5, checkIntervalMs: 20, retryMinMs: 10, retryMaxMs: 40, recoveryScanDepth: 1,
  isOurCoinbase: () => false, tipHeight: () => 100,
};

function tmpDir(): string {
  return fs.mkdtempSync(path.join(tmpdir(), 'hashhub-block-records-'));
}

for (const backend of BACKENDS) {
  describe(`block records in the database (${backend.name})`, { skip: backend.name === 'postgres' ? SKIP_PG : false }, () => {
    let db: Database;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ db, cleanup } = await backend.open());
      await migrate(db);
    });
    after(async () => { await cleanup?.(); });

    const rowOf = async (hash: string) => (await db.query<{ status: string; account: string; worker: string }>(
      `SELECT b.status, a.name AS account, w.name AS worker FROM blocks b
       JOIN accounts a ON a.id = b.account_id JOIN workers w ON w.id = b.worker_id WHERE b.hash = $1`, [hash])).rows;

    test('a block in the journal whose share-log record was lost (a crash after the journal\'s sync) gets its row at the restart', async (t) => {
      // Failed before: the restarted tracker resubmitted the block and sent only answer and status events, which
      // update a row that did not exist: the block was on the chain and nowhere in the database.
      const dir = tmpDir();
      t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
      const j1 = new BlockJournal(dir, { reserveBytes: 0 });
      j1.appendCandidate({ hash: hashN(1), height: 101, prevHash: 'aa'.repeat(32), account: 'alice', worker: 'rig1', reward: '312500000', hex: hashN(1), time: Date.now() });
      j1.close();

      const node = new Node();
      const journal = new BlockJournal(dir, { reserveBytes: 0 });
      const events: BlockEvent[] = [];
      const tr = new BlockTracker(node, journal, (e) => events.push(e), OPTS, log);
      tr.start();
      await until(() => tr.get(hashN(1))?.status === 'pending', 2000, 'pending');
      await tr.stop(50);
      journal.close();

      await new SqlShareWriter(db).writeBlocks(events);
      assert.deepEqual(await rowOf(hashN(1)), [{ status: 'pending', account: 'alice', worker: 'rig1' }], `events: ${events.map((e) => e.kind).join(',')}`);
      // Written again (the share log's copy after all, a second restart): still one row, unchanged.
      await new SqlShareWriter(db).writeBlocks(events);
      assert.deepEqual(await rowOf(hashN(1)), [{ status: 'pending', account: 'alice', worker: 'rig1' }]);
    });

    test('a block another process\'s start-up scan recovered (no finder) that reaches the database first still becomes the finder\'s', async (t) => {
      // In a cluster every process scans the chain at start for blocks of the pool's coinbase that it has no
      // record of, which includes the blocks other processes found. Failed before: when the scanner's record came
      // first, the row kept account 0 (accounting never splits those).
      const dir = tmpDir();
      t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
      const node = new Node();
      node.chain = [realBlock];
      node.best.set(realBlock.hash, 101);
      const journal = new BlockJournal(dir, { reserveBytes: 0 });
      const scanned: BlockEvent[] = [];
      const tr = new BlockTracker(node, journal, (e) => scanned.push(e), { ...OPTS, isOurCoinbase: () => true }, log);
      tr.start();
      await until(() => scanned.some((e) => e.kind === 'candidate'), 2000, 'recovered by the scan');
      await tr.stop(50);
      journal.close();
      const recovered = scanned.find((e): e is Extract<BlockEvent, { kind: 'candidate' }> => e.kind === 'candidate')!;
      assert.equal(recovered.account, '', 'the scan does not know the finder');

      const w = new SqlShareWriter(db);
      await w.writeBlocks(scanned);
      assert.deepEqual((await rowOf(realBlock.hash)).map((r) => r.account), [''], 'recorded without a finder first');
      await w.writeBlocks([{ ...recovered, account: 'bob', worker: 'rig7' }]);
      assert.deepEqual((await rowOf(realBlock.hash)).map((r) => [r.account, r.worker]), [['bob', 'rig7']], 'the finder\'s candidate names it');
      // A finder once recorded is never replaced (by another scan's record, or another account).
      await w.writeBlocks([recovered, { ...recovered, account: 'carol', worker: 'x' }]);
      assert.deepEqual((await rowOf(realBlock.hash)).map((r) => [r.account, r.worker]), [['bob', 'rig7']]);
    });
  });
}
