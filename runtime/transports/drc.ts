import { MAX_AUTH_BYTES, MsgType } from "../rpc/message.js";
import { padded } from "../xdr/pad.js";

/**
 * The duplicate-request cache of a datagram server: at-most-once execution over UDP.
 *
 * A call is known, as Linux nfsd's cache knows it, by who sent it and what it asks: the
 * peer's address and port, the xid, program, version and procedure (the key, as `callKey`
 * spells it), and a checksum of its arguments — the first `checksumBytes` bytes after the
 * call header, and their length. In the cache a call is:
 *   - absent: it is new, and runs (an *execution*);
 *   - in progress: its handler has not replied yet; a duplicate is DROPPED (the client will
 *     retransmit, and by then the reply may be cached);
 *   - done: its reply has been sent; a duplicate gets the same reply bytes again (a *hit*),
 *     and the procedure is not run a second time.
 * A datagram with the key of a done call but other arguments is a new call, not a
 * duplicate: it replaces the old entry (a client reuses an xid on a port only for a new
 * call, after the old one has ended — RFC 5531 §9 makes the xid the only thing that matches
 * a reply to its call) and runs. While the old call is still in progress it is dropped.
 *
 * Retention is time-based: a reply is kept `expireMs` (120 s) after it was sent, longer than
 * the whole retry window of this runtime's clients (a call retransmits, 500 ms doubling to
 * 8 s, until its timeout: 30 s by default). Two budgets bound the memory: the bytes of
 * replies kept (`maxBytes`) and, as a safety net, their number (`maxEntries`). Over budget,
 * the cache evicts the oldest reply of the peer *address* holding the largest share of
 * either budget, so a peer flooding distinct xids evicts its own replies: with P addresses
 * holding replies, one that holds at most 1/P of each budget loses replies only to age.
 *
 * Calls in progress are bounded per peer address (`maxInProgressPerPeer`) and in total
 * (`maxInProgress`). A new call beyond either bound is dropped unanswered — its client
 * retransmits later — so a peer that starts a thousand slow calls stalls only itself; it
 * takes `maxInProgress / maxInProgressPerPeer` addresses (8 with the defaults) at their
 * bound to stall everyone, until their calls finish or expire.
 * A call in progress expires like a reply (a handler that never answers must not hold its
 * slot for ever).
 *
 * What "at most once" means, then, over UDP: a call — the same key and arguments — runs
 * once as long as its entry lives: from its arrival until `expireMs` after its reply was
 * sent; its caller gets the reply of that one execution, or a TIMEOUT. With the defaults the
 * budgets hold 30 s (the client's default timeout) of replies up to 65,536 replies or 32 MiB
 * in 30 s — about 2,000 calls/s — and a peer pushing more evicts its own replies first.
 * A call can run twice when
 *   - its reply was evicted for budget (its peer held the largest share of the cache while
 *     the cache was full), or its handler ran longer than `expireMs`;
 *   - a retransmission arrives more than `expireMs` after the reply was sent (only a client
 *     whose `timeoutMs` is above `expireMs` retransmits that late);
 *   - the server restarted, or the listener was closed (the cache is memory only);
 *   - a late datagram of an old call arrives after its xid was reused, on the same port, for
 *     a call with other arguments (the new call replaced the old entry);
 *   - the cache is disabled (`duplicateCache: false`), or the reply alone exceeds `maxBytes`.
 * Fairness is per source address, and UDP source addresses can be forged: a sender who
 * forges many addresses counts as many peers. A reply that cannot be sent (too big for a
 * datagram, or the send failed) is never kept: the transport keeps, and sends, a SYSTEM_ERR
 * reply in its place — the call did run, so a retransmission must not run it again.
 *
 * Over TCP there is no cache: a call is sent once on a connection, and a connection that is
 * cut before the reply arrives cannot tell the client whether the call ran. Retrying it on a
 * new connection is the application's decision (at least once, not at most once).
 *
 * The reply is kept without a copy: the buffer the reply was marshaled into and sent from
 * IS the cache entry. It is written into the cache in the send callback, once the datagram
 * is out — the server's buffering overlapped with the reply's transmission, off the
 * latency's critical path. The server marshals such replies into regions of a shared slab
 * (see runtime/buffers.ts); the entry lets go of its region when evicted, expired or
 * cleared, and not while a resend of it is still in flight. A slab lives while any reply in
 * it is kept, so replies that outlive their neighbours (a quiet peer's, amid a flood whose
 * replies are evicted) could each hold a whole slab: the cache counts the memory it keeps
 * reachable (`memory`), and when that exceeds twice the reply bytes by `compactSlack`, it
 * copies the replies of slabs less than half used into buffers of their own, oldest first,
 * so the slabs can go. A reply is copied at most once; with one client, or replies evicted
 * in the order they came, slabs empty whole and nothing is copied. The memory replies hold
 * stays under about 2 × `maxBytes` + 2 × `compactSlack`, beside some 350 bytes of heap per
 * reply (its entry, the view of its buffer, its map slot; at most `maxEntries` of them).
 *
 * The cost per call is kept small: a lookup parses the header into module variables and
 * compares numbers — the key is never built as a string — and the map's key is a 30-bit
 * hash of it (a small integer); calls whose keys hash alike are chained and told apart
 * exactly. Expiry and eviction unlink entries from lists threaded through them, O(1) each.
 */

