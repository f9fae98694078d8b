import type { Model, Procedure, Version } from "../model.js";
import type { Span } from "../source.js";

/**
 * Naming rules for generated code.
 *
 * IDL identifiers match `[A-Za-z_][A-Za-z0-9_]*`, so they never contain `$`. The names the
 * generator derives from fields or adds at module level contain one: locals derived from
 * fields are `$` + the field path (`$hint_x`); module-level helpers hold a `$` after their
 * first letter (`CalcV1$add$args`, `kind$values`, `own$`), so no local can shadow one;
 * runtime imports that a declared name would shadow are aliased `Name$1`. The other locals
 * are short fixed words (`v`, `w`, `r`, `o`, `dv`, `i`, `n`, `e`), which none of the
 * module-level names a codec refers to can equal (codecs end in `Codec` or hold a `$`; runtime
 * imports are aliased; the globals it uses are reserved below). A name a function has already
 * used gets the next free number, so no local shadows another.
 *
 * The public names keep the IDL's spelling:
 * - constants, types, and program, version and procedure numbers: the IDL name, with a
 *   trailing `_` if TypeScript forbids it as a declaration's name or the generated code
 *   needs it for a built-in (`number` → `number_`, `Promise` → `Promise_`: see `reserved`);
 * - the codec of type `T`: `TCodec` (after the rule above: `number_Codec`);
 * - the name lookup of enum `E`: `EName` (`nfsstat3Name(2)` is `"NFS3ERR_NOENT"`);
 * - a version `CALC_V1`: `CalcV1`, `CalcV1Client`, `CalcV1Handlers` (split on `_`, each part
 *   capitalised; kept as written if its first part begins with a digit or it is all `_`);
 *   each of these steps aside with a trailing `_` for a name the IDL declares (`version V1`
 *   keeps its number constant `V1`; its service description is `V1_`);
 * - a procedure `GET_ATTR`: the method and key `getAttr` (lowerCamelCase, kept as written in
 *   the same cases), with a trailing `_` if a client or handler object already has that
 *   member or TypeScript reads it otherwise (`then` → `then_`, `constructor`, `new`,
 *   `toString`, `rpcCall`, `sync`, ...);
 * - fields, arms and enum members: the IDL name as an own property (`__proto__` too).
 *
 * Two declarations that still end up with the same name (`foo` beside `fooCodec` or an enum's `fooName`, versions
 * `CALC_V1` and `CALC__V1`, procedures `GET_X` and `GET__X`, `number` beside `number_`) are
 * refused with an error at the second, naming the first: names are not on the wire, so either
 * may be renamed.
 */

/** Names a top-level declaration may not take: they get a trailing `_`. */
const reserved = new Set(
  (
    // ECMAScript reserved words, strict-mode and module ones included.
    "break case catch class const continue debugger default delete do else enum export extends false finally for " +
    "function if import in instanceof new null return super switch this throw true try typeof var void while with " +
    "implements interface let package private protected public static yield await " +
    // Bindings strict mode forbids, and `undefined`, which generated code reads.
    "eval arguments undefined " +
    // Types a type alias or interface may not be named.
    "any boolean number string symbol bigint never unknown object " +
    // Globals the generated code refers to, by value or as a type.
    "Array BigInt Exclude Object Promise ReadonlySet Record Set Uint8Array"
  ).split(" "),
);

/**
 * Members a generated client class or a handler object has already — the class's
 * constructor, `RpcClient`'s own members, `Object.prototype`'s — `then`, which would make a
 * client a thenable that `await` calls, and `new`, which an interface reads as a construct
 * signature: a procedure whose method would be one gets a `_`.
 */
const reservedMembers = new Set(
  (
    "constructor then new sync rpcChannel rpcService rpcOptions rpcCall rpcCallSync " +
    "__proto__ __defineGetter__ __defineSetter__ __lookupGetter__ __lookupSetter__ hasOwnProperty isPrototypeOf " +
    "propertyIsEnumerable toLocaleString toString valueOf"
  ).split(" "),
);

/** The name a top-level declaration gets for an IDL identifier. */
export function safeName(name: string): string {
  return reserved.has(name) ? `${name}_` : name;
}

/** `TCodec` for the type `T` (already made safe). */
export function codecName(typeName: string): string {
  return `${typeName}Codec`;
}

/** `EName` for the enum `E` (already made safe): its value → member name lookup. */
export function enumNameFunction(typeName: string): string {
  return `${typeName}Name`;
}

/** `CALC_V1` → `CalcV1`: split on `_`, capitalise each part; kept as written if that is no identifier. */
export function pascalCase(name: string): string {
  const pascal = name
    .split("_")
    .filter((part) => part !== "")
    .map((part) => part[0]!.toUpperCase() + part.slice(1).toLowerCase())
    .join("");
  return /^[A-Za-z]/.test(pascal) ? pascal : name;
}

/** `NFSPROC_GETATTR` → `nfsprocGetattr`. */
export function camelCase(name: string): string {
  const pascal = pascalCase(name);
  return /^[A-Za-z]/.test(pascal) ? pascal[0]!.toLowerCase() + pascal.slice(1) : name;
}

/** A procedure's method on the client, handler key and key in the service description. */
export function memberName(proc: Procedure): string {
  const name = camelCase(proc.name);
  return reservedMembers.has(name) ? `${name}_` : name;
}

