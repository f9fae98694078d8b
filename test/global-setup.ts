import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./support.js";

/**
 * Worker threads (the shm transport's server) and the modules the tests compile run the
 * runtime's JavaScript build, not its sources. So that they never run stale code, the build
 * is brought up to date before any test runs: rebuilt when a runtime source is newer than it
 * (a no-op right after `npm test`'s own build).
 */

function newest(dir: string, skip: (name: string) => boolean): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skip(entry.name)) continue;
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path, skip) : statSync(path).mtimeMs);
  }
  return latest;
}

export default function setup(): void {
  const runtime = join(repoRoot, "runtime");
  const built = join(runtime, "dist/index.js");
  const sources = newest(runtime, (name) => name === "dist" || name === "node_modules" || name.endsWith(".test.ts"));
  if (existsSync(built) && sources <= statSync(built).mtimeMs) return;
  execFileSync(process.execPath, [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", join(runtime, "tsconfig.build.json")], { stdio: "inherit" });
}
