/**
 * A C RPC peer for interop tests: a server and a client built from an idl/ interface with
 * the SYSTEM's Sun rpcgen and libtirpc, to talk to our runtime over TCP and UDP.
 *
 * Build (`buildCRpcPeer`): the .x file is copied into a build dir under its own base name
 * (rpcgen derives `#include "<base>.h"` from it) and rpcgen runs there in newstyle mode
 * (`-N`: procedures with several arguments, packed by the stubs into a generated
 * `<proc>_<vers>_argument` struct):
 *
 *   rpcgen -N -h  → <base>.h        types, constants, prototypes
 *   rpcgen -N -c  → <base>_xdr.c    xdr_T routines
 *   rpcgen -N -l  → <base>_clnt.c   client stubs
 *   rpcgen -N -m  → <base>_svc.c    the dispatch routine (<prog>_<vers>), no main
 *
 * then gcc links `server` from the hand-written server procedures + main
 * (test/interop/c/<base>_server.c) with _svc.c and _xdr.c, and `client` from the
 * hand-written client main (test/interop/c/<base>_client.c) with _clnt.c and _xdr.c,
 * against -ltirpc. Builds are cached under `$RPCGEN_TS_C_RPC_CACHE` or
 * `os.tmpdir()/rpcgen-ts-c-rpc/<hash>`, the hash covering the harness version, the .x and
 * both C sources; a build runs in a private directory renamed into place on success (so
 * concurrent test workers race safely); a failed one is kept and named in the error, with
 * rpcgen's or gcc's stderr.
 *
 * Run: `startCServer(build)` starts the server, which creates a TCP and a UDP transport on
 * ephemeral ports WITHOUT the portmapper and prints `tcp <port>\nudp <port>\n`; the harness
 * waits for both lines. `runCClient(build, host, transport, port)` runs the client to
 * completion (it checks every result itself and prints `ok NAME …` / `FAIL NAME …` per
 * check, exiting 0 only if all passed) and returns its parsed output. Every process the
 * harness starts is killed by `close()`, on a timeout, and — as a last resort — when the
 * test process exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cToolchainProblem } from "./c-xdr.js";

/** Bump when the build recipe changes, to invalidate cached builds. */
const HARNESS_VERSION = 1;
const TIRPC_INCLUDE = "/usr/include/tirpc";
const CFLAGS = ["-O1", "-g", "-std=gnu11", "-Wall", "-Wno-unused-variable", "-Wno-cast-function-type", `-I${TIRPC_INCLUDE}`];

const here = dirname(fileURLToPath(import.meta.url));
/** The repository's example interface and its hand-written C server and client. */
export const EXAMPLE_X = resolve(here, "../../idl/example.x");
export const C_SOURCES = join(here, "c");

export interface CRpcPeerSpec {
  /** The interface (default idl/example.x). */
  readonly xFile?: string;
  /** The server procedures and main (default test/interop/c/<base>_server.c). */
  readonly serverSource?: string;
  /** The client main (default test/interop/c/<base>_client.c). */
  readonly clientSource?: string;
}

export interface CRpcPeerBuild {
  /** Holds <base>.x, rpcgen's output, the C sources, build.log, `server` and `client`. */
  readonly buildDir: string;
  readonly server: string;
  readonly client: string;
}

export type CTransport = "tcp" | "udp";

// ---- processes -------------------------------------------------------------------------

