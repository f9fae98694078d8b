import type * as ast from "./ast.js";
import { aliasTypes, intTypes, libtirpcTypes, predefinedConstants } from "./builtins.js";
import type { DiagnosticBag } from "./diagnostics.js";
import { nameClashes } from "./emit/names.js";
import { Layout } from "./layout.js";
import {
  maxLength,
  resolveAlias,
  type CaseLabel,
  type Constant,
  type Declaration,
  type EnumMember,
  type EnumType,
  type Field,
  type Model,
  type NamedType,
  type Procedure,
  type Program,
  type StructType,
  type Type,
  type TypedefType,
  type UnionArm,
  type UnionType,
  type Version,
} from "./model.js";
import { evaluateExpression, type PassThroughDefine } from "./preprocess.js";
import type { Span } from "./source.js";

/**
 * The checker: resolves names, evaluates constants, checks bounds, unions, program numbers
 * and recursion, and builds the model. It reports every error it finds and goes on; a type
 * that fails to resolve becomes the `error` type, which later checks pass over silently so
 * one mistake yields one message.
 */

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface PendingConstant {
  readonly span: Span | undefined;
  readonly what: string;
  readonly compute: () => bigint | string | undefined;
  /** The names `compute` asks for, in its order (see `settle`). */
  readonly deps: readonly string[];
  state: "pending" | "busy" | "done";
  value: bigint | string | undefined;
}

const int32 = { min: -0x80000000n, max: 0x7fffffffn };
const uint32 = { min: 0n, max: 0xffffffffn };

/** What a file may use besides its own definitions. */
export interface CheckContext {
  /** `%#define`s: C macros the IDL may name as constants (rpcgen leaves them to the C compiler). */
  readonly passThroughDefines?: readonly PassThroughDefine[];
  /** Models of the `.x` files whose generated headers this one `%#include`s. */
  readonly imports?: readonly { readonly module: string; readonly model: Model }[];
}

export function check(
  spec: ast.Specification,
  diagnostics: DiagnosticBag,
  context: CheckContext = {},
): { model: Model; layout: Layout } {
  return new Checker(diagnostics, context).run(spec);
}

class Checker {
  private readonly types = new Map<string, NamedType>();
  private readonly constants = new Map<string, PendingConstant>();
  /** Where each name was first defined, for duplicate reports (one namespace, as in C). */
  private readonly defined = new Map<string, { span: Span | undefined; procedure?: string | undefined }>();
  private readonly builtins = libtirpcTypes();
  private readonly usedBuiltins = new Set<NamedType>();
  /** Types of imported modules, with the module each comes from. */
  private readonly importable = new Map<string, { type: NamedType; module: string }>();
  private readonly usedImports = new Map<string, Set<NamedType>>();
  /** The constants being computed, outermost first: a cycle is reported with its path. */
  private readonly evaluating: string[] = [];
  private settling = false;
  /** The enum each member name belongs to (the first, after a duplicate), as enums are filled. */
  private readonly memberOwners = new Map<string, string>();
  /** Each enum's members by value, for case labels; keyed by the members array, which filling replaces. */
  private readonly membersByValue = new WeakMap<readonly EnumMember[], Map<number, EnumMember>>();

  constructor(
    private readonly diagnostics: DiagnosticBag,
    private readonly context: CheckContext,
  ) {}

