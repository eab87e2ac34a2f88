import type { BlockTemplate, BlockchainInfo, NodeClient } from '../../src/node/types.ts';
import { fakeTemplate } from './template.ts';

/** An in-memory NodeClient serving hand-made templates; records submitted blocks. */
export class StubNode implements NodeClient {
  template: BlockTemplate;
  submitted: string[] = [];
  submitAnswer: string | null = null;
  constructor(opts: { bits?: number } = {}) {
    this.template = fakeTemplate({ bits: opts.bits ?? 0x1d00ffff });
  }
  /** Move the tip: the next template builds on a new previous block. */
  newTip(): void {
    this.template = fakeTemplate({ bits: parseInt(this.template.bits, 16), height: this.template.height + 1 });
  }
  async getBlockTemplate(): Promise<BlockTemplate> { return this.template; }
  async submitBlock(hex: string): Promise<string | null> { this.submitted.push(hex); return this.submitAnswer; }
  async getBlockchainInfo(): Promise<BlockchainInfo> {
    return { chain: 'regtest', blocks: this.template.height - 1, headers: this.template.height - 1, bestblockhash: this.template.previousblockhash, difficulty: 1, initialblockdownload: false };
  }
  async getBestBlockHash(): Promise<string> { return this.template.previousblockhash; }
  /** What getblockhash answers (default: the tip the template builds on). */
  blockHashAt: (height: number) => string = () => this.template.previousblockhash;
  async getBlockHash(height: number): Promise<string> { return this.blockHashAt(height); }
  async getBlock(): Promise<unknown> { return {}; }
}
