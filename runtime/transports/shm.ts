import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from "node:worker_threads";
import type { MarshalPath, ServiceDescription } from "../call/service.js";
import { RpcError } from "../rpc/errors.js";
import { acceptedReplySize, AUTH_NONE, MAX_AUTH_BYTES } from "../rpc/message.js";
import type { AcquireBuffer, ClientTransport, SendMessage } from "../transport/types.js";
import { copyBytes, CopyLedger, Prefix } from "../xdr/ledger.js";
import {
  Control,
  isOutOfBand,
  isWorkerReport,
  postOutOfBand,
  CopyOut,
  publish,
  readSlot,
  shmLayout,
  signal,
  SlotMemory,
  SlotState,
  slotWord,
  SlotWord,
  SpinBudget,
  spinWhile,
  waitAsync,
  type ShmLayout,
  type WorkerInit,
} from "./shm-protocol.js";

/**
 * The `shm` transport: the server runs in a worker thread, started from a module the user
 * names (its default export registers handlers on the runtime Server it is given), and the
 * two threads talk through one SharedArrayBuffer per binding — LRPC's A-stacks.
 *
 * **Slots.** `slots` (default 8) message areas, each sized from the static layout of the
 * services' procedures (`args.max`, `result.max` plus the largest RPC header; at least 4 KiB),
 * each with a state word (free / call / serving / reply), a length word and an out-of-band
 * flag (layout in shm-protocol.ts). A slot is one outstanding call; more calls queue in the
 * client, in the runtime's send buffer, and are copied into a slot when one frees.
 *
 * **Copy once.** `acquire(path)` lends the free slot's message area to a marshal path that
 * writes into lent memory (synthesized, descriptor), so the call is marshaled straight into
 * shared memory (one pass) and the worker's reply sink lends the same area back for the
 * results. Classic keeps its separate "kernel buffer": the runtime marshals into its own
 * buffer and the transport copies that into the slot, counted as the `wire` copy (stub +
 * runtime + wire).
 *
 * **Receiving.** The slot is reused as soon as the call is over, and the other thread may
 * write it at any time, so nothing decoded may refer to it afterwards:
 * - synthesized: decoded in place, straight from the slot (one pass; opaques are sliced out
 *   by the decoder);
 * - descriptor: decoded in place too. Its decoders ask for opaque data as views into the
 *   message, but the XDR reader never hands out views of shared memory: it copies each
 *   opaque out instead (one runtime copy of the opaque bytes, none for a message without
 *   any, such as Null's). A message larger than a slot (below) is a private buffer, and
 *   there the views are views;
 * - classic: copied out of the slot (the `wire` copy), then the runtime's and the stub's
 *   passes, as over a socket.
 * So per direction: classic 3, synthesized 1, descriptor 1 (the gather) plus one for the
 * opaques it receives.
 *
 * **Spin, then sleep.** After publishing a call the client spins on the reply counter for
 * `spinMicros` (default 50 µs), then sleeps in `Atomics.waitAsync`, so its event loop is free
 * while the server works. The worker, once idle, spins for the same budget, then blocks in
 * `Atomics.wait`. 50 µs is the cost of one sleeping hand-off here (≈46 µs against ≈0.1 µs
 * spinning): spinning for as long as sleeping would cost, and then sleeping, never pays more
 * than twice the best choice in hindsight (the ski-rental bound), and a Null() ping-pong
 * never sleeps at all. While the client spins its event loop is blocked, so the budget is
 * kept small, the spin runs after the current synchronous burst of calls (in a microtask:
 * 32 calls made in one tick are all published before the client spins), and a long chain
 * of spinning polls yields to the event loop every few milliseconds. `Atomics.notify` is
 * called only when the other side has raised its sleeping flag: the spinning fast path makes
 * no system call. `spinMicros: 0` never spins.
 *
 * The budget adapts (SpinBudget in shm-protocol.ts): each spin that runs out halves it, a
 * spin that ends in a hand-off restores it, and once it is gone one wait in 16 probes with
 * twice the budget. On a machine with a core for each side, spins end in hand-offs and the
 * budget stays whole. On an oversubscribed one the two threads effectively share a core:
 * the spinner burns the time slice the other side needs, each side's spin then runs out
 * while the other sleeps, call after call, and a fixed 50 µs budget measured ~130 µs per
 * Null() here against ~30 µs sleeping. Backing off turns that into sleeping.
 *
 * **Larger than a slot.** An unbounded argument or result that does not fit its slot still
 * works: the writer moves it to an ordinary buffer (the lent slot is not used), the transport
 * copies it once (counted `wire`) into a fresh ArrayBuffer, transfers that over a
 * MessagePort, and publishes the slot marked out-of-band with no bytes in it. The receiver,
 * seeing the mark, pulls the message synchronously with `receiveMessageOnPort` (no event loop
 * involved on either side) and decodes the private buffer in place. Correctness over speed:
 * one extra copy and a port message per large message.
 *
 * **Calls given up on.** A call that times out or is aborted while it waits for a slot
 * leaves the queue. One in a slot is taken back (shm-protocol.ts): the worker, between
 * calls, drops it — a reply that comes later goes nowhere — and hands the slot back, so a
 * handler that never answers costs a slot only until its caller gives up. A worker blocked
 * in a synchronous loop hands nothing back until it returns; a call that then finds no slot
 * until its timeout fails TIMEOUT with a message naming the slots still held and since when.
 *
 * **The server's options.** The module may export `serverOptions` (verifiers, authenticate,
 * onError, onServe) for the Server its default export is given.
 *
 * **Lifetime.** `channel.close()` terminates the worker. A worker that dies — an exception
 * at its top level or in a handler's timer, `process.exit` in it — closes the transport, and
 * the channel releases every waiting caller with RpcError CLOSED. The worker keeps the
 * process alive while the channel is open, as a socket would.
 *
 * **The worker entry** is JavaScript at run time, given by the caller (the runtime's
 * `connect`, which knows the module that builds the worker's server).
 */

