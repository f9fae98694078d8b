import { StructureKind, VariableDeclarationKind } from "ts-morph";
import type { Layout } from "../layout.js";
import type { Procedure, Program, Type, Version } from "../model.js";
import type { CodecWriter } from "./codec.js";
import type { Mode } from "../modes.js";
import { memberName, safeName, type ModuleNames } from "./names.js";
import type { Statement } from "./printer.js";
import { docBlock, withComment } from "./comments.js";
import { constStatement, documented, origin, tsType, type TypeScope } from "./types.js";

/**
 * A program's constants (its, its versions' and its procedures' numbers, as rpcgen's header
 * #defines them) and, per version, the codecs of each procedure's arguments and result and
 * the service description that clients and servers are built on.
 */

export interface ProgramContext {
  readonly layout: Layout;
  readonly scope: TypeScope;
  readonly codecs: CodecWriter;
  readonly runtime: string;
  readonly mode: Mode;
  readonly names: ModuleNames;
}

export function programStatements(
  p: Program,
  alreadyDeclared: Set<string>,
  ctx: ProgramContext,
): { constants: Statement[]; stubs: Statement[] } {
  const statements: Statement[] = [];
  const constant = (name: string, value: number, what: string) => {
    if (alreadyDeclared.has(name)) return; // a procedure keeps its name (and number) across versions
    alreadyDeclared.add(name);
    const statement = constStatement({ name, value: BigInt(value), span: undefined });
    if (typeof statement !== "string" && statement.kind === StructureKind.VariableStatement) statement.docs = [what];
    statements.push(statement);
  };
  constant(p.name, p.number, documented(`program ${p.name}`, p.span));
  for (const v of p.versions) {
    constant(v.name, v.number, documented(`version ${v.name} of program ${p.name}`, v.span));
    for (const proc of v.procedures) {
      constant(proc.name, proc.number, documented(`procedure ${proc.name} of ${v.name}`, proc.span));
    }
  }
  const procedureCodecs = new ProcedureCodecs(ctx);
  const stubs: Statement[] = [];
  for (const v of p.versions) {
    stubs.push(
      ...procedureCodecs.forVersion(v),
      serviceDescription(p, v, procedureCodecs, ctx),
      handlersInterface(v, ctx),
      clientClass(p, v, ctx),
    );
  }
  return { constants: statements, stubs };
}

/** `ADD(int, int) returns int`, after the `.x` file's comment on the procedure if it has one. */
function signature(proc: Procedure): string {
  const args = proc.args.length === 0 ? "void" : proc.args.map(typeKey).join(", ");
  return withComment(`${proc.name}(${args}) returns ${typeKey(proc.result)}`, proc.span);
}

/** The parameters of a procedure's method: one per argument. */
function parameters(proc: Procedure, service: string, scope: TypeScope): { name: string; type: string }[] {
  const names = argumentNames(proc, service);
  return proc.args.map((t, i) => ({ name: names[i]!, type: tsType(t, scope) }));
}

/**
 * The parameter names of a procedure's client method and handler: the name the IDL gives an
 * argument (`string prefix<>` → `prefix`), else `arg` for a lone argument and `argN` by
 * position. A reserved word gets a trailing `_` (`safeName`, as top-level names do); a name the
 * method already uses — another parameter, `options`, `call`, or the service description the
 * client's body refers to — gets the next free number, as generated locals do.
 */
function argumentNames(proc: Procedure, service: string): string[] {
  const used = new Set(["options", "call", service]);
  return proc.args.map((_, i) => {
    const base = safeName(proc.argNames[i] ?? (proc.args.length === 1 ? "arg" : `arg${i + 1}`));
    let name = base;
    for (let n = 2; used.has(name); n++) name = `${base}${n}`;
    used.add(name);
    return name;
  });
}

function resultType(proc: Procedure, scope: TypeScope): string {
  return proc.result.kind === "void" ? "void" : tsType(proc.result, scope);
}

function handlersInterface(v: Version, ctx: ProgramContext): Statement {
  const { scope, runtime } = ctx;
  const context = scope.printer.import("CallContext", runtime, true);
  const { service } = ctx.names.versions.get(v)!;
  return {
    kind: StructureKind.Interface,
    docs: [`What a server implements for version ${v.name}: one handler per procedure (procedure 0 is answered by the runtime).`],
    isExported: true,
    name: ctx.names.versions.get(v)!.handlers,
    methods: v.procedures
      .filter((proc) => proc.number !== 0)
      .map((proc) => {
        const result = resultType(proc, scope);
        return {
          docs: [signature(proc)],
          name: memberName(proc),
          parameters: [...parameters(proc, service, scope), { name: "call", type: context }],
          returnType: `${result} | Promise<${result}>`,
        };
      }),
  };
}

