import { authRegistry, defaultAuthFlavors, type AuthFlavorEntry, type AuthRegistry } from "../auth/index.js";
import { checkService, type ProcedureDescription, type ServiceDescription } from "../call/service.js";
import { callChannel, callTracing, now, startTime, type CallHook, type CallTrace, type Phases, type TransportKind } from "../call/timing.js";
import { RpcError } from "../rpc/errors.js";
import {
  AcceptStat,
  AUTH_NONE,
  AuthFlavor,
  describeAuthStat,
  MsgType,
  readReplyHeader,
  writeCallHeader,
  type AuthSysParams,
  type OpaqueAuth,
  type ReplyHeader,
} from "../rpc/message.js";
import type { ClientTransport } from "../transport/types.js";
import { XdrError } from "../xdr/error.js";
import { CopyLedger } from "../xdr/ledger.js";
import { XdrReader } from "../xdr/reader.js";
import { XdrWriter } from "../xdr/writer.js";
import { MessageBuffers } from "./buffers.js";
import { EventEmitter } from "node:events";

/**
 * The client side of the runtime: a channel sends calls over one transport and matches
 * replies to them by xid, so many calls can be outstanding at once. Generated client classes
 * (`CalcV1Client`) are thin: each method hands its procedure's description and arguments to
 * `Channel.call`.
 */

export interface CallOptions {
  /**
   * Give up after this long (default: the client's, else 30 s); `Infinity` waits until the
   * reply, an abort or the channel's end. Not a number ≥ 0: the call is rejected with a
   * RangeError, unsent.
   */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /**
   * Memory for the reply's opaque data: each opaque in the result (a READ's `data`) is
   * placed in it, one after another, and the result holds views of it — the bytes land where
   * the caller wants them, as C's `xdr_bytes` decodes into a buffer the caller supplies, and
   * no fresh memory is made per call. One copy in every mode (in descriptor mode, instead of
   * a view into the reply). An opaque that does not fit in the room left is decoded as usual.
   * The result is valid until the memory is used again.
   */
  readonly into?: Uint8Array;
}

export interface ClientOptions extends Omit<CallOptions, "into"> {
  /**
   * Credentials sent with every call: AUTH_NONE (default), AUTH_SYS parameters, any
   * opaque_auth as it is, or the parameters of a flavor the channel knows (`authFlavors`),
   * built by that flavor's `credential` once per options object.
   */
  readonly auth?: OpaqueAuth | AuthSysParams | FlavorParams;
}

/** The parameters of a registered flavor, for its credential builder. */
export interface FlavorParams {
  readonly flavor: number;
  readonly params: unknown;
}

export interface ChannelOptions {
  /** Flavors over the built-in AUTH_NONE and AUTH_SYS whose credentials `auth` may name by number. */
  readonly authFlavors?: Iterable<AuthFlavorEntry>;
  /** Called with every finished call's record (as published on `rpcgen-ts:call`). */
  readonly onCall?: CallHook;
  /**
   * Wrap every asynchronous call, the first outermost (see `Interceptor`). Synchronous calls
   * (`callSync`) are refused on a channel that has any, rather than run past them.
   */
  readonly interceptors?: readonly Interceptor[];
  /** Datagram transports: the first retransmission timeout; it doubles up to `maxRetransmitMs`. */
  readonly retransmitMs?: number;
  readonly maxRetransmitMs?: number;
  /**
   * Datagram transports: send a call at most this many times, the first included; after the
   * last, the call waits for a reply until its timeout. Default: no bound but the timeout.
   */
  readonly maxTries?: number;
  /**
   * Calls sent and not yet answered, at most; more wait in the channel, in order, until one
   * ends (their timeouts run while they wait). Default: 128 on datagram transports, where a
   * burst beyond the socket buffers is lost at either end and must be retransmitted;
   * unbounded on streams, which have flow control.
   */
  readonly maxOutstanding?: number;
  /**
   * Largest reply accepted, in bytes: a longer one is read past without being kept, and its
   * call fails TOO_LARGE while the channel serves on. Default 64 MiB + 64 KiB on streams
   * (NFS READ sizes go up to 64 MiB), 65507 on UDP.
   */
  readonly maxMessageBytes?: number;
  /**
   * Stream channels made by `connect` (tcp, unix): when the connection drops, dial again with
   * exponential backoff and jitter (default on; false: the channel closes with its
   * connection). Calls in flight on the lost connection fail CLOSED (a stream cannot say
   * whether they ran); calls made meanwhile wait, their deadlines running, and go out once
   * the channel is `ready` again.
   */
  readonly reconnect?: boolean | ReconnectOptions;
  /**
   * Datagram transports, when the server's host answers with ICMP port unreachable (nobody
   * listens on the port): "fail" (default) fails the calls sent UNREACHABLE at once;
   * "retransmit" treats it as a loss and goes on until their timeouts (a server expected back
   * on the same port).
   */
  readonly unreachable?: "fail" | "retransmit";
}

export interface ReconnectOptions {
  /** The first wait before dialing again (default 100 ms); it doubles after each failed dial… */
  readonly initialDelayMs?: number;
  /** …up to this (default 10 s). Each wait is drawn within ±20% of its value, so clients dropped together do not return together. */
  readonly maxDelayMs?: number;
}

