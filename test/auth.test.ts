import { connect as netConnect, type Socket } from "node:net";
import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuthFlavor,
  authRegistry,
  AuthStat,
  authSysFlavor,
  connect,
  defaultAuthFlavors,
  defaultVerifiers,
  createServer,
  processAuthSys,
  RpcError,
  XdrWriter,
  type AuthFlavorEntry,
  type AuthSysParams,
  type CallContext,
  type Channel,
  type ConnectOptions,
  type FlavorParams,
  type HandlersOf,
  type OpaqueAuth,
  type ServerOptions,
  type ServiceDescription,
} from "../runtime/index.js";
import { AUTH_NONE, writeCallHeader } from "../runtime/rpc/message.js";
import { exampleHandlers, loadExample, type Example } from "./example.js";

/**
 * Access that fails closed (RFC 5531 §8, §9): a credential flavor the server has no verifier
 * for is refused whether or not an `authenticate` hook is installed; a verifier the
 * application registers admits its flavor; AUTH_NONE and AUTH_SYS calls must carry an
 * AUTH_NONE verifier; a verifier or hook that throws costs its own call a SYSTEM_ERR and
 * nothing else — not the connection, not the other calls pipelined on it.
 */

let example: Example;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  example = await loadExample("synthesized");
});

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const junk = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 89 + seed) & 0xff);
/** Flavors nobody verifies by default, with bodies that mean nothing. */
const unverified: OpaqueAuth[] = [
  { flavor: AuthFlavor.AUTH_DH, body: junk(40, 3) },
  { flavor: AuthFlavor.RPCSEC_GSS, body: junk(28, 6) },
  { flavor: 99, body: junk(12, 99) },
  { flavor: 0xffffffff, body: new Uint8Array(0) },
];
const sys = { stamp: 1, machinename: "host", uid: 1000, gid: 100, gids: [] };

async function failure(promise: Promise<unknown>): Promise<RpcError> {
  const e = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(RpcError);
  return e as RpcError;
}

interface Served {
  readonly port: number;
  readonly calls: Map<string, number>;
  readonly seen: CallContext[];
}

/** A real server on 127.0.0.1; `calls` counts handler executions, `seen` the contexts EXPROC_ADD saw. */
async function serve(transport: "tcp" | "udp", options: ServerOptions = {}, handlers?: Record<string, unknown>): Promise<Served> {
  const calls = new Map<string, number>();
  const seen: CallContext[] = [];
  const base = exampleHandlers(calls) as unknown as Record<string, unknown>;
  const all = {
    ...base,
    exprocAdd: (a: number, b: number, call: CallContext) => {
      calls.set("add", (calls.get("add") ?? 0) + 1);
      seen.push(call);
      return a + b;
    },
    ...handlers,
  } as unknown as HandlersOf<ServiceDescription>;
  const server = createServer(options).register(example.service, all);
  const { port } = await server.listen({ transport });
  cleanup.push(() => server.close());
  return { port, calls, seen };
}

async function channelTo(transport: "tcp" | "udp", port: number, options: Partial<ConnectOptions> = {}): Promise<Channel> {
  const channel = await connect({ ...options, transport, port, retransmitMs: 200 } as ConnectOptions);
  cleanup.push(() => channel.close());
  return channel;
}

function add(channel: Channel, auth: ClientAuth, a = 1, b = 2): Promise<unknown> {
  return channel.call(example.service, example.service.procedures.exprocAdd!, [a, b], { auth, timeoutMs: 5000 }, undefined);
}
type ClientAuth = OpaqueAuth | AuthSysParams | FlavorParams | undefined;

