/**
 * What the server fuzzer's example service does, as plain functions of their arguments:
 * the handlers the fuzzed servers run (in this thread, and compiled into the shm worker) and
 * the model that predicts their replies. Every result is bounded whatever the arguments (a
 * hostile count cannot make a handler allocate without limit), and integer results wrap to
 * the C type, so that they always encode.
 *
 * No imports: the shm test compiles this file next to a generated module, for a worker.
 */

export interface Point {
  x: number;
  y: number;
}

export interface ExRecord {
  id: number;
  stamp: bigint;
  weight: number;
  active: boolean;
  name: string;
  position: Point;
}

export interface ExNode {
  value: number;
  next: ExNode | null;
}

export type ExResult = { status: 0; record: ExRecord } | { status: 1 } | { status: number; reason: string };

/** The longest list EXPROC_RANGE builds, and the most repetitions EXPROC_GREET makes. */
export const maxRange = 40;
export const maxRepeat = 3;

function record(id: number): ExRecord {
  return { id, stamp: BigInt(id) * 1_000_000_007n, weight: id / 4, active: id % 2 === 0, name: `record ${id}`, position: { x: id, y: -id } };
}

/** Keyed as the generated service description keys its procedures. */
export const semantics = {
  exprocAdd: (a: number, b: number): number => (a + b) | 0,
  exprocMove: (p: Point, dx: number, dy: number): Point => ({ x: (p.x + dx) | 0, y: (p.y + dy) | 0 }),
  exprocEcho: (r: ExRecord): ExRecord => r,
  exprocLookup(id: number): ExResult {
    if (id === 0) return { status: 1 };
    if (id <= 100) return { status: 0, record: record(id) };
    return { status: 2, reason: `no ${id}` };
  },
  exprocSum(list: ExNode | null): number {
    let sum = 0;
    for (let n = list; n !== null; n = n.next) sum = (sum + n.value) | 0;
    return sum;
  },
  exprocRange(n: number): ExNode | null {
    let list: ExNode | null = null;
    for (let i = Math.min(Math.max(n, 0), maxRange); i >= 1; i--) list = { value: i, next: list };
    return list;
  },
  exprocReverse: (d: Uint8Array): Uint8Array => d.slice().reverse(),
  exprocGreet: (s: string, n: number): string => `${s}!`.repeat(n % (maxRepeat + 1)),
  exprocFail(): never {
    throw new Error("this procedure always fails");
  },
};

export type ProcedureKey = keyof typeof semantics;

/** Each procedure's number in idl/example.x, for counting calls by number. */
export const procedureNumbers: Record<ProcedureKey, number> = {
  exprocAdd: 1,
  exprocMove: 2,
  exprocEcho: 3,
  exprocLookup: 4,
  exprocSum: 5,
  exprocRange: 6,
  exprocReverse: 7,
  exprocGreet: 8,
  exprocFail: 9,
};