/** How far `memory` may exceed twice the reply bytes before the cache compacts. */
export const compactSlack = 1024 * 1024;

export interface DuplicateCacheOptions {
  /** Replies kept at most (default 65536): a safety net under `maxBytes`. */
  readonly maxEntries?: number;
  /** Bytes of replies kept at most (default 32 MiB). */
  readonly maxBytes?: number;
  /** How long a reply is kept after it was sent, and a call may stay in progress, in milliseconds (default 120 s). */
  readonly expireMs?: number;
  /** Calls in progress at most, all peers together (default 1024, or `maxEntries` if smaller). */
  readonly maxInProgress?: number;
  /** Calls in progress at most from one peer address (default 128, or `maxInProgress` if smaller). */
  readonly maxInProgressPerPeer?: number;
}

/** What the cache has done, for tests and monitoring. */
export interface DuplicateCacheStats {
  /** New calls admitted to run. */
  executions: number;
  /** Duplicates of done calls answered from the cache. */
  hits: number;
  /** Duplicates of calls still in progress, dropped. */
  drops: number;
  /** New calls dropped because `maxInProgress` calls, or `maxInProgressPerPeer` of their peer's, were in progress. */
  refused: number;
  /** Of `refused`: those dropped for their peer's bound. */
  refusedPeer: number;
  /** Replies evicted to stay within `maxEntries` or `maxBytes`. */
  evictions: number;
  /** Entries (replies or calls in progress) dropped for their age. */
  expirations: number;
  /** Done calls replaced by a call with the same key and other arguments. */
  replaced: number;
  /** Replies that could not be sent, kept as SYSTEM_ERR instead (counted by the transport). */
  unsendable: number;
  /** Replies copied out of mostly empty slabs, so the slabs could be freed. */
  compacted: number;
}

/** A piece of memory kept replies live in: a slab the server marshals into, or a reply's own buffer. */
class Block {
  /** Replies kept in it, and their bytes. */
  count = 0;
  live = 0;

  constructor(
    readonly memory: ArrayBufferLike,
    readonly size: number,
  ) {}
}

/** One peer address: its calls in progress, and its replies kept, oldest first. */
export class Peer {
  running = 0;
  entries = 0;
  bytes = 0;
  oldest: CacheEntry | undefined = undefined;
  newest: CacheEntry | undefined = undefined;
  /** Where the peer is in the cache's heap of peers holding replies, or -1. */
  slot = -1;
  /** A hash of the address, mixed into its calls' keys. */
  readonly hash: number;

