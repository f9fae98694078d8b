/**
 * Tests of the C XDR peer harness (c-xdr.ts) itself: values are hand-encoded
 * here per RFC 4506 with plain DataView code, and the C side (system rpcgen +
 * libtirpc) must hand back exactly the same bytes.
 */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CORPUS_CPP_DEFINES, CXdrError, C_XDR_MAX_MESSAGE, cToolchainProblem, listRpcgenTypes, startCXdrPeer } from "./c-xdr.js";
import type { CXdrFailure, CXdrPeer } from "./c-xdr.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
const ALLXDR = join(FIXTURES, "allxdr.x");
const TYPES = [
  "ints3",
  "color",
  "scalars",
  "fixed8",
  "blob",
  "anyblob",
  "name",
  "anystr",
  "itemtriple",
  "itemlist",
  "intlist",
  "shape",
  "maybe",
  "boolsw",
  "node",
  "nodeptr",
  "everything",
];

/** A minimal RFC 4506 encoder for the tests (our own codecs are tested against this peer later). */
class XdrWriter {
  private readonly chunks: Uint8Array[] = [];

  private put(size: number, fill: (dv: DataView) => void): this {
    const b = new Uint8Array(size);
    fill(new DataView(b.buffer));
    this.chunks.push(b);
    return this;
  }
  int(v: number): this {
    return this.put(4, (dv) => dv.setInt32(0, v));
  }
  uint(v: number): this {
    return this.put(4, (dv) => dv.setUint32(0, v));
  }
  hyper(v: bigint): this {
    return this.put(8, (dv) => dv.setBigInt64(0, v));
  }
  uhyper(v: bigint): this {
    return this.put(8, (dv) => dv.setBigUint64(0, v));
  }
  float(v: number): this {
    return this.put(4, (dv) => dv.setFloat32(0, v));
  }
  double(v: number): this {
    return this.put(8, (dv) => dv.setFloat64(0, v));
  }
  bool(v: boolean): this {
    return this.uint(v ? 1 : 0);
  }
  /** Fixed-length opaque: the bytes, then zero padding to a multiple of 4. */
  fixedOpaque(bytes: Uint8Array): this {
    this.chunks.push(bytes.slice());
    const pad = (4 - (bytes.length % 4)) % 4;
    if (pad > 0) this.chunks.push(new Uint8Array(pad));
    return this;
  }
  varOpaque(bytes: Uint8Array): this {
    return this.uint(bytes.length).fixedOpaque(bytes);
  }
  string(s: string): this {
    return this.varOpaque(new TextEncoder().encode(s));
  }
  raw(bytes: Uint8Array): this {
    this.chunks.push(bytes.slice());
    return this;
  }
  bytes(): Uint8Array {
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

const xdr = (): XdrWriter => new XdrWriter();
const words = (...ws: number[]): Uint8Array => {
  const w = xdr();
  for (const v of ws) w.uint(v >>> 0);
  return w.bytes();
};
const seq = (n: number, start = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

interface Scalars {
  i: number;
  u: number;
  u2: number;
  h: bigint;
  uh: bigint;
  f: number;
  d: number;
  b: boolean;
  c: number;
  ch: number;
  sh: number;
  uc: number;
  us: number;
  uc2: number;
  us2: number;
  ui2: number;
  l: number;
  ul: number;
}

const ZERO_SCALARS: Scalars = { i: 0, u: 0, u2: 0, h: 0n, uh: 0n, f: 0, d: 0, b: false, c: 0, ch: 0, sh: 0, uc: 0, us: 0, uc2: 0, us2: 0, ui2: 0, l: 0, ul: 0 };

function putScalars(w: XdrWriter, s: Scalars): XdrWriter {
  return w
    .int(s.i)
    .uint(s.u)
    .uint(s.u2)
    .hyper(s.h)
    .uhyper(s.uh)
    .float(s.f)
    .double(s.d)
    .bool(s.b)
    .int(s.c)
    .int(s.ch)
    .int(s.sh)
    .uint(s.uc)
    .uint(s.us)
    .uint(s.uc2)
    .uint(s.us2)
    .uint(s.ui2)
    .int(s.l)
    .uint(s.ul);
}

function putItem(w: XdrWriter, id: number, label: string): XdrWriter {
  return w.int(id).string(label);
}

/** node list: each node is [int v][bool next-present]. */
function putList(w: XdrWriter, values: readonly number[]): XdrWriter {
  w.bool(values.length > 0);
  values.forEach((v, i) => w.int(v).bool(i < values.length - 1));
  return w;
}

/** A full `everything`, varied by `k` so that many distinct messages can be made. */
function everything(k: number): Uint8Array {
  const w = xdr();
  putScalars(w, {
    i: -k,
    u: (k * 2654435761) >>> 0,
    u2: 0xffffffff - k,
    h: -(1n << 62n) - BigInt(k),
    uh: (1n << 64n) - 1n - BigInt(k),
    f: k / 4,
    d: -k * 1e300,
    b: k % 2 === 0,
    c: [0, 1, -2, 0x7f, -2147483648][k % 5] ?? 0,
    ch: (k % 256) - 128,
    sh: (k % 65536) - 32768,
    uc: k % 256,
    us: k % 65536,
    uc2: 255,
    us2: 65535,
    ui2: k,
    l: -2147483648 + k,
    ul: 0xffffffff - k,
  });
  w.fixedOpaque(seq(8, k));
  w.varOpaque(seq(k % 33, k)); // blob<32>
  w.varOpaque(seq((k * 7) % 50, 3)); // anyblob<>
  w.string("n".repeat(k % 17)); // name<16>
  w.string(`any-${k}-${"x".repeat(k % 13)}`); // anystr<>
  for (let i = 0; i < 3; i++) putItem(w, k + i, `t${i}`); // itemtriple
  const n = k % 6; // itemlist<5>
  w.uint(n);
  for (let i = 0; i < n; i++) putItem(w, -i, "L".repeat(i * 3));
  const m = k % 9; // intlist<>
  w.uint(m);
  for (let i = 0; i < m; i++) w.int(i * k);
  w.int(k).int(-k); // fixedints[2]
  switch (k % 4) {
    case 0:
      w.int((k % 3) + 1).int(k); // shape: labels 1,2,3 share the int arm
      break;
    case 1:
      w.int(10).hyper(BigInt(k) << 33n);
      break;
    case 2:
      w.int(20).string("s".repeat(k % 9));
      break;
    default:
      w.int(1000 + k).varOpaque(seq(k % 5)); // default arm, opaque<4>
  }
  switch (k % 3) {
    case 0:
      w.int(0); // maybe: RED is void
      break;
    case 1:
      w.int(1).uint(k);
      break;
    default:
      w.int(-2).double(k + 0.5);
  }
  if (k % 2 === 0) w.bool(true).float(-k);
  else w.bool(false);
  putList(w, Array.from({ length: k % 4 }, (_, i) => i - k));
  w.int(k * 3); // chained (ints3)
  return w.bytes();
}

/** Byte equality that stays fast for megabytes (vitest's toEqual walks element by element) yet shows a diff when it fails. */
function expectBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))) return;
  const at = actual.findIndex((b, i) => b !== expected[i]);
  expect({ length: actual.length, firstDifferenceAt: at }, what).toEqual({ length: expected.length, firstDifferenceAt: -1 });
  expect(actual, what).toEqual(expected);
}

