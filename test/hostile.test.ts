import fc from "fast-check";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import { beforeAll, describe, expect, it } from "vitest";
import { moduleNameOf } from "../compiler/compile.js";
import { modes, type Mode } from "../compiler/emit/module.js";
import type { NamedType, Type } from "../compiler/model.js";
import { fromXdr, toXdr, XdrError, type XdrCodec } from "../runtime/index.js";
import { arbitraryOf, arbitraryOfNamed } from "./arbitrary.js";
import { codecOf, compile, generateAllModes, type Compiled, type GeneratedModule } from "./generated.js";
import { corpus, repoRoot } from "./support.js";
import { concat, words } from "./bytes.js";

/**
 * Hostile input (DESIGN §5 "Limits"): whatever bytes arrive, a generated decoder either
 * returns a value or throws an XdrError — never another exception, never a stack overflow,
 * never a large allocation on the word of a length field. Checked in every mode.
 */

const COMPAT = join(repoRoot, "test/fixtures/compat.x");
const BENCH = join(repoRoot, "idl/bench.x");
const NFS = corpus().find((f) => f.endsWith("/nfs_prot.x"))!;

let compat: Record<Mode, GeneratedModule>;
let bench: Record<Mode, GeneratedModule>;
let nfs: Record<Mode, GeneratedModule>;

async function load(file: string): Promise<Record<Mode, GeneratedModule>> {
  const all = await generateAllModes([file]);
  const out = {} as Record<Mode, GeneratedModule>;
  for (const mode of modes) out[mode] = all[mode].get(moduleNameOf(file))!;
  return out;
}

beforeAll(async () => {
  [compat, bench, nfs] = await Promise.all([load(COMPAT), load(BENCH), load(NFS)]);
}, 120_000);

/** compat.x's codec for `name` in `mode`. */
const c = (mode: Mode, name: string): XdrCodec<unknown> => codecOf(compat[mode], name);