describe.each(["tcp", "udp"] as const)("fail closed, over %s", (transport) => {
  it("refuses flavors nobody verifies with AUTH_REJECTEDCRED, with or without a hook; nothing runs", async () => {
    const judged: number[] = [];
    for (const options of [{}, { authenticate: (call: CallContext) => void judged.push(call.cred.flavor) }] as ServerOptions[]) {
      const s = await serve(transport, options);
      const channel = await channelTo(transport, s.port);
      for (const cred of unverified) {
        const e = await failure(add(channel, cred));
        expect([e.status, e.authStat]).toEqual(["AUTH_ERROR", AuthStat.AUTH_REJECTEDCRED]);
        expect(e.message).toMatch(/AUTH_REJECTEDCRED \(2\)$/);
      }
      expect(s.calls.get("add")).toBeUndefined();
      // The flavors the server knows still pass, and reach the hook.
      expect(await add(channel, undefined)).toBe(3);
      expect(await add(channel, sys)).toBe(3);
      expect(s.calls.get("add")).toBe(2);
    }
    expect(judged).toEqual([AuthFlavor.AUTH_NONE, AuthFlavor.AUTH_SYS]); // never an unverified flavor
  });

  it("admits a flavor the application registers a verifier for; the hook judges after it", async () => {
    const good = new TextEncoder().encode("open sesame!");
    const s = await serve(transport, {
      verifiers: {
        99: (cred, verf) => {
          if (verf.flavor !== AuthFlavor.AUTH_NONE) return AuthStat.AUTH_BADVERF;
          return cred.body.length === good.length && cred.body.every((x, i) => x === good[i]) ? undefined : AuthStat.AUTH_BADCRED;
        },
      },
      // Only verified calls get here: a junk flavor-99 body never does.
      authenticate: (call) => (call.cred.flavor === 99 && call.procedure === example.service.procedures.exprocMove!.number ? AuthStat.AUTH_TOOWEAK : undefined),
    });
    const channel = await channelTo(transport, s.port);
    expect(await add(channel, { flavor: 99, body: good }, 40, 2)).toBe(42);
    expect(s.seen.at(-1)!.cred).toEqual({ flavor: 99, body: good });
    expect(s.seen.at(-1)!.authSys).toBeUndefined();
    const bad = await failure(add(channel, { flavor: 99, body: junk(12, 1) }));
    expect([bad.status, bad.authStat]).toEqual(["AUTH_ERROR", AuthStat.AUTH_BADCRED]);
    const move = channel.call(example.service, example.service.procedures.exprocMove!, [{ x: 1, y: 1 }, 1, 1], { auth: { flavor: 99, body: good } }, undefined);
    expect((await failure(move)).authStat).toBe(AuthStat.AUTH_TOOWEAK);
    for (const cred of unverified.filter((c) => c.flavor !== 99)) {
      expect((await failure(add(channel, cred))).authStat).toBe(AuthStat.AUTH_REJECTEDCRED);
    }
    expect(s.calls.get("add")).toBe(1);
  });

  it("a verifier or hook that throws, or returns what is not an auth_stat, answers that call SYSTEM_ERR and serving goes on", async () => {
    const errors: unknown[] = [];
    let answer: unknown;
    const s = await serve(transport, {
      verifiers: {
        77: () => {
          throw new Error("the key server is down");
        },
      },
      authenticate: (call) => {
        if (call.authSys?.uid === 13) throw new Error("unlucky");
        return call.authSys?.uid === 14 ? (answer as AuthStat) : undefined;
      },
      onError: (e) => errors.push(e),
    });
    const channel = await channelTo(transport, s.port);
    expect((await failure(add(channel, { flavor: 77, body: junk(8, 7) }))).status).toBe("SYSTEM_ERR");
    expect((await failure(add(channel, { ...sys, uid: 13 }))).status).toBe("SYSTEM_ERR");
    for (const value of ["no", 2.5, -1, 2 ** 32, {}]) {
      answer = value;
      expect((await failure(add(channel, { ...sys, uid: 14 }))).status).toBe("SYSTEM_ERR");
    }
    answer = 15; // not one RFC 5531 names, but an auth_stat: passed on as it is
    expect((await failure(add(channel, { ...sys, uid: 14 }))).authStat).toBe(15);
    expect(errors.map((e) => (e as Error).message)).toEqual([
      "the key server is down",
      "unlucky",
      ...["no", "2.5", "-1", "4294967296", "[object Object]"].map((v) => `the authentication of program ${example.service.program} procedure 1 returned ${v}, not an auth_stat`),
    ]);
    expect(s.calls.get("add")).toBeUndefined();
    expect(await add(channel, sys)).toBe(3);
  });
});

