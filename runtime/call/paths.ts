import { rooted, type DescribingCodec, type XdrCodec } from "../xdr/codec.js";
import { Descriptor } from "../xdr/descriptor.js";
import { copyBytes, Prefix, type CopyLedger } from "../xdr/ledger.js";
import { XdrReader } from "../xdr/reader.js";
import { XdrWriter } from "../xdr/writer.js";
import { describeService, type Described, type HandledBy, type MarshalPath, type Mode, type ServicePath, type ServiceSpec } from "./service.js";

/**
 * Marshal paths: how a procedure's arguments and results reach the send buffer and leave the
 * receive buffer. There is one path per marshaling mode, and generated code names its path
 * when it builds its service descriptions (`classic.service({...})`), so the mode is decided
 * by the code that was generated: the runtime below only calls the path it is given.
 *
 * | path        | send                                                                      | copies         |
 * |-------------|---------------------------------------------------------------------------|----------------|
 * | classic     | the stub marshals into the path's own buffer; the path copies it behind the header | stub + runtime |
 * | synthesized | the generated encoder marshals straight into the send buffer              | runtime        |
 * | descriptor  | the generated code describes; the path gathers into the send buffer       | runtime        |
 *
 * A copy is a pass that moves a message's bytes from one place to another, counted once with
 * the bytes it wrote. Receiving mirrors sending: classic copies the body out into the stub's
 * buffer and decodes there (two passes); synthesized decodes straight from the receive buffer
 * (one); descriptor-mode codecs hand out opaque data as views into it, which copies nothing.
 */

/** `path.service(spec)`, or without a spec the function that takes one (`service<Handlers>()`). */
function serviceOf<C extends XdrCodec<unknown>>(path: MarshalPath<C>, spec: ServiceSpec<C> | undefined): unknown {
  return spec === undefined ? (s: ServiceSpec<C>) => describeService(path, s) : describeService(path, spec);
}

/** Nothing to read for `void`: no reader to set up (Null() is every benchmark's first call). */
const empty = new XdrReader(new Uint8Array(0));

class ClassicPath implements ServicePath<XdrCodec<unknown>> {
  readonly mode = "classic";
  readonly lendable = false;
  readonly decodesViews = false;
  /** The classic stub's own message buffers, out and in: the stage the other paths skip. */
  private readonly stub = new XdrWriter(1024);
  private readonly body = new Prefix();
  private stubIn = new Uint8Array(1024);
  private readonly reader = new XdrReader(new Uint8Array(0));

  service<const S extends ServiceSpec<XdrCodec<unknown>>>(spec: S): Described<S, XdrCodec<unknown>>;
  service<H>(): <const S extends ServiceSpec<XdrCodec<unknown>>>(spec: S) => Described<S, XdrCodec<unknown>> & HandledBy<H>;
  service(spec?: ServiceSpec<XdrCodec<unknown>>): unknown {
    return serviceOf(this, spec);
  }

  encode<T>(codec: XdrCodec<T>, value: T, w: XdrWriter, ledger: CopyLedger | undefined, name: string): void {
    const stub = this.stub;
    stub.reset();
    try {
      codec.encode(stub, value);
    } catch (e) {
      throw rooted(e, name);
    }
    // The stub's buffer starts at 0: its message is a prefix of it, seen through one view.
    const body = this.body.get(stub.buf, stub.pos);
    ledger?.record("stub", body.length);
    const o = w.reserve(body.length);
    copyBytes(ledger, "runtime", w.buf, o, body);
  }

  decode<T>(
    codec: XdrCodec<T>,
    message: Uint8Array,
    offset: number,
    end: number,
    ledger: CopyLedger | undefined,
    name: string,
    reader: XdrReader,
    into?: Uint8Array,
  ): T {
    // Only the stub's reader reads the body: the caller's hands out nothing.
    reader.viewsTaken = false;
    const r = this.reader;
    try {
      if (codec.max === 0 && end === offset) return codec.decode(empty);
      const n = end - offset;
      if (this.stubIn.length < n) this.stubIn = new Uint8Array(Math.max(n, this.stubIn.length * 2));
      copyBytes(ledger, "runtime", this.stubIn, 0, message.subarray(offset, end));
      r.reset(this.stubIn, 0, n);
      if (into !== undefined) r.lend(into);
      const value = codec.decode(r);
      r.finish();
      ledger?.record("stub", n);
      return value;
    } catch (e) {
      throw rooted(e, name);
    }
  }
}