export interface ShmConnectOptions {
  readonly transport: "shm";
  /** A module the runtime runs in a worker thread; its default export registers handlers on the server it is given. */
  readonly module: string | URL;
  /** Passed to the module's default export. */
  readonly data?: unknown;
  /** How long each side spins on the shared slot before it sleeps, in microseconds (default 50). */
  readonly spinMicros?: number;
  /** Argument/result slots (calls that can be outstanding at once; default 8). */
  readonly slots?: number;
  /** Bytes per slot (default: enough for the largest bounded message of the services, at least 4 KiB). */
  readonly slotBytes?: number;
  /** The services the worker serves: they size the slots from their static layout. */
  readonly services?: readonly ServiceDescription[];
  /** Called with the worker thread once its module has registered its handlers (for monitoring). */
  readonly onWorker?: (worker: Worker) => void;
}

export const defaultSlots = 8;
export const defaultSpinMicros = 50;
const minSlotBytes = 4096;
/** Static maxima beyond this do not grow the slots: such messages take the fallback. */
const maxAutoSlotBytes = 1 << 20;
/** The largest call header: xid … proc (24 bytes), AUTH_SYS credentials at their largest, an AUTH_NONE verifier. */
const callHeaderMax = 24 + 8 + MAX_AUTH_BYTES + 8;
/** The largest accepted reply header (PROG_MISMATCH adds low and high). */
const replyHeaderMax = acceptedReplySize(AUTH_NONE) + 8;
/** A synchronous wait sleeps at most this long at a time, then looks at the transport again. */
const syncSliceMs = 1000;
/** Longest stretch of back-to-back spinning polls before the client lets its event loop run. */
const BUSY_SLICE_MS = 2;

/** Bytes per slot for `services`: their largest bounded call or reply, at least 4 KiB. */
export function slotBytesFor(services: readonly ServiceDescription[]): number {
  let need = minSlotBytes;
  for (const s of services) {
    for (const p of Object.values(s.procedures)) {
      if (p.args.max !== undefined) need = Math.max(need, callHeaderMax + p.args.max);
      if (p.result.max !== undefined) need = Math.max(need, replyHeaderMax + p.result.max);
    }
  }
  return Math.min(need, Math.max(maxAutoSlotBytes, minSlotBytes));
}

/** A module named by URL, or by a path (relative to the working directory). */
function moduleHref(module: string | URL): string {
  if (module instanceof URL) return module.href;
  return /^[a-z][a-z0-9+.-]+:/i.test(module) ? module : pathToFileURL(resolve(module)).href;
}

