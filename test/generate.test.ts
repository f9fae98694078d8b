import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate, modes } from "../compiler/compile.js";
import { XdrReader, XdrWriter, type XdrCodec } from "../runtime/index.js";
import { removeDir, repoRoot, runCli, tempDir, typeCheck } from "./support.js";

/**
 * The compile API the command, the tests, the benchmark and the demo share: what goes in
 * (files or text, mode, defines, include directories, runtime module) shows in what comes out,
 * and bad input comes back as the diagnostics the command prints, never as an exception.
 */

const service = `const N = 3;
struct pair { int a; string name<16>; };
program P { version V { pair SWAP(pair) = 1; } = 1; } = 0x20000001;
`;

let dir: string;
beforeAll(() => {
  dir = tempDir("generate");
});
afterAll(() => removeDir(dir));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("generate", () => {
  it("compiles text, naming the module after path with its extension replaced", async () => {
    const { outputs, diagnostics } = await generate({ text: service, path: "svc.idl" });
    expect(diagnostics).toEqual([]);
    expect(outputs.map((o) => [o.source, o.path])).toEqual([["svc.idl", "svc.ts"]]);
    const text = outputs[0]!.text;
    expect(text).toContain("from svc.idl; do not edit.");
    expect(text).toContain("// Command: rpcgen svc.idl --mode synthesized\n");
    expect(text).toContain('from "@rpcgen-ts/runtime"');
    expect(text).toMatch(/export const N = 3;/);
    expect(text).toMatch(/export const pairCodec\b/);
  });

  it("gives the module of each file: #include splices, %#include of a header imports its module; the modules run", async () => {
    write("limits.x", "const LIMIT = 16;\n");
    const types = write("types.x", "struct pair { int a; string name<16>; };\n");
    const svc = write(
      "svc.x",
      '#include "limits.x"\n%#include "types.h"\nconst MAX = LIMIT;\nprogram P { version V { pair SWAP(pair) = 1; } = 1; } = 0x20000001;\n',
    );
    const { outputs, diagnostics } = await generate({ files: [types, svc] });
    expect(diagnostics).toEqual([]);
    expect(outputs.map((o) => [o.source, o.path])).toEqual([
      [types, "types.ts"],
      [svc, "svc.ts"],
    ]);
    const [typesModule, svcModule] = outputs.map((o) => o.text);
    expect(svcModule).toMatch(/import \{[^}]*\bpairCodec\b[^}]*\} from "\.\/types\.js"/);
    expect(svcModule).not.toMatch(/export const pairCodec\b/);
    expect(svcModule).toMatch(/export const MAX = 16;/);
    expect(typesModule).toMatch(/export const pairCodec\b/);

    // Below the repository, so that the modules' @rpcgen-ts/runtime import resolves to this checkout.
    mkdirSync(join(repoRoot, ".tmp"), { recursive: true });
    const out = mkdtempSync(join(repoRoot, ".tmp", "generate-"));
    try {
      for (const o of outputs) writeFileSync(join(out, o.path), o.text);
      const loaded = (await import(join(out, "types.ts"))) as { pairCodec: XdrCodec<{ a: number; name: string }> };
      const svcLoaded = (await import(join(out, "svc.ts"))) as { MAX: number };
      expect(svcLoaded.MAX).toBe(16);
      const w = new XdrWriter();
      loaded.pairCodec.encode(w, { a: -7, name: "hi" });
      const bytes = w.bytes();
      expect([...bytes]).toEqual([0xff, 0xff, 0xff, 0xf9, 0, 0, 0, 2, 0x68, 0x69, 0, 0]);
      expect(loaded.pairCodec.decode(new XdrReader(bytes))).toEqual({ a: -7, name: "hi" });
    } finally {
      removeDir(out);
    }
  });

  it("returns bad input as the diagnostics the command prints, with no module for it and the others still generated", async () => {
    const good = write("good.x", service);
    const bad = write("bad.x", "struct s { int a }; \nconst K = nope;\n");
    const missing = join(dir, "missing.x");
    const { outputs, diagnostics } = await generate({ files: [good, bad, missing] });
    expect(outputs.map((o) => o.source)).toEqual([good]);
    expect(diagnostics.map((d) => [d.source, d.unreadable])).toEqual([
      [bad, false],
      [missing, true],
    ]);
    expect(diagnostics[0]!.diagnostics.length).toBeGreaterThan(0);
    expect(diagnostics[0]!.diagnostics[0]!.span?.file.path).toBe(bad);
    expect(diagnostics[0]!.text).toMatch(new RegExp(`^${bad}:1:\\d+: error: `));
    expect(diagnostics[1]!.text).toBe(`rpcgen: error: cannot read '${missing}': no such file\n`);

    const cli = await runCli([good, bad, missing, "--check"]);
    expect(cli.status).toBe(1);
    expect(cli.stderr).toBe(diagnostics.map((d) => d.text).join(""));
  });

  it("reports errors in text under its path", async () => {
    const { outputs, diagnostics } = await generate({ text: "typedef int;\n", path: "broken.x" });
    expect(outputs).toEqual([]);
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]!.text).toMatch(/^broken\.x:1:\d+: error: .*\n1 error in broken\.x\n$/s);
  });

  it("honours the mode: each says so in its header and generates different marshaling code", async () => {
    const texts = new Map<string, string>();
    for (const mode of modes) {
      const { outputs } = await generate({ text: service, path: "svc.x", mode });
      expect(outputs[0]!.text).toContain(`// Command: rpcgen svc.x --mode ${mode}\n`);
      texts.set(mode, outputs[0]!.text);
    }
    expect(new Set(texts.values()).size).toBe(modes.length);
  });

  it("honours runtimeModule, defines and check", async () => {
    const text = "#ifdef WIDE\nconst W = 64;\n#endif\nconst V = VALUE;\n";
    const a = await generate({ text, path: "d.x", runtimeModule: "../lib/index.js", defines: ["WIDE", "VALUE=5"] });
    expect(a.diagnostics).toEqual([]);
    const out = a.outputs[0]!.text;
    expect(out).toContain("// Command: rpcgen d.x --mode synthesized -DWIDE -DVALUE=5\n");
    expect(out).toMatch(/export const W = 64;/);
    expect(out).toMatch(/export const V = 5;/);

    const b = await generate({ text: service, path: "svc.x", runtimeModule: "../lib/index.js" });
    expect(b.outputs[0]!.text).toContain('from "../lib/index.js"');
    expect(b.outputs[0]!.text).not.toContain("@rpcgen-ts/runtime");

    const c = await generate({ text, path: "d.x", defines: { VALUE: "6" } });
    expect(c.outputs[0]!.text).not.toMatch(/const W\b/);
    expect(c.outputs[0]!.text).toMatch(/export const V = 6;/);

    const checked = await generate({ text, path: "d.x", defines: { VALUE: "6" }, check: true });
    expect(checked).toEqual({ outputs: [], diagnostics: [] });
    const undefinedValue = await generate({ text, path: "d.x", check: true });
    expect(undefinedValue.diagnostics).toHaveLength(1);
  });

  it("rejects bad options with a TypeError", async () => {
    await expect(generate({})).rejects.toThrow(TypeError);
    await expect(generate({ text: "", files: [] })).rejects.toThrow(/either files or text/);
    await expect(generate({ text: "", mode: "fast" as never })).rejects.toThrow(/unknown mode 'fast'/);
    await expect(generate({ text: "", defines: ["1X"] })).rejects.toThrow(/bad define '1X'/);
  });
});

