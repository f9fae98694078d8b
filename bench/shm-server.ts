import { subscribe } from "node:diagnostics_channel";
import type { CallRecord, HandlersOf, Server } from "../runtime/index.js";
import { benchBinding, benchHandlers, type BenchService } from "./rpc-service.js";

/**
 * The server module of the `shm` transport in the RPC benchmark: the runtime runs it in its
 * worker thread (connect({ transport: "shm", module })). `data.module` is the URL of the
 * generated bench.x module to serve (one per mode). With `data.stats`, it also subscribes
 * to `rpcgen-ts:serve` and writes the last served call's copies there — only the binding
 * opened after the timing does that, so the timed bindings serve with nobody listening.
 */

export interface ShmServerData {
  readonly module: string;
  /** Int32 words: [served, copies stub/runtime/wire, bytes stub/runtime/wire]. */
  readonly stats?: SharedArrayBuffer;
}

function isShmServerData(x: unknown): x is ShmServerData {
  return typeof x === "object" && x !== null && typeof (x as { module?: unknown }).module === "string";
}

export default async function register(server: Server, data: unknown): Promise<void> {
  if (!isShmServerData(data)) throw new TypeError("bench shm-server: data.module (the generated module's URL) is required");
  const ns: unknown = await import(data.module);
  const { service } = benchBinding(ns as Record<string, unknown>, data.module);
  if (data.stats !== undefined) {
    const stats = new Int32Array(data.stats);
    subscribe("rpcgen-ts:serve", (message) => {
      const r = message as CallRecord;
      stats[1] = r.copies.stub;
      stats[2] = r.copies.runtime;
      stats[3] = r.copies.wire;
      stats[4] = r.bytesCopied.stub;
      stats[5] = r.bytesCopied.runtime;
      stats[6] = r.bytesCopied.wire;
      Atomics.add(stats, 0, 1);
    });
  }
  server.register(service, benchHandlers() as unknown as HandlersOf<BenchService>);
}
