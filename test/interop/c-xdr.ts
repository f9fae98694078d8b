/**
 * A C XDR peer for byte-compatibility tests.
 *
 * What it does: `startCXdrPeer(xFile, typeNames)` copies `xFile` into a build
 * dir under its own base name (rpcgen derives `#include "<base>.h"` and the
 * include guard from it), runs the SYSTEM's Sun rpcgen there (rpcsvc-proto:
 * `rpcgen -h` for the header, `rpcgen -c` for the xdr_T routines), generates
 * `rpcgents_main.c` that dispatches on a type index (the shape of each
 * `xdr_T (XDR *, T*)` prototype in the header tells how to call it: fixed
 * array typedefs take `T`, not `T *`), compiles everything with
 * `gcc -I/usr/include/tirpc -include rpc/rpc.h ... -ltirpc`, and starts the
 * result as ONE long-lived child process. For every request the child
 *
 *   1. zero-allocates a `T` (calloc: rpcgen's routines allocate into NULL
 *      pointers on decode),
 *   2. decodes the request bytes with `xdr_T` over an `xdrmem` stream
 *      (XDR_DECODE) and checks that `xdr_getpos` reached the end,
 *   3. re-encodes the object with `xdr_T` into an `xdrmem` buffer (XDR_ENCODE;
 *      sized 2 × input + 1024 bytes, doubled and retried up to 64 MiB if the
 *      encoder fails),
 *   4. frees the object with `xdr_T` in XDR_FREE mode, and answers.
 *
 * A test encodes a value with our TypeScript codecs, calls
 * `peer.roundTrip("T", bytes)` and asserts the bytes come back identical.
 *
 * Framing on the child's stdin/stdout (all integers are u32, big-endian):
 *
 *   hello    (child → us, once at start):  [magic 0x58445250 "XDRP"][version 1][number of types]
 *   request  (us → child):                 [type index][length][length bytes of XDR]
 *   response (child → us):                 [status][length][length bytes]
 *
 *   status 0  OK              payload = the bytes xdr_T re-encoded
 *          1  DECODE_FAILED   payload = the C side's complaint (UTF-8 text)
 *          2  TRAILING_BYTES  payload = complaint: xdr_T stopped before the end
 *          3  ENCODE_FAILED   payload = complaint: decoded, but xdr_T could not re-encode
 *          4  BAD_REQUEST     payload = complaint: unknown type index, message too big, out of memory
 *
 * The child answers requests strictly in order, so the harness keeps a FIFO of
 * pending callers; concurrent `roundTrip` calls never interleave on the pipe.
 * Messages are limited to 16 MiB (`C_XDR_MAX_MESSAGE`; checked on both sides).
 * The child runs with RLIMIT_AS = 1 GiB so that a hostile length prefix makes
 * libtirpc's allocation fail (a decode failure) instead of eating the machine.
 * If the child dies, every pending and future call rejects with its exit
 * status and stderr.
 *
 * Builds are cached by a hash of (harness version, .x content, type list,
 * cpp defines) under `$RPCGEN_TS_C_XDR_CACHE` or `os.tmpdir()/rpcgen-ts-c-xdr/<hash>`.
 * A build happens in a private temporary directory which is renamed into place
 * when it succeeds, so concurrent test workers may race safely; a failed build
 * directory is left behind and named in the error (with rpcgen's or gcc's
 * stderr). Files the .x `#include`s are found through CPATH = the .x file's
 * directory; their content is NOT part of the cache key. `listRpcgenTypes`
 * lists the types rpcgen generates routines for; `CORPUS_CPP_DEFINES` holds
 * the defines two system corpus files need (rpcb_prot.x, crypt.x).
 *
 * Known behaviour of rpcgen + libtirpc that matters when comparing bytes (the
 * C side normalises rather than rejects): a `bool` (and an optional-data
 * "present" flag) decodes any non-zero word as TRUE and re-encodes it as 1;
 * `char`/`short`/`u_char`/`u_short` are decoded as a 4-byte int and truncated
 * to the C type, so out-of-range words come back sign- or zero-extended from
 * the narrow value; non-zero padding is accepted and re-encoded as zeros; a
 * `string` is re-encoded with strlen(), so a string containing NUL comes back
 * shorter; enum values are not range-checked (but a union switching on an
 * enum with no default arm rejects unknown discriminants).
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { accessSync, constants as fsConstants, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, join, resolve } from "node:path";

export interface CXdrPeer {
  /** Decodes `bytes` as type `typeName` with the C xdr_<typeName> routine and re-encodes it. Rejects with an Error carrying the C side's complaint if decoding fails or bytes are left over. */
  roundTrip(typeName: string, bytes: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
  /** The child's process id (for tests of the harness itself). */
  readonly pid: number;
  /** The directory holding <base>.x, rpcgen's <base>.h and <base>_xdr.c, rpcgents_main.c, build.log and the `peer` binary. */
  readonly buildDir: string;
}

