import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./support.js";

/**
 * The XDR layer as a browser app would take it: `@rpcgen-ts/runtime/xdr`, resolved through
 * the package's exports (the built files), bundled by esbuild for the browser platform, where
 * a Node built-in cannot be resolved. The package entry, which has transports, must fail the
 * same way: the check can fail.
 */

function bundle(specifier: string) {
  return build({
    stdin: { contents: `export * from "${specifier}";`, resolveDir: repoRoot, loader: "js" },
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    logLevel: "silent",
  });
}

describe("the XDR subpath in a browser bundle", () => {
  it("bundles with no Node built-in, and its codecs run", async () => {
    const result = await bundle("@rpcgen-ts/runtime/xdr");
    expect(result.errors).toEqual([]);
    const code = result.outputFiles[0]!.text;
    expect(code).not.toMatch(/\bnode:/);
    const xdr = (await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`)) as typeof import("../runtime/xdr/index.js");
    const w = new xdr.XdrWriter(16);
    w.int(-2);
    w.string("hé", 8);
    const r = new xdr.XdrReader(w.bytes());
    expect([r.int(), r.string(8)]).toEqual([-2, "hé"]);
  });

  it("the package entry, with its transports, does not bundle for the browser", async () => {
    const failure = await bundle("@rpcgen-ts/runtime").then(
      () => undefined,
      (e: unknown) => e as { errors: { text: string }[] },
    );
    expect(failure?.errors.some((e) => /node:/.test(e.text))).toBe(true);
  });
});
