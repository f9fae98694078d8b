import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect as netConnect } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, CopyLedger, createServer, renumber, RpcChannel, RpcError, toXdr, type AuthStat, type Channel, type Server, type ServiceDescription } from "../runtime/index.js";
import type { ClientTransport } from "../runtime/transport/types.js";
import { arbitraryOf } from "./arbitrary.js";
import { compile } from "./generated.js";
import { exampleFile, loadExample, type ExampleClient } from "./example.js";
import { countingHandlers, encodeCall, exampleArguments, frame, fuzzedCall, ServerModel, splitRecords, u32, withXid, type Expected, type HookRule } from "./fuzz/rpc.js";
import { concat, words } from "./bytes.js";
import { describeThrown, fuzzAsync, hex, mutate, mutation, summary, xdrLikeBytes } from "./fuzz/seed.js";
import { semantics, type ProcedureKey } from "./fuzz/semantics.js";
import { referenceRecords } from "./fuzz/framing.js";

/**
 * Fuzzing a live server over TCP and UDP on 127.0.0.1: random and
 * mutated calls through raw sockets, each answered with exactly the reply an independent
 * model of RFC 5531 §9 predicts (RPC_MISMATCH, AUTH_ERROR with the right auth_stat,
 * PROG_UNAVAIL, PROG_MISMATCH with the versions registered, PROC_UNAVAIL, GARBAGE_ARGS,
 * SYSTEM_ERR, or the results) — or dropped, where the message is not a call. Handlers run
 * exactly for the calls whose arguments decode. After every batch a generated client still
 * gets served, and the server holds nothing for the fuzzer's connection. Over TCP the
 * framing is fuzzed too: records are answered in order until the framing breaks a limit,
 * and then the connection is closed.
 */

const PROGRAM = 0x2000_0101;

let server: Server;
let services: ServiceDescription[];
let model: ServerModel;
/** The same services behind an `authenticate` hook, and what it makes of each call. */
let hooked: Server;
let hookedModel: ServerModel;
let hookedPort: number;
/** uid 13: the hook throws; uid 14: it refuses AUTH_TOOWEAK; anything else (AUTH_NONE too) it accepts. */
const hookRule: HookRule = (uid) => (uid === 13 ? "throw" : uid === 14 ? 5 : undefined);
const counts = new Map<string, number>();
let tcpPort: number;
let udpPort: number;
/** A listener with small framing limits, so that mutated framing reaches them. */
let framingPort: number;
const framingLimits = { maxRecordBytes: 1024, maxFragments: 4 };
let calls: fc.Arbitrary<Uint8Array>;
let clients: { tcp: ExampleClient; udp: ExampleClient };
const channels: Channel[] = [];
/** Unique xids across the file: the duplicate cache never confuses two fuzzed calls. */
let nextXid = 0x4000_0000;

beforeAll(async () => {
  const synthesized = await loadExample("synthesized");
  const classic = await loadExample("classic");
  const descriptor = await loadExample("descriptor");
  // Versions 1 and 3 of the program (PROG_MISMATCH says 1..3), and two more programs in the other modes.
  services = [
    synthesized.service,
    renumber(synthesized.service, { version: 3 }),
    renumber(classic.service, { program: PROGRAM + 1 }),
    renumber(descriptor.service, { program: PROGRAM + 2 }),
  ];
  server = createServer();
  for (const s of services) server.register(s, countingHandlers(s, counts) as never);
  model = new ServerModel(services);
  tcpPort = (await server.listen({ transport: "tcp" })).port;
  udpPort = (await server.listen({ transport: "udp" })).port;
  framingPort = (await server.listen({ transport: "tcp", limits: framingLimits })).port;
  hooked = createServer({
    authenticate: (call) => {
      const verdict = hookRule(call.authSys?.uid);
      if (verdict === "throw") throw new Error("the hook failed");
      return verdict as AuthStat | undefined;
    },
  });
  for (const s of services) hooked.register(s, countingHandlers(s, counts) as never);
  hookedModel = new ServerModel(services, hookRule);
  hookedPort = (await hooked.listen({ transport: "tcp" })).port;
  // Versions 3 of the other programs, 2 and 4 of the first: PROG_MISMATCH; program + 3: PROG_UNAVAIL.
  calls = fuzzedCall([PROGRAM, PROGRAM + 1, PROGRAM + 2], [1, 1, 1, 1, 1, 3], exampleArguments(synthesized.service), {
    programs: [PROGRAM + 3],
    versions: [2, 4],
  });
  const tcp = await connect({ transport: "tcp", port: tcpPort });
  const udp = await connect({ transport: "udp", port: udpPort });
  channels.push(tcp, udp);
  clients = { tcp: synthesized.client(tcp), udp: synthesized.client(udp) };
}, 60_000);

