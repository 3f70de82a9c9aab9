/**
 * What the HTTP sinks (webhook, Datadog) share: one HTTP/1.1 connection
 * pool per sink with its TLS settings (http_transport.ts: Deno's fetch, or
 * undici when certificate verification is switched off, which Deno's
 * client cannot do), opened on the first request, POST requests with
 * bounded retries, typed errors, and secrets kept out of every message.
 *
 * Retries: a network error, a timeout, a 5xx or a 429 is retried within one
 * call, with jittered exponential backoff or after the answer's
 * `Retry-After` (seconds or an HTTP date), up to `maxAttempts` attempts and
 * `maxRetryMs` of waiting; then the call rejects, and the pump retries the
 * batch later. A `Retry-After` longer than what is left of the budget is
 * remembered: the next call waits until then before its first attempt. Any
 * other answer below 200 or from 300 up rejects at once.
 *
 * What a refusal means ({@linkcode isPermanentRejection}):
 *
 * - 400 Bad Request, 413 Payload Too Large, 422 Unprocessable Entity refuse
 *   what was sent, for good: the same bytes get the same answer (a Datadog
 *   event older than the intake takes, a body too big). The sinks set the
 *   refused records aside (sink.ts) and deliver the rest.
 * - 401 and 403 refuse the credentials (the API key, the token), which
 *   every record would meet alike: setting records aside would discard
 *   them all. The send fails, and the pump retries it until the
 *   credentials are mended, holding the checkpoint back.
 * - Everything else is transient and fails the send, for the pump to retry
 *   it: 404 (a receiver not deployed yet, a proxy's route), 408, 409 (a
 *   fencing receiver refusing a deposed leader), other 4xx, and within the
 *   call already 429, 5xx, network errors and timeouts.
 *
 * @module
 */

import { redact } from "../ops/mod.ts";
import { getLogger } from "@logtape/logtape";
import {
  describeNetworkError,
  type HttpResponse,
  type HttpTransport,
  openTransport,
} from "../kube/mod.ts";
import { Backoff, type Clock, systemClock } from "../time/mod.ts";

/** TLS settings of an HTTP sink's connection pool (PEM texts, not file names). */
export interface HttpTlsOptions {
  /** CA certificate(s) to trust instead of the system's roots. */
  ca?: string;
  /** Client certificate for mutual TLS; needs `key`. */
  cert?: string;
  /** Private key of `cert`. */
  key?: string;
  /** Accept any server certificate (insecure: for tests and self-signed endpoints). */
  insecureSkipVerify?: boolean;
}

/** What happens to a batch a sink could not deliver within its attempts. */
export type OnFailure = "retry" | "drop";

/** Retry bounds of one call. */
export interface RetryOptions {
  /** Attempts per call, the first included (default 5). */
  maxAttempts?: number;
  /** Longest total wait between the attempts of one call, in ms (default 30000). */
  maxRetryMs?: number;
  /** First backoff wait, in ms (default 250; doubled after each failure). */
  initialBackoffMs?: number;
  /** Longest backoff wait, in ms (default 5000). */
  maxBackoffMs?: number;
}

/** Options for {@linkcode HttpSender}. */
export interface HttpSenderOptions {
  /** Which sink sends, for messages: "Webhook", "Datadog". */
  label: string;
  tls?: HttpTlsOptions;
  /** Texts that must never appear in an error message or a log line. */
  secrets?: readonly string[];
  /** Bound of each attempt, answer body included, in ms (default 10000). */
  requestTimeoutMs?: number;
  retry?: RetryOptions;
  clock?: Clock;
  random?: () => number;
  /** Told of every attempt repeated after a retryable failure (metrics). */
  onRetry?: () => void;
  /** A proxy (http:// or https://) requests go through, with CONNECT for https targets. */
  proxy?: string;
}

