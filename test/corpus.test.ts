import { readdirSync } from "node:fs";
import { basename } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { corpus, removeDir, runCli, tempDir, typeCheck } from "./support.js";

/** Every `.x` file of the system corpus compiles unchanged, and what we generate type-checks. */
describe("system corpus", () => {
  const out = tempDir("corpus");
  afterAll(() => removeDir(out));

  it("has the 19 files the project promises to compile", () => {
    expect(corpus().map((f) => basename(f))).toHaveLength(19);
  });

  it.each(corpus())("%s passes --check", async (file) => {
    const run = await runCli([file, "--check"]);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  it("generates modules that type-check under strict, in every mode", async () => {
    for (const mode of ["classic", "synthesized", "descriptor"]) {
      const dir = `${out}/${mode}`;
      const run = await runCli([...corpus(), "--mode", mode, "--out", dir]);
      expect(run.stderr).toBe("");
      expect(run.status).toBe(0);
      const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));
      expect(files).toHaveLength(19);
      await typeCheck(dir, files);
    }
  });
});
