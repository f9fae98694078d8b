import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, RpcError, type Channel } from "../runtime/index.js";
import { DuplicateRequestCache } from "../runtime/transports/drc.js";
import { list, loadExample, payload, record, type Example, type ExampleClient, type ExNode } from "./example.js";
import { buildChildren, Child, mib, nodeBin, percentile, type Built, type ChildEvent } from "./faults/harness.js";

/**
 * A bounded soak: 64 clients over TCP and 64 over UDP, all at once, each making calls back
 * to back for 30 s (SOAK_SECONDS to change it) against one server in a child process. Every
 * reply is checked. What must hold:
 *   - no call fails and none is lost: every call issued resolves, with the right value;
 *   - the server ran each call exactly once (its execution counts equal the calls made, per
 *     transport — over UDP a retransmission is answered from the duplicate-request cache);
 *   - the server's heap, measured after a forced collection (the child runs with
 *     --expose-gc), is flat: once the duplicate-request cache is full (it keeps a reply per
 *     UDP call for two minutes, up to its entry bound, so it grows until then and is steady
 *     after), the heap midway and at the end is within 8 MiB of what it was then; and once
 *     the listeners are closed (connections gone, the cache cleared) it is back within
 *     4 MiB of the idle server's.
 * A liveness and leak test, not a speed test: the rates and latencies are printed, not
 * asserted.
 */

const host = "127.0.0.1";
const clientsPerTransport = 64;
const seconds = Number(process.env.SOAK_SECONDS ?? 30);
/** The duplicate-request cache's default entry bound: it is full once this many UDP calls have run. */
const cacheEntries = new DuplicateRequestCache().maxEntries;
/**
 * Heap growth allowed under load once the cache is full. Should the machine be too slow to
 * fill it in the first 40 % of the soak, the first sample is taken then and the entries
 * still to come are allowed 1 KiB each on top (measured: about 600 bytes of heap per entry).
 */
const steadySlackBytes = 8 * 1024 * 1024;
const perEntryBytes = 1024;
/** How far above the idle server the heap may stay once every connection and the cache are gone. */
const idleSlackBytes = 4 * 1024 * 1024;

let built: Built;
let example: Example;
let server: Child | undefined;
const channels: Channel[] = [];

beforeAll(async () => {
  built = await buildChildren("soak");
  example = await loadExample("synthesized");
});

afterAll(async () => {
  await Promise.allSettled(channels.map((c) => c.close()));
  await server?.kill("SIGKILL");
  built?.remove();
});

interface Heap {
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  rss: number;
  executions: Record<string, number>;
}

const heapOf = (e: ChildEvent) => e as unknown as Heap & ChildEvent;

/** One client's tally. */
interface Tally {
  calls: number;
  wrong: string[];
  errors: string[];
  latencies: number[];
}

const blobs = [payload(1), payload(100), payload(1440)];
const lists: (ExNode | null)[] = [null, list([1]), list([1, 2, 3, 4, 5, 6, 7, 8])];

/** Calls of every shape in turn, each result compared with what it must be. */
async function callOnce(c: ExampleClient, i: number, t: Tally): Promise<void> {
  const check = (what: string, got: unknown, want: unknown) => {
    if (JSON.stringify(got, (_, v: unknown) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? [...v] : v)) !==
      JSON.stringify(want, (_, v: unknown) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? [...v] : v))) {
      t.wrong.push(`${what}: got ${String(got)}`);
    }
  };
  switch (i % 7) {
    case 0:
      return check(`add(${i}, 3)`, await c.exprocAdd(i, 3), (i + 3) | 0);
    case 1:
      return check(`echo(${i % 100})`, await c.exprocEcho(record(i % 100)), record(i % 100));
    case 2: {
      const data = blobs[i % blobs.length]!;
      return check("reverse", await c.exprocReverse(data), data.slice().reverse());
    }
    case 3:
      return check("move", await c.exprocMove({ x: i, y: -i }, 1, 2), { x: i + 1, y: 2 - i });
    case 4:
      return check(`range(${i % 9})`, await c.exprocRange(i % 9), list(Array.from({ length: i % 9 }, (_, k) => k + 1)));
    case 5: {
      const l = lists[i % lists.length] ?? null;
      let sum = 0;
      for (let n = l; n !== null; n = n.next) sum += n.value;
      return check("sum", await c.exprocSum(l), sum);
    }
    default:
      return check("lookup", await c.exprocLookup(i % 2), i % 2 === 0 ? { status: 1 } : { status: 2, reason: "no 1" });
  }
}

async function run(c: ExampleClient, until: () => boolean, t: Tally): Promise<void> {
  for (let i = 0; !until(); i++) {
    const started = performance.now();
    try {
      await callOnce(c, i, t);
      t.latencies.push(performance.now() - started);
    } catch (e) {
      t.errors.push(e instanceof RpcError ? e.message : String(e));
    }
    t.calls++;
  }
}

