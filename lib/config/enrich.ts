/**
 * The enrichment settings' rows (lib/enrich): whether kevents reads the
 * objects events are about, its request budget, and the Agent's
 * `kubernetes_pod_labels_as_tags` and `kubernetes_namespace_labels_as_tags`
 * (a JSON object in the environment, as the Agent takes it; a mapping or
 * that JSON text in datadog.yaml).
 *
 * @module
 */

import { BOOL_RULE, integerIn, parseBool } from "./_values.ts";
import type { AnyKeySpec, RawValue } from "./settings.ts";

/** A label name as Kubernetes takes it: an optional DNS prefix and a name. */
const LABEL_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** A tag name: what Datadog takes before the colon. */
const TAG_NAME = /^[A-Za-z][A-Za-z0-9_.\/-]{0,199}$/;

/** A label-to-tag map: a JSON object (`{"app":"kube_app"}`), or `label=tag` items from a mapping. */
export function labelsAsTags(raw: RawValue): Record<string, string> | undefined {
  let entries: [string, unknown][];
  if (typeof raw === "string") {
    if (raw.trim() === "") return {};
    try {
      const parsed = JSON.parse(raw);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
      entries = Object.entries(parsed);
    } catch {
      return undefined;
    }
  } else {
    // A YAML mapping arrives as "label=tag" items; a one-item list may hold the JSON text.
    if (raw.length === 1 && raw[0]!.trim().startsWith("{")) return labelsAsTags(raw[0]!);
    entries = [];
    for (const item of raw) {
      const eq = item.indexOf("=");
      if (eq < 0) return undefined;
      entries.push([item.slice(0, eq).trim(), item.slice(eq + 1).trim()]);
    }
  }
  const out: Record<string, string> = {};
  for (const [label, tag] of entries) {
    if (typeof tag !== "string" || !LABEL_NAME.test(label) || !TAG_NAME.test(tag)) {
      return undefined;
    }
    // The Agent matches label names in lower case.
    out[label.toLowerCase()] = tag;
  }
  return out;
}

const LABELS_AS_TAGS_RULE = "must be a JSON object of label names to tag names, such as " +
  '{"app":"kube_app"} (or a mapping in datadog.yaml)';

/** The enrichment rows of the settings table. */
export const ENRICH_ROWS: readonly AnyKeySpec[] = [
  {
    field: "enrich",
    fileKey: "kevents_enrich",
    envVar: "KEVENTS_ENRICH",
    parse: parseBool,
    default: undefined,
    rule: BOOL_RULE,
    description: "Read the objects events are about (pods, jobs, namespaces) for owner and label " +
      "tags and a pod's node, within a request budget (default: on with the datadog sink)",
  },
  {
    field: "enrichRequestBudget",
    fileKey: "kevents_enrich_request_budget",
    envVar: "KEVENTS_ENRICH_REQUEST_BUDGET",
    parse: integerIn(0, 1000),
    default: 50,
    rule: "must be an integer from 0 to 1000",
    description: "API requests enrichment may make per batch of events (cache misses only)",
  },
  {
    field: "podLabelsAsTags",
    fileKey: "kubernetes_pod_labels_as_tags",
    envVar: "DD_KUBERNETES_POD_LABELS_AS_TAGS",
    parse: labelsAsTags,
    default: {},
    rule: LABELS_AS_TAGS_RULE,
    description: "Pod labels turned into tags of the pod's events, as in the Agent",
    fileMapping: true,
  },
  {
    field: "namespaceLabelsAsTags",
    fileKey: "kubernetes_namespace_labels_as_tags",
    envVar: "DD_KUBERNETES_NAMESPACE_LABELS_AS_TAGS",
    parse: labelsAsTags,
    default: {},
    rule: LABELS_AS_TAGS_RULE,
    description: "Namespace labels turned into tags of the namespace's events, as in the Agent",
    fileMapping: true,
  },
];