  run(spec: ast.Specification): { model: Model; layout: Layout } {
    const known = (name: string, value: bigint | string) =>
      this.constants.set(name, { span: undefined, what: name, compute: () => value, deps: [], state: "done", value });
    for (const { module, model } of this.context.imports ?? []) {
      for (const [name, c] of model.constants) known(name, c.value);
      for (const [name, type] of model.types) if (type.builtin === undefined) this.importable.set(name, { type, module });
    }
    for (const [name, value] of predefinedConstants) known(name, value);
    for (const d of this.context.passThroughDefines ?? []) {
      // Used only where a name is otherwise undefined, and only if C could evaluate it.
      if (this.constants.has(d.name)) continue;
      this.constants.set(d.name, {
        span: undefined,
        what: `macro '${d.name}'`,
        compute: () => this.evaluateC(d),
        deps: d.text.match(/[A-Za-z_]\w*/g) ?? [],
        state: "pending",
        value: undefined,
      });
    }
    const fills: (() => void)[] = [];
    const order: (() => Declaration | undefined)[] = [];
    for (const def of spec.definitions) this.declare(def, fills, order);
    for (const fill of fills) fill();
    const programs: Program[] = [];
    const declarations: Declaration[] = [];
    for (const next of order) {
      const d = next();
      if (d === undefined) continue;
      declarations.push(d);
      if (d.kind === "program") programs.push(d.program);
    }
    this.checkProgramNumbers(programs);

    const layout = new Layout([...this.types.values(), ...this.usedBuiltins]);
    this.reportInfinite(layout);

    const constants = new Map<string, Constant>();
    for (const [name, c] of this.constants) {
      const value = this.constantValue(name);
      if (value !== undefined && c.span !== undefined) constants.set(name, { name, value, span: c.span });
    }
    const builtins: Declaration[] = [...this.usedBuiltins].map((type) => ({ kind: "type", type }));
    const model: Model = {
      imports: [...this.usedImports].map(([module, types]) => ({ module, types: [...types] })),
      declarations: [...builtins, ...declarations],
      types: new Map([...this.usedBuiltins].map((t) => [t.name, t] as const).concat([...this.types])),
      constants,
      programs,
    };
    // Declarations the generated TypeScript would give one name (emit/names.ts has the rules).
    for (const clash of nameClashes(model)) this.diagnostics.error(clash.span, clash.message);
    return { model, layout };
  }

  // ---- declaring names -------------------------------------------------------------------

  private define(id: ast.Identifier, procedure?: string): boolean {
    const first = this.defined.get(id.name);
    if (first !== undefined) {
      // A procedure may keep its name across versions when it keeps its number.
      if (procedure !== undefined && first.procedure === procedure) return false;
      this.diagnostics.error(id.span, `'${id.name}' is already defined${at(first.span)}`);
      return false;
    }
    this.defined.set(id.name, { span: id.span, procedure });
    return true;
  }

  /** A `%#define`'s value, as the C compiler would see it: other names replaced by their values. */
  private evaluateC(d: PassThroughDefine): bigint | undefined {
    let failed = false;
    const expr = d.text.replace(/[A-Za-z_]\w*/g, (name) => {
      const value = this.constants.has(name) ? this.constantValue(name) : undefined;
      if (typeof value !== "bigint") failed = true;
      return String(value);
    });
    if (failed) return undefined;
    try {
      return evaluateExpression(expr);
    } catch {
      return undefined;
    }
  }

  private declareConstant(
    id: ast.Identifier,
    what: string,
    compute: () => bigint | string | undefined,
    deps: readonly string[],
  ): void {
    this.constants.set(id.name, { span: id.span, what, compute, deps, state: "pending", value: undefined });
  }

