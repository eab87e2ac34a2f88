import { hashToDisplay, sha256d } from '../../src/chain/index.ts';
import type { BlockHeaderInfo, BlockTemplate, BlockchainInfo, NodeClient, SubmitAnswer } from '../../src/node/types.ts';
import { fakeTemplate } from './template.ts';

/** Display hash of a serialized block (its first 80 bytes). */
export function blockHashOfHex(hex: string): string {
  return hashToDisplay(sha256d(Buffer.from(hex.slice(0, 160), 'hex')));
}

/**
 * An in-memory NodeClient serving hand-made templates, with just enough of a chain for the block tracker:
 * blocks it takes join its best chain at the template's height (or a side branch with `acceptOnChain` false).
 */
export class StubNode implements NodeClient {
  template: BlockTemplate;
  submitted: string[] = [];
  /** What submitblock answers (null = accepted). */
  submitAnswer: string | null = null;
  /** While set, every submission fails in transport with this message (no verdict). */
  submitError: string | null = null;
  /** A null answer puts the block on the best chain (true) or on a side branch (false). */
  acceptOnChain = true;
  /** Blocks on the best chain: hash → height. */
  readonly bestChain = new Map<string, number>();
  /** Every block the node stored (best chain or not): hash → height. */
  readonly known = new Map<string, number>();

  constructor(opts: { bits?: number } = {}) {
    this.template = fakeTemplate({ bits: opts.bits ?? 0x1d00ffff });
  }

  /** Move the tip: the next template builds on a new previous block. */
  newTip(): void {
    this.template = fakeTemplate({ bits: parseInt(this.template.bits, 16), height: this.template.height + 1 });
  }

  get tipHeight(): number { return this.template.height - 1; }

  async getBlockTemplate(): Promise<BlockTemplate> { return this.template; }

  async submitBlock(hex: string): Promise<string | null> {
    this.submitted.push(hex);
    const answer = this.submitAnswer;
    if (answer === null || answer === 'duplicate' || answer.startsWith('inconclusive')) {
      const hash = blockHashOfHex(hex);
      this.known.set(hash, this.template.height);
      if (answer === null && this.acceptOnChain) this.bestChain.set(hash, this.template.height);
    }
    return answer;
  }

  async submitBlockAll(hex: string): Promise<SubmitAnswer[]> {
    if (this.submitError !== null) {
      this.submitted.push(hex);
      return [{ endpoint: 'stub', error: { kind: 'network', message: this.submitError } }];
    }
    return [{ endpoint: 'stub', result: await this.submitBlock(hex) }];
  }

  async getBlockHeader(hash: string): Promise<BlockHeaderInfo | null> {
    const h = this.bestChain.get(hash);
    const best = Math.max(this.tipHeight, ...this.bestChain.values());
    if (h !== undefined) return { hash, height: h, confirmations: best - h + 1 };
    const k = this.known.get(hash);
    return k === undefined ? null : { hash, height: k, confirmations: -1 };
  }

  async getBlockchainInfo(): Promise<BlockchainInfo> {
    const best = Math.max(this.tipHeight, ...this.bestChain.values());
    return { chain: 'regtest', blocks: best, headers: best, bestblockhash: this.template.previousblockhash, difficulty: 1, initialblockdownload: false };
  }

  async getBestBlockHash(): Promise<string> { return this.template.previousblockhash; }
  /** What getblockhash answers (default: the tip the template builds on). */
  blockHashAt: (height: number) => string = () => this.template.previousblockhash;
  async getBlockHash(height: number): Promise<string> { return this.blockHashAt(height); }
  async getBlock(): Promise<unknown> { return {}; }
}
