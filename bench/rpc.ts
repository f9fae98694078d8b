import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  callChannel,
  connect,
  createServer,
  serveChannel,
  type CallRecord,
  type Channel,
  type ChannelOptions,
  type ConnectOptions,
  type CopyCounts,
  type HandlersOf,
  type Mode,
  type Server,
} from "../runtime/index.js";
import { startCBench, type CBench, type CProc } from "./c-peer.js";
import { microtaskHop, sabPingPong, streamPingPong, udpPingPong, type PingPong, type SabPingPong } from "./floors.js";
import { allModes } from "./generated.js";
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
import { benchBinding, benchHandlers, MAXDATA, payload, type BenchClient, type BenchService } from "./rpc-service.js";
import type { BenchContext, Section } from "./section.js";

/**
 * The RPC benchmark (DESIGN §6, §8): Firefly/LRPC's Null(), MaxArg(1440 B) and
 * MaxResult(1440 B) per marshaling mode and transport, each as a round-trip latency
 * (sequential calls, one outstanding) and as a ratio to the raw floor of its transport
 * measured in the same run with the same bytes (bench/floors.ts); the synchronous C
 * libtirpc client against a C server; 32 calls outstanding against the C client's calls/s;
 * and the cost of the observation hooks.
 *
 * Method: the codec section's (bench/harness.ts), asynchronously: per transport, the floors
 * and every RPC case are one group, each calibrated to a batch of ~batchMs and warmed up,
 * then timed in rotating interleaved rounds; a figure is the median over rounds, and a ratio
 * the median of per-round ratios, so load drift on this shared machine cancels out of it.
 *
 * Everything Node runs here runs in this process: the servers of inproc/tcp/unix/udp and
 * the floors' servers alike (the shm server and the SAB floor's peer in a worker thread), so
 * client and server share one event loop, as the floors' two ends do. The C client and
 * server are two processes.
 *
 * Copies per call come from the CallRecord of a few calls made AFTER the timing on separate
 * channels with an `onCall` hook (client) and a `rpcgen-ts:serve` subscriber (server), so
 * the timed calls ran with nobody listening.
 */

const transports = ["inproc", "shm", "tcp", "unix", "udp"] as const;
type Transport = (typeof transports)[number];
const procs = ["Null", "MaxArg", "MaxResult"] as const;
type Proc = (typeof procs)[number];
const streamTransports = ["tcp", "unix", "udp"] as const;

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
/** Calls give up after this long: a stuck transport fails its group instead of hanging the run. */
const CALL_TIMEOUT_MS = 10_000;

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

/**
 * The observation gates of one Null() with nobody listening, in a loop: RpcChannel.call's
 * and RpcChannel.receive's `callChannel.hasSubscribers || onCall !== undefined`, and
 * Server.dispatch's `serveChannel.hasSubscribers || onServe !== undefined`. (The
 * `phases`/`ledger !== undefined` tests that follow a false gate are field compares on
 * objects the call path touches anyway.)
 */
const gatesLoop = (
  cc: { readonly hasSubscribers: boolean },
  sc: { readonly hasSubscribers: boolean },
  opts: readonly { readonly onCall?: unknown; readonly onServe?: unknown }[],
  n: number,
): number => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const o = opts[i & 7]!;
    if (cc.hasSubscribers || o.onCall !== undefined) s++;
    if (o.onCall !== undefined || cc.hasSubscribers) s++;
    if (sc.hasSubscribers || o.onServe !== undefined) s++;
  }
  return s + n;
};

// ---- the pieces under test ---------------------------------------------------------------

interface ModeSetup {
  readonly mode: Mode;
  readonly service: BenchService;
  readonly Client: ReturnType<typeof benchBinding>["Client"];
  /** The generated module's compiled JS, for the shm worker to import. */
  readonly href: string;
  readonly server: Server;
  tcpPort: number;
  udpPort: number;
  readonly unixPath: string;
}

interface Bound {
  readonly channel: Channel;
  readonly client: BenchClient;
}

/** One row's outcome: a timing, or why there is none. */
type Outcome = { readonly timing: Timing } | { readonly error: string };

