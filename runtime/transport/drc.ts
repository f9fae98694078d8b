import { MAX_AUTH_BYTES, MsgType } from "../rpc/message.js";
import { padded } from "../xdr/pad.js";

/**
 * The duplicate-request cache of a datagram server (at-most-once execution over UDP).
 *
 * A call is known by who sent it and what it asks: the peer's address and port, the xid,
 * program, version and procedure. A call is, in the cache:
 *   - absent: it is new, and runs (an *execution*);
 *   - in progress: its handler has not replied yet; a duplicate is DROPPED (the client will
 *     retransmit, and by then the reply may be cached);
 *   - done: its reply has been sent; a duplicate gets the same reply bytes again (a *hit*),
 *     and the procedure is not run a second time.
 *
 * The reply is kept without a copy: the buffer the reply was marshaled into and sent from
 * IS the cache entry. It is written into the cache in the send callback, once the datagram
 * is out — the server's buffering overlapped with the reply's transmission, off the
 * latency's critical path (the seeds' protocol processing). The server marshals such replies
 * into regions of a shared slab (see runtime/buffers.ts), so keeping one holds only its own
 * bytes; the entry lets go of it when evicted, expired or cleared, and not while a resend of
 * it is still in flight.
 *
 * Bounded: at most `maxEntries` replies holding at most `maxBytes` bytes of replies, the
 * least recently inserted evicted first; entries expire `expireMs` after they were written.
 * Calls in progress are bounded by `maxEntries` too: beyond that, new calls are refused
 * (dropped, so the client retransmits later), and they expire like replies do (a handler
 * that never answers must not hold its slot for ever). A reply that alone exceeds
 * `maxBytes` is not cached: a retransmission of its call would run again.
 */

export interface DuplicateCacheOptions {
  /** Replies kept (default 1024); also the most calls tracked in progress. */
  readonly maxEntries?: number;
  /** Bytes of replies kept (default 16 MiB). */
  readonly maxBytes?: number;
  /** How long an entry is kept, in milliseconds (default 120 s). */
  readonly expireMs?: number;
}

/** What the cache has done, for tests and monitoring. */
export interface DuplicateCacheStats {
  /** New calls admitted to run. */
  executions: number;
  /** Duplicates of done calls answered from the cache. */
  hits: number;
  /** Duplicates of calls still in progress, dropped. */
  drops: number;
  /** New calls dropped because `maxEntries` calls were already in progress. */
  refused: number;
  /** Replies evicted to stay within `maxEntries` or `maxBytes`. */
  evictions: number;
  /** Entries (replies or calls in progress) dropped for their age. */
  expirations: number;
}

/** One call: in progress until `buffer` is set, then done. */
export class CacheEntry {
  /** The reply's own send buffer, once sent; the reply is `buffer[0, end)`. */
  buffer: Uint8Array | undefined = undefined;
  end = 0;
  /** Gives the buffer back to the pool it came from. */
  release: (buffer: Uint8Array) => void = ignore;
  /** Resends of the cached reply still in flight: the buffer is not released under them. */
  pins = 0;
  /** Out of the cache: the buffer goes back on the last unpin. */
  gone = false;

  constructor(
    readonly key: string,
    /** When the call arrived; once done, when the reply was sent (for expiry). */
    public at: number,
  ) {}
}

/** The verdict on a datagram that duplicates a call in progress (or finds no room): drop it. */
export const DROP = "drop";

function ignore(): void {}

function u32(m: Uint8Array, o: number): number {
  return ((m[o]! << 24) | (m[o + 1]! << 16) | (m[o + 2]! << 8) | m[o + 3]!) >>> 0;
}

/**
 * The cache key of a call datagram, or undefined if it is not a well-formed call header
 * (the server will drop it without a reply, so there is nothing to cache). Reads the 24
 * fixed bytes and the lengths of the two opaque_auth fields, each checked against the bytes
 * present — the same framing the server's header parser checks — and trusts nothing else.
 */
export function callKey(peer: string, m: Uint8Array): string | undefined {
  const n = m.length;
  if (n < 32 || u32(m, 4) !== MsgType.CALL) return undefined;
  const credLength = u32(m, 28);
  if (credLength > MAX_AUTH_BYTES) return undefined;
  const verf = 32 + padded(credLength);
  if (verf + 8 > n) return undefined;
  const verfLength = u32(m, verf + 4);
  if (verfLength > MAX_AUTH_BYTES || verf + 8 + padded(verfLength) > n) return undefined;
  return `${peer} ${u32(m, 0)} ${u32(m, 12)} ${u32(m, 16)} ${u32(m, 20)}`;
}

const clock = (): number => performance.now();

export class DuplicateRequestCache {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly expireMs: number;
  readonly stats: DuplicateCacheStats = { executions: 0, hits: 0, drops: 0, refused: 0, evictions: 0, expirations: 0 };
  /** Calls in progress and done calls, each in insertion order (oldest first). */
  private readonly running = new Map<string, CacheEntry>();
  private readonly done = new Map<string, CacheEntry>();
  private held = 0;
  /** No entry expires before this time: the common admit skips the sweep. */
  private nextExpiry = Infinity;