afterAll(async () => {
  await Promise.all(channels.map((c) => c.close()));
  await server?.close();
  await hooked?.close();
  if (process.env.FUZZ_VERBOSE === "1") console.log(`fuzz-server: ${summary()}`);
});

/** A NULL call: once its reply is in, every message sent before it on the same path has been handled. */
function sentinel(xid: number): Uint8Array {
  return encodeCall(xid, { rpcvers: 2, prog: PROGRAM, vers: 1, proc: 0, cred: { flavor: 0, body: new Uint8Array(0) }, verf: { flavor: 0, body: new Uint8Array(0) }, args: new Uint8Array(0) });
}

const sentinelReply = (xid: number) => hex(words(xid, 1, 0, 0, 0, 0));

/** Gives each message a fresh xid (where it is long enough to have one) and the model's verdict on it. */
function prepare(batch: readonly Uint8Array[], by: ServerModel = model): { message: Uint8Array; expected: Expected }[] {
  return batch.map((m) => {
    const message = withXid(m, nextXid++);
    return { message, expected: by.expect(message) };
  });
}

function snapshot(): Map<string, number> {
  return new Map(counts);
}

/** Handlers ran exactly for the calls the model says decode: per program/version/procedure. */
function checkExecutions(before: Map<string, number>, expected: readonly Expected[]): void {
  const want = new Map<string, number>();
  for (const e of expected) if (!e.drop && e.runs !== undefined) want.set(e.runs, (want.get(e.runs) ?? 0) + 1);
  const got = new Map<string, number>();
  for (const [k, n] of counts) if (n !== (before.get(k) ?? 0)) got.set(k, n - (before.get(k) ?? 0));
  expect(Object.fromEntries(got), "handler executions by program/version/procedure").toEqual(Object.fromEntries(want));
}

/** Each reply is one the model allows for the message with its xid; dropped messages have none. */
function checkReplies(sent: readonly { message: Uint8Array; expected: Expected }[], replies: readonly Uint8Array[]): void {
  const byXid = new Map<number, Uint8Array[]>();
  for (const r of replies) {
    expect(r.length, `a reply of ${r.length} bytes`).toBeGreaterThanOrEqual(12);
    const xid = u32(r, 0);
    byXid.set(xid, [...(byXid.get(xid) ?? []), r]);
  }
  for (const { message, expected } of sent) {
    const got = message.length >= 4 ? (byXid.get(u32(message, 0)) ?? []) : [];
    if (expected.drop) {
      expect(got.map(hex), `no reply to ${hex(message)} (${expected.why})`).toEqual([]);
    } else {
      expect(got.length, `one reply to ${hex(message)} (${expected.why})`).toBe(1);
      expect(expected.replies, `the reply to ${hex(message)} (${expected.why})`).toContain(hex(got[0]!));
    }
  }
}

/**
 * Writes `stream` on a new TCP connection and reads replies until `done` says so, the server
 * closes the connection, or `ms` pass (then `timedOut`). With `end`, half-closes after writing.
 */
