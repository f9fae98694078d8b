import { pathToFileURL } from "node:url";
import { connect, RpcError, type Channel, type ServiceDescription } from "../../runtime/index.js";

/**
 * A client in a child process, for the namespace test (compiled by harness.ts): it runs in
 * the other network namespace than the server, finds the server through rpcbind there (no
 * port given) and makes EXPROC_ADD(a, salt) calls for a = first … first + count − 1, each
 * argument exactly once, spread over several channels with several calls outstanding on
 * each. It checks every result and prints one `done` event (JSON line) with what it saw:
 * results that were wrong, calls that failed, latencies. `connected` is printed once every
 * channel is open, before the first call; `error` if one cannot be opened.
 */

export interface ClientConfig {
  readonly example: string;
  readonly transport: "tcp" | "udp";
  readonly host: string;
  /** Without a port, the port is looked up at rpcbind on `host`. */
  readonly port?: number;
  readonly channels: number;
  /** Calls outstanding at once on each channel. */
  readonly concurrency: number;
  readonly first: number;
  readonly count: number;
  readonly salt: number;
  readonly timeoutMs: number;
  readonly retransmitMs?: number;
  readonly maxRetransmitMs?: number;
}

const config = JSON.parse(process.argv[2] ?? "{}") as ClientConfig;
const print = (event: string, body: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ event, ...body })}\n`);

process.on("uncaughtException", (e) => {
  print("error", { message: e.stack ?? String(e) });
  process.exit(1);
});

interface AddClient {
  exprocAdd(a: number, b: number): Promise<number>;
}

const module = (await import(pathToFileURL(config.example).href)) as Record<string, unknown>;
const service = module.ExampleV1 as ServiceDescription;
const Client = module.ExampleV1Client as new (channel: Channel, options: { timeoutMs: number }) => AddClient;

const channels: Channel[] = [];
try {
  for (let i = 0; i < config.channels; i++) {
    channels.push(
      await connect({
        transport: config.transport,
        host: config.host,
        ...(config.port === undefined ? { service } : { port: config.port }),
        retransmitMs: config.retransmitMs,
        maxRetransmitMs: config.maxRetransmitMs,
        // Every worker's call outstanding at once (over the 128 a UDP channel keeps by default).
        maxOutstanding: config.concurrency,
      }),
    );
  }
} catch (e) {
  // Reported as an event, for a test that expects the lookup or the connection to fail.
  print("error", { message: e instanceof Error ? e.message : String(e), status: e instanceof RpcError ? e.status : undefined });
  process.exit(1);
}
print("connected", { channels: channels.length });

const wrong: { a: number; got: number }[] = [];
const failed: { a: number; status: string; message: string; afterMs: number }[] = [];
const latencies: number[] = [];
let next = 0;
const started = performance.now();

async function worker(client: AddClient): Promise<void> {
  while (next < config.count) {
    const a = config.first + next++;
    const t = performance.now();
    try {
      const sum = await client.exprocAdd(a, config.salt);
      latencies.push(performance.now() - t);
      if (sum !== ((a + config.salt) | 0)) wrong.push({ a, got: sum });
    } catch (e) {
      failed.push({
        a,
        status: e instanceof RpcError ? e.status : "not an RpcError",
        message: e instanceof Error ? e.message : String(e),
        afterMs: Math.round(performance.now() - t),
      });
    }
  }
}

const workers: Promise<void>[] = [];
for (const channel of channels) {
  const client = new Client(channel, { timeoutMs: config.timeoutMs });
  for (let i = 0; i < config.concurrency; i++) workers.push(worker(client));
}
await Promise.all(workers);
const elapsedMs = performance.now() - started;
await Promise.all(channels.map((c) => c.close()));
latencies.sort((x, y) => x - y);
const at = (p: number) => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]!);
print("done", {
  completed: latencies.length,
  wrong,
  failed,
  elapsedMs: Math.round(elapsedMs),
  p50Ms: at(50),
  p99Ms: at(99),
  maxMs: at(100),
});
process.exit(0);
