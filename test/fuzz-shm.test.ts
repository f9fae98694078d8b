import { execFile } from "node:child_process";
import fc from "fast-check";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes } from "../compiler/emit/module.js";
import type { Type } from "../compiler/model.js";
import { connect, renumber, RpcError, type Channel, type ProcedureDescription, type ServiceDescription } from "../runtime/index.js";
import { SlotState } from "../runtime/transports/shm-protocol.js";
import { arbitraryOf } from "./arbitrary.js";
import { exampleFile, loadExample } from "./example.js";
import { compile, moduleText } from "./generated.js";
import { encodeCall, exampleArguments, fuzzedCall, ServerModel, withXid, type Expected } from "./fuzz/rpc.js";
import { fuzzAsync, hex, summary } from "./fuzz/seed.js";
import { RawShm } from "./fuzz/shm-driver.js";
import { semantics, type ExNode, type ProcedureKey } from "./fuzz/semantics.js";
import { repoRoot } from "./support.js";

/**
 * Fuzzing the shm transport's server, over shared memory. The worker
 * reads calls from slots the client writes, so two fuzzers:
 *
 * - a raw client (test/fuzz/shm-driver.ts) that starts the worker as the transport does and
 *   puts mutated calls straight into slots — each answered exactly as the RFC 5531 model of
 *   test/fuzz/rpc.ts predicts, or dropped if it is no call, with handlers run only for calls
 *   that decode; and slot header words the runtime never writes (lengths past the slot,
 *   negative lengths, an out-of-band mark with no message), after which the worker must
 *   still serve;
 * - the runtime's own client through the public API, with hostile but valid argument
 *   values (strings and opaques at their bounds, long lists and strings that take the
 *   out-of-band path) and invalid ones (refused CANNOT_ENCODE before they reach the worker).
 *
 * The worker runs JavaScript from dist/ (`npm test` builds it first); the example is generated
 * in every mode and compiled with the project's tsc, with the semantics of test/fuzz/semantics.ts.
 */

const exec = promisify(execFile);
const PROGRAM = 0x2000_0101;
const slotBytes = 4096;

let work: string;
let registerUrl: URL;
let services: ServiceDescription[];
let model: ServerModel;
/** Calls each handler ran, written by the worker: index ((program − PROGRAM) × 4 + version) × 16 + procedure. */
const counts = new Int32Array(new SharedArrayBuffer(4 * 256));
const countIndex = (program: number, version: number, procedure: number) => ((program - PROGRAM) * 4 + version) * 16 + procedure;
let nextXid = 0x6000_0000;

const register = `import { ExampleV1 as S } from "./synthesized/example.js";
import { ExampleV1 as C } from "./classic/example.js";
import { ExampleV1 as D } from "./descriptor/example.js";
import { renumber, type Server, type ServiceDescription } from "@rpcgen-ts/runtime";
import { semantics } from "./semantics.js";

type F = (...a: unknown[]) => unknown;
const P = S.program;

function handlers(service: ServiceDescription, counts: Int32Array): Record<string, F> {
  const out: Record<string, F> = {};
  for (const [name, d] of Object.entries(service.procedures)) {
    const f = (semantics as unknown as Record<string, F | undefined>)[name];
    if (f === undefined) continue;
    const at = ((service.program - P) * 4 + service.version) * 16 + d.number;
    out[name] = (...a: unknown[]) => {
      Atomics.add(counts, at, 1);
      return f(...a.slice(0, d.arity));
    };
  }
  return out;
}

export default function register(server: Server, data: unknown): void {
  const counts = new Int32Array((data as { counts: SharedArrayBuffer }).counts);
  const services: ServiceDescription[] = [S, renumber(S, { version: 3 }), renumber(C, { program: P + 1 }), renumber(D, { program: P + 2 })];
  for (const s of services) server.register(s, handlers(s, counts) as never);
}
`;

afterAll(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
  if (process.env.FUZZ_VERBOSE === "1") console.log(`fuzz-shm: ${summary()}`);
});

