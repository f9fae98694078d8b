import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../../compiler/compile.js";
import { connect, RpcError, type Channel } from "../../runtime/index.js";
import { clearRegistrations, loadStubs, program, registered, requireRpcbind, startDaemon, type Daemon, type Stubs } from "./harness.js";

/**
 * Kernel statistics from rpc.rstatd (the rstatd package) with the system's rstat.x, versions
 * 3, 2 and 1, over UDP (the only transport it serves), in every mode. rstatd always forks into
 * the background, so it runs in a PID namespace of its own (see the harness). Its figures are
 * checked against /proc read around the call: the boot time within a second, counters no
 * larger than /proc's after the call, the current time within seconds.
 */

const RSTATPROG = 100001;
let rstatd: Daemon | undefined;
const stubs = new Map<Mode, Stubs>();

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/sbin/rpc.rstatd", "rstatd");
  for (const mode of modes) stubs.set(mode, (await loadStubs(["/usr/include/rpcsvc/rstat.x"], mode)).get("rstat")!);
  await clearRegistrations(RSTATPROG, "rpc.rstatd");
  const rstat = stubs.get("synthesized")!;
  rstatd = await startDaemon({
    name: "rpc.rstatd",
    command: binary,
    args: [],
    forks: true,
    ready: async () => (await registered(rstat.RstatversTime, "udp")) && (await registered(rstat.RstatversOrig, "udp")),
  });
}, 60_000);

afterAll(async () => {
  await rstatd?.stop();
});

/** /proc/stat: the CPU tick counters (user, nice, system, idle), context switches, boot time. */
function procStat(): { cpu: number[]; ctxt: number; btime: number } {
  const text = readFileSync("/proc/stat", "utf8");
  const cpu = /^cpu\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(text)!.slice(1, 5).map(Number);
  return { cpu, ctxt: Number(/^ctxt (\d+)/m.exec(text)![1]), btime: Number(/^btime (\d+)/m.exec(text)![1]) };
}

/**
 * Debian's rpc.rstatd follows each version's correct encoding with padding up to 108 bytes
 * (27 words, one more than version 3's statstime), whatever the version. C clients never
 * notice: libtirpc's clnt_call ignores bytes the result's XDR routine leaves unread. This
 * runtime refuses trailing bytes (the peer and we disagree on the type), so the generated
 * client's call fails CANNOT_DECODE; to read the figures, the test calls through the channel
 * with the generated codec followed by a skip of what is left.
 */
const replyBytes = 108;
function trailingSkipped(codec: Stubs): Stubs {
  return {
    name: codec.name,
    min: codec.min,
    max: undefined,
    encode: () => {
      throw new Error("results are only decoded");
    },
    decode: (r: Stubs) => {
      const start = r.pos;
      const value = codec.decode(r);
      const used = r.pos - start;
      r.take(r.end - r.pos);
      return { value, used, trailing: r.pos - start - used };
    },
  };
}

describe.each(modes)("%s stubs over UDP", (mode) => {
  let rstat: Stubs;
  const channels: Channel[] = [];
  const open = async (version: string) => {
    const channel = await connect({ transport: "udp", service: rstat[version], retransmitMs: 200 });
    channels.push(channel);
    return channel;
  };
  /** RSTATPROC_STATS of `version`, decoded with the generated codec of `type`. */
  const stats = async (version: string, type: string) => {
    const channel = await open(version);
    const procedure = { ...rstat[version].procedures.rstatprocStats, result: trailingSkipped(rstat[`${type}Codec`]) };
    const { value, used, trailing } = (await channel.call(rstat[version], procedure, undefined, { timeoutMs: 10_000 }, undefined)) as Stubs;
    expect(used + trailing).toBe(replyBytes);
    return { value, used };
  };

  beforeAll(() => {
    rstat = stubs.get(mode)!;
  });
  afterAll(async () => {
    await Promise.allSettled(channels.map((c) => c.close()));
  });

  it("the generated client refuses the padded reply with CANNOT_DECODE naming the trailing bytes", async () => {
    const v3 = new rstat.RstatversTimeClient(await open("RstatversTime"), { timeoutMs: 10_000 });
    const error = await v3.rstatprocStats().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).status).toBe("CANNOT_DECODE");
    expect((error as RpcError).message).toBe("RPC CANNOT_DECODE: decode RSTATPROC_STATS at byte 104: 4 trailing bytes");
    // RSTATPROC_HAVEDISK is not padded.
    expect(typeof (await v3.rstatprocHavedisk())).toBe("number");
  });

  it("version 3 RSTATPROC_STATS: CPU ticks, context switches, boot and current time agree with /proc", async () => {
    const before = procStat();
    const { value: s, used } = await stats("RstatversTime", "statstime");
    const after = procStat();
    expect(used).toBe(104);
    // rstatd derives the boot time from the uptime: within a second of the kernel's.
    expect(Math.abs(s.boottime.tv_sec - before.btime)).toBeLessThanOrEqual(1);
    expect(Math.abs(s.curtime.tv_sec - Date.now() / 1000)).toBeLessThan(5);
    // rstatd samples /proc/stat itself, at most a few seconds before the call (ticks are
    // reported as signed 32-bit ints).
    for (let i = 0; i < 4; i++) {
      expect(s.cp_time[i]).toBeGreaterThanOrEqual(0);
      expect(s.cp_time[i]).toBeLessThanOrEqual(after.cpu[i]! | 0);
    }
    expect(s.cp_time[3]).toBeGreaterThan(0); // idle ticks since boot
    expect(s.v_swtch).toBeGreaterThan(0);
    expect(s.v_swtch).toBeLessThanOrEqual(after.ctxt >>> 0);
    // Counters only grow.
    const { value: later } = await stats("RstatversTime", "statstime");
    for (let i = 0; i < 4; i++) expect(later.cp_time[i]).toBeGreaterThanOrEqual(s.cp_time[i]);
    expect(later.v_swtch).toBeGreaterThanOrEqual(s.v_swtch);
  });

  it("versions 2 and 1 RSTATPROC_STATS: the older layouts, the same boot time and ticks", async () => {
    const { value: s2, used: used2 } = await stats("RstatversSwtch", "statsswtch");
    expect(used2).toBe(96);
    expect(Math.abs(s2.boottime.tv_sec - procStat().btime)).toBeLessThanOrEqual(1);
    expect(s2.cp_time[3]).toBeGreaterThan(0);
    expect(s2.v_swtch).toBeGreaterThan(0);
    expect(s2.v_swtch).toBeLessThanOrEqual(procStat().ctxt >>> 0);

    const { value: s1, used: used1 } = await stats("RstatversOrig", "stats");
    expect(used1).toBe(72);
    expect(s1.cp_time[3]).toBeGreaterThan(0);
    expect(s1.cp_time[3]).toBeLessThanOrEqual(procStat().cpu[3]! | 0);
    for (const v of ["RstatversSwtch", "RstatversOrig"]) {
      expect(typeof (await new rstat[`${v}Client`](await open(v), { timeoutMs: 10_000 }).rstatprocHavedisk())).toBe("number");
    }
  });
});

describe("stopped by its PID", () => {
  it("exits on SIGTERM and leaves nothing registered with rpcbind", async () => {
    await rstatd!.stop();
    expect(rstatd!.running()).toBe(false);
    expect(await registered(stubs.get("synthesized")!.RstatversTime, "udp")).toBe(false);
  });
});
