import { AsyncLocalStorage } from "node:async_hooks";
import { tracingChannel } from "node:diagnostics_channel";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { callTracing, connect, createServer, RpcError, serveTracing, type CallRecord, type CallTrace, type HandlersOf, type ServiceDescription } from "../runtime/index.js";
import { exampleHandlers, loadExample, type Example } from "./example.js";

/**
 * The tracing channels: every event of a call, in Node's traceSync/tracePromise order, with
 * one typed context that names the call and says how it ended, on both sides.
 */

type Event = "start" | "end" | "asyncStart" | "asyncEnd" | "error";
const events: Event[] = ["start", "end", "asyncStart", "asyncEnd", "error"];

/** Subscribes to a tracing channel by its public name; returns what it saw and how to stop. */
function record(name: string) {
  const seen: { event: Event; trace: CallTrace; status: CallTrace["status"] }[] = [];
  const handlers = Object.fromEntries(events.map((event) => [event, (trace: CallTrace) => void seen.push({ event, trace, status: trace.status })])) as Record<Event, (trace: CallTrace) => void>;
  const channel = tracingChannel<unknown, CallTrace>(name);
  channel.subscribe(handlers);
  const stop = () => channel.unsubscribe(handlers);
  stops.push(stop);
  return { seen, stop };
}

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

let example: Example;
beforeAll(async () => {
  example = await loadExample("synthesized");
});

const names = (seen: { event: Event }[]) => seen.map((s) => s.event);

