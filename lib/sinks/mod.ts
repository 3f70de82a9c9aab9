/**
 * The sinks, and {@linkcode createSinks}, which builds the ones the
 * configuration names (reading the webhook's TLS files).
 *
 * @module
 */

import type { Metrics } from "../metrics.ts";
import { type Config, ConfigError } from "../config.ts";
import type { HttpTlsOptions } from "./_http.ts";
import { DatadogSink } from "./datadog.ts";
import { NullSink } from "./null.ts";
import type { Sink } from "./sink.ts";
import { StdoutSink } from "./stdout.ts";
import { WebhookSink } from "./webhook.ts";

export { type DatadogEvent, DatadogSink, type DatadogSinkOptions } from "./datadog.ts";
export { HttpSinkError, type HttpTlsOptions, type OnFailure } from "./_http.ts";
export { NullSink } from "./null.ts";
export {
  type EventRecord,
  isServiceCheckSink,
  type ServiceCheck,
  type ServiceCheckSink,
  type Sink,
} from "./sink.ts";
export { StdoutSink } from "./stdout.ts";
export { WebhookSink, type WebhookSinkOptions } from "./webhook.ts";

/** Options for {@linkcode createSinks}. */
export interface CreateSinksOptions {
  /** Reads a file as text (default Deno.readTextFileSync). */
  readTextFile?: (path: string) => string;
  /** User-Agent of the HTTP sinks (default "kevents"). */
  userAgent?: string;
  /** Counts the HTTP sinks' retries. */
  metrics?: Pick<Metrics, "sinkRetry">;
}

/**
 * Builds the sinks `config.sinks` names, in order. Throws ConfigError when
 * a TLS file of the webhook cannot be read; nothing is built then.
 */
export function createSinks(config: Config, options: CreateSinksOptions = {}): Sink[] {
  const read = options.readTextFile ?? Deno.readTextFileSync;
  const { webhook, datadog } = config;
  let webhookTls: HttpTlsOptions | undefined;
  if (config.sinks.includes("webhook")) {
    const file = (key: string, path: string | undefined): string | undefined => {
      if (path === undefined) return undefined;
      try {
        return read(path);
      } catch (e) {
        const detail = e instanceof Error ? e.message : String(e);
        throw new ConfigError({
          key,
          source: "file",
          value: path,
          rule: "must name a readable PEM file",
          message: `Cannot read ${key} ${JSON.stringify(path)}: ${detail}`,
          cause: e,
        });
      }
    };
    webhookTls = {
      ca: file("kevents_webhook_ca_file", webhook.caFile),
      cert: file("kevents_webhook_cert_file", webhook.certFile),
      key: file("kevents_webhook_key_file", webhook.keyFile),
      insecureSkipVerify: webhook.insecureSkipVerify,
    };
  }
  const userAgent = options.userAgent;
  return config.sinks.map((name): Sink => {
    switch (name) {
      case "stdout":
        return new StdoutSink();
      case "null":
        return new NullSink();
      case "webhook":
        return new WebhookSink({
          // parseConfig refuses the webhook sink without a URL.
          url: webhook.url!,
          format: webhook.format,
          headers: webhook.headers,
          bearerToken: webhook.bearerToken,
          tls: webhookTls,
          onFailure: webhook.onFailure,
          maxAttempts: webhook.maxAttempts,
          userAgent,
          onRetry: () => options.metrics?.sinkRetry("webhook"),
        });
      case "datadog":
        return new DatadogSink({
          // parseConfig refuses the datadog sink without an API key.
          apiKey: datadog.apiKey!,
          site: datadog.site,
          url: datadog.url,
          unbundleEvents: datadog.unbundleEvents,
          onFailure: datadog.onFailure,
          maxAttempts: datadog.maxAttempts,
          userAgent,
          onRetry: () => options.metrics?.sinkRetry("datadog"),
        });
    }
  });
}
