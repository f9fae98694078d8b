import fc from "fast-check";
import { basename } from "node:path";
import { moduleNameOf } from "../../compiler/compile.js";
import { modes, type Mode } from "../../compiler/emit/module.js";
import type { Type } from "../../compiler/model.js";
import type { XdrCodec } from "../../runtime/index.js";
import { arbitraryOf, arbitraryOfNamed } from "../arbitrary.js";
import { compile, corpusGroups, generateAllModes, type GeneratedModule } from "../generated.js";

/**
 * The `.x` files the fuzzers start from — the system's (Sun rpcgen's and libtirpc's), the
 * project's idl/ and the test fixtures — and every decoder their generated modules have.
 */

/** One decoder in every mode, with valid values of its type to mutate. */
export interface Decoder {
  readonly label: string;
  readonly codecs: Record<Mode, XdrCodec<unknown>>;
  readonly arbitrary: fc.Arbitrary<unknown>;
}

interface ServiceLike {
  readonly name: string;
  readonly program: number;
  readonly version: number;
  readonly procedures: Record<string, { readonly name: string; readonly args: XdrCodec<unknown>; readonly result: XdrCodec<unknown> }>;
}

function isService(x: unknown): x is ServiceLike {
  return typeof x === "object" && x !== null && "procedures" in x && "program" in x && "version" in x && "name" in x;
}

function isCodec(x: unknown): x is XdrCodec<unknown> {
  return typeof x === "object" && x !== null && typeof (x as { decode?: unknown }).decode === "function" && typeof (x as { encode?: unknown }).encode === "function";
}

/**
 * The codec a module exports for type `name`: `nameCodec`, or — where the emitter renamed
 * it (an IDL name that clashes with a JavaScript one) — the exported codec named `name`.
 */
function codecFor(module: GeneratedModule, name: string): XdrCodec<unknown> {
  const direct = module[`${name}Codec`];
  if (isCodec(direct) && direct.name === name) return direct;
  const found = Object.entries(module).find(([k, x]) => k.endsWith("Codec") && isCodec(x) && x.name === name);
  if (found === undefined) throw new Error(`no codec exported for ${name}`);
  return found[1] as XdrCodec<unknown>;
}

function valuesOf(types: readonly Type[]): fc.Arbitrary<unknown> {
  const values = types.filter((t) => t.kind !== "void");
  if (values.length === 0) return fc.constant(undefined);
  if (values.length === 1) return arbitraryOf(values[0]!);
  return fc.tuple(...values.map((t) => arbitraryOf(t)));
}

/**
 * Generates the whole corpus in every mode and lists every decoder: each named type's
 * codec, and each procedure's argument and result codecs.
 */
export async function corpusDecoders(): Promise<Decoder[]> {
  const out: Decoder[] = [];
  for (const files of corpusGroups()) {
    const generated = await generateAllModes(files);
    for (const file of files) {
      const c = compile(file);
      const name = moduleNameOf(file);
      const module = (mode: Mode): GeneratedModule => generated[mode].get(name)!;
      for (const d of c.model.declarations) {
        if (d.kind !== "type") continue;
        const codecs = {} as Record<Mode, XdrCodec<unknown>>;
        for (const mode of modes) codecs[mode] = codecFor(module(mode), d.type.name);
        out.push({ label: `${basename(file)} ${d.type.name}`, codecs, arbitrary: arbitraryOfNamed(d.type) });
      }
      for (const p of c.model.programs) {
        for (const v of p.versions) {
          const services = {} as Record<Mode, ServiceLike>;
          for (const mode of modes) {
            const s = Object.values(module(mode)).find((x): x is ServiceLike => isService(x) && x.program === p.number && x.version === v.number && x.name === v.name);
            if (s === undefined) throw new Error(`${file}: no service description for ${v.name}`);
            services[mode] = s;
          }
          for (const proc of v.procedures) {
            for (const which of ["args", "result"] as const) {
              const codecs = {} as Record<Mode, XdrCodec<unknown>>;
              for (const mode of modes) {
                const entry = Object.values(services[mode].procedures).find((e) => e.name === proc.name);
                if (entry === undefined) throw new Error(`${file}: ${v.name} describes no ${proc.name}`);
                codecs[mode] = entry[which];
              }
              out.push({
                label: `${basename(file)} ${v.name}.${proc.name} ${which}`,
                codecs,
                arbitrary: valuesOf(which === "args" ? proc.args : [proc.result]),
              });
            }
          }
        }
      }
    }
  }
  return out;
}
