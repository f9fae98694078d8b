import { createSocket, type RemoteInfo, type Socket as DgramSocket } from "node:dgram";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createServer, RpcError, type Channel, type HandlersOf, type ServiceDescription } from "../runtime/index.js";
import { exampleHandlers, loadExample, type Example } from "./example.js";

/**
 * The client against a server that answers wrong (RFC 5531 §9 replies it cannot read), and
 * timeouts at and beyond what timers hold: a call fails at once with a clear error or waits
 * exactly as long as it was told, never for nothing, never spinning.
 */

let example: Example;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  example = await loadExample("synthesized");
});

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function words(...values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => v.setUint32(i * 4, x >>> 0));
  return b;
}

const REPLY = 1;
const ACCEPTED = 0;
const DENIED = 1;

/**
 * What the fake server answers to EXPROC_ADD(mode, b), by mode: each a list of messages
 * (the reply words after nothing, or the xid is filled in).
 */
function answers(xid: number, mode: number, b: number): Uint8Array[] {
  switch (mode) {
    case 1: // accept_stat 99
      return [words(xid, REPLY, ACCEPTED, 0, 0, 99)];
    case 2: // reject_stat 7
      return [words(xid, REPLY, DENIED, 7, 0)];
    case 3: // cut short inside the verifier
      return [words(xid, REPLY, ACCEPTED, 0)];
    case 4: // reply_stat 9
      return [words(xid, REPLY, 9, 0, 0, 0)];
    case 5: // PROG_MISMATCH without its versions
      return [words(xid, REPLY, ACCEPTED, 0, 0, 2)];
    case 6: // SUCCESS without the result
      return [words(xid, REPLY, ACCEPTED, 0, 0, 0)];
    case 7: // an auth_stat RFC 5531 does not define: still an authentication error
      return [words(xid, REPLY, DENIED, 1, 99)];
    case 8: // a reply for somebody else, then a CALL with this xid, then the right reply
      return [words(xid ^ 0x5a5a, REPLY, ACCEPTED, 0, 0, 99), words(xid, 0, 2, 1, 1, 0, 0, 0, 0, 0), words(xid, REPLY, ACCEPTED, 0, 0, 0, mode + b)];
    case 9: // only a xid
      return [words(xid)];
    default: // a good reply
      return [words(xid, REPLY, ACCEPTED, 0, 0, 0, mode + b)];
  }
}

function callOf(m: Uint8Array): { xid: number; mode: number; b: number } {
  const v = new DataView(m.buffer, m.byteOffset, m.length);
  // xid, CALL, 2, prog, vers, proc, cred (AUTH_NONE, 0), verf (AUTH_NONE, 0), a, b
  return { xid: v.getUint32(0), mode: v.getInt32(40), b: v.getInt32(44) };
}

/** A TCP server that reads records and answers each call as `answers` says. */
async function fakeTcp(): Promise<number> {
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((s) => {
    sockets.add(s);
    let pending = Buffer.alloc(0);
    s.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const n = pending.readUInt32BE(0) & 0x7fffffff;
        if (pending.length < 4 + n) break;
        const record = pending.subarray(4, 4 + n);
        pending = pending.subarray(4 + n);
        const call = callOf(record);
        for (const a of answers(call.xid, call.mode, call.b)) {
          const mark = Buffer.alloc(4);
          mark.writeUInt32BE((0x80000000 | a.length) >>> 0);
          s.write(Buffer.concat([mark, a]));
        }
      }
    });
    s.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as { port: number }).port;
}

