/**
 * Routing: which events each sink gets (`kevents_routes`). A sink's route
 * has the include and exclude lists of the global filters (types,
 * namespaces, reasons, kinds) and `match`, a field selector over the
 * fields the API server selects events on (`involvedObject.kind=Pod,
 * involvedObject.namespace!=kube-system`), evaluated here, on each event.
 * An event a route leaves out is skipped for that sink, deliberately: the
 * checkpoint moves past it as past what the sink acknowledged. A sink
 * without a route gets every event the global filters let through.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import {
  type EventMatch,
  type EventPredicate,
  type FieldTerm,
  parseEventFieldSelector,
  planEventFilters,
} from "./filters.ts";

/** One sink's route. */
export interface EventRoute {
  include: EventMatch;
  exclude: EventMatch;
  /** A field selector the event must match (evaluated by kevents), if any. */
  match?: string;
}

/** The value of a field-selector field in an event, as the API server reads it ("" when missing). */
export function selectorFieldOf(e: CoreV1Event, field: string): string {
  switch (field) {
    case "reason":
      return e.reason ?? "";
    case "type":
      return e.type ?? "";
    case "reportingComponent":
      return e.reportingComponent ?? "";
    // The server's "source" is the source's component.
    case "source":
      return e.source?.component ?? "";
    case "metadata.namespace":
      return e.metadata?.namespace ?? "";
    case "metadata.name":
      return e.metadata?.name ?? "";
  }
  const o = e.involvedObject as Record<string, unknown> | undefined;
  const key = field.startsWith("involvedObject.") ? field.slice("involvedObject.".length) : "";
  const value = o?.[key];
  return typeof value === "string" ? value : "";
}

/** Whether `e` matches every term. */
export function matchesTerms(e: CoreV1Event, terms: readonly FieldTerm[]): boolean {
  return terms.every((t) => (selectorFieldOf(e, t.field) === t.value) === (t.operator === "="));
}

/**
 * The predicate of a route; undefined when it lets everything through.
 * Throws FieldSelectorError for a `match` the API server would refuse.
 */
export function routePredicate(route: EventRoute): EventPredicate | undefined {
  const lists = planEventFilters({
    filteredEventTypes: [],
    include: route.include,
    exclude: route.exclude,
  }).filter;
  const terms = route.match === undefined ? [] : parseEventFieldSelector(route.match);
  if (lists === undefined && terms.length === 0) return undefined;
  return (e) => (lists === undefined || lists(e)) && matchesTerms(e, terms);
}
