import { readFileSync } from "node:fs";

/** The package's version, read from its package.json (found from this file, in source or built form). */
export const version: string = (() => {
  for (let dir = new URL(".", import.meta.url); dir.pathname !== "/"; dir = new URL("..", dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "rpcgen-ts" && pkg.version !== undefined) return pkg.version;
    } catch {
      // keep looking upwards
    }
  }
  return "0.0.0";
})();
