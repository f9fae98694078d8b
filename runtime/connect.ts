import type { Worker } from "node:worker_threads";
import { RpcChannel, type Channel, type ChannelOptions } from "./client.js";
import type { Dispatcher } from "./server.js";
import type { ServiceDescription } from "./service.js";
import { connectInproc } from "./transport/inproc.js";
import type { ClientTransport } from "./transport/types.js";

/**
 * Binding: a channel over the transport chosen at bind time (Firefly). For TCP and UDP
 * without a port, the port is looked up at the host's rpcbind (the LRPC "clerk").
 */

export interface ShmConnectOptions {
  readonly transport: "shm";
  /** A module the runtime runs in a worker thread; its default export registers handlers on the server it is given. */
  readonly module: string | URL;
  /** Passed to the module's default export. */
  readonly data?: unknown;
  /** How long each side spins on the shared slot before it sleeps, in microseconds (default 50). */
  readonly spinMicros?: number;
  /** Argument/result slots (calls that can be outstanding at once; default 8). */
  readonly slots?: number;
  /** Bytes per slot (default: enough for the largest bounded message of the services, at least 4 KiB). */
  readonly slotBytes?: number;
  /** The services the worker serves: they size the slots from their static layout. */
  readonly services?: readonly ServiceDescription[];
  /** Called with the worker thread once its module has registered its handlers (for monitoring). */
  readonly onWorker?: (worker: Worker) => void;
}

export type ConnectOptions = ChannelOptions &
  (
    | { readonly transport: "inproc"; readonly server: Dispatcher }
    | ShmConnectOptions
    | {
        readonly transport: "tcp" | "udp";
        readonly host?: string;
        readonly port?: number;
        /** Without a port: the service whose port rpcbind is asked for. */
        readonly service?: ServiceDescription;
      }
    | { readonly transport: "unix"; readonly path: string }
  );

export async function connect(options: ConnectOptions): Promise<Channel> {
  return new RpcChannel(await transportFor(options), options);
}

async function transportFor(options: ConnectOptions): Promise<ClientTransport> {
  switch (options.transport) {
    case "inproc":
      return connectInproc(options.server);
    case "shm": {
      const { connectShm } = await import("./transport/shm.js");
      return connectShm(options);
    }
    case "unix": {
      const { connectStream } = await import("./transport/stream.js");
      return connectStream({ transport: "unix", path: options.path, maxMessageBytes: options.maxMessageBytes });
    }
    case "tcp":
    case "udp": {
      const host = options.host ?? "127.0.0.1";
      let port = options.port;
      if (port === undefined) {
        if (options.service === undefined) throw new TypeError(`connect: ${options.transport} needs a port, or a service to look up at rpcbind`);
        const { lookupPort } = await import("./binding/rpcbind.js");
        port = await lookupPort(host, options.service.program, options.service.version, options.transport);
      }
      if (options.transport === "udp") {
        const { connectUdp } = await import("./transport/udp.js");
        return connectUdp({ host, port, maxMessageBytes: options.maxMessageBytes });
      }
      const { connectStream } = await import("./transport/stream.js");
      return connectStream({ transport: "tcp", host, port, maxMessageBytes: options.maxMessageBytes });
    }
  }
}
