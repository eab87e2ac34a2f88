// Reading the embedded chain back from its data dir at start, fast enough for a long chain: a first pass over
// the headers alone finds the best chain; blocks up to the height of the saved chain state (chainstate.dat,
// the coins at the height the chain last pruned to) are indexed by their headers, as a pruned node has them,
// and their coins come from that state; the blocks above it (whole in the file, since the chain only forgets
// data below that height) are read whole and validated again on top of it, which rebuilds their undo data.
// Then every block the chain stores is appended, the chain state is written again at each prune, and the file
// is compacted when it has grown a lot.

import type { Logger } from 'pino';
import { bitsToTarget, hashToDisplay, headerHash, parseHeader, serializeHeader, u32Hex } from '../../chain/index.ts';
import {
  BlockFile, ChainDataError, REC_BLOCK, REC_HEADER, REC_INVALID, type RecordHead, blockRecord, headerRecord, invalidRecord,
} from './block-file.ts';
import type { EmbeddedChain } from './chain.ts';
import { type ChainState, readChainState, writeChainState } from './chainstate.ts';
import { blockProof } from './params.ts';

/** Compact when the file is this much larger than after the last compaction (and at least this many bytes). */
const COMPACT_FACTOR = 2;
const COMPACT_MIN_BYTES = 64 * 1024 * 1024;

interface Node {
  rec: Extract<RecordHead, { type: typeof REC_BLOCK | typeof REC_HEADER }>;
  hash: string;
  parent: Node | null;
  height: number;
  work: bigint;
  failed: boolean;
}

export interface ChainData {
  file: BlockFile;
  /** Blocks read back: whole (validated again) and by header only; the height of the chain state used. */
  restored: { whole: number; headers: number; stateHeight: number | null; tornBytes: number };
  close(): void;
}

/** Replays `<dataDir>` (blocks.dat on top of chainstate.dat) into the (new, empty) chain and keeps it current. */
export function openChainData(chain: EmbeddedChain, dataDir: string, logger?: Logger): ChainData {
  const file = new BlockFile(dataDir);
  file.prepare({ network: chain.network, bits: u32Hex(chain.bits) });
  const { records, torn } = file.scan();
  if (torn) logger?.warn({ file: file.file, at: torn.at, bytes: torn.bytes }, 'embedded chain: a partial record at the end of the block file (a crash during its write) was cut off');
  const state = readChainState(dataDir);
  const restored = replay(chain, file, records, state, logger);

  // The height the saved coins are at: the chain may forget block data down to there, not further.
  let stateHeight = state?.height ?? 0;
  const saveState = (): void => {
    if (chain.prunedHeight === 0 || chain.prunedHeight === stateHeight) return;
    // The blocks above the state replay from blocks.dat: they must be on disk before a state that needs them.
    file.sync();
    writeChainState(dataDir, chain.coinsAt(chain.prunedHeight));
    stateHeight = chain.prunedHeight;
  };
  let compactedSize = file.size;
  const compact = (why: string): void => {
    // Compaction drops the data of pruned blocks: only when the saved coins are at the pruned height.
    if (chain.prunedHeight !== 0 && chain.prunedHeight !== stateHeight) return;
    const before = file.size;
    file.rewrite(snapshot(chain));
    compactedSize = file.size;
    logger?.info({ file: file.file, why, before, after: file.size }, 'embedded chain: block file compacted');
  };
  const guard = (what: string, write: () => void): void => {
    try {
      write();
      if (file.size > Math.max(COMPACT_FACTOR * compactedSize, COMPACT_MIN_BYTES)) compact('size');
    } catch (err) {
      // The chain goes on in memory; only a restart would lose what was not written. Say so loudly.
      logger?.error({ file: file.file, what, err: (err as Error).message }, 'embedded chain: cannot write to the data dir');
    }
  };
  // Replaying may have pruned further than the saved state (or there was none): save it now.
  guard('chain state', saveState);
  // Many blocks on disk whole that the chain only keeps by header now: rewrite them as headers.
  if (restored.headersFromWhole >= 1000) guard('compaction', () => compact(`${restored.headersFromWhole} pruned blocks stored whole`));

  const onStored = (b: { bytes: Buffer; fees: number[]; real: boolean[] }): void => guard('block', () => file.appendBlock(b));
  const onInvalid = ({ hash, reason }: { hash: Buffer; reason: string }): void => guard('verdict', () => file.appendInvalid(hash, reason));
  const onPruned = (): void => guard('chain state', saveState);
  chain.on('stored', onStored);
  chain.on('invalid', onInvalid);
  chain.on('pruned', onPruned);
  return {
    file,
    restored: { whole: restored.whole, headers: restored.headers, stateHeight: state?.height ?? null, tornBytes: torn?.bytes ?? 0 },
    close: () => {
      chain.off('stored', onStored);
      chain.off('invalid', onInvalid);
      chain.off('pruned', onPruned);
      file.close();
    },
  };
}

