/**
 * An OTLP/HTTP logs receiver for the otlp sink's tests: Deno.serve on
 * 127.0.0.1 (plain or TLS) that keeps every request's raw bytes, undoes
 * `Content-Encoding: gzip`, and decodes the `ExportLogsServiceRequest` with
 * the official OTLP definitions, independently of the sink's encoder:
 *
 * - the .proto files of opentelemetry-proto (v1.4.0) as the npm package
 *   @elastic/mockotlpserver ships them, parsed at run time by protobufjs
 *   (the package's `lib/proto.js` loads them into a protobufjs Root);
 * - binary protobuf is decoded by that Root's reflection; JSON is checked
 *   key by key against the same definitions (every key must be a field of
 *   its message, in the lowerCamelCase OTLP/JSON uses), then read by it.
 *
 * The sink encodes with @opentelemetry/otlp-transformer's hand-written
 * writer, which shares no code with protobufjs.
 *
 * Answers come from a script, as tests/_http_receiver.ts's; the default is
 * an empty `ExportLogsServiceResponse` in the request's encoding.
 *
 * @module
 */

import { getProtoRoot } from "@elastic/mockotlpserver/lib/proto.js";

/** What the tests use of a protobufjs reflected message type. */
interface ProtoType {
  decode(bytes: Uint8Array): unknown;
  encode(message: unknown): { finish(): Uint8Array };
  fromObject(object: unknown): unknown;
  toObject(message: unknown, options: Record<string, unknown>): Record<string, unknown>;
  verify(message: unknown): string | null;
  readonly fields: Record<string, { resolvedType: unknown; repeated: boolean }>;
}

const ROOT = getProtoRoot() as { lookupType(name: string): ProtoType };
const REQUEST = ROOT.lookupType("opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest");
const RESPONSE = ROOT.lookupType("opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse");

/** The decoded object form: int64/fixed64 as decimal texts, enums as numbers, bytes as base64. */
const OBJECT_OPTIONS = { longs: String, enums: Number, bytes: String, defaults: false };

/** A request as the receiver got it. */
export interface OtlpRequest {
  method: string;
  /** Path and query. */
  path: string;
  headers: Headers;
  /** The body as sent (gzipped when it says so). */
  raw: Uint8Array;
  /** The body once `Content-Encoding` is undone. */
  body: Uint8Array;
  /** The ExportLogsServiceRequest, in protobufjs' object form; undefined when it could not be decoded. */
  decoded?: Record<string, unknown>;
  /** Why it could not be decoded. */
  error?: string;
}

/** An answer of the receiver. */
export interface OtlpReply {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

type Fallback = OtlpReply | ((req: OtlpRequest) => OtlpReply | Promise<OtlpReply>);

/** Options for {@linkcode startOtlpReceiver}. */
export interface OtlpReceiverOptions {
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** The answer when the script is empty (default: an empty ExportLogsServiceResponse). */
  fallback?: Fallback;
}

/** A running receiver; dispose shuts it down. */
export interface OtlpReceiver extends AsyncDisposable {
  /** Base URL, `http(s)://127.0.0.1:PORT`. */
  readonly url: string;
  /** Every request, in arrival order. */
  readonly requests: OtlpRequest[];
  /** Answers the next requests with these, in order; then the fallback. */
  script(...replies: OtlpReply[]): void;
  setFallback(fallback: Fallback): void;
  shutdown(): Promise<void>;
}

/** Checks that every key of `value` is a field of `type`, recursively; the first stray key's path. */
function strayKey(value: unknown, type: ProtoType, path: string): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  for (const [key, item] of Object.entries(value)) {
    const field = type.fields[key];
    if (field === undefined) return `${path}.${key}`;
    const nested = field.resolvedType as ProtoType | null;
    if (nested === null || typeof nested.fields !== "object") continue;
    for (const [i, element] of (field.repeated ? item as unknown[] : [item]).entries()) {
      const stray = strayKey(element, nested, field.repeated ? `${path}.${key}[${i}]` : path);
      if (stray !== undefined) return stray;
    }
  }
  return undefined;
}

/** Decodes an ExportLogsServiceRequest body of the given Content-Type with the official definitions. */
export function decodeRequest(body: Uint8Array, contentType: string): Record<string, unknown> {
  if (contentType.startsWith("application/x-protobuf")) {
    return REQUEST.toObject(REQUEST.decode(body), OBJECT_OPTIONS);
  }
  if (contentType.startsWith("application/json")) {
    const json = JSON.parse(new TextDecoder().decode(body));
    const stray = strayKey(json, REQUEST, "ExportLogsServiceRequest");
    if (stray !== undefined) throw new Error(`${stray} is no field of the OTLP definitions`);
    return REQUEST.toObject(REQUEST.fromObject(json), OBJECT_OPTIONS);
  }
  throw new Error(`Unsupported Content-Type ${contentType}`);
}