function tcpExchange(
  port: number,
  stream: Uint8Array,
  options: { end: boolean; done?: (replies: Uint8Array[]) => boolean; ms: number; cuts?: readonly number[] },
): Promise<{ replies: Uint8Array[]; closed: boolean; timedOut: boolean; rest: number }> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    let received: Uint8Array = new Uint8Array(0);
    let finished = false;
    const finish = (closed: boolean, timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      const { messages, rest } = splitRecords(received);
      socket.destroy();
      resolve({ replies: messages, closed, timedOut, rest: rest.length });
    };
    const timer = setTimeout(() => finish(false, true), options.ms);
    socket.setNoDelay(true);
    socket.on("connect", async () => {
      // In pieces, a turn of the event loop apart: the server gets records split across reads.
      const points = [...new Set((options.cuts ?? []).map((c) => Math.floor(c * stream.length)))].sort((a, b) => a - b);
      let from = 0;
      for (const to of [...points, stream.length]) {
        if (socket.destroyed) return;
        socket.write(stream.subarray(from, to));
        from = to;
        await new Promise((r) => setImmediate(r));
      }
      if (options.end && !socket.destroyed) socket.end();
    });
    socket.on("data", (chunk: Buffer) => {
      received = concat(received, chunk);
      if (options.done?.(splitRecords(received).messages) === true) finish(false, false);
    });
    socket.on("error", () => {});
    socket.on("close", () => finish(true, false));
  });
}

/** Sends each message as a datagram, then a sentinel; collects replies until the sentinel's. */
function udpExchange(messages: readonly Uint8Array[], ms: number): Promise<{ replies: Uint8Array[]; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket: UdpSocket = createSocket("udp4");
    const replies: Uint8Array[] = [];
    const last = nextXid++;
    let finished = false;
    const finish = (timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.close();
      resolve({ replies, timedOut });
    };
    const timer = setTimeout(() => finish(true), ms);
    socket.on("message", (m: Buffer) => {
      if (m.length >= 4 && u32(m, 0) === last) return finish(false);
      replies.push(new Uint8Array(m));
    });
    socket.on("error", () => {});
    socket.connect(udpPort, "127.0.0.1", () => {
      for (const m of messages) socket.send(m);
      // The server reads datagrams in order: once this is answered, all before it are handled.
      socket.send(sentinel(last));
    });
  });
}

/** The server holds nothing for connections that are gone. */
async function settled(): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const stats = [...server.listenerStats(), ...hooked.listenerStats()].map((l) => l.stats);
    const busy = stats.some((s) => s.callsInProgress !== 0 || s.bufferedBytes !== 0 || s.connections > 1);
    if (!busy) return;
    if (Date.now() > deadline) expect(stats, "what the listeners still hold after the batch").toEqual([]);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const batch = (max: number) => fc.array(fc.constant(null), { minLength: 1, maxLength: max }).chain((a) => fc.tuple(...a.map(() => calls)));

