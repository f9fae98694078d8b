import { Session } from "node:inspector/promises";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, type Mode } from "../runtime/index.js";
import { allModes } from "./generated.js";
import { nfsInternals } from "./nfs.js";

/**
 * Where our NFS client's time goes: a READ loop (64 KiB, one call outstanding, or
 * `--window N`) against ganesha under V8's sampling CPU profiler (what `node --cpu-prof`
 * runs, here started and stopped around the loop alone, so generating the stubs and writing
 * the file do not count), then the profile's functions by self time.
 *
 *   npm run build && npx tsc -p bench/tsconfig.json &&
 *   node .tmp/bench-build/bench/nfs-profile.js [--mode synthesized] [--seconds 5] [--window 1] [--top 25]
 *
 * The profile is kept in .tmp/bench/nfs-profile/ (open it in Chrome DevTools for the tree).
 */

const { ensureRpcbind, startGanesha, answersNull, loadNfsStubs, ours, windowed, sequential, lock, nfsProblem, FILE_SIZE, auth } = nfsInternals;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!(existsSync(join(dir, "package.json")) && existsSync(join(dir, "idl", "nfs3.x")))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the repository above this module");
    dir = up;
  }
  return dir;
}

async function main(): Promise<void> {
  const problem = nfsProblem();
  if (problem !== undefined) throw new Error(problem);
  const mode = arg("mode", "synthesized") as Mode;
  if (!allModes.includes(mode)) throw new Error(`--mode ${mode}: expected ${allModes.join(", ")}`);
  const seconds = Number(arg("seconds", "5"));
  const window = Number(arg("window", "1"));
  const root = repoRoot();
  const release = await lock(60_000);
  if (typeof release === "string") throw new Error(release);
  const dir = mkdtempSync(join(tmpdir(), "rpcgen-ts-nfs-profile-"));
  let stop: (() => Promise<void>) | undefined;
  try {
    const stubs = await loadNfsStubs(root, join(root, ".tmp", "bench", "nfs-profile-gen"), (t) => process.stdout.write(`${t}\n`));
    const seed = randomBytes(FILE_SIZE);
    const { nfs, mount } = stubs.get(mode)!;
    const stopRpcbind = await ensureRpcbind();
    const server = await startGanesha(dir, (e) => {
      writeFileSync(join(e, "read.bin"), seed);
      writeFileSync(join(e, "write.bin"), Buffer.alloc(FILE_SIZE));
    }, (port) => answersNull(nfs, port));
    stop = async () => {
      await server.stop();
      await stopRpcbind?.();
    };
    const mch = await connect({ transport: "tcp", host: "127.0.0.1", port: server.mountPort });
    const mnt = await new mount.MountV3Client(mch, { auth }).mountproc3Mnt(server.exportDir);
    await mch.close();
    const lch = await connect({ transport: "tcp", host: "127.0.0.1", port: server.nfsPort });
    const fh = async (name: string) => Uint8Array.from((await new nfs.NfsV3Client(lch, { auth }).nfsproc3Lookup({ what: { dir: { data: mnt.mountinfo.fhandle }, name } })).resok.object.data as Uint8Array);
    const readFh = await fh("read.bin");
    const writeFh = await fh("write.bin");
    await lch.close();
    const client = await ours(mode, stubs.get(mode)!, server.nfsPort, readFh, writeFh, seed);
    // Each call's latency too: a mean hides a few long stalls among many quick calls.
    const latencies: number[] = [];
    const read = async () => {
      const t = performance.now();
      const r = await client.read();
      latencies.push(performance.now() - t);
      return r;
    };
    const batch = () => (window > 1 ? windowed(64, window, read) : sequential(64, read));
    for (const end = performance.now() + 500; performance.now() < end; ) await batch(); // warm up
    const session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 200 });
    await session.post("Profiler.start");
    latencies.length = 0;
    let calls = 0;
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      await batch();
      calls += 64;
    }
    const ms = performance.now() - t0;
    const elu = performance.eventLoopUtilization(elu0);
    const cpu = process.cpuUsage(cpu0);
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    const out = join(root, ".tmp", "bench", "nfs-profile");
    mkdirSync(out, { recursive: true });
    const file = join(out, `read-${mode}-${window}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    process.stdout.write(
      `${mode}, ${window} outstanding: ${calls} READs of 64 KiB in ${(ms / 1000).toFixed(1)} s = ${((calls * 65536) / ms / 1000).toFixed(0)} MB/s, ` +
        `${((ms * 1000) / calls).toFixed(0)} µs per call; main thread busy ${(elu.utilization * 100).toFixed(0)}% of the time; ` +
        `CPU per call ${(cpu.user / calls).toFixed(1)} µs user, ${(cpu.system / calls).toFixed(1)} µs system (profiler included)\n`,
    );
    latencies.sort((x, y) => x - y);
    const q = (f: number) => `${(latencies[Math.min(latencies.length - 1, Math.floor(f * latencies.length))]! * 1000).toFixed(0)} µs`;
    const slow = latencies.filter((l) => l > 5).length;
    process.stdout.write(
      `per call: median ${q(0.5)}, p90 ${q(0.9)}, p99 ${q(0.99)}, max ${q(1)}; ${slow} of ${latencies.length} over 5 ms, ` +
        `${latencies.filter((l) => l > 5).reduce((a, b) => a + b, 0).toFixed(0)} ms in those\n`,
    );
    await client.close();
    process.stdout.write(`\nself time by function (${relative(root, file)}):\n${summarise(file, root, Number(arg("top", "25")))}\n`);
  } finally {
    await stop?.();
    rmSync(dir, { recursive: true, force: true });
    release();
  }
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Self time per function (name and place) from a .cpuprofile, largest first. */
function summarise(path: string, root: string, top: number): string {
  const p = JSON.parse(readFileSync(path, "utf8")) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    total += dt;
    const f = byId.get(id)!.callFrame;
    const place = f.url.startsWith("file:") ? relative(root, fileURLToPath(f.url)) : f.url;
    const where = place === "" ? "" : ` ${place}:${f.lineNumber + 1}`;
    const key = `${f.functionName || "(anonymous)"}${where}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
  return rows.map(([k, us]) => `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`).join("\n");
}

main().catch((e: unknown) => {
  process.stderr.write(`nfs-profile: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
