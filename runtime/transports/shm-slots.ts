import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import type { Dispatcher, ReplySink } from "../transport/types.js";
import { copyBytes, CopyLedger, Prefix } from "../xdr/ledger.js";
import {
  Control,
  isOutOfBand,
  isWorkerInit,
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
  type WorkerReport,
} from "./shm-protocol.js";

/**
 * The server side of the `shm` transport, run in a worker thread (see shm.ts) by an entry
 * that makes the server (`runShmWorker`): it loads the user's module, lets its default export
 * register handlers on that server, then serves the binding's slots. Between calls it spins for the (adaptive) budget, then sleeps in
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
const { sab, data, module: userModule } = init;
const layout = shmLayout(init.slots, init.slotBytes);
const words = new Int32Array(sab);
const spinMs = init.spinMicros / 1000;
const spin = new SpinBudget(spinMs);
const oob = init.port;
oob.unref();

let server: Dispatcher;
const memory: SlotMemory[] = [];
const headers: DataView[] = [];
const at: number[] = [];
for (let i = 0; i < layout.slots; i++) {
  const m = new SlotMemory(sab, layout, i);
  memory.push(m);
  headers.push(new DataView(sab, m.area.byteOffset, 24));
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
  const view = memory[i]!.area;
  let outOfBand = 0;
  if (buffer !== view) {
    if (end <= view.length) {
      // Classic's runtime buffer, or an error reply marshaled elsewhere: the wire copy.
      copyBytes(ledger, "wire", view, 0, sent.get(buffer, end));
    } else {
      postOutOfBand(oob, i, buffer, end, ledger); // the fallback: larger than a slot
      outOfBand = 1;
    }
    release(buffer);
  }
  words[w + SlotWord.LENGTH] = end;
  words[w + SlotWord.OUT_OF_BAND] = outOfBand;
  serving--;
  if (Atomics.compareExchange(words, w + SlotWord.STATE, SlotState.SERVING, SlotState.REPLY) !== SlotState.SERVING) {
    // Cancelled while the reply was being written: the client discards it (and its out-of-band message).
    retire(i);
    Atomics.store(words, w + SlotWord.STATE, SlotState.REPLY);
  }
  signal(words, Control.REPLIES, Control.CLIENT_SLEEPING);
}

/** Views of replies marshaled outside their slot (classic's runtime buffer), to copy in. */
const sent = new Prefix();

/** Hands back slot `i`, taken for a call that cannot be read, with no reply in it. */
function unanswered(i: number): void {
  const w = at[i]!;
  words[w + SlotWord.LENGTH] = 0;
  words[w + SlotWord.OUT_OF_BAND] = 0;
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
  sinks[i] = sinkFor(i);
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
  } else if (words[w + SlotWord.OUT_OF_BAND]! !== 0) {
    takeOutOfBand(i);
  }
  words[w + SlotWord.LENGTH] = 0;
  words[w + SlotWord.OUT_OF_BAND] = 0;
  publish(words, w, SlotState.REPLY, Control.REPLIES, Control.CLIENT_SLEEPING);
}

/** Slot `i`'s reply sink: lends the slot to a path that writes into lent memory, while the call's lease lives. */
function sinkFor(i: number): ReplySink {
  const view = memory[i]!.area;
  const lease: Lease = { live: true };
  leases[i] = lease;
  // A dead lease lends nothing: a late reply is marshaled into a buffer of its own, then dropped.
  return {
    kind: "shm",
    headerRoom: 0,
    peer: "shm",
    readsInPlace: false,
    acquire: (path) => (!path.lendable || !lease.live ? undefined : view),
    send: (buffer, end, ledger, release) => reply(i, lease, buffer, end, ledger, release),
  };
}
const leases: Lease[] = [];
const sinks: ReplySink[] = memory.map((_, i) => sinkFor(i));
/** The copies made to hand the current call to the server, and where calls are copied out of slots. */
const received = new CopyLedger();
const copyOut = new CopyOut();

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
  const length = words[w + SlotWord.LENGTH]!;
  received.reset();
  let message: Uint8Array;
  if (words[w + SlotWord.OUT_OF_BAND]! !== 0) {
    const taken = takeOutOfBand(i);
    if (taken === undefined) {
      unanswered(i); // no call to read: the slot goes back empty, as a message that is no call is dropped
      return;
    }
    message = taken;
  } else {
    // How the call will be read decides whether it must leave the slot first; a message too
    // short to name a program is read in place (the server drops it).
    const h = headers[i]!;
    const path = length < 24 ? undefined : server.pathOf(h.getUint32(12), h.getUint32(16));
    message = path === undefined ? memory[i]!.message(length) : readSlot(memory[i]!, length, path, received, copyOut);
  }
  server.dispatch(message, sinks[i]!, received);
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

const drainsPerClockRead = 16;

async function serve(): Promise<void> {
  let yielded = performance.now();
  let drains = 0;
  for (;;) {
    if (Atomics.load(words, Control.SHUTDOWN) !== 0) return;
    const seen = Atomics.load(words, Control.CALLS);
    if (drain() > 0) {
      if (serving > 0) await undefined; // handlers whose promise already settled reply now
      // The clock is read every few drains, not on every call's path (it costs about 40 ns).
      if (++drains >= drainsPerClockRead) {
        drains = 0;
        if (performance.now() - yielded > BUSY_SLICE_MS) {
          await tick();
          yielded = performance.now();
        }
      }
      continue;
    }
    if (serving === 0) {
      // Spin: the next call of a ping-pong comes within microseconds, and a sleeping hand-off costs ~46 µs.
      if (spinWhile(words, Control.CALLS, seen, spin.next())) {
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

/** What the entry gives: a server made with the module's `serverOptions`, if it exports any. */
export type MakeServer = (options: object | undefined) => Dispatcher;

/**
 * Runs the worker: loads the user's module, makes the server, lets the module's default
 * export register its handlers on it, reports ready, and serves until shut down.
 */
export async function runShmWorker(makeServer: MakeServer): Promise<void> {
  try {
    const loaded: unknown = await import(userModule);
    const register = typeof loaded === "object" && loaded !== null && "default" in loaded ? loaded.default : undefined;
    if (typeof register !== "function") throw new TypeError(`${userModule} has no default export that registers handlers`);
    const options = typeof loaded === "object" && loaded !== null && "serverOptions" in loaded ? loaded.serverOptions : undefined;
    if (options !== undefined && (typeof options !== "object" || options === null)) throw new TypeError(`${userModule}: serverOptions is not an object`);
    server = makeServer(options ?? undefined);
    await (register as (server: Dispatcher, data: unknown) => unknown)(server, data);
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    report({ type: "failed", message: error.message, stack: error.stack });
    process.exit(1);
  }
  report({ type: "ready" });
  await serve();
}