/** What every HTTP sink (webhook, Datadog, OTLP) takes about sending, beside its own options. */
export interface HttpSinkOptions {
  /** Told of every request repeated after a retryable failure (metrics). */
  onRetry?: () => void;
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

/** The HttpSender of a sink labelled `label` ("Webhook", "OTLP", "Datadog") with `options`. */
export function httpSenderFor(
  label: string,
  options: HttpSinkOptions,
  more: { secrets: readonly string[]; proxy?: string },
): HttpSender {
  return new HttpSender({
    label,
    tls: options.tls,
    ...(more.proxy === undefined ? {} : { proxy: more.proxy }),
    secrets: more.secrets,
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

/** A successful answer. */
export interface HttpAnswer {
  status: number;
  /** The body as text (at most {@linkcode MAX_BODY_BYTES} bytes of it). */
  body: string;
}

/** Options of {@linkcode HttpSinkError}. */
export interface HttpSinkErrorOptions {
  /** The HTTP status; undefined when no answer came (network error, timeout). */
  status?: number;
  /** The answer's body, truncated and with secrets redacted. */
  body?: string;
  /** Whether trying again may succeed (network errors, timeouts, 5xx, 429). */
  retryable: boolean;
  /** Attempts made in the call that failed. */
  attempts?: number;
  /** The wait the answer's Retry-After asked for, in ms. */
  retryAfterMs?: number;
  cause?: unknown;
}

/** A request an HTTP sink could not deliver. Its message names the status and the (truncated) body, never a secret. */
export class HttpSinkError extends Error {
  /** The HTTP status; undefined when no answer came. */
  readonly status: number | undefined;
  /** The answer's body, truncated and redacted ("" when none). */
  readonly body: string;
  /** Whether trying again may succeed. */
  readonly retryable: boolean;
  /** Attempts made in the failed call. */
  attempts: number;
  /** The wait the answer's Retry-After asked for, in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: HttpSinkErrorOptions) {
    super(message, { cause: options.cause });
    this.name = "HttpSinkError";
    this.status = options.status;
    this.body = options.body ?? "";
    this.retryable = options.retryable;
    this.attempts = options.attempts ?? 1;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Bytes of an answer's body that are read; the rest is discarded. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Characters of an answer's body that go into an error message. */
export const MAX_BODY_IN_MESSAGE = 512;
/** Longest Retry-After honoured, in ms: a larger value is taken as this. */
export const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

export { isSecretHeader, redact } from "../ops/mod.ts";

/** Statuses that refuse the content of a request for good (see the module documentation). */
export const PERMANENT_REJECTIONS: ReadonlySet<number> = new Set([400, 413, 422]);

/** Whether `e` is an answer refusing what was sent for good: 400, 413 or 422. */
export function isPermanentRejection(e: unknown): e is HttpSinkError & { status: number } {
  return e instanceof HttpSinkError && e.status !== undefined &&
    PERMANENT_REJECTIONS.has(e.status);
}

/** Characters of an answer's body kept as the reason of a set-aside record. */
export const MAX_REASON_LENGTH = 200;

/**
 * The short reason of a permanent rejection: the answer's body (already
 * truncated and redacted) on one line, at most {@linkcode MAX_REASON_LENGTH}
 * characters; the status's reason phrase when the body is empty.
 */
export function rejectionReason(e: HttpSinkError): string {
  const text = e.body.replace(/\s+/g, " ").trim();
  if (text === "") return REASONS[e.status ?? 0] ?? "no reason given";
  return text.length > MAX_REASON_LENGTH ? `${text.slice(0, MAX_REASON_LENGTH)}...` : text;
}

/**
 * Parses a Retry-After value: delay-seconds or an HTTP date, relative to
 * `now` (ms since the epoch). Undefined when absent or unreadable; a date in
 * the past is 0; capped at {@linkcode MAX_RETRY_AFTER_MS}.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    // An HTTP date always names the weekday and the GMT zone; anything
    // else Date.parse might accept (a bare year) is not one.
    if (!/^[A-Za-z]{3},? .*GMT$/.test(text)) return undefined;
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

/** The URL as shown in messages: no user info, no query (either may hold a credential). */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * Reason phrases of the codes a sink is likely to get (node:http's table
 * would load Node's HTTP module, ~MiBs, for a word in a message).
 */
const REASONS: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

async function readBody(body: ReadableStream<Uint8Array> | null): Promise<string> {
  if (body === null) return "";
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.length;
    text += decoder.decode(value, { stream: true });
    if (size >= MAX_BODY_BYTES) {
      // Enough for a message; the connection is not worth keeping for the rest.
      await reader.cancel();
      return text;
    }
  }
  return text + decoder.decode();
}

const log = getLogger(["kevents", "sink"]);

/** POSTs over one connection pool with bounded retries; see the module documentation. */
export class HttpSender {
  readonly #label: string;
  readonly #tls: HttpTlsOptions;
  readonly #proxy: string | undefined;
  #transport: Promise<HttpTransport> | undefined;
  readonly #secrets: readonly string[];
  readonly #timeoutMs: number;
  readonly #retry: Required<RetryOptions>;
  readonly #onRetry: (() => void) | undefined;
  readonly #clock: Clock;
  readonly #random: () => number;
  /** No attempt before this time (ms since the epoch): a Retry-After not waited out yet. */
  #notBefore = 0;
  #closed = false;

  constructor(options: HttpSenderOptions) {
    this.#label = options.label;
    this.#secrets = options.secrets ?? [];
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#onRetry = options.onRetry;
    this.#retry = {
      maxAttempts: options.retry?.maxAttempts ?? 5,
      maxRetryMs: options.retry?.maxRetryMs ?? 30_000,
      initialBackoffMs: options.retry?.initialBackoffMs ?? 250,
      maxBackoffMs: options.retry?.maxBackoffMs ?? 5000,
    };
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#tls = options.tls ?? {};
    this.#proxy = options.proxy;
  }

  /** The pool, opened on first use. */
  #pool(): Promise<HttpTransport> {
    this.#transport ??= openTransport({
      ca: this.#tls.ca,
      cert: this.#tls.cert,
      key: this.#tls.key,
      skipTLSVerify: this.#tls.insecureSkipVerify === true,
      ...(this.#proxy === undefined ? {} : { proxyUrl: this.#proxy }),
    });
    return this.#transport;
  }

  /** Removes the secrets from a text meant for a message or a log. */
  redact(text: string): string {
    return redact(text, this.#secrets);
  }

  /**
   * POSTs `body` to `url` until an attempt is answered with a 2xx, retrying
   * as the module documentation says. Rejects with {@linkcode HttpSinkError}
   * (its `attempts` set), or with the signal's reason once it aborts, or
   * with what `beforeAttempt` (called before every attempt) throws.
   */
  async post(
    url: URL,
    body: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
    beforeAttempt?: () => void,
  ): Promise<HttpAnswer> {
    signal.throwIfAborted();
    if (this.#closed) {
      throw new Error(`Cannot send to ${displayUrl(url)}: the ${this.#label} sink is closed`);
    }
    const backoff = new Backoff({
      clock: this.#clock,
      random: this.#random,
      initialMs: this.#retry.initialBackoffMs,
      maxMs: this.#retry.maxBackoffMs,
      jitter: 0.5,
    });
    const pending = this.#notBefore - this.#clock.now();
    if (pending > 0) await this.#clock.sleep(pending, signal);
    let waited = 0;
    for (let attempt = 1;; attempt++) {
      let failure: HttpSinkError;
      // Right before the bytes go: a term that expired during the backoff
      // (or while the process was paused) sends nothing more.
      beforeAttempt?.();
      try {
        return await this.#attempt(url, body, headers, signal);
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        if (!(e instanceof HttpSinkError)) throw e;
        failure = e;
      }
      failure.attempts = attempt;
      if (!failure.retryable || attempt >= this.#retry.maxAttempts) throw failure;
      const wait = failure.retryAfterMs ?? backoff.next();
      if (waited + wait > this.#retry.maxRetryMs) {
        if (failure.retryAfterMs !== undefined) {
          this.#notBefore = this.#clock.now() + failure.retryAfterMs;
        }
        throw failure;
      }
      waited += wait;
      log.debug("{sink}: {error}; attempt {next} of {max} in {wait} ms", {
        sink: this.#label,
        error: failure.message,
        next: attempt + 1,
        max: this.#retry.maxAttempts,
        wait: Math.round(wait),
      });
      await this.#clock.sleep(wait, signal);
      this.#onRetry?.();
    }
  }

  async #attempt(
    url: URL,
    body: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ): Promise<HttpAnswer> {
    const where = `${this.#label} POST ${displayUrl(url)}`;
    const controller = new AbortController();
    const timeout = new HttpSinkError(`${where}: no answer within ${this.#timeoutMs} ms`, {
      retryable: true,
    });
    const timer = setTimeout(() => controller.abort(timeout), this.#timeoutMs);
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      let res: HttpResponse;
      let text: string;
      try {
        const transport = await this.#pool();
        res = await transport.send({
          url,
          method: "POST",
          headers: { ...headers },
          body,
          signal: controller.signal,
        });
        text = await readBody(res.body);
      } catch (e) {
        if (controller.signal.aborted) throw controller.signal.reason;
        throw new HttpSinkError(`${where}: ${this.redact(describeNetworkError(e))}`, {
          retryable: true,
          cause: e,
        });
      }
      const status = res.status;
      if (status >= 200 && status < 300) return { status, body: text };
      const shown = this.redact(text);
      const truncated = shown.length > MAX_BODY_IN_MESSAGE
        ? `${shown.slice(0, MAX_BODY_IN_MESSAGE)}... (${shown.length} characters)`
        : shown;
      const reason = REASONS[status] ?? "";
      throw new HttpSinkError(
        `${where} answered ${status}${reason === "" ? "" : ` ${reason}`}` +
          (truncated.trim() === "" ? "" : `: ${truncated.trim()}`),
        {
          status,
          body: truncated,
          retryable: status === 429 || status >= 500,
          retryAfterMs: status === 429 || status >= 500
            ? parseRetryAfter(res.header("retry-after") ?? undefined, this.#clock.now())
            : undefined,
        },
      );
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Closes the pool; later posts reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const transport = this.#transport;
    this.#transport = undefined;
    if (transport !== undefined) await (await transport).close();
  }
}
