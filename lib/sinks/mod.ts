/**
 * The sinks, and {@linkcode createSinks}, which builds the ones the
 * configuration names (reading and checking the webhook's TLS files).
 *
 * @module
 */

import type { Metrics } from "../ops/mod.ts";
import type { Config } from "../config/mod.ts";
import type { HttpTlsOptions } from "./_http.ts";
import { readTlsFiles } from "./_tls_files.ts";
import { DatadogSink } from "./datadog.ts";
import { NullSink } from "./null.ts";
import { OtlpSink, otlpSinkOptions } from "./otlp.ts";
import type { Sink } from "./sink.ts";
import { StdoutSink } from "./stdout.ts";
import { WebhookSink } from "./webhook.ts";

export { type DatadogEvent, DatadogSink, type DatadogSinkOptions } from "./datadog.ts";
export {
  HttpSinkError,
  type HttpTlsOptions,
  isPermanentRejection,
  type OnFailure,
  PERMANENT_REJECTIONS,
} from "./_http.ts";
export { NullSink } from "./null.ts";
export {
  type DatadogContext,
  eventHost,
  eventTags,
  hostClusterSuffix,
  KIND_TAGS,
} from "./_datadog_tags.ts";
export {
  type Enrichment,
  enrichmentJson,
  eventJson,
  type EventRecord,
  eventTime,
  type Fence,
  type InvolvedObject,
  involvedOf,
  isServiceCheckSink,
  type Rejection,
  type SendResult,
  type ServiceCheck,
  type ServiceCheckSink,
  type Sink,
} from "./sink.ts";
export {
  createOtlpSink,
  type CreateOtlpSinkOptions,
  type OtlpProtocol,
  OtlpSink,
  type OtlpSinkOptions,
} from "./otlp.ts";
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
 * Builds every sink of `config.outputs`, in order, each under its name.
 * Throws ConfigError when a TLS file of an HTTP sink cannot be read or does
 * not hold what it must (each certificate is parsed, and the key must
 * belong to the client certificate), so that a bad file stops the start
 * instead of failing every send; the files are all read before any sink is
 * built, so nothing is built then.
 */
export function createSinks(config: Config, options: CreateSinksOptions = {}): Sink[] {
  const read = options.readTextFile ?? Deno.readTextFileSync;
  const userAgent = options.userAgent;
  const cluster = config.clusterName === undefined ? {} : { clusterName: config.clusterName };
  const makers = config.outputs.map((spec): () => Sink => {
    const { name } = spec;
    const onRetry = () => options.metrics?.sinkRetry(name);
    switch (spec.type) {
      case "stdout":
        return () => new StdoutSink({ name });
      case "null":
        return () => new NullSink({ name });
      case "webhook": {
        const { webhook } = spec;
        const tls: HttpTlsOptions | undefined = readTlsFiles(
          webhook,
          spec.named ? `kevents_sinks ${name}.` : "kevents_webhook",
          read,
        );
        return () =>
          new WebhookSink({
            name,
            // parseConfig refuses a webhook sink without a URL.
            url: webhook.url!,
            format: webhook.format,
            headers: webhook.headers,
            bearerToken: webhook.bearerToken,
            tls,
            onFailure: webhook.onFailure,
            maxAttempts: webhook.maxAttempts,
            userAgent,
            onRetry,
          });
      }
      case "datadog": {
        const { datadog } = spec;
        return () =>
          new DatadogSink({
            name,
            // parseConfig refuses a datadog sink without an API key.
            apiKey: datadog.apiKey!,
            site: datadog.site,
            url: datadog.url,
            unbundleEvents: datadog.unbundleEvents,
            collectedEventTypes: datadog.collectedEventTypes,
            bundleUnspecifiedEvents: datadog.bundleUnspecifiedEvents,
            filteringEnabled: datadog.filteringEnabled,
            sourceDetection: datadog.sourceDetection,
            ...cluster,
            tags: datadog.tags,
            ...(datadog.proxy === undefined ? {} : { proxy: datadog.proxy }),
            noProxy: datadog.noProxy,
            onFailure: datadog.onFailure,
            maxAttempts: datadog.maxAttempts,
            userAgent,
            onRetry,
          });
      }
      case "otlp": {
        // Reads and checks its TLS files now, as the webhook's above.
        const otlp = otlpSinkOptions(spec.otlp, {
          name,
          ...(spec.named ? { settingsPrefix: `kevents_sinks ${name}.` } : {}),
          ...cluster,
          readTextFile: read,
          ...(userAgent === undefined ? {} : { userAgent }),
          onRetry,
        });
        return () => new OtlpSink(otlp);
      }
    }
  });
  return makers.map((make) => make());
}
