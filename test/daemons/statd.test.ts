import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../../compiler/compile.js";
import { connect, createServer, type Channel, type Server } from "../../runtime/index.js";
import { clearRegistrations, exclusive, loadStubs, privateRun, program, registered, removeDir, repoRoot, requireRpcbind, startDaemon, tempDir, type Daemon, type Stubs } from "./harness.js";

/**
 * The Network Status Monitor against rpc.statd (nfs-utils), with the system's sm_inter.x and
 * test/daemons/idl/sm_notify.x (SM_NOTIFY and the callback, which sm_inter.x leaves out).
 * statd runs in the foreground with its state directory in a temporary directory. A host is
 * monitored with SM_MON on behalf of lockd's callback, which the test serves itself (registered
 * with the same rpcbind); SM_NOTIFY of that host's reboot makes statd call that program back with the
 * private bytes given to SM_MON; the monitor record is on disk until SM_UNMON.
 */

const SM_PROG = 100024;
const NLM_PROG = 100021;
let dir: string;
let statd: Daemon | undefined;
let release: (() => void) | undefined;
const stubs = new Map<Mode, { sm: Stubs; notify: Stubs }>();

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/sbin/rpc.statd", "nfs-common");
  for (const mode of modes) {
    const [sm, notify] = await Promise.all([
      loadStubs(["/usr/include/rpcsvc/sm_inter.x"], mode),
      loadStubs([join(repoRoot, "test/daemons/idl/sm_notify.x")], mode),
    ]);
    stubs.set(mode, { sm: sm.get("sm_inter")!, notify: notify.get("sm_notify")! });
  }
  // ganesha.test.ts runs a statd and a lock manager of its own: not at the same time.
  release = await exclusive("statd-nlm");
  await clearRegistrations(SM_PROG, "a status monitor (rpc.statd)");
  // The test serves statd's callback as lockd would.
  await clearRegistrations(NLM_PROG, "a lock manager (lockd)");
  dir = tempDir("statd");
  mkdirSync(join(dir, "sm"));
  mkdirSync(join(dir, "sm.bak"));
  const { sm } = stubs.get("synthesized")!;
  // -F: foreground; -d: log to stderr; -L: send no reboot notifications of its own.
  statd = await startDaemon({
    name: "rpc.statd",
    command: binary,
    args: ["-F", "-d", "-L", "-P", dir],
    binds: privateRun(dir), // its pid file
    ready: async () => (await registered(sm.SmVers, "tcp")) && (await registered(sm.SmVers, "udp")),
  });
}, 180_000);

afterAll(async () => {
  await statd?.stop();
  release?.();
  if (dir !== undefined) removeDir(dir);
});

/** statd's state number as it keeps it on disk (a host-order int in `state`). */
const stateOnDisk = () => readFileSync(join(dir, "state")).readInt32LE(0);

describe.each(modes.flatMap((mode) => (["tcp", "udp"] as const).map((transport) => ({ mode, transport }))))("$mode stubs over $transport", ({ mode, transport }) => {
  let sm: Stubs;
  let notify: Stubs;
  let channel: Channel;
  let client: Stubs;
  let callbacks: Server;
  const received: Stubs[] = [];

  beforeAll(async () => {
    ({ sm, notify } = stubs.get(mode)!);
    channel = await connect({ transport, service: sm.SmVers, retransmitMs: 200 });
    client = new sm.SmVersClient(channel, { timeoutMs: 10_000 });
    callbacks = createServer().register(notify.NlmVers4, {
      nlmprocNsmNotify: (...args: unknown[]) => void received.push(args[0] as Stubs),
    });
    await callbacks.listen({ transport: "udp", host: "127.0.0.1", rpcbind: true });
    await callbacks.listen({ transport: "tcp", host: "127.0.0.1", rpcbind: true });
  });

  afterAll(async () => {
    await callbacks?.close();
    await channel?.close();
  });

  it("SM_STAT answers the state number statd keeps on disk (odd: up)", async () => {
    const res = await client.smStat({ mon_name: "localhost" });
    expect(res.res_stat).toBe(sm.res.stat_succ);
    expect(res.state).toBe(stateOnDisk());
    expect(res.state % 2).toBe(1);
  });

  it("SM_MON records the host on disk; SM_NOTIFY of its reboot calls the test's program back with the private bytes; SM_UNMON forgets it", async () => {
    const priv = randomBytes(16);
    const myId = { my_name: "127.0.0.1", my_prog: notify.NLM_PROG, my_vers: notify.NLM_VERS4, my_proc: notify.NLMPROC_NSM_NOTIFY };
    const monId = { mon_name: "127.0.0.1", my_id: myId };
    const mon = await client.smMon({ mon_id: monId, priv });
    expect(mon.res_stat).toBe(sm.res.stat_succ);
    expect(mon.state).toBe(stateOnDisk());
    // The record names the private bytes in hex (nfs-utils' sm/ files).
    const records = readdirSync(join(dir, "sm"));
    expect(records).toHaveLength(1);
    expect(readFileSync(join(dir, "sm", records[0]!), "utf8").toLowerCase()).toContain(priv.toString("hex"));

    // The monitored host says it rebooted: statd tells the program that asked.
    const notifier = new notify.SmVersClient(channel, { timeoutMs: 10_000 });
    expect(await notifier.smNotify({ mon_name: "127.0.0.1", state: 7 })).toBeUndefined();
    for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(received).toHaveLength(1);
    expect(received[0]!.state).toBe(7);
    expect(Buffer.from(received[0]!.priv).equals(priv)).toBe(true);
    expect(typeof received[0]!.mon_name).toBe("string");

    const unmon = await client.smUnmon(monId);
    expect(unmon.state).toBe(stateOnDisk());
    expect(readdirSync(join(dir, "sm"))).toEqual([]);
  });

  it("SM_UNMON_ALL drops every host a program monitors", async () => {
    const myId = { my_name: "127.0.0.1", my_prog: notify.NLM_PROG, my_vers: notify.NLM_VERS4, my_proc: notify.NLMPROC_NSM_NOTIFY };
    for (const name of ["127.0.0.1", "localhost"]) {
      const res = await client.smMon({ mon_id: { mon_name: name, my_id: myId }, priv: new Uint8Array(16) });
      expect(res.res_stat).toBe(sm.res.stat_succ);
    }
    expect(readdirSync(join(dir, "sm")).length).toBeGreaterThan(0);
    const all = await client.smUnmonAll(myId);
    expect(all.state).toBe(stateOnDisk());
    expect(readdirSync(join(dir, "sm"))).toEqual([]);
  });
});

describe("stopped by its PID", () => {
  it("exits on SIGTERM and leaves nothing registered with rpcbind", async () => {
    await statd!.stop();
    expect(statd!.running()).toBe(false);
    const { sm } = stubs.get("synthesized")!;
    for (const t of ["tcp", "udp"] as const) expect(await registered(sm.SmVers, t)).toBe(false);
  });
});
