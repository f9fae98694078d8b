/**
 * What generated stubs import: XDR codecs and their support, the marshal paths that make
 * service descriptions, and the client base class with its types. The runtime's own
 * generated stubs (binding/) import this rather than the package entry, which sits above
 * them.
 */
export * from "../xdr/index.js";
export { classic, descriptor, synthesized } from "../call/paths.js";
export type { ArgumentsOf, CallContext, HandledBy, HandlersFor, HandlersOf, MarshalPath, Mode, ProcedureDescription, ResultOf, ServiceDescription, ServicePath, ServiceSpec } from "../call/service.js";
export { RpcClient, type CallOptions, type Channel, type ClientOptions } from "../endpoint/client.js";
