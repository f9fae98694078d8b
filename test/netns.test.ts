import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClientConfig } from "./faults/client.js";
import { buildChildren, Child, nodeBin, type Built, type ChildEvent } from "./faults/harness.js";
import type { ServerConfig } from "./faults/server.js";

/**
 * At-most-once across hosts. Two network namespaces the test creates, A and B, joined by a
 * veth pair (10.200.0.1/30 in A, 10.200.0.2/30 in B; the addresses exist only inside them,
 * so nothing leaves the machine). In A run an rpcbind and a server (test/faults/server.ts)
 * that registers its UDP and TCP ports with it; in B a client (test/faults/client.ts) that
 * finds the server through that rpcbind (connect without a port) and calls it. nftables
 * rules drop a share of the server's packets in each direction, as they arrive (in A what
 * goes to the server, in B what comes from it; `numgen random` is the kernel's generator,
 * not seeded: what is checked holds for any pattern of loss, and the rules' counters show
 * the loss really happened). Checked, from the server's count of executions per call (peer
 * address and port, xid) and per argument:
 *   - over UDP, with 20 % of calls and 20 % of replies lost, every call completes within its
 *     timeout and runs exactly once (retransmissions of answered calls are answered from the
 *     duplicate-request cache; those of calls still running are dropped);
 *   - over TCP, through the same loss, every call completes and runs once (TCP recovers);
 *   - over UDP, with every reply lost for 6 s while 2,112 calls are outstanding, each call
 *     runs once and completes once the replies get through again.
 *
 * rpcbind keeps its Unix socket and lock file under /run (/run/rpcbind.sock,
 * /run/rpcbind.lock), which network namespaces do not separate: an rpcbind started in A
 * would take over the host's socket path, and the server would register through it with
 * whichever rpcbind owns it. So rpcbind runs in a mount namespace of its own with a private
 * tmpfs on /run (`unshare --mount --propagation private`, nothing propagates back to the
 * host), and the server joins that mount namespace and A's network namespace
 * (`nsenter --target <rpcbind's pid> --mount --net`): it registers over the Unix socket, as a
 * server on a real host does. The client in B reaches rpcbind over TCP at 10.200.0.1:111.
 *
 * Needs root, iproute2, nftables, util-linux and rpcbind; where a namespace cannot be
 * created the tests are skipped with the reason printed.
 */

const sbin = (name: string) => ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map((d) => `${d}/${name}`).find((p) => existsSync(p));
const tools = { ip: sbin("ip"), nft: sbin("nft"), nsenter: sbin("nsenter"), unshare: sbin("unshare"), rpcbind: sbin("rpcbind"), rpcinfo: sbin("rpcinfo") };
const tool = (name: keyof typeof tools) => tools[name]!;

interface Ran {
  status: number | null;
  out: string;
}

