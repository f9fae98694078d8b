import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../compiler/emit/module.js";
import { connect, createServer, type CallRecord, type Channel, type Server } from "../runtime/index.js";
import { exampleCalls, exampleHandlers, loadExample, payload, type Example } from "./example.js";
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
      // One direction: classic = stub + runtime + wire; synthesized and descriptor = runtime + wire.
      const perDirection = { stub: mode === "classic" ? 1 : 0, runtime: 1, wire };
      const both = { stub: 2 * perDirection.stub, runtime: 2, wire: 2 * wire };
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
