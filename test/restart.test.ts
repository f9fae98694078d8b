import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, RpcError, type Channel } from "../runtime/index.js";
import { loadExample, payload, record, type Example, type ExampleClient } from "./example.js";
import { buildChildren, Child, nodeBin, type Built } from "./faults/harness.js";

/**
 * A server process killed (SIGKILL) in the middle of calls, then started again on the same
 * ports. What a client may rely on:
 *   - over TCP every outstanding call fails at once with RpcError CLOSED (the connection's
 *     end is the news; the client cannot know whether the call ran), and so does every later
 *     call on that channel; a new channel to the restarted server works;
 *   - over UDP nothing tells the client: an outstanding call fails with TIMEOUT when its
 *     timeout expires, not later; the same channel works again once the server is back, and
 *     a call still being retransmitted across the restart is answered by the new server —
 *     which runs it again if the old one had run it (the duplicate-request cache is memory
 *     only: at most once holds for the life of a server);
 *   - no call hangs, and no call resolves with a wrong value.
 * The server runs in a child process (test/faults/server.ts) so that it can really die.
 */

const host = "127.0.0.1";

let built: Built;
let example: Example;
const children: Child[] = [];
const channels: Channel[] = [];

beforeAll(async () => {
  built = await buildChildren("restart");
  example = await loadExample("synthesized");
});

afterAll(async () => {
  await Promise.allSettled(channels.map((c) => c.close()));
  for (const c of children) await c.kill("SIGKILL");
  built?.remove();
});

interface Started {
  child: Child;
  tcp: number;
  udp: number;
}

async function startServer(ports?: { tcp: number; udp: number }, delays?: number[]): Promise<Started> {
  const config = {
    example: built.example,
    listen: [
      { transport: "tcp", host, port: ports?.tcp ?? 0 },
      { transport: "udp", host, port: ports?.udp ?? 0 },
    ],
    delays,
  };
  const child = Child.spawn("server", nodeBin, [built.server, JSON.stringify(config)]);
  children.push(child);
  const ready = await child.next("ready", 20_000);
  const addresses = ready.addresses as { transport: string; port: number }[];
  return { child, tcp: addresses.find((a) => a.transport === "tcp")!.port, udp: addresses.find((a) => a.transport === "udp")!.port };
}

async function open(transport: "tcp" | "udp", port: number): Promise<Channel> {
  // What is tested here is how each transport learns of the death: the TCP channel is not to
  // reconnect, the UDP one is to retransmit through ICMP port unreachable (test/lifetimes and
  // test/connect-errors test the defaults).
  const channel = await connect({ transport, host, port, retransmitMs: 100, maxRetransmitMs: 400, reconnect: false, unreachable: "retransmit" });
  channels.push(channel);
  return channel;
}

/** How a call ended, and when (ms after `since`). */
interface Outcome {
  ok: boolean;
  value?: unknown;
  error?: unknown;
  at: number;
}

function track<T>(p: Promise<T>): Promise<Outcome> {
  return p.then(
    (value) => ({ ok: true, value, at: performance.now() }),
    (error: unknown) => ({ ok: false, error, at: performance.now() }),
  );
}

function statusOf(o: Outcome): string {
  if (o.ok) return "resolved";
  return o.error instanceof RpcError ? o.error.status : `not an RpcError: ${String(o.error)}`;
}

async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A few calls of different shapes, with their results checked. */
async function works(c: ExampleClient): Promise<void> {
  expect(await c.exprocAdd(40, 2)).toBe(42);
  expect(await c.exprocEcho(record(9))).toEqual(record(9));
  const data = payload(1000);
  expect(await c.exprocReverse(data)).toEqual(data.slice().reverse());
}

