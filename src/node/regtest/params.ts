// Consensus constants of Bitcoin Core's regtest (src/kernel/chainparams.cpp CRegTestParams, src/consensus/*.h)
// and the regtest genesis block, rebuilt from its known fields.

import {
  type Block, type Tx, bitsToTarget, blockHashHex, fromHex, hashToDisplay, merkleRoot, targetToBits, txid,
  difficultyToTarget,
} from '../../chain/index.ts';

/** consensus/consensus.h */
export const MAX_BLOCK_WEIGHT = 4_000_000;
export const MAX_BLOCK_SERIALIZED_SIZE = 4_000_000;
export const MAX_BLOCK_SIGOPS_COST = 80_000;
export const WITNESS_SCALE_FACTOR = 4;
/** chain.h: a block's time may be at most this far ahead of the node's clock, seconds. */
export const MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60;
/** consensus/consensus.h: a coinbase output is spendable this many blocks after its own. */
export const COINBASE_MATURITY = 100;
/** consensus/amount.h */
export const COIN = 100_000_000n;
export const MAX_MONEY = 21_000_000n * COIN;
/** script/script.h: below this nLockTime is a height, above it a UNIX time. */
export const LOCKTIME_THRESHOLD = 500_000_000;
/** node/miner.cpp: weight and sigops the block assembler keeps free for the coinbase. */
export const COINBASE_RESERVED_WEIGHT = 4_000;
export const COINBASE_RESERVED_SIGOPS = 400;

/** Regtest powLimit (7fff…ff): the easiest target a header may claim. */
export const REGTEST_POW_LIMIT = (1n << 255n) - 1n;
/** Regtest genesis bits; also every block's bits (fPowNoRetargeting). */
export const REGTEST_BITS = 0x207fffff;
export const REGTEST_HALVING_INTERVAL = 150;
/** BIP9 "version bits top bits" (Core's ComputeBlockVersion with no deployment signalling). */
export const TEMPLATE_VERSION = 0x20000000;
/** What Core's getblocktemplate answers on regtest: segwit (and everything before it) active from height 1. */
export const TEMPLATE_RULES = ['csv', '!segwit', 'taproot'] as const;

export const REGTEST_GENESIS_HASH = '0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206';

/** Block subsidy in satoshis (validation.cpp GetBlockSubsidy): 50 BTC halved every `interval` blocks. */
export function blockSubsidy(height: number, interval = REGTEST_HALVING_INTERVAL): bigint {
  if (!Number.isSafeInteger(height) || height < 0) throw new Error(`bad height ${height}`);
  const halvings = Math.floor(height / interval);
  // Shifting by >= 64 would be undefined in C++; Core returns zero.
  if (halvings >= 64) return 0n;
  return (50n * COIN) >> BigInt(halvings);
}

/** pow.cpp GetBlockProof: expected hashes for a block at this target, 2^256 / (target + 1). */
export function blockProof(target: bigint): bigint {
  return (1n << 256n) / (target + 1n);
}

/**
 * Compact bits for a (float) difficulty, clamped to the regtest powLimit. Without a difficulty: the real regtest
 * bits 0x207fffff.
 */
export function bitsForDifficulty(difficulty?: number): number {
  if (difficulty === undefined) return REGTEST_BITS;
  const target = difficultyToTarget(difficulty);
  if (target >= bitsToTarget(REGTEST_BITS)) return REGTEST_BITS;
  return targetToBits(target);
}

/** Signet genesis (chainparams.cpp SigNetParams: CreateGenesisBlock(1598918400, 52613770, 0x1e0377ae, 1, 50 * COIN)),
 *  the same for the default signet and every custom one. */
export const SIGNET_GENESIS_HASH = '00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6';
/** signet.cpp: the 4-byte header of the block solution pushed after the witness commitment. */
export const SIGNET_HEADER = Buffer.from('ecc7daa2', 'hex');

let genesis: Block | undefined;
let signetGenesisBlock: Block | undefined;

/**
 * The regtest genesis block (chainparams.cpp CreateGenesisBlock(1296688602, 2, 0x207fffff, 1, 50 * COIN)): the
 * mainnet coinbase ("The Times 03/Jan/2009 …") under regtest's time, nonce and bits. Its hash is asserted.
 */
export function regtestGenesis(): Block {
  if (genesis) return genesis;
  genesis = buildGenesis(1296688602, 2, REGTEST_BITS, REGTEST_GENESIS_HASH, 'regtest');
  return genesis;
}

/** The signet genesis block: the same coinbase under signet's time, nonce and bits. Its hash is asserted. */
export function signetGenesis(): Block {
  signetGenesisBlock ??= buildGenesis(1598918400, 52613770, 0x1e0377ae, SIGNET_GENESIS_HASH, 'signet');
  return signetGenesisBlock;
}

function buildGenesis(time: number, nonce: number, bits: number, expected: string, name: string): Block {
  const coinbase: Tx = {
    version: 1,
    inputs: [{
      prevTxid: Buffer.alloc(32),
      vout: 0xffffffff,
      // 486604799 (0x1d00ffff) ‖ CScriptNum(4) ‖ the headline.
      scriptSig: fromHex('04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73'),
      sequence: 0xffffffff,
      witness: [],
    }],
    outputs: [{
      value: 50n * COIN,
      // <65-byte pubkey> OP_CHECKSIG
      scriptPubKey: fromHex('4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac'),
    }],
    locktime: 0,
  };
  const root = merkleRoot([txid(coinbase)]);
  if (hashToDisplay(root) !== '4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b') {
    throw new Error(`${name} genesis: wrong merkle root`);
  }
  const block: Block = {
    header: { version: 1, prevHash: Buffer.alloc(32), merkleRoot: root, time, bits, nonce },
    txs: [coinbase],
  };
  const hash = blockHashHex(block.header);
  if (hash !== expected) throw new Error(`${name} genesis: hash ${hash}, expected ${expected}`);
  return block;
}
