import { XdrError } from "../xdr/error.js";
import { padded } from "../xdr/pad.js";
import type { XdrReader } from "../xdr/reader.js";
import type { XdrWriter } from "../xdr/writer.js";

/**
 * ONC RPC version 2 messages (RFC 5531 §9): the call and reply headers that precede the
 * XDR-encoded arguments and results, and the authentication flavors AUTH_NONE and AUTH_SYS
 * (§8.1, §8.2). Written by hand over the XDR reader and writer: the headers are on every
 * call's path and their layout is fixed.
 */

export const RPC_VERSION = 2;

export const MsgType = { CALL: 0, REPLY: 1 } as const;
export const ReplyStat = { MSG_ACCEPTED: 0, MSG_DENIED: 1 } as const;

export const AcceptStat = {
  SUCCESS: 0,
  PROG_UNAVAIL: 1,
  PROG_MISMATCH: 2,
  PROC_UNAVAIL: 3,
  GARBAGE_ARGS: 4,
  SYSTEM_ERR: 5,
} as const;
export type AcceptStat = (typeof AcceptStat)[keyof typeof AcceptStat];

export const RejectStat = { RPC_MISMATCH: 0, AUTH_ERROR: 1 } as const;

export const AuthFlavor = { AUTH_NONE: 0, AUTH_SYS: 1, AUTH_SHORT: 2, AUTH_DH: 3, RPCSEC_GSS: 6 } as const;

export const AuthStat = {
  AUTH_OK: 0,
  AUTH_BADCRED: 1,
  AUTH_REJECTEDCRED: 2,
  AUTH_BADVERF: 3,
  AUTH_REJECTEDVERF: 4,
  AUTH_TOOWEAK: 5,
  AUTH_INVALIDRESP: 6,
  AUTH_FAILED: 7,
  AUTH_KERB_GENERIC: 8,
  AUTH_TIMEEXPIRE: 9,
  AUTH_TKT_FILE: 10,
  AUTH_DECODE: 11,
  AUTH_NET_ADDR: 12,
  RPCSEC_GSS_CREDPROBLEM: 13,
  RPCSEC_GSS_CTXPROBLEM: 14,
} as const;
export type AuthStat = (typeof AuthStat)[keyof typeof AuthStat];

const authStatNames: readonly string[] = Object.keys(AuthStat);

/** "AUTH_TOOWEAK (5)", or "unknown auth_stat 99" for a value RFC 5531 §9 does not define. */
export function describeAuthStat(stat: number): string {
  const name = authStatNames[stat];
  return name === undefined ? `unknown auth_stat ${stat}` : `${name} (${stat})`;
}

/** The largest opaque_auth body (RFC 5531 §8.2). */
export const MAX_AUTH_BYTES = 400;

/** opaque_auth: a flavor and its body. */
export interface OpaqueAuth {
  readonly flavor: number;
  readonly body: Uint8Array;
}

export const AUTH_NONE: OpaqueAuth = Object.freeze({ flavor: AuthFlavor.AUTH_NONE, body: new Uint8Array(0) });

/** authsys_parms (RFC 5531 §8.2 / appendix A). */
export interface AuthSysParams {
  readonly stamp: number;
  readonly machinename: string;
  readonly uid: number;
  readonly gid: number;
  readonly gids: readonly number[];
}

/** Bytes an opaque_auth takes on the wire. */
export function authSize(a: OpaqueAuth): number {
  return 8 + padded(a.body.length);
}

export interface CallHeader {
  readonly xid: number;
  readonly rpcvers: number;
  readonly prog: number;
  readonly vers: number;
  readonly proc: number;
  readonly cred: OpaqueAuth;
  readonly verf: OpaqueAuth;
}

function writeAuth(w: XdrWriter, a: OpaqueAuth): void {
  w.uint(a.flavor);
  w.varOpaque(a.body, MAX_AUTH_BYTES);
}

const noBody = new Uint8Array(0);

function readAuth(r: XdrReader): OpaqueAuth {
  const o = r.take(8);
  const flavor = r.view.getUint32(o);
  // The usual credential and verifier are empty: no view, no object for them.
  if (r.view.getUint32(o + 4) === 0) return flavor === AuthFlavor.AUTH_NONE ? AUTH_NONE : { flavor, body: noBody };
  r.pos = o + 4;
  return { flavor, body: r.varOpaque(MAX_AUTH_BYTES, false) };
}

export function writeCallHeader(
  w: XdrWriter,
  xid: number,
  prog: number,
  vers: number,
  proc: number,
  cred: OpaqueAuth,
  verf: OpaqueAuth,
): void {
  const o = w.reserve(24);
  const dv = w.view;
  dv.setUint32(o, xid);
  dv.setUint32(o + 4, MsgType.CALL);
  dv.setUint32(o + 8, RPC_VERSION);
  dv.setUint32(o + 12, prog);
  dv.setUint32(o + 16, vers);
  dv.setUint32(o + 20, proc);
  writeAuth(w, cred);
  writeAuth(w, verf);
}

/**
 * Reads a call header. Throws XdrError if it is not a well-formed call; an rpcvers other
 * than 2 is returned for the server to answer RPC_MISMATCH.
 */
