import type { Path, Plan, Scalar, Shape, Step } from "../layout.js";
import type { NamedType } from "../model.js";
import { propertyKey } from "./names.js";
import type { RunValue, Strategy } from "./strategy.js";
import { tsType, type TypeScope } from "./types.js";

/**
 * The one walker of plans. It validates every value (encode) and every datum (decode),
 * reports errors with the path inside the value, and asks the strategy only where the
 * bytes of a run go. The same walk serves named types and procedure arguments/results.
 */

/**
 * Per-function code generation state: fresh local names. Every name is new in the function
 * (`$v`, `$v2`, ... and a field `v2` then gets `$v22`), so no local shadows another.
 */
class Fn {
  private readonly next = new Map<string, number>();
  private readonly used = new Set<string>();

  fresh = (base: string): string => {
    const clean = base.replace(/[^A-Za-z0-9_$]/g, "_");
    let n = this.next.get(clean) ?? 1;
    let name = n === 1 ? clean : `${clean}${n}`;
    while (this.used.has(name)) name = `${clean}${++n}`;
    this.next.set(clean, n + 1);
    this.used.add(name);
    return name;
  };
}

/** The module-level helper that reads a field named `__proto__` (emitted by `support`). */
const own = "own$";

const pathKey = (p: Path) => p.map((s) => s.access).join("");
const pathLabel = (p: Path) => p.map((s) => s.label).join(".");
/** Reads `field` of `object`; `__proto__` only as an own property: `.__proto__` finds the prototype too. */
const member = (object: string, field: string) => (field === "__proto__" ? `${own}(${object}, "__proto__")` : `${object}.${field}`);
const access = (root: string, p: Path) =>
  p.reduce((x, s) => (s.access.startsWith(".") ? member(x, s.access.slice(1)) : x + s.access), root);
const localFor = (fn: Fn, p: Path) => fn.fresh(p.length === 0 ? "$v" : `$${p.map((s) => s.label).join("_")}`);

/** A struct that is a linked-list node: its own plan without the link, and the link's field. */
interface ListPlan {
  readonly node: Plan;
  readonly field: string;
  readonly link: Path;
}

function listOf(plan: Plan): ListPlan | undefined {
  const type = plan.type;
  if (type?.kind !== "named" || type.target.kind !== "struct") return undefined;
  const last = plan.steps.at(-1);
  if (last?.kind !== "optional" || last.path.length !== 1 || plan.objects.length !== 1) return undefined;
  const only = last.element.steps[0];
  if (last.element.steps.length !== 1 || only?.kind !== "call" || only.type !== type.target) return undefined;
  return { node: { ...plan, steps: plan.steps.slice(0, -1) }, field: last.path[0]!.label, link: last.path };
}

/**
 * Whether the walker checks a decoded scalar: bools, enums and rpcgen's narrow ints (char,
 * short, …) are; any bits are a valid int, unsigned int, hyper, float or double.
 */
const hasDatumCheck = (s: Scalar): boolean =>
  s.kind === "bool" || s.kind === "enum" || (s.kind === "int" && !((s.min === -0x80000000 && s.max === 0x7fffffff) || (s.min === 0 && s.max === 0xffffffff)));

/** The location a step's runtime errors need prepended: empty for runs (they sit at the plan's root). */
const locationOf = (s: Step | undefined): string[] => (s === undefined || s.kind === "run" ? [] : s.path.map((seg) => seg.label));

export class CodecWriter {
  /** Enums whose values need a set for membership checks, by enum name. */
  private readonly enumSets = new Map<string, { name: string; values: number[] }>();
  /** Whether some codec reads a field named `__proto__` through `own$`. */
  private ownUsed = false;

  constructor(
    private readonly strategy: Strategy,
    private readonly scope: TypeScope,
    private readonly runtime: string,
  ) {}

  private rt(name: string, typeOnly = false): string {
    return this.scope.printer.import(name, this.runtime, typeOnly);
  }

  /** The type of this mode's codecs: descriptor-mode codecs can describe, and their path needs that. */
  codecType(): string {
    return this.rt(this.strategy.encodeMethod === "describe" ? "DescribingCodec" : "XdrCodec", true);
  }