/** Runs a command to its end (at most `ms`, then SIGKILL); never rejects. */
function run(command: string, args: readonly string[], input?: string, ms = 20_000): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => void (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => void (out += d.toString()));
    const timer = setTimeout(() => {
      out += `\n[${command} killed after ${ms} ms]`;
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    }, ms);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ status: null, out: `${out}${e.message}` });
    });
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
    child.stdin.on("error", () => {}); // a command that exits without reading its input
    child.stdin.end(input ?? "");
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs a command that must succeed. */
async function must(command: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(command, args, input);
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${r.status}):\n${r.out}`);
  return r.out;
}

/** Why the namespaces cannot be made here, or undefined when they can. */
async function unavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return "network namespaces are Linux only";
  if (process.getuid?.() !== 0) return "not root: creating network namespaces needs CAP_SYS_ADMIN";
  const missing = Object.entries(tools).filter(([, path]) => path === undefined);
  if (missing.length > 0) return `not installed: ${missing.map(([n]) => n).join(", ")} (Debian packages iproute2, nftables, util-linux, rpcbind)`;
  const probe = `rpcgen-ts-probe-${process.pid}`;
  const added = await run(tool("ip"), ["netns", "add", probe]);
  if (added.status !== 0) return `ip netns add failed: ${added.out.trim()}`;
  await run(tool("ip"), ["netns", "delete", probe]);
  return undefined;
}

const skipped = await unavailable();
if (skipped !== undefined) console.warn(`test/netns.test.ts SKIPPED: ${skipped}`);

const suffix = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
const nsA = `rpcgen-ts-a-${suffix}`;
const nsB = `rpcgen-ts-b-${suffix}`;
const serverHost = "10.200.0.1";
const clientHost = "10.200.0.2";
const lossPercent = 20;
const EXAMPLE_PROG = 0x20000101;
const table = "rpcgen_ts_loss";

let built: Built | undefined;
/** The shell that keeps rpcbind, and rpcbind's own pid. */
let rpcbind: Child | undefined;
let rpcbindPid: number | undefined;
let server: Child | undefined;
const clients: Child[] = [];
const namespaces: string[] = [];
let ports: { tcp: number; udp: number };

async function setUp(): Promise<void> {
  built = await buildChildren("netns");
  for (const ns of [nsA, nsB]) {
    await must(tool("ip"), ["netns", "add", ns]);
    namespaces.push(ns);
    await must(tool("ip"), ["-n", ns, "link", "set", "lo", "up"]);
  }
  // Interface names are per namespace: the pair is made inside them, so none can clash.
  await must(tool("ip"), ["-n", nsA, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", nsB]);
  await must(tool("ip"), ["-n", nsA, "addr", "add", `${serverHost}/30`, "dev", "veth-a"]);
  await must(tool("ip"), ["-n", nsB, "addr", "add", `${clientHost}/30`, "dev", "veth-b"]);
  await must(tool("ip"), ["-n", nsA, "link", "set", "veth-a", "up"]);
  await must(tool("ip"), ["-n", nsB, "link", "set", "veth-b", "up"]);

  // rpcbind in A, in the foreground, over a private /run; no -w, which would restore
  // registrations from a file. A shell keeps it: the shell prints rpcbind's pid and stops it
  // when its stdin closes, which happens when the test ends it — or when the test process
  // dies, so no rpcbind outlives the test (rpcbind changes its uid, which clears a parent-death
  // signal, so it cannot be made to die with its parent otherwise).
  const script = [
    "mount -t tmpfs -o size=1m,mode=0755 rpcgen-ts-run /run || exit 1",
    `${tool("rpcbind")} -f & pid=$!`,
    `printf '{"event":"started","pid":%d}\\n' "$pid"`,
    "cat >/dev/null",
    "kill $pid 2>/dev/null; wait $pid",
  ].join("\n");
  rpcbind = Child.spawn("rpcbind", tool("ip"), ["netns", "exec", nsA, tool("unshare"), "--mount", "--propagation", "private", "sh", "-c", script]);
  rpcbindPid = (await rpcbind.next("started", 10_000)).pid as number;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (!rpcbind.running) throw new Error(`rpcbind did not start in ${nsA}:\n${rpcbind.output}`);
    const r = await run(tool("ip"), ["netns", "exec", nsB, tool("rpcinfo"), "-p", serverHost], undefined, 5000);
    if (r.status === 0) break;
    if (Date.now() > deadline) throw new Error(`rpcbind in ${nsA} not reachable from ${nsB} within 15 s:\n${r.out}\n${rpcbind.output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const config: ServerConfig = {
    example: built.example,
    listen: [
      { transport: "udp", host: serverHost, rpcbind: true },
      { transport: "tcp", host: serverHost, rpcbind: true },
    ],
    track: true,
    // A quarter of the calls run 300 ms: retransmissions (every 200 ms at first) reach them in progress.
    delays: [0, 0, 0, 300],
  };
  server = Child.spawn("server", tool("nsenter"), ["--target", String(rpcbindPid), "--mount", "--net", "--no-fork", nodeBin, built.server, JSON.stringify(config)]);
  const ready = await server.next("ready", 20_000);
  expect(ready.pid, "the server runs as the process spawned, so signals reach it").toBe(server.pid);
  const addresses = ready.addresses as { transport: "tcp" | "udp"; port: number }[];
  ports = { tcp: addresses.find((a) => a.transport === "tcp")!.port, udp: addresses.find((a) => a.transport === "udp")!.port };

  // Loss on the server's own ports only: the rpcbind lookups are not what is tested here.
  // Each namespace drops what arrives: calls and segments to the server in A, replies and
  // segments from it in B. (A packet dropped on its way *out* fails the sender's send() with
  // EPERM; a lossy network gives the sender no such news.)
  const rules = (ns: string, port: "dport" | "sport", what: string) =>
    must(
      tool("ip"),
      ["netns", "exec", ns, tool("nft"), "-f", "-"],
      `table inet ${table} {
        chain input {
          type filter hook input priority filter; policy accept;
          udp ${port} ${ports.udp} counter comment "udp ${what}"
          udp ${port} ${ports.udp} numgen random mod 100 < ${lossPercent} counter drop comment "udp ${what} dropped"
          tcp ${port} ${ports.tcp} counter comment "tcp ${what}"
          tcp ${port} ${ports.tcp} numgen random mod 100 < ${lossPercent} counter drop comment "tcp ${what} dropped"
        }
      }\n`,
    );
  await rules(nsA, "dport", "to the server");
  await rules(nsB, "sport", "from the server");
}