/** The xid that opens a message (RFC 5531 §9), read from plain or shared memory. */
function xidOf(message: Uint8Array, at: number): number {
  return ((message[at]! << 24) | (message[at + 1]! << 16) | (message[at + 2]! << 8) | message[at + 3]!) >>> 0;
}

function check(name: string, value: number, min: number, max: number): number {
  if (!(Number.isInteger(value) && value >= min && value <= max))
    throw new RangeError(`shm: ${name} must be an integer in [${min}, ${max}], got ${value}`);
  return value;
}

/** Connects through a worker thread running `entry` (a JavaScript file that serves the slots). */
export async function connectShm(options: ShmConnectOptions, entry: URL): Promise<ClientTransport> {
  if (!existsSync(entry)) throw new Error(`shm: the worker entry ${fileURLToPath(entry)} is missing (build the runtime: npm run build)`);
  const slots = check("slots", options.slots ?? defaultSlots, 1, 4096);
  const slotBytes = check("slotBytes", options.slotBytes ?? slotBytesFor(options.services ?? []), 64, 1 << 30);
  const spinMicros = options.spinMicros ?? defaultSpinMicros;
  if (!(spinMicros >= 0 && spinMicros <= 1e6)) throw new RangeError(`shm: spinMicros must be in [0, 1e6], got ${spinMicros}`);
  const layout = shmLayout(slots, slotBytes);
  const sab = new SharedArrayBuffer(layout.totalBytes);
  const { port1, port2 } = new MessageChannel();
  const href = moduleHref(options.module);
  const init: WorkerInit = { sab, slots, slotBytes: layout.slotBytes, spinMicros, module: href, data: options.data, port: port2 };
  let worker: Worker;
  try {
    worker = new Worker(entry, { workerData: init, transferList: [port2] });
  } catch (e) {
    port1.close();
    throw e;
  }
  try {
    await started(worker, href);
  } catch (e) {
    port1.close();
    await worker.terminate();
    throw e;
  }
  const transport = new ShmTransport(worker, sab, layout, spinMicros, port1);
  options.onWorker?.(worker);
  return transport;
}

/** Resolves once the worker's module has registered its handlers; rejects if it failed or died first. */
function started(worker: Worker, href: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | undefined) => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onMessage = (m: unknown) => {
      if (!isWorkerReport(m)) return;
      if (m.type === "ready") done(undefined);
      else done(new Error(`shm: the server module ${href} failed: ${m.message}`));
    };
    const onError = (e: Error) => done(new Error(`shm: the server module ${href} failed: ${e.message}`, { cause: e }));
    const onExit = (code: number) => done(new Error(`shm: the server worker exited (code ${code}) before its module was ready`));
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
  });
}

/** A call waiting for a slot, in the runtime's buffer. */
interface Queued {
  readonly buffer: Uint8Array;
  readonly end: number;
  readonly ledger: CopyLedger | undefined;
  readonly release: (b: Uint8Array) => void;
  readonly path: MarshalPath | undefined;
}

class ShmTransport implements ClientTransport {
  readonly kind = "shm" as const;
  readonly headerRoom = 0;
  readonly datagram = false;
  /** A message is marshaled into a slot, or copied into one: never read out of the sender's buffer. */
  readonly readsInPlace = false;
  onMessage: ClientTransport["onMessage"] = () => false;
  onClose: ClientTransport["onClose"] = () => {};

  private readonly words: Int32Array;
  private readonly memory: SlotMemory[] = [];
  private readonly at: number[] = [];
  /** Free slots (a stack: the most recently freed slot is warm in cache). */
  private readonly free: number[] = [];
  /** Per slot in flight: the path it was marshaled by and the call's ledger. */
  private readonly paths: (MarshalPath | undefined)[];
  private readonly ledgers: (CopyLedger | undefined)[];
  private readonly queue: Queued[] = [];
  private readonly early = new Map<number, Uint8Array>();
  /** Per slot: the channel gave up on its call, which the worker has not handed back yet (since `abandonedAt`). */
  private readonly abandoned: boolean[];
  private readonly abandonedAt: number[];
  /** The xids of calls sent out of band, by slot (their slot holds no message to read the xid from). */
  private readonly oobXids = new Map<number, number>();
  private readonly spin: SpinBudget;
  /** The path of the message being marshaled (told by `acquire`, used by the `send` that follows). */
  private marshaling: MarshalPath | undefined;
  /** The copies made to deliver the current reply, and where replies are copied out of slots. */
  private readonly received = new CopyLedger();
  private readonly copyOut = new CopyOut();
  /** Views of calls marshaled outside their slot (classic's runtime buffer, queued calls), to copy in. */
  private readonly sent = new Prefix();
  private busy = 0;
  private pollScheduled = false;
  private sleeping = false;
  private chainStart = 0;
  private closed = false;
  private closing = false;
  private failure: Error | undefined;

