import type { EnumType, NamedType, Procedure, Type, UnionType } from "./model.js";

/**
 * Static layout: the smallest and largest XDR encoding of every type, in bytes. The runtime
 * sizes shared-memory argument slots from the maximum (LRPC's A-stacks), and the codecs
 * skip per-field checks where a size is fixed.
 */

export interface Size {
  readonly min: number;
  /** Undefined when unbounded: `<>` without a bound, a recursive type, or past 2^53 bytes. */
  readonly max: number | undefined;
}

export function isFixed(size: Size): boolean {
  return size.max === size.min;
}

const pad4 = (n: number) => n + ((4 - (n % 4)) % 4);

/** max as a safe integer, or unbounded. */
const cap = (n: number | undefined) => (n === undefined || n > Number.MAX_SAFE_INTEGER ? undefined : n);

/**
 * Plans inline what they can, but not without end: past this depth of nesting (inlined
 * structs, typedefs, array elements, optional data, union arms) a named type is marshaled by
 * a call to its own codec. Each codec's code then grows with its own definition, not with
 * everything it contains: 200 fixed-size structs nested one in the next otherwise generate
 * code cubic in the depth (gigabytes for prettier).
 */
export const maxInlineDepth = 8;
/** A nested fixed-size struct is inlined only if it encodes in at most this many bytes. */
export const maxInlineBytes = 1024;
/** Runs of scalars are cut after this many items, so per-run work stays small. */
const maxRunItems = 256;

export class Layout {
  private readonly minimum = new Map<NamedType, number>();
  private readonly maximum = new Map<NamedType, number | undefined>();
  private readonly recursiveTypes = new Set<NamedType>();
  /** A typedef that only renames another named type, resolved to the type it names at last. */
  private readonly aliases = new Map<NamedType, NamedType>();

  /**
   * @param types every named type the sizes may reach. Minimum sizes are found as a fixed
   * point from "infinite" downwards, so a type left infinite can never be finished: it
   * contains itself other than through optional data or a variable-length array.
   * Everything is computed in loops over the strongly connected components, children first,
   * never by recursion per type: a chain of 10^5 typedefs must not overflow the stack.
   */
  constructor(types: Iterable<NamedType>) {
    const all = reachable(types);
    const components = stronglyConnected(all);
    for (const c of components) {
      if (c.length > 1 || children(c[0]!).includes(c[0]!)) for (const t of c) this.recursiveTypes.add(t);
    }
    const order = components.flat();

    // Minimums: a worklist, children first; a type whose minimum falls wakes those that contain it.
    const parents = new Map<NamedType, NamedType[]>();
    for (const t of all) {
      this.minimum.set(t, Infinity);
      for (const c of children(t)) {
        let ps = parents.get(c);
        if (ps === undefined) parents.set(c, (ps = []));
        ps.push(t);
      }
    }
    const queue = [...order];
    const queued = new Set(order);
    for (let i = 0; i < queue.length; i++) {
      const t = queue[i]!;
      queued.delete(t);
      const min = this.minOfNamed(t);
      if (min >= this.minimum.get(t)!) continue;
      this.minimum.set(t, min);
      for (const p of parents.get(t) ?? []) {
        if (!queued.has(p)) {
          queued.add(p);
          queue.push(p);
        }
      }
    }

    // Maximums: a type that can contain itself, or contains such a type, is unbounded.
    for (const t of order) this.maximum.set(t, this.recursiveTypes.has(t) ? undefined : this.maxOfNamed(t));
  }

  /** Whether `t` can contain itself (through optional data or a variable-length array). */
  isRecursive(t: NamedType): boolean {
    return this.recursiveTypes.has(t);
  }

  /** `t`, or for a typedef that only renames another named type, the type at the end of the chain. */
  resolveAlias(t: NamedType): NamedType {
    const chain: NamedType[] = [];
    let u = t;
    while (u.kind === "typedef" && u.type.kind === "named" && !this.recursiveTypes.has(u)) {
      const known = this.aliases.get(u);
      if (known !== undefined) {
        u = known;
        break;
      }
      chain.push(u);
      u = u.type.target;
    }
    for (const c of chain) this.aliases.set(c, u);
    return u;
  }

