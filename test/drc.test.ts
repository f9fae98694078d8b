import { createServer as createTcpServer, connect as connectTcp, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { connect, createServer, RpcError, XdrWriter, type HandlersOf, type ServiceDescription } from "../runtime/index.js";
import { AUTH_NONE, writeCallHeader } from "../runtime/rpc/message.js";
import { exampleHandlers, loadExample } from "./example.js";
import { argumentsChecksum, checksumBytes, compactSlack, DROP, DuplicateRequestCache, type CacheEntry } from "../runtime/transports/drc.js";

/**
 * The duplicate-request cache on its own, with an injected clock: what it promises (see the
 * header of runtime/transports/drc.ts) — a call with the same key and arguments runs once
 * while its entry lives; entries live `expireMs` after the reply; over budget the peer with
 * the largest share loses its oldest reply; calls in progress are bounded per peer and in
 * total; a peer with nothing cached is forgotten.
 */

const program = 0x20000101;

/** A call datagram: header with AUTH_NONE, then `args` 32-bit words (or raw bytes). */
function call(xid: number, args: number[] | Uint8Array = [], proc = 1): Uint8Array {
  const w = new XdrWriter(64);
  writeCallHeader(w, xid, program, 1, proc, AUTH_NONE, AUTH_NONE);
  if (args instanceof Uint8Array) w.copyIn(args, false);
  else for (const a of args) w.uint(a);
  return w.bytes().slice();
}

/** A cache with a clock the test moves. */
function cacheAt(options: ConstructorParameters<typeof DuplicateRequestCache>[0] = {}) {
  const clock = { t: 0 };
  const cache = new DuplicateRequestCache(options, () => clock.t);
  return { cache, clock };
}

type Verdict = "new" | "hit" | "drop" | "not a call";

/** What admit made of a datagram: its verdict, and the entry if any. */
function verdict(found: CacheEntry | typeof DROP | undefined): Verdict {
  if (found === undefined) return "not a call";
  if (found === DROP) return "drop";
  return found.buffer === undefined ? "new" : "hit";
}

/** Runs a call from `address:port` to completion with a reply of `bytes` bytes; returns admit's verdict. */
function run(cache: DuplicateRequestCache, address: string, xid: number, bytes = 28, args: number[] = [], port = 1000): Verdict {
  const found = cache.admit(address, call(xid, args), port);
  const v = verdict(found);
  if (v === "new") cache.complete(found as CacheEntry, new Uint8Array(bytes), bytes, () => {});
  return v;
}

/** A small deterministic generator (a seed printed by a failing test is enough to replay it). */
function generator(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 0x100000000) * n);
  };
}

