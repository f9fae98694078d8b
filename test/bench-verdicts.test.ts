import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFloorServers, streamPingPong, udpPingPong, type FloorServers } from "../bench/floors.js";
import { Budgets } from "../bench/harness.js";

/**
 * The benchmark's own machinery, where a mistake would print a wrong verdict: a budget whose
 * figure cannot be judged in a run is NOT MEASURED whatever its value, and the raw floors'
 * servers (which the benchmark runs in a process of their own) answer each call with the
 * reply size it asks for.
 */

describe("bench budgets", () => {
  it("judges a valid figure against its limit, inclusive", () => {
    const b = new Budgets();
    expect(b.atMost("a", 1.15, 1.15).status).toBe("PASS");
    expect(b.atMost("b", 1.16, 1.15).status).toBe("MISS");
    expect(b.atLeast("c", 5, 5).status).toBe("PASS");
    expect(b.atLeast("d", 4.9, 5).status).toBe("MISS");
    expect([b.count("PASS"), b.count("MISS"), b.count("NOT MEASURED")]).toEqual([2, 2, 0]);
  });

  it("never passes a figure whose floor is invalid, however good it looks", () => {
    const b = new Budgets();
    // The spinning floor that could not spin: the RPC looked 70× faster than its "floor".
    const v = b.atMost("shm Null() ≤ 3× spin floor", 0.014, 3, undefined, "the spinning floor took 2272 µs");
    expect(v.status).toBe("NOT MEASURED");
    expect(v.pass).toBe(false);
    expect(v.measured).toContain("0.014×");
    const w = b.atLeast("calls/s ≥ 2× theirs", 40, 2, undefined, "other processes used 0.9 CPUs");
    expect(w.status).toBe("NOT MEASURED");
    const report = b.report();
    expect(report).toContain("NOT MEASURED: the spinning floor took 2272 µs");
    expect(report).toContain("NOT MEASURED: other processes used 0.9 CPUs");
    expect(report).not.toMatch(/\bPASS\b/);
    expect(b.count("PASS")).toBe(0);
  });

  it("does not judge a figure that is not a number", () => {
    const b = new Budgets();
    expect(b.atMost("nan", NaN, 1).status).toBe("NOT MEASURED");
    expect(b.atLeast("inf", Infinity, 1).status).toBe("NOT MEASURED");
    expect(b.notMeasured("failed", "the floor did not start").why).toBe("the floor did not start");
    expect(b.count("NOT MEASURED")).toBe(3);
  });
});

describe("bench floor servers", () => {
  let dir: string;
  let servers: FloorServers;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rpcgen-ts-floors-"));
    servers = await startFloorServers(join(dir, "floor.sock"));
  });

  afterAll(async () => {
    await servers.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ["tcp", "unix", "udp"] as const) {
    it(`answers each ${kind} call with the reply size it asks for`, async () => {
      const client = kind === "udp" ? await udpPingPong(servers.address) : await streamPingPong(kind, servers.address);
      try {
        // The batch resolves to the sum of the reply bodies' lengths.
        expect(await client.batch(44, 1468)(5)).toBe(5 * 1468);
        expect(await client.batch(1484, 24)(3)).toBe(3 * 24);
      } finally {
        await client.close();
      }
    });
  }
});
