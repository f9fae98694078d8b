import { authRegistry, decodeAuthSys, defaultAuthFlavors, type AuthFlavorEntry } from "../auth/index.js";
import { synthesized } from "../call/paths.js";
import { checkService, type CallContext, type HandlersFor, type MarshalPath, type ProcedureDescription, type ServiceDescription } from "../call/service.js";
import { now, serveChannel, serveTracing, startTime, type CallHook, type CallStatus, type CallTrace, type Phases } from "../call/timing.js";
import { RpcError } from "../rpc/errors.js";
import {
  AcceptStat,
  AUTH_NONE,
  AuthFlavor,
  AuthStat,
  readCallHeader,
  RPC_VERSION,
  writeAcceptedReply,
  writeRejectedReply,
  type AuthSysParams,
  type CallHeader,
  type OpaqueAuth,
} from "../rpc/message.js";
import type { Dispatcher, ListenAddress, Listener, ReplySink } from "../transport/types.js";
import { CopyLedger } from "../xdr/ledger.js";
import { XdrReader } from "../xdr/reader.js";
import { XdrWriter } from "../xdr/writer.js";
import { MessageBuffers } from "./buffers.js";

/**
 * The server side of the runtime: programs and versions registered with their handlers, and
 * one dispatch routine every transport hands calls to (listening is added above, where the
 * transports are named). It answers as RFC 5531 §9 says —
 * PROG_UNAVAIL, PROG_MISMATCH with the versions it has, PROC_UNAVAIL, GARBAGE_ARGS,
 * SYSTEM_ERR when a handler throws (and keeps serving), RPC_MISMATCH, AUTH_ERROR — and
 * answers procedure 0 of every registered version itself, as rpcgen's servers do.
 */

/** Decides whether a call may proceed: return an auth_stat other than AUTH_OK to refuse it. */
export type AuthCheck = (call: CallContext) => AuthStat | undefined | void;

/**
 * Verifies the credential and verifier of one flavor (RFC 5531 §8.2): undefined or AUTH_OK
 * accepts the call, any other auth_stat refuses it with AUTH_ERROR.
 */
export type FlavorVerifier = (cred: OpaqueAuth, verf: OpaqueAuth, call: CallContext) => AuthStat | number | undefined | void;

/** The verifiers of the built-in flavors (runtime/auth/: AUTH_NONE, AUTH_SYS), by flavor. */
export const defaultVerifiers: Readonly<Record<number, FlavorVerifier>> = Object.freeze(
  Object.fromEntries(defaultAuthFlavors.filter((f) => f.verify !== undefined).map((f) => [f.flavor, f.verify!])),
);

export interface ServerOptions {
  /**
   * Verifiers by credential flavor, over `defaultVerifiers` (an entry for AUTH_NONE or
   * AUTH_SYS replaces the built-in one). A call of any other flavor is refused with
   * AUTH_ERROR / AUTH_REJECTEDCRED, whatever `authenticate` would say.
   */
  readonly verifiers?: Readonly<Record<number, FlavorVerifier>>;
  /**
   * Flavors over the built-in ones (an entry replaces the one of its number); an entry's
   * `verify` admits its flavor, and `verifiers` still goes over these. An entry without
   * `verify` is refused AUTH_REJECTEDCRED like any unknown flavor.
   */
  readonly authFlavors?: Iterable<AuthFlavorEntry>;
  /** A further check, after the call's flavor has been verified. */
  readonly authenticate?: AuthCheck;
  /** Called with each served call's record (as published on `rpcgen-ts:serve`). */
  readonly onServe?: CallHook;
  /**
   * Told about failures answered with SYSTEM_ERR: a handler, a verifier or `authenticate`
   * that threw, a result that did not encode (default: nothing is logged). What this hook or
   * `onServe` throw is ignored.
   */
  readonly onError?: (error: unknown, call: CallContext) => void;
  /**
   * Wrap every call to a handler, the first outermost (see `ServerInterceptor`). Calls the
   * runtime answers itself (procedure 0, unknown programs, refused credentials) do not pass
   * through them.
   */
  readonly interceptors?: readonly ServerInterceptor[];
  /**
   * A handler's `context.signal` fires this long after its call arrived. ONC RPC sends no
   * deadline with a call (RFC 5531's call header has none; a client's timeout is its own), so
   * the server can only have its own. Default: none.
   */
  readonly callTimeoutMs?: number;
}

