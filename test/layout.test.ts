import { describe, expect, it } from "vitest";
import { frontEnd } from "../compiler/compile.js";
import { formatDiagnostic } from "../compiler/diagnostics.js";
import { isFixed, type Layout, type Size } from "../compiler/layout.js";
import type { Model, Procedure } from "../compiler/model.js";

/**
 * Static sizes (RFC 4506 §4): every expected value is worked out by hand in the comment
 * beside it, from the encoding rules — 4 bytes per int-like, 8 per hyper/double, opaque and
 * string data padded to a multiple of 4, a 4-byte length before variable-length data, a
 * 4-byte flag before optional data, a 4-byte discriminant before a union arm.
 */

function compile(text: string): { model: Model; layout: Layout } {
  const result = frontEnd({ path: "t.x", text });
  if (result.model === undefined || result.layout === undefined) {
    throw new Error(result.diagnostics.map(formatDiagnostic).join("\n"));
  }
  return { model: result.model, layout: result.layout };
}

/** The size of the named type `name` in `text`. */
function sizeOf(text: string, name: string): Size {
  const { model, layout } = compile(text);
  const type = model.types.get(name);
  if (type === undefined) throw new Error(`no type '${name}'`);
  return layout.sizeOfNamed(type);
}

function procedure(model: Model, name: string): Procedure {
  const found = model.programs.flatMap((p) => p.versions.flatMap((v) => v.procedures)).find((p) => p.name === name);
  if (found === undefined) throw new Error(`no procedure '${name}'`);
  return found;
}

const unbounded = undefined;

describe("fixed-size types", () => {
  it("adds up a struct and pads its fixed opaque", () => {
    // int 4 + hyper 8 + opaque[5] padded to 8 = 20
    const size = sizeOf("struct s { int a; hyper b; opaque c[5]; };", "s");
    expect(size).toEqual({ min: 20, max: 20 });
    expect(isFixed(size)).toBe(true);
  });

  it.each([
    ["opaque t[1];", 4], //   1 byte + 3 padding
    ["opaque t[4];", 4], //   no padding
    ["opaque t[5];", 8], //   5 + 3
    ["opaque t[8];", 8],
    ["opaque t[13];", 16], // 13 + 3
  ])("typedef %s is %i bytes", (decl, bytes) => {
    expect(sizeOf(`typedef ${decl}`, "t")).toEqual({ min: bytes, max: bytes });
  });

  it("gives every base type and alias its XDR width", () => {
    // 4 × (int, unsigned, float, bool, char, short, long, u_char, u_short, u_long, enum) = 44,
    // 8 × (hyper, unsigned hyper, double) = 24: 68 in all.
    const text = `
      enum e { A = 1 };
      struct all {
        int i; unsigned u; float f; bool b; char c; short s; long l;
        u_char uc; u_short us; u_long ul; e en;
        hyper h; unsigned hyper uh; double d;
      };`;
    expect(sizeOf(text, "all")).toEqual({ min: 68, max: 68 });
  });

  it("multiplies a fixed array by its element", () => {
    // struct pt = 2 × 4 = 8; pt[3] = 3 × 8 = 24 (a fixed array has no length field)
    const text = "struct pt { int x; int y; }; typedef pt tri[3];";
    expect(sizeOf(text, "tri")).toEqual({ min: 24, max: 24 });
  });

  it("sees through typedef chains", () => {
    // digest = opaque[20] = 20; the chain adds nothing
    const text = "typedef opaque digest[20]; typedef digest hash; typedef hash id;";
    expect(sizeOf(text, "id")).toEqual({ min: 20, max: 20 });
  });
});