  /** The object literal of a codec for values of TypeScript type `ts` marshaled by `plan`. */
  codecObject(name: string, plan: Plan, ts: string): string {
    const s = this.strategy;
    const sinkType = this.rt(s.sinkType, true);
    const reader = this.rt("XdrReader", true);
    const encodeBody = this.encodeFunction(plan, ts);
    if (encodeBody.includes(`${own}(`)) this.ownUsed = true;
    const decodeBody = this.decodeFunction(plan, ts);
    const max = plan.size.max === undefined ? "undefined" : String(plan.size.max);
    const encode =
      s.encodeMethod === "encode"
        ? `encode(w: ${sinkType}, v: ${ts}): void {\n${encodeBody}\n}`
        : `encode(w: ${this.rt("XdrWriter", true)}, v: ${ts}): void {\n` +
          // Its own encode per codec: the describe call below stays monomorphic.
          `const d = ${this.rt("borrowDescriptor")}();\n` +
          `try {\nthis.describe(d, v);\n${this.rt("gatherDescriptor")}(d, w);\n} finally {\n${this.rt("returnDescriptor")}(d);\n}\n},\n` +
          `describe(d: ${sinkType}, v: ${ts}): void {\n${encodeBody}\n}`;
    return (
      `{\nname: ${JSON.stringify(name)},\nmin: ${plan.size.min},\nmax: ${max},\n${encode},\n` +
      `decode(r: ${reader}): ${ts} {\n${decodeBody}\n},\n}`
    );
  }

  /** Module-level statements the codecs of this module need (enum value sets, `own$`). */
  support(): string[] {
    const out = [...this.enumSets.entries()].map(
      ([enumName, e]) =>
        `/** The values of enum ${enumName}, for membership checks. */\n` +
        `const ${e.name}: ReadonlySet<number> = new Set([${e.values.join(", ")}]);`,
    );
    if (this.ownUsed) {
      out.push(
        `/** A field named __proto__, read only as an own property: \`.__proto__\` would also find the prototype. */\n` +
          `function ${own}<T extends object, K extends keyof T>(o: T, key: K): T[K] {\n` +
          `return (Object.hasOwn(o, key) ? o[key] : undefined) as T[K];\n}`,
      );
    }
    return out;
  }

  // ---- encode --------------------------------------------------------------------------

  private encodeFunction(plan: Plan, ts: string): string {
    const fn = new Fn();
    fn.fresh("v");
    fn.fresh("w");
    fn.fresh("d");
    const list = listOf(plan);
    if (list !== undefined) return this.encodeList(list, ts, fn).join("\n");
    return this.encodePlan(plan, "v", ts, fn).join("\n");
  }

  /**
   * A linked list (a struct whose last field points to the next node) is marshaled node by
   * node in a loop rather than by recursion, so its length is bounded by the message, not
   * the stack — NFS directory listings run to thousands of entries.
   */
  private encodeList(list: ListPlan, ts: string, fn: Fn): string[] {
    const s = this.strategy;
    const node = fn.fresh("$node");
    const slow = fn.fresh("$slow");
    const next = fn.fresh("$next");
    const i = fn.fresh("i");
    return [
      `let ${node} = v;`,
      // A second pointer at half speed meets the first only if the list runs in a circle.
      `let ${slow} = v;`,
      `for (let ${i} = 0; ; ${i}++) {`,
      `try {`,
      ...this.encodePlan(list.node, node, ts, fn),
      `} catch (err) {`,
      `throw ${i} === 0 ? err : ${this.rt("within")}(err, [\`${list.field}[\${${i}}]\`]);`,
      `}`,
      `const ${next} = ${member(node, list.field)};`,
      `if (${next} === null) {`,
      `${s.sink}.optional(false);`,
      `return;`,
      `}`,
      `if (${next} === undefined) throw ${this.rt("invalidValue")}(${s.encodeAt}, ${JSON.stringify(list.field)}, "optional data (a value or null)", ${next});`,
      `${s.sink}.optional(true);`,
      `${node} = ${next};`,
      `if ((${i} & 1) === 1) ${slow} = ${member(slow, list.field)}!;`,
      `if (${node} === ${slow}) throw ${s.sink}.error(\`the list is cyclic: node \${${i} + 1} is an earlier node again\`);`,
      `}`,
    ];
  }