async function expectFailure(p: Promise<Uint8Array>, failure: CXdrFailure, message?: RegExp): Promise<CXdrError> {
  const e: unknown = await p.then(
    (bytes) => new Error(`expected ${failure}, got ${bytes.length} bytes back`),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CXdrError);
  if (!(e instanceof CXdrError)) throw e;
  expect(e.failure, e.message).toBe(failure);
  if (message !== undefined) expect(e.message).toMatch(message);
  return e;
}

function toolchain(): void {
  const problem = cToolchainProblem();
  if (problem !== null) throw new Error(problem);
}

describe("C XDR peer built from allxdr.x with the system rpcgen and libtirpc", () => {
  let peer: CXdrPeer;

  beforeAll(async () => {
    toolchain();
    peer = await startCXdrPeer(ALLXDR, TYPES);
  });
  afterAll(async () => {
    await peer.close();
  });

  const same = async (type: string, bytes: Uint8Array): Promise<void> => {
    expectBytes(await peer.roundTrip(type, bytes), bytes, `${type} round trip`);
  };

  it("finds rpcgen, cpp, gcc and libtirpc", () => {
    expect(cToolchainProblem()).toBeNull();
    expect(existsSync(join(peer.buildDir, "peer"))).toBe(true);
    expect(peer.pid).toBeGreaterThan(0);
  });

  it("round-trips a typedef chain and an enum with negative and hex values", async () => {
    for (const v of [0, 1, -1, 2147483647, -2147483648, 0x12345678]) await same("ints3", xdr().int(v).bytes());
    for (const v of [0, 1, -2, 0x7f, -2147483648]) await same("color", xdr().int(v).bytes());
  });

  it("round-trips int, unsigned, hyper, unsigned hyper, float, double, bool and rpcgen's char/short/long aliases", async () => {
    await same("scalars", putScalars(xdr(), ZERO_SCALARS).bytes());
    await same(
      "scalars",
      putScalars(xdr(), {
        i: -2147483648,
        u: 0xffffffff,
        u2: 0x80000000,
        h: -(1n << 63n),
        uh: (1n << 64n) - 1n,
        f: -0,
        d: Number.MIN_VALUE,
        b: true,
        c: -2,
        ch: -128,
        sh: -32768,
        uc: 255,
        us: 65535,
        uc2: 128,
        us2: 32768,
        ui2: 0xfffffffe,
        l: -2147483648,
        ul: 0xffffffff,
      }).bytes(),
    );
    await same(
      "scalars",
      putScalars(xdr(), { ...ZERO_SCALARS, h: (1n << 63n) - 1n, f: Infinity, d: -Infinity, ch: 127, sh: 32767, l: 2147483647 }).bytes(),
    );
    // NaN payloads (quiet and signalling) survive: xdr_float/xdr_double copy bits.
    const nan = xdr()
      .raw(putScalars(xdr(), ZERO_SCALARS).bytes().subarray(0, 28))
      .uint(0x7f800001)
      .uint(0x7ff00000)
      .uint(0x00000001)
      .raw(putScalars(xdr(), ZERO_SCALARS).bytes().subarray(40))
      .bytes();
    await same("scalars", nan);
  });

  it("normalises what libtirpc accepts loosely: narrow aliases truncate, bools become 1, padding becomes zero", async () => {
    // scalars.ch (char) sits at byte offset 48, sh (short) at 52, uc (u_char) at 56, us (u_short) at 60.
    const loose = putScalars(xdr(), { ...ZERO_SCALARS, ch: 200, sh: 70000, uc: 300, us: 0x10001 }).bytes();
    const back = await peer.roundTrip("scalars", loose);
    const dv = new DataView(back.buffer, back.byteOffset, back.byteLength);
    expect(dv.getInt32(48)).toBe(-56); // (char)200, sign-extended
    expect(dv.getInt32(52)).toBe(70000 - 65536); // (short)70000
    expect(dv.getUint32(56)).toBe(300 & 0xff);
    expect(dv.getUint32(60)).toBe(1);
    // A bool of 2 decodes as TRUE and re-encodes as 1 (the same for the optional-data flag).
    expect(await peer.roundTrip("boolsw", words(2, 0x3f800000))).toEqual(words(1, 0x3f800000));
    expect(await peer.roundTrip("nodeptr", words(7, 5, 0))).toEqual(words(1, 5, 0));
    // Non-zero padding is accepted and re-encoded as zeros.
    expect(await peer.roundTrip("blob", words(3, 0x616263ff))).toEqual(words(3, 0x61626300));
    // A string is re-encoded with strlen(): an embedded NUL truncates it.
    expect(await peer.roundTrip("name", xdr().string("A\0B").bytes())).toEqual(xdr().string("A").bytes());
    // Enum values are not range-checked.
    await same("color", xdr().int(12345).bytes());
  });

  it("round-trips fixed opaque, bounded and unbounded variable opaque, and strings up to their bound", async () => {
    await same("fixed8", seq(8, 0xf8));
    for (const n of [0, 1, 2, 3, 4, 5, 31, 32]) await same("blob", xdr().varOpaque(seq(n)).bytes());
    await same("anyblob", xdr().varOpaque(seq(1000)).bytes());
    for (const s of ["", "a", "abcd", "abcde", "sixteen chars!!!"]) await same("name", xdr().string(s).bytes());
    await same("anystr", xdr().string("x".repeat(5000)).bytes());
    await expectFailure(peer.roundTrip("blob", xdr().varOpaque(seq(33)).bytes()), "decode-failed", /xdr_blob/);
    await expectFailure(peer.roundTrip("name", xdr().string("seventeen chars!!").bytes()), "decode-failed", /xdr_name/);
    await expectFailure(peer.roundTrip("fixed8", seq(7)), "decode-failed");
  });

  it("round-trips fixed and variable arrays of structs and rejects a list over its bound", async () => {
    await same("itemtriple", putItem(putItem(putItem(xdr(), 1, ""), -2, "two"), 3, "sixteen chars!!!").bytes());
    for (let n = 0; n <= 5; n++) {
      const w = xdr().uint(n);
      for (let i = 0; i < n; i++) putItem(w, i * 1000, "l".repeat(i));
      await same("itemlist", w.bytes());
    }
    const six = xdr().uint(6);
    for (let i = 0; i < 6; i++) putItem(six, i, "");
    await expectFailure(peer.roundTrip("itemlist", six.bytes()), "decode-failed", /xdr_itemlist/);
    await same("intlist", xdr().uint(0).bytes());
    await same("intlist", xdr().uint(3).int(-1).int(0).int(1).bytes());
  });

  it("round-trips a union with several labels per arm and a default arm", async () => {
    for (const kind of [1, 2, 3]) await same("shape", xdr().int(kind).int(-kind).bytes());
    await same("shape", xdr().int(10).hyper(-(1n << 40n)).bytes());
    await same("shape", xdr().int(20).string("8 chars!").bytes());
    for (const kind of [0, 4, 11, -1, -2147483648, 2147483647]) {
      for (const n of [0, 1, 4]) await same("shape", xdr().int(kind).varOpaque(seq(n)).bytes());
    }
    await expectFailure(peer.roundTrip("shape", xdr().int(20).string("9 chars!!").bytes()), "decode-failed");
    await expectFailure(peer.roundTrip("shape", xdr().int(99).varOpaque(seq(5)).bytes()), "decode-failed");
  });

  it("round-trips unions with void arms and rejects an enum discriminant with no arm", async () => {
    await same("maybe", xdr().int(0).bytes());
    await same("maybe", xdr().int(1).uint(0xdeadbeef).bytes());
    await same("maybe", xdr().int(-2).double(Math.PI).bytes());
    await same("boolsw", xdr().bool(false).bytes());
    await same("boolsw", xdr().bool(true).float(1.5).bytes());
    await expectFailure(peer.roundTrip("maybe", xdr().int(0x7f).bytes()), "decode-failed", /xdr_maybe/);
  });

  it("round-trips a recursive optional linked list", async () => {
    for (const values of [[], [1], [1, -2, 3], Array.from({ length: 500 }, (_, i) => i)]) {
      if (values.length > 0) await same("node", putList(xdr(), values).bytes().subarray(4)); // a node itself, not node*
      await same("nodeptr", putList(xdr(), values).bytes());
    }
  });

  it("round-trips a struct holding every construct", async () => {
    for (let k = 0; k < 40; k++) await same("everything", everything(k));
  });

  it("rejects every truncation of a message instead of hanging", async () => {
    for (const k of [3, 6]) {
      const full = everything(k);
      for (let n = 0; n < full.length; n++) {
        await expectFailure(peer.roundTrip("everything", full.subarray(0, n)), "decode-failed", /xdr_everything could not decode/);
      }
    }
    await expectFailure(peer.roundTrip("anyblob", words(0x0fffffff)), "decode-failed"); // a huge count, no data
    await same("everything", everything(7)); // and the peer is still fine
  });

  it("reports trailing bytes", async () => {
    const e = await expectFailure(peer.roundTrip("ints3", words(1, 2)), "trailing-bytes");
    expect(e.message).toContain("decoded only 4 of the 8 bytes");
    await expectFailure(peer.roundTrip("everything", xdr().raw(everything(1)).uint(0).bytes()), "trailing-bytes", /4 trailing bytes/);
    await expectFailure(peer.roundTrip("maybe", words(0, 0)), "trailing-bytes");
  });

  it("does 1000 sequential round trips on one process", async () => {
    const pid = peer.pid;
    for (let k = 0; k < 1000; k++) {
      const bytes = k % 2 === 0 ? everything(k) : xdr().int(k).bytes();
      await same(k % 2 === 0 ? "everything" : "ints3", bytes);
    }
    expect(peer.pid).toBe(pid);
  });

  it("answers concurrent callers in order, failures included", async () => {
    const inputs = Array.from({ length: 300 }, (_, k) => {
      if (k % 10 === 9) return { type: "ints3", bytes: words(k, 0), ok: false };
      if (k % 10 === 5) return { type: "name", bytes: xdr().string("z".repeat(17)).bytes(), ok: false };
      if (k % 3 === 0) return { type: "everything", bytes: everything(k), ok: true };
      return { type: "anyblob", bytes: xdr().varOpaque(seq(k, k)).bytes(), ok: true };
    });
    const results = await Promise.allSettled(inputs.map(({ type, bytes }) => peer.roundTrip(type, bytes)));
    results.forEach((r, k) => {
      const input = inputs[k];
      if (input === undefined) throw new Error("unreachable");
      if (input.ok) {
        expect(r.status, `call ${k}`).toBe("fulfilled");
        if (r.status === "fulfilled") expect(r.value, `call ${k}`).toEqual(input.bytes);
      } else {
        expect(r.status, `call ${k}`).toBe("rejected");
      }
    });
  });

  it("round-trips a 4 MiB message and refuses one over the size limit without sending it", async () => {
    const big = xdr().varOpaque(seq(4 * 1024 * 1024 + 3)).bytes();
    await same("anyblob", big);
    await expectFailure(peer.roundTrip("anyblob", new Uint8Array(C_XDR_MAX_MESSAGE + 4)), "bad-request", /exceeds/);
    await same("ints3", words(42));
  });

  it("rejects a type name it was not built for", async () => {
    await expectFailure(peer.roundTrip("nosuchtype", words(0)), "bad-request", /not built for type "nosuchtype".*ints3/);
  });
});

