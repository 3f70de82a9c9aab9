/**
 * Resolving one setting from its sources: its default (or one taken from
 * the surroundings), then `datadog.yaml`, then the environment, each value
 * validated by the row's parser and remembered with where it came from.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import type { FileEntry } from "./files.ts";
import { CONFIG_KEYS, type KeySpec, type RawValue, type Settings } from "./settings.ts";
import type { ConfigInput } from "./types.ts";

/** Where a setting's value came from. */
export interface Origin {
  /** Set by the user (file or environment), not a default. */
  explicit: boolean;
  source: string;
  /**
   * For a list of mappings in the file (`kevents_sinks`): where each item
   * (`"2"`) and each of its keys (`"2.url"`) is, as `PATH line N`.
   */
  items?: ReadonlyMap<string, string>;
}

/**
 * `raw` parsed by `spec`; ConfigError naming the key, the value as shown (a
 * secret masked; a text quoted unless `asWritten`, as a file's list or
 * mapping is) and `source` otherwise.
 */
export function parseOrThrow<K extends keyof Settings>(
  spec: KeySpec<K>,
  raw: RawValue | undefined,
  shown: string,
  source: string,
  asWritten = false,
): Settings[K] {
  const value = raw === undefined ? undefined : spec.parse(raw);
  if (value === undefined) {
    // A list or mapping is shown as JSON, a scalar quoted; a secret masked.
    const display = spec.mask !== undefined
      ? spec.mask(raw)
      : typeof raw === "string" && !asWritten
      ? JSON.stringify(shown)
      : shown;
    throw new ConfigError({
      key: spec.fileKey,
      source,
      value: spec.mask !== undefined ? display : shown,
      rule: spec.rule,
      message: `Cannot parse ${spec.fileKey} ${display} (${source}): ${spec.rule}`,
    });
  }
  return value;
}

/**
 * Every value given is validated, including a file value the environment
 * overrides: a mistake in datadog.yaml is reported where it is rather than
 * waiting for the day the override goes away.
 */
export function resolveKey<K extends keyof Settings>(
  spec: KeySpec<K>,
  file: Map<string, FileEntry>,
  input: ConfigInput,
  out: Partial<Settings>,
  origins: Map<keyof Settings, Origin>,
): void {
  // A copy, so that a caller changing its Config (pushing to `sinks`) cannot change the table.
  let value: Settings[K] = structuredClone(spec.default);
  let origin: Origin = { explicit: false, source: "default" };
  const entry = file.get(spec.fileKey);
  const env = input.env[spec.envVar];
  // The surroundings only matter when the user says nothing: a pod's odd
  // namespace must not stop a configuration that names its own.
  const context = entry === undefined && env === undefined
    ? spec.contextDefault?.(input)
    : undefined;
  if (context !== undefined) {
    value = parseOrThrow(spec, context.raw, context.raw, context.source);
    origin = { explicit: false, source: context.source };
  }
  if (entry !== undefined) {
    // A mapping given to a setting that takes a value or a list is refused
    // as written, rather than read as a list of "key=value" texts.
    const raw = spec.fileJsonText === true && entry.jsonText !== undefined
      ? entry.jsonText
      : spec.fileJson === true && entry.json !== undefined
      ? entry.json
      : entry.mapping === true && spec.fileMapping !== true
      ? undefined
      : entry.raw;
    const asWritten = raw !== undefined && (raw === entry.json || raw === entry.jsonText);
    value = parseOrThrow(spec, raw, entry.shown, entry.source, asWritten);
    origin = {
      explicit: true,
      source: entry.source,
      ...(entry.items === undefined ? {} : { items: entry.items }),
    };
  }
  if (env !== undefined) {
    const source = `env ${spec.envVar}`;
    value = parseOrThrow(spec, env, env, source);
    origin = { explicit: true, source };
  }
  out[spec.field] = value;
  origins.set(spec.field, origin);
}

/** `out` once every row has filled its field. */
export function completed(out: Partial<Settings>): Settings {
  for (const spec of CONFIG_KEYS) {
    if (!(spec.field in out)) throw new Error(`Internal error: ${spec.field} was not resolved`);
  }
  return out as Settings;
}