  private encodePlan(plan: Plan, value: string, ts: string, fn: Fn): string[] {
    const s = this.strategy;
    const code: string[] = [];
    for (const p of plan.objects) {
      const x = access(value, p);
      const what = p.length === 0 ? `struct ${ts}` : "a struct";
      code.push(
        `if (typeof ${x} !== "object" || ${x} === null) throw ${this.rt("invalidValue")}(${s.encodeAt}, ${JSON.stringify(pathLabel(p))}, ${JSON.stringify(what)}, ${x});`,
      );
    }
    for (const b of plan.bounds) {
      const length = `${access(value, b.length)}.length`;
      const by = access(value, b.by);
      code.push(
        `if (${length} > ${by}) throw ${this.rt("invalidValue")}(${s.encodeAt}, ${JSON.stringify(pathLabel(b.length))}, \`at most ${pathLabel(b.by)} (\${${by}}) bytes\`, ${length});`,
      );
    }
    const steps = plan.steps.map((step) => this.encodeStep(step, value, fn));
    return [...code, ...this.locate(plan.steps, steps, fn)];
  }

  private encodeStep(step: Step, value: string, fn: Fn): string[] {
    const s = this.strategy;
    const sink = s.sink;
    switch (step.kind) {
      case "run": {
        const values: RunValue[] = [];
        const code: string[] = [];
        for (const item of step.items) {
          const local = localFor(fn, item.path);
          code.push(`const ${local} = ${access(value, item.path)};`);
          const at = item.offset === 0 ? s.encodeAt : `${s.encodeAt} + ${item.offset}`;
          code.push(...this.checkScalar(item.scalar, local, at, pathLabel(item.path)));
          values.push({ offset: item.offset, local, scalar: item.scalar });
        }
        return [...code, ...s.encodeRun(values, step.size, fn.fresh)];
      }
      case "bytes":
        return [`${sink}.${step.type}(${access(value, step.path)}, ${step.bound});`];
      case "array": {
        const a = fn.fresh(`$${step.path.at(-1)?.label ?? "a"}`);
        const n = fn.fresh("n");
        const i = fn.fresh("i");
        const e = fn.fresh("e");
        const elementTs = this.ts(step.element);
        return [
          `const ${a} = ${access(value, step.path)};`,
          `if (!Array.isArray(${a})) throw ${this.rt("invalidValue")}(${s.encodeAt}, "", "an array", ${a});`,
          `const ${n} = ${a}.length;`,
          step.fixed ? `${sink}.checkFixedArray(${n}, ${step.bound});` : `${sink}.arrayLength(${n}, ${step.bound});`,
          `let ${i} = 0;`,
          `try {`,
          `for (; ${i} < ${n}; ${i}++) {`,
          `const ${e} = ${a}[${i}] as ${elementTs};`,
          ...this.encodeElement(step.element, e, elementTs, fn),
          `}`,
          `} catch (err) {`,
          `throw ${this.rt("atIndex")}(err, ${i});`,
          `}`,
        ];
      }
      case "optional": {
        const x = fn.fresh(`$${step.path.at(-1)?.label ?? "p"}`);
        const elementTs = this.ts(step.element);
        return [
          `const ${x} = ${access(value, step.path)};`,
          `if (${x} === null) {`,
          `${sink}.optional(false);`,
          `} else {`,
          `if (${x} === undefined) throw ${this.rt("invalidValue")}(${s.encodeAt}, "", "optional data (a value or null)", ${x});`,
          `${sink}.optional(true);`,
          ...this.encodeElement(step.element, x, elementTs, fn),
          `}`,
        ];
      }
      case "union":
        return this.encodeUnion(step, value, fn);
      case "call":
        return this.encodeCall(step.type, access(value, step.path), step.recursive);
    }
  }

  /** An array element or optional datum: inline code, or a call when the plan is one. */
  private encodeElement(plan: Plan, value: string, ts: string, fn: Fn): string[] {
    const only = plan.steps[0];
    if (plan.steps.length === 1 && only?.kind === "call" && plan.objects.length === 0) {
      return this.encodeCall(only.type, value, only.recursive);
    }
    return this.encodePlan(plan, value, ts, fn);
  }

