/**
 * The OTLP logs wire formats, written by kevents: an `ExportLogsServiceRequest`
 * as binary protobuf and as OTLP/JSON, and the `partial_success` of an
 * `ExportLogsServiceResponse` read back from protobuf.
 *
 * Why not the OpenTelemetry JS SDK's serializers (@opentelemetry/otlp-transformer),
 * which the first version used: importing them loads the SDK's metrics,
 * trace and logs packages with them (the package exports only its index),
 * and a leader that sent through them measured 8 MiB over its memory
 * target (docs/BENCHMARKS.md, docs/OTLP.md). What is written here is the
 * few messages of opentelemetry-proto v1.4.0 that a log record needs. The
 * tests decode it with the official `.proto` definitions, and check it
 * against the SDK's serializers, kept as a test dependency: the same
 * records decode to the same message from both.
 *
 * Field numbers (opentelemetry/proto/...):
 * - collector/logs/v1 ExportLogsServiceRequest: resource_logs 1.
 *   ExportLogsServiceResponse: partial_success 1; ExportLogsPartialSuccess:
 *   rejected_log_records 1 (int64), error_message 2.
 * - logs/v1 ResourceLogs: resource 1, scope_logs 2. ScopeLogs: scope 1,
 *   log_records 2. LogRecord: time_unix_nano 1 (fixed64), severity_number 2,
 *   severity_text 3, body 5, attributes 6, dropped_attributes_count 7,
 *   observed_time_unix_nano 11 (fixed64).
 * - resource/v1 Resource: attributes 1, dropped_attributes_count 2. common/v1 InstrumentationScope:
 *   name 1, version 2. KeyValue: key 1, value 2. AnyValue: string_value 1,
 *   int_value 3 (int64).
 *
 * @module
 */

import type { OtlpAttributes, OtlpLogRecord, OtlpResource, OtlpScope } from "./_otlp_records.ts";

const encoder = new TextEncoder();

/** Wire types of protobuf tags. */
const VARINT = 0;
const FIXED64 = 1;
const LENGTH = 2;