describe("tracing channels", () => {
  it("tell a call from start to asyncEnd on both sides, with one context naming it", async () => {
    const client = record("rpcgen-ts:call");
    const server = record("rpcgen-ts:serve");
    const srv = createServer().register(example.service, exampleHandlers());
    const { port } = await srv.listen({ transport: "tcp", host: "127.0.0.1", port: 0 });
    const channel = await connect({ transport: "tcp", host: "127.0.0.1", port });
    try {
      const before = Date.now();
      expect(await example.client(channel).exprocAdd(2, 3)).toBe(5);
      const after = Date.now();
      expect(names(client.seen)).toEqual(["start", "end", "asyncStart", "asyncEnd"]);
      // A handler that returns at once: traceSync's order (no async events).
      expect(names(server.seen)).toEqual(["start", "end"]);
      // The status is learnt at the end: unset at start.
      expect(client.seen[0]!.status).toBeUndefined();
      const c = client.seen[0]!.trace;
      const s = server.seen[0]!.trace;
      expect(client.seen.every((e) => e.trace === c)).toBe(true);
      expect(c).toMatchObject({
        program: 0x20000101,
        version: 1,
        service: "EXAMPLE_V1",
        procedure: 1,
        procedureName: "EXPROC_ADD",
        mode: "synthesized",
        transport: "tcp",
        peer: `127.0.0.1:${port}`,
        status: "SUCCESS",
        result: 5,
      });
      expect(s).toMatchObject({ xid: c.xid, program: 0x20000101, version: 1, service: "EXAMPLE_V1", procedure: 1, procedureName: "EXPROC_ADD", mode: "synthesized", transport: "tcp", status: "SUCCESS", result: 5 });
      expect(s.peer).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(s.peer).not.toBe(c.peer);
      for (const t of [c, s]) {
        expect(t.startTime).toBeGreaterThanOrEqual(before - 1);
        expect(t.startTime).toBeLessThanOrEqual(after + 1);
        expect(t.error).toBeUndefined();
        expect(t.copies).toBeDefined();
        expect(t.bytesCopied).toBeDefined();
      }
      expect(Object.keys(c.phases).sort()).toEqual(["call", "resume", "send", "transit"]);
      expect(Object.keys(s.phases).sort()).toEqual(["dispatch", "execute", "receive", "reply"]);
      expect(c.copies!.wire).toBeGreaterThan(0);
    } finally {
      await channel.close();
      await srv.close();
    }
  });

  it("tell a failure: the client's RpcError and its status, the handler's own error on the server", async () => {
    const client = record("rpcgen-ts:call");
    const server = record("rpcgen-ts:serve");
    const srv = createServer().register(example.service, exampleHandlers());
    const channel = await connect({ transport: "inproc", server: srv });
    try {
      const failure = await example.client(channel).exprocFail().catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(RpcError);
      expect(names(client.seen)).toEqual(["start", "end", "error", "asyncStart", "asyncEnd"]);
      expect(names(server.seen)).toEqual(["start", "error", "end"]);
      const c = client.seen[0]!.trace;
      expect(c.status).toBe("SYSTEM_ERR");
      expect(c.error).toBe(failure);
      expect(c.peer).toBe("inproc");
      const s = server.seen[0]!.trace;
      expect(s.status).toBe("SYSTEM_ERR");
      expect((s.error as Error).message).toBe("this procedure always fails");
    } finally {
      await channel.close();
      await srv.close();
    }
  });

  it("name the status the server answered when no handler ran (PROC_UNAVAIL, PROG_UNAVAIL)", async () => {
    const server = record("rpcgen-ts:serve");
    const { exprocGreet: _, ...partial } = exampleHandlers() as unknown as Record<string, unknown>;
    const srv = createServer().register(example.service, partial as HandlersOf<ServiceDescription>);
    const channel = await connect({ transport: "inproc", server: srv });
    try {
      await expect(example.client(channel).exprocGreet("x", 1)).rejects.toMatchObject({ status: "PROC_UNAVAIL" });
      expect(names(server.seen)).toEqual(["start", "error", "end"]);
      const s = server.seen[0]!.trace;
      expect(s).toMatchObject({ status: "PROC_UNAVAIL", service: "EXAMPLE_V1", procedure: 8, procedureName: undefined });
      expect(s.error).toBeInstanceOf(RpcError);
      expect((s.error as RpcError).status).toBe("PROC_UNAVAIL");
    } finally {
      await channel.close();
      await srv.close();
    }
  });

  it("a call that fails before it is sent: start, error, end, and no async events", async () => {
    const client = record("rpcgen-ts:call");
    const srv = createServer().register(example.service, exampleHandlers());
    const channel = await connect({ transport: "inproc", server: srv });
    try {
      const failure = await example.client(channel).exprocAdd("two" as unknown as number, 3).catch((e: unknown) => e);
      expect((failure as RpcError).status).toBe("CANNOT_ENCODE");
      expect(names(client.seen)).toEqual(["start", "error", "end"]);
      expect(client.seen[0]!.trace.status).toBe("CANNOT_ENCODE");
    } finally {
      await channel.close();
      await srv.close();
    }
  });

  it("an asynchronous handler: its events after end, and a store bound to start is current in it", async () => {
    const server = record("rpcgen-ts:serve");
    const store = new AsyncLocalStorage<string>();
    serveTracing.start.bindStore(store, (trace) => `span of ${trace.procedureName}`);
    stops.push(() => serveTracing.start.unbindStore(store));
    let seenInHandler: string | undefined;
    const handlers = {
      ...(exampleHandlers() as unknown as Record<string, unknown>),
      exprocAdd: async (a: number, b: number) => {
        await new Promise((r) => setTimeout(r, 5));
        seenInHandler = store.getStore();
        return a + b;
      },
    };
    const srv = createServer().register(example.service, handlers as HandlersOf<ServiceDescription>);
    const channel = await connect({ transport: "inproc", server: srv });
    try {
      expect(await example.client(channel).exprocAdd(20, 22)).toBe(42);
      expect(names(server.seen)).toEqual(["start", "end", "asyncStart", "asyncEnd"]);
      expect(server.seen[3]!.trace.result).toBe(42);
      expect(seenInHandler).toBe("span of EXPROC_ADD");
    } finally {
      await channel.close();
      await srv.close();
    }
  });

  it("the README's example: a subscriber that logs each call's start and end", async () => {
    const log: string[] = [];
    const console = { log: (line: string) => void log.push(line) };
    const handlers = {
      start: (t: CallTrace) => console.log(`→ ${t.service}/${t.procedureName} xid ${t.xid} to ${t.peer}`),
      asyncEnd: (t: CallTrace) => console.log(`← ${t.procedureName} ${t.status} after ${t.phases.transit} ns in transit`),
    };
    tracingChannel<unknown, CallTrace>("rpcgen-ts:call").subscribe(handlers as never);
    stops.push(() => tracingChannel("rpcgen-ts:call").unsubscribe(handlers as never));
    const srv = createServer().register(example.service, exampleHandlers());
    const channel = await connect({ transport: "inproc", server: srv });
    try {
      await example.client(channel).exprocAdd(1, 2);
      expect(log).toHaveLength(2);
      expect(log[0]).toMatch(/^→ EXAMPLE_V1\/EXPROC_ADD xid \d+ to inproc$/);
      expect(log[1]).toMatch(/^← EXPROC_ADD SUCCESS after \d+ ns in transit$/);
    } finally {
      await channel.close();
      await srv.close();
    }
  });

  it("nobody subscribed: no trace, and the records of onCall and onServe are as before", async () => {
    const client = record("rpcgen-ts:call");
    client.stop();
    expect((callTracing as { hasSubscribers: boolean }).hasSubscribers).toBe(false);
    expect(serveTracing.hasSubscribers).toBe(false);
    const served: CallRecord[] = [];
    const called: CallRecord[] = [];
    const srv = createServer({ onServe: (r) => served.push(r) }).register(example.service, exampleHandlers());
    const channel = await connect({ transport: "inproc", server: srv, onCall: (r) => called.push(r) });
    try {
      await example.client(channel).exprocAdd(1, 1);
      expect(client.seen).toEqual([]);
      expect(called).toHaveLength(1);
      expect(served).toHaveLength(1);
      expect(Object.keys(called[0]!).sort()).toEqual(["bytesCopied", "copies", "mode", "ok", "phases", "procedure", "program", "transport", "version", "xid"]);
      expect(called[0]!.xid).toBe(served[0]!.xid);
    } finally {
      await channel.close();
      await srv.close();
    }
  });
});
