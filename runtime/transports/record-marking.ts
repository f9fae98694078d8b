/**
 * Record marking (RFC 5531 §11): on a byte stream each RPC message is a record of one or
 * more fragments, each behind a 4-byte mark — the high bit says "last fragment", the low 31
 * bits give its length. The decoder hands out each whole record; a record whose bytes
 * arrive in one chunk (one fragment body, behind any number of empty fragments) is handed
 * out as a view of it (no copy), one spread over chunks or fragments is copied together
 * once, a runtime copy counted in the ledger delivered with the record. Input read into an
 * arena (see `awaited`) can do better: a one-fragment record whose chunks lie back to back in
 * memory is kept and handed out as one view of them, however many reads it took.
 *
 * Limits: a record longer than `maxRecordBytes` or with more than `maxFragments` fragments
 * is an error before anything is allocated for it — or, for a decoder given `oversize` (a
 * client, whose peer is a server it chose), skipped: its bytes are read past without being
 * kept, and `oversize` is told its xid (its first word) and length, so that one call fails and
 * the connection lives on. A partial record is copied into one buffer, never past the length
 * its marks declare so far. On a server (a decoder given `reserve`) the buffer doubles as
 * bytes arrive, never to more than twice the bytes received (plus a small minimum), so a
 * peer that trickles a record one byte per segment costs about a byte or two per byte, not a
 * chunk object per byte; a client's is the declared length at once.
 */

import { CopyLedger } from "../xdr/ledger.js";

export const recordMarkBytes = 4;
const lastFragment = 0x80000000;
/** The first reassembly buffer: room for a small call, allocated only once a record is split. */
const minReassembly = 256;

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

/**
 * Asked before the decoder holds `bytes` more bytes (a bigger reassembly buffer, or the rest
 * of a chunk kept while paused); false refuses them, and `push` throws a RecordError.
 */
export type ReserveBytes = (bytes: number) => boolean;

/** Told of a record skipped for its size: its first word (the xid), if it had one, and its length so far. */
export type OversizeRecord = (xid: number | undefined, bytes: number) => void;

export class RecordDecoder {
  /** Bytes of the current fragment's mark seen so far, and its value. */
  private markBytes = 0;
  private mark = 0;
  /** Bytes of the current fragment still to come; -1 while reading a mark. */
  private remaining = -1;
  private last = false;
  /** The record so far, when it did not arrive in one piece: `buf[0, length)`. */
  private buf: Uint8Array | undefined;
  /** Or, with arena input, the record so far as a view of the input while it lies contiguous there. */
  private run: Uint8Array | undefined;
  /** Bytes of the run copied by `moveRun`, counted when the record is delivered. */
  private moved = 0;
  private length = 0;
  /** Fragments of the current record begun so far (empty ones included). */
  private fragments = 0;
  /** The undecoded rest of a chunk, kept while paused (a view: no copy). */
  private held: Uint8Array | undefined;
  /**
   * Set (by the owner, from inside `deliver`) to stop decoding after the record just
   * delivered: the rest of the chunk is held until `resume()`. Backpressure without
   * dropping anything: the socket is paused too, so no more chunks come.
   */
  paused = false;
  /** The copies made to deliver the current record (reused: read it inside `deliver`). */
  private readonly received = new CopyLedger();
  /** Skipping an oversized record: its bytes so far, and the first four (the xid) as they pass. */
  private skipping = false;
  private skipped = 0;
  private skippedHead = 0;
  private skippedHeadBytes = 0;

  constructor(
    private readonly deliver: (record: Uint8Array, received: CopyLedger) => void,
    private readonly limits: RecordLimits = defaultRecordLimits,
    private readonly reserve?: ReserveBytes,
    private readonly oversize?: OversizeRecord,
    /**
     * "arena": chunks come from a reader that fills memory front to back and never writes a
     * byte twice, so a partial record may be kept as a view of its chunk and grown in place
     * while the next chunk follows it in memory. "chunks": any input; a partial record is copied.
     */
    private readonly input: "chunks" | "arena" = "chunks",
  ) {}

  /** Received bytes held now: the partial record's buffer or run, and any held input. */
  get buffered(): number {
    return (this.buf?.length ?? 0) + (this.run?.length ?? 0) + (this.held?.length ?? 0);
  }

