import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

/**
 * scripts/system-deps.sh: the one list of Debian packages the suite needs (`npm test` runs it
 * first, `.ci/run` before `npm ci`). Missing things are faked with SYSTEM_DEPS_ROOT (a prefix for
 * every path it checks) and a PATH holding only a temporary directory, so nothing is uninstalled
 * and no real apt-get can run. Kept free of test/support.ts, which needs the packages at import.
 */

const script = fileURLToPath(new URL("../scripts/system-deps.sh", import.meta.url));
const bash = existsSync("/bin/bash") ? "/bin/bash" : "/usr/bin/bash";
const isRoot = process.getuid?.() === 0;

/** Each package and what it must provide: paths under the root, or `bin/NAME` on PATH. */
const provides: [string, string[]][] = [
  ["rpcsvc-proto", ["usr/bin/rpcgen", "usr/include/rpcsvc/nfs_prot.x"]],
  ["libtirpc-dev", ["usr/include/tirpc/rpc/rpcb_prot.x"]],
  ["gcc libc6-dev", ["bin/gcc"]],
  ["rpcbind", ["usr/sbin/rpcbind", "usr/sbin/rpcinfo"]],
  ["iproute2", ["usr/sbin/ip"]],
  ["nftables", ["usr/sbin/nft"]],
  ["util-linux", ["usr/bin/unshare", "usr/bin/nsenter"]],
  ["nfs-ganesha", ["usr/bin/ganesha.nfsd"]],
  ["nfs-ganesha-vfs", ["usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so"]],
  ["nfs-common", ["usr/sbin/rpc.statd"]],
  ["rstatd", ["usr/sbin/rpc.rstatd"]],
  ["rusersd", ["usr/sbin/rpc.rusersd"]],
  ["quota", ["usr/sbin/rpc.rquotad"]],
  ["ypserv", ["usr/sbin/ypserv", "usr/lib/yp/makedbm"]],
  ["rwalld", ["usr/sbin/rpc.rwalld"]],
  ["chromium", ["usr/bin/chromium"]],
];
const everything = provides.map(([name]) => name).join(" ");

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "rpcgen-ts-system-deps-"));
  mkdirSync(join(root, "bin"));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function provide(paths: string[]): void {
  for (const path of paths) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), "");
    chmodSync(join(root, path), 0o755);
  }
}

