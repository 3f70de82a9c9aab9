/**
 * The OpenTelemetry exporters' environment variables, read for the otlp
 * sink where kevents' own settings leave a value unset: a pod set up for
 * OpenTelemetry (by hand, or by the OpenTelemetry Operator) sends to its
 * collector without a second configuration. kevents' settings win,
 * wherever they are written; the signal's variable
 * (`OTEL_EXPORTER_OTLP_LOGS_X`) wins over the general one
 * (`OTEL_EXPORTER_OTLP_X`), as in the OpenTelemetry SDKs.
 *
 * | variable (`_LOGS_` form first)          | fills                       |
 * | --------------------------------------- | --------------------------- |
 * | `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`      | `kevents_otlp_logs_endpoint` |
 * | `OTEL_EXPORTER_OTLP_ENDPOINT`           | `kevents_otlp_endpoint`     |
 * | `..._HEADERS` (values percent-decoded)  | `kevents_otlp_headers`      |
 * | `..._PROTOCOL` (`grpc` refused)         | `kevents_otlp_protocol`     |
 * | `..._COMPRESSION`                       | `kevents_otlp_compression`  |
 * | `..._CERTIFICATE`                       | `kevents_otlp_ca_file`      |
 * | `..._CLIENT_CERTIFICATE`                | `kevents_otlp_cert_file`    |
 * | `..._CLIENT_KEY`                        | `kevents_otlp_key_file`     |
 *
 * `..._TIMEOUT` and `..._INSECURE` (gRPC only) are not read: a warning
 * says so when they are set. Only the implicit otlp sink reads them; named
 * sinks take their options from `kevents_sinks` alone.
 *
 * @module
 */

import { type Origin, parseOrThrow } from "./_resolve.ts";
import { ConfigError } from "./errors.ts";
import type { KeySpec, RawValue, Settings } from "./settings.ts";
import { OTLP_ROWS } from "./_otlp.ts";

type OtlpField =
  | "otlpHeaders"
  | "otlpProtocol"
  | "otlpCompression"
  | "otlpCaFile"
  | "otlpCertFile"
  | "otlpKeyFile";

/** The variables other than the endpoints, by the field they fill. */
const VARIABLES: readonly [OtlpField, string][] = [
  ["otlpHeaders", "HEADERS"],
  ["otlpProtocol", "PROTOCOL"],
  ["otlpCompression", "COMPRESSION"],
  ["otlpCaFile", "CERTIFICATE"],
  ["otlpCertFile", "CLIENT_CERTIFICATE"],
  ["otlpKeyFile", "CLIENT_KEY"],
];

/** The two names of a variable, the logs signal's first. */
function names(suffix: string): [string, string] {
  return [`OTEL_EXPORTER_OTLP_LOGS_${suffix}`, `OTEL_EXPORTER_OTLP_${suffix}`];
}

function row(field: keyof Settings): KeySpec<keyof Settings> {
  const spec = OTLP_ROWS.find((r) => r.field === field);
  if (spec === undefined) throw new Error(`Internal error: no setting ${field}`);
  return spec as KeySpec<keyof Settings>;
}

/**
 * `k=v,k2=v2` with percent-encoded values (the W3C Baggage form the
 * OpenTelemetry specification gives `OTEL_EXPORTER_OTLP_HEADERS`) as the
 * `k=v` items of a header list; undefined when an item cannot be decoded.
 */
function otelHeaders(text: string): RawValue | undefined {
  if (text.trim() === "") return [];
  const items: string[] = [];
  for (const item of text.split(",")) {
    const eq = item.indexOf("=");
    if (eq < 0) return undefined;
    try {
      items.push(`${item.slice(0, eq).trim()}=${decodeURIComponent(item.slice(eq + 1).trim())}`);
    } catch {
      return undefined;
    }
  }
  return items;
}

/**
 * Fills the otlp sink's settings the user left unset from the
 * OpenTelemetry variables of `env`, each validated by its setting's rule
 * (ConfigError naming the variable otherwise), with `env NAME` as source.
 * Does nothing unless the implicit otlp sink is on.
 */
export function applyOtelEnvironment(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  env: Readonly<Record<string, string>>,
  warnings: string[],
): void {
  if (!settings.sinks.includes("otlp")) return;
  const unset = (field: keyof Settings) => origins.get(field)?.explicit !== true;
  const fill = (field: keyof Settings, name: string, raw: RawValue | undefined, text: string) => {
    const spec = { ...row(field), fileKey: name };
    const value = parseOrThrow(spec, raw, text, `env ${name}`);
    (settings as unknown as Record<string, unknown>)[field] = value;
    origins.set(field, { explicit: true, source: `env ${name}` });
  };
  const given = (name: string) => env[name] !== undefined && env[name].trim() !== "";

  if (unset("otlpEndpoint") && unset("otlpLogsEndpoint")) {
    const [logs, general] = names("ENDPOINT");
    if (given(logs)) fill("otlpLogsEndpoint", logs, env[logs]!, env[logs]!);
    else if (given(general)) fill("otlpEndpoint", general, env[general]!, env[general]!);
  }
  for (const [field, suffix] of VARIABLES) {
    if (!unset(field)) continue;
    const name = names(suffix).find(given);
    if (name === undefined) continue;
    const text = env[name]!;
    if (field === "otlpProtocol" && text.trim().toLowerCase() === "grpc") {
      const rule = "kevents sends OTLP over HTTP only (http/protobuf or http/json): point the " +
        "endpoint at the collector's OTLP/HTTP port (4318 by default) and set " +
        "KEVENTS_OTLP_PROTOCOL, which wins over this variable";
      throw new ConfigError({ key: name, source: `env ${name}`, value: text, rule });
    }
    fill(field, name, field === "otlpHeaders" ? otelHeaders(text) : text, text);
  }
  for (const suffix of ["TIMEOUT", "INSECURE"]) {
    for (const name of names(suffix).filter(given)) {
      warnings.push(
        `${name} is not read: each request of the otlp sink is bounded at 10 s` +
          (suffix === "INSECURE"
            ? ", and it speaks OTLP/HTTP, where the URL's scheme decides"
            : ""),
      );
    }
  }
}
