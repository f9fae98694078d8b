import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { removeDir, repoRoot, runCli, tempDir, typeCheck } from "./support.js";

/** The `rpcgen` command: options, exit statuses, and what it writes where. */

const packageVersion = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;

const usageLine = "Usage: rpcgen FILE... [options]\n";
/** The version, then both names the package installs the command under. */
const versionText = `rpcgen-ts ${packageVersion}\ncommands: rpcgen-ts, rpcgen\n`;

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
    expect(await runCli([flag])).toEqual({ status: 0, stdout: versionText, stderr: "" });
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
    [["a.x", "--check=yes"], "--check takes no value"],
    [["a.x", "--runtime"], "--runtime needs a value"],
    [["a.x", "--outdir", "gen"], "unknown option '--outdir'"],
    [["a.x", "b.x", "--out", "-"], "standard output (--out -) takes the module of one input, not 2"],
    [["a.x", "b.x", "--stdout"], "standard output (--out -) takes the module of one input, not 2"],
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
  const bin = join(repoRoot, "compiler/dist/bin.js");

  beforeAll(async () => {
    if (!existsSync(bin)) await promisify(execFile)("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repoRoot });
  });

  it("runs as a separate process: node compiler/dist/bin.js --version", async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, "--version"], { cwd: dir });
    expect(stdout).toBe(versionText);
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
      expect(text).not.toContain("@rpcgen-ts/runtime");
    } finally {
      removeDir(out);
    }
  });
});

describe("fitting the ecosystem", () => {
  it("both bin names point at the same entry, and --help says which one npx resolves unambiguously", async () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "compiler/package.json"), "utf8")) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ "rpcgen-ts": "dist/bin.js", rpcgen: "dist/bin.js" });
    const help = await runCli(["--help"]);
    expect(help.stdout).toContain("installed as both rpcgen-ts and rpcgen");
    expect(help.stdout).toContain("`npx rpcgen-ts`");
    expect(help.stdout).toContain("/usr/bin/rpcgen");
  });

  it.each([["--out", "-"], ["--out=-"], ["--stdout"]])("%s writes the module to standard output and no file", async (...flags) => {
    write("point.x", small);
    const run = await runCli(["point.x", ...flags], dir);
    expect(run.status).toBe(0);
    expect(run.stderr).toBe("");
    expect(run.stdout).toContain("export interface point {");
    expect(readdirSync(dir)).toEqual(["point.x"]); // no directory named '-'
    // The same bytes as the file it would have written.
    await runCli(["point.x", "--out", "gen"], dir);
    expect(run.stdout).toBe(readFileSync(join(dir, "gen/point.ts"), "utf8"));
  });

  it("--out - still reports errors on standard error, exit 1, with nothing on standard output", async () => {
    write("bad.x", "const B = ;\n");
    const run = await runCli(["bad.x", "--out", "-"], dir);
    expect(run.status).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain("1 error in bad.x\n");
  });

  it("replaces an input's extension, whatever it is, and appends .ts to a name without one", async () => {
    write("service.idl", small);
    write("other.x", small);
    write("plain", small);
    write("v1.2.x", small);
    const run = await runCli(["service.idl", "other.x", "plain", "v1.2.x", "--mode", "descriptor", "--out", "gen"], dir);
    expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(readdirSync(join(dir, "gen")).sort()).toEqual(["other.ts", "plain.ts", "service.ts", "v1.2.ts"]);
  });

  it.each([
    [["a/svc.x", "b/svc.x"], "'a/svc.x' and 'b/svc.x' would both be written to 'gen/svc.ts'"],
    [["a/svc.x", "svc.idl"], "'a/svc.x' and 'svc.idl' would both be written to 'gen/svc.ts'"],
  ])("refuses %j, which would write one file, before writing anything: exit 2", async (files, message) => {
    for (const f of ["a/svc.x", "b/svc.x", "svc.idl"]) write(f, small);
    const run = await runCli([...files, "--out", "gen"], dir);
    expect(run.status).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr.startsWith(`rpcgen: ${message}; compile them with different --out directories\n`)).toBe(true);
    expect(existsSync(join(dir, "gen"))).toBe(false);
  });

  it("refuses an input that its own module would overwrite", async () => {
    write("svc.ts", small);
    const run = await runCli(["svc.ts"], dir);
    expect(run.status).toBe(2);
    expect(run.stderr.startsWith("rpcgen: 'svc.ts' would be overwritten by its own module; rename it or use --out\n")).toBe(true);
    expect(readFileSync(join(dir, "svc.ts"), "utf8")).toBe(small);
  });

  it("-D and -I repeat, in either form, and -- ends the options", async () => {
    write("inc1/one.x", "const ONE = 1;\n");
    write("inc2/two.x", "const TWO = 2;\n");
    write("-odd.x", '#include "one.x"\n#include "two.x"\nconst X = A;\nconst Y = B;\n');
    const run = await runCli(["-I", "inc1", "-Iinc2", "-D", "A=3", "-DB=4", "--out", "-", "--", "-odd.x"], dir);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    for (const line of ["ONE = 1;", "TWO = 2;", "X = 3;", "Y = 4;"]) expect(run.stdout).toContain(`export const ${line}`);
  });
});

describe("parameter names", () => {
  const idl = `program P {
  version P_V1 {
    string JOIN(string prefix<>, string suffix<16>) = 1;
    int MIX(int, int arg1, int) = 2;
    int CLASH(int options, int call, int PV1, int this, int a, int a, point *eval) = 3;
    int ONE(int) = 4;
  } = 1;
} = 0x20000099;
`;

  it("are the IDL's names; unnamed ones are argN; clashes and reserved words follow the local-name rule; it type-checks", async () => {
    write("p.x", small + idl);
    expect(await runCli(["p.x"], dir)).toEqual({ status: 0, stdout: "", stderr: "" });
    const text = readFileSync(join(dir, "p.ts"), "utf8");
    const flat = text.replace(/\s+/g, " ");
    expect(flat).toContain("join(prefix: string, suffix: string, options?: CallOptions): Promise<string> {");
    expect(flat).toContain("return this.rpcCall(PV1.procedures.join, [prefix, suffix], options);");
    expect(flat).toContain("join(prefix: string, suffix: string, call: CallContext)");
    expect(flat).toContain("mix(arg1: number, arg12: number, arg3: number, options?: CallOptions)");
    expect(flat).toContain(
      "clash( options2: number, call2: number, PV12: number, this_: number, a: number, a2: number, eval_: point | null, options?: CallOptions, )",
    );
    expect(flat).toContain("return this.rpcCall( PV1.procedures.clash, [options2, call2, PV12, this_, a, a2, eval_], options, );");
    expect(flat).toContain("one(arg: number, options?: CallOptions)");
    // A handler written against the parameter names, and the whole module, under strict tsc.
    write(
      "use.ts",
      `import type { PV1Handlers } from "./p.js";
export const handlers: PV1Handlers = {
  join: (prefix, suffix) => prefix + suffix,
  mix: (arg1, arg12, arg3) => arg1 + arg12 + arg3,
  clash: (options2, call2, PV12, this_, a, a2, eval_) => options2 + call2 + PV12 + this_ + a + a2 + (eval_?.x ?? 0),
  one: (arg) => arg,
};
`,
    );
    await typeCheck(dir, ["p.ts", "use.ts"]);
  }, 60_000);
});
