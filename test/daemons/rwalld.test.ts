import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../../compiler/compile.js";
import { connect, type Channel } from "../../runtime/index.js";
import { clearRegistrations, loadStubs, privateRun, program, registered, removeDir, repoRoot, requireRpcbind, startDaemon, tempDir, type Daemon, type Stubs } from "./harness.js";

/**
 * WALLPROC_WALL against rpc.rwalld (netkit, the rwalld package) with test/daemons/idl/rwall.x,
 * over UDP in every mode. rwalld forks into the background (a PID namespace of its own) and
 * hands each message to `/usr/bin/wall -n`; in the daemon's mount namespace that path is a
 * script of the test's that keeps what it is given, so the test sees the message arrive
 * instead of it going to every terminal of the machine.
 */

const WALLPROG = 100008;
let dir: string;
let received: string;
let rwalld: Daemon | undefined;
const stubs = new Map<Mode, Stubs>();

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/sbin/rpc.rwalld", "rwalld");
  program("/usr/bin/wall", "bsdutils"); // the mount point of the stand-in
  for (const mode of modes) stubs.set(mode, (await loadStubs([join(repoRoot, "test/daemons/idl/rwall.x")], mode)).get("rwall")!);
  await clearRegistrations(WALLPROG, "rpc.rwalld");
  dir = tempDir("rwalld");
  // rwalld runs wall as nobody: the stand-in and its output directory must be open to it.
  chmodSync(dir, 0o755);
  received = join(dir, "received");
  mkdirSync(received, { mode: 0o777 });
  chmodSync(received, 0o777);
  const wall = join(dir, "wall");
  writeFileSync(wall, `#!/bin/sh\n# Stands in for wall(1): keeps the arguments and the message.\nn=$(date +%s%N)\nprintf '%s' "$*" > ${received}/$n.args\ncat > ${received}/$n.tmp\nmv ${received}/$n.tmp ${received}/$n.msg\n`);
  chmodSync(wall, 0o755);
  const rwall = stubs.get("synthesized")!;
  rwalld = await startDaemon({
    name: "rpc.rwalld",
    command: binary,
    args: [],
    forks: true,
    binds: [...privateRun(dir), [wall, "/usr/bin/wall"]],
    ready: () => registered(rwall.Wallvers, "udp"),
  });
}, 60_000);

afterAll(async () => {
  await rwalld?.stop();
  // It leaves its registration behind (below): remove it even if a test failed first.
  if (rwalld !== undefined) await clearRegistrations(WALLPROG, "rpc.rwalld");
  if (dir !== undefined) removeDir(dir);
});

/** The messages wall was given so far, with its arguments, oldest first. */
async function delivered(count: number): Promise<{ args: string; message: string }[]> {
  for (let i = 0; i < 100; i++) {
    const done = readdirSync(received).filter((f) => f.endsWith(".msg")).sort();
    if (done.length >= count) {
      return done.map((f) => ({ args: readFileSync(join(received, f.replace(/\.msg$/, ".args")), "utf8"), message: readFileSync(join(received, f), "utf8") }));
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`wall was not run ${count} times within 10 s`);
}

describe.each(modes)("%s stubs over UDP", (mode) => {
  let channel: Channel;
  let client: Stubs;

  beforeAll(async () => {
    const rwall = stubs.get(mode)!;
    channel = await connect({ transport: "udp", service: rwall.Wallvers, retransmitMs: 200 });
    client = new rwall.WallversClient(channel, { timeoutMs: 10_000 });
    for (const f of existsSync(received) ? readdirSync(received) : []) rmSync(join(received, f));
  });
  afterAll(async () => {
    await channel?.close();
  });

  it("WALLPROC_WALL hands the message to wall -n, byte for byte after two bells", async () => {
    const message = `rpcgen-ts ${mode}: the system goes down at ${new Date(0).toISOString()}\nsecond line, UTF-8: ÿ€\n`;
    expect(await client.wallprocWall(message)).toBeUndefined();
    const [got] = await delivered(1);
    // rwalld rings the bell twice before the message, as netkit's always has.
    expect(got).toEqual({ args: "-n", message: `\x07\x07${message}` });
  });
});

describe("stopped by its PID", () => {
  it("exits on SIGTERM but stays registered with rpcbind (netkit's rwalld never unregisters); the stale entry can be removed", async () => {
    const { Wallvers } = stubs.get("synthesized")!;
    await rwalld!.stop();
    expect(rwalld!.running()).toBe(false);
    expect(await registered(Wallvers, "udp")).toBe(true);
    await clearRegistrations(WALLPROG, "rpc.rwalld");
    expect(await registered(Wallvers, "udp")).toBe(false);
  });
});