  /**
   * For an arena choosing where the next read goes: the bytes of the current fragment still to
   * come while the record is kept as a run (0 otherwise). Reading them right behind the run
   * keeps the record one view; if the arena has no room there it calls `moveRun` first.
   */
  get awaited(): number {
    return this.run === undefined || this.remaining < 0 ? 0 : this.remaining;
  }

  /** The bytes of the record kept as a run (0: none). */
  get runLength(): number {
    return this.run?.length ?? 0;
  }

  /** Whether any input is kept as it came (a run, or the rest of a chunk held while paused): memory an arena must not write over. */
  get holdsInput(): boolean {
    return this.run !== undefined || this.held !== undefined;
  }

  /** Whether the rest of a chunk is held while paused (input other than the run that an arena must not write over). */
  get holdsRest(): boolean {
    return this.held !== undefined;
  }

  /** Copies the run to the front of `to` (a fresh arena slab, or the front of its own) and keeps it there; returns its length. */
  moveRun(to: Uint8Array): number {
    const run = this.run;
    if (run === undefined) return 0;
    to.set(run);
    this.run = to.subarray(0, run.length);
    this.moved += run.length;
    return run.length;
  }

  /** Whether part of a record (a mark byte at least) has arrived and the rest has not. */
  get partial(): boolean {
    return this.markBytes !== 0 || this.fragments !== 0;
  }

  /** Decodes the held input after a pause, until it is used up or the decoder is paused again. */
  resume(): void {
    this.paused = false;
    const held = this.held;
    if (held === undefined) return;
    this.held = undefined;
    this.push(held);
  }