// ---- raw calls over one TCP connection ----------------------------------------------------

function callBytes(xid: number, proc: number, cred: OpaqueAuth, verf: OpaqueAuth, args: number[]): Uint8Array {
  const w = new XdrWriter(512);
  w.uint(0); // the record mark, filled in below
  writeCallHeader(w, xid, example.service.program, example.service.version, proc, cred, verf);
  for (const a of args) w.int(a);
  const bytes = w.bytes().slice();
  new DataView(bytes.buffer).setUint32(0, (0x80000000 | (bytes.length - 4)) >>> 0);
  return bytes;
}

interface Reply {
  readonly xid: number;
  /** "accepted:<accept_stat>" or "denied:<reject_stat>:<stat>" */
  readonly verdict: string;
  /** The int result of a SUCCESS. */
  readonly result: number | undefined;
}

function parse(m: Buffer): Reply {
  const xid = m.readUInt32BE(0);
  if (m.readUInt32BE(8) === 1) return { xid, verdict: `denied:${m.readUInt32BE(12)}:${m.readUInt32BE(16)}`, result: undefined };
  const stat = m.readUInt32BE(20);
  return { xid, verdict: `accepted:${stat}`, result: stat === 0 && m.length >= 28 ? m.readInt32BE(24) : undefined };
}

/** A client socket that sends raw records and collects the replies. */
class RawTcp {
  readonly replies: Reply[] = [];
  closed = false;
  private buffered = Buffer.alloc(0);
  private wake: (() => void) | undefined;

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 4) {
        const n = this.buffered.readUInt32BE(0) & 0x7fffffff;
        if (this.buffered.length < 4 + n) break;
        this.replies.push(parse(this.buffered.subarray(4, 4 + n)));
        this.buffered = this.buffered.subarray(4 + n);
      }
      this.wake?.();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on("error", () => {});
  }

  static async open(port: number): Promise<RawTcp> {
    const socket = netConnect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const raw = new RawTcp(socket);
    cleanup.push(() => void socket.destroy());
    return raw;
  }

  /** Sends the records in one write (one segment: the server reads them as one chunk). */
  send(...records: Uint8Array[]): void {
    this.socket.write(Buffer.concat(records));
  }

  /** Waits until `n` replies came (or `ms` passed, or the connection closed). */
  async until(n: number, ms = 3000): Promise<Reply[]> {
    const deadline = Date.now() + ms;
    while (this.replies.length < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.replies;
  }
}

const ADD = 1;
/** AUTH_SYS credentials for `uid` (RFC 5531 §10.2). */
const SYS = (uid: number): OpaqueAuth => {
  const out = new XdrWriter(64);
  out.uint(1); // stamp
  out.string("host", 255);
  out.uint(uid);
  out.uint(100);
  out.uint(0);
  return { flavor: AuthFlavor.AUTH_SYS, body: out.bytes().slice() };
};