/** The paths that decode straight from the receive buffer. */
abstract class InPlacePath {
  abstract readonly mode: Mode;
  readonly lendable = true;
  abstract readonly decodesViews: boolean;

  decode<T>(
    codec: XdrCodec<T>,
    message: Uint8Array,
    offset: number,
    end: number,
    ledger: CopyLedger | undefined,
    name: string,
    reader: XdrReader,
    into?: Uint8Array,
  ): T {
    const r = reader;
    try {
      if (codec.max === 0 && end === offset) {
        r.viewsTaken = false;
        return codec.decode(empty);
      }
      r.reset(message, offset, end);
      if (into !== undefined) r.lend(into);
      const value = codec.decode(r);
      r.finish();
      if (ledger !== undefined) {
        // A decode that hands out views into the message moves no bytes: only what it placed
        // in lent memory, or copied out of shared memory rather than viewing it, is a copy.
        if (!this.decodesViews) ledger.record("runtime", end - offset);
        else if (r.lentBytes + r.copiedBytes > 0) ledger.record("runtime", r.lentBytes + r.copiedBytes);
      }
      return value;
    } catch (e) {
      throw rooted(e, name);
    }
  }
}

class SynthesizedPath extends InPlacePath implements ServicePath<XdrCodec<unknown>> {
  readonly mode = "synthesized";
  readonly decodesViews = false;

  service<const S extends ServiceSpec<XdrCodec<unknown>>>(spec: S): Described<S, XdrCodec<unknown>>;
  service<H>(): <const S extends ServiceSpec<XdrCodec<unknown>>>(spec: S) => Described<S, XdrCodec<unknown>> & HandledBy<H>;
  service(spec?: ServiceSpec<XdrCodec<unknown>>): unknown {
    return serviceOf(this, spec);
  }

  encode<T>(codec: XdrCodec<T>, value: T, w: XdrWriter, ledger: CopyLedger | undefined, name: string): void {
    // Error offsets count from the body, as in the other paths.
    const messageStart = w.start;
    const start = (w.start = w.pos);
    try {
      codec.encode(w, value);
    } catch (e) {
      throw rooted(e, name);
    } finally {
      w.start = messageStart;
    }
    ledger?.record("runtime", w.pos - start);
  }
}

class DescriptorPath extends InPlacePath implements ServicePath<DescribingCodec<unknown>> {
  readonly mode = "descriptor";
  readonly decodesViews = true;
  private readonly descriptor = new Descriptor();

  service<const S extends ServiceSpec<DescribingCodec<unknown>>>(spec: S): Described<S, DescribingCodec<unknown>>;
  service<H>(): <const S extends ServiceSpec<DescribingCodec<unknown>>>(spec: S) => Described<S, DescribingCodec<unknown>> & HandledBy<H>;
  service(spec?: ServiceSpec<DescribingCodec<unknown>>): unknown {
    if (spec === undefined) return (s: ServiceSpec<DescribingCodec<unknown>>) => this.service(s);
    for (const p of Object.values(spec.procedures)) {
      for (const [what, codec] of [["arguments", p.args], ["result", p.result]] as const) {
        // The type says so too; this catches code that got round the types.
        if (typeof (codec as Partial<DescribingCodec<unknown>>).describe !== "function") throw new TypeError(`${p.name}: the ${what} codec ${codec.name} cannot describe its values, so it is no descriptor-mode codec`);
      }
    }
    return describeService(this, spec);
  }

  encode<T>(codec: DescribingCodec<T>, value: T, w: XdrWriter, ledger: CopyLedger | undefined, name: string): void {
    const d = this.descriptor;
    d.reset();
    try {
      codec.describe(d, value);
    } catch (e) {
      d.reset();
      throw rooted(e, name);
    }
    const o = w.reserve(d.length);
    d.gatherInto(w.buf, o, ledger);
    d.reset();
  }
}

/** Classic (Sun rpcgen's three copies): the stub marshals into its own buffer. */
export const classic: ServicePath<XdrCodec<unknown>> = new ClassicPath();
/** Synthesized: generated encoders write straight into the transport's send buffer. */
export const synthesized: ServicePath<XdrCodec<unknown>> = new SynthesizedPath();
/** Descriptor: generated code describes values; the runtime gathers them in one pass. */
export const descriptor: ServicePath<DescribingCodec<unknown>> = new DescriptorPath();
