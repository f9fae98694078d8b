import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { connect, createServer, type CallRecord, type Channel, type ConnectOptions, type HandlersOf, type Mode } from "../runtime/index.js";
import { quantile, table } from "./harness.js";
import { affinityOf, cpuMeter, pinProcess, pinThreads, restoreAffinity, threadIds, type CpuUse } from "./peers.js";
import type { PhasePeerStart, ServedRow } from "./phase-peer.js";
import { RING_BYTES, RING_FIELDS, RING_SLOTS } from "./phase-shm-server.js";
import { benchBinding, benchHandlers, MAXDATA, payload, type BenchClient, type BenchService } from "./rpc-service.js";
import type { BenchContext, Section } from "./section.js";

/**
 * Where a call's time goes: the components of RPC latency (Thekkath and Levy, ACM TOCS 11(2),
 * 1993; the Firefly RPC paper draws them as one bar per call), from the CallRecords the runtime
 * publishes. Per mode, transport and procedure, calls are made one at a time with an `onCall`
 * hook on the client and an `onServe` hook on the server (so these calls are observed, unlike
 * the RPC section's timed ones); each client record is paired with the server record of the
 * same xid, and each phase's figure is its median over the paired calls.
 *
 * The client's `transit` (handed to the transport → reply arrived) includes the server's four
 * phases; the figure reported as `transit` is the rest of it, per call: the wire and both
 * event loops' hand-offs, which is what a raw ping-pong of the same transport (the floor)
 * costs at least. When the server's phases outlast the client's transit, the server ran
 * inside the client's `send` (the write woke it, and it ran before the write returned: one
 * CPU for both, or a wake-up that preempts); that overlap is counted as the server's and
 * taken from `send`, so a call's eight parts still add up to its whole. The eight medians
 * are stacked in bench/latency.svg beside that floor.
 *
 * Arrangement: as the RPC section's headline one — tcp, unix and udp servers in a process of
 * their own (bench/phase-peer.ts), shm's server in the runtime's worker thread
 * (bench/phase-shm-server.ts); inproc's in this thread, since it has no other. `--pin`
 * places the ends as it does there. Copies per call (client and server, per layer) come from
 * the same records.
 */

export const phaseNames = ["call", "send", "transit", "receive", "dispatch", "execute", "reply", "resume"] as const;
export type PhaseName = (typeof phaseNames)[number];
export const phaseTransports = ["inproc", "shm", "tcp", "unix", "udp"] as const;
export type PhaseTransport = (typeof phaseTransports)[number];
export const phaseProcs = ["Null", "MaxArg", "MaxResult"] as const;
export type PhaseProc = (typeof phaseProcs)[number];

export interface Layers {
  readonly stub: number;
  readonly runtime: number;
  readonly wire: number;
}

/** One mode × transport × procedure: what bench/results.json keeps under `phases` and the chart draws. */
export interface PhaseRow {
  readonly mode: Mode;
  readonly transport: PhaseTransport;
  /** Where the server ran: `process`, `worker` (shm) or `thread` (inproc). */
  readonly server: "process" | "worker" | "thread";
  readonly proc: PhaseProc;
  /** Calls whose client and server records were paired. */
  readonly calls: number;
  /** Median ns per phase as drawn: `transit` is the client's transit less the server's phases, per call (see `overlapped`). */
  readonly phases: Readonly<Record<PhaseName, number>>;
  /** Median ns of the client's own four phases, as its records say. */
  readonly clientPhases: { readonly call: number; readonly send: number; readonly transit: number; readonly resume: number };
  /**
   * Calls whose server phases outlasted the client's transit: the server ran while the
   * client was still in its send (its write woke the server, which ran before the write
   * returned). The overlap is drawn as the server's time, taken from `send`.
   */
  readonly overlapped: number;
  /** Calls whose server phases outlasted even send + transit (cut to fit; a clock or scheduling oddity). */
  readonly cut: number;
  /** Median ns of the client's whole call (call + send + transit + resume), observed. */
  readonly totalNs: number;
  /** Copies and bytes copied per call, per layer, on each side. */
  readonly copies: { readonly client: Layers; readonly server: Layers };
  readonly bytesCopied: { readonly client: Layers; readonly server: Layers };
}

