import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { copyBytes, type CopyLedger } from "../ledger.js";
import type { Mode } from "../marshal.js";
import { Server, type ServerOptions } from "../server.js";
import type { ReplySink } from "./types.js";
import {
  Control,
  isOutOfBand,
  isWorkerInit,
  postOutOfBand,
  publish,
  shmLayout,
  signal,
  SlotState,
  slotView,
  slotWord,
  SlotWord,
  SpinBudget,
  waitAsync,
  type WorkerReport,
} from "./shm-protocol.js";

/**
 * The server side of the `shm` transport, run in a worker thread (see shm.ts): it loads the
 * user's module, lets its default export register handlers on a runtime Server, then serves
 * the binding's slots. Between calls it spins for the (adaptive) budget, then sleeps in
 * `Atomics.wait` (blocking is fine here: the thread has nothing else to do). While an asynchronous handler
 * is outstanding it must not block, or the promise it waits on could never settle: then it
 * spins politely (yielding to its event loop between polls) and sleeps in `Atomics.waitAsync`.
 *
 * A call the client gives up on (shm-protocol.ts) is dropped between calls: the slot's sinks
 * die — a late reply is neither marshaled into the slot, which may hold another call by
 * then, nor published — and the slot goes back to the client.
 *
 * The module may also export `serverOptions` (ServerOptions: verifiers, authenticate, onError,
 * onServe) for the Server it is given.
 */

/** Longest blocking sleep before the worker lets its event loop run (user timers, hooks). */
const IDLE_SLICE_MS = 50;
/** Longest stretch of back-to-back calls before the worker lets its event loop run. */
const BUSY_SLICE_MS = 10;

const init: unknown = workerData;
if (!isWorkerInit(init) || parentPort === null) throw new Error("shm-worker: not started by the shm transport");
const port = parentPort;
const { sab, data } = init;
const layout = shmLayout(init.slots, init.slotBytes);
const words = new Int32Array(sab);
const spinMs = init.spinMicros / 1000;
const spin = new SpinBudget(spinMs);
const oob = init.port;
oob.unref();

let server = new Server();
const views: Uint8Array[] = [];
const headers: DataView[] = [];
const at: number[] = [];
for (let i = 0; i < layout.slots; i++) {
  const v = slotView(sab, layout, i);
  views.push(v);
  headers.push(new DataView(sab, v.byteOffset, 24));
  at.push(slotWord(layout, i));
}

/** Calls dispatched whose reply is not yet published (asynchronous handlers). */
let serving = 0;
/** Out-of-band calls pulled from the port ahead of their slot. */
const early = new Map<number, Uint8Array>();

/** Whether a call's sinks may still touch its slot: false once the client has given up on the call. */
interface Lease {
  live: boolean;
}

/** Publishes the reply of slot `i`, copying it into the slot (or sending it aside) if it is not there yet. */
function reply(i: number, lease: Lease, buffer: Uint8Array, end: number, ledger: CopyLedger | undefined, release: (b: Uint8Array) => void): void {
  if (!lease.live) {
    release(buffer); // the client gave up on this call and has the slot back
    return;
  }
  const w = at[i]!;
  const state = Atomics.load(words, w + SlotWord.STATE);
  if (state !== SlotState.SERVING) {
    release(buffer);
    if (state === SlotState.CANCELLED) giveBack(i, state);
    return;
  }
  const view = views[i]!;
  let outOfBand = 0;
  if (buffer !== view) {
    if (end <= view.length) {
      // Classic's runtime buffer, or an error reply marshaled elsewhere: the wire copy.
      copyBytes(ledger, "wire", view, 0, buffer.subarray(0, end));
    } else {
      postOutOfBand(oob, i, buffer, end, ledger); // the fallback: larger than a slot
      outOfBand = 1;
    }
    release(buffer);
  }
  Atomics.store(words, w + SlotWord.LENGTH, end);
  Atomics.store(words, w + SlotWord.OUT_OF_BAND, outOfBand);
  serving--;
  if (Atomics.compareExchange(words, w + SlotWord.STATE, SlotState.SERVING, SlotState.REPLY) !== SlotState.SERVING) {
    // Cancelled while the reply was being written: the client discards it (and its out-of-band message).
    retire(i);
    Atomics.store(words, w + SlotWord.STATE, SlotState.REPLY);
  }
  signal(words, Control.REPLIES, Control.CLIENT_SLEEPING);
}

