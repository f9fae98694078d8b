import fc from "fast-check";
import type { Type } from "../../compiler/model.js";
import { fromXdr, toXdr, XdrError, type ProcedureDescription, type ServiceDescription } from "../../runtime/index.js";
import { arbitraryOf } from "../arbitrary.js";
import { compile } from "../generated.js";
import { exampleFile } from "../example.js";
import { hex, interestingWord, mutate, mutation, xdrLikeBytes } from "./seed.js";
import { semantics, type ProcedureKey } from "./semantics.js";
import { concat, words } from "../bytes.js";

/**
 * An independent model of an RPC server (RFC 5531 §9) for the server fuzzer: from the bytes
 * of a message alone, the reply a server that registered `services` with the handlers of
 * semantics.ts must send — or that it must send none. It parses the call header itself (not
 * with the runtime's parser), so the runtime's header code is checked, not trusted.
 *
 * Where RFC 5531 leaves a choice, every acceptable reply is listed: a credential flavor the
 * server does not verify may be refused AUTH_REJECTEDCRED or AUTH_BADCRED.
 */

export const MAX_AUTH_BYTES = 400;

/** What must happen to one message. */
export type Expected =
  | { readonly drop: true; readonly why: string }
  | {
      readonly drop: false;
      readonly why: string;
      /** The acceptable replies, as hex. */
      readonly replies: readonly string[];
      /** The handler that must run for it: program/version/procedure. */
      readonly runs: string | undefined;
    };

function u32(m: Uint8Array, o: number): number {
  return ((m[o]! << 24) | (m[o + 1]! << 16) | (m[o + 2]! << 8) | m[o + 3]!) >>> 0;
}

const pad = (n: number) => (n + 3) & ~3;



const REPLY = 1;
/** An accepted reply: the verifier is AUTH_NONE (flavor 0, empty body). */
const accepted = (xid: number, stat: number, ...more: number[]) => words(xid, REPLY, 0, 0, 0, stat, ...more);
const denied = (xid: number, ...more: number[]) => words(xid, REPLY, 1, ...more);

export const AcceptStat = { SUCCESS: 0, PROG_UNAVAIL: 1, PROG_MISMATCH: 2, PROC_UNAVAIL: 3, GARBAGE_ARGS: 4, SYSTEM_ERR: 5 } as const;
export const AuthStat = { AUTH_BADCRED: 1, AUTH_REJECTEDCRED: 2, AUTH_BADVERF: 3, AUTH_REJECTEDVERF: 4 } as const;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** authsys_parms (RFC 5531 §10.2): the whole body, machinename<255> valid UTF-8 (as the runtime reads strings), gids<16>. */
function validAuthSys(b: Uint8Array): boolean {
  const n = b.length;
  if (n < 8) return false;
  const nameLength = u32(b, 4);
  if (nameLength > 255 || 8 + pad(nameLength) + 12 > n) return false;
  try {
    utf8.decode(b.subarray(8, 8 + nameLength));
  } catch {
    return false;
  }
  const o = 8 + pad(nameLength) + 8;
  const gids = u32(b, o);
  return gids <= 16 && o + 4 + 4 * gids === n;
}

function key(program: number, version: number, procedure: number): string {
  return `${program}/${version}/${procedure}`;
}

/**
 * An `authenticate` hook as the model sees it: given the AUTH_SYS uid (if the credential is
 * AUTH_SYS), "throw" if the hook throws, an auth_stat if it refuses, undefined if it accepts.
 */
export type HookRule = (uid: number | undefined) => "throw" | number | undefined;

export class ServerModel {
  private readonly programs = new Map<number, Map<number, ServiceDescription>>();

  constructor(
    readonly services: readonly ServiceDescription[],
    /** The server's `authenticate` hook, run after the credential's flavor is verified (none: no hook). */
    private readonly hook?: HookRule,
  ) {
    for (const s of services) {
      let versions = this.programs.get(s.program);
      if (versions === undefined) this.programs.set(s.program, (versions = new Map()));
      versions.set(s.version, s);
    }
  }

