import { describe, expect, it } from "vitest";
import { synthesized } from "../call/paths.js";
import type { MessageTarget } from "../transport/types.js";
import { XdrWriter } from "../xdr/writer.js";
import { MessageBuffers } from "./buffers.js";

const socketLike: MessageTarget = { kind: "tcp", headerRoom: 4, readsInPlace: false, send: () => {} };

/** Marshals `bytes` of opaque data as one message and gives the buffer back, as a socket write does. */
function send(buffers: MessageBuffers, w: XdrWriter, bytes: number): Uint8Array {
  buffers.start(w, socketLike, synthesized);
  w.fixedOpaque(new Uint8Array(bytes), bytes);
  const buffer = w.buf;
  buffers.finish(w)(buffer);
  return buffer;
}

describe("message buffers", () => {
  it("marshal a stream of long messages into the buffer the first one grew, not a new one per message", () => {
    const buffers = new MessageBuffers();
    const w = new XdrWriter(0);
    const first = send(buffers, w, 64 * 1024);
    expect(first.length).toBeGreaterThanOrEqual(64 * 1024);
    for (let i = 0; i < 5; i++) expect(send(buffers, w, 64 * 1024) === first).toBe(true);
    // Short messages use it too: it is the one on the free list.
    expect(send(buffers, w, 100) === first).toBe(true);
  });

  it("keep no buffer over 1 MiB, and no more than 4 MiB in all", () => {
    const buffers = new MessageBuffers();
    const w = new XdrWriter(0);
    const huge = send(buffers, w, 2 * 1024 * 1024);
    expect(send(buffers, w, 2 * 1024 * 1024) === huge).toBe(false);
    // Eight 900 KiB buffers in flight at once, then all given back: only four are kept.
    const held = Array.from({ length: 8 }, () => {
      buffers.start(w, socketLike, synthesized);
      w.fixedOpaque(new Uint8Array(900 * 1024), 900 * 1024);
      const buffer = w.buf;
      return { buffer, release: buffers.finish(w) };
    });
    expect(new Set(held.map((h) => h.buffer)).size).toBe(8);
    for (const h of held) h.release(h.buffer);
    const reused = new Set<Uint8Array>();
    for (let i = 0; i < 8; i++) {
      buffers.start(w, socketLike, synthesized);
      reused.add(w.buf);
      buffers.finish(w); // not given back: each start takes another
    }
    const kept = [...reused].filter((b) => held.some((h) => h.buffer === b));
    expect(kept.length).toBe(4);
  });
});
