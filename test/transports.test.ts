import { createServer as createNetServer, connect as netConnect, type Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { modes, type Mode } from "../compiler/emit/module.js";
import { connect, createServer, RpcError, type CallRecord, type Channel, type Server } from "../runtime/index.js";
import { exampleCalls, exampleHandlers, loadExample, payload, type Example } from "./example.js";
import { RecordDecoder } from "../runtime/transports/record-marking.js";
import { connectStream, defaultMaxReplyBytes } from "../runtime/transports/stream.js";
import { concat, words } from "./bytes.js";
import { removeDir, tempDir } from "./support.js";

/**
 * Every transport × every mode: the same suite of calls, the copies each call made (from its
 * CallRecords) and the phases of its latency.
 */

type Kind = "inproc" | "tcp" | "unix" | "udp";
const kinds: Kind[] = ["inproc", "tcp", "unix", "udp"];

const sockets = tempDir("sockets");
afterAll(() => removeDir(sockets));

let serial = 0;
async function bind(kind: Kind, server: Server, observe: { onCall?: (r: CallRecord) => void } = {}): Promise<Channel> {
  switch (kind) {
    case "inproc":
      return connect({ transport: "inproc", server, ...observe });
    case "unix": {
      const path = join(sockets, `s${serial++}.sock`);
      await server.listen({ transport: "unix", path });
      return connect({ transport: "unix", path, ...observe });
    }
    default: {
      const { port } = await server.listen({ transport: kind });
      return connect({ transport: kind, port, retransmitMs: 200, ...observe });
    }
  }
}

const examples = {} as Record<Mode, Example>;
beforeAll(async () => {
  for (const mode of modes) examples[mode] = await loadExample(mode);
});

describe.each(kinds)("over %s", (kind) => {
  describe.each(modes)("in %s mode", (mode) => {
    it("carries every kind of call", async () => {
      const example = examples[mode];
      const server = createServer().register(example.service, exampleHandlers());
      const channel = await bind(kind, server);
      try {
        await exampleCalls(example.client(channel));
      } finally {
        await channel.close();
        await server.close();
      }
    });

    it("counts the copies of every pass, per direction", async () => {
      const example = examples[mode];
      const served: CallRecord[] = [];
      const server = createServer({ onServe: (r) => served.push(r) }).register(example.service, exampleHandlers());
      const called: CallRecord[] = [];
      const channel = await bind(kind, server, { onCall: (r) => called.push(r) });
      const client = example.client(channel);
      try {
        for (const n of [0, 720, 1440]) await client.exprocReverse(payload(n));
      } finally {
        await channel.close();
        await server.close();
      }
      expect(called).toHaveLength(3);
      const wire = kind === "inproc" ? 0 : 1;
      // Sending: classic = stub + runtime + wire; synthesized and descriptor = runtime + wire.
      // Receiving mirrors it, except that a descriptor decode hands out views: no runtime copy.
      const stub = mode === "classic" ? 1 : 0;
      const both = { stub: 2 * stub, runtime: mode === "descriptor" ? 1 : 2, wire: 2 * wire };
      for (const records of [called, served]) {
        const [empty, half, full] = records as [CallRecord, CallRecord, CallRecord];
        expect(full.copies).toEqual(both);
        expect(half.copies).toEqual(both);
        expect(empty.ok && half.ok && full.ok).toBe(true);
        for (const layer of ["stub", "runtime", "wire"] as const) {
          // Bytes grow linearly with the payload: the same step from 0 to 720 as from 720 to 1440.
          const step = full.bytesCopied[layer] - half.bytesCopied[layer];
          expect(step).toBe(half.bytesCopied[layer] - empty.bytesCopied[layer]);
          expect(step).toBe(both[layer] * 720);
        }
      }
    });

    it("times every phase it can see, within the round trip", async () => {
      const example = examples[mode];
      const served: CallRecord[] = [];
      const server = createServer({ onServe: (r) => served.push(r) }).register(example.service, exampleHandlers());
      const called: CallRecord[] = [];
      const channel = await bind(kind, server, { onCall: (r) => called.push(r) });
      const client = example.client(channel);
      const roundTrips: number[] = [];
      try {
        for (let i = 0; i < 5; i++) {
          const start = process.hrtime.bigint();
          await client.exprocEcho({ id: i, stamp: 1n, weight: 0.5, active: true, name: "x", position: { x: 1, y: 2 } });
          roundTrips.push(Number(process.hrtime.bigint() - start));
        }
      } finally {
        await channel.close();
        await server.close();
      }
      called.forEach((r, i) => {
        const p = r.phases;
        for (const phase of [p.call, p.send, p.transit, p.resume]) expect(phase).toBeGreaterThanOrEqual(0);
        expect(p.receive ?? p.dispatch ?? p.execute ?? p.reply).toBeUndefined();
        expect(p.call! + p.send! + p.transit! + p.resume!).toBeLessThanOrEqual(roundTrips[i]!);
      });
      for (const r of served) {
        const p = r.phases;
        for (const phase of [p.receive, p.dispatch, p.execute, p.reply]) expect(phase).toBeGreaterThanOrEqual(0);
        expect(p.call ?? p.send ?? p.transit ?? p.resume).toBeUndefined();
      }
      expect(served.map((r) => r.xid)).toEqual(called.map((r) => r.xid));
    });
  });
});

/** A TCP relay to `target`; `wire` connects the two sockets of each connection through it. */
async function tcpRelay(target: number, wire: (client: Socket, server: Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const relay: NetServer = createNetServer((client) => {
    const server = netConnect({ host: "127.0.0.1", port: target });
    for (const s of [client, server]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        client.destroy();
        server.destroy();
      });
    }
    wire(client, server);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  const address = relay.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        relay.close(() => resolve());
      }),
  };
}

