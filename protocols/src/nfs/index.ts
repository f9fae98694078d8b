/**
 * A small NFS version 3 client (RFC 1813) over the generated NFS and MOUNT stubs: mount an
 * export through rpcbind, then work with paths — stat, read and write whole files or streams
 * with many READs or WRITEs outstanding, list directories page by page, make and remove
 * directories, remove and rename files. Anything else is a procedure of `mount.nfs`, the
 * generated client, away.
 */
import { PassThrough, Readable, Writable } from "node:stream";
import { connect, processAuthSys, type AuthSysParams, type CallHook, type Channel, type ClientOptions } from "@rpcgen-ts/runtime";
import { mountstat3, MountV3, MountV3Client } from "../gen/mount3.js";
import {
  createmode3,
  ftype3,
  nfsstat3,
  NfsV3,
  NfsV3Client,
  stable_how,
  time_how,
  type fattr3,
  type FSINFO3resok,
  type nfs_fh3,
  type nfstime3,
  type post_op_attr,
  type sattr3,
} from "../gen/nfs3.js";
import { NfsError } from "./errors.js";

export { NfsError, type MountStatus, type NfsStatus } from "./errors.js";

export interface MountOptions {
  /** Default "tcp". */
  readonly transport?: "tcp" | "udp";
  /**
   * Credentials for every MOUNT and NFS call: AUTH_SYS parameters, or "none" for AUTH_NONE.
   * Default: AUTH_SYS with this process's uid, gid, groups and host name, as mount(8) sends
   * (the runtime's `processAuthSys()`).
   */
  readonly auth?: AuthSysParams | "none";
  /** READs or WRITEs outstanding at once per file (default 16; over UDP, as many as fit 128 KiB). */
  readonly window?: number;
  /** Largest READ, in bytes: the server's preferred size, at most this (default 1 MiB over TCP, 32 KiB over UDP). */
  readonly readSize?: number;
  /** Largest WRITE, likewise. */
  readonly writeSize?: number;
  /** Per call (default 30 s). */
  readonly timeoutMs?: number;
  /** Ports of the NFS and MOUNT services; by default rpcbind on the server is asked. */
  readonly port?: number;
  readonly mountPort?: number;
  /** Called with every finished call's record (copies, bytes, latency). */
  readonly onCall?: CallHook;
}

export type FileType = "file" | "directory" | "block" | "character" | "symlink" | "socket" | "fifo";

/** A file's attributes (fattr3), in JavaScript terms; `attributes` is the fattr3 itself. */
export interface NfsStat {
  readonly type: FileType;
  /** Permission bits and set-id/sticky bits (mode3). */
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly fileid: bigint;
  readonly atime: Date;
  readonly mtime: Date;
  readonly ctime: Date;
  readonly attributes: fattr3;
}

export interface NfsDirEntry {
  readonly name: string;
  readonly fileid: bigint;
  /** Where the listing would go on after this entry. */
  readonly cookie: bigint;
  /** When the server sent them (READDIRPLUS may leave them out). */
  readonly stat: NfsStat | undefined;
  readonly handle: Uint8Array | undefined;
}

export interface ReaddirOptions {
  /** The most bytes one READDIRPLUS reply may hold (maxcount); default 32 KiB. */
  readonly pageBytes?: number;
}

export interface WriteOptions {
  /** Permission bits of a file created (default 0o644); an existing file keeps its own. */
  readonly mode?: number;
}

/** What `writeFile` and `createWriteStream` take. */
export type WriteSource = Uint8Array | string | Iterable<Uint8Array | string> | AsyncIterable<Uint8Array | string>;

const MiB = 1 << 20;
/** `readFile` places blocks straight into a result of the file's size up to this size. */
const maxPlacedBytes = 64 * MiB;
const types: Readonly<Record<number, FileType>> = {
  [ftype3.NF3REG]: "file",
  [ftype3.NF3DIR]: "directory",
  [ftype3.NF3BLK]: "block",
  [ftype3.NF3CHR]: "character",
  [ftype3.NF3LNK]: "symlink",
  [ftype3.NF3SOCK]: "socket",
  [ftype3.NF3FIFO]: "fifo",
};
const noop = () => {};

