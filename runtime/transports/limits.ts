/**
 * What a stream (TCP or Unix) listener lets its peers cost it. Every resource a peer can
 * make the server hold has a bound: descriptors (connections), time (idle connections,
 * records that never finish), memory (partial records, unsent replies) and work (calls in
 * progress). At a bound the server either stops reading the connection until it drains
 * (backpressure: a call on a stream is never dropped, RFC 5531 §11 gives no way to say so)
 * or closes it (the peer is holding resources without using them).
 *
 * The defaults suit a real server: 1,024 connections (a select()-based libtirpc server's
 * FD_SETSIZE; Node raises its descriptor limit to the hard limit, so the cap, not EMFILE, is
 * what peers meet), 64 of them per address (room for a busy client host or a NAT); an idle
 * connection kept 2 minutes and a record given 30 s (4 MiB at 140 KB/s); 64 MiB of partial
 * records at most; per connection 1 MiB of queued replies and 64 calls in progress (more
 * than a pipelining client needs to keep a link busy), 256 calls per address. What a peer
 * can make the server hold, at most:
 *
 * - descriptors: `maxConnections`, `maxConnectionsPerPeer` from one address;
 * - received bytes: `maxBufferedBytes` over all connections (one partial record of up to
 *   `maxRecordBytes` per connection, plus the chunk being decoded);
 * - queued replies: `maxUnsentBytes` plus the replies of the calls still in progress, per
 *   connection;
 * - calls: `maxCallsPerConnection`, `maxCallsPerPeer`; a call in progress also holds its
 *   message (up to `maxRecordBytes`) as long as the application holds its arguments;
 * - time: `idleTimeoutMs` without a call or reply progress, `recordTimeoutMs` per record.
 */
export interface StreamLimits {
  /** Connections open at once; one more is accepted and closed at once (default 1,024). */
  readonly maxConnections?: number;
  /** Connections open at once from one IP address (TCP only; default 64). */
  readonly maxConnectionsPerPeer?: number;
  /**
   * A connection that receives no call and sends no reply bytes for this long is closed
   * (default 6 minutes, as Linux's RPC server ages out idle connections). One with calls
   * still running in the application is not idle. Clients see the close as CLOSED.
   */
  readonly idleTimeoutMs?: number;
  /** A record whose first byte arrived must be complete within this long, or the connection is closed (default 30 s). */
  readonly recordTimeoutMs?: number;
  /** Largest record (one RPC message) accepted; a longer one closes the connection (default 4 MiB). */
  readonly maxRecordBytes?: number;
  /** Most fragments in one record (default 1,024). */
  readonly maxFragments?: number;
  /**
   * Received bytes held across every connection of the listener: partial records and input
   * not yet decoded (default 64 MiB). The connection whose bytes would exceed it is closed.
   */
  readonly maxBufferedBytes?: number;
  /** Reply bytes queued on one connection beyond which it is not read until they drain (default 1 MiB). */
  readonly maxUnsentBytes?: number;
  /** Calls in progress on one connection beyond which it is not read until some finish (default 64). */
  readonly maxCallsPerConnection?: number;
  /** Calls in progress from one IP address, over all its connections (TCP only; default 256). */
  readonly maxCallsPerPeer?: number;
}

export type ResolvedStreamLimits = { readonly [K in keyof StreamLimits]-?: number };

export const defaultStreamLimits: ResolvedStreamLimits = Object.freeze({
  maxConnections: 1024,
  maxConnectionsPerPeer: 64,
  idleTimeoutMs: 360_000,
  recordTimeoutMs: 30_000,
  maxRecordBytes: 4 * 1024 * 1024,
  maxFragments: 1024,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxUnsentBytes: 1024 * 1024,
  maxCallsPerConnection: 64,
  maxCallsPerPeer: 256,
});

/** Record lengths are 31 bits (RFC 5531 §11); timers hold at most 2³¹−1 ms. */
const ceilings: ResolvedStreamLimits = {
  maxConnections: 2 ** 31 - 1,
  maxConnectionsPerPeer: 2 ** 31 - 1,
  idleTimeoutMs: 2 ** 31 - 1,
  recordTimeoutMs: 2 ** 31 - 1,
  maxRecordBytes: 2 ** 31 - 1,
  maxFragments: 2 ** 31 - 1,
  maxBufferedBytes: Number.MAX_SAFE_INTEGER,
  maxUnsentBytes: Number.MAX_SAFE_INTEGER,
  maxCallsPerConnection: 2 ** 31 - 1,
  maxCallsPerPeer: 2 ** 31 - 1,
};

/** The limits with defaults filled in; throws RangeError for a value that is not a whole number in range. */
export function resolveStreamLimits(limits: StreamLimits | undefined): ResolvedStreamLimits {
  if (limits === undefined) return defaultStreamLimits;
  if (typeof limits !== "object" || limits === null) throw new TypeError("listen: limits must be an object");
  const resolved: Record<string, number> = { ...defaultStreamLimits };
  for (const [key, value] of Object.entries(limits)) {
    if (!Object.hasOwn(defaultStreamLimits, key)) throw new RangeError(`listen: unknown limit "${key}"`);
    if (value === undefined) continue;
    const max = ceilings[key as keyof ResolvedStreamLimits];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
      throw new RangeError(`listen: limits.${key} must be a whole number from 1 to ${max}, not ${String(value)}`);
    }
    resolved[key] = value;
  }
  return Object.freeze(resolved) as ResolvedStreamLimits;
}

/** What a stream listener holds now, from its own counters. */
export interface StreamStats {
  /** Connections open. */
  readonly connections: number;
  /** Received bytes held: partial records and input not yet decoded. */
  readonly bufferedBytes: number;
  /** Reply bytes queued in the sockets, not yet taken by the kernel. */
  readonly unsentBytes: number;
  /** Calls handed to the application and not yet answered. */
  readonly callsInProgress: number;
  /** Connections refused at once because of `maxConnections` or `maxConnectionsPerPeer`. */
  readonly refused: number;
  /** Connections closed for idleness or an unfinished record. */
  readonly timedOut: number;
  /** Connections closed for bad framing or for exceeding a memory bound. */
  readonly dropped: number;
  /** Failed accepts (EMFILE, ENFILE: the process is out of descriptors); the listener keeps going. */
  readonly acceptErrors: number;
}