function merge(tallies: Tally[]): Tally {
  return {
    calls: tallies.reduce((n, t) => n + t.calls, 0),
    wrong: tallies.flatMap((t) => t.wrong),
    errors: tallies.flatMap((t) => t.errors),
    latencies: tallies.flatMap((t) => t.latencies).sort((a, b) => a - b),
  };
}

describe("soak", () => {
  it(
    `${clientsPerTransport} clients over TCP and ${clientsPerTransport} over UDP for ${seconds} s: no errors, no lost replies, each call run once, the server's heap flat`,
    async () => {
      const config = { example: built.example, listen: [{ transport: "tcp", host }, { transport: "udp", host }] };
      server = Child.spawn("soak server", nodeBin, ["--expose-gc", built.server, JSON.stringify(config)]);
      const ready = await server.next("ready", 20_000);
      const ports = Object.fromEntries((ready.addresses as { transport: string; port: number }[]).map((a) => [a.transport, a.port]));
      const idle = heapOf(await server.ask("stats", "stats"));
      expect(idle.gc, "the server child runs with --expose-gc").toBe(true);

      for (const transport of ["tcp", "udp"] as const) {
        for (let i = 0; i < clientsPerTransport; i++) channels.push(await connect({ transport, host, port: ports[transport]! }));
      }
      const tallies = channels.map((): Tally => ({ calls: 0, wrong: [], errors: [], latencies: [] }));
      const started = performance.now();
      const end = started + seconds * 1000;
      const loops = channels.map((ch, k) => run(example.client(ch), () => performance.now() >= end, tallies[k]!));

      const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));
      const udpTallies = tallies.slice(clientsPerTransport);
      const udpCalls = () => udpTallies.reduce((n, t) => n + t.calls, 0);
      while (udpCalls() < cacheEntries + clientsPerTransport && performance.now() < started + seconds * 400) {
        await new Promise((r) => setTimeout(r, 250));
      }
      const entriesToCome = Math.max(0, cacheEntries + clientsPerTransport - udpCalls());
      const full = heapOf(await server.ask("stats", "stats", 20_000));
      const fullAt = (performance.now() - started) / 1000;
      await sleepUntil((performance.now() + end) / 2);
      const midway = heapOf(await server.ask("stats", "stats", 20_000));
      await sleepUntil(end - 500);
      const last = heapOf(await server.ask("stats", "stats", 20_000));
      await Promise.all(loops);
      const elapsed = (performance.now() - started) / 1000;
      await Promise.all(channels.splice(0).map((c) => c.close()));
      const closed = heapOf(await server.ask("close", "closed", 20_000));

      const tcp = merge(tallies.slice(0, clientsPerTransport));
      const udp = merge(tallies.slice(clientsPerTransport));
      const line = (name: string, t: Tally) =>
        `${name}: ${t.calls} calls, ${(t.calls / elapsed).toFixed(0)} calls/s, p50 ${percentile(t.latencies, 50).toFixed(2)} ms, ` +
        `p99 ${percentile(t.latencies, 99).toFixed(2)} ms, max ${percentile(t.latencies, 100).toFixed(1)} ms, ${t.errors.length} errors, ${t.wrong.length} wrong`;
      const heapLine = (name: string, h: Heap) =>
        `${name.padEnd(26)} heapUsed ${mib(h.heapUsed).padStart(6)} MiB, external ${mib(h.external).padStart(6)} MiB, rss ${mib(h.rss).padStart(6)} MiB`;
      console.log(
        [
          `soak: ${clientsPerTransport} TCP + ${clientsPerTransport} UDP clients for ${elapsed.toFixed(1)} s`,
          line("  TCP", tcp),
          line("  UDP", udp),
          heapLine("  server idle", idle),
          heapLine(`  cache full (${fullAt.toFixed(1)} s)`, full),
          heapLine("  midway", midway),
          heapLine("  at the end", last),
          ...(entriesToCome > 0 ? [`  (the cache was not full at the first sample: ${entriesToCome} entries to come)`] : []),
          heapLine("  listeners closed", closed),
        ].join("\n"),
      );

      for (const [name, t] of [["TCP", tcp], ["UDP", udp]] as const) {
        expect(t.errors.slice(0, 5), `${name} calls failed (${t.errors.length})`).toEqual([]);
        expect(t.wrong.slice(0, 5), `${name} replies were wrong (${t.wrong.length})`).toEqual([]);
        // Every call issued was answered: none lost, none still waiting.
        expect(t.latencies.length).toBe(t.calls);
        expect(t.calls).toBeGreaterThan(clientsPerTransport);
      }
      // Each call ran exactly once on the server.
      expect(closed.executions).toEqual({ tcp: tcp.calls, udp: udp.calls });

      // Flat: no growth under load beyond the bounded cache, and back to idle once it is gone.
      const allowed = steadySlackBytes + entriesToCome * perEntryBytes;
      expect(midway.heapUsed - full.heapUsed).toBeLessThan(allowed);
      expect(last.heapUsed - full.heapUsed).toBeLessThan(allowed);
      expect(closed.heapUsed - idle.heapUsed).toBeLessThan(idleSlackBytes);
    },
    (seconds + 60) * 1000,
  );
});
