/**
 * The part of @stellar/js-xdr (which ships no types) that bench/competitors.ts uses. The
 * package is CommonJS: its default export is the whole API.
 */
declare module "@stellar/js-xdr" {
  /** A type reference in a `config` definition. */
  export interface TypeRef {
    readonly __jsXdrTypeRef?: never;
  }

  export interface ConfigBuilder {
    struct(name: string, fields: readonly (readonly [string, TypeRef])[]): void;
    typedef(name: string, type: TypeRef): void;
    int(): TypeRef;
    uint(): TypeRef;
    hyper(): TypeRef;
    uhyper(): TypeRef;
    float(): TypeRef;
    double(): TypeRef;
    bool(): TypeRef;
    varOpaque(maxLength: number): TypeRef;
  }

  export interface Writer {
    /** The bytes written so far (a view of the writer's buffer). */
    finalize(): Buffer;
  }

  export interface Reader {
    ensureInputConsumed(): void;
  }

  /** A defined type: static read/write on a struct class, instance read/write on a typedef. */
  export interface XdrType<T> {
    write(value: T, writer: Writer): void;
    read(reader: Reader): T;
  }

  export interface Api {
    config(define: (xdr: ConfigBuilder) => void): Record<string, unknown>;
    XdrWriter: new (buffer?: Buffer | number) => Writer;
    XdrReader: new (source: Buffer) => Reader;
  }

  const xdr: Api;
  export default xdr;
}