  constructor(
    private readonly worker: Worker,
    sab: SharedArrayBuffer,
    private readonly layout: ShmLayout,
    spinMicros: number,
    private readonly port: MessagePort,
  ) {
    this.words = new Int32Array(sab);
    this.spin = new SpinBudget(spinMicros / 1000);
    for (let i = 0; i < layout.slots; i++) {
      this.memory.push(new SlotMemory(sab, layout, i));
      this.at.push(slotWord(layout, i));
      this.free.push(layout.slots - 1 - i);
    }
    this.paths = new Array<MarshalPath | undefined>(layout.slots).fill(undefined);
    this.ledgers = new Array<CopyLedger | undefined>(layout.slots).fill(undefined);
    this.abandoned = new Array<boolean>(layout.slots).fill(false);
    this.abandonedAt = new Array<number>(layout.slots).fill(0);
    port.unref();
    worker.on("error", (e) => {
      this.failure ??= e;
    });
    worker.on("exit", (code) => this.exited(code));
  }

  /** Lends the next free slot to a path that writes into lent memory, unless calls are queued. */
  readonly acquire: AcquireBuffer = (path) => {
    this.marshaling = path;
    if (!path.lendable || this.closed || this.queue.length > 0) return undefined;
    const i = this.free[this.free.length - 1];
    return i === undefined ? undefined : this.memory[i]!.area;
  };

  readonly send: SendMessage = (buffer, end, ledger, release) => {
    const path = this.marshaling;
    this.marshaling = undefined;
    if (this.closed) {
      release(buffer);
      return;
    }
    const free = this.free;
    const top = free[free.length - 1];
    if (top !== undefined && buffer === this.memory[top]!.area) {
      // Marshaled straight into the lent slot: nothing to copy.
      free.pop();
      this.launch(top, end, 0, path, ledger);
      return;
    }
    if (top === undefined || this.queue.length > 0) {
      this.queue.push({ buffer, end, ledger, release, path });
      return;
    }
    free.pop();
    this.launch(top, end, this.place(top, buffer, end, ledger, release), path, ledger);
  };

  /** Whether a call made now gets a slot at once (a synchronous exchange may start). */
  syncReady(): boolean {
    return !this.closed && this.queue.length === 0 && this.free.length > 0;
  }

  /**
   * One synchronous call's whole exchange (RpcChannel.callSync, for a call nobody observes;
   * only when `syncReady()`): publishes the call marshaled into `buffer` — the slot `acquire`
   * lent, or a buffer of the runtime's, copied in — then waits on that slot alone, spinning,
   * then sleeping in `Atomics.wait`, and hands back the reply as the path reads it. No
   * registry of calls, no scan of the other slots (their replies wait for the poll) and no
   * clock read while the reply comes within the first looks. Returns undefined if no reply
   * came within `timeoutMs` (counted from when it first stops spinning: late by at most the
   * spin budget); the slot is then taken back, as for an abandoned call.
   */
  exchangeSync(buffer: Uint8Array, end: number, release: (b: Uint8Array) => void, path: MarshalPath, timeoutMs: number): Uint8Array | undefined {
    const i = this.free.pop()!;
    const lent = buffer === this.memory[i]!.area;
    const outOfBand = lent ? 0 : this.place(i, buffer, end, undefined, release);
    const words = this.words;
    const w = this.at[i]!;
    let seen = Atomics.load(words, Control.REPLIES);
    this.publishCall(i, end, outOfBand, path, undefined);
    let deadline = 0;
    while (Atomics.load(words, w + SlotWord.STATE) !== SlotState.REPLY) {
      if (spinWhile(words, Control.REPLIES, seen, this.spin.next())) {
        this.spin.hit();
        seen = Atomics.load(words, Control.REPLIES);
        continue;
      }
      this.spin.miss();
      const t = Date.now();
      if (deadline === 0) deadline = t + timeoutMs;
      if (t >= deadline || this.closed) {
        this.takeBack(i);
        this.schedulePoll(); // whoever polls collects the slot when the worker hands it back
        return undefined;
      }
      this.sleepSync(seen, deadline - t);
      seen = Atomics.load(words, Control.REPLIES);
    }
    // Decoded before anything else can marshal into the slot: the caller reads the reply at once.
    const message = this.takeReply(i, words[w + SlotWord.OUT_OF_BAND]! !== 0, path);
    this.free.push(i);
    if (message === undefined) throw new RpcError("CLOSED", `the shm binding failed: ${this.failure?.message ?? "its server worker is gone"}`);
    return message;
  }