  expect(m: Uint8Array): Expected {
    const n = m.length;
    if (n < 24) return { drop: true, why: "shorter than a call header" };
    const xid = u32(m, 0);
    if (u32(m, 4) !== 0) return { drop: true, why: `message type ${u32(m, 4)}` };
    const rpcvers = u32(m, 8);
    const prog = u32(m, 12);
    const vers = u32(m, 16);
    const proc = u32(m, 20);
    let o = 24;
    const auth: { flavor: number; body: Uint8Array }[] = [];
    for (const which of ["credential", "verifier"]) {
      if (o + 8 > n) return { drop: true, why: `${which} cut short` };
      const length = u32(m, o + 4);
      if (length > MAX_AUTH_BYTES) return { drop: true, why: `${which} body of ${length} bytes` };
      if (o + 8 + pad(length) > n) return { drop: true, why: `${which} body past the end` };
      auth.push({ flavor: u32(m, o), body: m.subarray(o + 8, o + 8 + length) });
      o += 8 + pad(length);
    }
    const [cred, verf] = auth as [{ flavor: number; body: Uint8Array }, { flavor: number; body: Uint8Array }];
    const answer = (why: string, ...replies: Uint8Array[]): Expected => ({ drop: false, why, replies: replies.map(hex), runs: undefined });
    if (rpcvers !== 2) return answer("RPC_MISMATCH", denied(xid, 0, 2, 2));
    const authError = (why: string, ...stats: number[]) => answer(why, ...stats.map((s) => denied(xid, 1, s)));
    if (cred.flavor === 0 || cred.flavor === 1) {
      if (cred.flavor === 1 && !validAuthSys(cred.body)) return authError("AUTH_SYS body", AuthStat.AUTH_BADCRED);
      if (verf.flavor !== 0) return authError("verifier flavor", AuthStat.AUTH_BADVERF, AuthStat.AUTH_REJECTEDVERF);
    } else {
      return authError(`credential flavor ${cred.flavor}`, AuthStat.AUTH_REJECTEDCRED, AuthStat.AUTH_BADCRED);
    }
    if (this.hook !== undefined) {
      const verdict = this.hook(cred.flavor === 1 ? u32(cred.body, 8 + pad(u32(cred.body, 4))) : undefined);
      // A hook that throws is the server's failure, answered SYSTEM_ERR for that call alone.
      if (verdict === "throw") return answer("hook threw", accepted(xid, AcceptStat.SYSTEM_ERR));
      if (verdict !== undefined && verdict !== 0) return authError(`hook refused (${verdict})`, verdict);
    }
    const versions = this.programs.get(prog);
    if (versions === undefined) return answer("PROG_UNAVAIL", accepted(xid, AcceptStat.PROG_UNAVAIL));
    const service = versions.get(vers);
    if (service === undefined) {
      const numbers = [...versions.keys()];
      return answer("PROG_MISMATCH", accepted(xid, AcceptStat.PROG_MISMATCH, Math.min(...numbers), Math.max(...numbers)));
    }
    if (proc === 0) return answer("NULL", accepted(xid, AcceptStat.SUCCESS));
    const entry = Object.entries(service.procedures).find(([, p]) => p.number === proc);
    if (entry === undefined || !(entry[0] in semantics)) return answer("PROC_UNAVAIL", accepted(xid, AcceptStat.PROC_UNAVAIL));
    const [name, description] = entry as [ProcedureKey, ProcedureDescription];
    let args: unknown;
    try {
      args = fromXdr(description.args, m.subarray(o));
    } catch (e) {
      if (!(e instanceof XdrError)) throw e;
      return answer("GARBAGE_ARGS", accepted(xid, AcceptStat.GARBAGE_ARGS));
    }
    const runs = key(prog, vers, proc);
    let reply: Uint8Array;
    try {
      const f = semantics[name] as (...a: unknown[]) => unknown;
      const value = description.arity === 0 ? f() : description.arity === 1 ? f(args) : f(...(args as unknown[]));
      reply = concat(accepted(xid, AcceptStat.SUCCESS), toXdr(description.result, value));
    } catch {
      reply = accepted(xid, AcceptStat.SYSTEM_ERR);
    }
    return { drop: false, why: name, replies: [hex(reply)], runs };
  }
}