describe("bounded types", () => {
  it.each([
    // length 4 + data; min is an empty value: the length word alone
    ["string t<10>;", 4, 16], //    4 + pad4(10) = 4 + 12
    ["string t<12>;", 4, 16], //    4 + 12
    ["string t<0>;", 4, 4], //      only ever the length word
    ["opaque t<3>;", 4, 8], //      4 + pad4(3) = 4 + 4
    ["int t<7>;", 4, 32], //        4 + 7 × 4
    ["hyper t<2>;", 4, 20], //      4 + 2 × 8
  ])("typedef %s is %i to %i bytes", (decl, min, max) => {
    expect(sizeOf(`typedef ${decl}`, "t")).toEqual({ min, max });
  });

  it("bounds a variable array of structs by the struct's maximum", () => {
    // item = int 4 + string<10> (4 to 16) = 8 to 20; item<3> = 4 + 0 … 4 + 3 × 20 = 4 to 64
    const text = "struct item { int id; string name<10>; }; typedef item items<3>;";
    expect(sizeOf(text, "item")).toEqual({ min: 8, max: 20 });
    expect(sizeOf(text, "items")).toEqual({ min: 4, max: 64 });
  });

  it("multiplies a fixed array of variable elements on both ends", () => {
    // s10 = 4 to 16; s10[2] = 2 × 4 to 2 × 16 = 8 to 32
    const text = "typedef string s10<10>; typedef s10 pair[2];";
    expect(sizeOf(text, "pair")).toEqual({ min: 8, max: 32 });
  });

  it("takes a bound from a constant", () => {
    // 4 + pad4(LEN = 6) = 4 + 8 = 12
    expect(sizeOf("const LEN = 6; typedef opaque t<LEN>;", "t")).toEqual({ min: 4, max: 12 });
  });

  it("adds a flag word for optional data", () => {
    // flag 4, then pt 8 when present: 4 to 12
    expect(sizeOf("struct pt { int x; int y; }; typedef pt *maybe;", "maybe")).toEqual({ min: 4, max: 12 });
  });

  it("has no maximum past 2^53 bytes, but keeps its minimum", () => {
    // big = 4 + (2^32 - 1) × 8 = 34359738364, still exact;
    // huge = (2^32 - 1) × big: max ≈ 1.5e20, past Number.MAX_SAFE_INTEGER; min = (2^32 - 1) × 4
    const text = "typedef hyper big<4294967295>; typedef big huge[4294967295];";
    expect(sizeOf(text, "big")).toEqual({ min: 4, max: 34359738364 });
    expect(sizeOf(text, "huge")).toEqual({ min: 17179869180, max: unbounded });
  });
});

describe("unbounded types", () => {
  it.each([["string t<>;"], ["opaque t<>;"], ["int t<>;"], ["hyper t<>;"]])("typedef %s has no maximum", (decl) => {
    // the length word alone at least; <> allows up to 2^32 - 1 items
    expect(sizeOf(`typedef ${decl}`, "t")).toEqual({ min: 4, max: unbounded });
  });

  it("propagates an unbounded member to the struct, the arrays and the optional holding it", () => {
    // s = int 4 + string<> 4 = 8; s[2] = 16; s<4> = 4; s* = 4
    const text = "struct s { int a; string b<>; }; typedef s two[2]; typedef s few<4>; typedef s *opt;";
    expect(sizeOf(text, "s")).toEqual({ min: 8, max: unbounded });
    expect(sizeOf(text, "two")).toEqual({ min: 16, max: unbounded });
    expect(sizeOf(text, "few")).toEqual({ min: 4, max: unbounded });
    expect(sizeOf(text, "opt")).toEqual({ min: 4, max: unbounded });
  });

  it("sizes libtirpc's built-ins as their xdr_ routines encode them", () => {
    // netobj = opaque<1024>: 4 to 4 + 1024; des_block = opaque[8];
    // netbuf = unsigned maxlen 4 + opaque buf<9000> (RPC_MAXDATASIZE, as xdr_netbuf bounds it):
    // min 4 + 4 = 8, max 4 + 4 + 9000 = 9008
    const text = "struct b { netobj o; };";
    expect(sizeOf(text, "netobj")).toEqual({ min: 4, max: 1028 });
    expect(sizeOf("struct b { des_block k; };", "des_block")).toEqual({ min: 8, max: 8 });
    expect(sizeOf("struct b { netbuf n; };", "netbuf")).toEqual({ min: 8, max: 9008 });
  });
});

describe("recursive types", () => {
  const list = "struct node { int value; node *next; }; typedef node *list;";

  it("sizes an optional linked list from its shortest value", () => {
    // node = int 4 + flag 4 (next absent) = 8; no maximum: the list can be any length
    expect(sizeOf(list, "node")).toEqual({ min: 8, max: unbounded });
    // list = flag 4 (empty list)
    expect(sizeOf(list, "list")).toEqual({ min: 4, max: unbounded });
    expect(isFixed(sizeOf(list, "node"))).toBe(false);
  });

  it("sizes a tree through a variable-length array", () => {
    // tree = int 4 + length 4 (no children) = 8
    expect(sizeOf("struct tree { int v; tree kids<>; };", "tree")).toEqual({ min: 8, max: unbounded });
  });

  it("is unbounded even when the recursive array itself is bounded", () => {
    // t = hyper 8 + length 4 = 12; t<2> of t's is still any depth
    expect(sizeOf("struct t { hyper v; t kids<2>; };", "t")).toEqual({ min: 12, max: unbounded });
  });

  it("sizes mutual recursion through optional data", () => {
    // a = int 4 + flag 4 = 8; b = hyper 8 + a 8 = 16
    const text = "struct a { int x; b *more; }; struct b { hyper y; a inner; };";
    expect(sizeOf(text, "a")).toEqual({ min: 8, max: unbounded });
    expect(sizeOf(text, "b")).toEqual({ min: 16, max: unbounded });
  });

  it("sizes a union whose arm is the recursion", () => {
    // expr: discriminant 4 + smallest arm (int 4) = 8; the pair arm nests without end
    const text = `
      struct pair { expr *left; expr *right; };
      union expr switch (int op) { case 0: int leaf; case 1: pair both; };`;
    expect(sizeOf(text, "expr")).toEqual({ min: 8, max: unbounded });
  });
});