describe("the key and the argument checksum", () => {
  it("the same xid from the same port with other arguments is a new call; it replaces the done one", () => {
    const { cache } = cacheAt();
    expect(run(cache, "a", 7, 28, [1, 2])).toBe("new");
    expect(run(cache, "a", 7, 28, [1, 2])).toBe("hit");
    expect(run(cache, "a", 7, 28, [1, 3])).toBe("new"); // runs: not the old call's reply
    expect(cache.stats).toMatchObject({ executions: 2, hits: 1, replaced: 1 });
    expect(cache.size).toBe(1);
    // The new call is what is cached now; the old call's reply is gone.
    expect(run(cache, "a", 7, 28, [1, 3])).toBe("hit");
    expect(run(cache, "a", 7, 28, [1, 2])).toBe("new");
    expect(cache.stats.replaced).toBe(2);
  });

  it("while the earlier call is in progress, a call with its key and other arguments is dropped", () => {
    const { cache } = cacheAt();
    const first = cache.admit("a", call(9, [1]), 1) as CacheEntry;
    expect(verdict(first)).toBe("new");
    expect(cache.admit("a", call(9, [2]), 1)).toBe(DROP);
    cache.complete(first, new Uint8Array(28), 28, () => {});
    expect(verdict(cache.admit("a", call(9, [2]), 1))).toBe("new");
    expect(cache.stats).toMatchObject({ executions: 2, drops: 1, replaced: 1 });
  });

  it("the checksum covers the length and the first 256 bytes; one differing word always changes it", () => {
    const random = generator(1);
    const bytes = Uint8Array.from({ length: 400 }, () => random(256));
    const base = argumentsChecksum(bytes, 0, 400);
    for (let at = 0; at < checksumBytes; at += 4) {
      const changed = bytes.slice();
      changed[at + random(4)]! ^= 1 + random(255);
      expect(argumentsChecksum(changed, 0, 400), `word at ${at}`).not.toBe(base);
    }
    expect(argumentsChecksum(bytes, 0, 396)).not.toBe(base); // the length counts
    expect(argumentsChecksum(new Uint8Array(8), 0, 8)).not.toBe(argumentsChecksum(new Uint8Array(4), 0, 4)); // zeros too
    // Beyond the first 256 bytes only the length counts, as in nfsd (a retransmission is byte-identical).
    const tail = bytes.slice();
    tail[300]! ^= 0xff;
    expect(argumentsChecksum(tail, 0, 400)).toBe(base);
    // Through the cache: a call whose arguments differ past the header is another call.
    const { cache } = cacheAt();
    expect(run(cache, "a", 1, 28, Array.from({ length: 60 }, (_, i) => i))).toBe("new");
    expect(run(cache, "a", 1, 28, Array.from({ length: 60 }, (_, i) => (i === 59 ? 0 : i)))).toBe("new");
    expect(run(cache, "a", 1, 28, Array.from({ length: 60 }, (_, i) => (i === 59 ? 0 : i)))).toBe("hit");
  });

  it("calls whose keys hash alike are told apart exactly, and each leaves the cache on its own", () => {
    const { cache, clock } = cacheAt({ expireMs: 100 });
    // xids that differ only above bit 29 land in the same slot of the cache's map.
    const xids = [5, 5 + 2 ** 30, 5 + 2 ** 31, 5 + 3 * 2 ** 30];
    for (const xid of xids) expect(run(cache, "a", xid, 28, [xid >>> 30])).toBe("new");
    for (const xid of xids) expect(run(cache, "a", xid, 28, [xid >>> 30])).toBe("hit");
    expect(cache.size).toBe(4);
    // Replace the second (other arguments) later; the others stay findable, then expire before it.
    clock.t = 50;
    expect(run(cache, "a", xids[1]!, 28, [99])).toBe("new");
    expect(run(cache, "a", xids[0]!, 28, [0])).toBe("hit");
    expect(run(cache, "a", xids[3]!, 28, [3])).toBe("hit");
    expect(cache.stats.replaced).toBe(1);
    clock.t = 100;
    expect(run(cache, "a", xids[1]!, 28, [99])).toBe("hit");
    expect(cache.size).toBe(1);
    expect(run(cache, "a", xids[2]!, 28, [2])).toBe("new");
    expect(run(cache, "a", xids[2]!, 28, [2])).toBe("hit");
  });

  it("another port, procedure or address is another call", () => {
    const { cache } = cacheAt();
    expect(run(cache, "a", 1, 28, [], 1000)).toBe("new");
    expect(run(cache, "a", 1, 28, [], 1001)).toBe("new");
    expect(run(cache, "b", 1, 28, [], 1000)).toBe("new");
    expect(verdict(cache.admit("a", call(1, [], 2), 1000))).toBe("new");
    expect(cache.stats.hits).toBe(0);
  });
});

