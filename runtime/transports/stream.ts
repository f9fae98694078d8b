import { createServer as createNetServer, connect as netConnect, type Server as NetServer, type Socket } from "node:net";
import { rmSync } from "node:fs";
import type { TransportKind } from "../call/timing.js";
import { RpcError } from "../rpc/errors.js";
import type { ClientTransport, Dispatcher, Listener, ReplySink } from "../transport/types.js";
import type { CopyLedger } from "../xdr/ledger.js";
import { formatPeer } from "./peer.js";
import { resolveStreamLimits, type ResolvedStreamLimits, type StreamLimits, type StreamStats } from "./limits.js";
import { defaultRecordLimits, markRecord, RecordDecoder, recordMarkBytes, RecordError } from "./record-marking.js";

/**
 * ONC RPC over byte streams: TCP, and the same over Unix domain sockets (libtirpc's
 * `local` transport). Each message is one record (RFC 5531 §11); many calls may be in
 * flight on one connection, matched by xid. Writes made in one tick go out in one system
 * call (the socket is corked until the next tick); Nagle is off, since a call is latency.
 */

export interface StreamConnectOptions {
  readonly transport: "tcp" | "unix";
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  /** Largest reply accepted (default `defaultMaxReplyBytes`); a longer one is discarded and its call fails TOO_LARGE. */
  readonly maxMessageBytes?: number | undefined;
  /** Give up connecting after this long, with an ETIMEDOUT error (default 20 s; the kernel's own SYN retries take over 2 minutes). */
  readonly connectTimeoutMs?: number | undefined;
}

/** How long a connection attempt may take by default. */
export const defaultConnectTimeoutMs = 20_000;

export interface StreamListenOptions {
  readonly transport: "tcp" | "unix";
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  /** What peers may cost the listener (see StreamLimits for the defaults). */
  readonly limits?: StreamLimits;
}

/**
 * Sends records on a socket and counts the kernel's copy. The first record of a tick is
 * written at once (one call outstanding: nothing to wait for); further records in the same
 * tick are corked and go out together in one system call when the tick ends.
 */
class RecordWriter {
  private written = 0;
  private corked = false;
  private readonly endTick = () => {
    this.written = 0;
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  };
  /** Buffers Node still holds, in write order; write callbacks come in the same order. */
  private readonly inFlight: { buffer: Uint8Array; release: (b: Uint8Array) => void }[] = [];
  private readonly done = () => {
    const w = this.inFlight.shift();
    w?.release(w.buffer);
  };

  constructor(private readonly socket: Socket) {}

  send(buffer: Uint8Array, end: number, ledger: CopyLedger | undefined, release: (b: Uint8Array) => void): void {
    if (this.socket.destroyed || this.socket.writableEnded) {
      release(buffer);
      return;
    }
    markRecord(buffer, end);
    ledger?.record("wire", end);
    const record = buffer.subarray(0, end);
    if (this.written++ === 0) {
      process.nextTick(this.endTick);
      this.socket.write(record);
      // Copied into the kernel already (the usual case): the buffer is free. If Node had to
      // queue it, it is left to the collector rather than tracked.
      if (this.socket.writableLength === 0) release(buffer);
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
    }
    this.inFlight.push({ buffer, release });
    this.socket.write(record, this.done);
  }
}

/**
 * A client's default limit on a reply: NFS servers offer READ sizes up to 64 MiB (FSINFO's
 * rtmax, RFC 1813 §3.3.19), and a reply is that plus its headers. It costs nothing until a
 * reply is that long: a record's buffer grows as its bytes arrive.
 */
export const defaultMaxReplyBytes = 64 * 1024 * 1024 + 64 * 1024;

function limits(maxMessageBytes: number | undefined) {
  return { ...defaultRecordLimits, maxRecordBytes: maxMessageBytes ?? defaultMaxReplyBytes };
}

/**
 * A client's read arena starts with slabs of 64 KiB (what Node reads at a time), so an idle
 * connection holds no more; once a reply outgrows its slab, the connection's next slabs hold
 * four replies that long (at most 1 MiB), so that few are moved. A read gets at least 16 KiB.
 */
const firstSlabBytes = 64 * 1024;
const maxSlabBytes = 1024 * 1024;
const minReadBytes = 16 * 1024;

