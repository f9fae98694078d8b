import { basename } from "node:path";
import { StructureKind, VariableDeclarationKind } from "ts-morph";
import type { CaseLabel, Constant, EnumType, NamedType, StructType, Type, UnionType } from "../model.js";
import type { Span } from "../source.js";
import { docBlock, leadingComment, withComment } from "./comments.js";
import { enumNameFunction, propertyKey, safeName } from "./names.js";
import type { ModulePrinter, Statement } from "./printer.js";

/**
 * TypeScript types for the model: the same in every marshaling mode.
 */

/** Resolves a named type to the name this module writes for it (importing it if it lives elsewhere). */
export class TypeScope {
  constructor(
    readonly printer: ModulePrinter,
    private readonly importedFrom: ReadonlyMap<NamedType, string>,
  ) {}

  /** The local name of a named type, or of its codec with `suffix` "Codec". */
  nameOf(t: NamedType, suffix = "", typeOnly = suffix === ""): string {
    const name = safeName(t.name) + suffix;
    const module = this.importedFrom.get(t);
    return module === undefined ? name : this.printer.import(name, module, typeOnly);
  }
}

export function tsType(t: Type, scope: TypeScope): string {
  switch (t.kind) {
    case "int":
    case "float":
    case "double":
      return "number";
    case "hyper":
      return "bigint";
    case "bool":
      return "boolean";
    case "void":
      return "void";
    case "string":
      return "string";
    case "fixedOpaque":
    case "varOpaque":
      return "Uint8Array";
    case "fixedArray":
    case "varArray": {
      const element = tsType(t.element, scope);
      return t.element.kind === "optional" ? `(${element})[]` : `${element}[]`;
    }
    case "optional":
      return `${tsType(t.element, scope)} | null`;
    case "named":
      return scope.nameOf(t.target);
    case "error":
      return "never";
  }
}

/** "struct fattr, nfs_prot.x line 90": where a declaration came from. */
export function origin(what: string, span: Span | undefined, builtin?: string): string {
  if (builtin !== undefined) return `${what}: ${builtin.replace(/^libtirpc: /, "built in, as libtirpc's ")}`;
  return span === undefined ? what : `${what}, ${basename(span.file.path)} line ${span.line}`;
}

/** The doc comment of a declaration: the `.x` file's own comment before it, then where it comes from. */
export function documented(what: string, span: Span | undefined, builtin?: string): string {
  return withComment(origin(what, span, builtin), span);
}

export function constStatement(c: Constant): Statement {
  const value =
    typeof c.value === "string"
      ? JSON.stringify(c.value)
      : c.value >= BigInt(Number.MIN_SAFE_INTEGER) && c.value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? String(c.value)
        : `${c.value}n`;
  return {
    kind: StructureKind.VariableStatement,
    docs: [documented(`const ${c.name}`, c.span)],
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    declarations: [{ name: safeName(c.name), initializer: value }],
  };
}

export function namedTypeStatements(t: NamedType, scope: TypeScope): Statement[] {
  const name = safeName(t.name);
  switch (t.kind) {
    case "enum":
      return enumStatements(t, name);
    case "struct":
      return [structStatement(t, name, scope)];
    case "union":
      return [
        {
          kind: StructureKind.TypeAlias,
          docs: [documented(`union ${t.name} switch (${describeField(t.discriminant.type, t.discriminant.name)})`, t.span)],
          isExported: true,
          name,
          type: unionType(t, scope),
        },
      ];
    case "typedef":
      return [
        {
          kind: StructureKind.TypeAlias,
          docs: [documented(`typedef ${t.name}`, t.span, t.builtin)],
          isExported: true,
          name,
          type: tsType(t.type, scope),
        },
      ];
  }
}

/**
 * An enum is a frozen object of its members plus the union of their values, so `E.M` reads as
 * in C, and a function from a value back to its member's name, for messages and logs.
 */
