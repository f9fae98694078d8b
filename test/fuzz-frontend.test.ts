import { execFile } from "node:child_process";
import fc from "fast-check";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { frontEnd, type FrontEndResult } from "../compiler/compile.js";
import { formatDiagnostic } from "../compiler/diagnostics.js";
import { emitModule } from "../compiler/emit/module.js";
import { corpusFiles } from "./generated.js";
import { describeThrown, fuzz, summary } from "./fuzz/seed.js";
import { repoRoot, tempDir, removeDir } from "./support.js";

/**
 * Fuzzing the `.x` front end: token soup and mutations of the corpus (the
 * system's `.x` files, idl/ and the test fixtures) through preprocessing, parsing and
 * checking, in this process. Whatever the text, the front end either compiles it or returns
 * diagnostics that read `file:line:col: error: message` at a position inside the file,
 * short enough to read — it never throws and never hangs (each input runs under a time bound
 * that interrupts it, so a hang fails with its input instead of stalling the suite). What
 * compiles is also emitted, which must not throw either.
 */

/** Longest a single input may take: far above the slowest corpus file. */
const perInputMs = 3000;
/** A formatted diagnostic longer than this echoes too much of the input. */
const maxDiagnosticChars = 2048;

afterAll(() => {
  if (process.env.FUZZ_VERBOSE === "1") console.log(`fuzz-frontend: ${summary()}`);
});

/** Where fuzzed inputs "live": includes of relative names resolve below it, to nothing. */
let work: string;
beforeAll(() => {
  work = tempDir("fuzz-frontend");
});
afterAll(() => removeDir(work));

/**
 * Runs the front end on `text` under a time bound that interrupts it (V8 terminates the
 * running script after `perInputMs`, whatever it calls). Throws if it threw or took too long.
 */
function runFrontEnd(path: string, text: string): FrontEndResult {
  let result: FrontEndResult | undefined;
  let thrown: unknown;
  const run = () => {
    try {
      result = frontEnd({ path, text });
    } catch (e) {
      thrown = e;
    }
  };
  try {
    runInNewContext("run()", { run }, { timeout: perInputMs });
  } catch (e) {
    throw new Error(`the front end did not finish within ${perInputMs} ms (${describeThrown(e)}) on ${JSON.stringify(text.slice(0, 2000))}`);
  }
  if (thrown !== undefined) throw new Error(`the front end threw ${describeThrown(thrown)} on ${JSON.stringify(text.slice(0, 2000))}\n${(thrown as Error).stack ?? ""}`);
  return result!;
}

const lineCount = (text: string) => text.split(/\r?\n/).length;

/** The oracle: a model, or diagnostics each placed inside a file the input reached, and readable. */
function checkResult(path: string, text: string, result: FrontEndResult): void {
  if (result.model !== undefined) {
    expect(result.diagnostics, "a compiled input has no errors").toEqual([]);
    expect(result.layout).toBeDefined();
    return;
  }
  expect(result.diagnostics.length, `an input that does not compile says why: ${JSON.stringify(text.slice(0, 500))}`).toBeGreaterThan(0);
  for (const d of result.diagnostics) {
    const formatted = formatDiagnostic(d);
    const where = `${formatted.slice(0, 300)}\n  for ${JSON.stringify(text.slice(0, 500))}`;
    expect(d.span, `every diagnostic has a position: ${where}`).toBeDefined();
    const { file, line, col } = d.span!;
    expect(formatted.startsWith(`${file.path}:${line}:${col}: error: `), where).toBe(true);
    expect(Number.isInteger(line) && line >= 1 && line <= lineCount(file.text), `line ${line} inside ${file.path}: ${where}`).toBe(true);
    const lineText = file.text.split(/\r?\n/)[line - 1] ?? "";
    expect(Number.isInteger(col) && col >= 1 && col <= lineText.length + 1, `column ${col} inside line ${line}: ${where}`).toBe(true);
    if (file.path === path) expect(file.text).toBe(text);
    expect(formatted.length, `diagnostic of ${formatted.length} characters: ${where}`).toBeLessThanOrEqual(maxDiagnosticChars);
  }
}

// ---- inputs -------------------------------------------------------------------------------

