import type { CopyLedger } from "../ledger.js";
import type { Mode } from "../marshal.js";
import type { TransportKind } from "../timing.js";

/**
 * The contract between the RPC runtime and a transport (Firefly's bind-time choice of
 * transport). A message travels as `buffer[0, end)`: the first `headerRoom` bytes are the
 * transport's own (TCP's record mark), the rest is the RPC message. The buffer is lent:
 * the transport calls `release(buffer)` once it needs it no more.
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
 * use an ordinary buffer (which `send` must then carry itself). `mode` lets a transport keep
 * classic's separate kernel-buffer stage. A message that outgrows the buffer is moved to an
 * ordinary one by the writer, and `send` gets that instead.
 */
export type AcquireBuffer = (mode: Mode) => Uint8Array | undefined;

export interface ClientTransport {
  readonly kind: TransportKind;
  readonly headerRoom: number;
  readonly acquire?: AcquireBuffer;
  /** Messages may be lost (UDP): the channel retransmits, the server keeps a duplicate-request cache. */
  readonly datagram: boolean;
  /** Receiving a message copies it from the wire (sockets do; same-process transports don't). */
  readonly receiveCopies: boolean;
  readonly send: SendMessage;
  /**
   * Set by the channel: a whole RPC message arrived. `reassembled` when the transport had to
   * copy fragments together (a counted runtime copy). `copiedOut` when the transport copied
   * the message out of memory it reuses (a shared-memory slot) into a buffer of its own: the
   * runtime counts that copy as its receive pass, and a descriptor-mode decode, which only
   * takes views into it, is not counted again.
   */
  onMessage: (message: Uint8Array, reassembled: boolean, copiedOut?: boolean) => void;
  /** Set by the channel: the connection is gone; every waiter must be released. */
  onClose: (error: Error | undefined) => void;
  /**
   * Optional: the channel gave up on the call with this xid (timed out or aborted), so the
   * transport may reclaim what the call holds (a shared-memory slot). Returns why the call
   * never reached the server, if the transport knows, for the caller's error.
   */
  abandon?(xid: number): string | undefined;
  close(): Promise<void>;
}

/** Where a server sends a call's reply, given by the transport that received the call. */
export interface ReplySink {
  readonly kind: TransportKind;
  readonly headerRoom: number;
  readonly acquire?: AcquireBuffer;
  /** The transport keeps the reply's buffer after sending it (UDP's duplicate-request cache): never reuse it. */
  readonly retains?: boolean;
  readonly receiveCopies: boolean;
  /** The call was copied out of memory the transport reuses, as `ClientTransport.onMessage`'s `copiedOut`. */
  readonly copiedOut?: boolean;
  readonly send: SendMessage;
  /** The caller's address, for auth hooks and the duplicate-request cache ("127.0.0.1:51234"). */
  readonly peer: string;
  /** Told when a message gets no reply because it is not a call, so the transport stops waiting for one. */
  dropped?(): void;
}
