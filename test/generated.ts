import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { frontEnd, generate as generateModules, modes, type Mode } from "../compiler/compile.js";
import type { Layout } from "../compiler/layout.js";
import type { Model } from "../compiler/model.js";
import type { XdrCodec } from "../runtime/index.js";
import { corpus, repoRoot } from "./support.js";

/**
 * Compiles `.x` files the way users do and loads the generated modules into the test, in
 * every mode. Modules are written below the repository (`.tmp/gen`, ignored by git) so the
 * test runner can load them; their `@rpcgen-ts/runtime` import resolves to this checkout.
 */

export interface Compiled {
  readonly file: string;
  readonly model: Model;
  readonly layout: Layout;
}

export function compile(file: string): Compiled {
  const result = frontEnd({ path: file, text: readFileSync(file, "utf8") });
  if (result.model === undefined || result.layout === undefined) {
    throw new Error(`${file} does not compile:\n${result.diagnostics.map((d) => d.message).join("\n")}`);
  }
  return { file, model: result.model, layout: result.layout };
}

/** The text of the module generated from one file, as the command writes it. */
export async function moduleText(file: string, mode: Mode): Promise<string> {
  const { outputs, diagnostics } = await generateModules({ files: [file], mode });
  if (outputs.length !== 1) throw new Error(`${file} does not compile:\n${diagnostics.map((d) => d.text).join("")}`);
  return outputs[0]!.text;
}

/** A generated module, as loaded: its exports by name. */
export type GeneratedModule = Record<string, unknown>;

/** Writes the modules of `files` (which may import each other) for `mode` and loads them. */
export async function generate(files: string[], mode: Mode): Promise<Map<string, GeneratedModule>> {
  const key = createHash("sha256").update(files.join("\n")).digest("hex").slice(0, 12);
  const dir = join(repoRoot, ".tmp/gen", key, mode);
  mkdirSync(dir, { recursive: true });
  const { outputs, diagnostics } = await generateModules({ files, mode });
  if (diagnostics.length > 0) throw new Error(`${files.join(", ")} do not compile:\n${diagnostics.map((d) => d.text).join("")}`);
  for (const o of outputs) writeFileSync(join(dir, o.path), o.text);
  const loaded = new Map<string, GeneratedModule>();
  for (const o of outputs) loaded.set(o.path.slice(0, -".ts".length), (await import(join(dir, o.path))) as GeneratedModule);
  return loaded;
}

/** The same files generated in every mode. */
export async function generateAllModes(files: string[]): Promise<Record<Mode, Map<string, GeneratedModule>>> {
  const out = {} as Record<Mode, Map<string, GeneratedModule>>;
  for (const mode of modes) out[mode] = await generate(files, mode);
  return out;
}

/** The codec a module exports for type `name`. */
export function codecOf(module: GeneratedModule, name: string): XdrCodec<unknown> {
  const codec = module[`${name}Codec`];
  if (codec === undefined) throw new Error(`no codec for ${name}`);
  return codec as XdrCodec<unknown>;
}

/** Files that import each other's types are generated together. */
const together = [["nis.x", "nis_callback.x"]];

/** Every `.x` file the tests compile: the system's corpus, the project's idl/ and the test fixtures. */
export function corpusFiles(): string[] {
  const own = (dir: string) =>
    readdirSync(join(repoRoot, dir))
      .filter((f) => f.endsWith(".x"))
      .map((f) => join(repoRoot, dir, f));
  return [...corpus(), ...own("idl"), ...own("test/fixtures")];
}

/** The corpus in groups that are generated together. */
export function corpusGroups(): string[][] {
  const files = corpusFiles();
  const out: string[][] = [];
  const placed = new Set<string>();
  for (const file of files) {
    if (placed.has(file)) continue;
    const group = together.find((g) => g.includes(basename(file)));
    const members = group === undefined ? [file] : files.filter((f) => group.includes(basename(f)));
    for (const m of members) placed.add(m);
    out.push(members);
  }
  return out;
}