  /** Feeds bytes from the stream; throws RecordError on a record over the limits. */
  push(chunk: Uint8Array): void {
    if (this.paused || this.held !== undefined) {
      // Input while paused (the socket had it already): keep it behind what is held.
      const held = this.held;
      this.hold(held === undefined ? chunk : concat(held, chunk), held?.length ?? 0);
      return;
    }
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.remaining < 0) {
        // Fast path: a whole single-fragment record inside this chunk, nothing pending.
        if (this.markBytes === 0 && this.fragments === 0 && n - i >= recordMarkBytes) {
          const mark = ((chunk[i]! << 24) | (chunk[i + 1]! << 16) | (chunk[i + 2]! << 8) | chunk[i + 3]!) >>> 0;
          const len = mark & 0x7fffffff;
          if (mark & lastFragment && n - i - recordMarkBytes >= len && !this.tooLong(len, 1)) {
            const start = i + recordMarkBytes;
            i = start + len;
            this.received.reset();
            this.deliver(chunk.subarray(start, i), this.received);
            if (this.paused) return this.holdRest(chunk, i);
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
        if (!this.skipping && this.tooLong(this.length + this.remaining, this.fragments)) this.startSkipping();
        if (this.skipping && this.fragments > this.limits.maxFragments) {
          throw new RecordError(`record of more than ${this.limits.maxFragments} fragments`);
        }
      }
      const take = Math.min(this.remaining, n - i);
      if (this.skipping) {
        for (let k = 0; k < take && this.skippedHeadBytes < 4; k++, this.skippedHeadBytes++) this.skippedHead = ((this.skippedHead << 8) | chunk[i + k]!) >>> 0;
        this.skipped += take;
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) {
          this.remaining = -1;
          if (this.last) this.skippedAll();
        }
        continue;
      }
      if (take > 0) {
        if (this.last && take === this.remaining && this.length === 0) {
          // The record's only bytes, all in this chunk (behind empty fragments, or a mark split
          // across chunks): a view, as the fast path gives.
          this.remaining = -1;
          this.fragments = 0;
          i += take;
          this.received.reset();
          this.deliver(chunk.subarray(i - take, i), this.received);
          if (this.paused) return this.holdRest(chunk, i);
          continue;
        }
        this.append(chunk, i, take);
        this.remaining -= take;
        i += take;
      }
      if (this.remaining === 0) {
        this.remaining = -1;
        if (this.last) {
          this.complete();
          if (this.paused) return this.holdRest(chunk, i);
        }
      }
    }
  }

  /** Whether a record of `length` bytes in `fragments` is over the limits: throws, unless it can be skipped. */
  private tooLong(length: number, fragments: number): boolean {
    if (length > this.limits.maxRecordBytes) {
      if (this.oversize !== undefined) return true;
      throw new RecordError(`record of at least ${length} bytes exceeds the limit of ${this.limits.maxRecordBytes}`);
    }
    if (fragments > this.limits.maxFragments) {
      throw new RecordError(`record of more than ${this.limits.maxFragments} fragments`);
    }
    return false;
  }

  /** From here to the record's end, its bytes pass unkept; what was kept of it goes. */
  private startSkipping(): void {
    this.skipping = true;
    const buf = this.run ?? this.buf;
    this.run = undefined;
    this.moved = 0;
    this.skipped = this.length;
    this.skippedHead = 0;
    this.skippedHeadBytes = 0;
    if (buf !== undefined) {
      for (let k = 0; k < this.length && k < 4; k++, this.skippedHeadBytes++) this.skippedHead = ((this.skippedHead << 8) | buf[k]!) >>> 0;
    }
    this.buf = undefined;
    this.length = 0;
  }

  private skippedAll(): void {
    const xid = this.skippedHeadBytes === 4 ? this.skippedHead : undefined;
    const bytes = this.skipped;
    this.skipping = false;
    this.skipped = 0;
    this.fragments = 0;
    this.oversize!(xid, bytes);
  }

  /** Puts `chunk[at, at + take)` behind the record so far: in place (a run), or copied into a buffer grown by doubling. */
  private append(chunk: Uint8Array, at: number, take: number): void {
    const need = this.length + take;
    const run = this.run;
    if (this.input === "arena") {
      if (this.length === 0) {
        this.run = chunk.subarray(at, at + take);
        this.length = need;
        return;
      }
      if (run !== undefined && chunk.buffer === run.buffer && chunk.byteOffset + at === run.byteOffset + run.length) {
        this.run = new Uint8Array(run.buffer, run.byteOffset, need);
        this.length = need;
        return;
      }
    }
    // Not (or no longer) in place — a second fragment, or a chunk elsewhere: copy into a buffer.
    this.run = undefined;
    let buf = this.buf;
    if (buf === undefined || buf.length < need) {
      // Never past what the marks declare (this fragment's end). A server's decoder (one that
      // accounts for its memory) never runs ahead of twice what arrived, so a slow peer cannot
      // make it hold what it has not sent; a client's takes its server's word at once, so a
      // long reply (a 64 KiB READ in two socket reads) is copied once, not again as it grows.
      const declared = this.length + this.remaining;
      const size = this.reserve === undefined ? declared : Math.min(declared, Math.max(need, minReassembly, 2 * (buf?.length ?? 0)));
      if (this.reserve !== undefined && !this.reserve(size - (buf?.length ?? 0))) {
        throw new RecordError(`no room to buffer a record of ${need} bytes so far`);
      }
      const grown = new Uint8Array(size);
      const kept = run ?? buf;
      if (kept !== undefined) grown.set(kept.subarray(0, this.length));
      this.buf = buf = grown;
    }
    buf.set(chunk.subarray(at, at + take), this.length);
    this.length = need;
  }

  private complete(): void {
    const run = this.run;
    const record = run ?? (this.buf === undefined ? new Uint8Array(0) : this.buf.subarray(0, this.length));
    // A run was copied only if it was moved; pieces in a buffer were copied together as they
    // came (append): one pass over the record.
    const copied = run === undefined ? record.length : this.moved;
    // The delivered record is never written again (descriptor-mode views into it stay valid):
    // the next split record gets a buffer (or arena room) of its own.
    this.buf = undefined;
    this.run = undefined;
    this.moved = 0;
    this.length = 0;
    this.fragments = 0;
    this.received.reset();
    this.received.record("runtime", copied); // a run never moved: no copy (the ledger counts none of 0 bytes)
    this.deliver(record, this.received);
  }

  private holdRest(chunk: Uint8Array, i: number): void {
    if (i < chunk.length) this.hold(chunk.subarray(i), 0);
  }

  /** Keeps `rest` (of which `already` bytes were held before) for `resume()`. */
  private hold(rest: Uint8Array, already: number): void {
    if (this.reserve !== undefined && !this.reserve(rest.length - already)) {
      throw new RecordError(`no room to buffer ${rest.length} bytes of input`);
    }
    this.held = rest;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
