/**
 * The rpcgen-ts runtime, imported by generated code and by applications as
 * `rpcgen-ts/runtime`.
 */
export * from "./xdr/index.js";
export { CopyLedger, copyBytes, sliceBytes, type CopyCounts, type CopyLayer } from "./ledger.js";
export { Marshaler, type Mode } from "./marshal.js";
export { RpcChannel, RpcClient, type CallOptions, type Channel, type ChannelOptions, type ClientOptions, type FlavorParams } from "./client.js";
export { authNoneFlavor, authRegistry, authSysFlavor, defaultAuthFlavors, type AuthContext, type AuthFlavorEntry, type AuthRegistry, type AuthVerifier } from "./auth/index.js";
export { createServer, defaultVerifiers, Server, type AuthCheck, type CallContext, type FlavorVerifier, type ListenAddress, type ListenOptions, type ServerOptions } from "./server.js";
export type { ArgumentsOf, HandlersOf, ProcedureDescription, ResultOf, ServiceDescription } from "./service.js";
export { RpcError, type RpcStatus } from "./rpc/errors.js";
export { AcceptStat, AuthFlavor, AuthStat, AUTH_NONE, type AuthSysParams, type OpaqueAuth } from "./rpc/message.js";
export { callChannel, serveChannel, type CallHook, type CallRecord, type Phases, type TransportKind } from "./timing.js";
export { connect, type ConnectOptions } from "./connect.js";
export { defaultStreamLimits, type StreamLimits, type StreamStats } from "./transport/limits.js";
export type { DuplicateCacheOptions, DuplicateCacheStats } from "./transport/drc.js";
