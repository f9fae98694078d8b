import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem, type as osType } from "node:os";
import { join } from "node:path";
import { ratio, type Budgets, type RoundsOptions, type Timing } from "./harness.js";
import type { Pinning } from "./peers.js";
import { phaseNames, type PhaseName, type PhaseRow, type PhaseTransport } from "./phases.js";
import type { GroupLoad, ResultSink } from "./section.js";
import { latencySvg } from "./svg.js";

/**
 * What a run leaves for users: bench/results.json (every figure of every section, the
 * machine, the arrangement and pinning, the load during the run, the budgets) and
 * bench/latency.svg (bench/svg.ts), both written by `npm run bench` and `npm run bench --
 * --quick`. The chart's data are in results.json under `chart`, so the SVG can be redrawn
 * from a results file alone (`writeSvg`).
 */

export const RESULTS_SCHEMA = "rpcgen-ts-bench/1";

export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly node: string;
  readonly v8: string;
  readonly os: string;
}

export interface LoadSample {
  /** Seconds since the run started. */
  readonly t: number;
  /** 1-minute load average. */
  readonly load1: number;
  /** CPUs busy over the last interval, machine-wide (this benchmark included). */
  readonly busyCpus: number;
  /** CPUs this benchmark's main process used over the interval (its child processes not included). */
  readonly benchCpus: number;
}

export interface LoadSummary {
  readonly loadavgAtStart: readonly number[];
  readonly loadavgAtEnd: readonly number[];
  readonly load1Max: number;
  readonly busyCpusMean: number;
  readonly busyCpusMax: number;
  /** Machine-wide busy CPUs less this process's own, averaged: a floor on what others used. */
  readonly othersCpusMean: number;
  readonly samples: readonly LoadSample[];
}

export interface Figure {
  readonly ns: number;
  readonly q1: number;
  readonly q3: number;
  readonly rounds: number;
  readonly batch: number;
  readonly samples: readonly number[];
}

export interface GroupResults extends GroupLoad {
  readonly name: string;
  readonly figures: Readonly<Record<string, Figure>>;
}

export interface SectionResults {
  seconds?: number;
  readonly groups: GroupResults[];
  readonly notes: Record<string, unknown>;
}

/** One bar pair of the latency chart: a mode's Null() over a transport, and the transport's floor. */
export interface LatencyBar {
  readonly mode: string;
  readonly transport: PhaseTransport;
  /** Where the server ran: `process`, `worker` or `thread`. */
  readonly server: string;
  readonly calls: number;
  /** Median ns per phase (observed calls). */
  readonly phases: Readonly<Record<PhaseName, number>>;
  /** The RPC section's median for the same case, timed with nobody listening, if it ran. */
  readonly timedNs?: number;
  /** That figure ÷ the floor drawn beside it, paired per round (the RPC section's ratio), when both were timed in one group. */
  readonly timedRatio?: number;
}

export interface FloorBar {
  readonly transport: PhaseTransport;
  readonly name: string;
  readonly ns: number;
  /** Why it stands in for the floor the RPC section judges against, if it does (a spinning floor that could not spin). */
  readonly note?: string;
}

export interface CopyBar {
  readonly mode: string;
  readonly transport: PhaseTransport;
  readonly proc: string;
  /** Client + server copies per layer. */
  readonly copies: { readonly stub: number; readonly runtime: number; readonly wire: number };
  readonly bytes: number;
}

/** What bench/latency.svg is drawn from. */
export interface ChartData {
  readonly title: string;
  /** Lines under the title: the machine, the arrangement, the load. */
  readonly subtitle: readonly string[];
  readonly latency: readonly LatencyBar[];
  readonly floors: readonly FloorBar[];
  readonly copies: readonly CopyBar[];
  readonly copiesProc: string;
}

export interface Results {
  readonly schema: typeof RESULTS_SCHEMA;
  readonly quick: boolean;
  readonly started: string;
  readonly finished: string;
  readonly seconds: number;
  readonly command: string;
  readonly machine: Machine;
  readonly arrangement: {
    readonly pinning: Pinning & { readonly description: string };
    readonly rpc: string;
    readonly sections: readonly string[];
    /** Sections run in processes of their own (`ownProcess`), and the Node flags those processes got (`--node-flag`). */
    readonly ownProcess: { readonly sections: readonly string[]; readonly nodeFlags: readonly string[] };
  };
  readonly options: RoundsOptions;
  readonly load: LoadSummary;
  readonly sections: Readonly<Record<string, SectionResults>>;
  readonly budgets: readonly { readonly budget: string; readonly measured: string; readonly status: string; readonly why?: string }[];
  readonly chart: ChartData;
}

