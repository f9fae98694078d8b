import type { BenchRecord } from "./handwritten.js";
import { retained } from "./harness.js";

/**
 * Other serializers marshaling the same data, each through its own fastest public API that
 * a careful user would call per message (reusing buffers where the API allows). Each is
 * loaded with a dynamic import, so a library that is missing is skipped with a note rather
 * than failing the run.
 *
 * - @stellar/js-xdr: the same XDR wire format, types from its `config` DSL. Encodes with
 *   `Type.write(value, new XdrWriter(buffer))` into one preallocated Buffer (its
 *   `toXDR()` would allocate 8 KiB per call); decodes with `Type.read(new XdrReader(buf))`.
 *   Hypers are bigints on input and `Hyper` objects on output, as the library does.
 * - avsc: an Avro record of the same fields (`long` for unsigned int and hyper, as numbers:
 *   avsc's default long; `encode(value, buffer, 0)` into one Buffer, `decode(buffer, pos)`).
 * - protobufjs: a proto3 message of the same fields (int64/uint64 as numbers on input),
 *   `encode(value, writer.reset()).finish()` with one reused Writer, `decode(bytes)`.
 *
 * Not byte-compatible with XDR (avsc, protobufjs): the comparison is of CPU per message.
 */

export interface Fixtures {
  /** Distinct records, cycled through by the batches. */
  readonly records: readonly BenchRecord[];
  /** The bench_data payload (1440 bytes). */
  readonly data: Uint8Array;
}

/** One implementation's batches for one type. */
export interface Ops {
  /** n encodes; returns a checksum. */
  readonly encode: (n: number) => number;
  /** n decodes; returns a checksum. */
  readonly decode: (n: number) => number;
  /** The encoding of fixture 0, when the wire format is XDR (cross-checked against ours). */
  readonly xdrBytes?: () => Uint8Array;
  /** Throws unless decode(encode(fixture)) reproduces the fixtures. */
  readonly verify: () => void;
}

export interface Competitor {
  readonly label: string;
  /** Library version, for the report. */
  readonly version: string;
  readonly record: Ops;
  readonly data: Ops;
  /** How decoded bench_data relates to the input buffer. */
  readonly dataDecode: "copy" | "view";
}

export type Loaded = Competitor | { readonly label: string; readonly skipped: string };

const MASK = 7;

function fail(what: string): never {
  throw new Error(`competitor cross-check failed: ${what}`);
}