describe("verifiers of a call, over TCP", () => {
  it("AUTH_NONE and AUTH_SYS calls carry an AUTH_NONE verifier (else AUTH_BADVERF); AUTH_SYS must decode (else AUTH_BADCRED)", async () => {
    const s = await serve("tcp");
    const raw = await RawTcp.open(s.port);
    const some: OpaqueAuth = { flavor: AuthFlavor.AUTH_NONE, body: junk(8, 1) };
    raw.send(
      callBytes(1, ADD, AUTH_NONE, { flavor: AuthFlavor.AUTH_SYS, body: SYS(5).body }, [1, 1]),
      callBytes(2, ADD, SYS(5), { flavor: AuthFlavor.RPCSEC_GSS, body: junk(16, 2) }, [1, 2]),
      callBytes(3, ADD, { flavor: AuthFlavor.AUTH_SYS, body: junk(20, 3) }, AUTH_NONE, [1, 3]),
      callBytes(4, ADD, some, AUTH_NONE, [1, 4]), // AUTH_NONE's body is undefined (RFC 5531 §10.1): ignored
      callBytes(5, ADD, SYS(5), some, [1, 5]),
      callBytes(6, ADD, { flavor: 99, body: junk(8, 6) }, AUTH_NONE, [1, 6]),
    );
    const replies = await raw.until(6);
    expect(replies.map((r) => [r.xid, r.verdict, r.result])).toEqual([
      [1, `denied:1:${AuthStat.AUTH_BADVERF}`, undefined],
      [2, `denied:1:${AuthStat.AUTH_BADVERF}`, undefined],
      [3, `denied:1:${AuthStat.AUTH_BADCRED}`, undefined],
      [4, "accepted:0", 5],
      [5, "accepted:0", 6],
      [6, `denied:1:${AuthStat.AUTH_REJECTEDCRED}`, undefined],
    ]);
    expect(s.calls.get("add")).toBe(2);
    expect(raw.closed).toBe(false);
  });

  it("an application's verifier for AUTH_NONE replaces the built-in one", async () => {
    const s = await serve("tcp", { verifiers: { [AuthFlavor.AUTH_NONE]: () => AuthStat.AUTH_TOOWEAK } });
    const raw = await RawTcp.open(s.port);
    raw.send(callBytes(1, ADD, AUTH_NONE, AUTH_NONE, [1, 1]), callBytes(2, ADD, SYS(7), AUTH_NONE, [1, 2]));
    expect((await raw.until(2)).map((r) => [r.xid, r.verdict])).toEqual([
      [1, `denied:1:${AuthStat.AUTH_TOOWEAK}`],
      [2, "accepted:0"],
    ]);
  });

  it("refuses verifier tables that are not flavors and functions", () => {
    expect(() => createServer({ verifiers: { ["x" as unknown as number]: () => undefined } })).toThrow(RangeError);
    expect(() => createServer({ verifiers: { [-1]: () => undefined } })).toThrow(RangeError);
    expect(() => createServer({ verifiers: { 99: 5 as unknown as () => undefined } })).toThrow(/verifiers\[99\] is not a function/);
  });
});

