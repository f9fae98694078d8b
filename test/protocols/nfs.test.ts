import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The runtime by its package name, as the package sees it (its types are the build's).
import { connect, type CallRecord, type Channel, type ServiceDescription } from "@rpcgen-ts/runtime";
import { clearRegistrations, exclusive, program, removeDir, requireRpcbind, startGanesha, tempDir, type Daemon } from "../daemons/harness.js";
import { protocolsBuilt, protocolsDir } from "./built.js";

/**
 * The NFS version 3 client of @rpcgen-ts/protocols (`/nfs`) and its command, rpcgen-ts-nfs,
 * against nfs-ganesha exporting a temporary directory on 127.0.0.1 (VFS backend, NFSv3 and
 * MOUNT v3 over TCP and UDP, found through the shared rpcbind). What the client did is
 * checked on disk, what it read against the files the test wrote there. How many READs or
 * WRITEs were outstanding at once is counted at the client's channel.
 */

type Nfs = typeof import("@rpcgen-ts/protocols/nfs");
type NfsMount = import("@rpcgen-ts/protocols/nfs").NfsMount;

const NFS_PROGRAM = 100003;
const MOUNT_PROGRAM = 100005;
const NFSPROC3_READ = 6;
const NFSPROC3_WRITE = 7;
const NFSPROC3_READDIRPLUS = 17;

let nfs: Nfs;
let dir: string;
let exportDir: string;
let ganesha: Daemon | undefined;
let release: (() => void) | undefined;
const exec = (args: string[], input?: Uint8Array) =>
  new Promise<{ code: number; stdout: Buffer; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [join(protocolsDir, "dist/nfs/cli.js"), ...args], { encoding: "buffer", timeout: 60_000, maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr: stderr.toString() }),
    );
    child.stdin!.end(input);
  });

/** Whether rpcbind on 127.0.0.1 knows `service` for `transport`. */
async function registered(service: ServiceDescription, transport: "tcp" | "udp"): Promise<boolean> {
  const channel = await connect({ transport, service }).catch(() => undefined);
  await channel?.close();
  return channel !== undefined;
}

/** Files the test puts on disk before the server starts. */
const big = randomBytes(5 * 1024 * 1024 + 12_345);
const manyNames = Array.from({ length: 300 }, (_, i) => `entry-${String(i).padStart(4, "0")}-${"x".repeat(i % 40)}`);

beforeAll(async () => {
  requireRpcbind();
  const binary = program("/usr/bin/ganesha.nfsd", "nfs-ganesha");
  if (!readdirSync("/usr/lib").some((d) => existsSync(join("/usr/lib", d, "ganesha/libfsalvfs.so")))) {
    throw new Error("ganesha's VFS backend (libfsalvfs.so) is not installed (Debian package nfs-ganesha-vfs)");
  }
  await protocolsBuilt();
  nfs = await import("@rpcgen-ts/protocols/nfs");
  const { NfsV3 } = await import("@rpcgen-ts/protocols/nfs3");
  const { MountV3 } = await import("@rpcgen-ts/protocols/mount3");
  // The NFS and MOUNT programs are ganesha.test.ts's too: the same lock keeps the two servers apart.
  release = await exclusive("statd-nlm");
  await clearRegistrations(NFS_PROGRAM, "an NFS server");
  await clearRegistrations(MOUNT_PROGRAM, "a MOUNT server");

  dir = tempDir("protocols-nfs");
  exportDir = join(dir, "export");
  mkdirSync(exportDir);
  chmodSync(exportDir, 0o777);
  writeFileSync(join(exportDir, "big.bin"), big);
  writeFileSync(join(exportDir, "hello.txt"), "hello, world\n");
  writeFileSync(join(exportDir, "empty"), "");
  mkdirSync(join(exportDir, "many"));
  for (const n of manyNames) writeFileSync(join(exportDir, "many", n), n);
  ganesha = await startGanesha({
    binary,
    dir,
    exportDir,
    nlm: false,
    ready: async () =>
      (await registered(NfsV3, "tcp")) && (await registered(NfsV3, "udp")) && (await registered(MountV3, "tcp")) && (await registered(MountV3, "udp")),
  });
}, 180_000);

afterAll(async () => {
  await ganesha?.stop();
  release?.();
  if (dir !== undefined) removeDir(dir);
});

/** Counts the calls outstanding on a mount's channel at once, by procedure number. */
function countOutstanding(mount: NfsMount): { readonly max: Map<number, number> } {
  const channel: Channel = mount.nfs.rpcChannel;
  const call = channel.call.bind(channel);
  const now = new Map<number, number>();
  const max = new Map<number, number>();
  channel.call = ((service, procedure, args, client, options) => {
    const n = (now.get(procedure.number) ?? 0) + 1;
    now.set(procedure.number, n);
    max.set(procedure.number, Math.max(max.get(procedure.number) ?? 0, n));
    return call(service, procedure, args, client, options).finally(() => now.set(procedure.number, now.get(procedure.number)! - 1));
  }) as Channel["call"];
  return { max };
}