  private encodeCall(type: NamedType, value: string, recursive: boolean): string[] {
    const s = this.strategy;
    const codec = this.scope.nameOf(type, "Codec", false);
    const call = s.encodeMethod === "encode" ? `${codec}.encode(w, ${value});` : `${codec}.describe!(d, ${value});`;
    return recursive ? [`${s.sink}.enter();`, call, `${s.sink}.leave();`] : [call];
  }

  private encodeUnion(step: Extract<Step, { kind: "union" }>, value: string, fn: Fn): string[] {
    const s = this.strategy;
    const u = step.type;
    const d = fn.fresh(`$${u.discriminant.name}`);
    const discAccess = member(access(value, step.path), u.discriminant.name);
    const code = [
      `const ${d} = ${discAccess};`,
      ...this.checkScalar(step.discriminant, d, s.encodeAt, u.discriminant.name),
      ...s.encodeRun([{ offset: 0, local: d, scalar: step.discriminant }], 4, fn.fresh),
      `switch (${d}) {`,
    ];
    const isBool = step.discriminant.kind === "bool";
    const arm = (a: (typeof step.arms)[number]): string[] => {
      if (a.plan === undefined || a.field === undefined) return [];
      const ts = this.ts(a.plan);
      const x = fn.fresh(`$${a.field}`);
      const body = this.encodeElement(a.plan, x, ts, fn);
      const read = member(`(${access(value, step.path)} as { ${a.field}: ${ts} })`, a.field);
      return [`const ${x} = ${read};`, ...this.within([a.field], body)];
    };
    for (const a of step.arms) {
      // One push per label, not spread arguments: an arm may have more labels than a call has arguments.
      for (const v of a.values) code.push(`case ${isBool ? String(v === 1) : v}:`);
      code.push(`{`, ...arm(a), `break;`, `}`);
    }
    code.push(`default:`);
    if (step.defaultArm !== undefined) code.push(`{`, ...arm(step.defaultArm), `}`);
    else {
      code.push(
        `throw ${this.rt("invalidValue")}(${s.encodeAt} - 4, ${JSON.stringify(u.discriminant.name)}, ${JSON.stringify(`a case of union ${u.name}`)}, ${d});`,
      );
    }
    code.push(`}`);
    return code;
  }

  /** Encode-side validation of a scalar held in `local`. */
  private checkScalar(s: Scalar, local: string, at: string, label: string): string[] {
    let bad: string;
    let expected: string;
    switch (s.kind) {
      case "int":
        if (s.min === -0x80000000 && s.max === 0x7fffffff) bad = `${local} !== (${local} | 0)`;
        else if (s.min === 0 && s.max === 0xffffffff) bad = `${local} !== ${local} >>> 0`;
        else bad = `!((${local} | 0) === ${local} && ${local} >= ${s.min} && ${local} <= ${s.max})`;
        expected = s.cname === "int" || s.cname === "unsigned int" ? s.cname : `${s.cname} in [${s.min}, ${s.max}]`;
        break;
      case "enum":
        bad = `!(${this.isMember(s.type.name, s.type.members.map((m) => m.value), local, true)})`;
        expected = `a value of enum ${s.type.name}`;
        break;
      case "bool":
        bad = `${local} !== true && ${local} !== false`;
        expected = "a boolean";
        break;
      case "float":
      case "double":
        bad = `typeof ${local} !== "number"`;
        expected = "a number";
        break;
      case "hyper":
        bad = `typeof ${local} !== "bigint" || BigInt.${s.signed ? "asIntN" : "asUintN"}(64, ${local}) !== ${local}`;
        expected = s.signed ? "a hyper (bigint in [-2^63, 2^63-1])" : "an unsigned hyper (bigint in [0, 2^64-1])";
        break;
    }
    return [`if (${bad}) throw ${this.rt("invalidValue")}(${at}, ${JSON.stringify(label)}, ${JSON.stringify(expected)}, ${local});`];
  }

  /** A membership test for an enum's values: a range when they are contiguous, else a set. */
  private isMember(name: string, values: number[], x: string, encoding: boolean): string {
    const sorted = [...new Set(values)].sort((a, b) => a - b);
    const lo = sorted[0];
    const hi = sorted[sorted.length - 1];
    if (lo === undefined || hi === undefined) return "false";
    if (hi - lo + 1 === sorted.length) {
      const range = lo === hi ? `${x} === ${lo}` : `${x} >= ${lo} && ${x} <= ${hi}`;
      return encoding && lo !== hi ? `(${x} | 0) === ${x} && ${range}` : range;
    }
    const set = `${name}$values`;
    this.enumSets.set(name, { name: set, values: sorted });
    return `${set}.has(${x})`;
  }

