import { runLoads, runStores, type Strategy } from "./strategy.js";

/**
 * Descriptor ("shared descriptors between client stub and kernel", Thekkath and Levy, 1993): the stub
 * describes the message — scalars into the descriptor's scratch area, opaque and string
 * arguments as entries pointing at the caller's bytes in place — and the runtime gathers
 * the entries into its send buffer in one pass. Decoding hands out opaque data as views
 * into the receive buffer.
 */
export const descriptor: Strategy = {
  mode: "descriptor",
  sink: "d",
  sinkType: "Descriptor",
  encodeMethod: "describe",
  opaqueViews: true,
  encodeAt: "d.length",
  encodeRun: (values, size, fresh) => runStores("d", values, size, fresh),
  decodeRun: runLoads,
};
