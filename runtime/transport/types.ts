import type { MarshalPath } from "../call/service.js";
import type { TransportKind } from "../call/timing.js";
import type { CopyLedger } from "../xdr/ledger.js";

/**
 * The contract between the RPC runtime and a transport (Firefly's bind-time choice of
 * transport). Types only: a transport knows the runtime through these, never a client or a
 * server. A message travels as `buffer[0, end)`: the first `headerRoom` bytes are the
 * transport's own (TCP's record mark), the rest is the RPC message. The buffer is lent: the
 * transport calls `release(buffer)` once it needs it no more.
 *
 * Copies are counted where they happen: a transport counts its own in the ledger it is
 * given when sending, and, when receiving (before anyone knows which call a message
 * belongs to), in the message's `received` ledger, which the runtime adds to the call's.
 */

/** Hands a message on; counts the transport's copy (onto the wire) in `ledger`. */
export type SendMessage = (
  buffer: Uint8Array,
  end: number,
  ledger: CopyLedger | undefined,
  release: (buffer: Uint8Array) => void,
) => void;

/**
 * Optional, for transports whose wire is memory the runtime can write (shared-memory slots,
 * LRPC's A-stacks): the buffer to marshal the next message straight into, or undefined to
 * use an ordinary buffer (which `send` must then carry itself). The transport lends only to
 * a path that writes into lent memory (`path.lendable`). A message that outgrows the buffer
 * is moved to an ordinary one by the writer, and `send` gets that instead.
 */
export type AcquireBuffer = (path: MarshalPath) => Uint8Array | undefined;

/** What the sending side of a connection tells the runtime about where messages go. */
export interface MessageTarget {
  readonly kind: TransportKind;
  readonly headerRoom: number;
  readonly acquire?: AcquireBuffer | undefined;
  /**
   * The receiver reads the message out of the sender's own buffer (a same-process
   * transport), so a buffer whose message may be decoded into views must never be reused.
   */
  readonly readsInPlace: boolean;
  /** The transport keeps the buffer after sending it (UDP's duplicate-request cache): never reuse it. */
  readonly retains?: boolean | undefined;
  readonly send: SendMessage;
}

export interface ClientTransport extends MessageTarget {
  /** Messages may be lost (UDP): the channel retransmits, the server keeps a duplicate-request cache. */
  readonly datagram: boolean;
  /** The server's address as the server prints its peers ("127.0.0.1:111", "[::1]:111"), where there is one. */
  readonly peer?: string;
  /**
   * Set by the channel: a whole RPC message arrived, with the copies the transport made to
   * deliver it. Returns whether the channel keeps views of its bytes past the call (a
   * descriptor-mode result): if not, a transport may write over them (a stream client's read
   * arena rewinds); if so, they must stay as they are.
   */
  onMessage: (message: Uint8Array, received: CopyLedger) => boolean;
  /** Set by the channel: the connection is gone; every waiter must be released. */
  onClose: (error: Error | undefined) => void;
  /**
   * Set by the channel: a message of at least `bytes` bytes, over the transport's `limit`, was
   * discarded unread; `xid` is its first word, if it had one. Its call fails, and only it.
   */
  onTooLarge?: (xid: number | undefined, bytes: number, limit: number) => void;
  /**
   * Set by the channel: the peer is unreachable (a datagram transport's ICMP port unreachable,
   * which the kernel reports on a connected socket as ECONNREFUSED). Calls sent may fail at once.
   */
  onUnreachable?: (error: Error) => void;
  /**
   * Optional: the channel gave up on the call with this xid (timed out or aborted), so the
   * transport may reclaim what the call holds (a shared-memory slot). Returns why the call
   * never reached the server, if the transport knows, for the caller's error.
   */
  abandon?(xid: number): string | undefined;
  /**
   * Optional, for transports that can receive without the event loop (shared memory): blocks
   * this thread — spinning first, then sleeping — delivering replies through `onMessage` as
   * they come, until `done()` or until `deadline` (a `Date.now()` time) passes. Returns
   * whether `done()` held.
   */
  waitSync?(done: () => boolean, deadline: number): boolean;
  /** Optional, with `waitSync`: whether a call made now would get the transport's memory at once (`exchangeSync` may run). */
  syncReady?(): boolean;
  /**
   * Optional, with `waitSync`: one synchronous call's whole exchange, for a call the channel
   * does not observe (LRPC's direct hand-off). Sends `buffer[0, end)` — marshaled into the
   * memory `acquire` lent, or into a buffer of the runtime's — waits for that call's reply
   * alone, and returns it, to be decoded before anything else is sent; undefined if none came
   * within `timeoutMs` (the transport takes back what the call held). Only when `syncReady()`.
   */
  exchangeSync?(buffer: Uint8Array, end: number, release: (buffer: Uint8Array) => void, path: MarshalPath, timeoutMs: number): Uint8Array | undefined;
  close(): Promise<void>;
}

/** Where a server sends a call's reply, given by the transport that received the call. */
export interface ReplySink extends MessageTarget {
  /** The caller's address, for auth hooks and the duplicate-request cache ("127.0.0.1:51234", "[::1]:51234"). */
  readonly peer: string;
  /** Told when a message gets no reply because it is not a call, so the transport stops waiting for one. */
  dropped?(): void;
  /**
   * Connection transports: aborted when the connection the call came on is gone, so a handler
   * can stop work nobody will read (one signal per connection, not per call).
   */
  readonly signal?: AbortSignal;
}

/** What a transport's server side hands calls to (a runtime Server). */
export interface Dispatcher {
  /** Serves one call; `received` holds the copies the transport made to deliver it (read before returning). */
  dispatch(message: Uint8Array, sink: ReplySink, received: CopyLedger): void;
  /**
   * The marshal path of a registered program version (or of the program's nearest version),
   * for transports that lend memory and must know how a call will be read before it is.
   */
  pathOf(program: number, version: number): MarshalPath | undefined;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  readonly path?: string;
}

/** A transport's listening endpoint, as the server keeps it; `S`: what it counts. */
export interface Listener<S extends object = object> {
  readonly address: ListenAddress;
  /** What the listener holds now (stream transports). */
  readonly stats?: () => S;
  /** Optional: stop accepting connections (those open stay, until `close`), for a graceful close. */
  stop?(): void;
  close(): Promise<void>;
}