/** A call to a handler as server interceptors see it; `args` may be replaced before `next`. */
export interface ServerCall<A = unknown> {
  readonly service: ServiceDescription;
  readonly procedure: ProcedureDescription<A, unknown>;
  args: A;
  readonly context: CallContext;
}

/** Runs the interceptors further in, then the handler: its result, or a promise of it. */
export type ServeNext = (call: ServerCall) => unknown;

/**
 * Server middleware, shaped as the client's `Interceptor` (and Connect-ES's): given the next
 * step it returns the step that wraps it, composed once per server. What it throws, or its
 * promise rejects with, is answered SYSTEM_ERR and told to `onError`, as a handler's failure.
 */
export type ServerInterceptor = (next: ServeNext) => ServeNext;

/** The handler a ServerCall is for: a symbol, so a spread copy of the call keeps it and nobody trips on it. */
const handlerOf = Symbol("handler");

export interface ServerCloseOptions {
  /** How long calls in progress may take to be answered before their connections are closed (default 5000 ms). */
  readonly graceMs?: number;
}

const defaultCloseGraceMs = 5_000;

type Handler = (...args: unknown[]) => unknown;

interface Registered {
  readonly service: ServiceDescription;
  /** Procedures by number, with their handlers. */
  readonly procedures: Map<number, { readonly description: ProcedureDescription; readonly handler: Handler }>;
}

export class ServerCore implements Dispatcher, AsyncDisposable {
  /** program → version → registration. */
  private readonly programs = new Map<number, Map<number, Registered>>();
  private readonly reader = new XdrReader(new Uint8Array(0));
  private readonly authReader = new XdrReader(new Uint8Array(0));
  private readonly writer = new XdrWriter(0);
  private readonly buffers = new MessageBuffers();
  protected readonly listeners: Listener[] = [];
  protected readonly closers: (() => Promise<void>)[] = [];
  /** Verifiers by flavor: the built-in ones under the application's. */
  private readonly verifiers = new Map<number, FlavorVerifier>();
  /** Whether an AUTH_NONE call with an AUTH_NONE verifier needs any check (else none is called). */
  private readonly guarded: boolean;
  /** The interceptors composed around the handler, or undefined for none. */
  private readonly chain: ServeNext | undefined;
  /** Aborted when a close's grace ends: the signal of every call in progress then. */
  private shutdown = new AbortController();
  /** @internal What a call's signal follows for the server's end. */
  get closing(): AbortSignal {
    return this.shutdown.signal;
  }

  constructor(readonly options: ServerOptions = {}) {
    const table: Record<number, unknown> = {};
    for (const f of authRegistry(defaultAuthFlavors, options.authFlavors, "createServer: authFlavors").values()) if (f.verify !== undefined) table[f.flavor] = f.verify;
    Object.assign(table, options.verifiers);
    for (const [key, verify] of Object.entries(table)) {
      const flavor = Number(key);
      if (!(Number.isInteger(flavor) && flavor >= 0 && flavor <= 0xffffffff)) throw new RangeError(`createServer: verifiers: ${key} is not a flavor number`);
      if (typeof verify !== "function") throw new TypeError(`createServer: verifiers[${key}] is not a function`);
      this.verifiers.set(flavor, verify as FlavorVerifier);
    }
    this.guarded = options.authenticate !== undefined || this.verifiers.get(AuthFlavor.AUTH_NONE) !== defaultVerifiers[AuthFlavor.AUTH_NONE];
    const ms = options.callTimeoutMs;
    if (ms !== undefined && !(typeof ms === "number" && ms >= 0)) throw new RangeError(`createServer: callTimeoutMs must be a number ≥ 0, got ${String(ms)}`);
    this.chain = composeServer(options.interceptors);
  }

