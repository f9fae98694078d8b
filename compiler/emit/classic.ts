import type { Scalar } from "../layout.js";
import type { RunValue, Strategy } from "./strategy.js";

/**
 * Classic (Sun rpcgen's three copies): the stub marshals field by field, one primitive call
 * per item as Sun rpcgen's xdr_* routines do, into a message buffer of its own; the runtime
 * then copies that buffer behind the RPC header.
 */

function writerCall(s: Scalar): string {
  switch (s.kind) {
    case "hyper":
      return s.signed ? "hyper" : "uhyper";
    case "int":
      return s.min >= 0 ? "uint" : "int";
    case "enum":
      return "int";
    default:
      return s.kind;
  }
}

function readerCall(s: Scalar): string {
  // bool is read as an int: the walker checks 0/1 itself, so the error can name the field.
  return s.kind === "bool" ? "int" : writerCall(s);
}

export const classic: Strategy = {
  mode: "classic",
  sink: "w",
  sinkType: "XdrWriter",
  encodeMethod: "encode",
  opaqueViews: false,
  encodeAt: "w.pos - w.start",
  encodeRun: (values: readonly RunValue[]) => values.map((v) => `w.${writerCall(v.scalar)}(${v.local});`),
  // Every value goes to a local, `once` or not: each read moves the cursor, so reads keep their order.
  decodeRun: (values: readonly RunValue[], size: number) => ({
    code: values.map((v) => `const ${v.local} = r.${readerCall(v.scalar)}();`),
    // Checks run once the whole run is read: an item sits `size - offset` bytes behind the cursor.
    at: (offset: number) => `r.pos - r.start - ${size - offset}`,
    value: (v: RunValue) => v.local,
  }),
};
