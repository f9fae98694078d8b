import { mkdirSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { frontEnd, moduleNameOf } from "./compile.js";
import { formatDiagnostic } from "./diagnostics.js";
import { defaultRuntimeModule, emitModule, modes, type Mode } from "./emit/module.js";
import { defaultDefines } from "./preprocess.js";
import { readSource, SourceReadError } from "./source.js";
import { version } from "./version.js";

/**
 * The `rpcgen` command. Exit status: 0 on success, 1 when an input has errors, 2 on bad usage.
 */

const usage = `Usage: rpcgen FILE... [options]

Compiles ONC RPC interface definitions (Sun rpcgen .x files) into TypeScript modules:
one FILE.ts per input, with its types, codecs and program stubs.

Options:
  --mode MODE      marshaling strategy: ${modes.join(" | ")} (default: synthesized)
  --out DIR        directory to write the modules to (default: the current directory)
  --check          check the input only; write nothing
  -D NAME[=VALUE]  define a preprocessor symbol (predefined: ${[...defaultDefines.keys()].join(", ")})
  -I DIR           add a directory to the #include search path
  --runtime MODULE the module generated code imports the runtime from (default: ${defaultRuntimeModule})
  -h, --help       show this help
  -V, --version    show the version
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
  out: string;
  check: boolean;
  defines: Map<string, string>;
  /** -D flags as given, for the generated header. */
  defineFlags: string[];
  includeDirs: string[];
  runtimeModule: string;
}

class UsageError extends Error {}

/** Why an input file cannot be read, in words rather than an errno code. */
const readErrors: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EISDIR: "it is a directory",
  EACCES: "permission denied",
};

function parseArgs(argv: readonly string[]): Options | "help" | "version" {
  const o: Options = {
    files: [],
    mode: "synthesized",
    out: ".",
    check: false,
    defines: new Map(defaultDefines),
    defineFlags: [],
    includeDirs: [],
    runtimeModule: defaultRuntimeModule,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (name: string): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    if (arg === "-h" || arg === "--help") return "help";
    if (arg === "-V" || arg === "--version") return "version";
    if (arg === "--check") o.check = true;
    else if (arg === "--mode" || arg.startsWith("--mode=")) {
      const m = arg === "--mode" ? value(arg) : arg.slice("--mode=".length);
      if (!(modes as readonly string[]).includes(m)) throw new UsageError(`unknown mode '${m}' (expected ${modes.join(", ")})`);
      o.mode = m as Mode;
    } else if (arg === "--out" || arg.startsWith("--out=")) o.out = arg === "--out" ? value(arg) : arg.slice(6);
    else if (arg === "--runtime" || arg.startsWith("--runtime=")) {
      o.runtimeModule = arg === "--runtime" ? value(arg) : arg.slice("--runtime=".length);
    }
    else if (arg === "-I" || (arg.startsWith("-I") && arg.length > 2)) o.includeDirs.push(arg === "-I" ? value(arg) : arg.slice(2));
    else if (arg === "-D" || (arg.startsWith("-D") && arg.length > 2)) {
      const d = arg === "-D" ? value(arg) : arg.slice(2);
      const m = /^([A-Za-z_]\w*)(?:=(.*))?$/s.exec(d);
      if (m === null) throw new UsageError(`bad -D '${d}': expected NAME or NAME=VALUE`);
      o.defines.set(m[1]!, m[2] ?? "1");
      o.defineFlags.push(`-D${d}`);
    } else if (arg.startsWith("-") && arg !== "-") throw new UsageError(`unknown option '${arg}'`);
    else o.files.push(arg);
  }
  if (o.files.length === 0) throw new UsageError("no input files");
  return o;
}

/** Runs the command; returns the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let options: Options | "help" | "version";
  try {
    options = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`rpcgen: ${e.message}\n\n${usage}`);
    return 2;
  }
  if (options === "help") {
    io.stdout(usage);
    return 0;
  }
  if (options === "version") {
    io.stdout(`rpcgen-ts ${version}\n`);
    return 0;
  }

  let failed = false;
  for (const file of options.files) {
    let text: string;
    try {
      text = readSource(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = e instanceof SourceReadError ? e.message : (readErrors[code ?? ""] ?? (e as Error).message);
      io.stderr(`rpcgen: error: cannot read '${file}': ${why}\n`);
      failed = true;
      continue;
    }
    const result = frontEnd({ path: file, text }, { defines: options.defines, includeDirs: options.includeDirs });
    if (result.model === undefined || result.layout === undefined) {
      for (const d of result.diagnostics) io.stderr(formatDiagnostic(d) + "\n");
      const n = result.diagnostics.length;
      io.stderr(`${n} error${n === 1 ? "" : "s"} in ${file}\n`);
      failed = true;
      continue;
    }
    if (options.check) continue;
    const command = ["rpcgen", basename(file), "--mode", options.mode, ...options.defineFlags].join(" ");
    const module = await emitModule(result.model, result.layout, {
      mode: options.mode,
      sourcePath: file,
      command,
      runtimeModule: options.runtimeModule,
    });
    mkdirSync(resolve(options.out), { recursive: true });
    writeFileSync(join(options.out, `${moduleNameOf(file)}.ts`), module);
  }
  return failed ? 1 : 0;
}