/** A property name in an object literal: `__proto__` must be computed, or it sets the prototype. */
export function propertyKey(name: string): string {
  return name === "__proto__" ? `["__proto__"]` : name;
}

/** A top-level name the module declares, with what declares it. */
export interface TopLevelName {
  readonly name: string;
  readonly what: string;
  readonly span: Span | undefined;
}

/** The names of a version's service description, client class and handlers interface. */
export interface VersionNames {
  readonly service: string;
  readonly client: string;
  readonly handlers: string;
}

/** A name clash found before emitting, reported as an error at `span`. */
export interface NameClash {
  readonly span: Span | undefined;
  readonly message: string;
}

/** Every top-level name of one module, the names of its versions, and the clashes among them. */
export interface ModuleNames {
  /** The names the module declares, except the generated helpers (which hold a `$`). */
  readonly topLevel: readonly TopLevelName[];
  readonly versions: ReadonlyMap<Version, VersionNames>;
  readonly clashes: readonly NameClash[];
}

const planned = new WeakMap<Model, ModuleNames>();

/** The names of a checked model's module (computed once per model, in one pass). */
export function moduleNames(model: Model): ModuleNames {
  let names = planned.get(model);
  if (names === undefined) planned.set(model, (names = plan(model)));
  return names;
}

function plan(model: Model): ModuleNames {
  const topLevel: TopLevelName[] = [];
  const idl = (kind: string, name: string, span: Span | undefined) => {
    const safe = safeName(name);
    topLevel.push({ name: safe, what: safe === name ? `${kind} '${name}'` : `${kind} '${name}' (written '${safe}')`, span });
  };
  const procedureNames = new Set<string>();
  for (const d of model.declarations) {
    switch (d.kind) {
      case "const":
        idl("constant", d.constant.name, d.constant.span);
        break;
      case "type":
        idl(d.type.kind, d.type.name, d.type.span);
        break;
      case "program":
        idl("program", d.program.name, d.program.span);
        for (const v of d.program.versions) {
          idl("version", v.name, v.span);
          for (const proc of v.procedures) {
            // A procedure keeps its name (and number) across versions: one constant.
            if (procedureNames.has(proc.name)) continue;
            procedureNames.add(proc.name);
            idl("procedure", proc.name, proc.span);
          }
        }
        break;
    }
  }
  // Generated names step aside for the IDL's own: `version V1` keeps the constant V1 and gets
  // the service description V1_.
  const idlNames = new Set(topLevel.map((n) => n.name));
  const aside = (name: string) => (idlNames.has(name) ? `${name}_` : name);
  const versions = new Map<Version, VersionNames>();
  for (const d of model.declarations) {
    if (d.kind === "type") {
      topLevel.push({ name: codecName(safeName(d.type.name)), what: `the codec of ${d.type.kind} '${d.type.name}'`, span: d.type.span });
      if (d.type.kind === "enum") {
        topLevel.push({ name: enumNameFunction(safeName(d.type.name)), what: `the name lookup of enum '${d.type.name}'`, span: d.type.span });
      }
    }
    if (d.kind !== "program") continue;
    for (const v of d.program.versions) {
      const pascal = safeName(pascalCase(v.name));
      const names = { service: aside(pascal), client: aside(`${pascal}Client`), handlers: aside(`${pascal}Handlers`) };
      versions.set(v, names);
      topLevel.push({ name: names.service, what: `the service description of version '${v.name}'`, span: v.span });
      topLevel.push({ name: names.client, what: `the client class of version '${v.name}'`, span: v.span });
      topLevel.push({ name: names.handlers, what: `the handlers interface of version '${v.name}'`, span: v.span });
    }
  }
  return { topLevel, versions, clashes: clashesOf(model, topLevel) };
}

/** The clashes the checker reports as errors. */
export function nameClashes(model: Model): readonly NameClash[] {
  return moduleNames(model).clashes;
}

/**
 * Every pair of declarations the rules above still give the same TypeScript name: the
 * top-level names of the module, and the methods of each version.
 */
function clashesOf(model: Model, topLevel: readonly TopLevelName[]): NameClash[] {
  const clashes: NameClash[] = [];
  const where = (span: Span | undefined) => (span === undefined ? "" : ` (at ${span.file.path}:${span.line}:${span.col})`);
  const taken = new Map<string, TopLevelName>();
  for (const n of topLevel) {
    const first = taken.get(n.name);
    if (first === undefined) taken.set(n.name, n);
    else {
      clashes.push({
        span: n.span ?? first.span,
        message: `${n.what} and ${first.what}${where(first.span)} would both be named '${n.name}' in TypeScript; rename one of them`,
      });
    }
  }
  for (const p of model.programs) {
    for (const v of p.versions) {
      const members = new Map<string, Procedure>();
      for (const proc of v.procedures) {
        const member = memberName(proc);
        const first = members.get(member);
        if (first === undefined) members.set(member, proc);
        else {
          clashes.push({
            span: proc.span,
            message:
              `procedures '${proc.name}' and '${first.name}'${where(first.span)} of version '${v.name}' ` +
              `would both be the method '${member}'; rename one of them`,
          });
        }
      }
    }
  }
  return clashes;
}