/** Handlers with the semantics that count their executions by program/version/procedure. */
export function countingHandlers(service: ServiceDescription, counts: Map<string, number>): Record<string, (...a: unknown[]) => unknown> {
  const out: Record<string, (...a: unknown[]) => unknown> = {};
  for (const [name, description] of Object.entries(service.procedures)) {
    if (!(name in semantics)) continue;
    const f = semantics[name as ProcedureKey] as (...a: unknown[]) => unknown;
    const k = key(service.program, service.version, description.number);
    out[name] = (...a: unknown[]) => {
      counts.set(k, (counts.get(k) ?? 0) + 1);
      return f(...a.slice(0, description.arity));
    };
  }
  return out;
}

// ---- calls ----------------------------------------------------------------------------------

export interface OpaqueAuthParts {
  readonly flavor: number;
  readonly body: Uint8Array;
}

export interface CallParts {
  readonly rpcvers: number;
  readonly prog: number;
  readonly vers: number;
  readonly proc: number;
  readonly cred: OpaqueAuthParts;
  readonly verf: OpaqueAuthParts;
  readonly args: Uint8Array;
}

function auth(a: OpaqueAuthParts): Uint8Array {
  return concat(words(a.flavor, a.body.length), a.body, new Uint8Array(pad(a.body.length) - a.body.length));
}

export function encodeCall(xid: number, c: CallParts): Uint8Array {
  return concat(words(xid, 0, c.rpcvers, c.prog, c.vers, c.proc), auth(c.cred), auth(c.verf), c.args);
}

/** Sets a message's xid (its first word), if it has one. */
export function withXid(m: Uint8Array, xid: number): Uint8Array {
  const out = new Uint8Array(m);
  if (out.length >= 4) new DataView(out.buffer, out.byteOffset).setUint32(0, xid >>> 0);
  return out;
}

const authSysBody = fc
  .record({
    stamp: fc.integer({ min: 0, max: 0xffff_ffff }),
    name: fc.oneof(fc.string({ maxLength: 20 }), fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b).toString("latin1"))),
    uid: interestingWord,
    gid: interestingWord,
    gids: fc.array(interestingWord, { maxLength: 16 }),
  })
  .map(({ stamp, name, uid, gid, gids }) => {
    const bytes = Buffer.from(name.replace(/[\ud800-\udfff]/g, "?"), "utf8").subarray(0, 255);
    return concat(words(stamp, bytes.length), bytes, new Uint8Array(pad(bytes.length) - bytes.length), words(uid, gid, gids.length, ...gids));
  });

const credential: fc.Arbitrary<OpaqueAuthParts> = fc.oneof(
  { arbitrary: fc.constant({ flavor: 0, body: new Uint8Array(0) }), weight: 10 },
  { arbitrary: authSysBody.map((body) => ({ flavor: 1, body })), weight: 5 },
  { arbitrary: fc.tuple(authSysBody, fc.array(mutation, { minLength: 1, maxLength: 2 })).map(([b, ms]) => ({ flavor: 1, body: mutate(b, ms).subarray(0, MAX_AUTH_BYTES) })), weight: 1 },
  {
    arbitrary: fc.record({ flavor: fc.oneof(fc.constantFrom(2, 3, 6, 99, 390003), interestingWord), body: fc.uint8Array({ maxLength: 64 }) }),
    weight: 1,
  },
);

const verifier: fc.Arbitrary<OpaqueAuthParts> = fc.oneof(
  { arbitrary: fc.constant({ flavor: 0, body: new Uint8Array(0) }), weight: 16 },
  { arbitrary: fc.record({ flavor: fc.constant(0), body: fc.uint8Array({ maxLength: 8 }) }), weight: 1 },
  { arbitrary: fc.record({ flavor: interestingWord, body: fc.uint8Array({ maxLength: 16 }) }), weight: 1 },
);