export type CXdrFailure = "decode-failed" | "trailing-bytes" | "encode-failed" | "bad-request" | "peer-died";

/** The error a `roundTrip` rejects with; `failure` says which kind (statuses 1–4 of the framing, or the child died). */
export class CXdrError extends Error {
  override readonly name = "CXdrError";
  constructor(
    readonly failure: CXdrFailure,
    message: string,
  ) {
    super(message);
  }
}

/**
 * cpp defines that make system corpus files build (pass as `cppDefines`):
 * rpcb_prot.x uses libtirpc's C typedefs rpcprog_t/rpcvers_t/rpcproc_t, for
 * which libtirpc exports no xdr_ routine; crypt.x calls FreeBSD's __FBSDID.
 */
export const CORPUS_CPP_DEFINES: Readonly<Record<string, readonly string[]>> = {
  "rpcb_prot.x": ["xdr_rpcprog_t=xdr_u_int32_t", "xdr_rpcvers_t=xdr_u_int32_t", "xdr_rpcproc_t=xdr_u_int32_t"],
  "crypt.x": ["__FBSDID(s)="],
};

/** Largest request (and response) payload, in bytes. */
export const C_XDR_MAX_MESSAGE = 16 * 1024 * 1024;

/** Bump when main.c or the build recipe changes, to invalidate cached builds. */
const HARNESS_VERSION = 4;
const HELLO_MAGIC = 0x58445250;
const PROTOCOL_VERSION = 1;
const TIRPC_INCLUDE = "/usr/include/tirpc";
const INSTALL_HINT =
  "install them with: apt-get install rpcsvc-proto libtirpc-dev gcc (Debian/Ubuntu) or dnf install rpcgen libtirpc-devel gcc (Fedora)";

const STATUS_FAILURE: ReadonlyMap<number, CXdrFailure> = new Map<number, CXdrFailure>([
  [1, "decode-failed"],
  [2, "trailing-bytes"],
  [3, "encode-failed"],
  [4, "bad-request"],
]);

function findOnPath(program: string): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * Null when rpcgen, cpp, gcc, the libtirpc headers and libtirpc itself are
 * present; otherwise a sentence saying what is missing and how to install it.
 * Not meant for skipping tests: the interop tests must run where CI installs
 * these; this only makes the failure readable.
 */
export function cToolchainProblem(): string | null {
  const missing: string[] = [];
  if (findOnPath("rpcgen") === null) missing.push("rpcgen (package rpcsvc-proto)");
  if (findOnPath("cpp") === null) missing.push("cpp (rpcgen runs it)");
  const gcc = findOnPath("gcc");
  if (gcc === null) missing.push("gcc");
  if (!existsSync(join(TIRPC_INCLUDE, "rpc", "rpc.h"))) missing.push(`libtirpc headers (${TIRPC_INCLUDE}/rpc/rpc.h; package libtirpc-dev)`);
  if (gcc !== null) {
    const probe = spawnSync(gcc, ["-print-file-name=libtirpc.so"], { encoding: "utf8" });
    const path = probe.stdout.trim();
    if (probe.status !== 0 || path === "libtirpc.so" || !existsSync(path)) missing.push("libtirpc.so for linking (package libtirpc-dev)");
  }
  if (missing.length === 0) return null;
  return `The C XDR peer needs ${missing.join(", ")}; ${INSTALL_HINT}.`;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}

function describeCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].join(" ");
}

