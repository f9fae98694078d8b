import fc from "fast-check";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { codecName, moduleNames, safeName } from "../compiler/emit/names.js";
import { modes, type Mode } from "../compiler/emit/module.js";
import { resolveAlias, type Model, type NamedType, type Type } from "../compiler/model.js";
import { connect, createServer, fromXdr, toXdr, XdrError, type ServiceDescription, type XdrCodec } from "../runtime/index.js";
import { arbitraryOf, arbitraryOfNamed } from "./arbitrary.js";
import { compile, generateAllModes, type GeneratedModule } from "./generated.js";
import { removeDir, repoRoot, runCli, tempDir, typeCheck } from "./support.js";

/**
 * Generated code is right for every name the compiler accepts (emit/names.ts has the rules):
 * the smallest reproductions of names that once decoded wrong or broke the module (the
 * golden case hostile-names), the clashes the compiler refuses, and a property over random
 * `.x` files whose names come from a pool of hostile ones — the compiler either refuses one
 * with `file:line:col: error:` for a name clash, or its modules type-check under strict in
 * every mode, load, keep every procedure, and round-trip exact values with identical bytes.
 */

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s/g, ""), "hex"));

// ---- the golden reproductions -------------------------------------------------------------

const hostile = join(repoRoot, "test/golden/hostile-names/input.x");
let loaded: Record<Mode, GeneratedModule> | undefined;
async function hostileModules(): Promise<Record<Mode, GeneratedModule>> {
  if (loaded === undefined) {
    const all = await generateAllModes([hostile]);
    loaded = { classic: all.classic.get("input")!, synthesized: all.synthesized.get("input")!, descriptor: all.descriptor.get("input")! };
  }
  return loaded;
}
const codec = (m: GeneratedModule, name: string) => m[name] as XdrCodec<unknown>;

