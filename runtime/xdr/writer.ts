import { copyBytes, type CopyLayer, type CopyLedger } from "./ledger.js";
import { XdrError } from "./error.js";
import { padded, zeroPad } from "./pad.js";
import { encodeUtf8Into, utf8Length, utf8MaxLength } from "./utf8.js";

export interface XdrWriterOptions {
  /** Never grow: running out of room is an XdrError (the caller's buffer is the message slot). */
  fixed?: boolean;
  /** Where writing starts in the buffer; `bytes()` and error offsets count from here. */
  offset?: number;
  /** Where opaque payload copies and growth copies are counted; none means nobody counts. */
  ledger?: CopyLedger;
  /** The layer those copies are charged to (default "stub"). */
  layer?: CopyLayer;
  /** Nesting limit for `enter()` (default 200): a cyclic value must not encode forever. */
  maxDepth?: number;
}

// For error messages; the range checks themselves use BigInt.asIntN/asUintN (fastest on V8).
const MIN_I64 = -(2n ** 63n);
const MAX_I64 = 2n ** 63n - 1n;
const MAX_U64 = 2n ** 64n - 1n;

/**
 * Encodes XDR (RFC 4506): big-endian, 4-byte units, zero padding, every
 * bound checked. Generated codecs call it directly, so each primitive is a
 * check, one room test and a DataView store: no allocation, no closures.
 *
 * Scalars stored with `view.setXxx` are marshaling, not copies; opaque
 * payloads and the bytes moved when the buffer grows are copies of message
 * bytes and go through the ledger. Strings are transcoded from UTF-16, not
 * copied, and are not counted.
 *
 * Error offsets count from the start given at construction or `reset`.
 */
export class XdrWriter {
  /** Public so synthesized code can store at offsets returned by `reserve`. Re-read after any call that may grow. */
  buf: Uint8Array;
  view: DataView;
  pos: number;
  /** Where this message starts in `buf`. */
  start: number;
  readonly fixed: boolean;
  ledger: CopyLedger | undefined;
  layer: CopyLayer;
  readonly maxDepth: number;
  depth: number;

  constructor(capacityOrBuffer: number | Uint8Array = 256, options: XdrWriterOptions = {}) {
    const buf = typeof capacityOrBuffer === "number" ? new Uint8Array(capacityOrBuffer) : capacityOrBuffer;
    const offset = options.offset ?? 0;
    checkOffset(buf, offset);
    this.buf = buf;
    this.view = viewOf(buf);
    this.pos = offset;
    this.start = offset;
    this.fixed = options.fixed ?? false;
    this.ledger = options.ledger;
    this.layer = options.layer ?? "stub";
    this.maxDepth = options.maxDepth ?? 200;
    this.depth = 0;
  }

  /**
   * Starts a new message without allocating: on `buf` if given (a new
   * DataView is made only when the buffer changes), else on the current one.
   * `offset` defaults to 0 for a new buffer and to the current start otherwise.
   */
  reset(buf?: Uint8Array, offset?: number): void {
    if (buf !== undefined && buf !== this.buf) {
      checkOffset(buf, offset ?? 0);
      this.buf = buf;
      this.view = viewOf(buf);
      this.start = offset ?? 0;
    } else if (offset !== undefined) {
      checkOffset(this.buf, offset);
      this.start = offset;
    }
    this.pos = this.start;
    this.depth = 0;
  }

  /**
   * Makes room for `n` bytes, advances `pos` past them and returns where they
   * start. For fixed-size runs: one check, then `view.setXxx` at o, o+4, …
   * (read `view` after this call: growing replaces it).
   */
  reserve(n: number): number {
    const o = this.pos;
    if (o + n > this.buf.length) this.grow(n);
    this.pos = o + n;
    return o;
  }

  /** Signed 32-bit integer (RFC 4506 §4.1). */
  int(v: number): void {
    if ((v | 0) !== v) throw this.badInt(v, "int", -0x80000000, 0x7fffffff);
    const o = this.pos;
    if (o + 4 > this.buf.length) this.grow(4);
    this.view.setInt32(o, v);
    this.pos = o + 4;
  }

  /** Unsigned 32-bit integer (RFC 4506 §4.2). */
  uint(v: number): void {
    if (v >>> 0 !== v) throw this.badInt(v, "unsigned int", 0, 0xffffffff);
    const o = this.pos;
    if (o + 4 > this.buf.length) this.grow(4);
    this.view.setUint32(o, v);
    this.pos = o + 4;
  }

