import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../compiler/emit/module.js";
import { fromXdr, RpcError, toXdr, XdrError, XdrReader, XdrWriter, type XdrCodec } from "../runtime/index.js";
import {
  AUTH_NONE,
  AuthFlavor,
  authSys,
  MAX_AUTH_BYTES,
  readAuthSys,
  readCallHeader,
  readReplyHeader,
  writeAcceptedReply,
  writeCallHeader,
  writeRejectedReply,
  type OpaqueAuth,
} from "../runtime/rpc/message.js";
import * as drc from "../runtime/transports/drc.js";
import { RecordDecoder, RecordError } from "../runtime/transports/record-marking.js";
import { corpusDecoders, type Decoder } from "./fuzz/corpus.js";
import { describeThrown, fuzz, hex, interestingWord, mutate, mutation, summary, xdrLikeBytes } from "./fuzz/seed.js";
import { concat } from "./bytes.js";
import { referenceRecords } from "./fuzz/framing.js";
import { same } from "./values.js";

/**
 * Fuzzing every decoder: random and mutated bytes through the generated
 * codecs of the whole corpus in every mode, the XDR reader's primitives, the RPC message
 * headers, record marking and the UDP duplicate-request cache's key parser. Each either
 * returns a value or throws its own error type — never a RangeError, TypeError or stack
 * overflow — and what decodes is what was sent: a decoded value encodes to the same bytes
 * (canonical XDR), records add up to the stream's framing.
 */

afterAll(() => {
  if (process.env.FUZZ_VERBOSE === "1") console.log(`fuzz-decoders: ${summary()}`);
});

// ---- generated codecs --------------------------------------------------------------------

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

const isNaNFloat = (w: number) => (w & 0x7f80_0000) === 0x7f80_0000 && (w & 0x007f_ffff) !== 0;
const isNaNDouble = (hi: number, lo: number) => (hi & 0x7ff0_0000) === 0x7ff0_0000 && ((hi & 0x000f_ffff) !== 0 || lo !== 0);

/**
 * Whether `again`, the re-encoding of what `bytes` decoded to, differs from it only where
 * XDR decoding rightly forgets: padding (RFC 4506 §3 says zero; the reader, like libtirpc,
 * does not check it, and the writer writes zero) and the payload of a NaN (JavaScript has
 * one NaN, and the engine need not keep its payload).
 */
function canonicalDifference(bytes: Uint8Array, again: Uint8Array): string | undefined {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === again[i] || again[i] === 0) continue;
    const w = i & ~3;
    // A NaN re-encodes as a NaN, not necessarily with its payload (the engine may quiet a
    // signalling NaN or canonicalise it): a float word, or either word of a double.
    if (isNaNFloat(u32(again, w)) && isNaNFloat(u32(bytes, w))) continue;
    if (w >= 4 && isNaNDouble(u32(again, w - 4), u32(again, w)) && isNaNDouble(u32(bytes, w - 4), u32(bytes, w))) continue;
    if (w + 8 <= bytes.length && isNaNDouble(u32(again, w), u32(again, w + 4)) && isNaNDouble(u32(bytes, w), u32(bytes, w + 4))) continue;
    return `byte ${i} was ${bytes[i]}, re-encodes as ${again[i]}`;
  }
  return undefined;
}

type Verdict = { ok: true; value: unknown } | { ok: false; error: XdrError };

function decodeIn(codec: XdrCodec<unknown>, bytes: Uint8Array, label: string, mode: Mode): Verdict {
  try {
    return { ok: true, value: fromXdr(codec, bytes) };
  } catch (e) {
    if (e instanceof XdrError) return { ok: false, error: e };
    throw new Error(`${label} (${mode}): decoding ${hex(bytes)} threw ${describeThrown(e)}`);
  }
}

/**
 * The oracle for one decoder: in every mode only XdrError escapes, every mode accepts or
 * refuses alike and decodes to the same value, and that value encodes, in every mode, to
 * the same bytes as were decoded (but for padding and NaN payloads).
 */
