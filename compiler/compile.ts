import { basename, extname, resolve } from "node:path";
import { check } from "./check.js";
import { DiagnosticBag, formatDiagnostic, type Diagnostic } from "./diagnostics.js";
import type { Layout } from "./layout.js";
import type { Model } from "./model.js";
import { defaultRuntimeModule, modes, parseDefine, type Mode } from "./modes.js";
import { parse } from "./parser.js";
import { defaultDefines, preprocess, type PreprocessOptions } from "./preprocess.js";
import { readSource, SourceReadError, type SourceFile } from "./source.js";

export { defaultRuntimeModule, modes, parseDefine, type Mode } from "./modes.js";
export type { Diagnostic } from "./diagnostics.js";

/**
 * The front end, one call per stage: source → preprocess → tokens → syntax tree → checked
 * model with static layout. Errors stop the pipeline after the stage that found them (the
 * checker finds all of its own before stopping).
 */

export interface FrontEndResult {
  readonly model: Model | undefined;
  readonly layout: Layout | undefined;
  readonly diagnostics: readonly Diagnostic[];
}

/**
 * The module generated from a source file, and the one a generated file imports an included
 * file's types from (its sibling): the base name with its extension replaced, whatever it is
 * (`svc.x` and `svc.idl` both give `svc`; `svc` stays `svc`).
 */
export function moduleNameOf(xPath: string): string {
  const name = basename(xPath);
  return name.slice(0, name.length - extname(name).length);
}

export function frontEnd(file: SourceFile, options: PreprocessOptions = {}): FrontEndResult {
  return new FrontEnd(options).run(file, []);
}

class FrontEnd {
  /** Imported files are checked once however often they are imported. */
  private readonly cache = new Map<string, FrontEndResult>();

  constructor(private readonly options: PreprocessOptions) {}

  run(file: SourceFile, importing: string[]): FrontEndResult {
    const diagnostics = new DiagnosticBag();
    const failed = (): FrontEndResult => ({ model: undefined, layout: undefined, diagnostics: diagnostics.sorted() });

    const pp = preprocess(file, diagnostics, this.options);
    if (diagnostics.hasErrors) return failed();
    const spec = parse(pp, diagnostics);
    if (spec === undefined || diagnostics.hasErrors) return failed();

    const imports: { module: string; model: Model }[] = [];
    for (const h of pp.headerImports) {
      const key = resolve(h.path);
      if (importing.includes(key)) continue; // headers that include each other: C's include guards
      let result = this.cache.get(key);
      if (result === undefined) {
        let text: string;
        try {
          text = readSource(h.path);
        } catch (e) {
          diagnostics.error(h.span, `cannot read the header's source '${h.path}': ${(e as Error).message}`);
          return failed();
        }
        result = this.run({ path: h.path, text }, [...importing, resolve(file.path)]);
        this.cache.set(key, result);
      }
      if (result.model === undefined) {
        diagnostics.error(h.span, `the header's source '${h.path}' has errors:`);
        diagnostics.items.push(...result.diagnostics);
        return failed();
      }
      imports.push({ module: `./${moduleNameOf(h.path)}.js`, model: result.model });
    }

    const { model, layout } = check(spec, diagnostics, { passThroughDefines: pp.passThroughDefines, imports });
    if (diagnostics.hasErrors) return failed();
    return { model, layout, diagnostics: [] };
  }
}

export interface GenerateOptions {
  /** `.x` files to compile, one module each; they may `#include` each other. */
  readonly files?: readonly string[];
  /** Or the text of one `.x` file, compiled as if read from `path`. */
  readonly text?: string;
  /** The name `text` is reported and its module named under, and where its `#include "…"` are searched from (default `input.x`). */
  readonly path?: string;
  /** Marshaling strategy (default `synthesized`). */
  readonly mode?: Mode;
  /** Preprocessor symbols as `-D` takes them (`NAME` or `NAME=VALUE`), or as a record; added to `defaultDefines`. */
  readonly defines?: readonly string[] | Readonly<Record<string, string>>;
  /** Directories searched by `#include` after the including file's own (`-I`). */
  readonly includeDirs?: readonly string[];
  /** Where generated code imports the runtime from (default `@rpcgen-ts/runtime`). */
  readonly runtimeModule?: string;
  /** Check only: no module is emitted, and ts-morph and prettier are never loaded. */
  readonly check?: boolean;
}

