import { execFile, spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { AUTH_NONE, connect, type AuthSysParams, type Mode, type RpcChannel } from "../runtime/index.js";
import { authSys, writeCallHeader } from "../runtime/rpc/message.js";
import { markRecord } from "../runtime/transports/record-marking.js";
import { XdrWriter } from "../runtime/xdr/index.js";
import { nodeFloor, type FloorOp } from "./nfs-floor.js";
import { allModes, generateWithCli } from "./generated.js";
import { fmtRatio, measureGroupAsync, ratio, table, type AsyncCase, type RoundsOptions, type Timing } from "./harness.js";
import { cpuMeter, describePinning, pinProcess } from "./peers.js";
import type { BenchContext, Section } from "./section.js";

/**
 * NFS version 3 (RFC 1813) against a real server: nfs-ganesha, started here on 127.0.0.1
 * with a temporary export, is called by the C client a libtirpc user writes (the system's
 * `rpcgen -C` on idl/nfs3.x, one CLIENT handle, clnt_call; bench/c/nfs_client.c) and by
 * our generated NfsV3Client in each mode, all over TCP, interleaved round by round:
 *
 *   GETATTR   latency, one call outstanding
 *   READ      64 KiB, one outstanding, and 16 outstanding (ours) — clnt_call has no window:
 *   WRITE     it sends a call and waits for its reply, so C is one at a time in both rows
 *
 * READ's data lands in the caller's buffer on both sides: C's xdr_bytes into the buffer its
 * result names, ours with `into`.
 *
 * The server is the same process for every client, so what differs is the client. Ratios
 * are paired per round (both ran within a round of each other); a group during which other
 * processes used more than BENCH_OTHERS_LIMIT CPUs (default 0.25) is printed, not judged.
 *
 * Runs only when ganesha (nfs-ganesha, nfs-ganesha-vfs), rpcgen, gcc and libtirpc are
 * installed; otherwise it says which is missing and its budgets are NOT MEASURED.
 */

const run = promisify(execFile);
const CHUNK = 65536;
/** Large enough that offsets walk well past any one cache line of the server; small enough to write quickly. */
const FILE_SIZE = 8 * 1024 * 1024;
const WINDOW = 16;
/** The row of the Node floor (bench/nfs-floor.ts). */
const FLOOR = "Node socket, no runtime (floor)";
/** The same floor with as many calls outstanding as our windowed rows: what Node can do at all there. */
const FLOOR_WINDOW = `${FLOOR}, ${WINDOW} outstanding`;
const OTHERS_LIMIT = envNumber("BENCH_OTHERS_LIMIT", 0.25);
const auth: AuthSysParams = { stamp: 1, machinename: "rpcgen-ts-bench", uid: 0, gid: 0, gids: [] };

const nfsRounds: RoundsOptions = { batchMs: 60, rounds: 21, warmupMs: 400 };
const quickNfsRounds: RoundsOptions = { batchMs: 25, rounds: 5, warmupMs: 100 };

function envNumber(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

// ---- the budgets ------------------------------------------------------------------------

type Op = "getattr" | "read" | "write";

const budgetName = {
  getattr: (m: Mode) => `nfs: GETATTR median latency, ${m} / C libtirpc (ganesha, tcp)`,
  one: (op: "read" | "write", m: Mode) => `nfs: ${op.toUpperCase()} 64 KiB, 1 outstanding, ${m} MB/s ÷ C's`,
  window: (op: "read" | "write", m: Mode) => `nfs: ${op.toUpperCase()} 64 KiB, ${WINDOW} outstanding, ${m} MB/s ÷ C's (one at a time)`,
};

function allBudgetNames(): string[] {
  return allModes.flatMap((m) => [budgetName.getattr(m), ...(["read", "write"] as const).flatMap((op) => [budgetName.one(op, m), budgetName.window(op, m)])]);
}

// ---- what must be installed ---------------------------------------------------------------

const GANESHA = "/usr/bin/ganesha.nfsd";

/** Why the section cannot run here, or undefined. */
export function nfsProblem(): string | undefined {
  if (!existsSync(GANESHA)) return `${GANESHA} is not installed (Debian package nfs-ganesha)`;
  const vfs = readdirSync("/usr/lib").some((d) => existsSync(join("/usr/lib", d, "ganesha/libfsalvfs.so")));
  if (!vfs) return "ganesha's VFS backend (libfsalvfs.so) is not installed (Debian package nfs-ganesha-vfs)";
  for (const [path, pkg] of [
    ["/usr/bin/rpcgen", "rpcsvc-proto"],
    ["/usr/bin/gcc", "gcc"],
    ["/usr/include/tirpc/rpc/rpc.h", "libtirpc-dev"],
    ["/usr/bin/setpriv", "util-linux"],
    ["/usr/bin/unshare", "util-linux"],
    ["/usr/sbin/rpcinfo", "rpcbind"],
  ] as const) {
    if (!existsSync(path)) return `${path} is not installed (Debian package ${pkg})`;
  }
  if (!existsSync("/usr/sbin/rpcbind")) return "/usr/sbin/rpcbind is not installed (Debian package rpcbind): ganesha registers with it";
  return undefined;
}

// ---- the server ---------------------------------------------------------------------------

/** A port free on 127.0.0.1 for TCP and UDP just now (ganesha binds both, whatever its export says). */
async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const s = createServer();
    const port = await new Promise<number>((ok, fail) => {
      s.once("error", fail);
      s.listen(0, "127.0.0.1", () => ok((s.address() as { port: number }).port));
    });
    const u = createSocket("udp4");
    const free = await new Promise<boolean>((ok) => {
      u.once("error", () => ok(false));
      u.bind(port, "127.0.0.1", () => ok(true));
    });
    await new Promise<void>((ok) => s.close(() => ok()));
    await new Promise<void>((ok) => u.close(() => ok()));
    if (free || attempt === 50) return port;
  }
}