async function versionOf(pkg: string): Promise<string> {
  try {
    const { createRequire } = await import("node:module");
    const req = createRequire(import.meta.url);
    const meta: unknown = req(`${pkg}/package.json`);
    const v = (meta as { version?: unknown }).version;
    return typeof v === "string" ? v : "?";
  } catch {
    return "?";
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The record as plain numbers, for libraries whose 64-bit type is a JS number: 64-bit
 * fields beyond ±2^51 are clamped into range (avsc's zig-zag longs must stay below 2^53),
 * a favour to them: no bigint on their path.
 */
function numeric(r: BenchRecord): Record<string, number | boolean> {
  const limit = 2n ** 51n;
  const clamp = (v: bigint): bigint => (v > limit ? limit - (v & 0xffffn) : v < -limit ? -limit + (v & 0xffffn) : v);
  const n = (v: bigint): number => Number(clamp(v));
  return {
    id: r.id,
    flags: r.flags,
    offset: n(r.offset),
    length: n(r.length),
    score: r.score,
    ratio: r.ratio,
    active: r.active,
    x: r.x,
    y: r.y,
    z: r.z,
    mode: r.mode,
    uid: r.uid,
    gid: r.gid,
    mtime: n(r.mtime),
    ctime: n(r.ctime),
  };
}

const recordFields: readonly (keyof BenchRecord)[] = [
  "id",
  "flags",
  "offset",
  "length",
  "score",
  "ratio",
  "active",
  "x",
  "y",
  "z",
  "mode",
  "uid",
  "gid",
  "mtime",
  "ctime",
];

// ---- @stellar/js-xdr -----------------------------------------------------------------

interface JsXdrStructValue {
  id(): number;
  x(): number;
  /** Generated accessors, one per field; hypers come back as objects with toBigInt(). */
  [field: string]: () => unknown;
}

async function jsXdr(f: Fixtures): Promise<Competitor> {
  const { default: xdr } = await import("@stellar/js-xdr");
  const types = xdr.config((x) => {
    x.struct("bench_record", [
      ["id", x.int()],
      ["flags", x.uint()],
      ["offset", x.hyper()],
      ["length", x.uhyper()],
      ["score", x.double()],
      ["ratio", x.float()],
      ["active", x.bool()],
      ["x", x.int()],
      ["y", x.int()],
      ["z", x.int()],
      ["mode", x.uint()],
      ["uid", x.uint()],
      ["gid", x.uint()],
      ["mtime", x.hyper()],
      ["ctime", x.hyper()],
    ]);
    x.typedef("bench_data", x.varOpaque(1440));
  });
  const RecordType = types["bench_record"];
  const DataType = types["bench_data"];
  if (typeof RecordType !== "function" || typeof DataType !== "object" || DataType === null) fail("js-xdr config");
  const Rec = RecordType as unknown as (new (attributes: Record<string, unknown>) => JsXdrStructValue) & {
    write(value: JsXdrStructValue, w: InstanceType<typeof xdr.XdrWriter>): void;
    read(r: InstanceType<typeof xdr.XdrReader>): JsXdrStructValue;
  };
  const Data = DataType as {
    write(value: Buffer, w: InstanceType<typeof xdr.XdrWriter>): void;
    read(r: InstanceType<typeof xdr.XdrReader>): Buffer;
  };

  const values = f.records.map((r) => new Rec({ ...r }));
  const out = Buffer.alloc(2048);
  // Encoded inputs for decode, one Buffer each (its reader takes a whole Buffer).
  const encoded = values.map((v) => {
    const w = new xdr.XdrWriter(Buffer.alloc(128));
    Rec.write(v, w);
    return Buffer.from(w.finalize());
  });
  const dataIn = Buffer.from(f.data);
  const dataEncoded = (() => {
    const w = new xdr.XdrWriter(Buffer.alloc(2048));
    Data.write(dataIn, w);
    return Buffer.from(w.finalize());
  })();

  const record: Ops = {
    encode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const w = new xdr.XdrWriter(out);
        Rec.write(values[i & MASK]!, w);
        acc += out[i & 63]!;
      }
      return acc;
    },
    decode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const v = Rec.read(new xdr.XdrReader(encoded[i & MASK]!));
        retained[i & MASK] = v;
        acc += v.id() + v.x();
      }
      return acc;
    },
    xdrBytes: () => encoded[0]!,
    verify() {
      f.records.forEach((want, i) => {
        const got = Rec.read(new xdr.XdrReader(encoded[i]!));
        for (const k of recordFields) {
          const raw = got[k]!();
          const v = typeof raw === "object" && raw !== null && "toBigInt" in raw ? (raw as { toBigInt(): bigint }).toBigInt() : raw;
          if (v !== want[k]) fail(`js-xdr bench_record.${k}: ${String(v)} !== ${String(want[k])}`);
        }
      });
    },
  };
  const data: Ops = {
    encode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const w = new xdr.XdrWriter(out);
        Data.write(dataIn, w);
        acc += out[i & 63]!;
      }
      return acc;
    },
    decode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const v = Data.read(new xdr.XdrReader(dataEncoded));
        retained[i & MASK] = v;
        acc += v.length + v[i & 1023]!;
      }
      return acc;
    },
    xdrBytes: () => dataEncoded,
    verify() {
      if (!sameBytes(Data.read(new xdr.XdrReader(dataEncoded)), f.data)) fail("js-xdr bench_data");
    },
  };
  return { label: "@stellar/js-xdr", version: await versionOf("@stellar/js-xdr"), record, data, dataDecode: "view" };
}

// ---- avsc ----------------------------------------------------------------------------

async function avsc(f: Fixtures): Promise<Competitor> {
  const { default: avro } = await import("avsc");
  const recordType = avro.Type.forSchema({
    type: "record",
    name: "bench_record",
    fields: [
      { name: "id", type: "int" },
      { name: "flags", type: "long" },
      { name: "offset", type: "long" },
      { name: "length", type: "long" },
      { name: "score", type: "double" },
      { name: "ratio", type: "float" },
      { name: "active", type: "boolean" },
      { name: "x", type: "int" },
      { name: "y", type: "int" },
      { name: "z", type: "int" },
      { name: "mode", type: "long" },
      { name: "uid", type: "long" },
      { name: "gid", type: "long" },
      { name: "mtime", type: "long" },
      { name: "ctime", type: "long" },
    ],
  });
  const dataType = avro.Type.forSchema("bytes");

  const values = f.records.map(numeric);
  const out = Buffer.alloc(4096);
  // All encoded records back to back in one buffer, decoded at their offsets.
  const packed = Buffer.alloc(4096);
  const offsets: number[] = [];
  let at = 0;
  for (const v of values) {
    offsets.push(at);
    at = recordType.encode(v, packed, at);
    if (at < 0) fail("avsc packing");
  }
  const dataIn = Buffer.from(f.data);
  const dataEncoded = dataType.toBuffer(dataIn);

  const record: Ops = {
    encode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += recordType.encode(values[i & MASK], out, 0) + out[i & 31]!;
      return acc;
    },
    decode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const res: { value: unknown } = recordType.decode(packed, offsets[i & MASK]);
        const v = res.value as { id: number; x: number };
        retained[i & MASK] = v;
        acc += v.id + v.x;
      }
      return acc;
    },
    verify() {
      values.forEach((want, i) => {
        const res: { value: unknown } = recordType.decode(packed, offsets[i]);
        const got = res.value as Record<string, unknown>;
        for (const k of recordFields) if (got[k] !== want[k]) fail(`avsc bench_record.${k}`);
      });
    },
  };
  const data: Ops = {
    encode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += dataType.encode(dataIn, out, 0) + out[i & 1023]!;
      return acc;
    },
    decode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const res: { value: unknown } = dataType.decode(dataEncoded, 0);
        const v = res.value as Uint8Array;
        retained[i & MASK] = v;
        acc += v.length + v[i & 1023]!;
      }
      return acc;
    },
    verify() {
      const res: { value: unknown } = dataType.decode(dataEncoded, 0);
      if (!sameBytes(res.value as Uint8Array, f.data)) fail("avsc bench_data");
    },
  };
  return { label: "avsc", version: await versionOf("avsc"), record, data, dataDecode: "copy" };
}