  /** Named types that have no finite encoding. */
  infinite(): NamedType[] {
    return [...this.minimum].filter(([, min]) => min === Infinity).map(([t]) => t);
  }

  sizeOf(type: Type): Size {
    return { min: this.min(type), max: this.max(type) };
  }

  sizeOfNamed(type: NamedType): Size {
    return { min: this.minimum.get(type) ?? this.minOfNamed(type), max: this.maxOfNamed(type) };
  }

  /** A procedure's arguments encode one after the other (RFC 5531 §12, rpcgen -N). */
  argumentsSize(proc: Procedure): Size {
    return this.sum(proc.args.map((t) => this.sizeOf(t)));
  }

  resultSize(proc: Procedure): Size {
    return this.sizeOf(proc.result);
  }

  min(type: Type): number {
    switch (type.kind) {
      case "int":
      case "float":
      case "bool":
        return 4;
      case "hyper":
      case "double":
        return 8;
      case "void":
      case "error":
        return 0;
      case "string":
      case "varOpaque":
      case "varArray":
      case "optional":
        return 4;
      case "fixedOpaque":
        return pad4(type.size);
      case "fixedArray":
        return type.size * this.min(type.element);
      case "named":
        return this.minimum.get(type.target) ?? this.minOfNamed(type.target);
    }
  }

  max(type: Type): number | undefined {
    switch (type.kind) {
      case "string":
      case "varOpaque":
        return type.max === undefined ? undefined : cap(4 + pad4(type.max));
      case "varArray": {
        const element = this.max(type.element);
        return type.max === undefined || element === undefined ? undefined : cap(4 + type.max * element);
      }
      case "fixedArray": {
        const element = this.max(type.element);
        return element === undefined ? undefined : cap(type.size * element);
      }
      case "optional": {
        const element = this.max(type.element);
        return element === undefined ? undefined : cap(4 + element);
      }
      case "named":
        return this.maxOfNamed(type.target);
      default:
        return this.min(type);
    }
  }

  /** The plan of a value of `type` (a named type's plan expands its own definition). */
  planOf(type: Type, depth = 0): Plan {
    const b = new PlanBuilder(this, depth);
    const shape = b.visit(type, [], false);
    return b.finish(type, shape, this.sizeOf(type));
  }

  /** The plan of a named type's own codec: its definition, never a call to itself. */
  planOfNamed(t: NamedType): Plan {
    const b = new PlanBuilder(this, 0);
    const shape = t.kind === "typedef" ? b.visit(t.type, [], false) : b.visit({ kind: "named", target: t }, [], true);
    return b.finish({ kind: "named", target: t }, shape, this.sizeOfNamed(t));
  }

  /** A procedure's arguments: one after the other, as a tuple (no tuple for a single argument). */
  planOfArguments(types: readonly Type[]): Plan {
    if (types.length === 1) return this.planOf(types[0]!);
    const b = new PlanBuilder(this, 0);
    const items = types.map((t, i) => b.visit(t, [{ access: `[${i}]`, label: `arg${i + 1}` }]));
    return b.finish(undefined, { kind: "tuple", items }, this.sum(types.map((t) => this.sizeOf(t))));
  }

  private minOfNamed(t: NamedType): number {
    switch (t.kind) {
      case "enum":
        return 4;
      case "typedef":
        return this.min(t.type);
      case "struct":
        return t.fields.reduce((sum, f) => sum + this.min(f.type), 0);
      case "union": {
        // No arms only after an error (the grammar needs one): the discriminant alone.
        // A loop, not Math.min(...arms): a union may have more arms than a call has arguments.
        let min = t.arms.length === 0 && !t.defaultArm ? 0 : Infinity;
        for (const a of t.arms) min = Math.min(min, a.field ? this.min(a.field.type) : 0);
        if (t.defaultArm) min = Math.min(min, t.defaultArm.field ? this.min(t.defaultArm.field.type) : 0);
        return 4 + min;
      }
    }
  }

