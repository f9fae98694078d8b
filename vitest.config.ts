import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Modules the tests generate import the runtime by its public name; serve it from source.
    alias: { "rpcgen-ts/runtime": fileURLToPath(new URL("./runtime/index.ts", import.meta.url)) },
  },
  test: {
    include: ["test/**/*.test.ts", "compiler/**/*.test.ts", "runtime/**/*.test.ts"],
    pool: "forks", // the CLI tests change the working directory
    // One rpcbind for every file that needs it, started (if none runs) before them and stopped after.
    globalSetup: ["test/daemons/rpcbind-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
