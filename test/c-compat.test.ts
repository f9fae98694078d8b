import fc from "fast-check";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { moduleNameOf } from "../compiler/compile.js";
import { modes, type Mode } from "../compiler/emit/module.js";
import type { NamedType } from "../compiler/model.js";
import { fromXdr, toXdr, XdrError, type XdrCodec } from "../runtime/index.js";
import { arbitraryOfNamed, type ArbitraryOptions } from "./arbitrary.js";
import { codecOf, compile, generateAllModes, type GeneratedModule } from "./generated.js";
import { CORPUS_CPP_DEFINES, cToolchainProblem, listRpcgenTypes, startCXdrPeer, type CXdrPeer } from "./interop/c-xdr.js";
import { corpus, repoRoot } from "./support.js";

/**
 * Byte compatibility with C rpcgen (DESIGN §4, §6): values generated at random are encoded
 * by our codecs in every mode, decoded and re-encoded by the xdr_T routines that the
 * system's Sun rpcgen generates (linked with libtirpc), and must come back byte-identical.
 * The C toolchain is a requirement of this test suite: when it is missing the tests fail
 * and say what to install.
 */

const RUNS = 50;
const RUNS_AT_BOUND = 15;

const problem = cToolchainProblem();

interface Target {
  readonly file: string;
  readonly cppDefines: string[];
}

const COMPAT = join(repoRoot, "test/fixtures/compat.x");
const NETBUF = join(repoRoot, "test/fixtures/netbuf.x");

/**
 * The corpus files the C peer is built for: every one the system rpcgen can compile. Not
 * nis.x (Sun rpcgen -h stops at its line 411, "NIS_MODIFY_ACC +": definition keyword
 * expected), nor nis_callback.x, which needs nis.x's types.
 */
const CORPUS_FILES = [
  "nfs_prot.x",
  "mount.x",
  "rpcb_prot.x",
  "yp.x",
  "rstat.x",
  "bootparam_prot.x",
  "klm_prot.x",
  "nlm_prot.x",
  "rquota.x",
  "rusers.x",
  "sm_inter.x",
  "spray.x",
  "yppasswd.x",
  "rex.x",
  "key_prot.x",
  "crypt.x",
  "nis_object.x",
];

const targets: Target[] = [
  { file: COMPAT, cppDefines: [] },
  { file: NETBUF, cppDefines: [] },
  ...CORPUS_FILES.map((name) => {
    const file = corpus().find((f) => basename(f) === name);
    if (file === undefined) throw new Error(`${name} is not in the corpus`);
    return { file, cppDefines: [...(CORPUS_CPP_DEFINES[name] ?? [])] };
  }),
];

