import { copyBytes, type CopyLedger } from "./ledger.js";
import type { XdrCodec } from "./xdr/codec.js";
import { rooted } from "./xdr/codec.js";
import { Descriptor } from "./xdr/descriptor.js";
import { XdrReader } from "./xdr/reader.js";
import { XdrWriter } from "./xdr/writer.js";

/**
 * The one path by which arguments and results reach the runtime's send buffer and leave its
 * receive buffer, in each marshaling mode (DESIGN §4). Transports hand the message on from
 * here; the copy ledger sees every pass:
 *
 * | mode        | send                                                        | copies          |
 * |-------------|-------------------------------------------------------------|-----------------|
 * | classic     | stub marshals into its own buffer; runtime copies it behind the header | stub + runtime |
 * | synthesized | the installed encoder marshals straight into the send buffer | runtime        |
 * | descriptor  | the stub describes; the runtime gathers into the send buffer | runtime        |
 *
 * A copy here is a pass that moves a message's bytes from one place to another, counted once
 * with the bytes it wrote (the seeds' "three copies" are three such passes). Receiving
 * mirrors sending: classic copies the body out into the stub's buffer and decodes there;
 * the other modes decode straight from the receive buffer, and descriptor-mode codecs hand
 * out opaque data as views into it — valid until the runtime reuses that buffer, which it
 * does not while the caller holds a result (each message gets its own receive buffer).
 */

export type Mode = "classic" | "synthesized" | "descriptor";

export class Marshaler {
  /** The runtime's send buffer; the header goes in its first `headerRoom` bytes. */
  private readonly send: XdrWriter;
  /** The classic stub's own message buffer. */
  private readonly stub = new XdrWriter(1024);
  private readonly descriptor = new Descriptor();
  private readonly reader = new XdrReader(new Uint8Array(0));
  private readonly stubReader = new XdrReader(new Uint8Array(0));
  private stubIn = new Uint8Array(1024);

  /** @param headerRoom bytes reserved before the body, for the transport's and RPC's headers */
  constructor(readonly headerRoom: number, initialCapacity = 4096) {
    this.send = new XdrWriter(Math.max(initialCapacity, headerRoom), { offset: headerRoom });
  }

  /**
   * Marshals `value` behind the header room and returns the send buffer from byte 0 to the
   * end of the body (a view, valid until the next call). `name` roots error paths.
   */
  marshal<T>(mode: Mode, codec: XdrCodec<T>, value: T, ledger: CopyLedger | undefined, name = codec.name): Uint8Array {
    const w = this.send;
    w.reset(undefined, this.headerRoom);
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
          break;
        }
        case "synthesized":
          codec.encode(w, value);
          ledger?.record("runtime", w.pos - this.headerRoom);
          break;
        case "descriptor": {
          const d = this.descriptor;
          d.reset();
          codec.describe!(d, value);
          const o = w.reserve(d.length);
          const n = d.gatherInto(w.buf, o);
          ledger?.record("runtime", n);
          break;
        }
      }
    } catch (e) {
      this.descriptor.reset();
      throw rooted(e, name);
    }
    return w.buf.subarray(0, w.pos);
  }

  /**
   * Decodes exactly one value from `message[offset, end)` (the body behind the headers). In
   * descriptor mode, opaque data in the result are views into `message`.
   */
  unmarshal<T>(
    mode: Mode,
    codec: XdrCodec<T>,
    message: Uint8Array,
    offset: number,
    end: number,
    ledger: CopyLedger | undefined,
    name = codec.name,
  ): T {
    try {
      if (mode === "classic") {
        const n = end - offset;
        if (this.stubIn.length < n) this.stubIn = new Uint8Array(Math.max(n, this.stubIn.length * 2));
        copyBytes(ledger, "runtime", this.stubIn, 0, message.subarray(offset, end));
        const r = this.stubReader;
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
