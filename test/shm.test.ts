import { execFile } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import type { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../compiler/modes.js";
import type { ShmConnectOptions } from "../runtime/connect.js";
import { connect, createServer, renumber, RpcError, type CallRecord, type Channel, type ChannelOptions, type ClientTransport, type CopyCounts } from "../runtime/index.js";
import { SpinBudget, waitAsync } from "../runtime/transports/shm-protocol.js";
import { exampleCalls, exampleFile, exampleHandlers, list, loadExample, payload, record, type Example, type ExampleClient } from "./example.js";
import { moduleText } from "./generated.js";
import { repoRoot } from "./support.js";

/**
 * The `shm` transport (runtime/transports/shm.ts): a server worker started from a module,
 * slots in one SharedArrayBuffer, spin-then-sleep on both sides, the fallback for messages
 * larger than a slot, the copy counts of each mode, and the lifetime of the worker.
 *
 * The worker runs JavaScript, so the example is generated in each mode into a directory below
 * the repository and compiled with the project's tsc together with the handlers module
 * (test/fixtures/shm/handlers.ts.txt); its `@rpcgen-ts/runtime` import resolves to runtime/dist/ through the
 * workspace link in node_modules, as the worker's own runtime does (`npm test` builds dist/ first).
 */

const exec = promisify(execFile);

let work: string;
const handlersUrl = {} as Record<Mode, URL>;

beforeAll(async () => {
  mkdirSync(join(repoRoot, ".tmp"), { recursive: true });
  work = mkdtempSync(join(repoRoot, ".tmp", "shm-"));
  const files: string[] = [];
  for (const mode of modes) {
    const dir = join(work, mode);
    mkdirSync(dir);
    writeFileSync(join(dir, "example.ts"), await moduleText(exampleFile, mode));
    copyFileSync(join(repoRoot, "test/fixtures/shm/handlers.ts.txt"), join(dir, "handlers.ts"));
    files.push(join(dir, "example.ts"), join(dir, "handlers.ts"));
    handlersUrl[mode] = pathToFileURL(join(dir, "handlers.js"));
  }
  const config = {
    compilerOptions: {
      target: "ES2022",
      lib: ["ES2022"],
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      skipLibCheck: true,
      types: ["node"],
    },
    files,
  };
  writeFileSync(join(work, "tsconfig.json"), JSON.stringify(config, null, 2));
  try {
    await exec(join(repoRoot, "node_modules/.bin/tsc"), ["-p", join(work, "tsconfig.json")], { cwd: work });
  } catch (e) {
    const { stdout, stderr } = e as { stdout: string; stderr: string };
    throw new Error(`tsc failed for the shm fixtures:\n${stdout}${stderr}`);
  }
});

afterAll(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** What the fixture's subscriber to `rpcgen-ts:serve` writes: [served, copies ×3, bytes ×3] of the last call. */
class ServeStats {
  readonly sab = new SharedArrayBuffer(32);
  private readonly words = new Int32Array(this.sab);

  get served(): number {
    return Atomics.load(this.words, 0);
  }

  /** Waits until more than `before` calls were served; returns the last one's copies. */
  async after(before: number): Promise<{ copies: CopyCounts; bytesCopied: CopyCounts }> {
    const deadline = Date.now() + 5000;
    for (let n = this.served; n <= before; n = this.served) {
      if (Date.now() > deadline) throw new Error("the worker published no serve record");
      const r = waitAsync(this.words, 0, n, 100);
      if (r.async) await r.value;
    }
    const w = this.words;
    return { copies: { stub: w[1]!, runtime: w[2]!, wire: w[3]! }, bytesCopied: { stub: w[4]!, runtime: w[5]!, wire: w[6]! } };
  }
}

interface Binding {
  readonly channel: Channel;
  readonly client: ExampleClient;
  readonly records: CallRecord[];
  readonly stats: ServeStats;
  readonly worker: Worker;
}

async function bind(
  mode: Mode,
  example: Example,
  options: Partial<Omit<ShmConnectOptions, "transport" | "module">> & Pick<ChannelOptions, "onCall"> = {},
): Promise<Binding> {
  const records: CallRecord[] = [];
  const stats = new ServeStats();
  let worker: Worker | undefined;
  const channel = await connect({
    transport: "shm",
    module: handlersUrl[mode],
    services: [example.service],
    data: { stats: stats.sab },
    onCall: (r) => records.push(r),
    onWorker: (w) => (worker = w),
    ...options,
  });
  expect(worker).toBeDefined();
  return { channel, client: example.client(channel), records, stats, worker: worker! };
}

function thrown(f: () => unknown): RpcError {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(RpcError);
  return error as RpcError;
}

async function rejection(p: Promise<unknown>): Promise<RpcError> {
  const e = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(RpcError);
  return e as RpcError;
}

const expectedCopies: Record<Mode, CopyCounts> = {
  // Per direction: stub + runtime + wire; a record holds its side's send and receive.
  classic: { stub: 2, runtime: 2, wire: 2 },
  // Per direction: the one pass straight into (or out of) the slot.
  synthesized: { stub: 0, runtime: 2, wire: 0 },
  // Per direction: the gather into the slot; the opaque copied out of it (no views of shared memory).
  descriptor: { stub: 0, runtime: 2, wire: 0 },
};

describe.each(modes)("shm, %s", (mode) => {
  let example: Example;
  let b: Binding;

  beforeAll(async () => {
    example = await loadExample(mode);
    b = await bind(mode, example, { slots: 8 });
  });

  afterAll(async () => {
    await b?.channel.close();
  });

  it("carries every kind of call, a handler's exception as SYSTEM_ERR", async () => {
    await exampleCalls(b.client);
    // Asynchronous handlers, answered while other calls come and go.
    expect(await b.client.exprocLookup(530)).toEqual({ status: 2, reason: "no 530" });
    expect(await b.client.exprocGreet("", 0)).toBe("");
    expect((await rejection(b.client.exprocFail())).status).toBe("SYSTEM_ERR");
    expect(await b.client.exprocAdd(1, 1)).toBe(2); // and the worker serves on
    expect(b.records.every((r) => r.transport === "shm")).toBe(true);
  });

  it("completes 32 concurrent calls over 8 slots", async () => {
    const data = payload(1440);
    const calls = Array.from({ length: 32 }, (_, i): Promise<unknown> => {
      switch (i % 4) {
        case 0:
          return b.client.exprocAdd(i, 1000);
        case 1:
          return b.client.exprocReverse(data.subarray(0, i * 40));
        case 2:
          return b.client.exprocLookup(500 + (i % 7)); // asynchronous, a few ms each
        default:
          return b.client.exprocEcho(record(i));
      }
    });
    const results = await Promise.all(calls);
    results.forEach((result, i) => {
      switch (i % 4) {
        case 0:
          return expect(result).toBe(i + 1000);
        case 1:
          return expect(result).toEqual(data.slice(0, i * 40).reverse());
        case 2:
          return expect(result).toEqual({ status: 2, reason: `no ${500 + (i % 7)}` });
        default:
          return expect(result).toEqual(record(i));
      }
    });
  });

  it("decodes in place: a message with no opaque data in it is copied only where its mode copies every message", async () => {
    // Add(int, int) → int: descriptor mode's one copy per direction is its gather into the
    // slot; it receives straight from the slot, and with no opaque there is nothing to copy out.
    const before = b.stats.served;
    expect(await b.client.exprocAdd(40, 2)).toBe(42);
    const client = b.records.at(-1)!;
    const server = await b.stats.after(before);
    const expected = mode === "descriptor" ? { stub: 0, runtime: 1, wire: 0 } : expectedCopies[mode];
    expect(client.copies).toEqual(expected);
    expect(server.copies).toEqual(expected);
  });

  it(`copies ${mode === "classic" ? "3" : "1"} per direction; bytes grow with the payload`, async () => {
    const measure = async (n: number) => {
      const before = b.stats.served;
      const data = payload(n);
      expect(await b.client.exprocReverse(data)).toEqual(data.slice().reverse());
      const client = b.records.at(-1)!;
      expect(client.procedure).toBe(7);
      return { client, server: await b.stats.after(before) };
    };
    const sizes = [360, 720, 1440];
    const runs = [];
    for (const n of sizes) runs.push(await measure(n));
    for (const { client, server } of runs) {
      expect(client.copies).toEqual(expectedCopies[mode]);
      expect(server.copies).toEqual(expectedCopies[mode]);
    }
    for (const side of ["client", "server"] as const) {
      for (const layer of ["stub", "runtime", "wire"] as const) {
        const [small, medium, large] = runs.map((r) => r[side].bytesCopied[layer]);
        const copies = expectedCopies[mode][layer];
        // Each copy moves the payload once (plus headers that do not grow): doubling the
        // payload doubles what the copies add.
        expect(medium! - small!).toBe(copies * 360);
        expect(large! - medium!).toBe(2 * (medium! - small!));
      }
    }
  });

  it("completes calls synchronously: results, not promises; errors thrown; the same copies", async () => {
    const s = b.client.sync;
    const data = payload(1440);
    const sum = s.exprocAdd(40, 2);
    expect(sum).toBe(42);
    expect(s.exprocReverse(data)).toEqual(data.slice().reverse());
    expect(b.records.at(-1)!.copies).toEqual(expectedCopies[mode]);
    expect(s.exprocEcho(record(7))).toEqual(record(7));
    expect(s.exprocRange(3)).toEqual(list([1, 2, 3]));
    // Handlers that answer later (a promise in the worker, a 5 ms timer): the thread sleeps until then.
    expect(s.exprocGreet("a", 2)).toBe("a!a!");
    expect(s.exprocLookup(505)).toEqual({ status: 2, reason: "no 505" });
    expect(thrown(() => s.exprocFail()).status).toBe("SYSTEM_ERR");
    expect(thrown(() => s.exprocAdd(1.5, 1)).status).toBe("CANNOT_ENCODE");
    expect(s.exprocNull()).toBeUndefined();
  });

  it("a synchronous call among asynchronous ones: slots shared, every call answered once", async () => {
    // 12 asynchronous calls over 8 slots (4 queue), answered after 0–11 ms; the synchronous call
    // queues behind them and collects their replies while it waits.
    const pending = Array.from({ length: 12 }, (_, i) => b.client.exprocLookup(500 + i));
    expect(b.client.sync.exprocAdd(2, 3)).toBe(5);
    const results = await Promise.all(pending);
    results.forEach((r, i) => expect(r).toEqual({ status: 2, reason: `no ${500 + i}` }));
    expect(await b.client.exprocAdd(1, 1)).toBe(2);
  });

  it("a synchronous call past its timeout throws TIMEOUT, and the slot comes back", async () => {
    const e = thrown(() => b.client.sync.exprocLookup(2300, { timeoutMs: 40 }));
    expect(e.status).toBe("TIMEOUT");
    await new Promise((resolve) => setTimeout(resolve, 400)); // the handler finishes; its late reply is dropped
    for (let i = 0; i < 16; i++) expect(b.client.sync.exprocAdd(i, 1)).toBe(i + 1);
  });

  it("arguments a handler holds past its return stay intact while later calls come and go", async () => {
    const held = payload(600);
    held[0] = 0xfe;
    const late = b.client.exprocReverse(held);
    const others = Array.from({ length: 12 }, (_, i) => {
      const data = payload(600).map((x) => (x + i + 1) & 0xff);
      data[0] = i;
      return data;
    });
    const answers = await Promise.all(others.map((data) => b.client.exprocReverse(data)));
    answers.forEach((r, i) => expect(r).toEqual(others[i]!.slice().reverse()));
    expect(await late).toEqual(held.slice().reverse());
  });

  it("hands out results that stay valid after their slot is reused", async () => {
    // Decoded where it lies, a result must hold nothing of the slot, which the next calls
    // overwrite: descriptor mode's opaques are copied out of shared memory, not viewed.
    const first = payload(1000);
    const other = first.map((x) => 255 - x);
    const kept = await b.client.exprocReverse(first);
    expect(kept.buffer instanceof SharedArrayBuffer).toBe(false);
    const later = await Promise.all(Array.from({ length: 24 }, () => b.client.exprocReverse(other)));
    expect(kept).toEqual(first.slice().reverse());
    for (const r of later) expect(r).toEqual(other.slice().reverse());
  });

  it("carries arguments and results larger than a slot through the fallback, sleeping", async () => {
    // 256-byte slots: the 1440-byte opaque, long lists (unbounded) and long strings (unbounded)
    // do not fit. No spinning: every wait is an Atomics.wait / waitAsync.
    const small = await bind(mode, example, { slotBytes: 256, slots: 2, spinMicros: 0 });
    try {
      const data = payload(1440);
      expect(await small.client.exprocReverse(data)).toEqual(data.slice().reverse());
      const reversed = small.records.at(-1)!;
      // The fallback's copy into the transferred buffer is the wire copy, once each way.
      expect(reversed.copies.wire).toBe(1);
      const values = Array.from({ length: 150 }, (_, i) => i * 3);
      expect(await small.client.exprocSum(list(values))).toBe(values.reduce((s, v) => s + v, 0));
      expect(await small.client.exprocRange(150)).toEqual(list(Array.from({ length: 150 }, (_, i) => i + 1)));
      expect(await small.client.exprocGreet("x".repeat(500), 3)).toBe(`${"x".repeat(500)}!`.repeat(3));
      // Small and large together, more calls than slots.
      const mixed = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          i % 2 === 0 ? small.client.exprocReverse(data.subarray(0, i * 100)) : small.client.exprocAdd(i, i),
        ),
      );
      mixed.forEach((r, i) => expect(r).toEqual(i % 2 === 0 ? data.slice(0, i * 100).reverse() : 2 * i));
      await exampleCalls(small.client);
    } finally {
      await small.channel.close();
    }
  });

  it("terminates the worker when the channel closes", async () => {
    const c = await bind(mode, example);
    expect(await c.client.exprocAdd(20, 22)).toBe(42);
    const exited = once(c.worker, "exit");
    await c.channel.close();
    await exited;
    expect((await rejection(c.client.exprocNull())).status).toBe("CLOSED");
  });

  it("releases every waiter with CLOSED when the worker dies", async () => {
    // An exception nobody catches, thrown by a timer while the calls wait.
    const c = await bind(mode, example);
    // The other calls would be answered after 3 and 4 s: the worker dies long before.
    const waiting = [c.client.exprocLookup(5000), c.client.exprocLookup(667), c.client.exprocLookup(6000)];
    for (const e of await Promise.all(waiting.map(rejection))) expect(e.status).toBe("CLOSED");
    expect((await rejection(c.client.exprocAdd(1, 2))).status).toBe("CLOSED");
    await c.channel.close();

    // process.exit in the worker, mid-call.
    const d = await bind(mode, example);
    const slow = d.client.exprocLookup(5000);
    expect((await rejection(d.client.exprocLookup(666))).status).toBe("CLOSED");
    expect((await rejection(slow)).status).toBe("CLOSED");
    await d.channel.close();
  });
});

