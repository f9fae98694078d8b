import { beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../compiler/emit/module.js";
import {
  classic,
  connect,
  CopyLedger,
  createServer,
  descriptor,
  RpcClient,
  synthesized,
  voidCodec,
  XdrWriter,
  type MarshalPath,
  type ServiceDescription,
  type XdrCodec,
} from "../runtime/index.js";
import { generateAllModes, type GeneratedModule } from "./generated.js";
import { repoRoot } from "./support.js";

/**
 * The copy ledger on the send path: one procedure with a 1440-byte opaque argument,
 * marshaled behind a header by each mode's path. Counts come from the passes that ran.
 */

interface Procedure {
  args: XdrCodec<Uint8Array>;
  result: XdrCodec<Uint8Array>;
}

let generated: Record<Mode, Map<string, GeneratedModule>>;
beforeAll(async () => {
  generated = await generateAllModes([`${repoRoot}/idl/bench.x`]);
});

function benchService(mode: Mode): ServiceDescription & { procedures: { maxarg: Procedure } } {
  return generated[mode].get("bench")!.BenchV1 as ServiceDescription & { procedures: { maxarg: Procedure } };
}

function payload(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
}

/** Marshals a payload of `n` bytes once and returns what the ledger saw. */
function send(mode: Mode, n: number) {
  const service = benchService(mode);
  const ledger = new CopyLedger();
  const w = new XdrWriter(new Uint8Array(2048), { offset: 28 });
  service.path.encode(service.procedures.maxarg.args, payload(n), w, ledger, "MAXARG");
  return { ledger: ledger.snapshot(), message: w.buf.slice(0, w.pos) };
}

describe("copies on the send path", () => {
  it("classic: the stub's pass and the runtime's pass, about 1440 bytes each", () => {
    const { ledger } = send("classic", 1440);
    expect(ledger.copies).toEqual({ stub: 1, runtime: 1, wire: 0 });
    expect(ledger.bytesCopied.stub).toBe(1444);
    expect(ledger.bytesCopied.runtime).toBe(1444);
  });

  it.each(["synthesized", "descriptor"] as const)("%s: one runtime pass", (mode) => {
    const { ledger } = send(mode, 1440);
    expect(ledger.copies).toEqual({ stub: 0, runtime: 1, wire: 0 });
    expect(ledger.bytesCopied.runtime).toBe(1444);
  });

  it.each(modes)("%s: doubling the payload doubles the bytes, not the copies", (mode) => {
    // The bound is 1440, so measure 360 against 720 bytes.
    const small = send(mode, 360).ledger;
    const large = send(mode, 720).ledger;
    expect(large.copies).toEqual(small.copies);
    for (const layer of ["stub", "runtime", "wire"] as const) {
      // 4 bytes of length prefix ride along with the payload.
      expect(large.bytesCopied[layer] - 4 * large.copies[layer]).toBe(2 * (small.bytesCopied[layer] - 4 * small.copies[layer]));
    }
  });

  it("every mode puts the same bytes behind the header", () => {
    const messages = modes.map((mode) => send(mode, 1440).message);
    for (const m of messages) expect(m).toEqual(messages[0]);
    expect(messages[0]!.length).toBe(28 + 4 + 1440);
  });
});

describe("a mode is the path generated code names", () => {
  const paths: Record<Mode, MarshalPath> = { classic, synthesized, descriptor };

  it.each(modes)("%s code makes its descriptions with the %s path, frozen", (mode) => {
    const service = benchService(mode);
    expect(service.path).toBe(paths[mode]);
    expect(Object.isFrozen(service)).toBe(true);
    expect(Object.isFrozen(service.procedures.maxarg)).toBe(true);
    // Editing the path a description names fails: its codecs were generated for this one.
    const other = mode === "classic" ? synthesized : classic;
    expect(Reflect.set(service, "path", other)).toBe(false);
    expect(service.path).toBe(paths[mode]);
  });

  it("a copy of a description under another path is refused by clients and servers", async () => {
    const service = benchService("classic");
    const copy = { ...service, path: synthesized } as ServiceDescription;
    const server = createServer();
    expect(() => server.register(copy, {} as never)).toThrow(/not a service description made by a marshal path/);
    const channel = await connect({ transport: "inproc", server });
    try {
      expect(() => new RpcClient(channel, copy)).toThrow(/not a service description made by a marshal path/);
    } finally {
      await channel.close();
    }
  });

  it("the descriptor path refuses codecs that cannot describe (a type error too)", () => {
    const plain: XdrCodec<number> = { name: "int", min: 4, max: 4, encode: (w, v) => w.int(v), decode: (r) => r.int() };
    const spec = { program: 1, version: 1, name: "V", procedures: { p: { number: 1, name: "P", arity: 1, args: plain, result: voidCodec } } };
    // @ts-expect-error descriptor-mode services take only codecs with `describe`
    expect(() => descriptor.service(spec)).toThrow(/P: the arguments codec int cannot describe/);
    expect(synthesized.service(spec).path).toBe(synthesized);
  });
});
