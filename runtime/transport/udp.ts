// Placeholder replaced by the UDP transport work in progress.
import type { Dispatcher, ListenOptions, Listener } from "../server.js";
import type { ClientTransport } from "./types.js";
export function connectUdp(_options: { host: string; port: number; maxMessageBytes?: number | undefined }): Promise<ClientTransport> {
  return Promise.reject(new Error("udp: not yet"));
}
export function listenUdp(_server: Dispatcher, _options: ListenOptions): Promise<Listener> {
  return Promise.reject(new Error("udp: not yet"));
}
