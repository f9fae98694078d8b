/**
 * Timing helpers for `npm run bench`: calibrated batches, warm-up, interleaved rounds,
 * medians, tables and budget verdicts. Nothing here knows about XDR; a benchmark section
 * hands in cases and gets timings back.
 *
 * Method. A case is a function that runs `n` operations and returns a checksum number
 * (folded into `sink`, so V8 cannot drop the work as dead code). Each case is calibrated to
 * a batch of about `batchMs`, warmed up, and then all the cases of a group are timed in
 * rounds, one batch per case per round, round-robin: a slow spell on this shared machine
 * hits every case of the round, not just one, and ratios between cases stay meaningful
 * (the order rotates from round to round).
 * The reported figure is the median over rounds; the spread is the interquartile range.
 * A ratio between two cases of a group is the median of their per-round ratios: both
 * batches of a pair ran within milliseconds of each other, so drift in the machine's load
 * cancels out of each pair.
 *
 * No forced GC between batches: with `--expose-gc`, a full collection before every batch
 * made V8 flush the bytecode of the cases not run since (bytecode ageing), so each batch
 * re-parsed and re-optimized its code and the libraries measured 10-100× slow.
 */

/** Runs `n` operations; returns a number derived from their results. */
export type Batch = (n: number) => number;

export interface Case {
  /** Unique within its group: the key of the timing returned. */
  readonly label: string;
  readonly run: Batch;
}

export interface Timing {
  /** Median ns per operation over the rounds. */
  readonly ns: number;
  /** First and third quartile of ns per operation. */
  readonly q1: number;
  readonly q3: number;
  readonly rounds: number;
  /** Operations per batch. */
  readonly batch: number;
  /** ns per operation of each round, in round order (for paired ratios). */
  readonly samples: readonly number[];
}

export interface RoundsOptions {
  /** Target duration of one batch. */
  readonly batchMs: number;
  /** Rounds timed after warm-up (the median is over these). */
  readonly rounds: number;
  /** Warm-up per case before timing starts (lets the JIT settle). */
  readonly warmupMs: number;
}

