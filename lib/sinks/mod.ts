/**
 * The sinks, and {@linkcode createSinks}, which builds the ones the
 * configuration names (reading and checking the webhook's TLS files).
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import type { Metrics } from "../ops/mod.ts";
import { type Config, ConfigError } from "../config/mod.ts";
import type { HttpTlsOptions } from "./_http.ts";
import { DatadogSink } from "./datadog.ts";
import { NullSink } from "./null.ts";
import { createOtlpSink } from "./otlp.ts";
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

/** A PEM block: its label (CERTIFICATE, PRIVATE KEY...) and the whole block. */
interface PemBlock {
  label: string;
  text: string;
}

function pemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)) {
    blocks.push({ label: m[1]!, text: m[0] });
  }
  return blocks;
}

/** The webhook's TLS files: what each must hold, checked by parsing it. */
const TLS_FILES = {
  caFile: {
    key: "kevents_webhook_ca_file",
    rule: "must name a readable PEM file of one or more CA certificates " +
      "(-----BEGIN CERTIFICATE----- blocks)",
  },
  certFile: {
    key: "kevents_webhook_cert_file",
    rule: "must name a readable PEM file of the client certificate " +
      "(a -----BEGIN CERTIFICATE----- block, then any intermediates)",
  },
  keyFile: {
    key: "kevents_webhook_key_file",
    rule: "must name a readable PEM file of the unencrypted private key of " +
      "kevents_webhook_cert_file (a -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or " +
      "EC PRIVATE KEY block)",
  },
} as const;

/** Why a certificate file's text is not usable; undefined when every certificate in it parses. */
function certificateProblem(text: string): string | undefined {
  const certs = pemBlocks(text).filter((b) => b.label === "CERTIFICATE");
  if (certs.length === 0) return "it holds no -----BEGIN CERTIFICATE----- block";
  for (const [i, block] of certs.entries()) {
    try {
      new X509Certificate(block.text);
    } catch {
      return `its certificate ${i + 1} of ${certs.length} is not a valid X.509 certificate`;
    }
  }
  return undefined;
}

/** The private key in a key file's text, or why there is none. */
function privateKey(text: string): KeyObject | { problem: string } {
  const keys = pemBlocks(text).filter((b) => b.label.endsWith("PRIVATE KEY"));
  if (keys.length === 0) return { problem: "it holds no PEM private key block" };
  if (keys[0]!.label === "ENCRYPTED PRIVATE KEY" || /Proc-Type: 4,ENCRYPTED/.test(keys[0]!.text)) {
    return { problem: "its key is encrypted, and kevents takes no passphrase" };
  }
  try {
    return createPrivateKey(keys[0]!.text);
  } catch {
    return { problem: "its private key block is not a valid key" };
  }
}

/**
 * Builds the sinks `config.sinks` names, in order. Throws ConfigError when
 * a TLS file of the webhook cannot be read or does not hold what it must
 * (each certificate is parsed, and the key must belong to the client
 * certificate), so that a bad file stops the start instead of failing
 * every send; nothing is built then.
 */
export function createSinks(config: Config, options: CreateSinksOptions = {}): Sink[] {
  const read = options.readTextFile ?? Deno.readTextFileSync;
  const { webhook, datadog } = config;
  let webhookTls: HttpTlsOptions | undefined;
  if (config.sinks.includes("webhook")) {
    const refuse = (
      name: keyof typeof TLS_FILES,
      path: string,
      problem: string,
      cause?: unknown,
    ) => {
      const { key, rule } = TLS_FILES[name];
      const source = webhook.fileSources?.[name] ?? "default";
      return new ConfigError({
        key,
        source,
        value: path,
        rule,
        message: `Cannot use ${key} ${JSON.stringify(path)} (${source}): ${problem}; it ${rule}`,
        cause,
      });
    };
    const file = (name: keyof typeof TLS_FILES): string | undefined => {
      const path = webhook[name];
      if (path === undefined) return undefined;
      let text: string;
      try {
        text = read(path);
      } catch (e) {
        throw refuse(name, path, `cannot read it: ${e instanceof Error ? e.message : e}`, e);
      }
      if (name !== "keyFile") {
        const problem = certificateProblem(text);
        if (problem !== undefined) throw refuse(name, path, problem);
      }
      return text;
    };
    const ca = file("caFile");
    const cert = file("certFile");
    const key = file("keyFile");
    if (cert !== undefined && key !== undefined) {
      const found = privateKey(key);
      if ("problem" in found) throw refuse("keyFile", webhook.keyFile!, found.problem);
      const leaf = pemBlocks(cert).find((b) => b.label === "CERTIFICATE")!;
      if (!new X509Certificate(leaf.text).checkPrivateKey(found)) {
        throw refuse(
          "keyFile",
          webhook.keyFile!,
          `it is not the key of the certificate in ${webhook.certFile}`,
        );
      }
    }
    webhookTls = { ca, cert, key, insecureSkipVerify: webhook.insecureSkipVerify };
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
          collectedEventTypes: datadog.collectedEventTypes,
          bundleUnspecifiedEvents: datadog.bundleUnspecifiedEvents,
          filteringEnabled: datadog.filteringEnabled,
          sourceDetection: datadog.sourceDetection,
          ...(config.clusterName === undefined ? {} : { clusterName: config.clusterName }),
          tags: datadog.tags,
          ...(datadog.proxy === undefined ? {} : { proxy: datadog.proxy }),
          noProxy: datadog.noProxy,
          onFailure: datadog.onFailure,
          maxAttempts: datadog.maxAttempts,
          userAgent,
          onRetry: () => options.metrics?.sinkRetry("datadog"),
        });
      case "otlp":
        // Reads and checks its TLS files, as the webhook's above.
        return createOtlpSink(config.otlp, {
          ...(config.clusterName === undefined ? {} : { clusterName: config.clusterName }),
          readTextFile: read,
          ...(userAgent === undefined ? {} : { userAgent }),
          onRetry: () => options.metrics?.sinkRetry("otlp"),
        });
    }
  });
}
