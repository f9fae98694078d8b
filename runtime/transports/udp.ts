import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import type { CallContext } from "../call/service.js";
import { RpcError } from "../rpc/errors.js";
import { AcceptStat, AUTH_NONE, readCallHeader, writeAcceptedReply } from "../rpc/message.js";
import type { ClientTransport, Dispatcher, ListenAddress, Listener, ReplySink } from "../transport/types.js";
import { CopyLedger } from "../xdr/ledger.js";
import { XdrReader } from "../xdr/reader.js";
import { XdrWriter } from "../xdr/writer.js";
import { formatPeer } from "./peer.js";
import { DROP, DuplicateRequestCache, type CacheEntry, type DuplicateCacheOptions } from "./drc.js";

/**
 * ONC RPC over UDP: one datagram per message, no record mark, no low-level acknowledgements
 * (the reply is the call's acknowledgement, the next call the reply's). Lean protocol
 * processing:
 *   - the client keeps no copy of a call: its buffer goes back to the pool as soon as the
 *     datagram is out, and the channel retransmits by marshaling the arguments again
 *     (`datagram: true`: RpcChannel retransmits with backoff until the call's timeout or its
 *     `maxTries`);
 *   - the server keeps a duplicate-request cache (./drc.ts) so a retransmitted call is
 *     answered, not executed again, for as long as the cache promises (see there); the
 *     reply's own buffer is the entry, written in the send callback, so the buffering
 *     overlaps the reply's transmission. The cache also bounds the calls in progress per
 *     peer address and in total: a call beyond them is dropped, and retransmitted later;
 *   - a reply that can never be sent (longer than a datagram: EMSGSIZE) is answered
 *     SYSTEM_ERR instead, which the cache keeps, and reported to `onError`; a send refused
 *     for now (ENOBUFS, a firewall) is treated as a loss: the real reply is cached.
 * The kernel's copy of a datagram is the wire copy; nothing else is copied.
 */

/** The largest UDP payload over IPv4 (65535 − 8 bytes UDP header − 20 bytes IP header). */
export const maxDatagramBytes = 65_507;

/** Socket buffer sizes, in bytes (SO_RCVBUF, SO_SNDBUF); the kernel caps them (net.core.rmem_max, wmem_max). */
export interface UdpBufferOptions {
  readonly recvBufferSize?: number | undefined;
  readonly sendBufferSize?: number | undefined;
}

/** A datagram socket for `host`'s address family, with the buffer sizes asked for. */
function datagramSocket(host: string, buffers: UdpBufferOptions): Socket {
  return createSocket({ type: isIPv6(host) ? "udp6" : "udp4", recvBufferSize: buffers.recvBufferSize, sendBufferSize: buffers.sendBufferSize });
}

export interface UdpConnectOptions extends UdpBufferOptions {
  readonly host: string;
  readonly port: number;
  /** Largest reply accepted (default and at most 65507); a longer datagram is dropped, and its call fails TOO_LARGE. */
  readonly maxMessageBytes?: number | undefined;
}

function limit(maxMessageBytes: number | undefined): number {
  return maxMessageBytes === undefined ? maxDatagramBytes : Math.min(maxMessageBytes, maxDatagramBytes);
}

/** A connected datagram socket (udp6 for an IPv6 address): the kernel drops datagrams from anyone but the server. */
export function connectUdp(options: UdpConnectOptions): Promise<ClientTransport> {
  const socket = datagramSocket(options.host, options);
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      socket.close();
      reject(e);
    };
    socket.once("error", onError);
    socket.connect(options.port, options.host, (error?: Error | null) => {
      socket.off("error", onError);
      if (error) {
        socket.close();
        reject(error);
      } else {
        resolve(udpTransport(socket, limit(options.maxMessageBytes)));
      }
    });
  });
}

function udpTransport(socket: Socket, maxMessageBytes: number): ClientTransport {
  let closed = false;
  const received = new CopyLedger();
  let lastError: Error | undefined;
  const remote = socket.remoteAddress();
  const transport: ClientTransport = {
    kind: "udp",
    peer: formatPeer(remote.address, remote.port),
    headerRoom: 0,
    datagram: true,
    readsInPlace: false,
    send(buffer, end, ledger, release) {
      if (closed) {
        release(buffer);
        return;
      }
      if (end > maxDatagramBytes) {
        release(buffer);
        throw new RpcError("TRANSPORT", `a call of ${end} bytes does not fit in one UDP datagram (${maxDatagramBytes} bytes at most)`);
      }
      // The send system call copies the datagram into the kernel: the wire copy, and the only
      // one. The buffer is the pool's again once Node lets go of it; the call is not kept for
      // retransmission (the channel marshals it again).
      socket.send(buffer.subarray(0, end), (error) => {
        if (error) lastError = error; // e.g. ECONNREFUSED: the call times out or is retransmitted
        release(buffer);
      });
      ledger?.record("wire", end);
    },
    onMessage: () => false,
    onClose: () => {},
    close: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        socket.close(() => resolve());
      }),
  };
  socket.on("message", (message: Buffer) => {
    // Each datagram is its own buffer, copied out of the kernel (the wire copy): nothing to reassemble.
    if (message.length > maxMessageBytes) {
      if (message.length >= 4) transport.onTooLarge?.(message.readUInt32BE(0), message.length, maxMessageBytes);
      return;
    }
    received.reset();
    received.record("wire", message.length);
    transport.onMessage(message, received);
  });
  // A connected UDP socket reports an ICMP port unreachable as ECONNREFUSED on its next
  // receive: the channel is told (it fails the calls sent, as libtirpc's clnt_dg does,
  // unless asked to retransmit on). No error of a datagram socket ends the channel; only
  // closing the socket releases every waiter.
  socket.on("error", (e) => {
    lastError = e;
    if ((e as NodeJS.ErrnoException).code === "ECONNREFUSED") transport.onUnreachable?.(e);
  });
  socket.on("close", () => {
    closed = true;
    transport.onClose(lastError === undefined ? new Error("the UDP socket was closed") : new Error(`the UDP socket was closed (last error: ${lastError.message})`));
  });
  return transport;
}