describe("names that once decoded wrong", () => {
  it.each(modes)("%s: a discriminant named v2 is not confused with the arm's value", async (mode) => {
    const m = (await hostileModules())[mode];
    const decoded = fromXdr(codec(m, "uCodec"), bytes("00000001 00000005"));
    expect(decoded).toStrictEqual({ v2: 1, q: 5 });
    expect(fromXdr(codec(m, "uCodec"), bytes("00000007"))).toStrictEqual({ v2: 7 });
    expect(hex(toXdr(codec(m, "uCodec"), { v2: 1, q: 5 }))).toBe("0000000100000005");
  });

  it.each(modes)("%s: a field named __proto__ is an own property, decoded and encoded", async (mode) => {
    const m = (await hostileModules())[mode];
    const c = codec(m, "proto_fieldCodec");
    const decoded = fromXdr(c, bytes("00000003 00000004")) as Record<string, unknown>;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.keys(decoded)).toEqual(["__proto__", "constructor"]);
    expect(Object.getOwnPropertyDescriptor(decoded, "__proto__")?.value).toBe(3);
    expect(hex(toXdr(c, decoded))).toBe("0000000300000004");
    // Encode reads only an own __proto__: one found through the prototype chain is no field.
    const inherited = Object.assign(Object.create(decoded) as object, { constructor: 4 });
    expect(() => toXdr(c, inherited)).toThrow(XdrError);
    expect(() => toXdr(c, { constructor: 4 })).toThrow(/__proto__/);
  });

  it.each(modes)("%s: a list linked through __proto__ keeps every link as an own property", async (mode) => {
    const m = (await hostileModules())[mode];
    const c = codec(m, "proto_listCodec");
    const wire = "00000001 00000001 00000002 00000001 00000003 00000000";
    const decoded = fromXdr(c, bytes(wire)) as Record<string, unknown>;
    let node: Record<string, unknown> | null = decoded;
    const values: unknown[] = [];
    while (node !== null) {
      expect(Object.getPrototypeOf(node)).toBe(Object.prototype);
      expect(Object.keys(node)).toEqual(["value", "__proto__"]);
      values.push(node.value);
      node = Object.getOwnPropertyDescriptor(node, "__proto__")!.value as Record<string, unknown> | null;
    }
    expect(values).toEqual([1, 2, 3]);
    expect(hex(toXdr(c, decoded))).toBe(wire.replace(/\s/g, ""));
  });

  it.each(modes)("%s: enum members and union arms named __proto__, then, constructor", async (mode) => {
    const m = (await hostileModules())[mode];
    const e = m.proto_enum as Record<string, number>;
    expect(Object.keys(e)).toEqual(["__proto__", "toString"]);
    expect(Object.getPrototypeOf(e)).toBe(Object.prototype);
    const c = codec(m, "proto_unionCodec");
    const a = fromXdr(c, bytes("00000001 00000009")) as object;
    expect(Object.keys(a)).toEqual(["__proto__", "then"]);
    expect(Object.getPrototypeOf(a)).toBe(Object.prototype);
    const b = fromXdr(c, bytes("00000002 00000005 00000006")) as Record<string, unknown>;
    expect(Object.keys(b)).toEqual(["__proto__", "constructor"]);
    expect(Object.keys(b.constructor as object)).toEqual(["__proto__", "constructor"]);
    expect(hex(toXdr(c, b))).toBe("000000020000000500000006");
  });

  it.each(modes)("%s: IDL names that are globals or runtime names neither break the module nor shadow", async (mode) => {
    const m = (await hostileModules())[mode];
    expect(m.BigInt_).toBe(7);
    expect(m.RpcClient).toBe(0x20000777);
    // version V1 keeps its number constant; its service description steps aside.
    expect(m.V1).toBe(1);
    expect((m.V1_ as ServiceDescription).name).toBe("V1");
    expect(typeof m.V1Client).toBe("function");
    expect(Object.keys(m.Set_ as object)).toEqual(["A", "C"]);
    const holder = codec(m, "holderCodec");
    const value = [1, 3, 1, 1, 3, 3, 1];
    expect(fromXdr(holder, toXdr(holder, value))).toEqual(value);
    expect(() => toXdr(holder, [1, 2, 1, 1, 1, 1, 1])).toThrow(/enum Set/);
    expect(() => fromXdr(codec(m, "Promise_Codec"), bytes("00"))).toThrow(XdrError);
  });

  it.each(modes)("%s: procedures named THEN, RPC_CALL, CONSTRUCTOR, TO_STRING, NEW are served and called", async (mode) => {
    const m = (await hostileModules())[mode];
    const service = m.XdrWriter as ServiceDescription;
    expect(Object.keys(service.procedures)).toEqual(["then_", "rpcCall_", "constructor_", "toString_", "new_"]);
    const handlers = {
      new_: (x: number) => x + 4,
      then_: (x: number) => x + 1,
      rpcCall_: (x: number) => x + 2,
      constructor_: (x: number) => x + 3,
      toString_: (r: { at: number }) => ({ at: r.at * 2 }),
    };
    const server = createServer().register(service, handlers as never);
    const channel = await connect({ transport: "inproc", server });
    try {
      const Client = m.XdrWriterClient as new (c: typeof channel) => Record<string, (...a: unknown[]) => Promise<unknown>>;
      const client = new Client(channel);
      // Not a thenable: awaiting a client gives the client.
      expect("then" in client).toBe(false);
      expect(await Promise.resolve(client)).toBe(client);
      expect(await client.then_!(1)).toBe(2);
      expect(await client.rpcCall_!(1)).toBe(3);
      expect(await client.constructor_!(1)).toBe(4);
      expect(await client.toString_!({ at: 21 })).toStrictEqual({ at: 42 });
      expect(await client.new_!(1)).toBe(5);
    } finally {
      await channel.close();
    }
  });
});

describe("names across modules", () => {
  it("a module importing types from a header's module: imports never shadow its own names", async () => {
    const dir = join(repoRoot, ".tmp/names-import");
    mkdirSync(dir, { recursive: true });
    try {
      // bar is a list, so its codec is called, not inlined.
      writeFileSync(join(dir, "other.x"), "struct bar { int __proto__; bar *next; };\nenum Set { A = 1, C = 3 };\ntypedef int XdrCodec;\n");
      // Its own names are those of the imported codecs, of runtime symbols, and of globals.
      writeFileSync(
        join(dir, "main.x"),
        '%#include "other.h"\nconst barCodec = 5;\nconst Set_Codec = 6;\ntypedef bar XdrReader;\n' +
          "struct uses { bar b; Set s; XdrCodec c; XdrReader r; };\n",
      );
      for (const mode of modes) {
        for (const file of ["other.x", "main.x"]) {
          const run = await runCli([file, "--mode", mode, "--out", mode], dir);
          expect(run, `${file} in ${mode}`).toEqual({ status: 0, stdout: "", stderr: "" });
        }
      }
      const text = readFileSync(join(dir, "synthesized/main.ts"), "utf8");
      for (const alias of ["barCodec as barCodec$1", "XdrCodec as XdrCodec$1", "type XdrReader as XdrReader$1"]) {
        expect(text).toContain(alias);
      }
      await typeCheck(dir, modes.map((mode) => `${mode}/main.ts`));
      const value = { b: { ["__proto__"]: 1, next: { ["__proto__"]: 7, next: null } }, s: 3, c: 4, r: { ["__proto__"]: 2, next: null } };
      const wire = "00000001 00000001 00000007 00000000 00000003 00000004 00000002 00000000";
      for (const mode of modes) {
        const m = (await import(join(dir, mode, "main.ts"))) as GeneratedModule;
        expect(m.barCodec).toBe(5);
        expect(m.Set_Codec).toBe(6);
        const c = codec(m, "usesCodec");
        expect(hex(toXdr(c, value))).toBe(wire.replace(/\s/g, ""));
        const back = fromXdr(c, bytes(wire)) as Record<string, Record<string, unknown>>;
        checkShape({ kind: "named", target: compile(join(dir, "main.x")).model.types.get("uses")! }, back, "uses");
        expect(same(back, value)).toBe(true);
      }
    } finally {
      removeDir(dir);
    }
  });
});

