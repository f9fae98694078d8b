import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { exclusive, repoRoot } from "../daemons/harness.js";

/**
 * The tests use @rpcgen-ts/protocols as an application does, by its package name: its
 * build (dist/), which is brought up to date first — rebuilt when a source is newer than it.
 * Test files running at once build it once (a lock between processes).
 */

export const protocolsDir = join(repoRoot, "protocols");

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

export async function protocolsBuilt(): Promise<void> {
  const release = await exclusive("protocols-build");
  try {
    const built = join(protocolsDir, "dist/nfs/cli.js");
    const sources = Math.max(newest(join(protocolsDir, "src")), statSync(join(protocolsDir, "tsconfig.build.json")).mtimeMs);
    if (existsSync(built) && sources <= statSync(built).mtimeMs) return;
    execFileSync(process.execPath, [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", join(protocolsDir, "tsconfig.build.json")], { stdio: "pipe", timeout: 120_000 });
  } finally {
    release();
  }
}
