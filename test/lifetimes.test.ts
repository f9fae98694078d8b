import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createServer, renumber, RpcError, type ChannelState, type HandlersOf, type RpcChannel, type Server, type ServiceDescription } from "../runtime/index.js";
import { exampleHandlers, loadExample, type Example, type ExampleClient } from "./example.js";
import { removeDir, tempDir } from "./support.js";

/**
 * Lifetimes: a server's graceful close (in-flight calls answered, new connections refused,
 * new calls on open connections answered SYSTEM_ERR), a channel's graceful close, both
 * through `await using`, and stream channels that reconnect after their server restarts.
 */

type Timed = ExampleClient & { exprocGreet(s: string, n: number, o?: { timeoutMs: number }): Promise<string> };

let example: Example;
const sockets = tempDir("lifetimes");
const cleanup: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  example = await loadExample("synthesized");
});

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
  removeDir(sockets);
});

/** A deferred result a handler can wait on. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** Example handlers whose EXPROC_ADD waits for `slow` (and says when it started). */
function slowServer(slow: Promise<void>, started: () => void): Server {
  const handlers = {
    ...(exampleHandlers() as unknown as Record<string, unknown>),
    exprocAdd: async (a: number, b: number) => {
      started();
      await slow;
      return a + b;
    },
  } as unknown as HandlersOf<ServiceDescription>;
  return createServer().register(example.service, handlers);
}

async function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: RpcError }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => {
      if (!(error instanceof RpcError)) throw error;
      return { ok: false as const, error };
    },
  );
}

function states(channel: RpcChannel): ChannelState[] {
  const seen: ChannelState[] = [];
  channel.on("statechange", (state, previous) => {
    expect(previous).toBe(seen.at(-1) ?? "ready");
    seen.push(state);
  });
  return seen;
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("server.close({ graceMs })", () => {
  it("answers the call in flight, refuses new connections, answers new calls on open connections SYSTEM_ERR, then closes", async () => {
    const slow = gate();
    const started = gate();
    const server = slowServer(slow.promise, () => started.open());
    const { port } = await server.listen({ transport: "tcp" });
    const channel = await connect({ transport: "tcp", port, reconnect: false });
    cleanup.push(() => channel.close({ graceMs: 0 }));
    const client = example.client(channel);

    const events: string[] = [];
    const inFlight = client.exprocAdd(40, 2).then((v) => (events.push("reply"), v));
    await started.promise;
    const closing = server.close({ graceMs: 10_000 }).then(() => events.push("closed"));

    // No new connection: the listener is gone.
    const refused = await outcome(connect({ transport: "tcp", port, reconnect: false }));
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.error.status).toBe("UNREACHABLE");
    // A call on the connection still open is answered at once, unrun.
    const late = await outcome(client.exprocGreet("late", 1));
    expect(!late.ok && late.error.status).toBe("SYSTEM_ERR");
    expect(events).toEqual([]);

    slow.open();
    expect(await inFlight).toBe(42);
    await closing;
    expect(events).toEqual(["reply", "closed"]);
    await until("the channel sees the connection end", () => channel.state === "closed");
    const after = await outcome(client.exprocAdd(1, 1));
    expect(!after.ok && after.error.status).toBe("CLOSED");
  });

  it("closes at graceMs even if a call is still running: that call fails CLOSED", async () => {
    const started = gate();
    const server = slowServer(new Promise(() => {}), () => started.open());
    const { port } = await server.listen({ transport: "tcp" });
    const channel = await connect({ transport: "tcp", port, reconnect: false });
    cleanup.push(() => channel.close({ graceMs: 0 }));
    const stuck = outcome(example.client(channel).exprocAdd(1, 2));
    await started.promise;
    await server.close({ graceMs: 50 });
    const result = await stuck;
    expect(!result.ok && result.error.status).toBe("CLOSED");
    expect(!result.ok && result.error.message).toMatch(/connection closed before EXPROC_ADD was answered/);
  });

  it("close() without options still closes at once when idle, and the server can listen again", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    const first = await server.listen({ transport: "tcp" });
    await server.close();
    expect(server.listenerStats()).toEqual([]);
    const second = await server.listen({ transport: "tcp", port: first.port });
    expect(second.port).toBe(first.port);
    const channel = await connect({ transport: "tcp", port: second.port });
    expect(await example.client(channel).exprocAdd(2, 3)).toBe(5);
    await channel.close();
    await server.close();
    await expect(server.close({ graceMs: -1 })).rejects.toThrow(RangeError);
  });
});

