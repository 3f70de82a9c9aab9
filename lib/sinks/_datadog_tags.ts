/**
 * The host and tags of a Datadog event, as the Datadog Agent's
 * kubernetes_apiserver check sets them (events_common.go in
 * DataDog/datadog-agent, read for its behaviour):
 *
 * - host: for a Pod the event's `source.host` (the node), for a Node the
 *   Node's name, with `-<cluster name>` appended when a cluster name is set
 *   (in the Agent's RFC 1123 form: lowercase, `_` as `-`); none for other
 *   kinds, where the Agent puts its own host name.
 * - tags: `kube_kind`, `kube_name`, and the older `kubernetes_kind` and
 *   `name`; `kube_namespace` and the older `namespace` for namespaced
 *   objects; the kind's own tag (`pod_name`, `kube_deployment`,
 *   `kube_replica_set`, `kube_job`, `kube_cronjob`, `kube_service`,
 *   `kube_namespace` for a Namespace's events...); `source_component` and
 *   `reporting_controller`, both always present, empty when unknown, as in
 *   the Agent; `orchestrator:kubernetes`; the check's own tags
 *   (`kevents_datadog_tags`). Beyond the Agent's bundled events, which get
 *   it only through their host's tags: `kube_cluster_name` when a cluster
 *   name is set.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import type { Enrichment } from "./sink.ts";

/** The tag naming an object of each kind, as the Agent's kubetags has it. */
export const KIND_TAGS: Readonly<Record<string, string>> = Object.freeze({
  Pod: "pod_name",
  Deployment: "kube_deployment",
  ReplicaSet: "kube_replica_set",
  ReplicationController: "kube_replication_controller",
  StatefulSet: "kube_stateful_set",
  DaemonSet: "kube_daemon_set",
  Job: "kube_job",
  CronJob: "kube_cronjob",
  Service: "kube_service",
  Namespace: "kube_namespace",
});

/** What a Datadog event's host and tags depend on beyond the event. */
export interface DatadogContext {
  /** The cluster's name as configured (`cluster_name`). */
  clusterName?: string;
  /** Tags added to every event (`kevents_datadog_tags`). */
  tags?: readonly string[];
}

/** The Agent's RFC 1123 form of a cluster name, as appended to hosts. */
export function hostClusterSuffix(clusterName: string | undefined): string {
  return clusterName === undefined || clusterName === ""
    ? ""
    : `-${clusterName.toLowerCase().replaceAll("_", "-")}`;
}

/** The host of an event's Datadog event; undefined where the Agent would use its own. */
export function eventHost(
  e: CoreV1Event,
  ctx: DatadogContext = {},
  enrichment?: Enrichment,
): string | undefined {
  const o = e.involvedObject;
  let node: string | undefined;
  // A pod's event without source.host: the pod's node, as the Agent looks it up.
  if (o.kind === "Pod") node = e.source?.host || enrichment?.node || undefined;
  // A Node's events do not always carry source.host; the Node's name is the host.
  else if (o.kind === "Node") node = o.name || e.source?.host || undefined;
  return node === undefined ? undefined : node + hostClusterSuffix(ctx.clusterName);
}

/** The tags of an event's Datadog event (not yet sorted nor deduplicated). */
export function eventTags(
  e: CoreV1Event,
  ctx: DatadogContext = {},
  enrichment?: Enrichment,
): string[] {
  const o = e.involvedObject;
  const tags = [
    `kube_kind:${o.kind}`,
    `kube_name:${o.name}`,
    `kubernetes_kind:${o.kind}`,
    `name:${o.name}`,
  ];
  if (o.namespace) tags.push(`kube_namespace:${o.namespace}`, `namespace:${o.namespace}`);
  const kindTag = KIND_TAGS[o.kind ?? ""];
  if (kindTag !== undefined && o.name) tags.push(`${kindTag}:${o.name}`);
  tags.push(
    `source_component:${e.source?.component ?? ""}`,
    "orchestrator:kubernetes",
    `reporting_controller:${e.reportingComponent ?? ""}`,
  );
  if (ctx.clusterName) tags.push(`kube_cluster_name:${ctx.clusterName}`);
  // The owners and labels enrichment found (the Agent's tagger tags).
  tags.push(...enrichment?.tags ?? []);
  tags.push(...ctx.tags ?? []);
  return tags;
}

/** Tags sorted and deduplicated, as the Agent's aggregator sends them. */
export function sortedTags(tags: readonly string[]): string[] {
  return [...new Set(tags)].sort();
}
