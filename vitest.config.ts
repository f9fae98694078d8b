import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // Modules the tests generate import the runtime by its package name; serve it from source.
    alias: [
      { find: /^@rpcgen-ts\/runtime$/, replacement: source("./runtime/index.ts") },
      { find: /^@rpcgen-ts\/runtime\/xdr$/, replacement: source("./runtime/xdr/index.ts") },
    ],
  },
  test: {
    include: ["test/**/*.test.ts", "compiler/**/*.test.ts", "runtime/**/*.test.ts"],
    // Brings the runtime's build up to date: worker threads run it (test/global-setup.ts).
    // One rpcbind for every file that needs it, started (if none runs) before them and stopped after.
    globalSetup: ["test/global-setup.ts", "test/daemons/rpcbind-setup.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    pool: "forks", // the CLI tests change the working directory
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
