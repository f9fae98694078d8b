import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { modes } from "../compiler/emit/module.js";
import { readIfExists, removeDir, repoRoot, runCli, tempDir, typeCheck, updating } from "./support.js";

/**
 * Golden files: test/golden/<case>/input.x (plus any files it includes) and the module the
 * compiler generates for it in every mode, under out/<mode>/. `npm run golden:update`
 * rewrites the references; a reference with no case, or a case with no reference, fails.
 */

const root = join(repoRoot, "test/golden");
const cases = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

describe("golden files", () => {
  it("every case directory has an input.x", () => {
    expect(cases.filter((c) => readIfExists(join(root, c, "input.x")) === undefined)).toEqual([]);
  });

  it("no reference output is orphaned", () => {
    for (const c of cases) {
      const out = join(root, c, "out");
      const dirs = readdirSync(out, { withFileTypes: true }).map((d) => d.name);
      expect(dirs.sort(), `${c}/out`).toEqual([...modes].sort());
      for (const mode of modes) expect(readdirSync(join(out, mode)), `${c}/out/${mode}`).toEqual(["input.ts"]);
    }
  });

  describe.each(cases)("%s", (name) => {
    it.each(modes)("matches out/%s/input.ts and type-checks", async (mode) => {
      const dir = join(root, name);
      const scratch = tempDir("golden");
      try {
        const run = await runCli(["input.x", "--mode", mode, "--out", scratch], dir);
        expect(run.stderr).toBe("");
        expect(run.status).toBe(0);
        const actual = readFileSync(join(scratch, "input.ts"), "utf8");
        const reference = join(dir, "out", mode, "input.ts");
        if (updating) {
          mkdirSync(join(dir, "out", mode), { recursive: true });
          writeFileSync(reference, actual);
        }
        await expect(actual).toMatchFileSnapshot(reference);
        await typeCheck(scratch, ["input.ts"]);
      } finally {
        removeDir(scratch);
      }
    });
  });
});