  private declare(def: ast.Definition, fills: (() => void)[], order: (() => Declaration | undefined)[]): void {
    switch (def.kind) {
      case "const": {
        if (!this.define(def.name)) return;
        const v = def.value;
        this.declareConstant(
          def.name,
          `constant '${def.name.name}'`,
          () => (v.kind === "string" ? v.value : this.evaluate(v)),
          v.kind === "name" ? [v.name] : [],
        );
        order.push(() => {
          const value = this.constantValue(def.name.name);
          return value === undefined
            ? undefined
            : { kind: "const", constant: { name: def.name.name, value, span: def.name.span } };
        });
        return;
      }
      case "enum": {
        if (!this.define(def.name)) return;
        const type: Mutable<EnumType> = { kind: "enum", name: def.name.name, span: def.name.span, members: [] };
        this.types.set(type.name, type);
        let previous: string | undefined;
        for (const m of def.members) {
          if (!this.define(m.name)) continue;
          const before = previous;
          this.declareConstant(m.name, `enum member '${m.name.name}'`, () => {
            if (m.value !== undefined) return this.evaluate(m.value);
            // Without a value, C's rule: the previous member plus one, the first 0.
            if (before === undefined) return 0n;
            const prev = this.constantValue(before);
            return typeof prev === "bigint" ? prev + 1n : undefined;
          }, m.value !== undefined ? namesIn(m.value) : before !== undefined ? [before] : []);
          previous = m.name.name;
        }
        fills.push(() => {
          const members = [];
          for (const m of def.members) {
            const value = this.constantValue(m.name.name);
            if (typeof value !== "bigint") continue;
            if (this.inRange(value, int32, m.value?.span ?? m.name.span, `enum value`)) {
              members.push({ name: m.name.name, value: Number(value) });
              if (!this.memberOwners.has(m.name.name)) this.memberOwners.set(m.name.name, type.name);
            }
          }
          type.members = members;
        });
        order.push(() => ({ kind: "type", type }));
        return;
      }
      case "struct": {
        if (!this.define(def.name)) return;
        const type: Mutable<StructType> = { kind: "struct", name: def.name.name, span: def.name.span, fields: [] };
        this.types.set(type.name, type);
        fills.push(() => {
          const fields: Field[] = [];
          const seen = new Map<string, Span>();
          for (const d of def.fields) {
            const field = this.field(d, `in struct '${type.name}'`);
            if (field === undefined) continue;
            const first = seen.get(field.name);
            if (first !== undefined) {
              this.diagnostics.error(field.span, `duplicate field '${field.name}' in struct '${type.name}'${at(first)}`);
              continue;
            }
            seen.set(field.name, field.span!);
            fields.push(field);
          }
          type.fields = fields;
        });
        order.push(() => ({ kind: "type", type }));
        return;
      }
      case "union": {
        if (!this.define(def.name)) return;
        const type: Mutable<UnionType> = {
          kind: "union",
          name: def.name.name,
          span: def.name.span,
          discriminant: { name: "", type: { kind: "error" }, span: undefined },
          arms: [],
          defaultArm: undefined,
        };
        this.types.set(type.name, type);
        fills.push(() => this.fillUnion(type, def));
        order.push(() => ({ kind: "type", type }));
        return;
      }
      case "typedef": {
        const d = def.declaration;
        if (d.kind === "void") {
          this.diagnostics.error(d.span, "a typedef needs a name: 'void' cannot be declared as a type");
          return;
        }
        // `typedef struct T T;` is C's way of naming a tag; rpcgen (and a TypeScript type) already has T.
        if (d.kind === "plain" && d.type.kind === "named" && d.type.name === d.name.name && d.type.tag !== undefined) {
          if (this.types.get(d.name.name)?.kind === d.type.tag) return;
        }
        if (!this.define(d.name)) return;
        const type: Mutable<TypedefType> = { kind: "typedef", name: d.name.name, span: d.name.span, type: { kind: "error" } };
        this.types.set(type.name, type);
        fills.push(() => {
          type.type = this.field(d, `in typedef '${type.name}'`)?.type ?? { kind: "error" };
        });
        order.push(() => ({ kind: "type", type }));
        return;
      }
      case "program": {
        if (this.define(def.name)) {
          this.declareConstant(def.name, `program '${def.name.name}'`, () => this.evaluate(def.number), namesIn(def.number));
        }
        for (const v of def.versions) {
          if (this.define(v.name)) {
            this.declareConstant(v.name, `version '${v.name.name}'`, () => this.evaluate(v.number), namesIn(v.number));
          }
          for (const p of v.procedures) {
            const number = p.number.kind === "literal" ? String(p.number.value) : p.number.name;
            if (this.define(p.name, number)) {
              this.declareConstant(p.name, `procedure '${p.name.name}'`, () => this.evaluate(p.number), namesIn(p.number));
            }
          }
        }
        order.push(() => this.program(def));
        return;
      }
    }
  }

  // ---- constants -------------------------------------------------------------------------

  private constantValue(name: string): bigint | string | undefined {
    const c = this.constants.get(name);
    if (c === undefined) return undefined;
    if (c.state === "pending" && !this.settling) this.settle(name);
    if (c.state === "done") return c.value;
    if (c.state === "busy") {
      this.reportCycle(name, this.evaluating);
      return undefined;
    }
    c.state = "busy";
    this.evaluating.push(name);
    const value = c.compute();
    this.evaluating.pop();
    if (c.state === "busy") {
      c.state = "done";
      c.value = value;
    }
    return c.value;
  }

  private reportCycle(name: string, path: readonly string[]): void {
    const c = this.constants.get(name)!;
    const chain = [...path.slice(path.indexOf(name)), name];
    const through = chain.length > 2 ? ` (${chain.join(" -> ")})` : "";
    this.diagnostics.error(c.span, `${c.what} is defined in terms of itself${through}`);
    c.state = "done";
    c.value = undefined;
  }