interface Copies {
  readonly client: { readonly copies: CopyCounts; readonly bytesCopied: CopyCounts };
  readonly server: { readonly copies: CopyCounts; readonly bytesCopied: CopyCounts } | undefined;
}

const key = (mode: Mode, t: Transport, p: Proc): string => `${mode}/${t}/${p}`;
const us = (ns: number): string => (ns >= 100_000 ? (ns / 1000).toFixed(0) : ns >= 10_000 ? (ns / 1000).toFixed(1) : (ns / 1000).toFixed(2));
const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const triple = (c: CopyCounts): string => `${c.stub}/${c.runtime}/${c.wire}`;
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 160);

class RpcBench {
  readonly setups = new Map<Mode, ModeSetup>();
  /** Timed channels, by mode/transport; absent with a reason in `broken`. */
  readonly bound = new Map<string, Bound>();
  readonly broken = new Map<string, string>();
  readonly results = new Map<string, Outcome>();
  readonly copies = new Map<string, Copies>();
  readonly closers: (() => Promise<unknown>)[] = [];
  readonly data = payload();
  readonly shmServer = new URL("./shm-server.js", import.meta.url);
  cBench: CBench | undefined;
  cError: string | undefined;

  constructor(
    private readonly ctx: BenchContext,
    readonly options: RoundsOptions,
  ) {}

  log(text = ""): void {
    this.ctx.log(text);
  }

  async setUp(): Promise<void> {
    const modules = await this.ctx.benchModules();
    for (const mode of allModes) {
      const m = modules.get(mode);
      if (m === undefined) continue;
      const { service, Client } = benchBinding(m.exports, m.sourcePath);
      const server = createServer().register(service, benchHandlers() as unknown as HandlersOf<BenchService>);
      const unixPath = join(tmpdir(), `rpcgen-ts-bench-${process.pid}-${mode}.sock`);
      rmSync(unixPath, { force: true });
      const s: ModeSetup = { mode, service, Client, href: pathToFileURL(m.sourcePath.replace(/\.ts$/, ".js")).href, server, tcpPort: 0, udpPort: 0, unixPath };
      this.closers.push(() => server.close());
      s.tcpPort = (await server.listen({ transport: "tcp", host: "127.0.0.1" })).port;
      await server.listen({ transport: "unix", path: unixPath });
      s.udpPort = (await server.listen({ transport: "udp", host: "127.0.0.1" })).port;
      this.setups.set(mode, s);
    }
    for (const s of this.setups.values()) {
      for (const t of transports) {
        const k = `${s.mode}/${t}`;
        try {
          const channel = await this.open(s, t, {});
          this.closers.push(() => channel.close());
          const client = new s.Client(channel, { timeoutMs: CALL_TIMEOUT_MS });
          await this.probe(client);
          this.bound.set(k, { channel, client });
        } catch (e) {
          this.broken.set(k, errText(e));
        }
      }
    }
  }