  /**
   * rpcgen's C aliases (char, short, u_char, u_short, …): a 4-byte XDR
   * integer, as xdr_char and friends write it, range-checked to the C type.
   */
  intIn(v: number, min: number, max: number, cname: string): void {
    if (!(v >= min && v <= max && Number.isInteger(v))) throw this.badInt(v, cname, min, max);
    const o = this.pos;
    if (o + 4 > this.buf.length) this.grow(4);
    // setInt32 wraps modulo 2^32, so unsigned ranges up to 2^32-1 store correctly too.
    this.view.setInt32(o, v);
    this.pos = o + 4;
  }

  /** An enum value (RFC 4506 §4.3: a signed int) that must be one of `members`. */
  enumValue(v: number, members: ReadonlySet<number>, name: string): void {
    if (!members.has(v)) throw this.error(`value ${String(v)} is not a member of enum ${name}`);
    this.int(v);
  }

  /** Signed 64-bit "hyper" (RFC 4506 §4.5). */
  hyper(v: bigint): void {
    if (typeof v !== "bigint" || BigInt.asIntN(64, v) !== v) throw this.badBigInt(v, "hyper", MIN_I64, MAX_I64);
    const o = this.pos;
    if (o + 8 > this.buf.length) this.grow(8);
    this.view.setBigInt64(o, v);
    this.pos = o + 8;
  }

  /** Unsigned 64-bit "unsigned hyper" (RFC 4506 §4.5). */
  uhyper(v: bigint): void {
    if (typeof v !== "bigint" || BigInt.asUintN(64, v) !== v) throw this.badBigInt(v, "unsigned hyper", 0n, MAX_U64);
    const o = this.pos;
    if (o + 8 > this.buf.length) this.grow(8);
    this.view.setBigUint64(o, v);
    this.pos = o + 8;
  }

  /** IEEE single precision (RFC 4506 §4.6); the value is rounded to float32 as C would. */
  float(v: number): void {
    if (typeof v !== "number") throw this.error(`expected number for float, got ${describe(v)}`);
    const o = this.pos;
    if (o + 4 > this.buf.length) this.grow(4);
    this.view.setFloat32(o, v);
    this.pos = o + 4;
  }

  /** IEEE double precision (RFC 4506 §4.7). */
  double(v: number): void {
    if (typeof v !== "number") throw this.error(`expected number for double, got ${describe(v)}`);
    const o = this.pos;
    if (o + 8 > this.buf.length) this.grow(8);
    this.view.setFloat64(o, v);
    this.pos = o + 8;
  }

  /** Boolean (RFC 4506 §4.4): the enum { FALSE = 0, TRUE = 1 }. */
  bool(v: boolean): void {
    if (v !== true && v !== false) throw this.error(`expected boolean for bool, got ${describe(v)}`);
    this.word(v ? 1 : 0);
  }

  /** The optional-data discriminant (RFC 4506 §4.19): 1 if a value follows, 0 if not. */
  optional(present: boolean): void {
    if (present !== true && present !== false) {
      throw this.error(`expected boolean for optional-data discriminant, got ${describe(present)}`);
    }
    this.word(present ? 1 : 0);
  }

  /** opaque[n] (RFC 4506 §4.9): exactly n bytes, zero-padded to 4. The payload copy is counted. */
  fixedOpaque(bytes: Uint8Array, n: number): void {
    if (!(bytes instanceof Uint8Array)) throw this.error(`expected Uint8Array for opaque[${n}], got ${describe(bytes)}`);
    if (bytes.length !== n) throw this.error(`opaque of ${bytes.length} bytes, expected exactly ${n}`);
    const p = padded(n);
    const o = this.reserve(p);
    const buf = this.buf;
    copyBytes(this.ledger, this.layer, buf, o, bytes);
    zeroPad(buf, o + n, o + p);
  }

  /** opaque<max> (RFC 4506 §4.10): length, bytes, zero padding. `max` 0xffffffff means unbounded. The payload copy is counted. */
  varOpaque(bytes: Uint8Array, max: number): void {
    if (!(bytes instanceof Uint8Array)) throw this.error(`expected Uint8Array for opaque<>, got ${describe(bytes)}`);
    const n = bytes.length;
    if (n > max) throw this.error(`opaque of ${n} bytes exceeds bound ${max}`);
    const p = padded(n);
    const o = this.reserve(4 + p);
    this.view.setUint32(o, n);
    const buf = this.buf;
    copyBytes(this.ledger, this.layer, buf, o + 4, bytes);
    zeroPad(buf, o + 4 + n, o + 4 + p);
  }