describe("a server under fuzzed calls", () => {
  it("TCP: every record gets the reply RFC 5531 prescribes, or none if it is no call; valid calls are served after", async () => {
    const input = fc.tuple(batch(40), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), fc.boolean());
    await fuzzAsync(
      "server over TCP",
      fc.asyncProperty(input, async ([messages, cuts, withHook]) => {
        // The same services with and without an authenticate hook: the hook changes nothing for flavors nobody verifies.
        const sent = prepare(messages, withHook ? hookedModel : model);
        const last = nextXid++;
        const before = snapshot();
        const stream = concat(...sent.map((s) => frame(s.message)), frame(sentinel(last)));
        const out = await tcpExchange(withHook ? hookedPort : tcpPort, stream, { end: false, done: (rs) => rs.some((r) => u32(r, 0) === last), ms: 5000, cuts });
        expect(out.timedOut, "the sentinel was answered").toBe(false);
        expect(out.closed, "the connection stays open: every record was well framed").toBe(false);
        expect(out.replies.map((r) => u32(r, 0)).at(-1)).toBe(last);
        expect(hex(out.replies.at(-1)!)).toBe(sentinelReply(last));
        checkReplies(sent, out.replies.slice(0, -1));
        checkExecutions(before, sent.map((s) => s.expected));
        expect(await clients.tcp.exprocAdd(20, 22)).toBe(42);
        await settled();
      }),
      { numRuns: 150, timeMs: 6000 },
    );
  }, 60_000);

  it("UDP: every datagram gets the reply RFC 5531 prescribes, or none if it is no call; valid calls are served after", async () => {
    await fuzzAsync(
      "server over UDP",
      fc.asyncProperty(batch(40), async (messages) => {
        const sent = prepare(messages);
        const before = snapshot();
        const out = await udpExchange(
          sent.map((s) => s.message),
          5000,
        );
        expect(out.timedOut, "the sentinel was answered").toBe(false);
        checkReplies(sent, out.replies);
        checkExecutions(before, sent.map((s) => s.expected));
        expect(await clients.udp.exprocAdd(20, 22)).toBe(42);
      }),
      { numRuns: 150, timeMs: 6000 },
    );
  }, 60_000);

  it("TCP framing: records are answered in order until the framing breaks a limit, then the connection is closed", async () => {
    /** Calls split into 1–3 fragments, the stream then mutated (marks included). */
    const stream = fc
      .tuple(
        fc.array(fc.tuple(calls, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 2 })), { minLength: 1, maxLength: 8 }),
        fc.array(mutation, { maxLength: 3 }),
      )
      .map(([records, ms]) => {
        const parts: Uint8Array[] = [];
        for (const [m, cuts] of records) {
          const message = withXid(m, nextXid++);
          const points = [...new Set(cuts.map((c) => Math.floor(c * message.length)))].sort((a, b) => a - b);
          const bounds = [0, ...points, message.length];
          for (let i = 0; i + 1 < bounds.length; i++) {
            const piece = message.subarray(bounds[i], bounds[i + 1]);
            parts.push(words((i + 2 === bounds.length ? 0x8000_0000 : 0) | piece.length), piece);
          }
        }
        return mutate(concat(...parts), ms);
      });
    await fuzzAsync(
      "TCP framing",
      fc.asyncProperty(stream, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), async (bytes, cuts) => {
        const framing = referenceRecords(bytes, framingLimits);
        const expected = framing.records.map((m) => model.expect(m));
        const before = snapshot();
        const out = await tcpExchange(framingPort, bytes, { end: true, ms: 5000, cuts });
        expect(out.timedOut, `the server neither answered nor closed the connection for ${hex(bytes)}`).toBe(false);
        expect(out.closed).toBe(true);
        const answers = expected.filter((e): e is Extract<Expected, { drop: false }> => !e.drop);
        const replies = out.replies.map(hex);
        // In order; when the framing broke a limit, the replies still queued may be lost with the connection.
        if (framing.broken) expect(replies.length).toBeLessThanOrEqual(answers.length);
        else expect(replies.length, `replies to ${hex(bytes)}`).toBe(answers.length);
        replies.forEach((r, i) => expect(answers[i]!.replies, `reply ${i} to ${hex(bytes)} (${answers[i]!.why})`).toContain(r));
        checkExecutions(before, expected);
        expect(await clients.tcp.exprocAdd(1, 2)).toBe(3);
        await settled();
      }),
      { numRuns: 150, timeMs: 6000 },
    );
  }, 60_000);
});

// ---- the client's side: replies from a hostile server ------------------------------------------

/**
 * A transport that answers each call with what `respond` makes of it, on the next turn of the
 * event loop: a server that says what it likes, with no socket in between.
 */
function scriptedLink(respond: (call: Uint8Array) => Uint8Array[]): ClientTransport {
  const link: ClientTransport = {
    kind: "tcp",
    headerRoom: 0,
    datagram: false,
    readsInPlace: false,
    send(buffer, end, _ledger, release) {
      const call = buffer.slice(0, end);
      release(buffer);
      setImmediate(() => {
        for (const m of respond(call)) link.onMessage(m, new CopyLedger());
      });
    },
    onMessage: () => false,
    onClose: () => {},
    close: async () => {},
  };
  return link;
}

