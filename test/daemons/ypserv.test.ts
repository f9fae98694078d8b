import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../../compiler/compile.js";
import { connect, RpcError, type Channel } from "../../runtime/index.js";
import { clearRegistrations, exclusive, loadStubs, privateRun, program, registered, removeDir, requireRpcbind, startDaemon, tempDir, type Daemon, type Stubs } from "./harness.js";

/**
 * NIS against ypserv with the system's yp.x, over TCP and UDP in every mode. The test writes
 * the maps itself: a domain directory with a map built by makedbm from lines it wrote, and a
 * securenets that admits loopback only, bind-mounted over /var/yp in the daemon's own mount
 * namespace; the NIS domain name is set in a UTS namespace of its own, so the machine's is
 * untouched. ypserv runs in the foreground (-f).
 *
 * YPPROC_ALL streams: its reply is a sequence of ypresp_all (more = TRUE and an entry, ...,
 * then more = FALSE) in one record, where yp.x declares a single ypresp_all. The generated
 * client therefore reads the first entry and refuses the rest as trailing bytes; the test reads
 * the whole stream through the channel with a codec that decodes the generated ypresp_all
 * until more is FALSE, as libnsl's xdr_ypall does.
 */

const YPPROG = 100004;
const domain = "rpcgents.test";
const mapName = "users.byname";
const master = "master.rpcgents.test";
/** The map's entries, as the test writes them for makedbm. */
const entries: Record<string, string> = {
  alice: "alice:x:1001:1001:Alice:/home/alice:/bin/sh",
  bob: "bob:x:1002:1002:Bob:/home/bob:/bin/bash",
  carol: "carol:x:1003:1003:Carol, room 12:/home/carol:/bin/sh",
};

let dir: string;
let ypserv: Daemon | undefined;
let release: (() => void) | undefined;
const stubs = new Map<Mode, Stubs>();
const exec = promisify(execFile);

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/sbin/ypserv", "ypserv");
  const makedbm = program("/usr/lib/yp/makedbm", "ypserv");
  for (const mode of modes) stubs.set(mode, (await loadStubs(["/usr/include/rpcsvc/yp.x"], mode)).get("yp")!);
  // test/protocols/yp.test.ts runs a ypserv of its own: not at the same time.
  release = await exclusive("ypserv");
  await clearRegistrations(YPPROG, "ypserv");
  dir = tempDir("ypserv");
  const yp = join(dir, "yp");
  mkdirSync(join(yp, domain), { recursive: true });
  writeFileSync(join(yp, "securenets"), "255.0.0.0\t127.0.0.0\n");
  const input = join(dir, "users.txt");
  writeFileSync(input, Object.entries(entries).map(([k, v]) => `${k}\t${v}\n`).join(""));
  await exec(makedbm, ["-m", master, input, join(yp, domain, mapName)], { timeout: 20_000 });
  const service = stubs.get("synthesized")!.Ypvers;
  ypserv = await startDaemon({
    name: "ypserv",
    command: binary,
    args: ["-f"],
    binds: [...privateRun(dir), [yp, "/var/yp"]],
    domain,
    ready: async () => (await registered(service, "tcp")) && (await registered(service, "udp")),
  });
}, 60_000);

afterAll(async () => {
  await ypserv?.stop();
  release?.();
  if (dir !== undefined) removeDir(dir);
});

const text = (b: Uint8Array) => Buffer.from(b).toString("latin1");
const bytes = (s: string) => Uint8Array.from(Buffer.from(s, "latin1"));

