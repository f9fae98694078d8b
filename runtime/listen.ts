import { rpcbind } from "./connect.js";
import { ServerCore, type ServerOptions } from "./endpoint/server.js";
import { RpcError } from "./rpc/errors.js";
import type { ListenAddress, Listener } from "./transport/types.js";
import type { DuplicateCacheOptions } from "./transports/drc.js";
import type { StreamLimits, StreamStats } from "./transports/limits.js";
import { listenStream } from "./transports/stream.js";
import { listenUdp } from "./transports/udp.js";

/** Where and how a server listens; with `connect`, the only module that names concrete transports. */
export interface ListenOptions {
  readonly transport: "tcp" | "unix" | "udp";
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  /** Register every program version with the local rpcbind, and unregister on close. */
  readonly rpcbind?: boolean;
  /** What peers may cost a `tcp` or `unix` listener (see StreamLimits for the defaults). */
  readonly limits?: StreamLimits;
  /** A `udp` listener's duplicate-request cache bounds, or false for none (no at-most-once). */
  readonly duplicateCache?: DuplicateCacheOptions | false;
  /** A `udp` listener's socket buffer sizes in bytes (the kernel caps them at net.core.rmem_max and wmem_max). */
  readonly recvBufferSize?: number;
  readonly sendBufferSize?: number;
}

/**
 * A runtime server that listens on the transports it is asked to. Every failure to listen is
 * an RpcError, the OS error as its cause: BAD_OPTIONS (an unknown transport, a bad value),
 * ADDRESS_IN_USE, LISTEN_FAILED (anything else the OS refuses), RPCBIND_UNAVAILABLE
 * (`rpcbind: true` and the registration failed: the listener is closed again).
 */
export class Server extends ServerCore {
  async listen(options: ListenOptions): Promise<ListenAddress> {
    checkListen(options);
    let listener: Listener;
    try {
      listener =
        options.transport === "udp"
          ? await listenUdp(this, { ...options, onError: this.options.onError })
          : await listenStream(this, { ...options, transport: options.transport });
    } catch (e) {
      throw listenError(options, e);
    }
    if (options.rpcbind === true) {
      try {
        this.closers.push(await rpcbind.register(this.services, options.transport, listener.address));
      } catch (e) {
        await listener.close();
        throw e instanceof RpcError && e.status === "RPCBIND_UNAVAILABLE"
          ? e
          : new RpcError("RPCBIND_UNAVAILABLE", `cannot register with rpcbind: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
    }
    this.listeners.push(listener);
    return listener.address;
  }

  /** Each stream listener's address and what it holds now (connections, buffered bytes, calls in progress…). */
  override listenerStats(): { address: ListenAddress; stats: StreamStats }[] {
    return super.listenerStats() as { address: ListenAddress; stats: StreamStats }[];
  }
}

function checkListen(options: ListenOptions): void {
  if (typeof options !== "object" || options === null) throw new RpcError("BAD_OPTIONS", `listen: options must be an object, got ${String(options)}`);
  const { transport, port, host, path } = options as { transport?: unknown; port?: unknown; host?: unknown; path?: unknown };
  if (transport !== "tcp" && transport !== "unix" && transport !== "udp") {
    throw new RpcError("BAD_OPTIONS", `listen: unknown transport ${JSON.stringify(transport)} (tcp, unix or udp)`);
  }
  if (transport === "unix") {
    if (typeof path !== "string" || path === "") throw new RpcError("BAD_OPTIONS", `listen: the unix transport needs a socket path, got ${JSON.stringify(path)}`);
    return;
  }
  if (port !== undefined && !(Number.isInteger(port) && (port as number) >= 0 && (port as number) <= 0xffff)) {
    throw new RpcError("BAD_OPTIONS", `listen: port must be an integer from 0 (any) to 65535, got ${String(port)}`);
  }
  if (host !== undefined && (typeof host !== "string" || host === "")) throw new RpcError("BAD_OPTIONS", `listen: host must be an address, got ${JSON.stringify(host)}`);
}

/** What the OS (or an option check below) said, as an RpcError with it as the cause. */
function listenError(options: ListenOptions, e: unknown): RpcError {
  if (e instanceof RpcError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const where = options.transport === "unix" ? `unix ${options.path}` : `${options.transport} ${options.host ?? "127.0.0.1"}:${options.port ?? 0}`;
  if ((e instanceof TypeError || e instanceof RangeError) && (code === undefined || code.startsWith("ERR_"))) {
    return new RpcError("BAD_OPTIONS", `listen: ${message}`, { cause: e });
  }
  if (code === "EADDRINUSE") return new RpcError("ADDRESS_IN_USE", `cannot listen on ${where}: the address is in use (${message})`, { cause: e });
  return new RpcError("LISTEN_FAILED", `cannot listen on ${where}: ${message}`, { cause: e });
}

export function createServer(options: ServerOptions = {}): Server {
  return new Server(options);
}