  /**
   * Serves `service` with `handlers` (one per procedure except procedure 0). A procedure
   * without a handler is answered PROC_UNAVAIL.
   */
  register<S extends ServiceDescription>(service: S, handlers: HandlersFor<S>): this {
    checkService(service, "register");
    let versions = this.programs.get(service.program);
    if (versions === undefined) this.programs.set(service.program, (versions = new Map()));
    const procedures = new Map<number, { description: ProcedureDescription; handler: Handler }>();
    const table = handlers as unknown as Record<string, Handler | undefined>;
    for (const [key, description] of Object.entries(service.procedures)) {
      if (description.number === 0) continue;
      const handler = table[key];
      if (typeof handler !== "function") continue;
      procedures.set(description.number, { description, handler: handler.bind(handlers) as Handler });
    }
    versions.set(service.version, { service, procedures });
    return this;
  }

  /** The registered (program, version) pairs, for rpcbind. */
  get services(): ServiceDescription[] {
    return [...this.programs.values()].flatMap((v) => [...v.values()].map((r) => r.service));
  }

  /**
   * The marshal path of `program` `version`, or of the program's first registered version
   * (whose path answers a version mismatch): what a transport that lends memory asks.
   */
  pathOf(program: number, version: number): MarshalPath | undefined {
    const versions = this.programs.get(program);
    if (versions === undefined) return undefined;
    return (versions.get(version) ?? versions.values().next().value)?.service.path;
  }

  /** Each stream listener's address and what it holds now (connections, buffered bytes, calls in progress…). */
  listenerStats(): { address: ListenAddress; stats: object }[] {
    return this.listeners.flatMap((l) => (l.stats === undefined ? [] : [{ address: l.address, stats: l.stats() }]));
  }

  /**
   * Closes gracefully: the listeners stop accepting connections (and rpcbind forgets the
   * server), calls in progress get up to `graceMs` to finish and be answered, then the
   * connections are closed. Calls that arrive meanwhile on connections still open are
   * answered SYSTEM_ERR at once, unrun: the caller learns promptly that the call did not
   * run, rather than waiting out its timeout. Afterwards the server may listen again.
   */
  async close(options?: ServerCloseOptions): Promise<void> {
    const graceMs = options?.graceMs ?? defaultCloseGraceMs;
    if (!(typeof graceMs === "number" && graceMs >= 0)) throw new RangeError(`close: graceMs must be a number ≥ 0, got ${String(graceMs)}`);
    const closers = this.closers.splice(0);
    const listeners = this.listeners.splice(0);
    this.stopping++;
    try {
      for (const l of listeners) l.stop?.();
      await Promise.allSettled(closers.map((c) => c()));
      if (this.inFlight > 0 && graceMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(graceMs, 0x7fffffff));
          this.idle.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      // The grace is over: handlers still running are told to stop, then their connections close.
      const shutdown = this.shutdown;
      this.shutdown = new AbortController();
      shutdown.abort(new RpcError("CLOSED", "the server closed"));
      await Promise.all(listeners.map((l) => l.close()));
    } finally {
      this.stopping--;
    }
  }

  /** `await using server = createServer()…`: closed with the default grace when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Closing (a count: closes may overlap): calls are refused. */
  private stopping = 0;
  /** Calls whose handler is still running (returned a promise), and who waits for there to be none. */
  private inFlight = 0;
  private idle: (() => void)[] = [];

  private ended(): void {
    if (--this.inFlight === 0 && this.idle.length > 0) for (const f of this.idle.splice(0)) f();
  }