/**
 * The test suite's ganesha test registers the same programs with the same rpcbind: one at a
 * time, through the same lock between processes (a directory naming its holder's PID).
 */
async function lock(timeoutMs: number): Promise<(() => void) | string> {
  const path = join(tmpdir(), "rpcgen-ts-lock-statd-nlm");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, "pid"), String(process.pid));
      return () => rmSync(path, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let holder: number | undefined;
    try {
      holder = Number(readFileSync(join(path, "pid"), "utf8"));
    } catch {
      // being created or released just now
    }
    const dead = holder !== undefined && holder > 0 && !alive(holder);
    const abandoned = holder === undefined && Date.now() - (statSafe(path) ?? Date.now()) > 10_000;
    if (dead || abandoned) rmSync(path, { recursive: true, force: true });
    else if (Date.now() > deadline) return `another process (${holder ?? "?"}: the daemon tests?) runs its own ganesha and statd; try again when it is done`;
    await sleep(200);
  }
}

function statSafe(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Ganesha {
  readonly pid: number;
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly exportDir: string;
  stop(): Promise<void>;
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * ganesha in the foreground, its PID kept, in a mount namespace of its own whose /run is a
 * directory of ours (it keeps files there) holding rpcbind's socket, through which it
 * registers. It dies with this process (parent-death signal).
 */
async function startGanesha(dir: string, files: (exportDir: string) => void, answers: (nfsPort: number) => Promise<boolean>): Promise<Ganesha> {
  const exportDir = join(dir, "export");
  mkdirSync(exportDir);
  chmodSync(exportDir, 0o755);
  files(exportDir);
  // ganesha exits when rpcbind does not take its registrations; the shared rpcbind may be
  // restarting (another test run's), so wait for it and try again, twice at most.
  for (let attempt = 1; ; attempt++) {
    for (let i = 0; i < 50 && !(await rpcbindAnswers()); i++) await sleep(200);
    const state = join(dir, `ganesha-${attempt}`);
    mkdirSync(state);
    try {
      return await startGaneshaOnce(state, exportDir, answers);
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
}

/**
 * ganesha will not serve unless rpcbind takes its registrations. An rpcbind that answers is
 * used and left alone; otherwise one is started here (`-f`: in the foreground, no warm start)
 * and the returned function stops it by its PID.
 */
async function ensureRpcbind(): Promise<(() => Promise<void>) | undefined> {
  if (await rpcbindAnswers()) return undefined;
  mkdirSync("/run/rpcbind", { recursive: true });
  const child = spawn("/usr/bin/setpriv", ["--pdeathsig", "TERM", "/usr/sbin/rpcbind", "-f"], { stdio: "ignore" });
  let exited = false;
  const gone = new Promise<void>((r) => child.once("exit", () => ((exited = true), r())));
  child.on("error", () => undefined);
  const stop = async () => {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await gone;
    clearTimeout(timer);
  };
  for (let i = 0; i < 50 && !exited; i++) {
    if (await rpcbindAnswers()) return stop;
    await sleep(200);
  }
  await stop();
  throw new Error("rpcbind -f did not answer on 127.0.0.1 within 10 s");
}

async function rpcbindAnswers(): Promise<boolean> {
  return run("/usr/sbin/rpcinfo", ["-p", "127.0.0.1"], { timeout: 5000 }).then(
    () => true,
    () => false,
  );
}

async function startGaneshaOnce(dir: string, exportDir: string, answers: (nfsPort: number) => Promise<boolean>): Promise<Ganesha> {
  mkdirSync(join(dir, "recovery"));
  const run = join(dir, "run");
  mkdirSync(run, { mode: 0o755 });
  writeFileSync(join(run, "rpcbind.sock"), "");
  const nfsPort = await freePort();
  let mountPort = await freePort();
  while (mountPort === nfsPort) mountPort = await freePort();
  const conf = join(dir, "ganesha.conf");
  writeFileSync(
    conf,
    `NFS_CORE_PARAM {
  Protocols = 3;
  Bind_addr = 127.0.0.1;
  NFS_Port = ${nfsPort};
  MNT_Port = ${mountPort};
  Enable_NLM = false;
  Enable_RQUOTA = false;
}
NFSV4 { RecoveryRoot = "${join(dir, "recovery")}"; Graceless = true; }
EXPORT {
  Export_Id = 1;
  Path = "${exportDir}";
  Pseudo = "${exportDir}";
  Protocols = 3;
  Transports = TCP;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
`,
  );
  const log = join(dir, "ganesha.log");
  const script = [
    "set -e",
    `mount --rbind /run/rpcbind.sock ${shellQuote(join(run, "rpcbind.sock"))}`,
    `mount --rbind ${shellQuote(run)} /run`,
    `exec ${[GANESHA, "-F", "-f", conf, "-L", log, "-p", join(dir, "ganesha.pid"), "-N", "NIV_EVENT"].map(shellQuote).join(" ")}`,
  ].join("\n");
  // setpriv, unshare and sh each exec the next: the child's PID is ganesha's.
  const child: ChildProcess = spawn("/usr/bin/setpriv", ["--pdeathsig", "TERM", "/usr/bin/unshare", "--mount", "/bin/sh", "-c", script], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => void (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => void (out += d.toString()));
  let exited: string | undefined;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  child.on("error", (e) => void (exited = e.message));
  child.on("exit", (code, signal) => void (exited ??= `exited with ${code ?? signal}`));
  const stop = async (): Promise<void> => {
    if (exited !== undefined || child.pid === undefined) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => exited === undefined && child.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(timer);
  };
  const logText = () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-15).join("\n") : "(no log)");
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited !== undefined) throw new Error(`ganesha ${exited} before it served: ${out.trim()}\n${logText()}`);
    if (await answers(nfsPort).catch(() => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`ganesha did not answer NFS NULL on 127.0.0.1:${nfsPort} within 30 s:\n${logText()}`);
    }
    await sleep(200);
  }
  return { pid: child.pid!, nfsPort, mountPort, exportDir, stop };
}

/** Whether an NFSv3 server answers NULL (procedure 0) on this TCP port, through generated stubs. */
async function answersNull(nfs: Stubs, port: number): Promise<boolean> {
  let channel: RpcChannel | undefined;
  try {
    channel = await connect({ transport: "tcp", host: "127.0.0.1", port, connectTimeoutMs: 1000 });
    await new nfs.NfsV3Client(channel, { timeoutMs: 1000 }).nfsproc3Null();
    return true;
  } catch {
    return false;
  } finally {
    await channel?.close().catch(() => undefined);
  }
}

// ---- the generated stubs, in every mode -----------------------------------------------------

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Stubs = Record<string, any>;

const runtimeDir = fileURLToPath(new URL("../runtime/", import.meta.url));

/** idl/nfs3.x and idl/mount3.x generated in every mode, compiled by the project's tsc, imported. */
async function loadNfsStubs(root: string, outDir: string, log: (t: string) => void): Promise<Map<Mode, { nfs: Stubs; mount: Stubs }>> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const inputs = [join(root, "idl", "nfs3.x"), join(root, "idl", "mount3.x")];
  let runtimeModule = relative(join(outDir, "mode"), join(runtimeDir, "index.js")).split("\\").join("/");
  if (!runtimeModule.startsWith(".")) runtimeModule = `./${runtimeModule}`;
  for (const mode of allModes) await generateWithCli(root, inputs, mode, runtimeModule, join(outDir, mode));
  writeFileSync(
    join(outDir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", lib: ["ES2022"], module: "NodeNext", moduleResolution: "NodeNext", strict: true, isolatedModules: true, verbatimModuleSyntax: true, skipLibCheck: true, types: [] },
      include: allModes.flatMap((m) => [`${m}/nfs3.ts`, `${m}/mount3.ts`]),
    }),
  );
  try {
    await run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(outDir, "tsconfig.json")], { cwd: root });
  } catch (e) {
    // tsc emits even on type errors; the tests are where those fail. Measure what was emitted.
    if (!allModes.every((m) => existsSync(join(outDir, m, "nfs3.js")))) throw new Error(`compiling the generated NFS stubs failed: ${errText(e)}`);
    log("WARNING: the generated NFS stubs do not type-check; measuring the emitted JS anyway");
  }
  const out = new Map<Mode, { nfs: Stubs; mount: Stubs }>();
  for (const mode of allModes) {
    const nfs = (await import(pathToFileURL(join(outDir, mode, "nfs3.js")).href)) as Stubs;
    const mount = (await import(pathToFileURL(join(outDir, mode, "mount3.js")).href)) as Stubs;
    out.set(mode, { nfs, mount });
  }
  return out;
}

