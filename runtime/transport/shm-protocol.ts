import type { MessagePort } from "node:worker_threads";

/**
 * The shared-memory protocol between a client (`shm.ts`) and its server worker
 * (`shm-worker.ts`): one SharedArrayBuffer per binding, laid out as
 *
 *   control block (CONTROL_BYTES)  | slot 0 | slot 1 | … | slot n-1
 *   slot = header (SLOT_HEADER_BYTES: state, length, out-of-band flag, spare) | message area (slotBytes)
 *
 * All words are Int32 and are read and written with Atomics. A slot is LRPC's A-stack: the
 * client marshals a call into its message area, the server reads the call there and marshals
 * the reply over it. Who owns a slot is its state:
 *
 *   FREE (client) → CALL (published to the server) → SERVING (taken by the server)
 *                 → REPLY (published to the client) → FREE
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

export const SlotState = { FREE: 0, CALL: 1, SERVING: 2, REPLY: 3 } as const;

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

/** The message area of slot `i`, as a byte view over the shared memory. */
export function slotView(sab: SharedArrayBuffer, layout: ShmLayout, i: number): Uint8Array {
  return new Uint8Array(sab, CONTROL_BYTES + i * layout.stride + SLOT_HEADER_BYTES, layout.slotBytes);
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
type WaitAsyncResult = { readonly async: false; readonly value: "not-equal" | "timed-out" } | { readonly async: true; readonly value: Promise<"ok" | "timed-out"> };
type WaitAsync = (array: Int32Array, index: number, value: number, timeout?: number) => WaitAsyncResult;

export const waitAsync: WaitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** Publishes `state` for slot word `at`, bumps `counter` and wakes the other side only if it may sleep. */
export function publish(words: Int32Array, at: number, state: number, counter: number, sleeping: number): void {
  Atomics.store(words, at + SlotWord.STATE, state);
  Atomics.add(words, counter, 1);
  if (Atomics.load(words, sleeping) !== 0) Atomics.notify(words, counter);
}

/** Sends `bytes` (a private copy) for slot `slot` over the port, moving its memory rather than copying it again. */
export function postOutOfBand(port: MessagePort, slot: number, bytes: Uint8Array): void {
  const buffer = bytes.buffer;
  port.postMessage({ slot, bytes }, buffer instanceof ArrayBuffer ? [buffer] : []);
}

/**
 * How long to spin before sleeping, adapted to how spinning has been paying off. The budget
 * is the configured one while spins end in a hand-off; each spin that runs out halves it, so
 * on an oversubscribed machine — where a spinning thread takes the core the other side needs,
 * and a spin "wait" can cost more than sleeping — it falls to nothing within a few calls.
 * Below 1/32 of the configured budget it is zero, except that one wait in 16 probes with the
 * full budget, so that spinning comes back as soon as it pays again.
 */
export class SpinBudget {
  private current: number;
  private probe = 0;

  /** `max` in milliseconds. */
  constructor(private readonly max: number) {
    this.current = max;
  }

  /** The budget for the next wait, in milliseconds. */
  next(): number {
    if (this.current * 32 >= this.max) return this.current;
    return (++this.probe & 15) === 0 ? this.max : 0;
  }

  /** The wait ended while spinning. */
  hit(): void {
    this.current = this.max;
  }

  /** Spinning ran out and the wait went to sleep. */
  miss(): void {
    this.current /= 2;
  }
}