  /**
   * Serves one call and answers it at most once. Never throws for anything a peer, a handler
   * or a hook does: a message that is not a call is dropped; everything else is answered.
   */
  dispatch(message: Uint8Array, sink: ReplySink, received: CopyLedger): void {
    const observed = serveChannel.hasSubscribers || this.options.onServe !== undefined || serveTracing.hasSubscribers;
    const arrived = observed ? now() : 0;
    const r = this.reader;
    r.reset(message);
    let header: CallHeader;
    try {
      header = readCallHeader(r);
    } catch {
      sink.dropped?.();
      return; // not a call: nothing to answer (RFC 5531 gives no reply for it); drop it
    }
    const ledger = observed ? new CopyLedger() : undefined;
    const phases: Phases | undefined = observed ? {} : undefined;
    ledger?.add(received);
    let parsed = 0;
    if (phases !== undefined) {
      parsed = now();
      phases.receive = parsed - arrived;
    }
    const call = new Call(header, sink, ledger, phases, parsed, this);
    if (this.options.callTimeoutMs !== undefined) call.deadline = Date.now() + this.options.callTimeoutMs;
    if (phases === undefined || !serveTracing.hasSubscribers) {
      this.serve(call, message);
      return;
    }
    // Traced: the rest runs inside `start.runStores`, so stores bound there are the handler's.
    const trace = this.traceOf(call, phases);
    call.trace = trace;
    serveTracing.start.runStores(trace, this.serve, this, call, message);
    call.traceEnded = true;
    serveTracing.end.publish(trace);
  }

  /** A traced call's context, from what its header names. */
  private traceOf(call: Call, phases: Phases): CallTrace {
    const { header } = call;
    const registered = this.programs.get(header.prog)?.get(header.vers);
    const service = registered?.service;
    const procedureName =
      service === undefined
        ? undefined
        : header.proc === 0
          ? Object.values(service.procedures).find((p) => p.number === 0)?.name
          : registered!.procedures.get(header.proc)?.description.name;
    return {
      xid: header.xid,
      program: header.prog,
      version: header.vers,
      service: service?.name,
      procedure: header.proc,
      procedureName,
      mode: (service?.path ?? synthesized).mode,
      transport: call.sink.kind,
      peer: call.sink.peer,
      startTime: startTime(),
      status: undefined,
      phases,
    };
  }

  /** Serves a call whose header has been read: authentication, the procedure, its answer. */
  private serve(call: Call, message: Uint8Array): void {
    const { header, sink, ledger, phases } = call;
    const r = this.reader;
    if (header.rpcvers !== RPC_VERSION) return call.reject({ kind: "rpc-mismatch", low: RPC_VERSION, high: RPC_VERSION });

    const authSys = header.cred.flavor === AuthFlavor.AUTH_SYS ? decodeAuthSys(header.cred.body, this.authReader) : undefined;
    const context = new ServedContext(header, authSys, sink, call);
    call.context = context;
    if (this.stopping !== 0) return call.accept(AcceptStat.SYSTEM_ERR); // closing: refused, unrun
    // The usual call (AUTH_NONE with an AUTH_NONE verifier, nothing installed to judge it) costs one comparison.
    if (((header.cred.flavor | header.verf.flavor) !== 0 || this.guarded) && !this.admit(call, context)) return;

    const versions = this.programs.get(header.prog);
    if (versions === undefined) return call.accept(AcceptStat.PROG_UNAVAIL);
    const registered = versions.get(header.vers);
    call.path = (registered ?? versions.values().next().value)?.service.path;
    if (registered === undefined) {
      const numbers = [...versions.keys()];
      return call.accept(AcceptStat.PROG_MISMATCH, { low: Math.min(...numbers), high: Math.max(...numbers) });
    }
    if (header.proc === 0) return call.succeed(undefined, undefined, registered.service);
    const procedure = registered.procedures.get(header.proc);
    if (procedure === undefined) return call.accept(AcceptStat.PROC_UNAVAIL);

    const { service } = registered;
    const { description, handler } = procedure;
    let args: unknown;
    try {
      args = service.path.decode(description.args, message, r.pos - r.start, message.length, ledger, description.name, r);
    } catch {
      return call.accept(AcceptStat.GARBAGE_ARGS);
    }
    let started = 0;
    if (phases !== undefined) {
      started = now();
      phases.dispatch = started - call.parsed;
    }
    let result: unknown;
    try {
      const chain = this.chain;
      if (chain === undefined) result = invoke(handler, description.arity, args, context);
      else result = chain({ service, procedure: description, args, context, [handlerOf]: handler } as ServerCall);
    } catch (e) {
      this.failed(e, context);
      return call.accept(AcceptStat.SYSTEM_ERR);
    }
    if (result instanceof Promise) {
      this.inFlight++;
      result.then(
        (value: unknown) => {
          call.succeed(description, value, service, started);
          this.ended();
        },
        (e: unknown) => {
          this.failed(e, context);
          call.accept(AcceptStat.SYSTEM_ERR);
          this.ended();
        },
      );
    } else {
      call.succeed(description, result, service, started);
    }
  }