/** Attributes from the wire, as an NfsStat. */
export function toStat(a: fattr3): NfsStat {
  const time = (t: nfstime3) => new Date(t.seconds * 1000 + Math.floor(t.nseconds / 1e6));
  return {
    type: types[a.type] ?? "file",
    mode: a.mode,
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    size: Number(a.size),
    fileid: a.fileid,
    atime: time(a.atime),
    mtime: time(a.mtime),
    ctime: time(a.ctime),
    attributes: a,
  };
}

const statOf = (a: post_op_attr): NfsStat | undefined => (a.attributes_follow ? toStat(a.attributes) : undefined);

/** A path's components below the export: "/a//b/./c" is a, b, c. */
function components(path: string): string[] {
  return path.split("/").filter((c) => c !== "" && c !== ".");
}

/** A path as messages show it. */
const shown = (path: string) => `/${components(path).join("/")}`;

function sattr(mode: number | undefined, size: bigint | undefined): sattr3 {
  return {
    mode: mode === undefined ? { set_it: false } : { set_it: true, mode },
    uid: { set_it: false },
    gid: { set_it: false },
    size: size === undefined ? { set_it: false } : { set_it: true, size },
    atime: { set_it: time_how.DONT_CHANGE },
    mtime: { set_it: time_how.DONT_CHANGE },
  };
}

/** `source` as blocks of exactly `size` bytes (the last one shorter); input is copied only to fill a block. */
async function* blocks(source: WriteSource, size: number): AsyncGenerator<Uint8Array> {
  const pieces: Iterable<Uint8Array | string> | AsyncIterable<Uint8Array | string> =
    typeof source === "string" || source instanceof Uint8Array ? [source] : source;
  let pending: Uint8Array | undefined;
  let fill = 0;
  for await (const p of pieces) {
    let piece = typeof p === "string" ? Buffer.from(p) : p;
    while (piece.length > 0) {
      if (fill === 0 && piece.length >= size) {
        yield piece.subarray(0, size);
        piece = piece.subarray(size);
        continue;
      }
      pending ??= new Uint8Array(size);
      const n = Math.min(size - fill, piece.length);
      pending.set(piece.subarray(0, n), fill);
      fill += n;
      piece = piece.subarray(n);
      if (fill === size) {
        yield pending;
        pending = undefined;
        fill = 0;
      }
    }
  }
  if (pending !== undefined && fill > 0) yield pending.subarray(0, fill);
}

/**
 * Mounts `exportPath` of `server` (MOUNTPROC3_MNT, MOUNT version 3, found through rpcbind
 * unless `mountPort` is given) and connects to its NFS version 3 service. Fails with an
 * NfsError naming the mountstat3 when the server refuses the export.
 */
export async function mountNfs(server: string, exportPath: string, options: MountOptions = {}): Promise<NfsMount> {
  const transport = options.transport ?? "tcp";
  if (transport !== "tcp" && transport !== "udp") throw new TypeError(`transport must be "tcp" or "udp", not ${String(transport)}`);
  for (const [name, min] of [
    ["window", 1],
    ["readSize", 512],
    ["writeSize", 512],
  ] as const) {
    const v = options[name];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) throw new RangeError(`${name} must be an integer of at least ${min}, not ${String(v)}`);
  }
  const auth = options.auth === "none" ? undefined : (options.auth ?? processAuthSys());
  const client: ClientOptions = { auth, timeoutMs: options.timeoutMs };
  const mountChannel = await connect({ transport, host: server, port: options.mountPort, service: MountV3, onCall: options.onCall });
  let root: nfs_fh3;
  try {
    const res = await new MountV3Client(mountChannel, client).mountproc3Mnt(exportPath);
    if (res.fhs_status !== mountstat3.MNT3_OK) throw NfsError.mount(res.fhs_status, "MNT", exportPath);
    root = { data: res.mountinfo.fhandle };
  } finally {
    await mountChannel.close();
  }
  let channel: Channel | undefined;
  try {
    channel = await connect({ transport, host: server, port: options.port, service: NfsV3, onCall: options.onCall });
    const nfs = new NfsV3Client(channel, client);
    const info = await nfs.nfsproc3Fsinfo({ fsroot: root });
    if (info.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(info.status, "FSINFO", "/");
    return new NfsMount(server, exportPath, root, channel, nfs, info.resok, { ...options, transport }, client);
  } catch (e) {
    await channel?.close();
    await unmount(server, exportPath, options, transport, client);
    throw e;
  }
}

