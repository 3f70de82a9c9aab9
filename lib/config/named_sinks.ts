/**
 * `kevents_sinks` as a list of sinks: each item is either a sink type's name
 * (`stdout`, `webhook`...), one implicit sink configured by the flat
 * settings (`kevents_webhook_url`...), or a named sink, a mapping with its
 * `name`, `type`, options and routing rules:
 *
 * ```yaml
 * kevents_sinks:
 *   - stdout
 *   - name: warnings
 *     type: webhook
 *     url: https://hooks.example.com/k8s
 *     include_types: [Warning]
 *   - name: archive
 *     type: otlp
 *     endpoint: http://otel-collector:4318
 * ```
 *
 * A named sink's options are its type's flat settings without their
 * prefix (`kevents_webhook_url` is `url`; the Datadog ones keep the
 * Agent's names: `api_key`, `site`, `unbundle_events`..., with `tags`,
 * `source_detection`, `on_failure` and `max_attempts`); it starts from the
 * defaults, not from the flat settings. Its rules are those of
 * `kevents_routes` (`include_types`, `exclude_namespaces`, `match`...).
 * Every value follows the rule of its flat setting, and an error names the
 * sink, the option and the line.
 *
 * @module
 */

import type { EventRoute } from "../pump/mod.ts";
import { type Origin, parseOrThrow } from "./_resolve.ts";
import { type NamedSinkInput, parseSinkList } from "./_sink_list.ts";
import type { FileEntry } from "./files.ts";
import { ConfigError } from "./errors.ts";
import { parseRoutes, ROUTES_RULE } from "./routes.ts";
import type { AnyKeySpec, KeySpec, RawValue, Settings } from "./settings.ts";
import { resolveSinkSettings, SINK_ROWS } from "./sinks.ts";
import { SINK_NAMES, type SinkName, type SinkSpec } from "./types.ts";

/** The sink types whose flat settings are options of a named sink, by option name. */
function optionRows(type: SinkName): Map<string, AnyKeySpec> {
  const rows = new Map<string, AnyKeySpec>();
  if (type === "webhook" || type === "otlp") {
    const prefix = `kevents_${type}_`;
    for (const row of SINK_ROWS) {
      if (row.field.startsWith(type)) rows.set(row.fileKey.slice(prefix.length), row);
    }
  } else if (type === "datadog") {
    for (const [option, field] of Object.entries(DATADOG_OPTIONS)) {
      rows.set(option, SINK_ROWS.find((row) => row.field === field)!);
    }
  }
  return rows;
}

/**
 * The Datadog sink's options: per sink what the Agent's check instance sets
 * (its own name), but not the proxy nor the bundling window, which are the
 * process's.
 */
const DATADOG_OPTIONS: Record<string, keyof Settings> = {
  "api_key": "ddApiKey",
  "site": "ddSite",
  "dd_url": "ddUrl",
  "unbundle_events": "ddUnbundleEvents",
  "collected_event_types": "ddCollectedEventTypes",
  "bundle_unspecified_events": "ddBundleUnspecifiedEvents",
  "filtering_enabled": "ddFilteringEnabled",
  "source_detection": "ddSourceDetection",
  "tags": "ddTags",
  "on_failure": "datadogOnFailure",
  "max_attempts": "datadogMaxAttempts",
};

/** Every Settings field some sink type takes as an option. */
const OPTION_FIELDS: ReadonlySet<keyof Settings> = new Set(
  SINK_NAMES.flatMap((type) => [...optionRows(type).values()].map((row) => row.field)),
);

/** An option's value as a setting's raw value, as the file would give it; undefined when it cannot be one. */
function rawOf(value: unknown, row: AnyKeySpec): RawValue | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (row.fileJson === true && value !== null && typeof value === "object") {
    return JSON.stringify(value);
  }
  const scalar = (v: unknown) =>
    typeof v === "string" || typeof v === "number" || typeof v === "boolean"
      ? String(v)
      : undefined;
  if (Array.isArray(value)) {
    const items = value.map(scalar);
    return items.every((i) => i !== undefined) ? items as string[] : undefined;
  }
  if (row.fileMapping === true && value !== null && typeof value === "object") {
    const items = Object.entries(value).map(([k, v]) => {
      const text = v === null ? "" : scalar(v);
      return text === undefined ? undefined : `${k}=${text}`;
    });
    return items.every((i) => i !== undefined) ? items as string[] : undefined;
  }
  return undefined;
}

