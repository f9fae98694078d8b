import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AuthFlavor,
  AuthStat,
  connect,
  createServer,
  RpcError,
  type AuthSysParams,
  type Channel,
  type HandlersOf,
  type Interceptor,
  type Server,
  type ServerInterceptor,
  type ServiceDescription,
} from "../runtime/index.js";
import { exampleHandlers, loadExample, type Example } from "./example.js";

/**
 * Interceptors on both sides (Connect-ES's shape: `(next) => (call) => …`), in the order
 * given, and the signal a handler gets for the end of its call.
 */

let example: Example;
beforeAll(async () => {
  example = await loadExample("synthesized");
});

const open: (Channel | Server)[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await ("register" in o ? o.close({ graceMs: 0 }) : o.close({ graceMs: 0 }));
});

function serve(handlers: object, options: Parameters<typeof createServer>[0] = {}): Server {
  const server = createServer(options).register(example.service, handlers as HandlersOf<ServiceDescription>);
  open.push(server);
  return server;
}

async function inproc(server: Server, options: { interceptors?: Interceptor[] } = {}): Promise<Channel> {
  const channel = await connect({ transport: "inproc", server, ...options });
  open.push(channel);
  return channel;
}

describe("client and server interceptors", () => {
  it("log every call on both sides, with the procedure's name, the outcome and the peer", async () => {
    const log: string[] = [];
    const clientLog: Interceptor = (next) => async (call) => {
      log.push(`client → ${call.procedure.name}(${JSON.stringify(call.args)})`);
      try {
        const result = await next(call);
        log.push(`client ← ${call.procedure.name} = ${JSON.stringify(result)}`);
        return result;
      } catch (e) {
        log.push(`client ← ${call.procedure.name} failed ${(e as RpcError).status}`);
        throw e;
      }
    };
    const serverLog: ServerInterceptor = (next) => (call) => {
      log.push(`server ${call.procedure.name} from ${call.context.peer} over ${call.context.transport}`);
      return next(call);
    };
    const server = serve(exampleHandlers(), { interceptors: [serverLog] });
    const client = example.client(await inproc(server, { interceptors: [clientLog] }));
    expect(await client.exprocAdd(2, 3)).toBe(5);
    await expect(client.exprocFail()).rejects.toMatchObject({ status: "SYSTEM_ERR" });
    expect(log).toEqual([
      "client → EXPROC_ADD([2,3])",
      "server EXPROC_ADD from inproc over inproc",
      "client ← EXPROC_ADD = 5",
      "client → EXPROC_FAIL(undefined)",
      "server EXPROC_FAIL from inproc over inproc",
      "client ← EXPROC_FAIL failed SYSTEM_ERR",
    ]);
  });

  it("inject credentials on the client: a server that demands AUTH_SYS uid 1000 admits the call", async () => {
    const uids: number[] = [];
    const server = serve(
      { ...exampleHandlers(), exprocAdd: (a: number, b: number, context: { authSys?: AuthSysParams }) => (uids.push(context.authSys!.uid), a + b) },
      { authenticate: (call) => (call.cred.flavor === AuthFlavor.AUTH_SYS && call.authSys?.uid === 1000 ? AuthStat.AUTH_OK : AuthStat.AUTH_TOOWEAK) },
    );
    const anonymous = example.client(await inproc(server));
    await expect(anonymous.exprocAdd(1, 2)).rejects.toMatchObject({ status: "AUTH_ERROR", authStat: AuthStat.AUTH_TOOWEAK });

    const credentials: AuthSysParams = { stamp: 7, machinename: "client", uid: 1000, gid: 100, gids: [100] };
    const withCredentials: Interceptor = (next) => (call) => {
      call.auth = credentials;
      return next(call);
    };
    const authed = example.client(await inproc(server, { interceptors: [withCredentials] }));
    expect(await authed.exprocAdd(1, 2)).toBe(3);
    expect(uids).toEqual([1000]);
  });

  it("retry an idempotent procedure against a flaky handler, and only an idempotent one", async () => {
    let adds = 0;
    let fails = 0;
    const server = serve({
      ...exampleHandlers(),
      exprocAdd: (a: number, b: number) => {
        if (++adds < 3) throw new Error(`flaky (attempt ${adds})`);
        return a + b;
      },
      exprocFail: () => {
        fails++;
        throw new Error("not idempotent, not retried");
      },
    });
    const idempotent = new Set(["EXPROC_ADD", "EXPROC_LOOKUP"]);
    const xids: number[] = [];
    const retry =
      (tries: number): Interceptor =>
      (next) =>
      async (call) => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await next(call);
          } catch (e) {
            const retriable = e instanceof RpcError && (e.status === "SYSTEM_ERR" || e.status === "TIMEOUT");
            if (!idempotent.has(call.procedure.name) || !retriable || attempt >= tries) throw e;
          }
        }
      };
    const channel = await connect({
      transport: "inproc",
      server,
      interceptors: [retry(5)],
      onCall: (r) => xids.push(r.xid),
    });
    open.push(channel);
    const client = example.client(channel);
    expect(await client.exprocAdd(40, 2)).toBe(42);
    expect(adds).toBe(3);
    // Each attempt is a call of its own, with its own xid.
    expect(new Set(xids).size).toBe(3);
    await expect(client.exprocFail()).rejects.toMatchObject({ status: "SYSTEM_ERR" });
    expect(fails).toBe(1);

    // Bounded: a handler that never recovers is tried 5 times, then its error comes through.
    adds = -100;
    await expect(client.exprocAdd(1, 1)).rejects.toMatchObject({ status: "SYSTEM_ERR" });
    expect(adds).toBe(-95);
  });

  it("run in the order given, the first outermost, on both sides; a server interceptor may replace the arguments", async () => {
    const order: string[] = [];
    const tag =
      (name: string): Interceptor =>
      (next) =>
      async (call) => {
        order.push(`${name}>`);
        const result = await next(call);
        order.push(`<${name}`);
        return result;
      };
    const stag =
      (name: string): ServerInterceptor =>
      (next) =>
      async (call) => {
        order.push(`${name}>`);
        const result = await next(call);
        order.push(`<${name}`);
        return result;
      };
    const double: ServerInterceptor = (next) => (call) => {
      call.args = (call.args as number[]).map((n) => n * 2);
      return next(call);
    };
    const server = serve(
      { ...exampleHandlers(), exprocAdd: (a: number, b: number) => (order.push(`handler ${a}+${b}`), a + b) },
      { interceptors: [stag("s1"), stag("s2"), double] },
    );
    const client = example.client(await inproc(server, { interceptors: [tag("c1"), tag("c2"), tag("c3")] }));
    expect(await client.exprocAdd(1, 2)).toBe(6);
    expect(order).toEqual(["c1>", "c2>", "c3>", "s1>", "s2>", "handler 2+4", "<s2", "<s1", "<c3", "<c2", "<c1"]);
  });

  it("may shorten a call's deadline: the call sees the timeout the interceptor set", async () => {
    const server = serve({ ...exampleHandlers(), exprocLookup: () => new Promise((r) => setTimeout(() => r({ status: 1 }), 500)) });
    const seen: number[] = [];
    const deadline: Interceptor = (next) => (call) => {
      seen.push(call.timeoutMs);
      call.timeoutMs = Math.min(call.timeoutMs, 30);
      return next(call);
    };
    const client = example.client(await inproc(server, { interceptors: [deadline] }));
    await expect(client.exprocLookup(1, { timeoutMs: 10_000 })).rejects.toMatchObject({ status: "TIMEOUT" });
    expect(seen).toEqual([10_000]);
  });

  it("a server interceptor that throws is the server's failure: SYSTEM_ERR, told to onError, the server serves on", async () => {
    const errors: unknown[] = [];
    const refuse: ServerInterceptor = (next) => (call) => {
      if (call.procedure.name === "EXPROC_GREET") throw new Error("greetings are off");
      return next(call);
    };
    const server = serve(exampleHandlers(), { interceptors: [refuse], onError: (e) => errors.push(e) });
    const client = example.client(await inproc(server));
    await expect(client.exprocGreet("hi", 1)).rejects.toMatchObject({ status: "SYSTEM_ERR" });
    expect((errors[0] as Error).message).toBe("greetings are off");
    expect(await client.exprocAdd(1, 1)).toBe(2);
  });

  it("refuse interceptors that are not functions, naming the one at fault", async () => {
    const server = serve(exampleHandlers());
    await expect(connect({ transport: "inproc", server, interceptors: [(next) => next, 42 as unknown as Interceptor] })).rejects.toMatchObject({
      status: "BAD_OPTIONS",
      message: expect.stringContaining("interceptors[1] is not a function"),
    });
    await expect(connect({ transport: "inproc", server, interceptors: [() => undefined as unknown as never] })).rejects.toMatchObject({
      message: expect.stringContaining("interceptors[0] returned undefined"),
    });
    expect(() => createServer({ interceptors: [null as unknown as ServerInterceptor] })).toThrow(/createServer: interceptors\[0\] is not a function/);
    expect(() => createServer({ callTimeoutMs: -1 })).toThrow(RangeError);
  });
});