function enumStatements(t: EnumType, name: string): Statement[] {
  const members = t.members.map((m) => `${propertyKey(m.name)}: ${m.value}`).join(",\n");
  // A value two members share is named by the first, as a C switch on it would need.
  const named = new Map<number, string>();
  for (const m of t.members) if (!named.has(m.value)) named.set(m.value, m.name);
  const cases = [...named].map(([value, member]) => `case ${value}:\nreturn ${JSON.stringify(member)};`).join("\n");
  return [
    {
      kind: StructureKind.VariableStatement,
      docs: [documented(`enum ${t.name}`, t.span)],
      isExported: true,
      declarationKind: VariableDeclarationKind.Const,
      declarations: [{ name, initializer: `{\n${members}\n} as const` }],
    },
    {
      kind: StructureKind.TypeAlias,
      docs: [`The values of enum ${t.name}.`],
      isExported: true,
      name,
      type: `(typeof ${name})[keyof typeof ${name}]`,
    },
    {
      kind: StructureKind.Function,
      docs: [
        `The member of enum ${t.name} with this value (the first, if several share it), or \`undefined\`.`,
      ],
      isExported: true,
      name: enumNameFunction(name),
      parameters: [{ name: "value", type: "number" }],
      returnType: `keyof typeof ${name} | undefined`,
      statements: [`switch (value) {\n${cases}\ndefault:\nreturn undefined;\n}`],
    },
  ];
}

function structStatement(t: StructType, name: string, scope: TypeScope): Statement {
  return {
    kind: StructureKind.Interface,
    docs: [documented(`struct ${t.name}`, t.span, t.builtin)],
    isExported: true,
    name,
    properties: t.fields.map((f) => {
      const comment = leadingComment(f.span);
      return { name: f.name, type: tsType(f.type, scope), docs: comment === undefined ? [] : [comment] };
    }),
  };
}

/**
 * A discriminated union on the discriminant's field name; each arm's value sits under the
 * arm's declared name, and a `void` arm carries the discriminant alone. The default arm
 * takes every discriminant value the cases do not name.
 */
function unionType(t: UnionType, scope: TypeScope): string {
  const d = t.discriminant.name;
  const member = (labels: string, field: UnionType["arms"][number]["field"]) => {
    if (field === undefined) return `{ ${d}: ${labels} }`;
    const comment = leadingComment(field.span, true);
    const doc = comment === undefined ? "" : `${docBlock(comment)} `;
    return `{ ${d}: ${labels}; ${doc}${field.name}: ${tsType(field.type, scope)} }`;
  };
  const arms = t.arms.map((a) => member(a.labels.map((l) => labelType(l, t, scope)).join(" | "), a.field));
  if (t.defaultArm !== undefined) {
    const named = t.arms.flatMap((a) => a.labels.map((l) => labelType(l, t, scope)));
    const all = tsType(t.discriminant.type, scope);
    arms.push(member(named.length === 0 ? all : `Exclude<${all}, ${named.join(" | ")}>`, t.defaultArm.field));
  }
  return arms.map((a) => `\n| ${a}`).join("");
}

function labelType(l: CaseLabel, t: UnionType, scope: TypeScope): string {
  if (l.enumName !== undefined && l.name !== undefined) {
    const e = findEnum(t, l.enumName);
    if (e !== undefined) return `typeof ${scope.nameOf(e, "", false)}.${l.name}`;
  }
  const d = t.discriminant.type;
  if (resolvesToBool(d)) return l.value === 0 ? "false" : "true";
  return String(l.value);
}

function findEnum(t: UnionType, name: string): EnumType | undefined {
  let d: Type = t.discriminant.type;
  while (d.kind === "named") {
    if (d.target.kind === "enum") return d.target.name === name ? d.target : undefined;
    if (d.target.kind !== "typedef") return undefined;
    d = d.target.type;
  }
  return undefined;
}

function resolvesToBool(t: Type): boolean {
  while (t.kind === "named" && t.target.kind === "typedef") t = t.target.type;
  return t.kind === "bool";
}

/** The IDL spelling of a simple type, for doc comments. */
function describeField(t: Type, name: string): string {
  switch (t.kind) {
    case "int":
      return `${t.cname} ${name}`;
    case "bool":
      return `bool ${name}`;
    case "named":
      return `${t.target.name} ${name}`;
    default:
      return name;
  }
}
