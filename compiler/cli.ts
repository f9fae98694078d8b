import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs as parseArgv } from "node:util";
import { defaultRuntimeModule, modes, parseDefine, type Mode } from "./modes.js";
import { defaultDefines } from "./preprocess.js";
import { version } from "./version.js";

/**
 * The `rpcgen-ts` command, also installed as `rpcgen`. Exit status: 0 on success, 1 when an
 * input has errors, 2 on bad usage.
 */

/** The package installs the same command under both names (package.json `bin`). */
const binNames = ["rpcgen-ts", "rpcgen"] as const;

const usage = `Usage: rpcgen FILE... [options]

Compiles ONC RPC interface definitions (Sun rpcgen .x files) into TypeScript modules:
one module per input, named after it with its extension replaced (service.x and
service.idl both give service.ts, imported as ./service.js).

Options:
  --mode MODE      marshaling strategy: ${modes.join(" | ")} (default: synthesized)
  --out DIR        directory to write the modules to (default: the current directory);
                   --out - writes the module of a single input to standard output
  --stdout         the same as --out -
  --check          check the input only; write nothing
  -D NAME[=VALUE]  define a preprocessor symbol (predefined: ${[...defaultDefines.keys()].join(", ")})
  -I DIR           add a directory to the #include search path (repeatable)
  --runtime MODULE the module generated code imports the runtime from (default: ${defaultRuntimeModule})
  -h, --help       show this help
  -V, --version    show the version

The command is installed as both ${binNames.join(" and ")}. Use \`npx ${binNames[0]}\`: it is
unambiguous, whereas \`npx rpcgen\` outside a project that installed this package runs the
system's C rpcgen (/usr/bin/rpcgen) instead.
`;

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

interface Options {
  files: string[];
  mode: Mode;
  /** The output directory, or `-` for standard output. */
  out: string;
  check: boolean;
  /** -D arguments as given (NAME or NAME=VALUE), for the generated header. */
  defines: string[];
  includeDirs: string[];
  runtimeModule: string;
}

class UsageError extends Error {}

const optionSpec = {
  mode: { type: "string" },
  out: { type: "string" },
  stdout: { type: "boolean" },
  check: { type: "boolean" },
  runtime: { type: "string" },
  D: { type: "string", short: "D", multiple: true },
  I: { type: "string", short: "I", multiple: true },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

/**
 * node:util's parseArgs in non-strict mode, for its tokens: they come in command-line order,
 * so `--help` wins over a bad option after it (but not before it), and each usage error
 * names the option as the user wrote it.
 */
function parseArgs(argv: readonly string[]): Options | "help" | "version" {
  const o: Options = {
    files: [],
    mode: "synthesized",
    out: ".",
    check: false,
    defines: [],
    includeDirs: [],
    runtimeModule: defaultRuntimeModule,
  };
  const { tokens } = parseArgv({ args: [...argv], options: optionSpec, strict: false, allowPositionals: true, tokens: true });
  for (const token of tokens) {
    if (token.kind === "positional") {
      o.files.push(token.value);
      continue;
    }
    if (token.kind !== "option") continue; // the `--` terminator
    const spec = (optionSpec as Readonly<Record<string, { type: string }>>)[token.name];
    if (spec === undefined || !Object.hasOwn(optionSpec, token.name)) throw new UsageError(`unknown option '${token.rawName}'`);
    if (spec.type === "boolean" && token.value !== undefined) throw new UsageError(`${token.rawName} takes no value`);
    if (spec.type === "string" && token.value === undefined) throw new UsageError(`${token.rawName} needs a value`);
    const value = token.value ?? "";
    switch (token.name) {
      case "help":
        return "help";
      case "version":
        return "version";
      case "check":
        o.check = true;
        break;
      case "stdout":
        o.out = "-";
        break;
      case "out":
        o.out = value;
        break;
      case "runtime":
        o.runtimeModule = value;
        break;
      case "mode":
        if (!(modes as readonly string[]).includes(value)) throw new UsageError(`unknown mode '${value}' (expected ${modes.join(", ")})`);
        o.mode = value as Mode;
        break;
      case "I":
        o.includeDirs.push(value);
        break;
      case "D":
        if (parseDefine(value) === undefined) throw new UsageError(`bad -D '${value}': expected NAME or NAME=VALUE`);
        o.defines.push(value);
        break;
    }
  }
  if (o.files.length === 0) throw new UsageError("no input files");
  if (o.out === "-" && o.files.length > 1) {
    throw new UsageError(`standard output (--out -) takes the module of one input, not ${o.files.length}`);
  }
  return o;
}

/**
 * Where each input's module goes, refusing before anything is read or written two inputs that
 * would write one file (`a/svc.x b/svc.x`, `svc.x svc.idl`: the second would silently replace
 * the first) and an input that would be overwritten by its own module (`svc.ts`).
 */
function outputPaths(o: Options, moduleNameOf: (file: string) => string): string[] {
  const paths = o.files.map((file) => join(o.out, `${moduleNameOf(file)}.ts`));
  if (o.out === "-" || o.check) return paths;
  const first = new Map<string, string>();
  o.files.forEach((file, i) => {
    const target = resolve(paths[i]!);
    if (target === resolve(file)) throw new UsageError(`'${file}' would be overwritten by its own module; rename it or use --out`);
    const other = first.get(target);
    if (other !== undefined) {
      throw new UsageError(`'${other}' and '${file}' would both be written to '${paths[i]}'; compile them with different --out directories`);
    }
    first.set(target, file);
  });
  return paths;
}

/** Runs the command; returns the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const usageError = (e: unknown): number => {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`rpcgen: ${e.message}\n\n${usage}`);
    return 2;
  };
  let options: Options | "help" | "version";
  try {
    options = parseArgs(argv);
  } catch (e) {
    return usageError(e);
  }
  if (options === "help") {
    io.stdout(usage);
    return 0;
  }
  if (options === "version") {
    io.stdout(`rpcgen-ts ${version}\ncommands: ${binNames.join(", ")}\n`);
    return 0;
  }
  // The compiler (chevrotain; ts-morph and prettier when emitting) loads only for a run that compiles.
  const { generate, moduleNameOf } = await import("./compile.js");
  let paths: string[];
  try {
    paths = outputPaths(options, moduleNameOf);
  } catch (e) {
    return usageError(e);
  }

  const { outputs, diagnostics } = await generate({
    files: options.files,
    mode: options.mode,
    defines: options.defines,
    includeDirs: options.includeDirs,
    runtimeModule: options.runtimeModule,
    check: options.check,
  });
  for (const module of outputs) {
    if (options.out === "-") {
      io.stdout(module.text);
      continue;
    }
    mkdirSync(resolve(options.out), { recursive: true });
    writeFileSync(paths[options.files.indexOf(module.source)]!, module.text);
  }
  for (const d of diagnostics) io.stderr(d.text);
  return diagnostics.length > 0 ? 1 : 0;
}
