import { isIPv6 } from "node:net";
import type { ServiceDescription } from "./call/service.js";
import { RpcChannel, type ChannelOptions } from "./endpoint/client.js";
import { Rpcbind, type Dial } from "./binding/rpcbind.js";
import { RpcError } from "./rpc/errors.js";
import type { ClientTransport, Dispatcher } from "./transport/types.js";
import { connectInproc } from "./transports/inproc.js";
import { connectShm, type ShmConnectOptions } from "./transports/shm.js";
import { connectStream } from "./transports/stream.js";
import { connectUdp } from "./transports/udp.js";

/**
 * Binding: a channel over the transport chosen at bind time (Firefly). For TCP and UDP
 * without a port, the port is looked up at the host's rpcbind (the LRPC "clerk"). This and
 * `listen` are the only modules that name concrete transports.
 */

export type { ShmConnectOptions } from "./transports/shm.js";

export type ConnectOptions = ChannelOptions &
  (
    | { readonly transport: "inproc"; readonly server: Dispatcher }
    | ShmConnectOptions
    | {
        readonly transport: "tcp" | "udp";
        readonly host?: string;
        readonly port?: number;
        /** Without a port: the service whose port rpcbind is asked for (again on each reconnect). */
        readonly service?: ServiceDescription;
        /** udp: the socket's buffer sizes in bytes (the kernel caps them at net.core.rmem_max and wmem_max). */
        readonly recvBufferSize?: number;
        readonly sendBufferSize?: number;
        /** tcp: give up a connection attempt after this long, UNREACHABLE (default 20 s). */
        readonly connectTimeoutMs?: number;
      }
    | { readonly transport: "unix"; readonly path: string; readonly connectTimeoutMs?: number }
  );

/** The shm transport's worker entry: it makes the worker's server (shm-worker.ts, beside this module). */
const shmWorkerEntry = new URL(import.meta.url.endsWith(".ts") ? "./dist/shm-worker.js" : "./shm-worker.js", import.meta.url);

/** How binding reaches an rpcbind. */
const dial: Dial = (to) =>
  to.transport === "udp"
    ? connectUdp({ host: to.host, port: to.port })
    : to.transport === "unix"
      ? connectStream({ transport: "unix", path: to.path! })
      : connectStream({ transport: "tcp", host: to.host, port: to.port });

/** The client of the local (or a named host's) rpcbind: registrations and lookups. */
export const rpcbind = new Rpcbind(dial);

/**
 * A channel over the transport `options` name. Every failure is an RpcError, the OS error as
 * its cause: BAD_OPTIONS (nothing was opened), RPCBIND_UNAVAILABLE (no port given and rpcbind
 * could not be asked, or does not know the program), UNREACHABLE (the server refused, could
 * not be reached, or did not answer in time). TCP and Unix channels are given the way to dial
 * again, so they reconnect when the connection drops (ChannelOptions.reconnect).
 */
export async function connect(options: ConnectOptions): Promise<RpcChannel> {
  const redial = dialerFor(options);
  const link = await redial();
  const streams = options.transport === "tcp" || options.transport === "unix";
  try {
    return new RpcChannel(link, options, streams ? redial : undefined);
  } catch (e) {
    throw e instanceof RpcError ? e : badOptions(e);
  }
}

const transports = ["inproc", "shm", "tcp", "udp", "unix"];

