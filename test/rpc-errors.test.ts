import { createServer as createNetServer, type Socket } from "node:net";
import { beforeAll, describe, expect, it } from "vitest";
import {
  AuthFlavor,
  AuthStat,
  connect,
  createServer,
  renumber,
  RpcChannel,
  RpcError,
  type CallContext,
  type Channel,
  type ProcedureDescription,
  type ServiceDescription,
  type XdrCodec,
} from "../runtime/index.js";
import { connectInproc } from "../runtime/transports/inproc.js";
import { exampleHandlers, loadExample, type Example } from "./example.js";

/**
 * RFC 5531 §9 replies, each produced by a server and surfacing on the client as the right
 * RpcError, and the client's own failures: timeout, abort, a dead peer, bad arguments.
 */

let example: Example;
beforeAll(async () => {
  example = await loadExample("synthesized");
});

function procedure(name: string): ProcedureDescription {
  return example.service.procedures[name]!;
}

async function failure(promise: Promise<unknown>): Promise<RpcError> {
  const e = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(RpcError);
  return e as RpcError;
}

async function inproc(): Promise<{ channel: Channel; close: () => Promise<void> }> {
  const server = createServer().register(example.service, exampleHandlers());
  const channel = await connect({ transport: "inproc", server });
  return { channel, close: () => channel.close() };
}

