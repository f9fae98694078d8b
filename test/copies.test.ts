import { beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../compiler/emit/module.js";
import { CopyLedger, Marshaler, XdrWriter, type XdrCodec } from "../runtime/index.js";
import { generateAllModes, type GeneratedModule } from "./generated.js";
import { repoRoot } from "./support.js";

/**
 * The copy ledger on the send path (DESIGN §4): one procedure with a 1440-byte opaque
 * argument, marshaled behind a header by each mode. Counts come from the passes that ran.
 */

interface Procedure {
  args: XdrCodec<Uint8Array>;
  result: XdrCodec<Uint8Array>;
}

let generated: Record<Mode, Map<string, GeneratedModule>>;
beforeAll(async () => {
  generated = await generateAllModes([`${repoRoot}/idl/bench.x`]);
});

function maxArg(mode: Mode): Procedure {
  const service = generated[mode].get("bench")!.BenchV1 as { procedures: { maxarg: Procedure } };
  return service.procedures.maxarg;
}

function payload(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
}

/** Marshals a payload of `n` bytes once and returns what the ledger saw. */
function send(mode: Mode, n: number) {
  const m = new Marshaler();
  const ledger = new CopyLedger();
  const w = new XdrWriter(new Uint8Array(2048), { offset: 28 });
  m.encode(mode, maxArg(mode).args, payload(n), w, ledger);
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