/** An ExportLogsServiceResponse with `partial_success`, encoded with the official definitions. */
export function partialSuccessReply(
  rejectedLogRecords: number,
  errorMessage: string,
  protocol: "http/protobuf" | "http/json" = "http/protobuf",
): OtlpReply {
  const response = { partialSuccess: { rejectedLogRecords, errorMessage } };
  if (protocol === "http/json") {
    // OTLP/JSON writes an int64 as a decimal text.
    const json = {
      partialSuccess: { rejectedLogRecords: String(rejectedLogRecords), errorMessage },
    };
    return {
      status: 200,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(json),
    };
  }
  const message = RESPONSE.fromObject(response);
  const problem = RESPONSE.verify(message);
  if (problem !== null) throw new Error(problem);
  return {
    status: 200,
    headers: { "Content-Type": "application/x-protobuf" },
    body: RESPONSE.encode(message).finish(),
  };
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Starts a receiver on 127.0.0.1 and a free port. */
export function startOtlpReceiver(options: OtlpReceiverOptions = {}): OtlpReceiver {
  const requests: OtlpRequest[] = [];
  const queue: OtlpReply[] = [];
  let fallback: Fallback | undefined = options.fallback;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    ...(options.tls === undefined ? {} : { cert: options.tls.cert, key: options.tls.key }),
  }, async (req) => {
    const url = new URL(req.url);
    const raw = new Uint8Array(await req.arrayBuffer());
    const contentType = req.headers.get("content-type") ?? "";
    const received: OtlpRequest = {
      method: req.method,
      path: url.pathname + url.search,
      headers: req.headers,
      raw,
      body: raw,
    };
    try {
      if (req.headers.get("content-encoding") === "gzip") received.body = await gunzip(raw);
      received.decoded = decodeRequest(received.body, contentType);
    } catch (e) {
      received.error = e instanceof Error ? e.message : String(e);
    }
    requests.push(received);
    const reply = queue.shift() ??
      (typeof fallback === "function" ? await fallback(received) : fallback) ??
      (received.error !== undefined
        ? { status: 400, body: `cannot decode: ${received.error}` }
        : contentType.startsWith("application/json")
        ? { status: 200, headers: { "Content-Type": "application/json" }, body: "{}" }
        : { status: 200, headers: { "Content-Type": "application/x-protobuf" } });
    const body = typeof reply.body === "string" || reply.body === undefined
      ? reply.body ?? ""
      : reply.body as Uint8Array<ArrayBuffer>;
    return new Response(body, { status: reply.status, headers: reply.headers });
  });
  const scheme = options.tls === undefined ? "http" : "https";
  let closed = false;
  const shutdown = async () => {
    if (closed) return;
    closed = true;
    await server.shutdown();
  };
  return {
    url: `${scheme}://127.0.0.1:${server.addr.port}`,
    requests,
    script: (...replies) => void queue.push(...replies),
    setFallback: (f) => void (fallback = f),
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

/** An AnyValue of the object form as a plain value (int64 texts as numbers). */
function plain(value: Record<string, unknown> | undefined): unknown {
  if (value === undefined) return undefined;
  if ("stringValue" in value) return value.stringValue;
  if ("intValue" in value) return Number(value.intValue);
  if ("boolValue" in value) return value.boolValue;
  if ("doubleValue" in value) return value.doubleValue;
  return value;
}

/** Attributes (repeated KeyValue) as a record, in their order. */
function attributesOf(list: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of (list ?? []) as { key: string; value?: Record<string, unknown> }[]) {
    out[kv.key] = plain(kv.value);
  }
  return out;
}

/** One decoded log record, with its resource's and scope's attributes beside it. */
export interface FlatLogRecord {
  resource: Record<string, unknown>;
  scope: { name?: string; version?: string };
  timeUnixNano?: string;
  observedTimeUnixNano?: string;
  severityNumber?: number;
  severityText?: string;
  body?: unknown;
  attributes: Record<string, unknown>;
  /** Fields of the record not listed above (none is expected). */
  rest: Record<string, unknown>;
}

/** The log records of a decoded request, in the order the request holds them. */
export function flatten(decoded: Record<string, unknown> | undefined): FlatLogRecord[] {
  const out: FlatLogRecord[] = [];
  for (const rl of (decoded?.resourceLogs ?? []) as Record<string, unknown>[]) {
    const resource = attributesOf(
      (rl.resource as { attributes?: unknown } | undefined)?.attributes,
    );
    for (const sl of (rl.scopeLogs ?? []) as Record<string, unknown>[]) {
      const scope = (sl.scope ?? {}) as { name?: string; version?: string };
      for (const lr of (sl.logRecords ?? []) as Record<string, unknown>[]) {
        const {
          timeUnixNano,
          observedTimeUnixNano,
          severityNumber,
          severityText,
          body,
          attributes,
          ...rest
        } = lr;
        out.push({
          resource,
          scope: { ...scope },
          ...(timeUnixNano === undefined ? {} : { timeUnixNano: timeUnixNano as string }),
          ...(observedTimeUnixNano === undefined
            ? {}
            : { observedTimeUnixNano: observedTimeUnixNano as string }),
          ...(severityNumber === undefined ? {} : { severityNumber: severityNumber as number }),
          ...(severityText === undefined ? {} : { severityText: severityText as string }),
          ...(body === undefined ? {} : { body: plain(body as Record<string, unknown>) }),
          attributes: attributesOf(attributes),
          rest,
        });
      }
    }
  }
  return out;
}

/** The `kevents.key` attributes of a request's records. */
export function keysOf(req: OtlpRequest): string[] {
  return flatten(req.decoded).map((r) => String(r.attributes["kevents.key"]));
}
