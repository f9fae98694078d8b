import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiagnosticBag, formatDiagnostic, maxMessage, maxShownLine } from "../compiler/diagnostics.js";
import { frontEnd } from "../compiler/compile.js";
import { maxInlineDepth } from "../compiler/layout.js";
import { evaluateExpression, expansionLimits, maxExpressionDepth, preprocess } from "../compiler/preprocess.js";
import { maxFormattedLength } from "../compiler/emit/printer.js";
import { fromXdr, toXdr } from "../runtime/index.js";
import { codecOf, generateAllModes } from "./generated.js";
import { removeDir, repoRoot, tempDir, typeCheck } from "./support.js";

/**
 * The compiler under hostile `.x` files: each input below once crashed, hung or took minutes
 * and gigabytes. Each runs the `rpcgen` command in a child process, with a time bound that is
 * a liveness check (generous on a shared machine, far below what the input used to cost), a
 * heap cap, and the child's own peak resident memory reported back and bounded.
 */

const exec = promisify(execFile);

/** The compiler as of this checkout, built apart from dist/ (which may be stale or absent). */
const build = join(repoRoot, ".tmp", `compiler-limits-${process.pid}`);
let work: string;

beforeAll(async () => {
  rmSync(build, { recursive: true, force: true });
  // tsc reports errors in files other than the compiler's as it goes; what matters is the output.
  await exec(join(repoRoot, "node_modules/.bin/tsc"), ["-p", "compiler/tsconfig.build.json", "--outDir", join(build, "compiler"), "--declaration", "false", "--sourceMap", "false"], {
    cwd: repoRoot,
  }).catch(() => undefined);
  if (!existsSync(join(build, "compiler/cli.js"))) throw new Error(`the compiler did not build into ${build}`);
  // Runs the command as bin.js does, then reports the process's peak resident set size.
  writeFileSync(
    join(build, "measure.mjs"),
    `import { writeFileSync } from "node:fs";
import { main } from "./compiler/cli.js";
let status;
try {
  status = await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write("rpcgen: internal error: " + e.message + "\\n");
  status = 70;
}
writeFileSync(process.env.RSS_FILE, String(process.resourceUsage().maxRSS));
process.exitCode = status;
`,
  );
  work = tempDir("limits");
}, 60_000);

afterAll(() => {
  rmSync(build, { recursive: true, force: true });
  if (work !== undefined) removeDir(work);
});

interface Run {
  status: number;
  stderr: string;
  /** Peak resident memory of the child, in MiB. */
  rssMiB: number;
  seconds: number;
}

/** The heap a child may use; past it Node aborts, and the test fails on the exit status. */
const heapCapMiB = 2048;

/** Runs `rpcgen` on `text` (written as `name`) in a child process bounded by `timeoutMs`. */
async function rpcgen(name: string, text: string, args: string[], timeoutMs: number): Promise<Run> {
  const dir = join(work, name.replace(/\.x$/, ""));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), text);
  const rssFile = join(dir, "rss");
  const started = process.hrtime.bigint();
  let status = 0;
  let stderr = "";
  try {
    ({ stderr } = await exec(process.execPath, [`--max-old-space-size=${heapCapMiB}`, join(build, "measure.mjs"), name, "--out", "out", ...args], {
      cwd: dir,
      timeout: timeoutMs,
      killSignal: "SIGKILL",
      env: { ...process.env, RSS_FILE: rssFile },
      maxBuffer: 64 * 1024 * 1024,
    }));
  } catch (e) {
    const err = e as { code?: number | string; killed?: boolean; signal?: string; stderr?: string };
    if (err.killed || err.signal === "SIGKILL") throw new Error(`rpcgen ${name} ${args.join(" ")} did not finish within ${timeoutMs} ms`);
    status = typeof err.code === "number" ? err.code : -1;
    stderr = err.stderr ?? "";
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const rssMiB = existsSync(rssFile) ? Number(readFileSync(rssFile, "utf8")) / 1024 : NaN;
  return { status, stderr, rssMiB, seconds };
}