// ---- the C client ---------------------------------------------------------------------------

interface CClient {
  readonly pid: number;
  /** Runs `n` calls of `op` in the C client; resolves to the ns they took, timed there. */
  calls(op: Op, n: number): Promise<number>;
  close(): Promise<void>;
}

/** `rpcgen -C` on idl/nfs3.x (header and XDR routines) and gcc -O2 with bench/c/nfs_client.c against libtirpc. */
async function buildCClient(root: string, dir: string): Promise<string> {
  rmSync(dir, { recursive: true, force: true }); // rpcgen will not overwrite its output
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(root, "idl", "nfs3.x"), join(dir, "nfs3.x"));
  await run("rpcgen", ["-C", "-h", "-o", "nfs3.h", "nfs3.x"], { cwd: dir, timeout: 30_000 });
  await run("rpcgen", ["-C", "-c", "-o", "nfs3_xdr.c", "nfs3.x"], { cwd: dir, timeout: 30_000 });
  const exe = join(dir, "nfs_client");
  await run("gcc", ["-O2", "-std=gnu11", "-I.", "-I/usr/include/tirpc", "-o", exe, join(root, "bench", "c", "nfs_client.c"), "nfs3_xdr.c", "-ltirpc"], { cwd: dir, timeout: 120_000 });
  return exe;
}

