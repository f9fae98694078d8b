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
  | "TOO_LARGE"
  /**
   * Connecting: the server refused the connection, could not be reached, or did not answer
   * in time; on UDP, an ICMP port unreachable (the kernel's ECONNREFUSED) for a call sent.
   * The OS error is the cause.
   */
  | "UNREACHABLE"
  /** Connecting without a port: rpcbind could not be reached, or does not know the program (the cause says which). */
  | "RPCBIND_UNAVAILABLE"
  /** `connect` or `listen` was given an unknown transport or a bad option value; nothing was opened. */
  | "BAD_OPTIONS"
  /** Listening: the address is taken (EADDRINUSE; for `unix`, the socket path exists). */
  | "ADDRESS_IN_USE"
  /** Listening failed for another reason (EACCES on a low port, EADDRNOTAVAIL, a missing directory…); the OS error is the cause. */
  | "LISTEN_FAILED";

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