  /**
   * Computes the constants `name` depends on, deepest first, in a loop: a chain of 10^5
   * constants each defined by the next would overflow the stack by recursion. The walk asks
   * for names in the order `compute` does, so a cycle is reported where recursion found it.
   */
  private settle(name: string): void {
    this.settling = true;
    const path: { name: string; next: number }[] = [{ name, next: 0 }];
    const onPath = new Set([name]);
    const closed = new Set<string>();
    while (path.length > 0) {
      const top = path[path.length - 1]!;
      const c = this.constants.get(top.name)!;
      if (top.next < c.deps.length) {
        const dep = c.deps[top.next++]!;
        const d = this.constants.get(dep);
        if (d === undefined || d.state !== "pending") continue;
        if (onPath.has(dep)) {
          this.reportCycle(dep, path.map((p) => p.name));
          closed.add(dep);
          continue;
        }
        path.push({ name: dep, next: 0 });
        onPath.add(dep);
        continue;
      }
      path.pop();
      onPath.delete(top.name);
      // What it depends on is known now: computing it recurses no further. One that closed a
      // cycle is computed all the same, for the errors its computation reports.
      if (closed.has(top.name)) {
        this.evaluating.push(top.name);
        c.compute();
        this.evaluating.pop();
      } else if (c.state === "pending" && path.length > 0) {
        this.constantValue(top.name);
      }
    }
    this.settling = false;
  }

  /** The value of a literal or a constant's name; undefined after an error. */
  private evaluate(v: ast.Value): bigint | undefined {
    if (v.kind === "literal") return v.value;
    if (!this.constants.has(v.name)) {
      if (this.types.has(v.name) || this.builtins.has(v.name) || aliasTypes.has(v.name)) {
        this.diagnostics.error(v.span, `'${v.name}' is a type, not a constant`);
      } else {
        const hint = this.diagnostics.full ? "" : suggest(v.name, this.constants.keys());
        this.diagnostics.error(v.span, `undefined constant '${v.name}'${hint}`);
      }
      return undefined;
    }
    const value = this.constantValue(v.name);
    if (value === undefined && this.constants.get(v.name)!.what.startsWith("macro")) {
      this.diagnostics.error(v.span, `'${v.name}' is a C macro (%#define) whose value is not an integer expression`);
      return undefined;
    }
    if (typeof value === "string") {
      this.diagnostics.error(v.span, `'${v.name}' is a string constant; a number is needed here`);
      return undefined;
    }
    return value;
  }

  private inRange(value: bigint, range: { min: bigint; max: bigint }, span: Span, what: string): boolean {
    if (value >= range.min && value <= range.max) return true;
    this.diagnostics.error(span, `${what} ${value} is out of range [${range.min}, ${range.max}]`);
    return false;
  }

  /** A size or bound: `[n]` needs 1 to 2^32-1, `<n>` 0 to 2^32-1. */
  private bound(v: ast.Value, fixed: boolean): number | undefined {
    const value = this.evaluate(v);
    if (value === undefined) return undefined;
    const min = fixed ? 1n : 0n;
    if (value < min || value > BigInt(maxLength)) {
      const what = fixed ? "fixed size" : "bound";
      this.diagnostics.error(v.span, `${what} ${value} is out of range [${min}, ${maxLength}]`);
      return undefined;
    }
    return Number(value);
  }

  // ---- types -----------------------------------------------------------------------------