beforeAll(async () => {
  mkdirSync(join(repoRoot, ".tmp"), { recursive: true });
  work = mkdtempSync(join(repoRoot, ".tmp", "fuzz-shm-"));
  const files = [join(work, "semantics.ts"), join(work, "register.ts")];
  copyFileSync(join(repoRoot, "test/fuzz/semantics.ts"), files[0]!);
  writeFileSync(files[1]!, register);
  for (const mode of modes) {
    mkdirSync(join(work, mode));
    writeFileSync(join(work, mode, "example.ts"), await moduleText(exampleFile, mode));
    files.push(join(work, mode, "example.ts"));
  }
  const config = {
    compilerOptions: { target: "ES2022", lib: ["ES2022"], module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: true, types: ["node"] },
    files,
  };
  writeFileSync(join(work, "tsconfig.json"), JSON.stringify(config));
  try {
    await exec(join(repoRoot, "node_modules/.bin/tsc"), ["-p", join(work, "tsconfig.json")], { cwd: work });
  } catch (e) {
    const { stdout, stderr } = e as { stdout: string; stderr: string };
    throw new Error(`tsc failed for the shm fuzz fixtures:\n${stdout}${stderr}`);
  }
  registerUrl = pathToFileURL(join(work, "register.js"));
  const [synthesized, classic, descriptor] = await Promise.all([loadExample("synthesized"), loadExample("classic"), loadExample("descriptor")]);
  services = [synthesized.service, renumber(synthesized.service, { version: 3 }), renumber(classic.service, { program: PROGRAM + 1 }), renumber(descriptor.service, { program: PROGRAM + 2 })];
  model = new ServerModel(services);
}, 60_000);

function words32(...ws: number[]): number[] {
  return ws.flatMap((w) => [(w >>> 24) & 0xff, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff]);
}

function sentinel(): Uint8Array {
  return encodeCall(nextXid++, { rpcvers: 2, prog: PROGRAM, vers: 1, proc: 0, cred: { flavor: 0, body: new Uint8Array(0) }, verf: { flavor: 0, body: new Uint8Array(0) }, args: new Uint8Array(0) });
}

function countsNow(): number[] {
  return Array.from({ length: counts.length }, (_, i) => Atomics.load(counts, i));
}

/** Handlers ran exactly for the calls the model says decode. */
function checkExecutions(before: number[], expected: readonly Expected[]): void {
  const want = new Array<number>(counts.length).fill(0);
  for (const e of expected) {
    if (e.drop || e.runs === undefined) continue;
    const [p, v, n] = e.runs.split("/").map(Number) as [number, number, number];
    want[countIndex(p, v, n)]!++;
  }
  const got = countsNow().map((n, i) => n - before[i]!);
  expect(got, "handler executions by program/version/procedure").toEqual(want);
}

