/**
 * The marshaling modes and the default runtime module, apart from the emitter so that the
 * command can list and check them without loading ts-morph and prettier (`--help`, `--check`).
 */

export type Mode = "classic" | "synthesized" | "descriptor";
export const modes: readonly Mode[] = ["classic", "synthesized", "descriptor"];

/** The module generated code imports the runtime from, unless told otherwise. */
export const defaultRuntimeModule = "rpcgen-ts/runtime";
