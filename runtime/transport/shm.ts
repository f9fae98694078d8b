// Placeholder replaced by the shared-memory transport work in progress.
import type { ShmConnectOptions } from "../connect.js";
import type { ClientTransport } from "./types.js";
export function connectShm(_options: ShmConnectOptions): Promise<ClientTransport> {
  return Promise.reject(new Error("shm: not yet"));
}
