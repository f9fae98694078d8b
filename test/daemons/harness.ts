import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer as createTcpServer } from "node:net";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { inject } from "vitest";
import { generate, type Mode } from "../../compiler/compile.js";
import { connect, type Channel, type ServiceDescription } from "../../runtime/index.js";

/**
 * What the tests against real ONC RPC daemons share: stubs generated from `.x` files at test
 * time (through the compile API, in every mode), daemons started in the foreground with their
 * PID kept and stopped by it, and readiness and clean-up through the shared rpcbind that the
 * suite's global setup provides (rpcbind-setup.ts).
 *
 * A daemon that cannot help forking into the background (rstatd, rusersd, rwalld) runs in a
 * PID namespace of its own under `unshare --fork --kill-child`: its PID is found there, it is
 * stopped by that PID (so it unregisters), and the namespace dies with the unshare process.
 * A daemon whose files are fixed paths (ypserv's /var/yp, rwalld's /usr/bin/wall, rusersd's
 * utmp) sees the test's temporary files bind-mounted there in a mount namespace of its own;
 * nothing outside the namespace changes.
 */

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const exec = promisify(execFile);

/** The shared rpcbind's state, as the global setup provides it (undefined: it answers). */
export function rpcbindProblem(): string | undefined {
  const problem = inject("rpcbindProblem") as string | undefined;
  if (problem === undefined) return "the global setup that provides it (test/daemons/rpcbind-setup.ts) is not in vitest.config.ts";
  return problem === "" ? undefined : problem;
}

/** Fails the calling test with the global setup's reason if no rpcbind answers. */
export function requireRpcbind(): void {
  const problem = rpcbindProblem();
  if (problem !== undefined) throw new Error(`no rpcbind on 127.0.0.1:111: ${problem}`);
}