  /**
   * From the maximums of the types `t` contains, which the constructor finds first; a type
   * that can contain itself is unbounded (the constructor never asks for one).
   */
  private maxOfNamed(t: NamedType): number | undefined {
    if (this.maximum.has(t)) return this.maximum.get(t);
    if (this.recursiveTypes.has(t)) return undefined;
    let max: number | undefined;
    switch (t.kind) {
      case "enum":
        max = 4;
        break;
      case "typedef":
        max = this.max(t.type);
        break;
      case "struct":
        max = this.sum(t.fields.map((f) => ({ min: 0, max: this.max(f.type) }))).max;
        break;
      case "union": {
        let most: number | undefined = 0;
        for (const a of [...t.arms, ...(t.defaultArm ? [t.defaultArm] : [])]) {
          const arm = a.field ? this.max(a.field.type) : 0;
          most = most === undefined || arm === undefined ? undefined : Math.max(most, arm);
        }
        max = most === undefined ? undefined : cap(4 + most);
        break;
      }
    }
    return max;
  }

  private sum(sizes: Size[]): Size {
    let min = 0;
    let max: number | undefined = 0;
    for (const s of sizes) {
      min += s.min;
      max = max === undefined || s.max === undefined ? undefined : cap(max + s.max);
    }
    return { min, max };
  }
}

/** The named types a named type's definition mentions directly. */
function children(t: NamedType): NamedType[] {
  const out: NamedType[] = [];
  const visit = (type: Type): void => {
    if (type.kind === "named") out.push(type.target);
    else if (type.kind === "fixedArray" || type.kind === "varArray" || type.kind === "optional") visit(type.element);
  };
  if (t.kind === "typedef") visit(t.type);
  else if (t.kind === "struct") t.fields.forEach((f) => visit(f.type));
  else if (t.kind === "union") {
    visit(t.discriminant.type);
    for (const a of t.arms) if (a.field) visit(a.field.type);
    if (t.defaultArm?.field) visit(t.defaultArm.field.type);
  }
  return out;
}

/** The named types `roots` reach, themselves included (imported modules' types among them). */
function reachable(roots: Iterable<NamedType>): NamedType[] {
  const seen = new Set<NamedType>();
  const stack = [...roots];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    for (const c of children(t)) stack.push(c);
  }
  return [...seen];
}

/**
 * Tarjan's strongly connected components of the containment graph, without recursion.
 * Components come out children first: each after every component it contains.
 */
function stronglyConnected(types: readonly NamedType[]): NamedType[][] {
  const index = new Map<NamedType, number>();
  const low = new Map<NamedType, number>();
  const onStack = new Set<NamedType>();
  const stack: NamedType[] = [];
  const components: NamedType[][] = [];
  for (const root of types) {
    if (index.has(root)) continue;
    // Frames of the depth-first walk: a type and the children it has yet to visit.
    const frames: { t: NamedType; next: NamedType[]; i: number }[] = [];
    const enter = (t: NamedType) => {
      index.set(t, index.size);
      low.set(t, index.get(t)!);
      stack.push(t);
      onStack.add(t);
      frames.push({ t, next: children(t), i: 0 });
    };
    enter(root);
    while (frames.length > 0) {
      const f = frames[frames.length - 1]!;
      if (f.i < f.next.length) {
        const c = f.next[f.i++]!;
        if (!index.has(c)) enter(c);
        else if (onStack.has(c)) low.set(f.t, Math.min(low.get(f.t)!, index.get(c)!));
        continue;
      }
      frames.pop();
      const parent = frames[frames.length - 1];
      if (parent !== undefined) low.set(parent.t, Math.min(low.get(parent.t)!, low.get(f.t)!));
      if (low.get(f.t) !== index.get(f.t)) continue;
      const component: NamedType[] = [];
      let u: NamedType;
      do {
        u = stack.pop()!;
        onStack.delete(u);
        component.push(u);
      } while (u !== f.t);
      components.push(component);
    }
  }
  return components;
}

