/**
 * The sinks' settings: the webhook and Datadog rows of the settings table,
 * and what one row cannot check (a sink that is on has what it needs, a
 * client certificate comes with its key, no `ENC[...]` handle goes out as a
 * credential), resolved into {@linkcode WebhookConfig} and
 * {@linkcode DatadogConfig}.
 *
 * @module
 */

import { isSecretHeader } from "../ops/mod.ts";
import { maskHeaders, maskSecret, maskUrl } from "./_masks.ts";
import { OTLP_ROWS, resolveOtlpSettings } from "./_otlp.ts";
import type { Origin } from "./_resolve.ts";
import {
  ATTEMPTS_RULE,
  BOOL_RULE,
  credential,
  EVENT_TYPES_RULE,
  filePath,
  HOST_LIST_RULE,
  hostList,
  httpUrl,
  integerIn,
  ON_FAILURE_RULE,
  oneOf,
  parseBool,
  parseEventTypes,
  parseHeaders,
  PROXY_URL_RULE,
  site,
  TAG_LIST_RULE,
  tagList,
  URL_RULE,
} from "./_values.ts";
import { ConfigError } from "./errors.ts";
import type { AnyKeySpec, Settings } from "./settings.ts";
import type { DatadogConfig, OtlpConfig, WebhookConfig } from "./types.ts";

/**
 * The webhook and Datadog sinks' rows. The Datadog ones keep the Agent's
 * names: `api_key`, `site` and `dd_url` are datadog.yaml settings of the
 * Agent (DD_API_KEY, DD_SITE, DD_DD_URL). `unbundle_events` is the key the
 * Agent reads from its kubernetes_apiserver check's instance configuration
 * (conf.yaml), which has no environment variable; kevents reads it from
 * datadog.yaml and DD_UNBUNDLE_EVENTS, and so `collected_event_types`,
 * `bundle_unspecified_events` and `filtering_enabled`, the check's too.
 * `kubernetes_events_source_detection.enabled` is a datadog.yaml setting of
 * the Agent, with its environment variable.
 */