const keywords = [
  "const", "enum", "struct", "union", "switch", "case", "default", "typedef", "program", "version",
  "void", "unsigned", "int", "hyper", "float", "double", "quadruple", "bool", "string", "opaque",
  "char", "short", "long", "u_int", "u_long", "bool_t", "int32_t", "uint64_t", "netobj", "netbuf",
  "des_block", "rpcprog_t", "TRUE", "FALSE",
];
/** Names an IDL may use that JavaScript, TypeScript or the emitter care about. */
const hostileNames = [
  "__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "Set", "Map", "BigInt", "Promise",
  "Object", "Array", "Uint8Array", "number", "string_", "any", "never", "await", "yield", "let", "then",
  "exports", "require", "default_", "xCodec", "V1", "RPC_CALL", "GET_X", "GET__X", "r", "w", "v", "v2", "$v2",
];
const punctuation = ["{", "}", "(", ")", "[", "]", "<", ">", ";", ",", "=", "*", ":", "-", "+", "/", "%", "\\", "#", "&", "|", "!", "?", ".", "'"];
const numbers = ["0", "1", "-1", "2", "007", "08", "0x", "0x1f", "0XFFFFFFFF", "4294967296", "2147483647", "-2147483648", "99999999999999999999", "1e3", "0b1", "1.5"];
const directives = [
  "#define A 1", "#define A B", "#define B A", "#define", "#define 1", "#define F(x) x", "#undef A", "#ifdef A", "#ifndef A",
  "#if A", "#if 1", "#if 0", "#if (1", "#if 1/0", "#if defined(A) && !defined B", "#if 2147483647 * 2147483647", "#elif 1",
  "#else", "#endif", "#error boom", "#warning hm", "#pragma x", "#line 3", "#", "#include", "#include \"missing.x\"",
  "#include <rpcsvc/sm_inter.x>", "#include <nonexistent/x.x>", "%#include \"nis.h\"", "%#define X 3", "%extern int x;", "%",
];
// A lone CR is left out here: it has a test of its own below (a known fault would hide the rest).
const oddities = ["/*", "*/", "/* comment */", "//", "\"unterminated", "\"str\"", "\"\"", "\t", "\r\n", "\f", "\v", "\u0000", "\u007f", "\u00e9", "\u2028", "\ud83d\ude00", "\ud800", "\ufeff", "\\\n"];

const identifier = fc.oneof(
  fc.constantFrom(...hostileNames),
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/),
);

const token: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...keywords), weight: 6 },
  { arbitrary: identifier, weight: 5 },
  { arbitrary: fc.constantFrom(...punctuation), weight: 6 },
  { arbitrary: fc.oneof(fc.constantFrom(...numbers), fc.integer().map(String)), weight: 2 },
  { arbitrary: fc.constantFrom(...directives).map((d) => `\n${d}\n`), weight: 1 },
  { arbitrary: fc.constantFrom(...oddities), weight: 1 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 3 }).map((t) => t.replace(/\r(?!\n)/g, " ")), weight: 1 },
);

const separator = fc.constantFrom(" ", " ", " ", "\n", "\t", "");

/** Token soup: tokens of the language (and some that are not) in random order. */
const soup: fc.Arbitrary<string> = fc
  .array(fc.tuple(token, separator), { maxLength: 120 })
  .map((ts) => ts.map(([t, s]) => t + s).join(""));

/** Fragments that make a soup look like definitions, so the parser gets further in. */
const skeleton: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      fc.tuple(identifier, soup).map(([n, body]) => `struct ${n} { ${body} };\n`),
      fc.tuple(identifier, soup).map(([n, body]) => `union ${n} switch (int d) { case 1: ${body} default: void; };\n`),
      fc.tuple(identifier, soup).map(([n, body]) => `enum ${n} { ${body} };\n`),
      fc.tuple(identifier, fc.oneof(soup, fc.constantFrom(...numbers))).map(([n, v]) => `const ${n} = ${v};\n`),
      fc.tuple(identifier, soup).map(([n, body]) => `typedef ${body} ${n};\n`),
      fc.tuple(identifier, identifier, soup).map(([p, v, body]) => `program ${p} { version ${v} { ${body} } = 1; } = 0x20000001;\n`),
      soup,
    ),
    { maxLength: 6 },
  )
  .map((parts) => parts.join(""));