describe("mountNfs over TCP, with this process's AUTH_SYS credentials", () => {
  let mount: NfsMount;
  const calls: CallRecord[] = [];
  const count = (procedure: number) => calls.filter((c) => c.program === NFS_PROGRAM && c.procedure === procedure).length;

  beforeAll(async () => {
    mount = await nfs.mountNfs("127.0.0.1", exportDir, { readSize: 64 * 1024, writeSize: 64 * 1024, onCall: (r) => void calls.push(r) });
  });
  afterAll(async () => {
    await mount?.close();
  });

  it("FSINFO's sizes bound the READ and WRITE sizes; the window is 16", () => {
    expect(mount.readSize).toBe(Math.min(64 * 1024, mount.fsinfo.rtpref, mount.fsinfo.rtmax));
    expect(mount.writeSize).toBe(Math.min(64 * 1024, mount.fsinfo.wtpref, mount.fsinfo.wtmax));
    expect(mount.window).toBe(16);
  });

  it("stat: what the disk says of a file and of the root", async () => {
    const s = await mount.stat("/hello.txt");
    const disk = statSync(join(exportDir, "hello.txt"));
    expect({ type: s.type, size: s.size, mode: s.mode, uid: s.uid, gid: s.gid, fileid: s.fileid }).toEqual({
      type: "file",
      size: disk.size,
      mode: disk.mode & 0o7777,
      uid: disk.uid,
      gid: disk.gid,
      fileid: BigInt(disk.ino),
    });
    expect(s.mtime.getTime()).toBe(Math.floor(disk.mtimeMs));
    expect((await mount.stat("/")).type).toBe("directory");
    expect((await mount.stat("")).fileid).toBe(BigInt(statSync(exportDir).ino));
  });

  it("readFile reads a file of many READs with 16 outstanding, byte for byte", async () => {
    const { max } = countOutstanding(mount);
    const before = count(NFSPROC3_READ);
    const data = await mount.readFile("big.bin");
    expect(data.length).toBe(big.length);
    expect(Buffer.compare(Buffer.from(data), big)).toBe(0);
    expect(count(NFSPROC3_READ) - before).toBeGreaterThanOrEqual(Math.ceil(big.length / mount.readSize));
    expect(max.get(NFSPROC3_READ)).toBe(16);
    expect(await mount.readFile("empty")).toEqual(new Uint8Array(0));
    expect(Buffer.from(await mount.readFile("/hello.txt")).toString()).toBe("hello, world\n");
  });

  it("createReadStream is a Readable of the same bytes", async () => {
    const parts: Buffer[] = [];
    await pipeline(mount.createReadStream("big.bin"), async (source: AsyncIterable<Buffer>) => {
      for await (const p of source) parts.push(p);
    });
    expect(Buffer.compare(Buffer.concat(parts), big)).toBe(0);
  });

  it("writeFile writes a file of many WRITEs with 16 outstanding; the bytes land on disk", async () => {
    const { max } = countOutstanding(mount);
    const data = randomBytes(3 * 1024 * 1024 + 777);
    const before = count(NFSPROC3_WRITE);
    expect(await mount.writeFile("/written.bin", data)).toBe(data.length);
    expect(Buffer.compare(readFileSync(join(exportDir, "written.bin")), data)).toBe(0);
    expect(count(NFSPROC3_WRITE) - before).toBe(Math.ceil(data.length / mount.writeSize));
    expect(max.get(NFSPROC3_WRITE)).toBe(16);
    expect(statSync(join(exportDir, "written.bin")).mode & 0o777).toBe(0o644);
    // The default credentials are this process's (the runtime's processAuthSys).
    expect({ uid: statSync(join(exportDir, "written.bin")).uid, gid: statSync(join(exportDir, "written.bin")).gid }).toEqual({ uid: process.geteuid!(), gid: process.getegid!() });
    // Writing again truncates: the file is the new content, not the old one's tail.
    await mount.writeFile("/written.bin", "short");
    expect(readFileSync(join(exportDir, "written.bin"), "utf8")).toBe("short");
  });

  it("createWriteStream takes a stream of odd-sized chunks; finish means on disk", async () => {
    const chunks = Array.from({ length: 200 }, (_, i) => randomBytes(1 + ((i * 7919) % 40_000)));
    await pipeline(Readable.from(chunks), mount.createWriteStream("streamed.bin", { mode: 0o600 }));
    expect(Buffer.compare(readFileSync(join(exportDir, "streamed.bin")), Buffer.concat(chunks))).toBe(0);
    expect(statSync(join(exportDir, "streamed.bin")).mode & 0o777).toBe(0o600);
    // An async iterable works as well as a Readable.
    async function* gen() {
      for (const c of chunks.slice(0, 20)) yield c;
    }
    await mount.writeFile("iterated.bin", gen());
    expect(Buffer.compare(readFileSync(join(exportDir, "iterated.bin")), Buffer.concat(chunks.slice(0, 20)))).toBe(0);
  });

  it("readdir goes over many pages by cookie and lists every entry once, with attributes", async () => {
    const before = count(NFSPROC3_READDIRPLUS);
    const seen = new Map<string, number>();
    for await (const e of mount.readdir("/many", { pageBytes: 4096 })) {
      expect(seen.has(e.name)).toBe(false);
      seen.set(e.name, e.stat!.size);
      expect(e.fileid).toBe(BigInt(statSync(join(exportDir, "many", e.name)).ino));
      expect(e.handle).toBeInstanceOf(Uint8Array);
    }
    expect([...seen.keys()].sort()).toEqual([...manyNames].sort());
    for (const [name, size] of seen) expect(size).toBe(name.length);
    expect(count(NFSPROC3_READDIRPLUS) - before).toBeGreaterThan(5);
    // The default page takes the same directory in fewer calls.
    const names: string[] = [];
    for await (const e of mount.readdir("many")) names.push(e.name);
    expect(names.sort()).toEqual([...manyNames].sort());
  });

  it("mkdir, rename, remove, rmdir: each seen on disk", async () => {
    await mount.mkdir("/made", 0o750);
    expect(statSync(join(exportDir, "made")).isDirectory()).toBe(true);
    expect(statSync(join(exportDir, "made")).mode & 0o777).toBe(0o750);
    await mount.writeFile("/made/a.txt", "a");
    await mount.rename("/made/a.txt", "/b.txt");
    expect(existsSync(join(exportDir, "made/a.txt"))).toBe(false);
    expect(readFileSync(join(exportDir, "b.txt"), "utf8")).toBe("a");
    await mount.remove("b.txt");
    expect(existsSync(join(exportDir, "b.txt"))).toBe(false);
    await mount.rmdir("made");
    expect(existsSync(join(exportDir, "made"))).toBe(false);
  });

  it("fails with NfsError naming the nfsstat3, the operation and the path", async () => {
    const failure = async (p: Promise<unknown>) => {
      const e = await p.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(nfs.NfsError);
      const { status, operation, path, message } = e as InstanceType<Nfs["NfsError"]>;
      return { status, operation, path, message };
    };
    expect(await failure(mount.readFile("/no/such/file"))).toEqual({
      status: "NFS3ERR_NOENT",
      operation: "LOOKUP",
      path: "/no",
      message: "LOOKUP /no: NFS3ERR_NOENT (no such file or directory)",
    });
    expect(await failure(mount.stat("many/nothing"))).toMatchObject({ status: "NFS3ERR_NOENT", operation: "LOOKUP", path: "/many/nothing" });
    expect(await failure(mount.readFile("hello.txt/x"))).toMatchObject({ status: "NFS3ERR_NOTDIR", operation: "LOOKUP", path: "/hello.txt/x" });
    expect(await failure(mount.mkdir("many"))).toMatchObject({ status: "NFS3ERR_EXIST", operation: "MKDIR", path: "/many" });
    expect(await failure(mount.rmdir("many"))).toMatchObject({ status: "NFS3ERR_NOTEMPTY", operation: "RMDIR", path: "/many" });
    expect(await failure(mount.readFile("many"))).toMatchObject({ status: "NFS3ERR_ISDIR", operation: "READ", path: "/many" });
    expect(await failure(mount.remove("gone"))).toMatchObject({ status: "NFS3ERR_NOENT", operation: "REMOVE", path: "/gone" });
    const listing = async () => {
      for await (const e of mount.readdir("hello.txt")) void e;
    };
    expect(await failure(listing())).toMatchObject({ status: "NFS3ERR_NOTDIR", operation: "READDIRPLUS", path: "/hello.txt" });
    // Streams fail the same way: the pipeline rejects with the NfsError.
    expect(await failure(pipeline(Readable.from([Buffer.from("x")]), mount.createWriteStream("no/dir/file")))).toMatchObject({ status: "NFS3ERR_NOENT", operation: "LOOKUP", path: "/no" });
    expect(await failure(pipeline(mount.createReadStream("gone.bin"), async (source: AsyncIterable<Buffer>) => {
      for await (const p of source) void p;
    }))).toMatchObject({ status: "NFS3ERR_NOENT", operation: "LOOKUP", path: "/gone.bin" });
  });

  it("a directory the server does not export fails MNT with the mountstat3's name", async () => {
    const e = await nfs.mountNfs("127.0.0.1", join(dir, "recovery")).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(nfs.NfsError);
    expect((e as InstanceType<Nfs["NfsError"]>).operation).toBe("MNT");
    expect((e as InstanceType<Nfs["NfsError"]>).status).toMatch(/^MNT3ERR_(NOENT|ACCES|PERM)$/);
  });
});

