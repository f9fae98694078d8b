import { RpcError } from "../rpc/errors.js";
import type { ClientTransport, Dispatcher, ReplySink, SendMessage } from "../transport/types.js";
import { CopyLedger } from "../xdr/ledger.js";

/**
 * The in-process transport: client and server in one thread, no sockets, no wire. The
 * server reads the call straight out of the client's buffer, and the client the reply out
 * of the server's, so what it measures is the software alone. Delivery waits for a
 * microtask, as a call through any transport returns to the event loop before its reply.
 */
export function connectInproc(server: Dispatcher): ClientTransport {
  const queue: { message: Uint8Array; buffer: Uint8Array; release: (b: Uint8Array) => void }[] = [];
  let scheduled = false;
  let open = true;
  // Nothing is copied to deliver a message: each side reads the other's buffer.
  const none = new CopyLedger();
  // The "connection" is the client's channel: its close is what handlers are told.
  const lost = new AbortController();

  const sink: ReplySink = {
    kind: "inproc",
    headerRoom: 0,
    readsInPlace: true,
    peer: "inproc",
    signal: lost.signal,
    send(buffer, end, _ledger, release) {
      if (open) transport.onMessage(buffer.subarray(0, end), none);
      release(buffer);
    },
  };

  // One drain function for every call: no closure per message.
  const drain = () => {
    scheduled = false;
    for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
      if (open) server.dispatch(m.message, sink, none);
      m.release(m.buffer);
    }
  };

  const send: SendMessage = (buffer, end, _ledger, release) => {
    queue.push({ message: buffer.subarray(0, end), buffer, release });
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(drain);
    }
  };

  const transport: ClientTransport = {
    kind: "inproc",
    peer: "inproc",
    headerRoom: 0,
    datagram: false,
    readsInPlace: true,
    send,
    onMessage: () => false,
    onClose: () => {},
    close: async () => {
      open = false;
      lost.abort(new RpcError("CLOSED", "the in-process channel closed"));
      transport.onClose(undefined);
    },
  };
  return transport;
}
