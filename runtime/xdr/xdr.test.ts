import fc from "fast-check";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { XdrError, XdrReader, XdrWriter, padded, utf8Length } from "./index.js";

/** "00000003 61626300" -> bytes; spaces are for the reader. */
function fromHex(hex: string): Uint8Array {
  const h = hex.replace(/\s+/g, "");
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Hex written with spaces for readability, as toHex prints it. */
function hx(spaced: string): string {
  return spaced.replace(/\s+/g, "");
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Encodes with a fresh growable writer and returns the hex of the result. */
function enc(write: (w: XdrWriter) => void): string {
  const w = new XdrWriter(4);
  write(w);
  return toHex(w.bytes());
}

/** The XdrError thrown by `f`; fails the test if it throws anything else or nothing. */
function xdrErrorOf(f: () => unknown): XdrError {
  try {
    f();
  } catch (e) {
    if (e instanceof XdrError) return e;
    throw new Error(`expected XdrError, got ${String(e)}`);
  }
  throw new Error("expected XdrError, nothing was thrown");
}

function encodeError(write: (w: XdrWriter) => void): string {
  return xdrErrorOf(() => write(new XdrWriter(64))).message;
}

function decodeError(hex: string, read: (r: XdrReader) => unknown): string {
  return xdrErrorOf(() => read(new XdrReader(fromHex(hex)))).message;
}

const U32_MAX = 0xffffffff;

// A real GC before measuring makes ArrayBuffer growth exact: garbage from
// earlier tests cannot be freed inside the window and hide an allocation.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Bytes of ArrayBuffer memory that `f` leaves allocated (garbage included: no GC runs in between). */
function arrayBufferGrowth(f: () => void): number {
  gc();
  const before = process.memoryUsage().arrayBuffers;
  f();
  return process.memoryUsage().arrayBuffers - before;
}

describe("XdrError", () => {
  it("formats op, path, offset and detail", () => {
    const e = new XdrError("decode", 36, "string of 70 bytes exceeds bound 64");
    expect(e.message).toBe("decode at byte 36: string of 70 bytes exceeds bound 64");
    expect(e.within("r_addr").within("rpcb")).toBe(e);
    expect(e.message).toBe("decode rpcb.r_addr at byte 36: string of 70 bytes exceeds bound 64");
    expect(e.path).toEqual(["rpcb", "r_addr"]);
    expect(e.name).toBe("XdrError");
    expect(e).toBeInstanceOf(Error);
    expect(String(e)).toBe("XdrError: decode rpcb.r_addr at byte 36: string of 70 bytes exceeds bound 64");
    expect([e.op, e.offset, e.detail]).toEqual(["decode", 36, "string of 70 bytes exceeds bound 64"]);
  });

  it("joins array indices without a dot", () => {
    const e = new XdrError("encode", 8, "boom").within("name").within("[3]").within("items").within("list");
    expect(e.message).toBe("encode list.items[3].name at byte 8: boom");
    expect(new XdrError("decode", 0, "x", ["[0]", "[1]", "a"]).message).toBe("decode [0][1].a at byte 0: x");
  });

  it("takes an initial path", () => {
    const e = new XdrError("encode", 4, "bad", ["nfs_fattr", "mtime", "seconds"]);
    expect(e.message).toBe("encode nfs_fattr.mtime.seconds at byte 4: bad");
  });
});

describe("byte layout per RFC 4506", () => {
  it("integers (§4.1, §4.2) are 4 bytes big-endian", () => {
    expect(enc((w) => w.int(1))).toBe("00000001");
    expect(enc((w) => w.int(-1))).toBe("ffffffff");
    expect(enc((w) => w.int(-0x80000000))).toBe("80000000");
    expect(enc((w) => w.int(0x7fffffff))).toBe("7fffffff");
    expect(enc((w) => w.int(-0))).toBe("00000000");
    expect(enc((w) => w.uint(U32_MAX))).toBe("ffffffff");
    expect(enc((w) => w.uint(0x01020304))).toBe("01020304");
    expect(enc((w) => w.intIn(255, 0, 255, "u_char"))).toBe("000000ff");
    expect(enc((w) => w.intIn(-128, -128, 127, "char"))).toBe("ffffff80");
    expect(enc((w) => w.intIn(U32_MAX, 0, U32_MAX, "u_long"))).toBe("ffffffff");
  });

  it("hypers (§4.5) are 8 bytes big-endian", () => {
    expect(enc((w) => w.hyper(-(2n ** 63n)))).toBe("8000000000000000");
    expect(enc((w) => w.hyper(2n ** 63n - 1n))).toBe("7fffffffffffffff");
    expect(enc((w) => w.hyper(-1n))).toBe("ffffffffffffffff");
    expect(enc((w) => w.hyper(0x0102030405060708n))).toBe("0102030405060708");
    expect(enc((w) => w.uhyper(2n ** 64n - 1n))).toBe("ffffffffffffffff");
    expect(enc((w) => w.uhyper(0n))).toBe("0000000000000000");
  });

  it("floats (§4.6) and doubles (§4.7) are IEEE big-endian", () => {
    expect(enc((w) => w.float(1))).toBe("3f800000");
    expect(enc((w) => w.float(-0))).toBe("80000000");
    expect(enc((w) => w.float(Infinity))).toBe("7f800000");
    expect(enc((w) => w.float(-Infinity))).toBe("ff800000");
    expect(enc((w) => w.float(NaN))).toBe("7fc00000");
    expect(enc((w) => w.double(1))).toBe("3ff0000000000000");
    expect(enc((w) => w.double(-0))).toBe("8000000000000000");
    expect(enc((w) => w.double(-2.5))).toBe("c004000000000000");
  });

  it("bool (§4.4) and the optional-data discriminant (§4.19) are 0/1 words", () => {
    expect(enc((w) => w.bool(true))).toBe("00000001");
    expect(enc((w) => w.bool(false))).toBe("00000000");
    expect(enc((w) => w.optional(true))).toBe("00000001");
    expect(enc((w) => w.optional(false))).toBe("00000000");
  });

  it("strings (§4.11): length, UTF-8 bytes, zero padding", () => {
    expect(enc((w) => w.string("abc", 64))).toBe(hx("00000003 61626300"));
    expect(enc((w) => w.string("", 0))).toBe("00000000");
    expect(enc((w) => w.string("abcd", 4))).toBe("0000000461626364");
    expect(enc((w) => w.string("abcde", 5))).toBe("000000056162636465000000");
    expect(enc((w) => w.string("é", 2))).toBe("00000002c3a90000");
    expect(enc((w) => w.string("😀", 4))).toBe("00000004f09f9880");
    expect(enc((w) => w.string("€", 3))).toBe("00000003e282ac00");
  });

  it("opaques (§4.9, §4.10): fixed has no length; both are zero padded", () => {
    expect(enc((w) => w.fixedOpaque(fromHex("010203"), 3))).toBe("01020300");
    expect(enc((w) => w.fixedOpaque(fromHex("01020304"), 4))).toBe("01020304");
    expect(enc((w) => w.fixedOpaque(new Uint8Array(0), 0))).toBe("");
    expect(enc((w) => w.varOpaque(fromHex("0102030405"), 8))).toBe("000000050102030405000000");
    expect(enc((w) => w.varOpaque(new Uint8Array(0), 0))).toBe("00000000");
    expect(enc((w) => w.varOpaque(fromHex("aa"), U32_MAX))).toBe("00000001aa000000");
  });

  it("array counts (§4.13) are unsigned words", () => {
    expect(enc((w) => w.arrayLength(3, 10))).toBe("00000003");
    expect(enc((w) => w.enumValue(2, new Set([1, 2]), "color"))).toBe("00000002");
  });

  it("a mixed struct is the concatenation of its parts", () => {
    const hex = enc((w) => {
      w.int(7);
      w.string("hi", 8);
      w.hyper(1n);
      w.bool(true);
      w.varOpaque(fromHex("ff"), 4);
    });
    expect(hex).toBe(hx("00000007 00000002 68690000 0000000000000001 00000001 00000001 ff000000"));
  });
});

describe("round trip", () => {
  it("every primitive at its boundaries", () => {
    const w = new XdrWriter(8);
    const ints = [0, 1, -1, -0x80000000, 0x7fffffff];
    const uints = [0, 1, 0x7fffffff, 0x80000000, U32_MAX];
    const hypers = [0n, -1n, -(2n ** 63n), 2n ** 63n - 1n, 2n ** 32n];
    const uhypers = [0n, 2n ** 63n, 2n ** 64n - 1n];
    const floats = [0, -0, 1.5, Infinity, -Infinity, NaN, 3.4028234663852886e38, 1.401298464324817e-45];
    const doubles = [0, -0, Math.PI, Number.MAX_VALUE, Number.MIN_VALUE, -Infinity, NaN];
    const opaque = fromHex("000102030405");
    for (const v of ints) w.int(v);
    for (const v of uints) w.uint(v);
    for (const v of hypers) w.hyper(v);
    for (const v of uhypers) w.uhyper(v);
    for (const v of floats) w.float(v);
    for (const v of doubles) w.double(v);
    w.bool(true);
    w.bool(false);
    w.optional(true);
    w.intIn(-32768, -32768, 32767, "short");
    w.intIn(65535, 0, 65535, "u_short");
    w.fixedOpaque(opaque, 6);
    w.varOpaque(opaque, 6);
    w.varOpaque(new Uint8Array(0), 0);
    w.string("", 0);
    w.string("bound", 5);
    w.string("ü".repeat(8), 16); // 8 characters, 16 bytes: exactly at a byte bound
    w.arrayLength(2, 2);

    const r = new XdrReader(w.bytes());
    for (const v of ints) expect(r.int()).toBe(v);
    for (const v of uints) expect(r.uint()).toBe(v);
    for (const v of hypers) expect(r.hyper()).toBe(v);
    for (const v of uhypers) expect(r.uhyper()).toBe(v);
    for (const v of floats) expect(r.float()).toBe(v); // toBe is Object.is: checks -0 and NaN
    for (const v of doubles) expect(r.double()).toBe(v);
    expect(r.bool()).toBe(true);
    expect(r.bool()).toBe(false);
    expect(r.optional()).toBe(true);
    expect(r.intIn(-32768, 32767, "short")).toBe(-32768);
    expect(r.intIn(0, 65535, "u_short")).toBe(65535);
    expect(r.fixedOpaque(6)).toEqual(opaque);
    expect(r.varOpaque(6)).toEqual(opaque);
    expect(r.varOpaque(0)).toEqual(new Uint8Array(0));
    expect(r.string(0)).toBe("");
    expect(r.string(5)).toBe("bound");
    expect(r.string(16)).toBe("ü".repeat(8));
    expect(r.arrayLength(2, 0)).toBe(2);
    r.finish();
  });

  it("float rounds to single precision as C would", () => {
    const w = new XdrWriter();
    w.float(0.1);
    expect(new XdrReader(w.bytes()).float()).toBe(Math.fround(0.1));
  });

  it("strings of any length and script, including a leading BOM", () => {
    const cases = ["a", "x".repeat(16), "x".repeat(17), "y".repeat(1000), "\ufeffbom", "日本語テキスト", "mixed ascii then ü", "😀".repeat(40)];
    for (const s of cases) {
      const w = new XdrWriter(1);
      w.string(s, U32_MAX);
      const bytes = w.bytes();
      expect(bytes.length).toBe(4 + padded(Buffer.byteLength(s)));
      const r = new XdrReader(bytes);
      expect(r.string(U32_MAX)).toBe(s);
      r.finish();
    }
  });

  it("random well-formed strings round-trip and their byte length is the UTF-8 length", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), (s) => {
        const w = new XdrWriter(0);
        w.string(s, U32_MAX);
        const n = Buffer.byteLength(s);
        expect(utf8Length(s)).toBe(n);
        expect(w.pos).toBe(4 + padded(n));
        const r = new XdrReader(w.bytes());
        expect(r.string(n)).toBe(s);
        r.finish();
      }),
    );
  });

  it("random integers and hypers round-trip", () => {
    fc.assert(
      fc.property(fc.integer(), fc.nat(), fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n), fc.bigInt(0n, 2n ** 64n - 1n), (i, u, h, uh) => {
        const w = new XdrWriter(0);
        w.int(i);
        w.uint(u);
        w.hyper(h);
        w.uhyper(uh);
        const r = new XdrReader(w.bytes());
        expect([r.int(), r.uint(), r.hyper(), r.uhyper()]).toEqual([i, u, h, uh]);
        r.finish();
      }),
    );
  });

  it("lone surrogates are encoded as U+FFFD, as TextEncoder does", () => {
    const w = new XdrWriter();
    w.string("a\ud800b", 16);
    expect(toHex(w.bytes())).toBe("0000000561efbfbd62000000");
    expect(utf8Length("a\ud800b")).toBe(5);
    expect(utf8Length("\udc00\ud800")).toBe(6);
    expect(new XdrReader(w.bytes()).string(16)).toBe("a\ufffdb");
  });

  it("opaque views (copy=false) alias the buffer; copies do not", () => {
    const bytes = fromHex("00000002 abcd0000 01020304");
    const r = new XdrReader(bytes);
    const view = r.varOpaque(4, false);
    const copy = r.fixedOpaque(4, true);
    bytes[4] = 0x11;
    bytes[8] = 0x22;
    expect(toHex(view)).toBe("11cd");
    expect(toHex(copy)).toBe("01020304");
  });

  it("decodes from a Buffer into plain Uint8Arrays that are real copies", () => {
    const bytes = Buffer.from(fromHex("00000002 abcd0000"));
    const out = new XdrReader(bytes).varOpaque(2);
    expect(out.constructor).toBe(Uint8Array);
    bytes[4] = 0;
    expect(toHex(out)).toBe("abcd");
  });

  it("works over a SharedArrayBuffer (the shm transport's slots)", () => {
    const slot = new Uint8Array(new SharedArrayBuffer(64));
    const w = new XdrWriter(slot, { fixed: true, offset: 8 });
    w.string("héllo wörld, shared memory!", 64);
    w.varOpaque(fromHex("0102"), 4);
    const r = new XdrReader(slot, 8, w.pos);
    expect(r.string(64)).toBe("héllo wörld, shared memory!");
    expect(toHex(r.varOpaque(4))).toBe("0102");
    r.finish();
  });
});