describe("replies a server gives", () => {
  it("PROG_UNAVAIL for a program it does not export", async () => {
    const { channel, close } = await inproc();
    const other: ServiceDescription = renumber(example.service, { program: example.service.program + 1 });
    const e = await failure(channel.call(other, procedure("exprocNull"), undefined, undefined, undefined));
    expect(e.status).toBe("PROG_UNAVAIL");
    expect(e.message).toMatch(/^RPC PROG_UNAVAIL: /);
    await close();
  });

  it("PROG_MISMATCH with the lowest and highest version it has", async () => {
    const v3: ServiceDescription = renumber(example.service, { version: 3 });
    const server = createServer().register(example.service, exampleHandlers()).register(v3, exampleHandlers());
    const channel = await connect({ transport: "inproc", server });
    const v2: ServiceDescription = renumber(example.service, { version: 2 });
    const e = await failure(channel.call(v2, procedure("exprocAdd"), [1, 2], undefined, undefined));
    expect([e.status, e.low, e.high]).toEqual(["PROG_MISMATCH", 1, 3]);
    // Procedure 0 answers for every registered version.
    await expect(channel.call(v3, procedure("exprocNull"), undefined, undefined, undefined)).resolves.toBeUndefined();
    await channel.close();
  });

  it("PROC_UNAVAIL for a procedure it does not have", async () => {
    const { channel, close } = await inproc();
    const missing: ProcedureDescription = { ...procedure("exprocNull"), number: 99, name: "EXPROC_MISSING" };
    const e = await failure(channel.call(example.service, missing, undefined, undefined, undefined));
    expect(e.status).toBe("PROC_UNAVAIL");
    expect(e.message).toContain("EXPROC_MISSING");
    await close();
  });

  it("GARBAGE_ARGS when the arguments do not decode", async () => {
    const { channel, close } = await inproc();
    // Sends one int where EXPROC_ADD takes two.
    const short: XdrCodec<[number, number]> = {
      name: "short",
      min: 4,
      max: 4,
      encode: (w, v) => w.int(v[0]),
      decode: (r) => [r.int(), 0],
    };
    const add = { ...procedure("exprocAdd"), args: short } as ProcedureDescription;
    const e = await failure(channel.call(example.service, add, [1, 2], undefined, undefined));
    expect(e.status).toBe("GARBAGE_ARGS");
    await close();
  });

  it("SYSTEM_ERR when a handler throws, and goes on serving", async () => {
    const errors: unknown[] = [];
    const server = createServer({ onError: (e) => errors.push(e) }).register(example.service, exampleHandlers());
    const channel = await connect({ transport: "inproc", server });
    const client = example.client(channel);
    expect((await failure(client.exprocFail())).status).toBe("SYSTEM_ERR");
    expect(errors).toHaveLength(1);
    expect(await client.exprocAdd(1, 1)).toBe(2);
    await channel.close();
  });

  it("SYSTEM_ERR when a handler returns what its result type cannot encode", async () => {
    const handlers = { ...exampleHandlers(), exprocAdd: () => "not a number" } as unknown as ReturnType<typeof exampleHandlers>;
    const server = createServer().register(example.service, handlers);
    const channel = await connect({ transport: "inproc", server });
    expect((await failure(example.client(channel).exprocAdd(1, 2))).status).toBe("SYSTEM_ERR");
    await channel.close();
  });

  it("RPC_MISMATCH for an RPC version other than 2", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    const link = connectInproc(server);
    const send = link.send;
    // Rewrites the rpcvers word (bytes 8..11 of the call) to 3 on its way out.
    const patched = { ...link, send: (b: Uint8Array, end: number, l: Parameters<typeof send>[2], r: Parameters<typeof send>[3]) => {
      b[link.headerRoom + 11] = 3;
      send(b, end, l, r);
    } };
    const channel = new RpcChannel(patched);
    link.onMessage = (m, re) => patched.onMessage(m, re);
    const e = await failure(channel.call(example.service, procedure("exprocNull"), undefined, undefined, undefined));
    expect([e.status, e.low, e.high]).toEqual(["RPC_MISMATCH", 2, 2]);
    await channel.close();
  });

  it("AUTH_ERROR from the auth hook; AUTH_SYS credentials reach the handler", async () => {
    const seen: CallContext[] = [];
    const handlers = {
      ...exampleHandlers(),
      exprocAdd: (a: number, b: number, call: CallContext) => (seen.push(call), a + b),
    } as unknown as ReturnType<typeof exampleHandlers>;
    const server = createServer({
      authenticate: (call) => {
        if (call.authSys === undefined) return AuthStat.AUTH_TOOWEAK;
        if (call.authSys.uid === 0) return AuthStat.AUTH_REJECTEDCRED;
        return undefined;
      },
    }).register(example.service, handlers);
    const channel = await connect({ transport: "inproc", server });
    const anonymous = await failure(example.client(channel).exprocAdd(1, 2));
    expect([anonymous.status, anonymous.authStat]).toEqual(["AUTH_ERROR", AuthStat.AUTH_TOOWEAK]);

    const Client = example.module.ExampleV1Client as new (c: Channel, o: object) => { exprocAdd(a: number, b: number): Promise<number> };
    const root = new Client(channel, { auth: { stamp: 1, machinename: "h", uid: 0, gid: 0, gids: [] } });
    expect((await failure(root.exprocAdd(1, 2))).authStat).toBe(AuthStat.AUTH_REJECTEDCRED);

    const user = new Client(channel, { auth: { stamp: 7, machinename: "host.example", uid: 1000, gid: 100, gids: [4, 24] } });
    expect(await user.exprocAdd(20, 22)).toBe(42);
    expect(seen[0]!.authSys).toEqual({ stamp: 7, machinename: "host.example", uid: 1000, gid: 100, gids: [4, 24] });
    await channel.close();
  });
});

