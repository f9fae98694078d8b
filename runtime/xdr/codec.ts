import { Descriptor } from "./descriptor.js";
import { XdrError } from "./error.js";
import { XdrReader } from "./reader.js";
import { XdrWriter } from "./writer.js";

/**
 * The codec contract between generated code and the runtime. Every named type `T` of an
 * `.x` file gets a `TCodec: XdrCodec<T>`, and every procedure an argument and a result
 * codec; the runtime calls `encode` with its own send buffer and `decode` on its receive
 * buffer (the synthesized strategy's "installed" marshaling). In descriptor mode the
 * generated `describe` fills a descriptor and `encode` gathers it.
 */
export interface XdrCodec<T> {
  /** The IDL name, first segment of error paths. */
  readonly name: string;
  /** Static layout: the smallest and largest encoding in bytes (`max` undefined: unbounded). */
  readonly min: number;
  readonly max: number | undefined;
  encode(w: XdrWriter, value: T): void;
  decode(r: XdrReader): T;
  /** Descriptor mode: describes `value` as entries over its own bytes. */
  describe?(d: Descriptor, value: T): void;
}

/** A codec that can describe its values: what descriptor-mode services need. */
export interface DescribingCodec<T> extends XdrCodec<T> {
  describe(d: Descriptor, value: T): void;
}

/** Encodes `value` to a fresh array. */
export function toXdr<T>(codec: XdrCodec<T>, value: T): Uint8Array {
  const size = codec.max !== undefined && codec.max <= 65536 ? codec.max : Math.max(codec.min, 256);
  const w = new XdrWriter(size);
  try {
    codec.encode(w, value);
  } catch (e) {
    throw rooted(e, codec.name);
  }
  return w.bytes();
}

/**
 * Decodes exactly one `T` from `bytes`; throws XdrError on truncated, trailing or invalid
 * input. Opaque fields decoded by descriptor-mode codecs are views into `bytes`.
 */
export function fromXdr<T>(codec: XdrCodec<T>, bytes: Uint8Array): T {
  const r = new XdrReader(bytes);
  try {
    const value = codec.decode(r);
    r.finish();
    return value;
  } catch (e) {
    throw rooted(e, codec.name);
  }
}

/** Names the root type in an error's path, at the boundary where a codec was entered. */
export function rooted(e: unknown, name: string): unknown {
  return e instanceof XdrError ? e.within(name) : e;
}

// ---- support for generated code ------------------------------------------------------

/** Descriptors lent to descriptor-mode `encode`s: one per nesting of encodes, reused. */
const pool: Descriptor[] = [];
let inUse = 0;

/** A cleared descriptor for a descriptor-mode codec's `encode`; give it back with `returnDescriptor`. */
export function borrowDescriptor(): Descriptor {
  const d = (pool[inUse] ??= new Descriptor());
  inUse++;
  return d;
}

/** Gathers a described message into the writer in one pass. */
export function gatherDescriptor(d: Descriptor, w: XdrWriter): void {
  const o = w.reserve(d.length);
  d.gatherInto(w.buf, o);
}

export function returnDescriptor(d: Descriptor): void {
  d.reset();
  inUse--;
}

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value.length > 20 ? value.slice(0, 20) + "…" : value);
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : typeof value;
}

/**
 * An encode-side check failed at `at` (bytes from the message start). `path` is relative
 * to the codec; the callers up the stack prepend theirs.
 */
export function invalidValue(at: number, path: string, expected: string, value: unknown): XdrError {
  const detail = value === undefined ? `missing ${expected}` : `expected ${expected}, got ${show(value)}`;
  return new XdrError("encode", at, detail, path === "" ? [] : path.split("."));
}

/** A decode-side check failed at `at` (bytes from the message start). */
export function invalidData(at: number, path: string, detail: string): XdrError {
  return new XdrError("decode", at, detail, path === "" ? [] : path.split("."));
}

/** Prepends the location of a nested value to an error thrown below it. */
export function within(e: unknown, path: readonly string[]): unknown {
  if (e instanceof XdrError) for (let i = path.length - 1; i >= 0; i--) e.within(path[i]!);
  return e;
}

/** Prepends an array index to an error thrown by one of the array's elements. */
export function atIndex(e: unknown, index: number): unknown {
  return e instanceof XdrError ? e.within(`[${index}]`) : e;
}

/** The codec of `void`: nothing on the wire. */
export const voidCodec: DescribingCodec<void> = {
  name: "void",
  min: 0,
  max: 0,
  encode() {},
  decode() {},
  describe() {},
};