/** Children still running; killed if the test process exits without closing them. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of running) c.kill("SIGKILL");
    });
  }
  running.add(child);
  child.once("close", () => running.delete(child));
}

interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

function run(cmd: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, options.timeoutMs);
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) => {
      if (timer !== undefined) clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), timedOut });
    });
  });
}

function how(r: { code: number | null; signal: NodeJS.Signals | null }): string {
  return r.signal !== null ? `was killed by ${r.signal}` : `exited with status ${String(r.code)}`;
}

// ---- build -----------------------------------------------------------------------------

async function step(what: string, cmd: string, args: readonly string[], buildDir: string, env: NodeJS.ProcessEnv, log: string[]): Promise<void> {
  const shown = [cmd, ...args].join(" ");
  const r = await run(cmd, args, { cwd: buildDir, env });
  log.push(`$ ${shown}\n${r.stdout}${r.stderr}`);
  if (r.code !== 0) {
    throw new Error(
      `C RPC peer: ${what} failed (${how(r)}).\n  command: ${shown}\n  build dir (kept for inspection): ${buildDir}\n--- stderr ---\n${r.stderr}${
        r.stdout === "" ? "" : `--- stdout ---\n${r.stdout}`
      }`,
    );
  }
}

function baseNameOf(xFile: string): string {
  const raw = basename(xFile).replace(/\.x$/, "").replace(/[^A-Za-z0-9_]/g, "_");
  return /^[A-Za-z_]/.test(raw) ? raw : `x_${raw}`;
}

function cacheRoot(): string {
  return process.env["RPCGEN_TS_C_RPC_CACHE"] ?? join(tmpdir(), "rpcgen-ts-c-rpc");
}

/** Builds (or finds in the cache) the C server and client of `spec`. */
export async function buildCRpcPeer(spec: CRpcPeerSpec = {}): Promise<CRpcPeerBuild> {
  const problem = cToolchainProblem();
  if (problem !== null) throw new Error(problem.replace("The C XDR peer", "The C RPC peer"));
  const xFile = spec.xFile ?? EXAMPLE_X;
  const base = baseNameOf(xFile);
  const serverSource = spec.serverSource ?? join(C_SOURCES, `${base}_server.c`);
  const clientSource = spec.clientSource ?? join(C_SOURCES, `${base}_client.c`);
  const [x, serverC, clientC] = await Promise.all([readFile(xFile, "utf8"), readFile(serverSource, "utf8"), readFile(clientSource, "utf8")]);
  const hash = createHash("sha256")
    .update(JSON.stringify({ v: HARNESS_VERSION, base, x, serverC, clientC, cflags: CFLAGS }))
    .digest("hex")
    .slice(0, 24);
  const root = cacheRoot();
  const finalDir = join(root, hash);
  const done = (dir: string): CRpcPeerBuild => ({ buildDir: dir, server: join(dir, "server"), client: join(dir, "client") });
  if (existsSync(join(finalDir, "server")) && existsSync(join(finalDir, "client"))) return done(finalDir);

  await mkdir(root, { recursive: true });
  const buildDir = join(root, `${hash}.build-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(buildDir);
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C", CPATH: dirname(resolve(xFile)) };
  const log: string[] = [];
  const serverFile = `${base}_server.c`;
  const clientFile = `${base}_client.c`;
  try {
    await writeFile(join(buildDir, `${base}.x`), x);
    await copyFile(serverSource, join(buildDir, serverFile));
    await copyFile(clientSource, join(buildDir, clientFile));
    const rpcgen = "rpcgen";
    await step("rpcgen -N -h", rpcgen, ["-N", "-h", "-o", `${base}.h`, `${base}.x`], buildDir, env, log);
    await step("rpcgen -N -c", rpcgen, ["-N", "-c", "-o", `${base}_xdr.c`, `${base}.x`], buildDir, env, log);
    await step("rpcgen -N -l", rpcgen, ["-N", "-l", "-o", `${base}_clnt.c`, `${base}.x`], buildDir, env, log);
    await step("rpcgen -N -m", rpcgen, ["-N", "-m", "-o", `${base}_svc.c`, `${base}.x`], buildDir, env, log);
    await step("gcc (server)", "gcc", [...CFLAGS, "-o", "server", serverFile, `${base}_svc.c`, `${base}_xdr.c`, "-ltirpc"], buildDir, env, log);
    await step("gcc (client)", "gcc", [...CFLAGS, "-o", "client", clientFile, `${base}_clnt.c`, `${base}_xdr.c`, "-ltirpc"], buildDir, env, log);
    await writeFile(join(buildDir, "build.log"), log.join("\n"));
  } catch (e) {
    await writeFile(join(buildDir, "build.log"), log.join("\n")).catch(() => undefined);
    throw e;
  }
  try {
    await rename(buildDir, finalDir);
  } catch (e) {
    // Another worker finished the same build first: use theirs.
    if (existsSync(join(finalDir, "server")) && existsSync(join(finalDir, "client"))) {
      await rm(buildDir, { recursive: true, force: true });
      return done(finalDir);
    }
    throw e;
  }
  return done(finalDir);
}

// ---- the C server ----------------------------------------------------------------------

export interface CServer {
  readonly pid: number;
  readonly tcpPort: number;
  readonly udpPort: number;
  port(transport: CTransport): number;
  /** What the server wrote on stderr so far. */
  stderr(): string;
  /** Throws (with the server's stderr) if the server is no longer running. */
  assertAlive(): void;
  /** Kills the server (SIGTERM, then SIGKILL after 2 s) and waits for it to exit. */
  close(): Promise<void>;
}

export interface StartCServerOptions {
  /**
   * The TCP transport's record buffer size (svctcp_create's sendsize/recvsize; default 0:
   * libtirpc's default). A small value (>= 100) makes the server send every reply longer
   * than it as several record-marking fragments.
   */
  readonly tcpBufferBytes?: number;
  /** How long to wait for the ports (default 10 s). */
  readonly startTimeoutMs?: number;
}

const STDERR_KEEP = 64 * 1024;

export function startCServer(build: CRpcPeerBuild, options: StartCServerOptions = {}): Promise<CServer> {
  const args = options.tcpBufferBytes === undefined ? [] : [String(options.tcpBufferBytes)];
  const child = spawn(build.server, args, { cwd: build.buildDir, stdio: ["ignore", "pipe", "pipe"] });
  track(child);
  let stdout = "";
  let stderr = "";
  let exit: string | undefined;
  const exited = new Promise<void>((res) => child.once("close", () => res()));
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (t: string) => {
    stderr = (stderr + t).slice(-STDERR_KEEP);
  });
  const describe = (what: string) =>
    new Error(`C RPC server (${build.server}${args.length > 0 ? ` ${args.join(" ")}` : ""}) ${what}${stderr.trim() === "" ? " (no stderr)" : `; its stderr:\n${stderr.trim()}`}`);

  const close = async (): Promise<void> => {
    if (exit !== undefined) return;
    child.kill("SIGTERM");
    const force = setTimeout(() => child.kill("SIGKILL"), 2000);
    await exited;
    clearTimeout(force);
  };

  return new Promise<CServer>((resolvePromise, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      child.kill("SIGKILL");
      reject(describe(`printed no ports within ${options.startTimeoutMs ?? 10_000} ms (stdout so far: ${JSON.stringify(stdout)})`));
    }, options.startTimeoutMs ?? 10_000);
    child.on("error", (e) => {
      exit = `could not be run: ${e.message}`;
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(describe(exit));
    });
    child.on("close", (code, signal) => {
      exit = how({ code, signal });
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(describe(`${exit} before printing its ports (stdout: ${JSON.stringify(stdout)})`));
    });
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (t: string) => {
      if (settled) return;
      stdout += t;
      const tcp = /^tcp (\d+)$/m.exec(stdout);
      const udp = /^udp (\d+)$/m.exec(stdout);
      if (tcp === null || udp === null) return;
      settled = true;
      clearTimeout(timer);
      const tcpPort = Number(tcp[1]);
      const udpPort = Number(udp[1]);
      if (!(tcpPort > 0 && udpPort > 0)) {
        child.kill("SIGKILL");
        reject(describe(`printed bad ports: ${JSON.stringify(stdout)}`));
        return;
      }
      resolvePromise({
        pid: child.pid ?? -1,
        tcpPort,
        udpPort,
        port: (transport) => (transport === "tcp" ? tcpPort : udpPort),
        stderr: () => stderr,
        assertAlive: () => {
          if (exit !== undefined) throw describe(`is not running: it ${exit}`);
        },
        close,
      });
    });
  });
}

// ---- the C client ----------------------------------------------------------------------

export interface CCheck {
  readonly ok: boolean;
  /** The check's name, e.g. `ADD` or `LOOKUP(42)`. */
  readonly name: string;
  /** The rest of the line: the value seen, or what was expected and what came. */
  readonly detail: string;
}

export interface CClientRun {
  readonly command: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly checks: readonly CCheck[];
  /** The FAIL lines, as printed. */
  readonly failures: readonly string[];
  /** A readable account of the run, for assertion messages. */
  readonly report: string;
}

/** Runs the C client against host:port over `transport` and parses its checks. */
export async function runCClient(
  build: CRpcPeerBuild,
  host: string,
  transport: CTransport,
  port: number,
  options: { timeoutMs?: number } = {},
): Promise<CClientRun> {
  const args = [host, transport, String(port)];
  const command = [build.client, ...args].join(" ");
  const r = await run(build.client, args, { cwd: build.buildDir, timeoutMs: options.timeoutMs ?? 60_000 });
  const checks: CCheck[] = [];
  const failures: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /^(ok|FAIL) (\S+)(?: (.*))?$/.exec(line);
    if (m === null) continue;
    checks.push({ ok: m[1] === "ok", name: m[2]!, detail: m[3] ?? "" });
    if (m[1] === "FAIL") failures.push(line);
  }
  const outcome = r.timedOut ? `was killed after ${options.timeoutMs ?? 60_000} ms` : how(r);
  const report = `C client \`${command}\` ${outcome}; ${checks.length} checks, ${failures.length} failed${
    failures.length > 0 ? `:\n  ${failures.join("\n  ")}` : ""
  }\n--- stdout ---\n${r.stdout}${r.stderr === "" ? "" : `--- stderr ---\n${r.stderr}`}`;
  return { command, code: r.code, signal: r.signal, timedOut: r.timedOut, stdout: r.stdout, stderr: r.stderr, checks, failures, report };
}