/** Valid arguments of each procedure of the example, by number, encoded. */
export function exampleArguments(service: ServiceDescription): Map<number, fc.Arbitrary<Uint8Array>> {
  const model = compile(exampleFile).model;
  const version = model.programs[0]!.versions[0]!;
  const out = new Map<number, fc.Arbitrary<Uint8Array>>();
  for (const p of version.procedures) {
    const description = Object.values(service.procedures).find((d) => d.number === p.number)!;
    const values = p.args.filter((t: Type) => t.kind !== "void");
    const arb: fc.Arbitrary<unknown> =
      values.length === 0 ? fc.constant(undefined) : values.length === 1 ? arbitraryOf(values[0]!) : fc.tuple(...values.map((t) => arbitraryOf(t)));
    out.set(p.number, arb.map((v) => toXdr(description.args, v).slice()));
  }
  return out;
}

/**
 * Calls as a fuzzer sends them: mostly well-formed calls of the registered programs with
 * valid arguments, then edited — wrong rpcvers, program, version or procedure, random
 * credentials and verifiers, random or mutated arguments, and mutations of the whole
 * message (bit flips, words, truncation, insertion, deletion).
 */
export function fuzzedCall(
  programs: readonly number[],
  versions: readonly number[],
  args: Map<number, fc.Arbitrary<Uint8Array>>,
  wrong: { readonly programs: readonly number[]; readonly versions: readonly number[] },
): fc.Arbitrary<Uint8Array> {
  const procs = [...args.keys()];
  const parts: fc.Arbitrary<CallParts> = fc
    .record({
      rpcvers: fc.oneof({ arbitrary: fc.constant(2), weight: 19 }, { arbitrary: interestingWord, weight: 1 }),
      prog: fc.oneof(
        { arbitrary: fc.constantFrom(...programs), weight: 18 },
        { arbitrary: fc.constantFrom(...wrong.programs), weight: 1 },
        { arbitrary: interestingWord, weight: 1 },
      ),
      vers: fc.oneof(
        { arbitrary: fc.constantFrom(...versions), weight: 18 },
        { arbitrary: fc.constantFrom(...wrong.versions), weight: 1 },
        { arbitrary: interestingWord, weight: 1 },
      ),
      proc: fc.oneof({ arbitrary: fc.constantFrom(...procs), weight: 18 }, { arbitrary: fc.oneof(fc.integer({ min: 10, max: 12 }), interestingWord), weight: 1 }),
      cred: credential,
      verf: verifier,
      argsKind: fc.constantFrom("valid", "valid", "valid", "valid", "mutated", "random"),
      argsSeed: fc.nat(),
      mutations: fc.array(mutation, { maxLength: 3 }),
      randomArgs: xdrLikeBytes(12),
    })
    .chain((r) => {
      const valid = args.get(r.proc) ?? args.get(procs[r.argsSeed % procs.length]!)!;
      const body =
        r.argsKind === "random" ? fc.constant(r.randomArgs) : r.argsKind === "mutated" ? valid.map((b) => mutate(b, r.mutations)) : valid;
      return body.map((a) => ({ rpcvers: r.rpcvers, prog: r.prog, vers: r.vers, proc: r.proc, cred: r.cred, verf: r.verf, args: a }));
    });
  return fc.oneof(
    { arbitrary: parts.map((p) => encodeCall(0, p)), weight: 6 },
    { arbitrary: fc.tuple(parts, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([p, ms]) => mutate(encodeCall(0, p), ms)), weight: 3 },
    { arbitrary: xdrLikeBytes(20), weight: 1 },
  );
}

/** Reads back-to-back records (RFC 5531 §11) from a byte stream; returns the messages and the unread rest. */
export function splitRecords(stream: Uint8Array): { messages: Uint8Array[]; rest: Uint8Array } {
  const messages: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  let i = 0;
  while (i + 4 <= stream.length) {
    const mark = u32(stream, i);
    const n = mark & 0x7fff_ffff;
    if (i + 4 + n > stream.length) break;
    parts.push(stream.subarray(i + 4, i + 4 + n));
    i += 4 + n;
    if (mark & 0x8000_0000) {
      messages.push(concat(...parts));
      parts = [];
    }
  }
  return { messages, rest: stream.subarray(i) };
}

/** The message in one last-fragment record. */
export function frame(m: Uint8Array): Uint8Array {
  return concat(words(0x8000_0000 | m.length), m);
}

export { u32 };
