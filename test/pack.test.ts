import { execFile } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { removeDir, repoRoot, tempDir } from "./support.js";

/**
 * The package as a user gets it: `npm pack`, installed into a fresh app, whose own
 * `npx rpcgen` generates stubs, whose own `tsc` type-checks an app using them, and which
 * then runs that app against a server.
 */

const exec = promisify(execFile);
const run = (cmd: string, args: string[], cwd: string) =>
  exec(cmd, args, { cwd, env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false" }, maxBuffer: 16 << 20 });

const app = tempDir("app");
afterAll(() => removeDir(app));

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
import { connect, createServer } from "rpcgen-ts/runtime";
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

describe("the packed package, installed into an app", () => {
  it("holds the licence, the readme, the built code and the IDL, and no tests or source maps", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], repoRoot);
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(["LICENSE", "README.md", "package.json", "dist/runtime/index.js", "dist/runtime/index.d.ts", "dist/compiler/bin.js"]));
    expect(files.some((f) => f.startsWith("idl/") && f.endsWith(".x"))).toBe(true);
    // Unit tests import vitest and fast-check, which an app does not have; maps would point at sources not shipped.
    expect(files.filter((f) => /\.test\.|\.map$/.test(f))).toEqual([]);
    expect(files.filter((f) => !/^(dist|idl)\/|^(LICENSE|README\.md|package\.json)$/.test(f))).toEqual([]);
  }, 60_000);

  it("generates stubs with the app's npx rpcgen, type-checks with its tsc, and runs", async () => {
    await run("npm", ["pack", "--pack-destination", app], repoRoot);
    const tarball = readdirSync(app).find((f) => f.endsWith(".tgz"));
    expect(tarball).toBeDefined();
    const devDependencies = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).devDependencies as Record<string, string>;
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({
        name: "hello-app",
        private: true,
        type: "module",
        dependencies: { "rpcgen-ts": `file:./${tarball}` },
        devDependencies: { typescript: devDependencies.typescript, "@types/node": devDependencies["@types/node"] },
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

    const help = await run("npx", ["rpcgen", "--version"], app);
    expect(help.stdout).toMatch(/^rpcgen-ts \d+\.\d+\.\d+/);
    await run("npx", ["rpcgen", "hello.x", "--out", "gen"], app);
    await run("npx", ["tsc", "-p", "tsconfig.json"], app);
    const { stdout } = await run("node", ["dist/app.js"], app);
    expect(JSON.parse(stdout)).toEqual({ text: "hi hi hi ", sum: 42 });
  }, 300_000);
});
