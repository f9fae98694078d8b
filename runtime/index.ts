/**
 * The rpcgen-ts runtime, imported by generated code and by applications as
 * `rpcgen-ts/runtime`.
 */
export * from "./xdr/index.js";
export { CopyLedger, copyBytes, sliceBytes, type CopyCounts, type CopyLayer } from "./ledger.js";
export { Marshaler, type Mode } from "./marshal.js";