describe("a hook that throws costs one call, not the connection", () => {
  it("pipelined calls: the one the hook throws for is answered SYSTEM_ERR, every other exactly once, and the connection lives", async () => {
    const errors: { error: unknown; xid: number }[] = [];
    const s = await serve("tcp", {
      authenticate: (call) => {
        if (call.authSys?.uid === 13) throw new Error(`no uid 13 (xid ${call.xid})`);
        return undefined;
      },
      onError: (error, call) => errors.push({ error, xid: call.xid }),
    });
    const raw = await RawTcp.open(s.port);
    const uids = [1, 2, 13, 4, 5, 13, 7];
    raw.send(...uids.map((uid, i) => callBytes(100 + i, ADD, SYS(uid), AUTH_NONE, [i, 1000])));
    const replies = await raw.until(uids.length);
    await new Promise((resolve) => setTimeout(resolve, 50)); // nothing more comes
    expect(replies.map((r) => [r.xid, r.verdict, r.result])).toEqual(
      uids.map((uid, i) => [100 + i, uid === 13 ? "accepted:5" : "accepted:0", uid === 13 ? undefined : i + 1000]),
    );
    expect(s.calls.get("add")).toBe(5);
    expect(errors.map((e) => [e.xid, (e.error as Error).message])).toEqual([
      [102, "no uid 13 (xid 102)"],
      [105, "no uid 13 (xid 105)"],
    ]);
    // Same connection, later: served.
    raw.send(callBytes(200, ADD, SYS(1), AUTH_NONE, [20, 22]));
    expect((await raw.until(uids.length + 1)).at(-1)).toEqual({ xid: 200, verdict: "accepted:0", result: 42 });
    expect(raw.closed).toBe(false);
  });

  it("hooks that throw themselves (onError, onServe) change nothing a peer sees", async () => {
    let observed = 0;
    const s = await serve(
      "tcp",
      {
        authenticate: (call) => {
          if (call.authSys?.uid === 13) throw new Error("auth failed");
          return undefined;
        },
        onError: () => {
          throw new Error("the logger is broken too");
        },
        onServe: () => {
          observed++;
          throw new Error("so is the monitor");
        },
      },
      {
        // A handler whose promise rejects: its SYSTEM_ERR is sent from a promise callback, where a throw would be an unhandled rejection.
        exprocLookup: () => Promise.reject(new Error("lookup failed")),
      },
    );
    const raw = await RawTcp.open(s.port);
    const lookup = example.service.procedures.exprocLookup!.number;
    raw.send(
      callBytes(1, ADD, SYS(1), AUTH_NONE, [1, 1]),
      callBytes(2, ADD, SYS(13), AUTH_NONE, [1, 2]),
      callBytes(3, lookup, SYS(1), AUTH_NONE, [7]),
      callBytes(4, example.service.procedures.exprocFail!.number, SYS(1), AUTH_NONE, []),
      callBytes(5, ADD, SYS(1), AUTH_NONE, [1, 5]),
    );
    const replies = await raw.until(5);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The rejected lookup is answered after the others (a promise callback): order by xid.
    expect([...replies].sort((a, b) => a.xid - b.xid).map((r) => [r.xid, r.verdict])).toEqual([
      [1, "accepted:0"],
      [2, "accepted:5"],
      [3, "accepted:5"],
      [4, "accepted:5"],
      [5, "accepted:0"],
    ]);
    expect(observed).toBe(5);
    expect(raw.closed).toBe(false);
  });

  it("over UDP the call is answered SYSTEM_ERR (it was dropped), at once", async () => {
    const s = await serve("udp", {
      authenticate: () => {
        throw new Error("always");
      },
    });
    const channel = await channelTo("udp", s.port);
    const start = Date.now();
    expect((await failure(add(channel, sys))).status).toBe("SYSTEM_ERR");
    expect(Date.now() - start).toBeLessThan(2000);
  });
});

/**
 * A flavor of the test's own, under a number no standard flavor uses: its
 * credential is "token:" and a token; its verifier admits the one token it is given. One
 * entry, registered on a channel and a server, is all a new flavor takes.
 */
const TOY = 0x40000001;
function toyFlavor(token: string, built?: { count: number }): AuthFlavorEntry<{ token: string }> {
  const expected = new TextEncoder().encode(`token:${token}`);
  return {
    flavor: TOY,
    name: "AUTH_TOY",
    credential: (params) => {
      if (built !== undefined) built.count++;
      return { flavor: TOY, body: new TextEncoder().encode(`token:${params.token}`) };
    },
    verify: (cred, verf) => {
      if (verf.flavor !== AuthFlavor.AUTH_NONE) return AuthStat.AUTH_BADVERF;
      return cred.body.length === expected.length && cred.body.every((x, i) => x === expected[i]) ? undefined : AuthStat.AUTH_BADCRED;
    },
  };
}
const toy = (token: string): FlavorParams => ({ flavor: TOY, params: { token } });

