import type { Mode } from "./marshal.js";
import type { CallContext } from "./server.js";
import type { XdrCodec } from "./xdr/codec.js";

/**
 * What generated code tells the runtime about a program version: its numbers, its
 * marshaling mode and, per procedure, the codecs of its arguments and result.
 */

export interface ProcedureDescription<A = unknown, R = unknown> {
  readonly number: number;
  readonly name: string;
  /** How many arguments the procedure takes: 0 (void), 1, or more (then `args` encodes a tuple). */
  readonly arity: number;
  readonly args: XdrCodec<A>;
  readonly result: XdrCodec<R>;
}

export interface ServiceDescription {
  readonly program: number;
  readonly version: number;
  readonly name: string;
  readonly mode: Mode;
  readonly procedures: { readonly [key: string]: ProcedureDescription };
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