async function startCClient(exe: string, port: number, readFh: Uint8Array, writeFh: Uint8Array): Promise<CClient> {
  const hex = (fh: Uint8Array) => Buffer.from(fh).toString("hex");
  const child: ChildProcessWithoutNullStreams = spawn(exe, ["127.0.0.1", String(port), hex(readFh), hex(writeFh), String(FILE_SIZE)], { stdio: ["pipe", "pipe", "pipe"] });
  const lines: string[] = [];
  const waiters: ((l: string | undefined) => void)[] = [];
  let buffered = "";
  let stderr = "";
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("close", () => {
      exited = true;
      for (const w of waiters.splice(0)) w(undefined);
      resolve();
    }),
  );
  child.on("error", () => undefined);
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (t: string) => {
    buffered += t;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiters.shift();
      if (w !== undefined) w(line);
      else lines.push(line);
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (t: string) => void (stderr += t));
  const next = (): Promise<string | undefined> => {
    const l = lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (exited) return Promise.resolve(undefined);
    return new Promise((r) => waiters.push(r));
  };
  const close = async () => {
    if (exited) return;
    child.stdin.end();
    const force = setTimeout(() => child.kill("SIGKILL"), 2000);
    await exit;
    clearTimeout(force);
  };
  const first = await next();
  if (first !== "ready") {
    await close();
    throw new Error(`the C client did not start: ${first ?? "(exited)"} ${stderr.trim()}`);
  }
  return {
    pid: child.pid!,
    async calls(op, n) {
      child.stdin.write(`${op} ${n}\n`);
      const line = await next();
      if (line === undefined || !/^\d+$/.test(line)) throw new Error(`C client: ${line ?? "exited"} ${stderr.trim()}`);
      return Number(line);
    },
    close,
  };
}