  // ---- decode --------------------------------------------------------------------------

  private decodeFunction(plan: Plan, ts: string): string {
    const fn = new Fn();
    fn.fresh("r");
    const list = listOf(plan);
    if (list !== undefined) return this.decodeList(list, ts, fn).join("\n");
    return this.decodePlan(plan, ts, fn, (expr) => `return ${expr};`).join("\n");
  }

  /** The decoding half of `encodeList`: each node is linked to the previous one as it arrives. */
  private decodeList(list: ListPlan, ts: string, fn: Fn): string[] {
    const head = fn.fresh("$head");
    const tail = fn.fresh("$tail");
    const node = fn.fresh("$node");
    const more = fn.fresh("$more");
    const i = fn.fresh("i");
    // The node is built with its link null; the next iteration (if any) fills it in.
    const unlinked = new Map([[pathKey(list.link), "null"]]);
    return [
      `let ${head}: ${ts} | null = null;`,
      `let ${tail}: ${ts} | null = null;`,
      `let ${i} = 0;`,
      `let ${more} = false;`,
      `do {`,
      `let ${node}: ${ts};`,
      `try {`,
      ...this.decodePlan(list.node, ts, fn, (expr) => `${node} = ${expr};`, unlinked),
      `} catch (err) {`,
      `throw ${i} === 0 ? err : ${this.rt("within")}(err, [\`${list.field}[\${${i}}]\`]);`,
      `}`,
      `try {`,
      `${more} = r.optional();`,
      `} catch (err) {`,
      `throw ${this.rt("within")}(err, ${i} === 0 ? [${JSON.stringify(list.field)}] : [\`${list.field}[\${${i}}]\`, ${JSON.stringify(list.field)}]);`,
      `}`,
      `if (${tail} === null) ${head} = ${node};`,
      // An own property already (the literal made it), so even `__proto__` is assigned, not the prototype.
      `else ${tail}.${list.field} = ${node};`,
      `${tail} = ${node};`,
      `${i}++;`,
      `} while (${more});`,
      `return ${head}!;`,
    ];
  }

  /** Statements decoding `plan`, ending with `finish(expression of the value)`. */
  private decodePlan(
    plan: Plan,
    ts: string,
    fn: Fn,
    finish: (expr: string) => string,
    preset: ReadonlyMap<string, string> = new Map(),
  ): string[] {
    const locals = new Map<string, string>(preset);
    // A bound reads its fields again after the steps: those stay in locals.
    const bounded = new Set(plan.bounds.flatMap((b) => [pathKey(b.length), pathKey(b.by)]));
    const steps = plan.steps.map((step) => this.decodeStep(step, fn, locals, bounded));
    const bounds = plan.bounds.map((b) => {
      const length = locals.get(pathKey(b.length))!;
      const by = locals.get(pathKey(b.by))!;
      const detail = `\`${pathLabel(b.length)} of \${${length}.length} bytes exceeds ${pathLabel(b.by)} (\${${by}})\``;
      return `if (${length}.length > ${by}) throw ${this.rt("invalidData")}(r.pos - r.start, ${JSON.stringify(pathLabel(b.length))}, ${detail});`;
    });
    steps.push([...bounds, finish(this.shapeExpr(plan.shape, locals, ts))]);
    return this.locate([...plan.steps, undefined], steps, fn);
  }

