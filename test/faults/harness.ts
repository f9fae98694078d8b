import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { generate } from "../../compiler/compile.js";
import { exampleFile } from "../example.js";
import { repoRoot } from "../support.js";

/**
 * What the load and fault tests share: the child processes they run (a server to kill, a
 * server and a client inside network namespaces) built from this checkout, and a line
 * protocol to talk to them.
 *
 * Node 20 cannot run TypeScript, so the child scripts (test/faults/server.ts, client.ts),
 * the runtime they import and the example interface generated from idl/example.x are
 * compiled with the project's tsc into a directory of their own under .tmp/faults/ (one per
 * test file and process, so test files running at once do not share one). The tree below
 * the repository is mirrored there, so the relative imports still resolve, and the runtime
 * the children run is the source under test, as vitest's is.
 */

const exec = promisify(execFile);

export interface Built {
  /** Where everything was compiled; removed by `remove()`. */
  readonly dir: string;
  /** The compiled child scripts. */
  readonly server: string;
  readonly client: string;
  /** The compiled example module (ExampleV1, ExampleV1Client). */
  readonly example: string;
  remove(): void;
}

export async function buildChildren(tag: string): Promise<Built> {
  const dir = join(repoRoot, ".tmp/faults", `${tag}-${process.pid}`);
  try {
    return await build(dir);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

async function build(dir: string): Promise<Built> {
  rmSync(dir, { recursive: true, force: true });
  const gen = join(dir, "gen");
  mkdirSync(gen, { recursive: true });
  // The generated module imports the runtime by a relative path, so that the same path holds
  // for the source here and for its compiled copy below `out`.
  const runtimeModule = relative(gen, join(repoRoot, "runtime/index.js"));
  const { outputs, diagnostics } = await generate({ files: [exampleFile], mode: "synthesized", runtimeModule });
  if (outputs.length !== 1) throw new Error(diagnostics.map((d) => d.text).join(""));
  const text = outputs[0]!.text;
  writeFileSync(join(gen, "example.ts"), text);
  const out = join(dir, "out");
  const sources = [join(repoRoot, "test/faults/server.ts"), join(repoRoot, "test/faults/client.ts"), join(gen, "example.ts")];
  const config = {
    extends: relative(dir, join(repoRoot, "tsconfig.json")),
    compilerOptions: { rootDir: repoRoot, outDir: out, noEmit: false, declaration: false, sourceMap: false },
    files: sources,
    include: [],
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(config, null, 2));
  const built = (source: string) => join(out, relative(repoRoot, source)).replace(/\.ts$/, ".js");
  const [server, client, example] = sources.map(built) as [string, string, string];
  try {
    await exec(join(repoRoot, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json")], { cwd: dir, timeout: 60_000 });
  } catch (e) {
    // tsc emits despite type errors; those are the type-check's to report (npm test runs it).
    // Only a build that produced no scripts stops the test.
    const { stdout, stderr } = e as { stdout?: string; stderr?: string };
    if (![server, client, example].every((f) => existsSync(f))) {
      throw new Error(`tsc could not build the child processes in ${dir}:\n${stdout ?? ""}${stderr ?? ""}`);
    }
    console.warn(`tsc reported errors building the child processes (they were emitted anyway):\n${stdout ?? ""}${stderr ?? ""}`);
  }
  return { dir, server, client, example, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An event a child printed: one JSON object per line, `event` naming it. */
export type ChildEvent = { readonly event: string } & Record<string, unknown>;

/**
 * A child process that prints JSON events on stdout and reads JSON commands on stdin. It
 * exits when its stdin closes, so a test that dies takes its children with it; `kill`
 * signals it by its own process id.
 */
export class Child {
  readonly events: ChildEvent[] = [];
  /** Everything the child printed that is not an event (its stderr too), for failure messages. */
  output = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: (() => void)[] = [];
  private read = new Map<string, number>();

  private constructor(
    readonly name: string,
    readonly process: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      process.once("exit", (code, signal) => {
        this.output += `[${name} exited: ${signal ?? code}]\n`;
        resolve({ code, signal });
        this.wake();
      });
    });
    process.once("error", (e) => {
      this.output += `[${name}: ${e.message}]\n`;
      this.wake();
    });
    createInterface({ input: process.stdout! }).on("line", (line) => {
      let event: ChildEvent | undefined;
      try {
        const value = JSON.parse(line) as unknown;
        if (typeof value === "object" && value !== null && typeof (value as ChildEvent).event === "string") event = value as ChildEvent;
      } catch {
        // not an event: kept as output
      }
      if (event === undefined) this.output += `${line}\n`;
      else this.events.push(event);
      this.wake();
    });
    // A child that died (killed, or exited) must not turn a late command into an uncaught EPIPE.
    process.stdin!.on("error", (e) => void (this.output += `[${name} stdin: ${e.message}]\n`));
    process.stderr!.on("data", (d: Buffer) => {
      this.output += d.toString();
      if (this.output.length > 100_000) this.output = this.output.slice(-50_000);
    });
  }

  static spawn(name: string, command: string, args: readonly string[]): Child {
    return new Child(name, spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] }));
  }

  get pid(): number {
    return this.process.pid!;
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  send(command: Record<string, unknown>): void {
    if (this.running) this.process.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  /** The next event named `event` not yet returned; rejects after `ms`, or if the child exits first. */
  async next(event: string, ms: number): Promise<ChildEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const from = this.read.get(event) ?? 0;
      const i = this.events.findIndex((e, k) => k >= from && e.event === event);
      if (i >= 0) {
        this.read.set(event, i + 1);
        return this.events[i]!;
      }
      const failed = this.events.find((e) => e.event === "error");
      if (failed !== undefined) throw new Error(`${this.name} failed: ${String(failed.message)}\n${this.output}`);
      if (!this.running) throw new Error(`${this.name} exited before '${event}'\n${this.output}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no '${event}' within ${ms} ms\n${this.output}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends `command` and waits for the event it answers with. */
  async ask(command: string, answer: string, ms = 10_000, extra: Record<string, unknown> = {}): Promise<ChildEvent> {
    this.send({ cmd: command, ...extra });
    return this.next(answer, ms);
  }

  /** Signals the child by its pid and waits (at most 5 s) for it to go. */
  async kill(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      return; // gone already
    }
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
    if (this.running) {
      try {
        process.kill(this.pid, "SIGKILL");
      } catch {
        // gone
      }
      await this.exited;
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** The `p`-th percentile (0–100) of sorted `values`, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const mib = (bytes: number) => (bytes / (1024 * 1024)).toFixed(1);

/** The node binary running the tests, for children (the same one in a namespace). */
export const nodeBin = process.execPath;