  constructor(readonly address: string) {
    let h = 0x811c9dc5;
    for (let i = 0; i < address.length; i++) h = Math.imul(h ^ address.charCodeAt(i), 16777619);
    this.hash = h;
  }
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
  /** The next entry in age order, of the cache's calls in progress or of its replies (oldest first). */
  next: CacheEntry | undefined = undefined;
  prev: CacheEntry | undefined = undefined;
  /** The peer's next newer reply (its replies form a list, oldest first). */
  newer: CacheEntry | undefined = undefined;
  older: CacheEntry | undefined = undefined;
  /** @internal The memory `buffer` is a view of. */
  block: Block | undefined = undefined;
  /** The next entry whose key hashes alike (the cache's map holds the first). */
  chain: CacheEntry | undefined = undefined;
  /** When the call arrived; once done, when the reply was sent (for expiry). */
  at: number;
  /**
   * The key, exactly: the owner (the address), the port, and the header's numbers — the
   * 32-bit xid and checksum in 16-bit halves, so they stay small integers V8 stores inline.
   */
  readonly port: number;
  readonly xidHigh: number;
  readonly xidLow: number;
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
  readonly sumHigh: number;
  readonly sumLow: number;

  constructor(
    /** @internal */
    readonly owner: Peer,
    /** @internal Where the cache's map files it. */
    readonly hash: number,
    at: number,
    port: number,
    sum: number,
  ) {
    this.at = at;
    this.port = port;
    this.xidHigh = callXid >>> 16;
    this.xidLow = callXid & 0xffff;
    this.program = callProgram;
    this.version = callVersion;
    this.procedure = callProcedure;
    this.sumHigh = sum >>> 16;
    this.sumLow = sum & 0xffff;
  }

  /** Whether this is the call `parseCall` read last, from `owner` on `port`. */
  is(owner: Peer, port: number): boolean {
    return (
      this.owner === owner &&
      this.port === port &&
      this.xidLow === (callXid & 0xffff) &&
      this.xidHigh === callXid >>> 16 &&
      this.procedure === callProcedure &&
      this.program === callProgram &&
      this.version === callVersion
    );
  }

  /** Whether its arguments have the checksum `sum`. */
  sums(sum: number): boolean {
    return this.sumLow === (sum & 0xffff) && this.sumHigh === sum >>> 16;
  }
}

/** The verdict on a datagram that duplicates a call in progress (or finds no room): drop it. */
export const DROP = "drop";

/** How many bytes of the arguments the checksum covers (nfsd's RC_CSUMLEN). */
export const checksumBytes = 256;

function ignore(): void {}

function u32(m: Uint8Array, o: number): number {
  return ((m[o]! << 24) | (m[o + 1]! << 16) | (m[o + 2]! << 8) | m[o + 3]!) >>> 0;
}

/** What `parseCall` read last: module variables rather than an object, so a lookup allocates nothing. */
let callXid = 0;
let callProgram = 0;
let callVersion = 0;
let callProcedure = 0;
let argumentsAt = 0;

/**
 * Reads a call datagram's header, or returns false if it is not a well-formed call header
 * (the server will drop it without a reply, so there is nothing to cache). Reads the 24
 * fixed bytes and the lengths of the two opaque_auth fields, each checked against the bytes
 * present — the same framing the server's header parser checks — and trusts nothing else.
 */
function parseCall(m: Uint8Array): boolean {
  const n = m.length;
  if (n < 32 || u32(m, 4) !== MsgType.CALL) return false;
  const credLength = u32(m, 28);
  if (credLength > MAX_AUTH_BYTES) return false;
  const verf = 32 + padded(credLength);
  if (verf + 8 > n) return false;
  const verfLength = u32(m, verf + 4);
  if (verfLength > MAX_AUTH_BYTES || verf + 8 + padded(verfLength) > n) return false;
  argumentsAt = verf + 8 + padded(verfLength);
  callXid = u32(m, 0);
  callProgram = u32(m, 12);
  callVersion = u32(m, 16);
  callProcedure = u32(m, 20);
  return true;
}

/**
 * What tells calls apart besides their arguments, as a string: the peer ("address:port"),
 * xid, program, version and procedure; undefined if the datagram is not a well-formed call.
 * The cache compares the same fields as numbers, without building this string.
 */