describe.each(modes.flatMap((mode) => (["tcp", "udp"] as const).map((transport) => ({ mode, transport }))))("$mode stubs over $transport", ({ mode, transport }) => {
  let yp: Stubs;
  let channel: Channel;
  let client: Stubs;

  beforeAll(async () => {
    yp = stubs.get(mode)!;
    channel = await connect({ transport, service: yp.Ypvers, retransmitMs: 200 });
    client = new yp.YpversClient(channel, { timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await channel?.close();
  });

  it("YPPROC_NULL, YPPROC_DOMAIN: serves the test's domain and no other", async () => {
    await client.ypprocNull();
    expect(await client.ypprocDomain(domain)).toBe(true);
    expect(await client.ypprocDomain("not.served")).toBe(false);
  });

  it("YPPROC_MATCH finds each entry makedbm wrote, and says NOKEY, NOMAP, NODOM for what is not there", async () => {
    for (const [key, value] of Object.entries(entries)) {
      const res = await client.ypprocMatch({ domain, map: mapName, key: bytes(key) });
      expect({ stat: res.stat, val: text(res.val) }).toEqual({ stat: yp.ypstat.YP_TRUE, val: value });
    }
    expect((await client.ypprocMatch({ domain, map: mapName, key: bytes("mallory") })).stat).toBe(yp.ypstat.YP_NOKEY);
    expect((await client.ypprocMatch({ domain, map: "no.such.map", key: bytes("alice") })).stat).toBe(yp.ypstat.YP_NOMAP);
    expect((await client.ypprocMatch({ domain: "not.served", map: mapName, key: bytes("alice") })).stat).toBe(yp.ypstat.YP_NODOM);
  });

  it("YPPROC_FIRST and YPPROC_NEXT walk every entry once", async () => {
    // glibc's yp.x gives FIRST a ypreq_key where Sun's has a ypreq_nokey: the empty key is
    // trailing data that ypserv, like every C server, ignores.
    const seen: Record<string, string> = {};
    let res = await client.ypprocFirst({ domain, map: mapName, key: new Uint8Array(0) });
    for (let guard = 0; res.stat === yp.ypstat.YP_TRUE; guard++) {
      expect(guard).toBeLessThan(100);
      seen[text(res.key)] = text(res.val);
      res = await client.ypprocNext({ domain, map: mapName, key: res.key });
    }
    expect(res.stat).toBe(yp.ypstat.YP_NOMORE);
    expect(seen).toEqual(entries);
  });

  it("YPPROC_MASTER, YPPROC_ORDER, YPPROC_MAPLIST describe the map as makedbm built it", async () => {
    const m = await client.ypprocMaster({ domain, map: mapName });
    expect({ stat: m.stat, peer: m.peer }).toEqual({ stat: yp.ypstat.YP_TRUE, peer: master });
    const o = await client.ypprocOrder({ domain, map: mapName });
    expect(o.stat).toBe(yp.ypstat.YP_TRUE);
    expect(Math.abs(o.ordernum - Date.now() / 1000)).toBeLessThan(600); // YP_LAST_MODIFIED: when makedbm ran
    const list = await client.ypprocMaplist(domain);
    expect(list.stat).toBe(yp.ypstat.YP_TRUE);
    const maps: string[] = [];
    for (let m = list.maps; m !== null; m = m.next) maps.push(m.map);
    expect(maps).toEqual([mapName]);
  });
});

// YPPROC_ALL is a TCP procedure: a map's whole contents do not fit a datagram.
describe.each(modes)("%s stubs over tcp: YPPROC_ALL", (mode) => {
  let yp: Stubs;
  let channel: Channel;
  let client: Stubs;

  beforeAll(async () => {
    yp = stubs.get(mode)!;
    channel = await connect({ transport: "tcp", service: yp.Ypvers });
    client = new yp.YpversClient(channel, { timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await channel?.close();
  });

  it("YPPROC_ALL streams every entry; the generated client alone refuses the stream", async () => {
    const plain = await client.ypprocAll({ domain, map: mapName }).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(RpcError);
    expect((plain as RpcError).status).toBe("CANNOT_DECODE");
    expect((plain as RpcError).message).toMatch(/^RPC CANNOT_DECODE: decode YPPROC_ALL at byte \d+: \d+ trailing bytes$/);

    const one: Stubs = yp.ypresp_allCodec;
    const stream = {
      name: "ypresp_all stream",
      min: one.min,
      max: undefined,
      encode: () => {
        throw new Error("results are only decoded");
      },
      decode: (r: Stubs) => {
        const items: Stubs[] = [];
        for (let item = one.decode(r); item.more; item = one.decode(r)) items.push(item.val);
        return items;
      },
    };
    const procedure = { ...yp.Ypvers.procedures.ypprocAll, result: stream };
    const items = (await channel.call(yp.Ypvers, procedure, { domain, map: mapName }, { timeoutMs: 10_000 }, undefined)) as Stubs[];
    const all: Record<string, string> = {};
    for (const item of items) {
      expect(item.stat).toBe(yp.ypstat.YP_TRUE);
      all[text(item.key)] = text(item.val);
    }
    expect(all).toEqual(entries);
  });
});

describe("stopped by its PID", () => {
  it("exits on SIGTERM and leaves nothing registered with rpcbind", async () => {
    await ypserv!.stop();
    expect(ypserv!.running()).toBe(false);
    const { Ypvers } = stubs.get("synthesized")!;
    for (const t of ["tcp", "udp"] as const) expect(await registered(Ypvers, t)).toBe(false);
  });
});