/**
 * `connecting`: dialing; `ready`: connected, calls go out; `reconnecting`: the connection
 * dropped, waiting to dial again; `closed`: for good (closed by the client, or dropped
 * without reconnecting).
 */
export type ChannelState = "connecting" | "ready" | "reconnecting" | "closed";

/** The events of an RpcChannel (a Node EventEmitter). */
export interface ChannelEvents {
  /** The state changed; `cause`: why the connection dropped, or why a dial failed. */
  statechange: [state: ChannelState, previous: ChannelState, cause: Error | undefined];
}

export interface ChannelCloseOptions {
  /**
   * How long calls already sent may take to be answered before the connection is closed
   * (default 5000 ms); calls still unanswered then fail CLOSED. Calls not yet sent and calls
   * made after `close` fail CLOSED at once.
   */
  readonly graceMs?: number;
}

/**
 * One call as interceptors see it. `args`, `auth`, `timeoutMs` and `signal` may be replaced
 * before `next` is called (credentials added, a deadline shortened); the rest says what is
 * called.
 */
export interface ClientCall<A = unknown> {
  readonly service: ServiceDescription;
  readonly procedure: ProcedureDescription<A, unknown>;
  args: A;
  auth: ClientOptions["auth"];
  /** The call's timeout as resolved from its options, the client's and the default (30 s). */
  timeoutMs: number;
  signal: AbortSignal | undefined;
  /** Memory lent for the reply's opaque data (`CallOptions.into`). */
  into: Uint8Array | undefined;
  readonly transport: TransportKind;
}

/** Sends a call on (through the interceptors further in, then the channel); resolves to its result. */
export type CallNext = (call: ClientCall) => Promise<unknown>;

/**
 * Client middleware, shaped as Connect-ES's: given the next step it returns the step that
 * wraps it, so a chain is composed once, when the channel is made, and a call pays only for
 * its `ClientCall` object (a channel without interceptors allocates nothing more). Calling
 * `next` more than once sends the call again, under a new xid (a retry).
 *
 * ```ts
 * const log: Interceptor = (next) => async (call) => {
 *   try { return await next(call); } finally { console.log(call.procedure.name); }
 * };
 * ```
 */
export type Interceptor = (next: CallNext) => CallNext;

export interface Channel {
  readonly transport: TransportKind;
  call<A, R>(
    service: ServiceDescription,
    procedure: ProcedureDescription<A, R>,
    args: A,
    client: ClientOptions | undefined,
    options: CallOptions | undefined,
  ): Promise<R>;
  /**
   * The call, completed on this thread without the event loop: present when the transport can
   * (shm), which spins, then blocks, until the reply. Returns the result or throws as the
   * asynchronous call would reject.
   */
  callSync?<A, R>(
    service: ServiceDescription,
    procedure: ProcedureDescription<A, R>,
    args: A,
    client: ClientOptions | undefined,
    options: CallOptions | undefined,
  ): R;
  close(options?: ChannelCloseOptions): Promise<void>;
}

const defaultTimeoutMs = 30_000;
const defaultCloseGraceMs = 5_000;
const defaultReconnectDelayMs = 100;
const defaultMaxReconnectDelayMs = 10_000;
/** Outstanding calls on a datagram channel, by default (see ChannelOptions.maxOutstanding). */
const defaultDatagramOutstanding = 128;
/** The longest delay a Node timer holds (2³¹ − 1 ms); a longer one fires after 1 ms. */
const maxTimerMs = 0x7fffffff;

/** One outstanding call. Plain fields, reused shape: one object per call besides the promise. */
class Pending {
  resolve!: (value: unknown) => void;
  reject!: (error: unknown) => void;
  promise!: Promise<unknown>;
  deadline = 0;
  /** Datagram transports: when to send again, and the current interval. */
  retransmitAt = 0;
  interval = 0;
  tries = 0;
  /** Sent (counted in the channel's outstanding calls), or still waiting for room. */
  sent = false;
  ledger: CopyLedger | undefined;
  phases: Phases | undefined;
  /** Its trace, when the tracing channel has subscribers; and whether its `end` was published. */
  trace: CallTrace | undefined;
  traceEnded = false;
  /** When the call was made (ns), if it is measured. */
  startedAt = 0;
  sentAt = 0;
  abort: (() => void) | undefined;
  /** Memory lent for the reply's opaque data. */
  into: Uint8Array | undefined;
  /** A synchronous call: settled into these fields, with no promise. */
  sync = false;
  settled = false;
  value: unknown;
  error: unknown;

  constructor(
    readonly xid: number,
    readonly service: ServiceDescription,
    readonly procedure: ProcedureDescription,
    readonly args: unknown,
    readonly cred: OpaqueAuth,
    readonly signal: AbortSignal | undefined,
  ) {}
}

// A module-level executor: no closure is created per call to capture resolve and reject.
let capturing: Pending | undefined;
function capture(resolve: (value: unknown) => void, reject: (error: unknown) => void): void {
  capturing!.resolve = resolve;
  capturing!.reject = reject;
}