describe("retention", () => {
  it("a reply is kept for expireMs after it was sent, then the call runs again", () => {
    const { cache, clock } = cacheAt({ expireMs: 1000 });
    run(cache, "a", 1);
    clock.t = 999;
    expect(run(cache, "a", 1)).toBe("hit");
    clock.t = 1000;
    expect(run(cache, "a", 1)).toBe("new");
    expect(cache.stats.expirations).toBe(1);
  });

  it("with the defaults, every retransmission of a client's 30 s retry window is a hit while other peers make 2,000 calls/s", () => {
    // The client's schedule (runtime/client.ts): sends at 0, then 500 ms doubling to 8 s, until its 30 s timeout.
    const sends: number[] = [];
    for (let at = 0, interval = 500; at < 30_000; at += interval, interval = Math.min(interval * 2, 8000)) sends.push(at);
    const { cache, clock } = cacheAt();
    const rate = 2000;
    let xid = 1_000_000;
    let next = 0;
    for (const [i, at] of sends.entries()) {
      // Other traffic from 16 peers, each call answered as it arrives.
      for (; next < (at * rate) / 1000; next++) {
        clock.t = (next * 1000) / rate;
        run(cache, `10.0.0.${next % 16}`, xid++);
      }
      clock.t = at;
      expect(run(cache, "192.0.2.1", 42, 28, [1, 2]), `send ${i} at ${at} ms`).toBe(i === 0 ? "new" : "hit");
    }
    expect(cache.stats.evictions).toBe(0);
    expect(cache.peer("192.0.2.1").entries).toBe(1);
  });

  it("in a steady stream, the cache holds the replies of the last expireMs, and each expires in its turn", () => {
    const { cache, clock } = cacheAt({ expireMs: 10_000 });
    for (let i = 0; i < 50_000; i++) {
      clock.t = i; // a call per millisecond from 8 peers, for 50 s
      expect(run(cache, `p${i % 8}`, i)).toBe("new");
      if (i >= 10_000) expect(cache.size).toBe(10_000);
    }
    expect(cache.stats.expirations).toBe(40_000);
    expect(cache.stats.evictions).toBe(0);
    // The newest 10,000 are there; the one before them is not.
    expect(run(cache, "p7", 49_999)).toBe("hit");
    expect(run(cache, "p0", 40_000)).toBe("hit");
    expect(run(cache, "p7", 39_999)).toBe("new");
  });

  it("a call in progress expires too: a handler that never answers does not hold its slot", () => {
    const { cache, clock } = cacheAt({ expireMs: 100, maxInProgressPerPeer: 1 });
    const stuck = cache.admit("a", call(1), 1) as CacheEntry;
    expect(cache.admit("a", call(2), 1)).toBe(DROP);
    clock.t = 100;
    expect(verdict(cache.admit("a", call(2), 1))).toBe("new");
    // Its late reply is not cached (the entry is gone), and its buffer goes straight back.
    const released: Uint8Array[] = [];
    const late = new Uint8Array(28);
    cache.complete(stuck, late, 28, (b) => void released.push(b));
    expect(released).toEqual([late]);
    expect(cache.size).toBe(0);
  });
});