export const SINK_ROWS: readonly AnyKeySpec[] = [
  {
    field: "webhookUrl",
    fileKey: "kevents_webhook_url",
    envVar: "KEVENTS_WEBHOOK_URL",
    parse: httpUrl,
    default: undefined,
    rule: URL_RULE,
    description: "Where the webhook sink POSTs batches (required with the webhook sink)",
    mask: maskUrl,
  },
  {
    field: "webhookFormat",
    fileKey: "kevents_webhook_format",
    envVar: "KEVENTS_WEBHOOK_FORMAT",
    parse: oneOf("ndjson", "json"),
    default: "ndjson",
    rule: 'must be "ndjson" (one JSON object per line) or "json" (a JSON array)',
    description: "Body format of the webhook sink",
  },
  {
    field: "webhookHeaders",
    fileKey: "kevents_webhook_headers",
    envVar: "KEVENTS_WEBHOOK_HEADERS",
    parse: parseHeaders,
    default: {},
    rule: "must be headers as NAME=VALUE pairs (comma-separated, or a mapping in the file), " +
      "each name a valid header name given once, values without control characters",
    description: "Extra headers of the webhook requests",
    mask: maskHeaders,
    fileMapping: true,
  },
  {
    field: "webhookBearerToken",
    fileKey: "kevents_webhook_bearer_token",
    envVar: "KEVENTS_WEBHOOK_BEARER_TOKEN",
    parse: credential,
    default: undefined,
    rule: "must be a non-empty token of printable ASCII characters without spaces",
    description: "Sent as Authorization: Bearer <token> by the webhook sink",
    mask: maskSecret,
  },
  {
    field: "webhookCaFile",
    fileKey: "kevents_webhook_ca_file",
    envVar: "KEVENTS_WEBHOOK_CA_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description: "PEM file of the CA(s) the webhook sink trusts instead of the system's",
  },
  {
    field: "webhookCertFile",
    fileKey: "kevents_webhook_cert_file",
    envVar: "KEVENTS_WEBHOOK_CERT_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description:
      "PEM file of the webhook sink's client certificate (with kevents_webhook_key_file)",
  },
  {
    field: "webhookKeyFile",
    fileKey: "kevents_webhook_key_file",
    envVar: "KEVENTS_WEBHOOK_KEY_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description: "PEM file of the client certificate's private key",
  },
  {
    field: "webhookInsecureSkipVerify",
    fileKey: "kevents_webhook_insecure_skip_verify",
    envVar: "KEVENTS_WEBHOOK_INSECURE_SKIP_VERIFY",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Accept any certificate from the webhook receiver (insecure)",
  },
  {
    field: "webhookOnFailure",
    fileKey: "kevents_webhook_on_failure",
    envVar: "KEVENTS_WEBHOOK_ON_FAILURE",
    parse: oneOf("retry", "drop"),
    default: "retry",
    rule: ON_FAILURE_RULE,
    description: "What the webhook sink does with a batch it cannot deliver",
  },
  {
    field: "webhookMaxAttempts",
    fileKey: "kevents_webhook_max_attempts",
    envVar: "KEVENTS_WEBHOOK_MAX_ATTEMPTS",
    parse: integerIn(1, 100),
    default: 5,
    rule: ATTEMPTS_RULE,
    description:
      "Attempts of one webhook send before it fails (or, with drop, the batch is dropped)",
  },
  {
    field: "ddApiKey",
    fileKey: "api_key",
    envVar: "DD_API_KEY",
    parse: credential,
    default: undefined,
    rule: "must be a non-empty key of printable ASCII characters without spaces",
    description: "Datadog API key (required with the datadog sink)",
    mask: maskSecret,
  },
  {
    field: "ddSite",
    fileKey: "site",
    envVar: "DD_SITE",
    parse: site,
    default: "datadoghq.com",
    rule: "must be a Datadog site such as datadoghq.com, us3.datadoghq.com or datadoghq.eu",
    description: "Datadog site: events go to https://api.<site>",
  },
  {
    field: "ddUrl",
    fileKey: "dd_url",
    envVar: "DD_DD_URL",
    parse: httpUrl,
    default: undefined,
    rule: URL_RULE,
    description: "Base URL of the Datadog API, overriding https://api.<site>",
    mask: maskUrl,
  },
  {
    field: "ddUnbundleEvents",
    fileKey: "unbundle_events",
    envVar: "DD_UNBUNDLE_EVENTS",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "One Datadog event per Kubernetes event instead of one per object and type",
  },
  {
    field: "ddCollectedEventTypes",
    fileKey: "collected_event_types",
    envVar: "DD_COLLECTED_EVENT_TYPES",
    parse: parseEventTypes,
    default: [],
    rule: EVENT_TYPES_RULE,
    // The Agent's own form, a YAML list of mappings, as its JSON text.
    fileJson: true,
    description: "With unbundle_events, the events sent on their own: an event matches an " +
      "entry when its involved object's kind is the entry's kind, its source.component the " +
      "entry's source and its reason one of the entry's reasons, each when given",
  },
  {
    field: "ddBundleUnspecifiedEvents",
    fileKey: "bundle_unspecified_events",
    envVar: "DD_BUNDLE_UNSPECIFIED_EVENTS",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "With unbundle_events, bundle the events collected_event_types leaves out " +
      "instead of not sending them",
  },
  {
    field: "ddFilteringEnabled",
    fileKey: "filtering_enabled",
    envVar: "DD_FILTERING_ENABLED",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Send only the events the Agent collects by default for their source's " +
      "integration, or that collected_event_types names; unbundled, those outside the " +
      "default set get the source <source>_custom",
  },
  {
    field: "ddSourceDetection",
    fileKey: "kubernetes_events_source_detection.enabled",
    envVar: "DD_KUBERNETES_EVENTS_SOURCE_DETECTION_ENABLED",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Name each Datadog event's source after the integration of the controller " +
      "that reported it (reportingComponent, else source.component), as the Agent does; " +
      "otherwise kubernetes",
  },
  {
    field: "ddBundleWindowSeconds",
    fileKey: "kevents_datadog_bundle_window_seconds",
    envVar: "KEVENTS_DATADOG_BUNDLE_WINDOW_SECONDS",
    parse: integerIn(0, 300),
    default: 15,
    rule: "must be an integer number of seconds from 0 to 300",
    description: "With the datadog sink bundling, how long a batch gathers events before it is " +
      "sent (the Agent bundles what one 15 s check run collected); 0 sends at once",
  },
  {
    field: "ddTags",
    fileKey: "kevents_datadog_tags",
    envVar: "KEVENTS_DATADOG_TAGS",
    parse: tagList,
    default: [],
    rule: TAG_LIST_RULE,
    description: "Tags added to every Datadog event and service check (the kubernetes_apiserver " +
      "check instance's tags:)",
  },
  {
    field: "ddProxyHttps",
    fileKey: "proxy.https",
    envVar: "DD_PROXY_HTTPS",
    parse: httpUrl,
    default: undefined,
    rule: PROXY_URL_RULE,
    description: "Proxy of the Datadog intake (else HTTPS_PROXY), as the Agent's proxy.https",
    mask: maskUrl,
  },
  {
    field: "ddNoProxy",
    fileKey: "proxy.no_proxy",
    envVar: "DD_PROXY_NO_PROXY",
    parse: hostList,
    default: [],
    rule: HOST_LIST_RULE,
    description: "Hosts the datadog sink reaches without the proxy (else NO_PROXY), matched " +
      "exactly as host or host:port, as the Agent does by default",
  },
  {
    field: "datadogOnFailure",
    fileKey: "kevents_datadog_on_failure",
    envVar: "KEVENTS_DATADOG_ON_FAILURE",
    parse: oneOf("retry", "drop"),
    default: "retry",
    rule: ON_FAILURE_RULE,
    description: "What the datadog sink does with a batch it cannot deliver",
  },
  {
    field: "datadogMaxAttempts",
    fileKey: "kevents_datadog_max_attempts",
    envVar: "KEVENTS_DATADOG_MAX_ATTEMPTS",
    parse: integerIn(1, 100),
    default: 5,
    rule: ATTEMPTS_RULE,
    description:
      "Attempts of one Datadog request before a send fails (or, with drop, the batch is dropped)",
  },
  ...OTLP_ROWS,
];