describe("the shm worker under a raw client", () => {
  let raw: RawShm | undefined;
  let restarts = 0;
  const fresh = async (): Promise<RawShm> => {
    await raw?.close();
    restarts++;
    raw = await RawShm.start(registerUrl, { counts: counts.buffer }, 128, slotBytes);
    return raw;
  };
  afterAll(async () => {
    await raw?.close();
    if (process.env.FUZZ_VERBOSE === "1") console.log(`fuzz-shm: ${restarts} worker starts`);
  });

  it("mutated calls in the slots get the reply RFC 5531 prescribes, or none if they are no call; the worker serves on", async () => {
    const synthesized = services[0]!;
    const calls = fuzzedCall([PROGRAM, PROGRAM + 1, PROGRAM + 2], [1, 1, 1, 1, 1, 3], exampleArguments(synthesized), { programs: [PROGRAM + 3], versions: [2, 4] });
    const batch = fc.array(calls, { minLength: 1, maxLength: 24 });
    await fuzzAsync(
      "shm worker, raw slots",
      fc.asyncProperty(batch, async (messages) => {
        let shm = raw ?? (await fresh());
        // A dropped call keeps its slot (the worker owns it): start over when they run short.
        if (shm.free.length < messages.length + 2 || shm.exited !== undefined) shm = await fresh();
        const sent = messages.map((m) => {
          const message = withXid(m, nextXid++);
          return { message, expected: model.expect(message), slot: shm.free.pop()! };
        });
        const before = countsNow();
        for (const s of sent) shm.post(s.slot, s.message);
        // Once the worker has taken every call, and answered one sent after them, it is done with them.
        expect(await shm.until(() => sent.every((s) => shm.state(s.slot) !== SlotState.CALL), 3000), "the worker takes every call").toBe(true);
        const last = await shm.call(sentinel());
        expect(last, "a NULL call after the batch is answered").toBeDefined();
        for (const { message, expected, slot } of sent) {
          const replied = shm.state(slot) === SlotState.REPLY;
          const reply = replied ? shm.take(slot) : undefined;
          if (expected.drop) {
            // No reply; a slot handed back empty is not one.
            expect(reply === undefined || reply.length === 0, `no reply to ${hex(message)} (${expected.why}), got ${reply && hex(reply)}`).toBe(true);
          } else {
            expect(reply, `a reply to ${hex(message)} (${expected.why})`).toBeDefined();
            expect(expected.replies, `the reply to ${hex(message)} (${expected.why})`).toContain(hex(reply!));
          }
        }
        checkExecutions(before, sent.map((s) => s.expected));
        // A dropped call's slot is the worker's until the client gives up on it: then it comes back, empty.
        const dropped = sent.filter((s) => shm.state(s.slot) === SlotState.SERVING);
        for (const s of dropped) expect(shm.giveUp(s.slot)).toBe(SlotState.SERVING);
        expect(await shm.until(() => dropped.every((s) => shm.state(s.slot) === SlotState.REPLY), 3000), "slots given up on come back").toBe(true);
        for (const s of dropped) expect(shm.take(s.slot).length, "a slot given back holds no reply").toBe(0);
        expect(shm.exited, "the worker is alive").toBeUndefined();
      }),
      { numRuns: 80, timeMs: 8000 },
    );
  }, 60_000);

  it("giving up on calls races the worker: each slot comes back once, a handler runs at most once and never for a call withdrawn before it was taken", async () => {
    const input = fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: -20, max: 20 })), { minLength: 1, maxLength: 16 });
    await fuzzAsync(
      "shm worker, give-up races",
      fc.asyncProperty(input, async (plan) => {
        let shm = raw ?? (await fresh());
        if (shm.free.length < plan.length + 2 || shm.exited !== undefined) shm = await fresh();
        const before = Atomics.load(counts, countIndex(PROGRAM, 1, 1));
        // Each call: EXPROC_ADD(a, b), given up on after `spins` turns of the event loop (or never, if negative).
        const calls = plan.map(([spins, b]) => ({ spins, b, slot: shm.free.pop()!, found: -1, xid: nextXid++ }));
        for (const c of calls) {
          shm.post(c.slot, encodeCall(c.xid, { rpcvers: 2, prog: PROGRAM, vers: 1, proc: 1, cred: { flavor: 0, body: new Uint8Array(0) }, verf: { flavor: 0, body: new Uint8Array(0) }, args: Uint8Array.of(0, 0, 0, 1, ...new Uint8Array(new Int32Array([c.b]).buffer).reverse()) }));
        }
        for (let turn = 0; turn <= 40; turn++) {
          for (const c of calls) if (c.spins === turn) c.found = shm.giveUp(c.slot);
          await new Promise((r) => setImmediate(r));
        }
        expect(await shm.until(() => calls.every((c) => shm.state(c.slot) === SlotState.REPLY), 3000), "every slot comes back").toBe(true);
        let ran = 0;
        for (const c of calls) {
          const reply = shm.take(c.slot);
          if (c.found === SlotState.CALL) expect(reply.length, "a call withdrawn before the worker took it is not answered").toBe(0);
          if (c.found === -1 || c.found === SlotState.REPLY) {
            // Not given up on, or the reply won: the answer.
            expect(hex(reply)).toBe(hex(Uint8Array.of(...words32(c.xid, 1, 0, 0, 0, 0, (1 + c.b) | 0))));
          }
          if (reply.length > 0) ran++;
        }
        const executed = Atomics.load(counts, countIndex(PROGRAM, 1, 1)) - before;
        // Replies delivered ran; a cancelled call may have run with its reply dropped; a withdrawn one never ran.
        expect(executed).toBeGreaterThanOrEqual(ran);
        expect(executed).toBeLessThanOrEqual(calls.filter((c) => c.found !== SlotState.CALL).length);
        expect(shm.exited).toBeUndefined();
        // The slots all came back: the worker serves on.
        expect(await shm.call(sentinel())).toBeDefined();
      }),
      { numRuns: 60, timeMs: 6000 },
    );
  }, 60_000);

  /** A valid call's bytes, and a NULL call to check the worker afterwards. */
  const addCall = () =>
    encodeCall(nextXid++, {
      rpcvers: 2,
      prog: PROGRAM,
      vers: 1,
      proc: 1,
      cred: { flavor: 0, body: new Uint8Array(0) },
      verf: { flavor: 0, body: new Uint8Array(0) },
      args: Uint8Array.of(0, 0, 0, 2, 0, 0, 0, 3),
    });

  it.each([
    ["past the slot", slotBytes + 1],
    ["2^31 - 1", 0x7fff_ffff],
    ["negative", -1],
    ["-2^31", -0x8000_0000],
    ["zero", 0],
  ])("a length word %s: the call is refused or answered, and the worker serves on", async (_, length) => {
    const shm = await fresh();
    const i = shm.free.pop()!;
    shm.post(i, addCall(), length);
    expect(await shm.until(() => shm.state(i) !== SlotState.CALL, 3000)).toBe(true);
    const after = await shm.call(sentinel());
    expect(after, "a NULL call after it is answered").toBeDefined();
    expect(after!.length).toBe(24);
    expect(shm.exited).toBeUndefined();
  });

  it("an out-of-band mark with no message behind it does not kill the worker", async () => {
    const shm = await fresh();
    const i = shm.free.pop()!;
    shm.post(i, addCall(), 0, 1);
    await shm.until(() => shm.state(i) !== SlotState.CALL || shm.exited !== undefined, 3000);
    const after = shm.exited === undefined ? await shm.call(sentinel()) : undefined;
    expect(shm.exited, `the worker exited (${shm.error?.message ?? "no error"})`).toBeUndefined();
    expect(after, "a NULL call after it is answered").toBeDefined();
  });
});

