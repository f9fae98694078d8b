import { expect } from "vitest";
import type { Channel, HandlersOf, ServiceDescription } from "../runtime/index.js";
import { RpcError } from "../runtime/index.js";
import { generate, type GeneratedModule } from "./generated.js";
import { repoRoot } from "./support.js";

/**
 * The example interface (idl/example.x) as the transport tests use it: handlers with the
 * semantics every peer implements (the C peer too), and one suite of calls that covers
 * every kind of argument — run over each transport in each mode.
 */

export const exampleFile = `${repoRoot}/idl/example.x`;

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

/** The generated client's surface, as the tests call it. */
export interface ExampleClient {
  exprocNull(): Promise<void>;
  exprocAdd(a: number, b: number): Promise<number>;
  exprocMove(p: Point, dx: number, dy: number): Promise<Point>;
  exprocEcho(r: ExRecord): Promise<ExRecord>;
  exprocLookup(id: number, options?: { timeoutMs?: number }): Promise<ExResult>;
  exprocSum(list: ExNode | null): Promise<number>;
  exprocRange(n: number): Promise<ExNode | null>;
  exprocReverse(data: Uint8Array): Promise<Uint8Array>;
  exprocGreet(s: string, n: number): Promise<string>;
  exprocFail(): Promise<void>;
  /** The same procedures, completed on the calling thread (the generated `sync` object). */
  readonly sync: SyncOf<Omit<ExampleClient, "sync">>;
}

/** A client's methods as the generated `sync` object has them: results, not promises. */
export type SyncOf<C> = { readonly [K in keyof C]: C[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R : never };

export interface Example {
  readonly module: GeneratedModule;
  readonly service: ServiceDescription;
  client(channel: Channel): ExampleClient;
}

export async function loadExample(mode: "classic" | "synthesized" | "descriptor"): Promise<Example> {
  const module = (await generate([exampleFile], mode)).get("example")!;
  const service = module.ExampleV1 as ServiceDescription;
  const Client = module.ExampleV1Client as new (channel: Channel) => ExampleClient;
  return { module, service, client: (channel) => new Client(channel) };
}

export function record(id: number): ExRecord {
  return { id, stamp: BigInt(id) * 1_000_000_007n, weight: id / 4, active: id % 2 === 0, name: `record ${id}`, position: { x: id, y: -id } };
}

export function list(values: number[]): ExNode | null {
  let head: ExNode | null = null;
  for (let i = values.length - 1; i >= 0; i--) head = { value: values[i]!, next: head };
  return head;
}

/** Handlers with the example's semantics; `calls` counts executions per procedure. */
export function exampleHandlers(calls: Map<string, number> = new Map()) {
  const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1);
  const handlers = {
    exprocAdd: (a: number, b: number) => (count("add"), a + b),
    exprocMove: (p: Point, dx: number, dy: number) => (count("move"), { x: p.x + dx, y: p.y + dy }),
    exprocEcho: (r: ExRecord) => (count("echo"), r),
    exprocLookup: (id: number): ExResult => {
      count("lookup");
      if (id === 0) return { status: 1 };
      if (id <= 100) return { status: 0, record: record(id) };
      return { status: 2, reason: `no ${id}` };
    },
    exprocSum: (l: ExNode | null) => {
      count("sum");
      let sum = 0;
      for (let n = l; n !== null; n = n.next) sum += n.value;
      return sum;
    },
    exprocRange: (n: number) => (count("range"), list(Array.from({ length: n }, (_, i) => i + 1))),
    exprocReverse: (d: Uint8Array) => (count("reverse"), d.slice().reverse()),
    exprocGreet: (s: string, n: number) => (count("greet"), `${s}!`.repeat(n)),
    exprocFail: () => {
      count("fail");
      throw new Error("this procedure always fails");
    },
  };
  return handlers as unknown as HandlersOf<ServiceDescription>;
}

export function payload(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) & 0xff);
}

/** Every kind of call, with its result checked. */
export async function exampleCalls(c: ExampleClient): Promise<void> {
  await expect(c.exprocNull()).resolves.toBeUndefined();
  expect(await c.exprocAdd(2, 3)).toBe(5);
  expect(await c.exprocAdd(-2147483648, 2147483647)).toBe(-1);
  expect(await c.exprocMove({ x: 1, y: 2 }, 30, -40)).toEqual({ x: 31, y: -38 });
  expect(await c.exprocEcho(record(7))).toEqual(record(7));
  expect(await c.exprocLookup(0)).toEqual({ status: 1 });
  expect(await c.exprocLookup(42)).toEqual({ status: 0, record: record(42) });
  expect(await c.exprocLookup(1000)).toEqual({ status: 2, reason: "no 1000" });
  expect(await c.exprocSum(list([1, 2, 3, 4]))).toBe(10);
  expect(await c.exprocSum(null)).toBe(0);
  expect(await c.exprocRange(3)).toEqual(list([1, 2, 3]));
  expect(await c.exprocRange(0)).toBeNull();
  const data = payload(1440);
  expect(await c.exprocReverse(data)).toEqual(data.slice().reverse());
  expect(await c.exprocGreet("héllo", 3)).toBe("héllo!héllo!héllo!");
  const failure = await c.exprocFail().catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(RpcError);
  expect((failure as RpcError).status).toBe("SYSTEM_ERR");
  // Many calls outstanding on one channel, matched by xid.
  const sums = await Promise.all(Array.from({ length: 64 }, (_, i) => c.exprocAdd(i, 1000)));
  expect(sums).toEqual(Array.from({ length: 64 }, (_, i) => i + 1000));
}
