import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../compiler/cli.js";
import {
  formatUniversalAddress,
  netidOf,
  parseUniversalAddress,
  registrationsFor,
} from "../runtime/binding/rpcbind.js";
import { PmapVers, PmapVersClient, type mapping, type PmapVersHandlers, type pmaplist_ptr } from "../runtime/binding/pmap_prot.js";
import { connect, createServer, RpcChannel, rpcbind, RpcError, synthesized, type Server, type ServiceDescription } from "../runtime/index.js";
import { connectStream } from "../runtime/transports/stream.js";
import { exampleCalls, exampleHandlers, loadExample, type Example } from "./example.js";
import { removeDir, repoRoot, tempDir } from "./support.js";

/**
 * Binding through a real rpcbind: servers register (TCP, UDP, Unix sockets) and unregister
 * on close, `rpcinfo` sees them and calls them, clients find them without a port. Uses the
 * rpcbind already running on 127.0.0.1:111, or starts one (`rpcbind -f`) and stops it
 * by its PID afterwards.
 */

const exec = promisify(execFile);
const sbin = (name: string) => (existsSync(`/usr/sbin/${name}`) ? `/usr/sbin/${name}` : name);
const rpcinfoBin = sbin("rpcinfo");
const rpcbindBin = sbin("rpcbind");

/** Runs rpcinfo; resolves to its exit status and output (never rejects on a non-zero exit). */
async function rpcinfo(...args: string[]): Promise<{ status: number; out: string }> {
  try {
    const { stdout, stderr } = await exec(rpcinfoBin, args, { timeout: 20_000 });
    return { status: 0, out: stdout + stderr };
  } catch (e) {
    const { code, stdout, stderr } = e as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof code !== "number") throw e; // rpcinfo missing, or killed by the timeout
    return { status: code, out: `${stdout ?? ""}${stderr ?? ""}` };
  }
}

interface PortmapLine {
  program: number;
  version: number;
  proto: string;
  port: number;
}

/** `rpcinfo -p 127.0.0.1`, parsed ("   program vers proto   port  service"). */
async function portmapList(): Promise<PortmapLine[]> {
  const { status, out } = await rpcinfo("-p", "127.0.0.1");
  expect(status, out).toBe(0);
  return out
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(\w+)\s+(\d+)/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ program: Number(m[1]), version: Number(m[2]), proto: m[3]!, port: Number(m[4]) }));
}

/** Whether something answers portmapper NULL on 127.0.0.1:111 (our own channel and client). */
async function rpcbindAnswers(): Promise<boolean> {
  let channel: RpcChannel | undefined;
  try {
    channel = new RpcChannel(await connectStream({ transport: "tcp", host: "127.0.0.1", port: 111 }));
    await new PmapVersClient(channel, { timeoutMs: 2000 }).pmapprocNull();
    return true;
  } catch {
    return false;
  } finally {
    await channel?.close();
  }
}

let started: ChildProcess | undefined;
let startedOutput = "";

