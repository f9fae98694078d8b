import { execFile } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeDir, repoRoot, tempDir } from "../support.js";
import { protocolsBuilt } from "./built.js";

/**
 * @rpcgen-ts/protocols as a user gets it: `npm pack`, installed into a fresh app beside the
 * runtime (its peer); the app type-checks against the shipped declarations (skipLibCheck off),
 * then runs after `npm ci --omit=dev` with the two packages alone, and its `npx rpcgen-ts-nfs`
 * answers.
 */

const exec = promisify(execFile);
const run = (cmd: string, args: string[], cwd: string) =>
  exec(cmd, args, { cwd, env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false" }, maxBuffer: 16 << 20 });

const app = tempDir("protocols-app");
// Packed from the builds as they are (--ignore-scripts: prepack would rebuild, emptying dist/
// under the test files that run them meanwhile); the test setup brings them up to date.
beforeAll(async () => {
  await protocolsBuilt();
}, 180_000);
afterAll(() => removeDir(app));

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
  repository?: { url?: string; directory?: string };
  bin?: Record<string, string>;
  files?: string[];
}
const manifest = JSON.parse(readFileSync(join(repoRoot, "protocols/package.json"), "utf8")) as Manifest;
const subpaths = ["./nfs", "./nfs3", "./mount3", "./mount", "./nlm4", "./nlm", "./nsm", "./rquota", "./rstat", "./rusers", "./yp", "./rpcbind", "./portmap"];

/** Serves MOUNT v3 in-process with the shipped stubs and asks it; uses every subpath's types. */
const source = `
import { connect, createServer, fromXdr, toXdr } from "@rpcgen-ts/runtime";
import { mountstat3, MountV3, MountV3Client, type MountV3Handlers } from "@rpcgen-ts/protocols/mount3";
import { sattr3Codec, time_how, type sattr3 } from "@rpcgen-ts/protocols/nfs3";
import { mountNfs, NfsError, type NfsMount } from "@rpcgen-ts/protocols/nfs";
import { ypprocAll } from "@rpcgen-ts/protocols/yp";
import { Rpcbvers4Client } from "@rpcgen-ts/protocols/rpcbind";
import { PmapVersClient } from "@rpcgen-ts/protocols/portmap";
import { SmVersClient } from "@rpcgen-ts/protocols/nsm";
import { Nlm4VersClient } from "@rpcgen-ts/protocols/nlm4";
import { NlmVersClient } from "@rpcgen-ts/protocols/nlm";
import { MountversClient } from "@rpcgen-ts/protocols/mount";
import { RquotaversClient } from "@rpcgen-ts/protocols/rquota";
import { RstatversTimeClient } from "@rpcgen-ts/protocols/rstat";
import { Rusersvers3Client } from "@rpcgen-ts/protocols/rusers";

const handlers: MountV3Handlers = {
  mountproc3Mnt: (path) =>
    path === "/export"
      ? { fhs_status: mountstat3.MNT3_OK, mountinfo: { fhandle: new Uint8Array([1, 2, 3]), auth_flavors: [1] } }
      : { fhs_status: mountstat3.MNT3ERR_NOENT },
  mountproc3Dump: () => null,
  mountproc3Umnt: () => {},
  mountproc3Umntall: () => {},
  mountproc3Export: () => ({ ex_dir: "/export", ex_groups: null, ex_next: null }),
};
const server = createServer().register(MountV3, handlers);
const { port } = await server.listen({ transport: "tcp", host: "127.0.0.1" });
const channel = await connect({ transport: "tcp", host: "127.0.0.1", port });
const client = new MountV3Client(channel);
const ok = await client.mountproc3Mnt("/export");
const exported = await client.mountproc3Export();
const missing = await mountNfs("127.0.0.1", "/nowhere", { mountPort: port, port }).catch((e: unknown) => e);
const attrs: sattr3 = {
  mode: { set_it: true, mode: 0o644 },
  uid: { set_it: false },
  gid: { set_it: false },
  size: { set_it: true, size: 0n },
  atime: { set_it: time_how.DONT_CHANGE },
  mtime: { set_it: time_how.SET_TO_SERVER_TIME },
};
const mountType: ((m: NfsMount) => Promise<void>) = (m) => m.close();
const clients = [Rpcbvers4Client, PmapVersClient, SmVersClient, Nlm4VersClient, NlmVersClient, MountversClient, RquotaversClient, RstatversTimeClient, Rusersvers3Client];
console.log(JSON.stringify({
  ok: ok.fhs_status === mountstat3.MNT3_OK ? Array.from(ok.mountinfo.fhandle) : ok.fhs_status,
  exported: exported?.ex_dir,
  missing: missing instanceof NfsError ? [missing.status, missing.operation, missing.path] : String(missing),
  sattr: JSON.stringify(fromXdr(sattr3Codec, toXdr(sattr3Codec, attrs)), (_, v) => (typeof v === "bigint" ? v.toString() : v)),
  clients: clients.length + (typeof ypprocAll === "function" ? 1 : 0) + (typeof mountType === "function" ? 1 : 0),
}));
await channel.close();
await server.close();
`;

describe("the packed @rpcgen-ts/protocols", () => {
  it("holds the licence, the readme, the .x files and the built code; no tests, sources or maps", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts", "--workspace", "protocols"], repoRoot);
    const [pack] = JSON.parse(stdout) as { name: string; files: { path: string }[] }[];
    const paths = pack!.files.map((f) => f.path);
    expect(pack!.name).toBe("@rpcgen-ts/protocols");
    expect(paths).toEqual(expect.arrayContaining(["LICENSE", "README.md", "package.json", "dist/nfs/cli.js", "idl/nfs3.x", "idl/yp.x", "idl/rpcb_prot.x"]));
    for (const entry of Object.values(manifest.exports)) {
      if (typeof entry !== "object") continue;
      for (const target of Object.values(entry)) expect(paths, target).toContain(target.replace(/^\.\//, ""));
    }
    expect(paths.filter((f) => /\.test\.|\.map$|\.ts$/.test(f) && !f.endsWith(".d.ts"))).toEqual([]);
    expect(paths.filter((f) => !/^dist\/.*\.(js|d\.ts)$|^idl\/[a-z0-9_]+\.x$|^(LICENSE|README\.md|package\.json)$/.test(f))).toEqual([]);
  }, 60_000);

  it("declares the runtime as a peer (caret), no dependency, types first, its bin and repository", () => {
    expect(manifest.dependencies ?? {}).toEqual({});
    expect(manifest.peerDependencies).toEqual({ "@rpcgen-ts/runtime": expect.stringMatching(/^\^\d+\.\d+\.\d+$/) });
    expect(manifest.devDependencies?.["@rpcgen-ts/runtime"]).toBe(manifest.peerDependencies!["@rpcgen-ts/runtime"]);
    expect(manifest.bin).toEqual({ "rpcgen-ts-nfs": "dist/nfs/cli.js" });
    expect(manifest.repository).toEqual({ type: "git", url: expect.stringMatching(/^git\+https:/), directory: "protocols" });
    expect(Object.keys(manifest.exports)).toEqual([...subpaths, "./package.json"]);
    for (const entry of Object.values(manifest.exports)) if (typeof entry === "object") expect(Object.keys(entry)).toEqual(["types", "default"]);
    const root = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { workspaces: string[]; scripts: Record<string, string> };
    expect(root.workspaces).toContain("protocols");
    expect(root.scripts.build).toContain("--workspace protocols");
  });

  it("an app type-checks against it, then runs with it and the runtime alone", async () => {
    await run("npm", ["pack", "--ignore-scripts", "--pack-destination", app, "--workspace", "runtime", "--workspace", "protocols"], repoRoot);
    const tarballs = readdirSync(app).filter((f) => f.endsWith(".tgz"));
    const runtime = tarballs.find((f) => f.startsWith("rpcgen-ts-runtime-"));
    const protocols = tarballs.find((f) => f.startsWith("rpcgen-ts-protocols-"));
    expect(runtime).toBeDefined();
    expect(protocols).toBeDefined();
    const devDependencies = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).devDependencies as Record<string, string>;
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({
        name: "nfs-app",
        private: true,
        type: "module",
        dependencies: { "@rpcgen-ts/runtime": `file:./${runtime}`, "@rpcgen-ts/protocols": `file:./${protocols}` },
        devDependencies: { typescript: devDependencies.typescript, "@types/node": devDependencies["@types/node"] },
      }),
    );
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: false, outDir: "dist", types: ["node"] },
        include: ["app.ts"],
      }),
    );
    writeFileSync(join(app, "app.ts"), source);
    await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], app);
    await run("npx", ["tsc", "-p", "tsconfig.json"], app);

    await run("npm", ["ci", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund"], app);
    expect(readdirSync(join(app, "node_modules")).filter((f) => !f.startsWith("."))).toEqual(["@rpcgen-ts"]);
    expect(readdirSync(join(app, "node_modules/@rpcgen-ts")).sort()).toEqual(["protocols", "runtime"]);
    const { stdout } = await run("node", ["dist/app.js"], app);
    expect(JSON.parse(stdout)).toEqual({
      ok: [1, 2, 3],
      exported: "/export",
      missing: ["MNT3ERR_NOENT", "MNT", "/nowhere"],
      sattr: JSON.stringify({ mode: { set_it: true, mode: 0o644 }, uid: { set_it: false }, gid: { set_it: false }, size: { set_it: true, size: "0" }, atime: { set_it: 0 }, mtime: { set_it: 1 } }),
      clients: 11,
    });
    const usage = await run("npx", ["rpcgen-ts-nfs"], app).catch((e: { code: number; stderr: string }) => e);
    expect((usage as { code: number }).code).toBe(2);
    expect((usage as { stderr: string }).stderr).toContain("usage: rpcgen-ts-nfs");
  }, 300_000);
});