export class RpcChannel extends EventEmitter<ChannelEvents> implements Channel, AsyncDisposable {
  readonly transport: TransportKind;
  private current: ChannelState = "ready";
  private readonly pending = new Map<number, Pending>();
  private readonly writer = new XdrWriter(0);
  private readonly reader = new XdrReader(new Uint8Array(0));
  private readonly buffers = new MessageBuffers();
  private readonly credentials = new WeakMap<object, OpaqueAuth>();
  private readonly flavors: AuthRegistry;
  private xid: number;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed: Error | undefined;
  /** Calls sent and not answered, their bound, and the calls waiting for room (in order). */
  private outstanding = 0;
  private readonly maxOutstanding: number;
  private readonly waiting: Pending[] = [];
  /** Calls outstanding that are measured: a reply's arrival is timed only while there are any. */
  private observedCalls = 0;
  /** The interceptors composed around `invoke`, or undefined for none. */
  private readonly chain: CallNext | undefined;
  /** Reconnecting: failed dials since the connection was last ready, and the timer of the next. */
  private dials = 0;
  private redialTimer: NodeJS.Timeout | undefined;
  private readonly reconnect: { readonly initialDelayMs: number; readonly maxDelayMs: number } | undefined;
  private closing: Promise<void> | undefined;

  /** `redial`: how to open a new connection when this one drops (given by `connect` for streams). */
  constructor(
    private link: ClientTransport,
    private readonly options: ChannelOptions = {},
    private readonly redial?: () => Promise<ClientTransport>,
  ) {
    super();
    this.transport = link.kind;
    try {
      this.flavors = authRegistry(defaultAuthFlavors, options.authFlavors);
    } catch (e) {
      void link.close();
      throw e;
    }
    const max = options.maxOutstanding ?? (link.datagram ? defaultDatagramOutstanding : Infinity);
    if (!(typeof max === "number" && max >= 1)) {
      void link.close();
      throw new RangeError(`maxOutstanding must be a number ≥ 1, got ${String(max)}`);
    }
    this.maxOutstanding = max;
    try {
      this.chain = compose(options.interceptors, (c) => this.invoke(c.service, c.procedure, c.args, c.auth, c.timeoutMs, c.signal, c.into));
    } catch (e) {
      void link.close();
      throw e;
    }
    for (const name of ["retransmitMs", "maxRetransmitMs"] as const) {
      const v = options[name];
      // 0 would retransmit on every turn of the event loop.
      if (v !== undefined && !(typeof v === "number" && v > 0)) {
        void link.close();
        throw new RangeError(`${name} must be a number > 0, got ${String(v)}`);
      }
    }
    if (options.unreachable !== undefined && options.unreachable !== "fail" && options.unreachable !== "retransmit") {
      void link.close();
      throw new RangeError(`unreachable must be "fail" or "retransmit", got ${JSON.stringify(options.unreachable)}`);
    }
    this.reconnect = redial === undefined ? undefined : reconnectOptions(options.reconnect, link);
    // Random start: a restarted client must not reuse the xids a server's cache remembers.
    this.xid = (Math.random() * 0x100000000) >>> 0;
    this.attach(link);
  }

  /** See ChannelState; changes are told by the `statechange` event. */
  get state(): ChannelState {
    return this.current;
  }

  /** Takes `link`'s messages; a link this channel has left behind is ignored. */
  private attach(link: ClientTransport): void {
    this.link = link;
    link.onMessage = (message, received) => this.receive(message, received);
    link.onClose = (error) => {
      if (this.link === link) this.dropped(error);
    };
    link.onTooLarge = (xid, bytes, limit) => this.tooLarge(xid, bytes, limit);
    if (this.options.unreachable !== "retransmit") link.onUnreachable = (error) => this.unreachable(error);
  }

  /** Nobody listens where the calls went: those sent fail now, not at their timeouts. */
  private unreachable(error: Error): void {
    for (const p of [...this.pending.values()]) {
      if (p.sent) this.settle(p, new RpcError("UNREACHABLE", `${p.procedure.name} (xid ${p.xid}) could not be delivered: ${error.message}`, { cause: error }));
    }
  }

  call<A, R>(
    service: ServiceDescription,
    procedure: ProcedureDescription<A, R>,
    args: A,
    client: ClientOptions | undefined,
    options: CallOptions | undefined,
  ): Promise<R> {
    const timeout = options?.timeoutMs ?? client?.timeoutMs ?? defaultTimeoutMs;
    const signal = options?.signal ?? client?.signal;
    const into = options?.into;
    const chain = this.chain;
    if (chain === undefined) return this.invoke(service, procedure, args, client?.auth, timeout, signal, into);
    const call: ClientCall<A> = { service, procedure, args, auth: client?.auth, timeoutMs: timeout, signal, into, transport: this.transport };
    try {
      return chain(call as ClientCall) as Promise<R>;
    } catch (e) {
      return Promise.reject(e); // an interceptor that threw rather than returning a rejected promise
    }
  }

  /** One transmission of a call, under its own xid: what the innermost `next` runs. */
  private invoke<A, R>(
    service: ServiceDescription,
    procedure: ProcedureDescription<A, R>,
    args: A,
    auth: ClientOptions["auth"],
    timeout: number,
    signal: AbortSignal | undefined,
    into: Uint8Array | undefined,
  ): Promise<R> {
    let p: Pending;
    try {
      p = this.prepare(service, procedure as ProcedureDescription, args, auth, timeout, signal, into, false);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.outstanding >= this.maxOutstanding || this.current !== "ready") {
      this.waiting.push(p); // sent when a call ends, or once reconnected; its deadline runs meanwhile
      this.schedule(p.deadline);
    } else {
      if (!this.launch(p, p.startedAt)) {
        if (p.trace !== undefined) this.traceEnd(p);
        return p.promise as Promise<R>;
      }
      this.schedule(this.link.datagram ? Math.min(p.deadline, p.retransmitAt) : p.deadline);
    }
    if (signal !== undefined) {
      p.abort = () => this.abandon(p, new RpcError("ABORTED", `${procedure.name} was aborted`, { cause: signal.reason }));
      signal.addEventListener("abort", p.abort, { once: true });
    }
    if (p.trace !== undefined) this.traceEnd(p);
    return p.promise as Promise<R>;
  }