function checkDecoder(d: Decoder, bytes: Uint8Array): void {
  const verdicts = modes.map((mode) => decodeIn(d.codecs[mode], bytes, d.label, mode));
  const accepted = verdicts.map((v) => v.ok);
  if (accepted.some((a) => a !== accepted[0])) {
    const why = verdicts.map((v, i) => `${modes[i]}: ${v.ok ? "accepts" : v.error.message}`).join("; ");
    throw new Error(`${d.label}: modes disagree on ${hex(bytes)}: ${why}`);
  }
  const first = verdicts[0]!;
  if (!first.ok) return;
  for (let i = 1; i < verdicts.length; i++) {
    const v = verdicts[i]!;
    if (!(v.ok && same(v.value, first.value))) expect(v.ok && v.value, `${d.label}: ${modes[i]} decodes ${hex(bytes)} differently`).toStrictEqual(first.value);
  }
  for (const mode of modes) {
    let again: Uint8Array;
    try {
      again = toXdr(d.codecs[mode], first.value);
    } catch (e) {
      throw new Error(`${d.label} (${mode}): ${hex(bytes)} decodes, but its value does not encode: ${describeThrown(e)}`);
    }
    if (again.length !== bytes.length) throw new Error(`${d.label} (${mode}): ${hex(bytes)} decodes, but re-encodes as ${hex(again)}`);
    const diff = canonicalDifference(bytes, again);
    if (diff !== undefined) throw new Error(`${d.label} (${mode}): ${hex(bytes)} decodes, but re-encodes as ${hex(again)} (${diff})`);
  }
}

describe("generated codecs of the corpus, every mode", () => {
  let decoders: Decoder[] = [];
  beforeAll(async () => {
    decoders = await corpusDecoders();
  }, 120_000);

  it("covers every type and procedure of the corpus", () => {
    // 19 system files, idl/ and the fixtures: several hundred decoders.
    expect(decoders.length).toBeGreaterThan(300);
  });

  it("mutated valid encodings: a value or an XdrError, the same in every mode, and the value re-encodes to the same bytes", () => {
    const started = performance.now();
    for (const d of decoders) {
      const valid = d.arbitrary.map((v) => toXdr(d.codecs.classic, v).slice());
      const input = fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([bytes, ms]) => mutate(bytes, ms));
      fuzz(`codec ${d.label}, mutated`, fc.property(input, (bytes) => checkDecoder(d, bytes)), { numRuns: 40, timeMs: 300 });
    }
    // Bounded: the whole corpus stays within the file's budget.
    expect(performance.now() - started).toBeLessThan(120_000);
  }, 150_000);

  it("random XDR-shaped bytes: a value or an XdrError, the same in every mode", () => {
    for (const d of decoders) {
      fuzz(`codec ${d.label}, random`, fc.property(xdrLikeBytes(24), (bytes) => checkDecoder(d, bytes)), { numRuns: 20, timeMs: 200 });
    }
  }, 150_000);
});

// ---- the XDR reader -------------------------------------------------------------------------

type ReaderOp =
  | { op: "int" | "uint" | "hyper" | "uhyper" | "float" | "double" | "bool" | "optional" | "finish" | "enter" | "leave" }
  | { op: "intIn"; min: number; max: number }
  | { op: "enumValue"; members: number[] }
  | { op: "fixedOpaque" | "take"; n: number; copy: boolean }
  | { op: "varOpaque" | "string"; max: number; copy: boolean }
  | { op: "arrayLength" | "checkFixedArray"; n: number; min: number };

const bound = fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(0x7fff_ffff, 0xffff_ffff));
const readerOp: fc.Arbitrary<ReaderOp> = fc.oneof(
  fc.constantFrom("int", "uint", "hyper", "uhyper", "float", "double", "bool", "optional", "finish", "enter", "leave").map((op) => ({ op }) as ReaderOp),
  fc.constantFrom([-128, 127], [0, 255], [-32768, 32767], [0, 65535]).map(([min, max]) => ({ op: "intIn" as const, min: min!, max: max! })),
  fc.array(fc.integer({ min: -3, max: 5 }), { maxLength: 4 }).map((members) => ({ op: "enumValue" as const, members })),
  fc.record({ op: fc.constantFrom("fixedOpaque" as const, "take" as const), n: bound, copy: fc.boolean() }),
  fc.record({ op: fc.constantFrom("varOpaque" as const, "string" as const), max: bound, copy: fc.boolean() }),
  fc.record({ op: fc.constantFrom("arrayLength" as const, "checkFixedArray" as const), n: bound, min: fc.integer({ min: 0, max: 16 }) }),
);