  /**
   * string<max> (RFC 4506 §4.11) as UTF-8, the bound in bytes. Encoded
   * straight into the buffer. Lone surrogates become U+FFFD (as TextEncoder
   * does), so such a string does not round-trip exactly.
   */
  string(s: string, max: number): void {
    if (typeof s !== "string") throw this.error(`expected string, got ${describe(s)}`);
    const units = s.length;
    // UTF-8 needs at least one byte per UTF-16 unit: more units can never fit.
    if (units > max) throw this.error(`string of ${utf8Length(s)} bytes exceeds bound ${max}`);
    const o = this.pos;
    if (o + 4 + utf8MaxLength(units) + 3 > this.buf.length) {
      // The worst case does not fit: size exactly, so a fixed buffer is not
      // refused (nor a growable one grown) for bytes that will never be written.
      const exact = utf8Length(s);
      if (exact > max) throw this.error(`string of ${exact} bytes exceeds bound ${max}`);
      if (o + 4 + padded(exact) > this.buf.length) this.grow(4 + padded(exact));
    }
    const buf = this.buf;
    const n = encodeUtf8Into(s, buf, o + 4);
    if (n > max) throw this.error(`string of ${n} bytes exceeds bound ${max}`);
    this.view.setUint32(o, n);
    const end = o + 4 + padded(n);
    zeroPad(buf, o + 4 + n, end);
    this.pos = end;
  }

  /** The count of a variable-length array T<max> (RFC 4506 §4.13). */
  arrayLength(n: number, max: number): void {
    if (n > max) throw this.error(`array of ${n} elements exceeds bound ${max}`);
    this.uint(n);
  }

  /** A fixed-length array T[n] (RFC 4506 §4.12) writes no count, but must have exactly n elements. */
  checkFixedArray(length: number, n: number): void {
    if (length !== n) throw this.error(`array of ${length} elements, expected exactly ${n}`);
  }

  /** Counts one level of nesting for recursive types; pair with `leave()`. */
  enter(): void {
    if (++this.depth > this.maxDepth) {
      this.depth--;
      throw this.error(`nesting deeper than ${this.maxDepth}`);
    }
  }

  leave(): void {
    this.depth--;
  }

  /** The bytes written since the start, as a view (no copy). */
  bytes(): Uint8Array {
    return this.buf.subarray(this.start, this.pos);
  }

  /**
   * Copies `src` in at `pos` through the ledger, zero-padding to 4 if `pad`:
   * for the classic and descriptor strategies and the runtime's gather step.
   */
  copyIn(src: Uint8Array, pad: boolean): void {
    const n = src.length;
    const p = pad ? padded(n) : n;
    const o = this.reserve(p);
    const buf = this.buf;
    copyBytes(this.ledger, this.layer, buf, o, src);
    zeroPad(buf, o + n, o + p);
  }

  /** An encode error at `at` (an index into `buf`, default `pos`), for checks made by generated code. */
  error(detail: string, at: number = this.pos): XdrError {
    return new XdrError("encode", at - this.start, detail);
  }

  /** A 32-bit word whose value is already known valid. */
  private word(v: number): void {
    const o = this.pos;
    if (o + 4 > this.buf.length) this.grow(4);
    this.view.setUint32(o, v);
    this.pos = o + 4;
  }

  /** Makes room for `n` more bytes at `pos`: doubles (at least to fit), or refuses if fixed. */
  private grow(n: number): void {
    const buf = this.buf;
    if (this.fixed) throw this.error(`buffer full: need ${n} bytes, ${buf.length - this.pos} left`);
    const next = new Uint8Array(Math.max(this.pos + n, buf.length * 2));
    // Everything before pos, including any header room before `start`: it is message bytes.
    copyBytes(this.ledger, this.layer, next, 0, buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  private badInt(v: unknown, cname: string, min: number, max: number): XdrError {
    if (typeof v !== "number") return this.error(`expected number for ${cname}, got ${describe(v)}`);
    if (!Number.isInteger(v)) return this.error(`value ${v} for ${cname} is not an integer`);
    return this.error(`value ${v} out of range for ${cname} [${min}, ${max}]`);
  }

  private badBigInt(v: unknown, cname: string, min: bigint, max: bigint): XdrError {
    if (typeof v !== "bigint") return this.error(`expected bigint for ${cname}, got ${describe(v)}`);
    return this.error(`value ${v} out of range for ${cname} [${min}, ${max}]`);
  }
}

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function checkOffset(buf: Uint8Array, offset: number): void {
  if (!(Number.isInteger(offset) && offset >= 0 && offset <= buf.length)) {
    throw new RangeError(`XdrWriter: offset ${offset} outside buffer of ${buf.length} bytes`);
  }
}

/** A value's kind for messages: "null", "array", or its typeof. */
function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}