  /**
   * Checks a call and registers it under a new xid, unsent; throws what the call fails with
   * if it cannot be made (the channel closed, an aborted signal, a bad timeout, credentials
   * that do not encode). `sync`: settled into the call's fields, with no promise.
   */
  private prepare(
    service: ServiceDescription,
    procedure: ProcedureDescription,
    args: unknown,
    auth: ClientOptions["auth"],
    timeout: number,
    signal: AbortSignal | undefined,
    into: Uint8Array | undefined,
    sync: boolean,
  ): Pending {
    const observed = this.observing();
    const startedAt = observed ? now() : 0;
    const cred = this.admit(procedure, auth, timeout, signal, into);
    this.xid = (this.xid + 1) >>> 0;
    const p = new Pending(this.xid, service, procedure, args, cred, sync ? undefined : signal);
    p.startedAt = startedAt;
    p.into = into;
    if (sync) p.sync = true;
    else {
      capturing = p;
      p.promise = new Promise(capture);
      capturing = undefined;
    }
    if (observed) this.observe(p);
    p.deadline = Date.now() + timeout;
    if (this.link.datagram) p.interval = this.options.retransmitMs ?? 500;
    this.pending.set(p.xid, p);
    return p;
  }

  /** Whether someone measures calls (a hook, a diagnostics channel, tracing). */
  private observing(): boolean {
    return callChannel.hasSubscribers || this.options.onCall !== undefined || callTracing.hasSubscribers;
  }

  /**
   * Whether a call may be made (the channel open, the signal not fired, a valid timeout);
   * returns its credentials; throws what the call fails with, unsent.
   */
  private admit(
    procedure: ProcedureDescription,
    auth: ClientOptions["auth"],
    timeout: number,
    signal: AbortSignal | undefined,
    into: Uint8Array | undefined,
  ): OpaqueAuth {
    if (this.closed !== undefined) throw new RpcError("CLOSED", `channel is closed: ${this.closed.message}`);
    if (signal?.aborted) throw new RpcError("ABORTED", `${procedure.name} was aborted before it was sent`, { cause: signal.reason });
    if (!(timeout >= 0) || typeof timeout !== "number") {
      throw new RangeError(`${procedure.name}: timeoutMs must be a number ≥ 0 (Infinity: no timeout), got ${String(timeout)}`);
    }
    if (into !== undefined && !(into instanceof Uint8Array)) throw new TypeError(`${procedure.name}: into must be a Uint8Array, got ${String(into)}`);
    try {
      return this.credentialsOf(auth);
    } catch (error) {
      throw credentialsError(procedure.name, error);
    }
  }

  /** Sets up the measurement of a call someone listens to, and opens its trace. */
  private observe(p: Pending): void {
    p.ledger = new CopyLedger();
    p.phases = {};
    this.observedCalls++;
    if (!callTracing.hasSubscribers) return;
    const { service, procedure } = p;
    p.trace = {
      xid: p.xid,
      program: service.program,
      version: service.version,
      service: service.name,
      procedure: procedure.number,
      procedureName: procedure.name,
      mode: service.path.mode,
      transport: this.transport,
      peer: this.link.peer,
      startTime: startTime(),
      status: undefined,
      phases: p.phases,
    };
    callTracing.start.publish(p.trace);
  }

  /** The call has been handed on, or has ended at once (then its `error` came first and no async events follow). */
  private traceEnd(p: Pending): void {
    callTracing.end.publish(p.trace!);
    p.traceEnded = true;
  }

  /**
   * A call completed synchronously, as LRPC's direct hand-off between domains: marshal into
   * the transport (a shared-memory slot), then the transport spins and blocks in
   * `Atomics.wait` until the reply, which is decoded here. No promise, no timer, no turn of the
   * event loop. Only for transports that can (`waitSync`: shm); the others have no way to
   * receive without the event loop.
   */
  callSync<A, R>(
    service: ServiceDescription,
    procedure: ProcedureDescription<A, R>,
    args: A,
    client: ClientOptions | undefined,
    options: CallOptions | undefined,
  ): R {
    const link = this.link;
    if (link.waitSync === undefined) throw new TypeError(`${procedure.name}: synchronous calls need a transport that completes calls without the event loop (shm), not ${link.kind}`);
    if (this.chain !== undefined) throw new TypeError(`${procedure.name}: this channel has interceptors, which return promises: call it asynchronously`);
    // A blocked thread cannot see a signal fire: only one that fired already counts.
    const timeout = options?.timeoutMs ?? client?.timeoutMs ?? defaultTimeoutMs;
    const signal = options?.signal ?? client?.signal;
    const into = options?.into;
    if (link.syncReady?.() === true && this.outstanding < this.maxOutstanding && this.current === "ready" && !this.observing()) {
      return this.exchangeSync(link, service, procedure, args, client?.auth, timeout, signal, into);
    }
    const p = this.prepare(service, procedure as ProcedureDescription, args, client?.auth, timeout, signal, into, true);
    this.launch(p, p.startedAt);
    if (!p.settled && !link.waitSync(() => p.settled, p.deadline)) {
      const why = link.abandon?.(p.xid);
      const detail = `no reply to ${procedure.name} (xid ${p.xid}) within the timeout`;
      this.settle(p, new RpcError("TIMEOUT", why === undefined ? detail : `${detail}: ${why}`));
    }
    if (p.trace !== undefined) this.traceEnd(p); // as traceSync: start, error, end
    if (p.error !== undefined) throw p.error;
    return p.value as R;
  }

