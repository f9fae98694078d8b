import { createServer, type CallRecord, type HandlersOf, type Server } from "../runtime/index.js";
import { benchBinding, benchHandlers, type BenchService } from "./rpc-service.js";

/**
 * The server process of the latency-phase section (bench/phases.ts): forked with an IPC
 * channel, it serves idl/bench.x in every mode over TCP, UDP and a Unix socket, as the RPC
 * section's server process does, but with an `onServe` hook that keeps each served call's
 * server phases and copies until the parent takes them. The parent pairs them with its own
 * client records by xid.
 *
 * Messages in: `{ type: "start", modules, dir }`, `{ type: "take" }`, `{ type: "stop" }`.
 * Out: `{ type: "ready", servers }`, `{ type: "records", records }`, `{ type: "error", message }`.
 */

export interface PhasePeerStart {
  readonly type: "start";
  /** Per mode: the compiled generated module of idl/bench.x, as a file URL. */
  readonly modules: readonly { readonly mode: string; readonly href: string }[];
  /** Where the Unix sockets go. */
  readonly dir: string;
}

/** One served call, as the parent needs it. */
export interface ServedRow {
  readonly key: string;
  readonly xid: number;
  readonly phases: readonly [receive: number, dispatch: number, execute: number, reply: number];
  readonly copies: readonly [stub: number, runtime: number, wire: number];
  readonly bytes: readonly [stub: number, runtime: number, wire: number];
}

/** Records kept between two takes, at most: a parent that never takes cannot grow this process without bound. */
const MAX_ROWS = 100_000;

export function servedRow(r: CallRecord): ServedRow {
  const p = r.phases;
  return {
    key: `${r.mode}/${r.transport}`,
    xid: r.xid,
    phases: [p.receive ?? 0, p.dispatch ?? 0, p.execute ?? 0, p.reply ?? 0],
    copies: [r.copies.stub, r.copies.runtime, r.copies.wire],
    bytes: [r.bytesCopied.stub, r.bytesCopied.runtime, r.bytesCopied.wire],
  };
}

async function start(m: PhasePeerStart, rows: ServedRow[]): Promise<{ ready: Record<string, { tcp: number; udp: number; unix: string }>; servers: Server[] }> {
  const servers: Server[] = [];
  const ready: Record<string, { tcp: number; udp: number; unix: string }> = {};
  const onServe = (r: CallRecord): void => {
    if (rows.length < MAX_ROWS) rows.push(servedRow(r));
  };
  for (const { mode, href } of m.modules) {
    const { service } = benchBinding((await import(href)) as Record<string, unknown>, href);
    const server = createServer({ onServe }).register(service, benchHandlers() as unknown as HandlersOf<BenchService>);
    servers.push(server);
    const unix = `${m.dir}/phases-${mode}.sock`;
    const tcp = (await server.listen({ transport: "tcp", host: "127.0.0.1" })).port;
    await server.listen({ transport: "unix", path: unix });
    const udp = (await server.listen({ transport: "udp", host: "127.0.0.1" })).port;
    ready[mode] = { tcp, udp, unix };
  }
  return { ready, servers };
}

function main(): void {
  const send = (m: unknown): void => void process.send?.(m);
  if (process.send === undefined) {
    process.stderr.write("phase-peer: start me with an IPC channel (child_process.fork)\n");
    process.exit(2);
  }
  const rows: ServedRow[] = [];
  let servers: Server[] = [];
  const stop = (): void => {
    void Promise.allSettled(servers.map((s) => s.close())).finally(() => process.exit(0));
  };
  process.on("message", (msg: { type?: string }) => {
    switch (msg.type) {
      case "start":
        start(msg as PhasePeerStart, rows).then(
          (r) => {
            servers = r.servers;
            send({ type: "ready", servers: r.ready });
          },
          (e: unknown) => send({ type: "error", message: e instanceof Error ? e.message : String(e) }),
        );
        break;
      case "take": {
        // The hook holds this array: empty it in place.
        send({ type: "records", records: rows.splice(0) });
        break;
      }
      case "stop":
        stop();
        break;
      default:
        send({ type: "error", message: `phase-peer: unknown message ${JSON.stringify(msg).slice(0, 80)}` });
    }
  });
  // The parent gone (its IPC channel closed) is a stop too.
  process.on("disconnect", stop);
}

main();
