/**
 * The OTLP sink's settings: its rows of the settings table (spread into
 * sinks.ts's `SINK_ROWS`, which would grow past 600 lines with them) and
 * what one row cannot check, resolved into {@linkcode OtlpConfig}.
 *
 * The endpoints follow the OpenTelemetry exporters' environment variables:
 * `kevents_otlp_endpoint` is a base URL to which `/v1/logs` is appended
 * (as `OTEL_EXPORTER_OTLP_ENDPOINT`), `kevents_otlp_logs_endpoint` a full
 * URL used as given (as `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`), which wins.
 * Those variables, and the other `OTEL_EXPORTER_OTLP_*` ones, fill what
 * these settings leave unset (_otel_env.ts).
 *
 * @module
 */

import { isSecretHeader } from "../ops/mod.ts";
import { maskHeaders, maskUrl } from "./_masks.ts";
import type { Origin } from "./_resolve.ts";
import {
  ATTEMPTS_RULE,
  BOOL_RULE,
  filePath,
  httpUrl,
  integerIn,
  ON_FAILURE_RULE,
  oneOf,
  parseBool,
  parseHeaders,
  URL_RULE,
} from "./_values.ts";
import { ConfigError } from "./errors.ts";
import type { AnyKeySpec, Settings } from "./settings.ts";
import type { OtlpConfig } from "./types.ts";

/** The OTLP sink's rows. */
export const OTLP_ROWS: readonly AnyKeySpec[] = [
  {
    field: "otlpEndpoint",
    fileKey: "kevents_otlp_endpoint",
    envVar: "KEVENTS_OTLP_ENDPOINT",
    parse: httpUrl,
    default: undefined,
    rule: URL_RULE,
    description: "Base URL of the OTLP/HTTP receiver: log records go to <endpoint>/v1/logs " +
      "(this or kevents_otlp_logs_endpoint is required with the otlp sink)",
    mask: maskUrl,
  },
  {
    field: "otlpLogsEndpoint",
    fileKey: "kevents_otlp_logs_endpoint",
    envVar: "KEVENTS_OTLP_LOGS_ENDPOINT",
    parse: httpUrl,
    default: undefined,
    rule: URL_RULE,
    description: "Full URL log records are POSTed to, used as given (wins over " +
      "kevents_otlp_endpoint)",
    mask: maskUrl,
  },
  {
    field: "otlpProtocol",
    fileKey: "kevents_otlp_protocol",
    envVar: "KEVENTS_OTLP_PROTOCOL",
    parse: oneOf("http/protobuf", "http/json"),
    default: "http/protobuf",
    rule: 'must be "http/protobuf" or "http/json" (OTLP over gRPC is not supported)',
    description: "Encoding of the OTLP requests: binary protobuf or JSON",
  },
  {
    field: "otlpCompression",
    fileKey: "kevents_otlp_compression",
    envVar: "KEVENTS_OTLP_COMPRESSION",
    parse: oneOf("gzip", "none"),
    default: "gzip",
    rule: 'must be "gzip" or "none"',
    description: "Compression of the OTLP request bodies (every OTLP receiver takes gzip)",
  },
  {
    field: "otlpHeaders",
    fileKey: "kevents_otlp_headers",
    envVar: "KEVENTS_OTLP_HEADERS",
    parse: parseHeaders,
    default: {},
    rule: "must be headers as NAME=VALUE pairs (comma-separated, or a mapping in the file), " +
      "each name a valid header name given once, values without control characters",
    description: "Extra headers of the OTLP requests (an API key, a tenant)",
    mask: maskHeaders,
    fileMapping: true,
  },
  {
    field: "otlpCaFile",
    fileKey: "kevents_otlp_ca_file",
    envVar: "KEVENTS_OTLP_CA_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description: "PEM file of the CA(s) the otlp sink trusts instead of the system's",
  },
  {
    field: "otlpCertFile",
    fileKey: "kevents_otlp_cert_file",
    envVar: "KEVENTS_OTLP_CERT_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description: "PEM file of the otlp sink's client certificate (with kevents_otlp_key_file)",
  },
  {
    field: "otlpKeyFile",
    fileKey: "kevents_otlp_key_file",
    envVar: "KEVENTS_OTLP_KEY_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description: "PEM file of the otlp client certificate's private key",
  },
  {
    field: "otlpInsecureSkipVerify",
    fileKey: "kevents_otlp_insecure_skip_verify",
    envVar: "KEVENTS_OTLP_INSECURE_SKIP_VERIFY",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Accept any certificate from the OTLP receiver (insecure)",
  },
  {
    field: "otlpOnFailure",
    fileKey: "kevents_otlp_on_failure",
    envVar: "KEVENTS_OTLP_ON_FAILURE",
    parse: oneOf("retry", "drop"),
    default: "retry",
    rule: ON_FAILURE_RULE,
    description: "What the otlp sink does with a batch it cannot deliver",
  },
  {
    field: "otlpMaxAttempts",
    fileKey: "kevents_otlp_max_attempts",
    envVar: "KEVENTS_OTLP_MAX_ATTEMPTS",
    parse: integerIn(1, 100),
    default: 5,
    rule: ATTEMPTS_RULE,
    description:
      "Attempts of one OTLP request before a send fails (or, with drop, the batch is dropped)",
  },
];

