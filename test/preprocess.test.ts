import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DiagnosticBag } from "../compiler/diagnostics.js";
import {
  defaultDefines,
  evaluateExpression,
  originOf,
  preprocess,
  type PreprocessOptions,
  type Preprocessed,
} from "../compiler/preprocess.js";
import type { SourceFile } from "../compiler/source.js";
import { removeDir, tempDir } from "./support.js";

/** The preprocessor on its own: what it keeps, what it drops, and how positions map back. */

function run(text: string, options: PreprocessOptions = {}, path = "t.x"): { pp: Preprocessed; errors: string[] } {
  const bag = new DiagnosticBag();
  const pp = preprocess({ path, text }, bag, options);
  const errors = bag.sorted().map((d) => (d.span ? `${d.span.file.path}:${d.span.line}:${d.span.col}: ${d.message}` : d.message));
  return { pp, errors };
}

/** The preprocessed text with blank lines dropped and spaces squeezed: what the parser will read. */
function kept(pp: Preprocessed): string[] {
  return pp.text
    .split("\n")
    .map((l) => l.trim().replace(/\s+/g, " "))
    .filter((l) => l !== "");
}

/** Where the first occurrence of `needle` in the output came from, as `file:line:col`. */
function whereIs(pp: Preprocessed, needle: string, nth = 0): string {
  const lines = pp.text.split("\n");
  let seen = 0;
  for (let i = 0; i < lines.length; i++) {
    for (let col = lines[i]!.indexOf(needle); col >= 0; col = lines[i]!.indexOf(needle, col + 1)) {
      if (seen++ === nth) {
        const span = originOf(pp, i + 1, col + 1);
        return `${span.file.path}:${span.line}:${span.col}`;
      }
    }
  }
  throw new Error(`'${needle}' not in the output`);
}

describe("evaluateExpression", () => {
  it.each([
    ["1 + 2 * 3", 7n], //              * before +
    ["(1 + 2) * 3", 9n],
    ["10 - 4 - 3", 3n], //             left to right
    ["2 + 3 << 1", 10n], //            + before <<
    ["1 << 2 < 5", 1n], //             << before <
    ["3 < 2 == 0", 1n], //             < before ==
    ["6 & 3 == 3", 0n], //             == before & (as in C): 6 & 1
    ["1 | 2 ^ 3", 1n], //              ^ before |: 1 | 1
    ["1 || 0 && 0", 1n], //            && before ||
    ["!0 + ~0", 0n], //                1 + -1
    ["-3 + +1", -2n],
    ["-(2 * 3)", -6n],
    ["17 / 5", 3n],
    ["17 % 5", 2n],
    ["-17 / 5", -3n], //               C truncates toward zero
    ["010", 8n], //                    octal
    ["0x1F + 0X10", 47n], //           hex, either case
    ["0", 0n],
    ["2L + 1u + 0x10UL", 19n], //      C's integer suffixes
    ["UNDEFINED_NAME", 0n], //         cpp: a name that is not a macro is 0
    ["UNDEFINED_NAME + 1", 1n],
    ["((((1))))", 1n],
  ])("%s = %s", (expr, value) => {
    expect(evaluateExpression(expr)).toBe(value);
  });

  it.each([
    ["1 / 0", "division by zero"],
    ["4 % (2 - 2)", "division by zero"],
    ["(1 + 2", "expected ')'"],
    ["1 2", "unexpected '2'"],
    ["1 +", "unexpected end of expression"],
    ["", "unexpected end of expression"],
    ["09", "invalid octal number 09"],
    ["1 ? 2 : 3", "unexpected '?'"],
  ])("%j fails: %s", (expr, message) => {
    expect(() => evaluateExpression(expr)).toThrow(message);
  });
});

