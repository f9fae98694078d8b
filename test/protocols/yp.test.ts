import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, RpcError, type Channel, type ServiceDescription } from "@rpcgen-ts/runtime";
import { clearRegistrations, exclusive, privateRun, program, removeDir, requireRpcbind, startDaemon, tempDir, type Daemon } from "../daemons/harness.js";
import { protocolsBuilt } from "./built.js";

/**
 * @rpcgen-ts/protocols/yp against ypserv: the shipped client's `ypprocAll` reads YPPROC_ALL's
 * streamed reply whole (the generated method alone refuses it), with a map large enough that
 * the stream spans many TCP segments, and reports a map ypserv cannot read by its stat. The
 * maps are built by makedbm from lines the test writes, in a /var/yp and NIS domain of the
 * daemon's own (mount and UTS namespaces), as in test/daemons/ypserv.test.ts.
 */

type Yp = typeof import("@rpcgen-ts/protocols/yp");

const YPPROG = 100004;
const domain = "protocols.test";
const mapName = "hosts.byname";
/** Enough entries (about 300 KiB) that the reply is read in many pieces. */
const entries = new Map(Array.from({ length: 3000 }, (_, i) => [`host-${i}`, `10.${(i >> 8) & 255}.${i & 255}.1\thost-${i} ${"alias-".repeat(i % 20)}${i}`]));

let yp: Yp;
let dir: string;
let ypserv: Daemon | undefined;
let release: (() => void) | undefined;
const exec = promisify(execFile);

async function registered(service: ServiceDescription, transport: "tcp" | "udp"): Promise<boolean> {
  const channel = await connect({ transport, service }).catch(() => undefined);
  await channel?.close();
  return channel !== undefined;
}

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/sbin/ypserv", "ypserv");
  const makedbm = program("/usr/lib/yp/makedbm", "ypserv");
  await protocolsBuilt();
  yp = await import("@rpcgen-ts/protocols/yp");
  // test/daemons/ypserv.test.ts runs a ypserv of its own: not at the same time.
  release = await exclusive("ypserv");
  await clearRegistrations(YPPROG, "ypserv");
  dir = tempDir("protocols-yp");
  const varYp = join(dir, "yp");
  mkdirSync(join(varYp, domain), { recursive: true });
  writeFileSync(join(varYp, "securenets"), "255.0.0.0\t127.0.0.0\n");
  const input = join(dir, "hosts.txt");
  writeFileSync(input, [...entries].map(([k, v]) => `${k}\t${v}\n`).join(""));
  await exec(makedbm, [input, join(varYp, domain, mapName)], { timeout: 20_000 });
  ypserv = await startDaemon({
    name: "ypserv",
    command: binary,
    args: ["-f"],
    binds: [...privateRun(dir), [varYp, "/var/yp"]],
    domain,
    ready: async () => (await registered(yp.Ypvers, "tcp")) && (await registered(yp.Ypvers, "udp")),
  });
}, 60_000);

afterAll(async () => {
  await ypserv?.stop();
  release?.();
  if (dir !== undefined) removeDir(dir);
});

describe("ypprocAll of @rpcgen-ts/protocols/yp", () => {
  let channel: Channel;
  beforeAll(async () => {
    channel = await connect({ transport: "tcp", service: yp.Ypvers });
  });
  afterAll(async () => {
    await channel?.close();
  });

  it("reads every entry of the stream, where the generated method refuses it", async () => {
    const plain = await new yp.YpversClient(channel, { timeoutMs: 10_000 }).ypprocAll({ domain, map: mapName }).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(RpcError);
    expect((plain as RpcError).status).toBe("CANNOT_DECODE");

    const items = await yp.ypprocAll(channel, { domain, map: mapName }, undefined, { timeoutMs: 10_000 });
    const all = new Map<string, string>();
    for (const item of items) {
      expect(item.stat).toBe(yp.ypstat.YP_TRUE);
      const key = Buffer.from(item.key).toString("latin1");
      expect(all.has(key)).toBe(false);
      all.set(key, Buffer.from(item.val).toString("latin1"));
    }
    expect(all).toEqual(entries);
  });

  it("a map or domain ypserv does not serve: the one item's stat says why", async () => {
    const noMap = await yp.ypprocAll(channel, { domain, map: "no.such.map" });
    expect(noMap.map((i) => i.stat)).toEqual([yp.ypstat.YP_NOMAP]);
    const noDomain = await yp.ypprocAll(channel, { domain: "not.served", map: mapName });
    expect(noDomain.map((i) => i.stat)).toEqual([yp.ypstat.YP_NODOM]);
  });

  it("YPPROC_MATCH through the same package agrees with the stream", async () => {
    const client = new yp.YpversClient(channel, { timeoutMs: 10_000 });
    const res = await client.ypprocMatch({ domain, map: mapName, key: Buffer.from("host-2999") });
    expect(res.stat).toBe(yp.ypstat.YP_TRUE);
    expect(Buffer.from(res.val).toString("latin1")).toBe(entries.get("host-2999"));
  });
});