  /** The type a type specifier names, before any array or optional shape. */
  private typeSpec(spec: ast.TypeSpec): Type {
    if (spec.kind === "base") {
      switch (spec.name) {
        case "hyper":
        case "unsigned hyper":
          return { kind: "hyper", signed: spec.name === "hyper" };
        case "float":
        case "double":
        case "bool":
          return { kind: spec.name };
        case "quadruple":
          this.diagnostics.error(spec.span, "quadruple (128-bit floating point) is not supported: no XDR library implements it");
          return { kind: "error" };
        case "string":
        case "opaque":
          return { kind: "error" }; // shaped by the caller
        default:
          return intTypes[spec.name]!;
      }
    }
    const named = this.types.get(spec.name);
    if (named !== undefined) {
      if (spec.tag !== undefined && spec.tag !== named.kind) {
        const a = named.kind === "enum" ? "an" : "a";
        this.diagnostics.error(spec.span, `'${spec.name}' is ${a} ${named.kind}, not ${spec.tag === "enum" ? "an" : "a"} ${spec.tag}`);
        return { kind: "error" };
      }
      return { kind: "named", target: named };
    }
    const imported = this.importable.get(spec.name);
    if (imported !== undefined && (spec.tag === undefined || spec.tag === imported.type.kind)) {
      let used = this.usedImports.get(imported.module);
      if (used === undefined) this.usedImports.set(imported.module, (used = new Set()));
      used.add(imported.type);
      return { kind: "named", target: imported.type };
    }
    if (spec.tag === undefined) {
      const alias = aliasTypes.get(spec.name);
      if (alias !== undefined) return alias;
    }
    const builtin = this.builtins.get(spec.name);
    if (builtin !== undefined && (spec.tag === undefined || spec.tag === builtin.kind)) {
      this.usedBuiltins.add(builtin);
      return { kind: "named", target: builtin };
    }
    if (this.constants.has(spec.name)) {
      this.diagnostics.error(spec.span, `'${spec.name}' is a constant, not a type`);
      return { kind: "error" };
    }
    const kind = spec.tag ?? "type";
    const candidates = () => [...this.types.keys(), ...typeKeywords, ...aliasTypes.keys(), ...this.builtins.keys()];
    const hint = this.diagnostics.full ? "" : suggest(spec.name, candidates());
    this.diagnostics.error(spec.span, `undefined ${kind} '${spec.name}'${hint}`);
    return { kind: "error" };
  }

  /** A declaration's name and type; undefined for `void` and after errors that leave no field. */
  private field(d: ast.Declaration, where: string, allowVoid = false): Field | undefined {
    if (d.kind === "void") {
      if (!allowVoid) this.diagnostics.error(d.span, `'void' is only allowed as a union arm (${where})`);
      return undefined;
    }
    const name = d.name.name;
    const span = d.name.span;
    const bound = d.bound === undefined ? undefined : this.bound(d.bound, d.kind === "fixed");
    const badBound = d.bound !== undefined && bound === undefined;
    if (d.type.kind === "base" && (d.type.name === "string" || d.type.name === "opaque")) {
      const base = d.type.name;
      if (base === "string" && d.kind === "variable") return { name, span, type: { kind: "string", max: bound } };
      if (base === "opaque" && d.kind === "variable") return { name, span, type: { kind: "varOpaque", max: bound } };
      if (base === "opaque" && d.kind === "fixed") {
        return { name, span, type: badBound ? { kind: "error" } : { kind: "fixedOpaque", size: bound! } };
      }
      const fix =
        base === "string"
          ? `a string must be variable-length: 'string ${name}<>' or 'string ${name}<N>'`
          : `opaque data needs a size: 'opaque ${name}[N]' or 'opaque ${name}<N>'`;
      this.diagnostics.error(d.type.span, `'${name}' ${where}: ${fix}`);
      return { name, span, type: { kind: "error" } };
    }
    const element = this.typeSpec(d.type);
    switch (d.kind) {
      case "plain":
        return { name, span, type: element };
      case "optional":
        return { name, span, type: { kind: "optional", element } };
      case "fixed":
        return { name, span, type: badBound ? { kind: "error" } : { kind: "fixedArray", size: bound!, element } };
      case "variable":
        return { name, span, type: { kind: "varArray", max: bound, element } };
    }
  }

