import { copyBytes, sliceBytes, type CopyLayer, type CopyLedger } from "./ledger.js";
import { XdrError } from "./error.js";
import { padded } from "./pad.js";
import { decodeUtf8 } from "./utf8.js";

export interface XdrReaderOptions {
  /** Where copied-out opaques are counted; none means nobody counts. */
  ledger?: CopyLedger;
  /** The layer those copies are charged to (default "stub"). */
  layer?: CopyLayer;
  /** Nesting limit for `enter()` (default 200). */
  maxDepth?: number;
}

/**
 * Decodes XDR (RFC 4506) from untrusted bytes. Every length is checked
 * against its bound and against the bytes really left before anything is
 * allocated, so no input can make it allocate more than it was given.
 *
 * Errors are XdrError("decode") at the offset where the bad item starts,
 * counted from the `offset` given at construction or `reset`.
 *
 * Padding is not checked: RFC 4506 §3 says it is zero, but libtirpc does not
 * verify it on decode and neither do we (accept what C peers accept).
 */
export class XdrReader {
  buf: Uint8Array;
  view: DataView;
  pos: number;
  end: number;
  /** Where this message starts in `buf`. */
  start: number;
  ledger: CopyLedger | undefined;
  layer: CopyLayer;
  readonly maxDepth: number;
  depth: number;
  /**
   * The memory last read. `buf` and `view` span all of it and positions are absolute, so
   * reading another message in the same memory (the next record in a socket's chunk, the
   * next slot) makes no new view: the common case on every call's path.
   */
  private memory: ArrayBufferLike;
  /**
   * The array last given and its `byteOffset` in `memory`. Reading from the same array
   * again (a receive buffer, a slot) skips the `buffer` and `byteOffset` getters, which V8
   * does not inline: they cost a third of a small struct's decode.
   */
  private bytes: Uint8Array;
  private base: number;
  /** Memory lent for opaque data (`lend`), and how much of it is used. */
  private lent: Uint8Array | undefined = undefined;
  private lentUsed = 0;
  /** Whether a view into the message was handed out since the last `reset`. */
  viewsTaken = false;
  /** Whether `memory` is shared with other threads (see `opaqueAt`). */
  private shared: boolean;
  private copiedOut = 0;

  constructor(bytes: Uint8Array, offset = 0, end = bytes.length, options: XdrReaderOptions = {}) {
    checkRange(bytes, offset, end);
    this.memory = bytes.buffer;
    this.shared = isShared(bytes.buffer);
    this.buf = new Uint8Array(bytes.buffer);
    this.view = new DataView(bytes.buffer);
    this.bytes = bytes;
    this.base = bytes.byteOffset;
    this.pos = this.start = this.base + offset;
    this.end = this.base + end;
    this.ledger = options.ledger;
    this.layer = options.layer ?? "stub";
    this.maxDepth = options.maxDepth ?? 200;
    this.depth = 0;
  }

  /**
   * Starts reading `bytes[offset, end)`. Error offsets count from `offset`; `pos`, `start`
   * and `end` are indices into `buf`, which may be larger than `bytes`.
   */
  reset(bytes: Uint8Array, offset = 0, end = bytes.length): void {
    checkRange(bytes, offset, end);
    if (bytes !== this.bytes) this.use(bytes);
    const base = this.base;
    this.pos = this.start = base + offset;
    this.end = base + end;
    this.depth = 0;
    this.viewsTaken = false;
    this.copiedOut = 0;
    this.lent = undefined;
    this.lentUsed = 0;
  }

  /**
   * Lends memory for the opaque data of the message being read (`reset` ends the loan): each
   * opaque read next lands in it, one after another, while it has room, and is returned as a
   * view of it — a copy either way, or one instead of a view. So a reply's data reaches memory
   * its caller chose, as C's `xdr_bytes` decodes into a buffer the caller supplies, and no
   * fresh memory is made per message. An opaque that does not fit where the lent memory's
   * room ends is read as usual. Undefined ends the loan before that.
   */
  lend(memory: Uint8Array | undefined): void {
    this.lent = memory;
    this.lentUsed = 0;
  }

  /** Bytes placed in the lent memory since `lend`. */
  get lentBytes(): number {
    return this.lentUsed;
  }

  /** Bytes of opaque data asked for as views but copied out of shared memory since `reset` (see `fixedOpaque`). */
  get copiedBytes(): number {
    return this.copiedOut;
  }

  /** Checks that `n` bytes remain, advances past them and returns where they start. */
  take(n: number): number {
    const o = this.pos;
    if (n > this.end - o) throw this.truncated(n);
    this.pos = o + n;
    return o;
  }