  /**
   * A synchronous call nobody observes, when the transport has its memory ready: marshaled
   * into it and exchanged by the transport alone (`exchangeSync`), its reply decoded here.
   * Nothing is registered — no xid table entry, no deadline, no record — since nothing else
   * can run on this thread until the call returns.
   */
  private exchangeSync<A, R>(
    link: ClientTransport,
    service: ServiceDescription,
    procedure: ProcedureDescription<A, R>,
    args: A,
    auth: ClientOptions["auth"],
    timeout: number,
    signal: AbortSignal | undefined,
    into: Uint8Array | undefined,
  ): R {
    const cred = this.admit(procedure as ProcedureDescription, auth, timeout, signal, into);
    const xid = (this.xid = (this.xid + 1) >>> 0);
    const path = service.path;
    const w = this.writer;
    let release: (buffer: Uint8Array) => void;
    try {
      release = this.marshal(link, xid, service, procedure as ProcedureDescription, args, cred, undefined);
    } catch (e) {
      throw encodeError(e);
    }
    const message = link.exchangeSync!(w.buf, w.pos, release, path, timeout);
    if (message === undefined) throw new RpcError("TIMEOUT", `no reply to ${procedure.name} (xid ${xid}) within the timeout`);
    const r = this.reader;
    r.reset(message);
    let header: ReplyHeader;
    try {
      header = readReplyHeader(r);
      if (header.xid !== xid) throw new Error(`it answers xid ${header.xid}`);
    } catch (e) {
      throw unreadableReply(procedure, xid, e);
    }
    return resultOf(header, message, r, service, procedure, undefined, into);
  }

  /**
   * Stops taking calls, lets the calls already sent be answered for up to `graceMs`, then
   * closes the connection; calls still unanswered fail CLOSED. Idempotent.
   */
  close(options?: ChannelCloseOptions): Promise<void> {
    const graceMs = options?.graceMs ?? defaultCloseGraceMs;
    if (!(typeof graceMs === "number" && graceMs >= 0)) return Promise.reject(new RangeError(`close: graceMs must be a number ≥ 0, got ${String(graceMs)}`));
    return (this.closing ??= this.shutDown(graceMs));
  }

  /** `await using channel = await connect(…)`: closed with the default grace when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async shutDown(graceMs: number): Promise<void> {
    const closing = new Error("closed by the client");
    this.closed ??= closing;
    if (this.redialTimer !== undefined) clearTimeout(this.redialTimer);
    for (const p of this.waiting.splice(0)) this.settle(p, new RpcError("CLOSED", `the channel was closed before ${p.procedure.name} was sent`));
    if (this.pending.size > 0 && graceMs > 0 && this.current === "ready") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(graceMs, maxTimerMs));
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.drained = undefined;
    }
    this.fail(closing);
    await this.link.close();
  }

  /** Told when the last outstanding call ends, while closing. */
  private drained: (() => void) | undefined;

  /** Sends a call for the first time; false (and the call failed) if it could not be marshaled. */
  private launch(p: Pending, start: number): boolean {
    p.sent = true;
    this.outstanding++;
    if (p.interval !== 0) p.retransmitAt = Date.now() + p.interval;
    try {
      p.tries = 1;
      this.transmit(p, start);
      return true;
    } catch (e) {
      this.settle(p, encodeError(e));
      return false;
    }
  }

  /** Sends waiting calls while there is room. */
  private pump(): void {
    const waiting = this.waiting;
    while (waiting.length > 0 && this.outstanding < this.maxOutstanding && this.closed === undefined && this.current === "ready") {
      const p = waiting.shift()!;
      if (this.pending.get(p.xid) !== p) continue; // ended while it waited (timed out, aborted)
      if (this.launch(p, p.phases === undefined ? 0 : now())) this.schedule(this.link.datagram ? Math.min(p.deadline, p.retransmitAt) : p.deadline);
    }
  }

  /** Marshals the call into a pooled buffer and hands it to the transport (`start` 0: a retransmission). */
  private transmit(p: Pending, start: number): void {
    const link = this.link;
    const w = this.writer;
    const release = this.marshal(link, p.xid, p.service, p.procedure, p.args, p.cred, p.ledger);
    if (p.phases !== undefined && start !== 0) {
      const marshaled = now();
      p.phases.call = marshaled - start;
      link.send(w.buf, w.pos, p.ledger, release);
      p.sentAt = now();
      p.phases.send = p.sentAt - marshaled;
    } else {
      link.send(w.buf, w.pos, p.ledger, release);
    }
  }

