import { rpcbind } from "./connect.js";
import { ServerCore, type ServerOptions } from "./endpoint/server.js";
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

/** A runtime server that listens on the transports it is asked to. */
export class Server extends ServerCore {
  async listen(options: ListenOptions): Promise<ListenAddress> {
    let listener: Listener;
    switch (options.transport) {
      case "udp":
        listener = await listenUdp(this, { ...options, onError: this.options.onError });
        break;
      case "tcp":
      case "unix":
        listener = await listenStream(this, { ...options, transport: options.transport });
        break;
      default:
        throw new TypeError(`listen: unknown transport ${JSON.stringify((options as { transport?: unknown }).transport)} (tcp, unix or udp)`);
    }
    this.listeners.push(listener);
    if (options.rpcbind === true) this.closers.push(await rpcbind.register(this.services, options.transport, listener.address));
    return listener.address;
  }

  /** Each stream listener's address and what it holds now (connections, buffered bytes, calls in progress…). */
  override listenerStats(): { address: ListenAddress; stats: StreamStats }[] {
    return super.listenerStats() as { address: ListenAddress; stats: StreamStats }[];
  }
}

export function createServer(options: ServerOptions = {}): Server {
  return new Server(options);
}