// ---- our client -------------------------------------------------------------------------------

interface Ours {
  readonly mode: Mode;
  getattr(): Promise<number>;
  read(): Promise<number>;
  write(): Promise<number>;
  close(): Promise<void>;
}

/** One TCP connection and one NfsV3Client per mode, like the C client's one CLIENT handle. */
async function ours(mode: Mode, stubs: { nfs: Stubs }, port: number, readFh: Uint8Array, writeFh: Uint8Array, seed: Uint8Array): Promise<Ours> {
  const { nfs } = stubs;
  const channel = await connect({ transport: "tcp", host: "127.0.0.1", port });
  const client = new nfs.NfsV3Client(channel, { auth, timeoutMs: 30_000 });
  const readFile = { data: readFh };
  const writeFile = { data: writeFh };
  const chunks = FILE_SIZE / CHUNK;
  let readAt = 0;
  let writeAt = 0;
  const payload = randomBytes(CHUNK);
  // As the C client's READ decodes into its buffer, ours decode into the caller's (`into`):
  // a ring of them, more than the calls that can be outstanding.
  const readBuffers = Array.from({ length: 32 }, () => new Uint8Array(CHUNK));
  const OK = nfs.nfsstat3.NFS3_OK as number;
  const UNSTABLE = nfs.stable_how.UNSTABLE as number;
  const check = (res: { status: number }, what: string) => {
    if (res.status !== OK) throw new Error(`${mode} ${what}: NFS status ${res.status}`);
  };
  // One READ checked against the bytes on disk: the figures are of calls that work.
  const first = await client.nfsproc3Read({ file: readFile, offset: 0n, count: CHUNK });
  check(first, "READ");
  if (Buffer.compare(Buffer.from(first.resok.data as Uint8Array), Buffer.from(seed.subarray(0, CHUNK))) !== 0) throw new Error(`${mode}: READ returned other bytes than the file holds`);
  return {
    mode,
    async getattr() {
      const res = await client.nfsproc3Getattr({ object: readFile });
      check(res, "GETATTR");
      return res.resok.obj_attributes.nlink as number;
    },
    async read() {
      const k = readAt++;
      const offset = BigInt((k % chunks) * CHUNK);
      const res = await client.nfsproc3Read({ file: readFile, offset, count: CHUNK }, { into: readBuffers[k % readBuffers.length] });
      check(res, "READ");
      if (res.resok.count !== CHUNK) throw new Error(`${mode} READ: ${res.resok.count} bytes`);
      return (res.resok.data as Uint8Array)[0]!;
    },
    async write() {
      const offset = BigInt((writeAt++ % chunks) * CHUNK);
      const res = await client.nfsproc3Write({ file: writeFile, offset, count: CHUNK, stable: UNSTABLE, data: payload });
      check(res, "WRITE");
      return res.resok.count as number;
    },
    close: () => channel.close(),
  };
}

/**
 * The calls of the Node floor, record-marked and ready to send: one GETATTR, and a READ and
 * an UNSTABLE WRITE of 64 KiB at each offset of the files, encoded by the synthesized stubs.
 */