export function callKey(peer: string, m: Uint8Array): string | undefined {
  if (!parseCall(m)) return undefined;
  return `${peer} ${callXid} ${callProgram} ${callVersion} ${callProcedure}`;
}

/** The map key of the call `parseCall` read last from `owner` on `port`: 30 bits, a small integer. */
function keyHash(owner: Peer, port: number): number {
  let h = Math.imul(owner.hash ^ port, 0x9e3779b1);
  h = Math.imul(h ^ callProgram, 0x85ebca6b);
  h = Math.imul(h ^ callVersion ^ Math.imul(callProcedure, 0x27d4eb2d), 0xc2b2ae35);
  // The xid last and unmixed: a client's consecutive xids get distinct keys.
  return (h ^ callXid) & 0x3fffffff;
}

/**
 * A 32-bit checksum of `m[from, to)`: FNV-1a over its first `checksumBytes` bytes, a word
 * at a time (XDR is word-aligned), seeded with the length. Each step is a bijection of the
 * running value, so arguments that differ in one word, or in length, never collide; it is
 * not a cryptographic hash (whoever can forge a peer's address and xid can do worse).
 */
export function argumentsChecksum(m: Uint8Array, from: number, to: number): number {
  let h = Math.imul(0x811c9dc5 ^ (to - from), 16777619);
  const end = Math.min(to, from + checksumBytes);
  let i = from;
  for (; i + 4 <= end; i += 4) h = Math.imul(h ^ ((m[i]! << 24) | (m[i + 1]! << 16) | (m[i + 2]! << 8) | m[i + 3]!), 16777619);
  for (; i < end; i++) h = Math.imul(h ^ m[i]!, 16777619);
  return h;
}

const clock = (): number => performance.now();

export class DuplicateRequestCache {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly expireMs: number;
  readonly maxInProgress: number;
  readonly maxInProgressPerPeer: number;
  readonly stats: DuplicateCacheStats = {
    executions: 0,
    hits: 0,
    drops: 0,
    refused: 0,
    refusedPeer: 0,
    evictions: 0,
    expirations: 0,
    replaced: 0,
    unsendable: 0,
    compacted: 0,
  };
  /** Every call the cache knows, in progress or done, by the hash of its key (alike hashes chained). */
  private readonly entries = new Map<number, CacheEntry>();
  /** Calls in progress in the order they arrived, replies in the order they were sent: each list's head expires first. */
  private readonly running = new AgeList();
  private readonly done = new AgeList();
  /** Peer addresses with calls in progress or replies kept. */
  private readonly peers = new Map<string, Peer>();
  /** The peers holding replies, as a binary max-heap on their share of the budgets. */
  private readonly heap: Peer[] = [];
  private held = 0;
  /** The blocks kept replies live in, by their memory; the one the last reply went into. */
  private readonly blocks = new Map<ArrayBufferLike, Block>();
  private lastBlock: Block | undefined = undefined;
  /** Bytes of those blocks: the memory the cache keeps reachable. */
  private pinned = 0;
  /** `pinned` after the last compaction: the next one waits for `compactSlack` more. */
  private compactedTo = 0;
  /** No entry expires before this time: the common admit skips the sweep. */
  private nextExpiry = Infinity;

  constructor(
    options: DuplicateCacheOptions = {},
    private readonly now: () => number = clock,
  ) {
    this.maxEntries = positive(options.maxEntries ?? 65_536, "maxEntries");
    this.maxBytes = positive(options.maxBytes ?? 32 * 1024 * 1024, "maxBytes");
    this.expireMs = positive(options.expireMs ?? 120_000, "expireMs");
    this.maxInProgress = positive(options.maxInProgress ?? Math.min(1024, this.maxEntries), "maxInProgress");
    this.maxInProgressPerPeer = positive(options.maxInProgressPerPeer ?? Math.min(128, this.maxInProgress), "maxInProgressPerPeer");
  }

  /** Replies cached. */
  get size(): number {
    return this.done.size;
  }

  /** Calls in progress. */
  get inProgress(): number {
    return this.running.size;
  }

  /** Bytes of replies the cache holds. */
  get bytes(): number {
    return this.held;
  }

