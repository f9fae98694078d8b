import fc from "fast-check";
import { resolveAlias, type NamedType, type Type, type UnionArm, type UnionType } from "../compiler/model.js";

/**
 * fast-check arbitraries for the TypeScript values of XDR types (DESIGN §3), derived from
 * the checked model. Every value they produce is valid: integers within their C range,
 * strings and opaques within their bounds, arrays of the right length, unions with a
 * discriminant that selects the arm whose field is present.
 *
 * Sizes are capped so that property tests stay fast (strings ≤ 40 code points, opaque
 * ≤ 64 bytes, variable arrays ≤ 4 elements, fewer the deeper they are nested), except
 * where the type fixes the size. Bounded strings (and opaques) of at most `maxAtBound`
 * bytes are sometimes generated at exactly their bound. Strings never contain NUL (C peers
 * re-encode strings with strlen) nor lone surrogates (which UTF-8 cannot carry).
 *
 * libtirpc's built-in `netbuf` gets the values xdr_netbuf accepts (len <= maxlen <= 9000).
 *
 * Recursion is bounded: beyond depth 3 (counted in optional data and variable-length array
 * elements) optional data is null and variable arrays are empty.
 */

export interface ArbitraryOptions {
  /** Every bounded string of at most `maxAtBound` bytes is exactly at its bound. */
  readonly stringsAtBound?: boolean;
}

/** Beyond this depth optional data is null and variable-length arrays are empty. */
export const maxDepth = 3;
/** Largest bound generated at exactly its size (strings and variable-length opaque). */
export const maxAtBound = 4096;

const maxChars = 40;
const maxOpaque = 64;
const maxElements = 4;

const encoder = new TextEncoder();

/** UTF-8 length of one code point. */
function utf8Size(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/** UTF-8 length of a string without lone surrogates. */
export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/** Code points other than NUL and the surrogates, ASCII most often. */
const codePoint: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 0x7f }), weight: 6 },
  { arbitrary: fc.integer({ min: 0x80, max: 0x7ff }), weight: 2 },
  { arbitrary: fc.integer({ min: 0x800, max: 0xffff - 0x800 }).map((c) => (c >= 0xd800 ? c + 0x800 : c)), weight: 1 },
  { arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }), weight: 1 },
);

/** The longest prefix of `cps` whose UTF-8 encoding fits in `max` bytes, and its size. */
function fit(cps: readonly number[], max: number): { s: string; bytes: number } {
  let s = "";
  let bytes = 0;
  for (const cp of cps) {
    const n = utf8Size(cp);
    if (bytes + n > max) break;
    s += String.fromCodePoint(cp);
    bytes += n;
  }
  return { s, bytes };
}

function stringArbitrary(max: number | undefined, atBound: boolean): fc.Arbitrary<string> {
  const bound = max ?? Infinity;
  const short = fc.array(codePoint, { maxLength: maxChars }).map((cps) => fit(cps, bound).s);
  if (max === undefined || max === 0 || max > maxAtBound) return short;
  // Exactly `max` bytes: a random prefix, then printable ASCII up to the bound.
  const exact = fc
    .tuple(fc.array(codePoint, { maxLength: maxChars }), fc.integer({ min: 0x20, max: 0x7e }))
    .map(([cps, fill]) => {
      const { s, bytes } = fit(cps, max);
      return s + String.fromCharCode(fill).repeat(max - bytes);
    });
  if (atBound) return exact;
  return fc.oneof({ arbitrary: short, weight: 3 }, { arbitrary: exact, weight: 1 });
}

function bytesOf(length: number): fc.Arbitrary<Uint8Array> {
  return fc.uint8Array({ minLength: length, maxLength: length });
}

function varOpaqueArbitrary(max: number | undefined): fc.Arbitrary<Uint8Array> {
  const short = fc.uint8Array({ maxLength: Math.min(max ?? Infinity, maxOpaque) });
  if (max === undefined || max <= maxOpaque || max > maxAtBound) return short;
  return fc.oneof({ arbitrary: short, weight: 4 }, { arbitrary: bytesOf(max), weight: 1 });
}

/** How many elements a variable-length array may get at `depth`. */
function elementsAt(max: number | undefined, depth: number): number {
  return depth > maxDepth ? 0 : Math.min(max ?? Infinity, maxElements - depth);
}

// Arbitraries depend only on (type, depth, options): cache them, so recursive types and
// types used in many places are built once.
type Cache = WeakMap<object, Map<number, fc.Arbitrary<unknown>>>;
const caches: { normal: Cache; atBound: Cache } = { normal: new WeakMap(), atBound: new WeakMap() };

function cached(key: object, depth: number, options: ArbitraryOptions, make: () => fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  const cache = options.stringsAtBound === true ? caches.atBound : caches.normal;
  let byDepth = cache.get(key);
  if (byDepth === undefined) cache.set(key, (byDepth = new Map()));
  let arb = byDepth.get(depth);
  if (arb === undefined) byDepth.set(depth, (arb = make()));
  return arb;
}

/** Valid TypeScript values of `type`, nested `depth` levels deep. */
export function arbitraryOf(type: Type, depth = 0, options: ArbitraryOptions = {}): fc.Arbitrary<unknown> {
  return cached(type, depth, options, () => make(type, depth, options));
}