/** Runs `ops` until the first error; returns what each gave (values as text) and the error. */
function runReader(r: XdrReader, ops: readonly ReaderOp[]): string[] {
  const out: string[] = [];
  for (const o of ops) {
    try {
      let v: unknown;
      switch (o.op) {
        case "intIn":
          v = r.intIn(o.min, o.max, "c");
          break;
        case "enumValue":
          v = r.enumValue(new Set(o.members), "e");
          break;
        case "fixedOpaque":
          v = hex(r.fixedOpaque(o.n, o.copy));
          break;
        case "take":
          v = r.take(o.n) - r.start;
          break;
        case "varOpaque":
          v = hex(r.varOpaque(o.max, o.copy));
          break;
        case "string":
          v = r.string(o.max);
          break;
        case "arrayLength":
          v = r.arrayLength(o.n, o.min);
          break;
        case "checkFixedArray":
          v = r.checkFixedArray(o.n, o.min);
          break;
        default:
          v = r[o.op]();
      }
      if (r.pos < r.start || r.pos > r.end) throw new Error(`${o.op} left the reader at ${r.pos}, outside [${r.start}, ${r.end}]`);
      out.push(`${o.op} ${typeof v === "bigint" ? `${v}n` : Object.is(v, -0) ? "-0" : String(v)} @${r.pos - r.start}`);
    } catch (e) {
      if (!(e instanceof XdrError)) throw new Error(`XdrReader.${o.op} threw ${describeThrown(e)}`);
      out.push(`error ${e.message}`);
      break;
    }
  }
  return out;
}

describe("runtime/xdr reader", () => {
  it("every primitive gives a value or an XdrError, never reads outside its window, and does not depend on the bytes around it", () => {
    const input = fc.record({
      before: fc.uint8Array({ maxLength: 12 }),
      window: fc.oneof(xdrLikeBytes(16), fc.uint8Array({ maxLength: 64 })),
      after: fc.uint8Array({ maxLength: 12 }),
      ops: fc.array(readerOp, { minLength: 1, maxLength: 12 }),
    });
    fuzz(
      "XdrReader primitives",
      fc.property(input, ({ before, window, after, ops }) => {
        // The same window alone, and inside other bytes read through reset(): the same results.
        const alone = runReader(new XdrReader(window.slice()), ops);
        const whole = concat(before, window, after);
        const r = new XdrReader(new Uint8Array(0));
        r.reset(whole, before.length, before.length + window.length);
        expect(runReader(r, ops)).toEqual(alone);
        const inner = new XdrReader(whole.subarray(before.length, before.length + window.length));
        expect(runReader(inner, ops)).toEqual(alone);
      }),
      { numRuns: 1500, timeMs: 4000 },
    );
  });
});

// ---- RPC message headers -------------------------------------------------------------------

/** Only the runtime's own error types may escape a header parser. */
function parse<T>(what: string, bytes: Uint8Array, f: (r: XdrReader) => T): T | undefined {
  try {
    return f(new XdrReader(bytes));
  } catch (e) {
    if (e instanceof XdrError || e instanceof RpcError) return undefined;
    throw new Error(`${what} on ${hex(bytes)} threw ${describeThrown(e)}`);
  }
}

const authSysParams = fc.record({
  stamp: fc.integer({ min: 0, max: 0xffff_ffff }),
  machinename: fc.string({ maxLength: 40 }).filter((s) => Buffer.byteLength(s) <= 255 && !/[\ud800-\udfff]/.test(s)),
  uid: fc.integer({ min: 0, max: 0xffff_ffff }),
  gid: fc.integer({ min: 0, max: 0xffff_ffff }),
  gids: fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { maxLength: 16 }),
});

const opaqueAuth: fc.Arbitrary<OpaqueAuth> = fc.oneof(
  fc.constant(AUTH_NONE),
  authSysParams.map((p) => authSys(p, new XdrWriter(512))),
  fc.record({ flavor: interestingWord, body: fc.uint8Array({ maxLength: MAX_AUTH_BYTES }) }),
);

