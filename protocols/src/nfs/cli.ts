#!/usr/bin/env node
/**
 * rpcgen-ts-nfs: ls, cat and put over NFS version 3, without mounting anything in the
 * kernel. The export is found in the server's export list (MOUNTPROC3_EXPORT): the longest
 * exported directory the path lies in.
 */
import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { connect, processAuthSys, RpcError } from "@rpcgen-ts/runtime";
import { MountV3, MountV3Client } from "../gen/mount3.js";
import { mountNfs, NfsError, type NfsDirEntry, type NfsMount, type NfsStat } from "./index.js";

const usage = `usage: rpcgen-ts-nfs [--udp] ls  SERVER:/export[/dir]
       rpcgen-ts-nfs [--udp] cat SERVER:/export/file
       rpcgen-ts-nfs [--udp] put SERVER:/export/file [LOCAL-FILE]   (standard input without one)
`;

class UsageError extends Error {}

/** "host:/path", "[::1]:/path". */
function parseTarget(target: string): { host: string; path: string } {
  const m = /^(?:\[([^\]]+)\]|([^:/]+)):(\/.*)$/.exec(target);
  if (m === null) throw new UsageError(`'${target}' is not SERVER:/path`);
  return { host: m[1] ?? m[2]!, path: m[3]!.replace(/\/+$/, "") || "/" };
}

/** The server's exported directories (MOUNTPROC3_EXPORT). */
async function exportsOf(host: string, transport: "tcp" | "udp"): Promise<string[]> {
  const channel = await connect({ transport, host, service: MountV3 });
  try {
    const list: string[] = [];
    for (let e = await new MountV3Client(channel, { auth: processAuthSys() }).mountproc3Export(); e !== null; e = e.ex_next) list.push(e.ex_dir);
    return list;
  } finally {
    await channel.close();
  }
}

/** Mounts the export `path` lies in; resolves with the path below it. */
async function mountFor(host: string, path: string, transport: "tcp" | "udp"): Promise<{ mount: NfsMount; rest: string }> {
  const within = (dir: string) => dir === "/" || path === dir || path.startsWith(`${dir.replace(/\/+$/, "")}/`);
  const candidates = (await exportsOf(host, transport)).filter(within).sort((a, b) => b.length - a.length);
  if (candidates.length === 0) throw new UsageError(`${host} exports no directory that holds ${path}`);
  const dir = candidates[0]!;
  const mount = await mountNfs(host, dir, { transport });
  return { mount, rest: dir === "/" ? path : path.slice(dir.replace(/\/+$/, "").length) };
}

const perms = (s: NfsStat) => {
  const kind = { file: "-", directory: "d", symlink: "l", block: "b", character: "c", socket: "s", fifo: "p" }[s.type];
  const bits = "rwxrwxrwx".replace(/./g, (c, i: number) => (s.mode & (0o400 >> i) ? c : "-"));
  return kind + bits;
};

async function run(args: string[], out: NodeJS.WritableStream): Promise<void> {
  let transport: "tcp" | "udp" = "tcp";
  const rest = args.filter((a) => (a === "--udp" ? ((transport = "udp"), false) : true));
  const [command, target, local, ...extra] = rest;
  if (command === undefined || target === undefined || extra.length > 0 || !["ls", "cat", "put"].includes(command)) throw new UsageError("");
  if (command !== "put" && local !== undefined) throw new UsageError("");
  const { host, path } = parseTarget(target);
  const { mount, rest: inside } = await mountFor(host, path, transport);
  try {
    if (command === "ls") {
      const entries: NfsDirEntry[] = [];
      for await (const e of mount.readdir(inside)) entries.push(e);
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const lines = entries.map(({ name, stat: s }) =>
        s === undefined ? name : `${perms(s)} ${String(s.nlink).padStart(3)} ${String(s.uid).padStart(5)} ${String(s.gid).padStart(5)} ${String(s.size).padStart(10)} ${name}`,
      );
      out.write(lines.map((l) => `${l}\n`).join(""));
    } else if (command === "cat") {
      await pipeline(mount.createReadStream(inside), out, { end: false });
    } else {
      await pipeline(local === undefined || local === "-" ? process.stdin : createReadStream(local), mount.createWriteStream(inside));
    }
  } finally {
    await mount.close();
  }
}

try {
  await run(process.argv.slice(2), process.stdout);
} catch (e) {
  if (e instanceof UsageError) {
    process.stderr.write(`${e.message === "" ? "" : `rpcgen-ts-nfs: ${e.message}\n`}${usage}`);
    process.exitCode = 2;
  } else if (e instanceof NfsError || e instanceof RpcError || (e as NodeJS.ErrnoException).code !== undefined) {
    process.stderr.write(`rpcgen-ts-nfs: ${(e as Error).message}\n`);
    process.exitCode = 1;
  } else {
    throw e;
  }
}
