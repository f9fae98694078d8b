import { createRequire } from "node:module";
import { join } from "node:path";
import { cruise, type ICruiseResult, type IViolation } from "dependency-cruiser";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./support.js";

/**
 * The import rules of .dependency-cruiser.cjs: no import cycle in runtime/ or compiler/
 * (type-only imports included), runtime layers that import one way, no Node built-in in the
 * XDR layer, runtime and compiler independent. A fixture with one of each fault proves the
 * rules can fail.
 */

const config = createRequire(import.meta.url)(join(repoRoot, ".dependency-cruiser.cjs")) as {
  forbidden: unknown[];
  options: Record<string, unknown>;
};

async function violations(baseDir: string, folders: string[]): Promise<IViolation[]> {
  const result = await cruise(folders, { ...config.options, validate: true, baseDir, ruleSet: { forbidden: config.forbidden } } as never);
  return (result.output as ICruiseResult).summary.violations;
}

function show(v: IViolation): string {
  const cycle = v.cycle === undefined ? "" : ` (${v.cycle.map((c) => c.name).join(" → ")})`;
  return `${v.rule.name}: ${v.from} → ${v.to}${cycle}`;
}

describe("imports", () => {
  it("runtime and compiler: no cycle, layers one way, XDR without Node", async () => {
    const found = await violations(repoRoot, ["runtime", "compiler"]);
    expect(found.map(show)).toEqual([]);
  }, 60_000);

  it("the rules catch an upward import, a Node built-in in XDR and a cycle", async () => {
    const found = (await violations(join(repoRoot, "test/fixtures/layers"), ["runtime"])).map(show);
    expect(found).toContain("layer-xdr: runtime/xdr/writer.ts → runtime/call/path.ts");
    expect(found).toContain("xdr-no-node: runtime/xdr/writer.ts → diagnostics_channel");
    expect(found).toContain("layer-call: runtime/call/path.ts → runtime/transport/types.ts");
    expect(found.some((f) => f.startsWith("no-circular: runtime/call/path.ts → runtime/transport/types.ts"))).toBe(true);
  }, 60_000);
});
