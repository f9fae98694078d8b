import { execFile } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { removeDir, repoRoot, tempDir } from "./support.js";

/**
 * The packages as a user gets them: `npm pack` of each workspace, installed into a fresh app
 * with the runtime in `dependencies` and the compiler in `devDependencies`; the app's own
 * `npx rpcgen-ts` generates stubs and its own `tsc` type-checks them; then `npm ci
 * --omit=dev` leaves the runtime alone (no compiler, no dependency of it) and the app runs.
 */

const exec = promisify(execFile);
const run = (cmd: string, args: string[], cwd: string) =>
  exec(cmd, args, { cwd, env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false" }, maxBuffer: 16 << 20 });

const app = tempDir("app");
afterAll(() => removeDir(app));

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
  repository?: { url?: string; directory?: string };
  bin?: Record<string, string>;
}
const manifest = (dir: string) => JSON.parse(readFileSync(join(repoRoot, dir, "package.json"), "utf8")) as Manifest;

const idl = `
const GREETING_MAX = 32;
struct greeting { string text<GREETING_MAX>; unsigned int times; };
program HELLO_PROG {
  version HELLO_V1 {
    string HELLO(greeting) = 1;
    int ADD(int, int) = 2;
  } = 1;
} = 0x20000777;
`;

const source = `
import { connect, createServer } from "@rpcgen-ts/runtime";
import { HelloV1, HelloV1Client, type HelloV1Handlers } from "./gen/hello.js";

const handlers: HelloV1Handlers = {
  hello: (g) => g.text.repeat(g.times),
  add: (a, b) => a + b,
};
const server = createServer().register(HelloV1, handlers);
const { port } = await server.listen({ transport: "tcp" });
const channel = await connect({ transport: "tcp", port });
const client = new HelloV1Client(channel);
const text: string = await client.hello({ text: "hi ", times: 3 });
const sum: number = await client.add(40, 2);
console.log(JSON.stringify({ text, sum }));
await channel.close();
await server.close();
`;

describe("the packed packages", () => {
  it("hold the licence, the readme and the built code, and no tests or source maps", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts", "--workspace", "runtime", "--workspace", "compiler"], repoRoot);
    const packs = JSON.parse(stdout) as { name: string; files: { path: string }[] }[];
    const files = (name: string) => packs.find((p) => p.name === name)!.files.map((f) => f.path);
    expect(files("@rpcgen-ts/runtime")).toEqual(
      expect.arrayContaining(["LICENSE", "README.md", "package.json", "dist/index.js", "dist/index.d.ts", "dist/xdr/index.js", "dist/shm-worker.js"]),
    );
    expect(files("rpcgen-ts")).toEqual(expect.arrayContaining(["LICENSE", "README.md", "package.json", "dist/bin.js", "dist/compile.js", "dist/compile.d.ts"]));
    for (const { files } of packs) {
      const paths = files.map((f) => f.path);
      // Unit tests import vitest and fast-check, which an app does not have; maps would point at sources not shipped.
      expect(paths.filter((f) => /\.test\.|\.map$/.test(f))).toEqual([]);
      expect(paths.filter((f) => !/^dist\/|^(LICENSE|README\.md|package\.json)$/.test(f))).toEqual([]);
    }
  }, 60_000);

  it("declare what npm and TypeScript need: no runtime dependency, caret ranges, types first, a repository", () => {
    const runtime = manifest("runtime");
    const compiler = manifest("compiler");
    expect(runtime.dependencies ?? {}).toEqual({});
    expect(Object.keys(compiler.dependencies ?? {}).sort()).toEqual(["chevrotain", "prettier", "ts-morph"]);
    for (const range of Object.values(compiler.dependencies!)) expect(range).toMatch(/^\^\d+\.\d+\.\d+$/);
    expect(compiler.bin).toEqual({ "rpcgen-ts": "dist/bin.js", rpcgen: "dist/bin.js" });
    for (const [dir, m] of [["runtime", runtime], ["compiler", compiler]] as const) {
      expect(m.repository?.directory).toBe(dir);
      expect(m.repository?.url).toMatch(/^git\+https:/);
      for (const entry of Object.values(m.exports)) if (typeof entry === "object") expect(Object.keys(entry)[0]).toBe("types");
    }
    expect(Object.keys(runtime.exports)).toEqual([".", "./xdr", "./rpcbind", "./portmap", "./package.json"]);
  });

  it("an app generates stubs with its npx rpcgen-ts, type-checks, then runs with the runtime alone", async () => {
    // --ignore-scripts: prepack would rebuild dist/ under the tests running beside this one (npm test built it).
    await run("npm", ["pack", "--ignore-scripts", "--pack-destination", app, "--workspace", "runtime", "--workspace", "compiler"], repoRoot);
    const tarballs = readdirSync(app).filter((f) => f.endsWith(".tgz"));
    const runtime = tarballs.find((f) => f.startsWith("rpcgen-ts-runtime-"));
    const compiler = tarballs.find((f) => /^rpcgen-ts-\d/.test(f));
    expect(runtime).toBeDefined();
    expect(compiler).toBeDefined();
    const devDependencies = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).devDependencies as Record<string, string>;
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({
        name: "hello-app",
        private: true,
        type: "module",
        dependencies: { "@rpcgen-ts/runtime": `file:./${runtime}` },
        devDependencies: { "rpcgen-ts": `file:./${compiler}`, typescript: devDependencies.typescript, "@types/node": devDependencies["@types/node"] },
      }),
    );
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, outDir: "dist", types: ["node"] },
        include: ["app.ts", "gen"],
      }),
    );
    writeFileSync(join(app, "hello.x"), idl);
    writeFileSync(join(app, "app.ts"), source);
    await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], app);

    const help = await run("npx", ["rpcgen-ts", "--version"], app);
    expect(help.stdout).toMatch(/^rpcgen-ts \d+\.\d+\.\d+/);
    await run("npx", ["rpcgen-ts", "hello.x", "--out", "gen"], app);
    expect(readFileSync(join(app, "gen/hello.ts"), "utf8")).toContain('from "@rpcgen-ts/runtime"');
    await run("npx", ["tsc", "-p", "tsconfig.json"], app);
    // An app's @types/node may be newer than the one the runtime is built with (26 orders
    // TracingChannel's type parameters otherwise): the declarations must check under it too.
    await run("npm", ["install", "--no-save", "--prefer-offline", "--no-audit", "--no-fund", "@types/node@26.6.7"], app);
    await run("npx", ["tsc", "-p", "tsconfig.json"], app);

    // Production install: the compiler and everything it pulls in are gone.
    await run("npm", ["ci", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund"], app);
    const installed = readdirSync(join(app, "node_modules")).filter((f) => !f.startsWith("."));
    expect(installed).toEqual(["@rpcgen-ts"]);
    expect(readdirSync(join(app, "node_modules/@rpcgen-ts"))).toEqual(["runtime"]);
    const { stdout } = await run("node", ["dist/app.js"], app);
    expect(JSON.parse(stdout)).toEqual({ text: "hi hi hi ", sum: 42 });
  }, 300_000);
});
