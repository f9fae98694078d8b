import { createSocket, type RemoteInfo, type Socket as DgramSocket } from "node:dgram";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { createServer as createNetServer, connect as netConnect, type Server as NetServer, type Socket } from "node:net";
import { Worker } from "node:worker_threads";
import type { AsyncBatch } from "./harness.js";
import { SAB_DATA_BYTES, SAB_DATA_OFFSET, SAB_MODE_SLEEP, SAB_MODE_SPIN, SabWord } from "./sab-layout.js";

/**
 * The raw floors of the RPC section: the same round trips with no RPC in them, measured in
 * the same run as the RPC calls they are compared with.
 *
 * - stream (TCP, Unix): a net socket pair, each message a 4-byte length prefix and a body,
 *   exactly the bytes of the RPC record (whose record mark is the same 4 bytes). The server
 *   answers each whole message with a preallocated reply of the size the call names (its
 *   first 4 body bytes); the client sends the next call from the reply's 'data' callback.
 *   Both ends turn Nagle off, as the runtime does.
 * - UDP: a connected client socket and a bound server socket, one datagram each way, of the
 *   RPC messages' sizes; the server replies to the datagram's source, as the runtime does.
 * - SharedArrayBuffer: the main thread and a worker (bench/sab-worker.ts) hand a message
 *   of the given size back and forth through shared memory, each side copying its message
 *   into the one shared area (as shm's slot), spinning or sleeping (Atomics.wait /
 *   Atomics.waitAsync).
 * - microtask: a promise resolved from a queued microtask and awaited — what an inproc call
 *   cannot avoid; a reference, not a transport floor.
 *
 * The TCP, Unix and UDP servers (startFloorServers) run wherever the RPC servers they are
 * compared with run: in the client's thread, or in a process of their own (bench/peer.ts).
 *
 * Everything here is callback-driven with preallocated buffers: the cheapest round trip
 * Node can make over each medium, not a stand-in for a competing RPC system.
 */

/** A round trip of `callBytes` there and `replyBytes` back, `n` times in sequence. */
export interface PingPong {
  batch(callBytes: number, replyBytes: number): AsyncBatch;
  close(): Promise<void>;
}

/** One message: a 4-byte length prefix (when `prefix`), then the body, whose first word is the reply size wanted. */
function message(bodyBytes: number, replyBytes: number, prefix: boolean): Buffer {
  const head = prefix ? 4 : 0;
  const b = Buffer.alloc(head + bodyBytes, 0x5a);
  if (prefix) b.writeUInt32BE(bodyBytes, 0);
  if (bodyBytes >= 4) b.writeUInt32BE(replyBytes, head);
  return b;
}

/** Splits a byte stream into length-prefixed messages (fast path: one whole message per chunk). */
function framer(onMessage: (body: Buffer) => void): (chunk: Buffer) => void {
  let held: Buffer | undefined;
  return (chunk) => {
    const buf = held === undefined ? chunk : Buffer.concat([held, chunk]);
    held = undefined;
    let i = 0;
    while (buf.length - i >= 4) {
      const len = buf.readUInt32BE(i);
      if (buf.length - i - 4 < len) break;
      onMessage(buf.subarray(i + 4, i + 4 + len));
      i += 4 + len;
    }
    if (i < buf.length) held = buf.subarray(i);
  };
}

/** The batch protocol of a callback-driven client: `start` sends the first call, `next` each further one. */
class Chain {
  private remaining = 0;
  private sum = 0;
  private resolve: ((sum: number) => void) | undefined;
  private reject: ((e: Error) => void) | undefined;
  private progress = 0;

  constructor(private readonly send: () => void) {}

  run(n: number, resend?: () => void): Promise<number> {
    this.remaining = n;
    this.sum = 0;
    return new Promise<number>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      // Datagrams may be lost: resend the last call if nothing came back for a while.
      let seen = -1;
      const watchdog =
        resend === undefined
          ? undefined
          : setInterval(() => {
              if (this.progress === seen) resend();
              seen = this.progress;
            }, 250);
      const done = this.resolve;
      this.resolve = (s) => {
        if (watchdog !== undefined) clearInterval(watchdog);
        done(s);
      };
      this.send();
    });
  }

  /** A reply arrived: send the next call or finish the batch. */
  reply(bytes: number): void {
    this.progress++;
    this.sum += bytes;
    if (--this.remaining > 0) this.send();
    else if (this.resolve !== undefined) {
      const r = this.resolve;
      this.resolve = undefined;
      r(this.sum);
    }
  }

  fail(e: Error): void {
    const r = this.reject;
    this.resolve = this.reject = undefined;
    r?.(e);
  }
}

// ---- the servers: TCP, Unix, UDP --------------------------------------------------------

/** Where the floor servers listen (127.0.0.1 for TCP and UDP). */
export interface FloorAddresses {
  readonly tcp: number;
  readonly unix: string;
  readonly udp: number;
}

export interface FloorServers {
  readonly address: FloorAddresses;
  close(): Promise<void>;
}