  private fillUnion(type: Mutable<UnionType>, def: ast.UnionDefinition): void {
    const where = `in union '${type.name}'`;
    const discriminant = def.discriminant;
    const expected = `the discriminant of union '${type.name}' must be int, unsigned int, an enum or bool`;
    let field: Field;
    if (discriminant.kind === "void") {
      this.diagnostics.error(discriminant.span, `the discriminant of union '${type.name}' cannot be void`);
      field = { name: "", type: { kind: "error" }, span: discriminant.span };
    } else if (discriminant.kind !== "plain") {
      // Still check the arms: an error here should not hide theirs.
      this.diagnostics.error(discriminant.type.span, `${expected}, not ${describeShape(discriminant)}`);
      field = { name: discriminant.name.name, type: { kind: "error" }, span: discriminant.name.span };
    } else {
      field = this.field(discriminant, where)!;
    }
    type.discriminant = field;
    const resolved = resolveAlias(field.type);
    const ok =
      resolved.kind === "int" ||
      resolved.kind === "bool" ||
      resolved.kind === "error" ||
      (resolved.kind === "named" && resolved.target.kind === "enum");
    if (!ok) {
      this.diagnostics.error(discriminant.span, `${expected}, not ${describeType(field.type)}`);
    }
    const labelsOk = ok && resolved.kind !== "error";
    const seenValues = new Map<number, Span>();
    const seenNames = new Map<string, Span | undefined>([[field.name, field.span]]);
    const arms: UnionArm[] = [];
    const armField = (d: ast.Declaration): Field | undefined => {
      const f = this.field(d, where, true);
      if (f === undefined) return undefined;
      const first = seenNames.get(f.name);
      if (first !== undefined && f.name === field.name) {
        this.diagnostics.error(f.span, `arm '${f.name}' ${where} has the name of the discriminant`);
      } else if (first !== undefined) {
        this.diagnostics.error(f.span, `duplicate arm name '${f.name}' ${where}${at(first)}`);
      }
      seenNames.set(f.name, f.span);
      return f;
    };
    for (const arm of def.arms) {
      const labels: CaseLabel[] = [];
      for (const v of arm.labels) {
        const label = labelsOk ? this.caseLabel(v, resolved, type.name) : undefined;
        if (label === undefined) continue;
        const first = seenValues.get(label.value);
        if (first !== undefined) {
          this.diagnostics.error(v.span, `case value ${label.value} repeats ${where}${at(first)}`);
          continue;
        }
        seenValues.set(label.value, v.span);
        labels.push(label);
      }
      arms.push({ labels, field: armField(arm.declaration) });
    }
    type.arms = arms;
    if (def.defaultArm !== undefined) type.defaultArm = { field: armField(def.defaultArm) };
  }

  /** Checks that a case label is a value of the discriminant's type. */
  private caseLabel(v: ast.Value, discriminant: Type, union: string): CaseLabel | undefined {
    const value = this.evaluate(v);
    if (value === undefined) return undefined;
    const name = v.kind === "name" ? v.name : undefined;
    const enumOf = name === undefined ? undefined : this.enumOwning(name);
    if (discriminant.kind === "named" && discriminant.target.kind === "enum") {
      const e = discriminant.target;
      if (enumOf !== undefined && enumOf !== e.name) {
        this.diagnostics.error(v.span, `case label '${name}' is a member of enum '${enumOf}', not of '${e.name}' (the discriminant of union '${union}')`);
        return undefined;
      }
      const member = this.memberWithValue(e, value);
      if (member === undefined) {
        this.diagnostics.error(v.span, `case value ${value} is not a value of enum '${e.name}' (the discriminant of union '${union}')`);
        return undefined;
      }
      return { value: Number(value), name: name ?? member.name, enumName: e.name };
    }
    if (discriminant.kind === "bool") {
      if (value !== 0n && value !== 1n) {
        this.diagnostics.error(v.span, `case value ${value} is not a bool (TRUE or FALSE) in union '${union}'`);
        return undefined;
      }
      return { value: Number(value), name, enumName: undefined };
    }
    if (discriminant.kind === "int") {
      const range = { min: BigInt(discriminant.min), max: BigInt(discriminant.max) };
      if (!this.inRange(value, range, v.span, `case value of ${discriminant.cname} discriminant:`)) return undefined;
      return { value: Number(value), name, enumName: enumOf };
    }
    return undefined;
  }

  /** A map, not a search of every enum: a union of 10^4 arms labelled by members asks 10^4 times. */
  private enumOwning(member: string): string | undefined {
    return this.memberOwners.get(member);
  }

  /** The first member of `e` with `value`. */
  private memberWithValue(e: EnumType, value: bigint): EnumMember | undefined {
    let byValue = this.membersByValue.get(e.members);
    if (byValue === undefined) {
      byValue = new Map();
      for (const m of e.members) if (!byValue.has(m.value)) byValue.set(m.value, m);
      this.membersByValue.set(e.members, byValue);
    }
    return value >= int32.min && value <= int32.max ? byValue.get(Number(value)) : undefined;
  }

