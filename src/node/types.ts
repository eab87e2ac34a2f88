// Shapes of the Bitcoin Core JSON-RPC answers hashhub uses (BIP22/BIP23 getblocktemplate, BIP145 segwit).
// Only the fields we read are typed; nodes may send more.

export interface TemplateTransaction {
  /** Transaction serialized with witness when it has one (hex). */
  data: string;
  /** txid (non-witness hash), display (reversed) hex. */
  txid: string;
  /** wtxid, display hex (Core calls it `hash`). */
  hash: string;
  fee: number;
  sigops?: number;
  weight?: number;
  depends?: number[];
}

/**
 * What a job needs of a template's transactions, made where the template was read (template-reply.ts): their
 * block bytes (serialized with witness, back to back in block order) and the coinbase's merkle branch (internal
 * byte order, one sibling per level). `error` says why no job can be built from them (bad hex).
 */
export interface PreparedTransactions {
  count: number;
  bytes: Buffer;
  branch: Buffer[];
  error?: string;
}

export interface BlockTemplate {
  version: number;
  rules: string[];
  vbavailable?: Record<string, number>;
  vbrequired?: number;
  /** Display (reversed) hex of the tip this template builds on. */
  previousblockhash: string;
  /** Empty once `prepared` is set: the template was read with its transactions made into `prepared`. */
  transactions: TemplateTransaction[];
  /** The transactions as a job needs them, when the reader made them (then authoritative); else built from
   *  `transactions` by the job builder. */
  prepared?: PreparedTransactions;
  coinbaseaux?: Record<string, string>;
  /** Subsidy + fees, satoshis. */
  coinbasevalue: number;
  longpollid?: string;
  /** Display hex of the network target. */
  target: string;
  mintime: number;
  mutable?: string[];
  noncerange?: string;
  sigoplimit?: number;
  sizelimit?: number;
  weightlimit?: number;
  curtime: number;
  /** Compact target, hex of the uint32 (e.g. "207fffff"). */
  bits: string;
  height: number;
  /** Hex script of the BIP141 commitment output, present when the block may carry witness data. */
  default_witness_commitment?: string;
}

/** How many transactions (besides the coinbase) a template carries, however it was read. */
export function templateTxCount(t: BlockTemplate): number {
  return t.prepared?.count ?? t.transactions.length;
}

export interface BlockchainInfo {
  chain: string;
  blocks: number;
  headers: number;
  bestblockhash: string;
  difficulty: number;
  initialblockdownload: boolean;
  verificationprogress?: number;
}

/** One endpoint's answer to a submitblock call: its result, or the error of a call that got none. */
export type SubmitAnswer =
  | { endpoint: string; result: string | null }
  | { endpoint: string; error: { kind: string; code?: number; message: string } };

/** getblockheader's view of a block: confirmations is -1 when it is not on the node's best chain. */
export interface BlockHeaderInfo {
  hash: string;
  height: number;
  /** Depth on the node's best chain (1 = the tip); -1 when the block is not on the best chain. */
  confirmations: number;
  /** Transactions in the block (Core knows it from its header index even when the data is pruned). */
  nTx?: number;
  time?: number;
  previousblockhash?: string;
  nextblockhash?: string;
}

/** One of the node's ZMQ publishers (getzmqnotifications). */
export interface ZmqNotification {
  /** e.g. "pubhashblock" */
  type: string;
  /** e.g. "tcp://127.0.0.1:28332" (as configured on the node: 0.0.0.0 or * mean "its own address") */
  address: string;
  hwm?: number;
}

/** What the pool needs from a node: one interface, so a real bitcoind and the embedded chain are used alike. */
export interface NodeClient {
  getBlockTemplate(longpollId?: string, signal?: AbortSignal): Promise<BlockTemplate>;
  /** null on acceptance, otherwise Bitcoin Core's reason string (e.g. "high-hash", "duplicate"). */
  submitBlock(blockHex: string): Promise<string | null>;
  /** One submission round to every endpoint at once; never rejects; one answer per endpoint. */
  submitBlockAll(blockHex: string): Promise<SubmitAnswer[]>;
  /** null when the node does not know the block (RPC -5). */
  getBlockHeader(hash: string): Promise<BlockHeaderInfo | null>;
  getBlockchainInfo(): Promise<BlockchainInfo>;
  /** `signal` lets a poller stop without waiting for the answer; implementations may ignore it. */
  getBestBlockHash(signal?: AbortSignal): Promise<string>;
  getBlockHash(height: number): Promise<string>;
  getBlock(hash: string, verbosity?: 0 | 1 | 2): Promise<unknown>;
  /** The node's ZMQ publishers, for tip notifications; optional (a node client may not know them). */
  getZmqNotifications?(): Promise<ZmqNotification[]>;
}
