import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { createServer, type CallContext, type HandlersOf, type ServiceDescription } from "../../runtime/index.js";

/**
 * A server in a child process, for the load and fault tests (compiled by harness.ts): the
 * soak measures its heap, the restart test kills it, the namespace test runs it inside a
 * network namespace. It serves the example interface (idl/example.x) with the example's
 * semantics, counts executions, and talks JSON lines: events on stdout, commands on stdin.
 *
 * argv[2] is the configuration (ServerConfig, as JSON). Commands: `stats` (answered by a
 * `stats` event: heap after a forced collection when run with --expose-gc, executions),
 * `reset` (zeroes the counts), `close` (closes the listeners — unregistering from rpcbind —
 * answered by `closed`). Other events: `ready` (its addresses), `error`. It exits when its
 * stdin closes.
 */

export interface ServerConfig {
  /** The compiled example module. */
  readonly example: string;
  readonly listen: readonly { transport: "tcp" | "udp"; host: string; port?: number; rpcbind?: boolean }[];
  /** Count EXPROC_ADD executions per call (transport, peer, xid) and per first argument. */
  readonly track?: boolean;
  /** EXPROC_ADD(a, b) answers after delays[a mod length] ms. */
  readonly delays?: readonly number[];
}

interface Point {
  x: number;
  y: number;
}
interface ExNode {
  value: number;
  next: ExNode | null;
}

const config = JSON.parse(process.argv[2] ?? "{}") as ServerConfig;
const print = (event: string, body: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ event, ...body })}\n`);

process.on("uncaughtException", (e) => {
  print("error", { message: e.stack ?? String(e) });
  process.exit(1);
});

const module = (await import(pathToFileURL(config.example).href)) as Record<string, unknown>;
const service = module.ExampleV1 as ServiceDescription;

/** Executions of every procedure, per transport. */
const executions: Record<string, number> = {};
/** EXPROC_ADD executions per call and per first argument (when tracking). */
const byCall = new Map<string, number>();
const byArgument = new Map<number, number>();
/** Calls held for ever (EXPROC_GREET("hold", n)): they are in progress when the server dies. */
let held = 0;

const executed = (call: CallContext) => void (executions[call.transport] = (executions[call.transport] ?? 0) + 1);
const later = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

const handlers = {
  exprocAdd(a: number, b: number, call: CallContext): number | Promise<number> {
    executed(call);
    if (config.track === true) {
      const key = `${call.transport} ${call.peer} ${call.xid}`;
      byCall.set(key, (byCall.get(key) ?? 0) + 1);
      byArgument.set(a, (byArgument.get(a) ?? 0) + 1);
    }
    const delay = config.delays === undefined || config.delays.length === 0 ? 0 : config.delays[Math.abs(a) % config.delays.length]!;
    return delay > 0 ? later(delay, (a + b) | 0) : (a + b) | 0;
  },
  exprocMove(p: Point, dx: number, dy: number, call: CallContext): Point {
    executed(call);
    return { x: p.x + dx, y: p.y + dy };
  },
  exprocEcho<T>(r: T, call: CallContext): T {
    executed(call);
    return r;
  },
  exprocLookup(id: number, call: CallContext) {
    executed(call);
    return id === 0 ? { status: 1 } : { status: 2, reason: `no ${id}` };
  },
  exprocSum(list: ExNode | null, call: CallContext): number {
    executed(call);
    let sum = 0;
    for (let n = list; n !== null; n = n.next) sum += n.value;
    return sum;
  },
  exprocRange(n: number, call: CallContext): ExNode | null {
    executed(call);
    let head: ExNode | null = null;
    for (let i = n; i >= 1; i--) head = { value: i, next: head };
    return head;
  },
  exprocReverse(data: Uint8Array, call: CallContext): Uint8Array {
    executed(call);
    return data.slice().reverse();
  },
  exprocGreet(s: string, n: number, call: CallContext): string | Promise<string> {
    executed(call);
    if (s === "hold") {
      held++;
      return new Promise<string>(() => {});
    }
    return `${s}!`.repeat(n);
  },
  exprocFail(call: CallContext): never {
    executed(call);
    throw new Error("this procedure always fails");
  },
};

const server = createServer().register(service, handlers as unknown as HandlersOf<ServiceDescription>);
const addresses: { transport: string; host: string; port: number }[] = [];
for (const l of config.listen) {
  const a = await server.listen({ transport: l.transport, host: l.host, port: l.port ?? 0, rpcbind: l.rpcbind === true });
  addresses.push({ transport: l.transport, host: a.host, port: a.port });
}

function stats(): Record<string, unknown> {
  // Collect twice: the first pass may only queue finalizers whose memory the second frees.
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  return {
    gc: globalThis.gc !== undefined,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    rss: m.rss,
    executions,
    held,
    byCall: config.track === true ? Object.fromEntries(byCall) : undefined,
    byArgument: config.track === true ? Object.fromEntries(byArgument) : undefined,
  };
}

createInterface({ input: process.stdin })
  .on("line", (line) => {
    const { cmd } = JSON.parse(line) as { cmd: string };
    if (cmd === "stats") print("stats", stats());
    else if (cmd === "reset") {
      byCall.clear();
      byArgument.clear();
      for (const k of Object.keys(executions)) delete executions[k];
      print("reset");
    }
    else if (cmd === "close") {
      void server.close().then(() => {
        print("closed", stats());
        process.exit(0);
      });
    } else print("error", { message: `unknown command ${cmd}` });
  })
  .on("close", () => process.exit(0));

print("ready", { pid: process.pid, addresses });