function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** The XdrError `f` throws; fails the test if it throws anything else or nothing. */
function xdrErrorOf(f: () => unknown): XdrError {
  const e = thrown(f);
  if (!(e instanceof XdrError)) throw new Error(`expected an XdrError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  return e;
}

/** In every mode, decoding `bytes` as compat type `name` fails with exactly `message`. */
function expectDecodeError(name: string, bytes: Uint8Array, message: string): void {
  for (const mode of modes) expect.soft(xdrErrorOf(() => fromXdr(c(mode, name), bytes)).message, mode).toBe(message);
}

/** In every mode, encoding `value` as compat type `name` fails with exactly `message`. */
function expectEncodeError(name: string, value: unknown, message: string): void {
  for (const mode of modes) expect.soft(xdrErrorOf(() => toXdr(c(mode, name), value)).message, mode).toBe(message);
}

/** Named types declared by a compiled file. */
function typesOf(compiled: Compiled): NamedType[] {
  return compiled.model.declarations.flatMap((d) => (d.kind === "type" ? [d.type] : []));
}

interface Decoder {
  readonly label: string;
  readonly codecs: Record<Mode, XdrCodec<unknown>>;
  /** Valid values, for mutation. */
  readonly arbitrary: fc.Arbitrary<unknown>;
}

interface ServiceLike {
  readonly name: string;
  readonly procedures: Record<string, { readonly name: string; readonly args: XdrCodec<unknown>; readonly result: XdrCodec<unknown> }>;
}

function valuesOf(types: readonly Type[]): fc.Arbitrary<unknown> {
  const values = types.filter((t) => t.kind !== "void");
  if (values.length === 0) return fc.constant(undefined);
  if (values.length === 1) return arbitraryOf(values[0]!);
  return fc.tuple(...values.map((t) => arbitraryOf(t)));
}

/** Every decoder a file has: its types' codecs and its procedures' argument and result codecs. */
function decodersOf(file: string, modules: () => Record<Mode, GeneratedModule>): Decoder[] {
  const compiled = compile(file);
  const out: Decoder[] = typesOf(compiled).map((t) => ({
    label: t.name,
    get codecs() {
      const m = modules();
      const codecs = {} as Record<Mode, XdrCodec<unknown>>;
      for (const mode of modes) codecs[mode] = codecOf(m[mode], t.name);
      return codecs;
    },
    arbitrary: arbitraryOfNamed(t),
  }));
  for (const p of compiled.model.programs) {
    for (const v of p.versions) {
      for (const proc of v.procedures) {
        for (const which of ["args", "result"] as const) {
          out.push({
            label: `${v.name}.${proc.name} ${which}`,
            get codecs() {
              const m = modules();
              const codecs = {} as Record<Mode, XdrCodec<unknown>>;
              for (const mode of modes) {
                const service = Object.values(m[mode]).find(
                  (x): x is ServiceLike => typeof x === "object" && x !== null && "procedures" in x && (x as { name?: unknown }).name === v.name,
                );
                const entry = Object.values(service!.procedures).find((e) => e.name === proc.name);
                codecs[mode] = entry![which];
              }
              return codecs;
            },
            arbitrary: valuesOf(which === "args" ? proc.args : [proc.result]),
          });
        }
      }
    }
  }
  return out;
}

type Verdict = { ok: true; value: unknown } | { ok: false; error: XdrError };

/** Decodes `bytes` in `mode`; anything thrown other than an XdrError fails the test. */
function verdict(codec: XdrCodec<unknown>, bytes: Uint8Array): Verdict {
  try {
    return { ok: true, value: fromXdr(codec, bytes) };
  } catch (e) {
    if (e instanceof XdrError) return { ok: false, error: e };
    throw new Error(`${codec.name}: decoding ${Buffer.from(bytes).toString("hex")} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
}

/**
 * Every mode's decoder accepts or refuses `bytes` alike (error messages may differ: a
 * synthesized decoder checks a fixed-size run at once), only XdrError escapes, and a value
 * that decodes encodes again, to as many bytes.
 */
function checkHostile(d: Decoder, bytes: Uint8Array): void {
  const codecs = d.codecs;
  const verdicts = modes.map((mode) => verdict(codecs[mode], bytes));
  const accepted = verdicts.map((v) => v.ok);
  expect(accepted, `${d.label}: modes disagree on accepting ${Buffer.from(bytes).toString("hex")}`).toEqual(accepted.map(() => accepted[0]));
  const first = verdicts[0]!;
  if (first.ok) {
    for (const v of verdicts) expect(v.ok && v.value, d.label).toStrictEqual(first.value);
    for (const mode of modes) expect(toXdr(codecs[mode], first.value).length, `${d.label}: ${mode} re-encoding`).toBe(bytes.length);
  }
}

describe("truncated input", () => {
  const compiled = compile(COMPAT);
  const names = ["everything", "nested", "polygon", "shape", "readres", "maybe", "wide", "node", "tree", "withopt", "shapes", "namelist", "aliases", "scalars"];

  it.each(names)("compat %s: every cut point of valid encodings throws a truncation XdrError in every mode", (name) => {
    const t = compiled.model.types.get(name)!;
    fc.assert(
      fc.property(arbitraryOfNamed(t), (v) => {
        const bytes = toXdr(c("classic", name), v).slice();
        for (let cut = 0; cut < bytes.length; cut++) {
          for (const mode of modes) {
            const e = xdrErrorOf(() => fromXdr(c(mode, name), bytes.subarray(0, cut)));
            expect(e.op).toBe("decode");
            expect(e.detail, `${mode}, cut at ${cut} of ${bytes.length}`).toMatch(/^truncated: /);
            expect(e.offset).toBeLessThanOrEqual(cut);
          }
        }
      }),
      { numRuns: 15 },
    );
  });

  it("nfs_prot.x and bench.x: every cut point of valid encodings throws an XdrError in every mode", () => {
    const decoders = [...decodersOf(NFS, () => nfs), ...decodersOf(BENCH, () => bench)];
    for (const d of decoders) {
      const codecs = d.codecs;
      fc.assert(
        fc.property(d.arbitrary, (v) => {
          const bytes = toXdr(codecs.classic, v).slice();
          for (let cut = 0; cut < bytes.length; cut++) {
            for (const mode of modes) {
              const e = xdrErrorOf(() => fromXdr(codecs[mode], bytes.subarray(0, cut)));
              expect(e.detail, `${d.label}, ${mode}, cut at ${cut}`).toMatch(/^truncated: /);
            }
          }
        }),
        { numRuns: 5 },
      );
    }
  });
});

describe("length fields", () => {
  // Sixteen bytes in all: the length word, then twelve bytes that are not enough for anything large.
  const claim = (n: number): Uint8Array => concat(words(n), new Uint8Array(12));

  it("of 2^32-1 and 0x80000000 in unbounded opaque, string and array positions", () => {
    for (const n of [0xffffffff, 0x80000000]) {
      const p = n + ((4 - (n % 4)) % 4);
      expectDecodeError("anyblob", claim(n), `decode anyblob at byte 0: truncated: opaque of ${n} bytes needs ${p} bytes, 12 left`);
      expectDecodeError("anystr", claim(n), `decode anystr at byte 0: truncated: string of ${n} bytes needs ${p} bytes, 12 left`);
      expectDecodeError("ints", claim(n), `decode ints at byte 0: truncated: array of ${n} elements needs at least ${4 * n} bytes, 12 left`);
      // An array of structs inside a struct, after an empty string.
      expectDecodeError(
        "polygon",
        concat(words(0, n), new Uint8Array(8)),
        `decode polygon.pts at byte 4: truncated: array of ${n} elements needs at least ${8 * n} bytes, 8 left`,
      );
      // Recursion through a variable-length array.
      expectDecodeError("tree", concat(words(7, n), new Uint8Array(8)), `decode tree.kids at byte 4: truncated: array of ${n} elements needs at least ${8 * n} bytes, 8 left`);
    }
  });

  it("of 2^32-1 and 0x80000000 in bounded positions exceed the bound", () => {
    for (const n of [0xffffffff, 0x80000000]) {
      expectDecodeError("blob", claim(n), `decode blob at byte 0: opaque of ${n} bytes exceeds bound 64`);
      expectDecodeError("name", claim(n), `decode name at byte 0: string of ${n} bytes exceeds bound 16`);
      expectDecodeError("pointlist", claim(n), `decode pointlist at byte 0: array of ${n} elements exceeds bound 8`);
      expectDecodeError("hypers", claim(n), `decode hypers at byte 0: array of ${n} elements exceeds bound 3`);
    }
  });

  it("a 16-byte message claiming 4 GB allocates nothing large, in any mode", () => {
    const claims = [0xffffffff, 0xfffffffc, 0x80000000, 0x00100000];
    // Decoders whose first word is a length (or a count); polygon and tree reach theirs after one word.
    const cases: Array<{ name: string; bytes: (n: number) => Uint8Array }> = [
      { name: "anyblob", bytes: claim },
      { name: "anystr", bytes: claim },
      { name: "ints", bytes: claim },
      { name: "polygon", bytes: (n) => concat(words(0, n), new Uint8Array(8)) },
      { name: "tree", bytes: (n) => concat(words(0, n), new Uint8Array(8)) },
    ];
    for (const { name, bytes } of cases) {
      for (const n of claims) {
        const input = bytes(n);
        expect(input.length).toBe(16);
        for (const mode of modes) {
          const codec = c(mode, name);
          thrown(() => fromXdr(codec, input)); // warm up: compiling the decoder is not the decoder's allocation
          let error: unknown;
          const grown = allocationDuring(() => {
            error = thrown(() => fromXdr(codec, input));
          });
          expect(error, `${mode} ${name} claiming ${n}`).toBeInstanceOf(XdrError);
          expect((error as XdrError).detail).toMatch(/^truncated: (opaque|string|array) of \d+ (bytes|elements) needs/);
          expect(grown.arrayBuffers, `${mode} ${name} claiming ${n}: ArrayBuffer bytes`).toBeLessThan(64 * 1024);
          expect(grown.heap, `${mode} ${name} claiming ${n}: heap bytes`).toBeLessThan(1024 * 1024);
        }
      }
    }
  });

  it("the allocation probe sees a 1 MB byte array and a 1 M-element array (so the test above can fail)", () => {
    expect(allocationDuring(() => void new Uint8Array(1 << 20)).arrayBuffers).toBeGreaterThanOrEqual(1 << 20);
    expect(allocationDuring(() => void new Array<number>(1 << 20).fill(0)).heap).toBeGreaterThanOrEqual(4 << 20);
  });
});

// A real GC before measuring makes growth exact: garbage from earlier tests cannot be freed
// inside the window and hide an allocation (the technique of runtime/xdr/xdr.test.ts).
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Bytes of ArrayBuffer memory and of JS heap that `f` leaves allocated (garbage included: no GC runs in between). */
function allocationDuring(f: () => void): { arrayBuffers: number; heap: number } {
  gc();
  const before = process.memoryUsage();
  f();
  const after = process.memoryUsage();
  return { arrayBuffers: after.arrayBuffers - before.arrayBuffers, heap: after.heapUsed - before.heapUsed };
}

describe("values out of bounds", () => {
  it("strings over their bound, in bytes", () => {
    expectDecodeError("name", concat(words(17), new Uint8Array(20)), "decode name at byte 0: string of 17 bytes exceeds bound 16");
    expectEncodeError("name", "x".repeat(17), "encode name at byte 0: string of 17 bytes exceeds bound 16");
    expectEncodeError("name", "é".repeat(9), "encode name at byte 0: string of 18 bytes exceeds bound 16");
    expectEncodeError("tiny", "é", "encode tiny at byte 0: string of 2 bytes exceeds bound 1");
    // At the bound is fine: 16 bytes of UTF-8 in 8 characters.
    for (const mode of modes) expect(fromXdr(c(mode, "name"), toXdr(c(mode, "name"), "é".repeat(8)))).toBe("é".repeat(8));
  });

  it("arrays over their bound, and fixed arrays of the wrong length", () => {
    const pt = { x: 0, y: 0 };
    expectEncodeError("pointlist", Array.from({ length: 9 }, () => pt), "encode pointlist at byte 0: array of 9 elements exceeds bound 8");
    expectDecodeError("pointlist", concat(words(9), new Uint8Array(72)), "decode pointlist at byte 0: array of 9 elements exceeds bound 8");
    expectEncodeError("triangle", [pt, pt], "encode triangle at byte 0: array of 2 elements, expected exactly 3");
    expectEncodeError("blob", new Uint8Array(65), "encode blob at byte 0: opaque of 65 bytes exceeds bound 64");
    expectEncodeError("fixed5", new Uint8Array(4), "encode fixed5 at byte 0: opaque of 4 bytes, expected exactly 5");
  });

  it("unknown enum values", () => {
    expectDecodeError("scalars", concat(new Uint8Array(44), words(3)), "decode scalars.c at byte 44: value 3 is not a member of enum color");
    expectEncodeError("readres", { st: 3 }, "encode readres.st at byte 0: expected a value of enum status, got 3");
    expectDecodeError("readres", words(3), "decode readres.st at byte 0: value 3 is not a member of enum status");
  });

  it("an undeclared union discriminant (no default arm)", () => {
    expectDecodeError("nodefault", words(7, 0), "decode nodefault.k at byte 0: no arm of union nodefault for discriminant 7");
    // ST_HEX is a member of the enum, but no arm of readres takes it.
    expectDecodeError("readres", words(0x10), "decode readres.st at byte 0: no arm of union readres for discriminant 16");
    expectEncodeError("nodefault", { k: 7 }, "encode nodefault.k at byte 0: expected a case of union nodefault, got 7");
  });

  it("bool 2 and an optional-data flag of 7", () => {
    expectDecodeError("maybe", words(2, 0), "decode maybe.present at byte 0: bool value 2 is neither 0 nor 1");
    expectDecodeError("scalars", concat(new Uint8Array(40), words(2, 0)), "decode scalars.b at byte 40: bool value 2 is neither 0 nor 1");
    expectDecodeError("withopt", words(7), "decode withopt.origin at byte 0: optional-data discriminant 7 is neither 0 nor 1");
    expectDecodeError("nodeptr", words(7), "decode nodeptr at byte 0: optional-data discriminant 7 is neither 0 nor 1");
  });

  it("rpcgen's C aliases out of their C range", () => {
    expectDecodeError("aliases", concat(words(200), new Uint8Array(36)), "decode aliases.c at byte 0: value 200 out of range for char [-128, 127]");
    expectDecodeError("aliases", concat(new Uint8Array(8), words(256), new Uint8Array(28)), "decode aliases.uc at byte 8: value 256 out of range for u_char [0, 255]");
  });

  it("trailing bytes", () => {
    expectDecodeError("point", words(1, 2, 3), "decode point at byte 8: 4 trailing bytes");
    expectDecodeError("nodeptr", words(0, 0), "decode nodeptr at byte 4: 4 trailing bytes");
  });
});

describe("error messages name the path and the byte", () => {
  it("encode: a bad field inside an array element inside a struct", () => {
    // label "ab": length (4) + 2 bytes padded to 4 = bytes 0-7; pts count at 8; pts[0] at 12,
    // pts[1] at 20, pts[2] at 28, so pts[2].x at 28.
    const polygon = { label: "ab", pts: [{ x: 1, y: 2 }, { x: 3, y: 4 }, { x: 1.5, y: 0 }] };
    expectEncodeError("polygon", polygon, "encode polygon.pts[2].x at byte 28: expected int, got 1.5");
  });

  it("encode: through nested structs and a fixed array", () => {
    // poly (empty label, no points) = 8 bytes; sc (scalars) = 48 bytes at 8; f5 = 8 bytes at 56;
    // tri[0] at 64, tri[1] at 72, so tri[1].y at 76.
    const scalars = { i: 0, u: 0, u2: 0, h: 0n, uh: 0n, f: 0, d: 0, b: false, c: 0 };
    const nested = { poly: { label: "", pts: [] }, sc: scalars, f5: new Uint8Array(5), tri: [{ x: 0, y: 0 }, { x: 0, y: 2 ** 31 }, { x: 0, y: 0 }] };
    expectEncodeError("nested", nested, "encode nested.tri[1].y at byte 76: expected int, got 2147483648");
  });

  it("decode: through union arms", () => {
    // shapes: count 2 at 0; shapes[0] = kind 1, small at 4-11; shapes[1] = kind -1 at 12, text length at 16.
    expectDecodeError("shapes", concat(words(2, 1, 5, -1, 9), new Uint8Array(12)), "decode shapes[1].text at byte 16: string of 9 bytes exceeds bound 8");
    // readres ST_OK: the polygon's label length at 4.
    expectDecodeError("readres", concat(words(0, 17), new Uint8Array(20)), "decode readres.poly.label at byte 4: string of 17 bytes exceeds bound 16");
  });

  it("decode: through optional data", () => {
    // origin present (flag at 0, x at 4, y at 8), label "" at 12, sc present (flag at 16),
    // scalars from 20: its bool b is at 20 + 40 = 60.
    const bytes = concat(words(1, 0, 0, 0, 1), new Uint8Array(40), words(2, 0));
    expectDecodeError("withopt", bytes, "decode withopt.sc.b at byte 60: bool value 2 is neither 0 nor 1");
  });

  it("decode: a bad link in a linked list names the node, as the encoder's paths do", () => {
    expectDecodeError("node", words(1, 7), "decode node.next at byte 4: optional-data discriminant 7 is neither 0 nor 1");
    // The third node's link (the encoder calls that node node.next[2]), at byte 20.
    expectDecodeError("node", words(1, 1, 2, 1, 3, 7), "decode node.next[2].next at byte 20: optional-data discriminant 7 is neither 0 nor 1");
    expectEncodeError("node", { v: 1, next: { v: 2, next: { v: 1.5, next: null } } }, "encode node.next[2].v at byte 16: expected int, got 1.5");
  });

  it("encode: a missing field and a value of the wrong kind", () => {
    expectEncodeError("point", { x: 1 }, "encode point.y at byte 4: missing int");
    expectEncodeError("scalars", { i: 0, u: -1, u2: 0, h: 0n, uh: 0n, f: 0, d: 0, b: false, c: 0 }, "encode scalars.u at byte 4: expected unsigned int, got -1");
  });
});

describe("deep nesting", () => {
  const DEPTH = 100_000;

  /** `n` nodes of `struct node { int v; node *next; }`: v = i, every link present but the last. */
  function listBytes(n: number): Uint8Array {
    const bytes = new Uint8Array(8 * n);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < n; i++) {
      dv.setInt32(8 * i, i);
      dv.setUint32(8 * i + 4, i < n - 1 ? 1 : 0);
    }
    return bytes;
  }

  it(`a ${DEPTH}-node optional-data list neither overflows the stack nor fails: lists are marshaled in a loop`, () => {
    // What happens: since 69bec92 a struct whose last field links to the next node is
    // (de)coded in a loop, so the list is bounded by its bytes (8 per node), not by the stack.
    const bytes = listBytes(DEPTH);
    for (const name of ["node", "nodeptr"]) {
      const input = name === "nodeptr" ? concat(words(1), bytes) : bytes;
      for (const mode of modes) {
        const e = thrown(() => {
          const v = fromXdr(c(mode, name), input) as { v: number; next: unknown };
          let n = 0;
          let wrong = 0;
          for (let p: { v: number; next: unknown } | null = v; p !== null; p = p.next as typeof p) if (p.v !== n++) wrong++;
          expect(n).toBe(DEPTH);
          expect(wrong).toBe(0);
          expect(Buffer.compare(toXdr(c(mode, name), v), input), `${mode} ${name} re-encoding`).toBe(0);
        });
        expect(e, `${mode} ${name}: ${String(e)}`).toBeUndefined();
      }
    }
  });

  it(`${DEPTH}-deep recursion that is not a list fails with a clear XdrError about nesting depth, not a stack overflow`, () => {
    // bintree { v; left; right }: a chain of left children. Depth first: (v, left present) for
    // every node but the deepest, the deepest (v, absent, absent), then every right flag absent.
    const left = new Uint8Array(12 * DEPTH);
    const dl = new DataView(left.buffer);
    for (let i = 0; i < DEPTH - 1; i++) dl.setUint32(8 * i + 4, 1);
    // tree { v; kids<> }: one kid each, the last none.
    const kids = new Uint8Array(8 * DEPTH);
    const dk = new DataView(kids.buffer);
    for (let i = 0; i < DEPTH - 1; i++) dk.setUint32(8 * i + 4, 1);
    for (const [name, bytes] of [["bintree", left], ["tree", kids]] as const) {
      for (const mode of modes) {
        const e = thrown(() => fromXdr(c(mode, name), bytes));
        expect(e, `${mode} ${name}: ${String(e)}`).toBeInstanceOf(XdrError);
        expect((e as XdrError).detail).toBe("nesting deeper than 200");
      }
    }
  });

  it(`encoding a ${DEPTH}-node list works; ${DEPTH}-deep other recursion fails with an XdrError`, () => {
    let list: unknown = null;
    for (let i = DEPTH - 1; i >= 0; i--) list = { v: i, next: list };
    let deep: unknown = null;
    for (let i = 0; i < DEPTH; i++) deep = { v: 0, left: deep, right: null };
    for (const mode of modes) {
      expect(Buffer.compare(toXdr(c(mode, "node"), list), listBytes(DEPTH)), mode).toBe(0);
      const e = thrown(() => toXdr(c(mode, "bintree"), deep));
      expect(e, `${mode}: ${String(e)}`).toBeInstanceOf(XdrError);
      expect((e as XdrError).detail).toBe("nesting deeper than 200");
    }
  });

  it("a long chain of right children is a list too; left nesting of 200 is within the limit", () => {
    let v: unknown = null;
    for (let i = 0; i < 200; i++) v = { v: i, left: v, right: null };
    for (let i = 0; i < 5000; i++) v = { v: i, left: null, right: v };
    for (const mode of modes) {
      // Compared through their encodings: a recursive deep-equality would itself overflow the stack.
      const e = thrown(() => {
        const bytes = toXdr(c(mode, "bintree"), v).slice();
        expect(bytes.length).toBe(12 * 5200);
        expect(Buffer.compare(toXdr(c(mode, "bintree"), fromXdr(c(mode, "bintree"), bytes)), bytes), mode).toBe(0);
      });
      expect(e, `${mode}: ${String(e)}`).toBeUndefined();
    }
  });

  it("encoding a cyclic list fails with an XdrError, quickly and without allocating much", () => {
    const cyclic: { v: number; next: unknown } = { v: 1, next: null };
    cyclic.next = { v: 2, next: cyclic };
    for (const mode of modes) {
      let error: unknown;
      let took = 0;
      const grown = allocationDuring(() => {
        const started = performance.now();
        error = thrown(() => toXdr(c(mode, "node"), cyclic));
        took = performance.now() - started;
      });
      expect(error, `${mode}: ${String(error)}`).toBeInstanceOf(XdrError);
      expect.soft(grown.arrayBuffers, `${mode}: bytes allocated before the cycle is refused`).toBeLessThan(1 << 20);
      expect.soft(took, `${mode}: milliseconds before the cycle is refused`).toBeLessThan(100);
    }
  });
});

