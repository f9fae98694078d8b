import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { instrumentOncRpc, parsePeer } from "../otel/src/index.js";
import { connect, createServer, type HandlersOf, type ServiceDescription } from "../runtime/index.js";
import { exampleHandlers, loadExample, type Example } from "./example.js";
import { repoRoot } from "./support.js";

/**
 * The OpenTelemetry adapter, through the SDK's in-memory exporter: spans named and attributed
 * as the RPC semantic conventions say, on both sides, with errors and parents.
 */

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
let stop: () => void;
let example: Example;

beforeAll(async () => {
  example = await loadExample("synthesized");
  stop = instrumentOncRpc({ tracerProvider: provider });
});
afterAll(async () => {
  stop();
  await provider.shutdown();
});
afterEach(() => exporter.reset());

const byKind = (spans: ReadableSpan[], kind: SpanKind) => spans.filter((s) => s.kind === kind);

describe("@rpcgen-ts/otel", () => {
  it("makes a CLIENT and a SERVER span per call, with the RPC conventions' names and attributes", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    const { port } = await server.listen({ transport: "tcp", host: "127.0.0.1", port: 0 });
    const channel = await connect({ transport: "tcp", host: "127.0.0.1", port });
    try {
      expect(await example.client(channel).exprocAdd(2, 3)).toBe(5);
    } finally {
      await channel.close();
      await server.close();
    }
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(2);
    const [client] = byKind(spans, SpanKind.CLIENT);
    const [served] = byKind(spans, SpanKind.SERVER);
    for (const span of [client!, served!]) {
      expect(span.name).toBe("EXAMPLE_V1/EXPROC_ADD");
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.attributes).toMatchObject({
        "rpc.system": "onc_rpc",
        "rpc.service": "EXAMPLE_V1",
        "rpc.method": "EXPROC_ADD",
        "rpc.onc_rpc.program": 0x20000101,
        "rpc.onc_rpc.version": 1,
        "rpc.onc_rpc.procedure": 1,
        "rpc.onc_rpc.status": "SUCCESS",
        "network.transport": "tcp",
        "network.peer.address": "127.0.0.1",
      });
    }
    expect(client!.attributes["rpc.onc_rpc.xid"]).toBe(served!.attributes["rpc.onc_rpc.xid"]);
    expect(client!.attributes).toMatchObject({ "network.peer.port": port, "server.address": "127.0.0.1", "server.port": port });
    // The server sees the client's ephemeral port.
    expect(served!.attributes["network.peer.port"]).not.toBe(port);
    expect(served!.attributes["server.port"]).toBeUndefined();
    // The server's span lies within the client's.
    const ns = (t: [number, number]) => t[0] * 1e9 + t[1];
    expect(ns(served!.startTime)).toBeGreaterThanOrEqual(ns(client!.startTime) - 1e6);
    expect(ns(served!.endTime)).toBeLessThanOrEqual(ns(client!.endTime) + 1e6);
  });

  it("marks failed calls ERROR with the RpcError's status, on both sides", async () => {
    const server = createServer().register(example.service, exampleHandlers());
    const channel = await connect({ transport: "inproc", server });
    try {
      await expect(example.client(channel).exprocFail()).rejects.toMatchObject({ status: "SYSTEM_ERR" });
    } finally {
      await channel.close();
      await server.close();
    }
    const spans = exporter.getFinishedSpans();
    const [client] = byKind(spans, SpanKind.CLIENT);
    const [served] = byKind(spans, SpanKind.SERVER);
    expect(client!.status.code).toBe(SpanStatusCode.ERROR);
    expect(client!.status.message).toMatch(/^RPC SYSTEM_ERR: the server failed while executing EXPROC_FAIL/);
    expect(client!.attributes).toMatchObject({ "rpc.onc_rpc.status": "SYSTEM_ERR", "error.type": "SYSTEM_ERR" });
    expect(client!.events.map((e) => e.name)).toEqual(["exception"]);
    expect(served!.status).toEqual({ code: SpanStatusCode.ERROR, message: "this procedure always fails" });
    // No address on an in-process channel.
    expect(client!.attributes["network.peer.address"]).toBeUndefined();
    expect(client!.attributes["network.transport"]).toBeUndefined();
  });

  it("a call made inside a handler is a child of the handler's SERVER span", async () => {
    const backend = createServer().register(example.service, exampleHandlers());
    const inner = await connect({ transport: "inproc", server: backend });
    const front = createServer().register(example.service, {
      ...(exampleHandlers() as unknown as Record<string, unknown>),
      // Forwards to the backend after a turn of the event loop: the parent must survive the await.
      exprocAdd: async (a: number, b: number) => {
        await new Promise((r) => setTimeout(r, 1));
        return example.client(inner).exprocAdd(a, b);
      },
    } as HandlersOf<ServiceDescription>);
    const outer = await connect({ transport: "inproc", server: front });
    try {
      expect(await example.client(outer).exprocAdd(4, 5)).toBe(9);
    } finally {
      await outer.close();
      await inner.close();
      await front.close();
      await backend.close();
    }
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(4);
    const clients = byKind(spans, SpanKind.CLIENT);
    const servers = byKind(spans, SpanKind.SERVER);
    const id = (s: ReadableSpan) => s.spanContext().spanId;
    const parent = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    // outer client (root) → front server (root: ONC RPC carries no trace context) → inner client → backend server (root).
    const frontServer = servers.find((s) => clients.some((c) => parent(c) === id(s)));
    expect(frontServer).toBeDefined();
    const innerClient = clients.find((c) => parent(c) === id(frontServer!))!;
    expect(innerClient.spanContext().traceId).toBe(frontServer!.spanContext().traceId);
    const outerClient = clients.find((c) => c !== innerClient)!;
    expect(parent(outerClient)).toBeUndefined();
  });

  it("reads the peers as the runtime prints them, IPv6 in brackets", () => {
    expect(parsePeer("127.0.0.1:111")).toEqual({ address: "127.0.0.1", port: 111 });
    expect(parsePeer("[::1]:45144")).toEqual({ address: "::1", port: 45144 });
    expect(parsePeer("unix")).toBeUndefined();
    expect(parsePeer("inproc")).toBeUndefined();
    expect(parsePeer("::1:42440")).toBeUndefined();
    expect(parsePeer("host:99999")).toBeUndefined();
  });

  it("makes no span once stopped", async () => {
    stop();
    try {
      const server = createServer().register(example.service, exampleHandlers());
      const channel = await connect({ transport: "inproc", server });
      await example.client(channel).exprocAdd(1, 1);
      await channel.close();
      await server.close();
      expect(exporter.getFinishedSpans()).toEqual([]);
    } finally {
      stop = instrumentOncRpc({ tracerProvider: provider });
    }
  });

  it("is packed as a small package: its build, README and LICENSE; the API and the runtime as caret peers, no dependency", async () => {
    const dir = join(repoRoot, "otel");
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.peerDependencies).toEqual({ "@opentelemetry/api": expect.stringMatching(/^\^1\./), "@rpcgen-ts/runtime": expect.stringMatching(/^\^/) });
    const { stdout } = await promisify(execFile)("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: dir });
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path).sort();
    expect(files).toEqual(["LICENSE", "README.md", "dist/index.d.ts", "dist/index.js", "package.json"]);
  });
});