function make(type: Type, depth: number, options: ArbitraryOptions): fc.Arbitrary<unknown> {
  switch (type.kind) {
    case "int":
      return fc.integer({ min: type.min, max: type.max });
    case "hyper":
      return type.signed ? fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) : fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case "float":
      return fc.float();
    case "double":
      return fc.double();
    case "bool":
      return fc.boolean();
    case "void":
      return fc.constant(undefined);
    case "string":
      return stringArbitrary(type.max, options.stringsAtBound === true);
    case "fixedOpaque":
      return bytesOf(type.size);
    case "varOpaque":
      return varOpaqueArbitrary(type.max);
    case "fixedArray":
      return fc.array(arbitraryOf(type.element, depth, options), { minLength: type.size, maxLength: type.size });
    case "varArray": {
      const n = elementsAt(type.max, depth);
      return n === 0 ? fc.constant([]) : fc.array(arbitraryOf(type.element, depth + 1, options), { maxLength: n });
    }
    case "optional":
      return depth > maxDepth
        ? fc.constant(null)
        : fc.option(arbitraryOf(type.element, depth + 1, options), { nil: null, freq: 3 });
    case "named":
      return arbitraryOfNamed(type.target, depth, options);
    case "error":
      throw new Error("arbitraryOf: the model holds a type that failed to resolve");
  }
}

/** Valid TypeScript values of a named type. */
export function arbitraryOfNamed(t: NamedType, depth = 0, options: ArbitraryOptions = {}): fc.Arbitrary<unknown> {
  return cached(t, depth, options, () => makeNamed(t, depth, options));
}

function makeNamed(t: NamedType, depth: number, options: ArbitraryOptions): fc.Arbitrary<unknown> {
  switch (t.kind) {
    case "enum":
      return fc.constantFrom(...t.members.map((m) => m.value));
    case "typedef":
      return arbitraryOf(t.type, depth, options);
    case "struct": {
      if (t.builtin !== undefined && t.name === "netbuf") return netbufArbitrary;
      // Own properties even for a field named __proto__ (an assignment would set the prototype).
      const fields: Record<string, fc.Arbitrary<unknown>> = Object.fromEntries(
        t.fields.map((f) => [f.name, arbitraryOf(f.type, depth, options)]),
      );
      return fc.record(fields, { noNullPrototype: true });
    }
    case "union":
      return unionArbitrary(t, depth, options);
  }
}

/** libtirpc's RPC_MAXDATASIZE: xdr_netbuf refuses a larger maxlen. */
export const netbufMaxLen = 9000;

/**
 * libtirpc's built-in netbuf: xdr_netbuf decodes `buf` as xdr_bytes bounded by `maxlen`,
 * and refuses a `maxlen` over RPC_MAXDATASIZE, so valid values keep len <= maxlen <= 9000.
 */
const netbufArbitrary: fc.Arbitrary<unknown> = fc
  .tuple(fc.uint8Array({ maxLength: maxOpaque }), fc.integer({ min: 0, max: netbufMaxLen }))
  .map(([buf, extra]) => ({ maxlen: Math.min(netbufMaxLen, buf.length + extra), buf }));

/** The discriminant's kind and the TypeScript value of a case label. */
function discriminantOf(u: UnionType): { values: (labels: ReadonlySet<number>) => fc.Arbitrary<number> | undefined; ts: (v: number) => unknown } {
  const d = resolveAlias(u.discriminant.type);
  if (d.kind === "bool") {
    return {
      values: (labels) => {
        const rest = [0, 1].filter((v) => !labels.has(v));
        return rest.length === 0 ? undefined : fc.constantFrom(...rest);
      },
      ts: (v) => v !== 0,
    };
  }
  if (d.kind === "named" && d.target.kind === "enum") {
    const members = d.target.members.map((m) => m.value);
    return {
      values: (labels) => {
        const rest = members.filter((v) => !labels.has(v));
        return rest.length === 0 ? undefined : fc.constantFrom(...rest);
      },
      ts: (v) => v,
    };
  }
  if (d.kind === "int") {
    return { values: (labels) => fc.integer({ min: d.min, max: d.max }).filter((v) => !labels.has(v)), ts: (v) => v };
  }
  throw new Error(`union ${u.name}: unexpected discriminant type ${d.kind}`);
}

function armValue(
  discriminant: string,
  values: fc.Arbitrary<unknown>,
  arm: Pick<UnionArm, "field">,
  depth: number,
  options: ArbitraryOptions,
): fc.Arbitrary<unknown> {
  if (arm.field === undefined || arm.field.type.kind === "void") return values.map((v) => ({ [discriminant]: v }));
  const name = arm.field.name;
  return fc.tuple(values, arbitraryOf(arm.field.type, depth, options)).map(([v, x]) => ({ [discriminant]: v, [name]: x }));
}

function unionArbitrary(u: UnionType, depth: number, options: ArbitraryOptions): fc.Arbitrary<unknown> {
  const name = u.discriminant.name;
  const d = discriminantOf(u);
  const arms: fc.Arbitrary<unknown>[] = u.arms.map((arm) =>
    armValue(name, fc.constantFrom(...arm.labels.map((l) => d.ts(l.value))), arm, depth, options),
  );
  if (u.defaultArm !== undefined) {
    const labels = new Set(u.arms.flatMap((arm) => arm.labels.map((l) => l.value)));
    const rest = d.values(labels);
    if (rest !== undefined) arms.push(armValue(name, rest.map(d.ts), u.defaultArm, depth, options));
  }
  if (arms.length === 0) throw new Error(`union ${u.name} has no arm a value can take`);
  return fc.oneof(...arms);
}