  /**
   * Fails closed (RFC 5531 §9): a flavor without a verifier is refused AUTH_REJECTEDCRED, as
   * libtirpc refuses flavors it does not know; a verified call then meets `authenticate`. A
   * verifier or hook that throws, or returns what is not an auth_stat, is the server's own
   * failure, not the caller's credentials: that call alone is answered SYSTEM_ERR (as Linux
   * answers an authentication it could not complete) and reported to `onError`. Returns
   * whether the call may proceed; otherwise it has been answered.
   */
  private admit(call: Call, context: CallContext): boolean {
    let stat: unknown;
    try {
      const verify = this.verifiers.get(context.cred.flavor);
      if (verify === undefined) stat = AuthStat.AUTH_REJECTEDCRED;
      else {
        stat = verify(context.cred, context.verf, context);
        if ((stat === undefined || stat === AuthStat.AUTH_OK) && this.options.authenticate !== undefined) stat = this.options.authenticate(context);
      }
      if (stat === undefined || stat === AuthStat.AUTH_OK) return true;
      if (typeof stat !== "number" || stat >>> 0 !== stat) {
        throw new TypeError(`the authentication of program ${context.program} procedure ${context.procedure} returned ${String(stat)}, not an auth_stat`);
      }
    } catch (e) {
      this.failed(e, context);
      call.accept(AcceptStat.SYSTEM_ERR);
      return false;
    }
    call.reject({ kind: "auth-error", stat });
    return false;
  }

  /** @internal Tells `onError`; a hook that throws must not take the connection (or the process) with it. */
  failed(error: unknown, context: CallContext): void {
    ServedContext.failed(context, error);
    const onError = this.options.onError;
    if (onError === undefined) return;
    try {
      onError(error, context);
    } catch {
      // Nothing is left to tell.
    }
  }

  /** @internal Marshals a reply header and (on success) the results into a pooled buffer and sends it. */
  reply(call: Call, write: (w: XdrWriter) => void): void {
    const w = this.writer;
    this.buffers.start(w, call.sink, call.path ?? synthesized);
    write(w);
    call.sink.send(w.buf, w.pos, call.ledger, this.buffers.finish(w));
  }

  /** @internal */
  marshal(call: Call, service: ServiceDescription, description: ProcedureDescription | undefined, value: unknown): void {
    const w = this.writer;
    this.buffers.start(w, call.sink, service.path);
    writeAcceptedReply(w, call.header.xid, AUTH_NONE, AcceptStat.SUCCESS);
    if (description !== undefined) service.path.encode(description.result, value, w, call.ledger, description.name);
    call.sink.send(w.buf, w.pos, call.ledger, this.buffers.finish(w));
  }