function floorRequests(nfs: Stubs, readFh: Uint8Array, writeFh: Uint8Array): Record<FloorOp, Uint8Array[]> {
  const cred = authSys(auth, new XdrWriter());
  const w = new XdrWriter(CHUNK + 1024);
  const message = (proc: number, codec: { encode(w: XdrWriter, v: unknown): void }, args: unknown): Uint8Array => {
    w.reset();
    w.uint(0); // the record mark's room
    writeCallHeader(w, 0, nfs.NFS_PROGRAM as number, nfs.NFS_V3 as number, proc, cred, AUTH_NONE);
    codec.encode(w, args);
    const bytes = w.bytes().slice();
    markRecord(bytes, bytes.length);
    return bytes;
  };
  const offsets = Array.from({ length: FILE_SIZE / CHUNK }, (_, i) => BigInt(i * CHUNK));
  const payload = randomBytes(CHUNK);
  // As the C client's READ decodes into its buffer, ours decode into the caller's (`into`):
  // a ring of them, more than the calls that can be outstanding.
  const readBuffers = Array.from({ length: 32 }, () => new Uint8Array(CHUNK));
  return {
    getattr: [message(nfs.NFSPROC3_GETATTR as number, nfs.GETATTR3argsCodec, { object: { data: readFh } })],
    read: offsets.map((offset) => message(nfs.NFSPROC3_READ as number, nfs.READ3argsCodec, { file: { data: readFh }, offset, count: CHUNK })),
    write: offsets.map((offset) =>
      message(nfs.NFSPROC3_WRITE as number, nfs.WRITE3argsCodec, { file: { data: writeFh }, offset, count: CHUNK, stable: nfs.stable_how.UNSTABLE as number, data: payload }),
    ),
  };
}

/** `n` calls of `op`, `window` outstanding at a time. */
async function windowed(n: number, window: number, op: () => Promise<number>): Promise<number> {
  let started = 0;
  let sum = 0;
  const lane = async () => {
    while (started < n) {
      started++;
      sum += await op();
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, lane));
  return sum;
}

async function sequential(n: number, op: () => Promise<number>): Promise<number> {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await op();
  return sum;
}

// ---- the section ---------------------------------------------------------------------------------

const mbps = (t: Timing | undefined) => (t === undefined ? NaN : (CHUNK * 1e3) / t.ns);
const fmtLoad = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