/** Counts the calls a channel's transport exchanges directly (`exchangeSync`), wrapping it. */
function countExchanges(channel: Channel): { count: number } {
  const link = (channel as unknown as { link: ClientTransport }).link;
  const exchange = link.exchangeSync;
  if (exchange === undefined) throw new Error("the shm transport has no exchangeSync");
  const counter = { count: 0 };
  link.exchangeSync = (...args) => {
    counter.count++;
    return exchange.apply(link, args);
  };
  return counter;
}

describe.each(modes)("shm, %s: synchronous calls nobody observes (the direct exchange)", (mode) => {
  let example: Example;
  let b: Binding;
  let exchanged: { count: number };

  beforeAll(async () => {
    example = await loadExample(mode);
    b = await bind(mode, example, { slots: 4, onCall: undefined });
    exchanged = countExchanges(b.channel);
  });

  afterAll(async () => {
    await b?.channel.close();
  });

  it("exchanges each call in its slot alone: results, errors and late answers", () => {
    const s = b.client.sync;
    const data = payload(1440);
    const before = exchanged.count;
    expect(s.exprocAdd(40, 2)).toBe(42);
    expect(s.exprocReverse(data)).toEqual(data.slice().reverse());
    expect(s.exprocEcho(record(7))).toEqual(record(7));
    expect(s.exprocRange(3)).toEqual(list([1, 2, 3]));
    expect(s.exprocGreet("a", 2)).toBe("a!a!"); // answered by a promise in the worker
    expect(s.exprocLookup(505)).toEqual({ status: 2, reason: "no 505" }); // after 5 ms: the thread sleeps
    expect(thrown(() => s.exprocFail()).status).toBe("SYSTEM_ERR");
    expect(s.exprocNull()).toBeUndefined();
    expect(exchanged.count - before).toBe(8);
    // Arguments that do not encode fail before anything is sent.
    expect(thrown(() => s.exprocAdd(1.5, 1)).status).toBe("CANNOT_ENCODE");
    expect(exchanged.count - before).toBe(8);
    expect(b.records).toEqual([]);
  });

  it("answers a version or a procedure the server lacks as the asynchronous path does", () => {
    const other = renumber(example.service, { version: example.service.version + 5 });
    const add = example.service.procedures.exprocAdd!;
    const mismatch = thrown(() => b.channel.callSync!(other, other.procedures.exprocAdd!, [1, 2], undefined, undefined));
    expect(mismatch.status).toBe("PROG_MISMATCH");
    expect(mismatch.message).toMatch(/supports versions 1 to 1 of program/);
    const missing = { ...add, number: 99 };
    expect(thrown(() => b.channel.callSync!(example.service, missing, [1, 2], undefined, undefined)).status).toBe("PROC_UNAVAIL");
  });

  it("decodes a result's opaque data into memory the caller lends", () => {
    const into = new Uint8Array(2048);
    const data = payload(1000);
    const reversed = b.channel.callSync!(example.service, example.service.procedures.exprocReverse!, data, undefined, { into }) as Uint8Array;
    expect(reversed.buffer).toBe(into.buffer);
    expect(reversed).toEqual(data.slice().reverse());
  });

  it("hands out results that stay valid after the slot is reused", () => {
    const first = payload(1000);
    const other = first.map((x) => 255 - x);
    const kept = b.client.sync.exprocReverse(first);
    expect(kept.buffer instanceof SharedArrayBuffer).toBe(false);
    for (let i = 0; i < 24; i++) expect(b.client.sync.exprocReverse(other)).toEqual(other.slice().reverse());
    expect(kept).toEqual(first.slice().reverse());
  });

  it("takes a free slot while asynchronous calls hold the others; with none free it queues as the general path does", async () => {
    const before = exchanged.count;
    const few = Array.from({ length: 3 }, (_, i) => b.client.exprocLookup(520 + i));
    expect(b.client.sync.exprocAdd(2, 3)).toBe(5);
    expect(exchanged.count - before).toBe(1);
    // Their replies waited in their slots for the poll: every call is answered once.
    (await Promise.all(few)).forEach((r, i) => expect(r).toEqual({ status: 2, reason: `no ${520 + i}` }));
    const many = Array.from({ length: 6 }, (_, i) => b.client.exprocLookup(510 + i)); // 4 slots: 2 queue
    expect(b.client.sync.exprocAdd(4, 5)).toBe(9);
    expect(exchanged.count - before).toBe(1);
    (await Promise.all(many)).forEach((r, i) => expect(r).toEqual({ status: 2, reason: `no ${510 + i}` }));
  });

  it("a call past its timeout throws TIMEOUT; its slot comes back once the late reply is dropped", async () => {
    for (let i = 0; i < 6; i++) {
      const e = thrown(() => b.client.sync.exprocLookup(2060, { timeoutMs: 20 }));
      expect(e.status).toBe("TIMEOUT");
      expect(e.message).toMatch(/^RPC TIMEOUT: no reply to EXPROC_LOOKUP \(xid \d+\) within the timeout$/);
    }
    await new Promise((resolve) => setTimeout(resolve, 300)); // the handlers finish; their replies are dropped
    const before = exchanged.count;
    for (let i = 0; i < 16; i++) expect(b.client.sync.exprocAdd(i, 1)).toBe(i + 1);
    expect(exchanged.count - before).toBe(16);
    expect(await b.client.exprocAdd(1, 1)).toBe(2);
  });

  it("replies racing their calls' timeouts: each call returns its own answer or TIMEOUT, and no slot is lost", async () => {
    const c = await bind(mode, example, { slots: 2, spinMicros: 0, onCall: undefined });
    try {
      for (let i = 0; i < 60; i++) {
        try {
          expect(c.client.sync.exprocLookup(500 + (i % 6), { timeoutMs: 1 + (i % 5) })).toEqual({ status: 2, reason: `no ${500 + (i % 6)}` });
        } catch (e) {
          expect((e as RpcError).status).toBe("TIMEOUT");
        }
        expect(c.client.sync.exprocAdd(i, 1)).toBe(i + 1); // never another call's reply
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      const sums = await Promise.all(Array.from({ length: 8 }, (_, i) => c.client.exprocAdd(i, 7)));
      expect(sums).toEqual(Array.from({ length: 8 }, (_, i) => i + 7));
    } finally {
      await c.channel.close();
    }
  });

  it("carries calls and replies larger than a slot out of band, sleeping", async () => {
    const small = await bind(mode, example, { slotBytes: 256, slots: 2, spinMicros: 0, onCall: undefined });
    try {
      const counter = countExchanges(small.channel);
      const data = payload(1440);
      expect(small.client.sync.exprocReverse(data)).toEqual(data.slice().reverse());
      const values = Array.from({ length: 150 }, (_, i) => i * 3);
      expect(small.client.sync.exprocSum(list(values))).toBe(values.reduce((sum, v) => sum + v, 0));
      expect(small.client.sync.exprocRange(150)).toEqual(list(Array.from({ length: 150 }, (_, i) => i + 1)));
      expect(small.client.sync.exprocAdd(2, 2)).toBe(4);
      expect(counter.count).toBe(4);
    } finally {
      await small.channel.close();
    }
  });
});

describe("synchronous calls elsewhere", () => {
  it("throw a TypeError on a channel that cannot complete a call without the event loop", async () => {
    const example = await loadExample("synthesized");
    const server = createServer().register(example.service, exampleHandlers());
    const channel = await connect({ transport: "inproc", server });
    try {
      expect(() => example.client(channel).sync.exprocAdd(1, 2)).toThrow(/synchronous calls need a transport that completes calls without the event loop \(shm\), not inproc/);
    } finally {
      await channel.close();
    }
  });
});

describe("shm, binding", () => {
  it("rejects connect when the module cannot be loaded or registers nothing", async () => {
    const missing = pathToFileURL(join(work, "no-such-module.js"));
    await expect(connect({ transport: "shm", module: missing })).rejects.toThrow(/failed/);
    const empty = join(work, "empty.js");
    writeFileSync(empty, "export const nothing = 1;\n");
    await expect(connect({ transport: "shm", module: empty })).rejects.toThrow(/no default export/);
  });

  it("spins while spinning pays, backs off when it does not, and probes to come back", () => {
    const spin = new SpinBudget(0.05);
    expect(spin.next()).toBe(0.05);
    spin.miss();
    expect(spin.next()).toBe(0.025); // one miss halves the budget
    spin.hit();
    expect(spin.next()).toBe(0.05); // one hand-off while spinning restores it
    for (let i = 0; i < 6; i++) spin.miss();
    const waits = (n: number) =>
      Array.from({ length: n }, () => {
        const b = spin.next();
        spin.miss(); // nothing pays
        return b;
      });
    const first = waits(16);
    expect(first.filter((b) => b === 0)).toHaveLength(15); // no spinning…
    expect(first.indexOf(0.1)).toBe(15); // …but a probe, covering a wake-up, after 16 waits
    expect(waits(32).indexOf(0.1)).toBe(31); // probes that fail come half as often
    expect(waits(64).indexOf(0.1)).toBe(63);
    spin.hit();
    expect(spin.next()).toBe(0.05);
    spin.miss();
    for (let i = 0; i < 5; i++) spin.miss();
    expect(waits(16).indexOf(0.1)).toBe(15); // a hit resets the probing interval
  });

  it("sizes slots from the services' static layout", async () => {
    const { slotBytesFor } = await import("../runtime/transports/shm.js");
    const example = await loadExample("synthesized");
    // EXPROC_REVERSE's 1444-byte opaque plus the largest header fits the 4 KiB minimum.
    expect(slotBytesFor([example.service])).toBe(4096);
    const big = {
      ...example.service,
      procedures: {
        big: { ...example.service.procedures.exprocReverse!, args: { ...example.service.procedures.exprocReverse!.args, max: 100_000 } },
      },
    };
    expect(slotBytesFor([big])).toBeGreaterThanOrEqual(100_000 + 24);
  });
});

// ---- calls given up on, and the server's options -------------------------------------------

/**
 * A server module that misbehaves on purpose, in JavaScript beside each mode's compiled
 * example: EXPROC_LOOKUP(1) never answers, EXPROC_LOOKUP(500–599) answers after (id − 500) ms,
 * EXPROC_RANGE(n) blocks the worker for n ms, EXPROC_REVERSE of data opening with a 0 byte
 * never answers. Its `serverOptions` verify flavor 99 and throw from `authenticate` for uid 13.
 */
const faultsModule = `import { ExampleV1 } from "./example.js";
const never = () => new Promise(() => {});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const serverOptions = {
  verifiers: { 99: (cred) => (cred.body.length === 4 && cred.body[0] === 7 ? undefined : 1) },
  authenticate: (call) => {
    if (call.authSys !== undefined && call.authSys.uid === 13) throw new Error("unlucky");
    return undefined;
  },
};
export default function register(server) {
  server.register(ExampleV1, {
    exprocAdd: (a, b) => (a + b) | 0,
    exprocEcho: (r) => r,
    exprocLookup: (id) => (id === 1 ? never() : id >= 500 && id < 600 ? sleep(id - 500).then(() => ({ status: 1 })) : { status: 1 }),
    exprocRange: (n) => {
      const end = Date.now() + n;
      while (Date.now() < end);
      return null;
    },
    exprocReverse: (d) => (d.length > 0 && d[0] === 0 ? never() : d.slice().reverse()),
  });
}
`;

const faultsUrl = {} as Record<Mode, URL>;

async function bindFaults(mode: Mode, example: Example, options: Partial<Omit<ShmConnectOptions, "transport" | "module">> = {}) {
  if (faultsUrl[mode] === undefined) {
    const file = join(work, mode, "faults.js");
    writeFileSync(file, faultsModule);
    faultsUrl[mode] = pathToFileURL(file);
  }
  const channel = await connect({ transport: "shm", module: faultsUrl[mode], services: [example.service], ...options });
  return { channel, client: example.client(channel) };
}

function within(channel: Channel, example: Example, timeoutMs: number, signal?: AbortSignal) {
  const p = example.service.procedures;
  const call = <R>(name: string, args: unknown) =>
    channel.call(example.service, p[name]!, args, { timeoutMs }, signal === undefined ? undefined : { signal }) as Promise<R>;
  return {
    lookup: (id: number) => call<unknown>("exprocLookup", id),
    add: (a: number, b: number) => call<number>("exprocAdd", [a, b]),
    range: (n: number) => call<unknown>("exprocRange", n),
    reverse: (d: Uint8Array) => call<Uint8Array>("exprocReverse", d),
  };
}

describe.each(modes)("shm, %s: calls given up on give their slots back", (mode) => {
  let example: Example;
  beforeAll(async () => {
    example = await loadExample(mode);
  });

  it("after 2×slots calls time out (or are aborted) on a handler that never answers, normal calls still succeed", async () => {
    const slots = 4;
    const { channel, client } = await bindFaults(mode, example, { slots });
    try {
      for (let round = 0; round < 3; round++) {
        const lost = await Promise.all(Array.from({ length: 2 * slots }, () => rejection(within(channel, example, 80).lookup(1))));
        for (const e of lost) expect(e.status).toBe("TIMEOUT");
        // Calls beyond the slots waited in the queue: the error of those still queued at their
        // deadline says who held the slots (the others got a slot given back in between).
        const queued = lost.filter((e) => /never got one of the 4 shm slots/.test(e.message)).length;
        expect(queued).toBeGreaterThan(0);
        expect(queued).toBeLessThanOrEqual(slots);
        const sums = await Promise.all(Array.from({ length: 2 * slots }, (_, i) => within(channel, example, 5000).add(i, 1000)));
        expect(sums).toEqual(Array.from({ length: 2 * slots }, (_, i) => i + 1000));
      }
      const controller = new AbortController();
      const aborted = Array.from({ length: 2 * slots }, () => rejection(within(channel, example, 60_000, controller.signal).lookup(1)));
      await new Promise((resolve) => setTimeout(resolve, 20));
      controller.abort();
      for (const e of await Promise.all(aborted)) expect(e.status).toBe("ABORTED");
      // Every slot is back: as many calls as slots each get one (none waits in the queue).
      const held = await Promise.all(Array.from({ length: slots }, () => rejection(within(channel, example, 150).lookup(1))));
      for (const e of held) expect(e.message).not.toMatch(/never got one/);
      expect(await client.exprocEcho(record(3))).toEqual(record(3));
    } finally {
      await channel.close();
    }
  });

  it("synchronous calls that time out on a handler that never answers give their slots back", async () => {
    const slots = 2;
    const { channel } = await bindFaults(mode, example, { slots });
    try {
      const exchanged = countExchanges(channel);
      const p = example.service.procedures;
      const sync = <R>(name: string, args: unknown, timeoutMs: number) => channel.callSync!(example.service, p[name]!, args, { timeoutMs }, undefined) as R;
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < slots; i++) expect(thrown(() => sync("exprocLookup", 1, 30)).status).toBe("TIMEOUT");
        // The worker hands the slots back (it drops the calls); the asynchronous poll collects them.
        await new Promise((resolve) => setTimeout(resolve, 20));
        const before = exchanged.count;
        for (let i = 0; i < 2 * slots; i++) expect(sync<number>("exprocAdd", [i, 1000], 5000)).toBe(i + 1000);
        expect(exchanged.count - before).toBe(2 * slots);
      }
    } finally {
      await channel.close();
    }
  });

  it("out-of-band calls withdrawn before the worker read them, and their slots, come back clean", async () => {
    // 256-byte slots: 1000-byte calls and replies go over the port.
    const { channel } = await bindFaults(mode, example, { slots: 2, slotBytes: 256 });
    try {
      const silent = payload(1000);
      silent[0] = 0;
      // The worker blocks 300 ms in slot 0 while the out-of-band call waits in slot 1, unread.
      const blocked = rejection(within(channel, example, 100).range(300));
      const withdrawn = rejection(within(channel, example, 100).reverse(silent));
      expect((await blocked).status).toBe("TIMEOUT");
      expect((await withdrawn).status).toBe("TIMEOUT");
      const cancelled = await rejection(within(channel, example, 100).reverse(silent)); // read, then given up
      expect(cancelled.status).toBe("TIMEOUT");
      // Later out-of-band calls get their own messages, not the stale ones.
      for (let i = 1; i <= 4; i++) {
        const data = payload(1000).map((x) => (x + i) & 0xff);
        data[0] = i;
        expect(await within(channel, example, 5000).reverse(data)).toEqual(data.slice().reverse());
      }
    } finally {
      await channel.close();
    }
  });

  it("replies racing their calls' timeouts: each call settles once, correctly, and no slot is lost", async () => {
    const slots = 4;
    const { channel } = await bindFaults(mode, example, { slots, spinMicros: 0 });
    try {
      // Answered after 0–11 ms, given up after 1–10 ms: replies and cancellations cross.
      const outcomes = await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          within(channel, example, 1 + (i % 10))
            .lookup(500 + (i % 12))
            .then(
              (v) => ({ ok: true as const, v }),
              (e: unknown) => ({ ok: false as const, e }),
            ),
        ),
      );
      for (const o of outcomes) {
        if (o.ok) expect(o.v).toEqual({ status: 1 });
        else expect((o.e as RpcError).status).toBe("TIMEOUT");
      }
      const sums = await Promise.all(Array.from({ length: 16 }, (_, i) => within(channel, example, 5000).add(i, 100 - 2 * i)));
      expect(sums).toEqual(Array.from({ length: 16 }, (_, i) => 100 - i));
      const held = await Promise.all(Array.from({ length: slots }, () => rejection(within(channel, example, 200).lookup(1))));
      for (const e of held) expect(e.message).not.toMatch(/never got one/);
    } finally {
      await channel.close();
    }
  });
});

