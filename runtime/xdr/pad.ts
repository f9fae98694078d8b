/**
 * RFC 4506 §3: every item occupies a multiple of four bytes; the residual
 * 0-3 bytes after variable-length data are zero. The one place that knows it.
 */

/** `n` rounded up to a multiple of 4. Arithmetic, not `(n + 3) & ~3`, so lengths read off the wire (up to 2^32-1) stay exact. */
export function padded(n: number): number {
  return n + ((4 - (n & 3)) & 3);
}

/** Zeroes `buf[from, to)` (at most 3 bytes): a reused buffer must not leak old bytes into padding. */
export function zeroPad(buf: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) buf[i] = 0;
}
