/**
 * The compiler's options that the command checks before it loads the compiler (marshaling
 * modes, the default runtime module, `-D`), so that `--help`, `--version` and a usage error
 * load neither chevrotain nor, unless emitting, ts-morph and prettier.
 */

export type Mode = "classic" | "synthesized" | "descriptor";
export const modes: readonly Mode[] = ["classic", "synthesized", "descriptor"];

/** The module generated code imports the runtime from, unless told otherwise. */
export const defaultRuntimeModule = "@rpcgen-ts/runtime";

/** A `-D` argument's name and value (`NAME` means `NAME=1`), or undefined if it is neither form. */
export function parseDefine(flag: string): [name: string, value: string] | undefined {
  const m = /^([A-Za-z_]\w*)(?:=(.*))?$/s.exec(flag);
  return m === null ? undefined : [m[1]!, m[2] ?? "1"];
}