/**
 * Where a client socket's reads land (Node's `onread`): each read goes into the free tail of
 * one slab, right behind the last, so a reply that takes several reads lies contiguous and
 * the decoder hands it out as one view — a 64 KiB READ reply costs no reassembly copy. While
 * no reply read into the slab is kept (the channel says so: only descriptor-mode results
 * hold views), the next read starts again at its front, so a client of the other modes
 * reads into the same memory call after call, allocating nothing; once one is kept, the
 * slab is never written over, and views handed out stay valid. When a slab has no room for
 * what a partial reply still awaits, the part already read moves — one counted copy — to
 * the front of the same slab if nothing read into it is kept and it is large enough (replies
 * streaming back to back, each arriving with the start of the next, never leave the slab
 * empty to rewind), else to a new slab as large as the reply needs.
 */
class ReadArena {
  private slab: Uint8Array = new Uint8Array(0);
  private used = 0;
  private slabBytes = firstSlabBytes;
  /** A message delivered from this slab may still be referenced. */
  kept = false;
  /** Set once the transport exists: where chunks go. */
  decoder: RecordDecoder | undefined;
  onChunk: (chunk: Uint8Array) => void = () => {};

  /** The room for the next read (Node calls it after each read). */
  readonly room = (): Uint8Array => {
    const decoder = this.decoder;
    // At a record boundary (no input held in the slab) with nothing kept: rewind.
    if (!this.kept && decoder !== undefined && !decoder.holdsInput) this.used = 0;
    const awaited = decoder?.awaited ?? 0;
    if (this.slab.length - this.used < Math.max(awaited, minReadBytes)) {
      // The part of a record read in place so far: between two of its fragments it awaits
      // nothing yet, but is still in this slab.
      const run = decoder?.runLength ?? 0;
      if (awaited > 0) this.slabBytes = Math.min(maxSlabBytes, Math.max(this.slabBytes, 4 * (run + awaited)));
      const need = run + awaited + minReadBytes;
      if (!this.kept && decoder !== undefined && !decoder.holdsRest && this.slab.length >= need) {
        this.used = decoder.moveRun(this.slab);
      } else {
        // A new slab; the old one stays as it is, so only a run that will grow needs to move.
        const slab = Buffer.allocUnsafeSlow(Math.max(this.slabBytes, need));
        this.used = awaited > 0 ? decoder!.moveRun(slab) : 0;
        this.slab = slab;
      }
      this.kept = false;
    }
    return this.slab.subarray(this.used);
  };

  /** `n` bytes were read into `room`. */
  readonly read = (n: number, room: Uint8Array): boolean => {
    this.used += n;
    this.onChunk(room.subarray(0, n));
    return true;
  };
}

export function connectStream(options: StreamConnectOptions): Promise<ClientTransport> {
  return new Promise((resolve, reject) => {
    const arena = new ReadArena();
    const onread = { buffer: arena.room, callback: arena.read };
    const socket =
      options.transport === "unix"
        ? netConnect({ path: options.path!, onread })
        : netConnect({ host: options.host ?? "127.0.0.1", port: options.port!, noDelay: true, onread });
    const ms = options.connectTimeoutMs ?? defaultConnectTimeoutMs;
    const timer = setTimeout(() => {
      const where = options.transport === "unix" ? options.path : `${options.host ?? "127.0.0.1"}:${options.port}`;
      socket.destroy(Object.assign(new Error(`connect ETIMEDOUT ${where} (no answer within ${ms} ms)`), { code: "ETIMEDOUT" }));
    }, ms);
    const onError = (e: Error) => {
      clearTimeout(timer);
      reject(e);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(streamTransport(socket, arena, options.transport, options.maxMessageBytes));
    });
  });
}

function streamTransport(socket: Socket, arena: ReadArena, kind: TransportKind, maxMessageBytes: number | undefined): ClientTransport {
  socket.setNoDelay(true);
  const writer = new RecordWriter(socket);
  let failure: Error | undefined;
  const transport: ClientTransport = {
    kind,
    peer: kind === "unix" ? "unix" : formatPeer(socket.remoteAddress, socket.remotePort),
    headerRoom: recordMarkBytes,
    datagram: false,
    readsInPlace: false,
    send: (buffer, end, ledger, release) => writer.send(buffer, end, ledger, release),
    onMessage: () => false,
    onClose: () => {},
    close: () =>
      new Promise<void>((resolve) => {
        if (socket.destroyed) return resolve();
        socket.once("close", () => resolve());
        socket.end();
      }),
  };
  const recordLimits = limits(maxMessageBytes);
  const decoder = new RecordDecoder(
    (record, received) => {
      received.record("wire", record.length); // the kernel's copy off the socket
      if (transport.onMessage(record, received)) arena.kept = true;
    },
    recordLimits,
    undefined,
    // A reply over the limit is read past, not kept: its call fails, the connection serves on.
    (xid, bytes) => transport.onTooLarge?.(xid, bytes, recordLimits.maxRecordBytes),
    "arena",
  );
  arena.decoder = decoder;
  arena.onChunk = (chunk) => {
    try {
      decoder.push(chunk);
    } catch (e) {
      // A peer that breaks the framing cannot be resynchronised: drop the connection.
      failure = e instanceof RecordError ? e : new Error(String(e));
      socket.destroy(failure);
    }
  };
  socket.on("error", (e) => {
    failure ??= e;
  });
  socket.on("close", () => transport.onClose(failure ?? new Error("connection closed by the server")));
  return transport;
}