// ---- clashes the compiler refuses -------------------------------------------------------------

async function check(source: string): Promise<{ status: number; stderr: string }> {
  const dir = tempDir("names");
  try {
    writeFileSync(join(dir, "clash.x"), source);
    const run = await runCli(["--check", "clash.x"], dir);
    return { status: run.status, stderr: run.stderr };
  } finally {
    removeDir(dir);
  }
}

describe("names that would clash are refused with file:line:col", () => {
  it.each([
    ["a type and its codec's name", "struct foo { int a; };\nconst fooCodec = 1;\n", "clash.x:1:8: error: the codec of struct 'foo' and constant 'fooCodec' (at clash.x:2:7) would both be named 'fooCodec'"],
    ["an enum and its name lookup", "typedef int colorName;\nenum color { RED = 0 };\n", "clash.x:2:6: error: the name lookup of enum 'color' and typedef 'colorName' (at clash.x:1:13) would both be named 'colorName'"],
    [
      "a version's service description stepping aside onto another name",
      "const V1_ = 5;\nprogram P { version V1 { int F(int) = 1; } = 1; } = 0x20000001;\n",
      "clash.x:2:21: error: the service description of version 'V1' and constant 'V1_' (at clash.x:1:7) would both be named 'V1_'",
    ],
    [
      "two versions with one PascalCase name",
      "program P { version CALC_V1 { int F(int) = 1; } = 1; version CALC__V1 { int F(int) = 1; } = 2; } = 0x20000001;\n",
      "clash.x:1:62: error: the service description of version 'CALC__V1' and the service description of version 'CALC_V1' (at clash.x:1:21) would both be named 'CalcV1'",
    ],
    [
      "procedures with one lowerCamelCase name",
      "program P { version V { int GET_X(int) = 1; int GET__X(int) = 2; } = 1; } = 0x20000001;\n",
      "clash.x:1:49: error: procedures 'GET__X' and 'GET_X' (at clash.x:1:29) of version 'V' would both be the method 'getX'",
    ],
    ["a reserved name renamed onto another", "const number = 1;\nconst number_ = 2;\n", "clash.x:2:7: error: constant 'number_' and constant 'number' (written 'number_') (at clash.x:1:7) would both be named 'number_'"],
  ])("%s", async (_, source, message) => {
    const run = await check(source);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(message);
  });

  it("a procedure whose method a client already has is renamed, not refused", async () => {
    const run = await check("program P { version V { int THEN(int) = 1; int TO_STRING(int) = 2; int then_(int) = 3; } = 1; } = 0x20000001;\n");
    // then_ is lowerCamelCased to then as THEN is, and both are renamed then_: refused.
    expect(run.stderr).toContain("would both be the method 'then_'");
    const ok = await check("program P { version VERS { int THEN(int) = 1; int TO_STRING(int) = 2; } = 1; } = 0x20000001;\n");
    expect(ok).toEqual({ status: 0, stderr: "" });
  });

  it("a version's generated names step aside for the IDL's own names", async () => {
    const dir = tempDir("names");
    try {
      const source = "typedef int CalcClient;\nprogram P { version CALC { int F(int) = 1; } = 1; version V1 { int G(int) = 1; } = 2; } = 0x20000001;\n";
      writeFileSync(join(dir, "aside.x"), source);
      const run = await runCli(["aside.x", "--out", dir], dir);
      expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
      const text = readFileSync(join(dir, "aside.ts"), "utf8");
      for (const declaration of [
        "export type CalcClient = number;",
        "export const Calc = synthesized.service<CalcHandlers>()({",
        "export class CalcClient_ extends RpcClient {",
        "export interface CalcHandlers {",
        "export const V1 = 2;",
        "export const V1_ = synthesized.service<V1Handlers>()({",
        "export class V1Client extends RpcClient {",
      ]) {
        expect(text).toContain(declaration);
      }
      await typeCheck(dir, ["aside.ts"]);
    } finally {
      removeDir(dir);
    }
  });
});