interface CallInput {
  readonly xid: number;
  readonly prog: number;
  readonly vers: number;
  readonly proc: number;
  readonly cred: OpaqueAuth;
  readonly verf: OpaqueAuth;
  readonly args: Uint8Array;
}

const callHeader: fc.Arbitrary<CallInput> = fc.record({
  xid: fc.integer({ min: 0, max: 0xffff_ffff }),
  prog: interestingWord,
  vers: interestingWord,
  proc: interestingWord,
  cred: opaqueAuth,
  verf: opaqueAuth,
  args: fc.uint8Array({ maxLength: 32 }),
});

function callBytes(h: fc.Arbitrary<CallInput>): fc.Arbitrary<{ call: CallInput; bytes: Uint8Array }> {
  return h.map((c) => {
    const w = new XdrWriter(1024);
    writeCallHeader(w, c.xid, c.prog, c.vers, c.proc, c.cred, c.verf);
    return { call: c, bytes: concat(w.bytes(), c.args) };
  });
}

const replyBytes: fc.Arbitrary<Uint8Array> = fc
  .record({
    xid: fc.integer({ min: 0, max: 0xffff_ffff }),
    kind: fc.constantFrom("accepted", "rpc-mismatch", "auth-error"),
    stat: fc.integer({ min: 0, max: 5 }),
    authStat: fc.integer({ min: 0, max: 7 }),
    low: interestingWord,
    high: interestingWord,
    verf: opaqueAuth,
    results: fc.uint8Array({ maxLength: 16 }),
  })
  .map((r) => {
    const w = new XdrWriter(1024);
    if (r.kind === "accepted") {
      writeAcceptedReply(w, r.xid, r.verf, r.stat as 0, { low: r.low, high: r.high });
      w.copyIn(r.results, false);
    } else if (r.kind === "rpc-mismatch") {
      writeRejectedReply(w, r.xid, { kind: "rpc-mismatch", low: r.low, high: r.high });
    } else {
      writeRejectedReply(w, r.xid, { kind: "auth-error", stat: r.authStat as 1 });
    }
    return w.bytes().slice();
  });

describe("RPC message headers (runtime/rpc/message.ts)", () => {
  it("a call header reads back as written, and a mutated one reads or throws XdrError", () => {
    const input = fc.tuple(callBytes(callHeader), fc.array(mutation, { maxLength: 4 }));
    fuzz(
      "call header",
      fc.property(input, ([{ call, bytes }, ms]) => {
        const back = parse("readCallHeader", bytes, (r) => readCallHeader(r));
        expect(back).toBeDefined();
        expect({ ...back!, cred: { ...back!.cred, body: hex(back!.cred.body) }, verf: { ...back!.verf, body: hex(back!.verf.body) } }).toEqual({
          xid: call.xid,
          rpcvers: 2,
          prog: call.prog >>> 0,
          vers: call.vers >>> 0,
          proc: call.proc >>> 0,
          cred: { flavor: call.cred.flavor >>> 0, body: hex(call.cred.body) },
          verf: { flavor: call.verf.flavor >>> 0, body: hex(call.verf.body) },
        });
        const mutated = mutate(bytes, ms);
        parse("readCallHeader", mutated, (r) => {
          const h = readCallHeader(r);
          // What it read is within the message, and each body within its bound.
          if (r.pos > mutated.length || h.cred.body.length > MAX_AUTH_BYTES || h.verf.body.length > MAX_AUTH_BYTES) throw new Error("read past the message");
          return h;
        });
      }),
      { numRuns: 1500, timeMs: 3000 },
    );
  });

  it("a reply header, random or mutated, reads or throws XdrError (or RpcError)", () => {
    const input = fc.oneof(
      fc.tuple(replyBytes, fc.array(mutation, { maxLength: 4 })).map(([b, ms]) => mutate(b, ms)),
      xdrLikeBytes(16),
    );
    fuzz("reply header", fc.property(input, (bytes) => void parse("readReplyHeader", bytes, (r) => readReplyHeader(r))), { numRuns: 1500, timeMs: 2000 });
  });

  it("AUTH_SYS credentials read back as written, and mutated ones read or throw XdrError", () => {
    const input = fc.tuple(authSysParams, fc.array(mutation, { maxLength: 4 }));
    fuzz(
      "authsys_parms",
      fc.property(input, ([p, ms]) => {
        const body = authSys(p, new XdrWriter(512)).body;
        expect(parse("readAuthSys", body, (r) => readAuthSys(body, r))).toEqual({ ...p, stamp: p.stamp >>> 0 });
        const mutated = mutate(body, ms);
        const back = parse("readAuthSys", mutated, (r) => readAuthSys(mutated, r));
        // What reads is what was sent: it is written back to the same bytes, but for padding.
        if (back !== undefined) {
          const again = authSys(back, new XdrWriter(512)).body;
          expect(again.length).toBe(mutated.length);
          expect(canonicalDifference(mutated, again), `${hex(mutated)} re-encodes as ${hex(again)}`).toBeUndefined();
        }
      }),
      { numRuns: 1500, timeMs: 2000 },
    );
  });
});