/** Defaults sized so ~30 cases take ~20 s on a quiet machine; BENCH_ROUNDS, BENCH_BATCH_MS, BENCH_WARMUP_MS override. */
export const defaultRounds: RoundsOptions = {
  batchMs: envNumber("BENCH_BATCH_MS", 15),
  rounds: envNumber("BENCH_ROUNDS", 21),
  warmupMs: envNumber("BENCH_WARMUP_MS", 150),
};

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name}=${raw}: expected a positive number`);
  return v;
}

let sinkValue = 0;

/** Folds a checksum into a value that is printed at the end, so no result is dead. */
export function sink(x: number): void {
  sinkValue = (sinkValue + x) | 0;
}

export function sinkChecksum(): number {
  return sinkValue;
}

/**
 * Where decode loops store what they decoded (`retained[i & 7] = value`). A decoded value that
 * does not escape can be scalar-replaced by V8 once the decoder is inlined, and its unread
 * fields never computed: the hand-written floor would then measure less work than the rest.
 */
export const retained: unknown[] = new Array<unknown>(8).fill(undefined);

/**
 * A copy of `loop` with JIT feedback of its own. V8 shares type feedback between closures
 * made from one function literal, so cases built by one factory would all run one
 * optimized loop whose call sites are polymorphic over every case's target; a copy
 * compiled from the source gets monomorphic ones, as real code with one codec would have.
 * `loop` must reference nothing but its parameters and globals (it is recompiled at top level).
 */
export function isolated<F extends (...args: never[]) => unknown>(loop: F): F {
  const copy: unknown = new Function(`"use strict"; return (${loop.toString()});`)();
  if (typeof copy !== "function") throw new Error("isolated: not a function");
  return copy as F;
}

/** Nanoseconds since an arbitrary origin, as a float (precise to the ns for > 100 days). */
export function now(): number {
  return Number(process.hrtime.bigint());
}

function timeBatch(run: Batch, n: number): number {
  const t0 = process.hrtime.bigint();
  const r = run(n);
  const t1 = process.hrtime.bigint();
  sink(r);
  return Number(t1 - t0);
}

/** Finds a batch size taking about `batchMs`, running the case for at least `warmupMs` meanwhile. */
function calibrate(run: Batch, options: RoundsOptions): number {
  const target = options.batchMs * 1e6;
  const warmupEnd = now() + options.warmupMs * 1e6;
  let n = 8;
  let best = n;
  for (;;) {
    const t = timeBatch(run, n);
    if (t >= target / 4) {
      best = Math.max(1, Math.round((n * target) / Math.max(t, 1)));
      if (now() >= warmupEnd) break;
      n = best;
    } else {
      n *= 2;
    }
  }
  return best;
}

/** Times every case of a group: warm-up and calibration per case, then interleaved rounds. */
export function measureGroup(cases: readonly Case[], options: RoundsOptions = defaultRounds): Map<string, Timing> {
  const batches = cases.map((c) => calibrate(c.run, options));
  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round < options.rounds; round++) {
    // Each round starts one case later, so no case always follows the same neighbour (and
    // pays for the garbage it left, as allocation-heavy decoders do).
    for (let j = 0; j < cases.length; j++) {
      const i = (j + round) % cases.length;
      const n = batches[i]!;
      samples[i]!.push(timeBatch(cases[i]!.run, n) / n);
    }
  }
  const out = new Map<string, Timing>();
  cases.forEach((c, i) => {
    const inOrder = samples[i]!;
    const s = [...inOrder].sort((a, b) => a - b);
    out.set(c.label, {
      ns: quantile(s, 0.5),
      q1: quantile(s, 0.25),
      q3: quantile(s, 0.75),
      rounds: s.length,
      batch: batches[i]!,
      samples: inOrder,
    });
  });
  return out;
}

// ---- asynchronous cases (RPC round trips) ---------------------------------------------

/** Runs `n` operations that may complete asynchronously; resolves to a checksum number. */
export type AsyncBatch = (n: number) => number | Promise<number>;

export interface AsyncCase {
  readonly label: string;
  readonly run: AsyncBatch;
  /**
   * `run` resolves to the ns its `n` operations took, timed where they ran (another process
   * driven over a pipe: the command's own round trip is then not counted).
   */
  readonly selfTimed?: boolean;
}

async function timeBatchAsync(c: AsyncCase, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await c.run(n);
  const t1 = process.hrtime.bigint();
  if (c.selfTimed === true) return r;
  sink(r);
  return Number(t1 - t0);
}

async function calibrateAsync(run: AsyncCase, options: RoundsOptions): Promise<number> {
  const target = options.batchMs * 1e6;
  const warmupEnd = now() + options.warmupMs * 1e6;
  let n = 4;
  let best = n;
  for (;;) {
    const t = await timeBatchAsync(run, n);
    if (t >= target / 4) {
      best = Math.max(1, Math.round((n * target) / Math.max(t, 1)));
      if (now() >= warmupEnd) break;
      n = best;
    } else {
      n *= 2;
    }
  }
  return best;
}

/**
 * `measureGroup` for cases that await: the same calibration, warm-up, rotating interleaved
 * rounds and medians. A batch's time includes the event-loop turns its operations wait for,
 * which for a round trip is the point.
 */
export async function measureGroupAsync(
  cases: readonly AsyncCase[],
  options: RoundsOptions = defaultRounds,
): Promise<Map<string, Timing>> {
  const batches: number[] = [];
  for (const c of cases) batches.push(await calibrateAsync(c, options));
  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round < options.rounds; round++) {
    for (let j = 0; j < cases.length; j++) {
      const i = (j + round) % cases.length;
      const n = batches[i]!;
      samples[i]!.push((await timeBatchAsync(cases[i]!, n)) / n);
    }
  }
  const out = new Map<string, Timing>();
  cases.forEach((c, i) => {
    const inOrder = samples[i]!;
    const s = [...inOrder].sort((a, b) => a - b);
    out.set(c.label, {
      ns: quantile(s, 0.5),
      q1: quantile(s, 0.25),
      q3: quantile(s, 0.75),
      rounds: s.length,
      batch: batches[i]!,
      samples: inOrder,
    });
  });
  return out;
}

/** How many times slower `a` is than `b`: the median of their per-round ratios (same group). */
export function ratio(a: Timing, b: Timing): number {
  const n = Math.min(a.samples.length, b.samples.length);
  if (n === 0) return a.ns / b.ns;
  const r: number[] = [];
  for (let i = 0; i < n; i++) r.push(a.samples[i]! / b.samples[i]!);
  return quantile(r.sort((x, y) => x - y), 0.5);
}

/** Linear-interpolated quantile of a sorted, non-empty array. */
export function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

// ---- formatting ----------------------------------------------------------------------

export function fmtNs(ns: number): string {
  if (ns >= 100_000) return `${(ns / 1000).toFixed(0)} µs`;
  if (ns >= 10_000) return `${(ns / 1000).toFixed(1)} µs`;
  if (ns >= 100) return ns.toFixed(0);
  if (ns >= 10) return ns.toFixed(1);
  return ns.toFixed(2);
}

export function fmtOps(ns: number): string {
  const ops = 1e9 / ns;
  if (ops >= 1e6) return `${(ops / 1e6).toFixed(2)} M`;
  if (ops >= 1e3) return `${(ops / 1e3).toFixed(1)} k`;
  return ops.toFixed(0);
}

export function fmtRatio(r: number, digits = 2): string {
  return r >= 100 ? `${r.toFixed(0)}×` : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(digits)}×`;
}