// ---- the property: random .x files with hostile names -------------------------------------------

/** Words an `.x` file cannot use as a name: the IDL's keywords and what the preprocessor and libtirpc predefine. */
const unusable = new Set(
  (
    "const enum struct union switch case default typedef program version void unsigned int hyper float double " +
    "quadruple bool char short long string opaque TRUE FALSE RPC_HDR RPC_XDR RPC_CLNT RPC_SVC RPCGEN_TS " +
    "MAXNETNAMELEN MAX_NETOBJ_SZ MAX_AUTH_BYTES u_int u_long u_short u_char bool_t int8_t uint8_t u_int8_t int16_t " +
    "uint16_t u_int16_t int32_t uint32_t u_int32_t int64_t uint64_t u_int64_t quad_t u_quad_t rpcprog_t rpcvers_t " +
    "rpcproc_t rpcprot_t rpcport_t netobj des_block netbuf"
  ).split(" "),
);

/** Names the generated code, TypeScript or JavaScript could trip over. */
const pool = (
  // ECMAScript reserved words and strict-mode bindings
  "break catch class continue debugger delete do else export extends false finally for function if import in " +
  "instanceof new null return super this throw true try typeof var while with implements interface let package " +
  "private protected public static yield await eval arguments undefined NaN Infinity globalThis require exports module " +
  // TypeScript's types and the globals generated code uses or might
  "any boolean number symbol bigint never unknown object Array BigInt Exclude Object Promise ReadonlySet Record Set " +
  "Uint8Array Error Map Symbol JSON Math Number String Function DataView " +
  // Object.prototype, thenables, classes
  "__proto__ constructor prototype toString valueOf hasOwnProperty isPrototypeOf then length name " +
  // runtime exports
  "XdrCodec XdrReader XdrWriter RpcClient Channel ClientOptions CallOptions CallContext ServiceDescription Descriptor " +
  "invalidValue invalidData within atIndex voidCodec borrowDescriptor gatherDescriptor returnDescriptor " +
  // generated locals, parameters and members
  "v v2 v3 v22 w r d o o2 dv dv2 n n2 i i2 e err at node slow next head tail more own describe encode decode min max " +
  "program_ procedures mode arity args result arg arg1 arg2 options call channel rpcCall rpcChannel rpcService rpcOptions " +
  // names that meet after a suffix or a case conversion
  "foo fooCodec fooName foo_ GET_X GET__X get_x getX V1 Calc CALC CalcClient CalcHandlers CALC_CLIENT _ __ _1 A_B a_b"
)
  .split(" ")
  .filter((n) => !unusable.has(n));

