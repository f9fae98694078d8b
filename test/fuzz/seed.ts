import fc from "fast-check";
import { concat } from "../bytes.js";

/**
 * Bounded fuzzing for `npm test`. Every property runs twice: once with a fixed seed (the
 * same inputs on every machine, so CI is reproducible) and once with a fresh random seed (so
 * that each run explores something new). A failure names its seed; `FUZZ_SEED=<seed>` runs
 * only that seed again, with the same inputs in the same order. Each run is bounded by a
 * count of inputs and by wall time (whichever comes first), so a slow machine runs fewer
 * inputs rather than time out; an asynchronous input that takes longer than `perInputMs` fails
 * as a hang. `FUZZ_SCALE=<n>` multiplies both budgets, for a longer session.
 * `FUZZ_VERBOSE=1` prints the inputs run and the time taken per property and seed.
 */

export const fixedSeed = 0x7f0a_2e57;

const scale = (() => {
  const s = Number(process.env.FUZZ_SCALE ?? "1");
  return Number.isFinite(s) && s > 0 ? s : 1;
})();

/** The seeds a property runs with: FUZZ_SEED alone if set, else the fixed one and a random one. */
export function seeds(): number[] {
  const replay = process.env.FUZZ_SEED;
  if (replay !== undefined && replay !== "") {
    const seed = Number(replay);
    if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, not ${replay}`);
    return [seed | 0];
  }
  return [fixedSeed, (Math.random() * 0x1_0000_0000) | 0];
}

export interface Budget {
  /** Inputs per seed. */
  readonly numRuns: number;
  /** Wall time per seed, in milliseconds, shrinking included. */
  readonly timeMs: number;
}

/** What one property did, per seed: for the figures. */
export interface FuzzRun {
  readonly label: string;
  readonly seed: number;
  readonly runs: number;
  readonly ms: number;
  readonly interrupted: boolean;
}

/** Every run of this test file, in order. */
export const fuzzRuns: FuzzRun[] = [];

/** Longest a single input of an asynchronous property may take before it fails as a hang. */
export const perInputMs = 15_000;

function parameters<T>(seed: number, budget: Budget): fc.Parameters<T> {
  return {
    seed,
    numRuns: Math.max(1, Math.round(budget.numRuns * scale)),
    // Past the time budget the remaining inputs are skipped, not interrupted: an input that
    // started runs to its end (a failure in it counts), and shrinking stops where it is.
    skipAllAfterTimeLimit: Math.round(budget.timeMs * scale),
    maxSkipsPerRun: 0,
    timeout: perInputMs,
  };
}

function verdict<T>(label: string, seed: number, started: number, details: fc.RunDetails<T>): void {
  const ms = performance.now() - started;
  // Failed without a counterexample: the skips of an exhausted time budget, not a failure.
  const outOfTime = details.failed && details.counterexample === null && details.errorInstance === null;
  fuzzRuns.push({ label, seed, runs: details.numRuns, ms, interrupted: outOfTime });
  if (process.env.FUZZ_VERBOSE === "1") {
    console.log(`fuzz ${label}: seed ${seed}, ${details.numRuns} inputs in ${ms.toFixed(0)} ms${outOfTime ? " (time limit)" : ""}`);
  }
  if (!details.failed || outOfTime) return;
  const report = fc.defaultReportMessage(details) ?? "the property failed";
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  throw new Error(`fuzz ${label} failed with seed ${seed} (replay: FUZZ_SEED=${seed})\n${cause.slice(0, 4000)}\n${report}`, {
    cause: details.errorInstance,
  });
}

/** Runs a synchronous property with every seed; throws, naming the seed, on the first failure. */
export function fuzz<Ts extends [unknown, ...unknown[]]>(label: string, property: fc.IProperty<Ts>, budget: Budget): void {
  for (const seed of seeds()) {
    const started = performance.now();
    verdict(label, seed, started, fc.check(property, parameters<Ts>(seed, budget)));
  }
}

/** The same for an asynchronous property. */
export async function fuzzAsync<Ts extends [unknown, ...unknown[]]>(
  label: string,
  property: fc.IAsyncProperty<Ts>,
  budget: Budget,
): Promise<void> {
  for (const seed of seeds()) {
    const started = performance.now();
    verdict(label, seed, started, await fc.check(property, parameters<Ts>(seed, budget)));
  }
}

/** The runs of this file, one line each (for FUZZ_VERBOSE and the report). */
export function summary(): string {
  const total = fuzzRuns.reduce((n, r) => n + r.runs, 0);
  const ms = fuzzRuns.reduce((n, r) => n + r.ms, 0);
  return `${fuzzRuns.length} fuzz runs, ${total} inputs, ${(ms / 1000).toFixed(1)} s`;
}

// ---- shared generators and helpers ------------------------------------------------------

/** 32-bit words a decoder treats specially: zero, one, small counts, signs, limits. */
export const interestingWord: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.constantFrom(0, 1, 2, 3, 4, 0x7f, 0xff, 0x100, 400, 401, 1024, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fffe), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 16 }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }), weight: 2 },
);

/** Random bytes shaped like XDR: whole words, mostly interesting ones, sometimes a ragged tail. */
export const xdrLikeBytes = (maxWords: number): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(fc.array(interestingWord, { maxLength: maxWords }), fc.uint8Array({ maxLength: 3 }))
    .map(([words, tail]) => {
      const out = new Uint8Array(words.length * 4 + tail.length);
      const dv = new DataView(out.buffer);
      words.forEach((w, i) => dv.setUint32(4 * i, w >>> 0));
      out.set(tail, words.length * 4);
      return out;
    });

/** One edit of a message: positions are fractions of its length, so they fit any message. */
export type Mutation =
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "word"; readonly at: number; readonly value: number }
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: "delete"; readonly at: number; readonly length: number }
  | { readonly kind: "duplicate"; readonly at: number; readonly length: number };

const fraction = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fraction, bit: fc.integer({ min: 0, max: 7 }) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant("word" as const), at: fraction, value: interestingWord }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fraction }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("insert" as const), at: fraction, bytes: xdrLikeBytes(3) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("delete" as const), at: fraction, length: fc.integer({ min: 1, max: 12 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("duplicate" as const), at: fraction, length: fc.integer({ min: 1, max: 16 }) }), weight: 1 },
);

/** Applies `ms` in order to a copy of `bytes`; words are overwritten at 4-byte boundaries. */
export function mutate(bytes: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  // A copy that owns its memory (a Buffer's slice would be a view of it).
  let b: Uint8Array = new Uint8Array(bytes);
  for (const m of ms) {
    const n = b.length;
    const at = Math.floor(m.at * (n + 1));
    switch (m.kind) {
      case "flip":
        if (n > 0) b[Math.min(at, n - 1)]! ^= 1 << m.bit;
        break;
      case "word": {
        if (n < 4) break;
        const o = Math.min(at & ~3, (n - 4) & ~3);
        new DataView(b.buffer, b.byteOffset).setUint32(o, m.value >>> 0);
        break;
      }
      case "truncate":
        b = b.slice(0, Math.min(at, n));
        break;
      case "insert":
        b = concat(b.subarray(0, at), m.bytes, b.subarray(at));
        break;
      case "delete":
        b = concat(b.subarray(0, at), b.subarray(Math.min(n, at + m.length)));
        break;
      case "duplicate":
        b = concat(b.subarray(0, at), b.subarray(at, at + m.length), b.subarray(at));
        break;
    }
  }
  return b;
}


export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** A thrown value, described for a failure message. */
export function describeThrown(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : `non-Error ${String(e)}`;
}