describe("a server killed mid-call and restarted", () => {
  it("fails TCP calls CLOSED at once and UDP calls TIMEOUT within their timeout; the restarted server serves both again", async () => {
    // EXPROC_ADD(7, …) takes a minute on this server: it is running when the server dies.
    const first = await startServer(undefined, [0, 0, 0, 0, 0, 0, 0, 60_000]);
    const tcp = await open("tcp", first.tcp);
    const udp = await open("udp", first.udp);
    const tcpClient = example.client(tcp);
    const udpClient = example.client(udp);
    await works(tcpClient);
    await works(udpClient);

    // Calls the server holds for ever, so they are in progress when it dies.
    type Timed = ExampleClient & { exprocGreet(s: string, n: number, o?: { timeoutMs: number }): Promise<string> };
    const udpTimeoutMs = 3000;
    const issued = performance.now();
    const tcpHeld = Array.from({ length: 8 }, () => track((tcpClient as Timed).exprocGreet("hold", 1, { timeoutMs: 30_000 })));
    const udpHeld = Array.from({ length: 8 }, () => track((udpClient as Timed).exprocGreet("hold", 1, { timeoutMs: udpTimeoutMs })));
    // Every one of them reached its handler, the UDP ones once each although retransmitted.
    await waitFor("16 held calls", 5000, async () => (await first.child.ask("stats", "stats")).held === 16);
    // And a UDP call whose handler is still running when the server dies, with a timeout
    // that outlasts the restart.
    const rerun = track(udpClient.exprocAdd(7, 1));
    await new Promise((r) => setTimeout(r, 300)); // retransmissions arrive meanwhile: still one execution each
    const before = await first.child.ask("stats", "stats");
    expect(before.held).toBe(16);
    expect(before.executions).toEqual({ tcp: 3 + 8, udp: 3 + 8 + 1 });

    const killed = performance.now();
    await first.child.kill("SIGKILL");
    expect((await first.child.exited).signal).toBe("SIGKILL");

    const tcpOutcomes = await Promise.all(tcpHeld);
    for (const o of tcpOutcomes) {
      expect(statusOf(o)).toBe("CLOSED");
      expect((o.error as Error).message).toMatch(/connection closed before EXPROC_GREET was answered/);
      expect(o.at - killed, "a TCP call learns of the death at once, not at its timeout").toBeLessThan(2000);
    }
    // The dead channel fails later calls at once too.
    const late = await track(tcpClient.exprocAdd(1, 1));
    expect(statusOf(late)).toBe("CLOSED");
    expect(late.at - killed).toBeLessThan(3000);
    // Nothing listens now: a new connection is refused with a clear error.
    await expect(connect({ transport: "tcp", host, port: first.tcp })).rejects.toMatchObject({ status: "UNREACHABLE", cause: { code: "ECONNREFUSED" } });

    const udpOutcomes = await Promise.all(udpHeld);
    for (const o of udpOutcomes) {
      expect(statusOf(o)).toBe("TIMEOUT");
      expect((o.error as Error).message).toMatch(/no reply to EXPROC_GREET .* within the timeout/);
      // Within its timeout (plus the timer's slack), never hanging beyond it.
      expect(o.at - issued).toBeGreaterThanOrEqual(udpTimeoutMs - 50);
      expect(o.at - issued).toBeLessThan(udpTimeoutMs + 2000);
    }

    // A UDP call made while the server is down, with a timeout that outlasts the restart:
    // the channel keeps retransmitting and the new server answers it.
    const spanning = track(udpClient.exprocAdd(1000, 234));
    await new Promise((r) => setTimeout(r, 300));
    const second = await startServer({ tcp: first.tcp, udp: first.udp });
    expect([second.tcp, second.udp]).toEqual([first.tcp, first.udp]);
    const spanned = await spanning;
    expect(statusOf(spanned)).toBe("resolved");
    expect(spanned.value).toBe(1234);

    // The call that was running when the server died is run again by the new one, whose
    // duplicate-request cache starts empty: at most once does not outlive the server.
    const reran = await rerun;
    expect(statusOf(reran)).toBe("resolved");
    expect(reran.value).toBe(8);

    // The same UDP channel works again; the dead TCP channel stays dead; a new one works.
    await works(udpClient);
    expect(statusOf(await track(tcpClient.exprocAdd(1, 2)))).toBe("CLOSED");
    const tcp2 = await open("tcp", second.tcp);
    await works(example.client(tcp2));
    // The new server ran each call once: the spanning one, the rerun, and a round of `works`
    // (3 calls) over each transport.
    const stats = await second.child.ask("stats", "stats");
    expect(stats.executions).toEqual({ udp: 1 + 1 + 3, tcp: 3 });
    expect(stats.held).toBe(0);
  });

  it("under load, every call in flight when the server dies either resolves right or fails with a clear error in time", async () => {
    // EXPROC_ADD answers after 0–40 ms, so calls are at every stage when the kill comes.
    const server = await startServer(undefined, [0, 2, 10, 40]);
    const tcpChannels = await Promise.all(Array.from({ length: 8 }, () => open("tcp", server.tcp)));
    const udpChannels = await Promise.all(Array.from({ length: 8 }, () => open("udp", server.udp)));
    const udpTimeoutMs = 2500;
    const calls: { transport: "tcp" | "udp"; a: number; issued: number; outcome: Promise<Outcome> }[] = [];
    let stop = false;
    let n = 0;
    // Each channel keeps 16 calls outstanding until the server is gone.
    const loop = async (transport: "tcp" | "udp", channel: Channel) => {
      const client = example.client(channel) as ExampleClient & { exprocAdd(a: number, b: number, o?: { timeoutMs: number }): Promise<number> };
      while (!stop) {
        const a = n++;
        const issued = performance.now();
        const outcome = track(client.exprocAdd(a, 7, { timeoutMs: transport === "udp" ? udpTimeoutMs : 20_000 }));
        calls.push({ transport, a, issued, outcome });
        if (!(await outcome).ok) break; // a dead channel fails at once: do not spin on it
      }
    };
    const loops: Promise<void>[] = [];
    for (const c of tcpChannels) for (let i = 0; i < 16; i++) loops.push(loop("tcp", c));
    for (const c of udpChannels) for (let i = 0; i < 16; i++) loops.push(loop("udp", c));
    await new Promise((r) => setTimeout(r, 1500));
    const killed = performance.now();
    await server.child.kill("SIGKILL");
    stop = true;
    await Promise.all(loops);

    const seen: Record<string, number> = {};
    for (const call of calls) {
      const o = await call.outcome;
      const status = statusOf(o);
      seen[`${call.transport} ${status}`] = (seen[`${call.transport} ${status}`] ?? 0) + 1;
      if (o.ok) {
        expect(o.value, `EXPROC_ADD(${call.a}, 7)`).toBe(call.a + 7);
        continue;
      }
      if (call.transport === "tcp") {
        expect(status).toBe("CLOSED");
        expect(o.at - killed).toBeLessThan(2000);
      } else {
        expect(status).toBe("TIMEOUT");
        expect(o.at - call.issued).toBeLessThan(udpTimeoutMs + 2000);
      }
    }
    console.log(`killed under load: ${calls.length} calls`, seen);
    // The kill really came mid-call: calls had completed, and calls were cut on both transports.
    expect(seen["tcp resolved"]).toBeGreaterThan(0);
    expect(seen["udp resolved"]).toBeGreaterThan(0);
    expect(seen["tcp CLOSED"]).toBeGreaterThan(0);
    expect(seen["udp TIMEOUT"]).toBeGreaterThan(0);
    expect(Object.keys(seen).sort()).toEqual(["tcp CLOSED", "tcp resolved", "udp TIMEOUT", "udp resolved"]);
  });
});
