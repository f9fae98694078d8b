/**
 * A free list of message buffers. A message's buffer is lent to the transport and comes
 * back when the bytes are on their way (a socket's write callback), so steady traffic
 * marshals into the same few buffers instead of allocating per call. A buffer that grew
 * while marshaling is kept in place of the smaller one.
 */
export class BufferPool {
  private readonly free: Uint8Array[] = [];

  constructor(
    private readonly size: number,
    private readonly keep = 64,
  ) {}

  take(): Uint8Array {
    return this.free.pop() ?? new Uint8Array(this.size);
  }

  give(buffer: Uint8Array): void {
    if (this.free.length < this.keep && buffer.byteOffset === 0 && buffer.length >= this.size) this.free.push(buffer);
  }
}