  /** A channel of mode `s` over `t` (shm: a new worker serving the mode's module). */
  async open(s: ModeSetup, t: Transport, options: ChannelOptions, stats?: SharedArrayBuffer): Promise<Channel> {
    let o: ConnectOptions;
    switch (t) {
      case "inproc":
        o = { ...options, transport: "inproc", server: s.server };
        break;
      case "shm":
        o = { ...options, transport: "shm", module: this.shmServer, data: { module: s.href, stats }, services: [s.service] };
        break;
      case "tcp":
        o = { ...options, transport: "tcp", host: "127.0.0.1", port: s.tcpPort };
        break;
      case "unix":
        o = { ...options, transport: "unix", path: s.unixPath };
        break;
      case "udp":
        o = { ...options, transport: "udp", host: "127.0.0.1", port: s.udpPort };
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

  rpcCase(mode: Mode, t: Transport, p: Proc): AsyncCase | undefined {
    const b = this.bound.get(`${mode}/${t}`);
    if (b === undefined) return undefined;
    const loop = isolated(loops[p]);
    const { client } = b;
    const data = this.data;
    return { label: key(mode, t, p), run: (n) => loop(client, data, n) };
  }

  /** Measures a group; a case that fails is reported in its row, and the rest of its group timed again without it. */
  async measure(cases: readonly AsyncCase[]): Promise<Map<string, Timing> | undefined> {
    let left = [...cases];
    // A case that throws is dropped (its row shows why) and the group timed again without it.
    for (let attempt = 0; attempt < 3 && left.length > 0; attempt++) {
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
        return await measureGroupAsync(guarded, this.options);
      } catch (e) {
        const why = errText(e);
        if (failed === undefined) break;
        this.results.set(failed, { error: `failed while timed: ${why}` });
        this.log(`ERROR: ${failed} failed while timed (${why}); timing its group again without it`);
        left = left.filter((c) => c.label !== failed);
      }
    }
    for (const c of left) this.results.set(c.label, { error: "its group kept failing" });
    return undefined;
  }

  record(timings: Map<string, Timing> | undefined): void {
    if (timings === undefined) return;
    for (const [label, timing] of timings) this.results.set(label, { timing });
  }

  timing(label: string): Timing | undefined {
    const o = this.results.get(label);
    return o !== undefined && "timing" in o ? o.timing : undefined;
  }

  /** Paired ratio a ÷ b, when both were timed in one group. */
  ratio(a: string, b: string): number | undefined {
    const x = this.timing(a);
    const y = this.timing(b);
    return x !== undefined && y !== undefined && x.samples.length === y.samples.length ? ratio(x, y) : undefined;
  }

  // ---- the groups ------------------------------------------------------------------------

  async transportGroup(t: Transport, floors: readonly AsyncCase[], extra: readonly AsyncCase[] = []): Promise<void> {
    const cases: AsyncCase[] = [...floors];
    for (const mode of this.setups.keys()) {
      for (const p of procs) {
        const c = this.rpcCase(mode, t, p);
        if (c !== undefined) cases.push(c);
        else this.results.set(key(mode, t, p), { error: this.broken.get(`${mode}/${t}`) ?? "not set up" });
      }
    }
    cases.push(...extra);
    const t0 = performance.now();
    this.record(await this.measure(cases));
    this.log(`(${t}: ${cases.length} cases, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }

  floorLabel(t: Transport, p: Proc): string {
    return `floor/${t}/${p}`;
  }

  async run(): Promise<void> {
    const o = this.options;
    this.log(
      `method: per transport one group of floors and RPC cases, ${o.rounds} interleaved rounds of ~${o.batchMs} ms batches after ≥ ${o.warmupMs} ms warm-up per case; ` +
        `medians; ×floor is the median of per-round ratios. Sequential calls, one outstanding, through the generated BenchV1Client. ` +
        `Servers and floors run in this process (shm's server and the SAB peer in a worker thread); the C client and server are separate processes.`,
    );
    this.log();
    await this.setUp();
    for (const [k, why] of this.broken) this.log(`NOTE: ${k} does not work here; its rows show the error: ${why}`);

    try {
      this.cBench = await startCBench(this.ctx.root);
      this.closers.push(() => this.cBench!.close());
    } catch (e) {
      this.cError = errText(e);
      this.log(`NOTE: the C libtirpc reference could not be built or started: ${this.cError}`);
    }
    const cCase = (p: CProc, label: string): AsyncCase[] => (this.cBench === undefined ? [] : [{ label, run: (n) => this.cBench!.calls(p, n), selfTimed: true }]);
    await this.openToC();

    // inproc: the microtask reference, the RPC cases, the onCall hook, the observation gates.
    {
      const hop = microtaskHop();
      const floors = procs.map((p) => ({ label: this.floorLabel("inproc", p), run: hop }));
      const extra: AsyncCase[] = [];
      const s = this.setups.get("synthesized");
      if (s !== undefined && this.bound.has("synthesized/inproc")) {
        let last: CallRecord | undefined;
        const channel = await this.open(s, "inproc", { onCall: (r) => void (last = r) });
        this.closers.push(() => channel.close());
        const client = new s.Client(channel, { timeoutMs: CALL_TIMEOUT_MS });
        const loop = isolated(nullLoop);
        extra.push({ label: "hook/onCall", run: (n) => loop(client, this.data, n).then((x) => x + (last === undefined ? 0 : 1)) });
        const gates = isolated(gatesLoop);
        const opts = Array.from({ length: 8 }, () => ({ onCall: undefined, onServe: undefined }));
        extra.push({ label: "hook/gates", run: (n) => gates(callChannel, serveChannel, opts, n) });
      }
      // The floor is one case per size; inproc has no sizes, so it is timed once.
      await this.transportGroup("inproc", floors.slice(0, 1), extra);
      const f = this.results.get(this.floorLabel("inproc", "Null"));
      if (f !== undefined) for (const p of procs) this.results.set(this.floorLabel("inproc", p), f);
      this.printTransport("inproc");
    }

    // shm: the SAB floor (spinning, and sleeping for reference) against the shm transport.
    {
      let sab: SabPingPong | undefined;
      const floors: AsyncCase[] = [];
      try {
        sab = await sabPingPong();
        this.closers.push(() => sab!.close());
        for (const p of procs) {
          floors.push({ label: this.floorLabel("shm", p), run: sab.spin(messageBytes[p].call, messageBytes[p].reply, 4 * this.options.batchMs), selfTimed: true });
        }
        floors.push({ label: "floor/shm/sleep-async", run: sab.sleepAsync(messageBytes.Null.call, messageBytes.Null.reply) });
        floors.push({ label: "floor/shm/sleep-sync", run: sab.sleepSync(messageBytes.Null.call, messageBytes.Null.reply) });
      } catch (e) {
        for (const p of procs) this.results.set(this.floorLabel("shm", p), { error: errText(e) });
      }
      await this.transportGroup("shm", floors);
      this.printTransport("shm");
    }

    // tcp, unix, udp: a raw ping-pong per message size; tcp also runs the C client.
    for (const t of streamTransports) {
      let floor: PingPong | undefined;
      const floors: AsyncCase[] = [];
      try {
        floor =
          t === "udp" ? await udpPingPong() : await streamPingPong(t, join(tmpdir(), `rpcgen-ts-bench-${process.pid}-floor.sock`));
        const f = floor;
        this.closers.push(() => f.close());
        for (const p of procs) floors.push({ label: this.floorLabel(t, p), run: floor.batch(messageBytes[p].call, messageBytes[p].reply) });
      } catch (e) {
        for (const p of procs) this.results.set(this.floorLabel(t, p), { error: errText(e) });
      }
      const extra =
        t === "tcp" ? [...cCase("null", "c/tcp/Null"), ...cCase("maxarg", "c/tcp/MaxArg"), ...cCase("maxresult", "c/tcp/MaxResult"), ...this.toCCase("tcp")] : [];
      await this.transportGroup(t, floors, extra);
      this.printTransport(t);
    }

    await this.throughput([...cCase("null", "c/window/Null"), ...this.toCCase("tcp", OUTSTANDING), ...this.toCCase("udp", OUTSTANDING)]);
    await this.collectCopies();
    await this.subscribed();
    this.printSummary();
    this.printCopies();
    this.verdicts();
  }

  /** Null() with 32 outstanding over tcp, unix, udp, in one group with the C client's sequential Null(). */
  async throughput(c: readonly AsyncCase[]): Promise<void> {
    const cases: AsyncCase[] = [...c];
    for (const mode of this.setups.keys()) {
      for (const t of streamTransports) {
        const b = this.bound.get(`${mode}/${t}`);
        if (b === undefined) continue;
        const loop = isolated(windowLoop);
        const { client } = b;
        cases.push({ label: `window/${mode}/${t}`, run: (n) => loop(client, OUTSTANDING, n) });
      }
    }
    const t0 = performance.now();
    this.record(await this.measure(cases));
    this.log(`(throughput: ${cases.length} cases, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    this.log();
    this.log(`-- throughput: Null() with ${OUTSTANDING} calls outstanding on one channel, vs the synchronous C libtirpc client (one at a time, TCP) --`);
    const cT = this.timing("c/window/Null");
    const rows: string[][] = [];
    if (cT !== undefined) rows.push(["C libtirpc, sync, tcp", `${(1e9 / cT.ns / 1000).toFixed(1)} k`, fmtSpread(cT), "1.00×"]);
    else rows.push(["C libtirpc, sync, tcp", this.cError ?? "not measured", "", ""]);
    for (const mode of this.setups.keys()) {
      for (const t of streamTransports) {
        const label = `window/${mode}/${t}`;
        const tm = this.timing(label);
        if (tm === undefined) {
          const o = this.results.get(label);
          rows.push([`${mode} ${t}`, o !== undefined && "error" in o ? o.error : (this.broken.get(`${mode}/${t}`) ?? "not measured"), "", ""]);
          continue;
        }
        const r = this.ratio("c/window/Null", label);
        rows.push([`${mode} ${t}`, `${(1e9 / tm.ns / 1000).toFixed(1)} k`, fmtSpread(tm), r === undefined ? "—" : fmtRatio(r)]);
      }
    }
    for (const t of ["tcp", "udp"] as const) {
      const label = `window-toC/${t}`;
      const tm = this.timing(label);
      if (tm === undefined) continue;
      const r = this.ratio("c/window/Null", label);
      rows.push([`synthesized ${t} → the C server`, `${(1e9 / tm.ns / 1000).toFixed(1)} k`, fmtSpread(tm), r === undefined ? "—" : fmtRatio(r)]);
    }
    this.log(table(["client", "calls/s", "IQR", "× C sync"], rows));
    this.log(
      `(our rows but the last two run client and server in this one Node thread, so each call's server work is on the client's CPU too; the C client and C server are two processes. ` +
        `"→ the C server": our client alone, against the server the C client calls.)`,
    );
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
          if (!this.bound.has(`${s.mode}/${t}`)) continue;
          let last: CallRecord | undefined;
          const stats = t === "shm" ? new SharedArrayBuffer(32) : undefined;
          const words = stats === undefined ? undefined : new Int32Array(stats);
          let channel: Channel | undefined;
          try {
            channel = await this.open(s, t, { onCall: (r) => void (last = r) }, stats);
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
                if (last !== undefined) this.copies.set(key(s.mode, t, p), { client: { copies: last.copies, bytesCopied: last.bytesCopied }, server });
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
        const c = this.copies.get(key(mode, "tcp", p));
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
    const b = this.bound.get("synthesized/inproc");
    if (b === undefined) return;
    let seen = 0;
    const onCall = (): void => {
      seen++;
    };
    subscribe("rpcgen-ts:call", onCall);
    try {
      const loop = isolated(nullLoop);
      const hop = microtaskHop();
      this.record(
        await this.measure([
          { label: "hook/subscriber", run: (n) => loop(b.client, this.data, n).then((x) => x + seen) },
          { label: "hook/subscriber-hop", run: hop },
        ]),
      );
    } finally {
      unsubscribe("rpcgen-ts:call", onCall);
    }
  }

  // ---- output ----------------------------------------------------------------------------

  printTransport(t: Transport): void {
    this.log();
    this.log(`-- ${t} — floor: ${floorNames[t]} --`);
    const rows: string[][] = [];
    const errorRow = (label: string, why: string): string[] => [label, `ERROR: ${why}`, "", "", ""];
    const floorRows = t === "inproc" ? (["Null"] as const) : procs;
    for (const p of floorRows) {
      const label = this.floorLabel(t, p);
      const name = t === "inproc" ? "floor: microtask hop" : `floor ${p} (${messageBytes[p].call + (t === "tcp" || t === "unix" ? 4 : 0)} → ${messageBytes[p].reply + (t === "tcp" || t === "unix" ? 4 : 0)} B)`;
      const o = this.results.get(label);
      if (o === undefined || "error" in o) rows.push(errorRow(name, o === undefined ? "not measured" : o.error));
      else rows.push([name, us(o.timing.ns), fmtSpread(o.timing), "", ""]);
    }
    if (t === "shm") {
      for (const [label, name] of [
        ["floor/shm/sleep-async", "floor Null, sleeping (wait / waitAsync)"],
        ["floor/shm/sleep-sync", "floor Null, sleeping (wait / wait)"],
      ] as const) {
        const tm = this.timing(label);
        if (tm !== undefined) rows.push([name, us(tm.ns), fmtSpread(tm), "", ""]);
      }
    }
    for (const mode of this.setups.keys()) {
      for (const p of procs) {
        const label = key(mode, t, p);
        const name = `${mode} ${p}()`;
        const o = this.results.get(label);
        if (o === undefined || "error" in o) {
          rows.push(errorRow(name, o === undefined ? "not measured" : o.error));
          continue;
        }
        const r = this.ratio(label, this.floorLabel(t, p));
        rows.push([name, us(o.timing.ns), fmtSpread(o.timing), r === undefined ? "—" : fmtRatio(r), ""]);
      }
    }
    if (t === "tcp") {
      for (const p of procs) {
        const label = `c/tcp/${p}`;
        const tm = this.timing(label);
        if (tm === undefined) {
          rows.push(errorRow(`C libtirpc ${p}()`, this.cError ?? (this.results.get(label) as { error?: string } | undefined)?.error ?? "not measured"));
          continue;
        }
        const r = this.ratio(label, this.floorLabel(t, p));
        const vs = [...this.setups.keys()]
          .map((m) => {
            const x = this.ratio(key(m, "tcp", p), label);
            return x === undefined ? undefined : `${m[0]} ${fmtRatio(x)}`;
          })
          .filter((x) => x !== undefined)
          .join(", ");
        rows.push([`C libtirpc ${p}()`, us(tm.ns), fmtSpread(tm), r === undefined ? "—" : fmtRatio(r), vs === "" ? "" : `ours ÷ C: ${vs}`]);
      }
    }
    if (t === "tcp") {
      const tm = this.timing("toC/tcp/Null");
      if (tm !== undefined) {
        const r = this.ratio("toC/tcp/Null", this.floorLabel(t, "Null"));
        const vsC = this.ratio("toC/tcp/Null", "c/tcp/Null");
        rows.push(["synthesized Null() → the C server", us(tm.ns), fmtSpread(tm), r === undefined ? "—" : fmtRatio(r), vsC === undefined ? "" : `our client alone ÷ C client: ${fmtRatio(vsC)}`]);
      }
    }
    if (t === "inproc") {
      for (const [label, name] of [
        ["hook/onCall", "synthesized Null() + onCall hook"],
        ["hook/gates", "observation gates of one Null(), alone"],
      ] as const) {
        const tm = this.timing(label);
        if (tm === undefined) continue;
        const r = this.ratio(label, key("synthesized", "inproc", "Null"));
        rows.push([name, us(tm.ns), fmtSpread(tm), "", r === undefined ? "" : `${pct(r)} of synthesized inproc Null()`]);
      }
    }
    this.log(table(["case", "µs", "IQR", "×floor", "note"], rows, ["left", "right", "right", "right", "left"]));
    const spin = this.timing(this.floorLabel("shm", "Null"));
    if (t === "shm" && spin !== undefined && spin.ns > 1000) {
      this.log(
        `NOTE: the spinning SAB floor is ${us(spin.ns)} µs here (DESIGN §8 measured ≈ 0.1 µs on a quiet machine): a spinning hand-off needs both ` +
          `threads on a core at once, which this oversubscribed machine does not give them; the shm ratios to it are not meaningful in this run.`,
      );
    }
  }

  printSummary(): void {
    this.log();
    this.log("-- summary: Null() ÷ its transport's floor (shm: ÷ the spinning SAB ping-pong) --");
    const rows: string[][] = [];
    for (const mode of this.setups.keys()) {
      rows.push([
        mode,
        ...transports.map((t) => {
          const r = this.ratio(key(mode, t, "Null"), this.floorLabel(t, "Null"));
          const tm = this.timing(key(mode, t, "Null"));
          return r === undefined || tm === undefined ? "error" : `${us(tm.ns)} µs ${fmtRatio(r)}`;
        }),
      ]);
    }
    rows.push([
      "floor",
      ...transports.map((t) => {
        const tm = this.timing(this.floorLabel(t, "Null"));
        return tm === undefined ? "error" : `${us(tm.ns)} µs`;
      }),
    ]);
    const c = this.timing("c/tcp/Null");
    const cr = this.ratio("c/tcp/Null", this.floorLabel("tcp", "Null"));
    rows.push(["C libtirpc", "", "", c === undefined ? (this.cError ?? "error") : `${us(c.ns)} µs ${cr === undefined ? "" : fmtRatio(cr)}`, "", ""]);
    this.log(table(["Null()", ...transports], rows));
    const none = this.timing(key("synthesized", "inproc", "Null"));
    const hook = this.timing("hook/onCall");
    const sub = this.timing("hook/subscriber");
    if (none !== undefined) {
      this.log();
      this.log(
        `hooks (inproc synthesized Null()): nobody listening ${us(none.ns)} µs; with an onCall hook ${hook === undefined ? "—" : `${us(hook.ns)} µs (paired ${fmtRatio(this.ratio("hook/onCall", key("synthesized", "inproc", "Null")) ?? NaN)})`}; ` +
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
          const c = this.copies.get(key(mode, t, p));
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
    const worst = (label: (m: Mode) => string, base: (m: Mode) => string, invert = false): { value: number; detail: string } | undefined => {
      const parts: string[] = [];
      let value = invert ? Infinity : -Infinity;
      for (const m of modes) {
        const r = this.ratio(label(m), base(m));
        if (r === undefined) return undefined;
        parts.push(`${m} ${fmtRatioFine(r)}`);
        value = invert ? Math.min(value, r) : Math.max(value, r);
      }
      return modes.length === 0 ? undefined : { value, detail: parts.join(", ") };
    };
    const missing = (budget: string, why: string) => b.atMost(`${budget} — NOT MEASURED: ${why}`, Infinity, 1, () => "—");
    for (const t of streamTransports) {
      const w = worst((m) => key(m, t, "Null"), () => this.floorLabel(t, "Null"));
      const name = `RPC Null() over ${t} ≤ 1.15× raw ${t} ping-pong (worst mode)`;
      if (w === undefined) missing(name, "see the rows above");
      else b.atMost(`${name}: ${w.detail}`, w.value, 1.15);
    }
    {
      const w = worst((m) => key(m, "shm", "Null"), () => this.floorLabel("shm", "Null"));
      const name = "RPC Null() over shm ≤ 3× raw SAB spinning ping-pong (worst mode)";
      if (w === undefined) missing(name, "see the shm rows");
      else b.atMost(`${name}: ${w.detail}`, w.value, 3);
    }
    for (const t of streamTransports) {
      // calls/s ratio = C's ns per call ÷ ours.
      const w = worst(() => "c/window/Null", (m) => `window/${m}/${t}`, true);
      const name = `${OUTSTANDING} outstanding Null() over ${t}: ≥ 5× the calls/s of the sync C client (worst mode)`;
      if (w === undefined) missing(name, this.cError ?? "see the throughput rows");
      else b.atLeast(`${name}: ${w.detail}`, w.value, 5);
    }
    {
      const r = this.ratio("hook/gates", key("synthesized", "inproc", "Null"));
      const name = "hooks and ledger with nobody listening < 3% of an inproc Null() (the observation gates, timed alone)";
      if (r === undefined) missing(name, "see the inproc rows");
      else b.atMost(name, r, 0.03, pct);
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
    for (const s of this.setups.values()) rmSync(s.unixPath, { force: true });
  }
}

export const rpcSection: Section = {
  name: "rpc",
  title: "RPC round trips: Null(), MaxArg(1440 B), MaxResult(1440 B) per mode × transport, against each transport's raw floor (DESIGN §6, §8)",
  async run(ctx) {
    const bench = new RpcBench(ctx, ctx.options);
    try {
      await bench.run();
    } finally {
      await bench.close();
    }
  },
};
