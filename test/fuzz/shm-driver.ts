import { existsSync } from "node:fs";
import { join } from "node:path";
import { MessageChannel, Worker } from "node:worker_threads";
import { Control, publish, shmLayout, signal, SlotMemory, SlotState, slotWord, SlotWord, type ShmLayout, type WorkerInit } from "../../runtime/transports/shm-protocol.js";
import { repoRoot } from "../support.js";

/**
 * A raw client of the shm transport's worker (runtime/transports/shm-slots.ts): it starts
 * the worker as the transport does, then writes whatever bytes — and whatever slot header
 * words — it likes into the slots, which the runtime's own client never would. For fuzzing
 * the worker's side of the protocol.
 */

const entry = join(repoRoot, "runtime/dist/shm-worker.js");

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

export class RawShm {
  readonly words: Int32Array;
  readonly views: Uint8Array[] = [];
  private readonly at: number[] = [];
  /** Slots never used since the worker started, or handed back by it. */
  readonly free: number[] = [];
  exited: number | undefined;
  error: Error | undefined;

  private constructor(
    readonly worker: Worker,
    readonly layout: ShmLayout,
    sab: SharedArrayBuffer,
  ) {
    this.words = new Int32Array(sab);
    for (let i = 0; i < layout.slots; i++) {
      this.views.push(new SlotMemory(sab, layout, i).area);
      this.at.push(slotWord(layout, i));
      this.free.push(layout.slots - 1 - i);
    }
    worker.on("exit", (code) => (this.exited = code));
    worker.on("error", (e) => (this.error = e));
  }

  static async start(module: URL, data: unknown, slots: number, slotBytes: number): Promise<RawShm> {
    if (!existsSync(entry)) throw new Error(`${entry} is missing: build the runtime first (npm run build)`);
    const layout = shmLayout(slots, slotBytes);
    const sab = new SharedArrayBuffer(layout.totalBytes);
    const { port2 } = new MessageChannel();
    const init: WorkerInit = { sab, slots, slotBytes: layout.slotBytes, spinMicros: 0, module: module.href, data, port: port2 };
    const worker = new Worker(entry, { workerData: init, transferList: [port2] });
    await new Promise<void>((resolve, reject) => {
      worker.once("message", (m: { type?: string; message?: string }) => (m.type === "ready" ? resolve() : reject(new Error(`the shm worker failed: ${m.message}`))));
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`the shm worker exited (code ${code}) before it was ready`)));
    });
    return new RawShm(worker, layout, sab);
  }

  state(i: number): number {
    return Atomics.load(this.words, this.at[i]! + SlotWord.STATE);
  }

  /** Puts `message` in slot `i` with the given header words and publishes it as a call. */
  post(i: number, message: Uint8Array, length = message.length, outOfBand = 0): void {
    this.views[i]!.set(message.subarray(0, this.layout.slotBytes));
    const w = this.at[i]!;
    Atomics.store(this.words, w + SlotWord.LENGTH, length);
    Atomics.store(this.words, w + SlotWord.OUT_OF_BAND, outOfBand);
    publish(this.words, w, SlotState.CALL, Control.CALLS, Control.SERVER_SLEEPING);
  }

  /** The reply in slot `i` (a REPLY), which goes back to the free list. */
  take(i: number): Uint8Array {
    const w = this.at[i]!;
    const length = Atomics.load(this.words, w + SlotWord.LENGTH);
    const reply = this.views[i]!.slice(0, Math.max(0, Math.min(length, this.layout.slotBytes)));
    Atomics.store(this.words, w + SlotWord.STATE, SlotState.FREE);
    this.free.push(i);
    return reply;
  }

  /**
   * Gives up on the call in slot `i` as the transport's client does: CALL → WITHDRAWN, or
   * SERVING → CANCELLED, by compare-exchange, then wakes the worker. Returns the state it
   * found (REPLY: the reply won the race).
   */
  giveUp(i: number): number {
    const w = this.at[i]! + SlotWord.STATE;
    let state = Atomics.compareExchange(this.words, w, SlotState.CALL, SlotState.WITHDRAWN);
    if (state === SlotState.SERVING) state = Atomics.compareExchange(this.words, w, SlotState.SERVING, SlotState.CANCELLED);
    if (state !== SlotState.REPLY) signal(this.words, Control.CALLS, Control.SERVER_SLEEPING);
    return state;
  }

  /** Waits until `ready()` or `ms` pass; false if it timed out. */
  async until(ready: () => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!ready()) {
      if (performance.now() > deadline || this.exited !== undefined) return ready();
      await tick();
    }
    return true;
  }

  /**
   * Sends `message` as a call in a free slot and waits for its reply; undefined if none came
   * within `ms` (its slot is then lost: the worker still owns it).
   */
  async call(message: Uint8Array, ms = 3000): Promise<Uint8Array | undefined> {
    const i = this.free.pop();
    if (i === undefined) throw new Error("no free slot");
    this.post(i, message);
    return (await this.until(() => this.state(i) === SlotState.REPLY, ms)) ? this.take(i) : undefined;
  }

  async close(): Promise<void> {
    Atomics.store(this.words, Control.SHUTDOWN, 1);
    Atomics.notify(this.words, Control.CALLS);
    await this.worker.terminate();
  }
}
