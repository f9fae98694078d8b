import type { CallOptions, Channel, ClientOptions, ProcedureDescription, ServiceDescription } from "../runtime/index.js";

/**
 * idl/bench.x's BENCH_PROG as the RPC section uses it: the service description and client
 * class of a generated module (checked for shape, since the module is generated at run
 * time), and the server's handlers — shared by the in-process servers (bench/rpc.ts) and
 * the shm transport's worker (bench/shm-server.ts).
 */

/** BENCH_MAXDATA: the Ethernet-packet payload of MaxArg() and MaxResult(). */
export const MAXDATA = 1440;

/** What the benchmark needs of the generated BenchV1 description. */
export interface BenchService extends ServiceDescription {
  readonly procedures: {
    readonly nullproc: ProcedureDescription<void, void>;
    readonly maxarg: ProcedureDescription<Uint8Array, void>;
    readonly maxresult: ProcedureDescription<number, Uint8Array>;
    readonly [key: string]: ProcedureDescription;
  };
}

/** The generated BenchV1Client's methods used here. */
export interface BenchClient {
  nullproc(options?: CallOptions): Promise<void>;
  maxarg(arg: Uint8Array, options?: CallOptions): Promise<void>;
  maxresult(arg: number, options?: CallOptions): Promise<Uint8Array>;
}

export type BenchClientClass = new (channel: Channel, options?: ClientOptions) => BenchClient;

export interface BenchBinding {
  readonly service: BenchService;
  readonly Client: BenchClientClass;
}

/** The service and client class of a generated bench.x module, checked for shape. */
export function benchBinding(exports: Readonly<Record<string, unknown>>, where: string): BenchBinding {
  const service = exports["BenchV1"];
  const Client = exports["BenchV1Client"];
  if (typeof service !== "object" || service === null) throw new Error(`${where}: no export BenchV1`);
  const procedures = (service as { procedures?: unknown }).procedures;
  if (typeof procedures !== "object" || procedures === null) throw new Error(`${where}: BenchV1 has no procedures`);
  for (const key of ["nullproc", "maxarg", "maxresult"]) {
    if (typeof (procedures as Record<string, unknown>)[key] !== "object") throw new Error(`${where}: BenchV1 has no procedure ${key}`);
  }
  if (typeof Client !== "function") throw new Error(`${where}: no export BenchV1Client`);
  for (const m of ["nullproc", "maxarg", "maxresult"]) {
    if (typeof (Client as { prototype: Record<string, unknown> }).prototype[m] !== "function") throw new Error(`${where}: BenchV1Client has no method ${m}`);
  }
  return { service: service as BenchService, Client: Client as BenchClientClass };
}

/** The handlers: MaxArg() drops its argument, MaxResult(n) returns n bytes of one constant buffer. */
export interface BenchHandlers {
  readonly nullproc: () => void;
  readonly maxarg: (data: Uint8Array) => void;
  readonly maxresult: (n: number) => Uint8Array;
}

export function payload(): Uint8Array {
  const d = new Uint8Array(MAXDATA);
  for (let i = 0; i < d.length; i++) d[i] = (i * 131 + 7) & 0xff;
  return d;
}

export function benchHandlers(): BenchHandlers {
  const data = payload();
  return {
    nullproc: () => undefined,
    maxarg: () => undefined,
    maxresult: (n) => (n >= MAXDATA ? data : data.subarray(0, n)),
  };
}