describe("shm, a worker blocked in a synchronous loop", () => {
  it("a call that finds no slot fails TIMEOUT naming the slots held; once the loop ends the slots come back", async () => {
    const example = await loadExample("synthesized");
    const { channel } = await bindFaults("synthesized", example, { slots: 2 });
    try {
      const started = Date.now();
      const blocked = rejection(within(channel, example, 150).range(2000));
      const waiting = rejection(within(channel, example, 150).add(1, 1));
      expect((await blocked).status).toBe("TIMEOUT");
      expect((await waiting).status).toBe("TIMEOUT");
      const e = await rejection(within(channel, example, 300).add(2, 2));
      expect(e.status).toBe("TIMEOUT");
      expect(e.message).toMatch(
        /^RPC TIMEOUT: no reply to EXPROC_ADD \(xid \d+\) within the timeout: it never got one of the 2 shm slots; slots \d \(given up \d+ ms ago\), \d \(given up \d+ ms ago\) still held for calls given up on, which the server worker has not handed back \(is a handler blocked in a synchronous loop\?\)$/,
      );
      expect(Date.now() - started).toBeLessThan(2000); // it said so while the worker was still blocked
      expect(await within(channel, example, 5000).add(3, 4)).toBe(7);
      const held = await Promise.all(Array.from({ length: 2 }, () => rejection(within(channel, example, 150).lookup(1))));
      for (const h of held) expect(h.message).not.toMatch(/never got one/);
    } finally {
      await channel.close();
    }
  });
});

