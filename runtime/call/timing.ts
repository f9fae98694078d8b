import type { AsyncLocalStorage } from "node:async_hooks";
import { channel, tracingChannel } from "node:diagnostics_channel";
import type { RpcStatus } from "../rpc/errors.js";
import type { CopyCounts } from "../xdr/ledger.js";
import type { Mode, TransportKind } from "./service.js";

export type { TransportKind } from "./service.js";

/**
 * Timing hooks: the components of RPC latency (as Thekkath and Levy
 * break them down, ACM TOCS 11(2), 1993), per call, in nanoseconds.
 * Each finished call publishes a CallRecord on `rpcgen-ts:call` (client) or
 * `rpcgen-ts:serve` (server), and its trace (start to end) on the tracing channels of the
 * same names. Nothing is measured unless someone listens: the call path checks once per call
 * and skips every clock read and the ledger otherwise.
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

/**
 * How a call ended: SUCCESS, or the status its RpcError has (client) or its reply said
 * (server); ERROR for a client call that failed with something else (a TypeError thrown by
 * an interceptor or an encoder).
 */
export type CallStatus = "SUCCESS" | RpcStatus | "ERROR";

/**
 * One call as the tracing channels tell it: the same object is given to every event of the
 * call, and what is learnt on the way (status, error, result, copies) is added to it, as
 * Node's own tracing channels (`undici`, `http`) do. `phases` fills in as the call proceeds.
 */
export interface CallTrace {
  readonly xid: number;
  readonly program: number;
  readonly version: number;
  /** The service description's name (the `.x` version's name); undefined for a program or version the server does not serve. */
  readonly service: string | undefined;
  readonly procedure: number;
  /** The procedure's name in the `.x` file; undefined for a procedure the server does not serve. */
  readonly procedureName: string | undefined;
  readonly mode: Mode;
  readonly transport: TransportKind;
  /** The other end ("127.0.0.1:111", "[::1]:111", "unix", "inproc"), where the transport knows it. */
  readonly peer: string | undefined;
  /** When the call started, in milliseconds since the epoch (fractional: performance.timeOrigin + performance.now()). */
  readonly startTime: number;
  /** Set when the call ends. */
  status: CallStatus | undefined;
  /** The call's failure (client: the RpcError it rejects with; server: what the handler threw, or an RpcError naming the status answered). */
  error?: unknown;
  /** The call's result, when it succeeded. */
  result?: unknown;
  /** Set when the call ends, as in its CallRecord. */
  copies?: CopyCounts;
  bytesCopied?: CopyCounts;
  readonly phases: Phases;
}

/** One of a CallTracing's five channels: Node's diagnostics `Channel`, carrying CallTraces. */
export interface CallTraceChannel {
  readonly name: string | symbol;
  readonly hasSubscribers: boolean;
  publish(trace: CallTrace): void;
  /** Runs `fn` with every store bound to this channel entered, each set from `trace`. */
  runStores<A extends unknown[], R>(trace: CallTrace, fn: (...args: A) => R, thisArg?: unknown, ...args: A): R;
  bindStore<S>(store: AsyncLocalStorage<S>, transform?: (trace: CallTrace) => S): void;
  unbindStore(store: AsyncLocalStorage<unknown>): boolean;
}

/** What a CallTracing subscriber is told: one handler per event, each optional. */
export interface CallTracingHandlers {
  start?(trace: CallTrace): void;
  end?(trace: CallTrace): void;
  asyncStart?(trace: CallTrace): void;
  asyncEnd?(trace: CallTrace): void;
  error?(trace: CallTrace): void;
}

/**
 * A tracing channel of calls: Node's `TracingChannel`, typed here rather than through
 * @types/node's, whose type parameters changed order between versions (an app's own
 * @types/node must not break these declarations). `hasSubscribers` (Node ≥ 20.13) is true
 * when any of its five channels has one.
 */
export interface CallTracing {
  readonly hasSubscribers: boolean;
  readonly start: CallTraceChannel;
  readonly end: CallTraceChannel;
  readonly asyncStart: CallTraceChannel;
  readonly asyncEnd: CallTraceChannel;
  readonly error: CallTraceChannel;
  subscribe(handlers: CallTracingHandlers): void;
  unsubscribe(handlers: CallTracingHandlers): boolean;
}

/**
 * The client's calls, one trace per transmission of a call (a retry an interceptor makes is a
 * call of its own, with its own xid), published on `tracing:rpcgen-ts:call:{start,end,asyncStart,asyncEnd,error}`.
 * As with Node's `traceSync`/`tracePromise`: `start`, then `end` when the call has been handed
 * on; a call that ends at once (a synchronous shm call, one that cannot be encoded) has its
 * `error` before `end` and no async events; otherwise `error` (on failure), `asyncStart` and
 * `asyncEnd` follow when the reply (or the failure) comes, before the caller resumes.
 */
export const callTracing = tracingChannel("rpcgen-ts:call") as unknown as CallTracing;
/**
 * The server's calls, published on `tracing:rpcgen-ts:serve:…` in the same order; the call's
 * authentication, decoding and handler run inside `start.runStores`, so a store bound there
 * (`callTracing.start.bindStore`) is current in the handler.
 */
export const serveTracing = tracingChannel("rpcgen-ts:serve") as unknown as CallTracing;

/** The wall-clock time of a call's start, for traces (ms since the epoch, sub-millisecond). */
export function startTime(): number {
  return performance.timeOrigin + performance.now();
}

/** A monotonic clock in nanoseconds, as a number (exact to 2^53 ns, about 104 days of uptime). */
export function now(): number {
  return Number(process.hrtime.bigint());
}
