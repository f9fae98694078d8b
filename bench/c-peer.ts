import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { buildCRpcPeer, startCServer, type CServer } from "../test/interop/c-peer.js";

/**
 * The C reference of the RPC section: idl/bench.x built with the system's rpcgen -N and
 * gcc against libtirpc (the interop tests' recipe, test/interop/c-peer.ts, with
 * bench/c/bench_server.c and bench/c/bench_client.c), a C server, and a synchronous C client
 * driven over its stdin: `null N` makes N calls back to back and reports the elapsed ns,
 * timed inside the client (so the command's own round trip through the pipe is not counted).
 */

export type CProc = "null" | "maxarg" | "maxresult";

export interface CBench {
  readonly server: CServer;
  /** The C client's process id (for pinning). */
  readonly clientPid: number;
  /** Runs `n` calls of `proc` in the C client; resolves to the ns they took. */
  calls(proc: CProc, n: number): Promise<number>;
  close(): Promise<void>;
}

export async function startCBench(root: string): Promise<CBench> {
  const build = await buildCRpcPeer({
    xFile: join(root, "idl", "bench.x"),
    serverSource: join(root, "bench", "c", "bench_server.c"),
    clientSource: join(root, "bench", "c", "bench_client.c"),
  });
  const server = await startCServer(build);
  let child: ChildProcessWithoutNullStreams;
  try {
    child = spawn(build.client, ["127.0.0.1", "tcp", String(server.tcpPort)], { cwd: build.buildDir, stdio: ["pipe", "pipe", "pipe"] });
  } catch (e) {
    await server.close();
    throw e;
  }
  const lines: string[] = [];
  const waiters: ((line: string | undefined) => void)[] = [];
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
  child.stderr.on("data", (t: string) => {
    stderr += t;
  });
  child.on("error", () => {});
  const nextLine = (): Promise<string | undefined> => {
    const l = lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (exited) return Promise.resolve(undefined);
    return new Promise((resolve) => waiters.push(resolve));
  };
  const close = async () => {
    if (!exited) {
      child.stdin.end("quit\n");
      const force = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exit;
      clearTimeout(force);
    }
    await server.close();
  };
  const first = await nextLine();
  if (first !== "ready") {
    await close();
    throw new Error(`C bench client did not start: ${first ?? "(exited)"}${stderr === "" ? "" : `; stderr: ${stderr.trim()}`}`);
  }
  return {
    server,
    clientPid: child.pid ?? -1,
    async calls(proc, n) {
      child.stdin.write(`${proc} ${n}\n`);
      const line = await nextLine();
      const ns = Number(line);
      if (line === undefined || !/^\d+$/.test(line) || !(ns > 0)) {
        throw new Error(`C bench client: ${line ?? "exited"}${stderr === "" ? "" : `; stderr: ${stderr.trim()}`}`);
      }
      return ns;
    },
    close,
  };
}