// ---- record marking --------------------------------------------------------------------------

/** A stream of records built from fragments, with their payloads. */
const framed = fc
  .array(
    fc.record({
      fragments: fc.array(fc.record({ length: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 40 })), fill: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 5 }),
    }),
    { maxLength: 6 },
  )
  .map((records) => {
    const parts: Uint8Array[] = [];
    for (const r of records) {
      r.fragments.forEach((f, k) => {
        const mark = new Uint8Array(4);
        new DataView(mark.buffer).setUint32(0, (k === r.fragments.length - 1 ? 0x8000_0000 : 0) | f.length);
        parts.push(mark, Uint8Array.from({ length: f.length }, (_, j) => (f.fill + j) & 0xff));
      });
    }
    return concat(...parts);
  });

describe("record marking (runtime/transports/record-marking.ts)", () => {
  it("delivers exactly the records the framing holds, however the stream is cut, or throws RecordError past a limit", () => {
    const input = fc.record({
      stream: fc.oneof(
        { arbitrary: framed, weight: 3 },
        { arbitrary: fc.tuple(framed, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([s, ms]) => mutate(s, ms)), weight: 3 },
        { arbitrary: xdrLikeBytes(24), weight: 1 },
      ),
      cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }),
      limits: fc.record({ maxRecordBytes: fc.constantFrom(4 * 1024 * 1024, 64, 16), maxFragments: fc.constantFrom(1024, 3, 1) }),
    });
    fuzz(
      "record decoder",
      fc.property(input, ({ stream, cuts, limits }) => {
        const framing = referenceRecords(stream, limits);
        const expected = { records: framing.records.map(hex), broken: framing.broken };
        const points = [...new Set(cuts.map((c) => Math.floor(c * stream.length)))].sort((a, b) => a - b);
        const delivered: string[] = [];
        let held = 0;
        const decoder = new RecordDecoder((record) => {
          if (record.length > limits.maxRecordBytes) throw new Error(`delivered a record of ${record.length} bytes over the limit`);
          delivered.push(hex(record));
        }, limits);
        let thrown: unknown;
        let from = 0;
        for (const to of [...points, stream.length]) {
          try {
            // A fresh copy per chunk, as sockets give: the decoder may keep views of it.
            decoder.push(stream.slice(from, to));
            held = to;
          } catch (e) {
            thrown = e;
            break;
          }
          from = to;
        }
        if (thrown !== undefined && !(thrown instanceof RecordError)) throw new Error(`push threw ${describeThrown(thrown)} on ${hex(stream)}`);
        // Whatever was delivered is the framing's records, in order, each once.
        expect(delivered, `records of ${hex(stream)}`).toEqual(expected.records.slice(0, delivered.length));
        if (expected.broken) {
          expect(thrown, `a record over the limits in ${hex(stream)}`).toBeInstanceOf(RecordError);
        } else {
          expect(thrown, `no record over the limits in ${hex(stream)}`).toBeUndefined();
          expect(held).toBe(stream.length);
          expect(delivered).toEqual(expected.records);
        }
      }),
      { numRuns: 2000, timeMs: 4000 },
    );
  });
});

// ---- the UDP duplicate-request cache's key parser --------------------------------------------

/**
 * The key parser as drc.ts exports it today: (peer, datagram) → key, or undefined for what
 * is not a well-formed call. Looked up by name so that this file follows its rework.
 */