/** The connections from one IP address (TCP), for the per-peer limits. */
interface Peer {
  readonly address: string;
  readonly members: Set<StreamConnection>;
  calls: number;
}

/**
 * One server connection: decodes records into calls, and is the sink their replies go to.
 * It counts calls in progress (a call ends with its reply, or when the dispatcher says it
 * was not a call) and stops reading while any bound is reached — calls in progress on the
 * connection or from its peer, reply bytes Node still queues — until they drain. Nothing
 * here allocates per call.
 */
class StreamConnection implements ReplySink {
  readonly headerRoom = recordMarkBytes;
  readonly readsInPlace = false;
  readonly peer: string;
  private readonly writer: RecordWriter;
  readonly decoder: RecordDecoder;
  /** Calls in progress: handed to the dispatcher, not yet answered. */
  calls = 0;
  /** Records handed to the dispatcher, and of those, the ones it answered or dropped. */
  private received = 0;
  private ended = 0;
  /** Records the dispatcher dropped (not calls): they do not count as activity. */
  private ignored = 0;
  /** Reply bytes handed to the socket. */
  private queued = 0;
  /** Received bytes charged to the listener's total. */
  accounted = 0;
  /** Not reading: a bound is reached. */
  private stopped = false;
  /** A look at the bounds is scheduled (see `wake`). */
  private waking = false;
  private readonly wakeUp = () => {
    this.waking = false;
    this.go();
  };
  closed = false;
  /** Aborted when the socket is gone: what handlers of this connection's calls are told. */
  private readonly lost = new AbortController();
  readonly signal = this.lost.signal;
  /** What the last sweep saw, and when this connection last made progress. */
  private seenCalls = 0;
  private seenSent = 0;
  private lastActive: number;
  /** When the sweep first saw the current partial record (-1: none), and which record it was. */
  private recordSince = -1;
  private recordSeen = 0;

  constructor(
    readonly kind: TransportKind,
    private readonly socket: Socket,
    private readonly listener: StreamListener,
    private readonly dispatcher: Dispatcher,
    readonly peerGroup: Peer | undefined,
    now: number,
  ) {
    this.peer = kind === "unix" ? "unix" : formatPeer(socket.remoteAddress, socket.remotePort);
    this.writer = new RecordWriter(socket);
    this.lastActive = now;
    const limits = listener.limits;
    this.decoder = new RecordDecoder(
      (record, received) => this.receive(record, received),
      limits,
      (bytes) => listener.buffered - this.accounted + this.decoder.buffered + bytes <= limits.maxBufferedBytes,
    );
  }

  send(buffer: Uint8Array, end: number, ledger: CopyLedger | undefined, release: (b: Uint8Array) => void): void {
    this.queued += end;
    this.writer.send(buffer, end, ledger, release);
    this.end();
  }

  /** The dispatcher's word that a message was not a call and gets no reply. */
  dropped(): void {
    this.ignored++;
    this.end();
  }

  private receive(record: Uint8Array, received: CopyLedger): void {
    received.record("wire", record.length); // the kernel's copy off the socket
    this.calls++;
    this.listener.calls++;
    const peer = this.peerGroup;
    if (peer !== undefined) peer.calls++;
    const ended = this.ended;
    this.received++;
    try {
      this.dispatcher.dispatch(record, this, received);
    } catch {
      // The dispatcher should answer every failure itself; if it threw before answering, no
      // reply will come. Either way the connection and its other calls live on.
      if (this.ended === ended) this.end();
    }
    const limits = this.listener.limits;
    if (
      this.calls >= limits.maxCallsPerConnection ||
      (peer !== undefined && peer.calls >= limits.maxCallsPerPeer) ||
      this.socket.writableLength > limits.maxUnsentBytes
    ) {
      this.stop();
    }
  }