/** Generated inputs: each a function of its size, so the tests show what they feed the compiler. */
const inputs = {
  constants: (n: number) => Array.from({ length: n }, (_, i) => `const C${i} = ${i};`).join("\n"),
  /** Each constant is the next one: evaluating the first needs the whole chain. */
  constantChain: (n: number) => Array.from({ length: n }, (_, i) => (i === n - 1 ? `const C${i} = 7;` : `const C${i} = C${i + 1};`)).join("\n"),
  constantCycle: (n: number) => Array.from({ length: n }, (_, i) => `const C${i} = C${(i + 1) % n};`).join("\n"),
  /** Typedefs declared last-first, each naming the one declared after it. */
  typedefChain: (n: number) => [...Array.from({ length: n - 1 }, (_, i) => `typedef t${n - 2 - i} t${n - 1 - i};`), "typedef int t0;"].join("\n"),
  union: (arms: number) =>
    ["union u switch (int d) {", ...Array.from({ length: arms }, (_, i) => `  case ${i}: int a${i};`), "  default: void;", "};"].join("\n"),
  /** Fixed-size structs, each holding the one before: once inlined whole into every codec. */
  nestedStructs: (depth: number) =>
    ["struct s0 { int x; };", ...Array.from({ length: depth - 1 }, (_, i) => `struct s${i + 1} { s${i} inner; int x${i + 1}; };`)].join("\n"),
  /** Each holding two of the one before: 2^depth scalars if inlined. */
  doublingStructs: (depth: number) =>
    ["struct s0 { int x; };", ...Array.from({ length: depth - 1 }, (_, i) => `struct s${i + 1} { s${i} a; s${i} b; };`)].join("\n"),
  /** Every kind of definition in turn: constants, enums, structs, unions, typedefs, programs. */
  mixed: (n: number) =>
    Array.from({ length: Math.ceil(n / 6) }, (_, i) =>
      [
        `const K${i} = ${i + 1};`,
        `enum e${i} { E${i}_A = ${i}, E${i}_B };`,
        `struct st${i} { int a; e${i} b; string s<K${i}>; st${i} *next; };`,
        `union un${i} switch (e${i} d) { case E${i}_A: st${i} x; default: void; };`,
        `typedef un${i} ty${i}<>;`,
        `program P${i} { version V${i} { ty${i} PROC${i}(st${i}) = 1; } = 1; } = ${0x20000000 + i};`,
      ].join("\n"),
    ).join("\n"),
  doublingMacro: (n: number) =>
    ["#define A0 x", ...Array.from({ length: n }, (_, i) => `#define A${i + 1} A${i} A${i}`), "", `typedef int t<A${n}>;`].join("\n"),
};

/** What a run may cost at most: a liveness bound and a memory bound, not a speed assertion. */
function expectBounded(run: Run, rssMiB: number): void {
  expect(run.stderr).not.toContain("internal error");
  expect(run.stderr).not.toContain("Maximum call stack");
  expect(run.rssMiB).toBeLessThan(rssMiB);
}