const randomName = fc
  .tuple(fc.constantFrom(..."abcxyzABCXYZ_"), fc.array(fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"), { maxLength: 7 }))
  .map(([first, rest]) => first + rest.join(""))
  .filter((n) => !unusable.has(n));

/** Procedure names whose lowerCamelCase is a member a client or handler has, or that TypeScript reads otherwise. */
const memberHazards = (
  "NEW THEN CONSTRUCTOR TO_STRING VALUE_OF HAS_OWN_PROPERTY RPC_CALL RPC_CHANNEL RPC_SERVICE RPC_OPTIONS " +
  "GET SET STATIC READONLY ASYNC DECLARE ABSTRACT __PROTO__ _ _1 GET_X GET__X"
).split(" ");

/** The names that broke generated code before, drawn most often. */
const core = "__proto__ constructor then toString new v v2 o dv i n e r w d err at node next BigInt Array Set Object Promise undefined eval class".split(" ");

/** Names that meet after a case conversion, a suffix or the reserved-word `_`: some files are refused. */
const family = "GET_X GET__X get_x Get_X getX foo fooCodec foo_ Calc CALC calc_ CalcClient CalcHandlers V1 V1_ number number_ then_".split(" ");

const nameArb = fc.oneof(
  { arbitrary: fc.constantFrom(...core), weight: 3 },
  { arbitrary: fc.constantFrom(...family), weight: 1 },
  { arbitrary: fc.constantFrom(...pool), weight: 3 },
  { arbitrary: randomName, weight: 1 },
);

/** A field's type, spelt around its name; `named` are the types declared so far. */
function fieldArb(named: readonly string[], self: string | undefined): fc.Arbitrary<(name: string) => string> {
  const plain = ["int", "unsigned int", "hyper", "unsigned hyper", "bool", "float", "double", "short", "u_char"];
  const forms: fc.Arbitrary<(name: string) => string>[] = [
    fc.constantFrom(...plain).map((t) => (n: string) => `${t} ${n}`),
    fc.constantFrom((n: string) => `string ${n}<8>`, (n: string) => `opaque ${n}<5>`, (n: string) => `opaque ${n}[3]`),
    fc.constantFrom((n: string) => `int ${n}<3>`, (n: string) => `hyper ${n}[2]`, (n: string) => `int *${n}`),
  ];
  if (named.length > 0) {
    forms.push(
      fc.tuple(fc.constantFrom(...named), fc.constantFrom("", "*", "<2>", "[2]")).map(([t, shape]) => (n: string) =>
        shape === "*" ? `${t} *${n}` : `${t} ${n}${shape}`,
      ),
    );
  }
  if (self !== undefined) forms.push(fc.constantFrom((n: string) => `${self} *${n}`, (n: string) => `${self} ${n}<2>`));
  return fc.oneof(...forms);
}

interface Generated {
  readonly text: string;
}

/** One random `.x` file: declarations whose names come from `nameArb`, then a program. */
const fileArb: fc.Arbitrary<Generated> = fc
  .record({
    globals: fc.uniqueArray(nameArb, { minLength: 24, maxLength: 24 }),
    kinds: fc.array(fc.constantFrom("const", "enum", "struct", "union", "typedef", "struct", "union"), { minLength: 2, maxLength: 6 }),
    locals: fc.array(fc.uniqueArray(nameArb, { minLength: 5, maxLength: 5 }), { minLength: 6, maxLength: 6 }),
    choices: fc.array(fc.nat({ max: 1000 }), { minLength: 64, maxLength: 64 }),
    fieldSeeds: fc.array(fc.integer(), { minLength: 40, maxLength: 40 }),
    // Discriminants named as the generator names its locals, most of the time.
    discriminants: fc.array(
      fc.oneof({ arbitrary: fc.constantFrom("v2", "v2", "v3", "v", "o", "dv", "n", "i", "e", "at"), weight: 3 }, { arbitrary: nameArb, weight: 1 }),
      { minLength: 6, maxLength: 6 },
    ),
    versions: fc.integer({ min: 1, max: 2 }),
    procedures: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 2 }),
    hazards: fc.shuffledSubarray(memberHazards, { minLength: 8, maxLength: 8 }),
  })
  .map(({ globals, kinds, locals, discriminants, choices, fieldSeeds, versions, procedures, hazards }) => {
    let g = 0;
    let c = 0;
    let f = 0;
    let h = 0;
    const used = new Set(globals);
    const global = () => globals[g++]!;
    const pick = <T,>(xs: readonly T[]): T => xs[choices[c++ % choices.length]! % xs.length]!;
    const field = (named: string[], self: string | undefined, name: string) =>
      fc.sample(fieldArb(named, self), { seed: fieldSeeds[f++ % fieldSeeds.length]!, numRuns: 1 })[0]!(name);
    const out: string[] = [];
    const named: string[] = [];
    const enums: { name: string; members: string[] }[] = [];
    kinds.forEach((kind, k) => {
      const names = locals[k]!;
      const name = global();
      switch (kind) {
        case "const":
          out.push(`const ${name} = ${pick([0, 1, 2, 7, 0x7fffffff])};`);
          return;
        case "enum": {
          const members = [global(), global()];
          out.push(`enum ${name} { ${members[0]} = 1, ${members[1]} = ${pick([2, 3, -4])} };`);
          enums.push({ name, members });
          break;
        }
        case "struct": {
          const n = 1 + pick([0, 1, 2, 3]);
          const fields = names.slice(0, n).map((x, i) => field(named, i === n - 1 ? name : undefined, x));
          out.push(`struct ${name} {\n${fields.map((x) => `    ${x};`).join("\n")}\n};`);
          break;
        }
        case "union": {
          const arms = names.filter((x) => x !== discriminants[k]);
          const disc = discriminants[k]!;
          const e = enums.length > 0 ? pick([undefined, ...enums]) : undefined;
          const arm = (x: string) => (pick([0, 1, 2, 3]) === 0 ? "void" : field(named, undefined, x));
          if (e !== undefined) {
            out.push(`union ${name} switch (${e.name} ${disc}) {\ncase ${e.members[0]}:\n    ${arm(arms[0]!)};\ndefault:\n    ${arm(arms[1]!)};\n};`);
          } else if (pick([0, 1, 2]) === 0) {
            out.push(`union ${name} switch (bool ${disc}) {\ncase TRUE:\n    ${arm(arms[0]!)};\ncase FALSE:\n    ${arm(arms[1]!)};\n};`);
          } else {
            const more = pick([0, 1]) === 0 ? `case 2:\ncase 3:\n    ${arm(arms[1]!)};\n` : "";
            const dflt = pick([0, 1]) === 0 ? `default:\n    ${arm(arms[2]!)};\n` : "";
            out.push(`union ${name} switch (int ${disc}) {\ncase 1:\n    ${arm(arms[0]!)};\n${more}${dflt}};`);
          }
          break;
        }
        case "typedef":
          out.push(`typedef ${field(named, undefined, name)};`);
          break;
      }
      named.push(name);
    });
    const argTypes = ["int", "hyper", "bool", "string<16>", ...named];
    const versionText: string[] = [];
    for (let v = 0; v < versions; v++) {
      const procs: string[] = [];
      for (let p = 0; p < procedures[v]!; p++) {
        const arity = pick([0, 1, 1, 2]);
        const args = arity === 0 ? "void" : Array.from({ length: arity }, () => pick(argTypes)).join(", ");
        // Mostly a name a client or handler object already has, or TypeScript reads otherwise.
        const hazard = hazards[h++];
        const name = hazard !== undefined && pick([0, 1, 2]) !== 0 && !used.has(hazard) ? hazard : global();
        used.add(name);
        procs.push(`        ${pick(["void", ...argTypes])} ${name}(${args}) = ${p + 1};`);
      }
      versionText.push(`    version ${global()} {\n${procs.join("\n")}\n    } = ${v + 1};`);
    }
    out.push(`program ${global()} {\n${versionText.join("\n")}\n} = 0x20000${pick(["100", "200", "777"])};`);
    return { text: `${out.join("\n\n")}\n` };
  });

