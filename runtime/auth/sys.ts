import { hostname } from "node:os";
import { AuthFlavor, AuthStat, authSys as encodeAuthSys, readAuthSys, type AuthSysParams, type OpaqueAuth } from "../rpc/message.js";
import type { XdrReader } from "../xdr/reader.js";
import { XdrWriter } from "../xdr/writer.js";
import type { AuthContext, AuthFlavorEntry } from "./registry.js";

/**
 * AUTH_SYS (RFC 5531 §10.2): the credential is an authsys_parms, encoded once per client; a
 * server decodes it into `call.authSys` before verifying (a body that does not decode is
 * AUTH_BADCRED), and the verifier must be AUTH_NONE (else AUTH_BADVERF). The wire code lives
 * with the other message codecs in rpc/message.ts.
 */
export const authSysFlavor: AuthFlavorEntry<AuthSysParams> = Object.freeze({
  flavor: AuthFlavor.AUTH_SYS,
  name: "AUTH_SYS",
  credential: (params: AuthSysParams): OpaqueAuth => encodeAuthSys(params, new XdrWriter(512)),
  verify: (_cred: OpaqueAuth, verf: OpaqueAuth, call: AuthContext) =>
    call.authSys === undefined ? AuthStat.AUTH_BADCRED : verf.flavor === AuthFlavor.AUTH_NONE ? undefined : AuthStat.AUTH_BADVERF,
});

/** The authsys_parms in a credential body, or undefined when it does not decode. */
export function decodeAuthSys(body: Uint8Array, reader: XdrReader): AuthSysParams | undefined {
  try {
    return readAuthSys(body, reader);
  } catch {
    return undefined;
  }
}

/** The most supplementary groups AUTH_SYS carries (RFC 5531 §10.2: `gids<16>`). */
const maxGids = 16;

/**
 * The AUTH_SYS parameters of this process, as libtirpc's `authunix_create_default` builds
 * them: the host name (cut to 255 bytes), the effective uid and gid, the first 16
 * supplementary groups, and the time as the stamp. POSIX only: where the process has no uid
 * (Windows) it throws a TypeError.
 */
export function processAuthSys(): AuthSysParams {
  if (typeof process.geteuid !== "function" || typeof process.getegid !== "function") {
    throw new TypeError("processAuthSys: this platform has no POSIX user and group ids");
  }
  const gid = process.getegid();
  const groups = (process.getgroups?.() ?? []).filter((g) => g >>> 0 === g);
  let machinename = hostname();
  while (Buffer.byteLength(machinename) > 255) machinename = machinename.slice(0, -1);
  return Object.freeze({
    stamp: Math.floor(Date.now() / 1000) >>> 0,
    machinename,
    uid: process.geteuid(),
    gid,
    gids: Object.freeze(groups.slice(0, maxGids)),
  });
}