describe("a handler's signal", () => {
  /** A handler that waits for its signal and reports the reason. */
  function waiting() {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let told!: (reason: unknown) => void;
    const aborted = new Promise<unknown>((r) => (told = r));
    const handlers = {
      ...exampleHandlers(),
      exprocLookup: (_id: number, context: { signal: AbortSignal }) =>
        new Promise((resolve) => {
          expect(context.signal.aborted).toBe(false);
          context.signal.addEventListener("abort", () => {
            told(context.signal.reason);
            resolve({ status: 1 });
          });
          started();
        }),
    };
    return { handlers, running, aborted };
  }

  it("fires when the client's connection drops mid-call (tcp)", async () => {
    const w = waiting();
    const server = serve(w.handlers);
    const { port } = await server.listen({ transport: "tcp", host: "127.0.0.1", port: 0 });
    const channel = await connect({ transport: "tcp", host: "127.0.0.1", port, reconnect: false });
    const call = example.client(channel).exprocLookup(5).catch((e: unknown) => e);
    await w.running;
    await channel.close({ graceMs: 0 });
    const reason = await w.aborted;
    expect(reason).toBeInstanceOf(RpcError);
    expect((reason as RpcError).status).toBe("CLOSED");
    expect((reason as RpcError).message).toMatch(/the connection from 127\.0\.0\.1:\d+ closed/);
    expect(await call).toMatchObject({ status: "CLOSED" });
  });

  it("of an answered call follows the connection no more: nothing is left listening on it", async () => {
    const kept: AbortSignal[] = [];
    const server = serve({ ...exampleHandlers(), exprocAdd: (a: number, b: number, context: { signal: AbortSignal }) => (kept.push(context.signal), a + b) });
    const { port } = await server.listen({ transport: "tcp", host: "127.0.0.1", port: 0 });
    const channel = await connect({ transport: "tcp", host: "127.0.0.1", port, reconnect: false });
    const client = example.client(channel);
    for (let i = 0; i < 100; i++) expect(await client.exprocAdd(i, 1)).toBe(i + 1);
    await channel.close();
    await new Promise((r) => setTimeout(r, 50)); // the server sees the connection go
    expect(kept).toHaveLength(100);
    expect(kept.filter((s) => s.aborted)).toEqual([]);
  });

  it("fires when the server closes, at the end of its grace", async () => {
    const w = waiting();
    const server = serve(w.handlers);
    const channel = await inproc(server);
    const call = example.client(channel).exprocLookup(5);
    await w.running;
    const closed = server.close({ graceMs: 20 });
    expect(((await w.aborted) as RpcError).message).toMatch(/the server closed/);
    await closed;
    await expect(call).resolves.toEqual({ status: 1 });
  });

  it("fires at the server's callTimeoutMs (ONC RPC sends no deadline), and a handler that never looks pays for no signal", async () => {
    const w = waiting();
    const server = serve(w.handlers, { callTimeoutMs: 30 });
    const client = example.client(await inproc(server));
    const t0 = Date.now();
    await expect(client.exprocLookup(5)).resolves.toEqual({ status: 1 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    expect(((await w.aborted) as RpcError).status).toBe("TIMEOUT");
    // Handlers that never touch the signal are not timed: the server's calls go on as usual.
    expect(await client.exprocAdd(1, 2)).toBe(3);
  });
});