// ---- plans -------------------------------------------------------------------------------

/**
 * A plan is how a value is marshaled, as a short list of steps: fixed-size runs of scalars
 * at precomputed offsets, byte strings, arrays, optional data, unions, and calls to another
 * type's codec. Fixed-size nested structs are inlined into the runs; everything else named
 * is a call. `emit/codec.ts` is the only code that walks plans; the marshaling strategy
 * decides only where the bytes go.
 */

/** One step from a value to a part of it: how to reach it in JavaScript and how to name it in errors. */
export interface Segment {
  readonly access: string;
  readonly label: string;
}

export type Path = readonly Segment[];

export type Scalar =
  | { readonly kind: "int"; readonly cname: string; readonly min: number; readonly max: number }
  | { readonly kind: "enum"; readonly type: EnumType }
  | { readonly kind: "bool" }
  | { readonly kind: "float" }
  | { readonly kind: "double" }
  | { readonly kind: "hyper"; readonly signed: boolean };

export function scalarSize(s: Scalar): number {
  return s.kind === "double" || s.kind === "hyper" ? 8 : 4;
}

export interface RunItem {
  /** Bytes from the start of the run. */
  readonly offset: number;
  readonly path: Path;
  readonly scalar: Scalar;
}

export interface ArmPlan {
  readonly values: readonly number[];
  /** The arm's field name; undefined for a `void` arm. */
  readonly field: string | undefined;
  readonly plan: Plan | undefined;
}

export type Step =
  | { readonly kind: "run"; readonly size: number; readonly items: readonly RunItem[] }
  | {
      readonly kind: "bytes";
      readonly path: Path;
      readonly type: "fixedOpaque" | "varOpaque" | "string";
      /** The fixed size, or the bound (2^32-1 when unbounded). */
      readonly bound: number;
    }
  | {
      readonly kind: "array";
      readonly path: Path;
      readonly fixed: boolean;
      readonly bound: number;
      readonly element: Plan;
    }
  | { readonly kind: "optional"; readonly path: Path; readonly element: Plan }
  | {
      readonly kind: "union";
      readonly path: Path;
      readonly type: UnionType;
      readonly discriminant: Scalar;
      readonly arms: readonly ArmPlan[];
      readonly defaultArm: ArmPlan | undefined;
    }
  | { readonly kind: "call"; readonly path: Path; readonly type: NamedType; readonly recursive: boolean };

/** How a decoded value is put back together from the values the steps produce. */
export type Shape =
  | { readonly kind: "leaf"; readonly path: Path }
  | { readonly kind: "object"; readonly fields: readonly { readonly name: string; readonly shape: Shape }[] }
  | { readonly kind: "tuple"; readonly items: readonly Shape[] }
  | { readonly kind: "void" };

/** A byte string at `length` may be no longer than the integer at `by` says (see StructType.lengthBounds). */
export interface LengthBound {
  readonly length: Path;
  readonly by: Path;
}

export interface Plan {
  /** The type marshaled; undefined for a procedure's argument tuple. */
  readonly type: Type | undefined;
  readonly steps: readonly Step[];
  readonly bounds: readonly LengthBound[];
  readonly shape: Shape;
  /** Paths of inlined structs (the root first, if it is one): encode checks they are objects. */
  readonly objects: readonly Path[];
  readonly size: Size;
}

const maxLengthBound = 0xffffffff;

class PlanBuilder {
  readonly steps: Step[] = [];
  readonly objects: Path[] = [];
  readonly bounds: LengthBound[] = [];
  private run: RunItem[] = [];
  private runSize = 0;

  /** @param depth how deep in other plans this one is nested. */
  constructor(
    private readonly layout: Layout,
    private readonly depth: number,
  ) {}

  finish(type: Type | undefined, shape: Shape, size: Size): Plan {
    this.flush();
    return { type, steps: this.steps, shape, objects: this.objects, bounds: this.bounds, size };
  }