describe("random bytes", () => {
  /** Word-aligned input made of the numbers that length and discriminant checks care about. */
  const interestingWords = fc
    .array(fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 7, 8, 16, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff), fc.nat()), { maxLength: 48 })
    .map((ws) => words(...ws));
  const input = fc.oneof(fc.uint8Array({ maxLength: 200 }), interestingWords);

  const files = [
    ["bench.x", BENCH, () => bench],
    ["nfs_prot.x", NFS, () => nfs],
    ["compat.x", COMPAT, () => compat],
  ] as const;
  for (const [label, file, modules] of files) {
    if (file !== COMPAT) it(`${label}: every decoder, in every mode, only ever throws XdrError (500 runs each)`, () => {
      for (const d of decodersOf(file, modules)) {
        fc.assert(
          fc.property(input, (bytes) => checkHostile(d, bytes)),
          { numRuns: 500 },
        );
      }
    });

    it(`${label}: mutated valid encodings (a word replaced, cut or extended) only ever throw XdrError`, () => {
      const word = fc.oneof(fc.constantFrom(0, 1, 2, 7, 0x7fffffff, 0x80000000, 0xffffffff), fc.nat());
      for (const d of decodersOf(file, modules)) {
        const codecs = d.codecs;
        fc.assert(
          fc.property(d.arbitrary, fc.array(fc.tuple(fc.nat(), word), { minLength: 1, maxLength: 3 }), fc.integer({ min: -8, max: 8 }), (v, edits, resize) => {
            const valid = toXdr(codecs.classic, v);
            const bytes = new Uint8Array(Math.max(0, valid.length + 4 * resize));
            bytes.set(valid.subarray(0, bytes.length));
            const dv = new DataView(bytes.buffer);
            for (const [at, w] of edits) if (bytes.length >= 4) dv.setUint32(4 * (at % (bytes.length / 4)), w);
            checkHostile(d, bytes);
          }),
          { numRuns: 100 },
        );
      }
    });
  }
});
