import fc from "fast-check";
import { basename, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { moduleNameOf } from "../compiler/compile.js";
import { enumNameFunction, safeName } from "../compiler/emit/names.js";
import { modes, type Mode } from "../compiler/emit/module.js";
import type { Size } from "../compiler/layout.js";
import type { NamedType, Procedure, Type, Version } from "../compiler/model.js";
import { fromXdr, toXdr, type XdrCodec } from "../runtime/index.js";
import { arbitraryOf, arbitraryOfNamed } from "./arbitrary.js";
import { codecOf, compile, corpusGroups, generateAllModes, type Compiled, type GeneratedModule } from "./generated.js";
import { corpus, repoRoot } from "./support.js";
import { same } from "./values.js";

/**
 * Round trip and cross-mode equality (DESIGN §4, §6): for every named type of every file
 * of the system corpus, of `idl/` and of `test/fixtures/`, random valid values encode to
 * the same bytes in all three modes, those bytes fit the static layout, and every mode's
 * decoder turns every mode's bytes back into the original value. The same for the
 * argument and result codecs of every procedure.
 */

const RUNS = 30;

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/**
 * The property, for one codec per mode: identical bytes in every mode, within `size`, and
 * every decoder gives back `v` from every mode's bytes.
 */
function checkRoundTrip(codecs: Record<Mode, XdrCodec<unknown>>, arb: fc.Arbitrary<unknown>, size: Size): void {
  fc.assert(
    fc.property(arb, (v) => {
      const bytes = {} as Record<Mode, Uint8Array>;
      for (const mode of modes) bytes[mode] = toXdr(codecs[mode], v).slice();
      const reference = hex(bytes.classic);
      for (const mode of modes) expect(hex(bytes[mode]), `${mode} bytes differ from classic bytes`).toBe(reference);
      const n = bytes.classic.length;
      expect(n % 4, "length is a multiple of 4").toBe(0);
      expect(n, `length within layout min ${size.min}`).toBeGreaterThanOrEqual(size.min);
      if (size.max !== undefined) expect(n, `length within layout max ${size.max}`).toBeLessThanOrEqual(size.max);
      for (const decoder of modes) {
        for (const producer of modes) {
          const back = fromXdr(codecs[decoder], bytes[producer]);
          if (!same(back, v)) expect(back, `${decoder} decoder on ${producer} bytes`).toStrictEqual(v);
        }
      }
    }),
    { numRuns: RUNS },
  );
}

function perMode<T>(f: (mode: Mode) => T): Record<Mode, T> {
  const out = {} as Record<Mode, T>;
  for (const mode of modes) out[mode] = f(mode);
  return out;
}

interface ProcedureCodecs {
  readonly args: XdrCodec<unknown>;
  readonly result: XdrCodec<unknown>;
}

interface Service {
  readonly program: number;
  readonly version: number;
  readonly name: string;
  readonly procedures: Record<string, ProcedureCodecs & { readonly name: string }>;
}

function isService(x: unknown): x is Service {
  return typeof x === "object" && x !== null && "procedures" in x && "program" in x && "version" in x && "name" in x;
}

/** The service description a module exports for `v`, and in it the codecs of `proc`. */
function procedureCodecs(module: GeneratedModule, program: number, v: Version, proc: Procedure): ProcedureCodecs {
  const service = Object.values(module).find(
    (x): x is Service => isService(x) && x.program === program && x.version === v.number && x.name === v.name,
  );
  if (service === undefined) throw new Error(`no service description exported for ${v.name}`);
  const entry = Object.values(service.procedures).find((p) => p.name === proc.name);
  if (entry === undefined) throw new Error(`${v.name} describes no procedure ${proc.name}`);
  return entry;
}

/** Values of a procedure's arguments: none, one, or a tuple of several. */
function argumentsArbitrary(args: readonly Type[]): fc.Arbitrary<unknown> {
  const values = args.filter((t) => t.kind !== "void");
  if (values.length === 0) return fc.constant(undefined);
  if (values.length === 1) return arbitraryOf(values[0]!);
  return fc.tuple(...values.map((t) => arbitraryOf(t)));
}

for (const files of corpusGroups()) {
  const compiled: Compiled[] = files.map((f) => compile(f));
  describe(files.map((f) => basename(f)).join(" + "), () => {
    let generated: Record<Mode, Map<string, GeneratedModule>>;
    beforeAll(async () => {
      generated = await generateAllModes(files);
    }, 120_000);

    const moduleOf = (c: Compiled, mode: Mode): GeneratedModule => generated[mode].get(moduleNameOf(c.file))!;

    for (const c of compiled) {
      const file = basename(c.file);
      const types: NamedType[] = c.model.declarations.flatMap((d) => (d.kind === "type" ? [d.type] : []));

      for (const t of types) {
        it(`${file} ${t.name}: same bytes in every mode, within the layout, round trip`, () => {
          const codecs = perMode((mode) => codecOf(moduleOf(c, mode), t.name));
          const size = c.layout.sizeOfNamed(t);
          for (const mode of modes) {
            expect({ min: codecs[mode].min, max: codecs[mode].max }, `${mode} codec's static size`).toEqual(size);
          }
          checkRoundTrip(codecs, arbitraryOfNamed(t), size);
        });
        if (t.kind !== "enum") continue;
        it(`${file} ${t.name}: its name lookup names each value by its first member, and nothing else`, () => {
          const first = new Map<number, string>();
          for (const m of t.members) if (!first.has(m.value)) first.set(m.value, m.name);
          const missing = [Math.max(...first.keys()) + 1, Math.min(...first.keys()) - 1, 0.5, Number.NaN].filter((x) => !first.has(x));
          for (const mode of modes) {
            const lookup = moduleOf(c, mode)[enumNameFunction(safeName(t.name))] as (value: number) => string | undefined;
            for (const [value, name] of first) expect(lookup(value), `${mode} ${value}`).toBe(name);
            for (const value of missing) expect(lookup(value), `${mode} ${value}`).toBeUndefined();
          }
        });
      }

      for (const p of c.model.programs) {
        for (const v of p.versions) {
          for (const proc of v.procedures) {
            it(`${file} ${v.name}.${proc.name} arguments (${proc.args.length})`, () => {
              const codecs = perMode((mode) => procedureCodecs(moduleOf(c, mode), p.number, v, proc).args);
              checkRoundTrip(codecs, argumentsArbitrary(proc.args), c.layout.argumentsSize(proc));
            });
            it(`${file} ${v.name}.${proc.name} result`, () => {
              const codecs = perMode((mode) => procedureCodecs(moduleOf(c, mode), p.number, v, proc).result);
              checkRoundTrip(codecs, argumentsArbitrary([proc.result]), c.layout.resultSize(proc));
            });
          }
        }
      }
    }
  });
}

describe("the corpus under test", () => {
  it("covers the 19 corpus files, idl/ and the fixtures, with procedures of several arguments", () => {
    const all = corpusGroups().flat();
    expect(all.filter((f) => corpus().includes(f))).toHaveLength(19);
    expect(all.map((f) => basename(f))).toEqual(expect.arrayContaining(["bench.x", "compat.x", "procs.x"]));
    const procs = compile(join(repoRoot, "test/fixtures/procs.x")).model.programs.flatMap((p) => p.versions.flatMap((v) => v.procedures));
    expect(procs.filter((p) => p.args.length > 1).length).toBeGreaterThanOrEqual(3);
  });
});