const callKey = (drc as unknown as Record<string, unknown>).callKey as ((peer: string, m: Uint8Array) => unknown) | undefined;
/** The checksum of a call's arguments `m[from, to)`, where the cache keeps one beside the key. */
const argumentsChecksum = (drc as unknown as Record<string, unknown>).argumentsChecksum as ((m: Uint8Array, from: number, to: number) => unknown) | undefined;

/** What tells two calls apart in the cache: the key and, if the cache has one, the checksum of the arguments. */
function identity(peer: string, m: Uint8Array): unknown {
  const key = callKey!(peer, m);
  if (key === undefined || argumentsChecksum === undefined) return key;
  return [key, argumentsChecksum(m, headerLength(m), m.length)];
}

describe("UDP duplicate-cache key parser (runtime/transports/drc.ts)", () => {
  it("never throws, and knows a call exactly when the server's header parser does", () => {
    expect(typeof callKey).toBe("function");
    const input = fc.oneof(
      fc.tuple(callBytes(callHeader), fc.array(mutation, { maxLength: 4 })).map(([c, ms]) => mutate(c.bytes, ms)),
      xdrLikeBytes(20),
    );
    fuzz(
      "callKey",
      fc.property(input, fc.constantFrom("127.0.0.1:700", "[::1]:700"), (bytes, peer) => {
        let key: unknown;
        try {
          key = callKey!(peer, bytes);
        } catch (e) {
          throw new Error(`callKey on ${hex(bytes)} threw ${describeThrown(e)}`);
        }
        const header = parse("readCallHeader", bytes, (r) => readCallHeader(r));
        expect(key === undefined, `callKey and readCallHeader disagree on ${hex(bytes)}`).toBe(header === undefined);
      }),
      { numRuns: 1500, timeMs: 2000 },
    );
  });

  it("tells calls apart by xid, program, version, procedure, peer and arguments; the same datagram gets the same key", () => {
    const input = fc.record({
      call: callBytes(
        callHeader.map((c) => ({ ...c, cred: c.cred.flavor === AuthFlavor.AUTH_SYS || c.cred === AUTH_NONE ? c.cred : AUTH_NONE, args: c.args.subarray(0, c.args.length & ~3) })),
      ),
      field: fc.constantFrom("xid", "prog", "vers", "proc", "peer", "args"),
      delta: fc.integer({ min: 1, max: 0xffff_ffff }),
      argByte: fc.nat(),
    });
    fuzz(
      "callKey identity",
      fc.property(input, ({ call: { bytes }, field, delta, argByte }) => {
        const peer = "127.0.0.1:700";
        const key = identity(peer, bytes);
        expect(key).toBeDefined();
        expect(identity(peer, bytes.slice())).toEqual(key);
        const other = bytes.slice();
        const dv = new DataView(other.buffer);
        const headerEnd = headerLength(bytes);
        let otherPeer = peer;
        switch (field) {
          case "xid":
            dv.setUint32(0, (dv.getUint32(0) + delta) >>> 0);
            break;
          case "prog":
            dv.setUint32(12, (dv.getUint32(12) + delta) >>> 0);
            break;
          case "vers":
            dv.setUint32(16, (dv.getUint32(16) + delta) >>> 0);
            break;
          case "proc":
            dv.setUint32(20, (dv.getUint32(20) + delta) >>> 0);
            break;
          case "peer":
            otherPeer = "127.0.0.1:701";
            break;
          case "args": {
            // Different arguments (within the first 256 bytes, which Linux nfsd checksums).
            const n = other.length - headerEnd;
            if (n === 0) {
              const longer = concat(other, new Uint8Array([0, 0, 0, (delta & 0xff) | 1]));
              expect(identity(peer, longer), "same header, arguments added").not.toEqual(key);
              return;
            }
            other[headerEnd + (argByte % Math.min(n, 256))]! ^= (delta & 0xff) | 1;
            break;
          }
        }
        expect(identity(otherPeer, other), `${field} differs`).not.toEqual(key);
      }),
      { numRuns: 600, timeMs: 1500 },
    );
  });
});

/** Bytes of a well-formed call header (up to the arguments). */
function headerLength(m: Uint8Array): number {
  const verf = 32 + ((u32(m, 28) + 3) & ~3);
  return verf + 8 + ((u32(m, verf + 4) + 3) & ~3);
}
