/**
 * The source (`source_type_name`) of a Datadog event, as the Datadog
 * Agent's kubernetes_apiserver check names it (events_common.go in
 * DataDog/datadog-agent, its controllerToIntegration table and
 * getEventSource, read for their behaviour).
 *
 * By default every event's source is `kubernetes`. With source detection
 * (`kubernetes_events_source_detection.enabled`, off by default) it is the
 * integration of the controller that reported the event: the event's
 * `reportingComponent` (core/v1's name of the Agent's ReportingController)
 * looked up in {@linkcode CONTROLLER_INTEGRATIONS}, else its
 * `source.component`, else `kubernetes`. Names match exactly (case counts).
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";

/** The source of every event without source detection, and of unknown controllers with it. */
export const KUBERNETES_SOURCE = "kubernetes";

// The controllers each integration's events come from, as the Agent's
// table has them (checked against its newest events_common.go). Grouped by
// integration here; the Agent writes one flat map.
const INTEGRATION_CONTROLLERS: Readonly<Record<string, readonly string[]>> = {
  "amazon elb": ["targetgroupbinding"],
  "cilium": ["cilium-sidekick"],
  "datadog operator": ["datadogagent", "ExtendedDaemonSet", "datadog-operator-manager"],
  "fluxcd": ["source-controller", "kustomize-controller"],
  "karpenter": ["karpenter"],
  "kubernetes": [
    // The kubelet and the kube-controller-manager's controllers...
    "kubelet",
    "attachdetach-controller",
    "bootstrap-signer-controller",
    "certificatesigningrequest-approving-controller",
    "certificatesigningrequest-cleaner-controller",
    "certificatesigningrequest-signing-controller",
    "cloud-controller-manager",
    "cloud-node-controller",
    "clusterrole-aggregation-controller",
    "cronjob-controller",
    "daemonset-controller",
    "deployment-controller",
    "disruption-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "garbage-collector-controller",
    "horizontal-pod-autoscaler",
    "horizontal-pod-autoscaler-controller",
    "job-controller",
    "legacy-serviceaccount-token-cleaner-controller",
    "namespace-controller",
    "node-controller",
    "node-ipam-controller",
    "node-lifecycle-controller",
    "persistentvolume-attach-detach-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-controller",
    "persistentvolume-expander-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "pod-garbage-collector-controller",
    "replicationcontroller-controller",
    "resourceclaim-controller",
    "resourcequota-controller",
    "service-cidr-controller",
    "service-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "statefulset-controller",
    "storage-version-migrator-controller",
    "storageversion-garbage-collector-controller",
    "taint-controller",
    "taint-eviction-controller",
    "token-cleaner-controller",
    "ttl-after-finished-controller",
    "ttl-controller",
    "validatingadmissionpolicy-status-controller",
    // ... and other controllers the Agent files under kubernetes.
    "PodTemplate",
    "compute-diagnostics",
    "disruption-budget-manager",
    "draino",
    "vpa-updater",
    "workflow-controller",
    "wpa_controller",
  ],
  "kube_scheduler": ["default-scheduler"],
  "kubernetes cluster autoscaler": ["cluster-autoscaler"],
  "kubernetes controller manager": [
    "endpoint-controller",
    "endpoint-slice-controller",
    "kube-controller-manager",
    "replicaset-controller",
  ],
  "spark": ["spark-operator"],
  "vault": ["vaultd"],
};

/** The integration of each controller or component name the Agent knows. */
export const CONTROLLER_INTEGRATIONS: ReadonlyMap<string, string> = new Map(
  Object.entries(INTEGRATION_CONTROLLERS).flatMap(([integration, controllers]) =>
    controllers.map((c) => [c, integration] as const)
  ),
);

/**
 * The `source_type_name` of `e`: `kubernetes` without `detection`; with it,
 * the integration of its `reportingComponent`, else of its
 * `source.component`, else `kubernetes`.
 */
export function eventSource(e: CoreV1Event, detection: boolean): string {
  if (!detection) return KUBERNETES_SOURCE;
  return CONTROLLER_INTEGRATIONS.get(e.reportingComponent ?? "") ??
    CONTROLLER_INTEGRATIONS.get(e.source?.component ?? "") ??
    KUBERNETES_SOURCE;
}
