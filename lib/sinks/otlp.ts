/**
 * The OTLP sink: sends each batch as OpenTelemetry logs over OTLP/HTTP, one
 * log record per Kubernetes event (the k8s events receiver's attributes,
 * see _otlp_records.ts and docs/OTLP.md), POSTed to the receiver's logs URL
 * (`<endpoint>/v1/logs`) as binary protobuf (`application/x-protobuf`, the
 * default) or JSON (`application/json`), gzipped unless told not to. The
 * batch is acknowledged once the receiver answers 2xx.
 *
 * Every record carries its idempotency key as the attribute `kevents.key`
 * (the event's uid/resourceVersion), so a backend can deduplicate replays.
 * Requests carry the fencing headers (sink.ts's FENCE_HEADERS) as the
 * webhook's do.
 *
 * Failures are the webhook's (_http.ts): network errors, timeouts, 5xx and
 * 429 are retried within the call, after the answer's Retry-After when it
 * has one; then the send rejects and the pump retries the batch, unless
 * `onFailure` is "drop". 400, 413 and 422 refuse the content: a refused
 * batch of several records is sent again in halves down to single records,
 * and a single record refused is set aside (the send's result), as the
 * webhook sink does; a receiver refusing every record of a batch is at
 * fault, not the records, and nothing is set aside.
 *
 * A 2xx answer may carry an OTLP `partial_success`: the receiver took the
 * request but rejected some records without saying which. That is logged
 * at WARN with the count and the receiver's message; nothing can be set
 * aside by key, and nothing is sent again (OTLP says such a request must
 * not be retried).
 *
 * The encoder is kevents' own (_otlp_wire.ts), checked by the tests
 * against the OpenTelemetry SDK's serializers and the official definitions.
 *
 * Header values and the URL's user info and query values never appear in
 * errors or logs.
 *
 * @module
 */

import { SplittingSender } from "./_split_send.ts";
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config/mod.ts";
import { type Clock, systemClock } from "../time/mod.ts";
import { type HttpSender, httpSenderFor, type HttpSinkOptions, type OnFailure } from "./_http.ts";
import { fencedHeaders, httpTarget } from "./_http_target.ts";
import {
  CONTENT_TYPES,
  encodeLogs,
  gzip,
  type OtlpProtocol,
  partialSuccessOf,
} from "./_otlp_encode.ts";
import { logRecords, type OtlpScope } from "./_otlp_records.ts";
import { readTlsFiles } from "./_tls_files.ts";
import {
  type EventRecord,
  type Fence,
  type SendOptions,
  type SendResult,
  type Sink,
} from "./sink.ts";

export type { OtlpProtocol } from "./_otlp_encode.ts";

/** Options for {@linkcode OtlpSink}. */
export interface OtlpSinkOptions extends HttpSinkOptions {
  /** The sink's name in logs, metrics and routes (default "otlp"; named sinks of kevents_sinks). */
  name?: string;
  /** The full logs URL (http or https), `/v1/logs` included; user info becomes Basic authorization. */
  url: string | URL;
  /** Encoding (default "http/protobuf"). */
  protocol?: OtlpProtocol;
  /** Body compression (default "gzip"). */
  compression?: "gzip" | "none";
  /** Extra request headers; they override the defaults (Content-Type, User-Agent). */
  headers?: Readonly<Record<string, string>>;
  /** `k8s.cluster.name` of every record's resource. */
  clusterName?: string;
  /** The instrumentation scope of the records (default `{ name: "kevents" }`). */
  scope?: OtlpScope;
}

const log = getLogger(["kevents", "sink", "otlp"]);

/**
 * HttpSender.post is typed for a text body but hands it untouched to the
 * transport, whose fetch (Deno's, or undici's request) sends a Uint8Array as
 * its bytes; the tests check both transports byte for byte. (Widening
 * HttpSender's type is left to its owners.)
 */
function binaryBody(bytes: Uint8Array): string {
  return bytes as unknown as string;
}

/** Delivers batches to an OTLP/HTTP logs endpoint. */
export class OtlpSink implements Sink {
  readonly name: string;
  readonly #splitter: SplittingSender;

  /** Records dropped so far (only with `onFailure: "drop"`). */
  get dropped(): number {
    return this.#splitter.dropped;
  }
  readonly #url: URL;
  readonly #protocol: OtlpProtocol;
  readonly #gzip: boolean;
  readonly #headers: Record<string, string>;
  readonly #clusterName: string | undefined;
  readonly #scope: OtlpScope;
  readonly #onFailure: OnFailure;
  readonly #clock: Clock;
  readonly #http: HttpSender;