  /** Bytes of memory the kept replies hold reachable (the slabs they are in). */
  get memory(): number {
    return this.pinned;
  }

  /** Peer addresses with calls in progress or replies kept. */
  get peerCount(): number {
    return this.peers.size;
  }

  /** What the cache holds for one peer address: calls in progress, replies and their bytes. */
  peer(address: string): { running: number; entries: number; bytes: number } {
    const p = this.peers.get(address);
    return { running: p?.running ?? 0, entries: p?.entries ?? 0, bytes: p?.bytes ?? 0 };
  }

  /**
   * Looks a call datagram from `address` and `port` up (the address alone is the unit of
   * fairness). Returns:
   *   - undefined: not a well-formed call; not cached (the server decides what to do);
   *   - DROP: a duplicate of a call in progress, or no room for another call in progress;
   *   - a done entry (its `buffer` is set): send `buffer[0, end)` again, between `pin` and `unpin`;
   *   - a new entry in progress: run the call, and hand its reply to `complete` once sent.
   */
  admit(address: string, message: Uint8Array, port = 0): CacheEntry | typeof DROP | undefined {
    const t = this.now();
    if (t >= this.nextExpiry) this.expire(t);
    if (!parseCall(message)) return undefined;
    const sum = argumentsChecksum(message, argumentsAt, message.length);
    let owner = this.peers.get(address);
    let known: CacheEntry | undefined;
    let hash = 0;
    if (owner !== undefined) {
      hash = keyHash(owner, port);
      known = this.entries.get(hash);
      while (known !== undefined && !known.is(owner, port)) known = known.chain;
    }
    if (known !== undefined) {
      if (known.buffer === undefined) {
        // In progress: a duplicate, or (other arguments) a new call that waits for it.
        this.stats.drops++;
        return DROP;
      }
      if (known.sums(sum)) {
        this.stats.hits++;
        return known;
      }
    }
    if (this.running.size >= this.maxInProgress || (owner !== undefined && owner.running >= this.maxInProgressPerPeer)) {
      this.stats.refused++;
      if (this.running.size < this.maxInProgress) this.stats.refusedPeer++;
      return DROP;
    }
    if (known !== undefined) {
      // The same key, other arguments: a new call, and the old reply is no longer wanted.
      this.remove(known);
      this.stats.replaced++;
      if (this.peers.get(address) !== owner) owner = undefined; // forgotten: that was all it had
    }
    if (owner === undefined) {
      this.peers.set(address, (owner = new Peer(address)));
      hash = keyHash(owner, port);
    }
    const entry = new CacheEntry(owner, hash, t, port, sum);
    entry.chain = this.entries.get(hash);
    this.entries.set(hash, entry);
    this.running.push(entry);
    owner.running++;
    if (this.nextExpiry === Infinity) this.nextExpiry = t + this.expireMs;
    this.stats.executions++;
    return entry;
  }

  /**
   * The reply to `entry` is sent (the send callback): its buffer becomes the cache entry.
   * If the entry left the cache meanwhile (expired, cleared), the buffer is released.
   * Only a reply that was sent may be completed: one that could not be sent is replaced by
   * the transport with one that can (SYSTEM_ERR).
   */
  complete(entry: CacheEntry, buffer: Uint8Array, end: number, release: (buffer: Uint8Array) => void): void {
    if (entry.gone || entry.buffer !== undefined) {
      release(buffer);
      return;
    }
    this.running.unlink(entry);
    const owner = entry.owner;
    owner.running--;
    // Bytes are counted as the reply's length: its buffer may be a region of a shared slab.
    if (end > this.maxBytes) {
      this.unindex(entry);
      entry.gone = true;
      this.forget(owner);
      release(buffer);
      return;
    }
    const t = this.now();
    entry.buffer = buffer;
    entry.end = end;
    entry.release = release;
    entry.at = t;
    this.done.push(entry);
    this.held += end;
    this.attach(entry, buffer, end, true);
    // The peer's list, oldest first: the tail is the newest.
    const newest = owner.newest;
    entry.older = newest;
    if (newest === undefined) owner.oldest = entry;
    else newest.newer = entry;
    owner.newest = entry;
    owner.entries++;
    owner.bytes += end;
    if (owner.slot < 0) {
      owner.slot = this.heap.length;
      this.heap.push(owner);
    }
    this.up(owner.slot);
    if (this.nextExpiry === Infinity) this.nextExpiry = t + this.expireMs;
    while (this.done.size > this.maxEntries || this.held > this.maxBytes) {
      // The peer with the largest share gives up its oldest reply.
      this.remove(this.heap[0]!.oldest!);
      this.stats.evictions++;
    }
    if (this.pinned > Math.max(2 * this.held, this.compactedTo) + compactSlack) this.compact();
  }

