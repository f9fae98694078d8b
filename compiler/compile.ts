import { basename, extname, resolve } from "node:path";
import { check } from "./check.js";
import { DiagnosticBag, type Diagnostic } from "./diagnostics.js";
import type { Layout } from "./layout.js";
import type { Model } from "./model.js";
import { parse } from "./parser.js";
import { preprocess, type PreprocessOptions } from "./preprocess.js";
import { readSource, type SourceFile } from "./source.js";

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
