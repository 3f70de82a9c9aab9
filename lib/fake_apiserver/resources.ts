/**
 * The resource types the fake API server serves, with the discovery data
 * kubectl and client libraries read, and the storage traits that change how
 * the real server answers (watch cache, create-on-update).
 *
 * @module
 */

/** A served resource type (one group/version/resource). */
export interface ResourceType {
  /** API group; "" for the core group. */
  group: string;
  version: string;
  /** Plural resource name as it appears in URLs, e.g. "configmaps". */
  resource: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  /**
   * The storage this type is kept in. Types that share a storage (core/v1 and
   * events.k8s.io/v1 events) see the same objects through their own shape.
   */
  storage: string;
  /**
   * Whether the real API server serves this type from its watch cache. Events
   * are not cached, which changes how list `resourceVersion=0` and stale
   * watches behave.
   */
  watchCache: boolean;
  /** Whether PUT of a missing object creates it (true for events and endpoints). */
  allowCreateOnUpdate: boolean;
  categories?: string[];
}

const ALL_VERBS = [
  "create",
  "delete",
  "deletecollection",
  "get",
  "list",
  "patch",
  "update",
  "watch",
];

function type(
  group: string,
  version: string,
  resource: string,
  kind: string,
  rest: Partial<ResourceType> = {},
): ResourceType {
  return {
    group,
    version,
    resource,
    kind,
    singular: kind.toLowerCase(),
    namespaced: true,
    shortNames: [],
    verbs: ALL_VERBS,
    storage: `${group}/${resource}`,
    watchCache: true,
    allowCreateOnUpdate: false,
    ...rest,
  };
}

/** Every resource type the fake API server serves. */
export const RESOURCE_TYPES: readonly ResourceType[] = [
  type("", "v1", "events", "Event", {
    shortNames: ["ev"],
    watchCache: false,
    allowCreateOnUpdate: true,
  }),
  type("", "v1", "configmaps", "ConfigMap", { shortNames: ["cm"] }),
  type("", "v1", "endpoints", "Endpoints", {
    shortNames: ["ep"],
    singular: "endpoints",
    allowCreateOnUpdate: true,
  }),
  type("", "v1", "namespaces", "Namespace", {
    shortNames: ["ns"],
    namespaced: false,
    verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
  }),
  type("", "v1", "componentstatuses", "ComponentStatus", {
    shortNames: ["cs"],
    namespaced: false,
    verbs: ["get", "list"],
  }),
  type("", "v1", "serviceaccounts", "ServiceAccount", { shortNames: ["sa"] }),
  type("", "v1", "pods", "Pod", { shortNames: ["po"], categories: ["all"] }),
  type("coordination.k8s.io", "v1", "leases", "Lease"),
  type("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", { namespaced: false }),
  type("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", {
    namespaced: false,
  }),
  type("rbac.authorization.k8s.io", "v1", "roles", "Role"),
  type("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
  type("apps", "v1", "daemonsets", "DaemonSet", { shortNames: ["ds"], categories: ["all"] }),
  type("apps", "v1", "deployments", "Deployment", {
    shortNames: ["deploy"],
    categories: ["all"],
  }),
  type("apps", "v1", "replicasets", "ReplicaSet", { shortNames: ["rs"], categories: ["all"] }),
  type("apps", "v1", "statefulsets", "StatefulSet", { shortNames: ["sts"], categories: ["all"] }),
  type("batch", "v1", "jobs", "Job", { categories: ["all"] }),
  type("batch", "v1", "cronjobs", "CronJob", { shortNames: ["cj"], categories: ["all"] }),
  type("events.k8s.io", "v1", "events", "Event", {
    shortNames: ["ev"],
    storage: "/events",
    watchCache: false,
    allowCreateOnUpdate: true,
  }),
];

/** The apiVersion string of a type: "v1" or "group/version". */
export function apiVersionOf(t: Pick<ResourceType, "group" | "version">): string {
  return t.group === "" ? t.version : `${t.group}/${t.version}`;
}

/** The group-qualified resource name used in Status messages: "configmaps", "leases.coordination.k8s.io". */
export function qualifiedResource(t: Pick<ResourceType, "group" | "resource">): string {
  return t.group === "" ? t.resource : `${t.resource}.${t.group}`;
}

/** Finds the type served at group/version/resource, if any. */
export function findResourceType(
  group: string,
  version: string,
  resource: string,
): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) =>
    t.group === group && t.version === version && t.resource === resource
  );
}

/** The API groups other than core, in the order discovery lists them. */
export function apiGroups(): { name: string; versions: string[] }[] {
  const groups = new Map<string, Set<string>>();
  for (const t of RESOURCE_TYPES) {
    if (t.group === "") continue;
    const versions = groups.get(t.group) ?? new Set<string>();
    versions.add(t.version);
    groups.set(t.group, versions);
  }
  return [...groups].map(([name, versions]) => ({ name, versions: [...versions] }));
}
