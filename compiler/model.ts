import type { Span } from "./source.js";

/**
 * The checked model: what an `.x` file means, with every name resolved, every constant
 * evaluated and every bound known. The emitter and the layout read only this.
 */

/** rpcgen's integer types are all 4 bytes on the wire; the C type decides the range. */
export interface IntType {
  readonly kind: "int";
  /** The C type as written in the IDL: `int`, `unsigned int`, `char`, `u_short`, ... */
  readonly cname: string;
  readonly min: number;
  readonly max: number;
}

export type Type =
  | IntType
  | { readonly kind: "hyper"; readonly signed: boolean }
  | { readonly kind: "float" }
  | { readonly kind: "double" }
  | { readonly kind: "bool" }
  | { readonly kind: "void" }
  /** `string<max>`; `max` is undefined for `string<>` (the 32-bit length field's limit). */
  | { readonly kind: "string"; readonly max: number | undefined }
  | { readonly kind: "fixedOpaque"; readonly size: number }
  | { readonly kind: "varOpaque"; readonly max: number | undefined }
  | { readonly kind: "fixedArray"; readonly size: number; readonly element: Type }
  | { readonly kind: "varArray"; readonly max: number | undefined; readonly element: Type }
  | { readonly kind: "optional"; readonly element: Type }
  | { readonly kind: "named"; readonly target: NamedType }
  /** Stands for a type that failed to resolve; absorbs follow-on errors. */
  | { readonly kind: "error" };

/** The largest length an XDR length field can carry (RFC 4506 §4.10). */
export const maxLength = 0xffffffff;

export interface Field {
  readonly name: string;
  readonly type: Type;
  readonly span: Span | undefined;
}

interface NamedBase {
  readonly name: string;
  /** Absent for the built-in types of libtirpc. */
  readonly span: Span | undefined;
  /** For built-ins: what they stand for in libtirpc, for the generated doc comment. */
  readonly builtin?: string;
}

export interface EnumMember {
  readonly name: string;
  readonly value: number;
}

export interface EnumType extends NamedBase {
  readonly kind: "enum";
  readonly members: readonly EnumMember[];
}

export interface StructType extends NamedBase {
  readonly kind: "struct";
  readonly fields: readonly Field[];
  /**
   * Built-ins only: a field whose length may not exceed another field's value, as libtirpc's
   * xdr_netbuf bounds `buf` by `maxlen`.
   */
  readonly lengthBounds?: readonly { readonly field: string; readonly by: string }[];
}

/** A case label, with the name it was written with (an enum member, a constant) if any. */
export interface CaseLabel {
  readonly value: number;
  readonly name: string | undefined;
  /** The enum the name is a member of, when it is one. */
  readonly enumName: string | undefined;
}

export interface UnionArm {
  readonly labels: readonly CaseLabel[];
  /** Undefined for a `void` arm. */
  readonly field: Field | undefined;
}

export interface UnionType extends NamedBase {
  readonly kind: "union";
  readonly discriminant: Field;
  readonly arms: readonly UnionArm[];
  /** `default:` — undefined when absent; `field` undefined when it is `void`. */
  readonly defaultArm: { readonly field: Field | undefined } | undefined;
}

export interface TypedefType extends NamedBase {
  readonly kind: "typedef";
  readonly type: Type;
}

export type NamedType = EnumType | StructType | UnionType | TypedefType;

export interface Constant {
  readonly name: string;
  readonly value: bigint | string;
  readonly span: Span | undefined;
}

export interface Procedure {
  readonly name: string;
  readonly number: number;
  /** Empty for `void`. */
  readonly args: readonly Type[];
  /** The name the IDL gives each argument, if any (parallel to `args`). */
  readonly argNames: readonly (string | undefined)[];
  readonly result: Type;
  readonly span: Span;
}

export interface Version {
  readonly name: string;
  readonly number: number;
  readonly procedures: readonly Procedure[];
  readonly span: Span;
}

export interface Program {
  readonly name: string;
  readonly number: number;
  readonly versions: readonly Version[];
  readonly span: Span;
}

/** What the module declares, in IDL order. */
export type Declaration =
  | { readonly kind: "const"; readonly constant: Constant }
  | { readonly kind: "type"; readonly type: NamedType }
  | { readonly kind: "program"; readonly program: Program };

export interface Model {
  /** Types used from the modules generated from `%#include`d headers' `.x` files. */
  readonly imports: readonly { readonly module: string; readonly types: readonly NamedType[] }[];
  /** Built-in types the file uses, then its own declarations in order. */
  readonly declarations: readonly Declaration[];
  readonly types: ReadonlyMap<string, NamedType>;
  readonly constants: ReadonlyMap<string, Constant>;
  readonly programs: readonly Program[];
}

/** Follows typedefs to the type that decides the encoding. */
export function resolveAlias(type: Type): Type {
  let t = type;
  for (let guard = 0; t.kind === "named" && t.target.kind === "typedef" && guard < 1000; guard++) t = t.target.type;
  return t;
}