async function tearDown(): Promise<void> {
  for (const c of clients) await c.kill("SIGKILL");
  if (server?.running === true) {
    await server.ask("close", "closed", 5000).catch(() => undefined);
    await server.kill("SIGKILL");
  }
  if (rpcbind !== undefined) {
    rpcbind.process.stdin!.end(); // the shell stops rpcbind and exits
    await Promise.race([rpcbind.exited, new Promise((r) => setTimeout(r, 5000))]);
    if (rpcbindPid !== undefined && alive(rpcbindPid)) process.kill(rpcbindPid, "SIGKILL");
    await rpcbind.kill("SIGKILL");
  }
  for (const ns of namespaces.splice(0)) {
    const r = await run(tool("ip"), ["netns", "delete", ns]);
    if (r.status !== 0) console.warn(`could not delete network namespace ${ns}: ${r.out}`);
  }
  built?.remove();
}

/** The packets each counting rule of the loss tables (in A and B) has seen, by its comment. */
async function counters(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const ns of [nsA, nsB]) {
    const json = JSON.parse(await must(tool("ip"), ["netns", "exec", ns, tool("nft"), "-j", "list", "table", "inet", table])) as {
      nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
    };
    for (const { rule } of json.nftables) {
      const counter = rule?.expr.find((e) => e.counter !== undefined)?.counter;
      if (rule?.comment !== undefined && counter !== undefined) out[rule.comment] = counter.packets;
    }
  }
  return out;
}

const minus = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)]));

function startClient(config: Omit<ClientConfig, "example" | "host" | "salt">): Child {
  const full: ClientConfig = { ...config, example: built!.example, host: serverHost, salt: 7 };
  const child = Child.spawn(`client (${config.transport})`, tool("ip"), ["netns", "exec", nsB, nodeBin, built!.client, JSON.stringify(full)]);
  clients.push(child);
  return child;
}