function clientClass(p: Program, v: Version, ctx: ProgramContext): Statement {
  const { scope, runtime } = ctx;
  const base = scope.printer.import("RpcClient", runtime);
  const channel = scope.printer.import("Channel", runtime, true);
  const clientOptions = scope.printer.import("ClientOptions", runtime, true);
  const callOptions = scope.printer.import("CallOptions", runtime, true);
  const { service, client } = ctx.names.versions.get(v)!;
  const callOf = (proc: Procedure, rpcCall: string): string => {
    const names = argumentNames(proc, service);
    const args = names.length === 0 ? "undefined" : names.length === 1 ? names[0] : `[${names.join(", ")}]`;
    return `this.${rpcCall}(${service}.procedures.${memberName(proc)}, ${args}, options)`;
  };
  const syncMethods = v.procedures.map((proc) => {
    const params = [...parameters(proc, service, scope).map((a) => `${a.name}: ${a.type}`), `options?: ${callOptions}`].join(", ");
    return `${docBlock(signature(proc))}\n${memberName(proc)}: (${params}): ${resultType(proc, scope)} =>\n${callOf(proc, "rpcCallSync")},`;
  });
  return {
    kind: StructureKind.Class,
    docs: [`A client of program ${p.name} version ${v.name}.`],
    isExported: true,
    name: client,
    extends: base,
    properties: [
      {
        docs: [
          "The same procedures completed on the calling thread, over a channel that can (shm): it spins, then blocks until the reply — no promise, no event loop. Elsewhere they throw a TypeError.",
        ],
        isReadonly: true,
        name: "sync",
        initializer: `{\n${syncMethods.join("\n")}\n}`,
      },
    ],
    ctors: [
      {
        parameters: [
          { name: "channel", type: channel },
          { name: "options", type: clientOptions, hasQuestionToken: true },
        ],
        statements: [`super(channel, ${service}, options);`],
      },
    ],
    methods: v.procedures.map((proc) => ({
      docs: [signature(proc)],
      name: memberName(proc),
      parameters: [...parameters(proc, service, scope), { name: "options", type: callOptions, hasQuestionToken: true }],
      returnType: `Promise<${resultType(proc, scope)}>`,
      statements: [`return ${callOf(proc, "rpcCall")};`],
    })),
  };
}


function serviceDescription(p: Program, v: Version, codecs: ProcedureCodecs, ctx: ProgramContext): Statement {
  const procedures = v.procedures
    .map((proc) => {
      const { args, result } = codecs.of(v, proc);
      return (
        `${memberName(proc)}: { number: ${proc.number}, name: ${JSON.stringify(proc.name)}, ` +
        `arity: ${proc.args.length}, args: ${args}, result: ${result} }`
      );
    })
    .join(",\n");
  return {
    kind: StructureKind.VariableStatement,
    docs: [origin(`program ${p.name} version ${v.name}: the service description`, v.span)],
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    declarations: [
      {
        name: ctx.names.versions.get(v)!.service,
        // The path the codecs above were generated for makes the description: the mode is
        // fixed by this code, not by a field the runtime reads. It names the handlers interface
        // below, which a server's register then takes (and its type errors name).
        initializer:
          `${ctx.scope.printer.import(ctx.mode, ctx.runtime)}.service<${ctx.names.versions.get(v)!.handlers}>()({\nprogram: ${p.number},\nversion: ${v.number},\n` +
          `name: ${JSON.stringify(v.name)},\nprocedures: {\n${procedures}\n},\n})`,
      },
    ],
  };
}

/**
 * The argument and result codecs of procedures. A single argument (or result) of a named
 * type uses that type's codec, `void` the runtime's; anything else gets a codec of its own,
 * shared by every procedure with the same signature.
 */
class ProcedureCodecs {
  private readonly byKey = new Map<string, string>();
  private readonly assigned = new Map<string, { args: string; result: string }>();

  constructor(private readonly ctx: ProgramContext) {}

  of(v: Version, proc: Procedure): { args: string; result: string } {
    return this.assigned.get(`${v.name}.${proc.name}`)!;
  }

  forVersion(v: Version): Statement[] {
    const statements: Statement[] = [];
    const base = `${this.ctx.names.versions.get(v)!.service}$`;
    for (const proc of v.procedures) {
      const args = this.codec(proc.args, `${base}${memberName(proc)}$args`, `the arguments of ${proc.name}`, statements);
      const result = this.codec([proc.result], `${base}${memberName(proc)}$result`, `the result of ${proc.name}`, statements);
      this.assigned.set(`${v.name}.${proc.name}`, { args, result });
    }
    return statements;
  }

  private codec(types: readonly Type[], name: string, what: string, out: Statement[]): string {
    const { layout, scope, codecs, runtime } = this.ctx;
    const values = types.filter((t) => t.kind !== "void");
    if (values.length === 0) return scope.printer.import("voidCodec", runtime);
    const only = values[0]!;
    if (values.length === 1 && only.kind === "named") return scope.nameOf(only.target, "Codec", false);
    const key = values.map(typeKey).join(", ");
    const existing = this.byKey.get(key);
    if (existing !== undefined) return existing;
    this.byKey.set(key, name);
    const ts = values.length === 1 ? tsType(only, scope) : `[${values.map((t) => tsType(t, scope)).join(", ")}]`;
    const codecType = codecs.codecType();
    out.push({
      kind: StructureKind.VariableStatement,
      docs: [`XDR codec for ${what}: (${key}).`],
      declarationKind: VariableDeclarationKind.Const,
      declarations: [
        {
          name,
          type: `${codecType}<${ts}>`,
          initializer: codecs.codecObject(`(${key})`, layout.planOfArguments(values), ts),
        },
      ],
    });
    return name;
  }
}

/** The IDL spelling of a type, as a key for sharing codecs and for doc comments. */
function typeKey(t: Type): string {
  switch (t.kind) {
    case "int":
      return t.cname;
    case "hyper":
      return t.signed ? "hyper" : "unsigned hyper";
    case "string":
      return `string<${t.max ?? ""}>`;
    case "fixedOpaque":
      return `opaque[${t.size}]`;
    case "varOpaque":
      return `opaque<${t.max ?? ""}>`;
    case "fixedArray":
      return `${typeKey(t.element)}[${t.size}]`;
    case "varArray":
      return `${typeKey(t.element)}<${t.max ?? ""}>`;
    case "optional":
      return `${typeKey(t.element)} *`;
    case "named":
      return t.target.name;
    default:
      return t.kind;
  }
}
