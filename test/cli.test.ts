import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { removeDir, repoRoot, runCli, tempDir } from "./support.js";

/** The `rpcgen` command: options, exit statuses, and what it writes where. */

const packageVersion = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;

const usageLine = "Usage: rpcgen FILE... [options]\n";

let dir: string;
beforeEach(() => {
  dir = tempDir("cli");
});
afterEach(() => removeDir(dir));

function write(name: string, text: string): void {
  mkdirSync(join(dir, name, ".."), { recursive: true });
  writeFileSync(join(dir, name), text);
}

const small = "const SIZE = 4;\nstruct point { int x; int y; };\n";

describe("usage", () => {
  it.each([["--help"], ["-h"]])("%s prints the usage and exits 0", async (flag) => {
    const run = await runCli([flag]);
    expect(run.status).toBe(0);
    expect(run.stderr).toBe("");
    expect(run.stdout.startsWith(usageLine)).toBe(true);
    for (const option of ["--mode MODE", "classic | synthesized | descriptor", "--out DIR", "--check", "-D NAME[=VALUE]", "-I DIR", "--version"]) {
      expect(run.stdout).toContain(option);
    }
    expect(run.stdout).toContain("RPC_HDR, RPC_XDR, RPC_CLNT, RPC_SVC, RPCGEN_TS");
  });

  it("--help wins over everything after it, even bad options", async () => {
    const run = await runCli(["--help", "--frobnicate"]);
    expect(run.status).toBe(0);
    expect(run.stdout.startsWith(usageLine)).toBe(true);
  });

  it.each([["--version"], ["-V"]])("%s prints the package version and exits 0", async (flag) => {
    expect(await runCli([flag])).toEqual({ status: 0, stdout: `rpcgen-ts ${packageVersion}\n`, stderr: "" });
  });

  it.each([
    [[], "no input files"],
    [["--frobnicate", "a.x"], "unknown option '--frobnicate'"],
    [["a.x", "-x"], "unknown option '-x'"],
    [["a.x", "--mode", "fast"], "unknown mode 'fast' (expected classic, synthesized, descriptor)"],
    [["a.x", "--mode=turbo"], "unknown mode 'turbo' (expected classic, synthesized, descriptor)"],
    [["a.x", "--mode"], "--mode needs a value"],
    [["a.x", "--out"], "--out needs a value"],
    [["a.x", "-D"], "-D needs a value"],
    [["a.x", "-I"], "-I needs a value"],
    [["a.x", "-D", "3D=1"], "bad -D '3D=1': expected NAME or NAME=VALUE"],
    [["a.x", "-D="], "bad -D '=': expected NAME or NAME=VALUE"],
  ])("%j is a usage error: exit 2", async (argv, message) => {
    const run = await runCli(argv, dir);
    expect(run.status).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr.startsWith(`rpcgen: ${message}\n\n${usageLine}`)).toBe(true);
    expect(readdirSync(dir)).toEqual([]); // nothing read, nothing written
  });
});