/** The absolute path of a system program, or an error naming the Debian package that has it. */
export function program(path: string, debianPackage: string): string {
  if (!existsSync(path)) throw new Error(`${path} is not installed (Debian package ${debianPackage}; scripts/system-deps.sh installs it)`);
  return path;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `rpcgen-ts-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A generated module's exports, by name. Typed loosely: the module is generated at test time. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Stubs = Record<string, any>;

/**
 * Generates the modules of `files` (which may include each other) in `mode` with the compile
 * API and loads them; keyed by module name (`nfs3`). They are written below the repository
 * (.tmp/, ignored by git) so their `rpcgen-ts/runtime` import resolves to this checkout.
 */
export async function loadStubs(files: readonly string[], mode: Mode): Promise<Map<string, Stubs>> {
  const { outputs, diagnostics } = await generate({ files, mode });
  if (diagnostics.length > 0) throw new Error(`${files.join(", ")} do not compile:\n${diagnostics.map((d) => d.text).join("")}`);
  const key = createHash("sha256")
    .update(outputs.map((o) => o.text).join("\0"))
    .digest("hex")
    .slice(0, 16);
  const dir = join(repoRoot, ".tmp/daemons", key, mode);
  mkdirSync(dir, { recursive: true });
  // Test files running in parallel may generate the same modules: each lands whole (rename),
  // so none imports a half-written one.
  for (const o of outputs) {
    const path = join(dir, o.path);
    if (existsSync(path) && readFileSync(path, "utf8") === o.text) continue;
    const partial = `${path}.${process.pid}.tmp`;
    writeFileSync(partial, o.text);
    renameSync(partial, path);
  }
  const loaded = new Map<string, Stubs>();
  for (const o of outputs) loaded.set(o.path.slice(0, -".ts".length), (await import(pathToFileURL(join(dir, o.path)).href)) as Stubs);
  return loaded;
}

/** A port free for both TCP and UDP on 127.0.0.1 just now (for daemons that need one named). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const tcp = createTcpServer();
    const port = await new Promise<number>((ok, fail) => {
      tcp.once("error", fail);
      tcp.listen(0, "127.0.0.1", () => ok((tcp.address() as { port: number }).port));
    });
    const udp = createSocket("udp4");
    const free = await new Promise<boolean>((ok) => {
      udp.once("error", () => ok(false));
      udp.bind(port, "127.0.0.1", () => ok(true));
    });
    await new Promise<void>((ok) => tcp.close(() => ok()));
    await new Promise<void>((ok) => udp.close(() => ok()));
    if (free) return port;
  }
  throw new Error("no port free for both TCP and UDP on 127.0.0.1 after 50 tries");
}

/**
 * Test files that start daemons claiming the same RPC programs (statd's 100024 and the lock
 * manager's 100021: statd.test.ts, and ganesha.test.ts with its lock manager) must not run at
 * the same time: this takes a lock between processes, by the atomic creation of a directory
 * that names its holder's PID (a holder that died is detected and its lock removed). Resolves
 * to the function that releases it.
 */
export async function exclusive(name: string, timeoutMs = 120_000): Promise<() => void> {
  const path = join(tmpdir(), `rpcgen-ts-lock-${name}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, "pid"), String(process.pid));
      return () => removeDir(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let holder: number | undefined;
    try {
      holder = Number(readFileSync(join(path, "pid"), "utf8"));
    } catch {
      // being created, or released, just now
    }
    let abandoned = false; // made, and its holder died before it could write its PID
    if (holder === undefined) {
      try {
        abandoned = Date.now() - statSync(path).mtimeMs > 10_000;
      } catch {
        // released just now
      }
    }
    if ((holder !== undefined && holder > 0 && !alive(holder)) || abandoned) removeDir(path);
    if (Date.now() > deadline) throw new Error(`${path} is still held by process ${holder ?? "?"} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/**
 * Binds that give a daemon a /run of its own (`dir/run`, for its pid file and utmp) that still
 * holds rpcbind's socket, through which it registers. The test writes into `dir/run` what the
 * daemon should find there.
 */
export function privateRun(dir: string): [string, string][] {
  const run = join(dir, "run");
  mkdirSync(run, { recursive: true, mode: 0o755 });
  const binds: [string, string][] = [];
  for (const socket of ["rpcbind.sock"]) {
    if (!existsSync(`/run/${socket}`)) continue;
    writeFileSync(join(run, socket), "");
    binds.push([`/run/${socket}`, join(run, socket)]);
  }
  binds.push([run, "/run"]);
  return binds;
}

export interface DaemonOptions {
  /** A name for messages. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** The daemon forks into the background whatever it is told: run it in a PID namespace of its own. */
  readonly forks?: boolean;
  /** [file or directory of the test, path the daemon sees it at]: bind mounts in a mount namespace of its own. */
  readonly binds?: readonly (readonly [string, string])[];
  /** The NIS domain name the daemon sees (a UTS namespace of its own). */
  readonly domain?: string;
  /** Resolves true once the daemon serves (polled every 100 ms). */
  readonly ready: () => Promise<boolean>;
  /** How long to wait for `ready` (default 20 s). */
  readonly timeoutMs?: number;
}

export interface Daemon {
  readonly name: string;
  /** The daemon's own PID (in a PID namespace: as seen from outside it). */
  readonly pid: number;
  /** What it printed on standard output and error so far. */
  output(): string;
  /** Whether it is still running. */
  running(): boolean;
  /** SIGTERM by PID (it unregisters from rpcbind), SIGKILL after 5 s; then its namespace, if any, goes. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The process state letter from /proc (Z: a zombie, which has exited). */
function state(pid: number): string | undefined {
  try {
    return /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

const running = (pid: number) => alive(pid) && state(pid) !== "Z";

/** Processes in the PID namespace whose init is `init` (a PID as seen from here), init excluded. */
function namespaceMembers(init: number): number[] {
  let ns: string;
  try {
    ns = readlinkSync(`/proc/${init}/ns/pid`);
  } catch {
    return [];
  }
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === init) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/pid`) === ns && state(Number(entry)) !== "Z") members.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return members;
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * Starts a daemon and waits until `ready` says it serves. If it exits first, or is not ready
 * in time, it is stopped and the returned promise rejects with its output.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { name, command, args } = options;
  const namespaced = options.forks === true || (options.binds?.length ?? 0) > 0 || options.domain !== undefined;
  let child: ChildProcess;
  // A test process that dies (a worker killed at its timeout) must not leave its daemons
  // running and registered: the kernel signals them when their parent goes (parent death
  // signal, kept across exec). unshare --fork ignores SIGTERM, hence SIGKILL there.
  const setpriv = program("/usr/bin/setpriv", "util-linux");
  if (!namespaced) {
    child = spawn(setpriv, ["--pdeathsig", "TERM", command, ...args], { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  } else {
    const unshareArgs: string[] = [];
    const script: string[] = ["set -e"];
    if ((options.binds?.length ?? 0) > 0) unshareArgs.push("--mount"); // util-linux makes the namespace's mounts private
    // --rbind: a directory carries the mounts below it (privateRun's rpcbind socket).
    for (const [from, to] of options.binds ?? []) script.push(`mount --rbind ${shellQuote(from)} ${shellQuote(to)}`);
    if (options.domain !== undefined) {
      unshareArgs.push("--uts");
      script.push(`echo ${shellQuote(options.domain)} > /proc/sys/kernel/domainname`);
    }
    const invocation = [command, ...args].map(shellQuote).join(" ");
    if (options.forks === true) {
      // The shell is the namespace's init: it outlives the daemon's parent, which exits once
      // the daemon has forked; the namespace (and everything in it) dies with unshare.
      unshareArgs.push("--pid", "--fork", "--kill-child=SIGKILL");
      script.push(`${invocation}`, "exec sleep infinity");
    } else {
      script.push(`exec ${invocation}`);
    }
    const unshare = program("/usr/bin/unshare", "util-linux");
    const signal = options.forks === true ? "KILL" : "TERM";
    child = spawn(setpriv, ["--pdeathsig", signal, unshare, ...unshareArgs, "/bin/sh", "-c", script.join("\n")], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
  }
  let out = "";
  child.stdout!.on("data", (d: Buffer) => void (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => void (out += d.toString()));
  let exited: string | undefined;
  child.on("error", (e) => void (exited = e.message));
  child.on("exit", (code, signal) => void (exited ??= `exited with ${code ?? signal}`));
  const outer = child.pid;

  /**
   * The daemon's PID: the child itself (exec keeps it), or the one process besides init in its
   * PID namespace once the daemon's parent has exited (undefined until then).
   */
  const daemonPid = (): number | undefined => {
    if (outer === undefined) return undefined;
    if (options.forks !== true) return outer;
    const init = Number(readFileSync(`/proc/${outer}/task/${outer}/children`, "utf8").trim().split(/\s+/)[0]);
    if (!(init > 0)) return undefined;
    const members = namespaceMembers(init);
    return members.length === 1 ? members[0] : undefined;
  };

  const stopOuter = async (): Promise<void> => {
    if (outer === undefined || exited !== undefined) return;
    const gone = new Promise<void>((r) => child.once("exit", () => r()));
    // unshare --fork ignores SIGTERM while it waits; SIGKILL takes its namespace with it.
    process.kill(outer, options.forks === true ? "SIGKILL" : "SIGTERM");
    const timer = setTimeout(() => exited === undefined && process.kill(outer, "SIGKILL"), 5000);
    await gone;
    clearTimeout(timer);
  };

  let pid: number | undefined;
  const stop = async (): Promise<void> => {
    if (pid !== undefined && pid !== outer && running(pid)) {
      process.kill(pid, "SIGTERM");
      for (let i = 0; i < 50 && running(pid); i++) await sleep(100);
      if (running(pid)) process.kill(pid, "SIGKILL");
    }
    await stopOuter();
  };

  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    if (exited !== undefined) {
      await stop();
      throw new Error(`${name} (${[command, ...args].join(" ")}) ${exited} before it served:\n${out}`);
    }
    // Serving means registered, so a forking daemon has forked by then.
    if (await options.ready().catch(() => false)) {
      try {
        pid = daemonPid();
      } catch {
        // the namespace's init is not there yet
      }
      if (pid !== undefined) break;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} (${[command, ...args].join(" ")}) did not serve within ${options.timeoutMs ?? 20_000} ms:\n${out}`);
    }
    await sleep(100);
  }
  const daemonPidNow = pid!;
  return {
    name,
    pid: daemonPidNow,
    output: () => out,
    running: () => exited === undefined && running(daemonPidNow),
    stop,
  };
}

/**
 * Whether rpcbind on 127.0.0.1 has `service` registered for `transport` (looked up with the
 * runtime's own binding, as `connect` does it).
 */
export async function registered(service: ServiceDescription, transport: "tcp" | "udp"): Promise<boolean> {
  let channel: Channel | undefined;
  try {
    channel = await connect({ transport, service, host: "127.0.0.1" });
    return true;
  } catch {
    return false;
  } finally {
    await channel?.close();
  }
}

/**
 * Removes registrations of `program` that nobody serves any more (a daemon killed before it
 * could unregister) with `rpcinfo -d`, and refuses to go on if a live process still serves it:
 * that one was not started by the test, and would take the calls meant for the test's own.
 */
export async function clearRegistrations(program: number, name: string): Promise<void> {
  const rpcinfo = program_("/usr/sbin/rpcinfo");
  const { stdout } = await exec(rpcinfo, ["-p", "127.0.0.1"], { timeout: 10_000 });
  const lines = stdout
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(tcp|udp)\s+(\d+)/.exec(l))
    .filter((m) => m !== null && Number(m[1]) === program) as RegExpExecArray[];
  const versions = new Set(lines.map((m) => m[2]!));
  for (const m of lines) {
    const proto = m[3]!;
    const ping = await exec(rpcinfo, [proto === "tcp" ? "-t" : "-u", "127.0.0.1", String(program), m[2]!], { timeout: 10_000 }).then(
      () => true,
      () => false,
    );
    if (ping) throw new Error(`${name} (program ${program} version ${m[2]} ${proto}, port ${m[4]}) is already served on 127.0.0.1 by a process the test did not start; stop it first`);
  }
  for (const v of versions) await exec(rpcinfo, ["-d", String(program), v], { timeout: 10_000 }).catch(() => undefined);
}

const program_ = (path: string) => program(path, "rpcbind");

/**
 * nfs-ganesha in the foreground on 127.0.0.1, serving `exportDir` over NFSv3 and MOUNT v3 (TCP
 * and UDP, the VFS backend, AUTH_SYS, no root squash), with NLM on a port of its own when
 * `nlm` is set; its recovery state, log and pid file in `dir`, its /run private. Ready once
 * `ready` holds (the registrations the caller needs); a failure to start carries its log.
 */
export async function startGanesha(options: { binary: string; dir: string; exportDir: string; nlm: boolean; ready: () => Promise<boolean> }): Promise<Daemon> {
  const { binary, dir, exportDir, nlm } = options;
  mkdirSync(join(dir, "recovery"), { recursive: true });
  const taken = new Set<number>();
  const port = async (): Promise<number> => {
    let p = await freePort();
    while (taken.has(p)) p = await freePort();
    taken.add(p);
    return p;
  };
  const nfsPort = await port();
  const mntPort = await port();
  const nlmLines = nlm ? `  NLM_Port = ${await port()};\n  Enable_NLM = true;\n` : "  Enable_NLM = false;\n";
  // RQUOTA stays off: it would claim rquotad's program.
  writeFileSync(
    join(dir, "ganesha.conf"),
    `NFS_CORE_PARAM {
  Protocols = 3;
  Bind_addr = 127.0.0.1;
  NFS_Port = ${nfsPort};
  MNT_Port = ${mntPort};
${nlmLines}  Enable_RQUOTA = false;
}
NFSV4 { RecoveryRoot = "${join(dir, "recovery")}"; Graceless = true; }
EXPORT {
  Export_Id = 1;
  Path = "${exportDir}";
  Pseudo = "${exportDir}";
  Protocols = 3;
  Transports = TCP, UDP;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
`,
  );
  return startDaemon({
    name: "ganesha.nfsd",
    command: binary,
    args: ["-F", "-f", join(dir, "ganesha.conf"), "-L", join(dir, "ganesha.log"), "-p", join(dir, "ganesha.pid"), "-N", "NIV_EVENT"],
    cwd: dir,
    binds: privateRun(dir), // what it keeps in /run
    ready: options.ready,
  }).catch((e: Error) => {
    const log = existsSync(join(dir, "ganesha.log")) ? readFileSync(join(dir, "ganesha.log"), "utf8") : "(no log)";
    throw new Error(`${e.message}\nganesha.log:\n${log}`);
  });
}