  /**
   * Reports each cycle of types that have no finite encoding once, at its first field, with
   * the path around it. A type that only contains such a cycle is a follow-on and is not named.
   */
  private reportInfinite(layout: Layout): void {
    const infinite = new Set(layout.infinite());
    const reported = new Set<NamedType>();
    for (const t of this.types.values()) {
      // In declaration order: the first type of a cycle names it.
      // Only a type that can contain itself can be on a cycle; the search is skipped for the rest.
      if (!infinite.has(t) || reported.has(t) || !layout.isRecursive(t)) continue;
      if (this.diagnostics.full) break;
      const cycle = findCycle(t, layout);
      if (cycle === undefined) continue;
      for (const step of cycle) reported.add(step.type);
      const path = [...cycle.map((s) => (s.field ? `${s.type.name}.${s.field.name}` : s.type.name)), t.name].join(" -> ");
      this.diagnostics.error(
        cycle[0]!.field?.span ?? t.span,
        `'${t.name}' contains itself with no way to end (${path}): recursion must go through optional data ('T *x') or a variable-length array ('T x<>')`,
      );
    }
  }

  // ---- programs --------------------------------------------------------------------------

  private number(v: ast.Value, what: string): number | undefined {
    const value = this.evaluate(v);
    if (value === undefined || !this.inRange(value, uint32, v.span, what)) return undefined;
    return Number(value);
  }

  private program(def: ast.ProgramDefinition): Declaration | undefined {
    const number = this.number(def.number, "program number");
    const versions: Version[] = [];
    const versionNumbers = new Map<number, Span>();
    for (const v of def.versions) {
      const vn = this.number(v.number, "version number");
      if (vn !== undefined) {
        const first = versionNumbers.get(vn);
        if (first !== undefined) this.diagnostics.error(v.number.span, `duplicate version number ${vn} in program '${def.name.name}'${at(first)}`);
        versionNumbers.set(vn, v.number.span);
      }
      const procedures: Procedure[] = [];
      const procNumbers = new Map<number, Span>();
      const procNames = new Map<string, Span>();
      for (const p of v.procedures) {
        const pn = this.number(p.number, "procedure number");
        if (pn !== undefined) {
          const first = procNumbers.get(pn);
          if (first !== undefined) this.diagnostics.error(p.number.span, `duplicate procedure number ${pn} in version '${v.name.name}'${at(first)}`);
          procNumbers.set(pn, p.number.span);
        }
        const firstName = procNames.get(p.name.name);
        if (firstName !== undefined) this.diagnostics.error(p.name.span, `duplicate procedure '${p.name.name}' in version '${v.name.name}'${at(firstName)}`);
        procNames.set(p.name.name, p.name.span);
        const voidArg = p.args.find((a) => a.type.kind === "void");
        if (voidArg !== undefined && p.args.length > 1) {
          this.diagnostics.error(voidArg.span, `'void' cannot be one of several arguments of '${p.name.name}'`);
        }
        const named = p.args.filter((a) => a.type.kind !== "void");
        const args = named.map((a) => this.procedureType(a, p.name.name));
        const argNames = named.map((a) => a.name);
        const result = this.procedureType(p.result, p.name.name);
        if (pn !== undefined) procedures.push({ name: p.name.name, number: pn, args, argNames, result, span: p.name.span });
      }
      if (vn !== undefined) versions.push({ name: v.name.name, number: vn, procedures, span: v.name.span });
    }
    if (number === undefined) return undefined;
    return { kind: "program", program: { name: def.name.name, number, versions, span: def.name.span } };
  }

  private procedureType(p: ast.ProcedureType, procedure: string): Type {
    if (p.type.kind === "void") return { kind: "void" };
    const bound = p.bound === undefined ? undefined : this.bound(p.bound, false);
    if (p.type.kind === "base" && p.type.name === "string") {
      if (p.shape === "optional") this.diagnostics.error(p.span, `a string argument of '${procedure}' cannot be optional`);
      return { kind: "string", max: bound };
    }
    if (p.type.kind === "base" && p.type.name === "opaque") {
      this.diagnostics.error(p.span, `opaque is not a valid argument or result type of '${procedure}': declare a typedef (typedef opaque T<N>)`);
      return { kind: "error" };
    }
    if (p.shape === "variable") {
      this.diagnostics.error(p.span, `only a string may have a bound in the arguments or result of '${procedure}': declare a typedef (typedef T name<N>)`);
      return { kind: "error" };
    }
    const element = this.typeSpec(p.type);
    return p.shape === "optional" ? { kind: "optional", element } : element;
  }