/**
 * A relay that re-sends every record, in both directions, as two fragments (RFC 5531 §11):
 * each side must copy the pieces together once, and counts that copy itself.
 */
function fragmentingRelay(target: number): Promise<{ port: number; close: () => Promise<void> }> {
  const split = (from: Socket, to: Socket) => {
    const decoder = new RecordDecoder((record) => {
      const half = record.length >> 1;
      to.write(concat(words(half), record.subarray(0, half), words((0x80000000 | (record.length - half)) >>> 0), record.subarray(half)));
    });
    from.on("data", (chunk: Buffer) => decoder.push(chunk));
  };
  return tcpRelay(target, (client, server) => {
    split(client, server);
    split(server, client);
  });
}

describe.each(modes)("fragmented records in %s mode", (mode) => {
  it("are copied together once on each side, counted where the copy is made", async () => {
    const example = examples[mode];
    const served: CallRecord[] = [];
    const server = createServer({ onServe: (r) => served.push(r) }).register(example.service, exampleHandlers());
    const { port } = await server.listen({ transport: "tcp" });
    const relay = await fragmentingRelay(port);
    const called: CallRecord[] = [];
    const channel = await connect({ transport: "tcp", port: relay.port, onCall: (r) => called.push(r) });
    try {
      const client = example.client(channel);
      for (const n of [0, 720, 1440]) expect(await client.exprocReverse(payload(n))).toEqual(payload(n).reverse());
    } finally {
      await channel.close();
      await relay.close();
      await server.close();
    }
    // Sending as over any stream; receiving adds the reassembly (a runtime copy of the whole
    // record). A decode that takes views (descriptor) moves nothing more; the other modes still
    // make their decode pass.
    const stub = mode === "classic" ? 1 : 0;
    const send = { stub, runtime: 1, wire: 1 };
    const receive = { stub, runtime: 1 + (mode === "descriptor" ? 0 : 1), wire: 1 };
    const both = { stub: send.stub + receive.stub, runtime: send.runtime + receive.runtime, wire: send.wire + receive.wire };
    for (const records of [called, served]) {
      expect(records).toHaveLength(3);
      const [empty, half, full] = records as [CallRecord, CallRecord, CallRecord];
      for (const r of records) expect(r.copies).toEqual(both);
      for (const layer of ["stub", "runtime", "wire"] as const) {
        const step = full.bytesCopied[layer] - half.bytesCopied[layer];
        expect(step).toBe(half.bytesCopied[layer] - empty.bytesCopied[layer]);
        expect(step, layer).toBe(both[layer] * 720);
      }
    }
  });
});