  /**
   * The channel gave up on call `xid`. Queued, it leaves the queue. In a slot, the slot is
   * taken back with a compare-exchange (CALL → WITHDRAWN, SERVING → CANCELLED) and the worker
   * is woken to hand it back; if the reply won the race, it is collected and dropped. Returns,
   * for a call that never got a slot, why.
   */
  abandon(xid: number): string | undefined {
    if (this.closed) return undefined;
    const queue = this.queue;
    for (let q = 0; q < queue.length; q++) {
      const { buffer, release } = queue[q]!;
      if (xidOf(buffer, 0) !== xid) continue;
      queue.splice(q, 1);
      release(buffer);
      return this.held();
    }
    const words = this.words;
    for (let i = 0; i < this.layout.slots; i++) {
      if (this.abandoned[i] || Atomics.load(words, this.at[i]! + SlotWord.STATE) === SlotState.FREE) continue;
      // The call's xid opens its message; a reply being written over it opens with the same xid.
      if (this.oobXids.get(i) !== xid && xidOf(this.memory[i]!.area, 0) !== xid) continue;
      this.takeBack(i);
      return undefined;
    }
    return undefined;
  }

  /**
   * Takes back slot `i`, whose call was given up on, with a compare-exchange (CALL →
   * WITHDRAWN, SERVING → CANCELLED), and wakes the worker to hand it back; a reply already
   * published (REPLY) is collected as usual, and dropped.
   */
  private takeBack(i: number): void {
    const words = this.words;
    const w = this.at[i]! + SlotWord.STATE;
    let state = Atomics.compareExchange(words, w, SlotState.CALL, SlotState.WITHDRAWN);
    if (state === SlotState.SERVING) state = Atomics.compareExchange(words, w, SlotState.SERVING, SlotState.CANCELLED);
    this.abandoned[i] = true;
    this.abandonedAt[i] = performance.now();
    if (state !== SlotState.REPLY) signal(words, Control.CALLS, Control.SERVER_SLEEPING);
  }

  /**
   * A synchronous caller's wait (RpcChannel.callSync): collects every reply as it is
   * published — the caller's, and those of asynchronous calls, whose slots a queued call may
   * need — spinning for the budget, then sleeping in `Atomics.wait` on the reply counter. The
   * worker wakes a sleeping client (the flag), so a blocked thread wakes at once. A worker
   * that dies meanwhile is noticed at the deadline: its exit event needs the event loop.
   */
  waitSync(done: () => boolean, deadline: number): boolean {
    const words = this.words;
    for (;;) {
      const seen = Atomics.load(words, Control.REPLIES);
      this.collect();
      if (done()) return true;
      if (this.closed) return false;
      if (spinWhile(words, Control.REPLIES, seen, this.spin.next())) {
        this.spin.hit();
        continue;
      }
      this.spin.miss();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      this.sleepSync(seen, left);
    }
  }

  /** Blocks this thread until the reply counter moves from `seen`, for at most `ms` (and a slice). */
  private sleepSync(seen: number, ms: number): void {
    const words = this.words;
    Atomics.store(words, Control.CLIENT_SLEEPING, 1);
    Atomics.wait(words, Control.REPLIES, seen, Math.min(ms, syncSliceMs));
    // An asynchronous waiter may still be registered: the flag stays up for it.
    if (!this.sleeping) Atomics.store(words, Control.CLIENT_SLEEPING, 0);
  }

