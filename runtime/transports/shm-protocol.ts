import type { MessagePort } from "node:worker_threads";
import type { MarshalPath } from "../call/service.js";
import { copyBytes, Prefix, type CopyLedger } from "../xdr/ledger.js";

/**
 * The shared-memory protocol between a client (`shm.ts`) and its server worker
 * (`shm-worker.ts`): one SharedArrayBuffer per binding, laid out as
 *
 *   control block (CONTROL_BYTES)  | slot 0 | slot 1 | … | slot n-1
 *   slot = header (SLOT_HEADER_BYTES: state, length, out-of-band flag, spare) | message area (slotBytes)
 *
 * All words are Int32. The control words and a slot's state are read and written with
 * Atomics; a slot's length and out-of-band flag are plain words, like its message: written
 * before the state that publishes them (a sequentially consistent store or compare-exchange)
 * and read after the state was seen, so they need no ordering of their own (each Atomics
 * store is a locked instruction, on the path of every call). A slot is LRPC's A-stack: the
 * client marshals a call into its message area, the server reads the call there and marshals
 * the reply over it. Who owns a slot is its state:
 *
 *   FREE (client) → CALL (published to the server) → SERVING (taken by the server)
 *                 → REPLY (published to the client) → FREE
 *
 * A call the client gives up on (timed out, aborted) is taken back: the client turns CALL
 * into WITHDRAWN or SERVING into CANCELLED with a compare-exchange, the server sees it
 * between calls, drops the call (its reply, if one ever comes, goes nowhere) and hands the
 * slot back as a REPLY the client discards. The server takes a call (CALL → SERVING) and
 * publishes its reply (SERVING → REPLY) with compare-exchanges too, so when both sides race
 * for one slot exactly one wins: a reply published first is delivered as usual, one
 * cancelled first is dropped. Either way the slot comes back once.
 *
 * Wake-ups: each side bumps a counter after publishing (CALLS, REPLIES) and calls
 * `Atomics.notify` only if the other side has raised its SLEEPING flag, so while both spin
 * no system call is made. A sleeper raises its flag, then waits on the counter value it read
 * *before* its last scan of the slots; the atomics are sequentially consistent, so either the
 * publisher sees the flag or the sleeper sees the new counter (no lost wake-up).
 */

export const CONTROL_BYTES = 64;
export const SLOT_HEADER_BYTES = 16;

/** Word indices in the control block. */
export const Control = {
  /** Bumped by the client after each call it publishes; the server waits on it. */
  CALLS: 0,
  /** 1 while the server may be sleeping on CALLS. */
  SERVER_SLEEPING: 1,
  /** Bumped by the server after each reply it publishes; the client waits on it. */
  REPLIES: 2,
  /** 1 while the client may be sleeping on REPLIES. */
  CLIENT_SLEEPING: 3,
  /** Set by the client when the binding closes. */
  SHUTDOWN: 4,
} as const;

/** Word offsets in a slot's header. */
export const SlotWord = { STATE: 0, LENGTH: 1, OUT_OF_BAND: 2 } as const;

export const SlotState = {
  FREE: 0,
  CALL: 1,
  SERVING: 2,
  REPLY: 3,
  /** Given up by the client before the server took the call (from CALL). */
  WITHDRAWN: 4,
  /** Given up by the client while the server was serving the call (from SERVING). */
  CANCELLED: 5,
} as const;

/** Sizes of one binding's shared memory. */
export interface ShmLayout {
  readonly slots: number;
  /** Bytes of one slot's message area (a multiple of 8). */
  readonly slotBytes: number;
  /** Bytes from one slot's header to the next. */
  readonly stride: number;
  readonly totalBytes: number;
}

export function shmLayout(slots: number, slotBytes: number): ShmLayout {
  const area = Math.ceil(slotBytes / 8) * 8;
  const stride = SLOT_HEADER_BYTES + area;
  return { slots, slotBytes: area, stride, totalBytes: CONTROL_BYTES + slots * stride };
}

/** Index (in Int32 words) of slot `i`'s header. */
export function slotWord(layout: ShmLayout, i: number): number {
  return (CONTROL_BYTES + i * layout.stride) >> 2;
}

