import type { Mode } from "../runtime/index.js";
import type { BenchModule } from "./generated.js";
import type { Budgets, RoundsOptions, Timing } from "./harness.js";
import type { Pinning } from "./peers.js";

/** What a section gets from bench/run.ts. */
export interface BenchContext {
  /** The repository root. */
  readonly root: string;
  /** Scratch space for generated and compiled files (under the git-ignored .tmp/). */
  readonly work: string;
  readonly budgets: Budgets;
  readonly options: RoundsOptions;
  /** `--quick`: fewer and shorter rounds, shorter warm-ups (a smoke run; its figures are rough). */
  readonly quick: boolean;
  /** Where the RPC section runs its clients and servers (`--pin`). */
  readonly pinning: Pinning;
  /** Collects every figure for bench/results.json and the chart (bench/report.ts). */
  readonly results: ResultSink;
  /** idl/bench.x generated, compiled and imported in every mode (once per run, shared). */
  benchModules(): Promise<ReadonlyMap<Mode, BenchModule>>;
  log(text?: string): void;
}

/** How sections hand their figures to the report. */
export interface ResultSink {
  /** One timed group: every case's timing, and the CPU the rest of the machine used meanwhile if measured. */
  group(section: string, group: string, timings: ReadonlyMap<string, Timing>, load?: GroupLoad): void;
  /** Anything else a section reports (JSON-serialisable), under `sections[section].notes[key]`. */
  note(section: string, key: string, value: unknown): void;
}

export interface GroupLoad {
  /** CPUs used by the benchmark's own processes and by every other process, averaged over the group. */
  readonly cpu?: { readonly ours: number; readonly others: number };
  /** Why the group's ratios were not judged, if so. */
  readonly warning?: string;
}

/**
 * One part of the benchmark. `npm run bench -- NAME…` runs only the named sections; to add
 * one, write a module exporting a Section and list it in bench/run.ts.
 */
export interface Section {
  readonly name: string;
  readonly title: string;
  /**
   * Run in a Node process of its own, as an app runs its client: a fresh heap, so the
   * collections its clients' allocations cause cost what they cost there, not what the
   * earlier sections' modules and figures make them cost in a long benchmark process.
   */
  readonly ownProcess?: boolean;
  run(ctx: BenchContext): Promise<void>;
}