describe("channel.close({ graceMs }) and Symbol.asyncDispose", () => {
  it("lets a call already sent be answered, fails calls made after close at once", async () => {
    const slow = gate();
    const started = gate();
    const server = slowServer(slow.promise, () => started.open());
    cleanup.push(() => server.close({ graceMs: 0 }));
    const { port } = await server.listen({ transport: "tcp" });
    const channel = await connect({ transport: "tcp", port });
    const client = example.client(channel);
    const inFlight = client.exprocAdd(7, 8);
    await started.promise;
    const closing = channel.close({ graceMs: 10_000 });
    const after = await outcome(client.exprocAdd(1, 1));
    expect(!after.ok && after.error.status).toBe("CLOSED");
    slow.open();
    expect(await inFlight).toBe(15);
    await closing;
    expect(channel.state).toBe("closed");
  });

  it("a grace that runs out fails what is left CLOSED", async () => {
    const started = gate();
    const server = slowServer(new Promise(() => {}), () => started.open());
    cleanup.push(() => server.close({ graceMs: 0 }));
    const { port } = await server.listen({ transport: "tcp" });
    const channel = await connect({ transport: "tcp", port });
    const stuck = outcome(example.client(channel).exprocAdd(1, 2));
    await started.promise;
    await channel.close({ graceMs: 30 });
    const result = await stuck;
    expect(!result.ok && result.error.status).toBe("CLOSED");
    expect(!result.ok && result.error.message).toMatch(/closed by the client/);
  });

  it("await using closes the channel and the server when the scope ends", async () => {
    let port = 0;
    let kept: RpcChannel | undefined;
    {
      await using server = createServer().register(example.service, exampleHandlers());
      ({ port } = await server.listen({ transport: "tcp" }));
      await using channel = await connect({ transport: "tcp", port });
      kept = channel;
      expect(await example.client(channel).exprocAdd(20, 22)).toBe(42);
      expect(channel.state).toBe("ready");
    }
    expect(kept.state).toBe("closed");
    const refused = await outcome(connect({ transport: "tcp", port }));
    expect(!refused.ok && refused.error.status).toBe("UNREACHABLE");
  });
});