/** The types rpcgen generates xdr_ routines for, per file (empty when the toolchain is missing). */
const rpcgenTypes = new Map<string, string[]>();
if (problem === null) {
  for (const t of targets) rpcgenTypes.set(t.file, await listRpcgenTypes(t.file, { cppDefines: t.cppDefines }));
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

describe("the C toolchain", () => {
  it("is installed (rpcgen, cpp, gcc, libtirpc)", () => {
    expect(problem, problem ?? "").toBeNull();
  });
});

for (const target of targets) {
  const file = basename(target.file);
  const compiled = compile(target.file);
  const ours: NamedType[] = compiled.model.declarations.flatMap((d) => (d.kind === "type" ? [d.type] : []));
  const names = rpcgenTypes.get(target.file) ?? [];

  describe(`${file} against C rpcgen + libtirpc`, () => {
    let peer: CXdrPeer | undefined;
    let generated: Record<Mode, Map<string, GeneratedModule>>;

    beforeAll(async () => {
      if (problem !== null) throw new Error(problem);
      generated = await generateAllModes([target.file]);
      peer = await startCXdrPeer(target.file, names, { cppDefines: target.cppDefines });
    }, 180_000);
    afterAll(async () => {
      await peer?.close();
    });

    it("the C peer and we know the same types (ours add only libtirpc's built-ins)", () => {
      expect(problem, problem ?? "").toBeNull();
      expect(names.length).toBeGreaterThan(0);
      expect(ours.filter((t) => t.builtin === undefined).map((t) => t.name).sort()).toEqual([...names].sort());
    });

    const check = async (t: NamedType, options: ArbitraryOptions, numRuns: number): Promise<void> => {
      const codecs = {} as Record<Mode, XdrCodec<unknown>>;
      for (const mode of modes) codecs[mode] = codecOf(generated[mode].get(moduleNameOf(target.file))!, t.name);
      await fc.assert(
        fc.asyncProperty(arbitraryOfNamed(t, 0, options), async (v) => {
          for (const mode of modes) {
            const bytes = toXdr(codecs[mode], v).slice();
            const back = await peer!.roundTrip(t.name, bytes);
            expect(hex(back), `${mode} bytes re-encoded by C xdr_${t.name}`).toBe(hex(bytes));
          }
        }),
        { numRuns },
      );
    };

    if (target.file === COMPAT) {
      it("the C peer really decodes: it refuses truncated input and a string over its bound", async () => {
        const ok = toXdr(codecOf(generated.classic.get("compat")!, "name"), "x".repeat(16)).slice();
        expect(hex(await peer!.roundTrip("name", ok))).toBe(hex(ok));
        await expect(peer!.roundTrip("name", ok.subarray(0, 12))).rejects.toMatchObject({ failure: "decode-failed" });
        const over = ok.slice();
        over[3] = 17; // 17 > MAXNAME, and 17 bytes would not even be there
        await expect(peer!.roundTrip("name", over)).rejects.toMatchObject({ failure: "decode-failed" });
        const point = toXdr(codecOf(generated.classic.get("compat")!, "point"), { x: 1, y: 2 }).slice();
        await expect(peer!.roundTrip("point", Uint8Array.of(...point, 0, 0, 0, 0))).rejects.toMatchObject({ failure: "trailing-bytes" });
      });
    }

    if (target.file === NETBUF) {
      it("netbuf: what libtirpc's xdr_netbuf refuses (len > maxlen, maxlen > 9000), every mode refuses", async () => {
        const refused = [
          { maxlen: 2, buf: Uint8Array.of(1, 2, 3) },
          { maxlen: 12288, buf: Uint8Array.of(1, 2, 3) },
        ];
        for (const addr of refused) {
          const bytes = new Uint8Array([...[0, 0, addr.maxlen >> 8, addr.maxlen & 0xff], ...[0, 0, 0, 3], 1, 2, 3, 0]);
          await expect(peer!.roundTrip("nbwrap", bytes), `C refuses maxlen ${addr.maxlen}`).rejects.toMatchObject({ failure: "decode-failed" });
          for (const mode of modes) {
            const codec = codecOf(generated[mode].get("netbuf")!, "nbwrap");
            expect.soft(() => fromXdr(codec, bytes), `${mode} decodes maxlen ${addr.maxlen}, len 3`).toThrow(XdrError);
            expect.soft(() => toXdr(codec, { addr }), `${mode} encodes maxlen ${addr.maxlen}, len 3`).toThrow(XdrError);
          }
        }
      });
    }

    if (file === "nfs_prot.x") {
      it("a READDIR reply of 300 entries (5 KB, within NFSv2's 8 KB): C accepts it, and so must every mode", async () => {
        // readdirres NFS_OK: 300 × (present, fileid, name "a", cookie), end of list, eof.
        const ws: number[] = [0];
        for (let i = 0; i < 300; i++) ws.push(1, i, 1, 0x61000000, i);
        ws.push(0, 1);
        const bytes = new Uint8Array(4 * ws.length);
        ws.forEach((w, i) => new DataView(bytes.buffer).setUint32(4 * i, w));
        expect(hex(await peer!.roundTrip("readdirres", bytes))).toBe(hex(bytes));
        for (const mode of modes) {
          const codec = codecOf(generated[mode].get("nfs_prot")!, "readdirres");
          const value = fromXdr(codec, bytes);
          expect(hex(toXdr(codec, value)), mode).toBe(hex(bytes));
        }
      });
    }

    for (const name of names) {
      const t = ours.find((u) => u.name === name);
      it(`${file} ${name}: our bytes come back identical from C`, async () => {
        expect(t, `we generate no type ${name}`).toBeDefined();
        await check(t!, {}, RUNS);
      });
      it(`${file} ${name}: strings at their bound`, async () => {
        expect(t, `we generate no type ${name}`).toBeDefined();
        await check(t!, { stringsAtBound: true }, RUNS_AT_BOUND);
      });
    }
  });
}

describe("the compat fixture", () => {
  it("has at least 20 named types, all built by the C peer", () => {
    expect(rpcgenTypes.get(COMPAT)?.length ?? 0).toBeGreaterThanOrEqual(20);
  });
});