  /** A call ended (answered, or not a call). */
  private end(): void {
    this.ended++;
    if (this.closed) return;
    this.calls--;
    this.listener.calls--;
    const peer = this.peerGroup;
    if (peer !== undefined) {
      // The peer's bound may have held other connections back: let them go on too.
      if (peer.calls-- === this.listener.limits.maxCallsPerPeer) for (const c of peer.members) c.wake();
    }
    this.wake();
  }

  /**
   * Reads on soon if stopped. Not at once: `end` runs inside the dispatcher (a reply is
   * being sent), which must not be entered again from there.
   */
  wake(): void {
    if (this.stopped && !this.waking && !this.closed) {
      this.waking = true;
      process.nextTick(this.wakeUp);
    }
  }

  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.decoder.paused = true;
    this.socket.pause();
  }

  /** Reads on if every bound allows it. */
  go(): void {
    if (!this.stopped || this.closed) return;
    const limits = this.listener.limits;
    const peer = this.peerGroup;
    if (
      this.calls >= limits.maxCallsPerConnection ||
      (peer !== undefined && peer.calls >= limits.maxCallsPerPeer) ||
      this.socket.writableLength > limits.maxUnsentBytes
    ) {
      return;
    }
    this.stopped = false;
    this.recordSince = -1; // a record's deadline does not run while the server is not reading
    try {
      this.decoder.resume(); // the rest of the chunk it stopped in (may stop again)
    } catch (e) {
      return this.fail(e);
    }
    this.account();
    if (!this.stopped) this.socket.resume();
  }

  /** Bytes from the socket. */
  data(chunk: Buffer): void {
    try {
      this.decoder.push(chunk);
    } catch (e) {
      return this.fail(e);
    }
    this.account();
  }

  private account(): void {
    const b = this.decoder.buffered;
    this.listener.buffered += b - this.accounted;
    this.accounted = b;
  }

  /** Bad framing, or a memory bound: this peer cannot be answered reliably. */
  private fail(_e: unknown): void {
    this.listener.dropped++;
    this.socket.destroy();
  }

  /** The socket is gone: gives back everything it held. */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    this.lost.abort(new RpcError("CLOSED", `the connection from ${this.peer} closed`));
    this.listener.buffered -= this.accounted;
    this.accounted = 0;
    this.listener.calls -= this.calls;
    const peer = this.peerGroup;
    if (peer !== undefined) {
      const held = peer.calls >= this.listener.limits.maxCallsPerPeer;
      peer.calls -= this.calls;
      peer.members.delete(this);
      if (held) for (const c of peer.members) c.wake();
    }
    this.calls = 0;
  }

  /** The timer's look at this connection: idle for too long, or a record unfinished for too long. */
  sweep(now: number): void {
    const limits = this.listener.limits;
    const calls = this.received - this.ignored;
    const sent = this.queued - this.socket.writableLength;
    if (calls !== this.seenCalls || sent !== this.seenSent || (this.calls > 0 && this.socket.writableLength === 0)) {
      // A call arrived, reply bytes left, or the application is still working on a call.
      this.seenCalls = calls;
      this.seenSent = sent;
      this.lastActive = now;
    } else if (now - this.lastActive >= limits.idleTimeoutMs) {
      return this.timeOut();
    }
    if (this.stopped || !this.decoder.partial) {
      this.recordSince = -1;
    } else if (this.recordSince < 0 || this.recordSeen !== this.received) {
      // A record began since the last look (no earlier than that look).
      this.recordSince = now;
      this.recordSeen = this.received;
    } else if (now - this.recordSince >= limits.recordTimeoutMs) {
      this.timeOut();
    }
  }

  private timeOut(): void {
    this.listener.timedOut++;
    this.socket.destroy();
  }
}

/** A listening stream socket with its limits, its connections and its counters. */
class StreamListener {
  readonly connections = new Set<StreamConnection>();
  private readonly sockets = new Set<Socket>();
  private readonly peers = new Map<string, Peer>();
  buffered = 0;
  calls = 0;
  refused = 0;
  timedOut = 0;
  dropped = 0;
  acceptErrors = 0;
  private readonly timer: NodeJS.Timeout;
  readonly net: NetServer;

