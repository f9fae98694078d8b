/**
 * Naming rules for generated code (DESIGN §7). IDL identifiers are kept exactly, except
 * where TypeScript forbids them as a declaration's name: those get a trailing underscore.
 */

const reserved = new Set(
  (
    "break case catch class const continue debugger default delete do else enum export extends false finally for " +
    "function if import in instanceof new null return super switch this throw true try typeof var void while with " +
    "implements interface let package private protected public static yield await " +
    // Type names that a type alias or interface may not take, or that generated code uses.
    "any boolean number string symbol bigint never unknown object undefined Uint8Array Exclude Record Array"
  ).split(" "),
);

/** The name a top-level declaration gets for an IDL identifier. */
export function safeName(name: string): string {
  return reserved.has(name) ? `${name}_` : name;
}

/** `TCodec` for the type `T`. */
export function codecName(typeName: string): string {
  return `${typeName}Codec`;
}

/** `CALC_V1` → `CalcV1`: split on `_`, capitalise each part. */
export function pascalCase(name: string): string {
  return name
    .split("_")
    .filter((part) => part !== "")
    .map((part) => part[0]!.toUpperCase() + part.slice(1).toLowerCase())
    .join("");
}

/** `NFSPROC_GETATTR` → `nfsprocGetattr`. */
export function camelCase(name: string): string {
  const pascal = pascalCase(name);
  return pascal === "" ? name : pascal[0]!.toLowerCase() + pascal.slice(1);
}
