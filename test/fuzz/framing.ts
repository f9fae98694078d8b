import { concat } from "../bytes.js";

/**
 * The fuzzers' reference for record marking (RFC 5531 §11), written apart from the runtime's
 * decoder: the complete records `stream` holds, in order, and whether a record breaks
 * `limits` (then nothing after it can be read).
 */
export function referenceRecords(
  stream: Uint8Array,
  limits: { readonly maxRecordBytes: number; readonly maxFragments: number },
): { records: Uint8Array[]; broken: boolean } {
  const records: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  let length = 0;
  let fragments = 0;
  let i = 0;
  while (i + 4 <= stream.length) {
    const mark = ((stream[i]! << 24) | (stream[i + 1]! << 16) | (stream[i + 2]! << 8) | stream[i + 3]!) >>> 0;
    const n = mark & 0x7fff_ffff;
    fragments++;
    if (length + n > limits.maxRecordBytes || fragments > limits.maxFragments) return { records, broken: true };
    if (i + 4 + n > stream.length) break;
    parts.push(stream.subarray(i + 4, i + 4 + n));
    length += n;
    i += 4 + n;
    if (mark & 0x8000_0000) {
      records.push(concat(...parts));
      parts = [];
      length = 0;
      fragments = 0;
    }
  }
  return { records, broken: false };
}
