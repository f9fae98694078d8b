import type { MessageTarget } from "../transport/types.js";
import type { XdrWriter } from "../xdr/writer.js";
import type { MarshalPath } from "../call/service.js";

/**
 * Where messages are marshaled, and how their buffers come back. Three cases:
 *
 * - the transport lends its own memory (shm's slots): marshal straight into it;
 * - the message will be kept — the receiver keeps views into it (descriptor mode over a
 *   same-process transport, where the receiver decodes straight out of the sender's
 *   buffer), or the transport keeps it (UDP's duplicate-request cache): a region of a large
 *   slab that is never reused — one allocation per slab, not per message, so the garbage
 *   collector is not pressed by a stream of external buffers;
 * - otherwise a buffer from a free list, lent to the transport and given back once the
 *   bytes are on their way (a socket's write callback), so steady traffic marshals into the
 *   same few buffers. A buffer a long message grew comes back to the list too (up to a
 *   bound on the bytes kept), so a stream of 64 KiB NFS WRITEs marshals into one buffer
 *   rather than growing a new one per call.
 */

const bufferSize = 8192;
/** The free list keeps at most this many bytes, and no buffer larger than this. */
const keepFreeBytes = 4 * 1024 * 1024;
const keepLargest = 1024 * 1024;
const slabSize = 256 * 1024;
/** A slab with less room than this left is retired (messages that outgrow their region move, uncounted as copies, to a buffer of their own). */
const slabMinRoom = 16 * 1024;
const keepFree = 64;

/** The release of a buffer that is not the runtime's to reuse. */
export function keep(): void {}

const enum Kind {
  Lent,
  Kept,
  Pooled,
}

export class MessageBuffers {
  private readonly free: Uint8Array[] = [];
  private freeBytes = 0;
  private slab = new Uint8Array(0);
  private slabUsed = 0;
  private kind = Kind.Pooled;
  private region: Uint8Array | undefined;
  private readonly release = (buffer: Uint8Array) => {
    const n = buffer.length;
    if (this.free.length < keepFree && n >= bufferSize && n <= keepLargest && this.freeBytes + n <= keepFreeBytes) {
      this.free.push(buffer);
      this.freeBytes += n;
    }
  };

  /** Points `w` at the buffer for the next message to `target`, behind its header room. */
  start(w: XdrWriter, target: MessageTarget, path: MarshalPath): void {
    const lent = target.acquire?.(path);
    if (lent !== undefined) {
      this.kind = Kind.Lent;
      w.reset(lent, target.headerRoom);
    } else if (target.retains === true || (path.decodesViews && target.readsInPlace)) {
      this.kind = Kind.Kept;
      if (this.slab.length - this.slabUsed < slabMinRoom) {
        this.slab = new Uint8Array(slabSize);
        this.slabUsed = 0;
      }
      this.region = this.slab.subarray(this.slabUsed);
      w.reset(this.region, target.headerRoom);
    } else {
      this.kind = Kind.Pooled;
      const reused = this.free.pop();
      if (reused !== undefined) this.freeBytes -= reused.length;
      w.reset(reused ?? new Uint8Array(bufferSize), target.headerRoom);
    }
  }

  /** After marshaling into `w`: how the transport gives the buffer back. */
  finish(w: XdrWriter): (buffer: Uint8Array) => void {
    switch (this.kind) {
      case Kind.Lent:
        return keep;
      case Kind.Kept:
        // 8-byte aligned, so the next message's words stay aligned too.
        if (w.buf === this.region) this.slabUsed += (w.pos + 7) & ~7;
        this.region = undefined;
        return keep;
      case Kind.Pooled:
        return this.release;
    }
  }
}