  /** The call in progress will never be answered (its dispatch failed): forget it. */
  abandon(entry: CacheEntry): void {
    if (entry.gone || entry.buffer !== undefined) return;
    this.forgetCall(entry);
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
    while (this.running.oldest !== undefined) this.forgetCall(this.running.oldest);
    while (this.done.oldest !== undefined) this.remove(this.done.oldest);
    this.entries.clear();
    this.peers.clear();
    this.heap.length = 0;
    this.blocks.clear();
    this.lastBlock = undefined;
    this.pinned = this.compactedTo = 0;
    this.nextExpiry = Infinity;
  }

  /** Drops entries older than `expireMs`, oldest first, from both lists: O(1) per entry dropped. */
  private expire(t: number): void {
    const limit = t - this.expireMs;
    for (let e = this.running.oldest; e !== undefined && e.at <= limit; e = this.running.oldest) {
      this.forgetCall(e);
      this.stats.expirations++;
    }
    for (let e = this.done.oldest; e !== undefined && e.at <= limit; e = this.done.oldest) {
      this.remove(e);
      this.stats.expirations++;
    }
    const r = this.running.oldest;
    const d = this.done.oldest;
    this.nextExpiry = Math.min(r === undefined ? Infinity : r.at, d === undefined ? Infinity : d.at) + this.expireMs;
  }

  /** A call in progress leaves the cache: a late reply to it will not be kept. */
  private forgetCall(entry: CacheEntry): void {
    this.unindex(entry);
    this.running.unlink(entry);
    entry.gone = true;
    entry.owner.running--;
    this.forget(entry.owner);
  }

  /** A reply leaves the cache. */
  private remove(entry: CacheEntry): void {
    this.unindex(entry);
    this.done.unlink(entry);
    this.held -= entry.end;
    const owner = entry.owner;
    const { older, newer } = entry;
    if (older === undefined) owner.oldest = newer;
    else older.newer = newer;
    if (newer === undefined) owner.newest = older;
    else newer.older = older;
    entry.older = entry.newer = undefined;
    this.detach(entry);
    owner.entries--;
    owner.bytes -= entry.end;
    if (owner.entries === 0) this.leaveHeap(owner);
    else this.down(owner.slot);
    this.forget(owner);
    entry.gone = true;
    if (entry.pins === 0) this.dispose(entry);
  }

  /** Takes an entry out of the map (out of its chain of alike hashes). */
  private unindex(entry: CacheEntry): void {
    const first = this.entries.get(entry.hash);
    if (first === entry) {
      if (entry.chain === undefined) this.entries.delete(entry.hash);
      else this.entries.set(entry.hash, entry.chain);
    } else {
      let e = first;
      while (e !== undefined && e.chain !== entry) e = e.chain;
      if (e !== undefined) e.chain = entry.chain;
    }
    entry.chain = undefined;
  }

  /** A peer with nothing in the cache is forgotten (forged source addresses must not pile up). */
  private forget(owner: Peer): void {
    if (owner.running === 0 && owner.entries === 0 && this.peers.get(owner.address) === owner) this.peers.delete(owner.address);
  }