// ---- the server side -----------------------------------------------------------------------

export interface UdpListenOptions extends UdpBufferOptions {
  /** Default 127.0.0.1 (an IPv6 address binds a udp6 socket). */
  readonly host?: string;
  /** Default 0: any free port. */
  readonly port?: number;
  /** Largest call accepted, in bytes (default and at most 65507); a longer datagram is dropped unread. */
  readonly maxMessageBytes?: number;
  /** The duplicate-request cache's bounds, or false to run without one (no at-most-once). */
  readonly duplicateCache?: DuplicateCacheOptions | false;
  /**
   * Told about replies that can never be sent (longer than a datagram); the caller gets
   * SYSTEM_ERR instead.
   */
  readonly onError?: (error: unknown, call: CallContext) => void;
  /**
   * TEST HOOK, simulating loss on the wire: called with the number of call datagrams
   * received before this one (0, 1, 2, …); true drops the datagram unread. Unset (the
   * default), it costs one comparison per datagram.
   */
  readonly dropCall?: (n: number) => boolean;
  /**
   * TEST HOOK, simulating loss on the wire: called with the number of reply datagrams sent
   * before this one — replies from the cache and SYSTEM_ERR replies in place of unsendable
   * ones included; true drops the datagram as if the network lost it after it was sent (the
   * cache entry is still written).
   */
  readonly dropReply?: (n: number) => boolean;
}

export interface UdpListener extends Listener {
  /** The duplicate-request cache (its `stats` count executions, hits and drops), if enabled. */
  readonly cache: DuplicateRequestCache | undefined;
}

/** Where one call datagram's reply goes: back to the datagram's source address. */
class DatagramSink implements ReplySink {
  readonly kind = "udp";
  readonly headerRoom = 0;
  readonly readsInPlace = false;
  /** A reply the cache will keep is marshaled where it can stay (a slab region), not in a pooled buffer. */
  readonly retains: boolean;

  constructor(
    private readonly endpoint: UdpEndpoint,
    readonly peer: string,
    readonly address: string,
    readonly port: number,
    readonly entry: CacheEntry | undefined,
    /** The call datagram: its header names the call if its reply cannot be sent. */
    readonly call: Uint8Array,
  ) {
    this.retains = entry !== undefined;
  }

  send(buffer: Uint8Array, end: number, ledger: CopyLedger | undefined, release: (buffer: Uint8Array) => void): void {
    this.endpoint.reply(this, buffer, end, ledger, release);
  }
}

class UdpEndpoint implements UdpListener {
  readonly cache: DuplicateRequestCache | undefined;
  address: ListenAddress = { host: "", port: 0 };
  private readonly maxMessageBytes: number;
  private readonly dropCall: ((n: number) => boolean) | undefined;
  private readonly dropReply: ((n: number) => boolean) | undefined;
  private readonly onError: ((error: unknown, call: CallContext) => void) | undefined;
  private calls = 0;
  private replies = 0;
  private closed = false;
  private readonly received = new CopyLedger();

  constructor(
    private readonly server: Dispatcher,
    private readonly socket: Socket,
    options: UdpListenOptions,
  ) {
    this.maxMessageBytes = limit(options.maxMessageBytes);
    this.cache = options.duplicateCache === false ? undefined : new DuplicateRequestCache(options.duplicateCache);
    this.dropCall = options.dropCall;
    this.dropReply = options.dropReply;
    this.onError = options.onError;
    socket.on("message", (message: Buffer, from: RemoteInfo) => this.receive(message, from));
    socket.on("error", () => {}); // an ICMP error about one client must not take the server down
  }

  /** One datagram, one call. */
  private receive(message: Buffer, from: RemoteInfo): void {
    if (this.closed || message.length > this.maxMessageBytes) return;
    if (this.dropCall !== undefined && this.dropCall(this.calls++)) return;
    const peer = formatPeer(from.address, from.port);
    let entry: CacheEntry | undefined;
    if (this.cache !== undefined) {
      // Fair shares and bounds on calls in progress are per address: a peer has many ports.
      const found = this.cache.admit(from.address, message, from.port);
      if (found === DROP) return;
      if (found !== undefined && found.buffer !== undefined) {
        this.resend(found, from.address, from.port);
        return;
      }
      entry = found;
    }
    const received = this.received;
    received.reset();
    received.record("wire", message.length); // the kernel's copy of the datagram
    try {
      this.server.dispatch(message, new DatagramSink(this, peer, from.address, from.port, entry, message), received);
    } catch {
      // A dispatcher is not meant to throw; if one does, the datagram is dropped, not the server.
      if (entry !== undefined) this.cache!.abandon(entry);
    }
  }