async function runStep(step: string, cmd: string, args: readonly string[], buildDir: string, env: NodeJS.ProcessEnv, log: string[]): Promise<void> {
  const shown = describeCommand(cmd, args);
  const r = await run(cmd, args, buildDir, env);
  log.push(`$ ${shown}\n${r.stdout}${r.stderr}`);
  if (r.code !== 0) {
    const how = r.signal !== null ? `was killed by ${r.signal}` : `exited with status ${String(r.code)}`;
    throw new Error(`C XDR peer: ${step} failed (${how}).\n  command: ${shown}\n  build dir (kept for inspection): ${buildDir}\n--- stderr ---\n${r.stderr}${r.stdout === "" ? "" : `--- stdout ---\n${r.stdout}`}`);
  }
}

/** How rpcgen declared xdr_T: taking `T *` (everything but arrays) or `T` (a fixed-array typedef, which decays to a pointer). */
type ProtoShape = "pointer" | "array";

/**
 * Parses the ANSI prototypes `extern  bool_t xdr_T (XDR *, T*);` that
 * `rpcgen -h` writes for every type T of the .x file. Hand-written
 * pass-through declarations (`%extern bool_t xdr_netbuf(XDR *, struct netbuf *);`
 * in rpcb_prot.x) do not name their own type and are skipped.
 */
export function parseXdrPrototypes(header: string): Map<string, ProtoShape> {
  const result = new Map<string, ProtoShape>();
  const re = /^\s*extern\s+bool_t\s+xdr_([A-Za-z_]\w*)\s*\(\s*XDR\s*\*\s*,\s*([A-Za-z_]\w*)\s*(\*?)\s*\)\s*;/gm;
  for (const m of header.matchAll(re)) {
    const name = m[1];
    if (name === undefined || m[2] !== name) continue;
    result.set(name, m[3] === "*" ? "pointer" : "array");
  }
  return result;
}