  constructor(options: OtlpSinkOptions) {
    this.name = options.name ?? "otlp";
    this.#protocol = options.protocol ?? "http/protobuf";
    this.#gzip = (options.compression ?? "gzip") === "gzip";
    this.#onFailure = options.onFailure ?? "retry";
    this.#splitter = new SplittingSender({
      who: "The OTLP receiver",
      onFailure: this.#onFailure,
      post: (records, signal, fence) => this.#post(records, signal, fence),
      log,
    });
    this.#clock = options.clock ?? systemClock;
    this.#clusterName = options.clusterName;
    this.#scope = options.scope ?? { name: "kevents" };
    const { url, headers, secrets } = httpTarget("otlp", options.url, {
      defaults: {
        "Content-Type": CONTENT_TYPES[this.#protocol],
        "User-Agent": options.userAgent ?? "kevents",
      },
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      // After the user's headers: the body is gzipped whatever they say.
      ...(this.#gzip ? { overrides: { "Content-Encoding": "gzip" } } : {}),
    });
    this.#url = url;
    this.#headers = headers;
    this.#http = httpSenderFor("OTLP", { ...options, clock: this.#clock }, { secrets });
  }

  /**
   * POSTs the batch; resolves once the receiver answered 2xx to each of its
   * records or refused it for good (set aside, listed in the result), or,
   * with drop, once the batch is given up.
   */
  async send(
    batch: readonly EventRecord[],
    signal: AbortSignal,
    options: SendOptions = {},
  ): Promise<SendResult | void> {
    return await this.#splitter.send(batch, signal, options.fence);
  }

  /** POSTs `records` as one ExportLogsServiceRequest, with the fence's headers. */
  async #post(
    records: readonly EventRecord[],
    signal: AbortSignal,
    fence: Fence | undefined,
  ): Promise<void> {
    const otlp = logRecords(records, {
      ...(this.#clusterName === undefined ? {} : { clusterName: this.#clusterName }),
      scope: this.#scope,
      observedMs: this.#clock.now(),
    });
    let body = encodeLogs(otlp, this.#protocol);
    if (this.#gzip) body = await gzip(body);
    signal.throwIfAborted();
    const answer = await this.#http.post(
      this.#url,
      binaryBody(body),
      fencedHeaders(this.#headers, fence),
      signal,
      fence?.assertCurrent,
    );
    const partial = partialSuccessOf(answer.body, this.#protocol);
    if (partial === undefined) return;
    const said = this.#http.redact(partial.message) || "no message";
    if (partial.rejected > 0 || partial.unreadable === true) {
      log.warn(
        "The OTLP receiver took a request of {n} events but rejected {rejected} of them " +
          "without saying which ({message}); they are not sent again",
        {
          n: records.length,
          rejected: partial.unreadable === true ? "some" : partial.rejected,
          message: said,
        },
      );
    } else {
      log.info("The OTLP receiver took a request of {n} events with a warning: {message}", {
        n: records.length,
        message: said,
      });
    }
  }

  /** Closes the connection pool. */
  close(): Promise<void> {
    return this.#http.close();
  }
}

/** Options of {@linkcode createOtlpSink}. */
export interface CreateOtlpSinkOptions {
  /** The sink's name (default "otlp"). */
  name?: string;
  /** How its TLS file settings are named in errors (default "kevents_otlp": `kevents_otlp_ca_file`). */
  settingsPrefix?: string;
  /** `k8s.cluster.name` of every record (the `cluster_name` setting). */
  clusterName?: string;
  /** Reads a TLS file as text. */
  readTextFile: (path: string) => string;
  /** User-Agent; `kevents/<version>` also gives the scope's version. */
  userAgent?: string;
  onRetry?: () => void;
}

/**
 * The otlp sink of a configuration, its TLS files read and checked
 * (ConfigError naming the setting when one does not hold what it must).
 */
export function createOtlpSink(
  config: Config["otlp"],
  options: CreateOtlpSinkOptions,
): OtlpSink {
  return new OtlpSink(otlpSinkOptions(config, options));
}

/** What {@linkcode createOtlpSink} builds its sink with: the TLS files are read and checked here. */
export function otlpSinkOptions(
  config: Config["otlp"],
  options: CreateOtlpSinkOptions,
): OtlpSinkOptions {
  const tls = readTlsFiles(config, options.settingsPrefix ?? "kevents_otlp", options.readTextFile);
  const version = /^kevents\/(\S+)$/.exec(options.userAgent ?? "")?.[1];
  return {
    ...(options.name === undefined ? {} : { name: options.name }),
    // parseConfig refuses the otlp sink without an endpoint.
    url: config.url!,
    protocol: config.protocol,
    compression: config.compression,
    headers: config.headers,
    ...(options.clusterName === undefined ? {} : { clusterName: options.clusterName }),
    scope: version === undefined ? { name: "kevents" } : { name: "kevents", version },
    tls,
    onFailure: config.onFailure,
    maxAttempts: config.maxAttempts,
    ...(options.userAgent === undefined ? {} : { userAgent: options.userAgent }),
    ...(options.onRetry === undefined ? {} : { onRetry: options.onRetry }),
  };
}