export function readCallHeader(r: XdrReader): CallHeader {
  const o = r.take(24);
  const dv = r.view;
  const xid = dv.getUint32(o);
  const type = dv.getUint32(o + 4);
  if (type !== MsgType.CALL) throw new XdrError("decode", o + 4 - r.start, `message type ${type} is not CALL`, ["rpc_msg", "mtype"]);
  const rpcvers = dv.getUint32(o + 8);
  const prog = dv.getUint32(o + 12);
  const vers = dv.getUint32(o + 16);
  const proc = dv.getUint32(o + 20);
  const cred = readAuth(r);
  const verf = readAuth(r);
  return { xid, rpcvers, prog, vers, proc, cred, verf };
}

/** A reply as the client sees it. */
export type ReplyHeader =
  | { readonly kind: "accepted"; readonly xid: number; readonly verf: OpaqueAuth; readonly stat: AcceptStat; readonly low?: number; readonly high?: number }
  | { readonly kind: "rpc-mismatch"; readonly xid: number; readonly low: number; readonly high: number }
  /** `stat` as sent: a value RFC 5531 does not define is still an authentication error, named by its number. */
  | { readonly kind: "auth-error"; readonly xid: number; readonly stat: number };

/** Writes an accepted reply's header; for PROG_MISMATCH also the supported versions. */
export function writeAcceptedReply(
  w: XdrWriter,
  xid: number,
  verf: OpaqueAuth,
  stat: AcceptStat,
  mismatch?: { low: number; high: number },
): void {
  const o = w.reserve(12);
  const dv = w.view;
  dv.setUint32(o, xid);
  dv.setUint32(o + 4, MsgType.REPLY);
  dv.setUint32(o + 8, ReplyStat.MSG_ACCEPTED);
  writeAuth(w, verf);
  w.uint(stat);
  if (stat === AcceptStat.PROG_MISMATCH) {
    w.uint(mismatch?.low ?? 0);
    w.uint(mismatch?.high ?? 0);
  }
}

/** Bytes an accepted reply header takes before the results. */
export function acceptedReplySize(verf: OpaqueAuth): number {
  return 16 + authSize(verf);
}

export function writeRejectedReply(
  w: XdrWriter,
  xid: number,
  reject: { kind: "rpc-mismatch"; low: number; high: number } | { kind: "auth-error"; stat: number },
): void {
  w.uint(xid);
  w.uint(MsgType.REPLY);
  w.uint(ReplyStat.MSG_DENIED);
  if (reject.kind === "rpc-mismatch") {
    w.uint(RejectStat.RPC_MISMATCH);
    w.uint(reject.low);
    w.uint(reject.high);
  } else {
    w.uint(RejectStat.AUTH_ERROR);
    w.uint(reject.stat);
  }
}

/** Reads a reply header; the results, if any, follow at `r.pos`. */
export function readReplyHeader(r: XdrReader): ReplyHeader {
  const xid = r.uint();
  const type = r.uint();
  if (type !== MsgType.REPLY) throw r.error(`message type ${type} is not REPLY`, r.pos - 4);
  const stat = r.uint();
  if (stat === ReplyStat.MSG_ACCEPTED) {
    const verf = readAuth(r);
    const accept = r.uint();
    if (accept > AcceptStat.SYSTEM_ERR) throw r.error(`unknown accept_stat ${accept}`, r.pos - 4);
    if (accept === AcceptStat.PROG_MISMATCH) return { kind: "accepted", xid, verf, stat: accept, low: r.uint(), high: r.uint() };
    return { kind: "accepted", xid, verf, stat: accept as AcceptStat };
  }
  if (stat !== ReplyStat.MSG_DENIED) throw r.error(`unknown reply_stat ${stat}`, r.pos - 4);
  const reject = r.uint();
  if (reject === RejectStat.RPC_MISMATCH) return { kind: "rpc-mismatch", xid, low: r.uint(), high: r.uint() };
  if (reject !== RejectStat.AUTH_ERROR) throw r.error(`unknown reject_stat ${reject}`, r.pos - 4);
  return { kind: "auth-error", xid, stat: r.uint() };
}

// ---- AUTH_SYS --------------------------------------------------------------------------

/** AUTH_SYS credentials (RFC 5531 §8.2), encoded once per client rather than per call. */
export function authSys(params: AuthSysParams, writer: XdrWriter): OpaqueAuth {
  writer.reset();
  writer.uint(params.stamp >>> 0);
  writer.string(params.machinename, 255);
  writer.uint(params.uid);
  writer.uint(params.gid);
  writer.arrayLength(params.gids.length, 16);
  for (const g of params.gids) writer.uint(g);
  return { flavor: AuthFlavor.AUTH_SYS, body: writer.bytes().slice() };
}

export function readAuthSys(body: Uint8Array, reader: XdrReader): AuthSysParams {
  reader.reset(body);
  const stamp = reader.uint();
  const machinename = reader.string(255);
  const uid = reader.uint();
  const gid = reader.uint();
  const n = reader.arrayLength(16, 4);
  const gids: number[] = [];
  for (let i = 0; i < n; i++) gids.push(reader.uint());
  reader.finish();
  return { stamp, machinename, uid, gid, gids };
}