/** The message area of slot `i`, and views of the messages in it. */
export class SlotMemory {
  /** The whole message area, as a byte view over the shared memory. */
  readonly area: Uint8Array;
  private readonly views = new Prefix();

  constructor(sab: SharedArrayBuffer, layout: ShmLayout, i: number) {
    this.area = new Uint8Array(sab, CONTROL_BYTES + i * layout.stride + SLOT_HEADER_BYTES, layout.slotBytes);
  }

  /**
   * The first `length` bytes of the area. The view of the last length is kept: a stream of
   * messages of one length (a procedure called again and again) is read through one array,
   * which a reader given again skips setting up.
   */
  message(length: number): Uint8Array {
    return this.views.get(this.area, length);
  }
}

/**
 * Where one side copies messages out of its slots (classic's wire copy): one buffer, reused
 * message after message, since classic decodes a copy of the message and keeps nothing of it.
 */
export class CopyOut {
  private buffer = new Uint8Array(0);
  private readonly views = new Prefix();

  /** `message`, copied out (counted in `received` as the wire copy). */
  take(message: Uint8Array, received: CopyLedger): Uint8Array {
    const length = message.length;
    if (this.buffer.length < length) this.buffer = new Uint8Array(Math.max(length, 2 * this.buffer.length, 4096));
    copyBytes(received, "wire", this.buffer, 0, message);
    return this.views.get(this.buffer, length);
  }
}

/**
 * The message in a slot, as the path that reads it needs it: read in place by a path that
 * reads lent memory (the XDR reader copies opaques out of shared memory rather than viewing
 * it); copied out by the transport into `out`, as a socket would, for classic (the wire
 * copy, counted in `received`).
 */
export function readSlot(slot: SlotMemory, length: number, path: MarshalPath | undefined, received: CopyLedger, out: CopyOut): Uint8Array {
  if (path === undefined || !path.lendable) return out.take(slot.message(length), received);
  return slot.message(length);
}

/**
 * What the client hands the worker (as `workerData`). `port` carries messages larger than a
 * slot (the fallback), pulled with `receiveMessageOnPort` by whoever finds a slot marked
 * out-of-band: neither side listens on it, so neither side's event loop is involved.
 */
export interface WorkerInit {
  readonly sab: SharedArrayBuffer;
  readonly slots: number;
  readonly slotBytes: number;
  readonly spinMicros: number;
  /** The URL of the user's module. */
  readonly module: string;
  readonly data: unknown;
  readonly port: MessagePort;
}

export function isWorkerInit(x: unknown): x is WorkerInit {
  if (typeof x !== "object" || x === null) return false;
  const o = x as Record<string, unknown>;
  return (
    o.sab instanceof SharedArrayBuffer &&
    typeof o.slots === "number" &&
    typeof o.slotBytes === "number" &&
    typeof o.spinMicros === "number" &&
    typeof o.module === "string" &&
    typeof o.port === "object" &&
    o.port !== null
  );
}

/** What the worker tells the client once, after running the user's module. */
export type WorkerReport = { readonly type: "ready" } | { readonly type: "failed"; readonly message: string; readonly stack?: string };

export function isWorkerReport(x: unknown): x is WorkerReport {
  if (typeof x !== "object" || x === null) return false;
  const o = x as Record<string, unknown>;
  return o.type === "ready" || (o.type === "failed" && typeof o.message === "string");
}

/** A message too large for its slot, sent over the port; the slot only signals it. */
export interface OutOfBand {
  readonly slot: number;
  readonly bytes: Uint8Array;
}

export function isOutOfBand(x: unknown): x is OutOfBand {
  if (typeof x !== "object" || x === null) return false;
  const o = x as Record<string, unknown>;
  return typeof o.slot === "number" && o.bytes instanceof Uint8Array;
}

/** `Atomics.waitAsync` (ES2024; Node ≥ 16), typed here because the project's lib is ES2022. */
type WaitAsyncResult =
  | { readonly async: false; readonly value: "not-equal" | "timed-out" }
  | { readonly async: true; readonly value: Promise<"ok" | "timed-out"> };
