/** Which direction failed. */
export type XdrOp = "encode" | "decode";

/**
 * A value that cannot be encoded, or bytes that cannot be decoded, with where
 * it happened: the type path (outermost first) and the byte offset.
 *
 *   decode rpcb.r_addr at byte 36: string of 70 bytes exceeds bound 64
 *
 * Generated codecs add path segments with `within()` as the error unwinds
 * through struct fields, union arms and array indices, so the primitive that
 * throws needs to know nothing about the type it is part of.
 */
export class XdrError extends Error {
  override readonly name = "XdrError";
  readonly op: XdrOp;
  /** Offset of the offending item, relative to the start the writer/reader was given. */
  readonly offset: number;
  readonly detail: string;
  /** Type path segments, outermost first; array indices are segments like "[3]". */
  readonly path: string[];

  constructor(op: XdrOp, offset: number, detail: string, path: string[] = []) {
    super(formatMessage(op, offset, detail, path));
    this.op = op;
    this.offset = offset;
    this.detail = detail;
    this.path = path;
  }

  /** Prepends a path segment and rebuilds the message; returns this so callers can rethrow it. */
  within(segment: string): this {
    this.path.unshift(segment);
    this.message = formatMessage(this.op, this.offset, this.detail, this.path);
    return this;
  }
}

function formatMessage(op: XdrOp, offset: number, detail: string, path: readonly string[]): string {
  const where = path.length === 0 ? "" : ` ${joinPath(path)}`;
  return `${op}${where} at byte ${offset}: ${detail}`;
}

/** ["list", "items", "[3]", "name"] -> "list.items[3].name" */
function joinPath(path: readonly string[]): string {
  let s = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const seg = path[i]!;
    s += seg.startsWith("[") ? seg : `.${seg}`;
  }
  return s;
}