describe("unions", () => {
  it("is the discriminant plus the smallest arm, up to the discriminant plus the largest", () => {
    // arms: void 0, hyper 8, opaque[5] 8, default int 4 → 4 + 0 = 4 to 4 + 8 = 12
    const text = `
      union u switch (int d) {
      case 0: void;
      case 1: hyper h;
      case 2: opaque o[5];
      default: int i;
      };`;
    const size = sizeOf(text, "u");
    expect(size).toEqual({ min: 4, max: 12 });
    expect(isFixed(size)).toBe(false);
  });

  it("is fixed when every arm has the same fixed size", () => {
    // int 4 or float 4 → 4 + 4 = 8 always
    const size = sizeOf("union u switch (bool b) { case TRUE: int i; case FALSE: float f; };", "u");
    expect(size).toEqual({ min: 8, max: 8 });
    expect(isFixed(size)).toBe(true);
  });

  it("counts several labels on one arm once, and an enum discriminant as 4 bytes", () => {
    // arms: string<10> (4 to 16), double 8 → 4 + 4 = 8 to 4 + 16 = 20
    const text = `
      enum k { A = 1, B = 2, C = 3 };
      union u switch (k kind) { case A: case B: string s<10>; case C: double d; };`;
    expect(sizeOf(text, "u")).toEqual({ min: 8, max: 20 });
  });

  it("has no maximum when an arm has none", () => {
    // arms: int 4, opaque<> 4 to ∞ → 8 to ∞
    const text = "union u switch (int d) { case 0: int i; case 1: opaque o<>; };";
    expect(sizeOf(text, "u")).toEqual({ min: 8, max: unbounded });
  });
});

describe("procedures", () => {
  const text = `
    struct pt { int x; int y; };
    typedef pt pts<3>;
    program P {
      version V {
        void NONE(void) = 0;
        int MANY(int, hyper, string<10>) = 1;
        pt PAIR(pt, pts) = 2;
        pts OPT(pt *, string) = 3;
      } = 1;
    } = 0x20000000;`;
  const { model, layout } = compile(text);

  it("gives void nothing to encode", () => {
    expect(layout.argumentsSize(procedure(model, "NONE"))).toEqual({ min: 0, max: 0 });
    expect(layout.resultSize(procedure(model, "NONE"))).toEqual({ min: 0, max: 0 });
  });

  it("lays several arguments one after the other", () => {
    // int 4 + hyper 8 + string<10> (4 to 16) = 16 to 28
    expect(layout.argumentsSize(procedure(model, "MANY"))).toEqual({ min: 16, max: 28 });
    expect(layout.resultSize(procedure(model, "MANY"))).toEqual({ min: 4, max: 4 });
    // pt 8 + pts (4 to 4 + 3 × 8 = 28) = 12 to 36
    expect(layout.argumentsSize(procedure(model, "PAIR"))).toEqual({ min: 12, max: 36 });
    expect(layout.resultSize(procedure(model, "PAIR"))).toEqual({ min: 8, max: 8 });
  });

  it("sizes optional and unbounded arguments", () => {
    // pt* (4 to 12) + string (4 to ∞) = 8 to ∞
    expect(layout.argumentsSize(procedure(model, "OPT"))).toEqual({ min: 8, max: unbounded });
    // pts: 4 to 4 + 3 × 8 = 28
    expect(layout.resultSize(procedure(model, "OPT"))).toEqual({ min: 4, max: 28 });
  });
});

describe("isFixed", () => {
  it.each([
    [{ min: 4, max: 4 }, true],
    [{ min: 0, max: 0 }, true],
    [{ min: 4, max: 16 }, false],
    [{ min: 8, max: undefined }, false],
  ])("%o → %s", (size, fixed) => {
    expect(isFixed(size)).toBe(fixed);
  });
});