  constructor(
    readonly kind: TransportKind,
    readonly limits: ResolvedStreamLimits,
    private readonly dispatcher: Dispatcher,
  ) {
    // Both timeouts are checked by one sweep over the connections, a few times per timeout:
    // nothing is done per message, and a connection is closed at most one period late.
    const period = Math.max(10, Math.min(1000, Math.floor(Math.min(limits.idleTimeoutMs, limits.recordTimeoutMs) / 4)));
    this.timer = setInterval(() => this.sweep(), period);
    this.timer.unref();
    // A write high-water mark at or below the reply bound makes the socket say 'drain' when
    // the replies that stopped reading have gone.
    const highWaterMark = Math.min(limits.maxUnsentBytes, 16 * 1024);
    this.net = createNetServer({ noDelay: true, highWaterMark }, (socket) => this.accept(socket));
    // Out of descriptors (EMFILE, ENFILE), libuv accepts and closes the waiting connections
    // with a descriptor it keeps in reserve, and Node reports each failed accept here: the
    // listener goes on, without spinning, and serves again once descriptors are free.
    this.net.on("error", () => {
      this.acceptErrors++;
    });
  }

  private accept(socket: Socket): void {
    const limits = this.limits;
    let peer: Peer | undefined;
    if (this.kind === "tcp") {
      const address = socket.remoteAddress ?? "";
      peer = this.peers.get(address);
      if (peer === undefined) this.peers.set(address, (peer = { address, members: new Set(), calls: 0 }));
    }
    if (this.sockets.size >= limits.maxConnections || (peer !== undefined && peer.members.size >= limits.maxConnectionsPerPeer)) {
      // Accept and close at once: a refused peer holds a descriptor for no time at all.
      this.refused++;
      if (peer !== undefined && peer.members.size === 0) this.peers.delete(peer.address);
      socket.on("error", () => {});
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const connection = new StreamConnection(this.kind, socket, this, this.dispatcher, peer, performance.now());
    this.connections.add(connection);
    peer?.members.add(connection);
    socket.on("data", (chunk: Buffer) => connection.data(chunk));
    socket.on("drain", () => connection.go());
    socket.on("error", () => {}); // a client's reset must not take the server down
    socket.on("close", () => {
      this.sockets.delete(socket);
      this.connections.delete(connection);
      connection.release();
      if (peer !== undefined && peer.members.size === 0) this.peers.delete(peer.address);
    });
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of this.connections) c.sweep(now);
  }

  get stats(): StreamStats {
    let unsent = 0;
    for (const s of this.sockets) unsent += s.writableLength;
    return {
      connections: this.sockets.size,
      bufferedBytes: this.buffered,
      unsentBytes: unsent,
      callsInProgress: this.calls,
      refused: this.refused,
      timedOut: this.timedOut,
      dropped: this.dropped,
      acceptErrors: this.acceptErrors,
    };
  }

  private netClosed: Promise<void> | undefined;

  /** No more connections; the open ones stay. */
  stop(): Promise<void> {
    return (this.netClosed ??= new Promise((resolve) => this.net.close(() => resolve())));
  }

  /**
   * Closes every connection after what it has queued (replies written, then FIN); one whose
   * peer does not read it out within a second is dropped.
   */
  close(done: () => void): void {
    clearInterval(this.timer);
    void this.stop().then(done);
    for (const s of this.sockets) {
      s.end();
      const late = setTimeout(() => s.destroy(), 1000);
      late.unref();
      s.once("close", () => clearTimeout(late));
    }
  }
}

export function listenStream(server: Dispatcher, options: StreamListenOptions): Promise<Listener<StreamStats>> {
  const kind: TransportKind = options.transport === "unix" ? "unix" : "tcp";
  if (kind === "unix" && options.path === undefined) throw new TypeError("listen: the unix transport needs a path");
  const listener = new StreamListener(kind, resolveStreamLimits(options.limits), server);
  const net = listener.net;
  return new Promise((resolve, reject) => {
    const failed = (e: Error) => {
      listener.close(() => reject(e));
    };
    net.once("error", failed);
    const ready = () => {
      net.off("error", failed);
      const a = net.address();
      const address =
        kind === "unix"
          ? { host: "", port: 0, path: options.path! }
          : { host: typeof a === "object" && a !== null ? a.address : "", port: typeof a === "object" && a !== null ? a.port : 0 };
      resolve({
        address,
        stats: () => listener.stats,
        stop: () => void listener.stop(),
        close: () =>
          new Promise<void>((done) => {
            listener.close(() => {
              if (kind === "unix") rmSync(options.path!, { force: true });
              done();
            });
          }),
      });
    };
    if (kind === "unix") net.listen(options.path!, ready);
    else net.listen(options.port ?? 0, options.host ?? "127.0.0.1", ready);
  });
}
