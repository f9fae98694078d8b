import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, RpcError, type Server } from "@rpcgen-ts/runtime";
import { protocolsBuilt } from "./built.js";

/**
 * The NFS client's own logic against a server the test writes (the shipped MOUNT and NFS
 * stubs, in-process on 127.0.0.1), for what ganesha never does: short READs and WRITEs, a
 * write verifier that changes (a server restart), a READ with neither data nor end, a
 * READDIRPLUS that checks the cookie verifier it handed out. Bad options are refused before
 * anything is sent.
 */

type Nfs = typeof import("@rpcgen-ts/protocols/nfs");
type Nfs3 = typeof import("@rpcgen-ts/protocols/nfs3");
type Mount3 = typeof import("@rpcgen-ts/protocols/mount3");

let nfs: Nfs;
let nfs3: Nfs3;
let mount3: Mount3;

/** What the fake server does, changed by each test. */
const behaviour = {
  /** READ returns at most this many bytes. */
  readAtMost: Infinity,
  /** WRITE takes half of what it is sent (at least one byte). */
  shortWrites: false,
  /** After this many WRITEs the write verifier changes. */
  verifierChangesAfter: Infinity,
  /** READ answers count 0 and no EOF. */
  stuckRead: false,
  /** Added to a file's size in its attributes: the file shrinks (> 0) or grows (< 0) after they are read. */
  sizeShift: 0,
  /** READ answers this many bytes more than it was asked for. */
  readExtra: 0,
};
const files = new Map<string, Uint8Array>();
const seen = { writes: 0, commits: 0, concurrent: 0, maxConcurrent: 0, badCookies: 0, readdirCalls: 0 };
const dirVerifier = new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2]);
const perPage = 7;

let server: Server;
let port: number;

const handleOf = (name: string) => ({ data: new TextEncoder().encode(`f:${name}`) });
const nameOf = (fh: { data: Uint8Array }) => new TextDecoder().decode(fh.data).slice(2);