/**
 * The server ends of the TCP, Unix and UDP floors, in the calling thread: run in the client's
 * thread (the one-thread arrangement) or in a process of their own (bench/peer.ts), exactly
 * where the RPC server of the same arrangement runs.
 */
export async function startFloorServers(unixPath: string): Promise<FloorServers> {
  const replies = new Map<number, Buffer>();
  const replyOf = (want: number, prefix: boolean): Buffer => {
    const k = prefix ? want : -1 - want;
    let r = replies.get(k);
    if (r === undefined) replies.set(k, (r = message(want, 0, prefix)));
    return r;
  };
  const sockets = new Set<Socket>();
  const onStream = (s: Socket): void => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on(
      "data",
      framer((body) => void s.write(replyOf(body.length >= 4 ? body.readUInt32BE(0) : 0, true))),
    );
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  };
  const tcp: NetServer = createNetServer({ noDelay: true }, onStream);
  const unix: NetServer = createNetServer(onStream);
  rmSync(unixPath, { force: true });
  tcp.listen(0, "127.0.0.1");
  unix.listen(unixPath);
  const udp: DgramSocket = createSocket("udp4");
  udp.on("message", (msg: Buffer, from: RemoteInfo) => {
    udp.send(replyOf(msg.length >= 4 ? msg.readUInt32BE(0) : 0, false), from.port, from.address);
  });
  udp.on("error", () => {});
  udp.bind(0, "127.0.0.1");
  await Promise.all([once(tcp, "listening"), once(unix, "listening"), once(udp, "listening")]);
  const a = tcp.address();
  return {
    address: { tcp: typeof a === "object" && a !== null ? a.port : 0, unix: unixPath, udp: udp.address().port },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => tcp.close(() => resolve())),
        new Promise<void>((resolve) => unix.close(() => resolve())),
        new Promise<void>((resolve) => udp.close(() => resolve())),
      ]);
      rmSync(unixPath, { force: true });
    },
  };
}

// ---- the clients: TCP and Unix ---------------------------------------------------------------

/** A client of the TCP or Unix floor server at `address`. */
export async function streamPingPong(kind: "tcp" | "unix", address: FloorAddresses): Promise<PingPong> {
  const client = kind === "unix" ? netConnect({ path: address.unix }) : netConnect({ host: "127.0.0.1", port: address.tcp, noDelay: true });
  await once(client, "connect");
  client.setNoDelay(true);

  let call = message(4, 0, true);
  const chain = new Chain(() => client.write(call));
  client.on(
    "data",
    framer((body) => chain.reply(body.length)),
  );
  client.on("error", (e) => chain.fail(e));
  client.on("close", () => chain.fail(new Error(`${kind} floor: connection closed`)));

  return {
    batch(callBytes, replyBytes) {
      const msg = message(callBytes, replyBytes, true);
      return (n) => {
        call = msg;
        return chain.run(n);
      };
    },
    async close() {
      client.removeAllListeners("close");
      client.destroy();
    },
  };
}

// ---- the client: UDP -----------------------------------------------------------------------

/** A client of the UDP floor server at `address`: a connected socket, one datagram each way. */
export async function udpPingPong(address: FloorAddresses): Promise<PingPong> {
  const client: DgramSocket = createSocket("udp4");
  await new Promise<void>((resolve, reject) => client.connect(address.udp, "127.0.0.1", (e?: Error | null) => (e ? reject(e) : resolve())));

  let call = message(4, 0, false);
  const send = () => client.send(call);
  const chain = new Chain(send);
  client.on("message", (msg: Buffer) => chain.reply(msg.length));
  client.on("error", () => {});

  return {
    batch(callBytes, replyBytes) {
      const msg = message(callBytes, replyBytes, false);
      return (n) => {
        call = msg;
        return chain.run(n, send);
      };
    },
    async close() {
      await new Promise<void>((r) => client.close(() => r()));
    },
  };
}

// ---- SharedArrayBuffer between two threads ------------------------------------------------

/** A peer that has not answered for this long is taken for dead. */
const STUCK_MS = 5000;

type WaitAsyncResult = { readonly async: false; readonly value: string } | { readonly async: true; readonly value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: (a: Int32Array, i: number, v: number) => WaitAsyncResult }).waitAsync;

export interface SabPingPong {
  /**
   * Both sides poll (the worker sleeps only after 1 ms idle, i.e. between batches). Self-timed:
   * resolves to the ns of `n` round trips, extrapolated from those made within `capMs`.
   */
  spin(callBytes: number, replyBytes: number, capMs: number): AsyncBatch;
  /** The worker sleeps in Atomics.wait; the main thread in Atomics.waitAsync (its event loop stays free). */
  sleepAsync(callBytes: number, replyBytes: number): AsyncBatch;
  /** Both sleep in Atomics.wait (the main thread blocks): the kernel's futex hand-off alone. */
  sleepSync(callBytes: number, replyBytes: number): AsyncBatch;
  close(): Promise<void>;
}