describe("XdrWriter buffers", () => {
  it("writes zero padding over a dirty reused buffer", () => {
    const dirty = new Uint8Array(96).fill(0xff);
    const w = new XdrWriter(dirty, { fixed: true });
    w.string("a", 8);
    w.varOpaque(fromHex("01"), 8);
    w.fixedOpaque(fromHex("0203"), 2);
    w.string("é".repeat(20) + "z", 64); // 41 bytes: the TextEncoder path
    w.copyIn(fromHex("04"), true);
    expect(toHex(w.bytes())).toBe(
      "0000000161000000" + "0000000101000000" + "02030000" + "00000029" + "c3a9".repeat(20) + "7a000000" + "04000000",
    );
    // Reusing the same, now written, buffer for a shorter message still pads with zeros.
    dirty.fill(0xee);
    w.reset();
    w.string("xy", 8);
    expect(toHex(w.bytes())).toBe("0000000278790000");
  });

  it("grows by doubling and keeps everything written, including header room before the start", () => {
    const w = new XdrWriter(12, { offset: 8 });
    w.buf.set(fromHex("deadbeef cafef00d"), 0);
    w.int(1);
    expect(w.buf.length).toBe(12);
    w.int(2);
    expect(w.buf.length).toBe(24);
    w.varOpaque(new Uint8Array(100).fill(7), 100);
    expect(w.buf.length).toBe(120);
    expect(toHex(w.buf.subarray(0, 8))).toBe("deadbeefcafef00d");
    expect(toHex(w.bytes().subarray(0, 12))).toBe("000000010000000200000064");
    expect(w.bytes().length).toBe(12 + 100);
  });

  it("a growable writer over a caller's buffer abandons it when it grows", () => {
    const small = new Uint8Array(4);
    const w = new XdrWriter(small);
    w.int(1);
    w.int(2);
    expect(w.buf).not.toBe(small);
    expect(toHex(w.bytes())).toBe("0000000100000002");
  });

  it("a fixed writer refuses to grow", () => {
    const w = new XdrWriter(new Uint8Array(6), { fixed: true });
    w.int(1);
    expect(xdrErrorOf(() => w.int(2)).message).toBe("encode at byte 4: buffer full: need 4 bytes, 2 left");
    expect(xdrErrorOf(() => w.varOpaque(new Uint8Array(1), 4)).message).toBe(
      "encode at byte 4: buffer full: need 8 bytes, 2 left",
    );
    expect(xdrErrorOf(() => w.string("a", 4)).message).toBe("encode at byte 4: buffer full: need 8 bytes, 2 left");
    expect(xdrErrorOf(() => w.reserve(3)).message).toBe("encode at byte 4: buffer full: need 3 bytes, 2 left");
  });

  it("a fixed writer takes a string that fits exactly even when its worst case does not", () => {
    const w = new XdrWriter(new Uint8Array(12), { fixed: true });
    w.string("abcdefgh", 8); // worst case 4 + 24 bytes; real size 12
    expect(toHex(w.bytes())).toBe("000000086162636465666768");
  });

  it("reserve returns the run's offset for direct DataView stores", () => {
    const w = new XdrWriter(4, { offset: 4 });
    w.int(9);
    const o = w.reserve(12);
    w.view.setInt32(o, 1);
    w.view.setInt32(o + 4, 2);
    w.view.setInt32(o + 8, 3);
    expect(o).toBe(8);
    expect(toHex(w.bytes())).toBe("00000009000000010000000200000003");
  });

  it("reset restarts at the start, or at a new buffer and offset", () => {
    const w = new XdrWriter(16, { offset: 4 });
    w.int(1);
    w.reset();
    expect(w.pos).toBe(4);
    w.int(2);
    expect(toHex(w.bytes())).toBe("00000002");
    const other = new Uint8Array(16);
    w.reset(other, 8);
    w.int(3);
    expect(w.buf).toBe(other);
    expect(toHex(other.subarray(8, 12))).toBe("00000003");
    expect(toHex(w.bytes())).toBe("00000003");
    w.reset(undefined, 0);
    expect(w.bytes().length).toBe(0);
    expect(() => w.reset(other, 17)).toThrow(RangeError);
    expect(() => new XdrWriter(new Uint8Array(2), { offset: 3 })).toThrow(RangeError);
  });

  it("copyIn copies with or without padding", () => {
    const w = new XdrWriter(0);
    w.copyIn(fromHex("0102"), false);
    w.copyIn(fromHex("03"), true);
    w.copyIn(new Uint8Array(0), true);
    expect(toHex(w.bytes())).toBe(hx("0102 03000000"));
  });
});

