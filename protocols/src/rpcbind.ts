/**
 * rpcbind versions 3 and 4 (RFC 1833), from libtirpc's rpcb_prot.x (a copy is in idl/): the
 * runtime's own stubs, which its rpcbind binding uses, so there is one copy of them.
 */
export * from "@rpcgen-ts/runtime/rpcbind";