  /** @internal A reply to a call, in its own buffer (a slab region when the cache will keep it). */
  reply(sink: DatagramSink, buffer: Uint8Array, end: number, ledger: CopyLedger | undefined, release: (buffer: Uint8Array) => void): void {
    if (this.closed) {
      release(buffer);
      return;
    }
    if (end > maxDatagramBytes) {
      // The kernel would refuse it (EMSGSIZE); say so before trying.
      release(buffer);
      this.unsendable(sink, new RpcError("TRANSPORT", `a reply of ${end} bytes does not fit in one UDP datagram (${maxDatagramBytes} bytes at most)`));
      return;
    }
    ledger?.record("wire", end);
    if (this.dropReply !== undefined && this.dropReply(this.replies++)) {
      this.sent(sink, null, buffer, end, release);
      return;
    }
    // The cache entry is written once the datagram is out: buffering overlapped with sending.
    this.socket.send(buffer.subarray(0, end), sink.port, sink.address, (error) => this.sent(sink, error, buffer, end, release));
  }

  private sent(sink: DatagramSink, error: Error | null, buffer: Uint8Array, end: number, release: (buffer: Uint8Array) => void): void {
    if (error !== null && (error as NodeJS.ErrnoException).code === "EMSGSIZE") {
      // A reply the network can never carry is never cached: its retransmissions would get nothing.
      release(buffer);
      this.unsendable(sink, new RpcError("TRANSPORT", `the reply could not be sent: ${error.message}`, { cause: error }));
    } else if (sink.entry !== undefined) {
      // Sent, or refused for now (ENOBUFS, a firewall's EPERM): the call ran and its reply is
      // good, so it is kept as if the network had lost it, and a retransmission gets it.
      this.cache!.complete(sink.entry, buffer, end, release);
    } else {
      release(buffer);
    }
  }

  /**
   * The call ran but its reply cannot reach the caller: the caller gets SYSTEM_ERR instead,
   * promptly rather than at its timeout, and the cache keeps that small reply — sent or not —
   * so a retransmission is answered and does not run the call again.
   */
  private unsendable(sink: DatagramSink, error: RpcError): void {
    if (this.cache !== undefined) this.cache.stats.unsendable++;
    const c = sink.call;
    const xid = ((c[0]! << 24) | (c[1]! << 16) | (c[2]! << 8) | c[3]!) >>> 0;
    if (this.onError !== undefined) {
      try {
        // The server parsed this header before it replied; it parses again.
        const header = readCallHeader(new XdrReader(c));
        const call: CallContext = {
          xid,
          program: header.prog,
          version: header.vers,
          procedure: header.proc,
          cred: header.cred,
          verf: header.verf,
          authSys: undefined,
          transport: "udp",
          peer: sink.peer,
          signal: AbortSignal.abort(error), // answered already: nobody waits on this call
        };
        this.onError(error, call);
      } catch {
        // The application's hook must not take the server down.
      }
    }
    const w = new XdrWriter(32);
    writeAcceptedReply(w, xid, AUTH_NONE, AcceptStat.SYSTEM_ERR);
    const reply = w.bytes();
    const entry = sink.entry;
    const keep = () => {
      if (entry !== undefined) this.cache!.complete(entry, reply, reply.length, ignore);
    };
    if (this.closed || (this.dropReply !== undefined && this.dropReply(this.replies++))) return keep();
    this.socket.send(reply, sink.port, sink.address, keep);
  }

  /** A retransmitted call that was answered already: the cached reply bytes, not a second execution. */
  private resend(entry: CacheEntry, address: string, port: number): void {
    if (this.dropReply !== undefined && this.dropReply(this.replies++)) return;
    const cache = this.cache!;
    cache.pin(entry);
    this.socket.send(entry.buffer!.subarray(0, entry.end), port, address, () => cache.unpin(entry));
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise<void>((resolve) => {
      this.socket.close(() => {
        this.cache?.clear();
        resolve();
      });
    });
  }
}

function ignore(): void {}

/** A datagram socket bound to `host:port`: each datagram is one call, answered to its source. */
export function listenUdp(server: Dispatcher, options: UdpListenOptions): Promise<UdpListener> {
  const host = options.host ?? "127.0.0.1";
  const socket = datagramSocket(host, options);
  const endpoint = new UdpEndpoint(server, socket, options);
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      socket.close();
      reject(e);
    };
    socket.once("error", onError);
    socket.bind(options.port ?? 0, host, () => {
      socket.off("error", onError);
      const a = socket.address();
      endpoint.address = { host: a.address, port: a.port };
      resolve(endpoint);
    });
  });
}