interface Done {
  completed: number;
  wrong: unknown[];
  failed: { a: number; status: string; message: string }[];
  elapsedMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface Executions {
  byCall: Record<string, number>;
  byArgument: Record<string, number>;
}

/** Every argument first … first + count − 1 ran exactly once, and so did every call (peer, xid). */
function expectEachOnce(stats: Executions, transport: "tcp" | "udp", first: number, count: number): void {
  const args = Object.entries(stats.byArgument).map(([a, n]) => [Number(a), n] as const);
  expect(args.filter(([, n]) => n !== 1), "arguments that ran more than once").toEqual([]);
  expect(args.map(([a]) => a).sort((x, y) => x - y)).toEqual(Array.from({ length: count }, (_, i) => first + i));
  const calls = Object.entries(stats.byCall);
  expect(calls.filter(([, n]) => n !== 1), "calls (peer, xid) that ran more than once").toEqual([]);
  expect(calls.length).toBe(count);
  // Every call came from the client in B, over the transport under test.
  for (const [key] of calls) expect(key.startsWith(`${transport} ${clientHost}:`), key).toBe(true);
}

function expectAllCompleted(done: Done, count: number, timeoutMs: number): void {
  expect(done.failed.slice(0, 5), `${done.failed.length} calls failed`).toEqual([]);
  expect(done.wrong.slice(0, 5)).toEqual([]);
  expect(done.completed).toBe(count);
  expect(done.maxMs).toBeLessThan(timeoutMs);
}

describe.skipIf(skipped !== undefined)("across two network namespaces, through rpcbind, with loss from nftables", () => {
  beforeAll(setUp, 90_000);
  afterAll(tearDown, 60_000);

  it("the server in A is registered with the rpcbind in A, as the client in B sees it", async () => {
    const out = await must(tool("ip"), ["netns", "exec", nsB, tool("rpcinfo"), "-p", serverHost]);
    const lines = out.split("\n").map((l) => l.trim().split(/\s+/));
    expect(lines).toContainEqual([String(EXAMPLE_PROG), "1", "udp", String(ports.udp)]);
    expect(lines).toContainEqual([String(EXAMPLE_PROG), "1", "tcp", String(ports.tcp)]);
  });

  it(`UDP, ${lossPercent} % of calls and of replies lost: every call completes within its timeout and runs exactly once`, async () => {
    await server!.ask("reset", "reset");
    const before = await counters();
    const timeoutMs = 20_000;
    const client = startClient({ transport: "udp", channels: 4, concurrency: 8, first: 0, count: 400, timeoutMs, retransmitMs: 200, maxRetransmitMs: 1000 });
    const done = (await client.next("done", 60_000)) as ChildEvent & Done;
    const seen = minus(await counters(), before);
    console.log(`UDP across namespaces: ${done.completed} calls in ${done.elapsedMs} ms, p50 ${done.p50Ms.toFixed(1)} ms, p99 ${done.p99Ms.toFixed(1)} ms, max ${done.maxMs.toFixed(0)} ms; packets`, seen);
    expectAllCompleted(done, 400, timeoutMs);
    expectEachOnce((await server!.ask("stats", "stats")) as ChildEvent & Executions, "udp", 0, 400);
    // The loss happened both ways, and lost replies were answered again from the cache.
    expect(seen["udp to the server dropped"]).toBeGreaterThan(0);
    expect(seen["udp from the server dropped"]).toBeGreaterThan(0);
    expect(seen["udp from the server"]).toBeGreaterThan(400);
  });

  it(`TCP through the same loss: every call completes and runs exactly once`, async () => {
    await server!.ask("reset", "reset");
    const before = await counters();
    const timeoutMs = 40_000;
    const client = startClient({ transport: "tcp", channels: 4, concurrency: 8, first: 10_000, count: 200, timeoutMs });
    const done = (await client.next("done", 60_000)) as ChildEvent & Done;
    const seen = minus(await counters(), before);
    console.log(`TCP across namespaces: ${done.completed} calls in ${done.elapsedMs} ms, p50 ${done.p50Ms.toFixed(1)} ms, p99 ${done.p99Ms.toFixed(1)} ms, max ${done.maxMs.toFixed(0)} ms; packets`, seen);
    expectAllCompleted(done, 200, timeoutMs);
    expectEachOnce((await server!.ask("stats", "stats")) as ChildEvent & Executions, "tcp", 10_000, 200);
    expect(seen["tcp to the server dropped"]).toBeGreaterThan(0);
    expect(seen["tcp from the server dropped"]).toBeGreaterThan(0);
  });

  it("UDP, every reply lost for 6 s while 2,112 calls are outstanding: each runs once and completes after", async () => {
    await server!.ask("reset", "reset");
    const before = await counters();
    // Every reply dropped, on top of the random loss; removed by its handle after 6 s.
    const added = await must(tool("ip"), ["netns", "exec", nsB, tool("nft"), "--echo", "--handle", "insert", "rule", "inet", table, "input", "udp", "sport", String(ports.udp), "counter", "drop", "comment", '"blackout"']);
    const handle = /# handle (\d+)/.exec(added)?.[1];
    expect(handle, added).toBeDefined();
    const blackoutFrom = Date.now();
    const count = 2112;
    const timeoutMs = 40_000;
    // The server runs at most 128 calls from one address at once (its cache's default) and
    // drops the others unanswered: they get in as their retransmissions come, every 400 ms.
    const client = startClient({ transport: "udp", channels: 16, concurrency: 132, first: 100_000, count, timeoutMs, retransmitMs: 200, maxRetransmitMs: 400 });
    // Every call has run before a reply gets through: completing needs the cache.
    let executed = 0;
    while (Date.now() - blackoutFrom < 6000 || executed < count) {
      if (Date.now() - blackoutFrom > 30_000) throw new Error(`only ${executed} of ${count} calls ran within 30 s`);
      await new Promise((r) => setTimeout(r, 250));
      executed = Object.keys(((await server!.ask("stats", "stats")) as ChildEvent & Executions).byArgument).length;
    }
    expect((await client.next("connected", 1000)).channels).toBe(16);
    expect(client.events.some((e) => e.event === "done"), "no call completed during the blackout").toBe(false);
    const blackedOut = (await counters()).blackout ?? 0;
    await must(tool("ip"), ["netns", "exec", nsB, tool("nft"), "delete", "rule", "inet", table, "input", "handle", handle!]);
    const blackoutMs = Date.now() - blackoutFrom;
    const done = (await client.next("done", 60_000)) as ChildEvent & Done;
    const seen = minus(await counters(), before);
    console.log(`UDP replies lost for ${blackoutMs} ms (${blackedOut} replies): ${done.completed} calls in ${done.elapsedMs} ms, max ${done.maxMs.toFixed(0)} ms; packets`, seen);
    expectAllCompleted(done, count, timeoutMs);
    expectEachOnce((await server!.ask("stats", "stats")) as ChildEvent & Executions, "udp", 100_000, count);
    expect(blackoutMs).toBeGreaterThanOrEqual(6000);
    // Every call's reply was lost at least once (and the retransmissions' replies from the cache).
    expect(blackedOut).toBeGreaterThan(count);
  });

  it("the server closed, rpcbind in A no longer lists it and a connect from B fails RPCBIND_UNAVAILABLE (PROG_UNAVAIL)", async () => {
    await server!.ask("close", "closed", 15_000);
    const out = await must(tool("ip"), ["netns", "exec", nsB, tool("rpcinfo"), "-p", serverHost]);
    expect(out).toMatch(/portmapper/);
    expect(out).not.toContain(String(EXAMPLE_PROG));
    const client = startClient({ transport: "udp", channels: 1, concurrency: 1, first: 0, count: 1, timeoutMs: 5000 });
    const failed = await client.next("error", 20_000).catch((e: Error) => ({ event: "error", message: e.message, status: undefined }));
    expect(failed.status).toBe("RPCBIND_UNAVAILABLE");
    expect(String(failed.message)).toMatch(/^RPC RPCBIND_UNAVAILABLE: cannot look up the port of program 0x20000101 version 1 over udp: RPC PROG_UNAVAIL: program 0x20000101 version 1 is not registered with rpcbind at 10\.200\.0\.1 for udp/);
  });
});
