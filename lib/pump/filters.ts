/**
 * Which events kevents delivers: the Agent's `filtered_event_types` and
 * kevents' include/exclude lists, turned into a field selector the API
 * server applies and a predicate the pump applies. Pure: nothing here does
 * I/O.
 *
 * Two places filter, and they differ in what they cost and what they can
 * say. The API server applies a field selector before an event leaves it,
 * so filtered events cost neither bandwidth nor queue space; but a field
 * selector is a conjunction of `field=value` and `field!=value` terms, and
 * cannot say "one of several values". Whatever it can say is pushed down:
 * every `filtered_event_types` entry (server-side only, as in the Agent),
 * a single-valued include (`type=Warning`) and every exclude
 * (`reason!=BackOff`). A multi-valued include stays client-side. The
 * predicate checks every include and exclude, pushed down or not, so that
 * what is delivered does not depend on what a server honoured.
 *
 * The field selector grammar is kube-apiserver's (apimachinery `fields`):
 * terms separated by unescaped commas, each `field=value`, `field==value`
 * or `field!=value` split at the first operator, with `\,`, `\=` and `\\`
 * the only escapes in a value; the field must be one the server's field
 * label conversion for core/v1 Events accepts.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";

/** The fields of core/v1 Events the API server accepts in a field selector. */
export const EVENT_SELECTOR_FIELDS: ReadonlySet<string> = new Set([
  "involvedObject.kind",
  "involvedObject.namespace",
  "involvedObject.name",
  "involvedObject.uid",
  "involvedObject.apiVersion",
  "involvedObject.resourceVersion",
  "involvedObject.fieldPath",
  "reason",
  "reportingComponent",
  "source",
  "type",
  "metadata.namespace",
  "metadata.name",
]);

/** Options of {@linkcode FieldSelectorError}. */
export interface FieldSelectorErrorOptions {
  /** The whole selector. */
  selector: string;
  /** What is wrong with it, completing "Cannot parse field selector "X": ". */
  detail: string;
}

/** Raised for a field selector the API server would reject. */
export class FieldSelectorError extends Error {
  /** The whole selector. */
  readonly selector: string;
  /** What is wrong with it. */
  readonly detail: string;

  constructor(options: FieldSelectorErrorOptions) {
    super(`Cannot parse field selector ${JSON.stringify(options.selector)}: ${options.detail}`);
    this.name = "FieldSelectorError";
    this.selector = options.selector;
    this.detail = options.detail;
  }
}

/** One term of a field selector, its value unescaped; `==` is read as `=`. */
export interface FieldTerm {
  field: string;
  operator: "=" | "!=";
  value: string;
}

/** Escapes a literal value for a field selector: `\`, `,` and `=` get a backslash. */
export function escapeFieldValue(value: string): string {
  return value.replace(/[\\,=]/g, (c) => `\\${c}`);
}

/** Splits on commas that are not escaped; escapes stay in the terms. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (escaped) escaped = false;
    else if (c === "\\") escaped = true;
    else if (c === ",") {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  return terms;
}

function unescapeValue(selector: string, raw: string): string {
  let out = "";
  let escaped = false;
  for (const c of raw) {
    if (escaped) {
      if (c !== "\\" && c !== "," && c !== "=") {
        throw new FieldSelectorError({ selector, detail: `invalid escape sequence "\\${c}"` });
      }
      out += c;
      escaped = false;
    } else if (c === "\\") {
      escaped = true;
    } else if (c === "=") {
      throw new FieldSelectorError({
        selector,
        detail: `unescaped "=" in the value ${JSON.stringify(raw)} (write "\\=")`,
      });
    } else {
      out += c;
    }
  }
  if (escaped) {
    throw new FieldSelectorError({
      selector,
      detail: `the value ${JSON.stringify(raw)} ends in "\\"`,
    });
  }
  return out;
}

/**
 * Parses a field selector for core/v1 Events and checks it as kube-apiserver
 * does; throws {@linkcode FieldSelectorError} where the server would answer
 * 400. Empty terms are skipped, as are terms with neither field nor value.
 */
export function parseEventFieldSelector(selector: string): FieldTerm[] {
  const out: FieldTerm[] = [];
  for (const term of selector === "" ? [] : splitTerms(selector)) {
    if (term === "") continue;
    // The first operator wins, "!=" and "==" before "=" at the same place.
    const at = term.search(/!=|==|=/);
    if (at < 0) {
      throw new FieldSelectorError({
        selector,
        detail: `the term ${JSON.stringify(term)} has no operator (=, == or !=)`,
      });
    }
    const operator = term.startsWith("!=", at) ? "!=" : term.startsWith("==", at) ? "==" : "=";
    const field = term.slice(0, at);
    const value = unescapeValue(selector, term.slice(at + operator.length));
    if (field === "" && value === "") continue;
    if (!EVENT_SELECTOR_FIELDS.has(field)) {
      throw new FieldSelectorError({
        selector,
        detail: `the API server cannot select events on the field ${JSON.stringify(field)} ` +
          `(it can on ${[...EVENT_SELECTOR_FIELDS].join(", ")})`,
      });
    }
    out.push({ field, operator: operator === "!=" ? "!=" : "=", value });
  }
  return out;
}

// ---- The Agent's filtered_event_types ---------------------------------------

/**
 * One `filtered_event_types` entry as the Agent reads it: with no `=` at
 * all it is an event reason to leave out (`reason!=ENTRY`), otherwise a
 * field selector used as written.
 */
export function agentFilterTerm(entry: string): string {
  return entry.includes("=") ? entry : `reason!=${entry}`;
}