describe("C XDR peer lifecycle and build errors", () => {
  beforeAll(toolchain);

  it("reuses the cached build for the same file and types", async () => {
    const a = await startCXdrPeer(ALLXDR, ["ints3", "node"]);
    const b = await startCXdrPeer(ALLXDR, ["ints3", "node"]);
    try {
      expect(b.buildDir).toBe(a.buildDir);
      expect(a.pid).not.toBe(b.pid);
      expect(await b.roundTrip("ints3", words(7))).toEqual(words(7));
      expect(await a.roundTrip("node", words(1, 0))).toEqual(words(1, 0));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("answers requests made before close()", async () => {
    const p = await startCXdrPeer(ALLXDR, ["ints3"]);
    const pending = Array.from({ length: 50 }, (_, k) => p.roundTrip("ints3", words(k)));
    const closed = p.close();
    const got = await Promise.all(pending);
    await closed;
    got.forEach((bytes, k) => expect(bytes).toEqual(words(k)));
  });

  it("rejects pending and future calls when the child dies", async () => {
    const p = await startCXdrPeer(ALLXDR, ["ints3"]);
    process.kill(p.pid, "SIGKILL");
    await expectFailure(p.roundTrip("ints3", words(1)), "peer-died", /killed by SIGKILL/);
    await expectFailure(p.roundTrip("ints3", words(1)), "peer-died");
    await p.close();
  });

  it("reports a gcc failure with gcc's stderr and the build dir", async () => {
    const e: unknown = await startCXdrPeer(join(FIXTURES, "broken.x"), ["fine"]).then(
      async (p) => {
        await p.close();
        return null;
      },
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(Error);
    const message = e instanceof Error ? e.message : "";
    expect(message).toMatch(/gcc failed/);
    expect(message).toContain("deliberately broken fixture");
    const dir = /build dir \(kept for inspection\): (\S+)/.exec(message)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(join(dir ?? "", "broken.h"))).toBe(true);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("reports a type rpcgen generated no routine for, listing the ones it did", async () => {
    const e: unknown = await startCXdrPeer(ALLXDR, ["ints3", "nosuch"]).then(
      async (p) => {
        await p.close();
        return null;
      },
      (err: unknown) => err,
    );
    const message = e instanceof Error ? e.message : "";
    expect(message).toMatch(/no xdr_nosuch for .*allxdr\.x; it generated routines for: .*ints3.*everything/s);
    const dir = /build dir \(kept for inspection\): (\S+)/.exec(message)?.[1];
    expect(dir).toBeDefined();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("passes cppDefines to rpcgen", async () => {
    const file = join(FIXTURES, "defines.x");
    expect(await listRpcgenTypes(file)).toEqual(["always"]);
    expect(await listRpcgenTypes(file, { cppDefines: ["WITH_EXTRA", "EXTRA_MAX=2"] })).toEqual(["always", "extra"]);
    const p = await startCXdrPeer(file, ["extra"], { cppDefines: ["WITH_EXTRA", "EXTRA_MAX=2"] });
    try {
      const two = xdr().uint(2).hyper(-1n).hyper(1n << 62n).bytes();
      expect(await p.roundTrip("extra", two)).toEqual(two);
      await expectFailure(p.roundTrip("extra", xdr().uint(3).hyper(0n).hyper(0n).hyper(0n).bytes()), "decode-failed");
    } finally {
      await p.close();
    }
  });
});

/**
 * The system corpus: these build with the system rpcgen + libtirpc. Known not
 * to: rpcsvc/nis.x (the system rpcgen itself rejects its multi-line %#define),
 * rpcsvc/nis_callback.x (its %#include "nis_clnt.h" does not exist).
 */
const CORPUS = [
  "/usr/include/rpcsvc/bootparam_prot.x",
  "/usr/include/rpcsvc/key_prot.x",
  "/usr/include/rpcsvc/klm_prot.x",
  "/usr/include/rpcsvc/mount.x",
  "/usr/include/rpcsvc/nfs_prot.x",
  "/usr/include/rpcsvc/nis_object.x",
  "/usr/include/rpcsvc/nlm_prot.x",
  "/usr/include/rpcsvc/rex.x",
  "/usr/include/rpcsvc/rquota.x",
  "/usr/include/rpcsvc/rstat.x",
  "/usr/include/rpcsvc/rusers.x",
  "/usr/include/rpcsvc/sm_inter.x",
  "/usr/include/rpcsvc/spray.x",
  "/usr/include/rpcsvc/yp.x",
  "/usr/include/rpcsvc/yppasswd.x",
  "/usr/include/tirpc/rpc/rpcb_prot.x",
  "/usr/include/tirpc/rpcsvc/crypt.x",
];

describe("C XDR peer for the system's .x corpus", () => {
  beforeAll(toolchain);

  it.each(CORPUS)("builds %s for all its types; all-zero messages that decode come back unchanged", async (file) => {
    const cppDefines = [...(CORPUS_CPP_DEFINES[basename(file)] ?? [])];
    const types = await listRpcgenTypes(file, { cppDefines });
    expect(types.length).toBeGreaterThan(0);
    const p = await startCXdrPeer(file, types, { cppDefines });
    try {
      let decoded = 0;
      for (const type of types) {
        for (let n = 0; n <= 256; n += 4) {
          const zeros = new Uint8Array(n);
          const r = await p.roundTrip(type, zeros).then(
            (bytes) => bytes,
            (e: unknown) => e,
          );
          if (r instanceof Uint8Array) {
            expect(r, `${type} from ${n} zero bytes`).toEqual(zeros);
            decoded++;
            break;
          }
          expect(r).toBeInstanceOf(CXdrError);
          if (r instanceof CXdrError) expect(["decode-failed", "trailing-bytes"]).toContain(r.failure);
        }
      }
      expect(decoded).toBeGreaterThan(0);
    } finally {
      await p.close();
    }
  });
});
