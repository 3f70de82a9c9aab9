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
 * logged as a warning. 401 and 403 (credentials) fail the send like these.
 *
 * Refused for good: a 400, 413 or 422 answer refuses the content. The
 * receiver may refuse a whole batch for one record it cannot take (or for
 * its size), so a refused batch of several records is split in halves and
 * each half sent the same way, in order, down to single records: a single
 * record refused is set aside (listed in the send's result, see sink.ts),
 * everything else is delivered, in pieces small enough for the receiver.
 * One warning per batch says that it is being split (the requests of the
 * halves log at debug). The cost is bounded: the halving is a binary tree
 * with a leaf per record, so a receiver refusing everything gets at most
 * 2N - 1 requests for N records; one refused record among N costs about
 * 2 log2(N) + 1.
 * When a later request fails otherwise (a 503 past its attempts), the send
 * rejects and the pump's retry of the same batch resumes: what was
 * delivered or set aside is not sent again.
 *
 * The bearer token, the user info and query values of the URL and the
 * values of every configured header never appear in errors or logs.
 *
 * @module
 */

import { SplittingSender } from "./_split_send.ts";
import { getLogger } from "@logtape/logtape";
import { type HttpSender, httpSenderFor, type HttpSinkOptions, type OnFailure } from "./_http.ts";
import { fencedHeaders, httpTarget } from "./_http_target.ts";
import {
  enrichmentJson,
  eventJson,
  type EventRecord,
  type Fence,
  type SendOptions,
  type SendResult,
  type Sink,
} from "./sink.ts";

/** How a batch is written in the request body. */
export type WebhookFormat = "ndjson" | "json";

/** Options for {@linkcode WebhookSink}. */
export interface WebhookSinkOptions extends HttpSinkOptions {
  /** The sink's name in logs, metrics and routes (default "webhook"; named sinks of kevents_sinks). */
  name?: string;
  /** Where to POST (http or https); user info becomes a Basic Authorization header. */
  url: string | URL;
  /** Body format (default "ndjson"). */
  format?: WebhookFormat;
  /** Extra request headers; they override the defaults (Content-Type, User-Agent). */
  headers?: Readonly<Record<string, string>>;
  /** Sent as `Authorization: Bearer <token>`, over any Authorization header. */
  bearerToken?: string;
}

const log = getLogger(["kevents", "sink", "webhook"]);

/** The body of a batch in the given format. */
export function webhookBody(batch: readonly EventRecord[], format: WebhookFormat): string {
  const lines = batch.map((r) =>
    `{"key":${JSON.stringify(r.key)},"type":${JSON.stringify(r.type)},"event":${eventJson(r)}${
      enrichmentJson(r)
    }}`
  );
  return format === "json" ? `[${lines.join(",")}]` : lines.map((l) => `${l}\n`).join("");
}

/** Delivers batches to an HTTP(S) endpoint. */
export class WebhookSink implements Sink {
  readonly name: string;
  readonly #splitter: SplittingSender;

  /** Records dropped so far (only with `onFailure: "drop"`). */
  get dropped(): number {
    return this.#splitter.dropped;
  }
  readonly #url: URL;
  readonly #format: WebhookFormat;
  readonly #headers: Record<string, string>;
  readonly #onFailure: OnFailure;
  readonly #http: HttpSender;

  constructor(options: WebhookSinkOptions) {
    this.name = options.name ?? "webhook";
    this.#format = options.format ?? "ndjson";
    this.#onFailure = options.onFailure ?? "retry";
    this.#splitter = new SplittingSender({
      who: "The webhook",
      onFailure: this.#onFailure,
      post: (records, signal, fence) => this.#post(records, signal, fence),
      log,
    });
    const { url, headers, secrets } = httpTarget("webhook", options.url, {
      defaults: {
        "Content-Type": this.#format === "json" ? "application/json" : "application/x-ndjson",
        "User-Agent": options.userAgent ?? "kevents",
      },
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      ...(options.bearerToken === undefined ? {} : {
        overrides: { Authorization: `Bearer ${options.bearerToken}` },
        overrideSecrets: [options.bearerToken],
      }),
    });
    this.#url = url;
    this.#headers = headers;
    this.#http = httpSenderFor("Webhook", options, { secrets });
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

  /** POSTs `records` in one request, with the fence's headers, retrying as _http.ts says. */
  async #post(
    records: readonly EventRecord[],
    signal: AbortSignal,
    fence: Fence | undefined,
  ): Promise<void> {
    const headers = fencedHeaders(this.#headers, fence);
    if (records.length === 1) headers["Idempotency-Key"] = records[0]!.key;
    await this.#http.post(
      this.#url,
      webhookBody(records, this.#format),
      headers,
      signal,
      fence?.assertCurrent,
    );
  }

  /** Closes the connection pool. */
  close(): Promise<void> {
    return this.#http.close();
  }
}