const CALL_TIMEOUT_MS = 10_000;
/** A request to the server process gets an answer within this, or the section fails (no hang). */
const PEER_TIMEOUT_MS = 15_000;

const serverOf: Record<PhaseTransport, PhaseRow["server"]> = { inproc: "thread", shm: "worker", tcp: "process", unix: "process", udp: "process" };

/** The server side of one pairing: what each served call's record said. */
type Served = Map<number, ServedRow>;

/** The forked server process (bench/phase-peer.ts), spoken to one request at a time. */
class PhasePeer {
  private waiting: { type: string; resolve: (m: unknown) => void; reject: (e: Error) => void } | undefined;
  private exited: Error | undefined;

  private constructor(readonly child: ChildProcess) {
    child.on("message", (m: { type?: string; message?: string }) => {
      const w = this.waiting;
      if (w === undefined) return;
      this.waiting = undefined;
      if (m.type === "error") w.reject(new Error(`server process: ${m.message ?? "?"}`));
      else if (m.type !== w.type) w.reject(new Error(`server process answered ${String(m.type)}, expected ${w.type}`));
      else w.resolve(m);
    });
    child.on("exit", (code, signal) => {
      this.exited = new Error(`the server process exited (${signal ?? code})`);
      this.waiting?.reject(this.exited);
      this.waiting = undefined;
    });
  }

  static spawn(): PhasePeer {
    const entry = fileURLToPath(new URL("./phase-peer.js", import.meta.url));
    return new PhasePeer(fork(entry, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  }

  request<T>(message: object, answer: string): Promise<T> {
    if (this.exited !== undefined) return Promise.reject(this.exited);
    if (this.waiting !== undefined) return Promise.reject(new Error("one request at a time"));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`the server process did not answer ${answer} within ${PEER_TIMEOUT_MS} ms`));
      }, PEER_TIMEOUT_MS);
      this.waiting = {
        type: answer,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.child.send(message);
    });
  }

  /** Every served call's record since the last take. */
  async take(): Promise<ServedRow[]> {
    return (await this.request<{ records: ServedRow[] }>({ type: "take" }, "records")).records;
  }

  async close(): Promise<void> {
    if (this.exited !== undefined) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.send({ type: "stop" });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(timer);
  }
}

/** The shm worker's ring of served records (bench/phase-shm-server.ts). */
class Ring {
  readonly sab = new SharedArrayBuffer(RING_BYTES);
  private readonly count = new Int32Array(this.sab, 0, 1);
  private readonly slots = new Float64Array(this.sab, 8);
  private taken = 0;

  /** The records served since the last take; waits briefly for the last call's, published after its reply. */
  take(key: string, served: number): Served {
    const deadline = Date.now() + 1000;
    for (let c = Atomics.load(this.count, 0); c < served && Date.now() < deadline; c = Atomics.load(this.count, 0)) Atomics.wait(this.count, 0, c, 50);
    const end = Atomics.load(this.count, 0);
    const out: Served = new Map();
    for (let i = Math.max(this.taken, end - RING_SLOTS); i < end; i++) {
      const f = this.slots.subarray((i % RING_SLOTS) * RING_FIELDS, (i % RING_SLOTS) * RING_FIELDS + RING_FIELDS);
      out.set(f[0]!, { key, xid: f[0]!, phases: [f[1]!, f[2]!, f[3]!, f[4]!], copies: [f[5]!, f[6]!, f[7]!], bytes: [f[8]!, f[9]!, f[10]!] });
    }
    this.taken = end;
    return out;
  }
}

const median = (xs: number[]): number =>
  quantile(
    xs.sort((a, b) => a - b),
    0.5,
  );

