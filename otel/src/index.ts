import { AsyncLocalStorage } from "node:async_hooks";
import { tracingChannel } from "node:diagnostics_channel";
import { context as contexts, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type TracerProvider } from "@opentelemetry/api";
import type { CallTrace } from "@rpcgen-ts/runtime";

/**
 * OpenTelemetry spans for rpcgen-ts calls: a CLIENT span per call a channel sends (each retry
 * is a call of its own) and a SERVER span per call a server answers, from the runtime's
 * tracing channels `rpcgen-ts:call` and `rpcgen-ts:serve`, named and attributed as the
 * OpenTelemetry RPC semantic conventions say (rpc.system, rpc.service, rpc.method; span
 * name `service/method`). The channels are found by name, so this works with whichever copy
 * of the runtime an application loads.
 */

export interface OncRpcInstrumentationOptions {
  /** Where spans are made (default: the global provider, `trace.getTracerProvider()`). */
  readonly tracerProvider?: TracerProvider;
  /** Which side to trace (default both). */
  readonly client?: boolean;
  readonly server?: boolean;
}

/** The `rpc.system` of ONC RPC (RFC 5531). */
export const RPC_SYSTEM = "onc_rpc";

const instrumentationName = "@rpcgen-ts/otel";
const instrumentationVersion = "0.1.0";

/** The server span of the call a handler is serving, for client calls made inside it. */
const serving = new AsyncLocalStorage<Context>();

/**
 * The context of the served call the caller runs in (inside a handler, and what it awaits),
 * with its SERVER span: for `context.with(serverContext(), …)` when work of the handler's own
 * should be a child of the call's span. Client calls made inside a handler take it as their
 * parent without it.
 */
export function serverContext(): Context | undefined {
  return serving.getStore();
}

/**
 * Subscribes to the runtime's tracing channels and makes spans; returns the function that
 * stops it. With nothing subscribed the runtime measures nothing, so an application pays
 * for tracing only while this is on.
 */
export function instrumentOncRpc(options: OncRpcInstrumentationOptions = {}): () => void {
  const provider = options.tracerProvider ?? trace.getTracerProvider();
  const tracer = provider.getTracer(instrumentationName, instrumentationVersion);
  const spans = new WeakMap<CallTrace, Span>();
  const stops: (() => void)[] = [];

  /** Ends the call's span once the call has ended, at most once. */
  const finish = (t: CallTrace) => {
    const span = spans.get(t);
    if (span === undefined || t.status === undefined) return;
    spans.delete(t);
    span.setAttribute("rpc.onc_rpc.status", t.status);
    if (t.status !== "SUCCESS") {
      const error = t.error;
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : t.status });
      span.setAttribute("error.type", t.status);
    }
    span.end();
  };

  if (options.client !== false) {
    const channel = tracingChannel<unknown, CallTrace>("rpcgen-ts:call");
    const handlers = {
      start(t: CallTrace) {
        // The application's active span, else the served call this call is made from.
        const active = contexts.active();
        const parent = trace.getSpan(active) !== undefined ? active : (serving.getStore() ?? active);
        spans.set(t, tracer.startSpan(spanName(t), { kind: SpanKind.CLIENT, startTime: t.startTime, attributes: attributesOf(t, "client") }, parent));
      },
      // `end` closes calls that ended before it (synchronous calls, calls that could not be sent); asyncEnd the others.
      end: finish,
      asyncStart() {},
      asyncEnd: finish,
      error() {},
    };
    channel.subscribe(handlers);
    stops.push(() => channel.unsubscribe(handlers));
  }

  if (options.server !== false) {
    const channel = tracingChannel<unknown, CallTrace>("rpcgen-ts:serve");
    // The server runs a call (authentication, decoding, the handler) inside start.runStores:
    // the span is made there, and its context is the store the handler runs in.
    const open = (t: CallTrace): Context => {
      let span = spans.get(t);
      if (span === undefined) {
        span = tracer.startSpan(spanName(t), { kind: SpanKind.SERVER, startTime: t.startTime, attributes: attributesOf(t, "server") }, ROOT_CONTEXT);
        spans.set(t, span);
      }
      return trace.setSpan(ROOT_CONTEXT, span);
    };
    channel.start.bindStore(serving, open);
    const handlers = {
      start(t: CallTrace) {
        open(t);
      },
      end: finish,
      asyncStart() {},
      asyncEnd: finish,
      error() {},
    };
    channel.subscribe(handlers);
    stops.push(() => {
      channel.unsubscribe(handlers);
      channel.start.unbindStore(serving);
    });
  }

  return () => {
    for (const stop of stops.splice(0)) stop();
  };
}

/** `rpc.service/rpc.method`, as the conventions name RPC spans; numbers where the names are not known. */
function spanName(t: CallTrace): string {
  const service = t.service ?? `${t.program}.${t.version}`;
  return `${service}/${t.procedureName ?? t.procedure}`;
}

/** network.transport as the conventions spell it (inproc and shm have none). */
const networkTransport: Partial<Record<CallTrace["transport"], string>> = { tcp: "tcp", udp: "udp", unix: "unix" };

function attributesOf(t: CallTrace, side: "client" | "server"): Attributes {
  const a: Attributes = {
    "rpc.system": RPC_SYSTEM,
    "rpc.service": t.service ?? `${t.program}.${t.version}`,
    "rpc.method": t.procedureName ?? String(t.procedure),
    "rpc.onc_rpc.program": t.program,
    "rpc.onc_rpc.version": t.version,
    "rpc.onc_rpc.procedure": t.procedure,
    "rpc.onc_rpc.xid": t.xid,
  };
  const transport = networkTransport[t.transport];
  if (transport !== undefined) a["network.transport"] = transport;
  const peer = parsePeer(t.peer);
  if (peer !== undefined) {
    a["network.peer.address"] = peer.address;
    a["network.peer.port"] = peer.port;
    if (side === "client") {
      a["server.address"] = peer.address;
      a["server.port"] = peer.port;
    }
  }
  return a;
}

/** "127.0.0.1:111" or "[::1]:111" (as the runtime prints peers); undefined for "unix", "inproc" and the like. */
export function parsePeer(peer: string | undefined): { address: string; port: number } | undefined {
  if (peer === undefined) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(peer);
  if (m === null) return undefined;
  const port = Number(m[3]);
  return port <= 0xffff ? { address: m[1] ?? m[2]!, port } : undefined;
}
