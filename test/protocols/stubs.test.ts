import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { connect, fromXdr, toXdr, type Channel } from "@rpcgen-ts/runtime";
import { removeDir, repoRoot, requireRpcbind, tempDir } from "../daemons/harness.js";
import { protocolsBuilt, protocolsDir } from "./built.js";

/**
 * The stubs @rpcgen-ts/protocols ships: generated from its own idl/ and committed (stale ones
 * fail here), its copies of the system's .x files the same as the system's, every subpath
 * loading from the build and describing the programs its .x file declares, and the rpcbind and
 * portmap clients asking the real rpcbind.
 */

/** The package's .x files: a copy of the system's, or of the project's own. */
const copies: Readonly<Record<string, string>> = {
  "mount.x": "/usr/include/rpcsvc/mount.x",
  "nlm_prot.x": "/usr/include/rpcsvc/nlm_prot.x",
  "sm_inter.x": "/usr/include/rpcsvc/sm_inter.x",
  "rquota.x": "/usr/include/rpcsvc/rquota.x",
  "rstat.x": "/usr/include/rpcsvc/rstat.x",
  "rusers.x": "/usr/include/rpcsvc/rusers.x",
  "yp.x": "/usr/include/rpcsvc/yp.x",
  "rpcb_prot.x": "/usr/include/tirpc/rpc/rpcb_prot.x",
  "nfs3.x": join(repoRoot, "idl/nfs3.x"),
  "mount3.x": join(repoRoot, "idl/mount3.x"),
  "pmap_prot.x": join(repoRoot, "idl/pmap_prot.x"),
  "nlm4_prot.x": join(repoRoot, "test/daemons/idl/nlm4_prot.x"),
};

/** The .x files whose stubs are the runtime's (`@rpcgen-ts/runtime/rpcbind`, `/portmap`), re-exported rather than generated again. */
const runtimeStubs = new Set(["rpcb_prot.x", "pmap_prot.x"]);

/** Each subpath's programs, as "NAME:program/version". */
const subpaths: Readonly<Record<string, readonly string[]>> = {
  nfs3: ["NFS_V3:100003/3"],
  mount3: ["MOUNT_V3:100005/3"],
  mount: ["MOUNTVERS:100005/1"],
  nlm4: ["NLM4_VERS:100021/4"],
  nlm: ["NLM_VERS:100021/1", "NLM_VERSX:100021/3"],
  nsm: ["SM_VERS:100024/1"],
  rquota: ["RQUOTAVERS:100011/1"],
  rstat: ["RSTATVERS_ORIG:100001/1", "RSTATVERS_SWTCH:100001/2", "RSTATVERS_TIME:100001/3"],
  rusers: ["RUSERSVERS_3:100002/3"],
  yp: ["YPBINDVERS:100007/2", "YPPUSH_XFRRESPVERS:1073741824/1", "YPVERS:100004/2"],
  rpcbind: ["RPCBVERS4:100000/4", "RPCBVERS:100000/3"],
  portmap: ["PMAP_VERS:100000/2"],
};

/** Each subpath's import, spelt out: an application names them so, and a bundler sees them. */
const loaders: Readonly<Record<string, () => Promise<object>>> = {
  nfs3: () => import("@rpcgen-ts/protocols/nfs3"),
  mount3: () => import("@rpcgen-ts/protocols/mount3"),
  mount: () => import("@rpcgen-ts/protocols/mount"),
  nlm4: () => import("@rpcgen-ts/protocols/nlm4"),
  nlm: () => import("@rpcgen-ts/protocols/nlm"),
  nsm: () => import("@rpcgen-ts/protocols/nsm"),
  rquota: () => import("@rpcgen-ts/protocols/rquota"),
  rstat: () => import("@rpcgen-ts/protocols/rstat"),
  rusers: () => import("@rpcgen-ts/protocols/rusers"),
  yp: () => import("@rpcgen-ts/protocols/yp"),
  rpcbind: () => import("@rpcgen-ts/protocols/rpcbind"),
  portmap: () => import("@rpcgen-ts/protocols/portmap"),
};

beforeAll(async () => {
  await protocolsBuilt();
}, 180_000);

