/**
 * The OTLP sink's encoding: an `ExportLogsServiceRequest` as binary
 * protobuf or as JSON (written by _otlp_wire.ts), gzip, and the
 * `partial_success` of an answer.
 *
 * @module
 */

import { encodeJson, encodeProtobuf, readPartialSuccess } from "./_otlp_wire.ts";
import type { OtlpLogRecord } from "./_otlp_records.ts";

/** How a request is encoded: `Content-Type` application/x-protobuf or application/json. */
export type OtlpProtocol = "http/protobuf" | "http/json";

/** The request body's `Content-Type` of each protocol. */
export const CONTENT_TYPES: Readonly<Record<OtlpProtocol, string>> = {
  "http/protobuf": "application/x-protobuf",
  "http/json": "application/json",
};

/** The `ExportLogsServiceRequest` of `records` in `protocol`. */
export function encodeLogs(
  records: readonly OtlpLogRecord[],
  protocol: OtlpProtocol,
): Uint8Array {
  return protocol === "http/json" ? encodeJson(records) : encodeProtobuf(records);
}

/** The bytes gzipped (Content-Encoding: gzip). */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  // Written straight into the stream: through a Blob's stream the process
  // kept ~10 MiB more after a few dozen requests of 500 records.
  const stream = new CompressionStream("gzip");
  const writer = stream.writable.getWriter();
  const written = writer.write(bytes as Uint8Array<ArrayBuffer>).then(() => writer.close());
  const [compressed] = await Promise.all([new Response(stream.readable).arrayBuffer(), written]);
  return new Uint8Array(compressed);
}

/** A receiver's `partial_success`: how many records it rejected, and why. */
export interface PartialSuccess {
  /** Log records the receiver rejected (`rejected_log_records`); 0 for a mere warning. */
  rejected: number;
  /** `error_message`, "" when none. */
  message: string;
  /**
   * The answer could not be read in full: HttpSender hands the body over as
   * UTF-8 text, in which a protobuf varint of 128 or more (a count, a long
   * message's length) is lost.
   */
  unreadable?: boolean;
}

/**
 * The `partial_success` of a 2xx answer's body (an `ExportLogsServiceResponse`
 * in the request's protocol), or undefined when it has none (an empty
 * answer, the usual one).
 */
export function partialSuccessOf(
  body: string,
  protocol: OtlpProtocol,
): PartialSuccess | undefined {
  if (body.trim() === "") return undefined;
  let response: { partialSuccess?: { rejectedLogRecords?: unknown; errorMessage?: unknown } };
  // Text that lost bytes (U+FFFD) cannot be trusted byte for byte.
  const lossy = protocol === "http/protobuf" && body.includes("\uFFFD");
  try {
    response = protocol === "http/json"
      ? JSON.parse(body)
      : { partialSuccess: readPartialSuccess(new TextEncoder().encode(body)) };
  } catch {
    return lossy ? { rejected: 0, message: "", unreadable: true } : undefined;
  }
  const partial = typeof response === "object" && response !== null
    ? response.partialSuccess
    : undefined;
  if (partial === undefined || partial === null) {
    return lossy ? { rejected: 0, message: "", unreadable: true } : undefined;
  }
  // JSON writes an int64 as a number or a decimal text.
  const rejected = Number(partial.rejectedLogRecords ?? 0);
  const message = typeof partial.errorMessage === "string" ? partial.errorMessage : "";
  if (!lossy && (rejected === 0 || !Number.isSafeInteger(rejected)) && message === "") {
    return undefined;
  }
  return {
    rejected: Number.isSafeInteger(rejected) && rejected > 0 ? rejected : 0,
    message,
    ...(lossy ? { unreadable: true } : {}),
  };
}
