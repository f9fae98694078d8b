/**
 * The copy ledger: every copy of argument or result bytes goes
 * through `copyBytes` (or its allocating twin `sliceBytes`), which records the
 * layer that made it and the bytes it moved. Counts come from copies that
 * actually ran, so doubling a payload doubles `bytesCopied` and leaves
 * `copies` unchanged.
 *
 * A zero-length copy is neither performed nor counted: it moves nothing, and
 * counting it would make an empty opaque look like work.
 */

/** Who made a copy: the generated stub, the RPC runtime, or the transport/OS. */
export type CopyLayer = "stub" | "runtime" | "wire";

export interface CopyCounts {
  stub: number;
  runtime: number;
  wire: number;
}

export class CopyLedger {
  /** Number of copies per layer. Plain fields so the hot path is a property increment. */
  readonly copies: CopyCounts = { stub: 0, runtime: 0, wire: 0 };
  /** Bytes moved per layer. */
  readonly bytesCopied: CopyCounts = { stub: 0, runtime: 0, wire: 0 };

  reset(): void {
    const c = this.copies;
    const b = this.bytesCopied;
    c.stub = c.runtime = c.wire = 0;
    b.stub = b.runtime = b.wire = 0;
  }

  /**
   * Records one copy of `bytes` bytes made by `layer`. Used directly only for
   * copies we can observe but not perform (the kernel's copy in a socket
   * write); everything else goes through `copyBytes`.
   */
  record(layer: CopyLayer, bytes: number): void {
    if (bytes > 0) {
      this.copies[layer]++;
      this.bytesCopied[layer] += bytes;
    } else if (bytes !== 0) {
      // Negative or NaN would silently corrupt the totals: a caller bug.
      throw new RangeError(`copy ledger: invalid byte count ${bytes}`);
    }
  }

  /** Adds the copies counted in `other` (a transport's, made before the call was known). */
  add(other: CopyLedger): void {
    const c = this.copies;
    const b = this.bytesCopied;
    const oc = other.copies;
    const ob = other.bytesCopied;
    c.stub += oc.stub;
    c.runtime += oc.runtime;
    c.wire += oc.wire;
    b.stub += ob.stub;
    b.runtime += ob.runtime;
    b.wire += ob.wire;
  }

  snapshot(): { copies: CopyCounts; bytesCopied: CopyCounts } {
    return { copies: { ...this.copies }, bytesCopied: { ...this.bytesCopied } };
  }
}

/**
 * The one counted copy: `dst.set(src, offset)`, recorded as one copy of
 * `src.length` bytes by `layer`. With no ledger (nobody counting) it costs a
 * plain copy and a branch.
 */
export function copyBytes(
  ledger: CopyLedger | undefined,
  layer: CopyLayer,
  dst: Uint8Array,
  offset: number,
  src: Uint8Array,
): void {
  const n = src.length;
  if (n === 0) return;
  dst.set(src, offset);
  if (ledger !== undefined) ledger.record(layer, n);
}

/**
 * Views of buffers' first bytes, the last one kept: a buffer copied again and again with
 * messages of one length (a free list's buffer, a stub's own buffer) needs no new view per
 * copy. A view is an allocation (about 20 ns), which on a sub-microsecond call path shows.
 */
export class Prefix {
  private of: Uint8Array | undefined;
  private view: Uint8Array = new Uint8Array(0);

  /** `buffer.subarray(0, n)`, or the same view as last time. */
  get(buffer: Uint8Array, n: number): Uint8Array {
    if (this.of === buffer && this.view.length === n) return this.view;
    this.of = buffer;
    return (this.view = buffer.subarray(0, n));
  }
}

const typedSlice = Uint8Array.prototype.slice;

/**
 * Small copies are carved out of shared slabs, as Node's Buffer pool does: every separate
 * ArrayBuffer is an off-heap allocation the garbage collector must account for, and a
 * stream of decoded 1 KiB opaques would otherwise press it into collecting far more often.
 * A copy's `buffer` may therefore be larger than the copy and shared with other copies;
 * its bytes are its own.
 */
const slabBytes = 64 * 1024;
const smallCopy = 4096;
let slab = new Uint8Array(0);
let slabUsed = 0;

/**
 * The counted copy in allocating form: a new array holding `src[start, end)`, recorded like
 * `copyBytes`.
 */
export function sliceBytes(
  ledger: CopyLedger | undefined,
  layer: CopyLayer,
  src: Uint8Array,
  start: number,
  end: number,
): Uint8Array {
  const n = end - start;
  let out: Uint8Array;
  if (n > smallCopy || n <= 0) {
    // Not src.slice(): Buffer overrides slice() to return a view, not a copy.
    out = typedSlice.call(src, start, end);
  } else {
    if (slabUsed + n > slab.length) {
      slab = new Uint8Array(slabBytes);
      slabUsed = 0;
    }
    out = slab.subarray(slabUsed, slabUsed + n);
    if (n <= 64) for (let i = 0; i < n; i++) out[i] = src[start + i]!;
    else out.set(src.subarray(start, end));
    slabUsed += (n + 7) & ~7; // 8-byte aligned, as separate allocations would be
  }
  if (ledger !== undefined && n > 0) ledger.record(layer, n);
  return out;
}