describe("the generated stubs", () => {
  it("are what the compiler makes of idl/ today (run `npm run generate --workspace protocols`)", () => {
    const out = tempDir("protocols-gen");
    try {
      execFileSync(process.execPath, [join(protocolsDir, "scripts/generate.mjs"), "--out", out], { stdio: "pipe", timeout: 120_000 });
      const generated = readdirSync(out).sort();
      expect(generated).toEqual(readdirSync(join(protocolsDir, "src/gen")).sort());
      expect(generated).toEqual(
        Object.keys(copies)
          .filter((x) => !runtimeStubs.has(x))
          .map((x) => x.replace(/\.x$/, ".ts"))
          .sort(),
      );
      for (const name of generated) {
        expect(readFileSync(join(protocolsDir, "src/gen", name), "utf8"), `protocols/src/gen/${name} is stale`).toBe(readFileSync(join(out, name), "utf8"));
      }
    } finally {
      removeDir(out);
    }
  });

  it("come from copies of the system's and the project's .x files, unchanged", () => {
    expect(readdirSync(join(protocolsDir, "idl")).sort()).toEqual(Object.keys(copies).sort());
    const missing: string[] = [];
    for (const [name, source] of Object.entries(copies)) {
      if (!existsSync(source)) {
        missing.push(source);
        continue;
      }
      expect(readFileSync(join(protocolsDir, "idl", name), "utf8"), `protocols/idl/${name} differs from ${source}`).toBe(readFileSync(source, "utf8"));
    }
    expect(missing, "system .x files (Debian packages rpcsvc-proto, libnsl-dev, libtirpc-dev)").toEqual([]);
  });

  it.each(Object.keys(subpaths))("@rpcgen-ts/protocols/%s loads from the build and describes its programs", async (subpath) => {
    const m = (await loaders[subpath]!()) as Record<string, unknown>;
    const services = Object.values(m)
      .filter((v): v is { name: string; program: number; version: number } => typeof v === "object" && v !== null && "procedures" in v && "program" in v)
      .map((s) => `${s.name}:${s.program}/${s.version}`)
      .sort();
    expect(services).toEqual(subpaths[subpath]);
  });

  it("rpcbind and portmap are the runtime's stubs, the very objects its binding uses: one copy", async () => {
    const [ours, theirs] = [await import("@rpcgen-ts/protocols/rpcbind"), await import("@rpcgen-ts/runtime/rpcbind")];
    expect(ours.Rpcbvers4).toBe(theirs.Rpcbvers4);
    expect(ours.Rpcbvers4Client).toBe(theirs.Rpcbvers4Client);
    const [pmap, runtimePmap] = [await import("@rpcgen-ts/protocols/portmap"), await import("@rpcgen-ts/runtime/portmap")];
    expect(pmap.PmapVers).toBe(runtimePmap.PmapVers);
    expect(existsSync(join(protocolsDir, "src/gen/rpcb_prot.ts"))).toBe(false);
  });

  it("nfs3's set_mode3, set_uid3, set_gid3 and set_size3 (bool unions with a void default) round-trip both arms", async () => {
    const nfs3 = await import("@rpcgen-ts/protocols/nfs3");
    const cases = [
      [nfs3.set_mode3Codec, { set_it: true, mode: 0o4755 }],
      [nfs3.set_uid3Codec, { set_it: true, uid: 4321 }],
      [nfs3.set_gid3Codec, { set_it: true, gid: 8765 }],
      [nfs3.set_size3Codec, { set_it: true, size: 2n ** 40n }],
    ] as const;
    for (const [codec, set] of cases) {
      const c = codec as Parameters<typeof toXdr>[0];
      expect(fromXdr(c, toXdr(c, set))).toEqual(set);
      expect(toXdr(c, { set_it: false })).toEqual(new Uint8Array(4));
      expect(fromXdr(c, new Uint8Array(4))).toEqual({ set_it: false });
    }
    // A whole sattr3 as a SETATTR would send it.
    const sattr = {
      mode: { set_it: true, mode: 0o600 },
      uid: { set_it: false },
      gid: { set_it: true, gid: 7 },
      size: { set_it: true, size: 0n },
      atime: { set_it: nfs3.time_how.SET_TO_SERVER_TIME },
      mtime: { set_it: nfs3.time_how.SET_TO_CLIENT_TIME, mtime: { seconds: 1, nseconds: 2 } },
    } as const;
    expect(fromXdr(nfs3.sattr3Codec, toXdr(nfs3.sattr3Codec, sattr))).toEqual(sattr);
  });
});

describe("the rpcbind and portmap clients, against the rpcbind on 127.0.0.1", () => {
  it("RPCBPROC_GETADDR (v4 and v3) and PMAPPROC_GETPORT find rpcbind itself; DUMP lists it", async () => {
    requireRpcbind();
    const { Rpcbvers4Client, RpcbversClient } = await import("@rpcgen-ts/protocols/rpcbind");
    const { PmapVersClient } = await import("@rpcgen-ts/protocols/portmap");
    const channels: Channel[] = [];
    try {
      const tcp = await connect({ transport: "tcp", host: "127.0.0.1", port: 111 });
      const udp = await connect({ transport: "udp", host: "127.0.0.1", port: 111 });
      channels.push(tcp, udp);
      for (const channel of channels) {
        const v4 = new Rpcbvers4Client(channel, { timeoutMs: 10_000 });
        const v3 = new RpcbversClient(channel, { timeoutMs: 10_000 });
        const pmap = new PmapVersClient(channel, { timeoutMs: 10_000 });
        const query = { r_prog: 100000, r_vers: 4, r_netid: "tcp", r_addr: "", r_owner: "" };
        expect(await v4.rpcbprocGetaddr(query)).toMatch(/^[\d.]+\.0\.111$/);
        expect(await v3.rpcbprocGetaddr({ ...query, r_vers: 3 })).toMatch(/^[\d.]+\.0\.111$/);
        expect(await pmap.pmapprocGetport({ prog: 100000, vers: 2, prot: 17, port: 0 })).toBe(111);
        const dumped: string[] = [];
        for (let e = await v4.rpcbprocDump(); e !== null; e = e.rpcb_next) dumped.push(`${e.rpcb_map.r_prog}/${e.rpcb_map.r_vers}/${e.rpcb_map.r_netid}`);
        expect(dumped).toEqual(expect.arrayContaining(["100000/4/tcp", "100000/3/udp", "100000/2/tcp"]));
        const mapped: string[] = [];
        for (let e = await pmap.pmapprocDump(); e !== null; e = e.next) mapped.push(`${e.map.prog}/${e.map.vers}/${e.map.prot}/${e.map.port}`);
        expect(mapped).toEqual(expect.arrayContaining(["100000/2/6/111", "100000/2/17/111"]));
      }
    } finally {
      await Promise.all(channels.map((c) => c.close()));
    }
  });
});