/** The webhook's TLS file settings: their name in {@linkcode WebhookConfig} and their field. */
const TLS_FILE_FIELDS = [
  ["caFile", "webhookCaFile"],
  ["certFile", "webhookCertFile"],
  ["keyFile", "webhookKeyFile"],
] as const;

/** The Agent's secrets-backend handle: the whole value is `ENC[...]` (its `isEnc`). */
const SECRET_HANDLE = /^ENC\[.*\]$/s;

/**
 * The row of a sink setting. (settings.ts's specOf would do, but settings.ts
 * builds its table from {@linkcode SINK_ROWS}: this file must not need it back.)
 */
function sinkRow(field: keyof Settings): AnyKeySpec {
  const spec = SINK_ROWS.find((k) => k.field === field);
  if (spec === undefined) throw new Error(`Internal error: no setting ${field}`);
  return spec;
}

/**
 * Refuses an `ENC[...]` handle of the Agent's secrets backend where kevents
 * would send it as a credential: it would go out literally. `api_key` only
 * counts with the datadog sink, as a datadog.yaml shared with an Agent that
 * resolves it may hold one; the webhook settings are kevents' own.
 */
function refuseSecretHandles(settings: Settings, origins: Map<keyof Settings, Origin>): void {
  const candidates: { key: string; field: keyof Settings; value: string | undefined }[] = [
    {
      key: "api_key",
      field: "ddApiKey",
      value: settings.sinks.includes("datadog") ? settings.ddApiKey : undefined,
    },
    {
      key: "kevents_webhook_bearer_token",
      field: "webhookBearerToken",
      value: settings.webhookBearerToken,
    },
    ...Object.entries(settings.webhookHeaders).map(([name, value]) => ({
      key: `kevents_webhook_headers ${name}`,
      field: "webhookHeaders" as const,
      value,
    })),
  ];
  for (const { key, field, value } of candidates) {
    if (value === undefined || !SECRET_HANDLE.test(value.trim())) continue;
    const spec = sinkRow(field);
    const source = origins.get(field)?.source ?? "";
    const rule = "secrets backends (secret_backend_command) are not supported, so an ENC[...] " +
      "handle would be sent as it is: give the value itself, for example in the environment " +
      `variable ${spec.envVar} filled from a Kubernetes Secret ` +
      "(env[].valueFrom.secretKeyRef in the pod spec)";
    throw new ConfigError({
      key: spec.fileKey,
      source,
      value: value.trim(),
      rule,
      message: `Cannot use ${key} ${JSON.stringify(value.trim())} (${source}): ${rule}`,
    });
  }
}

