import type { NamedType, Procedure, Type } from "./model.js";

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

export class Layout {
  private readonly minimum = new Map<NamedType, number>();
  private readonly maximum = new Map<NamedType, number | undefined>();
  private readonly visiting = new Set<NamedType>();

  /**
   * @param types every named type the sizes may reach. Minimum sizes are found as a fixed
   * point from "infinite" downwards, so a type left infinite can never be finished: it
   * contains itself other than through optional data or a variable-length array.
   */
  constructor(types: Iterable<NamedType>) {
    const all = reachable(types);
    for (const t of all) this.minimum.set(t, Infinity);
    for (let changed = true; changed; ) {
      changed = false;
      for (const t of all) {
        const min = this.minOfNamed(t);
        if (min < this.minimum.get(t)!) {
          this.minimum.set(t, min);
          changed = true;
        }
      }
    }
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

  private minOfNamed(t: NamedType): number {
    switch (t.kind) {
      case "enum":
        return 4;
      case "typedef":
        return this.min(t.type);
      case "struct":
        return t.fields.reduce((sum, f) => sum + this.min(f.type), 0);
      case "union": {
        const arms = t.arms.map((a) => (a.field ? this.min(a.field.type) : 0));
        if (t.defaultArm) arms.push(t.defaultArm.field ? this.min(t.defaultArm.field.type) : 0);
        return 4 + Math.min(...arms);
      }
    }
  }

  /** A type met again while its own maximum is being found is recursive: unbounded. */
  private maxOfNamed(t: NamedType): number | undefined {
    if (this.maximum.has(t)) return this.maximum.get(t);
    if (this.visiting.has(t)) return undefined;
    this.visiting.add(t);
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
        const arms = t.arms.map((a) => (a.field ? this.max(a.field.type) : 0));
        if (t.defaultArm) arms.push(t.defaultArm.field ? this.max(t.defaultArm.field.type) : 0);
        max = arms.includes(undefined) ? undefined : cap(4 + Math.max(...(arms as number[])));
        break;
      }
    }
    this.visiting.delete(t);
    this.maximum.set(t, max);
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

/** The named types `roots` reach, themselves included (imported modules' types among them). */
function reachable(roots: Iterable<NamedType>): NamedType[] {
  const seen = new Set<NamedType>();
  const visitType = (t: Type): void => {
    if (t.kind === "named") visitNamed(t.target);
    else if (t.kind === "fixedArray" || t.kind === "varArray" || t.kind === "optional") visitType(t.element);
  };
  const visitNamed = (t: NamedType): void => {
    if (seen.has(t)) return;
    seen.add(t);
    if (t.kind === "typedef") visitType(t.type);
    else if (t.kind === "struct") t.fields.forEach((f) => visitType(f.type));
    else if (t.kind === "union") {
      visitType(t.discriminant.type);
      for (const a of t.arms) if (a.field) visitType(a.field.type);
      if (t.defaultArm?.field) visitType(t.defaultArm.field.type);
    }
  };
  for (const t of roots) visitNamed(t);
  return [...seen];
}