describe("conditionals", () => {
  it("evaluates defined() and defined NAME, with and without parentheses", () => {
    const { pp, errors } = run(
      [
        "#define ON",
        "#if defined(ON) && !defined OFF",
        "const A = 1;",
        "#endif",
        "#if defined ( OFF ) || defined OFF",
        "const B = 1;",
        "#endif",
      ].join("\n"),
    );
    expect(errors).toEqual([]);
    expect(kept(pp)).toEqual(["const A = 1;"]);
  });

  it("takes exactly one branch of #if/#elif/#else, nested", () => {
    const text = [
      "#define LEVEL 2",
      "#if LEVEL == 1",
      "one",
      "#elif LEVEL == 2",
      "two",
      "#  ifdef NOPE",
      "two-nope",
      "#  else",
      "two-else",
      "#  endif",
      "#elif LEVEL >= 2",
      "also-true-but-not-taken",
      "#else",
      "other",
      "#endif",
    ].join("\n");
    const { pp, errors } = run(text);
    expect(errors).toEqual([]);
    expect(kept(pp)).toEqual(["two", "two-else"]);
  });

  it("ignores anything, even bad directives, inside an excluded region", () => {
    const text = ["#if 0", "#frobnicate", "#define F(x) x", "#error not reached", "#if 1", "x", "#endif", "#endif", "kept"];
    const { pp, errors } = run(text.join("\n"));
    expect(errors).toEqual([]);
    expect(kept(pp)).toEqual(["kept"]);
  });

  it("reports the errors of unbalanced groups where they are", () => {
    const { errors } = run(["#ifdef A", "#else", "#else", "#elif 1", "#endif", "#endif"].join("\n"));
    expect(errors).toEqual(["t.x:3:1: #else after #else", "t.x:4:1: #elif after #else", "t.x:6:1: #endif without #if"]);
  });

  it("reports a bad #if expression with the expression", () => {
    const { errors } = run(["#if 1 / 0", "#endif", "#if (2", "#endif"].join("\n"));
    expect(errors).toEqual([
      "t.x:1:1: bad #if expression '1 / 0': division by zero",
      "t.x:3:1: bad #if expression '(2': expected ')'",
    ]);
  });

  it("undefines with #undef and skips cpp's line markers", () => {
    const { pp, errors } = run(['#define X 1', "#undef X", '# 12 "other.h"', "#ifdef X", "no", "#endif", "X"].join("\n"));
    expect(errors).toEqual([]);
    expect(kept(pp)).toEqual(["X"]);
  });
});

describe("defines", () => {
  it("defines RPC_HDR, RPC_XDR, RPC_CLNT, RPC_SVC and RPCGEN_TS by default", () => {
    expect([...defaultDefines.keys()]).toEqual(["RPC_HDR", "RPC_XDR", "RPC_CLNT", "RPC_SVC", "RPCGEN_TS"]);
    const names = [...defaultDefines.keys(), "RPC_TBL"];
    const text = names.map((n) => `#ifdef ${n}\nhas_${n}\n#endif`).join("\n");
    expect(kept(run(text).pp)).toEqual(["has_RPC_HDR", "has_RPC_XDR", "has_RPC_CLNT", "has_RPC_SVC", "has_RPCGEN_TS"]);
  });

  it("uses the given defines instead of the defaults (the CLI adds -D to the defaults itself)", () => {
    const text = "#ifdef RPC_HDR\nhdr\n#endif\n#ifdef MINE\nmine\n#endif";
    expect(kept(run(text, { defines: new Map([["MINE", "1"]]) }).pp)).toEqual(["mine"]);
  });

  it("lets a -D value win over a file's #ifndef default", () => {
    const text = "#ifndef WIDTH\n#define WIDTH 4\n#endif\ntypedef opaque t[WIDTH];";
    expect(kept(run(text).pp)).toEqual(["typedef opaque t[4];"]);
    const defines = new Map([...defaultDefines, ["WIDTH", "8"]]);
    expect(kept(run(text, { defines }).pp)).toEqual(["typedef opaque t[8];"]);
  });

  it("rescans a macro's value, but never expands a macro inside itself", () => {
    const text = ["#define A B", "#define B 7", "#define SELF SELF + 1", "A B SELF", "#if A == 7", "seven", "#endif"];
    expect(kept(run(text.join("\n")).pp)).toEqual(["7 7 SELF + 1", "seven"]);
  });

  it("expands whole identifiers only", () => {
    expect(kept(run("#define N 3\nN NN N_ _N N").pp)).toEqual(["3 NN N_ _N 3"]);
  });

  it("refuses function-like macros and #define without a name", () => {
    const { errors } = run("#define F(x) x\n#define\n#define 3");
    expect(errors).toEqual([
      "t.x:1:1: function-like macro 'F' is not supported",
      "t.x:2:1: #define needs a macro name",
      "t.x:3:1: #define needs a macro name",
    ]);
  });
});