/** Checks that `value` decoded for `type` has exactly the IDL's own properties, in order, on plain objects. */
function checkShape(type: Type, value: unknown, path: string): void {
  const t = resolveAlias(type);
  if (t.kind === "optional") {
    if (value !== null) checkShape(t.element, value, path);
  } else if (t.kind === "fixedArray" || t.kind === "varArray") {
    (value as unknown[]).forEach((x, i) => checkShape(t.element, x, `${path}[${i}]`));
  } else if (t.kind === "named" && (t.target.kind === "struct" || t.target.kind === "union")) {
    const target = t.target;
    const object = value as Record<string, unknown>;
    if (Object.getPrototypeOf(object) !== Object.prototype) throw new Error(`${path}: not a plain object`);
    const own = (k: string) => Object.getOwnPropertyDescriptor(object, k)?.value;
    let fields: { name: string; type: Type }[];
    if (target.kind === "struct") fields = [...target.fields];
    else {
      const d = target.discriminant;
      const disc = own(d.name) as number | boolean;
      const n = typeof disc === "boolean" ? Number(disc) : disc;
      const chosen = target.arms.find((a) => a.labels.some((l) => l.value === n)) ?? target.defaultArm;
      const arm = chosen?.field;
      fields = [d, ...(arm === undefined || arm.type.kind === "void" ? [] : [arm])];
    }
    const keys = Reflect.ownKeys(object);
    const expected = fields.map((x) => x.name);
    if (JSON.stringify(keys) !== JSON.stringify(expected)) throw new Error(`${path}: own keys ${JSON.stringify(keys)}, expected ${JSON.stringify(expected)}`);
    for (const x of fields) checkShape(x.type, own(x.name), `${path}.${x.name}`);
  }
}

/** Deep equality on own properties only (a `__proto__` field included), Object.is on scalars. */
function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(a, b) === 0;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Reflect.ownKeys(a);
  const kb = Reflect.ownKeys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => {
    const da = Object.getOwnPropertyDescriptor(a, k);
    const db = Object.getOwnPropertyDescriptor(b, k);
    return da !== undefined && db !== undefined && same(da.value, db.value);
  });
}