describe("budgets and fair eviction", () => {
  it("a peer flooding distinct xids evicts its own replies, never a quiet peer's", () => {
    const { cache, clock } = cacheAt({ maxEntries: 1000 });
    for (let xid = 1; xid <= 10; xid++) run(cache, "quiet", xid);
    for (let xid = 1; xid <= 100_000; xid++) {
      clock.t = xid / 100; // 100,000 calls/s for a second
      run(cache, "flood", xid);
      expect(cache.size).toBeLessThanOrEqual(1000);
    }
    expect(cache.peer("quiet").entries).toBe(10);
    expect(cache.peer("flood").entries).toBe(990);
    for (let xid = 1; xid <= 10; xid++) expect(run(cache, "quiet", xid)).toBe("hit");
    // The flood lost its oldest replies, and kept its newest.
    expect(run(cache, "flood", 100_000)).toBe("hit");
    expect(run(cache, "flood", 1)).toBe("new");
  });

  it("bytes are budgeted too: a peer with big replies loses them before a peer with small ones", () => {
    const { cache } = cacheAt({ maxBytes: 100_000, maxEntries: 1000 });
    for (let xid = 1; xid <= 20; xid++) run(cache, "small", xid, 28);
    for (let xid = 1; xid <= 500; xid++) {
      run(cache, "big", xid, 8000);
      expect(cache.bytes).toBeLessThanOrEqual(100_000);
    }
    expect(cache.peer("small").entries).toBe(20);
    expect(cache.peer("big").entries).toBe(Math.floor((100_000 - 20 * 28) / 8000));
    // By count the small peer holds more, but the share that matters is of the budget exceeded.
    expect(cache.peer("small").entries).toBeGreaterThan(cache.peer("big").entries);
  });

  it("over many peers and random sizes, the evicted reply is always of a peer with the largest share", () => {
    const seed = (Math.random() * 0x100000000) >>> 0;
    for (const s of [7, seed]) {
      const random = generator(s);
      const maxEntries = 200;
      const maxBytes = 50_000;
      const { cache, clock } = cacheAt({ maxEntries, maxBytes, expireMs: 1e9 });
      const peers = Array.from({ length: 12 }, (_, i) => `p${i}`);
      let checked = 0;
      const share = (p: string) => Math.max(cache.peer(p).entries / maxEntries, cache.peer(p).bytes / maxBytes);
      for (let i = 0; i < 5000; i++) {
        clock.t = i;
        // Skewed: low-numbered peers call far more often.
        const p = peers[Math.min(random(12), random(12), random(12))]!;
        const before = new Map(peers.map((q) => [q, { entries: cache.peer(q).entries, share: share(q) }]));
        const evictions = cache.stats.evictions;
        run(cache, p, i, 8 + 4 * random(400));
        expect(cache.size, `seed ${s}`).toBeLessThanOrEqual(maxEntries);
        expect(cache.bytes, `seed ${s}`).toBeLessThanOrEqual(maxBytes);
        if (cache.stats.evictions === evictions) continue;
        // Each eviction took the oldest reply of the peer then holding the largest share.
        // Reconstruct it for the common case of one eviction from one peer.
        const losers = peers.filter((q) => cache.peer(q).entries < before.get(q)!.entries + (q === p ? 1 : 0));
        if (cache.stats.evictions - evictions === 1 && losers.length === 1 && losers[0] !== p) {
          const loser = losers[0]!;
          const largest = Math.max(...peers.map((q) => (q === p ? -1 : before.get(q)!.share)));
          expect(before.get(loser)!.share, `seed ${s}: ${loser} lost a reply at step ${i}`).toBe(largest);
          checked++;
        }
      }
      expect(cache.stats.evictions, `seed ${s}`).toBeGreaterThan(1000);
      expect(checked, `seed ${s}`).toBeGreaterThan(100);
    }
  });

  it("a peer holding at most 1/P of each budget loses replies only to age", () => {
    const { cache, clock } = cacheAt({ maxEntries: 400, maxBytes: 40_000, expireMs: 10_000 });
    // Four peers: three stay under 1/4 of each budget (90 entries of 100 bytes), one floods.
    for (let xid = 1; xid <= 90; xid++) for (const p of ["a", "b", "c"]) run(cache, p, xid, 100);
    for (let xid = 1; xid <= 20_000; xid++) {
      clock.t = xid / 10;
      run(cache, "flood", xid, 28 + 4 * (xid % 50));
    }
    for (const p of ["a", "b", "c"]) expect(cache.peer(p).entries).toBe(90);
    clock.t = 10_000;
    expect(run(cache, "a", 1)).toBe("new"); // aged out
  });

  it("a reply alone over maxBytes is not kept; the budgets are validated", () => {
    const { cache } = cacheAt({ maxBytes: 100 });
    expect(run(cache, "a", 1, 101)).toBe("new");
    expect(cache.size).toBe(0);
    expect(cache.peerCount).toBe(0);
    expect(() => new DuplicateRequestCache({ maxBytes: 0 })).toThrow(/maxBytes must be positive/);
    expect(() => new DuplicateRequestCache({ maxInProgressPerPeer: Number.NaN })).toThrow(/maxInProgressPerPeer/);
  });
});

