import { connect as netConnect, type Socket } from "node:net";

/**
 * The Node floor of the NFS section: what a Node process pays to put a ready-made NFS call
 * on a TCP socket and take its reply off, with no RPC runtime at all. Each call is a
 * record-marked message built once (only its xid is patched per send, so the server's
 * duplicate-request cache never answers for it); replies are read with `onread` into one
 * reused buffer, never copied, and only their header is looked at: the reply must be
 * MSG_ACCEPTED, SUCCESS, with an empty verifier and NFS3_OK. Our client in each mode does
 * all this and marshals, checks and decodes too: its ratio to this row is the runtime's
 * cost, and this row's to C is Node's.
 */

export type FloorOp = "getattr" | "read" | "write";

export interface NodeFloor {
  /** `n` calls of `op`, `window` outstanding (default one), each walking to the next prepared request. */
  calls(op: FloorOp, n: number, window?: number): Promise<number>;
  close(): Promise<void>;
}

/** Bytes of a reply looked at: xid, msg_type, reply_stat, verifier flavor and length, accept_stat, nfsstat3. */
const HEAD = 28;

export function nodeFloor(port: number, requests: Readonly<Record<FloorOp, readonly Uint8Array[]>>): Promise<NodeFloor> {
  const head = new Uint8Array(HEAD);
  const headView = new DataView(head.buffer);
  // Reading a record: the mark's bytes so far, then the body's bytes still to come.
  let markBytes = 0;
  let mark = 0;
  let remaining = -1;
  let headBytes = 0;
  let queue: readonly Uint8Array[] = [];
  let next = 0;
  let xid = 1;
  let left = 0;
  let unsent = 0;
  let done: ((sum: number) => void) | undefined;
  let fail: ((e: Error) => void) | undefined;
  let failure: Error | undefined;

  const send = () => {
    unsent--;
    const request = queue[next++ % queue.length]!;
    new DataView(request.buffer, request.byteOffset).setUint32(4, xid++);
    socket.write(request);
  };
  const replied = () => {
    const status = headView.getUint32(8) | headView.getUint32(16) | headView.getUint32(20) | headView.getUint32(24);
    if (headBytes < HEAD || headView.getUint32(4) !== 1 || status !== 0) {
      failure = new Error(`the Node floor's call was not answered NFS3_OK: reply header ${Buffer.from(head.subarray(0, headBytes)).toString("hex")}`);
      socket.destroy(failure);
      return;
    }
    if (--left > 0) {
      if (unsent > 0) send();
      return;
    }
    const finish = done!;
    done = fail = undefined;
    finish(headView.getUint32(0));
  };
  const onRead = (n: number, buf: Uint8Array): boolean => {
    let i = 0;
    while (i < n) {
      if (remaining < 0) {
        mark = ((mark << 8) | buf[i++]!) >>> 0;
        if (++markBytes < 4) continue;
        if ((mark & 0x80000000) === 0) {
          failure = new Error("the Node floor reads one-fragment replies only");
          socket.destroy(failure);
          return false;
        }
        remaining = mark & 0x7fffffff;
        markBytes = mark = headBytes = 0;
      }
      const take = Math.min(remaining, n - i);
      if (headBytes < HEAD) {
        const h = Math.min(HEAD - headBytes, take);
        head.set(buf.subarray(i, i + h), headBytes);
        headBytes += h;
      }
      i += take;
      remaining -= take;
      if (remaining === 0) {
        remaining = -1;
        replied();
      }
    }
    return true;
  };

  const socket: Socket = netConnect({ host: "127.0.0.1", port, noDelay: true, onread: { buffer: Buffer.allocUnsafe(256 * 1024), callback: onRead } });
  socket.on("error", (e) => void (failure ??= e));
  socket.on("close", () => fail?.(failure ?? new Error("the server closed the Node floor's connection")));
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve({
        calls: (op, n, window = 1) =>
          new Promise<number>((res, rej) => {
            if (failure !== undefined) return rej(failure);
            queue = requests[op];
            left = unsent = n;
            done = res;
            fail = rej;
            // Replies may come in any order: only their count matters. A prepared request is
            // sent again only after all the others (there are more of them than the window).
            for (let k = Math.min(window, n); k > 0; k--) send();
          }),
        close: () =>
          new Promise<void>((res) => {
            if (socket.destroyed) return res();
            socket.once("close", () => res());
            socket.end();
          }),
      });
    });
  });
}