export interface GeneratedModule {
  /** The input it was generated from, as given. */
  readonly source: string;
  /** The module's file name (`svc.x` → `svc.ts`), relative: the caller chooses the directory. */
  readonly path: string;
  readonly text: string;
}

/** Why one input gave no module. */
export interface InputDiagnostics {
  /** The input, as given. */
  readonly source: string;
  /** It could not be read (its one diagnostic says why), as opposed to having errors. */
  readonly unreadable: boolean;
  readonly diagnostics: readonly Diagnostic[];
  /** What the command prints for it on standard error, newline-terminated. */
  readonly text: string;
}

export interface GenerateResult {
  /** One per input that compiled, in input order. */
  readonly outputs: readonly GeneratedModule[];
  /** One per input that did not, in input order; empty when all did. */
  readonly diagnostics: readonly InputDiagnostics[];
}

/** Why an input file cannot be read, in words rather than an errno code. */
const readErrors: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EISDIR: "it is a directory",
  EACCES: "permission denied",
};

/**
 * The whole pipeline, as the command runs it: each input through the front end, then the
 * emitter. Bad input gives diagnostics, never an exception; an exception means bad options
 * (an unknown mode, a malformed define, neither or both of `files` and `text`).
 */
export async function generate(options: GenerateOptions): Promise<GenerateResult> {
  const mode = options.mode ?? "synthesized";
  if (!modes.includes(mode)) throw new TypeError(`unknown mode '${String(mode)}' (expected ${modes.join(", ")})`);
  if ((options.files === undefined) === (options.text === undefined)) throw new TypeError("generate() takes either files or text");
  const defines = new Map(defaultDefines);
  const defineFlags: string[] = [];
  const given = options.defines ?? [];
  const flags = Array.isArray(given) ? (given as readonly string[]) : Object.entries(given).map(([k, v]) => `${k}=${v}`);
  for (const flag of flags) {
    const d = parseDefine(flag);
    if (d === undefined) throw new TypeError(`bad define '${flag}': expected NAME or NAME=VALUE`);
    defines.set(d[0], d[1]);
    defineFlags.push(`-D${flag}`);
  }
  const preprocessOptions: PreprocessOptions = { defines, includeDirs: options.includeDirs ?? [] };
  const inputs = options.files ?? [options.path ?? "input.x"];

  const outputs: GeneratedModule[] = [];
  const diagnostics: InputDiagnostics[] = [];
  // Loaded on first use: it brings in ts-morph and prettier, most of a run's start-up.
  let emitter: typeof import("./emit/module.js") | undefined;
  for (const [i, file] of inputs.entries()) {
    let text: string;
    if (options.text !== undefined && i === 0) {
      text = options.text;
    } else {
      try {
        text = readSource(file);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const why = e instanceof SourceReadError ? e.message : (readErrors[code ?? ""] ?? (e as Error).message);
        const d: Diagnostic = { span: undefined, message: `cannot read '${file}': ${why}` };
        diagnostics.push({ source: file, unreadable: true, diagnostics: [d], text: `rpcgen: error: cannot read '${file}': ${why}\n` });
        continue;
      }
    }
    const result = frontEnd({ path: file, text }, preprocessOptions);
    if (result.model === undefined || result.layout === undefined) {
      const n = result.diagnostics.length;
      const report = result.diagnostics.map((d) => formatDiagnostic(d) + "\n").join("") + `${n} error${n === 1 ? "" : "s"} in ${file}\n`;
      diagnostics.push({ source: file, unreadable: false, diagnostics: result.diagnostics, text: report });
      continue;
    }
    if (options.check) continue;
    emitter ??= await import("./emit/module.js");
    const command = ["rpcgen", basename(file), "--mode", mode, ...defineFlags].join(" ");
    const module = await emitter.emitModule(result.model, result.layout, {
      mode,
      sourcePath: file,
      command,
      runtimeModule: options.runtimeModule ?? defaultRuntimeModule,
    });
    outputs.push({ source: file, path: `${moduleNameOf(file)}.ts`, text: module });
  }
  return { outputs, diagnostics };
}
