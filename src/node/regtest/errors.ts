// JSON-RPC error codes as Bitcoin Core defines them (src/rpc/protocol.h RPCErrorCode).

export const RPC_INVALID_REQUEST = -32600;
export const RPC_METHOD_NOT_FOUND = -32601;
export const RPC_INTERNAL_ERROR = -32603;
export const RPC_PARSE_ERROR = -32700;
export const RPC_MISC_ERROR = -1;
export const RPC_TYPE_ERROR = -3;
export const RPC_INVALID_ADDRESS_OR_KEY = -5;
export const RPC_INVALID_PARAMETER = -8;
export const RPC_DATABASE_ERROR = -20;
export const RPC_DESERIALIZATION_ERROR = -22;
export const RPC_VERIFY_ERROR = -25;
export const RPC_VERIFY_REJECTED = -26;
export const RPC_VERIFY_ALREADY_IN_CHAIN = -27;
export const RPC_WALLET_ERROR = -4;
export const RPC_WALLET_INSUFFICIENT_FUNDS = -6;
export const RPC_WALLET_UNLOCK_NEEDED = -13;
export const RPC_WALLET_PASSPHRASE_INCORRECT = -14;
export const RPC_WALLET_WRONG_ENC_STATE = -15;
export const RPC_IN_WARMUP = -28;

/** An error answered to the RPC caller as `{code, message}`. Anything else thrown by a handler is a bug. */
export class RpcFault extends Error {
  override readonly name = 'RpcFault';
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** httprpc.cpp JSONErrorReply: the HTTP status of a legacy (JSON-RPC 1.x) error reply. */
export function httpStatusForRpcError(code: number): number {
  if (code === RPC_INVALID_REQUEST) return 400;
  if (code === RPC_METHOD_NOT_FOUND) return 404;
  return 500;
}
