import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";

/**
 * Vitest global setup: one rpcbind on 127.0.0.1:111 for every test file that needs one (the
 * daemon tests, test/rpcbind.test.ts), shared while the files run in parallel. An rpcbind that
 * already answers is reused and left alone. Otherwise `rpcbind -f` (foreground; never `-w`, whose
 * warm start would restore registrations of servers that are gone) is started here, before any
 * test file, and stopped by its PID after the last one, so no file can stop it under another.
 * If none can be had, the tests that need it fail with the reason this setup provides.
 */

declare module "vitest" {
  export interface ProvidedContext {
    /** Empty when rpcbind answers on 127.0.0.1:111; otherwise why not. */
    rpcbindProblem: string;
  }
}

const exec = promisify(execFile);
const rpcbind = "/usr/sbin/rpcbind";
const rpcinfo = "/usr/sbin/rpcinfo";

async function answers(): Promise<boolean> {
  try {
    await exec(rpcinfo, ["-p", "127.0.0.1"], { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let started: ChildProcess | undefined;
  let problem = "";
  if (!existsSync(rpcbind) || !existsSync(rpcinfo)) {
    problem = `${rpcbind} or ${rpcinfo} is not installed (Debian package rpcbind)`;
  } else if (!(await answers())) {
    // rpcbind keeps its lock and socket there; an absent /run/rpcbind fails it late.
    mkdirSync("/run/rpcbind", { recursive: true });
    const child = spawn(rpcbind, ["-f"], { stdio: ["ignore", "pipe", "pipe"] });
    started = child;
    let output = "";
    let exited: string | undefined;
    child.stdout!.on("data", (d: Buffer) => void (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => void (output += d.toString()));
    child.on("error", (e) => void (exited = e.message));
    child.on("exit", (code, signal) => void (exited ??= `exited with ${code ?? signal}`));
    problem = `${rpcbind} -f (pid ${child.pid}) did not answer within 10 s`;
    for (let i = 0; i < 100; i++) {
      if (exited !== undefined) {
        problem = `${rpcbind} -f ${exited}: ${output.trim()}`;
        started = undefined;
        break;
      }
      if (await answers()) {
        problem = "";
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  project.provide("rpcbindProblem", problem);

  return async () => {
    const child = started;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once("exit", () => r()));
    process.kill(child.pid, "SIGTERM");
    const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, "SIGKILL"), 5000);
    await gone;
    clearTimeout(timer);
  };
}
