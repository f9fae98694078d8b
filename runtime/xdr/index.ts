export { XdrError, type XdrOp } from "./error.js";
export { XdrWriter, type XdrWriterOptions } from "./writer.js";
export { XdrReader, type XdrReaderOptions } from "./reader.js";
export { Descriptor } from "./descriptor.js";
export {
  atIndex,
  borrowDescriptor,
  gatherDescriptor,
  returnDescriptor,
  fromXdr,
  invalidData,
  invalidValue,
  rooted,
  toXdr,
  voidCodec,
  within,
  type DescribingCodec,
  type XdrCodec,
} from "./codec.js";
export { padded } from "./pad.js";
export { utf8Length } from "./utf8.js";
export { CopyLedger, copyBytes, sliceBytes, type CopyCounts, type CopyLayer } from "./ledger.js";