function replay(chain: EmbeddedChain, file: BlockFile, records: RecordHead[], state: ChainState | null, logger?: Logger) {
  // Pass 1: headers only. The tree, its work, and the best chain (most work, earliest on ties, no invalid block).
  const genesis: Node = {
    rec: null as unknown as Node['rec'], hash: chain.tip.hashHex, parent: null, height: 0, work: chain.tip.chainWork, failed: false,
  };
  const nodes: Node[] = [];
  const byHash = new Map<string, Node>([[genesis.hash, genesis]]);
  const invalid = new Set<string>();
  for (const [i, rec] of records.entries()) {
    const where = `record ${i + 1} in ${file.file} (byte ${rec.offset})`;
    if (rec.type === REC_INVALID) { invalid.add(hashToDisplay(rec.hash)); continue; }
    const header = parseHeader(rec.header);
    const hash = hashToDisplay(headerHash(rec.header));
    const parent = byHash.get(hashToDisplay(header.prevHash));
    if (!parent) throw new ChainDataError(`embedded chain: ${where} builds on an unknown block`, 'move the data dir away to start a new chain');
    if (byHash.has(hash)) throw new ChainDataError(`embedded chain: ${where} repeats block ${hash}`, 'move the data dir away to start a new chain');
    const node: Node = { rec, hash, parent, height: parent.height + 1, work: parent.work + blockProof(bitsToTarget(header.bits)), failed: false };
    byHash.set(hash, node);
    nodes.push(node);
  }
  let best = genesis;
  for (const n of nodes) {
    n.failed = (n.parent?.failed ?? false) || invalid.has(n.hash);
    if (!n.failed && n.work > best.work) best = n; // strictly more: the first seen wins a tie
  }
  const active = new Set<Node>();
  for (let n: Node | null = best; n; n = n.parent) active.add(n);

  // Where the coins come from: the saved chain state's block (on the best chain), else genesis when every
  // active block is whole in the file. A file from before chain states with deep blocks by header only cannot
  // tell their coins: they are lost (as before), and said so.
  let cutoff = 0;
  if (state) {
    const at = byHash.get(state.hash);
    if (!at || !active.has(at) || at.height !== state.height) {
      throw new ChainDataError(
        `embedded chain: the chain state (coins at height ${state.height}, block ${state.hash}) is not on the best chain of ${file.file}`,
        'move the data dir away to start a new chain',
      );
    }
    cutoff = state.height;
  } else {
    for (const n of active) if (n !== genesis && n.rec.type === REC_HEADER) cutoff = Math.max(cutoff, n.height);
    if (cutoff > 0) {
      logger?.warn({ file: file.file, height: cutoff }, 'embedded chain: no chain state saved (a data dir from an older version): the coins of blocks up to this height are not known');
    }
  }
  // Pass 2: blocks up to the cutoff by header (and blocks stored only as headers), in arrival order; then the
  // others whole, through submitblock's validation, on top of the saved coins.
  let headers = 0;
  let headersFromWhole = 0;
  let whole = 0;
  for (const n of nodes) {
    if (n.height > cutoff && n.rec.type === REC_BLOCK) continue;
    chain.restoreHeader({
      header: parseHeader(n.rec.header), nTx: n.rec.nTx, size: n.rec.size, active: active.has(n) && n.height <= cutoff,
      invalid: n.failed ? 'invalid (before restart)' : null,
    });
    headers++;
    if (n.rec.type === REC_BLOCK) headersFromWhole++;
  }
  if (state) chain.restoreCoins(state.coins);
  chain.restorePrunedTo(cutoff);
  for (const [i, n] of nodes.entries()) {
    if (n.height <= cutoff || n.rec.type !== REC_BLOCK) continue;
    const { bytes, fees, real } = file.readBlock(n.rec.offset);
    let result: string | null;
    try {
      result = chain.restoreBlock(bytes, fees, real);
    } catch (err) {
      result = (err as Error).message;
    }
    // Stored as when it was first submitted (best chain, side branch, or found invalid only later).
    if (!chain.lastRestoreStored) {
      throw new ChainDataError(
        `embedded chain: block ${i + 1} in ${file.file} (byte ${n.rec.offset}) is refused on replay (${result})`,
        'move the data dir away to start a new chain',
      );
    }
    whole++;
  }
  file.endReads();
  if (chain.tip.hashHex !== best.hash) {
    throw new ChainDataError(`embedded chain: ${file.file} replays to tip ${chain.tip.hashHex}, not ${best.hash}`, 'move the data dir away to start a new chain');
  }
  return { whole, headers, headersFromWhole };
}

/** The block file's content from the chain's memory: recent blocks whole, deep ones by header, verdicts. */
function* snapshot(chain: EmbeddedChain): Generator<Buffer> {
  for (const p of chain.persistedBlocks()) {
    if (p.kind === 'block') yield blockRecord(p);
    else yield headerRecord(serializeHeader(p.entry.header), p.entry.nTx, p.entry.size);
    if (p.entry.failed?.kind === 'invalid') yield invalidRecord(p.entry.hash, p.entry.failed.reason);
  }
}