describe("comments", () => {
  it("blanks comments to spaces, so every column stays where it was", () => {
    const line = "int /* a */ x; // tail";
    const { pp } = run(line);
    expect(pp.text).toBe("int         x;        ");
    expect(pp.text.length).toBe(line.length);
    expect(whereIs(pp, "x")).toBe("t.x:1:13");
  });

  it("keeps one output line per input line across a block comment", () => {
    const { pp } = run("a /* one\ntwo\nthree */ b\nc");
    expect(pp.text.split("\n")).toEqual(["a       ", "   ", "         b", "c"]);
    expect(whereIs(pp, "b")).toBe("t.x:3:10");
    expect(whereIs(pp, "c")).toBe("t.x:4:1");
  });

  it("does not take comment markers inside a comment for anything else", () => {
    const { pp, errors } = run("/* // not a line comment */ x /* a /* b */ y");
    expect(errors).toEqual([]);
    expect(kept(pp)).toEqual(["x y"]);
  });

  it("hides directives inside a comment, and comments inside directives", () => {
    const { pp, errors } = run("/*\n#error hidden\n*/\n#define N /* size */ 5 // five\nN");
    expect(errors).toEqual([]);
    expect(kept(pp)).toEqual(["5"]);
  });

  it("reports an unterminated comment where it opens", () => {
    expect(run("x\n  /* open\nmore").errors).toEqual(["t.x:2:3: unterminated comment"]);
  });
});

describe("% lines and continuations", () => {
  it("drops % lines, with their backslash continuations, and keeps the line count", () => {
    const text = ["%#include <rpc/rpc.h>", "%int table[] = { 1, \\", "    2 };", "const A = 1;", "  % indented too"].join("\n");
    const { pp, errors } = run(text);
    expect(errors).toEqual([]);
    expect(pp.text.split("\n")).toEqual(["", "", "", "const A = 1;", ""]);
    expect(whereIs(pp, "A")).toBe("t.x:4:7");
  });

  it("does not treat a % inside a comment as a % line", () => {
    const { pp } = run("/*\n% not pass-through\n*/ x");
    expect(kept(pp)).toEqual(["x"]);
  });

  it("records %#define values without their C comments, for use as bounds", () => {
    const text = "%#define MAXPATH 64   /* bytes */\n%#define FSHIFT\t8 // bits\n%#define F(x) x\n%#define EMPTY";
    const { pp } = run(text);
    expect(pp.passThroughDefines.map((d) => [d.name, d.text, d.span.line, d.span.col])).toEqual([
      ["MAXPATH", "64", 1, 1],
      ["FSHIFT", "8", 2, 1],
      ["EMPTY", "", 4, 1],
    ]);
  });

  it("joins a directive continued with backslash-newline, keeping the lines", () => {
    const text = ["#define SUM 1 + \\", "  2 + \\", "  3", "#if SUM == 6", "six", "#endif", "SUM"].join("\n");
    const { pp, errors } = run(text);
    expect(errors).toEqual([]);
    expect(pp.lines).toHaveLength(7);
    expect(kept(pp)).toEqual(["six", "1 + 2 + 3"]);
    expect(whereIs(pp, "six")).toBe("t.x:5:1");
  });
});

