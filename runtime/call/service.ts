import type { AuthContext } from "../auth/registry.js";
import type { XdrCodec } from "../xdr/codec.js";
import type { CopyLedger } from "../xdr/ledger.js";
import type { XdrReader } from "../xdr/reader.js";
import type { XdrWriter } from "../xdr/writer.js";

/**
 * What generated code tells the runtime about a program version: its numbers, its marshal
 * path and, per procedure, the codecs of its arguments and result. Descriptions are made by
 * a path (`classic.service({...})`) and frozen, so the path a description names is the one
 * its generated codecs were written for: it cannot be edited, and a copy is refused.
 */

export type Mode = "classic" | "synthesized" | "descriptor";

export type TransportKind = "inproc" | "shm" | "tcp" | "unix" | "udp";

/**
 * One marshaling mode's way between a procedure's values and the transport's buffers
 * (implemented in paths.ts). Codecs of type `C` are the ones the path can run.
 */
export interface MarshalPath<C extends XdrCodec<unknown> = XdrCodec<unknown>> {
  /** The mode's name, for call records (nothing branches on it). */
  readonly mode: Mode;
  /**
   * Whether it marshals straight into memory a transport lends (a shared-memory slot) and
   * reads from it in place. Classic keeps its separate kernel-buffer stage: the transport
   * copies its messages in and out.
   */
  readonly lendable: boolean;
  /** Whether decoded values may be views into the message, which must then outlive any reuse of its memory. */
  readonly decodesViews: boolean;
  /** Appends `value`'s encoding to `w`, behind the headers already there; `name` roots error paths. */
  encode<T>(codec: C & XdrCodec<T>, value: T, w: XdrWriter, ledger: CopyLedger | undefined, name: string): void;
  /**
   * Decodes exactly one value from `message[offset, end)`, counting the passes that move
   * bytes. `reader` is the caller's own, the one that read the message's header: reading the
   * same array again costs no new view of its memory; afterwards its `viewsTaken` says
   * whether the value holds views into the message. `into`: memory the caller lends for the
   * value's opaque data (`XdrReader.lend`).
   */
  decode<T>(
    codec: C & XdrCodec<T>,
    message: Uint8Array,
    offset: number,
    end: number,
    ledger: CopyLedger | undefined,
    name: string,
    reader: XdrReader,
    into?: Uint8Array,
  ): T;
}

/** A marshal path as generated code uses it: the maker of its service descriptions. */
export interface ServicePath<C extends XdrCodec<unknown> = XdrCodec<unknown>> extends MarshalPath<C> {
  /** Makes a service description served and called through this path. */
  service<const S extends ServiceSpec<C>>(spec: S): Described<S, C>;
  /**
   * The same, naming the handlers interface generated with the description
   * (`classic.service<CalcV1Handlers>()({...})`), so that a server's type errors name it.
   */
  service<H>(): <const S extends ServiceSpec<C>>(spec: S) => Described<S, C> & HandledBy<H>;
}

/** A description as a path makes it. */
export type Described<S, C extends XdrCodec<unknown>> = S & { readonly path: MarshalPath<C> };

/** Types only: the key under which a description names its handlers interface. */
export declare const handlersType: unique symbol;

/** A description that names the handlers interface generated with it (types only: nothing at run time). */
export interface HandledBy<H> {
  readonly [handlersType]?: H;
}

/** The handlers a server takes for `S`: the interface generated with it if it names one, else `HandlersOf<S>`. */
export type HandlersFor<S extends ServiceDescription> = S extends HandledBy<infer H> ? (unknown extends H ? HandlersOf<S> : H) : HandlersOf<S>;

/** What a handler learns about the call it serves. */
export interface CallContext extends AuthContext {
  readonly transport: TransportKind;
  readonly peer: string;
  /**
   * Fires when nobody will read the answer: the call's connection is gone (tcp, unix,
   * inproc), the server closed (at the end of its grace), or the server's `callTimeoutMs`
   * passed. ONC RPC carries no deadline from the client, so a client's timeout cannot fire it.
   */
  readonly signal: AbortSignal;
}

export interface ProcedureDescription<A = unknown, R = unknown> {
  readonly number: number;
  readonly name: string;
  /** How many arguments the procedure takes: 0 (void), 1, or more (then `args` encodes a tuple). */
  readonly arity: number;
  readonly args: XdrCodec<A>;
  readonly result: XdrCodec<R>;
}

/** A description as generated code writes it, before its path makes it a `ServiceDescription`. */
export interface ServiceSpec<C extends XdrCodec<unknown> = XdrCodec<unknown>> {
  readonly program: number;
  readonly version: number;
  readonly name: string;
  readonly procedures: { readonly [key: string]: ProcedureDescription & { readonly args: C; readonly result: C } };
}

export interface ServiceDescription {
  readonly program: number;
  readonly version: number;
  readonly name: string;
  readonly path: MarshalPath;
  readonly procedures: { readonly [key: string]: ProcedureDescription };
}

/** Marks descriptions a path made; not enumerable, so a spread copy does not carry it. */
const madeByPath = Symbol.for("rpcgen-ts.service-description");

/** The description `spec` served through `path`, frozen. */
export function describeService<C extends XdrCodec<unknown>, S extends ServiceSpec<C>>(path: MarshalPath<C>, spec: S): S & { readonly path: MarshalPath<C> } {
  const procedures: Record<string, ProcedureDescription> = {};
  for (const [key, p] of Object.entries(spec.procedures)) procedures[key] = Object.freeze({ ...p });
  const description = { ...spec, path, procedures: Object.freeze(procedures) };
  Object.defineProperty(description, madeByPath, { value: true });
  return Object.freeze(description) as unknown as S & { readonly path: MarshalPath<C> };
}

/**
 * The same service under other numbers (`renumber(CalcV1, { version: 3 })`): the same path,
 * procedures and handlers, made again so that it is a description the runtime takes.
 */
export function renumber<S extends ServiceDescription>(service: S, numbers: { readonly program?: number; readonly version?: number; readonly name?: string }): S {
  checkService(service, "renumber");
  return describeService(service.path, { ...service, ...numbers }) as unknown as S;
}

/** Throws unless `service` was made by a marshal path (and so runs the codecs generated for it). */
export function checkService(service: ServiceDescription, where: string): void {
  if (typeof service !== "object" || service === null || !Object.hasOwn(service, madeByPath)) {
    throw new TypeError(`${where}: not a service description made by a marshal path (classic.service, synthesized.service or descriptor.service in generated code)`);
  }
}

type ValueOf<C> = C extends XdrCodec<infer T> ? T : never;

/** The parameters a procedure's handler (or client method) takes, from its description. */
export type ArgumentsOf<P extends ProcedureDescription> = P["arity"] extends 0
  ? []
  : P["arity"] extends 1
    ? [ValueOf<P["args"]>]
    : ValueOf<P["args"]> extends readonly unknown[]
      ? ValueOf<P["args"]>
      : never;

export type ResultOf<P extends ProcedureDescription> = ValueOf<P["result"]>;

/**
 * The handlers a server needs for a service: one per procedure, keyed as the description keys
 * them, except procedure 0, which the runtime answers itself.
 */
export type HandlersOf<S extends ServiceDescription> = {
  readonly [K in keyof S["procedures"] as S["procedures"][K]["number"] extends 0 ? never : K]: (
    ...args: [...ArgumentsOf<S["procedures"][K]>, CallContext]
  ) => ResultOf<S["procedures"][K]> | Promise<ResultOf<S["procedures"][K]>>;
};