  /** @internal The call has been answered with `status`. */
  published(call: Call, status: CallStatus): void {
    call.settled();
    if (call.phases === undefined) return;
    const ok = status === "SUCCESS";
    const record = {
      xid: call.header.xid,
      program: call.header.prog,
      version: call.header.vers,
      procedure: call.header.proc,
      // A call no registered program answers is reported as the default mode's.
      mode: call.path?.mode ?? synthesized.mode,
      transport: call.sink.kind,
      ok,
      ...call.ledger!.snapshot(),
      phases: call.phases,
    };
    if (serveChannel.hasSubscribers) serveChannel.publish(record);
    const onServe = this.options.onServe;
    if (onServe !== undefined) {
      try {
        onServe(record);
      } catch {
        // The call is answered; an observer's failure is not the peer's concern.
      }
    }
    const trace = call.trace;
    if (trace === undefined) return;
    trace.status = status;
    trace.copies = record.copies;
    trace.bytesCopied = record.bytesCopied;
    if (ok) trace.result = call.result;
    else {
      trace.error = call.error ?? new RpcError(status as Exclude<CallStatus, "SUCCESS" | "ERROR">, `program ${trace.program} version ${trace.version} procedure ${trace.procedure} was answered ${status}`);
      serveTracing.error.publish(trace);
    }
    // Answered after `end` (a handler's promise): the async events.
    if (call.traceEnded) {
      serveTracing.asyncStart.publish(trace);
      serveTracing.asyncEnd.publish(trace);
    }
  }
}

/** Calls a handler with its arguments spread as its arity says, and the context last. */
function invoke(handler: Handler, arity: number, args: unknown, context: CallContext): unknown {
  switch (arity) {
    case 0:
      return handler(context);
    case 1:
      return handler(args, context);
    default:
      return handler(...(args as unknown[]), context);
  }
}

/** The innermost step of every server's interceptors: the handler. */
const callHandler: ServeNext = (c) => invoke((c as ServerCall & { [handlerOf]: Handler })[handlerOf], c.procedure.arity, c.args, c.context);

function composeServer(interceptors: readonly ServerInterceptor[] | undefined): ServeNext | undefined {
  if (interceptors === undefined) return undefined;
  if (!Array.isArray(interceptors)) throw new TypeError("createServer: interceptors must be an array of functions");
  if (interceptors.length === 0) return undefined;
  let next = callHandler;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const interceptor: unknown = interceptors[i];
    if (typeof interceptor !== "function") throw new TypeError(`createServer: interceptors[${i}] is not a function`);
    next = (interceptor as ServerInterceptor)(next);
    if (typeof next !== "function") throw new TypeError(`createServer: interceptors[${i}] returned ${String(next)}, not the function a call goes through`);
  }
  return next;
}

const acceptStatus: readonly CallStatus[] = ["SUCCESS", "PROG_UNAVAIL", "PROG_MISMATCH", "PROC_UNAVAIL", "GARBAGE_ARGS", "SYSTEM_ERR"];

/**
 * What a handler learns about its call. A class rather than a literal so that `signal` is
 * made only when a handler asks for it: a call that never looks allocates nothing for it.
 */
class ServedContext implements CallContext {
  readonly xid: number;
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
  readonly cred: OpaqueAuth;
  readonly verf: OpaqueAuth;
  readonly transport: ReplySink["kind"];
  readonly peer: string;
  readonly #call: Call;

  constructor(
    header: CallHeader,
    readonly authSys: AuthSysParams | undefined,
    sink: ReplySink,
    call: Call,
  ) {
    this.xid = header.xid;
    this.program = header.prog;
    this.version = header.vers;
    this.procedure = header.proc;
    this.cred = header.cred;
    this.verf = header.verf;
    this.transport = sink.kind;
    this.peer = sink.peer;
    this.#call = call;
  }

  get signal(): AbortSignal {
    return this.#call.signal();
  }

  /** Keeps what a handler (or hook) of the call threw, for its trace. */
  static failed(context: CallContext, error: unknown): void {
    if (context instanceof ServedContext) context.#call.error ??= error;
  }
}

