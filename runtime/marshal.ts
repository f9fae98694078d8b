import { copyBytes, type CopyLedger } from "./ledger.js";
import type { XdrCodec } from "./xdr/codec.js";
import { rooted } from "./xdr/codec.js";
import { Descriptor } from "./xdr/descriptor.js";
import { XdrReader } from "./xdr/reader.js";
import { XdrWriter } from "./xdr/writer.js";

/**
 * The one path by which arguments and results reach the runtime's send buffer and leave its
 * receive buffer, in each marshaling mode (DESIGN §4). The copy ledger sees every pass:
 *
 * | mode        | send                                                                    | copies         |
 * |-------------|-------------------------------------------------------------------------|----------------|
 * | classic     | the stub marshals into its own buffer; the runtime copies it behind the header | stub + runtime |
 * | synthesized | the installed encoder marshals straight into the send buffer           | runtime        |
 * | descriptor  | the stub describes; the runtime gathers into the send buffer            | runtime        |
 *
 * A copy here is a pass that moves a message's bytes from one place to another, counted once
 * with the bytes it wrote (the seeds' "three copies" are three such passes). Receiving
 * mirrors sending: classic copies the body out into the stub's buffer and decodes there;
 * the other modes decode straight from the receive buffer, and descriptor-mode codecs hand
 * out opaque data as views into it. Receive buffers are never reused by the runtime, so
 * such views stay valid for as long as the caller holds them.
 */

export type Mode = "classic" | "synthesized" | "descriptor";

export class Marshaler {
  /** The classic stub's own message buffer. */
  private readonly stub = new XdrWriter(1024);
  private readonly descriptor = new Descriptor();
  private readonly reader = new XdrReader(new Uint8Array(0));
  private stubIn = new Uint8Array(1024);

  /**
   * Appends `value`'s encoding to the send buffer `w` (after the headers already there).
   * `name` roots error paths (the procedure's name).
   */
  encode<T>(mode: Mode, codec: XdrCodec<T>, value: T, w: XdrWriter, ledger: CopyLedger | undefined, name = codec.name): void {
    try {
      switch (mode) {
        case "classic": {
          const stub = this.stub;
          stub.reset();
          codec.encode(stub, value);
          const body = stub.bytes();
          ledger?.record("stub", body.length);
          const o = w.reserve(body.length);
          copyBytes(ledger, "runtime", w.buf, o, body);
          return;
        }
        case "synthesized": {
          // Error offsets count from the body, as in the other modes.
          const messageStart = w.start;
          const start = (w.start = w.pos);
          try {
            codec.encode(w, value);
          } finally {
            w.start = messageStart;
          }
          ledger?.record("runtime", w.pos - start);
          return;
        }
        case "descriptor": {
          const d = this.descriptor;
          d.reset();
          codec.describe!(d, value);
          const o = w.reserve(d.length);
          const n = d.gatherInto(w.buf, o); // not inside `ledger?.…(…)`: it must run uncounted too
          ledger?.record("runtime", n);
          return;
        }
      }
    } catch (e) {
      this.descriptor.reset();
      throw rooted(e, name);
    }
  }

  /**
   * Decodes exactly one value from `message[offset, end)` (the body behind the headers). In
   * descriptor mode, opaque data in the result are views into `message`.
   */
  decode<T>(
    mode: Mode,
    codec: XdrCodec<T>,
    message: Uint8Array,
    offset: number,
    end: number,
    ledger: CopyLedger | undefined,
    name = codec.name,
  ): T {
    try {
      // void: nothing to read, so no reader to set up (Null() is every benchmark's first call).
      if (codec.max === 0 && end === offset) return codec.decode(this.reader);
      if (mode === "classic") {
        const n = end - offset;
        if (this.stubIn.length < n) this.stubIn = new Uint8Array(Math.max(n, this.stubIn.length * 2));
        copyBytes(ledger, "runtime", this.stubIn, 0, message.subarray(offset, end));
        const r = this.reader;
        r.reset(this.stubIn, 0, n);
        const value = codec.decode(r);
        r.finish();
        ledger?.record("stub", n);
        return value;
      }
      const r = this.reader;
      r.reset(message, offset, end);
      const value = codec.decode(r);
      r.finish();
      ledger?.record("runtime", end - offset);
      return value;
    } catch (e) {
      throw rooted(e, name);
    }
  }
}