/** The Agent's secrets-backend handle: the whole value is `ENC[...]`. */
const SECRET_HANDLE = /^ENC\[.*\]$/s;

/** What resolving the sinks gives parseConfig. */
export interface ResolvedSinks {
  /** Every sink, in the order of `kevents_sinks`. */
  outputs: SinkSpec[];
  /** The named sinks' rules, by sink name. */
  routes: Record<string, EventRoute>;
}

/**
 * Every sink of `kevents_sinks`, in order: the implicit ones with the flat
 * settings' configuration (`flat`), the named ones each resolved from its
 * options as the flat settings are. ConfigError names the sink, the option,
 * the value, the line and the rule.
 */
export function resolveSinks(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  flat: Pick<SinkSpecConfigs, "webhook" | "datadog" | "otlp">,
  warnings: string[],
): ResolvedSinks {
  const outputs: SinkSpec[] = [];
  const routes: Record<string, EventRoute> = {};
  const origin = origins.get("sinks") ?? { explicit: false, source: "default" };
  for (const item of settings.sinks) {
    if (typeof item === "string") {
      outputs.push(specOf(item, item, flat));
      continue;
    }
    const where = (key?: string) =>
      origin.items?.get(key === undefined ? `${item.index}` : `${item.index}.${key}`) ??
        origin.source;
    const configs = resolveNamed(item, settings, origins, where, warnings);
    outputs.push({ ...specOf(item.name, item.type, configs), named: true });
    if (Object.keys(item.rules).length > 0) {
      const route = parseRoutes(JSON.stringify({ [item.name]: item.rules }))?.[item.name];
      if (route === undefined) {
        const shown = JSON.stringify(item.rules);
        throw new ConfigError({
          key: `kevents_sinks ${item.name}`,
          source: where(),
          value: shown,
          rule: ROUTES_RULE,
          message: `Cannot parse the rules of sink "${item.name}" ${shown} (${where()}): ` +
            "include_types, include_namespaces, include_reasons, include_kinds and their " +
            "exclude_ forms must be lists of texts, match a field selector text",
        });
      }
      routes[item.name] = route;
    }
  }
  return { outputs, routes };
}

/** The configurations one sink of each type may have. */
type SinkSpecConfigs = {
  webhook: Extract<SinkSpec, { type: "webhook" }>["webhook"];
  datadog: Extract<SinkSpec, { type: "datadog" }>["datadog"];
  otlp: Extract<SinkSpec, { type: "otlp" }>["otlp"];
};

function specOf(name: string, type: SinkName, configs: SinkSpecConfigs): SinkSpec {
  switch (type) {
    case "stdout":
    case "null":
      return { name, type };
    case "webhook":
      return { name, type, webhook: configs.webhook };
    case "datadog":
      return { name, type, datadog: configs.datadog };
    case "otlp":
      return { name, type, otlp: configs.otlp };
  }
}

/** A named sink's configuration: its type's defaults, then its options, checked as the flat settings are. */
function resolveNamed(
  item: NamedSinkInput,
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  where: (key?: string) => string,
  warnings: string[],
): SinkSpecConfigs {
  const local = structuredClone(settings) as unknown as Record<string, unknown>;
  const localOrigins = new Map(origins);
  for (const row of SINK_ROWS) {
    if (!OPTION_FIELDS.has(row.field)) continue;
    local[row.field] = structuredClone(row.default);
    localOrigins.set(row.field, { explicit: false, source: "default" });
  }
  local["sinks"] = [item.type];
  const rows = optionRows(item.type);
  const given = new Set<string>();
  for (const [option, value] of Object.entries(item.options)) {
    const row = rows.get(option);
    if (row === undefined) {
      const known = [...rows.keys()];
      const rule = known.length === 0
        ? `the ${item.type} sink takes no options, only the routing rules`
        : `is not an option of the ${item.type} sink, which takes ${known.join(", ")} and the ` +
          "routing rules (include_types... match)";
      throw new ConfigError({
        key: `kevents_sinks ${item.name}.${option}`,
        source: where(option),
        value: option,
        rule,
        message: `Cannot use option ${option} of sink "${item.name}" (${where(option)}): ${rule}`,
      });
    }
    const spec = { ...row, fileKey: `kevents_sinks ${item.name}.${option}` } as KeySpec<
      keyof Settings
    >;
    const raw = rawOf(value, row);
    const shown = typeof value === "string" ? value : JSON.stringify(value);
    local[row.field] = parseOrThrow(spec, raw, shown, where(option));
    localOrigins.set(row.field, { explicit: true, source: where(option) });
    given.add(option);
  }
  const named = local as unknown as Settings;
  checkNamed(item, named, given, where);
  const said: string[] = [];
  const resolved = resolveSinkSettings(named, localOrigins, said);
  warnings.push(...said.map((w) => `Sink "${item.name}": ${w}`));
  return resolved;
}

