/** Byte-building helpers the tests share, for messages written by hand. */

/** Big-endian 32-bit words. */
export function words(...ws: number[]): Uint8Array {
  const out = new Uint8Array(4 * ws.length);
  const dv = new DataView(out.buffer);
  ws.forEach((w, i) => dv.setUint32(4 * i, w >>> 0));
  return out;
}

/** The parts, one after the other, in a new array. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