  /**
   * Marshals a call into `this.writer`, over memory `link` lends or a buffer of the channel's;
   * returns how that buffer comes back once sent.
   */
  private marshal(
    link: ClientTransport,
    xid: number,
    service: ServiceDescription,
    procedure: ProcedureDescription,
    args: unknown,
    cred: OpaqueAuth,
    ledger: CopyLedger | undefined,
  ): (buffer: Uint8Array) => void {
    const w = this.writer;
    const path = service.path;
    this.buffers.start(w, link, path);
    writeCallHeader(w, xid, service.program, service.version, procedure.number, cred, AUTH_NONE);
    path.encode(procedure.args, args, w, ledger, procedure.name);
    return this.buffers.finish(w);
  }

  /** A reply arrived; returns whether its decoded result keeps views of `message` (see `ClientTransport.onMessage`). */
  private receive(message: Uint8Array, received: CopyLedger): boolean {
    const arrived = this.observedCalls > 0 ? now() : 0;
    const r = this.reader;
    r.reset(message);
    let header: ReplyHeader;
    try {
      header = readReplyHeader(r);
    } catch (e) {
      this.unreadable(message, e);
      return false;
    }
    const p = this.pending.get(header.xid);
    if (p === undefined) return false; // a late or duplicate reply
    if (p.phases !== undefined) {
      p.phases.transit = arrived - p.sentAt;
      p.ledger!.add(received);
    }
    let result: unknown;
    try {
      result = resultOf(header, message, r, p.service, p.procedure, p.ledger, p.into);
    } catch (e) {
      this.settle(p, e);
      return false;
    }
    if (p.phases !== undefined) p.phases.resume = now() - arrived;
    // Views of the message, if the result took any (descriptor mode), keep it from reuse.
    const keeps = p.service.path.decodesViews && r.viewsTaken;
    this.settle(p, undefined, result);
    return keeps;
  }

  /** A reply the transport discarded for its size: its call fails now, rather than at its timeout. */
  private tooLarge(xid: number | undefined, bytes: number, limit: number): void {
    const p = xid === undefined ? undefined : this.pending.get(xid);
    if (p === undefined) return;
    this.settle(p, new RpcError("TOO_LARGE", `the reply to ${p.procedure.name} (xid ${p.xid}) is at least ${bytes} bytes, over this channel's maxMessageBytes of ${limit}`));
  }

  /** The caller gave up on a call: the transport may take back what the call holds. */
  private abandon(p: Pending, error: RpcError): void {
    if (this.pending.get(p.xid) !== p) return;
    this.link.abandon?.(p.xid);
    this.settle(p, error);
  }

  /**
   * A message the channel cannot read as a reply: an unknown reply_stat, accept_stat or
   * reject_stat, or one cut short. If its first word names an outstanding call and it is not
   * a call itself (a server may send calls back on a connection), that call fails now with
   * CANNOT_DECODE, rather than waiting out its timeout for a reply the server will not send
   * differently (a retransmission gets the same reply from a duplicate-request cache). So
   * does libtirpc, which takes the first message with a call's xid as its reply and fails
   * the call if it does not decode. Anything else is dropped.
   */
  private unreadable(message: Uint8Array, error: unknown): void {
    if (message.length < 4) return;
    const view = new DataView(message.buffer, message.byteOffset, message.length);
    const p = this.pending.get(view.getUint32(0));
    if (p === undefined || (message.length >= 8 && view.getUint32(4) === MsgType.CALL)) return;
    this.settle(p, unreadableReply(p.procedure, p.xid, error));
  }

  /** Completes a call exactly once: removes it, resolves or rejects, publishes its record. */
  private settle(p: Pending, error: unknown, result?: unknown): void {
    if (this.pending.get(p.xid) !== p) return;
    this.pending.delete(p.xid);
    if (p.abort !== undefined) p.signal!.removeEventListener("abort", p.abort);
    if (p.sent) {
      this.outstanding--;
      if (this.waiting.length > 0) this.pump();
    }
    if (this.drained !== undefined && this.pending.size === 0) this.drained();
    if (p.phases !== undefined) {
      this.observedCalls--;
      this.finish(p, error, result);
    }
    if (p.sync) {
      p.settled = true;
      p.value = result;
      p.error = error;
    } else if (error === undefined) p.resolve(result);
    else p.reject(error);
  }

  private finish(p: Pending, error: unknown, result: unknown): void {
    const ok = error === undefined;
    const record = {
      xid: p.xid,
      program: p.service.program,
      version: p.service.version,
      procedure: p.procedure.number,
      mode: p.service.path.mode,
      transport: this.transport,
      ok,
      ...p.ledger!.snapshot(),
      phases: p.phases!,
    };
    if (callChannel.hasSubscribers) callChannel.publish(record);
    this.options.onCall?.(record);
    const trace = p.trace;
    if (trace === undefined) return;
    trace.copies = record.copies;
    trace.bytesCopied = record.bytesCopied;
    if (ok) {
      trace.status = "SUCCESS";
      trace.result = result;
    } else {
      trace.status = error instanceof RpcError ? error.status : "ERROR";
      trace.error = error;
      callTracing.error.publish(trace);
    }
    // Ended after `end` (the usual asynchronous call): the async events, before the caller resumes.
    if (p.traceEnded) {
      callTracing.asyncStart.publish(trace);
      callTracing.asyncEnd.publish(trace);
    }
  }

