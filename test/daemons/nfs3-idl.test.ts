import { execFile } from "node:child_process";
import { copyFileSync, existsSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { generate, modes } from "../../compiler/compile.js";
import { loadStubs, removeDir, repoRoot, tempDir } from "./harness.js";

/**
 * idl/nfs3.x and idl/mount3.x, typed from RFC 1813: they check and generate in every mode,
 * Sun rpcgen accepts them (header and XDR routines, which gcc compiles against libtirpc), and
 * the programs have exactly the RFC's procedures under the RFC's names and numbers.
 */

const exec = promisify(execFile);
const files = [join(repoRoot, "idl/nfs3.x"), join(repoRoot, "idl/mount3.x")];
const scratch = tempDir("nfs3-idl");
afterAll(() => removeDir(scratch));

/** RFC 1813 §3.3 and Appendix I, in procedure-number order. */
const nfsProcedures = [
  "NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE", "CREATE", "MKDIR", "SYMLINK",
  "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT",
].map((p) => `NFSPROC3_${p}`);
const mountProcedures = ["NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"].map((p) => `MOUNTPROC3_${p}`);

describe("idl/nfs3.x and idl/mount3.x", () => {
  it.each(modes)("check and generate in %s mode", async (mode) => {
    const checked = await generate({ files, mode, check: true });
    expect(checked.diagnostics).toEqual([]);
    const { outputs, diagnostics } = await generate({ files, mode });
    expect(diagnostics).toEqual([]);
    expect(outputs.map((o) => o.path)).toEqual(["nfs3.ts", "mount3.ts"]);
  });

  it("are accepted by Sun rpcgen, whose XDR routines gcc compiles against libtirpc (so are the tests' own in test/daemons/idl)", async () => {
    const own = readdirSync(join(repoRoot, "test/daemons/idl"))
      .filter((f) => f.endsWith(".x"))
      .map((f) => join(repoRoot, "test/daemons/idl", f));
    for (const file of [...files, ...own]) {
      const name = basename(file, ".x");
      copyFileSync(file, join(scratch, `${name}.x`));
      await exec("rpcgen", ["-h", "-o", `${name}.h`, `${name}.x`], { cwd: scratch, timeout: 20_000 });
      await exec("rpcgen", ["-c", "-o", `${name}_xdr.c`, `${name}.x`], { cwd: scratch, timeout: 20_000 });
      await exec("gcc", ["-c", "-I/usr/include/tirpc", "-o", `${name}_xdr.o`, `${name}_xdr.c`], { cwd: scratch, timeout: 60_000 });
      expect(existsSync(join(scratch, `${name}_xdr.o`))).toBe(true);
    }
  });

  it("declare the RFC's programs, versions and procedures by name and number", async () => {
    const loaded = await loadStubs(files, "synthesized");
    const nfs = loaded.get("nfs3")!;
    const mount = loaded.get("mount3")!;
    const inventory = (service: { program: number; version: number; procedures: Record<string, { number: number; name: string }> }) => ({
      program: service.program,
      version: service.version,
      procedures: Object.values(service.procedures)
        .sort((a, b) => a.number - b.number)
        .map((p) => [p.number, p.name]),
    });
    expect(inventory(nfs.NfsV3)).toEqual({ program: 100003, version: 3, procedures: nfsProcedures.map((p, i) => [i, p]) });
    expect(inventory(mount.MountV3)).toEqual({ program: 100005, version: 3, procedures: mountProcedures.map((p, i) => [i, p]) });
    // A few of the RFC's constants and enum values, as the wire has them.
    expect({ fh: nfs.NFS3_FHSIZE, jukebox: nfs.nfsstat3.NFS3ERR_JUKEBOX, fifo: nfs.ftype3.NF3FIFO, fsf: nfs.FSF3_CANSETTIME }).toEqual({ fh: 64, jukebox: 10008, fifo: 7, fsf: 0x10 });
    expect({ fh: mount.FHSIZE3, serverfault: mount.mountstat3.MNT3ERR_SERVERFAULT }).toEqual({ fh: 64, serverfault: 10006 });
  });
});