describe("mountNfs with given AUTH_SYS credentials", () => {
  it("files it creates belong on disk to the uid and gid it names", async () => {
    const mount = await nfs.mountNfs("127.0.0.1", exportDir, { auth: { stamp: 7, machinename: "rpcgen-ts-test", uid: 4321, gid: 8765, gids: [8765] } });
    try {
      await mount.writeFile("owned.txt", "mine");
      await mount.mkdir("owned-dir");
    } finally {
      await mount.close();
    }
    for (const name of ["owned.txt", "owned-dir"]) {
      const s = statSync(join(exportDir, name));
      expect({ name, uid: s.uid, gid: s.gid }).toEqual({ name, uid: 4321, gid: 8765 });
    }
  });
});

describe("mountNfs over UDP", () => {
  it("reads and writes files of many datagram-sized calls", async () => {
    const mount = await nfs.mountNfs("127.0.0.1", exportDir, { transport: "udp" });
    try {
      // Four 32 KiB replies outstanding fit the socket's default receive buffer.
      expect({ readSize: mount.readSize, window: mount.window }).toEqual({ readSize: 32 * 1024, window: 4 });
      expect(Buffer.compare(Buffer.from(await mount.readFile("big.bin")), big)).toBe(0);
      const data = randomBytes(500_000);
      await mount.writeFile("udp.bin", data);
      expect(Buffer.compare(readFileSync(join(exportDir, "udp.bin")), data)).toBe(0);
    } finally {
      await mount.close();
    }
  });
});