/**
 * Refuses a `collected_event_types` entry with neither `kind` nor `source`
 * (the Agent logs and skips it; kevents refuses bad input), and, with the
 * datadog sink on, warns where the event settings do something other than
 * their names suggest: read only when unbundled, or unbundled with an empty
 * list, where the Agent sends nothing and kevents sends every event.
 */
function checkEventTypes(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  warnings: string[],
): void {
  const types = settings.ddCollectedEventTypes;
  const typesSource = origins.get("ddCollectedEventTypes")?.source ?? "default";
  const rule = 'each entry needs "kind" or "source"';
  for (const entry of types) {
    if (entry.kind !== undefined || entry.source !== undefined) continue;
    const value = JSON.stringify(entry);
    throw new ConfigError({
      key: "collected_event_types",
      source: typesSource,
      value,
      rule,
      message: `Cannot use collected_event_types entry ${value} (${typesSource}): ${rule} ` +
        "(the Agent skips such an entry with an error in its log; kevents refuses it)",
    });
  }
  if (!settings.sinks.includes("datadog")) return;
  const source = (field: keyof Settings) => origins.get(field)?.source ?? "default";
  const bundleRest = settings.ddBundleUnspecifiedEvents;
  const filtering = settings.ddFilteringEnabled;
  if (!settings.ddUnbundleEvents) {
    if (types.length > 0 && !filtering) {
      warnings.push(
        `collected_event_types (${typesSource}) is not used: bundled (unbundle_events is ` +
          "false), every event is sent unless filtering_enabled is on, as in the Agent",
      );
    }
    if (bundleRest) {
      warnings.push(
        `bundle_unspecified_events (${source("ddBundleUnspecifiedEvents")}) has no effect ` +
          "without unbundle_events: every event is bundled already",
      );
    }
    return;
  }
  if (types.length > 0 || filtering) return;
  const unbundled = source("ddUnbundleEvents");
  warnings.push(
    bundleRest
      ? `unbundle_events (${unbundled}) with bundle_unspecified_events and an empty ` +
        "collected_event_types sends no event on its own: every event is bundled, as in the " +
        "Agent; name the events to send alone in collected_event_types"
      : `unbundle_events is on (${unbundled}) and collected_event_types is empty: kevents ` +
        "sends every event unbundled, where the Agent would send none (the Datadog Helm chart " +
        "and Operator fill in Pod, Node and CronJob reasons by default); name the events in " +
        "collected_event_types to send only those",
  );
}

/**
 * The sinks' settings, checking what one row cannot: a sink that is on has
 * what it needs, a client certificate comes with its key. Warns about TLS
 * verification turned off and credentials sent over plain HTTP.
 */