/** A line long enough that echoing it whole would flood a terminal. */
const longLine: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom("#if ", "#define L ", "const X = ", "struct s { int ", "union u switch (int d) { case ", "%", "typedef int ", "enum e { A = "),
    token,
    fc.integer({ min: 500, max: 4000 }),
    fc.constantFrom("(", ")", "x", "1 + ", "-", "!", "a", "\"", " ", "{", "[1]", "*", "<", "struct s ", "case 1: "),
  )
  .map(([head, t, n, unit]) => `${head}${t}${unit.repeat(n)}\n`);

/**
 * Growth bombs: macros that expand to several copies of the previous one, and nesting as
 * deep as a line allows. Each must finish (compile, or a diagnostic) within the time bound.
 */
const bomb: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom("const A = M", "#if M", "typedef int t[M];\nconst A = M"))
    .map(([depth, fan, use]) => {
      const lines = ["#define M0 1"];
      for (let i = 1; i <= depth; i++) lines.push(`#define M${i} ${Array.from({ length: fan }, () => `M${i - 1}`).join(" + ")}`);
      const last = `M${depth}`;
      return `${lines.join("\n")}\n${use.replaceAll("M", last)}${use.startsWith("#if") ? "\nconst B = 1;\n#endif" : ";"}\n`;
    }),
  fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.constantFrom(["(", ")"], ["-", ""], ["!", ""], ["~", ""])).map(([n, [open, close]]) => `#if ${open!.repeat(n)}1${close!.repeat(n)}\nconst A = 1;\n#endif\n`),
  fc.integer({ min: 1, max: 3000 }).map((n) => `#ifdef A\n`.repeat(n) + "const B = 1;\n" + `#endif\n`.repeat(n)),
  fc.integer({ min: 1, max: 3000 }).map((n) => `struct s { ${"int a; ".repeat(n)}};\n`),
  fc.integer({ min: 1, max: 2000 }).map((n) => Array.from({ length: n }, (_, i) => `typedef t${i} t${i + 1};`).join("\n") + "\ntypedef int t0;\n"),
);

type TextEdit =
  | { readonly kind: "delete" | "duplicate"; readonly at: number; readonly length: number }
  | { readonly kind: "insert"; readonly at: number; readonly text: string }
  | { readonly kind: "replace"; readonly at: number; readonly text: string }
  | { readonly kind: "swap-lines"; readonly at: number; readonly other: number }
  | { readonly kind: "truncate"; readonly at: number };

const fraction = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const textEdit: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({ kind: fc.constantFrom("delete" as const, "duplicate" as const), at: fraction, length: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fraction, text: fc.oneof(token, soup) }),
  fc.record({ kind: fc.constant("replace" as const), at: fraction, text: token }),
  fc.record({ kind: fc.constant("swap-lines" as const), at: fraction, other: fraction }),
  fc.record({ kind: fc.constant("truncate" as const), at: fraction }),
);

function edit(text: string, e: TextEdit): string {
  const at = Math.floor(e.at * (text.length + 1));
  switch (e.kind) {
    case "delete":
      return text.slice(0, at) + text.slice(at + e.length);
    case "duplicate":
      return text.slice(0, at) + text.slice(at, at + e.length) + text.slice(at);
    case "insert":
      return text.slice(0, at) + e.text + text.slice(at);
    case "replace": {
      // A whole word (or one character) at the position becomes the token.
      const word = /^[A-Za-z0-9_]+/.exec(text.slice(at))?.[0].length ?? 1;
      return text.slice(0, at) + e.text + text.slice(at + word);
    }
    case "swap-lines": {
      const lines = text.split("\n");
      const i = Math.floor(e.at * lines.length);
      const j = Math.floor(e.other * lines.length);
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join("\n");
    }
    case "truncate":
      return text.slice(0, at);
  }
}

// ---- properties ---------------------------------------------------------------------------