describe.each(["tcp", "udp"] as const)("auth flavors in a registry, over %s", (transport) => {
  it("one registration gives a client its credential and a server its verifier; unregistered, the server refuses it", async () => {
    const flavor = toyFlavor("s3cret");
    const s = await serve(transport, { authFlavors: [flavor] });
    const channel = await channelTo(transport, s.port, { authFlavors: [flavor] });
    expect(await add(channel, toy("s3cret"), 40, 2)).toBe(42);
    expect(s.seen.at(-1)!.cred).toEqual({ flavor: TOY, body: new TextEncoder().encode("token:s3cret") });
    expect(s.seen.at(-1)!.authSys).toBeUndefined();
    const wrong = await failure(add(channel, toy("guess")));
    expect([wrong.status, wrong.authStat]).toEqual(["AUTH_ERROR", AuthStat.AUTH_BADCRED]);
    // The built-in flavors are still there beside it.
    expect(await add(channel, undefined)).toBe(3);
    expect(await add(channel, sys)).toBe(3);
    expect(s.calls.get("add")).toBe(3);

    // The same credential to a server that was not told of the flavor: refused, nothing runs (fail closed).
    const plain = await serve(transport);
    const other = await channelTo(transport, plain.port, { authFlavors: [flavor] });
    const refused = await failure(add(other, toy("s3cret")));
    expect([refused.status, refused.authStat]).toEqual(["AUTH_ERROR", AuthStat.AUTH_REJECTEDCRED]);
    expect(plain.calls.get("add")).toBeUndefined();
  });

  it("a registered flavor without a verifier is refused AUTH_REJECTEDCRED; `verifiers` goes over `authFlavors`", async () => {
    const { verify: _verify, ...clientOnly } = toyFlavor("s3cret");
    const s = await serve(transport, { authFlavors: [clientOnly] });
    const channel = await channelTo(transport, s.port, { authFlavors: [clientOnly] });
    expect((await failure(add(channel, toy("s3cret")))).authStat).toBe(AuthStat.AUTH_REJECTEDCRED);
    const over = await serve(transport, { authFlavors: [toyFlavor("s3cret")], verifiers: { [TOY]: () => AuthStat.AUTH_TOOWEAK } });
    const channel2 = await channelTo(transport, over.port, { authFlavors: [clientOnly] });
    expect((await failure(add(channel2, toy("s3cret")))).authStat).toBe(AuthStat.AUTH_TOOWEAK);
    expect(s.calls.get("add")).toBeUndefined();
    expect(over.calls.get("add")).toBeUndefined();
  });
});

describe("auth flavors in a registry: the client side", () => {
  it("builds a flavor's credential once per options object, not per call", async () => {
    const built = { count: 0 };
    const flavor = toyFlavor("s3cret", built);
    const s = await serve("tcp", { authFlavors: [flavor] });
    const channel = await channelTo("tcp", s.port, { authFlavors: [flavor] });
    const options = { auth: toy("s3cret"), timeoutMs: 5000 };
    for (let i = 0; i < 5; i++) expect(await channel.call(example.service, example.service.procedures.exprocAdd!, [i, 1], options, undefined)).toBe(i + 1);
    expect(built.count).toBe(1);
    expect(await add(channel, toy("s3cret"))).toBe(3); // a new options object: built again
    expect(built.count).toBe(2);
    expect(s.calls.get("add")).toBe(6);
  });

  it("a flavor the channel has no builder for rejects the call, unsent; a throwing builder likewise", async () => {
    const s = await serve("tcp", { authFlavors: [toyFlavor("s3cret")] });
    const channel = await channelTo("tcp", s.port);
    const e = await add(channel, toy("s3cret")).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toMatch(/flavor 1073741825 has no credential builder/);
    const throwing: AuthFlavorEntry<unknown> = {
      flavor: TOY,
      name: "AUTH_TOY",
      credential: () => {
        throw new RangeError("no token");
      },
    };
    const channel2 = await channelTo("tcp", s.port, { authFlavors: [throwing] });
    await expect(add(channel2, toy("s3cret"))).rejects.toThrow(/no token/);
    expect(s.calls.get("add")).toBeUndefined();
    // The channels still serve calls with credentials they can build.
    expect(await add(channel, sys)).toBe(3);
    expect(await add(channel2, undefined)).toBe(3);
  });

  it("an entry for AUTH_SYS replaces the built-in builder: AuthSysParams go through it", async () => {
    const s = await serve("tcp");
    const mine: AuthFlavorEntry<typeof sys> = { ...authSysFlavor, credential: (p) => authSysFlavor.credential!({ ...p, uid: p.uid + 1 }) };
    const channel = await channelTo("tcp", s.port, { authFlavors: [mine] });
    expect(await add(channel, sys)).toBe(3);
    expect(s.seen.at(-1)!.authSys).toEqual({ ...sys, uid: sys.uid + 1 });
  });
});

