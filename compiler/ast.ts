import type { Span } from "./source.js";

/**
 * The syntax tree of an ONC RPC language file (RFC 5531 §12, RFC 4506 §6, and Sun rpcgen's
 * extensions). It says what was written, not what it means: names are unresolved and
 * constants unevaluated; `check.ts` turns it into the model.
 */

export interface Identifier {
  readonly name: string;
  readonly span: Span;
}

/** A constant as written: a literal (decimal, hex or octal, maybe negative) or a name. */
export type Value =
  | { readonly kind: "literal"; readonly value: bigint; readonly text: string; readonly span: Span }
  | { readonly kind: "name"; readonly name: string; readonly span: Span };

/** Built-in type keywords. The C aliases (`char`, `short`, `long`, with `unsigned`) are 4-byte XDR integers. */
export type BaseTypeName =
  | "int"
  | "unsigned int"
  | "hyper"
  | "unsigned hyper"
  | "float"
  | "double"
  | "quadruple"
  | "bool"
  | "char"
  | "unsigned char"
  | "short"
  | "unsigned short"
  | "long"
  | "unsigned long"
  | "string"
  | "opaque";

export type TypeSpec =
  | { readonly kind: "base"; readonly name: BaseTypeName; readonly span: Span }
  /** A named type; `tag` when written `struct T`, `enum T` or `union T`. */
  | { readonly kind: "named"; readonly name: string; readonly tag?: "struct" | "enum" | "union"; readonly span: Span };

/**
 * A declaration (RFC 4506 §6.3): `T x`, `T x[n]`, `T x<n>`, `T x<>`, `T *x`, or `void`.
 * `opaque` and `string` appear as the base type with a fixed or variable shape.
 */
export type Declaration =
  | { readonly kind: "void"; readonly span: Span }
  | {
      readonly kind: "plain" | "fixed" | "variable" | "optional";
      readonly type: TypeSpec;
      readonly name: Identifier;
      /** The size of `[n]`, the bound of `<n>`; absent for `<>`. */
      readonly bound?: Value;
      readonly span: Span;
    };

export interface ConstDefinition {
  readonly kind: "const";
  readonly name: Identifier;
  readonly value: Value | { readonly kind: "string"; readonly value: string; readonly span: Span };
}

export interface EnumMember {
  readonly name: Identifier;
  /** Absent when written without `= value` (rpcgen takes the previous value plus one, as C does). */
  readonly value?: Value;
}

export interface EnumDefinition {
  readonly kind: "enum";
  readonly name: Identifier;
  readonly members: readonly EnumMember[];
}

export interface StructDefinition {
  readonly kind: "struct";
  readonly name: Identifier;
  readonly fields: readonly Declaration[];
}

export interface UnionArm {
  readonly labels: readonly Value[];
  readonly declaration: Declaration;
}

export interface UnionDefinition {
  readonly kind: "union";
  readonly name: Identifier;
  readonly discriminant: Declaration;
  readonly arms: readonly UnionArm[];
  readonly defaultArm?: Declaration;
  readonly defaultSpan?: Span;
}

export interface TypedefDefinition {
  readonly kind: "typedef";
  readonly declaration: Declaration;
  readonly span: Span;
}

/**
 * A procedure's argument or result type. rpcgen allows `T`, `T *` (optional), `string`,
 * `string<n>` and `void` here, and an argument may carry a name (which C rpcgen ignores; it
 * names the generated TypeScript parameter).
 */
export interface ProcedureType {
  readonly shape: "plain" | "optional" | "variable";
  /** The argument's name, if the IDL gives one (`string prefix<>`). */
  readonly name?: string;
  readonly type: TypeSpec | { readonly kind: "void"; readonly span: Span };
  readonly bound?: Value;
  readonly span: Span;
}

export interface ProcedureDefinition {
  readonly name: Identifier;
  readonly result: ProcedureType;
  readonly args: readonly ProcedureType[];
  readonly number: Value;
}

export interface VersionDefinition {
  readonly name: Identifier;
  readonly procedures: readonly ProcedureDefinition[];
  readonly number: Value;
}

export interface ProgramDefinition {
  readonly kind: "program";
  readonly name: Identifier;
  readonly versions: readonly VersionDefinition[];
  readonly number: Value;
}

export type Definition =
  | ConstDefinition
  | EnumDefinition
  | StructDefinition
  | UnionDefinition
  | TypedefDefinition
  | ProgramDefinition;

export interface Specification {
  readonly definitions: readonly Definition[];
}