/** The row of one case from its paired records; undefined when none paired. */
export function phaseRow(mode: Mode, transport: PhaseTransport, proc: PhaseProc, client: readonly CallRecord[], served: Served): PhaseRow | undefined {
  const pairs = client.flatMap((c) => {
    const s = served.get(c.xid);
    return s === undefined ? [] : [{ c, s }];
  });
  if (pairs.length === 0) return undefined;
  const col = (f: (c: CallRecord, s: ServedRow) => number): number => median(pairs.map(({ c, s }) => f(c, s)));
  const serverSum = (s: ServedRow): number => s.phases[0] + s.phases[1] + s.phases[2] + s.phases[3];
  // The server's phases lie within the client's send + transit. Where they outlast transit,
  // the server ran inside the client's send: that overlap is the server's time, not the send's.
  const overlap = (c: CallRecord, s: ServedRow): number => Math.min(Math.max(0, serverSum(s) - (c.phases.transit ?? 0)), c.phases.send ?? 0);
  const last = pairs[pairs.length - 1]!;
  const layers = (x: readonly [number, number, number]): Layers => ({ stub: x[0], runtime: x[1], wire: x[2] });
  return {
    mode,
    transport,
    server: serverOf[transport],
    proc,
    calls: pairs.length,
    phases: {
      call: col((c) => c.phases.call ?? 0),
      send: col((c, s) => (c.phases.send ?? 0) - overlap(c, s)),
      transit: col((c, s) => Math.max(0, (c.phases.transit ?? 0) + overlap(c, s) - serverSum(s))),
      receive: col((_, s) => s.phases[0]),
      dispatch: col((_, s) => s.phases[1]),
      execute: col((_, s) => s.phases[2]),
      reply: col((_, s) => s.phases[3]),
      resume: col((c) => c.phases.resume ?? 0),
    },
    clientPhases: {
      call: col((c) => c.phases.call ?? 0),
      send: col((c) => c.phases.send ?? 0),
      transit: col((c) => c.phases.transit ?? 0),
      resume: col((c) => c.phases.resume ?? 0),
    },
    overlapped: pairs.filter(({ c, s }) => serverSum(s) > (c.phases.transit ?? 0)).length,
    cut: pairs.filter(({ c, s }) => serverSum(s) > (c.phases.transit ?? 0) + (c.phases.send ?? 0)).length,
    totalNs: col((c) => (c.phases.call ?? 0) + (c.phases.send ?? 0) + (c.phases.transit ?? 0) + (c.phases.resume ?? 0)),
    copies: { client: { ...last.c.copies }, server: layers(last.s.copies) },
    bytesCopied: { client: { ...last.c.bytesCopied }, server: layers(last.s.bytes) },
  };
}

/** A channel of the section, with the cases (procedures) called on it. */
interface Opened {
  readonly key: string;
  readonly mode: Mode;
  readonly transport: PhaseTransport;
  channel?: Channel;
  ring?: Ring;
  /** Where the channel's onCall hook puts records now (undefined: nowhere, e.g. warm-up). */
  target: CallRecord[] | undefined;
  /** The server's records of this channel's calls, by xid. */
  readonly served: Served;
  /** Calls made on the channel (the shm ring waits for its worker to publish this many). */
  made: number;
  readonly cases: OpenedCase[];
}

interface OpenedCase {
  readonly proc: PhaseProc;
  readonly one: () => Promise<unknown>;
  readonly records: CallRecord[];
}

const errText = (e: unknown): string => (e instanceof Error ? e.message.split("\n")[0]! : String(e));

const us = (ns: number): string => (ns / 1000).toFixed(ns >= 10_000 ? 1 : 2);