// ---- the public API with hostile values ---------------------------------------------------------

type Args = readonly unknown[];

/** Values the client must refuse to encode (CANNOT_ENCODE): the worker never sees them. */
function invalidArguments(): [ProcedureKey, Args][] {
  const cyclic: ExNode = { value: 1, next: null };
  cyclic.next = cyclic;
  const record = { id: 1, stamp: 1n, weight: 1, active: true, name: "x", position: { x: 1, y: 2 } };
  return [
    ["exprocAdd", [2 ** 31, 1]],
    ["exprocAdd", [1.5, 1]],
    ["exprocAdd", ["1", 1]],
    ["exprocLookup", [-1]],
    ["exprocReverse", [new Uint8Array(1441)]],
    ["exprocEcho", [{ ...record, name: "é".repeat(33) }]],
    ["exprocEcho", [{ ...record, stamp: 2n ** 63n }]],
    ["exprocEcho", [{ ...record, position: undefined }]],
    ["exprocGreet", ["x", -1]],
    ["exprocGreet", [123, 1]],
    ["exprocSum", [cyclic]],
    ["exprocMove", [null, 1, 2]],
  ];
}

describe("the shm transport through its client, with hostile values", () => {
  let channel: Channel;
  beforeAll(async () => {
    channel = await connect({ transport: "shm", module: registerUrl, services, data: { counts: counts.buffer }, slots: 4 });
  }, 30_000);
  afterAll(async () => {
    await channel?.close();
  });

  /** Calls `key` of `service` with `args` as its client does. */
  function call(service: ServiceDescription, key: ProcedureKey, args: Args): Promise<unknown> {
    const description = service.procedures[key] as ProcedureDescription;
    const value = description.arity === 0 ? undefined : description.arity === 1 ? args[0] : args;
    return channel.call(service, description, value, undefined, { timeoutMs: 10_000 });
  }

  it("valid values at their bounds and past a slot's size are answered as the handlers say, in every mode", async () => {
    const model = compile(exampleFile).model;
    const procedures = model.programs[0]!.versions[0]!.procedures.filter((p) => p.number !== 0 && p.number !== 9);
    const keyOf = (n: number) => Object.entries(services[0]!.procedures).find(([, d]) => d.number === n)![0] as ProcedureKey;
    const argsOf = (types: readonly Type[], atBound: boolean): fc.Arbitrary<Args> =>
      fc.tuple(...types.filter((t) => t.kind !== "void").map((t) => arbitraryOf(t, 0, { stringsAtBound: atBound })));
    /** Larger than a 4 KiB slot: these take the out-of-band path both ways. */
    const big: fc.Arbitrary<[ProcedureKey, Args]> = fc.oneof(
      fc.integer({ min: 0, max: 2000 }).map((n): [ProcedureKey, Args] => {
        let list: ExNode | null = null;
        for (let i = n; i >= 1; i--) list = { value: (i * 7919) | 0, next: list };
        return ["exprocSum", [list]];
      }),
      fc.tuple(fc.string({ unit: "grapheme", minLength: 0, maxLength: 3000 }), fc.integer({ min: 0, max: 3 })).map(([s, n]): [ProcedureKey, Args] => ["exprocGreet", [s, n]]),
    );
    const input = fc.tuple(
      fc.integer({ min: 0, max: services.length - 1 }),
      fc.oneof(
        { arbitrary: fc.constantFrom(...procedures).chain((p) => fc.tuple(fc.constant(keyOf(p.number)), fc.boolean().chain((b) => argsOf(p.args, b)))), weight: 4 },
        { arbitrary: big, weight: 1 },
      ),
    );
    await fuzzAsync(
      "shm client, hostile values",
      fc.asyncProperty(input, async ([s, [key, args]]) => {
        const service = services[s]!;
        const number = service.procedures[key]!.number;
        const before = Atomics.load(counts, countIndex(service.program, service.version, number));
        const f = semantics[key] as (...a: unknown[]) => unknown;
        const got = await call(service, key, args);
        expect(got, `${key} in ${service.path.mode}`).toEqual(f(...args));
        expect(Atomics.load(counts, countIndex(service.program, service.version, number)) - before, "the handler ran once").toBe(1);
      }),
      { numRuns: 150, timeMs: 8000 },
    );
  }, 60_000);

  it("invalid values are refused CANNOT_ENCODE before the worker sees them, and the channel serves on", async () => {
    for (const service of services) {
      const before = countsNow();
      for (const [key, args] of invalidArguments()) {
        const e = await call(service, key, args).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(e, `${key}(${String(args[0])}) in ${service.path.mode}`).toBeInstanceOf(RpcError);
        expect((e as RpcError).status, `${key} in ${service.path.mode}: ${(e as Error).message}`).toBe("CANNOT_ENCODE");
      }
      expect(countsNow(), "no handler ran").toEqual(before);
      expect(await call(service, "exprocAdd", [40, 2])).toBe(42);
    }
  }, 30_000);

  it("a handler that throws is answered SYSTEM_ERR, and the channel serves on", async () => {
    for (const service of services) {
      const e = await call(service, "exprocFail", []).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect((e as RpcError).status).toBe("SYSTEM_ERR");
      expect(await call(service, "exprocAdd", [1, -1])).toBe(0);
    }
  });
});