describe("a client under fuzzed replies", () => {
  it("settles each call at once with its value or an RpcError; only a message that is not its reply leaves it to time out", async () => {
    const model = compile(exampleFile).model;
    const procedures = model.programs[0]!.versions[0]!.procedures;
    const input = fc
      .tuple(fc.integer({ min: 0, max: services.length - 1 }), fc.constantFrom(...procedures))
      .chain(([s, p]) =>
        fc.record({
          service: fc.constant(services[s]!),
          number: fc.constant(p.number),
          args: fc.tuple(...p.args.filter((t) => t.kind !== "void").map((t) => arbitraryOf(t))),
          mutations: fc.oneof(fc.constant([]), fc.array(mutation, { minLength: 1, maxLength: 3 })),
          noise: fc.option(xdrLikeBytes(12), { nil: undefined }),
        }),
      );
    await fuzzAsync(
      "client, fuzzed replies",
      fc.asyncProperty(input, async ({ service, number, args, mutations, noise }) => {
        const [key, description] = Object.entries(service.procedures).find(([, d]) => d.number === number)!;
        const value = description.arity === 0 ? undefined : description.arity === 1 ? args[0] : args;
        // The reply a correct server sends (the model's), then edited; the xid is the call's.
        const call = encodeCall(0, { rpcvers: 2, prog: service.program, vers: service.version, proc: number, cred: { flavor: 0, body: new Uint8Array(0) }, verf: { flavor: 0, body: new Uint8Array(0) }, args: toXdr(description.args, value) });
        const verdict = model0().expect(call);
        if (verdict.drop) throw new Error(`the model drops a valid call: ${verdict.why}`);
        const template = mutate(Buffer.from(verdict.replies[0]!, "hex"), mutations);
        // Not its reply: too short to name the call, or a call itself (a server may call back).
        const ignored = template.length < 4 || (template.length >= 8 && u32(template, 4) === 0);
        const channel = new RpcChannel(
          scriptedLink((sent) => [...(noise === undefined ? [] : [noise]), withXid(template, u32(sent, 0))]),
          {},
        );
        const started = performance.now();
        const outcome = await channel.call(service, description, value, undefined, { timeoutMs: ignored ? 50 : 5000 }).then(
          (v) => ({ ok: true as const, v }),
          (e: unknown) => ({ ok: false as const, e }),
        );
        const ms = performance.now() - started;
        await channel.close();
        const f = semantics[key as ProcedureKey] as ((...a: unknown[]) => unknown) | undefined;
        if (!outcome.ok && !(outcome.e instanceof RpcError)) throw new Error(`the call failed with ${describeThrown(outcome.e)} on the reply ${hex(template)}`);
        if (ignored) {
          expect(outcome.ok ? "resolved" : (outcome.e as RpcError).status, `a message that is not the reply: ${hex(template)}`).toBe("TIMEOUT");
          return;
        }
        expect(outcome.ok || (outcome.e as RpcError).status !== "TIMEOUT", `the call waited out its timeout for the reply ${hex(template)}`).toBe(true);
        expect(ms, "settled at once").toBeLessThan(2000);
        if (mutations.length === 0) {
          if (number === 9) expect(outcome.ok ? "resolved" : (outcome.e as RpcError).status).toBe("SYSTEM_ERR");
          else expect(outcome.ok && outcome.v, `${key}`).toEqual(number === 0 ? undefined : f!(...args));
        }
      }),
      { numRuns: 300, timeMs: 5000 },
    );
  }, 60_000);
});

/** The model of the services without handler counting: what a correct server replies. */
let modelInstance: ServerModel | undefined;
function model0(): ServerModel {
  return (modelInstance ??= new ServerModel(services));
}