describe("the rpcgen-ts-nfs command, as a child process", () => {
  it("ls lists a directory with attributes", async () => {
    const { code, stdout, stderr } = await exec(["ls", `127.0.0.1:${exportDir}`]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.toString().trimEnd().split("\n");
    const byName = new Map(lines.map((l) => [l.split(" ").at(-1)!, l]));
    expect(byName.get("hello.txt")).toMatch(/^-rw-r--r-- +1 +\d+ +\d+ +13 hello\.txt$/);
    expect(byName.get("many")).toMatch(/^d/);
    expect(byName.has("big.bin")).toBe(true);
    const many = await exec(["ls", `127.0.0.1:${exportDir}/many`]);
    expect(many.code).toBe(0);
    expect(many.stdout.toString().trimEnd().split("\n").map((l) => l.split(" ").at(-1))).toEqual([...manyNames].sort());
  });

  it("cat writes a file's bytes to standard output", async () => {
    const { code, stdout, stderr } = await exec(["cat", `127.0.0.1:${exportDir}/big.bin`]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(Buffer.compare(stdout, big)).toBe(0);
  });

  it("put writes a local file, or standard input, to the server", async () => {
    const local = join(dir, "local.bin");
    const data = randomBytes(2 * 1024 * 1024 + 3);
    writeFileSync(local, data);
    const put = await exec(["put", `127.0.0.1:${exportDir}/put.bin`, local]);
    expect(put.stderr).toBe("");
    expect(put.code).toBe(0);
    expect(Buffer.compare(readFileSync(join(exportDir, "put.bin")), data)).toBe(0);
    const piped = await exec(["--udp", "put", `127.0.0.1:${exportDir}/stdin.bin`], data.subarray(0, 100_000));
    expect(piped.code).toBe(0);
    expect(Buffer.compare(readFileSync(join(exportDir, "stdin.bin")), data.subarray(0, 100_000))).toBe(0);
  });

  it("a missing path exits 1 naming the status; bad usage exits 2 with the usage", async () => {
    const missing = await exec(["cat", `127.0.0.1:${exportDir}/no/such`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("rpcgen-ts-nfs: LOOKUP /no: NFS3ERR_NOENT (no such file or directory)\n");
    const outside = await exec(["ls", "127.0.0.1:/not/exported"]);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/^rpcgen-ts-nfs: 127\.0\.0\.1 exports no directory that holds \/not\/exported\nusage:/);
    for (const args of [[], ["ls"], ["rm", `127.0.0.1:${exportDir}`], ["cat", "no-colon"]]) {
      const bad = await exec(args);
      expect(bad.code, args.join(" ")).toBe(2);
      expect(bad.stderr).toContain("usage: rpcgen-ts-nfs");
    }
  });
});
