import { runLoads, runStores, type Strategy } from "./strategy.js";

/**
 * Synthesized ("marshal into the kernel buffer directly", Thekkath and Levy, 1993): straight-line code per
 * type and procedure, fixed-size runs collapsed to one room check and stores at precomputed
 * offsets, constant bounds folded. The runtime installs it and calls it on its own send
 * buffer, so the marshaling pass is the only software copy.
 */
export const synthesized: Strategy = {
  mode: "synthesized",
  sink: "w",
  sinkType: "XdrWriter",
  encodeMethod: "encode",
  opaqueViews: false,
  encodeAt: "w.pos - w.start",
  encodeRun: (values, size, fresh) => runStores("w", values, size, fresh),
  decodeRun: runLoads,
};
