import { createServer, type CallOptions, type Channel, type ClientOptions, type HandlersOf, type ProcedureDescription, type Server, type ServiceDescription } from "../runtime/index.js";

/**
 * idl/bench.x's BENCH_PROG (and bench/echo.x's BENCH_ECHO_PROG) as the RPC section uses them:
 * the service description and client class of a generated module (checked for shape, since
 * the module is generated at run time), and the server's handlers — shared by the servers in
 * the benchmark's thread (bench/rpc.ts), in a process of their own (bench/peer.ts) and in the
 * shm transport's worker (bench/shm-server.ts).
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
  /** The same, completed on the calling thread (shm). */
  readonly sync: {
    nullproc(options?: CallOptions): void;
  };
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

// ---- bench/echo.x: the call compared with gRPC's Echo() --------------------------------------

export interface EchoService extends ServiceDescription {
  readonly procedures: {
    readonly echo: ProcedureDescription<Uint8Array, Uint8Array>;
    readonly [key: string]: ProcedureDescription;
  };
}

export interface EchoClient {
  echo(data: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
}

export interface EchoBinding {
  readonly service: EchoService;
  readonly Client: new (channel: Channel, options?: ClientOptions) => EchoClient;
}

/** The service and client class of a generated echo.x module, checked for shape. */
export function echoBinding(exports: Readonly<Record<string, unknown>>, where: string): EchoBinding {
  const service = exports["BenchEchoV1"];
  const Client = exports["BenchEchoV1Client"];
  const procedures = typeof service === "object" && service !== null ? (service as { procedures?: unknown }).procedures : undefined;
  if (typeof procedures !== "object" || procedures === null || typeof (procedures as Record<string, unknown>)["echo"] !== "object") {
    throw new Error(`${where}: no export BenchEchoV1 with a procedure echo`);
  }
  if (typeof Client !== "function" || typeof (Client as { prototype: Record<string, unknown> }).prototype["echo"] !== "function") {
    throw new Error(`${where}: no export BenchEchoV1Client with a method echo`);
  }
  return { service: service as EchoService, Client: Client as EchoBinding["Client"] };
}

/** A server of both programs: BENCH_PROG and BENCH_ECHO_PROG (whose Echo() returns its argument). */
export function benchServer(bench: BenchBinding, echo: EchoBinding): Server {
  return createServer()
    .register(bench.service, benchHandlers() as unknown as HandlersOf<BenchService>)
    .register(echo.service, { echo: (data: Uint8Array) => data } as unknown as HandlersOf<EchoService>);
}
