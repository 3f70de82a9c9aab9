/**
 * `kevents_routes` / `KEVENTS_ROUTES`: which events each sink gets
 * (lib/pump/routes.ts). JSON in the environment; in datadog.yaml a mapping
 * of sink names, as written:
 *
 * ```yaml
 * kevents_routes:
 *   webhook:
 *     include_types: [Warning]
 *     exclude_namespaces: [kube-system]
 *     match: involvedObject.kind=Pod
 * ```
 *
 * @module
 */

import type { EventRoute } from "../pump/mod.ts";
import type { AnyKeySpec, RawValue } from "./settings.ts";

const LIST_KEYS = ["types", "namespaces", "reasons", "kinds"] as const;
/** The keys of a route. */
export const ROUTE_KEYS: ReadonlySet<string> = new Set([
  ...LIST_KEYS.flatMap((k) => [`include_${k}`, `exclude_${k}`]),
  "match",
]);

function stringList(value: unknown): string[] | undefined {
  if (typeof value === "string") value = value.split(",").map((v) => v.trim());
  if (!Array.isArray(value)) return undefined;
  const items = value.map((v) => (typeof v === "string" ? v.trim() : undefined));
  return items.every((v): v is string => v !== undefined && v !== "") ? items : undefined;
}

/** The routes of a `kevents_routes` value; undefined when it is not one. */
export function parseRoutes(raw: RawValue): Record<string, EventRoute> | undefined {
  if (typeof raw !== "string" || raw.trim() === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const routes: Record<string, EventRoute> = {};
  for (const [sink, value] of Object.entries(parsed)) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
    const route: EventRoute = {
      include: { types: [], namespaces: [], reasons: [], kinds: [] },
      exclude: { types: [], namespaces: [], reasons: [], kinds: [] },
    };
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (!ROUTE_KEYS.has(key)) return undefined;
      if (key === "match") {
        if (typeof v !== "string") return undefined;
        route.match = v;
        continue;
      }
      const list = stringList(v);
      if (list === undefined) return undefined;
      const [verb, what] = key.split("_") as ["include" | "exclude", typeof LIST_KEYS[number]];
      route[verb] = { ...route[verb], [what]: list };
    }
    routes[sink] = route;
  }
  return routes;
}

export const ROUTES_RULE = "must be a mapping (JSON in the environment) of sink names to routes, " +
  "each with include_types, include_namespaces, include_reasons, include_kinds, their exclude_ " +
  "forms (lists) and match (a field selector such as involvedObject.kind=Pod)";

/** The routing row of the settings table. */
export const ROUTE_ROWS: readonly AnyKeySpec[] = [
  {
    field: "routes",
    fileKey: "kevents_routes",
    envVar: "KEVENTS_ROUTES",
    parse: parseRoutes,
    default: {},
    rule: ROUTES_RULE,
    description: "Which events each sink gets: per sink, include/exclude lists and a field " +
      "selector match; a sink without a route gets every event",
    fileJson: true,
  },
];
