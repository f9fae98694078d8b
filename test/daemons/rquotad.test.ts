import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../../compiler/compile.js";
import { AuthStat, connect, RpcError, type Channel } from "../../runtime/index.js";
import { clearRegistrations, loadStubs, program, registered, requireRpcbind, startDaemon, type Daemon, type Stubs } from "./harness.js";

/**
 * Disk quotas from rpc.rquotad (the quota package) with the system's rquota.x, version 1, over
 * TCP and UDP in every mode, with AUTH_SYS credentials (it refuses AUTH_NONE). rquotad runs in
 * the foreground (-F). No filesystem here has quotas turned on, so the answer for a user is
 * Q_NOQUOTA, a status without figures: what is checked is that the reply is a well-formed
 * getquota_rslt, the same for both procedures and every user asked about, and that a path
 * longer than RQ_PATHLEN is refused before it is sent.
 */

const RQUOTAPROG = 100011;
let rquotad: Daemon | undefined;
const stubs = new Map<Mode, Stubs>();

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/sbin/rpc.rquotad", "quota");
  for (const mode of modes) stubs.set(mode, (await loadStubs(["/usr/include/rpcsvc/rquota.x"], mode)).get("rquota")!);
  await clearRegistrations(RQUOTAPROG, "rpc.rquotad");
  const rquota = stubs.get("synthesized")!;
  rquotad = await startDaemon({
    name: "rpc.rquotad",
    command: binary,
    args: ["-F"],
    ready: async () => (await registered(rquota.Rquotavers, "tcp")) && (await registered(rquota.Rquotavers, "udp")),
  });
}, 60_000);

afterAll(async () => {
  await rquotad?.stop();
});

describe.each(modes.flatMap((mode) => (["tcp", "udp"] as const).map((transport) => ({ mode, transport }))))("$mode stubs over $transport", ({ mode, transport }) => {
  let rquota: Stubs;
  let channel: Channel;
  let client: Stubs;

  beforeAll(async () => {
    rquota = stubs.get(mode)!;
    channel = await connect({ transport, service: rquota.Rquotavers, retransmitMs: 200 });
    client = new rquota.RquotaversClient(channel, { timeoutMs: 10_000, auth: { stamp: 1, machinename: "rpcgen-ts-test", uid: 0, gid: 0, gids: [] } });
  });
  afterAll(async () => {
    await channel?.close();
  });

  it("AUTH_NONE is refused as too weak (AUTH_SYS is required)", async () => {
    const anonymous = new rquota.RquotaversClient(channel, { timeoutMs: 10_000 });
    const error = await anonymous.rquotaprocGetquota({ gqa_pathp: "/", gqa_uid: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect({ status: (error as RpcError).status, authStat: (error as RpcError).authStat }).toEqual({ status: "AUTH_ERROR", authStat: AuthStat.AUTH_TOOWEAK });
  });

  it("RQUOTAPROC_GETQUOTA and GETACTIVEQUOTA answer a well-formed getquota_rslt for each user", async () => {
    const statuses = new Set<number>();
    for (const uid of [0, 1000, 65534]) {
      for (const ask of [client.rquotaprocGetquota.bind(client), client.rquotaprocGetactivequota.bind(client)]) {
        const res = await ask({ gqa_pathp: "/", gqa_uid: uid });
        expect(Object.values(rquota.gqr_status)).toContain(res.status);
        if (res.status === rquota.gqr_status.Q_OK) {
          expect(res.gqr_rquota.rq_bsize).toBeGreaterThan(0);
          expect(typeof res.gqr_rquota.rq_active).toBe("boolean");
        } else {
          expect(Object.keys(res)).toEqual(["status"]); // a void arm: the status alone
        }
        statuses.add(res.status);
      }
    }
    // Where no filesystem mounts with quotas, everyone has none.
    if (!/\b(usr|grp|prj)?quota\b/.test(readFileSync("/proc/mounts", "utf8"))) expect([...statuses]).toEqual([rquota.gqr_status.Q_NOQUOTA]);
    else expect(statuses.size).toBe(1);
  });

  it("a path longer than RQ_PATHLEN is refused before it is sent", async () => {
    const error = await client.rquotaprocGetquota({ gqa_pathp: "/".repeat(rquota.RQ_PATHLEN + 1), gqa_uid: 0 }).catch((e: unknown) => e);
    expect((error as { status?: string }).status).toBe("CANNOT_ENCODE");
    expect(String(error)).toMatch(/gqa_pathp/);
    // The channel is still good.
    expect(Object.values(rquota.gqr_status)).toContain((await client.rquotaprocGetquota({ gqa_pathp: "/", gqa_uid: 0 })).status);
  });
});

describe("stopped by its PID", () => {
  it("exits on SIGTERM and leaves nothing registered with rpcbind", async () => {
    await rquotad!.stop();
    expect(rquotad!.running()).toBe(false);
    const { Rquotavers } = stubs.get("synthesized")!;
    for (const t of ["tcp", "udp"] as const) expect(await registered(Rquotavers, t)).toBe(false);
  });
});