/** What a named sink needs that no single option can check; errors name the sink's options. */
function checkNamed(
  item: NamedSinkInput,
  s: Settings,
  given: ReadonlySet<string>,
  where: (key?: string) => string,
): void {
  const fail = (option: string, value: string, rule: string): never => {
    const name = option.split(" ")[0]!;
    const source = given.has(name) ? where(name) : where();
    throw new ConfigError({
      key: `kevents_sinks ${item.name}.${option}`,
      source,
      value,
      rule,
      message: `Cannot use sink "${item.name}" (${source}): ${option} ${rule}`,
    });
  };
  const required: Partial<Record<SinkName, [string, unknown]>> = {
    webhook: ["url", s.webhookUrl],
    datadog: ["api_key", s.ddApiKey],
    otlp: ["endpoint", s.otlpEndpoint ?? s.otlpLogsEndpoint],
  };
  const need = required[item.type];
  if (need !== undefined && need[1] === undefined) {
    fail(
      need[0],
      "",
      `is required with the ${item.type} sink` +
        (item.type === "otlp" ? " (or logs_endpoint)" : ""),
    );
  }
  const pairs: Partial<Record<SinkName, [string | undefined, string | undefined]>> = {
    webhook: [s.webhookCertFile, s.webhookKeyFile],
    otlp: [s.otlpCertFile, s.otlpKeyFile],
  };
  const pair = pairs[item.type];
  if (pair !== undefined && (pair[0] === undefined) !== (pair[1] === undefined)) {
    const [option, missing] = pair[0] === undefined
      ? ["key_file", "cert_file"]
      : ["cert_file", "key_file"];
    fail(option, pair[0] ?? pair[1] ?? "", `needs ${missing}: a client certificate needs its key`);
  }
  const secrets: [string, string | undefined][] = item.type === "webhook"
    ? [
      ["bearer_token", s.webhookBearerToken],
      ...Object.entries(s.webhookHeaders).map(([n, v]): [string, string] => [`headers ${n}`, v]),
    ]
    : item.type === "otlp"
    ? Object.entries(s.otlpHeaders).map(([n, v]): [string, string] => [`headers ${n}`, v])
    : item.type === "datadog"
    ? [["api_key", s.ddApiKey]]
    : [];
  for (const [option, value] of secrets) {
    if (value === undefined || !SECRET_HANDLE.test(value.trim())) continue;
    fail(
      option,
      value.trim(),
      "is an ENC[...] handle of a secrets backend, which kevents does not support: it would " +
        "be sent as it is; give the value itself (KEVENTS_SINKS in the environment can be " +
        "filled from a Kubernetes Secret)",
    );
  }
}

/**
 * Checks the named sinks of a `kevents_sinks` the environment overrides, as
 * every value given is checked: a mistake in datadog.yaml is reported where
 * it is, not on the day the override goes away. What they would resolve to
 * is dropped, and so are their warnings.
 */
export function checkOverriddenSinks(
  entry: FileEntry,
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  flat: Pick<SinkSpecConfigs, "webhook" | "datadog" | "otlp">,
): void {
  const raw = entry.jsonText ?? entry.raw;
  // resolveKey already refused a file value of the wrong form.
  const items = raw === undefined ? undefined : parseSinkList(raw);
  if (items === undefined) return;
  const fileOrigins = new Map(origins);
  fileOrigins.set("sinks", {
    explicit: true,
    source: entry.source,
    ...(entry.items === undefined ? {} : { items: entry.items }),
  });
  resolveSinks({ ...settings, sinks: items }, fileOrigins, flat, []);
}