describe("AUTH_SYS from the client", () => {
  it("credentials that cannot be encoded reject the call CANNOT_ENCODE, unsent, as bad arguments do", async () => {
    const s = await serve("tcp");
    const channel = await channelTo("tcp", s.port);
    const bad = [
      { ...sys, gids: Array.from({ length: 17 }, (_, i) => i) },
      { ...sys, machinename: "m".repeat(256) },
      { ...sys, uid: -1 },
      { ...sys, uid: 1.5 },
    ];
    for (const params of bad) {
      const pending = add(channel, params); // a rejection, never a synchronous throw
      const e = await pending.then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(e).toBeInstanceOf(RpcError);
      expect((e as RpcError).status).toBe("CANNOT_ENCODE");
      expect((e as RpcError).message).toMatch(/credentials cannot be encoded/);
    }
    expect(s.calls.get("add")).toBeUndefined();
    expect(await add(channel, sys)).toBe(3);
  });

  it("processAuthSys() gives this process's ids and host, as the server sees them", async () => {
    const params = processAuthSys();
    expect(params.uid).toBe(process.geteuid!());
    expect(params.gid).toBe(process.getegid!());
    expect(params.gids.length).toBeLessThanOrEqual(16);
    expect(process.getgroups!()).toEqual(expect.arrayContaining([...params.gids]));
    expect(params.machinename).toBe(hostname().slice(0, params.machinename.length));
    expect(Math.abs(params.stamp - Date.now() / 1000)).toBeLessThan(5);
    const s = await serve("tcp");
    const channel = await channelTo("tcp", s.port);
    expect(await add(channel, params)).toBe(3);
    expect(s.seen.at(-1)!.authSys).toEqual({ ...params, gids: [...params.gids] });
  });
});

describe("auth flavors in a registry: registries are per server and channel", () => {
  it("registering changes no default: the built-in entries, their verifiers and a fresh registry stay as they were", async () => {
    const before = [...defaultAuthFlavors];
    createServer({ authFlavors: [toyFlavor("a")] });
    const s = await serve("tcp", { authFlavors: [toyFlavor("b")] });
    await channelTo("tcp", s.port, { authFlavors: [toyFlavor("b")] });
    expect(defaultAuthFlavors).toEqual(before);
    expect(defaultAuthFlavors.map((f) => [f.flavor, f.name])).toEqual([
      [AuthFlavor.AUTH_NONE, "AUTH_NONE"],
      [AuthFlavor.AUTH_SYS, "AUTH_SYS"],
    ]);
    expect(Object.isFrozen(defaultAuthFlavors)).toBe(true);
    expect(Object.keys(defaultVerifiers).map(Number)).toEqual([AuthFlavor.AUTH_NONE, AuthFlavor.AUTH_SYS]);
    expect([...authRegistry(defaultAuthFlavors).keys()]).toEqual([AuthFlavor.AUTH_NONE, AuthFlavor.AUTH_SYS]);
    // A second server built without the flavor refuses it.
    const plain = await serve("tcp");
    const channel = await channelTo("tcp", plain.port, { authFlavors: [toyFlavor("b")] });
    expect((await failure(add(channel, toy("b")))).authStat).toBe(AuthStat.AUTH_REJECTEDCRED);
  });

  it("refuses registrations that are not flavors, builders and verifiers, where they are made", async () => {
    const ok = toyFlavor("x");
    expect(() => createServer({ authFlavors: [{ ...ok, flavor: -1 }] })).toThrow(RangeError);
    expect(() => createServer({ authFlavors: [{ ...ok, flavor: 2 ** 32 }] })).toThrow(/authFlavors: 4294967296 is not a flavor number/);
    expect(() => createServer({ authFlavors: [{ ...ok, verify: 5 as unknown as AuthFlavorEntry["verify"] }] })).toThrow(/AUTH_TOY\.verify is not a function/);
    expect(() => createServer({ authFlavors: [null as unknown as AuthFlavorEntry] })).toThrow(RangeError);
    const s = await serve("tcp");
    await expect(channelTo("tcp", s.port, { authFlavors: [{ ...ok, credential: "x" as unknown as () => OpaqueAuth }] })).rejects.toThrow(/AUTH_TOY\.credential is not a function/);
  });
});