type WaitAsync = (array: Int32Array, index: number, value: number, timeout?: number) => WaitAsyncResult;

export const waitAsync: WaitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * Publishes `state` for slot word `at`, bumps `counter` and wakes the other side only if it
 * may sleep. Returns whether it had to wake it.
 */
export function publish(words: Int32Array, at: number, state: number, counter: number, sleeping: number): boolean {
  Atomics.store(words, at + SlotWord.STATE, state);
  return signal(words, counter, sleeping);
}

/** Looks at the shared word between reads of the clock: a read of the clock costs far more than a look. */
const looksPerClockRead = 64;

/**
 * Spins while `words[index]` is `seen`, for about `ms` milliseconds (counted after the first
 * 64 looks); returns whether it changed. The clock is read once per 64 looks, and not at all
 * when the change comes within the first 64, so a change is seen a look later, not a clock
 * read later (`performance.now()` costs about 40 ns here: on the critical path of every hand-off).
 */
export function spinWhile(words: Int32Array, index: number, seen: number, ms: number): boolean {
  for (let k = 0; k < looksPerClockRead; k++) if (Atomics.load(words, index) !== seen) return true;
  const deadline = performance.now() + ms;
  for (;;) {
    for (let k = 0; k < looksPerClockRead; k++) if (Atomics.load(words, index) !== seen) return true;
    if (performance.now() >= deadline) return Atomics.load(words, index) !== seen;
  }
}

/** Bumps `counter` and wakes the other side only if it may sleep; returns whether it had to. */
export function signal(words: Int32Array, counter: number, sleeping: number): boolean {
  Atomics.add(words, counter, 1);
  if (Atomics.load(words, sleeping) === 0) return false;
  Atomics.notify(words, counter);
  return true;
}

/**
 * The fallback for a message larger than its slot: one counted copy (the wire copy) into an
 * ArrayBuffer of its own, moved — not copied again — to the other side over `port`.
 */
export function postOutOfBand(port: MessagePort, slot: number, buffer: Uint8Array, end: number, ledger: CopyLedger | undefined): void {
  // Not sliceBytes: it may hand out a piece of a shared slab, and transferring that would detach the rest.
  const bytes = new Uint8Array(end);
  copyBytes(ledger, "wire", bytes, 0, buffer.subarray(0, end));
  port.postMessage({ slot, bytes }, [bytes.buffer]);
}

/**
 * How long to spin before sleeping, adapted to whether spinning pays. Spinning pays when the
 * other side is running: then a hand-off costs ~0.1 µs instead of a ~46 µs wake-up. It does
 * not when both threads share one core — an oversubscribed machine, where the spinner burns
 * the very time slice the other side needs, and a fixed 50 µs budget makes every call cost a
 * few budgets (measured here: ~130 µs against ~30 µs sleeping). So the budget is the
 * configured one while spins end in a hand-off; each spin that runs out halves it; below 1/32
 * of the configured budget it is zero, except for probes with twice the configured budget
 * (long enough to cover the other side's wake-up), one wait in 16 — one in 32, 64 … 256 while
 * probes keep failing — so spinning comes back soon after it pays again, and costs little
 * while it does not.
 */
export class SpinBudget {
  private current: number;
  private probeEvery = 16;
  private sinceProbe = 0;
  private probing = false;

  /** `max` in milliseconds. */
  constructor(private readonly max: number) {
    this.current = max;
  }

  /** The budget for the next wait, in milliseconds. */
  next(): number {
    this.probing = false;
    if (this.current * 32 >= this.max) return this.current;
    if (++this.sinceProbe < this.probeEvery) return 0;
    this.sinceProbe = 0;
    this.probing = true;
    return 2 * this.max;
  }

  /** The wait ended while spinning. */
  hit(): void {
    this.current = this.max;
    this.probeEvery = 16;
  }

  /** Spinning ran out and the wait went to sleep. */
  miss(): void {
    this.current /= 2;
    if (this.probing) this.probeEvery = Math.min(256, this.probeEvery * 2);
  }
}
