import { join } from "node:path";
import type { Server } from "../runtime/index.js";
import { startFloorServers } from "./floors.js";
import { benchBinding, benchServer, echoBinding } from "./rpc-service.js";

/**
 * A server of the RPC benchmark in a process of its own, as users deploy one: bench/peers.ts
 * spawns `node peer.js ROLE CONFIG` (under `taskset` when pinned), reads one line
 * `ready JSON` from its standard output, and ends it by closing its standard input.
 *
 * - `rpc`: for each mode, one server of BENCH_PROG and BENCH_ECHO_PROG (the generated
 *   modules' compiled JavaScript, importing the compiled runtime) listening on TCP, UDP and
 *   a Unix socket — the servers the benchmark's clients call.
 * - `floor`: the raw ping-pong servers (TCP, Unix, UDP) of bench/floors.ts.
 * - `grpc`, `connect`: the Bench service of bench/proto/bench.proto over @grpc/grpc-js and
 *   Connect-ES (bench/grpc.ts).
 *
 * Any failure is printed as `error MESSAGE` and the process exits 1.
 */

export interface RpcPeerConfig {
  /** Per mode: the compiled generated modules of idl/bench.x and bench/echo.x, as file URLs. */
  readonly modules: readonly { readonly mode: string; readonly bench: string; readonly echo: string }[];
  /** Where the Unix sockets go. */
  readonly dir: string;
}

export interface RpcPeerReady {
  /** Per mode: where its server listens (127.0.0.1 for TCP and UDP). */
  readonly servers: Record<string, { readonly tcp: number; readonly udp: number; readonly unix: string }>;
}

export interface FloorPeerConfig {
  readonly unix: string;
}

export type Role = "rpc" | "floor" | "grpc" | "connect";

async function start(role: string, config: unknown): Promise<{ ready: unknown; close: () => Promise<void> }> {
  switch (role) {
    case "rpc": {
      const c = config as RpcPeerConfig;
      const servers: Server[] = [];
      const ready: RpcPeerReady = { servers: {} };
      for (const m of c.modules) {
        const bench = benchBinding((await import(m.bench)) as Record<string, unknown>, m.bench);
        const echo = echoBinding((await import(m.echo)) as Record<string, unknown>, m.echo);
        const server = benchServer(bench, echo);
        servers.push(server);
        const unix = join(c.dir, `rpc-${m.mode}.sock`);
        const tcp = (await server.listen({ transport: "tcp", host: "127.0.0.1" })).port;
        await server.listen({ transport: "unix", path: unix });
        const udp = (await server.listen({ transport: "udp", host: "127.0.0.1" })).port;
        ready.servers[m.mode] = { tcp, udp, unix };
      }
      return { ready, close: async () => void (await Promise.all(servers.map((s) => s.close()))) };
    }
    case "floor": {
      const f = await startFloorServers((config as FloorPeerConfig).unix);
      return { ready: f.address, close: () => f.close() };
    }
    case "grpc":
    case "connect": {
      const g = await import("./grpc.js");
      const s = role === "grpc" ? await g.startGrpcServer() : await g.startConnectServer();
      return { ready: { port: s.port }, close: () => s.close() };
    }
    default:
      throw new Error(`unknown role ${role}; roles: rpc, floor, grpc, connect`);
  }
}

async function main(): Promise<void> {
  const [role = "", json = "{}"] = process.argv.slice(2);
  const { ready, close } = await start(role, JSON.parse(json));
  let closing = false;
  const stop = (): void => {
    if (closing) return;
    closing = true;
    void close().finally(() => process.exit(0));
  };
  // The parent closes our standard input to stop us (or dies, which closes it too).
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  process.on("SIGTERM", stop);
  process.stdout.write(`ready ${JSON.stringify(ready)}\n`);
}

main().catch((e: unknown) => {
  process.stdout.write(`error ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}\n`);
  process.exit(1);
});