describe("calls in progress", () => {
  it("are bounded per peer address: beyond its bound a peer's new calls are dropped, others' are not", () => {
    const { cache } = cacheAt({ maxInProgress: 100, maxInProgressPerPeer: 10 });
    const slow: CacheEntry[] = [];
    for (let xid = 1; xid <= 1000; xid++) {
      // Many ports of one address are one peer.
      const found = cache.admit("greedy", call(xid), 1000 + (xid % 50));
      if (found !== DROP) slow.push(found as CacheEntry);
    }
    expect(slow).toHaveLength(10);
    expect(cache.stats).toMatchObject({ refused: 990, refusedPeer: 990 });
    for (let xid = 1; xid <= 10; xid++) expect(run(cache, "other", xid)).toBe("new");
    // When the greedy peer's calls finish it may start more.
    for (const e of slow) cache.complete(e, new Uint8Array(28), 28, () => {});
    expect(verdict(cache.admit("greedy", call(5000), 1))).toBe("new");
  });

  it("are bounded in total", () => {
    const { cache } = cacheAt({ maxInProgress: 20, maxInProgressPerPeer: 8 });
    for (const p of ["a", "b", "c"]) for (let xid = 1; xid <= 8; xid++) cache.admit(p, call(xid), 1);
    expect(cache.inProgress).toBe(20);
    expect(cache.admit("d", call(1), 1)).toBe(DROP);
    expect(cache.stats).toMatchObject({ refused: 5, refusedPeer: 0 });
  });

  it("defaults: 1024 in total (or maxEntries if smaller), 128 per peer", () => {
    expect(new DuplicateRequestCache()).toMatchObject({ maxInProgress: 1024, maxInProgressPerPeer: 128, maxEntries: 65_536, maxBytes: 32 * 1024 * 1024, expireMs: 120_000 });
    expect(new DuplicateRequestCache({ maxEntries: 50 })).toMatchObject({ maxInProgress: 50, maxInProgressPerPeer: 50 });
  });

  it("an abandoned call frees its slot; a peer with nothing left is forgotten", () => {
    const { cache, clock } = cacheAt({ maxInProgressPerPeer: 1, expireMs: 50 });
    const e = cache.admit("a", call(1), 1) as CacheEntry;
    expect(cache.admit("a", call(2), 1)).toBe(DROP);
    cache.abandon(e);
    expect(cache.peerCount).toBe(0);
    // A thousand forged addresses, each answered once, are forgotten when their replies expire.
    for (let i = 0; i < 1000; i++) run(cache, `198.51.100.${i}`, i);
    expect(cache.peerCount).toBe(1000);
    clock.t = 50;
    run(cache, "a", 3);
    expect(cache.peerCount).toBe(1);
    expect(cache.size).toBe(1);
  });
});