  private credentialsOf(auth: ClientOptions["auth"]): OpaqueAuth {
    if (auth === undefined) return AUTH_NONE;
    if ("body" in auth) return auth;
    let cred = this.credentials.get(auth);
    if (cred === undefined) {
      const [flavor, params] = "flavor" in auth ? [auth.flavor, auth.params] : [AuthFlavor.AUTH_SYS, auth];
      const build = this.flavors.get(flavor)?.credential;
      if (build === undefined) throw new TypeError(`auth: flavor ${flavor} has no credential builder on this channel (authFlavors)`);
      cred = build(params);
      this.credentials.set(auth, cred);
    }
    return cred;
  }

  /**
   * One timer for every deadline and retransmission: no timer per call. A deadline further
   * than a timer can hold is approached in steps of the longest delay it can (each sweep
   * finds nothing due and schedules the next step); none is set for an infinite one.
   */
  private schedule(at: number): void {
    if (at >= this.timerAt) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.sweeper, Math.min(Math.max(0, at - Date.now()), maxTimerMs));
    this.timer.unref?.();
  }

  private readonly sweeper = (): void => this.sweep();

  private sweep(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const t = Date.now();
    let next = Infinity;
    for (const p of this.pending.values()) {
      if (p.deadline <= t) {
        const why = this.link.abandon?.(p.xid);
        const detail = `no reply to ${p.procedure.name} (xid ${p.xid}) within the timeout`;
        this.settle(p, new RpcError("TIMEOUT", why === undefined ? detail : `${detail}: ${why}`));
        continue;
      }
      if (this.link.datagram && p.sent && p.retransmitAt <= t) {
        if (p.tries >= (this.options.maxTries ?? Infinity)) {
          p.retransmitAt = Infinity; // tried enough: wait for a reply until the deadline
        } else {
          // No client-side buffering (a lean transport: the reply is the acknowledgement): marshal again from the arguments.
          try {
            p.tries++;
            this.transmit(p, 0);
          } catch (e) {
            this.settle(p, e);
            continue;
          }
          p.interval = Math.min(p.interval * 2, this.options.maxRetransmitMs ?? 8000);
          p.retransmitAt = t + p.interval;
        }
      }
      next = Math.min(next, p.deadline, this.link.datagram && p.sent ? p.retransmitAt : Infinity);
    }
    if (next !== Infinity) this.schedule(next);
  }

  /** The channel is done: every waiter is released. */
  private fail(error: Error | undefined): void {
    this.closed ??= error ?? new Error("connection closed");
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.redialTimer !== undefined) clearTimeout(this.redialTimer);
    for (const p of [...this.pending.values()]) {
      this.settle(p, new RpcError("CLOSED", `connection closed before ${p.procedure.name} was answered: ${this.closed.message}`, { cause: error }));
    }
    this.setState("closed", error);
  }

  private setState(state: ChannelState, cause?: Error): void {
    const previous = this.current;
    if (previous === state) return;
    this.current = state;
    this.emit("statechange", state, previous, cause);
  }

  /**
   * The connection dropped. Without a way to reconnect, the channel closes. Otherwise the
   * calls sent on it fail CLOSED (the server may or may not have run them: only the caller
   * knows whether one may be sent again), the rest wait, and the channel dials again.
   */
  private dropped(error: Error | undefined): void {
    if (this.closed !== undefined || this.reconnect === undefined) return this.fail(error);
    const cause = error ?? new Error("connection closed");
    const previous = this.current;
    this.current = "reconnecting"; // before the calls fail, so that the waiting ones are not sent on the dead link
    for (const p of [...this.pending.values()]) {
      if (p.sent) this.settle(p, new RpcError("CLOSED", `the connection was lost before ${p.procedure.name} was answered (it may or may not have run): ${cause.message}`, { cause }));
    }
    this.emit("statechange", "reconnecting", previous, cause);
    this.redialLater();
  }

  private redialLater(): void {
    const { initialDelayMs, maxDelayMs } = this.reconnect!;
    const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** this.dials) * (0.8 + 0.4 * Math.random());
    this.dials++;
    this.redialTimer = setTimeout(() => void this.redialNow(), Math.min(delay, maxTimerMs));
    // Calls waiting keep the process alive, as a connection would; an idle channel does not.
    if (this.pending.size === 0) this.redialTimer.unref();
  }

  private async redialNow(): Promise<void> {
    this.redialTimer = undefined;
    if (this.closed !== undefined) return;
    this.setState("connecting");
    let link: ClientTransport;
    try {
      link = await this.redial!();
    } catch (e) {
      if (this.closed !== undefined) return;
      this.setState("reconnecting", e instanceof Error ? e : new Error(String(e)));
      this.redialLater();
      return;
    }
    if (this.closed !== undefined) {
      void link.close();
      return;
    }
    this.attach(link);
    this.dials = 0;
    this.setState("ready");
    this.pump();
  }
}

function reconnectOptions(option: ChannelOptions["reconnect"], link: ClientTransport): { initialDelayMs: number; maxDelayMs: number } | undefined {
  if (option === false) return undefined;
  const given = option === undefined || option === true ? {} : option;
  const initialDelayMs = given.initialDelayMs ?? defaultReconnectDelayMs;
  const maxDelayMs = given.maxDelayMs ?? Math.max(defaultMaxReconnectDelayMs, initialDelayMs);
  for (const [name, v] of [["reconnect.initialDelayMs", initialDelayMs], ["reconnect.maxDelayMs", maxDelayMs]] as const) {
    if (!(typeof v === "number" && v > 0 && v <= maxTimerMs)) {
      void link.close();
      throw new RangeError(`${name} must be a number > 0 (at most ${maxTimerMs}), got ${String(v)}`);
    }
  }
  return { initialDelayMs, maxDelayMs: Math.max(initialDelayMs, maxDelayMs) };
}