describe("large inputs compile, in time and memory linear in their size", () => {
  it("10^5 constants are generated (emission once overflowed the stack)", async () => {
    const full = await rpcgen("constants.x", inputs.constants(100_000), [], 90_000);
    expect(full.stderr).toBe("");
    expect(full.status).toBe(0);
    expectBounded(full, 1536);
    const out = readFileSync(join(work, "constants", "out", "constants.ts"), "utf8");
    expect(out).toContain("export const C0 = 0;");
    expect(out).toContain("export const C99999 = 99999;");
  }, 120_000);

  it("a 10^4-arm union is generated (prettier alone once took 1.8 GB for it)", async () => {
    const run = await rpcgen("union.x", inputs.union(10_000), [], 60_000);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expectBounded(run, 1024);
    const out = readFileSync(join(work, "union", "out", "union.ts"), "utf8");
    expect(out).toContain("case 9999:");
  }, 90_000);

  it(`a declaration printed longer than ${maxFormattedLength / 1024} KiB is laid out without prettier, and type-checks`, async () => {
    const run = await rpcgen("union-tsc.x", inputs.union(2_500), ["--mode", "descriptor"], 60_000);
    expect(run.status).toBe(0);
    const dir = join(work, "union-tsc", "out");
    const out = readFileSync(join(dir, "union-tsc.ts"), "utf8");
    // Indented by brackets: prettier would have put the brace on the line of the case.
    expect(out).toMatch(/\n {6}case 2499:\n {6}\{\n {8}const \$a2499 = /);
    await typeCheck(dir, ["union-tsc.ts"]);
  }, 90_000);

  it(`structs nested 200 deep are generated: past ${maxInlineDepth} levels a codec calls the nested one's codec`, async () => {
    const run = await rpcgen("nested.x", inputs.nestedStructs(200), [], 60_000);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expectBounded(run, 1024);
    const out = readFileSync(join(work, "nested", "out", "nested.ts"), "utf8");
    // s199 inlines what lies within the depth bound and calls the codec of the struct beyond it.
    const s199 = out.slice(out.indexOf("export const s199Codec"));
    expect(s199).toContain(`s${199 - maxInlineDepth}Codec.encode(`);
    // The whole module grows linearly: a few kilobytes per struct, not the megabytes of a cubic blow-up.
    expect(out.length).toBeLessThan(200 * 16_384);
  }, 90_000);

  it("structs that each hold two of the one before, 200 deep, are generated (2^200 scalars if inlined)", async () => {
    const run = await rpcgen("doubling.x", inputs.doublingStructs(200), ["--mode", "descriptor"], 60_000);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expectBounded(run, 1024);
  }, 90_000);

  it("3,000 mixed definitions are generated; 10^5 are checked", async () => {
    const run = await rpcgen("mixed-gen.x", inputs.mixed(3_000), [], 60_000);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expectBounded(run, 1024);
    const check = await rpcgen("mixed.x", inputs.mixed(100_000), ["--check"], 30_000);
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
    expectBounded(check, 1024);
  }, 180_000);

  it("a chain of 5 * 10^4 constants, declared last-first, is evaluated without recursion", async () => {
    const run = await rpcgen("chain.x", inputs.constantChain(50_000), ["--check"], 30_000);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expectBounded(run, 1024);
  }, 60_000);

  it("a chain of 10^5 typedefs, declared last-first, has its sizes and plan without recursion", () => {
    const { model, layout } = frontEnd({ path: "t.x", text: inputs.typedefChain(100_000) });
    const last = model!.types.get("t99999")!;
    expect(layout!.sizeOfNamed(last)).toEqual({ min: 4, max: 4 });
    expect(layout!.isRecursive(last)).toBe(false);
    // A renaming typedef adds no code: the plan is the int at the end of the chain.
    const plan = layout!.planOfNamed(last);
    expect(plan.steps).toEqual([{ kind: "run", size: 4, items: [{ offset: 0, path: [], scalar: expect.objectContaining({ kind: "int", cname: "int" }) }] }]);
  });

  it("a cycle of 5 * 10^4 constants is one error whose message is cut, not 5 * 10^4 names long", async () => {
    const run = await rpcgen("cycle.x", inputs.constantCycle(50_000), ["--check"], 30_000);
    expect(run.status).toBe(1);
    expectBounded(run, 1024);
    const [first] = run.stderr.split("\n");
    expect(first).toMatch(/^cycle\.x:1:7: error: constant 'C0' is defined in terms of itself \(C0 -> C1 -> .*…/);
    expect(first!.length).toBeLessThan(maxMessage + 100);
    expect(run.stderr).toMatch(/\n1 error in cycle\.x\n$/);
  }, 60_000);
});

describe("what the bounds on inlining generate is still exact", () => {
  it(`structs nested past ${maxInlineDepth} levels and a run of 600 scalars round-trip in every mode`, async () => {
    // A fixed path: generated modules are kept under .tmp/gen by a hash of it.
    const dir = join(repoRoot, ".tmp", "compiler-limits-shapes");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "shapes.x");
    const wide = Array.from({ length: 600 }, (_, i) => `  int f${i};`).join("\n");
    writeFileSync(file, `${inputs.nestedStructs(20)}\nstruct wide {\n${wide}\n  s19 deep;\n};\n`);
    try {
      const modules = await generateAllModes([file]);
      const nested = (depth: number): Record<string, unknown> =>
        depth === 0 ? { x: -7 } : { inner: nested(depth - 1), [`x${depth}`]: depth * 1000 + 1 };
      const value: Record<string, unknown> = { deep: nested(19) };
      for (let i = 0; i < 600; i++) value[`f${i}`] = i % 2 === 0 ? i : -i;
      const bytes = toXdr(codecOf(modules.classic.get("shapes")!, "wide"), value);
      expect(bytes.length).toBe(600 * 4 + 20 * 4);
      for (const mode of ["classic", "synthesized", "descriptor"] as const) {
        const codec = codecOf(modules[mode].get("shapes")!, "wide");
        expect(Buffer.from(toXdr(codec, value)).equals(Buffer.from(bytes)), mode).toBe(true);
        expect(fromXdr(codec, bytes), mode).toEqual(value);
      }
      // Deep in the nesting, a bad value is still reported with its whole path.
      const bad = structuredClone(value);
      let at = bad.deep as Record<string, unknown>;
      for (let d = 19; d > 1; d--) at = at.inner as Record<string, unknown>;
      (at.inner as Record<string, unknown>).x = 1.5;
      expect(() => toXdr(codecOf(modules.synthesized.get("shapes")!, "wide"), bad)).toThrow(`deep${".inner".repeat(19)}.x`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("the preprocessor's bounds", () => {
  it("a #define that doubles itself 40 times fails at its use, at once", async () => {
    const run = await rpcgen("doubling-macro.x", inputs.doublingMacro(40), ["--check"], 20_000);
    expect(run.status).toBe(1);
    expectBounded(run, 512);
    expect(run.stderr).toBe(
      `doubling-macro.x:43:15: error: macro 'A40' takes more than ${expansionLimits.steps} macro replacements to expand\n` +
        "typedef int t<A40>;\n" +
        "              ^\n" +
        "1 error in doubling-macro.x\n",
    );
  }, 30_000);

  it("one that doubles 12 times is within the bounds and works", () => {
    const bag = new DiagnosticBag();
    const pp = preprocess({ path: "t.x", text: inputs.doublingMacro(12) }, bag);
    expect(bag.items).toEqual([]);
    expect(pp.text.match(/\bx\b/g)).toHaveLength(4096);
  });

  it("a macro whose value grows past the length bound is refused with the place of its use", () => {
    const bag = new DiagnosticBag();
    const words = "w ".repeat(expansionLimits.length / 2 + 1);
    preprocess({ path: "t.x", text: `#define BIG ${words}\nconst A = 1;\n  const B = BIG;` }, bag);
    expect(bag.items.map((d) => `${d.span?.line}:${d.span?.col}: ${d.message}`)).toEqual([
      `3:13: macro 'BIG' expands to more than ${expansionLimits.length} characters`,
    ]);
  });

  it("macros nested past the depth bound are refused; self-reference ends", () => {
    const depth = expansionLimits.depth + 1;
    const chain = Array.from({ length: depth }, (_, i) => `#define M${i} M${i + 1}`).join("\n");
    const bag = new DiagnosticBag();
    preprocess({ path: "t.x", text: `${chain}\nconst A = M0;` }, bag);
    expect(bag.items.map((d) => d.message)).toEqual([`macro 'M0' expands macros nested more than ${expansionLimits.depth} deep`]);

    const self = new DiagnosticBag();
    const pp = preprocess({ path: "t.x", text: "#define X X Y\n#define Y X\nconst Z = X;" }, self);
    expect(self.items).toEqual([]);
    expect(pp.text.split("\n")[2]).toBe("const Z = X X;");
  });

  it("a macro used many times is expanded once: 1,000 uses of one that takes 8,190 replacements are within the file's bound", () => {
    // Expanded afresh at each use, this would be 8.19 * 10^6 replacements, past the file's bound.
    expect(1000 * 8190).toBeGreaterThan(expansionLimits.totalSteps);
    const defines = inputs.doublingMacro(12).split("\n").slice(0, -1).join("\n");
    const bag = new DiagnosticBag();
    const pp = preprocess({ path: "t.x", text: `${defines}\n${"A12 ".repeat(1000)}` }, bag);
    expect(bag.items).toEqual([]);
    expect(pp.text.match(/\bx\b/g)).toHaveLength(1000 * 4096);
  });

  it("a line using an expensive macro 10^5 times ends, refused by the file's growth bound", async () => {
    // 2^15 words per use, within the per-use bounds; expanded, the line would be 6.5 GB.
    const text = `${inputs.doublingMacro(15).split("\n").slice(0, -1).join("\n")}\n#if ${"A15 == A15 && ".repeat(50_000)}0\n#endif\nconst A = 1;`;
    const run = await rpcgen("reuse.x", text, ["--check"], 20_000);
    expect(run.status).toBe(1);
    // Expanded in full, the line would be 10^5 * 2^16 characters: the file-wide growth bound refuses it first.
    expect(run.stderr).toContain(`macro expansion makes the file more than ${expansionLimits.totalGrowth} characters longer`);
    expectBounded(run, 512);
  }, 30_000);

  it("a 1 MB line of comments and a directive continued over 3 * 10^5 lines are read in linear time", async () => {
    const comments = await rpcgen("comments.x", `${"/* */ ".repeat(170_000)}\nconst A = 1;\n`, ["--check"], 20_000);
    expect(comments.stderr).toBe("");
    expect(comments.status).toBe(0);
    const continued = await rpcgen("continued.x", `#define SUM 1 \\\n${"+ 1 \\\n".repeat(300_000)}\nconst A = 1;\n`, ["--check"], 20_000);
    expect(continued.stderr).toBe("");
    expect(continued.status).toBe(0);
    expectBounded(continued, 512);
  }, 60_000);

  it("a line of 10^5 macro uses maps every token back to its column in linear time", async () => {
    const uses = Array.from({ length: 100_000 }, (_, i) => `const A${i} = N;`).join(" ");
    const run = await rpcgen("uses.x", `#define N 1\n${uses} const B = ;\n`, ["--check"], 20_000);
    expect(run.status).toBe(1);
    // The column is the source's, past every expansion before it.
    expect(run.stderr.split("\n")[0]).toBe(`uses.x:2:${uses.length + 12}: error: expected a number, a constant name or a string but found ';'`);
    expectBounded(run, 512);
  }, 60_000);

  it(`#if refuses nesting past ${maxExpressionDepth} and numbers past 256 bits, without a stack overflow`, () => {
    expect(evaluateExpression(`${"(".repeat(maxExpressionDepth - 1)}1${")".repeat(maxExpressionDepth - 1)}`)).toBe(1n);
    expect(() => evaluateExpression(`${"(".repeat(100_000)}1${")".repeat(100_000)}`)).toThrow(`nested more than ${maxExpressionDepth} deep`);
    expect(() => evaluateExpression(`${"!".repeat(100_000)}1`)).toThrow(`nested more than ${maxExpressionDepth} deep`);
    expect(() => evaluateExpression("1 << 100000000")).toThrow("shift by 100000000 bits");
    expect(() => evaluateExpression(`${"9".repeat(100_000)}`)).toThrow("does not fit in 256 bits");
    expect(() => evaluateExpression("(1 << 200) * (1 << 200)")).toThrow("does not fit in 256 bits");
  });

  it("an error inside 1 MB of parentheses in #if shows a window of the line and a short message", async () => {
    const text = `#if ${"(".repeat(500_000)}1 +${")".repeat(500_000)}\n#endif\nconst A = 1;\n`;
    const run = await rpcgen("parens.x", text, ["--check"], 20_000);
    expect(run.status).toBe(1);
    expectBounded(run, 512);
    const lines = run.stderr.split("\n");
    expect(lines[0]).toMatch(/^parens\.x:1:1: error: bad #if expression '\(+…\)+': parentheses or unary operators nested more than 256 deep$/);
    expect(run.stderr.length).toBeLessThan(2 * (maxMessage + maxShownLine) + 100);
  }, 30_000);
});

describe("sources that never end", () => {
  it("an #include of /dev/zero and /dev/zero itself are refused as not regular files, not read for ever", async () => {
    const include = await rpcgen("zero.x", `#include "/dev/zero"\nconst A = 1;\n`, ["--check"], 20_000);
    expect(include.status).toBe(1);
    expect(include.stderr.split("\n")[0]).toBe("zero.x:1:1: error: cannot read include file '/dev/zero': it is not a regular file");
    const main = await rpcgen("main.x", "", ["/dev/zero", "--check"], 20_000);
    expect(main.status).toBe(1);
    expect(main.stderr).toContain("rpcgen: error: cannot read '/dev/zero': it is not a regular file\n");
  }, 60_000);
});

describe("error excerpts are cut to a line's width", () => {
  const format = (text: string, col: number) => formatDiagnostic({ span: { file: { path: "t.x", text }, line: 1, col }, message: "boom" });

  it("a 1 MB line shows a window around the column with the caret under it", () => {
    const text = `${"a".repeat(500_000)}@${"b".repeat(500_000)}`;
    const [, shown, caret] = format(text, 500_001).split("\n");
    expect(shown!.length).toBeLessThanOrEqual(maxShownLine + 2);
    expect(shown!.startsWith("…") && shown!.endsWith("…")).toBe(true);
    expect(shown![caret!.indexOf("^")]).toBe("@");
  });

  it("near either end of a long line the window is cut on one side only; tabs keep the caret in place", () => {
    const text = `\t@${"x".repeat(10_000)}#`;
    const [, start, startCaret] = format(text, 2).split("\n");
    expect(start!.startsWith("\t@")).toBe(true);
    expect(start!.endsWith("…")).toBe(true);
    expect(startCaret).toBe("\t^");
    const [, end, endCaret] = format(text, text.length).split("\n");
    expect(end!.startsWith("…")).toBe(true);
    expect(end![endCaret!.indexOf("^")]).toBe("#");
  });

  it("a window never splits a character outside the Basic Multilingual Plane", () => {
    // The window would start at an odd offset: inside the pair of a character.
    const text = `${"😀".repeat(200)}@@`;
    const [, shown] = format(text, text.length).split("\n");
    expect(shown).not.toMatch(/^…[\udc00-\udfff]/);
  });

  it("a message quoting a megabyte-long name is cut, within its bound", async () => {
    const run = await rpcgen("name.x", `struct s { ${"x".repeat(1_000_000)} f; };\n`, ["--check"], 20_000);
    expect(run.status).toBe(1);
    expectBounded(run, 512);
    const [head] = run.stderr.split("\n");
    expect(head).toMatch(/^name\.x:1:12: error: undefined type 'x+…x+'$/);
    expect(run.stderr.length).toBeLessThan(2 * (maxMessage + maxShownLine) + 100);
  }, 30_000);
});