/** Hands back slot `i`, taken for a call that cannot be read, with no reply in it. */
function unanswered(i: number): void {
  const w = at[i]!;
  Atomics.store(words, w + SlotWord.LENGTH, 0);
  Atomics.store(words, w + SlotWord.OUT_OF_BAND, 0);
  serving--;
  if (Atomics.compareExchange(words, w + SlotWord.STATE, SlotState.SERVING, SlotState.REPLY) !== SlotState.SERVING) {
    retire(i);
    Atomics.store(words, w + SlotWord.STATE, SlotState.REPLY);
  }
  signal(words, Control.REPLIES, Control.CLIENT_SLEEPING);
}

/** Kills slot `i`'s sinks, whose call the client gave up on; the next call in the slot gets new ones. */
function retire(i: number): void {
  leases[i]!.live = false;
  sinks[i] = sinksFor(i);
}

/**
 * Hands back slot `i`, which the client took back (`state` WITHDRAWN or CANCELLED), as a
 * REPLY with no message. A withdrawn call's out-of-band message, never read, is taken off
 * the port, or it would be taken for the next one in the slot.
 */
function giveBack(i: number, state: number): void {
  const w = at[i]!;
  if (state === SlotState.CANCELLED) {
    retire(i);
    serving--;
  } else if (Atomics.load(words, w + SlotWord.OUT_OF_BAND) !== 0) {
    takeOutOfBand(i);
  }
  Atomics.store(words, w + SlotWord.LENGTH, 0);
  Atomics.store(words, w + SlotWord.OUT_OF_BAND, 0);
  publish(words, w, SlotState.REPLY, Control.REPLIES, Control.CLIENT_SLEEPING);
}

/**
 * Three sinks per slot, by how the call reached the runtime: in place (synthesized, or a
 * private out-of-band message), copied out of the slot by the wire (classic's receive copy,
 * counted by the server as `receiveCopies`), or copied out for a descriptor decode whose
 * views must outlive the slot (`copiedOut`, the receive pass the server counts).
 */
interface Sinks {
  readonly inPlace: ReplySink;
  readonly wire: ReplySink;
  readonly copied: ReplySink;
}

function sinksFor(i: number): Sinks {
  const view = views[i]!;
  const lease: Lease = { live: true };
  leases[i] = lease;
  // A dead lease lends nothing: a late reply is marshaled into a buffer of its own, then dropped.
  const acquire = (mode: Mode): Uint8Array | undefined => (mode === "classic" || !lease.live ? undefined : view);
  const send = (buffer: Uint8Array, end: number, ledger: CopyLedger | undefined, release: (b: Uint8Array) => void) =>
    reply(i, lease, buffer, end, ledger, release);
  const base = { kind: "shm", headerRoom: 0, peer: "shm", acquire, send } as const;
  return {
    inPlace: { ...base, receiveCopies: false },
    wire: { ...base, receiveCopies: true },
    copied: { ...base, receiveCopies: false, copiedOut: true },
  };
}
const leases: Lease[] = [];
const sinks: Sinks[] = views.map((_, i) => sinksFor(i));

/** program → version → mode, from the services the module registered. */
let modes = new Map<number, Map<number, Mode>>();
function learnModes(): void {
  modes = new Map();
  for (const s of server.services) {
    let versions = modes.get(s.program);
    if (versions === undefined) modes.set(s.program, (versions = new Map()));
    versions.set(s.version, s.mode);
  }
}

function modeOf(i: number, length: number): Mode {
  if (length < 24) return "synthesized"; // not a call the server can read: it will be dropped
  const h = headers[i]!;
  const program = h.getUint32(12);
  const version = h.getUint32(16);
  let mode = modes.get(program)?.get(version);
  if (mode === undefined) {
    learnModes(); // the module may register more services later
    mode = modes.get(program)?.get(version) ?? modes.get(program)?.values().next().value;
  }
  return mode ?? "synthesized";
}

/** The out-of-band message of slot `i`; undefined if none came (not the runtime's client: it posts before it publishes). */
function takeOutOfBand(i: number): Uint8Array | undefined {
  const ready = early.get(i);
  if (ready !== undefined) {
    early.delete(i);
    return ready;
  }
  // The client posts before it publishes the slot, so the message is already queued.
  for (;;) {
    const m = receiveMessageOnPort(oob);
    if (m === undefined) return undefined;
    const msg: unknown = m.message;
    if (!isOutOfBand(msg)) continue;
    if (msg.slot === i) return msg.bytes;
    early.set(msg.slot, msg.bytes);
  }
}