/**
 * MOUNTPROC3_UMNT, on a connection of its own: the server drops the export from its list of
 * mounts. RFC 1813 §5.2.3 makes that list advisory, so a failure here changes nothing for
 * the client and is not reported.
 */
async function unmount(server: string, exportPath: string, options: MountOptions, transport: "tcp" | "udp", client: ClientOptions): Promise<void> {
  let channel: Channel | undefined;
  try {
    channel = await connect({ transport, host: server, port: options.mountPort, service: MountV3, onCall: options.onCall });
    await new MountV3Client(channel, client).mountproc3Umnt(exportPath);
  } catch {
    // advisory: see above
  } finally {
    await channel?.close();
  }
}

/** A mounted export. Paths are relative to the export's root ("/" and "" are the root). */
export class NfsMount {
  /** The largest READ and WRITE this client sends, and how many it keeps outstanding per file. */
  readonly readSize: number;
  readonly writeSize: number;
  readonly window: number;
  private closed = false;

  /** @internal made by mountNfs */
  constructor(
    readonly server: string,
    readonly exportPath: string,
    /** The export's root file handle. */
    readonly root: nfs_fh3,
    private readonly channel: Channel,
    /** The generated NFS version 3 client, for any procedure this layer does not wrap. */
    readonly nfs: NfsV3Client,
    /** What FSINFO said of the export: transfer sizes, maximum file size, properties. */
    readonly fsinfo: FSINFO3resok,
    private readonly options: MountOptions & { readonly transport: "tcp" | "udp" },
    private readonly client: ClientOptions,
  ) {
    const cap = options.transport === "udp" ? 32 * 1024 : MiB;
    const size = (pref: number, max: number, asked: number | undefined) => Math.max(1, Math.min(pref || max || cap, max || cap, asked ?? cap, cap));
    this.readSize = size(fsinfo.rtpref, fsinfo.rtmax, options.readSize);
    this.writeSize = size(fsinfo.wtpref, fsinfo.wtmax, options.writeSize);
    // Over UDP the replies outstanding must fit the socket's receive buffer, or the kernel
    // drops them and each waits for a retransmission: Linux's default is 208 KiB, and it
    // counts a datagram at more than its size (against ganesha, 4 READs of 32 KiB
    // outstanding took 21 ms for 5 MiB, 6 took 5 s).
    const fits = Math.floor((128 * 1024) / this.readSize);
    this.window = options.window ?? (options.transport === "udp" ? Math.max(1, Math.min(16, fits)) : 16);
  }