  constructor(
    options: DuplicateCacheOptions = {},
    private readonly now: () => number = clock,
  ) {
    this.maxEntries = positive(options.maxEntries ?? 1024, "maxEntries");
    this.maxBytes = positive(options.maxBytes ?? 16 * 1024 * 1024, "maxBytes");
    this.expireMs = positive(options.expireMs ?? 120_000, "expireMs");
  }

  /** Replies cached. */
  get size(): number {
    return this.done.size;
  }

  /** Calls in progress. */
  get inProgress(): number {
    return this.running.size;
  }

  /** Bytes of reply buffers the cache holds. */
  get bytes(): number {
    return this.held;
  }

  /**
   * Looks a call datagram from `peer` up. Returns:
   *   - undefined: not a well-formed call; not cached (the server decides what to do);
   *   - DROP: a duplicate of a call in progress, or no room for another call in progress;
   *   - a done entry (its `buffer` is set): send `buffer[0, end)` again, between `pin` and `unpin`;
   *   - a new entry in progress: run the call, and hand its reply to `complete` once sent.
   */
  admit(peer: string, message: Uint8Array): CacheEntry | typeof DROP | undefined {
    const t = this.now();
    if (t >= this.nextExpiry) this.expire(t);
    const key = callKey(peer, message);
    if (key === undefined) return undefined;
    const done = this.done.get(key);
    if (done !== undefined) {
      this.stats.hits++;
      return done;
    }
    if (this.running.has(key)) {
      this.stats.drops++;
      return DROP;
    }
    if (this.running.size >= this.maxEntries) {
      this.stats.refused++;
      return DROP;
    }
    const entry = new CacheEntry(key, t);
    this.running.set(key, entry);
    if (this.nextExpiry === Infinity) this.nextExpiry = t + this.expireMs;
    this.stats.executions++;
    return entry;
  }

  /**
   * The reply to `entry` is sent (the send callback): its buffer becomes the cache entry.
   * If the entry left the cache meanwhile (expired, cleared), the buffer is released.
   */
  complete(entry: CacheEntry, buffer: Uint8Array, end: number, release: (buffer: Uint8Array) => void): void {
    // Bytes are counted as the reply's length: its buffer may be a region of a shared slab.
    if (this.running.get(entry.key) !== entry || end > this.maxBytes) {
      this.running.delete(entry.key);
      release(buffer);
      return;
    }
    this.running.delete(entry.key);
    const t = this.now();
    entry.buffer = buffer;
    entry.end = end;
    entry.release = release;
    entry.at = t;
    this.done.set(entry.key, entry);
    this.held += end;
    if (this.nextExpiry === Infinity) this.nextExpiry = t + this.expireMs;
    while (this.done.size > this.maxEntries || this.held > this.maxBytes) {
      this.remove(this.done.values().next().value!);
      this.stats.evictions++;
    }
  }

  /** The call in progress will never be answered (its dispatch failed): forget it. */
  abandon(entry: CacheEntry): void {
    if (this.running.get(entry.key) === entry) this.running.delete(entry.key);
  }

  /** A resend of the cached reply starts: its buffer must stay as it is. */
  pin(entry: CacheEntry): void {
    entry.pins++;
  }

  /** A resend is done; the buffer goes back if the entry left the cache meanwhile. */
  unpin(entry: CacheEntry): void {
    if (--entry.pins === 0 && entry.gone) this.dispose(entry);
  }

  /** Empties the cache, releasing every buffer not in flight. */
  clear(): void {
    this.running.clear();
    for (const entry of this.done.values()) this.remove(entry);
    this.nextExpiry = Infinity;
  }

  /** Drops entries older than `expireMs`, oldest first, in both maps. */
  private expire(t: number): void {
    const limit = t - this.expireMs;
    for (const entry of this.running.values()) {
      if (entry.at > limit) break;
      this.running.delete(entry.key);
      this.stats.expirations++;
    }
    for (const entry of this.done.values()) {
      if (entry.at > limit) break;
      this.remove(entry);
      this.stats.expirations++;
    }
    const r = this.running.values().next().value;
    const d = this.done.values().next().value;
    this.nextExpiry = Math.min(r === undefined ? Infinity : r.at, d === undefined ? Infinity : d.at) + this.expireMs;
  }

  private remove(entry: CacheEntry): void {
    this.done.delete(entry.key);
    this.held -= entry.end;
    entry.gone = true;
    if (entry.pins === 0) this.dispose(entry);
  }

  private dispose(entry: CacheEntry): void {
    const buffer = entry.buffer;
    if (buffer === undefined) return;
    entry.buffer = undefined;
    entry.release(buffer);
  }
}

function positive(n: number, name: string): number {
  if (!(n > 0)) throw new RangeError(`duplicate-request cache: ${name} must be positive, not ${n}`);
  return n;
}
