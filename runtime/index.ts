/**
 * The rpcgen-ts runtime, imported by generated code and by applications as
 * `@rpcgen-ts/runtime`. Layers, from the bottom: xdr/ → rpc/, auth/ → call/ → transport/
 * (the contract) → transports/ → endpoint/ (client, server) → stub/ → binding/ → connect,
 * listen (the only modules that name concrete transports).
 */
export * from "./stub/index.js";
export { describeService, renumber, type TransportKind } from "./call/service.js";
export { RpcChannel, type ChannelCloseOptions, type ChannelEvents, type ChannelOptions, type ChannelState, type FlavorParams, type ReconnectOptions, type CallNext, type ClientCall, type Interceptor } from "./endpoint/client.js";
export { authNoneFlavor, authRegistry, authSysFlavor, defaultAuthFlavors, processAuthSys, type AuthContext, type AuthFlavorEntry, type AuthRegistry, type AuthVerifier } from "./auth/index.js";
export { defaultVerifiers, ServerCore, type AuthCheck, type FlavorVerifier, type ServerCloseOptions, type ServerOptions, type ServeNext, type ServerCall, type ServerInterceptor } from "./endpoint/server.js";
export { RpcError, type RpcStatus } from "./rpc/errors.js";
export { AcceptStat, AuthFlavor, AuthStat, AUTH_NONE, type AuthSysParams, type OpaqueAuth } from "./rpc/message.js";
export { callChannel, callTracing, serveChannel, serveTracing, type CallHook, type CallRecord, type CallStatus, type CallTrace, type CallTraceChannel, type CallTracing, type CallTracingHandlers, type Phases } from "./call/timing.js";
export type { ClientTransport, Dispatcher, ListenAddress, ReplySink } from "./transport/types.js";
export { connect, rpcbind, type ConnectOptions, type ShmConnectOptions } from "./connect.js";
export { createServer, Server, type ListenOptions } from "./listen.js";
export { Rpcbind, RpcbindSession, type Registration, type RpcbindEndpoint, type RegisterOptions } from "./binding/rpcbind.js";
export { defaultStreamLimits, type StreamLimits, type StreamStats } from "./transports/limits.js";
export type { DuplicateCacheOptions, DuplicateCacheStats } from "./transports/drc.js";
