import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../../compiler/compile.js";
import { connect, type Channel } from "../../runtime/index.js";
import { clearRegistrations, loadStubs, privateRun, program, registered, removeDir, requireRpcbind, startDaemon, tempDir, type Daemon, type Stubs } from "./harness.js";

/**
 * Logged-in users from rpc.rusersd (netkit, the rusersd package) with the system's rusers.x,
 * version 3, over UDP (the only transport it serves) in every mode. rusersd forks into the background (a PID namespace
 * of its own) and reads /var/run/utmp, which the test writes itself into a /run of the daemon's
 * own: RUSERSPROC_NUM, RUSERSPROC_NAMES and RUSERSPROC_ALLNAMES must report exactly those
 * sessions.
 */

const RUSERSPROG = 100002;
let dir: string;
let rusersd: Daemon | undefined;
const stubs = new Map<Mode, Stubs>();

/** Sessions in the utmp the daemon reads: two logged in, one ended. */
const USER_PROCESS = 7;
const DEAD_PROCESS = 8;
const sessions = [
  { type: USER_PROCESS, user: "alice", line: "null", host: "alpha.example", time: 1_700_000_000 },
  { type: USER_PROCESS, user: "bob", line: "zero", host: "", time: 1_700_000_100 },
  { type: DEAD_PROCESS, user: "", line: "full", host: "", time: 1_700_000_200 },
];

/** glibc's struct utmp on Linux (384 bytes; 32-bit times: utmp's on-disk format). */
function utmpRecord(s: (typeof sessions)[number], pid: number): Buffer {
  const b = Buffer.alloc(384);
  b.writeInt16LE(s.type, 0);
  b.writeInt32LE(pid, 4);
  b.write(s.line, 8, 32, "latin1");
  b.write(s.line.slice(-4), 40, 4, "latin1");
  b.write(s.user, 44, 32, "latin1");
  b.write(s.host, 76, 256, "latin1");
  b.writeInt32LE(s.time, 340);
  return b;
}

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/sbin/rpc.rusersd", "rusersd");
  for (const mode of modes) stubs.set(mode, (await loadStubs(["/usr/include/rpcsvc/rusers.x"], mode)).get("rusers")!);
  await clearRegistrations(RUSERSPROG, "rpc.rusersd");
  dir = tempDir("rusersd");
  const binds = privateRun(dir);
  writeFileSync(join(dir, "run/utmp"), Buffer.concat(sessions.map((s, i) => utmpRecord(s, 1000 + i))), { mode: 0o644 });
  const rusers = stubs.get("synthesized")!;
  rusersd = await startDaemon({
    name: "rpc.rusersd",
    command: binary,
    args: [],
    forks: true,
    binds,
    ready: () => registered(rusers.Rusersvers3, "udp"),
  });
}, 60_000);

afterAll(async () => {
  await rusersd?.stop();
  if (dir !== undefined) removeDir(dir);
});

describe.each(modes)("%s stubs over UDP", (mode) => {
  let rusers: Stubs;
  let channel: Channel;
  let client: Stubs;

  beforeAll(async () => {
    rusers = stubs.get(mode)!;
    channel = await connect({ transport: "udp", service: rusers.Rusersvers3, retransmitMs: 200 });
    client = new rusers.Rusersvers3Client(channel, { timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await channel?.close();
  });

  const loggedIn = sessions.filter((s) => s.type === USER_PROCESS);

  it("RUSERSPROC_NUM counts the sessions logged in", async () => {
    expect(await client.rusersprocNum()).toBe(loggedIn.length);
  });

  it("RUSERSPROC_NAMES lists them: user, terminal, remote host, login time", async () => {
    const names = await client.rusersprocNames();
    expect(names.map((u: Stubs) => ({ user: u.ut_user, line: u.ut_line, host: u.ut_host, type: u.ut_type, time: u.ut_time }))).toEqual(
      loggedIn.map((s) => ({ user: s.user, line: s.line, host: s.host, type: rusers.RUSERS_USER_PROCESS, time: s.time })),
    );
    for (const u of names) expect(u.ut_idle).toBeGreaterThanOrEqual(0);
  });

  it("RUSERSPROC_ALLNAMES answers a list that includes every logged-in session", async () => {
    const all = await client.rusersprocAllnames();
    const users = all.map((u: Stubs) => u.ut_user);
    for (const s of loggedIn) expect(users).toContain(s.user);
  });
});

describe("stopped by its PID", () => {
  it("exits on SIGTERM and leaves nothing registered with rpcbind", async () => {
    await rusersd!.stop();
    expect(rusersd!.running()).toBe(false);
    expect(await registered(stubs.get("synthesized")!.Rusersvers3, "udp")).toBe(false);
  });
});
