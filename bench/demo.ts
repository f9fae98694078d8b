import { execFile } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { generate as generateModules, modes, type Mode } from "../compiler/compile.js";
import {
  connect,
  createServer,
  type CallRecord,
  type Channel,
  type CopyCounts,
  type Phases,
  type Server,
  type ServiceDescription,
  type TransportKind,
} from "../runtime/index.js";
import { exampleHandlers } from "./demo-handlers.js";

/**
 * `npm run demo`: compiles idl/example.x in all three marshaling modes, serves it over every
 * transport, and shows for one call — a 1440-byte argument and a 1440-byte result — how
 * many copies each layer made, how many bytes they moved, and where the microseconds went.
 * Needs nothing else running; if an rpcbind answers on 127.0.0.1 the TCP and UDP servers
 * register with it and the clients find them through it.
 */

const root = fileURLToPath(new URL("../../../", import.meta.url));
const outDir = join(root, ".tmp", "demo");
const runtimeEntry = fileURLToPath(new URL("../runtime/index.js", import.meta.url));
const workerModule = new URL("./demo-handlers.js", import.meta.url);
const exec = promisify(execFile);

const transports: TransportKind[] = ["inproc", "shm", "unix", "tcp", "udp"];
const warmup = 300;
const measured = 500;
const payload = Uint8Array.from({ length: 1440 }, (_, i) => (i * 7) & 0xff);

interface ExampleClient {
  exprocReverse(data: Uint8Array): Promise<Uint8Array>;
}

interface Loaded {
  readonly service: ServiceDescription;
  readonly Client: new (channel: Channel) => ExampleClient;
  readonly path: string;
}

/** Generates and compiles the example module in every mode, as a user would with rpcgen and tsc. */
async function generate(): Promise<Map<Mode, Loaded>> {
  rmSync(outDir, { recursive: true, force: true });
  const file = join(root, "idl", "example.x");
  for (const mode of modes) {
    const dir = join(outDir, mode);
    mkdirSync(dir, { recursive: true });
    let runtimeModule = relative(dir, runtimeEntry).split("\\").join("/");
    if (!runtimeModule.startsWith(".")) runtimeModule = `./${runtimeModule}`;
    const { outputs, diagnostics } = await generateModules({ files: [file], mode, runtimeModule });
    if (outputs.length !== 1) throw new Error(`idl/example.x does not compile:\n${diagnostics.map((d) => d.text).join("")}`);
    writeFileSync(join(dir, outputs[0]!.path), outputs[0]!.text);
  }
  const config = {
    compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: true, types: [] },
    include: modes.map((m) => `${m}/example.ts`),
  };
  writeFileSync(join(outDir, "tsconfig.json"), JSON.stringify(config));
  await exec(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(outDir, "tsconfig.json")]);
  const loaded = new Map<Mode, Loaded>();
  for (const mode of modes) {
    const path = join(outDir, mode, "example.js");
    const m = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    loaded.set(mode, {
      service: m.ExampleV1 as ServiceDescription,
      Client: m.ExampleV1Client as Loaded["Client"],
      path,
    });
  }
  return loaded;
}

/** Whether an rpcbind listens on 127.0.0.1:111. */
function rpcbindRunning(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: "127.0.0.1", port: 111 });
    s.setTimeout(300, () => (s.destroy(), resolve(false)));
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

interface Run {
  readonly mode: Mode;
  readonly transport: TransportKind;
  readonly called: CallRecord[];
  readonly served: CallRecord[];
  readonly note: string;
}

async function bind(
  transport: TransportKind,
  example: Loaded,
  onCall: (r: CallRecord) => void,
  onServe: (r: CallRecord) => void,
  rpcbind: boolean,
): Promise<{ channel: Channel; server: Server | undefined; note: string }> {
  if (transport === "shm") {
    const channel = await connect({ transport, module: workerModule, data: { module: pathToFileURL(example.path).href }, services: [example.service], onCall });
    return { channel, server: undefined, note: "server in a worker thread" };
  }
  const server = createServer({ onServe }).register(example.service, exampleHandlers());
  switch (transport) {
    case "inproc":
      return { channel: await connect({ transport, server, onCall }), server, note: "" };
    case "unix": {
      const path = join(outDir, `${example.service.path.mode}.sock`);
      await server.listen({ transport, path });
      return { channel: await connect({ transport, path, onCall }), server, note: "" };
    }
    default: {
      const { port } = await server.listen({ transport, rpcbind });
      const channel = rpcbind
        ? await connect({ transport, service: example.service, onCall })
        : await connect({ transport, port, onCall });
      return { channel, server, note: rpcbind ? "found through rpcbind" : "" };
    }
  }
}