function run(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(bash, [script, ...args], {
    encoding: "utf8",
    timeout: 10_000,
    env: { PATH: join(root, "bin"), SYSTEM_DEPS_ROOT: root, ...env },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * An apt-get that logs each call (with DEBIAN_FRONTEND) and, on install, creates the files listed
 * in FAKE_PROVIDE, as the real packages would.
 */
function fakeAptGet(): string {
  const log = join(root, "apt.log");
  writeFileSync(
    join(root, "bin", "apt-get"),
    [
      "#!/bin/bash",
      `echo "$DEBIAN_FRONTEND $*" >> ${JSON.stringify(log)}`,
      'if [ "$1" = install ]; then',
      // What invoke-rc.d would ask before starting a service the package installs.
      `  if [ -x "${root}/usr/sbin/policy-rc.d" ]; then "${root}/usr/sbin/policy-rc.d"; echo "policy-rc.d: $?" >> ${JSON.stringify(log)}; fi`,
      "  for f in ${FAKE_PROVIDE-}; do",
      `    /bin/mkdir -p "${root}/\${f%/*}"; : > "${root}/$f"; /bin/chmod +x "${root}/$f"`,
      "  done",
      "fi",
      "",
    ].join("\n"),
  );
  chmodSync(join(root, "bin", "apt-get"), 0o755);
  return log;
}

const installLine = (names: string) => `  ${isRoot ? "" : "sudo "}apt-get install -y ${names}\n`;

describe("system-deps.sh", () => {
  it("on this machine names nothing missing and prints nothing", () => {
    for (const args of [[], ["--check"]]) {
      const result = spawnSync(bash, [script, ...args], { encoding: "utf8", timeout: 10_000 });
      expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    }
  });

  it("with nothing installed, --check prints the exact install command and exits 1", () => {
    const result = run(["--check"]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(`not installed: ${everything}\n`);
    expect(result.stderr).toContain(installLine(everything));
  });

  it.each(provides)("names exactly %s when only its files are missing", (name) => {
    provide(provides.filter(([other]) => other !== name).flatMap(([, paths]) => paths));
    expect(run(["--check"]).status).toBe(1);
    expect(run(["--check"]).stderr).toContain(installLine(name));
    provide(provides.find(([other]) => other === name)![1]);
    expect(run(["--check"])).toEqual({ status: 0, stdout: "", stderr: "" });
  });

  it("a file that exists but cannot run does not count as the program", () => {
    provide(provides.flatMap(([, paths]) => paths));
    chmodSync(join(root, "usr/sbin/nft"), 0o644);
    expect(run(["--check"]).stderr).toContain(installLine("nftables"));
  });

  it("--check never calls apt-get", () => {
    const log = fakeAptGet();
    expect(run(["--check"]).status).toBe(1);
    expect(existsSync(log)).toBe(false);
  });

  it(
    isRoot
      ? "as root with apt-get: updates once, installs the missing ones noninteractively, then checks again"
      : "not root: stops with the sudo command and never calls apt-get",
    () => {
      const log = fakeAptGet();
      provide(["usr/sbin/ip", "usr/sbin/nft"]);
      const absent = provides.filter(([name]) => name !== "iproute2" && name !== "nftables");
      const missing = absent.map(([name]) => name).join(" ");
      const files = absent.flatMap(([, paths]) => paths);
      const result = run([], { FAKE_PROVIDE: files.join(" ") });
      if (isRoot) {
        expect(result.status).toBe(0);
        // Services stay down while installing (policy-rc.d: 101), and the policy goes afterwards.
        expect(readFileSync(log, "utf8")).toBe(`noninteractive update\nnoninteractive install -y --no-install-recommends ${missing}\npolicy-rc.d: 101\n`);
        expect(existsSync(join(root, "usr/sbin/policy-rc.d"))).toBe(false);
        expect(result.stderr).toBe(`system-deps: installing ${missing}\n`);
      } else {
        expect(result.status).toBe(1);
        expect(existsSync(log)).toBe(false);
        expect(result.stderr).toContain(installLine(missing));
      }
    },
  );

  it(isRoot ? "as root: a policy-rc.d already there is used and left alone" : "not root: a policy-rc.d already there is left alone", () => {
    const log = fakeAptGet();
    provide(provides.filter(([name]) => name !== "rwalld").flatMap(([, paths]) => paths));
    writeFileSync(join(root, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 104\n");
    chmodSync(join(root, "usr/sbin/policy-rc.d"), 0o755);
    const result = run([], { FAKE_PROVIDE: "usr/sbin/rpc.rwalld" });
    if (isRoot) {
      expect(result.status).toBe(0);
      expect(readFileSync(log, "utf8")).toBe("noninteractive update\nnoninteractive install -y --no-install-recommends rwalld\npolicy-rc.d: 104\n");
    } else {
      expect(result.status).toBe(1);
      expect(existsSync(log)).toBe(false);
    }
    expect(readFileSync(join(root, "usr/sbin/policy-rc.d"), "utf8")).toBe("#!/bin/sh\nexit 104\n");
  });

  it("fails when apt-get succeeds but the files are still missing (checked again after installing)", () => {
    const log = fakeAptGet();
    const result = run([]);
    expect(result.status).toBe(1);
    if (isRoot) expect(readFileSync(log, "utf8")).toContain(`install -y --no-install-recommends ${everything}\n`);
    expect(result.stderr).toContain(installLine(everything));
  });

  it("refuses an unknown argument", () => {
    const result = run(["--install-everything"]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^usage: .*system-deps\.sh \[--check\]\n$/);
  });
});