async function runSection(ctx: BenchContext): Promise<void> {
  const { log, budgets } = ctx;
  const notMeasured = (why: string) => {
    log(`NOT MEASURED: ${why}`);
    for (const b of allBudgetNames()) budgets.notMeasured(b, why);
    ctx.results.note("nfs", "notMeasured", why);
  };
  const problem = nfsProblem();
  if (problem !== undefined) return notMeasured(problem);

  const release = await lock(ctx.quick ? 10_000 : 60_000);
  if (typeof release === "string") return notMeasured(release);
  const dir = mkdtempSync(join(tmpdir(), "rpcgen-ts-bench-nfs-"));
  const cleanup: (() => Promise<void>)[] = [];
  try {
    const t0 = performance.now();
    const [stubs, cExe] = await Promise.all([loadNfsStubs(ctx.root, join(ctx.work, "nfs-gen"), log), buildCClient(ctx.root, join(ctx.work, "nfs-c"))]);
    const seed = randomBytes(FILE_SIZE);
    let server: Ganesha;
    try {
      const stopRpcbind = await ensureRpcbind();
      if (stopRpcbind !== undefined) {
        log("no rpcbind answered on 127.0.0.1: started one for the section");
        cleanup.push(stopRpcbind);
      }
      server = await startGanesha(dir, (exportDir) => {
        writeFileSync(join(exportDir, "read.bin"), seed);
        writeFileSync(join(exportDir, "write.bin"), Buffer.alloc(FILE_SIZE));
      }, (port) => answersNull(stubs.get("synthesized")!.nfs, port));
    } catch (e) {
      log(errText(e));
      return notMeasured(`ganesha did not start: ${errText(e).split("\n")[0]}`);
    }
    cleanup.push(() => server.stop());
    // MNT gives the export's root handle; LOOKUP the two files in it.
    const { nfs, mount } = stubs.get("synthesized")!;
    const mch = await connect({ transport: "tcp", host: "127.0.0.1", port: server.mountPort });
    const mnt = await new mount.MountV3Client(mch, { auth, timeoutMs: 10_000 }).mountproc3Mnt(server.exportDir);
    await mch.close();
    if (mnt.fhs_status !== 0) throw new Error(`MNT ${server.exportDir}: status ${mnt.fhs_status}`);
    const root = { data: Uint8Array.from(mnt.mountinfo.fhandle as Uint8Array) };
    const lch = await connect({ transport: "tcp", host: "127.0.0.1", port: server.nfsPort });
    const lookup = async (name: string): Promise<Uint8Array> => {
      const res = await new nfs.NfsV3Client(lch, { auth, timeoutMs: 10_000 }).nfsproc3Lookup({ what: { dir: root, name } });
      if (res.status !== 0) throw new Error(`LOOKUP ${name}: status ${res.status}`);
      return Uint8Array.from(res.resok.object.data as Uint8Array);
    };
    const readFh = await lookup("read.bin");
    const writeFh = await lookup("write.bin");
    await lch.close();

    const c = await startCClient(cExe, server.nfsPort, readFh, writeFh);
    cleanup.push(() => c.close());
    const floor = await nodeFloor(server.nfsPort, floorRequests(nfs, readFh, writeFh));
    cleanup.push(() => floor.close());
    const clients: Ours[] = [];
    for (const mode of allModes) clients.push(await ours(mode, stubs.get(mode)!, server.nfsPort, readFh, writeFh, seed));
    cleanup.push(async () => void (await Promise.all(clients.map((o) => o.close()))));
    // Placed as the RPC section places its ends (--pin): every client — ours, the floor's, C's —
    // where clients go, ganesha (all its threads) where servers go. Unpinned, a READ's wake-ups
    // cross CPUs or not as the scheduler pleases, and clients of one run are timed under
    // different placements (a READ took 40 µs with everything on one CPU, 55-70 µs unpinned).
    pinProcess(process.pid, ctx.pinning.client);
    pinProcess(c.pid, ctx.pinning.client);
    pinProcess(server.pid, ctx.pinning.server);
    log(`pinning: ${describePinning(ctx.pinning)}; the clients (ours, the Node floor, C) are the client, ganesha the server`);
    log(`ganesha ${server.pid} on 127.0.0.1:${server.nfsPort} (tcp) exporting an 8 MiB file; C client ${c.pid}; stubs and C client built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    log("C: libtirpc clnt_call, one CLIENT handle — it has no window (each call waits for its reply), so its READ and WRITE are one at a time in every row");
    log();

    const options = ctx.quick ? quickNfsRounds : nfsRounds;
    const pids = [process.pid, c.pid, server.pid];
    const groups = new Map<Op, { timings: Map<string, Timing>; warning?: string; cpu: { ours: number; others: number }; load: string }>();
    for (const op of ["getattr", "read", "write"] as const) {
      const cases: AsyncCase[] = [
        { label: "C libtirpc", selfTimed: true, run: (n) => c.calls(op, n) },
        { label: FLOOR, run: (n) => floor.calls(op, n) },
      ];
      if (op !== "getattr") cases.push({ label: FLOOR_WINDOW, run: (n) => floor.calls(op, n, WINDOW) });
      for (const o of clients) {
        const f = o[op].bind(o);
        cases.push({ label: op === "getattr" ? o.mode : `${o.mode}, 1 outstanding`, run: (n) => sequential(n, f) });
        if (op !== "getattr") cases.push({ label: `${o.mode}, ${WINDOW} outstanding`, run: (n) => windowed(n, WINDOW, f) });
      }
      const loadBefore = fmtLoad();
      const meter = cpuMeter(() => pids);
      const timings = await measureGroupAsync(cases, options);
      const use = meter();
      const load = `load ${loadBefore} → ${fmtLoad()}; CPUs: ganesha + clients ${use.ours.toFixed(2)}, others ${use.others.toFixed(2)}`;
      const warning = use.others > OTHERS_LIMIT ? `other processes used ${use.others.toFixed(2)} CPUs while ${op.toUpperCase()} was timed (limit ${OTHERS_LIMIT})` : undefined;
      groups.set(op, { timings, cpu: { ours: use.ours, others: use.others }, load, ...(warning === undefined ? {} : { warning }) });
      ctx.results.group("nfs", op, timings, { cpu: { ours: use.ours, others: use.others }, ...(warning === undefined ? {} : { warning }) });

      const cT = timings.get("C libtirpc")!;
      const rows = [...timings].map(([label, t]) => {
        const vsC = label === "C libtirpc" ? "1" : op === "getattr" ? `${fmtRatio(ratio(t, cT))} C's time` : `${fmtRatio(ratio(cT, t))} C's MB/s`;
        // Each row against the floor with as many calls outstanding.
        const floorT = timings.get(label.endsWith(`, ${WINDOW} outstanding`) ? FLOOR_WINDOW : FLOOR)!;
        const vsFloor = label === "C libtirpc" || label.startsWith(FLOOR) ? "" : op === "getattr" ? fmtRatio(ratio(t, floorT)) : fmtRatio(ratio(floorT, t));
        const figure = op === "getattr" ? `${(t.ns / 1000).toFixed(1)} µs` : `${mbps(t).toFixed(0)} MB/s`;
        const spread = op === "getattr" ? `${(t.q1 / 1000).toFixed(1)}–${(t.q3 / 1000).toFixed(1)} µs` : `${mbps({ ...t, ns: t.q3 }).toFixed(0)}–${mbps({ ...t, ns: t.q1 }).toFixed(0)}`;
        return [label, figure, spread, vsC, vsFloor, String(t.batch)];
      });
      log(`${op.toUpperCase()}${op === "getattr" ? "" : " 64 KiB"} (median over ${options.rounds} rounds of per-call mean; ${load})`);
      log(table(["client", op === "getattr" ? "latency" : "throughput", "IQR", "paired vs C", "vs Node floor", "calls/batch"], rows, ["left", "right", "right", "right", "right", "right"]));
      if (warning !== undefined) log(`WARNING: ${warning}: its ratios are printed NOT MEASURED`);
      log();
    }

    for (const mode of allModes) {
      const g = groups.get("getattr")!;
      const gc = g.timings.get("C libtirpc")!;
      budgets.atMost(budgetName.getattr(mode), ratio(g.timings.get(mode)!, gc), 1.1, undefined, g.warning);
      for (const op of ["read", "write"] as const) {
        const o = groups.get(op)!;
        const oc = o.timings.get("C libtirpc")!;
        budgets.atLeast(budgetName.one(op, mode), ratio(oc, o.timings.get(`${mode}, 1 outstanding`)!), 0.9, undefined, o.warning);
        budgets.atLeast(budgetName.window(op, mode), ratio(oc, o.timings.get(`${mode}, ${WINDOW} outstanding`)!), 2, undefined, o.warning);
      }
    }
    ctx.results.note("nfs", "arrangement", {
      server: "nfs-ganesha (VFS), 127.0.0.1, tcp, a temporary export",
      c: "libtirpc clnt_call, one CLIENT handle, one call at a time (it has no window)",
      ours: `NfsV3Client per mode, one TCP connection each; ${WINDOW} outstanding through one connection`,
      cpus: cpus().length,
      load: Object.fromEntries([...groups].map(([op, g]) => [op, g.load])),
    });
  } catch (e) {
    // A server or client that fails here is a figure this run could not have, not a failed benchmark.
    log(`ERROR: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    if (!budgets.verdicts.some((v) => v.budget.startsWith("nfs: "))) notMeasured(`the section failed: ${errText(e).split("\n")[0]}`);
  } finally {
    for (const f of cleanup.reverse()) await f().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    release();
  }
}

export const nfsSection: Section = {
  name: "nfs",
  ownProcess: true,
  title: "NFSv3 against nfs-ganesha: our client in each mode and libtirpc's C client, same server, paired per round",
  run: runSection,
};

/** For bench/nfs-profile.ts: the same server, stubs and client. */
export const nfsInternals = { floorRequests, ensureRpcbind, startGanesha, answersNull, loadNfsStubs, buildCClient, startCClient, ours, windowed, sequential, lock, nfsProblem, FILE_SIZE, auth };
