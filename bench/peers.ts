import { execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";

/**
 * How the RPC section places its two ends: server processes it spawns and stops
 * (bench/peer.ts), `taskset` pinning of client and server, and the CPU the rest of the
 * machine used while a group was timed.
 */

// ---- pinning -------------------------------------------------------------------------------

export type PinMode = "none" | "same" | "split";
export const pinModes: readonly PinMode[] = ["none", "same", "split"];

/** Which CPU each end runs on: `same` puts both on CPU 0, `split` the client on 0 and the server on 1. */
export interface Pinning {
  readonly mode: PinMode;
  readonly client: number | undefined;
  readonly server: number | undefined;
}

export function pinning(mode: PinMode): Pinning {
  if (mode === "none") return { mode, client: undefined, server: undefined };
  if (mode === "split" && cpus().length < 2) throw new Error("--pin split needs two CPUs; this machine has one");
  return { mode, client: 0, server: mode === "same" ? 0 : 1 };
}

export function describePinning(p: Pinning): string {
  switch (p.mode) {
    case "none":
      return "none (the scheduler places client and server; --pin same|split to pin them)";
    case "same":
      return `same: client and server on CPU ${p.client} (taskset)`;
    case "split":
      return `split: client on CPU ${p.client}, server on CPU ${p.server} (taskset)`;
  }
}

/** Pins every thread of process `pid` to `cpu` (no-op without a CPU). */
export function pinProcess(pid: number, cpu: number | undefined): void {
  if (cpu === undefined) return;
  execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
}

/** Pins threads (by kernel thread id) to `cpu`: a worker thread is a thread of this process. */
export function pinThreads(tids: Iterable<number>, cpu: number | undefined): void {
  if (cpu === undefined) return;
  for (const tid of tids) {
    try {
      execFileSync("taskset", ["-p", "-c", String(cpu), String(tid)], { stdio: "ignore" });
    } catch {
      // a thread that ended meanwhile
    }
  }
}

/** This process's kernel thread ids: the difference before and after starting a worker is its threads. */
export function threadIds(): Set<number> {
  return new Set(readdirSync("/proc/self/task").map(Number));
}

/** This process's CPU mask as taskset prints it, to restore after pinning. */
export function affinityOf(pid: number): string {
  const out = execFileSync("taskset", ["-p", String(pid)], { encoding: "utf8" });
  const m = /:\s*([0-9a-f,]+)\s*$/i.exec(out.trim());
  if (m === null) throw new Error(`taskset -p ${pid}: unexpected output ${out.trim()}`);
  return m[1]!;
}

export function restoreAffinity(pid: number, mask: string): void {
  execFileSync("taskset", ["-a", "-p", mask, String(pid)], { stdio: "ignore" });
}

// ---- server processes ------------------------------------------------------------------------

export interface Peer {
  readonly pid: number;
  /** What the peer printed after `ready`. */
  readonly ready: unknown;
  close(): Promise<void>;
}

const peerScript = fileURLToPath(new URL("./peer.js", import.meta.url));
const READY_MS = 20_000;

/** Starts `node peer.js role config` (under taskset when `cpu` is given) and waits for its `ready` line. */
export async function spawnPeer(role: string, config: unknown, cpu: number | undefined): Promise<Peer> {
  const args = [peerScript, role, JSON.stringify(config)];
  const child =
    cpu === undefined
      ? spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"] })
      : spawn("taskset", ["-c", String(cpu), process.execPath, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (t: string) => {
    stderr = (stderr + t).slice(-2000);
  });
  child.on("error", () => {});
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let done = false;
  const close = async (): Promise<void> => {
    if (done) return;
    done = true;
    child.stdin.end();
    const force = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(force);
  };
  const line = await new Promise<string>((resolve) => {
    let buffered = "";
    const timer = setTimeout(() => resolve(`error no ready line within ${READY_MS / 1000} s`), READY_MS);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (t: string) => {
      buffered += t;
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buffered.slice(0, nl));
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      resolve(buffered === "" ? "error exited before it was ready" : buffered);
    });
  });
  if (!line.startsWith("ready ")) {
    await close();
    const why = line.startsWith("error ") ? line.slice(6) : line;
    throw new Error(`${role} server: ${why}${stderr.trim() === "" ? "" : `; stderr: ${stderr.trim().split("\n").slice(-3).join(" | ")}`}`);
  }
  if (child.pid === undefined) throw new Error(`${role} server: no pid`);
  return { pid: child.pid, ready: JSON.parse(line.slice(6)) as unknown, close };
}

// ---- the rest of the machine ----------------------------------------------------------------

let ticksPerSecond: number | undefined;
function hz(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU ticks in user, nice and system mode, all CPUs (proc(5): /proc/stat's first line). */
function machineTicks(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/);
  return Number(f[1]) + Number(f[2]) + Number(f[3]);
}

/** User and system ticks of process `pid`, all its threads (proc(5): fields 14 and 15 of /proc/PID/stat). */
function processTicks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

export interface CpuUse {
  /** Average CPUs used by processes other than the benchmark's own, over the interval. */
  readonly others: number;
  /** Average CPUs used by the benchmark's processes. */
  readonly ours: number;
  readonly seconds: number;
}

/**
 * Measures what the rest of the machine used meanwhile: all CPU time (user, nice, system)
 * less that of the benchmark's own processes (`pids`: this one and the servers it
 * spawned). On a shared machine, a round trip whose ends wait for a CPU measures the queue,
 * not the code; this is how a group knows.
 */
export function cpuMeter(pids: () => readonly number[]): () => CpuUse {
  const ours = (): number => pids().reduce((s, p) => s + processTicks(p), 0);
  const m0 = machineTicks();
  const o0 = ours();
  const t0 = performance.now();
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const dm = machineTicks() - m0;
    const dO = ours() - o0;
    const perS = hz() * Math.max(seconds, 1e-3);
    return { others: Math.max(0, dm - dO) / perS, ours: dO / perS, seconds };
  };
}
