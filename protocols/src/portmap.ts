/**
 * The portmapper, version 2 (RFC 1833 §3), from idl/pmap_prot.x: the runtime's own stubs,
 * which its rpcbind binding falls back to, so there is one copy of them.
 */
export * from "@rpcgen-ts/runtime/portmap";