  /** The file handle of `path`, looked up one component at a time from the root (LOOKUP). */
  async lookup(path: string): Promise<nfs_fh3> {
    let fh = this.root;
    const parts = components(path);
    for (const [i, name] of parts.entries()) {
      const res = await this.nfs.nfsproc3Lookup({ what: { dir: fh, name } });
      if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "LOOKUP", `/${parts.slice(0, i + 1).join("/")}`);
      fh = res.resok.object;
    }
    return fh;
  }

  /** The directory that holds `path`, and the name in it. */
  private async parent(path: string, operation: string): Promise<{ dir: nfs_fh3; name: string }> {
    const parts = components(path);
    const name = parts.pop();
    if (name === undefined || name === "..") throw new NfsError("NFS3ERR_INVAL", nfsstat3.NFS3ERR_INVAL, operation, shown(path));
    return { dir: await this.lookup(parts.join("/")), name };
  }

  /** GETATTR of `path`. */
  async stat(path: string): Promise<NfsStat> {
    const res = await this.nfs.nfsproc3Getattr({ object: await this.lookup(path) });
    if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "GETATTR", shown(path));
    return toStat(res.resok.obj_attributes);
  }

  /**
   * The entries of the directory `path` ("." and ".." left out), page by page: READDIRPLUS
   * from cookie 0, each next page from the last entry's cookie with the verifier the server
   * gave, until it says end of directory. Names, handles and attributes come in one call.
   */
  async *readdir(path: string, options: ReaddirOptions = {}): AsyncGenerator<NfsDirEntry> {
    const dir = await this.lookup(path);
    const maxcount = options.pageBytes ?? 32 * 1024;
    let cookie = 0n;
    let cookieverf: Uint8Array = new Uint8Array(8);
    for (;;) {
      const res = await this.nfs.nfsproc3Readdirplus({ dir, cookie, cookieverf, dircount: maxcount, maxcount });
      if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "READDIRPLUS", shown(path));
      cookieverf = res.resok.cookieverf;
      let any = false;
      for (let e = res.resok.reply.entries; e !== null; e = e.nextentry) {
        any = true;
        cookie = e.cookie;
        if (e.name === "." || e.name === "..") continue;
        yield {
          name: e.name,
          fileid: e.fileid,
          cookie: e.cookie,
          stat: statOf(e.name_attributes),
          handle: e.name_handle.handle_follows ? e.name_handle.handle.data : undefined,
        };
      }
      if (res.resok.reply.eof) return;
      // A page with no entry and no end would ask for the same page forever.
      if (!any) throw NfsError.nfs(nfsstat3.NFS3ERR_TOOSMALL, "READDIRPLUS", shown(path));
    }
  }

  /**
   * The contents of `path` in order, in blocks of at most `readSize` bytes, with up to
   * `window` READs outstanding: as many as the file's size calls for, then (if the file grew)
   * one at a time until the server says end of file.
   */
  async *read(path: string): AsyncGenerator<Uint8Array> {
    const { file, size } = await this.openForRead(path);
    yield* this.blocks(path, file, size, undefined);
  }

  /**
   * The whole of `path`. Its size is known before the first READ, so each READ's data is
   * decoded straight into its place in the result (`into`): copied once, out of the reply,
   * with no block allocated and then joined. Bytes past that size (the file grew meanwhile),
   * or past 64 MiB, come as blocks of their own and are joined at the end.
   */
  async readFile(path: string): Promise<Uint8Array> {
    const { file, size } = await this.openForRead(path);
    // A size from the server is not trusted for more than a bound: past it, blocks are joined.
    const whole = new Uint8Array(Number(size < BigInt(maxPlacedBytes) ? size : BigInt(maxPlacedBytes)));
    // Blocks come in order, so the placed ones are a prefix: once one does not fit (the file
    // grew past the size read), no later one is placed either.
    const place = (offset: bigint, count: number): Uint8Array | undefined =>
      offset < BigInt(whole.length) ? whole.subarray(Number(offset), Math.min(whole.length, Number(offset) + count)) : undefined;
    let placed = 0;
    const beyond: Uint8Array[] = [];
    for await (const data of this.blocks(path, file, size, place)) {
      if (data.buffer === whole.buffer) placed += data.length;
      else beyond.push(data);
    }
    if (beyond.length === 0) return whole.subarray(0, placed);
    const total = beyond.reduce((n, b) => n + b.length, placed);
    const joined = new Uint8Array(total);
    joined.set(whole.subarray(0, placed));
    let at = placed;
    for (const b of beyond) {
      joined.set(b, at);
      at += b.length;
    }
    return joined;
  }

  /** The handle of the regular file `path`, and its size. */
  private async openForRead(path: string): Promise<{ file: nfs_fh3; size: bigint }> {
    const file = await this.lookup(path);
    const attrs = await this.nfs.nfsproc3Getattr({ object: file });
    if (attrs.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(attrs.status, "GETATTR", shown(path));
    if (attrs.resok.obj_attributes.type === ftype3.NF3DIR) throw NfsError.nfs(nfsstat3.NFS3ERR_ISDIR, "READ", shown(path));
    return { file, size: attrs.resok.obj_attributes.size };
  }

  /**
   * READs of `file` from offset 0, in order, `window` outstanding while below `end`; each
   * block's data decoded into the memory `place` gives for its range, if it gives any.
   */
  private async *blocks(
    path: string,
    file: nfs_fh3,
    end: bigint,
    place: ((offset: bigint, count: number) => Uint8Array | undefined) | undefined,
  ): AsyncGenerator<Uint8Array> {
    const size = this.readSize;
    interface Slot {
      readonly offset: bigint;
      readonly count: number;
      readonly reply: ReturnType<NfsV3Client["nfsproc3Read"]>;
    }
    const issue = (offset: bigint, count: number): Slot => {
      const into = place?.(offset, count);
      const reply = this.nfs.nfsproc3Read({ file, offset, count }, into === undefined ? undefined : { into });
      reply.catch(noop); // awaited in order below; one left behind by an error must not go unhandled
      return { offset, count, reply };
    };
    const queue: Slot[] = [];
    let next = 0n;
    const fill = () => {
      while (queue.length < this.window && (next < end || queue.length === 0)) {
        queue.push(issue(next, size));
        next += BigInt(size);
      }
    };
    fill();
    while (queue.length > 0) {
      const slot = queue.shift()!;
      const res = await slot.reply;
      if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "READ", shown(path));
      const { data, eof } = res.resok;
      // More data than asked for is not the block asked for; no data and no end would loop forever.
      if (data.length > slot.count || (data.length === 0 && !eof)) throw NfsError.nfs(nfsstat3.NFS3ERR_IO, "READ", shown(path));
      if (data.length > 0) yield data;
      if (eof) return;
      // A short read: the rest of this block comes before everything queued after it.
      if (data.length < slot.count) queue.unshift(issue(slot.offset + BigInt(data.length), slot.count - data.length));
      fill();
    }
  }

  /** `read(path)` as a node:stream Readable. */
  createReadStream(path: string): Readable {
    return Readable.from(this.read(path), { objectMode: false });
  }

  /**
   * Writes `data` as the whole content of `path`, creating the file (mode `options.mode`) or
   * truncating it: blocks of `writeSize` bytes, up to `window` WRITEs outstanding, UNSTABLE,
   * then one COMMIT. The write verifier of every reply must match (RFC 1813 §3.3.7): if it
   * changes, the server restarted and may have lost data it had not committed, and the
   * write fails. Resolves to the bytes written.
   */
  async writeFile(path: string, data: WriteSource, options: WriteOptions = {}): Promise<number> {
    const { dir, name } = await this.parent(path, "CREATE");
    const created = await this.nfs.nfsproc3Create({
      where: { dir, name },
      how: { mode: createmode3.UNCHECKED, obj_attributes: sattr(options.mode ?? 0o644, 0n) },
    });
    if (created.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(created.status, "CREATE", shown(path));
    const file = created.resok.obj.handle_follows ? created.resok.obj.handle : await this.lookup(path);
    let verf: Uint8Array | undefined;
    const sameVerifier = (v: Uint8Array) => {
      if (verf === undefined) verf = v;
      else if (Buffer.compare(verf, v) !== 0) throw new Error(`WRITE ${shown(path)}: the server restarted during the write (its write verifier changed) and may have lost data; write the file again`);
    };
    let unstable = false;
    const writeAt = async (offset: bigint, block: Uint8Array) => {
      for (let done = 0; done < block.length; ) {
        const part = done === 0 ? block : block.subarray(done);
        const res = await this.nfs.nfsproc3Write({ file, offset: offset + BigInt(done), count: part.length, stable: stable_how.UNSTABLE, data: part });
        if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "WRITE", shown(path));
        if (res.resok.count === 0 || res.resok.count > part.length) throw NfsError.nfs(nfsstat3.NFS3ERR_IO, "WRITE", shown(path));
        sameVerifier(res.resok.verf);
        if (res.resok.committed !== stable_how.FILE_SYNC) unstable = true;
        done += res.resok.count; // a short write: the rest goes again
      }
    };
    const outstanding: Promise<void>[] = [];
    let offset = 0n;
    for await (const block of blocks(data, this.writeSize)) {
      const p = writeAt(offset, block);
      p.catch(noop); // awaited in order below
      outstanding.push(p);
      offset += BigInt(block.length);
      if (outstanding.length >= this.window) await outstanding.shift();
    }
    for (const p of outstanding) await p;
    if (unstable) {
      const res = await this.nfs.nfsproc3Commit({ file, offset: 0n, count: 0 });
      if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "COMMIT", shown(path));
      sameVerifier(res.resok.verf);
    }
    return Number(offset);
  }

  /** A node:stream Writable onto `path`, as `writeFile` writes; 'finish' comes after the COMMIT. */
  createWriteStream(path: string, options: WriteOptions = {}): Writable {
    const source = new PassThrough();
    const written = this.writeFile(path, source, options);
    written.catch(noop);
    const sink = new Writable({
      write(chunk: Uint8Array, _encoding, callback) {
        if (source.write(chunk)) callback();
        else source.once("drain", () => callback());
      },
      final(callback) {
        source.end();
        written.then(() => callback(), callback);
      },
      destroy(error, callback) {
        // Ends writeFile's read of the source if it is still reading (it then fails, unheard);
        // without an error, which nobody would be left to hear.
        source.destroy();
        callback(error);
      },
    });
    written.catch((e: Error) => sink.destroy(e));
    return sink;
  }

  /** MKDIR; resolves to the new directory's handle. */
  async mkdir(path: string, mode = 0o755): Promise<nfs_fh3> {
    const { dir, name } = await this.parent(path, "MKDIR");
    const res = await this.nfs.nfsproc3Mkdir({ where: { dir, name }, attributes: sattr(mode, undefined) });
    if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "MKDIR", shown(path));
    return res.resok.obj.handle_follows ? res.resok.obj.handle : this.lookup(path);
  }

  /** REMOVE: a file (or symbolic link, or any non-directory). */
  async remove(path: string): Promise<void> {
    const { dir, name } = await this.parent(path, "REMOVE");
    const res = await this.nfs.nfsproc3Remove({ object: { dir, name } });
    if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "REMOVE", shown(path));
  }

  /** RMDIR: an empty directory. */
  async rmdir(path: string): Promise<void> {
    const { dir, name } = await this.parent(path, "RMDIR");
    const res = await this.nfs.nfsproc3Rmdir({ object: { dir, name } });
    if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "RMDIR", shown(path));
  }

  /** RENAME, within the export; an existing `to` is replaced as rename(2) would. */
  async rename(from: string, to: string): Promise<void> {
    const source = await this.parent(from, "RENAME");
    const target = await this.parent(to, "RENAME");
    const res = await this.nfs.nfsproc3Rename({ from: source, to: target });
    if (res.status !== nfsstat3.NFS3_OK) throw NfsError.nfs(res.status, "RENAME", `${shown(from)} -> ${shown(to)}`);
  }

  /** Unmounts (MOUNTPROC3_UMNT) and closes the connection; calls still outstanding fail CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.channel.close();
    await unmount(this.server, this.exportPath, this.options, this.options.transport, this.client);
  }
}