export async function sabPingPong(): Promise<SabPingPong> {
  const sab = new SharedArrayBuffer(SAB_DATA_OFFSET + SAB_DATA_BYTES);
  const w = new Int32Array(sab);
  const data = new Uint8Array(sab, SAB_DATA_OFFSET);
  const worker = new Worker(new URL("./sab-worker.js", import.meta.url), { workerData: sab });
  let failure: Error | undefined;
  worker.on("error", (e) => {
    failure = e;
  });
  const [ready] = (await once(worker, "message")) as unknown[];
  if (ready !== "ready") throw new Error(`SAB floor: the worker said ${String(ready)}`);
  let calls = 0;
  const callMessage = (n: number) => {
    const m = new Uint8Array(n);
    m.fill(0x5a);
    return m;
  };

  const publish = (msg: Uint8Array, replyBytes: number): number => {
    data.set(msg, 0);
    Atomics.store(w, SabWord.REPLY_LEN, replyBytes);
    calls = (calls + 1) | 0;
    Atomics.store(w, SabWord.CALLS, calls);
    if (Atomics.load(w, SabWord.SERVER_SLEEPING) !== 0) Atomics.notify(w, SabWord.CALLS);
    return calls;
  };
  const dead = (): never => {
    throw failure ?? new Error("SAB floor: the worker stopped answering");
  };

  return {
    spin(callBytes, replyBytes, capMs) {
      const msg = callMessage(callBytes);
      return (n) => {
        Atomics.store(w, SabWord.MODE, SAB_MODE_SPIN);
        const t0 = process.hrtime.bigint();
        const cap = t0 + BigInt(Math.round(capMs * 1e6));
        let i = 0;
        for (; i < n; i++) {
          // A batch calibrated while both threads ran can take 100× longer once the worker is
          // descheduled (a busy 2-core machine): stop at the cap and extrapolate.
          if ((i & 255) === 255 && process.hrtime.bigint() > cap) break;
          const c = publish(msg, replyBytes);
          let k = 0;
          let since = 0;
          while (Atomics.load(w, SabWord.REPLIES) !== c) {
            // A worker that died would leave us spinning: look at the clock now and then (a
            // descheduled worker on a busy machine can take many milliseconds to answer).
            if ((++k & 0xfffff) === 0) {
              if (since === 0) since = performance.now();
              else if (failure !== undefined || performance.now() - since > STUCK_MS) dead();
            }
          }
        }
        return (Number(process.hrtime.bigint() - t0) * n) / i;
      };
    },
    sleepAsync(callBytes, replyBytes) {
      const msg = callMessage(callBytes);
      return async (n) => {
        Atomics.store(w, SabWord.MODE, SAB_MODE_SLEEP);
        Atomics.store(w, SabWord.CLIENT_SLEEPING, 1);
        let sum = 0;
        try {
          for (let i = 0; i < n; i++) {
            const c = publish(msg, replyBytes);
            // A wake-up may be the late notify of the previous reply: wait again until this one is in.
            for (let since = 0; ; ) {
              const seen = Atomics.load(w, SabWord.REPLIES);
              if (seen === c) break;
              const r = waitAsync(w, SabWord.REPLIES, seen);
              if (r.async) await r.value;
              if (since === 0) since = performance.now();
              else if (failure !== undefined || performance.now() - since > STUCK_MS) dead();
            }
            sum += data[0]!;
          }
        } finally {
          Atomics.store(w, SabWord.CLIENT_SLEEPING, 0);
        }
        return sum;
      };
    },
    sleepSync(callBytes, replyBytes) {
      const msg = callMessage(callBytes);
      return (n) => {
        Atomics.store(w, SabWord.MODE, SAB_MODE_SLEEP);
        Atomics.store(w, SabWord.CLIENT_SLEEPING, 1);
        let sum = 0;
        try {
          for (let i = 0; i < n; i++) {
            const c = publish(msg, replyBytes);
            for (let seen = Atomics.load(w, SabWord.REPLIES); seen !== c; seen = Atomics.load(w, SabWord.REPLIES)) {
              if (Atomics.wait(w, SabWord.REPLIES, seen, STUCK_MS) === "timed-out") dead();
            }
            sum += data[0]!;
          }
        } finally {
          Atomics.store(w, SabWord.CLIENT_SLEEPING, 0);
        }
        return sum;
      };
    },
    async close() {
      Atomics.store(w, SabWord.SHUTDOWN, 1);
      Atomics.store(w, SabWord.CALLS, (calls + 1) | 0);
      Atomics.notify(w, SabWord.CALLS);
      const exited = once(worker, "exit");
      const timer = setTimeout(() => void worker.terminate(), 1000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---- a microtask hop ---------------------------------------------------------------------

/** Awaits a promise resolved from a queued microtask, `n` times: the event-loop cost any inproc call pays. */
export function microtaskHop(): AsyncBatch {
  let resolveNext: (() => void) | undefined;
  const fire = () => resolveNext!();
  const executor = (resolve: () => void) => {
    resolveNext = resolve;
    queueMicrotask(fire);
  };
  return async (n) => {
    for (let i = 0; i < n; i++) await new Promise<void>(executor);
    return n;
  };
}
