import { subscribe } from "node:diagnostics_channel";
import type { CallRecord, HandlersOf, Server } from "../runtime/index.js";
import { benchBinding, benchHandlers, type BenchService } from "./rpc-service.js";

/**
 * The shm server module of the latency-phase section (bench/phases.ts): the runtime runs it in
 * its worker thread. It serves the generated module `data.module` and writes each served
 * call's record into the ring `data.ring` (layout below), where the client reads it and pairs
 * it with its own record by xid.
 */

/** Float64 fields per served call: xid, receive, dispatch, execute, reply, copies ×3, bytes ×3. */
export const RING_FIELDS = 11;
/** Served calls the ring holds: the client takes them after each case of fewer calls. */
export const RING_SLOTS = 4096;
/** Bytes of the ring: one Int32 counter (padded to 8) and the slots. */
export const RING_BYTES = 8 + RING_SLOTS * RING_FIELDS * 8;

export interface PhaseShmData {
  readonly module: string;
  readonly ring: SharedArrayBuffer;
}

function isData(x: unknown): x is PhaseShmData {
  return (
    typeof x === "object" &&
    x !== null &&
    typeof (x as { module?: unknown }).module === "string" &&
    (x as { ring?: unknown }).ring instanceof SharedArrayBuffer &&
    (x as { ring: SharedArrayBuffer }).ring.byteLength === RING_BYTES
  );
}

export default async function register(server: Server, data: unknown): Promise<void> {
  if (!isData(data)) throw new TypeError(`bench phase-shm-server: data.module (a URL) and data.ring (${RING_BYTES} shared bytes) are required`);
  const ns: unknown = await import(data.module);
  const { service } = benchBinding(ns as Record<string, unknown>, data.module);
  const count = new Int32Array(data.ring, 0, 1);
  const slots = new Float64Array(data.ring, 8);
  subscribe("rpcgen-ts:serve", (message) => {
    const r = message as CallRecord;
    const p = r.phases;
    const at = (Atomics.load(count, 0) % RING_SLOTS) * RING_FIELDS;
    slots.set(
      [r.xid, p.receive ?? 0, p.dispatch ?? 0, p.execute ?? 0, p.reply ?? 0, r.copies.stub, r.copies.runtime, r.copies.wire, r.bytesCopied.stub, r.bytesCopied.runtime, r.bytesCopied.wire],
      at,
    );
    // Published after the slot is written: the client reads a slot only below the count.
    Atomics.add(count, 0, 1);
    Atomics.notify(count, 0);
  });
  server.register(service, benchHandlers() as unknown as HandlersOf<BenchService>);
}