  private checkProgramNumbers(programs: Program[]): void {
    const seen = new Map<number, Program>();
    for (const p of programs) {
      const first = seen.get(p.number);
      if (first !== undefined) {
        const hex = `0x${p.number.toString(16).padStart(8, "0")}`;
        this.diagnostics.error(p.span, `duplicate program number ${hex} (${p.number}): '${first.name}' has it${at(first.span)}`);
      }
      seen.set(p.number, p);
    }
  }
}

/** Keywords that begin a type, so that a misspelt one gets a hint (`strng` → `string`). */
const typeKeywords = ["int", "unsigned", "hyper", "float", "double", "bool", "string", "opaque", "char", "short", "long"];

function at(span: Span | undefined): string {
  return span === undefined ? "" : ` (first at ${span.file.path}:${span.line}:${span.col})`;
}

function describeType(t: Type): string {
  switch (t.kind) {
    case "named":
      return `${t.target.kind} '${t.target.name}'`;
    case "int":
      return t.cname;
    case "hyper":
      return t.signed ? "hyper" : "unsigned hyper";
    default:
      return t.kind;
  }
}

/** One step around a cycle of types: the type, and the field (none for a typedef) that leads on. */
interface CycleStep {
  readonly type: NamedType;
  readonly field: Field | undefined;
}

/** A path from `start` back to itself through types it contains in full, each with no finite encoding. */
function findCycle(start: NamedType, layout: Layout): CycleStep[] | undefined {
  // A field leads on to the named types it holds in full: itself, or a fixed array's element.
  const next = (type: Type): NamedType[] => {
    if (layout.min(type) !== Infinity) return [];
    if (type.kind === "named") return [type.target];
    return type.kind === "fixedArray" ? next(type.element) : [];
  };
  const edges = (t: NamedType): { field: Field | undefined; to: NamedType[] }[] => {
    switch (t.kind) {
      case "typedef":
        return [{ field: undefined, to: next(t.type) }];
      case "struct":
        return t.fields.map((f) => ({ field: f, to: next(f.type) }));
      case "union":
        return [...t.arms, ...(t.defaultArm ? [t.defaultArm] : [])].flatMap((a) => (a.field ? [{ field: a.field, to: next(a.field.type) }] : []));
      case "enum":
        return [];
    }
  };
  const visited = new Set<NamedType>([start]);
  // Depth first, in a loop (a cycle may run through 10^5 types); each frame's step is the
  // field it is exploring, so the frames are the path.
  const moves = (t: NamedType) => edges(t).flatMap(({ field, to }) => to.map((u) => ({ field, to: u })));
  const frames = [{ type: start, moves: moves(start), i: 0 }];
  while (frames.length > 0) {
    const f = frames[frames.length - 1]!;
    if (f.i === f.moves.length) {
      frames.pop();
      continue;
    }
    const { to } = f.moves[f.i++]!;
    if (to === start) return frames.map((g) => ({ type: g.type, field: g.moves[g.i - 1]!.field }));
    if (visited.has(to)) continue;
    visited.add(to);
    frames.push({ type: to, moves: moves(to), i: 0 });
  }
  return undefined;
}

/** The constant a value names, if it names one. */
function namesIn(v: ast.Value): string[] {
  return v.kind === "name" ? [v.name] : [];
}

/** What a declaration that is not a single value declares, for messages. */
function describeShape(d: { readonly kind: ast.Declaration["kind"]; readonly type: ast.TypeSpec }): string {
  if (d.type.kind === "base" && d.type.name === "string") return "a string";
  if (d.type.kind === "base" && d.type.name === "opaque") return "opaque data";
  return d.kind === "optional" ? "optional data" : "an array";
}

const maxSuggestedLength = 64;

/** " (did you mean 'x'?)" for the closest name within a small edit distance. */
export function suggest(name: string, candidates: Iterable<string>): string {
  // A distance costs the product of the lengths: a name of a megabyte gets no suggestion.
  if (name.length > maxSuggestedLength) return "";
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const c of candidates) {
    // Lengths that differ by the distance already found cannot do better.
    if (Math.abs(c.length - name.length) >= bestDistance) continue;
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best === undefined ? "" : ` (did you mean '${best}'?)`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
