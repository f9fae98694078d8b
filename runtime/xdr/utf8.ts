/**
 * UTF-8 for XDR strings (RFC 4506 §4.11 leaves the encoding open; ONC RPC
 * peers in practice send ASCII or UTF-8; this runtime uses UTF-8, with a
 * string's bound counted in bytes).
 *
 * Short ASCII strings, the common case in RPC (names, paths, addresses), are
 * copied by a plain loop: it avoids the native call and the subarray view
 * that TextEncoder/TextDecoder need, and measures 2-3x faster below ~16
 * characters on Node 20. Everything else goes to the platform codecs.
 */

const encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD. ignoreBOM: a leading U+FEFF is
// content and must survive a round trip.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const SHORT = 16;

/**
 * The most bytes `encodeUtf8Into` can write for a string of `units` UTF-16
 * code units: 3 per unit (a surrogate pair is 2 units and 4 bytes).
 */
export function utf8MaxLength(units: number): number {
  return units * 3;
}

/**
 * Encodes `s` as UTF-8 into `buf` at `offset` and returns the bytes written.
 * The caller guarantees `utf8MaxLength(s.length)` bytes of room (or
 * `utf8Length(s)`). Lone surrogates are written as U+FFFD (EF BF BD), as
 * TextEncoder does: a JS string need not be valid UTF-16, and replacing is
 * what every UTF-8 encoder on the platform does.
 */
export function encodeUtf8Into(s: string, buf: Uint8Array, offset: number): number {
  const n = s.length;
  if (n <= SHORT) {
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[offset + i] = c;
    }
    if (i === n) return n;
  }
  // encodeInto writes from the start of its target, hence the view (not a copy).
  return encoder.encodeInto(s, buf.subarray(offset)).written;
}

/** The exact number of bytes `encodeUtf8Into` writes for `s`. */
export function utf8Length(s: string): number {
  const n = s.length;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3; // lone high surrogate -> U+FFFD
    } else bytes += 3; // BMP, or a lone surrogate -> U+FFFD
  }
  return bytes;
}

/** Decodes `buf[start, end)` as UTF-8; null if the bytes are not valid UTF-8. */
export function decodeUtf8(buf: Uint8Array, start: number, end: number): string | null {
  if (end - start <= SHORT) {
    let s = "";
    let i = start;
    for (; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x80) break;
      s += String.fromCharCode(c);
    }
    if (i === end) return s;
  }
  try {
    return decoder.decode(buf.subarray(start, end));
  } catch {
    return null;
  }
}