async function measure(mode: Mode, transport: TransportKind, example: Loaded, rpcbind: boolean): Promise<Run> {
  const called: CallRecord[] = [];
  const served: CallRecord[] = [];
  let recording = false;
  const { channel, server, note } = await bind(
    transport,
    example,
    (r) => recording && called.push(r),
    (r) => recording && served.push(r),
    rpcbind,
  );
  try {
    const client = new example.Client(channel);
    const expected = payload.slice().reverse();
    for (let i = 0; i < warmup + measured; i++) {
      recording = i >= warmup;
      const reply = await client.exprocReverse(payload);
      if (reply.length !== expected.length || reply[0] !== expected[0] || reply[1439] !== expected[1439]) {
        throw new Error(`${mode}/${transport}: wrong reply`);
      }
    }
  } finally {
    await channel.close();
    await server?.close();
  }
  return { mode, transport, called, served, note };
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

const us = (ns: number | undefined) => (ns === undefined ? "—" : (ns / 1000).toFixed(1));
const counts = (c: CopyCounts) => `${c.stub}/${c.runtime}/${c.wire}`;

function phase(records: CallRecord[], name: keyof Phases): number | undefined {
  return median(records.flatMap((r) => (r.phases[name] === undefined ? [] : [r.phases[name]!])));
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")).join("\n");
}

async function main(): Promise<void> {
  console.log("rpcgen-ts demo: EXPROC_REVERSE(opaque<1440>) returns opaque<1440>, idl/example.x\n");
  const loaded = await generate();
  const rpcbind = await rpcbindRunning();
  console.log(rpcbind ? "rpcbind found on 127.0.0.1: tcp and udp servers register there.\n" : "No rpcbind running: tcp and udp use the ports the servers got.\n");

  const runs: Run[] = [];
  for (const transport of transports) {
    for (const mode of modes) {
      try {
        runs.push(await measure(mode, transport, loaded.get(mode)!, rpcbind));
      } catch (e) {
        console.log(`${mode} over ${transport}: ${(e as Error).message}`);
      }
    }
  }

  const header = [
    "mode", "transport", "copies s/r/w", "bytes s/r/w", "total µs",
    "call", "send", "transit", "resume", "| receive", "dispatch", "execute", "reply",
  ];
  const rows = [header];
  for (const run of runs) {
    const last = run.called[run.called.length - 1]!;
    const total = median(run.called.map((r) => (r.phases.call ?? 0) + (r.phases.send ?? 0) + (r.phases.transit ?? 0) + (r.phases.resume ?? 0)));
    rows.push([
      run.mode,
      run.transport,
      counts(last.copies),
      counts(last.bytesCopied),
      us(total),
      us(phase(run.called, "call")),
      us(phase(run.called, "send")),
      us(phase(run.called, "transit")),
      us(phase(run.called, "resume")),
      `| ${us(phase(run.served, "receive"))}`,
      us(phase(run.served, "dispatch")),
      us(phase(run.served, "execute")),
      us(phase(run.served, "reply")),
    ]);
  }
  console.log(table(rows));
  console.log(
    [
      "",
      `Copies and bytes are the client's, for one call (both directions): s/r/w = stub / runtime / wire.`,
      `Latency phases are medians of ${measured} calls, in µs; client phases left of |, server phases right`,
      `(the shm server runs in a worker thread, whose phases are not visible here). transit includes the`,
      `server's time. Notes: ${runs.filter((r) => r.note !== "").map((r) => `${r.transport}: ${r.note}`).filter((v, i, a) => a.indexOf(v) === i).join("; ") || "none"}.`,
    ].join("\n"),
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