const VALUES = 4;
const FILES = 24;

interface Case {
  readonly seed: number;
  readonly index: number;
  readonly dir: string;
  readonly text: string;
  refused?: string;
}

const runRoot = join(repoRoot, ".tmp/names", `${process.pid}`);
afterAll(() => removeDir(runRoot));

/** Named types a module declares itself (imports and built-ins have their codecs elsewhere or are tested elsewhere). */
function ownTypes(model: Model): NamedType[] {
  return model.declarations.flatMap((d) => (d.kind === "type" && d.type.builtin === undefined ? [d.type] : []));
}

async function exercise(c: Case, model: Model, modules: Record<Mode, GeneratedModule>): Promise<void> {
  const where = `seed ${c.seed}, file ${c.index} (${join(c.dir, "input.x")}):\n${c.text}`;
  const fail = (message: string): never => {
    throw new Error(`${message}\n${where}`);
  };
  for (const t of ownTypes(model)) {
    const name = codecName(safeName(t.name));
    const codecs = {} as Record<Mode, XdrCodec<unknown>>;
    for (const mode of modes) {
      const found = modules[mode][name];
      if (typeof found !== "object" || found === null) fail(`${mode}: no codec ${name} for ${t.kind} ${t.name}`);
      codecs[mode] = found as XdrCodec<unknown>;
    }
    for (const v of fc.sample(arbitraryOfNamed(t), { seed: c.seed + c.index, numRuns: VALUES })) {
      const wire = {} as Record<Mode, string>;
      for (const mode of modes) wire[mode] = hex(toXdr(codecs[mode], v));
      if (wire.synthesized !== wire.classic || wire.descriptor !== wire.classic) fail(`${t.name}: bytes differ across modes: ${JSON.stringify(wire)}`);
      for (const mode of modes) {
        const back = fromXdr(codecs[mode], bytes(wire.classic));
        try {
          checkShape({ kind: "named", target: t }, back, t.name);
        } catch (e) {
          fail(`${mode}: ${(e as Error).message}`);
        }
        if (!same(back, v)) fail(`${mode}: ${t.name} decoded to a different value`);
      }
    }
  }
  for (const p of model.programs) {
    for (const v of p.versions) {
      const service = moduleNames(model).versions.get(v)!.service;
      const clientName = moduleNames(model).versions.get(v)!.client;
      for (const mode of modes) {
        const description = modules[mode][service] as ServiceDescription | undefined;
        if (description === undefined) fail(`${mode}: no service description ${service}`);
        const keys = Object.keys(description!.procedures);
        if (keys.length !== v.procedures.length) fail(`${mode}: ${service} has ${keys.length} procedures, the IDL ${v.procedures.length}`);
        const calls: { key: string; args: unknown[]; result: unknown; type: Type }[] = [];
        const handlers: Record<string, (...a: unknown[]) => unknown> = {};
        for (const proc of v.procedures) {
          const key = keys.find((k) => description!.procedures[k]!.number === proc.number);
          if (key === undefined) fail(`${mode}: ${service} lost procedure ${proc.name}`);
          const seed = c.seed + proc.number;
          const args = proc.args.map((a, i) => fc.sample(arbitraryOf(a), { seed: seed + i, numRuns: 1 })[0]);
          const result = proc.result.kind === "void" ? undefined : fc.sample(arbitraryOf(proc.result), { seed, numRuns: 1 })[0];
          calls.push({ key: key!, args, result, type: proc.result });
          handlers[key!] = (...got: unknown[]) => {
            if (!same(got.slice(0, args.length), args)) throw new Error(`handler ${key} got other arguments`);
            return result;
          };
        }
        const Client = modules[mode][clientName] as new (channel: unknown) => Record<string, unknown>;
        if (typeof Client !== "function") fail(`${mode}: no client class ${clientName}`);
        const server = createServer().register(description!, handlers as never);
        const channel = await connect({ transport: "inproc", server });
        try {
          const client = new Client(channel);
          if ("then" in client) fail(`${mode}: ${service}Client is a thenable`);
          for (const call of calls) {
            const method = client[call.key];
            if (typeof method !== "function") fail(`${mode}: ${service}Client has no method ${call.key}`);
            const got: unknown = await (method as (...a: unknown[]) => Promise<unknown>).apply(client, call.args);
            if (!same(got, call.result)) fail(`${mode}: ${service}Client.${call.key} returned a different value`);
            checkShape(call.type, got, call.key);
          }
        } finally {
          await channel.close();
        }
      }
    }
  }
}