export function machine(): Machine {
  const c = cpus();
  let os = `${osType()} ${release()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync("/etc/os-release", "utf8"));
    if (pretty !== null) os = `${pretty[1]}, ${os}`;
  } catch {
    // no os-release: the kernel alone
  }
  return { cpuModel: c[0]?.model.trim() ?? "unknown", cores: c.length, memoryBytes: totalmem(), node: process.version, v8: process.versions.v8, os };
}

/** Machine-wide busy and total jiffies from /proc/stat (undefined off Linux). */
function cpuTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.reduce((s, x) => s + x, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Samples the machine's load once a second while the benchmark runs. */
export class LoadSampler {
  private readonly samples: LoadSample[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = performance.now();
  private readonly atStart = loadavg();
  private last = { ticks: cpuTicks(), cpu: process.cpuUsage(), at: performance.now() };

  constructor(private readonly cores: number) {
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  private sample(): void {
    const ticks = cpuTicks();
    const cpu = process.cpuUsage();
    const at = performance.now();
    const seconds = (at - this.last.at) / 1000;
    const prev = this.last.ticks;
    const busy = ticks !== undefined && prev !== undefined && ticks.total > prev.total ? ((ticks.busy - prev.busy) / (ticks.total - prev.total)) * this.cores : NaN;
    const bench = seconds > 0 ? (cpu.user - this.last.cpu.user + cpu.system - this.last.cpu.system) / 1e6 / seconds : NaN;
    this.samples.push({ t: round((at - this.t0) / 1000, 1), load1: round(loadavg()[0]!, 2), busyCpus: round(busy, 2), benchCpus: round(bench, 2) });
    this.last = { ticks, cpu, at };
  }

  stop(): LoadSummary {
    clearInterval(this.timer);
    this.sample();
    const s = this.samples.filter((x) => Number.isFinite(x.busyCpus));
    const mean = (xs: number[]): number => (xs.length === 0 ? NaN : round(xs.reduce((a, b) => a + b, 0) / xs.length, 2));
    const end = loadavg();
    return {
      loadavgAtStart: this.atStart.map((x) => round(x, 2)),
      loadavgAtEnd: end.map((x) => round(x, 2)),
      load1Max: round(Math.max(this.atStart[0]!, end[0]!, ...this.samples.map((x) => x.load1)), 2),
      busyCpusMean: mean(s.map((x) => x.busyCpus)),
      busyCpusMax: round(Math.max(0, ...s.map((x) => x.busyCpus)), 2),
      othersCpusMean: mean(s.map((x) => Math.max(0, x.busyCpus - x.benchCpus))),
      samples: this.samples,
    };
  }
}

const round = (x: number, digits: number): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

/** Collects what sections report (the ResultSink every section is given). */
export class ResultCollector implements ResultSink {
  readonly sections: Record<string, SectionResults> = {};

  section(name: string): SectionResults {
    return (this.sections[name] ??= { groups: [], notes: {} });
  }

  group(section: string, group: string, timings: ReadonlyMap<string, Timing>, load?: GroupLoad): void {
    const figures: Record<string, Figure> = {};
    for (const [label, t] of timings) figures[label] = { ns: t.ns, q1: t.q1, q3: t.q3, rounds: t.rounds, batch: t.batch, samples: [...t.samples] };
    this.section(section).groups.push({ name: group, ...(load?.cpu === undefined ? {} : { cpu: load.cpu }), ...(load?.warning === undefined ? {} : { warning: load.warning }), figures });
  }

  note(section: string, key: string, value: unknown): void {
    this.section(section).notes[key] = value;
  }

  /** A figure of a section by label (the first group that timed it). */
  figure(section: string, label: string): Figure | undefined {
    for (const g of this.sections[section]?.groups ?? []) {
      const f = g.figures[label];
      if (f !== undefined) return f;
    }
    return undefined;
  }
}

const floorNames: Record<PhaseTransport, string> = {
  inproc: "microtask hop",
  shm: "SAB ping-pong, spinning",
  tcp: "raw TCP ping-pong",
  unix: "raw Unix-socket ping-pong",
  udp: "raw UDP ping-pong",
};

/** The chart's bars: the phase section's Null() rows, with the RPC section's floors and timed figures when it ran. */
export function chartData(c: ResultCollector, head: { quick: boolean; machine: Machine; pinning: string; load: LoadSummary }): ChartData {
  const rows = (c.sections["phases"]?.notes["rows"] as PhaseRow[] | undefined) ?? [];
  const arrangementOf = (t: PhaseTransport): string => (t === "inproc" ? "thread" : "process");
  const invalid = (c.sections["rpc"]?.notes["invalidFloors"] as Record<string, string> | undefined) ?? {};
  const floors: FloorBar[] = [];
  /** The figure each transport's floor bar draws. */
  const floorFigure = new Map<PhaseTransport, Figure>();
  for (const t of new Set(rows.map((r) => r.transport))) {
    const label = `${arrangementOf(t)}/floor/${t}/Null`;
    const f = c.figure("rpc", label);
    if (f === undefined) continue;
    if (invalid[label] !== undefined) {
      // A spinning floor whose threads could not both spin measured the scheduler: the
      // sleeping floor stands in, and says so.
      const sleep = c.figure("rpc", "process/floor/shm/sleep-async");
      if (sleep === undefined) continue;
      floors.push({ transport: t, name: "SAB ping-pong, sleeping (waitAsync)", ns: sleep.ns, note: "the spinning floor could not spin in this run" });
      floorFigure.set(t, sleep);
      continue;
    }
    floors.push({ transport: t, name: floorNames[t], ns: f.ns });
    floorFigure.set(t, f);
  }
  const latency: LatencyBar[] = rows
    .filter((r) => r.proc === "Null")
    .map((r) => {
      const timed = c.figure("rpc", `${arrangementOf(r.transport)}/${r.mode}/${r.transport}/Null`);
      const floor = floorFigure.get(r.transport);
      const paired = timed !== undefined && floor !== undefined && timed.samples.length === floor.samples.length && timed.samples.length > 0;
      return {
        mode: r.mode,
        transport: r.transport,
        server: r.server,
        calls: r.calls,
        phases: r.phases,
        ...(timed === undefined ? {} : { timedNs: timed.ns }),
        ...(paired ? { timedRatio: ratio(timed as Timing, floor as Timing) } : {}),
      };
    });
  const copiesProc = "MaxArg";
  const copies: CopyBar[] = rows
    .filter((r) => r.proc === copiesProc)
    .map((r) => ({
      mode: r.mode,
      transport: r.transport,
      proc: r.proc,
      copies: { stub: r.copies.client.stub + r.copies.server.stub, runtime: r.copies.client.runtime + r.copies.server.runtime, wire: r.copies.client.wire + r.copies.server.wire },
      bytes:
        r.bytesCopied.client.stub + r.bytesCopied.client.runtime + r.bytesCopied.client.wire + r.bytesCopied.server.stub + r.bytesCopied.server.runtime + r.bytesCopied.server.wire,
    }));
  const m = head.machine;
  const l = head.load;
  const during = (name: string): number[] =>
    (c.sections[name]?.groups ?? []).flatMap((g) => (g.cpu === undefined ? [] : [g.cpu.others]));
  const timedOthers = during("rpc");
  const phaseCpu = c.sections["phases"]?.notes["cpu"] as { others: number } | undefined;
  const busy = [
    phaseCpu === undefined ? "" : `other processes used ${phaseCpu.others.toFixed(2)} CPUs while the phases were measured`,
    timedOthers.length === 0 ? "" : `${Math.min(...timedOthers).toFixed(2)}–${Math.max(...timedOthers).toFixed(2)} while the RPC groups were timed`,
  ]
    .filter((x) => x !== "")
    .join(", ");
  return {
    title: `rpcgen-ts: the components of RPC latency, Null()${head.quick ? " (quick run: rough figures)" : ""}`,
    subtitle: [
      `${m.cores} × ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, Node ${m.node}, ${m.os}`,
      `tcp, unix, udp: server in its own process; shm: worker thread; inproc: one thread. Pinning: ${head.pinning}`,
      `load: 1-min average ${l.loadavgAtStart[0]?.toFixed(2)} at start, ${l.load1Max.toFixed(2)} at most; busy CPUs ${fmt(l.busyCpusMean)} on average (others ≥ ${fmt(l.othersCpusMean)})`,
      ...(busy === "" ? [] : [`${busy[0]!.toUpperCase()}${busy.slice(1)}`]),
    ],
    latency,
    floors,
    copies,
    copiesProc,
  };
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "?");

export function budgetsOf(b: Budgets): Results["budgets"] {
  return b.verdicts.map((v) => ({ budget: v.budget, measured: v.measured, status: v.status, ...(v.why === undefined ? {} : { why: v.why }) }));
}

/** Writes `file` whole (aside, then renamed), so a reader never sees half of it. */
function writeWhole(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/** Writes bench/results.json and bench/latency.svg under `root`; returns their paths. */
export function writeReport(root: string, results: Results): { json: string; svg: string } {
  const json = join(root, "bench", "results.json");
  const svg = join(root, "bench", "latency.svg");
  writeWhole(json, JSON.stringify(results, null, 1) + "\n");
  writeWhole(svg, latencySvg(results.chart));
  return { json, svg };
}

/** Draws bench/latency.svg again from bench/results.json; returns its path. */
export function redraw(root: string): string {
  const svg = join(root, "bench", "latency.svg");
  writeWhole(svg, svgOfResults(readFileSync(join(root, "bench", "results.json"), "utf8")));
  return svg;
}

/** Draws the chart of a results file (as written by writeReport), checking its shape first. */
export function svgOfResults(text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`results: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof parsed !== "object" || parsed === null) throw new Error("results: expected an object");
  const r = parsed as Partial<Results>;
  if (r.schema !== RESULTS_SCHEMA) throw new Error(`results: schema ${JSON.stringify(r.schema)}, expected ${JSON.stringify(RESULTS_SCHEMA)}`);
  if (r.chart === undefined) throw new Error("results: no chart");
  return latencySvg(r.chart);
}

export { phaseNames };