  private decodeStep(step: Step, fn: Fn, locals: Map<string, string>, bounded: ReadonlySet<string>): string[] {
    const s = this.strategy;
    switch (step.kind) {
      case "run": {
        const values = step.items.map((item) => ({
          offset: item.offset,
          local: localFor(fn, item.path),
          scalar: item.scalar,
          once: !hasDatumCheck(item.scalar) && !bounded.has(pathKey(item.path)),
        }));
        const { code, at, value } = s.decodeRun(values, step.size, fn.fresh);
        step.items.forEach((item, k) => {
          const v = values[k]!;
          locals.set(pathKey(item.path), this.datumValue(v.scalar, value(v)));
          code.push(...this.checkDatum(v.scalar, v.local, at(v.offset), pathLabel(item.path)));
        });
        return code;
      }
      case "bytes": {
        const x = localFor(fn, step.path);
        locals.set(pathKey(step.path), x);
        const views = s.opaqueViews ? ", false" : "";
        const read = step.type === "string" ? `r.string(${step.bound})` : `r.${step.type}(${step.bound}${views})`;
        return [`const ${x} = ${read};`];
      }
      case "array": {
        const x = localFor(fn, step.path);
        locals.set(pathKey(step.path), x);
        const n = fn.fresh("n");
        const i = fn.fresh("i");
        const elementTs = this.ts(step.element);
        const min = step.element.size.min;
        const count = step.fixed
          ? [`r.checkFixedArray(${step.bound}, ${min});`, `const ${n} = ${step.bound};`]
          : [`const ${n} = r.arrayLength(${step.bound}, ${min});`];
        return [
          ...count,
          `const ${x} = new Array<${elementTs}>(${n});`,
          `let ${i} = 0;`,
          `try {`,
          `for (; ${i} < ${n}; ${i}++) {`,
          ...this.decodeElement(step.element, elementTs, fn, (expr) => `${x}[${i}] = ${expr};`),
          `}`,
          `} catch (err) {`,
          `throw ${this.rt("atIndex")}(err, ${i});`,
          `}`,
        ];
      }
      case "optional": {
        const x = localFor(fn, step.path);
        locals.set(pathKey(step.path), x);
        const elementTs = this.ts(step.element);
        return [
          `let ${x}: ${elementTs} | null = null;`,
          `if (r.optional()) {`,
          ...this.decodeElement(step.element, elementTs, fn, (expr) => `${x} = ${expr};`),
          `}`,
        ];
      }
      case "union":
        return this.decodeUnion(step, fn, locals);
      case "call": {
        const x = localFor(fn, step.path);
        locals.set(pathKey(step.path), x);
        return this.decodeCall(step.type, step.recursive, (expr) => `const ${x} = ${expr};`);
      }
    }
  }

  private decodeElement(plan: Plan, ts: string, fn: Fn, finish: (expr: string) => string): string[] {
    const only = plan.steps[0];
    if (plan.steps.length === 1 && only?.kind === "call") return this.decodeCall(only.type, only.recursive, finish);
    return this.decodePlan(plan, ts, fn, finish);
  }

  private decodeCall(type: NamedType, recursive: boolean, finish: (expr: string) => string): string[] {
    const codec = this.scope.nameOf(type, "Codec", false);
    const call = finish(`${codec}.decode(r)`);
    return recursive ? [`r.enter();`, call, `r.leave();`] : [call];
  }

  private decodeUnion(step: Extract<Step, { kind: "union" }>, fn: Fn, locals: Map<string, string>): string[] {
    const s = this.strategy;
    const u = step.type;
    const ts = this.scope.nameOf(u);
    const x = localFor(fn, step.path);
    locals.set(pathKey(step.path), x);
    const d = fn.fresh(`$${u.discriminant.name}`);
    const { code, at } = s.decodeRun([{ offset: 0, local: d, scalar: step.discriminant }], 4, fn.fresh);
    code.push(...this.checkDatum(step.discriminant, d, at(0), u.discriminant.name));
    code.push(`let ${x}: ${ts};`, `switch (${d}) {`);
    // A bool's default arm takes the one value no case lists, if one is left: TypeScript narrows
    // the checked word to it there, and refuses to compare it with the other (TS2367).
    const unlisted = [0, 1].filter((b) => !step.arms.some((a) => a.values.includes(b)));
    const arm = (a: (typeof step.arms)[number]): string[] => {
      // Inside a one-label case the discriminant is narrowed to that label: a bool's value is a literal there.
      const only = a.values.length === 1 ? a.values[0] : a === step.defaultArm && unlisted.length === 1 ? unlisted[0] : undefined;
      const discValue = step.discriminant.kind !== "bool" ? d : only !== undefined ? String(only === 1) : `${d} === 1`;
      const disc = `${propertyKey(u.discriminant.name)}: ${discValue}`;
      if (a.plan === undefined || a.field === undefined) return [`${x} = { ${disc} } as ${ts};`];
      const armTs = this.ts(a.plan);
      const field = propertyKey(a.field);
      const body = this.decodeElement(a.plan, armTs, fn, (expr) => `${x} = { ${disc}, ${field}: ${expr} } as ${ts};`);
      return this.within([a.field], body);
    };
    for (const a of step.arms) {
      for (const v of a.values) code.push(`case ${v}:`);
      code.push(`{`, ...arm(a), `break;`, `}`);
    }
    code.push(`default:`);
    if (step.defaultArm !== undefined) code.push(`{`, ...arm(step.defaultArm), `}`);
    else {
      code.push(
        `throw ${this.rt("invalidData")}(${at(0)}, ${JSON.stringify(u.discriminant.name)}, \`no arm of union ${u.name} for discriminant \${${d}}\`);`,
      );
    }
    code.push(`}`);
    return code;
  }