describe("access and unreadable replies", () => {
  it("AUTH_ERROR names its auth_stat; a flavor nobody verifies is refused even with a hook that accepts everything", async () => {
    const calls = new Map<string, number>();
    const server = createServer({ authenticate: () => undefined }).register(example.service, exampleHandlers(calls));
    const channel = await connect({ transport: "inproc", server });
    const Client = example.module.ExampleV1Client as new (c: Channel, o: object) => { exprocAdd(a: number, b: number): Promise<number> };
    const dh = new Client(channel, { auth: { flavor: AuthFlavor.AUTH_DH, body: Uint8Array.of(1, 2, 3, 4) } });
    const e = await failure(dh.exprocAdd(1, 2));
    expect([e.status, e.authStat]).toEqual(["AUTH_ERROR", AuthStat.AUTH_REJECTEDCRED]);
    expect(e.message).toBe(
      `RPC AUTH_ERROR: the server rejected the credentials of EXPROC_ADD (program ${example.service.program} version 1 procedure 1): AUTH_REJECTEDCRED (2)`,
    );
    expect(calls.get("add")).toBeUndefined();
    await channel.close();
  });

  it("CANNOT_DECODE at once for a reply with an accept_stat RFC 5531 does not define", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    const link = connectInproc(server);
    const channel = new RpcChannel(link);
    const deliver = link.onMessage;
    // Rewrites the accept_stat word (bytes 20..23 of the reply) to 99 on its way in.
    link.onMessage = (m, re) => {
      m[23] = 99;
      return deliver(m, re);
    };
    const e = await failure(channel.call(example.service, procedure("exprocAdd"), [1, 2], { timeoutMs: 60_000 }, undefined));
    expect(e.status).toBe("CANNOT_DECODE");
    expect(e.message).toMatch(/^RPC CANNOT_DECODE: the reply to EXPROC_ADD \(xid \d+\) cannot be read: .*unknown accept_stat 99/);
    await channel.close();
  });
});

describe("failures on the client's side", () => {
  it("TIMEOUT when no reply comes in time", async () => {
    const handlers = { ...exampleHandlers(), exprocAdd: () => new Promise(() => {}) } as unknown as ReturnType<typeof exampleHandlers>;
    const server = createServer().register(example.service, handlers);
    const channel = await connect({ transport: "inproc", server });
    const e = await failure(channel.call(example.service, procedure("exprocAdd"), [1, 2], { timeoutMs: 30 }, undefined));
    expect(e.status).toBe("TIMEOUT");
    await channel.close();
  });

  it("ABORTED by the caller's signal, before or during the call", async () => {
    const handlers = { ...exampleHandlers(), exprocAdd: () => new Promise(() => {}) } as unknown as ReturnType<typeof exampleHandlers>;
    const server = createServer().register(example.service, handlers);
    const channel = await connect({ transport: "inproc", server });
    const controller = new AbortController();
    const pending = channel.call(example.service, procedure("exprocAdd"), [1, 2], undefined, { signal: controller.signal });
    controller.abort(new Error("user gave up"));
    expect((await failure(pending)).status).toBe("ABORTED");
    const early = channel.call(example.service, procedure("exprocAdd"), [1, 2], undefined, { signal: controller.signal });
    expect((await failure(early)).status).toBe("ABORTED");
    await channel.close();
  });

  it("CANNOT_ENCODE with the path of the bad argument; nothing is sent", async () => {
    const calls = new Map<string, number>();
    const server = createServer().register(example.service, exampleHandlers(calls));
    const channel = await connect({ transport: "inproc", server });
    const e = await failure(channel.call(example.service, procedure("exprocAdd"), [1, 2.5], undefined, undefined));
    expect(e.status).toBe("CANNOT_ENCODE");
    expect(e.message).toBe("RPC CANNOT_ENCODE: encode EXPROC_ADD.arg2 at byte 4: expected int, got 2.5");
    expect(calls.get("add")).toBeUndefined();
    await channel.close();
  });

  it("CLOSED for every waiter when the server's connection dies", async () => {
    // A server that accepts and then drops the connection mid-call.
    const sockets: Socket[] = [];
    const net = createNetServer((s) => {
      sockets.push(s);
      s.once("data", () => s.destroy());
    });
    await new Promise<void>((resolve) => net.listen(0, "127.0.0.1", resolve));
    const port = (net.address() as { port: number }).port;
    const channel = await connect({ transport: "tcp", port });
    const calls = Array.from({ length: 5 }, (_, i) => failure(channel.call(example.service, procedure("exprocAdd"), [i, i], undefined, undefined)));
    for (const e of await Promise.all(calls)) expect(e.status).toBe("CLOSED");
    const after = await failure(channel.call(example.service, procedure("exprocNull"), undefined, undefined, undefined));
    expect(after.status).toBe("CLOSED");
    await channel.close();
    await new Promise((resolve) => net.close(resolve));
  });
});