function cString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The C main for the peer. `types` are in request-index order. */
function generateMainC(header: string, types: ReadonlyArray<{ name: string; shape: ProtoShape }>): string {
  const wrappers = types
    .map(({ name, shape }, i) =>
      shape === "pointer"
        ? `static bool_t rpcgents_proc_${i}(XDR *x, void *p) { return xdr_${name}(x, (${name} *)p); }`
        : `static bool_t rpcgents_proc_${i}(XDR *x, void *p) { return xdr_${name}(x, *(${name} *)p); }`,
    )
    .join("\n");
  const table = types.map(({ name }, i) => `  { ${cString(name)}, sizeof(${name}), rpcgents_proc_${i} },`).join("\n");
  return `/* Generated by test/interop/c-xdr.ts (harness version ${HARNESS_VERSION}); do not edit. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include "${header}"

#define RPCGENTS_MAX_MSG ${C_XDR_MAX_MESSAGE}u
#define RPCGENTS_MAX_OUT (64u * 1024u * 1024u)
#define RPCGENTS_MEM_LIMIT ((rlim_t)1 << 30)

typedef bool_t (*rpcgents_proc)(XDR *, void *);
struct rpcgents_type { const char *name; size_t size; rpcgents_proc proc; };

${wrappers}

static const struct rpcgents_type rpcgents_types[] = {
${table}
};
#define RPCGENTS_NTYPES ((uint32_t)(sizeof rpcgents_types / sizeof rpcgents_types[0]))

/* Reads up to n bytes; returns how many were read (less than n only at EOF). */
static size_t rpcgents_read_full(void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(0, (char *)buf + got, n - got);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "c-xdr peer: read(stdin): %s\\n", strerror(errno));
      exit(3);
    }
    got += (size_t)r;
  }
  return got;
}

static void rpcgents_write_full(const void *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = write(1, (const char *)buf + put, n - put);
    if (r < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "c-xdr peer: write(stdout): %s\\n", strerror(errno));
      exit(3);
    }
    put += (size_t)r;
  }
}

static void rpcgents_put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static uint32_t rpcgents_get32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void rpcgents_reply(uint32_t status, const void *payload, uint32_t len) {
  unsigned char hdr[8];
  rpcgents_put32(hdr, status);
  rpcgents_put32(hdr + 4, len);
  rpcgents_write_full(hdr, sizeof hdr);
  if (len > 0) rpcgents_write_full(payload, len);
}

static void rpcgents_replyf(uint32_t status, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof text) n = (int)sizeof text - 1;
  rpcgents_reply(status, text, (uint32_t)n);
}

/* Grows *buf to at least n bytes (keeps at least 1). Returns 0 when out of memory. */
static int rpcgents_reserve(unsigned char **buf, size_t *cap, size_t n) {
  if (n == 0) n = 1;
  if (*cap >= n) return 1;
  unsigned char *b = realloc(*buf, n);
  if (b == NULL) return 0;
  *buf = b;
  *cap = n;
  return 1;
}

int main(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == 0 && (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > RPCGENTS_MEM_LIMIT)) {
    rl.rlim_cur = RPCGENTS_MEM_LIMIT;
    (void)setrlimit(RLIMIT_AS, &rl); /* best effort */
  }

  unsigned char hello[12];
  rpcgents_put32(hello, ${HELLO_MAGIC}u);
  rpcgents_put32(hello + 4, ${PROTOCOL_VERSION}u);
  rpcgents_put32(hello + 8, RPCGENTS_NTYPES);
  rpcgents_write_full(hello, sizeof hello);

  unsigned char *in = NULL, *out = NULL;
  size_t incap = 0, outcap = 0;
  for (;;) {
    unsigned char hdr[8];
    size_t got = rpcgents_read_full(hdr, sizeof hdr);
    if (got == 0) return 0; /* clean EOF between messages */
    if (got != sizeof hdr) {
      fprintf(stderr, "c-xdr peer: stdin ended inside a request header (%zu of 8 bytes)\\n", got);
      return 1;
    }
    uint32_t idx = rpcgents_get32(hdr), len = rpcgents_get32(hdr + 4);

    if (len > RPCGENTS_MAX_MSG) {
      unsigned char sink[65536];
      uint32_t left = len;
      while (left > 0) {
        size_t chunk = left < sizeof sink ? left : sizeof sink;
        if (rpcgents_read_full(sink, chunk) != chunk) {
          fprintf(stderr, "c-xdr peer: stdin ended inside an oversized request\\n");
          return 1;
        }
        left -= (uint32_t)chunk;
      }
      rpcgents_replyf(4, "request of %u bytes exceeds the peer's maximum message size of %u bytes", len, RPCGENTS_MAX_MSG);
      continue;
    }
    if (!rpcgents_reserve(&in, &incap, len)) {
      fprintf(stderr, "c-xdr peer: out of memory for a %u-byte request\\n", len);
      return 1;
    }
    got = rpcgents_read_full(in, len);
    if (got != len) {
      fprintf(stderr, "c-xdr peer: stdin ended inside a request body (%zu of %u bytes)\\n", got, len);
      return 1;
    }
    if (idx >= RPCGENTS_NTYPES) {
      rpcgents_replyf(4, "unknown type index %u (this peer was built for %u types)", idx, RPCGENTS_NTYPES);
      continue;
    }

    const struct rpcgents_type *t = &rpcgents_types[idx];
    void *obj = calloc(1, t->size > 0 ? t->size : 1);
    if (obj == NULL) {
      rpcgents_replyf(4, "out of memory allocating a %s (%zu bytes)", t->name, t->size);
      continue;
    }

    XDR dx;
    xdrmem_create(&dx, (char *)in, len, XDR_DECODE);
    bool_t ok = t->proc(&dx, obj);
    u_int pos = xdr_getpos(&dx);
    xdr_destroy(&dx);

    if (!ok) {
      rpcgents_replyf(1, "xdr_%s could not decode the %u-byte message (it gave up at byte offset %u)", t->name, len, pos);
    } else if (pos != len) {
      rpcgents_replyf(2, "xdr_%s decoded only %u of the %u bytes: %u trailing bytes", t->name, pos, len, len - pos);
    } else {
      size_t cap = (size_t)len * 2 + 1024;
      bool_t eok = FALSE;
      u_int epos = 0;
      for (;;) {
        if (!rpcgents_reserve(&out, &outcap, cap)) break;
        XDR ex;
        xdrmem_create(&ex, (char *)out, (u_int)cap, XDR_ENCODE);
        eok = t->proc(&ex, obj);
        epos = xdr_getpos(&ex);
        xdr_destroy(&ex);
        if (eok || cap >= RPCGENTS_MAX_OUT) break;
        cap = cap * 2 > RPCGENTS_MAX_OUT ? RPCGENTS_MAX_OUT : cap * 2;
      }
      if (eok) {
        rpcgents_reply(0, out, epos);
      } else {
        rpcgents_replyf(3, "xdr_%s decoded all %u bytes but failed to re-encode the value (buffer of %zu bytes)", t->name, len, cap);
      }
    }

    XDR fx;
    memset(&fx, 0, sizeof fx);
    fx.x_op = XDR_FREE;
    (void)t->proc(&fx, obj);
    free(obj);
  }
}
`;
}

