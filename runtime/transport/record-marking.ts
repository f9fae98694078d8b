/**
 * Record marking (RFC 5531 §11): on a byte stream each RPC message is a record of one or
 * more fragments, each behind a 4-byte mark — the high bit says "last fragment", the low 31
 * bits give its length. The decoder hands out each whole record; a record that arrives in
 * one chunk is handed out as a view of it (no copy), one spread over chunks or fragments is
 * copied together once (reported as `reassembled`).
 *
 * Limits: a record longer than `maxRecordBytes` or with more than `maxFragments` fragments
 * is an error before anything is allocated for it; the bytes held at any time are bytes
 * actually received.
 */

export const recordMarkBytes = 4;
const lastFragment = 0x80000000;

export class RecordError extends Error {
  override readonly name = "RecordError";
}

/** Writes the record mark of a single-fragment record into `buffer[0, 4)`; the message follows it. */
export function markRecord(buffer: Uint8Array, end: number): void {
  const n = end - recordMarkBytes;
  buffer[0] = ((lastFragment | n) >>> 24) & 0xff;
  buffer[1] = (n >>> 16) & 0xff;
  buffer[2] = (n >>> 8) & 0xff;
  buffer[3] = n & 0xff;
}

export interface RecordLimits {
  readonly maxRecordBytes: number;
  readonly maxFragments: number;
}

export const defaultRecordLimits: RecordLimits = { maxRecordBytes: 4 * 1024 * 1024, maxFragments: 1024 };

export class RecordDecoder {
  /** Bytes of the current fragment's mark seen so far, and its value. */
  private markBytes = 0;
  private mark = 0;
  /** Bytes of the current fragment still to come; -1 while reading a mark. */
  private remaining = -1;
  private last = false;
  /** The record so far: views of received chunks. */
  private parts: Uint8Array[] = [];
  private length = 0;
  private fragments = 0;

  constructor(
    private readonly deliver: (record: Uint8Array, reassembled: boolean) => void,
    private readonly limits: RecordLimits = defaultRecordLimits,
  ) {}

  /** Feeds bytes from the stream; throws RecordError on a record over the limits. */
  push(chunk: Uint8Array): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.remaining < 0) {
        // Fast path: a whole single-fragment record inside this chunk, nothing pending.
        if (this.markBytes === 0 && this.parts.length === 0 && n - i >= recordMarkBytes) {
          const mark = ((chunk[i]! << 24) | (chunk[i + 1]! << 16) | (chunk[i + 2]! << 8) | chunk[i + 3]!) >>> 0;
          const len = mark & 0x7fffffff;
          if (mark & lastFragment && n - i - recordMarkBytes >= len) {
            this.check(len, 1);
            const start = i + recordMarkBytes;
            this.deliver(chunk.subarray(start, start + len), false);
            i = start + len;
            continue;
          }
        }
        this.mark = ((this.mark << 8) | chunk[i++]!) >>> 0;
        if (++this.markBytes < recordMarkBytes) continue;
        this.last = (this.mark & lastFragment) !== 0;
        this.remaining = this.mark & 0x7fffffff;
        this.markBytes = 0;
        this.mark = 0;
        this.fragments++;
        this.check(this.length + this.remaining, this.fragments);
      }
      const take = Math.min(this.remaining, n - i);
      if (take > 0) {
        this.parts.push(chunk.subarray(i, i + take));
        this.length += take;
        this.remaining -= take;
        i += take;
      }
      if (this.remaining === 0) {
        this.remaining = -1;
        if (this.last) this.complete();
      }
    }
  }

  private check(length: number, fragments: number): void {
    if (length > this.limits.maxRecordBytes) {
      throw new RecordError(`record of at least ${length} bytes exceeds the limit of ${this.limits.maxRecordBytes}`);
    }
    if (fragments > this.limits.maxFragments) {
      throw new RecordError(`record of more than ${this.limits.maxFragments} fragments`);
    }
  }

  private complete(): void {
    const parts = this.parts;
    const length = this.length;
    this.parts = [];
    this.length = 0;
    this.fragments = 0;
    if (parts.length === 1) {
      this.deliver(parts[0]!, false);
      return;
    }
    const record = new Uint8Array(length);
    let at = 0;
    for (const p of parts) {
      record.set(p, at);
      at += p.length;
    }
    this.deliver(record, parts.length > 1);
  }
}