/** A growing byte buffer with protobuf's primitive writes. */
class ProtoWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #reserve(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    // The whole buffer: bytes past `length` may be a message being moved down.
    const next = new Uint8Array(size);
    next.set(this.#buf);
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /** An unsigned varint below 2^53. */
  varint(n: number): void {
    this.#reserve(10);
    while (n >= 0x80) {
      this.#buf[this.length++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.#buf[this.length++] = n;
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** An int64 field (negative numbers as their 64-bit two's complement, 10 bytes). */
  int64(field: number, n: number): void {
    this.tag(field, VARINT);
    if (n >= 0) return this.varint(n);
    let v = BigInt.asUintN(64, BigInt(n));
    this.#reserve(10);
    while (v >= 0x80n) {
      this.#buf[this.length++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.#buf[this.length++] = Number(v);
  }

  fixed64(field: number, value: bigint): void {
    this.tag(field, FIXED64);
    this.#reserve(8);
    this.#view.setBigUint64(this.length, value, true);
    this.length += 8;
  }

  string(field: number, text: string): void {
    this.tag(field, LENGTH);
    // At most 3 bytes per UTF-16 unit: the text is encoded after room for
    // its length's varint, and moved down once the length is known.
    const max = text.length * 3;
    this.#reserve(max + 5);
    const prefixAt = this.length;
    const start = prefixAt + (max < 0x80 ? 1 : max < 0x4000 ? 2 : max < 0x200000 ? 3 : 5);
    const { written } = encoder.encodeInto(text, this.#buf.subarray(start));
    this.#prefix(prefixAt, start, written);
  }

  /** A nested message, written by `write` after room for its length, then moved down. */
  message(field: number, write: (w: ProtoWriter) => void): void {
    this.tag(field, LENGTH);
    this.#reserve(5);
    const prefixAt = this.length;
    const start = prefixAt + 5;
    this.length = start;
    write(this);
    this.#prefix(prefixAt, start, this.length - start);
  }

  /** Writes `size` as a varint at `prefixAt` and moves the `size` bytes at `start` right after it. */
  #prefix(prefixAt: number, start: number, size: number): void {
    this.length = prefixAt;
    this.varint(size);
    this.#buf.copyWithin(this.length, start, start + size);
    this.length += size;
  }

  bytes(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

/** `[seconds, nanoseconds]` as nanoseconds since the epoch; 0 (unknown) before it, which fixed64 cannot hold. */
function nanos([seconds, nanoseconds]: readonly [number, number]): bigint {
  const n = BigInt(seconds) * 1_000_000_000n + BigInt(nanoseconds);
  return n < 0n ? 0n : n;
}

function writeAttributes(w: ProtoWriter, field: number, attributes: OtlpAttributes): void {
  for (const [key, value] of Object.entries(attributes)) {
    w.message(field, (kv) => {
      kv.string(1, key);
      kv.message(2, (any) => {
        if (typeof value === "string") any.string(1, value);
        else any.int64(3, value);
      });
    });
  }
}

/** The records grouped as the request nests them: by resource, then by scope, in first-seen order. */
function grouped(
  records: readonly OtlpLogRecord[],
): Map<OtlpResource, Map<OtlpScope, OtlpLogRecord[]>> {
  const out = new Map<OtlpResource, Map<OtlpScope, OtlpLogRecord[]>>();
  for (const record of records) {
    let scopes = out.get(record.resource);
    if (scopes === undefined) out.set(record.resource, scopes = new Map());
    let list = scopes.get(record.instrumentationScope);
    if (list === undefined) scopes.set(record.instrumentationScope, list = []);
    list.push(record);
  }
  return out;
}

/** The binary protobuf `ExportLogsServiceRequest` of `records`. */
export function encodeProtobuf(records: readonly OtlpLogRecord[]): Uint8Array {
  const w = new ProtoWriter();
  for (const [resource, scopes] of grouped(records)) {
    w.message(1, (rl) => {
      rl.message(1, (r) => {
        writeAttributes(r, 1, resource.attributes);
        // Written though 0, proto3's default, as the SDK's serializers do.
        r.tag(2, VARINT);
        r.varint(0);
      });
      for (const [scope, list] of scopes) {
        rl.message(2, (sl) => {
          sl.message(1, (s) => {
            s.string(1, scope.name);
            if (scope.version !== undefined) s.string(2, scope.version);
          });
          for (const record of list) {
            sl.message(2, (lr) => {
              lr.fixed64(1, nanos(record.hrTime));
              if (record.severityNumber !== undefined) {
                lr.tag(2, VARINT);
                lr.varint(record.severityNumber);
              }
              if (record.severityText !== undefined) lr.string(3, record.severityText);
              lr.message(5, (body) => body.string(1, record.body));
              writeAttributes(lr, 6, record.attributes);
              lr.tag(7, VARINT);
              lr.varint(record.droppedAttributesCount);
              lr.fixed64(11, nanos(record.hrTimeObserved));
            });
          }
        });
      }
    });
  }
  return w.bytes();
}

/** OTLP/JSON `KeyValue`s: an integer's `intValue` is a decimal text, as for every 64-bit integer. */
function jsonAttributes(attributes: OtlpAttributes): unknown[] {
  return Object.entries(attributes).map(([key, value]) => ({
    key,
    value: typeof value === "string" ? { stringValue: value } : { intValue: String(value) },
  }));
}

/**
 * The OTLP/JSON `ExportLogsServiceRequest` of `records`: the protobuf JSON
 * mapping with lowerCamelCase keys, 64-bit integers as decimal texts and
 * enums as numbers, as OTLP/HTTP specifies.
 */
export function encodeJson(records: readonly OtlpLogRecord[]): Uint8Array {
  const resourceLogs = [...grouped(records)].map(([resource, scopes]) => ({
    resource: { attributes: jsonAttributes(resource.attributes), droppedAttributesCount: 0 },
    scopeLogs: [...scopes].map(([scope, list]) => ({
      scope: scope.version === undefined
        ? { name: scope.name }
        : { name: scope.name, version: scope.version },
      logRecords: list.map((record) => ({
        timeUnixNano: String(nanos(record.hrTime)),
        observedTimeUnixNano: String(nanos(record.hrTimeObserved)),
        ...(record.severityNumber === undefined ? {} : { severityNumber: record.severityNumber }),
        ...(record.severityText === undefined ? {} : { severityText: record.severityText }),
        body: { stringValue: record.body },
        attributes: jsonAttributes(record.attributes),
        droppedAttributesCount: record.droppedAttributesCount,
      })),
    })),
  }));
  return encoder.encode(JSON.stringify({ resourceLogs }));
}

/** What {@linkcode readPartialSuccess} finds in a protobuf answer. */
export interface RawPartialSuccess {
  rejectedLogRecords: number;
  errorMessage: string;
}

/** Reads a varint at `bytes[pos]`; its value (exact below 2^53) and the next position. */
function readVarint(bytes: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= bytes.length) throw new RangeError("Truncated varint");
    const b = bytes[pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, pos];
    scale *= 0x80;
  }
  throw new RangeError("Varint longer than 10 bytes");
}

/** The fields of a message: each tag's field number, wire type and value (a number, or the bytes of a LENGTH field). */
function* fields(bytes: Uint8Array): Generator<[number, number, number | Uint8Array]> {
  let pos = 0;
  while (pos < bytes.length) {
    const [tag, next] = readVarint(bytes, pos);
    pos = next;
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 0) throw new RangeError("Field number 0");
    switch (wireType) {
      case VARINT: {
        const [value, after] = readVarint(bytes, pos);
        pos = after;
        yield [field, wireType, value];
        break;
      }
      case FIXED64:
        if (pos + 8 > bytes.length) throw new RangeError("Truncated fixed64");
        pos += 8;
        break;
      case LENGTH: {
        const [size, after] = readVarint(bytes, pos);
        if (after + size > bytes.length) throw new RangeError("Truncated field");
        yield [field, wireType, bytes.subarray(after, after + size)];
        pos = after + size;
        break;
      }
      case 5: // fixed32
        if (pos + 4 > bytes.length) throw new RangeError("Truncated fixed32");
        pos += 4;
        break;
      default:
        throw new RangeError(`Unknown wire type ${wireType}`);
    }
  }
}

/**
 * The `partial_success` of a binary `ExportLogsServiceResponse`, or
 * undefined when it has none. Unknown fields are skipped, as protobuf
 * readers do; a malformed body throws RangeError.
 */
export function readPartialSuccess(bytes: Uint8Array): RawPartialSuccess | undefined {
  let found: RawPartialSuccess | undefined;
  for (const [field, wireType, value] of fields(bytes)) {
    if (field !== 1 || wireType !== LENGTH) continue;
    found ??= { rejectedLogRecords: 0, errorMessage: "" };
    for (const [f, t, v] of fields(value as Uint8Array)) {
      if (f === 1 && t === VARINT) found.rejectedLogRecords = v as number;
      if (f === 2 && t === LENGTH) {
        found.errorMessage = new TextDecoder("utf-8", { fatal: true }).decode(v as Uint8Array);
      }
    }
  }
  return found;
}