/** The same over UDP: each message a datagram. */
async function fakeUdp(): Promise<number> {
  const socket: DgramSocket = createSocket("udp4");
  socket.on("message", (m: Buffer, from: RemoteInfo) => {
    const call = callOf(m);
    for (const a of answers(call.xid, call.mode, call.b)) socket.send(a, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  cleanup.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket.address().port;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const e = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(Error);
  return e as Error;
}

describe.each(["tcp", "udp"] as const)("replies the client cannot read, over %s", (transport) => {
  let channel: Channel;

  beforeAll(async () => {
    const port = transport === "tcp" ? await fakeTcp() : await fakeUdp();
    channel = await connect({ transport, port, retransmitMs: 5000 });
    cleanup.push(() => channel.close());
  });

  const add = (mode: number, b = 0) => example.client(channel).exprocAdd(mode, b);
  // Every call may wait 20 s; each must be settled long before.
  const patient = { timeoutMs: 20_000 };
  const addPatiently = (mode: number, b = 0) => channel.call(example.service, example.service.procedures.exprocAdd!, [mode, b], patient, undefined);

  it("fails a call at once with CANNOT_DECODE naming what is wrong", async () => {
    const start = Date.now();
    const cases: [number, RegExp][] = [
      [1, /unknown accept_stat 99/],
      [2, /unknown reject_stat 7/],
      [3, /EXPROC_ADD \(xid \d+\) cannot be read: .*(truncated|bytes)/],
      [4, /unknown reply_stat 9/],
      [5, /cannot be read/],
      [9, /cannot be read/],
    ];
    // All at once, on one channel: each fails once with its own reason.
    const errors = await Promise.all(cases.map(([mode]) => failure(addPatiently(mode))));
    errors.forEach((e, i) => {
      expect(e).toBeInstanceOf(RpcError);
      expect((e as RpcError).status).toBe("CANNOT_DECODE");
      expect(e.message).toMatch(/^RPC CANNOT_DECODE: the reply to EXPROC_ADD \(xid \d+\) cannot be read: /);
      expect(e.message).toMatch(cases[i]![1]);
    });
    const result = await failure(addPatiently(6));
    expect((result as RpcError).status).toBe("CANNOT_DECODE");
    expect(Date.now() - start).toBeLessThan(5000); // far below the 20 s the calls were allowed
    expect(await add(0, 42)).toBe(42); // the channel lives on
  });

  it("an auth_stat RFC 5531 does not define is an AUTH_ERROR that names it", async () => {
    const e = (await failure(addPatiently(7))) as RpcError;
    expect([e.status, e.authStat]).toEqual(["AUTH_ERROR", 99]);
    expect(e.message).toMatch(/unknown auth_stat 99$/);
  });

  it("drops replies for other calls and calls from the server, and takes the right reply", async () => {
    expect(await add(8, 34)).toBe(42);
    expect(await add(0, 1)).toBe(1);
  });
});

describe("timeouts", () => {
  it("beyond what a timer holds (2^40 ms, Infinity): no timer overflow, no spinning; answered or aborted as usual", async () => {
    const overflows: Error[] = [];
    const onWarning = (w: Error) => {
      if (w.name === "TimeoutOverflowWarning") overflows.push(w);
    };
    process.on("warning", onWarning);
    try {
      const server = createServer().register(example.service, {
        ...exampleHandlers(),
        exprocAdd: (a: number, b: number) => new Promise((resolve) => setTimeout(() => resolve(a + b), b)),
      } as unknown as HandlersOf<ServiceDescription>);
      const { port } = await server.listen({ transport: "tcp" });
      const channel = await connect({ transport: "tcp", port });
      try {
        const add = (b: number, timeoutMs: number, signal?: AbortSignal) =>
          channel.call(example.service, example.service.procedures.exprocAdd!, [1, b], { timeoutMs }, signal === undefined ? undefined : { signal });
        for (const timeoutMs of [2 ** 40, Infinity, 2 ** 31, Number.MAX_VALUE]) {
          const controller = new AbortController();
          const answered = add(400, timeoutMs);
          const aborted = add(60_000, timeoutMs, controller.signal);
          await new Promise((resolve) => setTimeout(resolve, 100));
          controller.abort(new Error("enough"));
          expect(((await failure(aborted)) as RpcError).status).toBe("ABORTED");
          expect(await answered).toBe(401);
        }
        // A short timeout beside a huge one still fires on time.
        const huge = add(60_000, 2 ** 40, AbortSignal.timeout(1500));
        const e = (await failure(add(60_000, 50))) as RpcError;
        expect(e.status).toBe("TIMEOUT");
        expect(((await failure(huge)) as RpcError).status).toBe("ABORTED");
        await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
        expect(overflows).toEqual([]);
      } finally {
        await channel.close();
        await server.close();
      }
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("a negative, NaN or non-number timeout rejects the call with a RangeError, unsent", async () => {
    const calls = new Map<string, number>();
    const server = createServer().register(example.service, exampleHandlers(calls));
    const channel = await connect({ transport: "inproc", server });
    for (const timeoutMs of [-1, Number.NaN, -Infinity, "5" as unknown as number]) {
      const e = await failure(channel.call(example.service, example.service.procedures.exprocAdd!, [1, 2], { timeoutMs }, undefined));
      expect(e).toBeInstanceOf(RangeError);
      expect(e.message).toMatch(/^EXPROC_ADD: timeoutMs must be a number ≥ 0 \(Infinity: no timeout\), got /);
    }
    expect(calls.get("add")).toBeUndefined();
    // 0 is a valid timeout: no time at all.
    const handlers = { ...exampleHandlers(), exprocAdd: () => new Promise(() => {}) } as unknown as HandlersOf<ServiceDescription>;
    const never = await connect({ transport: "inproc", server: createServer().register(example.service, handlers) });
    const e = (await failure(never.call(example.service, example.service.procedures.exprocAdd!, [1, 2], { timeoutMs: 0 }, undefined))) as RpcError;
    expect(e.status).toBe("TIMEOUT");
    expect(await example.client(channel).exprocAdd(2, 3)).toBe(5);
    await channel.close();
    await never.close();
  });

  it("a retransmission interval that is not > 0 is refused when the channel is made", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    for (const options of [{ retransmitMs: 0 }, { maxRetransmitMs: -5 }, { retransmitMs: Number.NaN }]) {
      await expect(connect({ transport: "inproc", server, ...options })).rejects.toThrow(/^RPC BAD_OPTIONS: connect: (max)?[rR]etransmitMs must be a number > 0, got /);
    }
  });
});