/** One call being served: where its reply goes and what is measured of it. */
class Call {
  context: CallContext | undefined;
  /** The path of the service that serves the call, once known (its buffers and its record). */
  path: MarshalPath | undefined;
  /** `callTimeoutMs`: when the call's signal fires (a Date.now() time; 0: never). */
  deadline = 0;
  /** The handler's signal once asked for; the timer and the signals it follows until the call is answered. */
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sources: AbortSignal[] | undefined;
  private relay: ((event: Event) => void) | undefined;
  /** Traced calls: the trace, whether its `end` was published, and what the handler gave. */
  trace: CallTrace | undefined;
  traceEnded = false;
  result: unknown;
  error: unknown;

  constructor(
    readonly header: CallHeader,
    readonly sink: ReplySink,
    readonly ledger: CopyLedger | undefined,
    readonly phases: Phases | undefined,
    readonly parsed: number,
    private readonly server: ServerCore,
  ) {}

  /**
   * The handler's signal, made at its first use: it fires when the call's connection is gone,
   * when the server closes (at the end of its grace), or at the server's `callTimeoutMs`.
   */
  signal(): AbortSignal {
    if (this.controller !== undefined) return this.controller.signal;
    const controller = (this.controller = new AbortController());
    // Listeners added here and removed when the call is answered (`settled`), rather than
    // AbortSignal.any: Node 20 keeps a reference per dependent signal on a source signal as
    // long as the source lives (the server, a connection), which grows with every call.
    const sources = [this.server.closing];
    if (this.sink.signal !== undefined) sources.push(this.sink.signal);
    const fired = sources.find((s) => s.aborted);
    if (fired !== undefined) {
      controller.abort(fired.reason);
      return controller.signal;
    }
    const relay = (event: Event) => {
      this.settled();
      controller.abort((event.target as AbortSignal).reason);
    };
    for (const s of sources) s.addEventListener("abort", relay);
    this.sources = sources;
    this.relay = relay;
    if (this.deadline !== 0) {
      const ms = this.server.options.callTimeoutMs;
      const fire = () => {
        this.settled();
        controller.abort(new RpcError("TIMEOUT", `the call ran past the server's callTimeoutMs of ${ms} ms`));
      };
      const left = this.deadline - Date.now();
      if (left <= 0) fire();
      else (this.timer = setTimeout(fire, Math.min(left, 0x7fffffff))).unref();
    }
    return controller.signal;
  }

  /** The call is answered (or its signal fired): the signal follows nothing more. */
  settled(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const relay = this.relay;
    if (relay === undefined) return;
    for (const s of this.sources!) s.removeEventListener("abort", relay);
    this.relay = undefined;
    this.sources = undefined;
  }

  /** An accepted reply without results (every status but SUCCESS). */
  accept(stat: AcceptStat, mismatch?: { low: number; high: number }): void {
    this.server.reply(this, (w) => writeAcceptedReply(w, this.header.xid, AUTH_NONE, stat, mismatch));
    this.server.published(this, acceptStatus[stat]!);
  }

  reject(reason: Parameters<typeof writeRejectedReply>[2]): void {
    this.server.reply(this, (w) => writeRejectedReply(w, this.header.xid, reason));
    this.server.published(this, reason.kind === "rpc-mismatch" ? "RPC_MISMATCH" : "AUTH_ERROR");
  }

  succeed(description: ProcedureDescription | undefined, value: unknown, service: ServiceDescription, started = 0): void {
    const executed = this.phases !== undefined ? now() : 0;
    if (this.phases !== undefined && started !== 0) this.phases.execute = executed - started;
    try {
      this.server.marshal(this, service, description, value);
    } catch (e) {
      // The handler returned something its result type cannot encode: the server's fault.
      if (this.context !== undefined) this.server.failed(e, this.context);
      this.accept(AcceptStat.SYSTEM_ERR);
      return;
    }
    if (this.phases !== undefined) {
      this.phases.reply = now() - executed;
      if (started === 0) this.phases.dispatch = executed - this.parsed;
    }
    if (this.trace !== undefined) this.result = value;
    this.server.published(this, "SUCCESS");
  }
}

