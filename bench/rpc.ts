import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  callChannel,
  callTracing,
  connect,
  serveChannel,
  serveTracing,
  type CallRecord,
  type Channel,
  type ChannelOptions,
  type ConnectOptions,
  type CopyCounts,
  type Mode,
  type Server,
} from "../runtime/index.js";
import { startCBench, type CBench, type CProc } from "./c-peer.js";
import { microtaskHop, sabPingPong, startFloorServers, streamPingPong, udpPingPong, type FloorAddresses, type PingPong, type SabPingPong } from "./floors.js";
import { allModes } from "./generated.js";
import type { UnaryClient } from "./grpc.js";
import {
  fmtRatio,
  fmtRatioFine,
  fmtSpread,
  isolated,
  measureGroupAsync,
  ratio,
  table,
  type AsyncCase,
  type RoundsOptions,
  type Timing,
} from "./harness.js";
import type { RpcPeerConfig, RpcPeerReady } from "./peer.js";
import { cpuMeter, describePinning, pinProcess, pinThreads, spawnPeer, threadIds, affinityOf, restoreAffinity, type CpuUse, type Pinning } from "./peers.js";
import {
  benchBinding,
  benchServer,
  echoBinding,
  MAXDATA,
  payload,
  type BenchClient,
  type BenchService,
  type EchoBinding,
  type EchoClient,
} from "./rpc-service.js";
import type { BenchContext, Section } from "./section.js";

/**
 * The RPC benchmark: Firefly/LRPC's Null(), MaxArg(1440 B) and
 * MaxResult(1440 B) per marshaling mode and transport, each as a round-trip latency
 * (sequential calls, one outstanding) and as a ratio to the raw floor of its transport
 * measured in the same run with the same bytes (bench/floors.ts); the synchronous C
 * libtirpc client against a C server; 32 calls outstanding against the C client's calls/s;
 * Null() and a 1440-byte Echo() against @grpc/grpc-js and Connect-ES; and the cost of the
 * observation hooks.
 *
 * Two arrangements, each with its floors in exactly the same one:
 * - headline, as users deploy: every server in a process of its own, spawned by the
 *   benchmark from the compiled runtime and the generated modules' compiled JavaScript
 *   (tcp, unix, udp; the raw floors' servers too, bench/peer.ts), and the shm server in
 *   the runtime's worker thread (the SAB floor's peer in a worker too). The C client and C
 *   server, and the gRPC servers, are processes of their own as well.
 * - one thread: the servers of inproc, tcp, unix and udp in the client's own thread, as
 *   are the floors' servers: one event loop does both ends' work.
 * `--pin same|split` pins client and server (and worker threads) to one CPU or to two.
 *
 * Method: the codec section's (bench/harness.ts), asynchronously: per transport, the floors
 * and every RPC case are one group, each calibrated to a batch of ~batchMs and warmed up,
 * then timed in rotating interleaved rounds; a figure is the median over rounds, and a ratio
 * the median of per-round ratios, so load drift on this shared machine cancels out of it.
 * While a group is timed, the CPU used by other processes is measured (bench/peers.ts): above
 * BENCH_OTHERS_LIMIT CPUs (default 0.25) the group's ratios are printed NOT MEASURED, as are
 * ratios to a spinning floor whose two threads could not both spin, and to a floor whose
 * rounds spread more than ±BENCH_FLOOR_SPREAD (default 0.25) about its median.
 *
 * Copies per call come from the CallRecord of a few calls made AFTER the timing on separate
 * channels with an `onCall` hook (client) and a `rpcgen-ts:serve` subscriber (server, so
 * with the one-thread arrangement's servers, and shm's worker), so the timed calls ran with
 * nobody listening.
 */

const transports = ["inproc", "shm", "tcp", "unix", "udp"] as const;
type Transport = (typeof transports)[number];
const procs = ["Null", "MaxArg", "MaxResult"] as const;
type Proc = (typeof procs)[number];
const streamTransports = ["tcp", "unix", "udp"] as const;

type Arrangement = "process" | "thread";
const arrangements: readonly Arrangement[] = ["process", "thread"];
const arrangementTransports: Record<Arrangement, readonly Transport[]> = {
  process: ["shm", "tcp", "unix", "udp"],
  thread: ["inproc", "tcp", "unix", "udp"],
};
const arrangementTitle: Record<Arrangement, string> = {
  process: "server in its own process (shm: worker thread)",
  thread: "client and server in one thread",
};

/**
 * RPC message bytes (AUTH_NONE, no record mark): a call header is 40 B (xid, CALL, rpcvers,
 * prog, vers, proc, cred and verf 8 B each), an accepted reply header 24 B; opaque<1440>
 * adds 4 + 1440, the unsigned int of MaxResult 4. Cross-checked against the copy ledger's
 * wire bytes after the timing.
 */
const messageBytes: Record<Proc, { readonly call: number; readonly reply: number }> = {
  Null: { call: 40, reply: 24 },
  MaxArg: { call: 40 + 4 + MAXDATA, reply: 24 },
  MaxResult: { call: 40 + 4, reply: 24 + 4 + MAXDATA },
};

const OUTSTANDING = 32;
/**
 * The wider window. libtirpc's clnt_call waits for each reply, so its client has no such
 * window on one CLIENT handle: its figure stays the synchronous one.
 */
const WIDE = 256;
/** Calls give up after this long: a stuck transport fails its group instead of hanging the run. */
const CALL_TIMEOUT_MS = 10_000;
/** Other processes' CPU use (in CPUs, averaged over a group) above which the group's ratios are not judged. */
const OTHERS_LIMIT = envLimit("BENCH_OTHERS_LIMIT", 0.25);
/** Untimed calls per client of the comparison with gRPC before its groups, one and 32 outstanding each. */
const VS_WARMUP_MS = envLimit("BENCH_VS_WARMUP_MS", 1000);
/**
 * A floor whose rounds spread more than this (half the interquartile range over the median)
 * is no floor: unpinned on an idle machine, the scheduler puts client and server now on one
 * CPU, now on two, and a round trip takes 16 µs or 50 µs by turns.
 */
const FLOOR_SPREAD_LIMIT = envLimit("BENCH_FLOOR_SPREAD", 0.25);
/** A spinning SAB floor slower than this could not spin (both threads were not on a CPU at once). */
const SPIN_VALID_NS = 2000;

