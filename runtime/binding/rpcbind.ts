// Placeholder replaced by the rpcbind binding work in progress.
import type { ListenAddress } from "../server.js";
import type { ServiceDescription } from "../service.js";
export function registerWithRpcbind(_s: ServiceDescription[], _t: string, _a: ListenAddress): Promise<() => Promise<void>> {
  return Promise.reject(new Error("rpcbind: not yet"));
}
export function lookupPort(_host: string, _program: number, _version: number, _transport: "tcp" | "udp"): Promise<number> {
  return Promise.reject(new Error("rpcbind: not yet"));
}
