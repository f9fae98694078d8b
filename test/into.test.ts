import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modes, type Mode } from "../compiler/modes.js";
import { connect, createServer, type CallRecord, type Channel, type ClientTransport, type Server } from "../runtime/index.js";
import { exampleHandlers, loadExample, payload, type Example } from "./example.js";

/**
 * `CallOptions.into`: a reply's opaque data decoded into memory the caller lends (as C's
 * `xdr_bytes` into a caller's buffer), in every mode, over a socket and in process: the
 * result is a view of that memory, the copy it costs is the one counted, and a descriptor-mode
 * result that takes no view of the reply lets the transport reuse the reply's memory.
 */

/** Records what the channel answers the transport for each message: whether it keeps views of it. */
function keptViews(channel: Channel): boolean[] {
  const link = (channel as unknown as { link: ClientTransport }).link;
  const deliver = link.onMessage;
  const kept: boolean[] = [];
  link.onMessage = (message, received) => {
    const keeps = deliver(message, received);
    kept.push(keeps);
    return keeps;
  };
  return kept;
}

function within(view: Uint8Array, memory: Uint8Array): boolean {
  return view.buffer === memory.buffer && view.byteOffset >= memory.byteOffset && view.byteOffset + view.length <= memory.byteOffset + memory.length;
}

describe.each(modes)("into, %s", (mode: Mode) => {
  let example: Example;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    example = await loadExample(mode);
    server = createServer().register(example.service, exampleHandlers());
    port = (await server.listen({ transport: "tcp", host: "127.0.0.1", port: 0 })).port;
  });

  afterAll(async () => {
    await server?.close();
  });

  describe.each(["tcp", "inproc"] as const)("over %s", (transport) => {
    let channel: Channel;
    let records: CallRecord[];
    let kept: boolean[];
    beforeAll(async () => {
      records = [];
      channel =
        transport === "tcp"
          ? await connect({ transport, host: "127.0.0.1", port, onCall: (r) => records.push(r) })
          : await connect({ transport, server, onCall: (r) => records.push(r) });
      kept = keptViews(channel);
    });
    afterAll(async () => {
      await channel?.close();
    });

    const reverse = (data: Uint8Array, into?: Uint8Array) =>
      channel.call(example.service, example.service.procedures.exprocReverse!, data, undefined, into === undefined ? undefined : { into }) as Promise<Uint8Array>;

    it("places the result's opaque data in the lent memory, one copy in every mode", async () => {
      const data = payload(1400);
      const plain = await reverse(data);
      const fresh = records.at(-1)!;
      const memory = new Uint8Array(8192).fill(0xee);
      const lent = memory.subarray(100, 5000);
      const result = await reverse(data, lent);
      const placed = records.at(-1)!;
      expect(result).toEqual(plain);
      expect(within(result, lent)).toBe(true);
      expect(result.byteOffset).toBe(lent.byteOffset); // the first opaque lands at the start
      expect(memory[99]).toBe(0xee); // nothing written outside what was lent
      expect(memory[100 + 1400]).toBe(0xee);
      // The same passes, the opaque's destination changed; in descriptor mode a copy instead of a view.
      const extra = mode === "descriptor" ? 1 : 0;
      expect(placed.copies.runtime).toBe(fresh.copies.runtime + extra);
      expect(placed.bytesCopied.runtime).toBe(fresh.bytesCopied.runtime + extra * 1400);
      expect(placed.copies.stub).toBe(fresh.copies.stub);
      expect(placed.copies.wire).toBe(fresh.copies.wire);
    });

    it("a result that took no view of the reply does not keep it: with into, or with no opaque at all", async () => {
      kept.length = 0;
      await reverse(payload(1000), new Uint8Array(1000));
      expect(await channel.call(example.service, example.service.procedures.exprocAdd!, [2, 3], undefined, undefined)).toBe(5);
      const viewing = await reverse(payload(1000));
      expect(within(viewing, new Uint8Array(0))).toBe(false);
      // Only a descriptor-mode result decoded as views keeps its reply (over a same-process
      // transport the message is the server's buffer, and the answer is the same).
      expect(kept).toEqual([false, false, mode === "descriptor"]);
    });

    it("an opaque too long for the room left is decoded as usual; results stay valid until the memory is reused", async () => {
      const small = new Uint8Array(100);
      const data = payload(500);
      const result = await reverse(data, small);
      expect(within(result, small)).toBe(false);
      expect(result).toEqual(data.slice().reverse());
      const memory = new Uint8Array(64);
      const first = await reverse(payload(64), memory);
      expect(first).toEqual(payload(64).reverse());
      await reverse(payload(64).map((x) => 255 - x), memory);
      expect(first).toEqual(payload(64).map((x) => 255 - x).reverse()); // the same memory, written again
    });

    it("refuses into that is not a Uint8Array, before sending", async () => {
      const before = records.length;
      const bad = { into: [1, 2, 3] as unknown as Uint8Array };
      await expect(channel.call(example.service, example.service.procedures.exprocReverse!, payload(4), undefined, bad)).rejects.toThrow(
        /EXPROC_REVERSE: into must be a Uint8Array, got 1,2,3/,
      );
      expect(records.length).toBe(before);
    });
  });
});