/** Checks what `connect` can check before opening anything; returns how to open (and reopen) the transport. */
function dialerFor(options: ConnectOptions): () => Promise<ClientTransport> {
  if (typeof options !== "object" || options === null) throw new RpcError("BAD_OPTIONS", `connect: options must be an object, got ${String(options)}`);
  const transport: unknown = options.transport;
  if (typeof transport !== "string" || !transports.includes(transport)) {
    throw new RpcError("BAD_OPTIONS", `connect: unknown transport ${JSON.stringify(transport)} (${transports.join(", ")})`);
  }
  switch (options.transport) {
    case "inproc": {
      const server = options.server;
      if (typeof server?.dispatch !== "function") throw new RpcError("BAD_OPTIONS", "connect: the inproc transport needs a server (createServer())");
      return async () => connectInproc(server);
    }
    case "shm":
      return async () => {
        try {
          return await connectShm(options, shmWorkerEntry);
        } catch (e) {
          throw e instanceof TypeError || e instanceof RangeError ? badOptions(e) : new RpcError("UNREACHABLE", `cannot start the shm worker: ${messageOf(e)}`, { cause: e });
        }
      };
    case "unix": {
      const path = options.path;
      if (typeof path !== "string" || path === "") throw new RpcError("BAD_OPTIONS", `connect: the unix transport needs a socket path, got ${JSON.stringify(path)}`);
      const connectTimeoutMs = timeoutOption(options.connectTimeoutMs);
      return () => dialed(`unix ${path}`, connectStream({ transport: "unix", path, maxMessageBytes: options.maxMessageBytes, connectTimeoutMs }));
    }
    case "tcp":
    case "udp": {
      const host = options.host ?? "127.0.0.1";
      if (typeof host !== "string" || host === "") throw new RpcError("BAD_OPTIONS", `connect: host must be a host name or address, got ${JSON.stringify(host)}`);
      const given = options.port;
      if (given !== undefined && !(Number.isInteger(given) && given >= 1 && given <= 0xffff)) {
        throw new RpcError("BAD_OPTIONS", `connect: port must be an integer from 1 to 65535, got ${String(given)}`);
      }
      const service = options.service;
      if (given === undefined && service === undefined) throw new RpcError("BAD_OPTIONS", `connect: ${options.transport} needs a port, or a service to look up at rpcbind`);
      const connectTimeoutMs = options.transport === "tcp" ? timeoutOption(options.connectTimeoutMs) : undefined;
      const kind = options.transport;
      return async () => {
        const port = given ?? (await lookUp(host, service!, kind));
        const where = `${kind} ${formatHost(host)}:${port}`;
        if (kind === "udp") {
          const { maxMessageBytes, recvBufferSize, sendBufferSize } = options as { maxMessageBytes?: number; recvBufferSize?: number; sendBufferSize?: number };
          return dialed(where, connectUdp({ host, port, maxMessageBytes, recvBufferSize, sendBufferSize }));
        }
        return dialed(where, connectStream({ transport: "tcp", host, port, maxMessageBytes: options.maxMessageBytes, connectTimeoutMs }));
      };
    }
  }
}

function timeoutOption(value: number | undefined): number | undefined {
  if (value !== undefined && !(typeof value === "number" && value > 0)) throw new RpcError("BAD_OPTIONS", `connect: connectTimeoutMs must be a number > 0, got ${String(value)}`);
  return value;
}

/** The port rpcbind has for the service; any failure is RPCBIND_UNAVAILABLE. */
async function lookUp(host: string, service: ServiceDescription, transport: "tcp" | "udp"): Promise<number> {
  try {
    return await rpcbind.lookupPort(host, service.program, service.version, transport);
  } catch (e) {
    if (e instanceof RpcError && e.status === "RPCBIND_UNAVAILABLE") throw e;
    throw new RpcError("RPCBIND_UNAVAILABLE", `cannot look up the port of program 0x${service.program.toString(16)} version ${service.version} over ${transport}: ${messageOf(e)}`, { cause: e });
  }
}

/** A dial's OS error (refused, unreachable, timed out, a missing socket file) as UNREACHABLE. */
async function dialed(where: string, opening: Promise<ClientTransport>): Promise<ClientTransport> {
  try {
    return await opening;
  } catch (e) {
    if (e instanceof RpcError) throw e;
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (e instanceof TypeError || e instanceof RangeError) {
      if (code === undefined || code.startsWith("ERR_")) throw badOptions(e); // Node's own option checks
    }
    throw new RpcError("UNREACHABLE", `cannot connect to ${where}: ${messageOf(e)}`, { cause: e });
  }
}

function badOptions(e: unknown): RpcError {
  return new RpcError("BAD_OPTIONS", `connect: ${messageOf(e)}`, { cause: e });
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function formatHost(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}
