/**
 * The items of `kevents_sinks`: sink types' names (implicit sinks) and named
 * sinks, checked for form only; named_sinks.ts resolves their options.
 *
 * @module
 */

import { ROUTE_KEYS } from "./routes.ts";
import type { RawValue } from "./settings.ts";
import { SINK_NAMES, type SinkName } from "./types.ts";

/** A named sink as `kevents_sinks` gives it, its values not yet checked. */
export interface NamedSinkInput {
  name: string;
  type: SinkName;
  /** Options, by name, as written (YAML read as JSON). */
  options: Record<string, unknown>;
  /** Routing rules (`include_types`...), as written. */
  rules: Record<string, unknown>;
  /** Its place in the list, for the line of each option. */
  index: number;
}

/** An item of `kevents_sinks`: an implicit sink (a type's name) or a named one. */
export type SinkItem = SinkName | NamedSinkInput;

/** A named sink's name: a metric label and a log field, so kept short and plain. */
const NAME = /^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$/;

/** The rule of `kevents_sinks`. */
export const SINKS_RULE = "must be a non-empty list of sinks (comma-separated names, or a list: " +
  "JSON in the environment, YAML in the file), each one of " +
  `${SINK_NAMES.map((s) => `"${s}"`).join(", ")} or a mapping with a name (lower-case ` +
  "letters, digits, - and _, at most 63) and a type; every name used once";

/** The items of a `kevents_sinks` value; undefined when it breaks {@linkcode SINKS_RULE}. */
export function parseSinkList(raw: RawValue): SinkItem[] | undefined {
  let items: readonly unknown[];
  if (typeof raw !== "string") {
    items = raw;
  } else if (raw.trim().startsWith("[")) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (!Array.isArray(parsed)) return undefined;
      items = parsed;
    } catch {
      return undefined;
    }
  } else {
    items = raw.split(",");
  }
  const out: SinkItem[] = [];
  const names = new Set<string>();
  for (const [index, item] of items.entries()) {
    // YAML reads a bare `- null` item as no value rather than as the text.
    const text = item === null ? "null" : item;
    const parsed = typeof text === "string" ? implicitSink(text) : namedSink(text, index);
    if (parsed === undefined) return undefined;
    const name = typeof parsed === "string" ? parsed : parsed.name;
    if (names.has(name)) return undefined;
    names.add(name);
    out.push(parsed);
  }
  return out.length > 0 ? out : undefined;
}

function implicitSink(text: string): SinkName | undefined {
  return SINK_NAMES.find((s) => s === text.trim());
}

function namedSink(item: unknown, index: number): NamedSinkInput | undefined {
  if (item === null || typeof item !== "object" || Array.isArray(item)) return undefined;
  const { name, type, ...rest } = item as Record<string, unknown>;
  if (typeof name !== "string" || !NAME.test(name)) return undefined;
  const sinkType = typeof type === "string" ? implicitSink(type) : undefined;
  if (sinkType === undefined) return undefined;
  const options: Record<string, unknown> = {};
  const rules: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rest)) {
    (ROUTE_KEYS.has(key) ? rules : options)[key] = value;
  }
  return { name, type: sinkType, options, rules, index };
}

/** The types of the sinks of `kevents_sinks`, implicit and named. */
export function sinkTypes(items: readonly SinkItem[]): Set<SinkName> {
  return new Set(items.map((item) => typeof item === "string" ? item : item.type));
}

/**
 * A `kevents_sinks` value as messages show it: names and types as written,
 * every option and rule of a named sink left out (they may hold
 * credentials: `api_key`, `bearer_token`, headers).
 */
export function maskSinks(raw: RawValue | undefined): string {
  if (raw === undefined) return '""';
  if (typeof raw !== "string") return JSON.stringify(raw);
  if (!raw.trim().startsWith("[")) return JSON.stringify(raw);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return `(text that is not a JSON list, ${raw.length} characters)`;
  }
  if (!Array.isArray(parsed)) return "(not a list)";
  const shown = parsed.map((item) => {
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      return typeof item === "string" ? item : typeof item;
    }
    const { name, type, ...rest } = item as Record<string, unknown>;
    const more = Object.keys(rest).length;
    return {
      name: typeof name === "string" ? name : typeof name,
      type: typeof type === "string" ? type : typeof type,
      ...(more > 0 ? { "...": `${more} more` } : {}),
    };
  });
  return JSON.stringify(shown);
}
