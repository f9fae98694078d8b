/**
 * NIS (the system's yp.x), with YPPROC_ALL read whole. Its reply is not the single
 * ypresp_all that yp.x declares but a stream of them in one reply — `more` TRUE and an
 * entry, again and again, then `more` FALSE — which libnsl's xdr_ypall reads in a loop.
 * The generated `YpversClient.ypprocAll` decodes the first and refuses the rest as trailing
 * bytes; `ypprocAll` here loops over the generated ypresp_all codec the same way.
 */
import type { CallOptions, Channel, ClientOptions, XdrCodec, XdrReader } from "@rpcgen-ts/runtime";
import { type ypreq_nokey, type ypresp_all, type ypresp_key_val, ypresp_allCodec, Ypvers } from "./gen/yp.js";

export * from "./gen/yp.js";

/** The reply of YPPROC_ALL: every entry of the stream, in the order the server sent them. */
const ypallStream: XdrCodec<ypresp_key_val[]> = {
  name: "ypresp_all stream",
  min: ypresp_allCodec.min,
  max: undefined,
  encode() {
    throw new TypeError("the YPPROC_ALL stream is a reply only: it is decoded, never encoded");
  },
  decode(r: XdrReader): ypresp_key_val[] {
    const entries: ypresp_key_val[] = [];
    // Each item is at least its 4-byte `more`: a stream cannot outgrow its message.
    for (let item: ypresp_all = ypresp_allCodec.decode(r); item.more; item = ypresp_allCodec.decode(r)) entries.push(item.val);
    return entries;
  },
};

const ypprocAllProcedure = { ...Ypvers.procedures.ypprocAll, result: ypallStream };

/**
 * YPPROC_ALL: every item of a map's stream, in order, as one array. Each carries its own
 * `stat`: YP_TRUE with a key and value, or (ypserv sends it as the only item) the reason the
 * map cannot be read — YP_NOMAP, YP_NODOM, YP_BADDB. Use it over TCP: a map rarely fits a
 * datagram.
 */
export function ypprocAll(channel: Channel, request: ypreq_nokey, client?: ClientOptions, options?: CallOptions): Promise<ypresp_key_val[]> {
  return channel.call(Ypvers, ypprocAllProcedure, request, client, options);
}