describe("inputs and outputs", () => {
  it("says clearly that an input file does not exist, and exits 1", async () => {
    const run = await runCli(["missing.x"], dir);
    expect(run).toEqual({ status: 1, stdout: "", stderr: "rpcgen: error: cannot read 'missing.x': no such file\n" });
  });

  it("says that an input is a directory", async () => {
    mkdirSync(join(dir, "d.x"));
    const run = await runCli(["d.x", "--check"], dir);
    expect(run).toEqual({ status: 1, stdout: "", stderr: "rpcgen: error: cannot read 'd.x': it is a directory\n" });
  });

  it("writes FILE.ts into the current directory by default", async () => {
    write("point.x", small);
    const run = await runCli(["point.x"], dir);
    expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(readdirSync(dir).sort()).toEqual(["point.ts", "point.x"]);
    expect(readFileSync(join(dir, "point.ts"), "utf8")).toContain("export interface point {");
  });

  it("--check writes nothing, and exits 0 for a valid file", async () => {
    write("point.x", small);
    const run = await runCli(["point.x", "--check", "--out", "gen"], dir);
    expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(readdirSync(dir)).toEqual(["point.x"]);
  });

  it("--check still reports errors, with exit 1", async () => {
    write("bad.x", "struct s { nosuch x; };\n");
    const run = await runCli(["--check", "bad.x"], dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toBe("bad.x:1:12: error: undefined type 'nosuch'\nstruct s { nosuch x; };\n           ^\n1 error in bad.x\n");
  });

  it("--out creates the directory, nested, and writes only there", async () => {
    write("point.x", small);
    const run = await runCli(["point.x", "--out", "gen/deep/er"], dir);
    expect(run.status).toBe(0);
    expect(readdirSync(join(dir, "gen/deep/er"))).toEqual(["point.ts"]);
    expect(readdirSync(dir).sort()).toEqual(["gen", "point.x"]);
  });

  it("accepts --out=DIR and --mode=MODE", async () => {
    write("point.x", small);
    const run = await runCli(["--mode=classic", "--out=gen", "point.x"], dir);
    expect(run.status).toBe(0);
    expect(readFileSync(join(dir, "gen/point.ts"), "utf8")).toContain("// Command: rpcgen point.x --mode classic\n");
  });

  it("compiles several files in one run, one module each, named after each input", async () => {
    write("a.x", "const A = 1;\n");
    write("sub/b.x", "const B = 2;\n");
    const run = await runCli(["a.x", "sub/b.x", "--out", "gen"], dir);
    expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(readdirSync(join(dir, "gen")).sort()).toEqual(["a.ts", "b.ts"]);
    expect(readFileSync(join(dir, "gen/b.ts"), "utf8")).toContain("export const B = 2;");
  });

  it("goes on past a file with errors, writes the others, and exits 1", async () => {
    write("good.x", "const A = 1;\n");
    write("bad.x", "const B = ;\n");
    write("also.x", "const C = 3;\n");
    const run = await runCli(["good.x", "bad.x", "missing.x", "also.x", "--out", "gen"], dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(
      "bad.x:1:11: error: expected a number, a constant name or a string but found ';'\nconst B = ;\n          ^\n1 error in bad.x\n" +
        "rpcgen: error: cannot read 'missing.x': no such file\n",
    );
    expect(readdirSync(join(dir, "gen")).sort()).toEqual(["also.ts", "good.ts"]);
  });

  it("-D changes what the preprocessor keeps, and is recorded in the header", async () => {
    write("sized.x", "#ifdef BIG\nconst SIZE = WIDTH;\n#else\nconst SIZE = 1;\n#endif\n");
    const plain = await runCli(["sized.x", "--out", "plain"], dir);
    const big = await runCli(["sized.x", "-D", "BIG", "-DWIDTH=100", "--out", "big"], dir);
    expect([plain.status, big.status]).toEqual([0, 0]);
    const plainText = readFileSync(join(dir, "plain/sized.ts"), "utf8");
    const bigText = readFileSync(join(dir, "big/sized.ts"), "utf8");
    expect(plainText).toContain("export const SIZE = 1;");
    expect(bigText).toContain("export const SIZE = 100;");
    expect(bigText).toContain("// Command: rpcgen sized.x --mode synthesized -DBIG -DWIDTH=100\n");
  });

  it("-D keeps the default symbols defined", async () => {
    write("hdr.x", "#ifdef RPC_HDR\nconst HDR = 1;\n#endif\n");
    await runCli(["hdr.x", "-DOTHER"], dir);
    expect(readFileSync(join(dir, "hdr.ts"), "utf8")).toContain("export const HDR = 1;");
  });

  it("-I finds an include in another directory, in either form", async () => {
    write("inc/shared.x", "const SHARED = 7;\n");
    write("src/main.x", '#include "shared.x"\ntypedef opaque blob[SHARED];\n');
    const without = await runCli(["src/main.x", "--check"], dir);
    expect(without.status).toBe(1);
    expect(without.stderr).toContain("src/main.x:1:1: error: cannot find include file 'shared.x'\n");
    for (const argv of [["-I", "inc"], ["-Iinc"]]) {
      const run = await runCli(["src/main.x", ...argv, "--out", "gen"], dir);
      expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
      expect(readFileSync(join(dir, "gen/main.ts"), "utf8")).toContain("export const SHARED = 7;");
    }
  });

  it("writes the same bytes every time", async () => {
    write("calc.x", `${small}program CALC { version CALC_V1 { int ADD(int, int) = 1; } = 1; } = 0x20000001;\n`);
    const outputs: Buffer[] = [];
    for (const out of ["one", "two"]) {
      expect((await runCli(["calc.x", "--out", out], dir)).status).toBe(0);
      outputs.push(readFileSync(join(dir, out, "calc.ts")));
    }
    expect(outputs[0]!.length).toBeGreaterThan(0);
    expect(outputs[0]!.equals(outputs[1]!)).toBe(true);
    // No absolute path of this machine gets into the module.
    expect(outputs[0]!.toString()).not.toContain(dir);
  });
});

describe("the built executable", () => {
  const bin = join(repoRoot, "dist/compiler/bin.js");

  beforeAll(async () => {
    if (!existsSync(bin)) await promisify(execFile)("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repoRoot });
  });

  it("runs as a separate process: node dist/compiler/bin.js --version", async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, "--version"], { cwd: dir });
    expect(stdout).toBe(`rpcgen-ts ${packageVersion}\n`);
    expect(stderr).toBe("");
  });
});

describe("--runtime", () => {
  it("sets the module generated code imports the runtime from", async () => {
    const out = tempDir("runtime");
    try {
      const run = await runCli([join(repoRoot, "idl/bench.x"), "--runtime", "../my-runtime.js", "--out", out]);
      expect(run.status).toBe(0);
      const text = readFileSync(join(out, "bench.ts"), "utf8");
      expect(text).toContain('from "../my-runtime.js";');
      expect(text).not.toContain("rpcgen-ts/runtime");
    } finally {
      removeDir(out);
    }
  });
});