describe("shm, access", () => {
  const junk = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 5) & 0xff);
  const unverified = [
    { flavor: 3, body: junk(40) },
    { flavor: 6, body: junk(28) },
    { flavor: 99, body: junk(12) },
  ];
  const add = (channel: Channel, example: Example, auth: object | undefined) =>
    channel.call(example.service, example.service.procedures.exprocAdd!, [20, 22], { auth: auth as never, timeoutMs: 5000 }, undefined);

  it("refuses flavors nobody verifies, with or without a hook; admits a registered one; a throwing hook costs one SYSTEM_ERR", async () => {
    const example = await loadExample("synthesized");
    const plain = await bind("synthesized", example);
    const hooked = await bindFaults("synthesized", example);
    try {
      for (const channel of [plain.channel, hooked.channel]) {
        for (const cred of unverified) {
          const e = await rejection(add(channel, example, cred));
          expect([e.status, e.authStat]).toEqual(["AUTH_ERROR", channel === hooked.channel && cred.flavor === 99 ? 1 : 2]);
        }
        expect(await add(channel, example, undefined)).toBe(42);
      }
      expect(await add(hooked.channel, example, { flavor: 99, body: Uint8Array.of(7, 0, 0, 0) })).toBe(42);
      const sys = { stamp: 1, machinename: "h", uid: 13, gid: 0, gids: [] };
      expect((await rejection(add(hooked.channel, example, sys))).status).toBe("SYSTEM_ERR");
      expect(await add(hooked.channel, example, { ...sys, uid: 14 })).toBe(42);
    } finally {
      await plain.channel.close();
      await hooked.channel.close();
    }
  });

  it("rejects connect when the module's serverOptions is not an object", async () => {
    const file = join(work, "synthesized", "bad-options.js");
    writeFileSync(file, `export const serverOptions = 5;\nexport default function register() {}\n`);
    await expect(connect({ transport: "shm", module: pathToFileURL(file) })).rejects.toThrow(/serverOptions is not an object/);
  });
});