export const phaseSection: Section = {
  name: "phases",
  title: "Where a call's time goes: latency phases and copies per call, from the runtime's CallRecords",
  async run(ctx: BenchContext) {
    const warmup = ctx.quick ? 100 : 400;
    const rounds = ctx.quick ? 3 : 10;
    const calls = ctx.quick ? 150 : 2000;
    const modules = await ctx.benchModules();
    const data = payload();
    const dir = mkdtempSync(join(tmpdir(), "rpcgen-ts-phases-"));
    const mask = ctx.pinning.client === undefined ? undefined : affinityOf(process.pid);
    pinProcess(process.pid, ctx.pinning.client);
    const rows: PhaseRow[] = [];
    const errors: Record<string, string> = {};
    let use: CpuUse | undefined;
    let peer: PhasePeer | undefined;
    try {
      const js = (p: string): string => pathToFileURL(p.replace(/\.ts$/, ".js")).href;
      // Without the server process, inproc and shm are still measured; tcp, unix, udp say why not.
      let ready: { servers: Record<string, { tcp: number; udp: number; unix: string }> } = { servers: {} };
      let peerError = "the server process did not start";
      try {
        peer = PhasePeer.spawn();
        pinProcess(peer.child.pid!, ctx.pinning.server);
        const start: PhasePeerStart = { type: "start", modules: [...modules].map(([mode, m]) => ({ mode, href: js(m.sourcePath) })), dir };
        ready = await peer.request(start, "ready");
      } catch (e) {
        peerError = `the server process did not start: ${e instanceof Error ? e.message.split("\n")[0]! : String(e)}`;
      }
      // Every channel is opened first; then rounds, each making a few calls of every case in
      // turn, so a change of load during the section falls on every case alike (as the timed
      // sections' interleaved rounds do).
      const opened: Opened[] = [];
      for (const [mode, m] of modules) {
        const binding = benchBinding(m.exports, m.sourcePath);
        for (const t of phaseTransports) {
          const key = `${mode}/${t}`;
          const o: Opened = { key, mode, transport: t, target: undefined, served: new Map(), made: 0, cases: [] };
          const onCall = (r: CallRecord): void => void o.target?.push(r);
          try {
            let options: ConnectOptions;
            const ends = ready.servers[mode];
            if ((t === "tcp" || t === "udp" || t === "unix") && ends === undefined)
              throw new Error(Object.keys(ready.servers).length === 0 ? peerError : `the server process serves no ${mode} module`);
            switch (t) {
              case "inproc": {
                const served = o.served;
                const server = createServer({ onServe: (r) => void served.set(r.xid, { ...servedFrom(r), key }) }).register(
                  binding.service,
                  benchHandlers() as unknown as HandlersOf<BenchService>,
                );
                options = { transport: "inproc", server, onCall };
                break;
              }
              case "shm":
                o.ring = new Ring();
                options = {
                  transport: "shm",
                  module: new URL("./phase-shm-server.js", import.meta.url),
                  data: { module: js(m.sourcePath), ring: o.ring.sab },
                  services: [binding.service],
                  onCall,
                };
                break;
              case "tcp":
                options = { transport: "tcp", host: "127.0.0.1", port: ends!.tcp, onCall };
                break;
              case "udp":
                options = { transport: "udp", host: "127.0.0.1", port: ends!.udp, onCall };
                break;
              case "unix":
                options = { transport: "unix", path: ends!.unix, onCall };
                break;
            }
            const before = threadIds();
            o.channel = await connect(options);
            if (t === "shm")
              pinThreads(
                [...threadIds()].filter((x) => !before.has(x)),
                ctx.pinning.server,
              );
            const client = new binding.Client(o.channel, { timeoutMs: CALL_TIMEOUT_MS });
            for (const p of phaseProcs) o.cases.push({ proc: p, one: callOf(p, client, data), records: [] });
            opened.push(o);
          } catch (e) {
            errors[key] = errText(e);
            await o.channel?.close().catch(() => undefined);
          }
        }
      }
      const failed = new Set<Opened>();
      /** Collects the server records of every channel's calls so far (the peer's in one request). */
      const collect = async (): Promise<void> => {
        const remote = opened.filter((o) => o.transport === "tcp" || o.transport === "unix" || o.transport === "udp");
        if (remote.length > 0 && peer !== undefined) {
          try {
            for (const r of await peer.take()) opened.find((o) => o.key === r.key)?.served.set(r.xid, r);
          } catch (e) {
            for (const o of remote) {
              errors[o.key] ??= errText(e);
              failed.add(o);
            }
          }
        }
        for (const o of opened) if (o.ring !== undefined) for (const [xid, r] of o.ring.take(o.key, o.made)) o.served.set(xid, r);
      };
      const runCalls = async (o: Opened, c: OpenedCase, n: number, keep: boolean): Promise<void> => {
        o.target = keep ? c.records : undefined;
        try {
          for (let i = 0; i < n; i++, o.made++) await c.one();
        } finally {
          o.target = undefined;
        }
      };
      const each = async (f: (o: Opened, c: OpenedCase) => Promise<void>): Promise<void> => {
        for (const o of opened) {
          if (failed.has(o)) continue;
          try {
            for (const c of o.cases) await f(o, c);
          } catch (e) {
            errors[o.key] = errText(e);
            failed.add(o);
          }
        }
      };
      try {
        await each((o, c) => runCalls(o, c, warmup, false));
        await collect();
        for (const o of opened) o.served.clear();
        // What the rest of the machine used while the phases were measured: a round trip whose
        // ends wait for a CPU measures the queue (the timed sections judge their groups by this).
        const meter = cpuMeter(() => (peer?.child.pid === undefined ? [process.pid] : [process.pid, peer.child.pid]));
        for (let round = 0; round < rounds; round++) {
          await each((o, c) => runCalls(o, c, Math.ceil(calls / rounds), true));
          // The shm rings hold RING_SLOTS calls each: empty them every round.
          await collect();
        }
        use = meter();
      } finally {
        for (const o of opened) await o.channel?.close().catch(() => undefined);
      }
      for (const o of opened) {
        if (failed.has(o)) continue;
        for (const c of o.cases) {
          const row = phaseRow(o.mode, o.transport, c.proc, c.records, o.served);
          if (row === undefined) errors[`${o.key}/${c.proc}`] = "no client record paired with a server record";
          else rows.push(row);
        }
      }
    } finally {
      await peer?.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      if (mask !== undefined) restoreAffinity(process.pid, mask);
    }
    ctx.results.note("phases", "method", {
      warmupCalls: warmup,
      calls,
      rounds,
      arrangement: "tcp, unix, udp: server in its own process; shm: worker thread; inproc: this thread",
      transit: "the client's transit less the server's four phases, per call (wire and event-loop hand-offs)",
      overlap:
        "where the server's phases outlast the client's transit, the server ran inside the client's send: the overlap is drawn as server time, taken from send",
    });
    ctx.results.note("phases", "rows", rows);
    if (use !== undefined) ctx.results.note("phases", "cpu", { ours: use.ours, others: use.others, seconds: use.seconds });
    if (Object.keys(errors).length > 0) ctx.results.note("phases", "errors", errors);

    if (use !== undefined) ctx.log(`(${use.seconds.toFixed(1)} s; CPUs used: ours ${use.ours.toFixed(2)}, other processes ${use.others.toFixed(2)})`);
    ctx.log(
      `${calls} observed calls per case in ${rounds} interleaved rounds, after ${warmup} warm-up calls; median µs per phase (client: call, send, resume; server: receive, dispatch, execute, reply; transit: the rest of the round trip)`,
    );
    ctx.log();
    ctx.log(
      table(
        ["mode", "transport", "proc", ...phaseNames, "Σ", "client total", "overlapped"],
        rows.map((r) => [
          r.mode,
          r.transport,
          r.proc,
          ...phaseNames.map((n) => us(r.phases[n])),
          us(phaseNames.reduce((s, n) => s + r.phases[n], 0)),
          us(r.totalNs),
          `${Math.round((r.overlapped / r.calls) * 100)}%`,
        ]),
        ["left", "left", "left"],
      ),
    );
    ctx.log();
    const tri = (l: Layers): string => `${l.stub}/${l.runtime}/${l.wire}`;
    ctx.log("copies per call, stub/runtime/wire (client + server):");
    ctx.log(
      table(
        ["mode", "transport", "proc", "client", "server", "client bytes", "server bytes"],
        rows.map((r) => [r.mode, r.transport, r.proc, tri(r.copies.client), tri(r.copies.server), tri(r.bytesCopied.client), tri(r.bytesCopied.server)]),
        ["left", "left", "left"],
      ),
    );
    for (const [k, why] of Object.entries(errors)) ctx.log(`ERROR: ${k}: ${why}`);
  },
};

function servedFrom(r: CallRecord): Omit<ServedRow, "key"> {
  const p = r.phases;
  return {
    xid: r.xid,
    phases: [p.receive ?? 0, p.dispatch ?? 0, p.execute ?? 0, p.reply ?? 0],
    copies: [r.copies.stub, r.copies.runtime, r.copies.wire],
    bytes: [r.bytesCopied.stub, r.bytesCopied.runtime, r.bytesCopied.wire],
  };
}

function callOf(p: PhaseProc, client: BenchClient, data: Uint8Array): () => Promise<unknown> {
  switch (p) {
    case "Null":
      return () => client.nullproc();
    case "MaxArg":
      return () => client.maxarg(data);
    case "MaxResult":
      return () => client.maxresult(MAXDATA);
  }
}