/** A ratio with one more digit, so a verdict is never printed beside a value that looks equal to its limit. */
export const fmtRatioFine = (r: number): string => fmtRatio(r, 3);

/** The interquartile range as ± percent of the median. */
export function fmtSpread(t: Timing): string {
  return `±${(((t.q3 - t.q1) / 2 / t.ns) * 100).toFixed(0)}%`;
}

export type Align = "left" | "right";

/** A plain-text table; columns align right unless told. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => {
        const pad = " ".repeat(widths[i]! - width(c));
        return (align[i] ?? (i === 0 ? "left" : "right")) === "left" ? c + pad : pad + c;
      })
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "─".repeat(w)).join("  ");
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

/** Display width: every code point counts one (the table uses no wide characters). */
function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// ---- budgets -------------------------------------------------------------------------

/**
 * A budget's outcome. NOT MEASURED when the figure cannot be judged in this run: its floor
 * failed or could not be had (a spinning floor whose threads could not both spin), or the
 * machine was busy with other work while it was timed. Such a figure is shown, never passed.
 */
export type Status = "PASS" | "MISS" | "NOT MEASURED";

export interface Verdict {
  readonly budget: string;
  readonly measured: string;
  readonly status: Status;
  /** Why it was not measured (status NOT MEASURED). */
  readonly why?: string;
  /** status === "PASS". */
  readonly pass: boolean;
}

/** Collects budget verdicts across sections; a miss is reported, never fatal. */
export class Budgets {
  readonly verdicts: Verdict[] = [];

  /**
   * `value` must be at most `limit` (e.g. a ratio to a floor). With `invalid` (why the
   * figure cannot be judged), or a value that is not a finite number, NOT MEASURED.
   */
  atMost(budget: string, value: number, limit: number, show: (v: number) => string = fmtRatioFine, invalid?: string): Verdict {
    return this.judge(budget, value, `${show(value)} (limit ${show(limit)})`, value <= limit, invalid);
  }

  /** `value` must be at least `limit` (e.g. a speed-up over a competitor); `invalid` as for atMost. */
  atLeast(budget: string, value: number, limit: number, show: (v: number) => string = fmtRatioFine, invalid?: string): Verdict {
    return this.judge(budget, value, `${show(value)} (need ≥ ${show(limit)})`, value >= limit, invalid);
  }

  /** Verdicts judged elsewhere (a section run in a process of its own). */
  adopt(verdicts: readonly Verdict[]): void {
    for (const v of verdicts) this.add(v);
  }

  /** A budget with no figure in this run. */
  notMeasured(budget: string, why: string): Verdict {
    return this.add({ budget, measured: "—", status: "NOT MEASURED", why, pass: false });
  }

  private judge(budget: string, value: number, measured: string, ok: boolean, invalid: string | undefined): Verdict {
    if (!Number.isFinite(value)) return this.notMeasured(budget, invalid ?? "no figure");
    if (invalid !== undefined) return this.add({ budget, measured, status: "NOT MEASURED", why: invalid, pass: false });
    return this.add({ budget, measured, status: ok ? "PASS" : "MISS", pass: ok });
  }

  private add(v: Verdict): Verdict {
    this.verdicts.push(v);
    return v;
  }

  count(status: Status): number {
    return this.verdicts.filter((v) => v.status === status).length;
  }

  report(verdicts: readonly Verdict[] = this.verdicts): string {
    return table(
      ["budget", "measured", "verdict"],
      verdicts.map((v) => [v.budget, v.measured, v.why === undefined ? v.status : `${v.status}: ${v.why}`]),
      ["left", "left", "left"],
    );
  }
}