function envLimit(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name}=${raw}: expected a number ≥ 0`);
  return v;
}

const floorNames: Record<Transport, string> = {
  inproc: "a promise resolved from a queued microtask (a reference: inproc has no wire)",
  shm: "SharedArrayBuffer ping-pong with a worker, both spinning (and, for reference, sleeping)",
  tcp: "raw Node TCP ping-pong (net, 4-byte length prefix, Nagle off), same bytes as the RPC records",
  unix: "raw Node Unix-socket ping-pong (4-byte length prefix), same bytes as the RPC records",
  udp: "raw Node UDP ping-pong (one datagram each way), same bytes as the RPC messages",
};

// ---- loops (each case compiles its own copy: `isolated`) --------------------------------------

const nullLoop = async (c: BenchClient, _data: Uint8Array, n: number): Promise<number> => {
  for (let i = 0; i < n; i++) await c.nullproc();
  return n;
};
const maxargLoop = async (c: BenchClient, data: Uint8Array, n: number): Promise<number> => {
  for (let i = 0; i < n; i++) await c.maxarg(data);
  return n;
};
const maxresultLoop = async (c: BenchClient, _data: Uint8Array, n: number): Promise<number> => {
  let s = 0;
  for (let i = 0; i < n; i++) s += (await c.maxresult(1440)).length;
  return s;
};
const loops: Record<Proc, typeof nullLoop> = { Null: nullLoop, MaxArg: maxargLoop, MaxResult: maxresultLoop };

/** Null() through the client's `sync` object: no promise per call, no event-loop turn. */
function syncNullLoop(c: BenchClient, n: number): number {
  const sync = c.sync;
  for (let i = 0; i < n; i++) sync.nullproc();
  return n;
}

/** Null() with 32 calls outstanding on one channel: 32 lanes, each starting its next call as its last returns. */
const windowLoop = async (c: BenchClient, lanes: number, n: number): Promise<number> => {
  let issued = 0;
  const lane = async (): Promise<void> => {
    while (issued < n) {
      issued++;
      await c.nullproc();
    }
  };
  const all: Promise<void>[] = [];
  for (let k = 0; k < lanes; k++) all.push(lane());
  await Promise.all(all);
  return n;
};

/** The comparison with gRPC: one client shape for ours and theirs, so every case pays the same indirection. */
const vsNullLoop = async (c: UnaryClient, _data: Uint8Array, n: number): Promise<number> => {
  for (let i = 0; i < n; i++) await c.null();
  return n;
};
const vsEchoLoop = async (c: UnaryClient, data: Uint8Array, n: number): Promise<number> => {
  let s = 0;
  for (let i = 0; i < n; i++) s += (await c.echo(data)).length;
  return s;
};
const vsWindowLoop = async (c: UnaryClient, data: Uint8Array, lanes: number, echo: boolean, n: number): Promise<number> => {
  let issued = 0;
  const lane = async (): Promise<void> => {
    while (issued < n) {
      issued++;
      if (echo) await c.echo(data);
      else await c.null();
    }
  };
  const all: Promise<void>[] = [];
  for (let k = 0; k < lanes; k++) all.push(lane());
  await Promise.all(all);
  return n;
};

/**
 * The observation gates of one Null() with nobody listening, in a loop: RpcChannel.call's
 * interceptor test (`chain === undefined`) and its
 * `callChannel.hasSubscribers || onCall !== undefined || callTracing.hasSubscribers`,
 * RpcChannel.receive's `observedCalls > 0`, and Server.dispatch's
 * `serveChannel.hasSubscribers || onServe !== undefined || serveTracing.hasSubscribers`
 * (a tracing channel's `hasSubscribers` asks its five channels). (The
 * `phases`/`ledger !== undefined` tests that follow a false gate are field compares on
 * objects the call path touches anyway.)
 */
const gatesLoop = (
  cc: { readonly hasSubscribers: boolean },
  sc: { readonly hasSubscribers: boolean },
  ct: { readonly hasSubscribers: boolean },
  st: { readonly hasSubscribers: boolean },
  opts: readonly { readonly onCall?: unknown; readonly onServe?: unknown; readonly chain?: unknown; readonly observedCalls: number }[],
  n: number,
): number => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const o = opts[i & 7]!;
    if (o.chain === undefined) s++;
    if (cc.hasSubscribers || o.onCall !== undefined || ct.hasSubscribers) s++;
    if (o.observedCalls > 0) s++;
    if (sc.hasSubscribers || o.onServe !== undefined || st.hasSubscribers) s++;
  }
  return s + n;
};

// ---- the pieces under test ---------------------------------------------------------------

interface Endpoints {
  readonly tcp: number;
  readonly udp: number;
  readonly unix: string;
}

interface ModeSetup {
  readonly mode: Mode;
  readonly service: BenchService;
  readonly Client: ReturnType<typeof benchBinding>["Client"];
  readonly echo: EchoBinding;
  /** The generated modules' compiled JS, for the shm worker and the server process to import. */
  readonly href: string;
  readonly echoHref: string;
  /** The one-thread arrangement's server (also inproc's). */
  readonly server: Server;
  /** Where each arrangement's server of this mode listens. */
  readonly ends: Partial<Record<Arrangement, Endpoints>>;
}

interface Bound {
  readonly channel: Channel;
  readonly client: BenchClient;
  readonly echo: EchoClient;
}

/** One row's outcome: a timing, or why there is none. */
type Outcome = { readonly timing: Timing } | { readonly error: string };

interface Copies {
  readonly client: { readonly copies: CopyCounts; readonly bytesCopied: CopyCounts };
  readonly server: { readonly copies: CopyCounts; readonly bytesCopied: CopyCounts } | undefined;
}

interface Group {
  readonly cpu: CpuUse;
  /** Why its ratios are not judged (the machine was busy), if so. */
  readonly warning?: string;
}

const key = (a: Arrangement, mode: Mode, t: Transport, p: Proc): string => `${a}/${mode}/${t}/${p}`;
const floorLabel = (a: Arrangement, t: Transport, p: Proc): string => `${a}/floor/${t}/${p}`;
const us = (ns: number): string => (ns >= 100_000 ? (ns / 1000).toFixed(0) : ns >= 10_000 ? (ns / 1000).toFixed(1) : (ns / 1000).toFixed(2));
const kcalls = (ns: number): string => `${(1e9 / ns / 1000).toFixed(1)} k`;
const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const triple = (c: CopyCounts): string => `${c.stub}/${c.runtime}/${c.wire}`;
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 160);

const vsProcs = ["Null", "Echo"] as const;
type VsProc = (typeof vsProcs)[number];

class RpcBench {
  readonly setups = new Map<Mode, ModeSetup>();
  /** Timed channels, by arrangement/mode/transport; absent with a reason in `broken`. */
  readonly bound = new Map<string, Bound>();
  readonly broken = new Map<string, string>();
  readonly results = new Map<string, Outcome>();
  readonly copies = new Map<string, Copies>();
  readonly closers: (() => Promise<unknown>)[] = [];
  readonly data = payload();
  readonly shmServer = new URL("./shm-server.js", import.meta.url);
  readonly floorAt: Partial<Record<Arrangement, FloorAddresses>> = {};
  readonly floorError: Partial<Record<Arrangement, string>> = {};
  readonly serverError: Partial<Record<Arrangement, string>> = {};
  /** The group each label was timed in, and what the rest of the machine did meanwhile. */
  readonly groupOf = new Map<string, string>();
  readonly groups = new Map<string, Group>();
  /** Floors that ran but are not floors (a spinning floor that could not spin), with why. */
  readonly invalidFloor = new Map<string, string>();
  /** The labels that are floors (the denominators of judged ratios): judged unsteady above FLOOR_SPREAD_LIMIT. */
  readonly floors = new Set<string>();
  /** Our processes: this one, the servers, the C peers (their CPU is not "other load"). */
  readonly pids: number[] = [process.pid];
  readonly pin: Pinning;
  dir = "";
  cBench: CBench | undefined;
  cError: string | undefined;
  /** The comparison's clients, by label (ours per mode, grpc-js, connect), or why one is missing. */
  readonly vs = new Map<string, UnaryClient>();
  readonly vsError = new Map<string, string>();
  readonly versions = new Map<string, string>();

  constructor(
    private readonly ctx: BenchContext,
    readonly options: RoundsOptions,
  ) {
    this.pin = ctx.pinning;
  }

  log(text = ""): void {
    this.ctx.log(text);
  }

  async setUp(): Promise<void> {
    // The libuv thread pool starts on first use: start it now, so no pool thread is born
    // while a worker's threads are told apart (pinning) below.
    await stat(this.ctx.root);
    this.dir = mkdtempSync(join(tmpdir(), "rpcgen-ts-bench-"));
    const modules = await this.ctx.benchModules();
    for (const mode of allModes) {
      const m = modules.get(mode);
      if (m === undefined) continue;
      const { service, Client } = benchBinding(m.exports, m.sourcePath);
      const echo = echoBinding(m.echo.exports, m.echo.sourcePath);
      const server = benchServer({ service, Client }, echo);
      this.closers.push(() => server.close());
      const unix = join(this.dir, `thread-${mode}.sock`);
      const tcp = (await server.listen({ transport: "tcp", host: "127.0.0.1" })).port;
      await server.listen({ transport: "unix", path: unix });
      const udp = (await server.listen({ transport: "udp", host: "127.0.0.1" })).port;
      const jsOf = (p: string): string => pathToFileURL(p.replace(/\.ts$/, ".js")).href;
      this.setups.set(mode, { mode, service, Client, echo, href: jsOf(m.sourcePath), echoHref: jsOf(m.echo.sourcePath), server, ends: { thread: { tcp, udp, unix } } });
    }

    // The headline arrangement's servers: one process for the RPC servers of every mode, one
    // for the floors' servers, both placed (pinned) where the server end goes.
    try {
      const config: RpcPeerConfig = { modules: [...this.setups.values()].map((s) => ({ mode: s.mode, bench: s.href, echo: s.echoHref })), dir: this.dir };
      const peer = await spawnPeer("rpc", config, this.pin.server);
      this.closers.push(() => peer.close());
      this.pids.push(peer.pid);
      const ready = peer.ready as RpcPeerReady;
      for (const s of this.setups.values()) {
        const e = ready.servers[s.mode];
        if (e !== undefined) s.ends.process = e;
      }
    } catch (e) {
      this.serverError.process = errText(e);
    }
    try {
      const peer = await spawnPeer("floor", { unix: join(this.dir, "floor-process.sock") }, this.pin.server);
      this.closers.push(() => peer.close());
      this.pids.push(peer.pid);
      this.floorAt.process = peer.ready as FloorAddresses;
    } catch (e) {
      this.floorError.process = errText(e);
    }
    try {
      const f = await startFloorServers(join(this.dir, "floor-thread.sock"));
      this.closers.push(() => f.close());
      this.floorAt.thread = f.address;
    } catch (e) {
      this.floorError.thread = errText(e);
    }

    for (const a of arrangements) {
      for (const s of this.setups.values()) {
        for (const t of arrangementTransports[a]) {
          const k = `${a}/${s.mode}/${t}`;
          try {
            const channel = await this.open(a, s, t, {});
            this.closers.push(() => channel.close());
            const client = new s.Client(channel, { timeoutMs: CALL_TIMEOUT_MS });
            const echo = new s.echo.Client(channel, { timeoutMs: CALL_TIMEOUT_MS });
            await this.probe(client);
            this.bound.set(k, { channel, client, echo });
          } catch (e) {
            this.broken.set(k, errText(e));
          }
        }
      }
    }
  }

  /** A channel to a new shm worker serving mode `s`'s module, pinned where servers go. */
  async openShm(s: ModeSetup, options: ChannelOptions & { readonly spinMicros?: number }, stats?: SharedArrayBuffer): Promise<Channel> {
    const before = threadIds();
    const channel = await connect({ ...options, transport: "shm", module: this.shmServer, data: { module: s.href, stats }, services: [s.service] });
    // The worker is the server end: it goes where the server goes.
    pinThreads([...threadIds()].filter((x) => !before.has(x)), this.pin.server);
    return channel;
  }

  /** A channel to arrangement `a`'s server of mode `s` over `t` (shm: a new worker serving the mode's module). */
  async open(a: Arrangement, s: ModeSetup, t: Transport, options: ChannelOptions, stats?: SharedArrayBuffer): Promise<Channel> {
    let o: ConnectOptions;
    const ends = s.ends[a];
    const need = (): Endpoints => {
      if (ends === undefined) throw new Error(this.serverError[a] ?? "no server");
      return ends;
    };
    switch (t) {
      case "inproc":
        o = { ...options, transport: "inproc", server: s.server };
        break;
      case "shm":
        return this.openShm(s, options, stats);
      case "tcp":
        o = { ...options, transport: "tcp", host: "127.0.0.1", port: need().tcp };
        break;
      case "unix":
        o = { ...options, transport: "unix", path: need().unix };
        break;
      case "udp":
        o = { ...options, transport: "udp", host: "127.0.0.1", port: need().udp };
        break;
    }
    return connect(o);
  }

  /**
   * Our client (synthesized) bound to the C server over tcp and udp: the client side alone,
   * with the server's work done by libtirpc in its own process — the same server the C
   * client calls.
   */
  readonly toC = new Map<"tcp" | "udp", BenchClient>();

  async openToC(): Promise<void> {
    const s = this.setups.get("synthesized");
    const c = this.cBench;
    if (s === undefined || c === undefined) return;
    for (const t of ["tcp", "udp"] as const) {
      try {
        const channel = await connect({ transport: t, host: "127.0.0.1", port: t === "tcp" ? c.server.tcpPort : c.server.udpPort });
        this.closers.push(() => channel.close());
        const client = new s.Client(channel, { timeoutMs: CALL_TIMEOUT_MS });
        await this.probe(client);
        this.toC.set(t, client);
      } catch (e) {
        this.log(`NOTE: our client could not call the C server over ${t}: ${errText(e)}`);
      }
    }
  }

  /** A few calls of each procedure, results checked: a transport that does not work is reported, not timed. */
  async probe(c: BenchClient): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await c.nullproc();
      await c.maxarg(this.data);
      const r = await c.maxresult(MAXDATA);
      if (r.length !== MAXDATA || r[1] !== this.data[1] || r[MAXDATA - 1] !== this.data[MAXDATA - 1]) {
        throw new Error(`MaxResult returned ${r.length} bytes that are not the server's`);
      }
    }
  }

  /** Null() and Echo() of a comparison client, the echo checked byte for byte. */
  async probeVs(c: UnaryClient): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await c.null();
      const r = await c.echo(this.data);
      if (r.length !== this.data.length || r.some((x, j) => x !== this.data[j])) throw new Error(`${c.label}: Echo() returned other bytes (${r.length})`);
    }
  }

  /** Our synthesized Null() to the C server over `t`, one outstanding (`window`: that many). */
  toCCase(t: "tcp" | "udp", window = 1): AsyncCase[] {
    const client = this.toC.get(t);
    if (client === undefined) return [];
    if (window === 1) {
      const loop = isolated(nullLoop);
      return [{ label: `toC/${t}/Null`, run: (n) => loop(client, this.data, n) }];
    }
    const loop = isolated(windowLoop);
    return [{ label: `window-toC/${t}`, run: (n) => loop(client, window, n) }];
  }

  rpcCase(a: Arrangement, mode: Mode, t: Transport, p: Proc): AsyncCase | undefined {
    const b = this.bound.get(`${a}/${mode}/${t}`);
    if (b === undefined) return undefined;
    const loop = isolated(loops[p]);
    const { client } = b;
    const data = this.data;
    return { label: key(a, mode, t, p), run: (n) => loop(client, data, n) };
  }

  /**
   * Measures a group; a case that fails is reported in its row, and the rest of its group timed
   * again without it. The CPU other processes used meanwhile is the group's load check.
   */
  async measure(group: string, cases: readonly AsyncCase[], options: RoundsOptions = this.options): Promise<void> {
    let left = [...cases];
    const t0 = performance.now();
    const cpu = cpuMeter(() => this.pids);
    let timings: Map<string, Timing> | undefined;
    // A case that throws is dropped (its row shows why) and the group timed again without it.
    for (let attempt = 0; attempt < 3 && left.length > 0 && timings === undefined; attempt++) {
      let failed: string | undefined;
      const guarded = left.map((c) => ({
        ...c,
        run: async (n: number) => {
          try {
            return await c.run(n);
          } catch (e) {
            failed ??= c.label;
            throw e;
          }
        },
      }));
      try {
        timings = await measureGroupAsync(guarded, options);
      } catch (e) {
        const why = errText(e);
        if (failed === undefined) break;
        this.results.set(failed, { error: `failed while timed: ${why}` });
        this.log(`ERROR: ${failed} failed while timed (${why}); timing its group again without it`);
        left = left.filter((c) => c.label !== failed);
      }
    }
    const use = cpu();
    if (timings === undefined) {
      for (const c of left) this.results.set(c.label, { error: "its group kept failing" });
      return;
    }
    for (const [label, timing] of timings) {
      this.results.set(label, { timing });
      this.groupOf.set(label, group);
    }
    const busy = use.others > OTHERS_LIMIT;
    const warning = busy ? `other processes used ${use.others.toFixed(2)} CPUs while the ${group} group was timed (limit ${OTHERS_LIMIT})` : undefined;
    this.groups.set(group, warning === undefined ? { cpu: use } : { cpu: use, warning });
    this.ctx.results.group("rpc", group, timings, { cpu: { ours: use.ours, others: use.others }, ...(warning === undefined ? {} : { warning }) });
    this.log(
      `(${group}: ${cases.length} cases, ${((performance.now() - t0) / 1000).toFixed(1)} s; CPUs used: ours ${use.ours.toFixed(2)}, other processes ${use.others.toFixed(2)})`,
    );
    if (warning !== undefined) this.log(`WARNING: ${warning}: its ratios are printed NOT MEASURED`);
  }

  timing(label: string): Timing | undefined {
    const o = this.results.get(label);
    return o !== undefined && "timing" in o ? o.timing : undefined;
  }

  /** Paired ratio a ÷ b, when both were timed in one group. */
  ratio(a: string, b: string): number | undefined {
    const x = this.timing(a);
    const y = this.timing(b);
    return x !== undefined && y !== undefined && x.samples.length === y.samples.length && this.groupOf.get(a) === this.groupOf.get(b) ? ratio(x, y) : undefined;
  }

  /** Why a ratio between these labels cannot be judged in this run (a busy group, an invalid floor), if so. */
  invalid(...labels: string[]): string | undefined {
    for (const l of labels) {
      const f = this.invalidFloor.get(l);
      if (f !== undefined) return f;
    }
    for (const l of labels) {
      const u = this.unsteady(l);
      if (u !== undefined) return u;
    }
    for (const l of labels) {
      const g = this.groupOf.get(l);
      const w = g === undefined ? undefined : this.groups.get(g)?.warning;
      if (w !== undefined) return w;
    }
    return undefined;
  }

  /** Why floor `label` is no floor in this run because its rounds disagree, if so. */
  unsteady(label: string): string | undefined {
    const t = this.timing(label);
    if (t === undefined || !this.floors.has(label)) return undefined;
    const spread = (t.q3 - t.q1) / 2 / t.ns;
    if (spread <= FLOOR_SPREAD_LIMIT) return undefined;
    return (
      `the floor ${label} varied ±${(spread * 100).toFixed(0)}% between rounds (limit ±${(FLOOR_SPREAD_LIMIT * 100).toFixed(0)}%)` +
      (this.pin.mode === "none" ? ": client and server moved between CPUs; --pin same|split holds them" : "")
    );
  }

  /** A ratio for a table cell: NOT MEASURED (with the figure) when it cannot be judged. */
  ratioCell(a: string, b: string): { cell: string; note: string } {
    const r = this.ratio(a, b);
    if (r === undefined) return { cell: "—", note: "" };
    const why = this.invalid(a, b);
    if (why === undefined) return { cell: fmtRatio(r), note: "" };
    const short =
      this.invalidFloor.has(a) || this.invalidFloor.has(b)
        ? "its floor could not spin"
        : this.unsteady(a) !== undefined || this.unsteady(b) !== undefined
          ? "its floor was unsteady"
          : "other processes were busy";
    return { cell: "NOT MEASURED", note: `(${fmtRatio(r)}; ${short})` };
  }

  // ---- the groups ------------------------------------------------------------------------

  async transportGroup(a: Arrangement, t: Transport, floors: readonly AsyncCase[], extra: readonly AsyncCase[] = []): Promise<void> {
    const cases: AsyncCase[] = [...floors];
    for (const mode of this.setups.keys()) {
      for (const p of procs) {
        const c = this.rpcCase(a, mode, t, p);
        if (c !== undefined) cases.push(c);
        else this.results.set(key(a, mode, t, p), { error: this.broken.get(`${a}/${mode}/${t}`) ?? "not set up" });
      }
    }
    cases.push(...extra);
    await this.measure(`${a} ${t}`, cases);
  }

  async run(): Promise<void> {
    const o = this.options;
    this.log(
      `method: per transport one group of floors and RPC cases, ${o.rounds} interleaved rounds of ~${o.batchMs} ms batches after ≥ ${o.warmupMs} ms warm-up per case; ` +
        `medians; ×floor is the median of per-round ratios. Sequential calls, one outstanding, through the generated BenchV1Client.`,
    );
    this.log(
      `arrangements: (1, headline) ${arrangementTitle.process}: tcp, unix and udp servers, and the raw floors' servers, are processes spawned by the benchmark; ` +
        `shm's server and the SAB floor's peer are worker threads. (2) ${arrangementTitle.thread}: inproc, tcp, unix, udp servers and floors' servers in the client's thread. ` +
        `The C client and C server, and the gRPC servers, are processes of their own in both.`,
    );
    this.log(`pinning: ${describePinning(this.pin)}; CPUs used by other processes are measured per group (limit ${OTHERS_LIMIT} CPUs)`);
    this.log();
    await this.setUp();
    for (const [k, why] of this.broken) this.log(`NOTE: ${k} does not work here; its rows show the error: ${why}`);
    for (const a of arrangements) {
      if (this.floorError[a] !== undefined) this.log(`NOTE: the ${a} arrangement's floor servers did not start: ${this.floorError[a]}`);
    }

    try {
      this.cBench = await startCBench(this.ctx.root);
      this.closers.push(() => this.cBench!.close());
      pinProcess(this.cBench.server.pid, this.pin.server);
      pinProcess(this.cBench.clientPid, this.pin.client);
      this.pids.push(this.cBench.server.pid, this.cBench.clientPid);
    } catch (e) {
      this.cError = errText(e);
      this.log(`NOTE: the C libtirpc reference could not be built or started: ${this.cError}`);
    }
    const cCase = (p: CProc, label: string): AsyncCase[] => (this.cBench === undefined ? [] : [{ label, run: (n) => this.cBench!.calls(p, n), selfTimed: true }]);
    await this.openToC();

    this.log();
    this.log(`==== (1) headline: ${arrangementTitle.process} ====`);
    await this.shmGroup();
    for (const t of streamTransports) {
      const extra =
        t === "tcp" ? [...cCase("null", "c/tcp/Null"), ...cCase("maxarg", "c/tcp/MaxArg"), ...cCase("maxresult", "c/tcp/MaxResult"), ...this.toCCase("tcp")] : [];
      await this.streamGroup("process", t, extra);
    }
    await this.throughput("process", [...cCase("null", "process/window/c"), ...this.toCCase("tcp", OUTSTANDING), ...this.toCCase("udp", OUTSTANDING)]);
    await this.versus();

    this.log();
    this.log(`==== (2) ${arrangementTitle.thread} ====`);
    await this.inprocGroup();
    for (const t of streamTransports) await this.streamGroup("thread", t);
    await this.throughput("thread", cCase("null", "thread/window/c"));

    await this.collectCopies();
    await this.subscribed();
    for (const a of arrangements) this.printSummary(a);
    this.printCopies();
    this.verdicts();
    this.ctx.results.note("rpc", "invalidFloors", Object.fromEntries(this.invalidFloor));
    this.ctx.results.note("rpc", "errors", Object.fromEntries([...this.results].flatMap(([k, o]) => ("error" in o ? [[k, o.error]] : []))));
    this.ctx.results.note("rpc", "copies", Object.fromEntries(this.copies));
  }

  /** inproc (one thread only): the microtask reference, the RPC cases, the onCall hook, the observation gates. */
  async inprocGroup(): Promise<void> {
    const hop = microtaskHop();
    const extra: AsyncCase[] = [];
    const s = this.setups.get("synthesized");
    if (s !== undefined && this.bound.has("thread/synthesized/inproc")) {
      let last: CallRecord | undefined;
      const channel = await this.open("thread", s, "inproc", { onCall: (r) => void (last = r) });
      this.closers.push(() => channel.close());
      const client = new s.Client(channel, { timeoutMs: CALL_TIMEOUT_MS });
      const loop = isolated(nullLoop);
      extra.push({ label: "hook/onCall", run: (n) => loop(client, this.data, n).then((x) => x + (last === undefined ? 0 : 1)) });
      const gates = isolated(gatesLoop);
      const opts = Array.from({ length: 8 }, () => ({ onCall: undefined, onServe: undefined, chain: undefined, observedCalls: 0 }));
      extra.push({ label: "hook/gates", run: (n) => gates(callChannel, serveChannel, callTracing, serveTracing, opts, n) });
    }
    // The floor is one case per size; inproc has no sizes, so it is timed once.
    await this.transportGroup("thread", "inproc", [{ label: floorLabel("thread", "inproc", "Null"), run: hop }], extra);
    const f = this.results.get(floorLabel("thread", "inproc", "Null"));
    if (f !== undefined) {
      for (const p of procs) {
        this.results.set(floorLabel("thread", "inproc", p), f);
        const g = this.groupOf.get(floorLabel("thread", "inproc", "Null"));
        if (g !== undefined) this.groupOf.set(floorLabel("thread", "inproc", p), g);
      }
    }
    this.printTransport("thread", "inproc");
  }

  /** shm (headline only: its server is a worker thread either way): the SAB floor, spinning and sleeping. */
  async shmGroup(): Promise<void> {
    let sab: SabPingPong | undefined;
    const floors: AsyncCase[] = [];
    try {
      const before = threadIds();
      sab = await sabPingPong();
      pinThreads([...threadIds()].filter((x) => !before.has(x)), this.pin.server);
      this.closers.push(() => sab!.close());
      for (const p of procs) {
        this.floors.add(floorLabel("process", "shm", p));
        floors.push({ label: floorLabel("process", "shm", p), run: sab.spin(messageBytes[p].call, messageBytes[p].reply, 4 * this.options.batchMs), selfTimed: true });
      }
      floors.push({ label: "process/floor/shm/sleep-async", run: sab.sleepAsync(messageBytes.Null.call, messageBytes.Null.reply) });
      floors.push({ label: "process/floor/shm/sleep-sync", run: sab.sleepSync(messageBytes.Null.call, messageBytes.Null.reply) });
      floors.push({ label: "process/floor/shm/hop", run: microtaskHop() });
    } catch (e) {
      for (const p of procs) this.results.set(floorLabel("process", "shm", p), { error: errText(e) });
    }
    // Synchronous Null() (client.sync): spinning as configured, and with spinning off against the sleeping floor.
    const sync: AsyncCase[] = [];
    for (const mode of this.setups.keys()) {
      const b = this.bound.get(`process/${mode}/shm`);
      if (b !== undefined) sync.push({ label: `process/${mode}/shm/sync-Null`, run: async (n) => syncNullLoop(b.client, n) });
    }
    const s = this.setups.get("synthesized");
    if (s !== undefined) {
      try {
        const channel = await this.openShm(s, { spinMicros: 0 });
        this.closers.push(() => channel.close());
        const client = new s.Client(channel, { timeoutMs: CALL_TIMEOUT_MS });
        sync.push({ label: "process/synthesized/shm/sync-Null-sleeping", run: async (n) => syncNullLoop(client, n) });
      } catch (e) {
        this.results.set("process/synthesized/shm/sync-Null-sleeping", { error: errText(e) });
      }
    }
    await this.transportGroup("process", "shm", floors, sync);
    // A spinning hand-off needs both threads on a CPU at once; when they were not, the
    // "floor" measured the scheduler, and ratios to it mean nothing.
    const spin = this.timing(floorLabel("process", "shm", "Null"));
    const sleep = this.timing("process/floor/shm/sleep-sync");
    if (spin !== undefined && (spin.ns > SPIN_VALID_NS || (sleep !== undefined && spin.ns >= sleep.ns))) {
      const why = `the spinning SAB floor took ${us(spin.ns)} µs${sleep === undefined ? "" : ` (sleeping: ${us(sleep.ns)} µs)`}: its two threads could not both spin`;
      for (const p of procs) this.invalidFloor.set(floorLabel("process", "shm", p), why);
    }
    this.printTransport("process", "shm");
  }

  /** tcp, unix, udp: a raw ping-pong per message size against the RPC cases, in one arrangement. */
  async streamGroup(a: Arrangement, t: (typeof streamTransports)[number], extra: readonly AsyncCase[] = []): Promise<void> {
    let floor: PingPong | undefined;
    const floors: AsyncCase[] = [];
    try {
      const at = this.floorAt[a];
      if (at === undefined) throw new Error(this.floorError[a] ?? "no floor server");
      floor = t === "udp" ? await udpPingPong(at) : await streamPingPong(t, at);
      const f = floor;
      this.closers.push(() => f.close());
      for (const p of procs) {
        this.floors.add(floorLabel(a, t, p));
        floors.push({ label: floorLabel(a, t, p), run: floor.batch(messageBytes[p].call, messageBytes[p].reply) });
      }
    } catch (e) {
      for (const p of procs) this.results.set(floorLabel(a, t, p), { error: errText(e) });
    }
    await this.transportGroup(a, t, floors, extra);
    this.printTransport(a, t);
  }

  /** Null() with 32 outstanding over tcp, unix, udp, in one group with the C client's sequential Null(). */
  async throughput(a: Arrangement, c: readonly AsyncCase[]): Promise<void> {
    const cases: AsyncCase[] = [...c];
    // The synchronous C client is this group's floor.
    this.floors.add(`${a}/window/c`);
    for (const mode of this.setups.keys()) {
      for (const t of streamTransports) {
        const b = this.bound.get(`${a}/${mode}/${t}`);
        if (b === undefined) continue;
        const loop = isolated(windowLoop);
        const wide = isolated(windowLoop);
        const { client } = b;
        cases.push({ label: `${a}/window/${mode}/${t}`, run: (n) => loop(client, OUTSTANDING, n) });
        cases.push({ label: `${a}/window${WIDE}/${mode}/${t}`, run: (n) => wide(client, WIDE, n) });
      }
    }
    await this.measure(`${a} throughput`, cases);
    this.log();
    this.log(
      `-- ${arrangementTitle[a]} · throughput: Null() with ${OUTSTANDING} and ${WIDE} calls outstanding on one channel, vs the synchronous C libtirpc client (one at a time, TCP: clnt_call has no window) --`,
    );
    const cLabel = `${a}/window/c`;
    const cT = this.timing(cLabel);
    const rows: string[][] = [];
    if (cT !== undefined) rows.push(["C libtirpc, sync, tcp", kcalls(cT.ns), fmtSpread(cT), "1.00×", ""]);
    else rows.push(["C libtirpc, sync, tcp", this.cError ?? "not measured", "", "", ""]);
    const row = (name: string, label: string, why: () => string): void => {
      const tm = this.timing(label);
      if (tm === undefined) {
        rows.push([name, why(), "", "", ""]);
        return;
      }
      const r = this.ratioCell(cLabel, label);
      rows.push([name, kcalls(tm.ns), fmtSpread(tm), r.cell, r.note]);
    };
    for (const [width, infix] of [[OUTSTANDING, "window"], [WIDE, `window${WIDE}`]] as const) {
      for (const mode of this.setups.keys()) {
        for (const t of streamTransports) {
          const label = `${a}/${infix}/${mode}/${t}`;
          row(`${mode} ${t}, ${width} outstanding`, label, () => {
            const o = this.results.get(label);
            return o !== undefined && "error" in o ? o.error : (this.broken.get(`${a}/${mode}/${t}`) ?? "not measured");
          });
        }
      }
    }
    for (const t of ["tcp", "udp"] as const) {
      if (this.timing(`window-toC/${t}`) !== undefined && a === "process") row(`synthesized ${t} → the C server`, `window-toC/${t}`, () => "");
    }
    this.log(table(["client", "calls/s", "IQR", "× C sync", ""], rows, ["left", "right", "right", "right", "left"]));
    this.log(
      a === "process"
        ? `(each server in its own process, as the C server is. "→ the C server": our client alone, against the server the C client calls.)`
        : `(our servers run in this one Node thread, so each call's server work is on the client's CPU too; the C client and C server are two processes.)`,
    );
  }

  // ---- against gRPC ----------------------------------------------------------------------

  /**
   * Null() and the 1440-byte Echo() over our tcp (each mode) against @grpc/grpc-js and
   * Connect-ES, every server in its own process: latency with one call outstanding, then
   * calls/s with 32 outstanding, each in one group.
   */
  async versus(): Promise<void> {
    for (const s of this.setups.values()) {
      const b = this.bound.get(`process/${s.mode}/tcp`);
      if (b === undefined) {
        this.vsError.set(s.mode, this.broken.get(`process/${s.mode}/tcp`) ?? "not set up");
        continue;
      }
      const ours: UnaryClient = { label: s.mode, null: () => b.client.nullproc(), echo: (d) => b.echo.echo(d), close: () => {} };
      try {
        await this.probeVs(ours);
        this.vs.set(s.mode, ours);
      } catch (e) {
        this.vsError.set(s.mode, errText(e));
      }
    }
    let g: typeof import("./grpc.js") | undefined;
    try {
      g = await import("./grpc.js");
    } catch (e) {
      for (const who of ["grpc-js", "connect"]) this.vsError.set(who, `could not load: ${errText(e)}`);
    }
    if (g !== undefined) {
      for (const [who, pkg] of [
        ["grpc-js", "@grpc/grpc-js"],
        ["connect", "@connectrpc/connect-node"],
      ] as const) {
        this.versions.set(who, this.versionOf(pkg));
        try {
          const peer = await spawnPeer(who === "grpc-js" ? "grpc" : "connect", {}, this.pin.server);
          this.closers.push(() => peer.close());
          this.pids.push(peer.pid);
          const port = (peer.ready as { port: number }).port;
          const client = who === "grpc-js" ? await g.grpcClient(port) : await g.connectClient(port);
          this.closers.push(async () => client.close());
          await this.probeVs(client);
          this.vs.set(who, client);
        } catch (e) {
          this.vsError.set(who, errText(e));
        }
      }
    }
    // Every client and server here is warmed up alike before the timing, beyond the per-case
    // warm-up: a server process's JIT settles only with the calls it serves (grpc-js doubles
    // its calls/s over its first second of calls).
    for (const c of this.vs.values()) {
      for (const lanes of [1, OUTSTANDING]) {
        const until = performance.now() + (this.ctx.quick ? Math.min(VS_WARMUP_MS, 100) : VS_WARMUP_MS);
        while (performance.now() < until) {
          const calls: Promise<unknown>[] = [];
          for (let k = 0; k < lanes; k++) calls.push(c.null(), c.echo(this.data));
          await Promise.all(calls);
        }
      }
    }
    const latency: AsyncCase[] = [];
    const window: AsyncCase[] = [];
    for (const [who, c] of this.vs) {
      for (const p of vsProcs) {
        const loop = isolated(p === "Null" ? vsNullLoop : vsEchoLoop);
        latency.push({ label: `vs/${who}/${p}`, run: (n) => loop(c, this.data, n) });
        const w = isolated(vsWindowLoop);
        const echo = p === "Echo";
        window.push({ label: `vsw/${who}/${p}`, run: (n) => w(c, this.data, OUTSTANDING, echo, n) });
      }
    }
    await this.measure("versus latency", latency);
    // A batch must hold many windows of 32 calls, or it times the window's ramp: at grpc-js's
    // 10 k calls/s, a 15 ms batch is five windows. Longer batches, fewer rounds.
    const o = this.options;
    await this.measure("versus throughput", window, { ...o, batchMs: Math.max(o.batchMs, 60), rounds: Math.max(5, Math.ceil(o.rounds / 2)) });
    this.printVersus();
  }

  versionOf(pkg: string): string {
    try {
      const meta: unknown = JSON.parse(readFileSync(join(this.ctx.root, "node_modules", pkg, "package.json"), "utf8"));
      const v = (meta as { version?: unknown }).version;
      return typeof v === "string" ? v : "?";
    } catch {
      return "?";
    }
  }

  theirs(): string[] {
    return ["grpc-js", "connect"];
  }

  printVersus(): void {
    this.log();
    this.log(
      `-- against gRPC: Null() and a 1440-byte Echo() over our tcp and over @grpc/grpc-js ${this.versions.get("grpc-js") ?? "?"} and Connect-ES ${this.versions.get("connect") ?? "?"} ` +
        `(connect-node, gRPC protocol over HTTP/2), every server in its own process --`,
    );
    const rows: string[][] = [];
    const who = [...this.setups.keys(), ...this.theirs()];
    for (const w of who) {
      const name = this.theirs().includes(w) ? w : `${w} (ours, tcp)`;
      const err = this.vsError.get(w);
      if (err !== undefined) {
        rows.push([name, `ERROR: ${err}`, "", "", "", "", "", "", ""]);
        continue;
      }
      const cells: string[] = [name];
      for (const p of vsProcs) {
        const tm = this.timing(`vs/${w}/${p}`);
        cells.push(tm === undefined ? "error" : us(tm.ns), tm === undefined ? "" : fmtSpread(tm));
      }
      for (const p of vsProcs) {
        const tm = this.timing(`vsw/${w}/${p}`);
        cells.push(tm === undefined ? "error" : kcalls(tm.ns), tm === undefined ? "" : fmtSpread(tm));
      }
      rows.push(cells);
    }
    this.log(
      table(
        ["client → server", "Null µs", "IQR", "Echo µs", "IQR", `Null calls/s (${OUTSTANDING} out)`, "IQR", `Echo calls/s (${OUTSTANDING} out)`, "IQR"],
        rows,
      ),
    );
    const ratios: string[][] = [];
    for (const m of this.setups.keys()) {
      for (const t of this.theirs()) {
        const cell = (a: string, b: string): string => {
          const r = this.ratio(a, b);
          if (r === undefined) return "—";
          return this.invalid(a, b) === undefined ? fmtRatio(r) : `NOT MEASURED (${fmtRatio(r)})`;
        };
        ratios.push([
          `${m} ÷ ${t}`,
          cell(`vs/${m}/Null`, `vs/${t}/Null`),
          cell(`vs/${m}/Echo`, `vs/${t}/Echo`),
          // calls/s ratio = their ns per call ÷ ours.
          cell(`vsw/${t}/Null`, `vsw/${m}/Null`),
          cell(`vsw/${t}/Echo`, `vsw/${m}/Echo`),
        ]);
      }
    }
    this.log();
    this.log(table(["ours ÷ theirs", "Null latency", "Echo latency", "Null calls/s", "Echo calls/s"], ratios));
    this.log("(latency: below 1× is faster than theirs; calls/s: above 1× is more. Paired per round within each group.)");
  }

  /** The copy ledger of a few calls per mode × transport × procedure, made after the timing. */
  async collectCopies(): Promise<void> {
    const seen: { served?: CallRecord | undefined } = {};
    const onServe = (m: unknown): void => {
      seen.served = m as CallRecord;
    };
    const lastServed = (): CallRecord | undefined => seen.served;
    subscribe("rpcgen-ts:serve", onServe);
    try {
      for (const s of this.setups.values()) {
        for (const t of transports) {
          // The server's record is published where the server runs: shm's worker writes it
          // to shared words; the others are read from the one-thread arrangement's servers.
          const a: Arrangement = t === "shm" ? "process" : "thread";
          if (!this.bound.has(`${a}/${s.mode}/${t}`)) continue;
          let last: CallRecord | undefined;
          const stats = t === "shm" ? new SharedArrayBuffer(32) : undefined;
          const words = stats === undefined ? undefined : new Int32Array(stats);
          let channel: Channel | undefined;
          try {
            channel = await this.open(a, s, t, { onCall: (r) => void (last = r) }, stats);
            const client = new s.Client(channel, { timeoutMs: CALL_TIMEOUT_MS });
            for (const p of procs) {
              for (let i = 0; i < 2; i++) {
                const before = words === undefined ? 0 : Atomics.load(words, 0);
                seen.served = undefined;
                if (p === "Null") await client.nullproc();
                else if (p === "MaxArg") await client.maxarg(this.data);
                else await client.maxresult(MAXDATA);
                let server: Copies["server"];
                if (words !== undefined) {
                  // The worker publishes its record after the reply is on its way: wait for it.
                  Atomics.wait(words, 0, before, 200);
                  server =
                    Atomics.load(words, 0) > before
                      ? {
                          copies: { stub: words[1]!, runtime: words[2]!, wire: words[3]! },
                          bytesCopied: { stub: words[4]!, runtime: words[5]!, wire: words[6]! },
                        }
                      : undefined;
                } else {
                  const r = lastServed();
                  server = r === undefined ? undefined : { copies: r.copies, bytesCopied: r.bytesCopied };
                }
                if (last !== undefined) this.copies.set(`${s.mode}/${t}/${p}`, { client: { copies: last.copies, bytesCopied: last.bytesCopied }, server });
              }
            }
          } catch (e) {
            this.log(`NOTE: copy counts of ${s.mode}/${t} failed: ${errText(e)}`);
          } finally {
            await channel?.close();
          }
        }
      }
    } finally {
      unsubscribe("rpcgen-ts:serve", onServe);
    }
    // The floors send the same bytes as the RPC messages: the TCP ledger's wire bytes (record
    // sent with its mark, reply received without) must be the sizes the floors used.
    for (const mode of this.setups.keys()) {
      for (const p of procs) {
        const c = this.copies.get(`${mode}/tcp/${p}`);
        if (c === undefined) continue;
        const want = 4 + messageBytes[p].call + messageBytes[p].reply;
        if (c.client.bytesCopied.wire !== want) {
          this.log(`WARNING: ${mode} tcp ${p}: the client's wire bytes are ${c.client.bytesCopied.wire}, the floor assumed ${want}: the floor's sizes are off`);
        }
      }
    }
  }

  /** inproc Null() with a `rpcgen-ts:call` subscriber, timed last (subscribing reshapes the channel object for everyone). */
  async subscribed(): Promise<void> {
    const b = this.bound.get("thread/synthesized/inproc");
    if (b === undefined) return;
    let seen = 0;
    const onCall = (): void => {
      seen++;
    };
    subscribe("rpcgen-ts:call", onCall);
    try {
      const loop = isolated(nullLoop);
      const hop = microtaskHop();
      await this.measure("subscriber", [
        { label: "hook/subscriber", run: (n) => loop(b.client, this.data, n).then((x) => x + seen) },
        { label: "hook/subscriber-hop", run: hop },
      ]);
    } finally {
      unsubscribe("rpcgen-ts:call", onCall);
    }
  }

  // ---- output ----------------------------------------------------------------------------

  printTransport(a: Arrangement, t: Transport): void {
    this.log();
    this.log(`-- ${arrangementTitle[a]} · ${t} — floor: ${floorNames[t]} --`);
    const rows: string[][] = [];
    const errorRow = (label: string, why: string): string[] => [label, `ERROR: ${why}`, "", "", ""];
    const floorRows = t === "inproc" ? (["Null"] as const) : procs;
    const framed = t === "tcp" || t === "unix" ? 4 : 0;
    for (const p of floorRows) {
      const label = floorLabel(a, t, p);
      const name = t === "inproc" ? "floor: microtask hop" : `floor ${p} (${messageBytes[p].call + framed} → ${messageBytes[p].reply + framed} B)`;
      const o = this.results.get(label);
      if (o === undefined || "error" in o) rows.push(errorRow(name, o === undefined ? "not measured" : o.error));
      else rows.push([name, us(o.timing.ns), fmtSpread(o.timing), "", this.invalidFloor.has(label) ? "INVALID: could not spin" : ""]);
    }
    if (t === "shm") {
      for (const [label, name] of [
        ["process/floor/shm/sleep-async", "floor Null, sleeping (wait / waitAsync)"],
        ["process/floor/shm/sleep-sync", "floor Null, sleeping (wait / wait)"],
        ["process/floor/shm/hop", "a microtask hop (what an asynchronous call adds at least)"],
      ] as const) {
        const tm = this.timing(label);
        if (tm !== undefined) rows.push([name, us(tm.ns), fmtSpread(tm), "", ""]);
      }
      for (const mode of this.setups.keys()) {
        const label = `process/${mode}/shm/sync-Null`;
        const o = this.results.get(label);
        if (o === undefined || "error" in o) rows.push(errorRow(`${mode} sync Null()`, o === undefined ? "not measured" : o.error));
        else {
          const r = this.ratioCell(label, floorLabel(a, t, "Null"));
          rows.push([`${mode} sync Null()`, us(o.timing.ns), fmtSpread(o.timing), r.cell, r.note]);
        }
      }
      const label = "process/synthesized/shm/sync-Null-sleeping";
      const o = this.results.get(label);
      if (o !== undefined && "error" in o) rows.push(errorRow("synthesized sync Null(), spinning off", o.error));
      else if (o !== undefined) {
        const r = this.ratio(label, "process/floor/shm/sleep-sync");
        rows.push(["synthesized sync Null(), spinning off", us(o.timing.ns), fmtSpread(o.timing), "", r === undefined ? "" : `${fmtRatio(r)} the sleeping (wait / wait) floor`]);
      }
    }
    for (const mode of this.setups.keys()) {
      for (const p of procs) {
        const label = key(a, mode, t, p);
        const name = `${mode} ${p}()`;
        const o = this.results.get(label);
        if (o === undefined || "error" in o) {
          rows.push(errorRow(name, o === undefined ? "not measured" : o.error));
          continue;
        }
        const r = this.ratioCell(label, floorLabel(a, t, p));
        let note = r.note;
        if (t === "shm" && p === "Null") {
          const sleep = this.ratio(label, "process/floor/shm/sleep-async");
          if (sleep !== undefined) note = `${note === "" ? "" : `${note}; `}${fmtRatio(sleep)} the sleeping (waitAsync) floor`;
        }
        rows.push([name, us(o.timing.ns), fmtSpread(o.timing), r.cell, note]);
      }
    }
    if (t === "tcp" && a === "process") {
      for (const p of procs) {
        const label = `c/tcp/${p}`;
        const tm = this.timing(label);
        if (tm === undefined) {
          rows.push(errorRow(`C libtirpc ${p}()`, this.cError ?? (this.results.get(label) as { error?: string } | undefined)?.error ?? "not measured"));
          continue;
        }
        const r = this.ratioCell(label, floorLabel(a, t, p));
        const vs = [...this.setups.keys()]
          .map((m) => {
            const x = this.ratio(key(a, m, "tcp", p), label);
            return x === undefined ? undefined : `${m[0]} ${fmtRatio(x)}`;
          })
          .filter((x) => x !== undefined)
          .join(", ");
        rows.push([`C libtirpc ${p}()`, us(tm.ns), fmtSpread(tm), r.cell, [vs === "" ? "" : `ours ÷ C: ${vs}`, r.note].filter((x) => x !== "").join(" ")]);
      }
      const tm = this.timing("toC/tcp/Null");
      if (tm !== undefined) {
        const r = this.ratioCell("toC/tcp/Null", floorLabel(a, t, "Null"));
        const vsC = this.ratio("toC/tcp/Null", "c/tcp/Null");
        rows.push(["synthesized Null() → the C server", us(tm.ns), fmtSpread(tm), r.cell, vsC === undefined ? "" : `our client alone ÷ C client: ${fmtRatio(vsC)}`]);
      }
    }
    if (t === "inproc") {
      for (const [label, name] of [
        ["hook/onCall", "synthesized Null() + onCall hook"],
        ["hook/gates", "observation gates of one Null(), alone"],
      ] as const) {
        const tm = this.timing(label);
        if (tm === undefined) continue;
        const r = this.ratio(label, key("thread", "synthesized", "inproc", "Null"));
        rows.push([name, us(tm.ns), fmtSpread(tm), "", r === undefined ? "" : `${pct(r)} of synthesized inproc Null()`]);
      }
    }
    this.log(table(["case", "µs", "IQR", "×floor", "note"], rows, ["left", "right", "right", "right", "left"]));
    const why = this.invalidFloor.get(floorLabel(a, t, "Null"));
    if (why !== undefined) {
      this.log(
        `NOTE: ${why} (≈ 0.2 µs when both threads have a CPU): a spinning hand-off needs both threads on a CPU at once, which this run did not give them; ` +
          `the ratios to it are NOT MEASURED, and the sleeping floors stand in for reference.`,
      );
    }
  }

  printSummary(a: Arrangement): void {
    const ts = arrangementTransports[a];
    this.log();
    this.log(`-- summary, ${arrangementTitle[a]}: Null() and its ratio to its transport's floor${a === "process" ? " (shm: the spinning SAB ping-pong)" : ""} --`);
    const cell = (label: string, floor: string): string => {
      const tm = this.timing(label);
      const r = this.ratio(label, floor);
      if (tm === undefined) return "error";
      if (r === undefined) return `${us(tm.ns)} µs`;
      return this.invalid(label, floor) === undefined ? `${us(tm.ns)} µs ${fmtRatio(r)}` : `${us(tm.ns)} µs NOT MEASURED`;
    };
    const rows: string[][] = [];
    for (const mode of this.setups.keys()) rows.push([mode, ...ts.map((t) => cell(key(a, mode, t, "Null"), floorLabel(a, t, "Null")))]);
    rows.push([
      "floor",
      ...ts.map((t) => {
        const tm = this.timing(floorLabel(a, t, "Null"));
        return tm === undefined ? "error" : `${us(tm.ns)} µs${this.invalidFloor.has(floorLabel(a, t, "Null")) ? " INVALID" : ""}`;
      }),
    ]);
    if (a === "process") rows.push(["C libtirpc", ...ts.map((t) => (t === "tcp" ? (this.timing("c/tcp/Null") === undefined ? (this.cError ?? "error") : cell("c/tcp/Null", floorLabel(a, t, "Null"))) : ""))]);
    this.log(table(["Null()", ...ts], rows));
    const none = this.timing(key("thread", "synthesized", "inproc", "Null"));
    const hook = this.timing("hook/onCall");
    const sub = this.timing("hook/subscriber");
    if (a === "thread" && none !== undefined) {
      this.log();
      this.log(
        `hooks (inproc synthesized Null()): nobody listening ${us(none.ns)} µs; with an onCall hook ${hook === undefined ? "—" : `${us(hook.ns)} µs (paired ${fmtRatio(this.ratio("hook/onCall", key("thread", "synthesized", "inproc", "Null")) ?? NaN)})`}; ` +
          `with a rpcgen-ts:call subscriber ${sub === undefined ? "—" : `${us(sub.ns)} µs (${fmtRatio(sub.ns / none.ns)}, unpaired: timed in a later group, since subscribing changes the channel object every call path checks)`}`,
      );
    }
  }

  printCopies(): void {
    this.log();
    this.log("-- copies per call (client | server), stub/runtime/wire: count and bytes; from CallRecords of calls made after the timing --");
    const rows: string[][] = [];
    for (const mode of this.setups.keys()) {
      for (const t of transports) {
        for (const p of procs) {
          const c = this.copies.get(`${mode}/${t}/${p}`);
          if (c === undefined) {
            rows.push([mode, t, p, "—", "", "", ""]);
            continue;
          }
          const sv = c.server;
          rows.push([mode, t, p, triple(c.client.copies), triple(c.client.bytesCopied), sv === undefined ? "n/a" : triple(sv.copies), sv === undefined ? "" : triple(sv.bytesCopied)]);
        }
      }
    }
    this.log(table(["mode", "transport", "proc", "client copies", "client bytes", "server copies", "server bytes"], rows, ["left", "left", "left"]));
  }

  verdicts(): void {
    const b = this.ctx.budgets;
    const modes = [...this.setups.keys()];
    /** The worst mode's ratio label(m) ÷ base(m) (`invert`: the smallest), with why it cannot be judged. */
    const worst = (label: (m: Mode) => string, base: (m: Mode) => string, invert = false): { value: number; detail: string; invalid?: string } | undefined => {
      const parts: string[] = [];
      let value = invert ? Infinity : -Infinity;
      let invalid: string | undefined;
      for (const m of modes) {
        const r = this.ratio(label(m), base(m));
        if (r === undefined) return undefined;
        parts.push(`${m} ${fmtRatioFine(r)}`);
        value = invert ? Math.min(value, r) : Math.max(value, r);
        invalid ??= this.invalid(label(m), base(m));
      }
      if (modes.length === 0) return undefined;
      return invalid === undefined ? { value, detail: parts.join(", ") } : { value, detail: parts.join(", "), invalid };
    };
    const where = "server in its own process";
    for (const t of streamTransports) {
      const w = worst((m) => key("process", m, t, "Null"), () => floorLabel("process", t, "Null"));
      const name = `RPC Null() over ${t} ≤ 1.15× raw ${t} ping-pong (${where}; worst mode)`;
      if (w === undefined) b.notMeasured(name, `a floor or an RPC case failed: see the ${t} rows`);
      else b.atMost(`${name}: ${w.detail}`, w.value, 1.15, fmtRatioFine, w.invalid);
    }
    {
      const w = worst((m) => key("process", m, "shm", "Null"), () => floorLabel("process", "shm", "Null"));
      const name = "RPC Null() over shm ≤ 3× raw SAB spinning ping-pong (worker thread; worst mode)";
      if (w === undefined) b.notMeasured(name, "a floor or an RPC case failed: see the shm rows");
      else b.atMost(`${name}: ${w.detail}`, w.value, 3, fmtRatioFine, w.invalid);
    }
    {
      const w = worst((m) => `process/${m}/shm/sync-Null`, () => floorLabel("process", "shm", "Null"));
      const name = "sync Null() over shm ≤ 3× raw SAB spinning ping-pong (client.sync; worker thread; worst mode)";
      if (w === undefined) b.notMeasured(name, "a floor or a sync case failed: see the shm rows");
      else b.atMost(`${name}: ${w.detail}`, w.value, 3, fmtRatioFine, w.invalid);
    }
    {
      const label = "process/synthesized/shm/sync-Null-sleeping";
      const r = this.ratio(label, "process/floor/shm/sleep-sync");
      const name = "sync Null() over shm with spinning off ≤ 1.2× the sleeping SAB ping-pong (wait / wait)";
      if (r === undefined) b.notMeasured(name, "see the shm rows");
      else b.atMost(name, r, 1.2, fmtRatioFine, this.invalid(label, "process/floor/shm/sleep-sync"));
    }
    {
      // Asynchronous minus synchronous, per mode, against a microtask hop + 2 µs.
      const hop = this.timing("process/floor/shm/hop");
      let worstOver: number | undefined;
      const parts: string[] = [];
      for (const m of this.setups.keys()) {
        const asyncNs = this.timing(key("process", m, "shm", "Null"))?.ns;
        const syncNs = this.timing(`process/${m}/shm/sync-Null`)?.ns;
        if (asyncNs === undefined || syncNs === undefined || hop === undefined) continue;
        const over = asyncNs - syncNs - hop.ns;
        parts.push(`${m} ${us(asyncNs - syncNs)} µs over sync`);
        worstOver = Math.max(worstOver ?? -Infinity, over);
      }
      const name = `async Null() over shm ≤ sync + a microtask hop${hop === undefined ? "" : ` (${us(hop.ns)} µs)`} + 2 µs (worst mode)`;
      if (worstOver === undefined) b.notMeasured(name, "see the shm rows");
      else b.atMost(`${name}: ${parts.join(", ")}`, worstOver / 1000, 2, (x) => `${x.toFixed(2)} µs over`, this.invalid(key("process", "synthesized", "shm", "Null"), "process/floor/shm/hop"));
    }
    // A window over a stream pipelines freely; over UDP each call is its own datagram both ways,
    // which a window cannot batch (node:dgram has no sendmmsg), so its target is lower.
    const windowTarget: Record<(typeof streamTransports)[number], number> = { tcp: 8, unix: 8, udp: 3 };
    for (const t of streamTransports) {
      // calls/s ratio = C's ns per call ÷ ours.
      const w = worst(() => "process/window/c", (m) => `process/window/${m}/${t}`, true);
      const name = `${OUTSTANDING} outstanding Null() over ${t}: ≥ ${windowTarget[t]}× the calls/s of the sync C client (${where}; worst mode)`;
      if (w === undefined) b.notMeasured(name, this.cError ?? "see the throughput rows");
      else b.atLeast(`${name}: ${w.detail}`, w.value, windowTarget[t], fmtRatioFine, w.invalid);
    }
    {
      const base = key("thread", "synthesized", "inproc", "Null");
      const r = this.ratio("hook/gates", base);
      const name = "hooks and ledger with nobody listening < 3% of an inproc Null() (the observation gates, timed alone)";
      if (r === undefined) b.notMeasured(name, "see the inproc rows");
      else b.atMost(name, r, 0.03, pct, this.invalid("hook/gates", base));
    }
    for (const t of this.theirs()) {
      const why = this.vsError.get(t);
      {
        const w = worst((m) => `vs/${m}/Null`, () => `vs/${t}/Null`);
        const name = `Null() latency over tcp, ours ÷ ${t} ≤ 0.5× (at least 2× faster; ${where}; worst mode)`;
        if (w === undefined) b.notMeasured(name, why ?? "see the rows against gRPC");
        else b.atMost(`${name}: ${w.detail}`, w.value, 0.5, fmtRatioFine, w.invalid);
      }
      for (const p of vsProcs) {
        const w = worst(() => `vsw/${t}/${p}`, (m) => `vsw/${m}/${p}`, true);
        const name = `${OUTSTANDING} outstanding ${p}() calls/s over tcp, ours ÷ ${t} ≥ 2× (${where}; worst mode)`;
        if (w === undefined) b.notMeasured(name, why ?? "see the rows against gRPC");
        else b.atLeast(`${name}: ${w.detail}`, w.value, 2, fmtRatioFine, w.invalid);
      }
    }
  }

  async close(): Promise<void> {
    const closers = this.closers.splice(0).reverse();
    for (const c of closers) {
      try {
        await c();
      } catch {
        // closing is best effort: a transport that failed may fail to close too
      }
    }
    if (this.dir !== "") rmSync(this.dir, { recursive: true, force: true });
  }
}

export const rpcSection: Section = {
  name: "rpc",
  title:
    "RPC round trips: Null(), MaxArg(1440 B), MaxResult(1440 B) per mode × transport, against each transport's raw floor, the C libtirpc client, and gRPC",
  async run(ctx) {
    // Pin this process (every thread, the client end) for the section; the servers are
    // pinned where they are started. The mask is restored after.
    const mask = ctx.pinning.client === undefined ? undefined : affinityOf(process.pid);
    pinProcess(process.pid, ctx.pinning.client);
    const bench = new RpcBench(ctx, ctx.options);
    try {
      await bench.run();
    } finally {
      await bench.close();
      if (mask !== undefined) restoreAffinity(process.pid, mask);
    }
  },
};
