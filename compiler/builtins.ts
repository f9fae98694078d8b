import type { IntType, NamedType, Type } from "./model.js";

/**
 * Types an `.x` file may use without defining them: rpcgen's C aliases, and the types
 * libtirpc defines in C (with their `xdr_*` routines) that real `.x` files rely on.
 */

const int = (cname: string, min: number, max: number): IntType => ({ kind: "int", cname, min, max });

const i32 = [-0x80000000, 0x7fffffff] as const;
const u32 = [0, 0xffffffff] as const;

/** The integer keywords and rpcgen's C aliases: all 4-byte XDR integers, ranged as their C type. */
export const intTypes: Readonly<Record<string, IntType>> = {
  int: int("int", ...i32),
  "unsigned int": int("unsigned int", ...u32),
  // xdr_long encodes 4 bytes and fails on values outside 32 bits, as rpcgen's output does.
  long: int("long", ...i32),
  "unsigned long": int("unsigned long", ...u32),
  char: int("char", -128, 127),
  "unsigned char": int("unsigned char", 0, 255),
  short: int("short", -32768, 32767),
  "unsigned short": int("unsigned short", 0, 65535),
};

/** Names that stand for a type directly (no named type is emitted for them). */
export const aliasTypes: ReadonlyMap<string, Type> = new Map<string, Type>([
  ["u_int", int("u_int", ...u32)],
  ["u_long", int("u_long", ...u32)],
  ["u_short", int("u_short", 0, 65535)],
  ["u_char", int("u_char", 0, 255)],
  ["bool_t", { kind: "bool" }],
  ["int8_t", int("int8_t", -128, 127)],
  ["uint8_t", int("uint8_t", 0, 255)],
  ["u_int8_t", int("u_int8_t", 0, 255)],
  ["int16_t", int("int16_t", -32768, 32767)],
  ["uint16_t", int("uint16_t", 0, 65535)],
  ["u_int16_t", int("u_int16_t", 0, 65535)],
  ["int32_t", int("int32_t", ...i32)],
  ["uint32_t", int("uint32_t", ...u32)],
  ["u_int32_t", int("u_int32_t", ...u32)],
  ["int64_t", { kind: "hyper", signed: true }],
  ["uint64_t", { kind: "hyper", signed: false }],
  ["u_int64_t", { kind: "hyper", signed: false }],
  ["quad_t", { kind: "hyper", signed: true }],
  ["u_quad_t", { kind: "hyper", signed: false }],
]);

const uint32: Type = int("u_int32_t", ...u32);

/** libtirpc's RPC_MAXDATASIZE: the most a netbuf may hold. */
const rpcMaxDataSize = 9000;

/**
 * libtirpc's named types. They are emitted into a module that uses them, as if the file
 * had declared them, each with libtirpc's encoding.
 */
export function libtirpcTypes(): Map<string, NamedType> {
  const typedef = (name: string, type: Type, builtin: string): NamedType => ({
    kind: "typedef",
    name,
    type,
    span: undefined,
    builtin,
  });
  return new Map<string, NamedType>([
    ["rpcprog_t", typedef("rpcprog_t", uint32, "libtirpc: typedef u_int32_t rpcprog_t")],
    ["rpcvers_t", typedef("rpcvers_t", uint32, "libtirpc: typedef u_int32_t rpcvers_t")],
    ["rpcproc_t", typedef("rpcproc_t", uint32, "libtirpc: typedef u_int32_t rpcproc_t")],
    ["rpcprot_t", typedef("rpcprot_t", uint32, "libtirpc: typedef u_int32_t rpcprot_t")],
    ["rpcport_t", typedef("rpcport_t", uint32, "libtirpc: typedef u_int32_t rpcport_t")],
    // xdr_des_block: xdr_opaque of 8 bytes.
    ["des_block", typedef("des_block", { kind: "fixedOpaque", size: 8 }, "libtirpc: union des_block, as xdr_des_block (opaque[8])")],
    // xdr_netobj: xdr_bytes with MAX_NETOBJ_SZ.
    ["netobj", typedef("netobj", { kind: "varOpaque", max: 1024 }, "libtirpc: struct netobj, as xdr_netobj (opaque<1024>)")],
    // xdr_netbuf: maxlen (at most RPC_MAXDATASIZE), then the buffer as xdr_bytes bounded by that maxlen.
    [
      "netbuf",
      {
        kind: "struct",
        name: "netbuf",
        span: undefined,
        builtin: "libtirpc: struct netbuf, as xdr_netbuf (unsigned int maxlen <= 9000; opaque buf<maxlen>)",
        fields: [
          { name: "maxlen", type: int("u_int32_t", 0, rpcMaxDataSize), span: undefined },
          { name: "buf", type: { kind: "varOpaque", max: rpcMaxDataSize }, span: undefined },
        ],
        lengthBounds: [{ field: "buf", by: "maxlen" }],
      },
    ],
  ]);
}

/**
 * `TRUE` and `FALSE`, as a `bool` union's `case TRUE:` needs them, and the libtirpc
 * constants that corpus files use as bounds without defining them.
 */
export const predefinedConstants: ReadonlyMap<string, bigint> = new Map([
  ["TRUE", 1n],
  ["FALSE", 0n],
  ["MAXNETNAMELEN", 255n],
  ["MAX_NETOBJ_SZ", 1024n],
  ["MAX_AUTH_BYTES", 400n],
]);