async function ensureRpcbind(): Promise<void> {
  if (await rpcbindAnswers()) return;
  // rpcbind keeps its state files here; it makes the directory itself, but an unwritable or
  // missing /run would fail later, so make sure it is there. No `-w`: a warm start would
  // restore the registrations of servers that are gone.
  mkdirSync("/run/rpcbind", { recursive: true });
  const child = spawn(rpcbindBin, ["-f"], { stdio: ["ignore", "pipe", "pipe"] });
  started = child;
  child.stdout?.on("data", (d: Buffer) => void (startedOutput += d.toString()));
  child.stderr?.on("data", (d: Buffer) => void (startedOutput += d.toString()));
  let exited: string | undefined;
  child.on("error", (e) => void (exited = e.message));
  child.on("exit", (code, signal) => void (exited ??= `exited with ${code ?? signal}`));
  for (let i = 0; i < 100; i++) {
    if (exited !== undefined) throw new Error(`could not start ${rpcbindBin} -f: ${exited}\n${startedOutput}`);
    if (await rpcbindAnswers()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${rpcbindBin} -f (pid ${child.pid}) did not answer on 127.0.0.1:111 within 10 s\n${startedOutput}`);
}

async function stopRpcbind(): Promise<void> {
  const child = started;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  process.kill(child.pid!, "SIGTERM");
  const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 5000);
  await gone;
  clearTimeout(timer);
}

let example: Example;
const sockets = tempDir("rpcbind");

beforeAll(async () => {
  example = await loadExample("synthesized");
  await ensureRpcbind();
});

afterAll(async () => {
  await stopRpcbind();
  removeDir(sockets);
});

const program = 0x20000101; // EXAMPLE_PROG
const version = 1;

describe("universal addresses", () => {
  it("formats an address and port as h1.h2.h3.h4.p1.p2", () => {
    expect(formatUniversalAddress("127.0.0.1", 111)).toBe("127.0.0.1.0.111");
    expect(formatUniversalAddress("127.0.0.1", 1025)).toBe("127.0.0.1.4.1");
    expect(formatUniversalAddress("0.0.0.0", 65535)).toBe("0.0.0.0.255.255");
    expect(formatUniversalAddress("::1", 2049)).toBe("::1.8.1");
    expect(() => formatUniversalAddress("127.0.0.1", 65536)).toThrow(/not in \[0, 65535\]/);
    expect(() => formatUniversalAddress("localhost", 1)).toThrow(/not an IPv4 or IPv6 address/);
  });

  it("parses one back, and refuses what is not one", () => {
    expect(parseUniversalAddress("127.0.0.1.4.1")).toEqual({ host: "127.0.0.1", port: 1025 });
    expect(parseUniversalAddress("0.0.0.0.0.111")).toEqual({ host: "0.0.0.0", port: 111 });
    expect(parseUniversalAddress("::.8.1")).toEqual({ host: "::", port: 2049 });
    expect(parseUniversalAddress("fe80::1.255.255")).toEqual({ host: "fe80::1", port: 65535 });
    for (const port of [0, 1, 255, 256, 40000, 65535]) expect(parseUniversalAddress(formatUniversalAddress("10.1.2.3", port)).port).toBe(port);
    for (const bad of ["", "127.0.0.1", "127.0.0.1.1", "127.0.0.1.256.1", "127.0.0.1.1.256", "host.1.2", "/run/rpcbind.sock"]) {
      expect(() => parseUniversalAddress(bad), bad).toThrow(/is not a universal address/);
    }
  });

  it("names the netid and builds one mapping per program version", () => {
    expect(netidOf("tcp", "127.0.0.1")).toBe("tcp");
    expect(netidOf("udp", "::1")).toBe("udp6");
    expect(netidOf("unix", "")).toBe("local");
    const s = (v: number) => synthesized.service({ program: 7, version: v, name: `V${v}`, procedures: {} });
    expect(registrationsFor([s(1), s(2), s(1)], "udp", { host: "127.0.0.1", port: 515 })).toEqual([
      { program: 7, version: 1, netid: "udp", uaddr: "127.0.0.1.2.3", port: 515, prot: 17 },
      { program: 7, version: 2, netid: "udp", uaddr: "127.0.0.1.2.3", port: 515, prot: 17 },
    ]);
    expect(registrationsFor([s(1)], "unix", { host: "", port: 0, path: "/tmp/x.sock" })).toEqual([
      { program: 7, version: 1, netid: "local", uaddr: "/tmp/x.sock", port: 0, prot: undefined },
    ]);
  });
});

describe("the generated binding code", () => {
  // As `npm run binding:update` runs the compiler (package.json): keep the two in step.
  const sources = ["/usr/include/tirpc/rpc/rpcb_prot.x", join(repoRoot, "idl/pmap_prot.x")];
  const args = ["--mode", "synthesized", "--runtime", "../stub/index.js"];

  it("is what the compiler generates today (run `npm run binding:update`)", async () => {
    const out = tempDir("binding");
    try {
      let stderr = "";
      const status = await main([...sources, ...args, "--out", out], { stdout: () => {}, stderr: (t) => void (stderr += t) });
      expect(stderr).toBe("");
      expect(status).toBe(0);
      const generated = readdirSync(out).sort();
      expect(generated).toEqual(["pmap_prot.ts", "rpcb_prot.ts"]);
      for (const name of generated) {
        const committed = readFileSync(join(repoRoot, "runtime/binding", name), "utf8");
        expect(committed, `runtime/binding/${name} is stale`).toBe(readFileSync(join(out, name), "utf8"));
      }
      // Every generated file committed there comes from a source listed here.
      const committedGenerated = readdirSync(join(repoRoot, "runtime/binding"))
        .filter((f) => f.endsWith(".ts") && readFileSync(join(repoRoot, "runtime/binding", f), "utf8").startsWith("// @generated"))
        .sort();
      expect(committedGenerated).toEqual(generated);
    } finally {
      removeDir(out);
    }
  });
});

describe("with rpcbind on 127.0.0.1", () => {
  const servers: Server[] = [];
  afterAll(async () => {
    await Promise.allSettled(servers.map((s) => s.close()));
  });
  const serve = () => {
    const s = createServer().register(example.service, exampleHandlers());
    servers.push(s);
    return s;
  };
  const ours = async () => (await portmapList()).filter((l) => l.program === program && l.version === version);

  it("registers a TCP listener: rpcinfo lists and calls it, connect finds it, close unregisters it", async () => {
    const server = serve();
    const { port } = await server.listen({ transport: "tcp", rpcbind: true });
    expect(await ours()).toContainEqual({ program, version, proto: "tcp", port });

    const ping = await rpcinfo("-t", "127.0.0.1", String(program), String(version));
    expect(ping.out).toContain(`program ${program} version ${version} ready and waiting`);
    expect(ping.status).toBe(0);

    expect(await rpcbind.lookupPort("127.0.0.1", program, version, "tcp")).toBe(port);
    const channel = await connect({ transport: "tcp", service: example.service });
    try {
      await exampleCalls(example.client(channel));
    } finally {
      await channel.close();
    }

    await server.close();
    expect((await ours()).filter((l) => l.proto === "tcp")).toEqual([]);
    const gone = await rpcinfo("-t", "127.0.0.1", String(program), String(version));
    expect(gone.status).not.toBe(0);
  });

  it("registers a UDP listener: rpcinfo -u calls it, connect finds it, close unregisters it", async () => {
    const server = serve();
    const { port } = await server.listen({ transport: "udp", rpcbind: true });
    expect(await ours()).toContainEqual({ program, version, proto: "udp", port });

    const ping = await rpcinfo("-u", "127.0.0.1", String(program), String(version));
    expect(ping.out).toContain(`program ${program} version ${version} ready and waiting`);
    expect(ping.status).toBe(0);

    expect(await rpcbind.lookupPort("127.0.0.1", program, version, "udp")).toBe(port);
    const channel = await connect({ transport: "udp", service: example.service, retransmitMs: 200 });
    try {
      expect(await example.client(channel).exprocAdd(20, 22)).toBe(42);
      expect(await example.client(channel).exprocGreet("udp", 2)).toBe("udp!udp!");
    } finally {
      await channel.close();
    }

    await server.close();
    expect((await ours()).filter((l) => l.proto === "udp")).toEqual([]);
  });

  it("registers TCP and UDP of one server side by side, and close drops both", async () => {
    const server = serve();
    const tcp = await server.listen({ transport: "tcp", rpcbind: true });
    const udp = await server.listen({ transport: "udp", rpcbind: true });
    expect(await ours()).toEqual(
      expect.arrayContaining([
        { program, version, proto: "tcp", port: tcp.port },
        { program, version, proto: "udp", port: udp.port },
      ]),
    );
    expect(await rpcbind.lookupPort("127.0.0.1", program, version, "tcp")).toBe(tcp.port);
    expect(await rpcbind.lookupPort("127.0.0.1", program, version, "udp")).toBe(udp.port);
    await server.close();
    expect(await ours()).toEqual([]);
  });

  it("replaces a stale registration, and closing leaves a successor's alone", async () => {
    // A crashed server's mapping (a port nobody listens on).
    const stale = registrationsFor([example.service], "tcp", { host: "127.0.0.1", port: 9 });
    const session = await rpcbind.open([{ host: "127.0.0.1" }]);
    try {
      await session.unset(stale[0]!);
      expect(await session.set(stale[0]!)).toBe(true);
    } finally {
      await session.close();
    }
    expect(await rpcbind.lookupPort("127.0.0.1", program, version, "tcp")).toBe(9);

    const first = serve();
    const a = await first.listen({ transport: "tcp", rpcbind: true });
    expect(await rpcbind.lookupPort("127.0.0.1", program, version, "tcp")).toBe(a.port);
    const second = serve();
    const b = await second.listen({ transport: "tcp", rpcbind: true });
    expect(await rpcbind.lookupPort("127.0.0.1", program, version, "tcp")).toBe(b.port);
    await first.close(); // its mapping was replaced: it must not drop the second server's
    expect(await rpcbind.lookupPort("127.0.0.1", program, version, "tcp")).toBe(b.port);
    await second.close();
    expect(await ours()).toEqual([]);
  });

  it("registers a Unix-socket listener as netid local with its path", async () => {
    const server = serve();
    const path = join(sockets, "example.sock");
    await server.listen({ transport: "unix", path, rpcbind: true });
    const listed = await rpcinfo("127.0.0.1");
    expect(listed.status).toBe(0);
    expect(listed.out).toMatch(new RegExp(`^\\s*${program}\\s+${version}\\s+local\\s+${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s`, "m"));
    await server.close();
    expect((await rpcinfo("127.0.0.1")).out).not.toContain(path);
  });

  it.each([4, 3, 2] as const)("speaks rpcbind version %i: SET, lookups, DUMP, UNSET", async (v) => {
    const prog = 0x20000102;
    const service: ServiceDescription = { ...example.service, program: prog };
    const options = { endpoints: [{ host: "127.0.0.1" }], versions: [v] };
    const unregister = [
      await rpcbind.register([service], "tcp", { host: "127.0.0.1", port: 4242 }, options),
      await rpcbind.register([service], "udp", { host: "127.0.0.1", port: 4243 }, options),
    ];
    try {
      expect(await portmapList()).toEqual(
        expect.arrayContaining([
          { program: prog, version: 1, proto: "tcp", port: 4242 },
          { program: prog, version: 1, proto: "udp", port: 4243 },
        ]),
      );
      for (const over of ["tcp", "udp"] as const) {
        const session = await rpcbind.open([{ host: "127.0.0.1", transport: over }], [v]);
        try {
          for (const [netid, port] of [["tcp", 4242], ["udp", 4243]] as const) {
            if (v === 3 && netid !== over) {
              // v3 GETADDR answers for the transport it is asked over, whatever r_netid says.
              await expect(session.lookup(prog, 1, netid)).rejects.toThrow(/answers for the netid it is asked over/);
            } else {
              expect(await session.lookup(prog, 1, netid)).toBe(port);
              expect(session.used).toBe(v);
            }
          }
          // Version 2 of the program is not registered: GETADDRLIST says so; GETPORT and
          // GETADDR answer with version 1's address (rpcbind's find_service), for the server
          // to answer PROG_MISMATCH.
          expect(await session.lookup(prog, 2, over)).toBe(v === 4 ? 0 : over === "tcp" ? 4242 : 4243);
          expect(await session.lookup(prog + 1, 1, over)).toBe(0);
          expect(await session.dump()).toEqual(
            expect.arrayContaining([
              expect.objectContaining({ program: prog, version: 1, netid: "tcp", port: 4242 }),
              expect.objectContaining({ program: prog, version: 1, netid: "udp", port: 4243 }),
            ]),
          );
        } finally {
          await session.close();
        }
      }
    } finally {
      for (const u of unregister) await u();
    }
    expect((await portmapList()).filter((l) => l.program === prog)).toEqual([]);
  });

  it("falls back to portmapper v2 where rpcbind v3/v4 is unavailable (a portmapper of our own)", async () => {
    // A v2-only portmapper built from the generated handler interface: v3/v4 calls get PROG_MISMATCH.
    const table: mapping[] = [];
    const log: string[] = [];
    const same = (a: mapping, b: mapping) => a.prog === b.prog && a.vers === b.vers;
    const handlers: PmapVersHandlers = {
      pmapprocSet: (m) => (log.push(`SET ${m.prot} ${m.port}`), table.some((t) => same(t, m) && t.prot === m.prot) ? false : (table.push(m), true)),
      pmapprocUnset: (m) => {
        log.push("UNSET");
        const before = table.length;
        table.splice(0, table.length, ...table.filter((t) => !same(t, m)));
        return table.length < before;
      },
      pmapprocGetport: (m) => (log.push(`GETPORT ${m.prot}`), table.find((t) => same(t, m) && t.prot === m.prot)?.port ?? 0),
      pmapprocDump: () => table.reduceRight<pmaplist_ptr>((next, map) => ({ map, next }), null),
      pmapprocCallit: () => ({ port: 0, res: new Uint8Array(0) }),
    };
    const portmapper = createServer().register(PmapVers, handlers);
    servers.push(portmapper);
    const { port } = await portmapper.listen({ transport: "tcp" });
    const options = { endpoints: [{ host: "127.0.0.1", port }] };
    table.push({ prog: program, vers: version, prot: 6, port: 9 }); // a stale TCP mapping

    const tcp = await rpcbind.register([example.service], "tcp", { host: "127.0.0.1", port: 5000 }, options);
    const udp = await rpcbind.register([example.service], "udp", { host: "127.0.0.1", port: 5001 }, options);
    expect(table).toEqual([
      { prog: program, vers: version, prot: 6, port: 5000 },
      { prog: program, vers: version, prot: 17, port: 5001 },
    ]);
    // The stale TCP mapping was unset (v2 UNSET drops both protocols: only because there was one).
    expect(log).toEqual(["GETPORT 6", "UNSET", "SET 6 5000", "GETPORT 17", "SET 17 5001"]);
    await expect(rpcbind.register([example.service], "unix", { host: "", port: 0, path: "/tmp/x.sock" }, options)).rejects.toThrow(
      /portmapper v2 at 127\.0\.0\.1:\d+ cannot register netid local/,
    );
    await udp();
    await tcp();
    expect(table).toEqual([]);
  });

  it("says clearly when a program is not registered", async () => {
    const error = await rpcbind.lookupPort("127.0.0.1", 0x20000101 + 0x1000, 1, "tcp").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).status).toBe("PROG_UNAVAIL");
    expect((error as RpcError).message).toBe("RPC PROG_UNAVAIL: program 0x20001101 version 1 is not registered with rpcbind at 127.0.0.1 for tcp");
    const unconnected = await connect({ transport: "udp", service: { ...example.service, program: 0x20001101 } }).catch((e: unknown) => e);
    expect((unconnected as RpcError).status).toBe("RPCBIND_UNAVAILABLE");
    expect((unconnected as Error).message).toBe(
      "RPC RPCBIND_UNAVAILABLE: cannot look up the port of program 0x20001101 version 1 over udp: RPC PROG_UNAVAIL: program 0x20001101 version 1 is not registered with rpcbind at 127.0.0.1 for udp",
    );
    expect(((unconnected as Error).cause as RpcError).status).toBe("PROG_UNAVAIL");
  });

  it("reports an unreachable rpcbind as RPCBIND_UNAVAILABLE, the OS error as its cause", async () => {
    const error = await rpcbind.open([{ host: "127.0.0.1", port: 1 }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).status).toBe("RPCBIND_UNAVAILABLE");
    expect((error as RpcError).message).toMatch(/^RPC RPCBIND_UNAVAILABLE: cannot reach rpcbind \(127\.0\.0\.1:1: .*ECONNREFUSED/);
    expect((error as RpcError).cause).toMatchObject({ code: "ECONNREFUSED" });
  });
});

describe("the test's own rpcbind", () => {
  it("was reused or started, and is answering", async () => {
    expect(await rpcbindAnswers()).toBe(true);
    if (started !== undefined) expect(started.pid).toBeGreaterThan(0);
  });
});