  /** Decode-side validation of a scalar read into `local`. */
  private checkDatum(s: Scalar, local: string, at: string, label: string): string[] {
    if (!hasDatumCheck(s)) return [];
    let bad: string;
    let detail: string;
    switch (s.kind) {
      case "int":
        bad = `${local} < ${s.min} || ${local} > ${s.max}`;
        detail = `\`value \${${local}} out of range for ${s.cname} [${s.min}, ${s.max}]\``;
        break;
      case "enum":
        bad = `!(${this.isMember(s.type.name, s.type.members.map((m) => m.value), local, false)})`;
        detail = `\`value \${${local}} is not a member of enum ${s.type.name}\``;
        break;
      case "bool":
        bad = `${local} !== 0 && ${local} !== 1`;
        detail = `\`bool value \${${local}} is neither 0 nor 1\``;
        break;
      default:
        return [];
    }
    return [`if (${bad}) throw ${this.rt("invalidData")}(${at}, ${JSON.stringify(label)}, ${detail});`];
  }

  /** The expression rebuilding a decoded value from the steps' locals. */
  private shapeExpr(shape: Shape, locals: Map<string, string>, ts: string): string {
    switch (shape.kind) {
      case "void":
        return "undefined";
      case "leaf":
        return locals.get(pathKey(shape.path))!;
      case "object":
        return `{ ${shape.fields.map((f) => `${propertyKey(f.name)}: ${this.shapeExpr(f.shape, locals, "")}`).join(", ")} }`;
      case "tuple":
        return `[${shape.items.map((i) => this.shapeExpr(i, locals, "")).join(", ")}]${ts === "" ? "" : ` as ${ts}`}`;
    }
  }

  /** A decoded scalar as its TypeScript value: bools are read as words, enums as plain numbers. */
  private datumValue(s: Scalar, local: string): string {
    if (s.kind === "bool") return `${local} === 1`;
    if (s.kind === "enum") return `(${local} as ${this.scope.nameOf(s.type)})`;
    return local;
  }

  // ---- shared ----------------------------------------------------------------------------

  /** The TypeScript type of the values a plan marshals. */
  private ts(plan: Plan): string {
    return plan.type === undefined ? "never" : tsType(plan.type, this.scope);
  }

  /**
   * Wraps a plan level's statements so that an error thrown by a step below gets the step's
   * location prepended. Levels without such steps need no wrapper.
   */
  private locate(steps: readonly (Step | undefined)[], code: string[][], fn: Fn): string[] {
    const paths = steps.map(locationOf);
    if (paths.every((p) => p.length === 0)) return code.flat();
    const marker = fn.fresh("$at");
    const body: string[] = [];
    code.forEach((c, k) => {
      if (k > 0 && JSON.stringify(paths[k]) !== JSON.stringify(paths[k - 1])) body.push(`${marker} = ${k};`);
      body.push(...c);
    });
    return [
      `let ${marker} = 0;`,
      `try {`,
      ...body,
      `} catch (err) {`,
      `throw ${this.rt("within")}(err, ${JSON.stringify(paths)}[${marker}]!);`,
      `}`,
    ];
  }

  /** Prepends a fixed location (a union arm's name) to errors thrown by `code`. */
  private within(path: string[], code: string[]): string[] {
    return [`try {`, ...code, `} catch (err) {`, `throw ${this.rt("within")}(err, ${JSON.stringify(path)});`, `}`];
  }
}
