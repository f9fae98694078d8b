import { channel } from "node:diagnostics_channel";
import type { CopyCounts } from "../xdr/ledger.js";
import type { Mode, TransportKind } from "./service.js";

export type { TransportKind } from "./service.js";

/**
 * Timing hooks: the components of RPC latency (as Thekkath and Levy
 * break them down, ACM TOCS 11(2), 1993), per call, in nanoseconds.
 * Each finished call publishes a CallRecord on `rpcgen-ts:call` (client) or
 * `rpcgen-ts:serve` (server). Nothing is measured unless someone listens: the call path
 * checks `observed()` once and skips every clock read and the ledger otherwise.
 */

export interface Phases {
  /** Client: stub entered → arguments marshaled. */
  call?: number;
  /** Client: marshaled → handed to the transport. */
  send?: number;
  /** Client: handed to the transport → reply arrived (the server's time included). */
  transit?: number;
  /** Server: message arrived → call header parsed. */
  receive?: number;
  /** Server: header parsed → procedure found and arguments unmarshaled. */
  dispatch?: number;
  /** Server: the procedure itself. */
  execute?: number;
  /** Server: results marshaled and handed to the transport. */
  reply?: number;
  /** Client: reply arrived → results unmarshaled → caller resumed. */
  resume?: number;
}

export interface CallRecord {
  readonly xid: number;
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
  readonly mode: Mode;
  readonly transport: TransportKind;
  readonly ok: boolean;
  readonly copies: CopyCounts;
  readonly bytesCopied: CopyCounts;
  readonly phases: Phases;
}

export type CallHook = (record: CallRecord) => void;

export const callChannel = channel("rpcgen-ts:call");
export const serveChannel = channel("rpcgen-ts:serve");

/** A monotonic clock in nanoseconds, as a number (exact to 2^53 ns, about 104 days of uptime). */
export function now(): number {
  return Number(process.hrtime.bigint());
}