export function resolveSinkSettings(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  warnings: string[],
): { webhook: WebhookConfig; datadog: DatadogConfig; otlp: OtlpConfig } {
  const webhookOn = settings.sinks.includes("webhook");
  refuseSecretHandles(settings, origins);
  if (webhookOn && settings.webhookUrl === undefined) {
    throw new ConfigError({
      key: "kevents_webhook_url",
      source: "default",
      value: "",
      rule: "is required with the webhook sink",
      message: "Cannot use the webhook sink: kevents_webhook_url (KEVENTS_WEBHOOK_URL) is not set",
    });
  }
  if ((settings.webhookCertFile === undefined) !== (settings.webhookKeyFile === undefined)) {
    const [given, missing] = settings.webhookCertFile === undefined
      ? ["kevents_webhook_key_file", "kevents_webhook_cert_file"]
      : ["kevents_webhook_cert_file", "kevents_webhook_key_file"];
    const field = settings.webhookCertFile === undefined ? "webhookKeyFile" : "webhookCertFile";
    const source = origins.get(field)?.source ?? "";
    throw new ConfigError({
      key: given,
      source,
      value: settings[field] ?? "",
      rule: `needs ${missing}`,
      message: `Cannot use ${given} (${source}) without ${missing}: a client certificate ` +
        "needs its private key",
    });
  }
  checkEventTypes(settings, origins, warnings);
  if (settings.sinks.includes("datadog") && settings.ddApiKey === undefined) {
    throw new ConfigError({
      key: "api_key",
      source: "default",
      value: "",
      rule: "is required with the datadog sink",
      message: "Cannot use the datadog sink: api_key (DD_API_KEY) is not set",
    });
  }
  if (webhookOn) {
    const url = new URL(settings.webhookUrl!);
    const shown = `${url.protocol}//${url.host}${url.pathname}`;
    if (settings.webhookInsecureSkipVerify && url.protocol === "https:") {
      const source = origins.get("webhookInsecureSkipVerify")?.source ?? "";
      warnings.push(
        `TLS verification of the webhook receiver ${shown} is off ` +
          `(kevents_webhook_insecure_skip_verify, ${source}): anyone on the path can read ` +
          "and forge what is sent",
      );
    }
    const credentials = settings.webhookBearerToken !== undefined || url.password !== "" ||
      Object.keys(settings.webhookHeaders).some(isSecretHeader);
    if (credentials && url.protocol === "http:") {
      warnings.push(`The webhook sink sends credentials to ${shown} over plain HTTP`);
    }
  }
  const fileSources: NonNullable<WebhookConfig["fileSources"]> = {};
  for (const [name, field] of TLS_FILE_FIELDS) {
    const origin = origins.get(field);
    if (settings[field] !== undefined && origin !== undefined) fileSources[name] = origin.source;
  }
  return {
    webhook: {
      url: settings.webhookUrl,
      format: settings.webhookFormat,
      headers: settings.webhookHeaders,
      bearerToken: settings.webhookBearerToken,
      caFile: settings.webhookCaFile,
      certFile: settings.webhookCertFile,
      keyFile: settings.webhookKeyFile,
      ...(Object.keys(fileSources).length === 0 ? {} : { fileSources }),
      insecureSkipVerify: settings.webhookInsecureSkipVerify,
      onFailure: settings.webhookOnFailure,
      maxAttempts: settings.webhookMaxAttempts,
    },
    datadog: {
      apiKey: settings.ddApiKey,
      site: settings.ddSite,
      url: settings.ddUrl,
      unbundleEvents: settings.ddUnbundleEvents,
      collectedEventTypes: settings.ddCollectedEventTypes,
      bundleUnspecifiedEvents: settings.ddBundleUnspecifiedEvents,
      filteringEnabled: settings.ddFilteringEnabled,
      sourceDetection: settings.ddSourceDetection,
      tags: settings.ddTags,
      ...(settings.ddProxyHttps === undefined ? {} : { proxy: settings.ddProxyHttps }),
      noProxy: settings.ddNoProxy,
      onFailure: settings.datadogOnFailure,
      maxAttempts: settings.datadogMaxAttempts,
    },
    otlp: resolveOtlpSettings(settings, origins, warnings),
  };
}
