import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../../compiler/compile.js";
import { AuthStat, connect, RpcError, type AuthSysParams, type Channel } from "../../runtime/index.js";
import { clearRegistrations, exclusive, loadStubs, privateRun, program, registered, removeDir, repoRoot, requireRpcbind, startDaemon, startGanesha, tempDir, type Daemon, type Stubs } from "./harness.js";

/**
 * NFS version 3 and MOUNT version 3 (RFC 1813, idl/nfs3.x and idl/mount3.x) against
 * nfs-ganesha, a user-space NFS server, exporting a temporary directory through its VFS
 * backend on 127.0.0.1. Every procedure of both programs is called over TCP and UDP with the
 * stubs of every mode, each found through rpcbind; what the server did is checked on disk
 * (bytes, names, modes, times, links), and files created with AUTH_SYS credentials belong on
 * disk to the uid and gid those credentials name. ganesha's lock manager (NLM version 4,
 * test/daemons/idl/nlm4_prot.x; it needs rpc.statd, started first) takes and frees byte-range
 * locks that the kernel shows in /proc/locks.
 */

const NFS_PROGRAM = 100003;
const MOUNT_PROGRAM = 100005;
const NLM_PROG = 100021;
const SM_PROG = 100024;
const transports = ["tcp", "udp"] as const;

let dir: string;
let exportDir: string;
let ganesha: Daemon | undefined;
let statd: Daemon | undefined;
let release: (() => void) | undefined;
const stubs = new Map<Mode, { nfs: Stubs; mount: Stubs; nlm: Stubs }>();
/** A file written on disk before the server starts: READ must return its bytes. */
const seed = randomBytes(20_000);

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/bin/ganesha.nfsd", "nfs-ganesha");
  if (!readdirSync("/usr/lib").some((d) => existsSync(join("/usr/lib", d, "ganesha/libfsalvfs.so")))) {
    throw new Error("ganesha's VFS backend (libfsalvfs.so) is not installed (Debian package nfs-ganesha-vfs)");
  }
  const statdBinary = program("/usr/sbin/rpc.statd", "nfs-common");
  for (const mode of modes) {
    const loaded = await loadStubs([join(repoRoot, "idl/nfs3.x"), join(repoRoot, "idl/mount3.x")], mode);
    const nlm = (await loadStubs([join(repoRoot, "test/daemons/idl/nlm4_prot.x")], mode)).get("nlm4_prot")!;
    stubs.set(mode, { nfs: loaded.get("nfs3")!, mount: loaded.get("mount3")!, nlm });
  }
  const { nfs, mount, nlm } = stubs.get("synthesized")!;
  const sm = (await loadStubs(["/usr/include/rpcsvc/sm_inter.x"], "synthesized")).get("sm_inter")!;
  // statd.test.ts runs a statd and a lock manager's callback of its own: not at the same time.
  release = await exclusive("statd-nlm");
  await clearRegistrations(NFS_PROGRAM, "an NFS server");
  await clearRegistrations(MOUNT_PROGRAM, "a MOUNT server");
  await clearRegistrations(NLM_PROG, "a lock manager");
  await clearRegistrations(SM_PROG, "a status monitor (rpc.statd)");

  dir = tempDir("ganesha");
  // The lock manager asks statd to monitor its clients (SM_MON) before it grants their locks.
  const statdDir = join(dir, "statd");
  for (const d of ["", "sm", "sm.bak"]) mkdirSync(join(statdDir, d), { recursive: true });
  statd = await startDaemon({
    name: "rpc.statd",
    command: statdBinary,
    args: ["-F", "-d", "-L", "-P", statdDir],
    binds: privateRun(statdDir),
    ready: () => registered(sm.SmVers, "udp"),
  });
  exportDir = join(dir, "export");
  mkdirSync(exportDir);
  chmodSync(exportDir, 0o755);
  writeFileSync(join(exportDir, "seed.bin"), seed);
  ganesha = await startGanesha({
    binary,
    dir,
    exportDir,
    nlm: true,
    ready: async () =>
      (await registered(nfs.NfsV3, "tcp")) &&
      (await registered(nfs.NfsV3, "udp")) &&
      (await registered(mount.MountV3, "tcp")) &&
      (await registered(mount.MountV3, "udp")) &&
      (await registered(nlm.Nlm4Vers, "tcp")) &&
      (await registered(nlm.Nlm4Vers, "udp")),
  });
}, 180_000);