  /** Signed 32-bit integer (RFC 4506 §4.1). */
  int(): number {
    const o = this.pos;
    if (this.end - o < 4) throw this.truncated(4);
    this.pos = o + 4;
    return this.view.getInt32(o);
  }

  /** Unsigned 32-bit integer (RFC 4506 §4.2). */
  uint(): number {
    const o = this.pos;
    if (this.end - o < 4) throw this.truncated(4);
    this.pos = o + 4;
    return this.view.getUint32(o);
  }

  /** rpcgen's C aliases (char, short, u_char, …): a 4-byte integer that must fit the C type. */
  intIn(min: number, max: number, cname: string): number {
    const o = this.pos;
    if (this.end - o < 4) throw this.truncated(4);
    const v = min < 0 ? this.view.getInt32(o) : this.view.getUint32(o);
    if (v < min || v > max) throw this.error(`value ${v} out of range for ${cname} [${min}, ${max}]`);
    this.pos = o + 4;
    return v;
  }

  /** An enum value (RFC 4506 §4.3) that must be one of `members`. */
  enumValue(members: ReadonlySet<number>, name: string): number {
    const o = this.pos;
    if (this.end - o < 4) throw this.truncated(4);
    const v = this.view.getInt32(o);
    if (!members.has(v)) throw this.error(`value ${v} is not a member of enum ${name}`);
    this.pos = o + 4;
    return v;
  }

  /** Signed 64-bit "hyper" (RFC 4506 §4.5). */
  hyper(): bigint {
    const o = this.pos;
    if (this.end - o < 8) throw this.truncated(8);
    this.pos = o + 8;
    return this.view.getBigInt64(o);
  }

  /** Unsigned 64-bit "unsigned hyper" (RFC 4506 §4.5). */
  uhyper(): bigint {
    const o = this.pos;
    if (this.end - o < 8) throw this.truncated(8);
    this.pos = o + 8;
    return this.view.getBigUint64(o);
  }

  /** IEEE single precision (RFC 4506 §4.6). */
  float(): number {
    const o = this.pos;
    if (this.end - o < 4) throw this.truncated(4);
    this.pos = o + 4;
    return this.view.getFloat32(o);
  }

  /** IEEE double precision (RFC 4506 §4.7). */
  double(): number {
    const o = this.pos;
    if (this.end - o < 8) throw this.truncated(8);
    this.pos = o + 8;
    return this.view.getFloat64(o);
  }

  /** Boolean (RFC 4506 §4.4): only 0 and 1 are values of the enum. */
  bool(): boolean {
    return this.zeroOrOne("bool value");
  }

  /** The optional-data discriminant (RFC 4506 §4.19): true if a value follows. */
  optional(): boolean {
    return this.zeroOrOne("optional-data discriminant");
  }

  /**
   * opaque[n] (RFC 4506 §4.9). `copy` (default) returns a fresh array, a
   * counted copy; `copy: false` returns a view into the buffer, valid only as
   * long as the buffer is not reused. Memory shared with other threads (a
   * SharedArrayBuffer) is never viewed: another thread may write it at any
   * moment, so its opaques are copied out even then (`copiedBytes`).
   */
  fixedOpaque(n: number, copy = true): Uint8Array {
    return this.opaqueAt(this.take(padded(n)), n, copy);
  }

  /** opaque<max> (RFC 4506 §4.10); `copy` as for `fixedOpaque`. */
  varOpaque(max: number, copy = true): Uint8Array {
    const n = this.lengthPrefix(max, "opaque");
    const o = this.pos;
    this.pos = o + padded(n);
    return this.opaqueAt(o, n, copy);
  }

  /** The opaque at `buf[o, o + n)`: in the lent memory if it fits there, else copied out or viewed. */
  private opaqueAt(o: number, n: number, copy: boolean): Uint8Array {
    const lent = this.lent;
    if (lent !== undefined && n <= lent.length - this.lentUsed) {
      const at = this.lentUsed;
      copyBytes(this.ledger, this.layer, lent, at, this.buf.subarray(o, o + n));
      this.lentUsed = at + n;
      return lent.subarray(at, at + n);
    }
    if (!copy) {
      if (!this.shared) {
        this.viewsTaken = true;
        return this.buf.subarray(o, o + n);
      }
      this.copiedOut += n; // a view of shared memory would not hold still
    }
    return sliceBytes(this.ledger, this.layer, this.buf, o, o + n);
  }