describe("stream channels reconnect", () => {
  for (const transport of ["tcp", "unix"] as const) {
    it(`${transport}: after the server restarts on the same address; calls in flight fail CLOSED, calls made meanwhile go out once reconnected`, async () => {
      const path = join(sockets, `restart-${transport}.sock`);
      const where = (port: number) => (transport === "tcp" ? ({ transport, port } as const) : ({ transport, path } as const));
      const started = gate();
      const first = slowServer(new Promise(() => {}), () => started.open());
      const { port } = await first.listen(transport === "tcp" ? { transport } : { transport, path });
      const channel = await connect({ ...where(port), reconnect: { initialDelayMs: 20, maxDelayMs: 80 } });
      cleanup.push(() => channel.close({ graceMs: 0 }));
      const seen = states(channel);
      const client = example.client(channel) as Timed;
      expect(await client.exprocGreet("up", 1)).toBe("up!");

      const inFlight = outcome(client.exprocAdd(1, 2));
      await started.promise;
      await first.close({ graceMs: 0 }); // the server's sockets are closed under the call
      const lost = await inFlight;
      expect(!lost.ok && lost.error.status).toBe("CLOSED");
      expect(!lost.ok && lost.error.message).toMatch(/the connection was lost before EXPROC_ADD was answered \(it may or may not have run\)/);
      expect(!lost.ok && lost.error.cause).toBeInstanceOf(Error);
      expect(channel.state).not.toBe("ready");

      // Made while nobody listens: waits (a few dials fail meanwhile)…
      const waiting = outcome(client.exprocGreet("again", 2, { timeoutMs: 10_000 }));
      const shortLived = outcome(client.exprocGreet("too late", 1, { timeoutMs: 1 }));
      await until("a dial to have failed", () => seen.filter((s) => s === "connecting").length >= 2);
      const expired = await shortLived;
      expect(!expired.ok && expired.error.status).toBe("TIMEOUT");

      // …and goes out once a server listens again on the same address.
      const second = createServer().register(example.service, exampleHandlers());
      cleanup.push(() => second.close({ graceMs: 0 }));
      await second.listen(transport === "tcp" ? { transport, port } : { transport, path });
      const answered = await waiting;
      expect(answered.ok && answered.value).toBe("again!again!");
      expect(channel.state).toBe("ready");
      expect(seen.join(" ")).toMatch(/^reconnecting( connecting reconnecting)+ connecting ready$/);
      expect(await client.exprocAdd(2, 2)).toBe(4);

      await channel.close();
      expect(seen.at(-1)).toBe("closed");
    });
  }

  it("a channel connected through rpcbind looks the port up again on each dial: it follows a server restarted on another port", async () => {
    const service = renumber(example.service, { program: 0x20001301 });
    const first = createServer().register(service, exampleHandlers());
    const a = await first.listen({ transport: "tcp", rpcbind: true });
    const channel = await connect({ transport: "tcp", service, reconnect: { initialDelayMs: 20, maxDelayMs: 80 } });
    cleanup.push(() => channel.close({ graceMs: 0 }));
    const causes: unknown[] = [];
    channel.on("statechange", (state, _previous, cause) => {
      if (state === "reconnecting") causes.push(cause);
    });
    // The generated client class names the example's own program: call the renumbered one directly.
    const add = (a: number, b: number) => channel.call(service, service.procedures.exprocAdd!, [a, b], undefined, undefined);
    expect(await add(1, 2)).toBe(3);

    await first.close(); // unregisters
    // While the program is not registered, a dial fails for that reason.
    await until("a dial refused by rpcbind", () => causes.some((c) => c instanceof RpcError && c.status === "RPCBIND_UNAVAILABLE"));
    const waiting = add(20, 22);
    const second = createServer().register(service, exampleHandlers());
    cleanup.push(() => second.close({ graceMs: 0 }));
    const b = await second.listen({ transport: "tcp", rpcbind: true });
    expect(b.port).not.toBe(a.port);
    expect(await waiting).toBe(42);
    expect(channel.state).toBe("ready");
  });

  it("reconnect: false closes the channel with its connection", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    const { port } = await server.listen({ transport: "tcp" });
    const channel = await connect({ transport: "tcp", port, reconnect: false });
    cleanup.push(() => channel.close({ graceMs: 0 }));
    const seen = states(channel);
    const client = example.client(channel);
    expect(await client.exprocAdd(1, 1)).toBe(2);
    await server.close();
    await until("closed", () => channel.state === "closed");
    expect(seen).toEqual(["closed"]);
    const after = await outcome(client.exprocAdd(1, 1));
    expect(!after.ok && after.error.status).toBe("CLOSED");
    expect(!after.ok && after.error.message).toMatch(/channel is closed: connection closed by the server/);
  });

  it("bad reconnect options are refused BAD_OPTIONS before anything is left open", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    cleanup.push(() => server.close({ graceMs: 0 }));
    const { port } = await server.listen({ transport: "tcp" });
    for (const reconnect of [{ initialDelayMs: 0 }, { maxDelayMs: Number.NaN }, { initialDelayMs: -5 }]) {
      const e = await outcome(connect({ transport: "tcp", port, reconnect }));
      expect(!e.ok && e.error.status).toBe("BAD_OPTIONS");
      expect(!e.ok && e.error.message).toMatch(/reconnect\.(initialDelayMs|maxDelayMs) must be a number > 0/);
    }
    await until("no connection left open", () => (server.listenerStats()[0]!.stats as { connections: number }).connections === 0);
  });
});

describe("the README's example", () => {
  it("await using a server and a reconnecting channel, logging state changes", async () => {
    const log: string[] = [];
    const console = { log: (...parts: unknown[]) => void log.push(parts.join(" ").trim()) };
    const CalcV1 = example.service;
    const handlers = exampleHandlers();
    const CalcV1Client = class {
      constructor(private readonly channel: RpcChannel) {}
      add = (a: number, b: number) => example.client(this.channel).exprocAdd(a, b);
    };
    let kept: RpcChannel | undefined;
    {
      // As in the README, on a free port instead of 5000.
      await using server = createServer().register(CalcV1, handlers);
      const { port } = await server.listen({ transport: "tcp" });
      await using channel = await connect({ transport: "tcp", port, reconnect: { maxDelayMs: 5000 } });
      channel.on("statechange", (state, previous, cause) => console.log(`${previous} → ${state}`, cause?.message ?? ""));
      console.log(await new CalcV1Client(channel).add(1, 2)); // scope end: channel.close(), then server.close({ graceMs: 5000 })
      kept = channel;
    }
    expect(log).toEqual(["3", "ready → closed closed by the client"]);
    expect(kept.state).toBe("closed");
  });
});
