import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Mode } from "../runtime/index.js";
import { codecSection } from "./codecs.js";
import { rpcSection } from "./rpc.js";
import { nfsSection } from "./nfs.js";
import { loadBenchModules, type BenchModule } from "./generated.js";
import { Budgets, defaultRounds, sinkChecksum, type RoundsOptions, type Verdict } from "./harness.js";
import { describePinning, pinModes, pinning, type PinMode } from "./peers.js";
import { phaseSection } from "./phases.js";
import { budgetsOf, chartData, LoadSampler, machine, redraw, RESULTS_SCHEMA, ResultCollector, writeReport, type Results, type SectionResults } from "./report.js";
import type { BenchContext, Section } from "./section.js";

/**
 * `npm run bench [-- [--quick] [--pin same|split] SECTION…]`: the benchmark (a measurement,
 * not a test). Every budget it can measure is printed PASS or MISS, or NOT MEASURED
 * when this run could not judge it; the exit status is 0 whatever they say, and non-zero
 * only if the benchmark itself fails.
 *
 * `--pin same` runs the RPC section's client and server on one CPU, `--pin split` on two
 * (taskset); without it the scheduler places them. The header says which.
 *
 * Sections marked `ownProcess` (NFS) run in a Node process of their own; `--node-flag FLAG`
 * (repeatable) starts those processes with a Node or V8 flag, e.g.
 * `--node-flag=--initial-old-space-size=256` to see what a bigger first heap limit does to a
 * client that allocates 64 KiB per call. The header and bench/results.json say which.
 *
 * `--quick` runs every section with few, short rounds and warm-ups (under a minute): a check
 * that everything runs and a first look, not figures to quote. `--redraw` measures nothing:
 * it draws bench/latency.svg again from bench/results.json (after a change to the drawing).
 *
 * Every run writes bench/results.json (every figure, the machine, the arrangement, the load)
 * and bench/latency.svg (bench/report.ts, bench/svg.ts).
 *
 * To add a section (e.g. RPC round trips), export a `Section` from its own module and
 * append it here.
 */
const sections: readonly Section[] = [codecSection, rpcSection, phaseSection, nfsSection];

/** `--quick`: enough rounds for a median, batches long enough to hold a few calls. */
const quickRounds: RoundsOptions = { batchMs: 4, rounds: 5, warmupMs: 30 };

