import { parentPort, workerData } from "node:worker_threads";
import { SabWord, SAB_DATA_OFFSET, SAB_MODE_SPIN, SAB_SPIN_MS } from "./sab-layout.js";

/**
 * The server half of the SharedArrayBuffer ping-pong floor (bench/floors.ts): waits for the
 * call counter to move, writes a reply of the requested size into the shared data area,
 * publishes the reply counter. In spin mode it polls for SAB_SPIN_MS after each call, then
 * sleeps in Atomics.wait (so it burns no core between batches); in sleep mode it always
 * sleeps. No RPC, no runtime: the floor of a hand-off between two threads.
 */

const sab = workerData as SharedArrayBuffer;
const w = new Int32Array(sab);
const data = new Uint8Array(sab, SAB_DATA_OFFSET);
const reply = new Uint8Array(data.length);
for (let i = 0; i < reply.length; i++) reply[i] = (i * 7) & 0xff;

let seen = Atomics.load(w, SabWord.CALLS);
// Tell the main thread the loop is running: until then the worker's startup may still need
// the main thread's event loop, which a spinning batch would block.
parentPort?.postMessage("ready");
for (;;) {
  let c = Atomics.load(w, SabWord.CALLS);
  if (c === seen) {
    if (Atomics.load(w, SabWord.MODE) === SAB_MODE_SPIN) {
      const deadline = performance.now() + SAB_SPIN_MS;
      let k = 0;
      while ((c = Atomics.load(w, SabWord.CALLS)) === seen) {
        if ((++k & 255) === 0 && performance.now() >= deadline) break;
      }
    }
    if (c === seen) {
      Atomics.store(w, SabWord.SERVER_SLEEPING, 1);
      Atomics.wait(w, SabWord.CALLS, seen);
      Atomics.store(w, SabWord.SERVER_SLEEPING, 0);
      continue;
    }
  }
  if (Atomics.load(w, SabWord.SHUTDOWN) !== 0) break;
  seen = c;
  const n = Atomics.load(w, SabWord.REPLY_LEN);
  data.set(n === reply.length ? reply : reply.subarray(0, n), 0);
  Atomics.store(w, SabWord.REPLIES, c);
  if (Atomics.load(w, SabWord.CLIENT_SLEEPING) !== 0) Atomics.notify(w, SabWord.REPLIES);
}