beforeAll(async () => {
  await protocolsBuilt();
  nfs = await import("@rpcgen-ts/protocols/nfs");
  nfs3 = await import("@rpcgen-ts/protocols/nfs3");
  mount3 = await import("@rpcgen-ts/protocols/mount3");
  const { nfsstat3, ftype3, stable_how } = nfs3;
  const time = { seconds: 1_700_000_000, nseconds: 0 };
  const attrs = (name: string) => {
    const dir = name === "";
    return {
      type: dir ? ftype3.NF3DIR : ftype3.NF3REG,
      mode: dir ? 0o755 : 0o644,
      nlink: 1,
      uid: 0,
      gid: 0,
      size: BigInt(dir ? 4096 : Math.max(0, (files.get(name)?.length ?? 0) + behaviour.sizeShift)),
      used: 0n,
      rdev: { specdata1: 0, specdata2: 0 },
      fsid: 1n,
      fileid: BigInt(dir ? 1 : 2 + [...files.keys()].indexOf(name)),
      atime: time,
      mtime: time,
      ctime: time,
    };
  };
  const post = (name: string) => ({ attributes_follow: true as const, attributes: attrs(name) });
  const wcc = (name: string) => ({ before: { attributes_follow: false as const }, after: post(name) });
  /** Handlers run a little while, so that calls overlap as they would on a real server. */
  const busy = async <T>(f: () => T): Promise<T> => {
    seen.maxConcurrent = Math.max(seen.maxConcurrent, ++seen.concurrent);
    await new Promise((r) => setTimeout(r, 1));
    seen.concurrent--;
    return f();
  };
  const verifier = () => new Uint8Array(8).fill(seen.writes > behaviour.verifierChangesAfter ? 2 : 1);
  const implemented = {
    nfsproc3Getattr: ({ object }: { object: { data: Uint8Array } }) => {
      const name = nameOf(object);
      return name === "" || files.has(name) ? { status: nfsstat3.NFS3_OK, resok: { obj_attributes: attrs(name) } } : { status: nfsstat3.NFS3ERR_STALE };
    },
    nfsproc3Lookup: ({ what }: { what: { dir: { data: Uint8Array }; name: string } }) =>
      files.has(what.name)
        ? { status: nfsstat3.NFS3_OK, resok: { object: handleOf(what.name), obj_attributes: post(what.name), dir_attributes: post("") } }
        : { status: nfsstat3.NFS3ERR_NOENT, resfail: { dir_attributes: post("") } },
    nfsproc3Read: ({ file, offset, count }: { file: { data: Uint8Array }; offset: bigint; count: number }) =>
      busy(() => {
        const data = files.get(nameOf(file))!;
        if (behaviour.stuckRead) return { status: nfsstat3.NFS3_OK, resok: { file_attributes: post(nameOf(file)), count: 0, eof: false, data: new Uint8Array(0) } };
        const start = Math.min(Number(offset), data.length);
        const end = Math.min(start + Math.min(count, behaviour.readAtMost) + behaviour.readExtra, data.length);
        const part = data.slice(start, end);
        return { status: nfsstat3.NFS3_OK, resok: { file_attributes: post(nameOf(file)), count: part.length, eof: end === data.length, data: part } };
      }),
    nfsproc3Write: ({ file, offset, data }: { file: { data: Uint8Array }; offset: bigint; data: Uint8Array }) =>
      busy(() => {
        seen.writes++;
        const name = nameOf(file);
        const taken = behaviour.shortWrites ? data.subarray(0, Math.max(1, data.length >> 1)) : data;
        const old = files.get(name)!;
        const end = Number(offset) + taken.length;
        const grown = new Uint8Array(Math.max(old.length, end));
        grown.set(old);
        grown.set(taken, Number(offset));
        files.set(name, grown);
        return { status: nfsstat3.NFS3_OK, resok: { file_wcc: wcc(name), count: taken.length, committed: stable_how.UNSTABLE, verf: verifier() } };
      }),
    nfsproc3Create: ({ where }: { where: { name: string } }) => {
      files.set(where.name, new Uint8Array(0));
      return { status: nfsstat3.NFS3_OK, resok: { obj: { handle_follows: true, handle: handleOf(where.name) }, obj_attributes: post(where.name), dir_wcc: wcc("") } };
    },
    nfsproc3Commit: ({ file }: { file: { data: Uint8Array } }) => {
      seen.commits++;
      return { status: nfsstat3.NFS3_OK, resok: { file_wcc: wcc(nameOf(file)), verf: verifier() } };
    },
    nfsproc3Readdirplus: ({ cookie, cookieverf }: { cookie: bigint; cookieverf: Uint8Array }) => {
      seen.readdirCalls++;
      if (cookie !== 0n && Buffer.compare(cookieverf, dirVerifier) !== 0) {
        seen.badCookies++;
        return { status: nfsstat3.NFS3ERR_BAD_COOKIE, resfail: { dir_attributes: post("") } };
      }
      const names = [".", "..", ...[...files.keys()].sort()];
      const page = names.slice(Number(cookie), Number(cookie) + perPage);
      let entries = null;
      for (let i = page.length - 1; i >= 0; i--) {
        const name = page[i]!;
        const real = name !== "." && name !== "..";
        entries = {
          fileid: BigInt(Number(cookie) + i + 100),
          name,
          cookie: cookie + BigInt(i + 1),
          name_attributes: real ? post(name) : { attributes_follow: false },
          name_handle: real ? { handle_follows: true, handle: handleOf(name) } : { handle_follows: false },
          nextentry: entries,
        };
      }
      return { status: nfsstat3.NFS3_OK, resok: { dir_attributes: post(""), cookieverf: dirVerifier, reply: { entries, eof: Number(cookie) + perPage >= names.length } } };
    },
    nfsproc3Fsinfo: () => ({
      status: nfsstat3.NFS3_OK,
      resok: {
        obj_attributes: post(""),
        rtmax: 4096,
        rtpref: 1000,
        rtmult: 1,
        wtmax: 4096,
        wtpref: 1000,
        wtmult: 1,
        dtpref: 4096,
        maxfilesize: 1n << 40n,
        time_delta: { seconds: 0, nseconds: 1 },
        properties: 0,
      },
    }),
  };
  // Every other procedure: a handler that throws, which the server answers SYSTEM_ERR.
  const handlers: Record<string, unknown> = { ...implemented };
  for (const key of Object.keys(nfs3.NfsV3.procedures)) {
    if (key !== "nfsproc3Null" && !(key in handlers)) {
      handlers[key] = () => {
        throw new Error(`${key} is not served here`);
      };
    }
  }
  const { mountstat3 } = mount3;
  server = createServer()
    .register(mount3.MountV3, {
      mountproc3Mnt: (path: string) =>
        path === "/fake" ? { fhs_status: mountstat3.MNT3_OK, mountinfo: { fhandle: handleOf("").data, auth_flavors: [1] } } : { fhs_status: mountstat3.MNT3ERR_NOENT },
      mountproc3Dump: () => null,
      mountproc3Umnt: () => {},
      mountproc3Umntall: () => {},
      mountproc3Export: () => null,
    })
    .register(nfs3.NfsV3, handlers as unknown as Parameters<Server["register"]>[1]);
  ({ port } = await server.listen({ transport: "tcp", host: "127.0.0.1" }));
});

