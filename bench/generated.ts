import { execFile } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import type { Mode, XdrCodec } from "../runtime/index.js";
import type { BenchRecord } from "./handwritten.js";

/**
 * The modules under test, made the way a user makes them: the compiler's command compiles
 * idl/bench.x once per mode, the project's `tsc` compiles the output, and the benchmark
 * imports the JavaScript. The generated code imports the same compiled runtime the
 * benchmark itself uses (`../runtime/index.js` in the bench build), so there is one copy
 * of every runtime class in the process.
 */

const run = promisify(execFile);

/**
 * The compiled runtime this module imports (bench/tsconfig.json emits `runtime/` beside
 * `bench/`, with declarations so the generated modules type-check against it).
 */
const runtimeDir = fileURLToPath(new URL("../runtime/", import.meta.url));

export const allModes: readonly Mode[] = ["classic", "synthesized", "descriptor"];

/** What the benchmark needs from a generated bench.x module (checked on import). */
export interface BenchModule {
  readonly mode: Mode;
  readonly bench_recordCodec: XdrCodec<BenchRecord>;
  readonly bench_dataCodec: XdrCodec<Uint8Array>;
  /** The whole module, for sections that want more (e.g. the BenchV1 service description). */
  readonly exports: Readonly<Record<string, unknown>>;
  /** The generated TypeScript source, for inspection. */
  readonly sourcePath: string;
  /** bench/echo.x generated in the same mode (the RPC section's comparison with gRPC). */
  readonly echo: { readonly exports: Readonly<Record<string, unknown>>; readonly sourcePath: string };
}

export interface GenerateOptions {
  /** The repository root. */
  readonly root: string;
  /** A scratch directory, emptied first. */
  readonly outDir: string;
  readonly log: (text: string) => void;
}

/**
 * Generates TypeScript from `inputs` in `mode` into `outDir` with the compiler's command
 * (compiler/dist, built by `npm run build`), in a child process as a user's build runs it:
 * the benchmark's heap then holds none of the compiler (ts-morph, TypeScript, prettier), and
 * the full collections that the clients' allocations cause cost what they cost in an app.
 */
export async function generateWithCli(root: string, inputs: readonly string[], mode: Mode, runtimeModule: string, outDir: string): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  try {
    await run(process.execPath, [join(root, "compiler", "dist", "bin.js"), ...inputs, "--mode", mode, "--runtime", runtimeModule, "--out", outDir], { cwd: root });
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? String(e);
    throw new Error(`${inputs.map((f) => relative(root, f)).join(" and ")} do not compile in ${mode} mode:\n${stderr}`);
  }
}

/** Generates, compiles and imports idl/bench.x (and bench/echo.x) in every mode. */
export async function loadBenchModules(options: GenerateOptions): Promise<Map<Mode, BenchModule>> {
  const { root, outDir } = options;
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const inputs = [join(root, "idl", "bench.x"), join(root, "bench", "echo.x")];

  let runtimeModule = relative(join(outDir, "mode"), join(runtimeDir, "index.js")).split("\\").join("/");
  if (!runtimeModule.startsWith(".")) runtimeModule = `./${runtimeModule}`;
  for (const mode of allModes) await generateWithCli(root, inputs, mode, runtimeModule, join(outDir, mode));

  // One tsc run for all three: strict, as a user would compile them; .js lands beside .ts.
  writeFileSync(
    join(outDir, "tsconfig.json"),
    JSON.stringify(
      {
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2022"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          isolatedModules: true,
          verbatimModuleSyntax: true,
          skipLibCheck: true,
          types: [],
        },
        include: allModes.flatMap((m) => [`${m}/bench.ts`, `${m}/echo.ts`]),
      },
      null,
      2,
    ),
  );
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  try {
    await run(process.execPath, [tsc, "-p", join(outDir, "tsconfig.json")], { cwd: root });
  } catch (e) {
    // tsc still emits on type errors. A benchmark measures what was emitted, so it goes on
    // when every module was, and says so loudly; the test suite is what fails on them.
    const out = (e as { stdout?: unknown }).stdout;
    const text = typeof out === "string" ? out : String(e);
    if (!allModes.every((m) => existsSync(join(outDir, m, "bench.js")) && existsSync(join(outDir, m, "echo.js")))) {
      throw new Error(`compiling the generated modules failed:\n${text}`);
    }
    const errors = text.split("\n").filter((l) => /error TS\d+/.test(l));
    options.log(`WARNING: the generated modules do not type-check (${errors.length} errors); measuring the emitted JS anyway:`);
    for (const l of errors.slice(0, 3)) options.log(`  ${relative(root, l.trim())}`);
    if (errors.length > 3) options.log(`  … (${errors.length - 3} more)`);
  }

  const modules = new Map<Mode, BenchModule>();
  for (const mode of allModes) {
    const sourcePath = join(outDir, mode, "bench.ts");
    const ns: unknown = await import(pathToFileURL(join(outDir, mode, "bench.js")).href);
    const exports = asRecord(ns, sourcePath);
    const echoPath = join(outDir, mode, "echo.ts");
    const echo = { exports: asRecord(await import(pathToFileURL(join(outDir, mode, "echo.js")).href), echoPath), sourcePath: echoPath };
    modules.set(mode, {
      mode,
      bench_recordCodec: codecExport<BenchRecord>(exports, "bench_recordCodec", sourcePath),
      bench_dataCodec: codecExport<Uint8Array>(exports, "bench_dataCodec", sourcePath),
      exports,
      sourcePath,
      echo,
    });
  }
  return modules;
}

function asRecord(v: unknown, where: string): Readonly<Record<string, unknown>> {
  if (typeof v !== "object" || v === null) throw new Error(`${where}: not a module namespace`);
  return v as Record<string, unknown>;
}

/**
 * A codec export, checked for shape. Its value type cannot be checked statically (the module
 * does not exist when the benchmark is compiled); the codec section's cross-check that
 * every implementation produces the same bytes stands in for it.
 */
function codecExport<T>(exports: Readonly<Record<string, unknown>>, name: string, where: string): XdrCodec<T> {
  const c = exports[name];
  if (typeof c !== "object" || c === null) throw new Error(`${where}: no export ${name}`);
  const { encode, decode } = c as { encode?: unknown; decode?: unknown };
  if (typeof encode !== "function" || typeof decode !== "function") throw new Error(`${where}: ${name} is not a codec`);
  return c as XdrCodec<T>;
}