  /** Adds what encodes `type` found at `path`; returns how to rebuild it. */
  visit(type: Type, path: Path, root = false): Shape {
    switch (type.kind) {
      case "int":
        return this.scalar({ kind: "int", cname: type.cname, min: type.min, max: type.max }, path);
      case "hyper":
        return this.scalar({ kind: "hyper", signed: type.signed }, path);
      case "float":
      case "double":
      case "bool":
        return this.scalar({ kind: type.kind }, path);
      case "void":
      case "error":
        return { kind: "void" };
      case "string":
      case "varOpaque":
        return this.push({ kind: "bytes", path, type: type.kind, bound: type.max ?? maxLengthBound });
      case "fixedOpaque":
        return this.push({ kind: "bytes", path, type: "fixedOpaque", bound: type.size });
      case "fixedArray":
      case "varArray":
        return this.push({
          kind: "array",
          path,
          fixed: type.kind === "fixedArray",
          bound: type.kind === "fixedArray" ? type.size : (type.max ?? maxLengthBound),
          element: this.layout.planOf(type.element, this.depth + path.length + 1),
        });
      case "optional":
        return this.push({ kind: "optional", path, element: this.layout.planOf(type.element, this.depth + path.length + 1) });
      case "named":
        return this.named(type.target, path, root);
    }
  }

  private named(named: NamedType, path: Path, root: boolean): Shape {
    // Renaming typedefs add nothing to the code: go straight to what they name.
    const t = this.layout.resolveAlias(named);
    const recursive = this.layout.isRecursive(t);
    const deep = !root && this.depth + path.length >= maxInlineDepth;
    switch (t.kind) {
      case "enum":
        return this.scalar({ kind: "enum", type: t }, path);
      case "typedef":
        if (recursive || deep) return this.push({ kind: "call", path, type: t, recursive });
        return this.visit(t.type, path, root);
      case "struct":
        if (root || (!recursive && !deep && this.inlinable(t))) {
          this.objects.push(path);
          const at = (name: string) => [...path, { access: `.${name}`, label: name }];
          const fields = t.fields.map((f) => ({ name: f.name, shape: this.visit(f.type, at(f.name)) }));
          for (const b of t.lengthBounds ?? []) this.bounds.push({ length: at(b.field), by: at(b.by) });
          return { kind: "object", fields };
        }
        return this.push({ kind: "call", path, type: t, recursive });
      case "union": {
        if (!root) return this.push({ kind: "call", path, type: t, recursive });
        const arm = (values: number[], field: { name: string; type: Type } | undefined): ArmPlan => ({
          values,
          field: field?.name,
          plan: field === undefined ? undefined : this.layout.planOf(field.type, this.depth + path.length + 1),
        });
        const discriminant = this.layout.planOf(t.discriminant.type, this.depth + path.length + 1);
        const only = discriminant.steps[0];
        if (only?.kind !== "run" || only.items.length !== 1) throw new Error(`union ${t.name}: bad discriminant`);
        return this.push({
          kind: "union",
          path,
          type: t,
          discriminant: only.items[0]!.scalar,
          arms: t.arms.map((a) => arm(a.labels.map((l) => l.value), a.field)),
          defaultArm: t.defaultArm === undefined ? undefined : arm([], t.defaultArm.field),
        });
      }
    }
  }

  private inlinable(t: NamedType): boolean {
    const size = this.layout.sizeOfNamed(t);
    return isFixed(size) && size.min <= maxInlineBytes;
  }

  private scalar(scalar: Scalar, path: Path): Shape {
    if (this.run.length >= maxRunItems) this.flush();
    this.run.push({ offset: this.runSize, path, scalar });
    this.runSize += scalarSize(scalar);
    return { kind: "leaf", path };
  }

  private push(step: Step): Shape {
    this.flush();
    this.steps.push(step);
    return { kind: "leaf", path: step.kind === "run" ? [] : step.path };
  }

  private flush(): void {
    if (this.run.length === 0) return;
    this.steps.push({ kind: "run", size: this.runSize, items: this.run });
    this.run = [];
    this.runSize = 0;
  }
}