describe("encode errors", () => {
  const cases: Array<[string, (w: XdrWriter) => void, string]> = [
    ["int too big", (w) => w.int(2 ** 31), "value 2147483648 out of range for int [-2147483648, 2147483647]"],
    ["int too small", (w) => w.int(-(2 ** 31) - 1), "value -2147483649 out of range for int [-2147483648, 2147483647]"],
    ["int fraction", (w) => w.int(1.5), "value 1.5 for int is not an integer"],
    ["int NaN", (w) => w.int(NaN), "value NaN for int is not an integer"],
    ["int string", (w) => w.int("1" as unknown as number), "expected number for int, got string"],
    ["uint negative", (w) => w.uint(-1), "value -1 out of range for unsigned int [0, 4294967295]"],
    ["uint too big", (w) => w.uint(2 ** 32), "value 4294967296 out of range for unsigned int [0, 4294967295]"],
    ["u_char", (w) => w.intIn(300, 0, 255, "u_char"), "value 300 out of range for u_char [0, 255]"],
    ["char", (w) => w.intIn(-129, -128, 127, "char"), "value -129 out of range for char [-128, 127]"],
    ["short fraction", (w) => w.intIn(0.5, -32768, 32767, "short"), "value 0.5 for short is not an integer"],
    ["u_short null", (w) => w.intIn(null as unknown as number, 0, 65535, "u_short"), "expected number for u_short, got null"],
    [
      "hyper too big",
      (w) => w.hyper(2n ** 63n),
      "value 9223372036854775808 out of range for hyper [-9223372036854775808, 9223372036854775807]",
    ],
    [
      "hyper too small",
      (w) => w.hyper(-(2n ** 63n) - 1n),
      "value -9223372036854775809 out of range for hyper [-9223372036854775808, 9223372036854775807]",
    ],
    ["hyper number", (w) => w.hyper(5 as unknown as bigint), "expected bigint for hyper, got number"],
    ["uhyper negative", (w) => w.uhyper(-1n), "value -1 out of range for unsigned hyper [0, 18446744073709551615]"],
    [
      "uhyper too big",
      (w) => w.uhyper(2n ** 64n),
      "value 18446744073709551616 out of range for unsigned hyper [0, 18446744073709551615]",
    ],
    ["float string", (w) => w.float("1" as unknown as number), "expected number for float, got string"],
    ["double bigint", (w) => w.double(1n as unknown as number), "expected number for double, got bigint"],
    ["bool number", (w) => w.bool(1 as unknown as boolean), "expected boolean for bool, got number"],
    ["optional null", (w) => w.optional(null as unknown as boolean), "expected boolean for optional-data discriminant, got null"],
    ["enum", (w) => w.enumValue(7, new Set([0, 1]), "color"), "value 7 is not a member of enum color"],
    ["fixed opaque short", (w) => w.fixedOpaque(fromHex("010203"), 4), "opaque of 3 bytes, expected exactly 4"],
    ["fixed opaque array", (w) => w.fixedOpaque([1, 2] as unknown as Uint8Array, 2), "expected Uint8Array for opaque[2], got array"],
    ["var opaque over bound", (w) => w.varOpaque(new Uint8Array(70), 64), "opaque of 70 bytes exceeds bound 64"],
    ["var opaque string", (w) => w.varOpaque("ab" as unknown as Uint8Array, 64), "expected Uint8Array for opaque<>, got string"],
    ["string over bound", (w) => w.string("x".repeat(70), 64), "string of 70 bytes exceeds bound 64"],
    // 3 characters but 6 bytes: the bound is in bytes.
    ["string over byte bound", (w) => w.string("ééé", 5), "string of 6 bytes exceeds bound 5"],
    ["long string over byte bound", (w) => w.string("é".repeat(40), 79), "string of 80 bytes exceeds bound 79"],
    ["string number", (w) => w.string(5 as unknown as string, 5), "expected string, got number"],
    ["array over bound", (w) => w.arrayLength(65, 64), "array of 65 elements exceeds bound 64"],
    ["array count negative", (w) => w.arrayLength(-1, 64), "value -1 out of range for unsigned int [0, 4294967295]"],
    ["fixed array", (w) => w.checkFixedArray(3, 4), "array of 3 elements, expected exactly 4"],
  ];
  for (const [name, write, detail] of cases) {
    it(name, () => {
      expect(encodeError(write)).toBe(`encode at byte 0: ${detail}`);
    });
  }

  it("offsets count from the writer's start and name the failing item", () => {
    const w = new XdrWriter(64, { offset: 8 });
    w.int(1);
    w.string("ok", 4);
    const e = xdrErrorOf(() => w.intIn(256, 0, 255, "u_char"));
    expect(e.offset).toBe(12);
    expect(e.within("flags").within("hdr").message).toBe("encode hdr.flags at byte 12: value 256 out of range for u_char [0, 255]");
  });

  it("a failed item does not advance pos", () => {
    const w = new XdrWriter(64);
    w.int(1);
    xdrErrorOf(() => w.string("ééé", 5));
    xdrErrorOf(() => w.varOpaque(new Uint8Array(9), 8));
    expect(w.pos).toBe(4);
  });

  it("enter/leave bound nesting on encode too", () => {
    const w = new XdrWriter(0, { maxDepth: 3 });
    w.enter();
    w.enter();
    w.enter();
    expect(xdrErrorOf(() => w.enter()).message).toBe("encode at byte 0: nesting deeper than 3");
    w.leave();
    w.enter();
  });
});

