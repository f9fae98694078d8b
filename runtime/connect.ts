import type { ServiceDescription } from "./call/service.js";
import { RpcChannel, type Channel, type ChannelOptions } from "./endpoint/client.js";
import { Rpcbind, type Dial } from "./binding/rpcbind.js";
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
        /** Without a port: the service whose port rpcbind is asked for. */
        readonly service?: ServiceDescription;
        /** udp: the socket's buffer sizes in bytes (the kernel caps them at net.core.rmem_max and wmem_max). */
        readonly recvBufferSize?: number;
        readonly sendBufferSize?: number;
      }
    | { readonly transport: "unix"; readonly path: string }
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

export async function connect(options: ConnectOptions): Promise<Channel> {
  return new RpcChannel(await transportFor(options), options);
}

async function transportFor(options: ConnectOptions): Promise<ClientTransport> {
  switch (options.transport) {
    case "inproc":
      return connectInproc(options.server);
    case "shm":
      return connectShm(options, shmWorkerEntry);
    case "unix":
      return connectStream({ transport: "unix", path: options.path, maxMessageBytes: options.maxMessageBytes });
    case "tcp":
    case "udp": {
      const host = options.host ?? "127.0.0.1";
      let port = options.port;
      if (port === undefined) {
        if (options.service === undefined) throw new TypeError(`connect: ${options.transport} needs a port, or a service to look up at rpcbind`);
        port = await rpcbind.lookupPort(host, options.service.program, options.service.version, options.transport);
      }
      if (options.transport === "udp") {
        const { maxMessageBytes, recvBufferSize, sendBufferSize } = options;
        return connectUdp({ host, port, maxMessageBytes, recvBufferSize, sendBufferSize });
      }
      return connectStream({ transport: "tcp", host, port, maxMessageBytes: options.maxMessageBytes });
    }
  }
}