/** The interceptors around `last`, the first outermost; undefined for none. */
function compose(interceptors: readonly Interceptor[] | undefined, last: CallNext): CallNext | undefined {
  if (interceptors === undefined) return undefined;
  if (!Array.isArray(interceptors)) throw new TypeError("interceptors must be an array of functions");
  if (interceptors.length === 0) return undefined;
  let next = last;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const interceptor: unknown = interceptors[i];
    if (typeof interceptor !== "function") throw new TypeError(`interceptors[${i}] is not a function`);
    next = (interceptor as Interceptor)(next);
    if (typeof next !== "function") throw new TypeError(`interceptors[${i}] returned ${String(next)}, not the function a call goes through`);
  }
  return next;
}

/** Credentials that cannot be encoded (17 gids, a uid of −1) fail the call as bad arguments do. */
function credentialsError(procedure: string, error: unknown): unknown {
  return error instanceof XdrError ? new RpcError("CANNOT_ENCODE", `${procedure}: the credentials cannot be encoded: ${error.message}`, { cause: error }) : error;
}

/** Arguments that do not encode fail the call CANNOT_ENCODE; anything else thrown stays as it is. */
function encodeError(e: unknown): unknown {
  return e instanceof XdrError ? new RpcError("CANNOT_ENCODE", e.message, { cause: e }) : e;
}

function unreadableReply(procedure: ProcedureDescription, xid: number, error: unknown): RpcError {
  const why = error instanceof Error ? error.message : String(error);
  return new RpcError("CANNOT_DECODE", `the reply to ${procedure.name} (xid ${xid}) cannot be read: ${why}`, { cause: error });
}

/** The results in a reply whose header `r` has read; throws what the call fails with. */
function resultOf<R>(
  header: ReplyHeader,
  message: Uint8Array,
  r: XdrReader,
  service: ServiceDescription,
  procedure: ProcedureDescription<unknown, R>,
  ledger: CopyLedger | undefined,
  into: Uint8Array | undefined,
): R {
  if (header.kind !== "accepted" || header.stat !== AcceptStat.SUCCESS) throw replyError(header, service, procedure);
  try {
    return service.path.decode(procedure.result, message, r.pos - r.start, message.length, ledger, procedure.name, r, into);
  } catch (e) {
    throw new RpcError("CANNOT_DECODE", e instanceof Error ? e.message : String(e), { cause: e });
  }
}

function replyError(h: ReplyHeader, service: ServiceDescription, procedure: ProcedureDescription): RpcError {
  const what = `${procedure.name} (program ${service.program} version ${service.version} procedure ${procedure.number})`;
  switch (h.kind) {
    case "rpc-mismatch":
      return new RpcError("RPC_MISMATCH", `the server speaks RPC versions ${h.low} to ${h.high}`, { low: h.low, high: h.high });
    case "auth-error":
      return new RpcError("AUTH_ERROR", `the server rejected the credentials of ${what}: ${describeAuthStat(h.stat)}`, { authStat: h.stat });
    case "accepted":
      switch (h.stat) {
        case AcceptStat.PROG_UNAVAIL:
          return new RpcError("PROG_UNAVAIL", `the server does not export program ${service.program}`);
        case AcceptStat.PROG_MISMATCH:
          return new RpcError("PROG_MISMATCH", `the server supports versions ${h.low} to ${h.high} of program ${service.program}`, {
            low: h.low,
            high: h.high,
          });
        case AcceptStat.PROC_UNAVAIL:
          return new RpcError("PROC_UNAVAIL", `the server does not implement ${what}`);
        case AcceptStat.GARBAGE_ARGS:
          return new RpcError("GARBAGE_ARGS", `the server could not decode the arguments of ${what}`);
        default:
          return new RpcError("SYSTEM_ERR", `the server failed while executing ${what}`);
      }
  }
}

/**
 * The base of generated client classes: binds a channel, a service and the client's
 * options; each generated method calls `call` with its procedure.
 */
export class RpcClient {
  // Names a generated method (a procedure's name in lowerCamelCase) is unlikely to take.
  constructor(
    readonly rpcChannel: Channel,
    readonly rpcService: ServiceDescription,
    readonly rpcOptions: ClientOptions = {},
  ) {
    checkService(rpcService, new.target.name);
  }

  protected rpcCall<A, R>(procedure: ProcedureDescription<A, R>, args: A, options?: CallOptions): Promise<R> {
    return this.rpcChannel.call(this.rpcService, procedure, args, this.rpcOptions, options);
  }

  /** The call completed on this thread (generated `sync` methods); a TypeError where the channel cannot. */
  protected rpcCallSync<A, R>(procedure: ProcedureDescription<A, R>, args: A, options?: CallOptions): R {
    const channel = this.rpcChannel;
    if (channel.callSync === undefined) throw new TypeError(`${procedure.name}: this channel has no synchronous calls`);
    return channel.callSync(this.rpcService, procedure, args, this.rpcOptions, options);
  }
}