describe("views", () => {
  const message = (memory: ArrayBufferLike): Uint8Array => {
    const bytes = new Uint8Array(memory, 8, 16);
    bytes.set([0, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0, 9]);
    return bytes;
  };

  it("an opaque asked for as a view is a view of ordinary memory, and no copy", () => {
    const bytes = message(new ArrayBuffer(32));
    const r = new XdrReader(bytes);
    const o = r.varOpaque(16, false);
    expect([...o]).toEqual([1, 2, 3, 4, 5]);
    expect(o.buffer).toBe(bytes.buffer);
    expect(r.viewsTaken).toBe(true);
    expect(r.copiedBytes).toBe(0);
  });

  it("is copied out of shared memory, which another thread may write at any time, and counted", () => {
    const bytes = message(new SharedArrayBuffer(32));
    const r = new XdrReader(new Uint8Array(4));
    r.reset(bytes); // a reader moving to shared memory, as a server's reader moves between transports
    const o = r.varOpaque(16, false);
    expect([...o]).toEqual([1, 2, 3, 4, 5]);
    expect(o.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    bytes[4] = 0xff; // the other thread writes the slot again
    expect(o[0]).toBe(1);
    expect(r.viewsTaken).toBe(false);
    expect(r.copiedBytes).toBe(5);
    expect(r.uint()).toBe(9);
    // Back in ordinary memory, views are views again; the count starts over with each message.
    r.reset(message(new ArrayBuffer(32)));
    expect(r.copiedBytes).toBe(0);
    r.varOpaque(16, false);
    expect(r.viewsTaken).toBe(true);
    expect(r.copiedBytes).toBe(0);
  });
});

describe("decode errors on hostile input", () => {
  /** A message with one of everything, and its decoder. */
  const message = (() => {
    const w = new XdrWriter();
    w.int(-5);
    w.hyper(1n << 40n);
    w.string("héllo", 16);
    w.varOpaque(fromHex("0102030405"), 8);
    w.fixedOpaque(fromHex("aabbcc"), 3);
    w.bool(true);
    w.optional(true);
    w.double(2.5);
    w.arrayLength(2, 4);
    w.uint(7);
    w.uint(8);
    return w.bytes().slice();
  })();
  const decodeAll = (r: XdrReader): unknown[] => {
    const out = [r.int(), r.hyper(), r.string(16), r.varOpaque(8), r.fixedOpaque(3), r.bool(), r.optional(), r.double()];
    const n = r.arrayLength(4, 4);
    for (let i = 0; i < n; i++) out.push(r.uint());
    r.finish();
    return out;
  };

  it("the whole message decodes", () => {
    expect(decodeAll(new XdrReader(message))).toEqual([
      -5,
      1n << 40n,
      "héllo",
      fromHex("0102030405"),
      fromHex("aabbcc"),
      true,
      true,
      2.5,
      7,
      8,
    ]);
  });

  it("every cut point of the message is a truncation error, never anything else", () => {
    for (let cut = 0; cut < message.length; cut++) {
      const e = xdrErrorOf(() => decodeAll(new XdrReader(message.subarray(0, cut))));
      expect(e.op).toBe("decode");
      expect(e.detail).toMatch(/^truncated: /);
      expect(e.offset).toBeLessThanOrEqual(cut);
    }
  });

  it("reports the truncated item's offset and what is left", () => {
    expect(decodeError("000000", (r) => r.int())).toBe("decode at byte 0: truncated: need 4 bytes, 3 left");
    expect(decodeError("00000001 0000", (r) => (r.int(), r.hyper()))).toBe("decode at byte 4: truncated: need 8 bytes, 2 left");
    expect(decodeError("00000005 6162636465", (r) => r.string(8))).toBe(
      "decode at byte 0: truncated: string of 5 bytes needs 8 bytes, 5 left",
    );
    expect(decodeError("010203", (r) => r.fixedOpaque(3))).toBe("decode at byte 0: truncated: need 4 bytes, 3 left");
    expect(decodeError("", (r) => r.take(1))).toBe("decode at byte 0: truncated: need 1 bytes, 0 left");
  });

  it("length 2^32-1", () => {
    expect(decodeError("ffffffff 00000000", (r) => r.varOpaque(U32_MAX))).toBe(
      "decode at byte 0: truncated: opaque of 4294967295 bytes needs 4294967296 bytes, 4 left",
    );
    expect(decodeError("ffffffff 00000000", (r) => r.string(255))).toBe(
      "decode at byte 0: string of 4294967295 bytes exceeds bound 255",
    );
    expect(decodeError("ffffffff 00000000", (r) => r.arrayLength(U32_MAX, 4))).toBe(
      "decode at byte 0: truncated: array of 4294967295 elements needs at least 17179869180 bytes, 4 left",
    );
  });

  it("lengths that would be negative as int32", () => {
    expect(decodeError("80000000 00000000", (r) => r.varOpaque(U32_MAX))).toBe(
      "decode at byte 0: truncated: opaque of 2147483648 bytes needs 2147483648 bytes, 4 left",
    );
    expect(decodeError("80000000", (r) => r.varOpaque(1024))).toBe("decode at byte 0: opaque of 2147483648 bytes exceeds bound 1024");
    expect(decodeError("80000001", (r) => r.string(U32_MAX))).toBe(
      "decode at byte 0: truncated: string of 2147483649 bytes needs 2147483652 bytes, 0 left",
    );
    expect(decodeError("80000000", (r) => r.arrayLength(100, 1))).toBe("decode at byte 0: array of 2147483648 elements exceeds bound 100");
  });

  it("over-bound strings, opaques and arrays, even when the bytes are present", () => {
    const s70 = "00000046" + "61".repeat(70) + "0000";
    expect(decodeError("00000000".repeat(9) + s70, (r) => (r.take(36), r.string(64)))).toBe(
      "decode at byte 36: string of 70 bytes exceeds bound 64",
    );
    expect(decodeError("00000003 01020300", (r) => r.varOpaque(2))).toBe("decode at byte 0: opaque of 3 bytes exceeds bound 2");
    expect(decodeError("00000003 00000001 00000002 00000003", (r) => r.arrayLength(2, 4))).toBe(
      "decode at byte 0: array of 3 elements exceeds bound 2",
    );
  });

  it("array counts that the remaining bytes cannot hold", () => {
    expect(decodeError("00000003 00000001 00000002", (r) => r.arrayLength(10, 4))).toBe(
      "decode at byte 0: truncated: array of 3 elements needs at least 12 bytes, 8 left",
    );
    expect(decodeError("00000001 00000002", (r) => r.checkFixedArray(3, 4))).toBe(
      "decode at byte 0: truncated: array of 3 elements needs at least 12 bytes, 8 left",
    );
    const r = new XdrReader(fromHex("00000001"));
    r.checkFixedArray(1, 4); // exactly enough
    expect(r.pos).toBe(0); // a check, not a read
  });

  it("bool and optional accept only 0 and 1", () => {
    expect(decodeError("00000002", (r) => r.bool())).toBe("decode at byte 0: bool value 2 is neither 0 nor 1");
    expect(decodeError("ffffffff", (r) => r.bool())).toBe("decode at byte 0: bool value -1 is neither 0 nor 1");
    expect(decodeError("00000000 00000007", (r) => (r.optional(), r.optional()))).toBe(
      "decode at byte 4: optional-data discriminant 7 is neither 0 nor 1",
    );
  });

  it("range-checked C aliases and enums", () => {
    expect(decodeError("0000012c", (r) => r.intIn(0, 255, "u_char"))).toBe("decode at byte 0: value 300 out of range for u_char [0, 255]");
    expect(decodeError("ffffff7f", (r) => r.intIn(-128, 127, "char"))).toBe("decode at byte 0: value -129 out of range for char [-128, 127]");
    expect(decodeError("ffffffff", (r) => r.intIn(0, 65535, "u_short"))).toBe(
      "decode at byte 0: value 4294967295 out of range for u_short [0, 65535]",
    );
    expect(decodeError("00000007", (r) => r.enumValue(new Set([0, 1]), "color"))).toBe(
      "decode at byte 0: value 7 is not a member of enum color",
    );
    expect(new XdrReader(fromHex("00000001")).enumValue(new Set([0, 1]), "color")).toBe(1);
  });

  it("invalid UTF-8, short and long", () => {
    const bad = ["ff", "c0af", "eda080", "e282", "61".repeat(20) + "ff", "f4908080"];
    for (const b of bad) {
      const n = b.length / 2;
      const hex = n.toString(16).padStart(8, "0") + b + "00".repeat(padded(n) - n);
      expect(decodeError(hex, (r) => r.string(64))).toBe("decode at byte 0: invalid UTF-8 in string");
    }
  });

  it("trailing bytes", () => {
    expect(decodeError("00000001 00000002", (r) => (r.int(), r.finish()))).toBe("decode at byte 4: 4 trailing bytes");
    expect(decodeError("00000001 02", (r) => (r.int(), r.finish()))).toBe("decode at byte 4: 1 trailing bytes");
  });

  it("padding is not checked on decode (lenient, like libtirpc)", () => {
    const r = new XdrReader(fromHex("00000001 61ffffff 01ffffff"));
    expect(r.string(4)).toBe("a");
    expect(toHex(r.fixedOpaque(1))).toBe("01");
    r.finish();
  });

  it("nesting depth: a recursive list decodes up to maxDepth and no deeper", () => {
    // struct node { int v; node *next; } as a value followed by 1 (more) or 0 (end).
    const listOf = (n: number): Uint8Array => {
      const w = new XdrWriter();
      w.optional(n > 0);
      for (let i = 0; i < n; i++) {
        w.int(i);
        w.optional(i < n - 1);
      }
      return w.bytes();
    };
    const decodeList = (r: XdrReader): number => {
      if (!r.optional()) return 0;
      r.enter();
      r.int();
      const rest = decodeList(r);
      r.leave();
      return rest + 1;
    };
    expect(decodeList(new XdrReader(listOf(200)))).toBe(200);
    const e = xdrErrorOf(() => decodeList(new XdrReader(listOf(201))));
    expect(e.message).toBe(`decode at byte ${4 + 200 * 8}: nesting deeper than 200`);
    expect(decodeList(new XdrReader(listOf(3), 0, undefined, { maxDepth: 3 }))).toBe(3);
    expect(xdrErrorOf(() => decodeList(new XdrReader(listOf(4), 0, undefined, { maxDepth: 3 }))).detail).toBe("nesting deeper than 3");
  });

  it("reset clears depth and reuses the reader", () => {
    const r = new XdrReader(fromHex("00000001"), 0, undefined, { maxDepth: 1 });
    r.enter();
    expect(() => r.enter()).toThrow(XdrError);
    const other = fromHex("00000000 00000009");
    r.reset(other, 4);
    r.enter();
    expect(r.int()).toBe(9);
    r.finish();
    expect(() => r.reset(other, 4, 9)).toThrow(RangeError);
    expect(() => new XdrReader(other, 5, 4)).toThrow(RangeError);
  });

  it("reset reads each array at its own byteOffset, in shared and in new memory, and again", () => {
    const memory = fromHex("00000001 00000002 00000003 00000004");
    const r = new XdrReader(memory.subarray(4), 0, 4);
    expect(r.int()).toBe(2);
    r.reset(memory.subarray(8));
    expect([r.int(), r.int()]).toEqual([3, 4]);
    const elsewhere = fromHex("00000007 00000008");
    r.reset(elsewhere, 4);
    expect(r.int()).toBe(8);
    const tail = memory.subarray(8);
    r.reset(tail, 4);
    expect(r.int()).toBe(4);
    r.reset(tail, 0, 4);
    expect(r.int()).toBe(3);
    expect(xdrErrorOf(() => r.int()).offset).toBe(4);
  });

  it("offsets count from the reader's start and end bounds the message", () => {
    const bytes = fromHex("ffffffff ffffffff 00000001 00000002 00000009");
    const r = new XdrReader(bytes, 8, 16);
    expect(r.int()).toBe(1);
    expect(r.int()).toBe(2);
    expect(xdrErrorOf(() => r.int()).message).toBe("decode at byte 8: truncated: need 4 bytes, 0 left");
    r.finish();
  });

  it("a 16-byte message claiming a 4 GB opaque, string or array allocates nothing large", () => {
    const claims = [
      fromHex("ffffffff 00000000 00000000 00000000"),
      fromHex("fffffffc 00000000 00000000 00000000"),
      fromHex("80000000 00000000 00000000 00000000"),
      // 1 MB: small enough that a decoder that allocates before checking would succeed, and be seen.
      fromHex("00100000 00000000 00000000 00000000"),
    ];
    const reads: Array<(r: XdrReader) => unknown> = [
      (r) => r.varOpaque(U32_MAX),
      (r) => r.varOpaque(U32_MAX, false),
      (r) => r.string(U32_MAX),
      (r) => r.arrayLength(U32_MAX, 1),
    ];
    for (const claim of claims) {
      for (const read of reads) {
        let error: unknown;
        const grown = arrayBufferGrowth(() => {
          try {
            read(new XdrReader(claim));
          } catch (e) {
            error = e;
          }
        });
        expect(error).toBeInstanceOf(XdrError);
        expect((error as XdrError).detail).toMatch(/^truncated: (opaque|string|array) of \d+ (bytes|elements) needs/);
        expect(grown).toBeLessThan(64 * 1024);
      }
    }
  });

  it("the allocation probe itself sees a 1 MB allocation (so the test above can fail)", () => {
    let keep: Uint8Array | undefined;
    expect(arrayBufferGrowth(() => void (keep = new Uint8Array(1 << 20)))).toBeGreaterThanOrEqual(1 << 20);
    expect(arrayBufferGrowth(() => void new Uint8Array(1 << 20))).toBeGreaterThanOrEqual(1 << 20); // garbage counts until the next GC
    expect(keep?.length).toBe(1 << 20);
  });
});
