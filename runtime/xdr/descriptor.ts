import { XdrError } from "./error.js";
import type { CopyLayer, CopyLedger } from "./ledger.js";
import { padded } from "./pad.js";
import { encodeUtf8Into, utf8Length } from "./utf8.js";

/**
 * A shared descriptor (Thekkath and Levy's "shared descriptors between client stub and
 * kernel", ACM TOCS 11(2), 1993): the stub describes a message as a list of entries instead of building it —
 * scalars are marshaled into a small scratch area, while opaque and string arguments are
 * entries that point at the caller's bytes in place. The runtime then gathers every entry
 * into its send buffer in one pass: the only copy.
 *
 * It offers the encoding surface generated code uses on an XdrWriter (`reserve`/`view` for
 * fixed-size runs, and the bytes, length and flag primitives), so a descriptor-mode codec
 * reads like a synthesized one; only where the bytes go differs.
 *
 * Entries hold references to the caller's arrays and strings until `gather` (or `reset`):
 * the caller must not change them in between.
 */
export class Descriptor {
  /** Scratch for scalars; public so generated code can store at offsets `reserve` returns. */
  scratch: Uint8Array;
  view: DataView;
  /** The message size described so far, in bytes. */
  length = 0;
  depth = 0;
  readonly maxDepth: number;

  private pos = 0;
  /** Where the scratch run that no entry covers yet begins. */
  private segment = 0;
  private count = 0;
  // Parallel arrays, reused across messages: an entry is a scratch range (ref null), a
  // caller's Uint8Array, or a string with its UTF-8 length in `ends`.
  private readonly refs: (Uint8Array | string | null)[] = [];
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  constructor(scratchCapacity = 256, maxDepth = 200) {
    this.scratch = new Uint8Array(scratchCapacity);
    this.view = new DataView(this.scratch.buffer);
    this.maxDepth = maxDepth;
  }

  reset(): void {
    for (let i = 0; i < this.count; i++) this.refs[i] = null;
    this.count = 0;
    this.pos = 0;
    this.segment = 0;
    this.length = 0;
    this.depth = 0;
  }

  /** Scratch room for `n` bytes of scalars; returns their offset in `scratch` (re-read `view` after). */
  reserve(n: number): number {
    const o = this.pos;
    if (o + n > this.scratch.length) this.grow(n);
    this.pos = o + n;
    this.length += n;
    return o;
  }

  uint(v: number): void {
    if (v >>> 0 !== v) throw this.error(`value ${String(v)} out of range for unsigned int [0, 4294967295]`);
    const o = this.reserve(4);
    this.view.setUint32(o, v);
  }

  int(v: number): void {
    if ((v | 0) !== v) throw this.error(`value ${String(v)} out of range for int [-2147483648, 2147483647]`);
    const o = this.reserve(4);
    this.view.setInt32(o, v);
  }

  optional(present: boolean): void {
    const o = this.reserve(4);
    this.view.setUint32(o, present ? 1 : 0);
  }

  arrayLength(n: number, max: number): void {
    if (n > max) throw this.error(`array of ${n} elements exceeds bound ${max}`);
    this.uint(n);
  }

  checkFixedArray(length: number, n: number): void {
    if (length !== n) throw this.error(`array of ${length} elements, expected exactly ${n}`);
  }

  /** opaque[n]: an entry for the caller's bytes, then padding from scratch. */
  fixedOpaque(bytes: Uint8Array, n: number): void {
    if (!(bytes instanceof Uint8Array)) throw this.error(`expected Uint8Array for opaque[${n}]`);
    if (bytes.length !== n) throw this.error(`opaque of ${bytes.length} bytes, expected exactly ${n}`);
    this.entry(bytes, n);
  }

  /** opaque<max>: the length in scratch, an entry for the bytes, padding from scratch. */
  varOpaque(bytes: Uint8Array, max: number): void {
    if (!(bytes instanceof Uint8Array)) throw this.error("expected Uint8Array for opaque<>");
    const n = bytes.length;
    if (n > max) throw this.error(`opaque of ${n} bytes exceeds bound ${max}`);
    this.uint(n);
    this.entry(bytes, n);
  }

  /** string<max>: the UTF-8 length in scratch, an entry the gather encodes straight into the send buffer. */
  string(s: string, max: number): void {
    if (typeof s !== "string") throw this.error("expected string");
    const n = s.length > max ? s.length : utf8Length(s);
    if (n > max) throw this.error(`string of ${utf8Length(s)} bytes exceeds bound ${max}`);
    this.uint(n);
    this.entry(s, n);
  }

  enter(): void {
    if (++this.depth > this.maxDepth) {
      this.depth--;
      throw this.error(`nesting deeper than ${this.maxDepth}`);
    }
  }

  leave(): void {
    this.depth--;
  }

  error(detail: string): XdrError {
    return new XdrError("encode", this.length, detail);
  }

  /** Entries so far, counting the trailing scratch run (for tests and the runtime's tracing). */
  get entries(): number {
    return this.count + (this.pos > this.segment ? 1 : 0);
  }

  /**
   * The one copy: every entry, in order, into `dst` at `offset`, which must have `length`
   * bytes of room. Returns the bytes written and releases the caller's references.
   */
  gatherInto(dst: Uint8Array, offset: number, ledger?: CopyLedger, layer: CopyLayer = "runtime"): number {
    this.close();
    let at = offset;
    const scratch = this.scratch;
    for (let i = 0; i < this.count; i++) {
      const ref = this.refs[i]!;
      if (ref === null) {
        const start = this.starts[i]!;
        const n = this.ends[i]! - start;
        // Scratch runs are a few words: a loop beats allocating a subarray to call set() on.
        if (n <= 64) for (let k = 0; k < n; k++) dst[at + k] = scratch[start + k]!;
        else dst.set(scratch.subarray(start, start + n), at);
        at += n;
      } else if (typeof ref === "string") {
        at += encodeUtf8Into(ref, dst, at);
      } else {
        dst.set(ref, at);
        at += ref.length;
      }
      this.refs[i] = null;
    }
    this.count = 0;
    // One pass over every entry: one copy of the whole message.
    if (ledger !== undefined) ledger.record(layer, at - offset);
    return at - offset;
  }

  /** Ends the current scratch run as an entry, then adds `ref` and its padding. */
  private entry(ref: Uint8Array | string, n: number): void {
    this.close();
    this.push(ref, 0, n);
    this.length += n;
    const pad = padded(n) - n;
    if (pad > 0) {
      const o = this.reserve(pad);
      for (let i = 0; i < pad; i++) this.scratch[o + i] = 0;
    }
  }

  private close(): void {
    if (this.pos > this.segment) this.push(null, this.segment, this.pos);
    this.segment = this.pos;
  }

  private push(ref: Uint8Array | string | null, start: number, end: number): void {
    const i = this.count++;
    this.refs[i] = ref;
    this.starts[i] = start;
    this.ends[i] = end;
  }

  private grow(n: number): void {
    const next = new Uint8Array(Math.max(this.pos + n, this.scratch.length * 2));
    next.set(this.scratch.subarray(0, this.pos));
    this.scratch = next;
    this.view = new DataView(next.buffer);
  }
}