/** The repository root: the first directory above this module with a package.json and the benchmark's IDL. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "idl", "bench.x")) && existsSync(join(dir, "bench", "echo.x"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the rpcgen-ts repository above the benchmark");
    dir = up;
  }
}

async function main(args: readonly string[]): Promise<void> {
  const { values, positionals: argv } = parseArgs({
    args: [...args],
    allowPositionals: true,
    // --section-process FILE: internal, a section run in a process of its own (see `ownProcess`).
    options: {
      pin: { type: "string" },
      quick: { type: "boolean" },
      redraw: { type: "boolean" },
      "node-flag": { type: "string", multiple: true },
      "section-process": { type: "string" },
    },
  });
  const quick = values.quick === true;
  if (values.redraw === true) {
    process.stdout.write(`redrew ${redraw(repoRoot())} from bench/results.json\n`);
    return;
  }
  const pin = values.pin ?? "none";
  const nodeFlags = values["node-flag"] ?? [];
  if (!(pinModes as readonly string[]).includes(pin)) throw new Error(`--pin ${pin}: expected ${pinModes.join(", ")}`);
  const unknown = argv.filter((a) => !sections.some((s) => s.name === a));
  if (unknown.length > 0) {
    throw new Error(`unknown section ${unknown.join(", ")}; sections: ${sections.map((s) => s.name).join(", ")}`);
  }
  const chosen = argv.length === 0 ? sections : sections.filter((s) => argv.includes(s.name));
  const root = repoRoot();
  const work = join(root, ".tmp", "bench");
  const log = (text = ""): void => void process.stdout.write(text + "\n");

  let modules: Promise<ReadonlyMap<Mode, BenchModule>> | undefined;
  const collector = new ResultCollector();
  const ctx: BenchContext = {
    root,
    work,
    budgets: new Budgets(),
    options: quick ? quickRounds : defaultRounds,
    quick,
    pinning: pinning(pin as PinMode),
    results: collector,
    log,
    benchModules() {
      modules ??= (async () => {
        const t0 = performance.now();
        const m = await loadBenchModules({ root, outDir: join(work, "gen"), log });
        log(`generated, compiled and imported idl/bench.x in ${[...m.keys()].join(", ")} mode (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
        return m;
      })();
      return modules;
    },
  };

  const childOut = values["section-process"];
  if (childOut !== undefined) {
    // A section in a process of its own: run it, hand its figures and verdicts back in a file.
    for (const s of chosen) await s.run(ctx);
    const handed: HandedBack = { sections: collector.sections, verdicts: ctx.budgets.verdicts };
    writeFileSync(childOut, JSON.stringify(handed));
    return;
  }

  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  const startedAt = new Date();
  const sampler = new LoadSampler(cpus().length);
  log(`rpcgen-ts benchmark${quick ? " (--quick: rough figures)" : ""} — node ${process.version} (V8 ${process.versions.v8}), ${cpus().length} × ${cpu}`);
  const load = loadavg();
  log(`load average at start: ${load.map((l) => l.toFixed(2)).join(" ")}`);
  log(`pinning: ${describePinning(ctx.pinning)}`);
  const own = chosen.filter((s) => s.ownProcess === true).map((s) => s.name);
  if (own.length > 0) log(`in processes of their own: ${own.join(", ")}${nodeFlags.length > 0 ? `, started with ${nodeFlags.join(" ")}` : ""}`);
  if (load[0]! > cpus().length * 0.75) {
    log(`WARNING: the machine is busy (load ${load[0]!.toFixed(1)} on ${cpus().length} cores): expect noisy figures; ratios are paired per round, absolute ns are not (the RPC section measures other processes' CPU per group, and does not judge a busy group's ratios)`);
  }
  const started = performance.now();
  for (const s of chosen) {
    log();
    log(`== ${s.title} ==`);
    log();
    const t0 = performance.now();
    if (s.ownProcess === true) await runInOwnProcess(s, args, nodeFlags, work, collector, ctx.budgets);
    else await s.run(ctx);
    const seconds = (performance.now() - t0) / 1000;
    collector.section(s.name).seconds = Number(seconds.toFixed(1));
    log(`(${s.name}: ${seconds.toFixed(1)} s)`);
  }

  const v = ctx.budgets.verdicts;
  log();
  log("== Budgets — measurements, not tests: a MISS does not fail the run; NOT MEASURED: this run could not judge it ==");
  log();
  log(v.length > 0 ? ctx.budgets.report() : "(no budget measured by the sections run)");
  log();
  log(
    `${ctx.budgets.count("PASS")} PASS, ${ctx.budgets.count("MISS")} MISS, ${ctx.budgets.count("NOT MEASURED")} NOT MEASURED; ` +
      `total ${((performance.now() - started) / 1000).toFixed(1)} s; checksum ${sinkChecksum()}`,
  );

  const loadSummary = sampler.stop();
  const m = machine();
  const results: Results = {
    schema: RESULTS_SCHEMA,
    quick,
    started: startedAt.toISOString(),
    finished: new Date().toISOString(),
    seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
    command: ["npm run bench --", ...args].join(" "),
    machine: m,
    arrangement: {
      pinning: { ...ctx.pinning, description: describePinning(ctx.pinning) },
      rpc: "headline: tcp, unix, udp servers (and their raw floors' servers) in processes of their own, shm's server in a worker thread; second table: client and server in one thread",
      sections: chosen.map((s) => s.name),
      ownProcess: { sections: own, nodeFlags },
    },
    options: ctx.options,
    load: loadSummary,
    sections: collector.sections,
    budgets: budgetsOf(ctx.budgets),
    chart: chartData(collector, { quick, machine: m, pinning: describePinning(ctx.pinning), load: loadSummary }),
  };
  const out = writeReport(root, results);
  log();
  log(
    `wrote ${out.json} and ${out.svg} (load: 1-min average ${loadSummary.loadavgAtStart[0]} at start, ${loadSummary.load1Max} at most; ` +
      `busy CPUs ${loadSummary.busyCpusMean} on average, others ≥ ${loadSummary.othersCpusMean})`,
  );
}

/** What a section run in a process of its own hands back. */
interface HandedBack {
  readonly sections: Record<string, SectionResults>;
  readonly verdicts: readonly Verdict[];
}

/** Runs section `s` in a child process (this script, the same options), its output shown as it comes, and takes its figures and verdicts. */
async function runInOwnProcess(s: Section, args: readonly string[], nodeFlags: readonly string[], work: string, collector: ResultCollector, budgets: Budgets): Promise<void> {
  mkdirSync(work, { recursive: true });
  const out = join(work, `section-${s.name}.json`);
  writeFileSync(out, "");
  const flags = args.filter((a) => !sections.some((x) => x.name === a));
  const child = spawn(process.execPath, [...nodeFlags, fileURLToPath(import.meta.url), s.name, ...flags, "--section-process", out], { stdio: ["ignore", "inherit", "inherit"] });
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  const text = readFileSync(out, "utf8");
  if (code !== 0 || text === "") throw new Error(`the ${s.name} section's process failed (exit ${code})`);
  const handed = JSON.parse(text) as HandedBack;
  for (const [name, results] of Object.entries(handed.sections)) collector.sections[name] = results;
  budgets.adopt(handed.verdicts);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
