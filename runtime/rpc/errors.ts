/**
 * Why a call failed, as the client sees it. The RFC 5531 statuses come from the server's
 * reply; the rest are local. The status is in the message, so a log line says it all.
 */
export type RpcStatus =
  | "PROG_UNAVAIL"
  | "PROG_MISMATCH"
  | "PROC_UNAVAIL"
  | "GARBAGE_ARGS"
  | "SYSTEM_ERR"
  | "RPC_MISMATCH"
  | "AUTH_ERROR"
  /** No reply within the call's timeout (after every retransmission, on UDP). */
  | "TIMEOUT"
  /** The caller's AbortSignal fired. */
  | "ABORTED"
  /** The channel closed, or its connection was lost, before the reply came. */
  | "CLOSED"
  /** The arguments could not be encoded (an XdrError is the cause). */
  | "CANNOT_ENCODE"
  /** The reply could not be decoded (an XdrError is the cause). */
  | "CANNOT_DECODE"
  /** The transport failed (a socket error is the cause). */
  | "TRANSPORT"
  /** The reply was longer than the channel's `maxMessageBytes`: discarded unread; the channel serves on. */
  | "TOO_LARGE";

export interface RpcErrorDetails {
  /** PROG_MISMATCH and RPC_MISMATCH: the versions the server supports. */
  readonly low?: number;
  readonly high?: number;
  /** AUTH_ERROR: the auth_stat (RFC 5531 §9). */
  readonly authStat?: number;
  readonly cause?: unknown;
}

export class RpcError extends Error {
  override readonly name = "RpcError";
  readonly low: number | undefined;
  readonly high: number | undefined;
  readonly authStat: number | undefined;

  constructor(
    readonly status: RpcStatus,
    detail: string,
    details: RpcErrorDetails = {},
  ) {
    super(`RPC ${status}: ${detail}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.low = details.low;
    this.high = details.high;
    this.authStat = details.authStat;
  }
}
