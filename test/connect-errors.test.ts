import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { connect as netConnect, createServer as createNetServer, type Socket } from "node:net";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createServer, RpcError, type CallContext, type ConnectOptions, type HandlersOf, type ListenOptions, type ServiceDescription } from "../runtime/index.js";
import { exampleHandlers, loadExample, type Example } from "./example.js";
import { removeDir, tempDir } from "./support.js";

/**
 * One error type for connecting and listening: every failure of `connect` and `listen` is an
 * RpcError with a status and, where the OS said no, the OS error as its cause. UDP learns of
 * a closed port from ICMP at once. Peers print one way: [::1]:port, 127.0.0.1:port.
 */

let example: Example;
const dir = tempDir("connect-errors");
const cleanup: (() => unknown)[] = [];

beforeAll(async () => {
  example = await loadExample("synthesized");
});

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
  removeDir(dir);
});

async function failure(p: Promise<unknown>): Promise<RpcError> {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(e instanceof RpcError)) throw new Error(`expected an RpcError, got ${String(e)}`);
  return e;
}

/** A TCP port nothing listens on (bound, then released). */
async function deadTcpPort(host = "127.0.0.1"): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function deadUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return port;
}

describe("connect", () => {
  it("a refused TCP connection is UNREACHABLE, naming where, the ECONNREFUSED as cause", async () => {
    const port = await deadTcpPort();
    const e = await failure(connect({ transport: "tcp", port }));
    expect(e.status).toBe("UNREACHABLE");
    expect(e.message).toBe(`RPC UNREACHABLE: cannot connect to tcp 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(e.cause).toMatchObject({ code: "ECONNREFUSED" });
  });

  it("a Unix socket that does not exist is UNREACHABLE, ENOENT as cause", async () => {
    const path = join(dir, "nobody.sock");
    const e = await failure(connect({ transport: "unix", path }));
    expect(e.status).toBe("UNREACHABLE");
    expect(e.message).toContain(`cannot connect to unix ${path}`);
    expect(e.cause).toMatchObject({ code: "ENOENT" });
  });

  it("a connection that is never accepted is UNREACHABLE after connectTimeoutMs, ETIMEDOUT as cause", async () => {
    // A listener with a backlog of 0 that never accepts: once one connection fills its queue,
    // the kernel drops further SYNs, so a connect waits unanswered.
    const script = join(dir, "backlog.py");
    writeFileSync(script, 'import socket, time\ns = socket.socket()\ns.bind(("127.0.0.1", 0))\ns.listen(0)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(120)\n');
    const child: ChildProcess = spawn("python3", [script], { stdio: ["ignore", "pipe", "inherit"] });
    cleanup.push(() => child.kill("SIGKILL"));
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once("line", resolve);
      child.once("error", reject);
    });
    const port = Number(line);
    const filler: Socket = netConnect(port, "127.0.0.1");
    cleanup.push(() => filler.destroy());
    await new Promise((r) => filler.once("connect", r));
    const e = await failure(connect({ transport: "tcp", port, connectTimeoutMs: 300 }));
    expect(e.status).toBe("UNREACHABLE");
    expect(e.message).toMatch(/no answer within 300 ms/);
    expect(e.cause).toMatchObject({ code: "ETIMEDOUT" });
  }, 10_000);

  it("rpcbind that does not know the program is RPCBIND_UNAVAILABLE, its PROG_UNAVAIL as cause", async () => {
    const service = { ...example.service, program: 0x20001102 } as ServiceDescription;
    const e = await failure(connect({ transport: "tcp", service }));
    expect(e.status).toBe("RPCBIND_UNAVAILABLE");
    expect(e.cause).toBeInstanceOf(RpcError);
    expect((e.cause as RpcError).status).toBe("PROG_UNAVAIL");
  });

  it("bad options are BAD_OPTIONS, each naming what is wrong", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    const cases: [unknown, RegExp][] = [
      [{ transport: "tpc", port: 1 }, /unknown transport "tpc" \(inproc, shm, tcp, udp, unix\)/],
      [{ port: 1 }, /unknown transport undefined/],
      [null, /options must be an object/],
      [{ transport: "tcp", port: 70000 }, /port must be an integer from 1 to 65535, got 70000/],
      [{ transport: "udp", port: "111" }, /port must be an integer from 1 to 65535, got 111/],
      [{ transport: "tcp" }, /tcp needs a port, or a service to look up at rpcbind/],
      [{ transport: "tcp", host: "", port: 1 }, /host must be a host name or address/],
      [{ transport: "unix" }, /the unix transport needs a socket path/],
      [{ transport: "inproc" }, /the inproc transport needs a server/],
      [{ transport: "tcp", port: 1, connectTimeoutMs: 0 }, /connectTimeoutMs must be a number > 0/],
      [{ transport: "inproc", server, maxOutstanding: 0 }, /maxOutstanding must be a number ≥ 1/],
      [{ transport: "inproc", server, unreachable: "ignore" }, /unreachable must be "fail" or "retransmit"/],
      [{ transport: "shm", module: "x.js", slots: 0 }, /shm: slots must be an integer/],
    ];
    for (const [options, pattern] of cases) {
      const e = await failure(connect(options as ConnectOptions));
      expect(e.status, JSON.stringify(options)).toBe("BAD_OPTIONS");
      expect(e.message).toMatch(pattern);
    }
  });

  it("UDP to a closed port fails UNREACHABLE at once, not at its timeout, the ICMP error's ECONNREFUSED as cause", async () => {
    const channel = await connect({ transport: "udp", port: await deadUdpPort() });
    cleanup.push(() => channel.close({ graceMs: 0 }));
    const client = example.client(channel) as ReturnType<Example["client"]> & { exprocAdd(a: number, b: number, o?: { timeoutMs: number }): Promise<number> };
    // The test's own timeout is far below the call's: only the ICMP error can end it in time.
    const e = await failure(client.exprocAdd(1, 2, { timeoutMs: 60_000 }));
    expect(e.status).toBe("UNREACHABLE");
    expect(e.cause).toMatchObject({ code: "ECONNREFUSED" });
    expect(channel.state).toBe("ready"); // the channel lives on: a server may yet come
  }, 5000);
});

describe("listen", () => {
  it("an address in use is ADDRESS_IN_USE, EADDRINUSE as cause; nothing is left open", async () => {
    const taken = createServer().register(example.service, exampleHandlers());
    cleanup.push(() => taken.close({ graceMs: 0 }));
    const tcp = await taken.listen({ transport: "tcp" });
    const udp = await taken.listen({ transport: "udp" });
    const path = join(dir, "taken.sock");
    await taken.listen({ transport: "unix", path });

    const server = createServer().register(example.service, exampleHandlers());
    for (const options of [
      { transport: "tcp", port: tcp.port },
      { transport: "udp", port: udp.port },
      { transport: "unix", path },
    ] as ListenOptions[]) {
      const e = await failure(server.listen(options));
      expect(e.status, options.transport).toBe("ADDRESS_IN_USE");
      expect(e.cause).toMatchObject({ code: "EADDRINUSE" });
      expect(e.message).toMatch(/cannot listen on (tcp 127\.0\.0\.1:\d+|udp 127\.0\.0\.1:\d+|unix .*taken\.sock): the address is in use/);
    }
    expect(server.listenerStats()).toEqual([]);
  });

  it("an address not on this host is LISTEN_FAILED, EADDRNOTAVAIL as cause; bad options are BAD_OPTIONS", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    const e = await failure(server.listen({ transport: "tcp", host: "192.0.2.1" }));
    expect(e.status).toBe("LISTEN_FAILED");
    expect(e.cause).toMatchObject({ code: "EADDRNOTAVAIL" });
    for (const [options, pattern] of [
      [{ transport: "sctp" }, /unknown transport "sctp" \(tcp, unix or udp\)/],
      [{ transport: "tcp", port: -1 }, /port must be an integer from 0 \(any\) to 65535, got -1/],
      [{ transport: "udp", port: 1.5 }, /port must be an integer/],
      [{ transport: "unix" }, /the unix transport needs a socket path/],
      [{ transport: "tcp", limits: { maxConnections: 0 } }, /limits\.maxConnections/],
    ] as [ListenOptions, RegExp][]) {
      const bad = await failure(server.listen(options));
      expect(bad.status, JSON.stringify(options)).toBe("BAD_OPTIONS");
      expect(bad.message).toMatch(pattern);
    }
    expect(server.listenerStats()).toEqual([]);
  });
});

describe("peers print one way", () => {
  /** A server whose EXPROC_GREET answers with the caller's address as the server saw it. */
  function peerServer() {
    const handlers = {
      ...(exampleHandlers() as unknown as Record<string, unknown>),
      exprocGreet: (_s: string, _n: number, context: CallContext) => context.peer,
    } as unknown as HandlersOf<ServiceDescription>;
    const server = createServer().register(example.service, handlers);
    cleanup.push(() => server.close({ graceMs: 0 }));
    return server;
  }

  for (const transport of ["tcp", "udp"] as const) {
    it(`${transport}: [::1]:port over IPv6, 127.0.0.1:port over IPv4`, async () => {
      const server = peerServer();
      const v6 = await server.listen({ transport, host: "::1" });
      const v4 = await server.listen({ transport, host: "127.0.0.1" });
      const c6 = await connect({ transport, host: "::1", port: v6.port });
      const c4 = await connect({ transport, host: "127.0.0.1", port: v4.port });
      cleanup.push(() => c6.close({ graceMs: 0 }), () => c4.close({ graceMs: 0 }));
      expect(await example.client(c6).exprocGreet("", 1)).toMatch(/^\[::1\]:\d{1,5}$/);
      expect(await example.client(c4).exprocGreet("", 1)).toMatch(/^127\.0\.0\.1:\d{1,5}$/);
    });
  }

  it("connect's errors print an IPv6 address the same way", async () => {
    const port = await deadTcpPort("::1");
    const e = await failure(connect({ transport: "tcp", host: "::1", port }));
    expect(e.status).toBe("UNREACHABLE");
    expect(e.message).toContain(`cannot connect to tcp [::1]:${port}:`);
  });
});

describe("the README's example", () => {
  it("tells an unreachable server by its status and the OS error", async () => {
    const log: string[] = [];
    const console = { log: (...parts: unknown[]) => void log.push(parts.join(" ")) };
    const port = await deadTcpPort(); // the README's 2049 on a host without NFS
    try {
      await connect({ transport: "tcp", host: "127.0.0.1", port });
    } catch (e) {
      if (e instanceof RpcError && e.status === "UNREACHABLE") console.log(e.message, (e.cause as NodeJS.ErrnoException).code);
    }
    expect(log).toEqual([`RPC UNREACHABLE: cannot connect to tcp 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port} ECONNREFUSED`]);
  });
});
