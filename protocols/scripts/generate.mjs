// Regenerates src/gen/ from idl/ with the rpcgen-ts compiler (`npm run generate`). The
// generated modules are committed, so the package builds without the compiler; a test
// fails when they differ from what the compiler makes of idl/ today.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generate } from "rpcgen-ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The .x files compiled, one module each (the name of the module is the file's). Not
 * rpcb_prot.x and pmap_prot.x: `/rpcbind` and `/portmap` re-export the runtime's stubs.
 */
export const sources = [
  "mount.x",
  "mount3.x",
  "nfs3.x",
  "nlm_prot.x",
  "nlm4_prot.x",
  "rquota.x",
  "rstat.x",
  "rusers.x",
  "sm_inter.x",
  "yp.x",
];

/**
 * The marshaling mode of the shipped stubs. Synthesized: decoded values own their memory
 * (a READ's data stays valid however long it is kept, and keeps no reply alive), arguments
 * are marshaled straight into the send buffer (one copy), and it is the compiler's default.
 */
export const mode = "synthesized";

/** The generated modules, by file name. */
export async function generateAll() {
  const files = sources.map((s) => join(root, "idl", s));
  const { outputs, diagnostics } = await generate({ files, mode });
  if (diagnostics.length > 0) throw new Error(diagnostics.map((d) => d.text).join(""));
  return new Map(outputs.map((o) => [o.path, o.text]));
}

// `--out DIR` writes elsewhere (the test that compares them with src/gen).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf("--out");
  const out = at > 0 ? process.argv[at + 1] : join(root, "src/gen");
  if (out === undefined) throw new Error("--out takes a directory");
  const modules = await generateAll();
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out)) if (!modules.has(f)) rmSync(join(out, f));
  for (const [name, text] of modules) writeFileSync(join(out, name), text);
  console.log(`${modules.size} modules in ${out}`);
}
