/**
 * The copy ledger (DESIGN §5): every copy of argument or result bytes goes
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

const typedSlice = Uint8Array.prototype.slice;

/**
 * The counted copy in allocating form: a fresh array holding
 * `src[start, end)`, recorded like `copyBytes`. One allocation, where
 * `copyBytes` into a new array would need two (the array and a subarray view).
 */
export function sliceBytes(
  ledger: CopyLedger | undefined,
  layer: CopyLayer,
  src: Uint8Array,
  start: number,
  end: number,
): Uint8Array {
  // Not src.slice(): Buffer overrides slice() to return a view, not a copy.
  const out = typedSlice.call(src, start, end);
  if (ledger !== undefined && out.length > 0) ledger.record(layer, out.length);
  return out;
}