/** The Agent's `filtered_event_types` as one field selector: each entry read by {@linkcode agentFilterTerm}, joined with commas ("" for none). */
export function agentFieldSelector(entries: readonly string[]): string {
  return entries.map(agentFilterTerm).join(",");
}

/** A `filtered_event_types` entry the API server would reject, and why. */
export class FilteredEventTypeError extends Error {
  /** The entry as configured. */
  readonly entry: string;
  /** Why the server would reject it. */
  readonly detail: string;

  constructor(entry: string, cause: FieldSelectorError) {
    super(`Cannot use filtered_event_types entry ${JSON.stringify(entry)}: ${cause.detail}`, {
      cause,
    });
    this.name = "FilteredEventTypeError";
    this.entry = entry;
    this.detail = cause.detail;
  }
}

/**
 * Checks every `filtered_event_types` entry against the API server's rules,
 * one at a time so that the error names the entry; throws
 * {@linkcode FilteredEventTypeError}.
 */
export function checkFilteredEventTypes(entries: readonly string[]): void {
  for (const entry of entries) {
    try {
      parseEventFieldSelector(agentFilterTerm(entry));
    } catch (e) {
      if (e instanceof FieldSelectorError) throw new FilteredEventTypeError(entry, e);
      throw e;
    }
  }
}

// ---- Include and exclude -----------------------------------------------------

/** Values per event property; an empty list places no condition. */
export interface EventMatch {
  /** Event types (`Normal`, `Warning`). */
  types: readonly string[];
  /** The event's namespace (`metadata.namespace`). */
  namespaces: readonly string[];
  /** Event reasons (`BackOff`, `FailedScheduling`). */
  reasons: readonly string[];
  /** The involved object's kind (`Pod`, `Node`). */
  kinds: readonly string[];
}

/** Every event filter setting; exact, case-sensitive values. */
export interface EventFilterSettings {
  /** The Agent's `filtered_event_types` (server-side only). */
  filteredEventTypes: readonly string[];
  /** An event must have one of the listed values for every non-empty list. */
  include: EventMatch;
  /** An event with any listed value is left out, whatever `include` says. */
  exclude: EventMatch;
}

/** Settings that filter nothing. */
export const NO_EVENT_FILTERS: EventFilterSettings = Object.freeze({
  filteredEventTypes: [],
  include: Object.freeze({ types: [], namespaces: [], reasons: [], kinds: [] }),
  exclude: Object.freeze({ types: [], namespaces: [], reasons: [], kinds: [] }),
});

/** Decides whether an event is delivered. */
export type EventPredicate = (event: CoreV1Event) => boolean;

/** How the settings are applied. */
export interface EventFilterPlan {
  /** Sent with every list and watch; undefined when the server has nothing to filter. */
  fieldSelector: string | undefined;
  /** Applied to every listed or watched event; undefined when there is nothing to check. */
  filter: EventPredicate | undefined;
}

interface Dimension {
  key: keyof EventMatch;
  /** The field selector field with the same meaning. */
  field: string;
  /** The event's value; a missing value is "", as for the server. */
  of: (e: CoreV1Event) => string;
}

const DIMENSIONS: readonly Dimension[] = [
  { key: "types", field: "type", of: (e) => e.type ?? "" },
  { key: "namespaces", field: "metadata.namespace", of: (e) => e.metadata?.namespace ?? "" },
  { key: "reasons", field: "reason", of: (e) => e.reason ?? "" },
  { key: "kinds", field: "involvedObject.kind", of: (e) => e.involvedObject?.kind ?? "" },
];

/** Whether the settings filter anything at all. */
export function filtersAnything(s: EventFilterSettings): boolean {
  return s.filteredEventTypes.length > 0 ||
    DIMENSIONS.some((d) => s.include[d.key].length > 0 || s.exclude[d.key].length > 0);
}

/**
 * Turns the settings into a field selector (the Agent's entries first,
 * then per property, in the order type, namespace, reason, kind, a single
 * included value as `=` and each excluded value as `!=`) and a predicate
 * over every include and exclude.
 * Throws {@linkcode FilteredEventTypeError} for an entry the API server
 * would reject.
 */
export function planEventFilters(s: EventFilterSettings): EventFilterPlan {
  checkFilteredEventTypes(s.filteredEventTypes);
  const terms = s.filteredEventTypes.length > 0 ? [agentFieldSelector(s.filteredEventTypes)] : [];
  const checks: { of: (e: CoreV1Event) => string; include?: Set<string>; exclude?: Set<string> }[] =
    [];
  for (const d of DIMENSIONS) {
    const include = new Set(s.include[d.key]);
    const exclude = new Set(s.exclude[d.key]);
    if (include.size === 1) terms.push(`${d.field}=${escapeFieldValue([...include][0]!)}`);
    for (const value of exclude) terms.push(`${d.field}!=${escapeFieldValue(value)}`);
    if (include.size > 0 || exclude.size > 0) {
      checks.push({
        of: d.of,
        include: include.size > 0 ? include : undefined,
        exclude: exclude.size > 0 ? exclude : undefined,
      });
    }
  }
  const fieldSelector = terms.length > 0 ? terms.join(",") : undefined;
  // Built from checked entries and escaped values: a failure here is a bug.
  if (fieldSelector !== undefined) parseEventFieldSelector(fieldSelector);
  const filter: EventPredicate | undefined = checks.length === 0
    ? undefined
    : (event) =>
      checks.every(({ of, include, exclude }) => {
        const value = of(event);
        return (include === undefined || include.has(value)) &&
          (exclude === undefined || !exclude.has(value));
      });
  return { fieldSelector, filter };
}
