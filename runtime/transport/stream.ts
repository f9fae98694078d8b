import { createServer as createNetServer, connect as netConnect, type Server as NetServer, type Socket } from "node:net";
import { rmSync } from "node:fs";
import type { CopyLedger } from "../ledger.js";
import type { Dispatcher, ListenOptions, Listener } from "../server.js";
import type { TransportKind } from "../timing.js";
import { defaultRecordLimits, markRecord, RecordDecoder, recordMarkBytes, RecordError } from "./record-marking.js";
import type { ClientTransport, ReplySink } from "./types.js";

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
  /** Largest record accepted (default 4 MiB). */
  readonly maxMessageBytes?: number | undefined;
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
    if (this.socket.destroyed) {
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

function limits(maxMessageBytes: number | undefined) {
  return maxMessageBytes === undefined ? defaultRecordLimits : { ...defaultRecordLimits, maxRecordBytes: maxMessageBytes };
}

export function connectStream(options: StreamConnectOptions): Promise<ClientTransport> {
  return new Promise((resolve, reject) => {
    const socket =
      options.transport === "unix"
        ? netConnect({ path: options.path! })
        : netConnect({ host: options.host ?? "127.0.0.1", port: options.port!, noDelay: true });
    const onError = (e: Error) => reject(e);
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve(streamTransport(socket, options.transport, options.maxMessageBytes));
    });
  });
}

function streamTransport(socket: Socket, kind: TransportKind, maxMessageBytes: number | undefined): ClientTransport {
  socket.setNoDelay(true);
  const writer = new RecordWriter(socket);
  let failure: Error | undefined;
  const transport: ClientTransport = {
    kind,
    headerRoom: recordMarkBytes,
    datagram: false,
    receiveCopies: true,
    send: (buffer, end, ledger, release) => writer.send(buffer, end, ledger, release),
    onMessage: () => {},
    onClose: () => {},
    close: () =>
      new Promise<void>((resolve) => {
        if (socket.destroyed) return resolve();
        socket.once("close", () => resolve());
        socket.end();
      }),
  };
  const decoder = new RecordDecoder((record, reassembled) => transport.onMessage(record, reassembled), limits(maxMessageBytes));
  socket.on("data", (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch (e) {
      // A peer that breaks the framing cannot be resynchronised: drop the connection.
      failure = e instanceof RecordError ? e : new Error(String(e));
      socket.destroy(failure);
    }
  });
  socket.on("error", (e) => {
    failure ??= e;
  });
  socket.on("close", () => transport.onClose(failure ?? new Error("connection closed by the server")));
  return transport;
}

export function listenStream(server: Dispatcher, options: ListenOptions): Promise<Listener> {
  const kind: TransportKind = options.transport === "unix" ? "unix" : "tcp";
  const sockets = new Set<Socket>();
  const net: NetServer = createNetServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const writer = new RecordWriter(socket);
    const sink: ReplySink = {
      kind,
      headerRoom: recordMarkBytes,
      receiveCopies: true,
      peer: kind === "unix" ? "unix" : `${socket.remoteAddress}:${socket.remotePort}`,
      send: (buffer, end, ledger, release) => writer.send(buffer, end, ledger, release),
    };
    const decoder = new RecordDecoder((record) => server.dispatch(record, sink), defaultRecordLimits);
    socket.on("data", (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        socket.destroy(); // a framing error: this client cannot be answered reliably
      }
    });
    socket.on("error", () => {}); // a client's reset must not take the server down
    socket.on("close", () => sockets.delete(socket));
  });

  return new Promise((resolve, reject) => {
    net.once("error", reject);
    const ready = () => {
      net.off("error", reject);
      const a = net.address();
      const address =
        kind === "unix"
          ? { host: "", port: 0, path: options.path! }
          : { host: typeof a === "object" && a !== null ? a.address : "", port: typeof a === "object" && a !== null ? a.port : 0 };
      resolve({
        address,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            net.close(() => {
              if (kind === "unix") rmSync(options.path!, { force: true });
              done();
            });
          }),
      });
    };
    if (kind === "unix") {
      if (options.path === undefined) throw new TypeError("listen: the unix transport needs a path");
      net.listen(options.path, ready);
    } else {
      net.listen(options.port ?? 0, options.host ?? "127.0.0.1", ready);
    }
  });
}