describe("the .x front end under fuzzing", () => {
  const files = corpusFiles();
  const texts = files.map((f) => readFileSync(f, "utf8"));

  it("the corpus itself compiles (the starting point of the mutations)", () => {
    for (const [i, f] of files.entries()) {
      // Files of the corpus that include their siblings are read where they are.
      const result = runFrontEnd(f, texts[i]!);
      expect(result.diagnostics.map(formatDiagnostic), f).toEqual([]);
    }
  });

  it("token soup: compiles or gives file:line:col diagnostics, never throws or hangs", () => {
    const path = join(work, "soup.x");
    fuzz(
      "token soup",
      fc.property(fc.oneof(soup, skeleton), (text) => checkResult(path, text, runFrontEnd(path, text))),
      { numRuns: 1500, timeMs: 6000 },
    );
  });

  it("long lines: diagnostics show a line's width of them, not all of it", () => {
    const path = join(work, "long.x");
    fuzz(
      "long lines",
      fc.property(fc.tuple(skeleton, longLine, skeleton), ([a, line, b]) => {
        const text = a + line + b;
        checkResult(path, text, runFrontEnd(path, text));
      }),
      { numRuns: 150, timeMs: 3000 },
    );
  });

  it("growth bombs: macro chains and deep nesting finish with a model or a diagnostic", () => {
    const path = join(work, "bomb.x");
    fuzz(
      "growth bombs",
      fc.property(bomb, (text) => checkResult(path, text, runFrontEnd(path, text))),
      { numRuns: 150, timeMs: 6000 },
    );
  });

  it("mutated corpus files: compile or give file:line:col diagnostics, never throw or hang", () => {
    const input = fc.tuple(fc.integer({ min: 0, max: files.length - 1 }), fc.array(textEdit, { minLength: 1, maxLength: 5 }));
    fuzz(
      "corpus mutations",
      fc.property(input, ([i, edits]) => {
        // Same directory and name, so that the file's own includes still resolve.
        const path = files[i]!;
        const text = edits.reduce(edit, texts[i]!);
        checkResult(path, text, runFrontEnd(path, text));
      }),
      { numRuns: 600, timeMs: 9000 },
    );
  });

  it("a lone CR: diagnostics point into the file as its lines are shown", () => {
    // The lexer counts a lone CR as a line break; the excerpt must count lines the same way.
    const path = join(work, "cr.x");
    for (const text of ["struct a { \r  };\n", "const A = 1;\rconst B = ;\n", "enum e {\r A = 1,\r };\n"]) {
      checkResult(path, text, runFrontEnd(path, text));
    }
  });

  it("what compiles after mutation is emitted without an exception", async () => {
    // Emission is far slower than checking: a few compiling mutants per run.
    const input = fc.tuple(fc.integer({ min: 0, max: files.length - 1 }), fc.array(textEdit, { minLength: 1, maxLength: 3 }));
    const compiling = fc
      .sample(input, { numRuns: 300, seed: 7 })
      .map(([i, edits]) => ({ path: files[i]!, text: edits.reduce(edit, texts[i]!) }))
      .filter(({ path, text }) => runFrontEnd(path, text).model !== undefined)
      .slice(0, 6);
    expect(compiling.length).toBeGreaterThan(0);
    for (const { path, text } of compiling) {
      const r = runFrontEnd(path, text);
      const emitted = await emitModule(r.model!, r.layout!, { mode: "synthesized", sourcePath: path, command: "fuzz" });
      expect(emitted, text.slice(0, 300)).toMatch(/^\/\/ @generated by rpcgen-ts/);
    }
  }, 60_000);
});

const exec = promisify(execFile);

describe("hostile includes", () => {
  it("an #include that reaches a device that never ends is refused, not read for ever", async () => {
    // Run as users run it, in a child process with a time bound: in this process an unbounded read would take the suite down.
    const dir = join(repoRoot, ".tmp", "fuzz-include");
    mkdirSync(dir, { recursive: true });
    const x = join(dir, "dev.x");
    writeFileSync(x, `#include "${"../".repeat(30)}dev/zero"\nconst A = 1;\n`);
    const started = Date.now();
    const outcome = await exec(process.execPath, ["--max-old-space-size=256", join(repoRoot, "compiler/dist/bin.js"), x, "--check"], { timeout: 5_000, killSignal: "SIGKILL" }).then(
      () => ({ status: 0, stderr: "", killed: false }),
      (e: { code?: number; stderr?: string; killed?: boolean }) => ({ status: e.code ?? -1, stderr: e.stderr ?? "", killed: e.killed === true }),
    );
    rmSync(dir, { recursive: true, force: true });
    expect(outcome.killed, `rpcgen was still reading /dev/zero after ${Date.now() - started} ms`).toBe(false);
    expect(outcome.status).toBe(1);
    expect(outcome.stderr).toMatch(/dev\.x:1:1: error: /);
  }, 20_000);
});