/**
 * A module that type-checks only if each version's handlers interface is exactly what the
 * runtime requires of handlers (`HandlersOf`), and its client class has one method per
 * procedure under the description's keys (an interface reads `new(...)` as a construct
 * signature, a class `constructor(...)` as its constructor).
 */
function typeChecks(model: Model): string {
  const names = moduleNames(model);
  const lines = [
    `import type { HandlersOf, RpcClient } from "@rpcgen-ts/runtime";`,
    `import type * as m from "./input.js";`,
    `type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;`,
  ];
  for (const p of model.programs) {
    for (const v of p.versions) {
      const { service, client, handlers } = names.versions.get(v)!;
      lines.push(
        `export const ${handlers}: Same<m.${handlers}, HandlersOf<typeof m.${service}>> = true;`,
        `export const ${client}: Same<Exclude<keyof m.${client}, keyof RpcClient | "sync">, keyof (typeof m.${service})["procedures"]> = true;`,
        `export const ${client}$sync: Same<keyof m.${client}["sync"], keyof (typeof m.${service})["procedures"]> = true;`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

describe("random .x files with hostile names", () => {
  // A fixed seed, so a run repeats what the last one did, and a fresh one, printed on failure.
  const seeds = [0x5eed, Number(process.env.NAMES_SEED ?? Math.floor(Math.random() * 0x7fffffff))];

  it(`are refused for a name clash, or type-check, load and round-trip in every mode (seeds ${seeds.join(", ")})`, async () => {
    const cases: Case[] = [];
    for (const seed of seeds) {
      fc.sample(fileArb, { seed, numRuns: FILES }).forEach((g, index) => {
        cases.push({ seed, index, dir: join(runRoot, `${seed}-${index}`), text: g.text });
      });
    }
    const files: string[] = [];
    for (const c of cases) {
      mkdirSync(c.dir, { recursive: true });
      writeFileSync(join(c.dir, "input.x"), c.text);
      for (const mode of modes) {
        const run = await runCli(["input.x", "--mode", mode, "--out", mode], c.dir);
        if (run.status !== 0) {
          const errors = run.stderr.split("\n").filter((l) => / error: /.test(l));
          const clash = (l: string) => /^input\.x:\d+:\d+: error: .* would both be (named|the method) /.test(l);
          expect(run.status, `seed ${c.seed}, file ${c.index}:\n${c.text}\n${run.stderr}`).toBe(1);
          expect(errors.length > 0 && errors.every(clash), `seed ${c.seed}, file ${c.index}: refused, not for a name clash:\n${c.text}\n${run.stderr}`).toBe(true);
          c.refused = errors[0];
          break;
        }
        files.push(join(c.dir, mode, "input.ts"));
      }
      if (c.refused === undefined) {
        for (const mode of modes) {
          writeFileSync(join(c.dir, mode, "check.ts"), typeChecks(compile(join(c.dir, "input.x")).model));
          files.push(join(c.dir, mode, "check.ts"));
        }
      }
    }
    const accepted = cases.filter((c) => c.refused === undefined);
    // The property says little if most files are refused: the pool is tuned so most are not.
    expect(accepted.length, `only ${accepted.length} of ${cases.length} accepted (seeds ${seeds.join(", ")})`).toBeGreaterThanOrEqual(cases.length / 3);

    // One tsc run over every module of every accepted file.
    await typeCheck(runRoot, files.map((f) => f.slice(runRoot.length + 1))).catch((e: Error) => {
      // The files tsc complains about, with their sources: the run's directory is removed.
      const named = cases.filter((c) => e.message.includes(`${c.seed}-${c.index}/`)).slice(0, 3);
      const sources = named.map((c) => `seed ${c.seed}, file ${c.index}:\n${c.text}`).join("\n");
      throw new Error(`seeds ${seeds.join(", ")}: ${e.message.slice(0, 4000)}\n${sources}`);
    });

    for (const c of accepted) {
      const modules = {} as Record<Mode, GeneratedModule>;
      for (const mode of modes) {
        try {
          modules[mode] = (await import(join(c.dir, mode, "input.ts"))) as GeneratedModule;
        } catch (e) {
          throw new Error(`${mode}: does not load: ${(e as Error).message}\nseed ${c.seed}, file ${c.index}:\n${c.text}`);
        }
      }
      await exercise(c, compile(join(c.dir, "input.x")).model, modules);
    }
  }, 120_000);
});