  /** string<max> (RFC 4506 §4.11) as UTF-8, the bound in bytes; invalid UTF-8 is an error. */
  string(max: number): string {
    const at = this.pos;
    const n = this.lengthPrefix(max, "string");
    const o = this.pos;
    const s = decodeUtf8(this.buf, o, o + n);
    if (s === null) throw this.error("invalid UTF-8 in string", at);
    this.pos = o + padded(n);
    return s;
  }

  /**
   * The count of T<max> (RFC 4506 §4.13), checked against `max` and against
   * the bytes left (each element takes at least `minElemSize`) before the
   * caller allocates an array for it. With `minElemSize` 0 only `max` protects.
   */
  arrayLength(max: number, minElemSize: number): number {
    const o = this.pos;
    if (this.end - o < 4) throw this.truncated(4);
    const n = this.view.getUint32(o);
    if (n > max) throw this.error(`array of ${n} elements exceeds bound ${max}`);
    const left = this.end - o - 4;
    if (n * minElemSize > left) {
      throw this.error(`truncated: array of ${n} elements needs at least ${n * minElemSize} bytes, ${left} left`);
    }
    this.pos = o + 4;
    return n;
  }

  /** The same bytes-left check for T[n] (RFC 4506 §4.12), which has no count on the wire. */
  checkFixedArray(n: number, minElemSize: number): void {
    const left = this.end - this.pos;
    if (n * minElemSize > left) {
      throw this.error(`truncated: array of ${n} elements needs at least ${n * minElemSize} bytes, ${left} left`);
    }
  }

  /**
   * Counts one level of nesting for recursive types (optional-data lists);
   * pair with `leave()`. A throw skips `leave()`; `reset` clears the count.
   */
  enter(): void {
    if (++this.depth > this.maxDepth) {
      this.depth--;
      throw this.error(`nesting deeper than ${this.maxDepth}`);
    }
  }

  leave(): void {
    this.depth--;
  }

  /** Throws unless every byte was consumed: trailing bytes mean the peer and we disagree on the type. */
  finish(): void {
    if (this.pos !== this.end) throw this.error(`${this.end - this.pos} trailing bytes`);
  }

  /** A decode error at `at` (an index into `buf`, default `pos`), for checks made by generated code. */
  error(detail: string, at: number = this.pos): XdrError {
    return new XdrError("decode", at - this.start, detail);
  }

  /** Switches to another array, and to views of its memory if that changed too. */
  private use(bytes: Uint8Array): void {
    const memory = bytes.buffer;
    if (memory !== this.memory) {
      this.memory = memory;
      this.shared = isShared(memory);
      this.buf = new Uint8Array(memory);
      this.view = new DataView(memory);
    }
    this.bytes = bytes;
    this.base = bytes.byteOffset;
  }

  private truncated(n: number): XdrError {
    return this.error(`truncated: need ${n} bytes, ${this.end - this.pos} left`);
  }

  private zeroOrOne(what: string): boolean {
    const o = this.pos;
    if (this.end - o < 4) throw this.truncated(4);
    const v = this.view.getInt32(o);
    if (v !== 0 && v !== 1) throw this.error(`${what} ${v} is neither 0 nor 1`);
    this.pos = o + 4;
    return v === 1;
  }

  /**
   * Reads the length of a counted item, checks it against `max` and then
   * against the bytes left (padding included) before anyone allocates for it,
   * and leaves `pos` at the first data byte. Lengths are unsigned (RFC 4506
   * §4.10), so 0x80000000 and up are just very long, and fail the same checks.
   */
  private lengthPrefix(max: number, what: string): number {
    const o = this.pos;
    if (this.end - o < 4) throw this.truncated(4);
    const n = this.view.getUint32(o);
    if (n > max) throw this.error(`${what} of ${n} bytes exceeds bound ${max}`);
    const left = this.end - o - 4;
    if (padded(n) > left) throw this.error(`truncated: ${what} of ${n} bytes needs ${padded(n)} bytes, ${left} left`);
    this.pos = o + 4;
    return n;
  }
}

function checkRange(bytes: Uint8Array, offset: number, end: number): void {
  if (!(Number.isInteger(offset) && Number.isInteger(end) && offset >= 0 && offset <= end && end <= bytes.length)) {
    throw new RangeError(`XdrReader: range [${offset}, ${end}) outside ${bytes.length} bytes`);
  }
}

function isShared(memory: ArrayBufferLike): boolean {
  return typeof SharedArrayBuffer === "function" && memory instanceof SharedArrayBuffer;
}