// ---- protobufjs ----------------------------------------------------------------------

const proto = `
syntax = "proto3";
message BenchRecord {
  int32 id = 1;
  uint32 flags = 2;
  int64 offset = 3;
  uint64 length = 4;
  double score = 5;
  float ratio = 6;
  bool active = 7;
  int32 x = 8;
  int32 y = 9;
  int32 z = 10;
  uint32 mode = 11;
  uint32 uid = 12;
  uint32 gid = 13;
  int64 mtime = 14;
  int64 ctime = 15;
}
message BenchData {
  bytes data = 1;
}
`;

async function protobufjs(f: Fixtures): Promise<Competitor> {
  const { default: protobuf } = await import("protobufjs");
  const root = protobuf.parse(proto).root;
  const Rec = root.lookupType("BenchRecord");
  const Data = root.lookupType("BenchData");

  // Messages made once by the library from plain objects, as an application would keep them.
  const values = f.records.map((r) => Rec.fromObject(numeric(r)));
  const encoded = values.map((v) => Rec.encode(v).finish());
  const dataMsg = Data.fromObject({ data: f.data });
  const dataEncoded = Data.encode(dataMsg).finish();
  const writer = protobuf.Writer.create();

  /** int64 fields decode as Long objects (the `long` package is a dependency) or numbers. */
  const asNumber = (v: unknown): unknown => (typeof v === "object" && v !== null && !(v instanceof Uint8Array) ? Number(String(v)) : v);

  const record: Ops = {
    encode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const bytes = Rec.encode(values[i & MASK]!, writer.reset()).finish();
        acc += bytes.length + bytes[i & 15]!;
      }
      return acc;
    },
    decode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const m = Rec.decode(encoded[i & MASK]!) as unknown as { id: number; x: number };
        retained[i & MASK] = m;
        acc += m.id + m.x;
      }
      return acc;
    },
    verify() {
      f.records.map(numeric).forEach((want, i) => {
        const got = Rec.decode(encoded[i]!) as unknown as Record<string, unknown>;
        for (const k of recordFields) {
          const g = asNumber(got[k]);
          if (g !== want[k]) fail(`protobufjs bench_record.${k}: ${String(g)} !== ${String(want[k])}`);
        }
      });
    },
  };
  const data: Ops = {
    encode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const bytes = Data.encode(dataMsg, writer.reset()).finish();
        acc += bytes.length + bytes[i & 1023]!;
      }
      return acc;
    },
    decode(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const m = Data.decode(dataEncoded) as unknown as { data: Uint8Array };
        retained[i & MASK] = m;
        acc += m.data.length + m.data[i & 1023]!;
      }
      return acc;
    },
    verify() {
      const m = Data.decode(dataEncoded) as unknown as { data: Uint8Array };
      if (!sameBytes(m.data, f.data)) fail("protobufjs bench_data");
    },
  };
  return { label: "protobufjs", version: await versionOf("protobufjs"), record, data, dataDecode: "view" };
}

const loaders: readonly { readonly label: string; readonly load: (f: Fixtures) => Promise<Competitor> }[] = [
  { label: "@stellar/js-xdr", load: jsXdr },
  { label: "avsc", load: avsc },
  { label: "protobufjs", load: protobufjs },
];

/** Every competitor that loads and passes its cross-check; the others with the reason. */
export async function loadCompetitors(f: Fixtures): Promise<Loaded[]> {
  const out: Loaded[] = [];
  for (const { label, load } of loaders) {
    try {
      const c = await load(f);
      c.record.verify();
      c.data.verify();
      out.push(c);
    } catch (e) {
      out.push({ label, skipped: e instanceof Error ? e.message.split("\n")[0]! : String(e) });
    }
  }
  return out;
}