function serveSlot(i: number): void {
  const w = at[i]!;
  const length = Atomics.load(words, w + SlotWord.LENGTH);
  let message: Uint8Array;
  let sink: ReplySink;
  if (Atomics.load(words, w + SlotWord.OUT_OF_BAND) !== 0) {
    const taken = takeOutOfBand(i);
    if (taken === undefined) {
      unanswered(i); // no call to read: the slot goes back empty, as a message that is no call is dropped
      return;
    }
    message = taken;
    sink = sinks[i]!.inPlace;
  } else {
    const view = views[i]!;
    switch (modeOf(i, length)) {
      case "classic":
        message = view.slice(0, length); // counted by the server (the sink's receiveCopies)
        sink = sinks[i]!.wire;
        break;
      case "descriptor":
        message = view.slice(0, length); // counted by the server (the sink's copiedOut)
        sink = sinks[i]!.copied;
        break;
      default:
        message = view.subarray(0, length);
        sink = sinks[i]!.inPlace;
    }
  }
  server.dispatch(message, sink);
}

/** Dispatches every slot published to the server, and hands back those given up on; returns how many calls it dispatched. */
function drain(): number {
  let n = 0;
  for (let i = 0; i < layout.slots; i++) {
    const w = at[i]!;
    const state = Atomics.load(words, w + SlotWord.STATE);
    if (state !== SlotState.CALL) {
      if (state >= SlotState.WITHDRAWN) giveBack(i, state);
      continue;
    }
    // Taken with a compare-exchange: the client may be withdrawing the call this very moment.
    if (Atomics.compareExchange(words, w + SlotWord.STATE, SlotState.CALL, SlotState.SERVING) !== SlotState.CALL) {
      giveBack(i, SlotState.WITHDRAWN);
      continue;
    }
    serving++;
    n++;
    serveSlot(i);
  }
  return n;
}

const noop = (): void => {};
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function serve(): Promise<void> {
  let yielded = performance.now();
  for (;;) {
    if (Atomics.load(words, Control.SHUTDOWN) !== 0) return;
    const seen = Atomics.load(words, Control.CALLS);
    if (drain() > 0) {
      if (serving > 0) await undefined; // handlers whose promise already settled reply now
      if (performance.now() - yielded > BUSY_SLICE_MS) {
        await tick();
        yielded = performance.now();
      }
      continue;
    }
    if (serving === 0) {
      // Spin: the next call of a ping-pong comes within microseconds, and a sleeping hand-off costs ~46 µs.
      const deadline = performance.now() + spin.next();
      while (Atomics.load(words, Control.CALLS) === seen && performance.now() < deadline);
      if (Atomics.load(words, Control.CALLS) !== seen) {
        spin.hit();
        continue;
      }
      spin.miss();
      Atomics.store(words, Control.SERVER_SLEEPING, 1);
      const woke = Atomics.wait(words, Control.CALLS, seen, IDLE_SLICE_MS);
      Atomics.store(words, Control.SERVER_SLEEPING, 0);
      if (woke === "timed-out") {
        await tick();
        yielded = performance.now();
      }
    } else {
      // Handlers are pending: keep the event loop running while polling, then sleep without blocking it.
      const deadline = performance.now() + spinMs;
      while (Atomics.load(words, Control.CALLS) === seen && serving > 0 && performance.now() < deadline) await tick();
      yielded = performance.now();
      if (Atomics.load(words, Control.CALLS) !== seen || serving === 0) continue;
      Atomics.store(words, Control.SERVER_SLEEPING, 1);
      const r = waitAsync(words, Control.CALLS, seen, IDLE_SLICE_MS);
      if (r.async) {
        // A pending waitAsync does not keep the event loop alive: a timer does, for as long.
        const alive = setTimeout(noop, IDLE_SLICE_MS + 1);
        await r.value;
        clearTimeout(alive);
      }
      Atomics.store(words, Control.SERVER_SLEEPING, 0);
    }
  }
}

function report(r: WorkerReport): void {
  port.postMessage(r);
}

let loaded: unknown;
try {
  loaded = await import(init.module);
  const register = typeof loaded === "object" && loaded !== null && "default" in loaded ? loaded.default : undefined;
  if (typeof register !== "function") throw new TypeError(`${init.module} has no default export that registers handlers`);
  const options = typeof loaded === "object" && loaded !== null && "serverOptions" in loaded ? loaded.serverOptions : undefined;
  if (options !== undefined) {
    if (typeof options !== "object" || options === null) throw new TypeError(`${init.module}: serverOptions is not an object`);
    server = new Server(options as ServerOptions);
  }
  await (register as (server: Server, data: unknown) => unknown)(server, data);
  learnModes();
} catch (e) {
  const error = e instanceof Error ? e : new Error(String(e));
  report({ type: "failed", message: error.message, stack: error.stack });
  process.exit(1);
}
report({ type: "ready" });
await serve();