describe("positions", () => {
  const dir = tempDir("preprocess");
  afterAll(() => removeDir(dir));

  it("maps output lines into #included files and back", () => {
    mkdirSync(join(dir, "sub"), { recursive: true });
    writeFileSync(join(dir, "inc.x"), "inc_one\n#include \"sub/deep.x\"\ninc_three");
    writeFileSync(join(dir, "sub", "deep.x"), "deep_one\n  deep_two");
    const main: SourceFile = { path: join(dir, "main.x"), text: "main_one\n#include \"inc.x\"\nmain_three" };
    const bag = new DiagnosticBag();
    const pp = preprocess(main, bag);
    expect(bag.items).toEqual([]);
    expect(kept(pp)).toEqual(["main_one", "inc_one", "deep_one", "deep_two", "inc_three", "main_three"]);
    expect(pp.files.map((f) => f.path)).toEqual([main.path, join(dir, "inc.x"), join(dir, "sub", "deep.x")]);
    const at = (needle: string) => whereIs(pp, needle).replace(dir + "/", "");
    expect(at("main_one")).toBe("main.x:1:1");
    expect(at("inc_one")).toBe("inc.x:1:1");
    expect(at("deep_two")).toBe("sub/deep.x:2:3");
    expect(at("inc_three")).toBe("inc.x:3:1");
    expect(at("main_three")).toBe("main.x:3:1");
    // Each output line maps to exactly one source line: 1 + (1 + (1 + 2) + 1) + 1.
    expect(pp.lines.map((l) => `${l.file.path.replace(dir + "/", "")}:${l.line}`)).toEqual([
      "main.x:1",
      "main.x:2",
      "inc.x:1",
      "inc.x:2",
      "sub/deep.x:1",
      "sub/deep.x:2",
      "inc.x:3",
      "main.x:3",
    ]);
  });

  it("finds includes in -I directories after the includer's own", () => {
    mkdirSync(join(dir, "a"), { recursive: true });
    mkdirSync(join(dir, "b"), { recursive: true });
    writeFileSync(join(dir, "a", "x.x"), "from_a");
    writeFileSync(join(dir, "b", "x.x"), "from_b");
    writeFileSync(join(dir, "b", "y.x"), "from_b_y");
    const main: SourceFile = { path: join(dir, "a", "main.x"), text: '#include "x.x"\n#include "y.x"\n#include <x.x>' };
    const bag = new DiagnosticBag();
    const pp = preprocess(main, bag, { includeDirs: [join(dir, "b")] });
    expect(bag.items).toEqual([]);
    // "x.x" is found beside main.x; <x.x> skips the includer's directory.
    expect(kept(pp)).toEqual(["from_a", "from_b_y", "from_b"]);
  });

  it("points text produced by a macro at the macro's use, and shifts the rest back", () => {
    const { pp } = run("#define LONG_NAME 1\n#define S 123456789\nint a<LONG_NAME>; int b<S>; end");
    expect(kept(pp)).toEqual(["int a<1>; int b<123456789>; end"]);
    expect(whereIs(pp, "1")).toBe("t.x:3:7"); //         the L of LONG_NAME
    expect(whereIs(pp, ">")).toBe("t.x:3:16"); //        right after the use
    expect(whereIs(pp, "int", 1)).toBe("t.x:3:19");
    expect(whereIs(pp, "56789")).toBe("t.x:3:25"); //    inside a longer expansion: still the use
    expect(whereIs(pp, "end")).toBe("t.x:3:29");
  });

  it("maps a position past the end to the last line", () => {
    const { pp } = run("a\nb");
    expect(originOf(pp, 99, 1)).toMatchObject({ line: 2, col: 1 });
  });

  it("reports a missing include, and an include cycle with its chain", () => {
    writeFileSync(join(dir, "c1.x"), '#include "c2.x"');
    writeFileSync(join(dir, "c2.x"), 'one\n#include "c1.x"');
    const bag = new DiagnosticBag();
    preprocess({ path: join(dir, "c1.x"), text: '#include "c2.x"\n#include "nope.x"\n#include nope' }, bag);
    const rel = (p: string) => p.replaceAll(dir + "/", "");
    expect(bag.sorted().map((d) => `${rel(d.span!.file.path)}:${d.span!.line}: ${rel(d.message)}`)).toEqual([
      "c2.x:2: include cycle: c1.x -> c2.x -> c1.x",
      "c1.x:2: cannot find include file 'nope.x'",
      'c1.x:3: #include expects "file" or <file>',
    ]);
  });
});