afterAll(async () => {
  await server?.close();
});

const mountFake = () => nfs.mountNfs("127.0.0.1", "/fake", { port, mountPort: port });

describe("the NFS client against a server that does the unusual", () => {
  it("takes the server's preferred sizes", async () => {
    const m = await mountFake();
    await m.close();
    expect({ readSize: m.readSize, writeSize: m.writeSize, window: m.window }).toEqual({ readSize: 1000, writeSize: 1000, window: 16 });
  });

  it("short READs: the rest of each block is read before the blocks after it", async () => {
    const data = randomBytes(50_000 + 17);
    files.set("short-read.bin", data);
    Object.assign(behaviour, { readAtMost: 333 });
    seen.maxConcurrent = 0;
    const m = await mountFake();
    try {
      expect(Buffer.compare(Buffer.from(await m.readFile("short-read.bin")), data)).toBe(0);
      expect(seen.maxConcurrent).toBe(16);
    } finally {
      await m.close();
      behaviour.readAtMost = Infinity;
    }
  });

  it("short WRITEs: the rest of each block is written again; then one COMMIT", async () => {
    const data = randomBytes(40_000 + 3);
    Object.assign(behaviour, { shortWrites: true });
    const commits = seen.commits;
    seen.maxConcurrent = 0;
    const m = await mountFake();
    try {
      expect(await m.writeFile("short-write.bin", data)).toBe(data.length);
      expect(Buffer.compare(Buffer.from(files.get("short-write.bin")!), data)).toBe(0);
      expect(seen.commits - commits).toBe(1);
      expect(seen.maxConcurrent).toBe(16);
    } finally {
      await m.close();
      behaviour.shortWrites = false;
    }
  });

  it("a write verifier that changes fails the write: the server may have lost data", async () => {
    behaviour.verifierChangesAfter = seen.writes + 5;
    const m = await mountFake();
    try {
      await expect(m.writeFile("restarted.bin", randomBytes(30_000))).rejects.toThrow(
        "WRITE /restarted.bin: the server restarted during the write (its write verifier changed) and may have lost data; write the file again",
      );
      // A write that sees one verifier throughout succeeds.
      await m.writeFile("after.bin", randomBytes(30_000));
    } finally {
      await m.close();
    }
  });

  it("a write stream whose source fails ends with the source's error, and nothing is left hanging", async () => {
    const m = await mountFake();
    try {
      async function* failing() {
        yield randomBytes(5000);
        yield randomBytes(5000);
        throw new Error("the source broke");
      }
      await expect(pipeline(Readable.from(failing()), m.createWriteStream("broken.bin"))).rejects.toThrow("the source broke");
      // The mount still works.
      await m.writeFile("fine.bin", "fine");
      expect(new TextDecoder().decode(files.get("fine.bin"))).toBe("fine");
    } finally {
      await m.close();
    }
  });

  it("readFile places each block at its offset; bytes past the size it read (the file grew) are joined after them", async () => {
    const data = randomBytes(23_456);
    files.set("moving.bin", data);
    const m = await mountFake();
    try {
      for (const shift of [0, -5_000, -23_456, 7_000, 100_000]) {
        behaviour.sizeShift = shift;
        const got = await m.readFile("moving.bin");
        expect(got.length, `size ${data.length + shift}`).toBe(data.length);
        expect(Buffer.compare(Buffer.from(got), data), `size ${data.length + shift}`).toBe(0);
      }
    } finally {
      await m.close();
      behaviour.sizeShift = 0;
    }
  });

  it("a READ that answers more bytes than it was asked for fails", async () => {
    files.set("generous.bin", randomBytes(5_000));
    behaviour.readExtra = 10;
    const m = await mountFake();
    try {
      for (const read of [() => m.readFile("generous.bin"), async () => (await m.read("generous.bin").next()).value]) {
        const e = await read().catch((x: unknown) => x);
        expect(e).toBeInstanceOf(nfs.NfsError);
        expect((e as Error).message).toBe("READ /generous.bin: NFS3ERR_IO (I/O error)");
      }
    } finally {
      await m.close();
      behaviour.readExtra = 0;
    }
  });

  it("a READ with neither data nor end of file fails rather than loop", async () => {
    files.set("stuck.bin", randomBytes(10));
    behaviour.stuckRead = true;
    const m = await mountFake();
    try {
      const e = await m.readFile("stuck.bin").catch((x: unknown) => x);
      expect(e).toBeInstanceOf(nfs.NfsError);
      expect((e as Error).message).toBe("READ /stuck.bin: NFS3ERR_IO (I/O error)");
    } finally {
      await m.close();
      behaviour.stuckRead = false;
    }
  });

  it("readdir sends back the cookie verifier it was given, page after page", async () => {
    const badCookies = seen.badCookies;
    const calls = seen.readdirCalls;
    const m = await mountFake();
    try {
      const names: string[] = [];
      for await (const e of m.readdir("/")) names.push(e.name);
      expect(names).toEqual([...files.keys()].sort());
      expect(seen.readdirCalls - calls).toBe(Math.ceil((files.size + 2) / perPage));
      expect(seen.badCookies).toBe(badCookies);
    } finally {
      await m.close();
    }
  });

  it("a procedure the server fails is the runtime's RpcError; an export it refuses, an NfsError", async () => {
    const m = await mountFake();
    try {
      const e = await m.mkdir("d").catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RpcError);
      expect((e as RpcError).status).toBe("SYSTEM_ERR");
    } finally {
      await m.close();
    }
    const refused = await nfs.mountNfs("127.0.0.1", "/other", { port, mountPort: port }).catch((x: unknown) => x);
    expect(refused).toBeInstanceOf(nfs.NfsError);
    expect((refused as Error).message).toBe("MNT /other: MNT3ERR_NOENT (no such file or directory)");
  });

  it("bad options are refused before anything is sent", async () => {
    for (const [options, message] of [
      [{ window: 0 }, "window must be an integer of at least 1, not 0"],
      [{ window: 2.5 }, "window must be an integer of at least 1, not 2.5"],
      [{ readSize: 100 }, "readSize must be an integer of at least 512, not 100"],
      [{ writeSize: Number.NaN }, "writeSize must be an integer of at least 512, not NaN"],
    ] as const) {
      await expect(nfs.mountNfs("127.0.0.1", "/fake", { port, mountPort: port, ...options })).rejects.toThrow(new RangeError(message));
    }
    await expect(nfs.mountNfs("127.0.0.1", "/fake", { transport: "sctp" as "tcp" })).rejects.toThrow(TypeError);
  });

  it("a server that is not there fails the mount with the connection's error", async () => {
    const closed = createServer();
    const { port: unused } = await closed.listen({ transport: "tcp", host: "127.0.0.1" });
    await closed.close();
    // connect() rejects with an RpcError UNREACHABLE whose cause is the socket's own error.
    const e = await nfs.mountNfs("127.0.0.1", "/fake", { port: unused, mountPort: unused, timeoutMs: 5000 }).catch((x: unknown) => x);
    expect((e as { status?: unknown }).status).toBe("UNREACHABLE");
    expect(((e as Error).cause as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
    expect((e as Error).message).toContain(`127.0.0.1:${unused}`);
  });
});
