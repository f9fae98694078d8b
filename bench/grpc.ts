import { once } from "node:events";
import { createServer as createH2Server, type Http2Server } from "node:http2";
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { Bench, BlobSchema, EmptySchema, type Blob, type Empty } from "./proto/gen/bench_pb.js";

/**
 * What a Node user would pick instead of ONC RPC: the same two calls (bench/proto/bench.proto:
 * Null() and a 1440-byte Echo()) over @grpc/grpc-js and over Connect-ES (connect-node, gRPC
 * protocol over HTTP/2, cleartext), each server in a process of its own (bench/peer.ts),
 * each client in the benchmark's process.
 *
 * Both use the messages protoc-gen-es generated from bench.proto. grpc-js gets a service
 * definition whose (de)serializers are protobuf-es's toBinary/fromBinary, as its generated
 * stubs would supply theirs; the serialized bytes are wrapped in a Buffer, not copied.
 * Connect's client is told to accept no compression: by default its server would gzip
 * replies over 1 KiB (the echo), which would measure zlib rather than the RPC stack.
 */

/** One client of the Bench service, called the way its library's users call it. */
export interface UnaryClient {
  readonly label: string;
  null(): Promise<unknown>;
  echo(data: Uint8Array): Promise<Uint8Array>;
  close(): void;
}

export interface CompetitorServer {
  readonly port: number;
  close(): Promise<void>;
}

const empty: Empty = create(EmptySchema);

function serialize<D extends DescMessage>(desc: D): (m: MessageShape<D>) => Buffer {
  return (m) => {
    const b = toBinary(desc, m);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  };
}

function deserialize<D extends DescMessage>(desc: D): (b: Buffer) => MessageShape<D> {
  return (b) => fromBinary(desc, b);
}

function unary<I extends DescMessage, O extends DescMessage>(name: string, input: I, output: O): grpc.MethodDefinition<MessageShape<I>, MessageShape<O>> {
  return {
    path: `/${Bench.typeName}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: serialize(input),
    requestDeserialize: deserialize(input),
    responseSerialize: serialize(output),
    responseDeserialize: deserialize(output),
    originalName: name,
  };
}

const grpcDefinition = {
  null: unary(Bench.method.null.name, EmptySchema, EmptySchema),
  echo: unary(Bench.method.echo.name, BlobSchema, BlobSchema),
} satisfies grpc.ServiceDefinition;

export async function startGrpcServer(): Promise<CompetitorServer> {
  const server = new grpc.Server();
  server.addService(grpcDefinition, {
    null: (_call: grpc.ServerUnaryCall<Empty, Empty>, done: grpc.sendUnaryData<Empty>) => done(null, empty),
    echo: (call: grpc.ServerUnaryCall<Blob, Blob>, done: grpc.sendUnaryData<Blob>) => done(null, call.request),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    port,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

export async function startConnectServer(): Promise<CompetitorServer> {
  const handler = connectNodeAdapter({
    routes: (router) => router.service(Bench, { null: () => empty, echo: (req) => req }),
  });
  const server: Http2Server = createH2Server(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const a = server.address();
  return {
    port: typeof a === "object" && a !== null ? a.port : 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type Callback<T> = (e: grpc.ServiceError | null, r?: T) => void;
interface GrpcStub {
  null(req: Empty, done: Callback<Empty>): void;
  echo(req: Blob, done: Callback<Blob>): void;
}

export async function grpcClient(port: number): Promise<UnaryClient> {
  const Stub = grpc.makeGenericClientConstructor(grpcDefinition, "Bench");
  const client = new Stub(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())));
  const stub = client as unknown as GrpcStub;
  return {
    label: "grpc-js",
    null: () => new Promise((resolve, reject) => stub.null(empty, (e, r) => (e ? reject(e) : resolve(r)))),
    echo: (data) => new Promise((resolve, reject) => stub.echo(create(BlobSchema, { data }), (e, r) => (e || r === undefined ? reject(e ?? new Error("grpc-js: no reply")) : resolve(r.data)))),
    close: () => client.close(),
  };
}

export async function connectClient(port: number): Promise<UnaryClient> {
  const baseUrl = `http://127.0.0.1:${port}`;
  const sessionManager = new Http2SessionManager(baseUrl);
  const client = createClient(Bench, createGrpcTransport({ baseUrl, sessionManager, acceptCompression: [] }));
  await client.null(empty);
  return {
    label: "connect",
    null: () => client.null(empty),
    echo: async (data) => (await client.echo({ data })).data,
    close: () => sessionManager.abort(),
  };
}