/**
 * The name the .x is copied under in the build dir. rpcgen derives the header
 * name (`#include "<base>.h"`) and include guard (`_<BASE>_H_RPCGEN`) from it,
 * so it keeps the original base name: for the tirpc corpus file rpcb_prot.x
 * the guard then matches the one of <rpc/rpcb_prot.h> (which <rpc/rpc.h>
 * already includes), and the types come from libtirpc's copy of the same
 * rpcgen output instead of being declared twice.
 */
function specBaseName(xFile: string): string {
  const raw = basename(xFile).replace(/\.x$/, "").replace(/[^A-Za-z0-9_]/g, "_");
  return /^[A-Za-z_]/.test(raw) ? raw : `x_${raw}`;
}

function cacheRoot(): string {
  return process.env["RPCGEN_TS_C_XDR_CACHE"] ?? join(tmpdir(), "rpcgen-ts-c-xdr");
}

function isIdentifier(s: string): boolean {
  return /^[A-Za-z_]\w*$/.test(s);
}

/** Builds (or finds in the cache) the peer binary; returns its build directory. */
async function buildPeer(xFile: string, typeNames: readonly string[], cppDefines: readonly string[]): Promise<string> {
  const xSource = await readFile(xFile, "utf8");
  const base = specBaseName(xFile);
  const hash = createHash("sha256")
    .update(JSON.stringify({ v: HARNESS_VERSION, base, x: xSource, types: typeNames, defines: cppDefines }))
    .digest("hex")
    .slice(0, 24);
  const root = cacheRoot();
  const finalDir = join(root, hash);
  if (existsSync(join(finalDir, "peer"))) return finalDir;

  await mkdir(root, { recursive: true });
  const buildDir = join(root, `${hash}.build-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(buildDir);
  const rpcgen = findOnPath("rpcgen") ?? "rpcgen";
  const gcc = findOnPath("gcc") ?? "gcc";
  // Files the .x #includes are resolved relative to its real directory.
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C", CPATH: dirname(resolve(xFile)) };
  const defineArgs = cppDefines.map((d) => `-D${d}`);
  const log: string[] = [];
  try {
    await writeFile(join(buildDir, `${base}.x`), xSource);
    await runStep("rpcgen -h", rpcgen, [...defineArgs, "-h", "-o", `${base}.h`, `${base}.x`], buildDir, env, log);
    await runStep("rpcgen -c", rpcgen, [...defineArgs, "-c", "-o", `${base}_xdr.c`, `${base}.x`], buildDir, env, log);
    const protos = parseXdrPrototypes(await readFile(join(buildDir, `${base}.h`), "utf8"));
    const types = typeNames.map((name) => {
      const shape = protos.get(name);
      if (shape === undefined) {
        throw new Error(
          `C XDR peer: rpcgen generated no xdr_${name} for ${xFile}; it generated routines for: ${[...protos.keys()].join(", ") || "(none)"}.\n  build dir (kept for inspection): ${buildDir}`,
        );
      }
      return { name, shape };
    });
    await writeFile(join(buildDir, "rpcgents_main.c"), generateMainC(`${base}.h`, types));
    await runStep(
      "gcc",
      gcc,
      ["-O1", "-g", "-std=gnu11", `-I${TIRPC_INCLUDE}`, "-include", "rpc/rpc.h", ...defineArgs, "-o", "peer", "rpcgents_main.c", `${base}_xdr.c`, "-ltirpc"],
      buildDir,
      env,
      log,
    );
    await writeFile(join(buildDir, "build.log"), log.join("\n"));
  } catch (e) {
    await writeFile(join(buildDir, "build.log"), log.join("\n")).catch(() => undefined);
    throw e;
  }
  try {
    await rename(buildDir, finalDir);
  } catch (e) {
    // Another worker finished the same build first: use theirs.
    if (existsSync(join(finalDir, "peer"))) {
      await rm(buildDir, { recursive: true, force: true });
      return finalDir;
    }
    throw e;
  }
  return finalDir;
}

interface Pending {
  typeName: string;
  resolve: (bytes: Uint8Array) => void;
  reject: (err: Error) => void;
}

const STDERR_KEEP = 64 * 1024;

class Peer implements CXdrPeer {
  private readonly indexOf: Map<string, number>;
  private readonly pending: Pending[] = [];
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private stderrText = "";
  private helloSeen = false;
  private deathError: Error | null = null;
  private closing = false;
  private readonly exited: Promise<void>;
  private readonly helloPromise: Promise<void>;
  private helloResolve: () => void = () => undefined;
  private helloReject: (e: Error) => void = () => undefined;

  readonly pid: number;

  constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly buildDir: string,
    private readonly typeNames: readonly string[],
  ) {
    this.pid = child.pid ?? -1;
    this.indexOf = new Map(typeNames.map((n, i) => [n, i]));
    this.helloPromise = new Promise<void>((res, rej) => {
      this.helloResolve = res;
      this.helloReject = rej;
    });
    this.helloPromise.catch(() => undefined); // observed by startCXdrPeer
    child.stdout.on("data", (chunk: Buffer) => this.onData(chunk));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text: string) => {
      this.stderrText = (this.stderrText + text).slice(-STDERR_KEEP);
    });
    child.stdin.on("error", () => undefined); // EPIPE after a crash; reported via "close"
    this.exited = new Promise<void>((res) => {
      child.on("error", (e) => {
        this.die(`could not be run: ${e.message}`);
        res();
      });
      child.on("close", (code, signal) => {
        const how = signal !== null ? `was killed by ${signal}` : `exited with status ${String(code)}`;
        this.die(how);
        res();
      });
    });
  }

  waitForHello(): Promise<void> {
    return this.helloPromise;
  }

  private die(how: string): void {
    if (this.deathError !== null) return;
    const stderr = this.stderrText.trim();
    this.deathError = new CXdrError(
      "peer-died",
      `C XDR peer (${join(this.buildDir, "peer")}) ${how}${stderr === "" ? " (no stderr)" : `; its stderr:\n${stderr}`}`,
    );
    this.helloReject(this.deathError);
    for (const p of this.pending.splice(0)) p.reject(this.deathError);
  }

  private protocolError(what: string): void {
    this.die(`broke the framing protocol: ${what}`);
    this.child.kill("SIGKILL");
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    for (;;) {
      const needHeader = this.helloSeen ? 8 : 12;
      if (this.chunkBytes < needHeader) return;
      if ((this.chunks[0]?.length ?? 0) < needHeader) this.chunks = [Buffer.concat(this.chunks)];
      let buf = this.chunks[0];
      if (buf === undefined) return;
      if (!this.helloSeen) {
        const magic = buf.readUInt32BE(0);
        const version = buf.readUInt32BE(4);
        const ntypes = buf.readUInt32BE(8);
        if (magic !== HELLO_MAGIC || version !== PROTOCOL_VERSION || ntypes !== this.typeNames.length) {
          this.protocolError(`bad hello (magic 0x${magic.toString(16)}, version ${version}, ${ntypes} types; expected ${this.typeNames.length})`);
          return;
        }
        this.helloSeen = true;
        this.consume(buf, 12);
        this.helloResolve();
        continue;
      }
      const status = buf.readUInt32BE(0);
      const len = buf.readUInt32BE(4);
      if (this.chunkBytes < 8 + len) return; // wait for the rest (chunks stay unconcatenated until then)
      if (buf.length < 8 + len) {
        buf = Buffer.concat(this.chunks);
        this.chunks = [buf];
      }
      const payload = new Uint8Array(buf.subarray(8, 8 + len)); // a copy the caller owns
      this.consume(buf, 8 + len);
      const p = this.pending.shift();
      if (p === undefined) {
        this.protocolError(`answered with status ${status} when no request was pending`);
        return;
      }
      if (status === 0) {
        p.resolve(payload);
      } else {
        const failure = STATUS_FAILURE.get(status);
        const text = Buffer.from(payload).toString("utf8");
        if (failure === undefined) {
          p.reject(new CXdrError("bad-request", `C XDR peer answered xdr_${p.typeName} with unknown status ${status}: ${text}`));
        } else {
          p.reject(new CXdrError(failure, `C XDR peer: ${failure}: ${text}`));
        }
      }
    }
  }

  private consume(buf: Buffer, n: number): void {
    const rest = buf.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.chunkBytes = rest.length;
  }

  roundTrip(typeName: string, bytes: Uint8Array): Promise<Uint8Array> {
    if (this.deathError !== null) return Promise.reject(this.deathError);
    if (this.closing) return Promise.reject(new CXdrError("bad-request", "C XDR peer: roundTrip called after close()"));
    const index = this.indexOf.get(typeName);
    if (index === undefined) {
      return Promise.reject(
        new CXdrError("bad-request", `C XDR peer was not built for type ${JSON.stringify(typeName)}; it knows: ${this.typeNames.join(", ")}`),
      );
    }
    if (bytes.length > C_XDR_MAX_MESSAGE) {
      return Promise.reject(
        new CXdrError("bad-request", `C XDR peer: message of ${bytes.length} bytes exceeds the maximum of ${C_XDR_MAX_MESSAGE} bytes`),
      );
    }
    return new Promise<Uint8Array>((res, rej) => {
      this.pending.push({ typeName, resolve: res, reject: rej });
      const frame = Buffer.allocUnsafe(8 + bytes.length);
      frame.writeUInt32BE(index, 0);
      frame.writeUInt32BE(bytes.length, 4);
      frame.set(bytes, 8);
      this.child.stdin.write(frame);
    });
  }

  async close(): Promise<void> {
    if (this.deathError === null && !this.closing) this.child.stdin.end();
    this.closing = true;
    await this.exited;
  }
}

function checkDefines(cppDefines: readonly string[]): readonly string[] {
  for (const d of cppDefines) {
    if (!/^[A-Za-z_]\w*(\([\w\s,.]*\))?(=.*)?$/s.test(d)) {
      throw new Error(`C XDR peer: bad cpp define ${JSON.stringify(d)} (want NAME, NAME=value or NAME(args)=body)`);
    }
  }
  return cppDefines;
}

/**
 * Builds (cached) and starts a C XDR peer for `typeNames` of `xFile`; see the
 * comment at the top of this file. `cppDefines` ("NAME" or "NAME=value") are
 * passed as -D to rpcgen (its cpp pass) and to gcc.
 */
export async function startCXdrPeer(xFile: string, typeNames: string[], options?: { cppDefines?: string[] }): Promise<CXdrPeer> {
  const problem = cToolchainProblem();
  if (problem !== null) throw new Error(problem);
  if (typeNames.length === 0) throw new Error("startCXdrPeer: give at least one type name");
  const seen = new Set<string>();
  for (const n of typeNames) {
    if (!isIdentifier(n)) throw new Error(`startCXdrPeer: ${JSON.stringify(n)} is not a type name`);
    if (seen.has(n)) throw new Error(`startCXdrPeer: type ${n} is listed twice`);
    seen.add(n);
  }
  const cppDefines = checkDefines(options?.cppDefines ?? []);
  const buildDir = await buildPeer(xFile, typeNames, cppDefines);
  const child = spawn(join(buildDir, "peer"), [], { cwd: buildDir, stdio: ["pipe", "pipe", "pipe"] });
  const peer = new Peer(child, buildDir, [...typeNames]);
  await peer.waitForHello();
  return peer;
}

/**
 * The names of the types the system rpcgen generates xdr_ routines for in
 * `xFile` (in header order): handy for building a peer for a whole file.
 */
export async function listRpcgenTypes(xFile: string, options?: { cppDefines?: string[] }): Promise<string[]> {
  const problem = cToolchainProblem();
  if (problem !== null) throw new Error(problem);
  const cppDefines = checkDefines(options?.cppDefines ?? []);
  await mkdir(cacheRoot(), { recursive: true });
  const dir = await mkdtemp(join(cacheRoot(), "list-"));
  const base = specBaseName(xFile);
  const log: string[] = [];
  try {
    await writeFile(join(dir, `${base}.x`), await readFile(xFile, "utf8"));
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C", CPATH: dirname(resolve(xFile)) };
    await runStep("rpcgen -h", findOnPath("rpcgen") ?? "rpcgen", [...cppDefines.map((d) => `-D${d}`), "-h", "-o", `${base}.h`, `${base}.x`], dir, env, log);
    const names = [...parseXdrPrototypes(await readFile(join(dir, `${base}.h`), "utf8")).keys()];
    await rm(dir, { recursive: true, force: true });
    return names;
  } catch (e) {
    await writeFile(join(dir, "build.log"), log.join("\n")).catch(() => undefined);
    throw e;
  }
}
