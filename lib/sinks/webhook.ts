/**
 * The webhook sink: POSTs each batch to a URL, as NDJSON (one
 * `{"key":...,"type":...,"event":{...}}` line per record, the stdout sink's
 * format) or as a JSON array of the same objects. The batch is acknowledged
 * once the receiver answers 2xx.
 *
 * Every record carries its idempotency key (`key`, the event's
 * uid/resourceVersion); a batch of one record also sends it as the
 * `Idempotency-Key` header, so a receiver can deduplicate replays without
 * reading the body.
 *
 * Failures: network errors, timeouts, 5xx and 429 are retried within the
 * call (see _http.ts); other answers are not. Then, by default, `send`
 * rejects and the pump retries the batch later, holding the checkpoint back:
 * nothing is lost, and memory stays bounded by the pump's queue. With
 * `onFailure: "drop"` the batch is dropped instead, counted in `dropped` and
 * logged as a warning.
 *
 * The bearer token, the user info and query values of the URL and the
 * values of every configured header never appear in errors or logs.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Clock } from "../time/mod.ts";
import {
  displayUrl,
  HttpSender,
  HttpSinkError,
  type HttpTlsOptions,
  type OnFailure,
} from "./_http.ts";
import { isSecretHeader, urlSecrets } from "../ops/mod.ts";
import { eventJson, type EventRecord, FENCE_HEADERS, type SendOptions, type Sink } from "./sink.ts";

/** How a batch is written in the request body. */
export type WebhookFormat = "ndjson" | "json";

/** Options for {@linkcode WebhookSink}. */
export interface WebhookSinkOptions {
  /** Told of every request repeated after a retryable failure (metrics). */
  onRetry?: () => void;
  /** Where to POST (http or https); user info becomes a Basic Authorization header. */
  url: string | URL;
  /** Body format (default "ndjson"). */
  format?: WebhookFormat;
  /** Extra request headers; they override the defaults (Content-Type, User-Agent). */
  headers?: Readonly<Record<string, string>>;
  /** Sent as `Authorization: Bearer <token>`, over any Authorization header. */
  bearerToken?: string;
  /** TLS settings (PEM texts). */
  tls?: HttpTlsOptions;
  /** What happens to a batch that cannot be delivered (default "retry": the pump retries it). */
  onFailure?: OnFailure;
  /** Attempts per send before it fails (default 5). */
  maxAttempts?: number;
  /** Longest total wait between the attempts of one send, in ms (default 30000). */
  maxRetryMs?: number;
  /** First backoff wait, in ms (default 250). */
  initialBackoffMs?: number;
  /** Bound of each attempt, in ms (default 10000). */
  requestTimeoutMs?: number;
  /** User-Agent header (default "kevents"). */
  userAgent?: string;
  clock?: Clock;
  random?: () => number;
}

const log = getLogger(["kevents", "sink", "webhook"]);

/** The body of a batch in the given format. */
export function webhookBody(batch: readonly EventRecord[], format: WebhookFormat): string {
  const lines = batch.map((r) =>
    `{"key":${JSON.stringify(r.key)},"type":${JSON.stringify(r.type)},"event":${eventJson(r)}}`
  );
  return format === "json" ? `[${lines.join(",")}]` : lines.map((l) => `${l}\n`).join("");
}

/** Delivers batches to an HTTP(S) endpoint. */
export class WebhookSink implements Sink {
  readonly name = "webhook";
  /** Records dropped so far (only with `onFailure: "drop"`). */
  dropped = 0;
  readonly #url: URL;
  readonly #format: WebhookFormat;
  readonly #headers: Record<string, string>;
  readonly #onFailure: OnFailure;
  readonly #http: HttpSender;

  constructor(options: WebhookSinkOptions) {
    const url = new URL(options.url);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(
        `Cannot create the webhook sink: ${displayUrl(url)} is not an http(s) URL`,
      );
    }
    this.#format = options.format ?? "ndjson";
    this.#onFailure = options.onFailure ?? "retry";
    // Any configured header may carry a credential, whatever its name, and so
    // may the URL's query values (?token=...): none of them reaches a message.
    const secrets: string[] = urlSecrets(url);
    const headers: Record<string, string> = {
      "Content-Type": this.#format === "json" ? "application/json" : "application/x-ndjson",
      "User-Agent": options.userAgent ?? "kevents",
    };
    // Header names are case-insensitive: a user's "content-type" replaces the default.
    const set = (name: string, value: string) => {
      for (const k of Object.keys(headers)) {
        if (k.toLowerCase() === name.toLowerCase()) delete headers[k];
      }
      headers[name] = value;
      if (isSecretHeader(name)) secrets.push(value);
    };
    if (url.username !== "" || url.password !== "") {
      const user = decodeURIComponent(url.username);
      const password = decodeURIComponent(url.password);
      secrets.push(user, password, url.username, url.password);
      set("Authorization", `Basic ${btoa(`${user}:${password}`)}`);
      url.username = "";
      url.password = "";
    }
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      secrets.push(value);
      set(name, value);
    }
    if (options.bearerToken !== undefined) {
      secrets.push(options.bearerToken);
      set("Authorization", `Bearer ${options.bearerToken}`);
    }
    this.#url = url;
    this.#headers = headers;
    this.#http = new HttpSender({
      label: "Webhook",
      tls: options.tls,
      secrets,
      requestTimeoutMs: options.requestTimeoutMs,
      retry: {
        maxAttempts: options.maxAttempts,
        maxRetryMs: options.maxRetryMs,
        initialBackoffMs: options.initialBackoffMs,
      },
      clock: options.clock,
      random: options.random,
      onRetry: options.onRetry,
    });
  }

  /** POSTs the batch; resolves once the receiver answered 2xx (or, with drop, once the batch is given up). */
  async send(
    batch: readonly EventRecord[],
    signal: AbortSignal,
    options: SendOptions = {},
  ): Promise<void> {
    signal.throwIfAborted();
    if (batch.length === 0) return;
    const { fence } = options;
    const headers: Record<string, string> = { ...this.#headers };
    if (batch.length === 1) headers["Idempotency-Key"] = batch[0]!.key;
    if (fence !== undefined) {
      headers[FENCE_HEADERS.holder] = fence.holder;
      headers[FENCE_HEADERS.token] = String(fence.token);
    }
    try {
      await this.#http.post(
        this.#url,
        webhookBody(batch, this.#format),
        headers,
        signal,
        fence?.assertCurrent,
      );
    } catch (e) {
      if (signal.aborted || this.#onFailure !== "drop" || !(e instanceof HttpSinkError)) throw e;
      this.dropped += batch.length;
      log.warn(
        "Dropped {n} events after {attempts} attempts ({dropped} dropped so far): {error}",
        { n: batch.length, attempts: e.attempts, dropped: this.dropped, error: e.message },
      );
    }
  }

  /** Closes the connection pool. */
  close(): Promise<void> {
    return this.#http.close();
  }
}
