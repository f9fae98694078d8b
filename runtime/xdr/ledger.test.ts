import { describe, expect, it } from "vitest";
import { CopyLedger, copyBytes, sliceBytes } from "./ledger.js";
import { XdrReader, XdrWriter } from "./index.js";

const zero = { stub: 0, runtime: 0, wire: 0 };

describe("CopyLedger", () => {
  it("copyBytes copies and counts copies and bytes per layer", () => {
    const ledger = new CopyLedger();
    const dst = new Uint8Array(16);
    copyBytes(ledger, "stub", dst, 2, Uint8Array.of(1, 2, 3));
    copyBytes(ledger, "runtime", dst, 8, Uint8Array.of(4, 5));
    copyBytes(ledger, "runtime", dst, 10, Uint8Array.of(6));
    expect(Array.from(dst.subarray(0, 12))).toEqual([0, 0, 1, 2, 3, 0, 0, 0, 4, 5, 6, 0]);
    expect(ledger.copies).toEqual({ stub: 1, runtime: 2, wire: 0 });
    expect(ledger.bytesCopied).toEqual({ stub: 3, runtime: 3, wire: 0 });
  });

  it("a zero-length copy is neither performed nor counted", () => {
    const ledger = new CopyLedger();
    copyBytes(ledger, "stub", new Uint8Array(0), 5, new Uint8Array(0)); // offset out of range: not even attempted
    ledger.record("wire", 0);
    expect(ledger.snapshot()).toEqual({ copies: zero, bytesCopied: zero });
  });

  it("copies without a ledger", () => {
    const dst = new Uint8Array(4);
    copyBytes(undefined, "wire", dst, 1, Uint8Array.of(9, 8));
    expect(Array.from(dst)).toEqual([0, 9, 8, 0]);
  });

  it("record counts copies made elsewhere (the kernel's) and rejects nonsense", () => {
    const ledger = new CopyLedger();
    ledger.record("wire", 1440);
    ledger.record("wire", 60);
    expect(ledger.copies.wire).toBe(2);
    expect(ledger.bytesCopied.wire).toBe(1500);
    expect(() => ledger.record("wire", -1)).toThrow(RangeError);
    expect(() => ledger.record("wire", NaN)).toThrow(RangeError);
    expect(ledger.bytesCopied.wire).toBe(1500);
  });

  it("snapshot is a copy, reset zeroes in place", () => {
    const ledger = new CopyLedger();
    const copies = ledger.copies;
    ledger.record("stub", 10);
    const snap = ledger.snapshot();
    ledger.record("stub", 10);
    expect(snap).toEqual({ copies: { ...zero, stub: 1 }, bytesCopied: { ...zero, stub: 10 } });
    ledger.reset();
    expect(ledger.snapshot()).toEqual({ copies: zero, bytesCopied: zero });
    expect(ledger.copies).toBe(copies);
  });

  it("sliceBytes returns a counted, real copy, even of a Buffer (whose slice() is a view)", () => {
    const ledger = new CopyLedger();
    const src = Buffer.from([1, 2, 3, 4]);
    const out = sliceBytes(ledger, "runtime", src, 1, 3);
    src[1] = 99;
    expect(Array.from(out)).toEqual([2, 3]);
    expect(ledger.copies.runtime).toBe(1);
    expect(ledger.bytesCopied.runtime).toBe(2);
    expect(sliceBytes(ledger, "runtime", src, 2, 2).length).toBe(0);
    expect(ledger.copies.runtime).toBe(1);
  });
});

describe("the XDR primitives report their copies", () => {
  /** Ledger counts after encoding one opaque<> of `n` bytes and one opaque[n]. */
  function encodeOpaques(n: number): CopyLedger {
    const ledger = new CopyLedger();
    const w = new XdrWriter(4096, { ledger });
    const payload = new Uint8Array(n).fill(1);
    w.varOpaque(payload, 4096);
    w.fixedOpaque(payload, n);
    w.int(5); // marshaling, not a copy
    return ledger;
  }

  it("doubling a payload doubles bytesCopied and leaves copies unchanged", () => {
    const one = encodeOpaques(720);
    const two = encodeOpaques(1440);
    expect(one.copies).toEqual({ ...zero, stub: 2 });
    expect(two.copies).toEqual(one.copies);
    expect(one.bytesCopied.stub).toBe(1440);
    expect(two.bytesCopied.stub).toBe(2 * one.bytesCopied.stub);
  });

  it("scalars and strings are marshaling, not copies", () => {
    const ledger = new CopyLedger();
    const w = new XdrWriter(256, { ledger });
    w.int(1);
    w.uint(2);
    w.hyper(3n);
    w.uhyper(4n);
    w.float(5);
    w.double(6);
    w.bool(true);
    w.optional(false);
    w.arrayLength(0, 1);
    w.string("a string is transcoded, not copied", 64);
    const r = new XdrReader(w.bytes(), 0, undefined, { ledger });
    r.take(48);
    expect(r.string(64)).toBe("a string is transcoded, not copied");
    r.finish();
    expect(ledger.snapshot()).toEqual({ copies: zero, bytesCopied: zero });
  });

  it("growth copies are counted, charged to the writer's layer", () => {
    const ledger = new CopyLedger();
    const w = new XdrWriter(8, { ledger, layer: "runtime" });
    w.int(1);
    w.int(2); // fills the 8 bytes exactly: no growth
    expect(ledger.copies.runtime).toBe(0);
    w.varOpaque(new Uint8Array(16), 16); // grows to 28, moving the 8 bytes written so far
    expect(ledger.copies).toEqual({ ...zero, runtime: 2 });
    expect(ledger.bytesCopied).toEqual({ ...zero, runtime: 8 + 16 });
  });

  it("copyIn is counted, and the layer can change between messages", () => {
    const ledger = new CopyLedger();
    const w = new XdrWriter(64, { ledger });
    w.copyIn(new Uint8Array(10), true);
    w.layer = "wire";
    w.reset();
    w.copyIn(new Uint8Array(7), false);
    expect(ledger.copies).toEqual({ stub: 1, runtime: 0, wire: 1 });
    expect(ledger.bytesCopied).toEqual({ stub: 10, runtime: 0, wire: 7 });
  });

  it("decoded opaques: a copy is counted, a view is not", () => {
    const ledger = new CopyLedger();
    const bytes = Uint8Array.of(0, 0, 0, 3, 1, 2, 3, 0, 4, 5, 6, 7, 0, 0, 0, 1, 8, 0, 0, 0);
    const r = new XdrReader(bytes, 0, undefined, { ledger, layer: "runtime" });
    r.varOpaque(3); // copy (default)
    r.fixedOpaque(4, false); // view
    r.varOpaque(1, false); // view
    r.finish();
    expect(ledger.copies).toEqual({ ...zero, runtime: 1 });
    expect(ledger.bytesCopied).toEqual({ ...zero, runtime: 3 });
  });
});
