/**
 * Server-side printing: the meta.k8s.io/v1 Table that kubectl asks for
 * (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the
 * columns the real server prints for the kinds kevents uses.
 *
 * @module
 */

import type { ResourceType } from "./resources.ts";
import type { StoredRecord } from "./store.ts";
import { viewObject } from "./objects.ts";

interface Column {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
  cell: (o: Record<string, unknown>, now: number) => unknown;
}

type Obj = Record<string, unknown>;

function str(o: unknown, ...path: string[]): string {
  let cur = o;
  for (const p of path) {
    if (cur === null || typeof cur !== "object") return "";
    cur = (cur as Obj)[p];
  }
  return typeof cur === "string" ? cur : cur === undefined || cur === null ? "" : String(cur);
}

/** Formats an age as kubectl does (apimachinery's HumanDuration). */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return "<invalid>";
  if (s < 0) return "0s";
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  if (h < 24 * 365 * 8) return d % 365 === 0 ? `${y}y` : `${y}y${d % 365}d`;
  return `${y}y`;
}

function since(ts: string, now: number): string {
  return ts === "" ? "<unknown>" : humanDuration(now - Date.parse(ts));
}

function col(
  name: string,
  cell: Column["cell"],
  extra: Partial<Column> = {},
): Column {
  return { name, type: "string", format: "", description: name, priority: 0, cell, ...extra };
}

const NAME = col("Name", (o) => str(o, "metadata", "name"), { format: "name" });
const AGE = col("Age", (o, now) => since(str(o, "metadata", "creationTimestamp"), now));

function eventLastSeen(o: Obj, now: number): string {
  const ts = str(o, "lastTimestamp") || str(o, "eventTime") ||
    str(o, "metadata", "creationTimestamp");
  return since(ts, now);
}

const COLUMNS: Record<string, Column[]> = {
  "/events": [
    col("Last Seen", eventLastSeen),
    col("Type", (o) => str(o, "type")),
    col("Reason", (o) => str(o, "reason")),
    col(
      "Object",
      (o) =>
        `${str(o, "involvedObject", "kind").toLowerCase()}/${str(o, "involvedObject", "name")}`,
    ),
    col("Subobject", (o) => str(o, "involvedObject", "fieldPath"), { priority: 1 }),
    col("Source", (o) => {
      const c = str(o, "source", "component") || str(o, "reportingComponent");
      const h = str(o, "source", "host");
      return h === "" ? c : `${c}, ${h}`;
    }, { priority: 1 }),
    col("Message", (o) => str(o, "message")),
    col("First Seen", (o, now) => since(str(o, "firstTimestamp"), now), { priority: 1 }),
    col("Count", (o) => (typeof o.count === "number" ? o.count : 1), {
      type: "integer",
      priority: 1,
    }),
    col("Name", (o) => str(o, "metadata", "name"), { priority: 1, format: "name" }),
  ],
  "/configmaps": [
    NAME,
    col("Data", (o) =>
      Object.keys((o.data ?? {}) as Obj).length +
      Object.keys((o.binaryData ?? {}) as Obj).length, { type: "integer" }),
    AGE,
  ],
  "coordination.k8s.io/leases": [
    NAME,
    col("Holder", (o) => str(o, "spec", "holderIdentity")),
    AGE,
  ],
  "/namespaces": [NAME, col("Status", (o) => str(o, "status", "phase")), AGE],
  "/componentstatuses": [
    NAME,
    col("Status", (o) => {
      const conds = (o.conditions ?? []) as Obj[];
      const healthy = conds.find((c) => c.type === "Healthy");
      return healthy?.status === "True" ? "Healthy" : "Unhealthy";
    }),
    col("Message", (o) => str((o.conditions as Obj[] | undefined)?.[0], "message")),
    col("Error", (o) => str((o.conditions as Obj[] | undefined)?.[0], "error")),
  ],
  "rbac.authorization.k8s.io/clusterrolebindings": [
    NAME,
    col("Role", (o) => `${str(o, "roleRef", "kind")}/${str(o, "roleRef", "name")}`),
    AGE,
  ],
  "rbac.authorization.k8s.io/rolebindings": [
    NAME,
    col("Role", (o) => `${str(o, "roleRef", "kind")}/${str(o, "roleRef", "name")}`),
    AGE,
  ],
  "apps/daemonsets": [
    NAME,
    ...[
      "desiredNumberScheduled",
      "currentNumberScheduled",
      "numberReady",
      "updatedNumberScheduled",
      "numberAvailable",
    ]
      .map((f, i) =>
        col(
          ["Desired", "Current", "Ready", "Up-to-date", "Available"][i]!,
          (o) => Number(str(o, "status", f) || 0),
          {
            type: "integer",
          },
        )
      ),
    col("Node Selector", (o) => {
      const sel = ((o.spec as Obj | undefined)?.template as Obj | undefined)?.spec as
        | Obj
        | undefined;
      const ns = (sel?.nodeSelector ?? {}) as Record<string, string>;
      const text = Object.entries(ns).map(([k, v]) => `${k}=${v}`).join(",");
      return text === "" ? "<none>" : text;
    }),
    AGE,
  ],
  "apps/deployments": [
    NAME,
    col(
      "Ready",
      (o) =>
        `${Number(str(o, "status", "readyReplicas") || 0)}/${
          Number(str(o, "spec", "replicas") || 1)
        }`,
    ),
    col("Up-to-date", (o) => Number(str(o, "status", "updatedReplicas") || 0), { type: "integer" }),
    col("Available", (o) => Number(str(o, "status", "availableReplicas") || 0), {
      type: "integer",
    }),
    AGE,
  ],
  "/serviceaccounts": [
    NAME,
    col("Secrets", (o) => ((o.secrets ?? []) as unknown[]).length, { type: "integer" }),
    AGE,
  ],
};

