import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { main } from "../compiler/cli.js";

/** Shared helpers for the compiler's tests. */

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

let corpusFiles: string[] | undefined;
/**
 * The corpus every release must compile: Sun rpcgen's and libtirpc's own `.x` files. Listed
 * when first asked for, so that tests that do not use it load on a machine without them.
 */
export function corpus(): string[] {
  return (corpusFiles ??= [
    ...readdirSync("/usr/include/rpcsvc")
      .filter((f) => f.endsWith(".x"))
      .map((f) => join("/usr/include/rpcsvc", f)),
    "/usr/include/tirpc/rpc/rpcb_prot.x",
    "/usr/include/tirpc/rpcsvc/crypt.x",
  ].sort());
}

/** When set, golden and error references are rewritten instead of compared. */
export const updating = process.env.UPDATE_GOLDEN === "1";

export interface CliRun {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the rpcgen command in this process, in directory `cwd`. */
export async function runCli(argv: string[], cwd = process.cwd()): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const before = process.cwd();
  process.chdir(cwd);
  try {
    const status = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
    return { status, stdout, stderr };
  } finally {
    process.chdir(before);
  }
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `rpcgen-ts-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

const exec = promisify(execFile);

/**
 * Type-checks TypeScript files with the project's `tsc` under `strict`, the runtime resolved
 * from this checkout. Resolves to tsc's output; rejects if it reports errors.
 */
export async function typeCheck(dir: string, files: string[]): Promise<void> {
  const config = {
    compilerOptions: {
      target: "ES2022",
      lib: ["ES2022"],
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      // The runtime is checked from source here, and it uses Node's own modules.
      types: ["node"],
      typeRoots: [join(repoRoot, "node_modules/@types")],
      paths: { "@rpcgen-ts/runtime": [join(repoRoot, "runtime/index.ts")] },
    },
    files,
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(config, null, 2));
  try {
    await exec(join(repoRoot, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json")], { cwd: dir });
  } catch (e) {
    const { stdout, stderr } = e as { stdout: string; stderr: string };
    throw new Error(`tsc failed in ${dir}:\n${stdout}${stderr}`);
  }
}

/** Reads a file, or undefined if it does not exist. */
export function readIfExists(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, "utf8") : undefined;
}