/** The Agent's secrets-backend handle: the whole value is `ENC[...]`. */
const SECRET_HANDLE = /^ENC\[.*\]$/s;

/** The URL log records go to: the logs endpoint as given, else the base with `/v1/logs`. */
export function otlpLogsUrl(
  endpoint: string | undefined,
  logsEndpoint: string | undefined,
): string | undefined {
  if (logsEndpoint !== undefined) return logsEndpoint;
  if (endpoint === undefined) return undefined;
  // As the exporters do with OTEL_EXPORTER_OTLP_ENDPOINT: the signal's path
  // goes after the base's own path, one slash between, the query kept.
  const url = new URL(endpoint);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/logs`;
  return url.href;
}

/**
 * The OTLP sink's settings, checking what one row cannot: with the sink on,
 * an endpoint is set; a client certificate comes with its key; no header is
 * an `ENC[...]` handle. Warns about TLS verification turned off and
 * credentials sent over plain HTTP.
 */
export function resolveOtlpSettings(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  warnings: string[],
): OtlpConfig {
  const on = settings.sinks.includes("otlp");
  const source = (field: keyof Settings) => origins.get(field)?.source ?? "default";
  for (const [name, value] of Object.entries(settings.otlpHeaders)) {
    if (!SECRET_HANDLE.test(value.trim())) continue;
    const rule = "secrets backends (secret_backend_command) are not supported, so an ENC[...] " +
      "handle would be sent as it is: give the value itself, for example in the environment " +
      "variable KEVENTS_OTLP_HEADERS filled from a Kubernetes Secret " +
      "(env[].valueFrom.secretKeyRef in the pod spec)";
    throw new ConfigError({
      key: "kevents_otlp_headers",
      source: source("otlpHeaders"),
      value: value.trim(),
      rule,
      message: `Cannot use kevents_otlp_headers ${name} ${JSON.stringify(value.trim())} ` +
        `(${source("otlpHeaders")}): ${rule}`,
    });
  }
  const url = otlpLogsUrl(settings.otlpEndpoint, settings.otlpLogsEndpoint);
  if (on && url === undefined) {
    throw new ConfigError({
      key: "kevents_otlp_endpoint",
      source: "default",
      value: "",
      rule: "is required with the otlp sink",
      message: "Cannot use the otlp sink: kevents_otlp_endpoint (KEVENTS_OTLP_ENDPOINT) and " +
        "kevents_otlp_logs_endpoint (KEVENTS_OTLP_LOGS_ENDPOINT) are not set, nor " +
        "OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    });
  }
  if ((settings.otlpCertFile === undefined) !== (settings.otlpKeyFile === undefined)) {
    const [given, missing, field] = settings.otlpCertFile === undefined
      ? ["kevents_otlp_key_file", "kevents_otlp_cert_file", "otlpKeyFile" as const]
      : ["kevents_otlp_cert_file", "kevents_otlp_key_file", "otlpCertFile" as const];
    throw new ConfigError({
      key: given,
      source: source(field),
      value: settings[field] ?? "",
      rule: `needs ${missing}`,
      message: `Cannot use ${given} (${source(field)}) without ${missing}: a client ` +
        "certificate needs its private key",
    });
  }
  if (on && url !== undefined) {
    const shown = new URL(url);
    const where = `${shown.protocol}//${shown.host}${shown.pathname}`;
    if (settings.otlpInsecureSkipVerify && shown.protocol === "https:") {
      warnings.push(
        `TLS verification of the OTLP receiver ${where} is off ` +
          `(kevents_otlp_insecure_skip_verify, ${source("otlpInsecureSkipVerify")}): anyone ` +
          "on the path can read and forge what is sent",
      );
    }
    const credentials = shown.password !== "" ||
      Object.keys(settings.otlpHeaders).some(isSecretHeader);
    if (credentials && shown.protocol === "http:") {
      warnings.push(`The otlp sink sends credentials to ${where} over plain HTTP`);
    }
  }
  const fileSources: NonNullable<OtlpConfig["fileSources"]> = {};
  for (
    const [name, field] of [
      ["caFile", "otlpCaFile"],
      ["certFile", "otlpCertFile"],
      ["keyFile", "otlpKeyFile"],
    ] as const
  ) {
    const origin = origins.get(field);
    if (settings[field] !== undefined && origin !== undefined) fileSources[name] = origin.source;
  }
  return {
    url,
    protocol: settings.otlpProtocol,
    compression: settings.otlpCompression,
    headers: settings.otlpHeaders,
    caFile: settings.otlpCaFile,
    certFile: settings.otlpCertFile,
    keyFile: settings.otlpKeyFile,
    ...(Object.keys(fileSources).length === 0 ? {} : { fileSources }),
    insecureSkipVerify: settings.otlpInsecureSkipVerify,
    onFailure: settings.otlpOnFailure,
    maxAttempts: settings.otlpMaxAttempts,
  };
}