const DEFAULT_COLUMNS: Column[] = [
  NAME,
  col("Created At", (o) => str(o, "metadata", "creationTimestamp"), { format: "date" }),
];

/** Which object each row carries, from the `includeObject` query parameter. */
export type IncludeObject = "None" | "Metadata" | "Object";

/** Options for {@linkcode renderTable}. */
export interface TableOptions {
  includeObject: IncludeObject;
  /** Omit column definitions (later events of a watch). */
  noHeaders?: boolean;
  resourceVersion?: string;
  continueToken?: string;
  remaining?: number;
  now: number;
}

function rowObject(t: ResourceType, o: Obj, include: IncludeObject): Obj | undefined {
  if (include === "None") return undefined;
  if (include === "Object") {
    return {
      kind: t.kind,
      apiVersion: t.group === "" ? t.version : `${t.group}/${t.version}`,
      ...o,
    };
  }
  return { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata };
}

/** Renders records as a meta.k8s.io/v1 Table. */
export function renderTable(t: ResourceType, records: StoredRecord[], options: TableOptions): Obj {
  const columns = COLUMNS[t.storage] ?? DEFAULT_COLUMNS;
  const metadata: Obj = {};
  if (options.resourceVersion !== undefined) metadata.resourceVersion = options.resourceVersion;
  if (options.continueToken !== undefined) metadata.continue = options.continueToken;
  if (options.remaining !== undefined) metadata.remainingItemCount = options.remaining;
  const rows = records.map((r) => {
    const o = viewObject(t, r);
    const core = r.object;
    const row: Obj = { cells: columns.map((c) => c.cell(core, options.now)) };
    const object = rowObject(t, o, options.includeObject);
    if (object !== undefined) row.object = object;
    return row;
  });
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata,
    columnDefinitions: options.noHeaders === true
      ? null
      : columns.map(({ cell: _cell, ...def }) => def),
    rows,
  };
}

/** Whether an Accept header asks for a Table. */
export function wantsTable(accept: string | null): boolean {
  if (accept === null) return false;
  return accept.split(",").some((part) => {
    const params = part.split(";").map((p) => p.trim());
    return params.includes("as=Table") && params.includes("g=meta.k8s.io");
  });
}