describe("generated code in an application's type errors", () => {
  it("a missing handler is reported against the generated handlers interface, by name", async () => {
    const dir = tempDir("handlers");
    try {
      const { outputs } = await generate({ text: "program CALC { version CALC_V1 { int ADD(int, int) = 1; int NEG(int) = 2; } = 1; } = 0x20000123;", path: "calc.x" });
      writeFileSync(join(dir, "calc.ts"), outputs[0]!.text);
      writeFileSync(
        join(dir, "app.ts"),
        'import { createServer } from "@rpcgen-ts/runtime";\nimport { CalcV1 } from "./calc.js";\ncreateServer().register(CalcV1, { add: (a, b) => a + b });\n',
      );
      const error = await typeCheck(dir, ["calc.ts", "app.ts"]).then(
        () => undefined,
        (e: unknown) => (e as Error).message,
      );
      expect(error).toMatch(/app\.ts\(3,\d+\): error TS\d+/);
      expect(error).toMatch(/Property 'neg' is missing in type .* but required in type 'CalcV1Handlers'/);
      // With both handlers it type-checks, the parameters typed from the interface.
      writeFileSync(
        join(dir, "app.ts"),
        'import { createServer } from "@rpcgen-ts/runtime";\nimport { CalcV1 } from "./calc.js";\ncreateServer().register(CalcV1, { add: (a, b) => a + b, neg: (a) => -a });\n',
      );
      await typeCheck(dir, ["calc.ts", "app.ts"]);
    } finally {
      removeDir(dir);
    }
  });
});