  /** Why a call found no slot: who holds them. */
  private held(): string {
    const now = performance.now();
    const stuck: string[] = [];
    for (let i = 0; i < this.layout.slots; i++) {
      if (this.abandoned[i]) stuck.push(`${i} (given up ${Math.round(now - this.abandonedAt[i]!)} ms ago)`);
    }
    const serving = this.layout.slots - this.free.length - stuck.length;
    const parts = [`it never got one of the ${this.layout.slots} shm slots`];
    if (stuck.length > 0) {
      parts.push(
        `slot${stuck.length > 1 ? "s" : ""} ${stuck.join(", ")} still held for calls given up on, which the server worker has not handed back (is a handler blocked in a synchronous loop?)`,
      );
    }
    if (serving > 0) parts.push(`${serving} slot${serving > 1 ? "s" : ""} held by calls still being served`);
    return parts.join("; ");
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closing = true;
      this.shutdown();
    }
    await this.worker.terminate();
  }

  /**
   * Copies a message marshaled elsewhere into slot `i` (the wire copy), or sends it aside if
   * it is larger; returns the slot's out-of-band flag.
   */
  private place(i: number, buffer: Uint8Array, end: number, ledger: CopyLedger | undefined, release: (b: Uint8Array) => void): number {
    const view = this.memory[i]!.area;
    let outOfBand = 0;
    if (end <= view.length) copyBytes(ledger, "wire", view, 0, this.sent.get(buffer, end));
    else {
      this.oobXids.set(i, xidOf(buffer, 0));
      postOutOfBand(this.port, i, buffer, end, ledger);
      outOfBand = 1;
    }
    release(buffer);
    return outOfBand;
  }

  /** Publishes the call in slot `i` and makes sure someone polls for its reply. */
  private launch(i: number, end: number, outOfBand: number, path: MarshalPath | undefined, ledger: CopyLedger | undefined): void {
    this.publishCall(i, end, outOfBand, path, ledger);
    this.schedulePoll();
  }

  private publishCall(i: number, end: number, outOfBand: number, path: MarshalPath | undefined, ledger: CopyLedger | undefined): void {
    const words = this.words;
    const w = this.at[i]!;
    this.paths[i] = path;
    this.ledgers[i] = ledger;
    this.busy++;
    words[w + SlotWord.LENGTH] = end;
    words[w + SlotWord.OUT_OF_BAND] = outOfBand;
    publish(words, w, SlotState.CALL, Control.CALLS, Control.SERVER_SLEEPING);
  }

  /**
   * Runs after the current synchronous burst (a microtask), or after the event loop had a turn
   * when polls have chained for a while: collects replies, else spins, else sleeps.
   */
  private readonly poll = (): void => {
    this.pollScheduled = false;
    if (this.closed || this.busy === 0) {
      this.chainStart = 0;
      return;
    }
    const words = this.words;
    let seen = Atomics.load(words, Control.REPLIES);
    if (this.collect() === 0) {
      const deadline = performance.now() + this.spin.next();
      for (;;) {
        if (!spinWhile(words, Control.REPLIES, seen, deadline - performance.now())) {
          this.spin.miss();
          this.sleep(seen);
          return;
        }
        seen = Atomics.load(words, Control.REPLIES);
        if (this.collect() > 0) break;
      }
      this.spin.hit();
    }
    if (this.busy > 0) this.schedulePoll();
    else this.chainStart = 0;
  };

  private readonly pollLater = (): void => {
    this.chainStart = 0;
    this.poll();
  };

  private schedulePoll(): void {
    if (this.pollScheduled) return;
    this.pollScheduled = true;
    const t = performance.now();
    if (this.chainStart === 0) this.chainStart = t;
    if (t - this.chainStart > BUSY_SLICE_MS) setImmediate(this.pollLater);
    else queueMicrotask(this.poll);
  }

  /** Sleeps on the reply counter (last read as `seen`) without blocking the event loop. */
  private sleep(seen: number): void {
    this.chainStart = 0;
    if (this.sleeping) return; // a waiter is already registered, and the server will notify it
    const words = this.words;
    Atomics.store(words, Control.CLIENT_SLEEPING, 1);
    const r = waitAsync(words, Control.REPLIES, seen);
    if (!r.async) {
      Atomics.store(words, Control.CLIENT_SLEEPING, 0);
      this.schedulePoll();
      return;
    }
    this.sleeping = true;
    void r.value.then(this.wake);
  }

  private readonly wake = (): void => {
    this.sleeping = false;
    Atomics.store(this.words, Control.CLIENT_SLEEPING, 0);
    if (!this.closed) this.schedulePoll();
  };

  /** Delivers every reply published to the client; returns how many. */
  private collect(): number {
    let n = 0;
    for (let i = 0; i < this.layout.slots; i++) {
      if (Atomics.load(this.words, this.at[i]! + SlotWord.STATE) !== SlotState.REPLY) continue;
      n++;
      this.deliver(i);
    }
    return n;
  }

  private deliver(i: number): void {
    const words = this.words;
    const w = this.at[i]!;
    const outOfBand = words[w + SlotWord.OUT_OF_BAND]! !== 0;
    if (this.abandoned[i]) {
      this.reclaim(i, outOfBand);
      return;
    }
    const message = this.takeReply(i, outOfBand, this.paths[i]);
    if (message === undefined) return;
    try {
      this.onMessage(message, this.received);
    } finally {
      this.free.push(i);
      this.pump();
    }
  }

  /**
   * The reply in slot `i` (published to the client), as `path` reads it, its copies counted
   * in `received`; the slot is free again (the worker never touches a free slot). Undefined
   * if its out-of-band message never came (the binding failed).
   */
  private takeReply(i: number, outOfBand: boolean, path: MarshalPath | undefined): Uint8Array | undefined {
    const words = this.words;
    const w = this.at[i]!;
    const length = words[w + SlotWord.LENGTH]!;
    this.ledgers[i] = undefined;
    // A plain store: the worker never acts on a slot that is not CALL, WITHDRAWN or CANCELLED,
    // and the store that publishes the slot's next call is sequentially consistent.
    words[w + SlotWord.STATE] = SlotState.FREE;
    this.busy--;
    this.received.reset();
    // Out of band, the message is a private buffer already.
    return outOfBand ? this.takeOutOfBand(i) : readSlot(this.memory[i]!, length, path, this.received, this.copyOut);
  }

  /** Slot `i`, handed back after its call was given up on: whatever reply it holds is dropped. */
  private reclaim(i: number, outOfBand: boolean): void {
    this.abandoned[i] = false;
    this.ledgers[i] = undefined;
    if (this.oobXids.size !== 0) this.oobXids.delete(i);
    if (outOfBand && this.takeOutOfBand(i) === undefined) return; // the binding failed
    Atomics.store(this.words, this.at[i]! + SlotWord.STATE, SlotState.FREE);
    this.busy--;
    this.free.push(i);
    this.pump();
  }

  /** Moves queued calls into slots as they free. */
  private pump(): void {
    const queue = this.queue;
    while (queue.length > 0 && this.free.length > 0 && !this.closed) {
      const q = queue.shift()!;
      const i = this.free.pop()!;
      this.launch(i, q.end, this.place(i, q.buffer, q.end, q.ledger, q.release), q.path, q.ledger);
    }
  }

  /** The out-of-band message of slot `i`; undefined (and the binding failed) if it never came. */
  private takeOutOfBand(i: number): Uint8Array | undefined {
    const ready = this.early.get(i);
    if (ready !== undefined) {
      this.early.delete(i);
      return ready;
    }
    // The worker posts before it publishes the slot, so the message is already queued.
    for (;;) {
      const m = receiveMessageOnPort(this.port);
      if (m === undefined) {
        this.failure ??= new Error("shm: a reply is marked out-of-band but no message came");
        void this.worker.terminate(); // its exit releases every waiter
        return undefined;
      }
      const msg: unknown = m.message;
      if (!isOutOfBand(msg)) continue;
      if (msg.slot === i) return msg.bytes;
      this.early.set(msg.slot, msg.bytes);
    }
  }

  /** Stops using the shared memory: wakes the worker to its shutdown and our own sleeper, drops queued calls. */
  private shutdown(): void {
    this.closed = true;
    const words = this.words;
    Atomics.store(words, Control.SHUTDOWN, 1);
    Atomics.notify(words, Control.CALLS);
    Atomics.notify(words, Control.REPLIES);
    for (const q of this.queue.splice(0)) q.release(q.buffer);
    this.port.close();
  }

  private exited(code: number): void {
    if (this.closing) {
      this.onClose(undefined);
      return;
    }
    if (!this.closed) this.shutdown();
    this.onClose(this.failure ?? new Error(`the shm server worker exited (code ${code})`));
  }
}