/** A relay that passes the server's bytes to the client in `piece`-byte writes, a macrotask apart, so a reply takes several reads. */
function tricklingRelay(target: number, piece: number): Promise<{ port: number; close: () => Promise<void> }> {
  return tcpRelay(target, (client, server) => {
    client.on("data", (chunk: Buffer) => server.write(chunk));
    let queue = Promise.resolve();
    server.on("data", (chunk: Buffer) => {
      const bytes = Buffer.from(chunk);
      queue = queue.then(async () => {
        for (let at = 0; at < bytes.length; at += piece) {
          client.write(bytes.subarray(at, at + piece));
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      });
    });
  });
}

describe.each(modes)("replies read in pieces, in %s mode", (mode) => {
  it("are one view of the client's read arena (no reassembly copy), and every result stays intact as the arena is reused", async () => {
    const example = examples[mode];
    const server = createServer().register(example.service, exampleHandlers());
    const { port } = await server.listen({ transport: "tcp" });
    const relay = await tricklingRelay(port, 500);
    const called: CallRecord[] = [];
    const channel = await connect({ transport: "tcp", port: relay.port, onCall: (r) => called.push(r) });
    try {
      const client = example.client(channel);
      const sizes = Array.from({ length: 24 }, (_, i) => 1440 - i * 7);
      // One at a time, then all at once: results are checked only after every call is done,
      // so a result left as a view of memory read over again would show it.
      const results: Uint8Array[] = [];
      for (const n of sizes.slice(0, 12)) results.push(await client.exprocReverse(payload(n)));
      results.push(...(await Promise.all(sizes.slice(12).map((n) => client.exprocReverse(payload(n))))));
      await client.exprocNull();
      sizes.forEach((n, i) => expect(results[i], `call ${i}`).toEqual(payload(n).reverse()));
    } finally {
      await channel.close();
      await relay.close();
      await server.close();
    }
    // The receive side's runtime copies: only the decode's copy-out, in the modes that make one.
    const decodeCopies = mode === "descriptor" ? 0 : 1;
    const reverses = called.filter((r) => r.procedure === 7); // EXPROC_REVERSE
    expect(reverses).toHaveLength(24);
    const send = { stub: mode === "classic" ? 1 : 0, runtime: 1, wire: 1 };
    for (const r of reverses) expect(r.copies).toEqual({ stub: send.stub * 2, runtime: send.runtime + decodeCopies, wire: 2 });
  });
});

describe("record decoding from a read arena", () => {
  const record = (xid: number, n: number) => concat(words((0x80000000 | n) >>> 0), words(xid), new Uint8Array(n - 4).fill(xid));

  it("keeps a record spread over back-to-back chunks as one view of them, copying nothing", () => {
    const input = concat(record(1, 100), record(2, 8), record(3, 64));
    for (const chunk of [1, 3, 7, 50, input.length]) {
      const got: { r: Uint8Array; runtime: number }[] = [];
      const d = new RecordDecoder((r, received) => got.push({ r, runtime: received.copies.runtime }), undefined, undefined, undefined, "arena");
      for (let at = 0; at < input.length; at += chunk) d.push(input.subarray(at, at + chunk));
      expect(got.map(({ r }) => new DataView(r.buffer, r.byteOffset).getUint32(0)), `chunks of ${chunk}`).toEqual([1, 2, 3]);
      expect(got.map(({ r }) => r.buffer === input.buffer), `chunks of ${chunk}`).toEqual([true, true, true]);
      expect(got.map(({ runtime }) => runtime)).toEqual([0, 0, 0]);
      expect(d.buffered).toBe(0);
    }
  });

  it("copies once, counted, where the bytes are not back to back: chunks elsewhere, a second fragment, a moved run", () => {
    const body = concat(words(9), new Uint8Array(96).fill(9));
    const delivered: { r: Uint8Array; runtime: number; bytes: number }[] = [];
    const d = new RecordDecoder((r, received) => delivered.push({ r, runtime: received.copies.runtime, bytes: received.bytesCopied.runtime }), undefined, undefined, undefined, "arena");
    // Chunks from two separate buffers: the run breaks, the record is copied together.
    const whole = concat(words((0x80000000 | body.length) >>> 0), body);
    d.push(whole.slice(0, 40));
    expect(d.awaited).toBe(body.length - 36);
    d.push(whole.slice(40));
    // Two fragments back to back in memory: the second mark sits between them.
    d.push(concat(words(50), body.subarray(0, 50), words((0x80000000 | 50) >>> 0), body.subarray(50)));
    // A run moved to a fresh slab (an arena out of room), then read on behind it there.
    const slab = new Uint8Array(256);
    d.push(whole.subarray(0, 30));
    expect(d.runLength).toBe(26);
    expect(d.moveRun(slab)).toBe(26);
    slab.set(whole.subarray(30), 26);
    d.push(slab.subarray(26, 26 + whole.length - 30));
    expect(delivered.map(({ r }) => Buffer.from(r).equals(Buffer.from(body)))).toEqual([true, true, true]);
    expect(delivered.map(({ runtime, bytes }) => [runtime, bytes])).toEqual([
      [1, body.length],
      [1, body.length],
      [1, 26],
    ]);
    expect(delivered[2]!.r.buffer).toBe(slab.buffer);
  });
});

/**
 * Records of the given sizes (byte `i` of record `k` is `(i * 13 + k) & 0xff`) sent to a
 * stream client back to back, in 64 KiB writes a macrotask apart, so they straddle reads and
 * slabs. `deliver` sees each message as the transport hands it up and says whether it is
 * kept; returns the records' bodies as sent.
 */
async function streamRecords(
  sizes: readonly number[],
  deliver: (message: Uint8Array, moved: number) => boolean,
  firstFragment?: number,
): Promise<Uint8Array[]> {
  const bodies = sizes.map((n, k) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + k) & 0xff));
  // One fragment per record, or a first of `firstFragment` bytes and a last with the rest.
  const fragments = bodies.flatMap((body) => {
    const cut = Math.min(firstFragment ?? body.length, body.length);
    const last = concat(words((0x80000000 | (body.length - cut)) >>> 0), body.subarray(cut));
    return cut === body.length ? [concat(words((0x80000000 | cut) >>> 0), body)] : [concat(words(cut), body.subarray(0, cut)), last];
  });
  // Records in 64 KiB writes; split ones a fragment per write, so that a read ends between them.
  const all = concat(...fragments);
  const writes = firstFragment === undefined ? Array.from({ length: Math.ceil(all.length / 65536) }, (_, k) => all.subarray(k * 65536, (k + 1) * 65536)) : fragments;
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    void (async () => {
      for (const w of writes) {
        s.write(w);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  const transport = await connectStream({ transport: "tcp", host: "127.0.0.1", port });
  let delivered = 0;
  const done = new Promise<void>((resolve) => {
    transport.onMessage = (message, received) => {
      const keeps = deliver(message, received.bytesCopied.runtime);
      if (++delivered === bodies.length) resolve();
      return keeps;
    };
  });
  try {
    await done;
  } finally {
    await transport.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return bodies;
}

describe("a stream client's read arena", () => {
  it("takes replies larger than a slab, read in pieces, whole: the part read before the reply outgrew its slab moves once, the rest is read in place", async () => {
    const sizes = [3 * 1024 * 1024 + 12, 40, 700 * 1024, 300 * 1024];
    const got: { bytes: Uint8Array; moved: number }[] = [];
    const sent = await streamRecords(sizes, (message, moved) => {
      got.push({ bytes: Buffer.from(message), moved });
      return false;
    });
    got.forEach(({ bytes }, k) => expect(Buffer.compare(bytes, Buffer.from(sent[k]!)), `record ${k}`).toBe(0));
    // Never more than one read's worth moved for a record, and never the whole of a large one.
    for (const [k, { moved }] of got.entries()) {
      expect(moved, `record ${k}`).toBeLessThanOrEqual(Math.min(sizes[k]!, 256 * 1024));
      if (sizes[k]! > 256 * 1024) expect(moved, `record ${k}`).toBeLessThan(sizes[k]!);
    }
  });

  /** `count` replies of 40 KiB back to back; returns the slabs the arena took (every message checked). */
  async function slabsFor(count: number, keep: boolean, size = 40 * 1024, firstFragment?: number): Promise<number> {
    const slabs = vi.spyOn(Buffer, "allocUnsafeSlow");
    const got: Uint8Array[] = [];
    let sent: Uint8Array[];
    let taken: number;
    try {
      // Kept: the view itself, checked at the end; else a copy, taken while it is valid.
      sent = await streamRecords(
        Array<number>(count).fill(size),
        (message) => {
          got.push(keep ? message : Buffer.from(message));
          return keep;
        },
        firstFragment,
      );
    } finally {
      taken = slabs.mock.calls.length;
      slabs.mockRestore();
    }
    got.forEach((bytes, k) => expect(Buffer.compare(bytes, Buffer.from(sent[k]!)), `record ${k}`).toBe(0));
    return taken;
  }

  it("none kept, replies back to back: the part of a reply read moves to the front of the same slab, no slab per few replies", async () => {
    // Each reply arrives with the start of the next behind it: the slab is never empty at a
    // read, so it cannot rewind; it grows once, to four replies, and is reused.
    const taken = await slabsFor(200, false);
    expect(taken).toBeGreaterThan(0); // the first slab, at least: the spy sees the arena's
    expect(taken).toBeLessThanOrEqual(3);
  });

  it("records in two fragments back to back (a YPPROC_ALL reply has many): a first fragment read in place survives the slab's reuse", async () => {
    // Between fragments the decoder holds the first in place and awaits nothing yet; a last
    // fragment longer than the slab then fills it from the front if the slab is reused
    // before the first has moved there.
    expect(await slabsFor(40, false, 300 * 1024, 1024)).toBeGreaterThan(0);
    expect(await slabsFor(20, true, 300 * 1024, 1024)).toBeGreaterThan(0);
  });

  it("kept (views handed out): every slab stays as read, and every view intact", async () => {
    expect(await slabsFor(60, true)).toBeGreaterThan(10);
  });
});

describe("a reply over the channel's maxMessageBytes", () => {
  async function tooLarge(call: Promise<unknown>): Promise<RpcError> {
    const e = await call.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(e).toBeInstanceOf(RpcError);
    return e as RpcError;
  }

  it.each(["tcp", "unix", "udp", "tcp, fragmented"] as const)("over %s fails its call TOO_LARGE at once, naming the limit; the channel serves on", async (kind) => {
    const example = examples.synthesized;
    const server = createServer().register(example.service, exampleHandlers());
    const base = kind === "tcp, fragmented" ? "tcp" : kind;
    const relay = kind === "tcp, fragmented" ? await fragmentingRelay((await server.listen({ transport: "tcp" })).port) : undefined;
    const channel =
      relay !== undefined
        ? await connect({ transport: "tcp", port: relay.port, maxMessageBytes: 1000 })
        : base === "unix"
          ? await (async () => {
              const path = join(sockets, `s${serial++}.sock`);
              await server.listen({ transport: "unix", path });
              return connect({ transport: "unix", path, maxMessageBytes: 1000 });
            })()
          : await connect({ transport: base, port: (await server.listen({ transport: base })).port, maxMessageBytes: 1000 });
    try {
      const client = example.client(channel);
      const started = Date.now();
      const e = await tooLarge(client.exprocReverse(payload(1440)));
      expect(e.status).toBe("TOO_LARGE");
      expect(e.message).toMatch(/the reply to EXPROC_REVERSE \(xid \d+\) is at least \d+ bytes, over this channel's maxMessageBytes of 1000/);
      expect(Date.now() - started).toBeLessThan(5000); // not the 30 s timeout
      // The same channel, the same connection: later calls are answered.
      expect(await client.exprocReverse(payload(100))).toEqual(payload(100).reverse());
      expect(await client.exprocAdd(2, 2)).toBe(4);
    } finally {
      await channel.close();
      await relay?.close();
      await server.close();
    }
  });

  it("is read past by the record decoder, in any chunking and fragmenting, and the records around it arrive whole", () => {
    const frame = (body: Uint8Array, parts: number): Uint8Array => {
      const out: Uint8Array[] = [];
      const step = Math.ceil(body.length / parts);
      for (let at = 0; at < body.length; at += step) {
        const piece = body.subarray(at, at + step);
        out.push(words(((at + step >= body.length ? 0x80000000 : 0) | piece.length) >>> 0), piece);
      }
      return concat(...out);
    };
    const body = (xid: number, n: number) => concat(words(xid), new Uint8Array(n - 4).fill(xid));
    const stream = concat(frame(body(1, 8), 1), frame(body(7, 40), 3), frame(body(2, 12), 2), frame(body(9, 64), 1), frame(body(3, 16), 1));
    for (const chunk of [1, 3, 5, 17, stream.length]) {
      const delivered: number[] = [];
      const skipped: [number | undefined, number][] = [];
      const d = new RecordDecoder(
        (r) => delivered.push(new DataView(r.buffer, r.byteOffset).getUint32(0)),
        { maxRecordBytes: 16, maxFragments: 8 },
        undefined,
        (xid, bytes) => skipped.push([xid, bytes]),
      );
      for (let at = 0; at < stream.length; at += chunk) d.push(stream.subarray(at, at + chunk));
      expect(delivered, `chunks of ${chunk}`).toEqual([1, 2, 3]);
      expect(skipped.map(([xid]) => xid), `chunks of ${chunk}`).toEqual([7, 9]);
      expect(skipped.map(([, bytes]) => bytes)).toEqual([40, 64]);
      expect(d.buffered).toBe(0);
    }
  });

  it("is 64 MiB and a little by default on streams: room for an NFS READ at the largest size servers offer", () => {
    expect(defaultMaxReplyBytes).toBeGreaterThanOrEqual(64 * 1024 * 1024 + 1024);
  });
});
