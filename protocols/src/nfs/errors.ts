import { type mountstat3, mountstat3Name } from "../gen/mount3.js";
import { type nfsstat3, nfsstat3Name } from "../gen/nfs3.js";

/** The name of an nfsstat3 value (RFC 1813 §2.6), e.g. "NFS3ERR_NOENT". */
export type NfsStatus = keyof typeof nfsstat3;
/** The name of a mountstat3 value (RFC 1813 §5.1.5), e.g. "MNT3ERR_ACCES". */
export type MountStatus = keyof typeof mountstat3;

/** What each status means, in the words of RFC 1813 §2.6 (shortened). */
const meanings: Readonly<Record<string, string>> = {
  NFS3ERR_PERM: "not owner",
  NFS3ERR_NOENT: "no such file or directory",
  NFS3ERR_IO: "I/O error",
  NFS3ERR_NXIO: "no such device or address",
  NFS3ERR_ACCES: "permission denied",
  NFS3ERR_EXIST: "file exists",
  NFS3ERR_XDEV: "cross-device link",
  NFS3ERR_NODEV: "no such device",
  NFS3ERR_NOTDIR: "not a directory",
  NFS3ERR_ISDIR: "is a directory",
  NFS3ERR_INVAL: "invalid argument",
  NFS3ERR_FBIG: "file too large",
  NFS3ERR_NOSPC: "no space left on device",
  NFS3ERR_ROFS: "read-only file system",
  NFS3ERR_MLINK: "too many hard links",
  NFS3ERR_NAMETOOLONG: "file name too long",
  NFS3ERR_NOTEMPTY: "directory not empty",
  NFS3ERR_DQUOT: "disk quota exceeded",
  NFS3ERR_STALE: "stale file handle",
  NFS3ERR_REMOTE: "too many levels of remote in path",
  NFS3ERR_BADHANDLE: "illegal file handle",
  NFS3ERR_NOT_SYNC: "update synchronization mismatch",
  NFS3ERR_BAD_COOKIE: "READDIR cookie is stale",
  NFS3ERR_NOTSUPP: "operation not supported",
  NFS3ERR_TOOSMALL: "buffer or request too small",
  NFS3ERR_SERVERFAULT: "server fault",
  NFS3ERR_BADTYPE: "type not supported by the server",
  NFS3ERR_JUKEBOX: "try again later",
  MNT3ERR_PERM: "not owner",
  MNT3ERR_NOENT: "no such file or directory",
  MNT3ERR_IO: "I/O error",
  MNT3ERR_ACCES: "permission denied",
  MNT3ERR_NOTDIR: "not a directory",
  MNT3ERR_INVAL: "invalid argument",
  MNT3ERR_NAMETOOLONG: "file name too long",
  MNT3ERR_NOTSUPP: "operation not supported",
  MNT3ERR_SERVERFAULT: "server fault",
};

/**
 * An NFS or MOUNT procedure the server answered with an error status. `status` names it
 * ("NFS3ERR_NOENT"), `code` is its number, `operation` the procedure ("LOOKUP", "MNT") and
 * `path` the path the client was working on.
 */
export class NfsError extends Error {
  override readonly name = "NfsError";

  constructor(
    readonly status: NfsStatus | MountStatus | `NFS3ERR_${number}` | `MNT3ERR_${number}`,
    readonly code: number,
    readonly operation: string,
    readonly path: string,
  ) {
    const meaning = meanings[status];
    super(`${operation} ${path}: ${status}${meaning === undefined ? "" : ` (${meaning})`}`);
  }

  /** From an nfsstat3 value. */
  static nfs(code: number, operation: string, path: string): NfsError {
    return new NfsError(nfsstat3Name(code) ?? `NFS3ERR_${code}`, code, operation, path);
  }

  /** From a mountstat3 value. */
  static mount(code: number, operation: string, path: string): NfsError {
    return new NfsError(mountstat3Name(code) ?? `MNT3ERR_${code}`, code, operation, path);
  }
}
