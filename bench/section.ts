import type { Mode } from "../runtime/index.js";
import type { BenchModule } from "./generated.js";
import type { Budgets, RoundsOptions } from "./harness.js";
import type { Pinning } from "./peers.js";

/** What a section gets from bench/run.ts. */
export interface BenchContext {
  /** The repository root. */
  readonly root: string;
  /** Scratch space for generated and compiled files (under the git-ignored .tmp/). */
  readonly work: string;
  readonly budgets: Budgets;
  readonly options: RoundsOptions;
  /** Where the RPC section runs its clients and servers (`--pin`). */
  readonly pinning: Pinning;
  /** idl/bench.x generated, compiled and imported in every mode (once per run, shared). */
  benchModules(): Promise<ReadonlyMap<Mode, BenchModule>>;
  log(text?: string): void;
}

/**
 * One part of the benchmark. `npm run bench -- NAME…` runs only the named sections; to add
 * one, write a module exporting a Section and list it in bench/run.ts.
 */
export interface Section {
  readonly name: string;
  readonly title: string;
  run(ctx: BenchContext): Promise<void>;
}