  /** Counts a kept reply in the block of memory its buffer is a view of (the last one, mostly: no lookup). */
  private attach(entry: CacheEntry, buffer: Uint8Array, end: number, last: boolean): void {
    const memory = buffer.buffer;
    let block = this.lastBlock;
    if (block === undefined || block.memory !== memory) {
      block = this.blocks.get(memory);
      if (block === undefined) {
        block = new Block(memory, memory.byteLength);
        this.blocks.set(memory, block);
        this.pinned += block.size;
      }
      if (last) this.lastBlock = block;
    }
    block.count++;
    block.live += end;
    entry.block = block;
  }

  private detach(entry: CacheEntry): void {
    const block = entry.block;
    if (block === undefined) return;
    entry.block = undefined;
    block.live -= entry.end;
    if (--block.count > 0) return;
    this.blocks.delete(block.memory);
    this.pinned -= block.size;
    // The next compaction waits for `compactSlack` more memory than the lowest since the last.
    if (this.pinned < this.compactedTo) this.compactedTo = this.pinned;
    if (this.lastBlock === block) this.lastBlock = undefined;
  }

  /**
   * Copies the replies of blocks less than half used into buffers of their own, oldest
   * first, until the blocks hold at most twice the reply bytes (plus half the slack) — not
   * the block being filled, nor a reply being resent.
   */
  private compact(): void {
    const target = 2 * this.held + compactSlack / 2;
    for (let entry = this.done.oldest; entry !== undefined && this.pinned > target; entry = entry.next) {
      const block = entry.block!;
      if (block === this.lastBlock || entry.pins > 0 || block.live * 2 >= block.size) continue;
      const old = entry.buffer!;
      const copy = new Uint8Array(old.subarray(0, entry.end));
      this.detach(entry);
      entry.release(old);
      entry.release = ignore;
      entry.buffer = copy;
      this.attach(entry, copy, entry.end, false);
      this.stats.compacted++;
    }
    this.compactedTo = this.pinned;
  }

  private dispose(entry: CacheEntry): void {
    const buffer = entry.buffer;
    if (buffer === undefined) return;
    entry.buffer = undefined;
    entry.release(buffer);
  }

  // ---- the heap of peers, largest share first --------------------------------------------

  /** A peer's share of the budgets, scaled by maxEntries × maxBytes: the larger of its two fractions. */
  private share(p: Peer): number {
    return Math.max(p.entries * this.maxBytes, p.bytes * this.maxEntries);
  }

  private up(i: number): void {
    const heap = this.heap;
    const p = heap[i]!;
    const s = this.share(p);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const q = heap[parent]!;
      if (this.share(q) >= s) break;
      heap[i] = q;
      q.slot = i;
      i = parent;
    }
    heap[i] = p;
    p.slot = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const p = heap[i]!;
    const s = this.share(p);
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.share(heap[child + 1]!) > this.share(heap[child]!)) child++;
      const c = heap[child]!;
      if (this.share(c) <= s) break;
      heap[i] = c;
      c.slot = i;
      i = child;
    }
    heap[i] = p;
    p.slot = i;
  }

  private leaveHeap(p: Peer): void {
    const heap = this.heap;
    const i = p.slot;
    p.slot = -1;
    const last = heap.pop()!;
    if (last === p) return;
    heap[i] = last;
    last.slot = i;
    this.down(i);
    this.up(last.slot);
  }
}

/** A doubly linked list of entries through their `next`/`prev`, oldest first: O(1) to add at the end or unlink anywhere. */
class AgeList {
  oldest: CacheEntry | undefined = undefined;
  newest: CacheEntry | undefined = undefined;
  size = 0;

  push(e: CacheEntry): void {
    const last = this.newest;
    e.prev = last;
    e.next = undefined;
    if (last === undefined) this.oldest = e;
    else last.next = e;
    this.newest = e;
    this.size++;
  }

  unlink(e: CacheEntry): void {
    const { prev, next } = e;
    if (prev === undefined) this.oldest = next;
    else prev.next = next;
    if (next === undefined) this.newest = prev;
    else next.prev = prev;
    e.prev = e.next = undefined;
    this.size--;
  }
}

function positive(n: number, name: string): number {
  if (!(n > 0)) throw new RangeError(`duplicate-request cache: ${name} must be positive, not ${n}`);
  return n;
}