describe("the memory kept replies hold", () => {
  /** Replies marshaled into regions of shared slabs, as the server does (runtime/buffers.ts). */
  function slabs(size: number) {
    let slab = new Uint8Array(size);
    let used = 0;
    return (n: number, fill: number): Uint8Array => {
      if (size - used < n) {
        slab = new Uint8Array(size);
        used = 0;
      }
      const region = slab.subarray(used);
      region.fill(fill, 0, n);
      used += (n + 7) & ~7;
      return region;
    };
  }

  function answer(cache: DuplicateRequestCache, address: string, xid: number, reply: Uint8Array, n: number): void {
    const found = cache.admit(address, call(xid), 1);
    expect(verdict(found)).toBe("new");
    cache.complete(found as CacheEntry, reply, n, () => {});
  }

  it("a quiet peer's replies amid a flood do not each hold a slab: mostly empty slabs are compacted", () => {
    const slabSize = 64 * 1024;
    const take = slabs(slabSize);
    const maxBytes = 64 * 1024;
    const { cache } = cacheAt({ maxBytes });
    let most = 0;
    for (let i = 1; i <= 500; i++) {
      // One quiet reply, then a slab's worth of flood: without compaction every slab stays.
      answer(cache, "quiet", i, take(28, i & 0xff), 28);
      for (let j = 0; j < 64; j++) answer(cache, "flood", i * 100 + j, take(1000, 0xee), 1000);
      most = Math.max(most, cache.memory);
    }
    expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
    // The documented bound; without compaction the 500 quiet replies would hold 500 slabs (31 MiB).
    expect(most).toBeLessThanOrEqual(2 * maxBytes + 2 * compactSlack);
    expect(cache.stats.compacted).toBeGreaterThan(0);
    expect(cache.stats.compacted).toBeLessThanOrEqual(cache.stats.executions);
    // Every quiet reply is still there, with its bytes.
    expect(cache.peer("quiet").entries).toBe(500);
    for (let i = 1; i <= 500; i++) {
      const hit = cache.admit("quiet", call(i), 1) as CacheEntry;
      expect(hit.buffer!.subarray(0, 28)).toEqual(new Uint8Array(28).fill(i & 0xff));
    }
  });

  it("one client's replies, evicted in the order they came, empty slabs whole: nothing is copied", () => {
    const slabSize = 64 * 1024;
    const take = slabs(slabSize);
    const { cache } = cacheAt({ maxBytes: 256 * 1024 });
    for (let xid = 1; xid <= 20_000; xid++) {
      answer(cache, "a", xid, take(200, 1), 200);
      // The live replies' slabs (less the few bytes at each slab's end), and the oldest and newest partly used.
      expect(cache.memory).toBeLessThanOrEqual(cache.bytes * 1.01 + 2 * slabSize);
    }
    expect(cache.stats.compacted).toBe(0);
    cache.clear();
    expect(cache.memory).toBe(0);
  });
});

describe("at most once over TCP: there is no cache", () => {
  it("a call whose connection is cut cannot tell whether it ran: the caller gets CLOSED, the call ran once, and nothing runs it again", async () => {
    const ex = await loadExample("synthesized");
    let runs = 0;
    let ran!: () => void;
    const running = new Promise<void>((resolve) => (ran = resolve));
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const server = createServer().register(ex.service, {
      ...exampleHandlers(),
      exprocAdd: async (a: number, b: number) => {
        runs++;
        ran();
        await finished;
        return a + b;
      },
    } as unknown as HandlersOf<ServiceDescription>);
    const { port } = await server.listen({ transport: "tcp" });
    // A relay stands for the network between them, so the test can cut it.
    const cut: Socket[] = [];
    const relay = createTcpServer((inbound) => {
      const outbound = connectTcp(port, "127.0.0.1");
      cut.push(inbound, outbound);
      inbound.pipe(outbound).pipe(inbound);
      const drop = () => (inbound.destroy(), outbound.destroy());
      inbound.on("error", drop).on("close", drop);
      outbound.on("error", drop).on("close", drop);
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    const relayPort = (relay.address() as { port: number }).port;
    const channel = await connect({ transport: "tcp", host: "127.0.0.1", port: relayPort });
    try {
      const answer = ex.client(channel).exprocAdd(40, 2);
      await running;
      for (const socket of cut) socket.destroy();
      const e = await answer.then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(e).toBeInstanceOf(RpcError);
      expect((e as RpcError).status).toBe("CLOSED");
      // The server did run it, and finishes it; its reply has nowhere to go.
      finish();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(runs).toBe(1);
      // Calling again is a new call on a new connection, and runs again: at least once, the application's choice.
      const again = await connect({ transport: "tcp", host: "127.0.0.1", port });
      expect(await ex.client(again).exprocAdd(40, 2)).toBe(42);
      expect(runs).toBe(2);
      await again.close();
    } finally {
      await channel.close();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
      await server.close();
    }
  }, 20_000);
});