afterAll(async () => {
  await ganesha?.stop();
  await statd?.stop();
  release?.();
  if (dir !== undefined) removeDir(dir);
});

const root: AuthSysParams = { stamp: 1, machinename: "rpcgen-ts-test", uid: 0, gid: 0, gids: [] };
const user: AuthSysParams = { stamp: 2, machinename: "rpcgen-ts-test", uid: 4321, gid: 8765, gids: [8765, 100] };

/** The name of an enum value (`NFS3ERR_NOENT`), for messages. */
const nameIn = (e: Record<string, number>, v: number) => Object.keys(e).find((k) => e[k] === v) ?? String(v);

describe.each(modes.flatMap((mode) => transports.map((transport) => ({ mode, transport }))))("$mode stubs over $transport", ({ mode, transport }) => {
  let nfs: Stubs;
  let mount: Stubs;
  const channels: Channel[] = [];
  /** The NFS client, as root and as an ordinary user. */
  let asRoot: Stubs;
  let asUser: Stubs;
  let rootFh: { data: Uint8Array };
  const sub = `${mode}-${transport}`;

  const open = async (service: unknown) => {
    const channel = await connect({ transport, service: service as never, retransmitMs: 200 });
    channels.push(channel);
    return channel;
  };
  /** The resok arm of a result, or an error naming the nfsstat3. */
  const ok = (res: Stubs, what: string): Stubs => {
    if (res.status !== nfs.nfsstat3.NFS3_OK) throw new Error(`${what}: ${nameIn(nfs.nfsstat3, res.status)}`);
    return res.resok;
  };
  const sattr = (s: { mode?: number; uid?: number; gid?: number; size?: bigint; mtime?: { seconds: number; nseconds: number } }) => ({
    mode: s.mode === undefined ? { set_it: false } : { set_it: true, mode: s.mode },
    uid: s.uid === undefined ? { set_it: false } : { set_it: true, uid: s.uid },
    gid: s.gid === undefined ? { set_it: false } : { set_it: true, gid: s.gid },
    size: s.size === undefined ? { set_it: false } : { set_it: true, size: s.size },
    atime: { set_it: nfs.time_how.DONT_CHANGE },
    mtime: s.mtime === undefined ? { set_it: nfs.time_how.DONT_CHANGE } : { set_it: nfs.time_how.SET_TO_CLIENT_TIME, mtime: s.mtime },
  });
  const noAttrs = () => sattr({});
  const lookup = async (dirFh: { data: Uint8Array }, name: string) => ok(await asRoot.nfsproc3Lookup({ what: { dir: dirFh, name } }), `LOOKUP ${name}`).object;
  const handleOf = (obj: { handle_follows: boolean; handle?: { data: Uint8Array } }, what: string) => {
    if (!obj.handle_follows) throw new Error(`${what} returned no handle`);
    return obj.handle!;
  };
  const onDisk = (...parts: string[]) => join(exportDir, sub, ...parts);
  // UDP carries a READ or WRITE in one datagram.
  const chunk = transport === "udp" ? 8192 : 65536;

  beforeAll(async () => {
    ({ nfs, mount } = stubs.get(mode)!);
    asRoot = new nfs.NfsV3Client(await open(nfs.NfsV3), { auth: root, timeoutMs: 10_000 });
    asUser = new nfs.NfsV3Client(await open(nfs.NfsV3), { auth: user, timeoutMs: 10_000 });
  });

  afterAll(async () => {
    await Promise.allSettled(channels.map((c) => c.close()));
  });

  it("MOUNT v3: NULL, EXPORT lists the export, MNT gives its root handle, a missing path is refused, DUMP answers", async () => {
    const client = new mount.MountV3Client(await open(mount.MountV3), { auth: root, timeoutMs: 10_000 });
    await client.mountproc3Null();
    const exported: string[] = [];
    for (let e = await client.mountproc3Export(); e !== null; e = e.ex_next) exported.push(e.ex_dir);
    expect(exported).toContain(exportDir);

    const mnt = await client.mountproc3Mnt(exportDir);
    expect(nameIn(mount.mountstat3, mnt.fhs_status)).toBe("MNT3_OK");
    expect(mnt.mountinfo.fhandle.length).toBeGreaterThan(0);
    expect(mnt.mountinfo.fhandle.length).toBeLessThanOrEqual(mount.FHSIZE3);
    expect(mnt.mountinfo.auth_flavors).toContain(1); // AUTH_SYS, as the export says
    rootFh = { data: Uint8Array.from(mnt.mountinfo.fhandle) };

    const missing = await client.mountproc3Mnt(join(dir, "not-exported"));
    expect(missing.fhs_status).not.toBe(mount.mountstat3.MNT3_OK);
    expect(Object.values(mount.mountstat3)).toContain(missing.fhs_status);

    // DUMP is the server's idea of who mounted what (ganesha keeps none): a well-formed list.
    for (let m = await client.mountproc3Dump(); m !== null; m = m.ml_next) {
      expect(typeof m.ml_hostname).toBe("string");
      expect(typeof m.ml_directory).toBe("string");
    }
  });

  it("NULL, GETATTR, ACCESS, FSSTAT, FSINFO, PATHCONF of the export's root agree with the disk; AUTH_NONE is refused", async () => {
    await asRoot.nfsproc3Null();
    const attrs = ok(await asRoot.nfsproc3Getattr({ object: rootFh }), "GETATTR").obj_attributes;
    const st = statSync(exportDir, { bigint: true });
    expect(attrs.type).toBe(nfs.ftype3.NF3DIR);
    expect(attrs.fileid).toBe(st.ino);
    expect(attrs.mode & 0o7777).toBe(Number(st.mode & 0o7777n));
    expect(attrs.uid).toBe(Number(st.uid));
    expect(attrs.nlink).toBeGreaterThanOrEqual(2);

    // The export takes AUTH_SYS only (SecType = sys): an AUTH_NONE call is refused as too weak.
    const anonymous = new nfs.NfsV3Client(await open(nfs.NfsV3), { timeoutMs: 10_000 });
    const refused = await anonymous.nfsproc3Getattr({ object: rootFh }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RpcError);
    expect({ status: (refused as RpcError).status, authStat: (refused as RpcError).authStat }).toEqual({ status: "AUTH_ERROR", authStat: AuthStat.AUTH_TOOWEAK });

    const all = 0x3f;
    const access = ok(await asRoot.nfsproc3Access({ object: rootFh, access: all }), "ACCESS");
    expect(access.access & nfs.ACCESS3_LOOKUP).toBe(nfs.ACCESS3_LOOKUP);
    expect(access.access & nfs.ACCESS3_MODIFY).toBe(nfs.ACCESS3_MODIFY); // root, no root squash, read-write export
    // An ordinary user may look into the 0755 root but not change it.
    const userAccess = ok(await asUser.nfsproc3Access({ object: rootFh, access: all }), "ACCESS as user");
    expect(userAccess.access & nfs.ACCESS3_LOOKUP).toBe(nfs.ACCESS3_LOOKUP);
    expect(userAccess.access & nfs.ACCESS3_MODIFY).toBe(0);

    const fsstat = ok(await asRoot.nfsproc3Fsstat({ fsroot: rootFh }), "FSSTAT");
    const fs = statfsSync(exportDir, { bigint: true });
    expect(fsstat.tbytes).toBe(fs.blocks * fs.bsize);
    expect(fsstat.fbytes).toBeLessThanOrEqual(fsstat.tbytes);
    expect(fsstat.abytes).toBeLessThanOrEqual(fsstat.fbytes);

    const fsinfo = ok(await asRoot.nfsproc3Fsinfo({ fsroot: rootFh }), "FSINFO");
    expect(fsinfo.rtmax).toBeGreaterThanOrEqual(chunk);
    expect(fsinfo.wtmax).toBeGreaterThanOrEqual(chunk);
    expect(fsinfo.properties & nfs.FSF3_SYMLINK).toBe(nfs.FSF3_SYMLINK);
    expect(fsinfo.properties & nfs.FSF3_LINK).toBe(nfs.FSF3_LINK);
    expect(fsinfo.maxfilesize).toBeGreaterThan(0n);

    const pathconf = ok(await asRoot.nfsproc3Pathconf({ object: rootFh }), "PATHCONF");
    expect(pathconf.name_max).toBeGreaterThanOrEqual(255);
    expect(pathconf.case_preserving).toBe(true);
  });

  it("READ returns the bytes of a file written on disk, in pieces, with eof at the end", async () => {
    const fh = await lookup(rootFh, "seed.bin");
    const parts: Uint8Array[] = [];
    let offset = 0n;
    for (;;) {
      const r = ok(await asRoot.nfsproc3Read({ file: fh, offset, count: chunk }), "READ");
      parts.push(Uint8Array.from(r.data));
      expect(r.count).toBe(r.data.length);
      offset += BigInt(r.count);
      if (r.eof) break;
      expect(r.count).toBeGreaterThan(0);
    }
    expect(Buffer.concat(parts).equals(seed)).toBe(true);
    const tail = ok(await asRoot.nfsproc3Read({ file: fh, offset: 19_990n, count: 100 }), "READ tail");
    expect(Buffer.from(tail.data).equals(seed.subarray(19_990))).toBe(true);
    expect(tail.eof).toBe(true);
    expect(tail.file_attributes.attributes_follow && tail.file_attributes.attributes.size).toBe(20_000n);
  });

  it("NLM v4: LOCK holds a byte range of the file on disk (/proc/locks), TEST and LOCK of another owner are DENIED naming the holder, UNLOCK frees it; SHARE, UNSHARE, CANCEL, NM_LOCK", async () => {
    const { nlm: n } = stubs.get(mode)!;
    const nlm = new n.Nlm4VersClient(await open(n.Nlm4Vers), { auth: root, timeoutMs: 10_000 });
    await nlm.nlmproc4Null();
    const fh = await lookup(rootFh, "seed.bin");
    const ino = statSync(join(exportDir, "seed.bin")).ino;
    // The locks the kernel holds on the file: "… WRITE pid maj:min:inode start end".
    const held = () =>
      readFileSync("/proc/locks", "utf8")
        .split("\n")
        .filter((l) => l.includes(`:${ino} `))
        .map((l) => l.trim().split(/\s+/).slice(-2).join("-"));
    const owner = (svid: number) => Uint8Array.from(Buffer.from(`${sub}-owner-${svid}`));
    // caller_name is the host statd is asked to monitor: one that resolves.
    const alock = (svid: number, l_offset: bigint, l_len: bigint) => ({ caller_name: "localhost", fh: fh.data, oh: owner(svid), svid, l_offset, l_len });
    const cookie = Uint8Array.from(Buffer.from(sub));
    const stat = (res: Stubs) => nameIn(n.nlm4_stats, res.stat.stat);

    const locked = await nlm.nlmproc4Lock({ cookie, block: false, exclusive: true, alock: alock(1, 100n, 50n), reclaim: false, state: 1 });
    expect(stat(locked)).toBe("NLM4_GRANTED");
    expect(Buffer.from(locked.cookie).equals(cookie)).toBe(true);
    expect(held()).toEqual(["100-149"]);

    const tested = await nlm.nlmproc4Test({ cookie, exclusive: true, alock: alock(2, 120n, 10n) });
    expect(stat(tested)).toBe("NLM4_DENIED");
    expect({ ...tested.stat.holder, oh: Buffer.from(tested.stat.holder.oh).toString() }).toEqual({ exclusive: true, svid: 1, oh: Buffer.from(owner(1)).toString(), l_offset: 100n, l_len: 50n });
    const refused = await nlm.nlmproc4Lock({ cookie, block: false, exclusive: true, alock: alock(2, 120n, 10n), reclaim: false, state: 1 });
    expect(stat(refused)).toBe("NLM4_DENIED");
    // A range that does not overlap is free; its owner gets it too.
    expect(stat(await nlm.nlmproc4Lock({ cookie, block: false, exclusive: true, alock: alock(2, 200n, 1n), reclaim: false, state: 1 }))).toBe("NLM4_GRANTED");
    expect(held().sort()).toEqual(["100-149", "200-200"]);

    expect(stat(await nlm.nlmproc4Unlock({ cookie, alock: alock(1, 100n, 50n) }))).toBe("NLM4_GRANTED");
    expect(stat(await nlm.nlmproc4Unlock({ cookie, alock: alock(2, 200n, 1n) }))).toBe("NLM4_GRANTED");
    expect(held()).toEqual([]);
    expect(stat(await nlm.nlmproc4Test({ cookie, exclusive: true, alock: alock(2, 120n, 10n) }))).toBe("NLM4_GRANTED");

    // Share reservations, a CANCEL with nothing to cancel, and a lock of an unmonitored host.
    const share = { caller_name: "localhost", fh: fh.data, oh: owner(3), mode: n.fsh4_mode.fsm_DW, access: n.fsh4_access.fsa_R };
    expect(nameIn(n.nlm4_stats, (await nlm.nlmproc4Share({ cookie, share, reclaim: false })).stat)).toBe("NLM4_GRANTED");
    expect(nameIn(n.nlm4_stats, (await nlm.nlmproc4Unshare({ cookie, share, reclaim: false })).stat)).toBe("NLM4_GRANTED");
    expect(stat(await nlm.nlmproc4Cancel({ cookie, block: true, exclusive: true, alock: alock(4, 0n, 10n) }))).toBe("NLM4_GRANTED");
    // Length 0: to the end of the file, however far it grows.
    expect(stat(await nlm.nlmproc4NmLock({ cookie, block: false, exclusive: false, alock: alock(5, 300n, 0n), reclaim: false, state: 1 }))).toBe("NLM4_GRANTED");
    expect(held()).toEqual(["300-EOF"]);
    expect(stat(await nlm.nlmproc4Unlock({ cookie, alock: alock(5, 300n, 0n) }))).toBe("NLM4_GRANTED");
    expect(held()).toEqual([]);
  });

  it("MKDIR, CREATE as an AUTH_SYS user, WRITE, COMMIT, SETATTR: bytes, owner, mode, size and mtime on disk", async () => {
    // A directory everyone may write, so the ordinary user can create in it.
    const made = ok(await asRoot.nfsproc3Mkdir({ where: { dir: rootFh, name: sub }, attributes: sattr({ mode: 0o777 }) }), "MKDIR");
    const dirFh = handleOf(made.obj, "MKDIR");
    expect(statSync(onDisk()).isDirectory()).toBe(true);
    expect(statSync(onDisk()).mode & 0o777).toBe(0o777);
    expect(made.dir_wcc.after.attributes_follow).toBe(true);

    const created = ok(
      await asUser.nfsproc3Create({ where: { dir: dirFh, name: "data.bin" }, how: { mode: nfs.createmode3.GUARDED, obj_attributes: sattr({ mode: 0o640 }) } }),
      "CREATE",
    );
    const fh = handleOf(created.obj, "CREATE");
    const st = statSync(onDisk("data.bin"));
    expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual({ uid: user.uid, gid: user.gid, mode: 0o640 });
    // GUARDED refuses a name that exists.
    const again = await asUser.nfsproc3Create({ where: { dir: dirFh, name: "data.bin" }, how: { mode: nfs.createmode3.GUARDED, obj_attributes: noAttrs() } });
    expect(nameIn(nfs.nfsstat3, again.status)).toBe("NFS3ERR_EXIST");

    // WRITE in pieces, stable and not, then COMMIT the unstable ones.
    const data = randomBytes(3 * chunk + 123);
    let verf: Uint8Array | undefined;
    for (let offset = 0, i = 0; offset < data.length; offset += chunk, i++) {
      const piece = data.subarray(offset, Math.min(offset + chunk, data.length));
      const stable = i % 2 === 0 ? nfs.stable_how.FILE_SYNC : nfs.stable_how.UNSTABLE;
      const w = ok(await asUser.nfsproc3Write({ file: fh, offset: BigInt(offset), count: piece.length, stable, data: piece }), "WRITE");
      expect(w.count).toBe(piece.length);
      expect(w.committed).toBeGreaterThanOrEqual(stable);
      expect(w.verf.length).toBe(nfs.NFS3_WRITEVERFSIZE);
      verf ??= Uint8Array.from(w.verf);
      expect(Buffer.from(w.verf).equals(verf)).toBe(true); // the server did not restart
    }
    const commit = ok(await asUser.nfsproc3Commit({ file: fh, offset: 0n, count: 0 }), "COMMIT");
    expect(Buffer.from(commit.verf).equals(verf!)).toBe(true);
    expect(readFileSync(onDisk("data.bin")).equals(data)).toBe(true);

    // SETATTR: mode, size and mtime; a guard with a stale ctime is refused.
    const before = ok(await asUser.nfsproc3Getattr({ object: fh }), "GETATTR").obj_attributes;
    const mtime = { seconds: 1_000_000_000, nseconds: 0 };
    const set = await asUser.nfsproc3Setattr({
      object: fh,
      new_attributes: sattr({ mode: 0o600, size: 1000n, mtime }),
      guard: { check: true, obj_ctime: before.ctime },
    });
    ok(set, "SETATTR");
    const after = statSync(onDisk("data.bin"));
    expect({ mode: after.mode & 0o777, size: after.size, mtime: after.mtimeMs }).toEqual({ mode: 0o600, size: 1000, mtime: 1_000_000_000_000 });
    expect(readFileSync(onDisk("data.bin")).equals(data.subarray(0, 1000))).toBe(true);
    const stale = await asUser.nfsproc3Setattr({ object: fh, new_attributes: sattr({ mode: 0o644 }), guard: { check: true, obj_ctime: { seconds: 1, nseconds: 0 } } });
    expect(nameIn(nfs.nfsstat3, stale.status)).toBe("NFS3ERR_NOT_SYNC");
    expect(statSync(onDisk("data.bin")).mode & 0o777).toBe(0o600);

    // Root gives the file away: chown through SETATTR.
    ok(await asRoot.nfsproc3Setattr({ object: fh, new_attributes: sattr({ uid: 777, gid: 778 }), guard: { check: false } }), "SETATTR chown");
    expect({ uid: statSync(onDisk("data.bin")).uid, gid: statSync(onDisk("data.bin")).gid }).toEqual({ uid: 777, gid: 778 });
    // The user no longer owns it: its chmod is refused.
    const denied = await asUser.nfsproc3Setattr({ object: fh, new_attributes: sattr({ mode: 0o666 }), guard: { check: false } });
    expect(nameIn(nfs.nfsstat3, denied.status)).toBe("NFS3ERR_PERM");

    // An EXCLUSIVE create keeps its verifier: sending it again succeeds with the same file.
    const verifier = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const excl = ok(await asUser.nfsproc3Create({ where: { dir: dirFh, name: "excl" }, how: { mode: nfs.createmode3.EXCLUSIVE, verf: verifier } }), "CREATE EXCLUSIVE");
    const replay = ok(await asUser.nfsproc3Create({ where: { dir: dirFh, name: "excl" }, how: { mode: nfs.createmode3.EXCLUSIVE, verf: verifier } }), "CREATE EXCLUSIVE again");
    expect(Buffer.from(handleOf(replay.obj, "CREATE").data).equals(Buffer.from(handleOf(excl.obj, "CREATE").data))).toBe(true);
    expect(statSync(onDisk("excl")).uid).toBe(user.uid);
  });

  it("LOOKUP, SYMLINK, READLINK, MKNOD, LINK, RENAME: names, targets and links on disk", async () => {
    const dirFh = await lookup(rootFh, sub);
    const missing = await asRoot.nfsproc3Lookup({ what: { dir: dirFh, name: "no-such-name" } });
    expect(nameIn(nfs.nfsstat3, missing.status)).toBe("NFS3ERR_NOENT");
    expect(missing.resfail.dir_attributes.attributes_follow).toBe(true);

    const sym = ok(
      await asUser.nfsproc3Symlink({ where: { dir: dirFh, name: "link" }, symlink: { symlink_attributes: noAttrs(), symlink_data: "data.bin" } }),
      "SYMLINK",
    );
    expect(readlinkSync(onDisk("link"))).toBe("data.bin");
    expect(lstatSync(onDisk("link")).uid).toBe(user.uid);
    const target = ok(await asUser.nfsproc3Readlink({ symlink: handleOf(sym.obj, "SYMLINK") }), "READLINK");
    expect(target.data).toBe("data.bin");

    ok(
      await asRoot.nfsproc3Mknod({ where: { dir: dirFh, name: "fifo" }, what: { type: nfs.ftype3.NF3FIFO, pipe_attributes: sattr({ mode: 0o620 }) } }),
      "MKNOD",
    );
    expect(lstatSync(onDisk("fifo")).isFIFO()).toBe(true);
    expect(lstatSync(onDisk("fifo")).mode & 0o777).toBe(0o620);
    // A regular file is not MKNOD's to make.
    const bad = await asRoot.nfsproc3Mknod({ where: { dir: dirFh, name: "reg" }, what: { type: nfs.ftype3.NF3REG } });
    expect(nameIn(nfs.nfsstat3, bad.status)).toBe("NFS3ERR_BADTYPE");

    const fh = await lookup(dirFh, "data.bin");
    const linked = ok(await asRoot.nfsproc3Link({ file: fh, link: { dir: dirFh, name: "hard" } }), "LINK");
    expect(linked.file_attributes.attributes_follow && linked.file_attributes.attributes.nlink).toBe(2);
    expect(statSync(onDisk("hard")).ino).toBe(statSync(onDisk("data.bin")).ino);
    expect(statSync(onDisk("data.bin")).nlink).toBe(2);

    ok(await asRoot.nfsproc3Rename({ from: { dir: dirFh, name: "hard" }, to: { dir: rootFh, name: `${sub}-renamed` } }), "RENAME");
    expect(existsSync(onDisk("hard"))).toBe(false);
    expect(statSync(join(exportDir, `${sub}-renamed`)).ino).toBe(statSync(onDisk("data.bin")).ino);
  });

  it("READDIR and READDIRPLUS list the directory on disk, page by page with cookies", async () => {
    const dirFh = await lookup(rootFh, sub);
    // Enough names that a small count needs several pages.
    for (let i = 0; i < 40; i++) {
      ok(await asRoot.nfsproc3Create({ where: { dir: dirFh, name: `f${i}` }, how: { mode: nfs.createmode3.UNCHECKED, obj_attributes: noAttrs() } }), `CREATE f${i}`);
    }
    const expected = [...readdirSync(onDisk()), ".", ".."].sort();

    const names: string[] = [];
    const fileids: Record<string, bigint> = {};
    let cookie = 0n;
    let cookieverf = new Uint8Array(nfs.NFS3_COOKIEVERFSIZE);
    let pages = 0;
    for (let eof = false; !eof; pages++) {
      const r = ok(await asRoot.nfsproc3Readdir({ dir: dirFh, cookie, cookieverf, count: 512 }), "READDIR");
      for (let e = r.reply.entries; e !== null; e = e.nextentry) {
        names.push(e.name);
        cookie = e.cookie;
        if (e.name !== "." && e.name !== "..") fileids[e.name] = e.fileid;
      }
      cookieverf = Uint8Array.from(r.cookieverf);
      eof = r.reply.eof;
      expect(pages).toBeLessThan(100);
    }
    expect(pages).toBeGreaterThan(1);
    expect(names.sort()).toEqual(expected);
    expect(fileids).toEqual(Object.fromEntries(Object.keys(fileids).map((name) => [name, lstatSync(onDisk(name), { bigint: true }).ino])));

    const plus: string[] = [];
    cookie = 0n;
    cookieverf = new Uint8Array(nfs.NFS3_COOKIEVERFSIZE);
    for (let eof = false, guard = 0; !eof; guard++) {
      const r = ok(await asRoot.nfsproc3Readdirplus({ dir: dirFh, cookie, cookieverf, dircount: 512, maxcount: 4096 }), "READDIRPLUS");
      for (let e = r.reply.entries; e !== null; e = e.nextentry) {
        plus.push(e.name);
        cookie = e.cookie;
        if (e.name === "data.bin") {
          expect(e.name_attributes.attributes_follow).toBe(true);
          expect(e.name_attributes.attributes.size).toBe(1000n);
          expect(e.name_attributes.attributes.uid).toBe(777);
          // The handle it carries is the file's: GETATTR through it names the same file.
          const got = ok(await asRoot.nfsproc3Getattr({ object: handleOf(e.name_handle, "READDIRPLUS") }), "GETATTR").obj_attributes;
          expect(got.fileid).toBe(statSync(onDisk("data.bin"), { bigint: true }).ino);
        }
      }
      cookieverf = Uint8Array.from(r.cookieverf);
      eof = r.reply.eof;
      expect(guard).toBeLessThan(100);
    }
    expect(plus.sort()).toEqual(expected);
  });

  it("REMOVE and RMDIR take files and directories off the disk; RMDIR of a full one is refused", async () => {
    const dirFh = await lookup(rootFh, sub);
    const full = await asRoot.nfsproc3Rmdir({ object: { dir: rootFh, name: sub } });
    expect(nameIn(nfs.nfsstat3, full.status)).toBe("NFS3ERR_NOTEMPTY");
    for (const name of readdirSync(onDisk())) ok(await asRoot.nfsproc3Remove({ object: { dir: dirFh, name } }), `REMOVE ${name}`);
    expect(readdirSync(onDisk())).toEqual([]);
    ok(await asRoot.nfsproc3Remove({ object: { dir: rootFh, name: `${sub}-renamed` } }), "REMOVE renamed");
    const removed = ok(await asRoot.nfsproc3Rmdir({ object: { dir: rootFh, name: sub } }), "RMDIR");
    expect(removed.dir_wcc.after.attributes_follow).toBe(true);
    expect(existsSync(onDisk())).toBe(false);
    expect(existsSync(join(exportDir, `${sub}-renamed`))).toBe(false);
    // The handle of a removed directory is stale.
    const stale = await asRoot.nfsproc3Getattr({ object: dirFh });
    expect(["NFS3ERR_STALE", "NFS3ERR_BADHANDLE"]).toContain(nameIn(nfs.nfsstat3, stale.status));
  });

  it("MOUNT v3: UMNT and UMNTALL answer", async () => {
    const client = new mount.MountV3Client(await open(mount.MountV3), { auth: root, timeoutMs: 10_000 });
    expect(await client.mountproc3Umnt(exportDir)).toBeUndefined();
    expect(await client.mountproc3Umntall()).toBeUndefined();
    // The server still serves: the unmount dropped no state a handle needs (NFS is stateless).
    ok(await asRoot.nfsproc3Getattr({ object: rootFh }), "GETATTR after UMNT");
  });
});

describe("stopped by its PID", () => {
  it("exits on SIGTERM and leaves nothing registered with rpcbind", async () => {
    await ganesha!.stop();
    expect(ganesha!.running()).toBe(false);
    await statd!.stop();
    expect(statd!.running()).toBe(false);
    const { nfs, mount, nlm } = stubs.get("synthesized")!;
    for (const service of [nfs.NfsV3, mount.MountV3, nlm.Nlm4Vers]) for (const t of ["tcp", "udp"] as const) expect(await registered(service, t)).toBe(false);
  });
});
