/**
 * The floor: what a person would write by hand to marshal idl/bench.x's types with a
 * DataView, no library, no generality. The codec benchmark reports every implementation
 * as a ratio to these (DESIGN §8: synthesized codecs within 1.5× of hand-written code).
 *
 * `encodeRecord`/`decodeRecord` are the bare floor: no checks beyond the one length check a
 * decoder cannot do without. `encodeRecordChecked` and `decodeRecordChecked` add exactly the
 * checks the generated codecs make (value checks; bool is 0 or 1), to show what validation
 * costs on its own.
 */

/** struct bench_record, as the generated code types it. */
export interface BenchRecord {
  id: number;
  flags: number;
  offset: bigint;
  length: bigint;
  score: number;
  ratio: number;
  active: boolean;
  x: number;
  y: number;
  z: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: bigint;
  ctime: bigint;
}

export const RECORD_SIZE = 80;
export const BENCH_MAXDATA = 1440;

/** Writes `v` at `o`; returns the end offset. The caller guarantees 80 bytes of room. */
export function encodeRecord(dv: DataView, o: number, v: BenchRecord): number {
  dv.setInt32(o, v.id);
  dv.setUint32(o + 4, v.flags);
  dv.setBigInt64(o + 8, v.offset);
  dv.setBigUint64(o + 16, v.length);
  dv.setFloat64(o + 24, v.score);
  dv.setFloat32(o + 32, v.ratio);
  dv.setInt32(o + 36, v.active ? 1 : 0);
  dv.setInt32(o + 40, v.x);
  dv.setInt32(o + 44, v.y);
  dv.setInt32(o + 48, v.z);
  dv.setUint32(o + 52, v.mode);
  dv.setUint32(o + 56, v.uid);
  dv.setUint32(o + 60, v.gid);
  dv.setBigInt64(o + 64, v.mtime);
  dv.setBigInt64(o + 72, v.ctime);
  return o + RECORD_SIZE;
}

/** Reads a record at `o`, which must leave 80 bytes before `end`. */
export function decodeRecord(dv: DataView, o: number, end: number): BenchRecord {
  if (end - o < RECORD_SIZE) throw new RangeError("truncated bench_record");
  return {
    id: dv.getInt32(o),
    flags: dv.getUint32(o + 4),
    offset: dv.getBigInt64(o + 8),
    length: dv.getBigUint64(o + 16),
    score: dv.getFloat64(o + 24),
    ratio: dv.getFloat32(o + 32),
    active: dv.getInt32(o + 36) !== 0,
    x: dv.getInt32(o + 40),
    y: dv.getInt32(o + 44),
    z: dv.getInt32(o + 48),
    mode: dv.getUint32(o + 52),
    uid: dv.getUint32(o + 56),
    gid: dv.getUint32(o + 60),
    mtime: dv.getBigInt64(o + 64),
    ctime: dv.getBigInt64(o + 72),
  };
}

/** `decodeRecord` plus the generated decoders' one check: a bool must be 0 or 1. */
export function decodeRecordChecked(dv: DataView, o: number, end: number): BenchRecord {
  if (end - o < RECORD_SIZE) throw new RangeError("truncated bench_record");
  const active = dv.getInt32(o + 36);
  if (active !== 0 && active !== 1) throw new RangeError("bench_record.active: not a bool");
  return {
    id: dv.getInt32(o),
    flags: dv.getUint32(o + 4),
    offset: dv.getBigInt64(o + 8),
    length: dv.getBigUint64(o + 16),
    score: dv.getFloat64(o + 24),
    ratio: dv.getFloat32(o + 32),
    active: active === 1,
    x: dv.getInt32(o + 40),
    y: dv.getInt32(o + 44),
    z: dv.getInt32(o + 48),
    mode: dv.getUint32(o + 52),
    uid: dv.getUint32(o + 56),
    gid: dv.getUint32(o + 60),
    mtime: dv.getBigInt64(o + 64),
    ctime: dv.getBigInt64(o + 72),
  };
}

function bad(field: string): TypeError {
  return new TypeError(`bench_record.${field}: bad value`);
}

/** `encodeRecord` plus the same value checks the generated encoders make, in the same form. */
export function encodeRecordChecked(dv: DataView, o: number, v: BenchRecord): number {
  if (typeof v !== "object" || v === null) throw bad("");
  const id = v.id;
  if (id !== (id | 0)) throw bad("id");
  const flags = v.flags;
  if (flags !== flags >>> 0) throw bad("flags");
  const offset = v.offset;
  if (typeof offset !== "bigint" || BigInt.asIntN(64, offset) !== offset) throw bad("offset");
  const length = v.length;
  if (typeof length !== "bigint" || BigInt.asUintN(64, length) !== length) throw bad("length");
  const score = v.score;
  if (typeof score !== "number") throw bad("score");
  const ratio = v.ratio;
  if (typeof ratio !== "number") throw bad("ratio");
  const active = v.active;
  if (active !== true && active !== false) throw bad("active");
  const x = v.x;
  if (x !== (x | 0)) throw bad("x");
  const y = v.y;
  if (y !== (y | 0)) throw bad("y");
  const z = v.z;
  if (z !== (z | 0)) throw bad("z");
  const mode = v.mode;
  if (mode !== mode >>> 0) throw bad("mode");
  const uid = v.uid;
  if (uid !== uid >>> 0) throw bad("uid");
  const gid = v.gid;
  if (gid !== gid >>> 0) throw bad("gid");
  const mtime = v.mtime;
  if (typeof mtime !== "bigint" || BigInt.asIntN(64, mtime) !== mtime) throw bad("mtime");
  const ctime = v.ctime;
  if (typeof ctime !== "bigint" || BigInt.asIntN(64, ctime) !== ctime) throw bad("ctime");
  dv.setInt32(o, id);
  dv.setUint32(o + 4, flags);
  dv.setBigInt64(o + 8, offset);
  dv.setBigUint64(o + 16, length);
  dv.setFloat64(o + 24, score);
  dv.setFloat32(o + 32, ratio);
  dv.setInt32(o + 36, active ? 1 : 0);
  dv.setInt32(o + 40, x);
  dv.setInt32(o + 44, y);
  dv.setInt32(o + 48, z);
  dv.setUint32(o + 52, mode);
  dv.setUint32(o + 56, uid);
  dv.setUint32(o + 60, gid);
  dv.setBigInt64(o + 64, mtime);
  dv.setBigInt64(o + 72, ctime);
  return o + RECORD_SIZE;
}

/** opaque bench_data<1440>: length word, bytes, zero padding. Returns the end offset. */
export function encodeData(buf: Uint8Array, dv: DataView, o: number, bytes: Uint8Array): number {
  const n = bytes.length;
  if (n > BENCH_MAXDATA) throw new RangeError("bench_data too long");
  dv.setUint32(o, n);
  buf.set(bytes, o + 4);
  let end = o + 4 + n;
  while ((end & 3) !== 0) buf[end++] = 0;
  return end;
}

/** Reads bench_data at `o` as a fresh copy (what a caller that keeps the bytes needs). */
export function decodeData(buf: Uint8Array, dv: DataView, o: number, end: number): Uint8Array {
  if (end - o < 4) throw new RangeError("truncated bench_data");
  const n = dv.getUint32(o);
  if (n > BENCH_MAXDATA || ((n + 3) & ~3) > end - o - 4) throw new RangeError("bad bench_data length");
  return buf.slice(o + 4, o + 4 + n);
}
