/**
 * The settings table: every setting kevents reads is a row of
 * {@linkcode CONFIG_KEYS}, giving its `datadog.yaml` key, its environment
 * variable, its parser, its default and the rule a value must follow. A new
 * setting is a new row plus a field in {@linkcode Settings}. The sinks'
 * rows live in sinks.ts.
 *
 * The settings the Datadog Agent also has (`collect_kubernetes_events`,
 * `leader_election`, `leader_lease_duration`, `kube_resources_namespace`,
 * `leader_lease_name`) keep the Agent's names, defaults and rules. Settings
 * of kevents' own start with `kevents_` / `KEVENTS_`, except
 * `kubernetes_event_token_configmap` / `DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP`,
 * which names the token ConfigMap the Agent hard-codes as `datadogtoken`.
 *
 * @module
 */

import {
  bindAddress,
  BOOL_RULE,
  CLUSTER_NAME_RULE,
  clusterName,
  dnsLabel,
  dnsSubdomain,
  FILTER_ENTRIES_RULE,
  FILTER_RULE,
  integerIn,
  LABEL_RULE,
  parseBool,
  parseFilterEntries,
  parseLockResource,
  SUBDOMAIN_RULE,
  valueList,
} from "./_values.ts";
import type { EventRoute } from "../pump/mod.ts";
import { CHECKPOINT_LAG_ROWS } from "./checkpoint_lag.ts";
import { ENRICH_ROWS } from "./enrich.ts";
import { ROUTE_ROWS } from "./routes.ts";
import { SINK_ROWS } from "./sinks.ts";
import { maskSinks, parseSinkList, type SinkItem, SINKS_RULE } from "./_sink_list.ts";
import type { LockResource, SinkOnFailure } from "./types.ts";

/** The value of every row of {@linkcode CONFIG_KEYS}, before anything is derived. */
export interface Settings {
  collectEvents: boolean;
  leaderElection: boolean;
  leaseDurationSeconds: number;
  resourcesNamespace: string;
  leaseName: string;
  leaderElectionResource: LockResource;
  tokenConfigMapName: string;
  /** `cluster_agent.token_name`, the Agent's name of the token ConfigMap; undefined when not set. */
  agentTokenName: string | undefined;
  /** `cluster_name`; undefined when not set. */
  clusterName: string | undefined;
  /** `kubernetes_kubelet_nodename`: the node this replica runs on; undefined when not set. */
  nodeName: string | undefined;
  /** `kevents_routes`. */
  routes: Record<string, EventRoute>;
  /** `kevents_enrich`; undefined when not set (on with the datadog sink). */
  enrich: boolean | undefined;
  /** `kevents_enrich_request_budget`. */
  enrichRequestBudget: number;
  /** `kubernetes_pod_labels_as_tags`. */
  podLabelsAsTags: Record<string, string>;
  /** `kubernetes_namespace_labels_as_tags`. */
  namespaceLabelsAsTags: Record<string, string>;
  /** `kevents_datadog_bundle_window_seconds`. */
  ddBundleWindowSeconds: number;
  /** `kevents_datadog_tags`: the check instance's `tags:`. */
  ddTags: string[];
  /** `proxy.https`: the proxy of the Datadog intake; undefined when not set. */
  ddProxyHttps: string | undefined;
  /** `proxy.no_proxy`: hosts reached without the proxy. */
  ddNoProxy: string[];
  /** `kevents_lease_duration_ms`; undefined when not set. */
  expertLeaseDurationMs: number | undefined;
  checkpointIntervalMs: number;
  checkpointMaxEvents: number;
  checkpointIdleIntervalMs: number;
  /** `kevents_event_ttl_seconds`. */
  eventTtlSeconds: number;
  /** `kevents_checkpoint_lag_share`. */
  checkpointLagShare: number;
  backfill: boolean;
  startWindowSeconds: number;
  /** `kevents_sinks`: implicit sinks (a type's name) and named ones. */
  sinks: SinkItem[];
  queueCapacity: number;
  controlPlaneCheckIntervalMs: number;
  filteredEventTypes: string[];
  includeTypes: string[];
  excludeTypes: string[];
  includeNamespaces: string[];
  excludeNamespaces: string[];
  includeReasons: string[];
  excludeReasons: string[];
  includeKinds: string[];
  excludeKinds: string[];
  webhookUrl: string | undefined;
  webhookFormat: "ndjson" | "json";
  webhookHeaders: Record<string, string>;
  webhookBearerToken: string | undefined;
  webhookCaFile: string | undefined;
  webhookCertFile: string | undefined;
  webhookKeyFile: string | undefined;
  webhookInsecureSkipVerify: boolean;
  webhookOnFailure: SinkOnFailure;
  webhookMaxAttempts: number;
  ddApiKey: string | undefined;
  ddSite: string;
  ddUrl: string | undefined;
  ddUnbundleEvents: boolean;
  /** `collected_event_types`: with unbundle_events, the events sent on their own. */
  ddCollectedEventTypes: { kind?: string; source?: string; reasons: string[] }[];
  /** `bundle_unspecified_events`. */
  ddBundleUnspecifiedEvents: boolean;
  /** `filtering_enabled`. */
  ddFilteringEnabled: boolean;
  /** `kubernetes_events_source_detection.enabled`. */
  ddSourceDetection: boolean;
  datadogOnFailure: SinkOnFailure;
  datadogMaxAttempts: number;
  /** `kevents_otlp_endpoint`: the base URL, `/v1/logs` appended; undefined when not set. */
  otlpEndpoint: string | undefined;
  /** `kevents_otlp_logs_endpoint`: the full URL, used as given; undefined when not set. */
  otlpLogsEndpoint: string | undefined;
  otlpProtocol: "http/protobuf" | "http/json";
  otlpCompression: "gzip" | "none";
  otlpHeaders: Record<string, string>;
  otlpCaFile: string | undefined;
  otlpCertFile: string | undefined;
  otlpKeyFile: string | undefined;
  otlpInsecureSkipVerify: boolean;
  otlpOnFailure: SinkOnFailure;
  otlpMaxAttempts: number;
  healthAddress: string;
  healthPort: number;
  watchStallLimitSeconds: number;
  followerWatch: boolean;
  shutdownBudgetSeconds: number;
  watchFailureLimitSeconds: number;
}

/** A value as a source gave it: text (environment, file scalar) or, from the file, a list of texts. */
export type RawValue = string | readonly string[];

/** What a default may depend on. */
export interface DefaultContext {
  /** Contents of the service-account namespace file, if any. */
  serviceAccountNamespace?: string;
}

/** One setting: where it is read from, how it is parsed, its default and its rule. */
export interface KeySpec<K extends keyof Settings> {
  /** The field of {@linkcode Settings} it fills. */
  field: K;
  /** Key in `datadog.yaml` (matched case-insensitively, as the Agent does). */
  fileKey: string;
  /** Environment variable. */
  envVar: string;
  /** Parses a raw value; undefined when it breaks the rule. */
  parse: (raw: RawValue) => Settings[K] | undefined;
  /** Value when no source sets it. */
  default: Settings[K];
  /** A default taken from the surroundings, validated by `parse` (for example the pod's namespace). */
  contextDefault?: (ctx: DefaultContext) => { raw: string; source: string } | undefined;
  /** What a value must be, completing "Cannot parse KEY VALUE (SOURCE): ". */
  rule: string;
  /** One line for documentation. */
  description: string;
  /** For secrets: how a value is shown in messages instead of as given. */
  mask?: (raw: RawValue | undefined) => string;
  /** Takes a mapping in `datadog.yaml`, read as `NAME=VALUE` items (default false: a mapping is refused). */
  fileMapping?: boolean;
  /**
   * Takes JSON text: a mapping or list in `datadog.yaml` is handed to the
   * parser as its JSON text (the environment gives the JSON itself).
   */
  fileJson?: boolean;
  /** As `fileJson`, but every scalar inside is handed over as the text written. */
  fileJsonText?: boolean;
}

/** A row of {@linkcode CONFIG_KEYS}, whatever its field. */
export type AnyKeySpec = { [K in keyof Settings]: KeySpec<K> }[keyof Settings];

/** The Settings fields of the include and exclude lists. */
type FilterListField = `${"include" | "exclude"}${"Types" | "Namespaces" | "Reasons" | "Kinds"}`;

/** The include and exclude rows of one event property. */
function filterRows(
  what: "types" | "namespaces" | "reasons" | "kinds",
  meaning: string,
  fields: readonly [FilterListField, FilterListField],
): AnyKeySpec[] {
  const namespaces = what === "namespaces";
  const parse = valueList(namespaces ? (v) => dnsLabel(v) !== undefined : () => true);
  const rule = namespaces
    ? `${FILTER_RULE} namespace names, each a DNS-1123 label`
    : `${FILTER_RULE} values`;
  return (["include", "exclude"] as const).map((verb, i): AnyKeySpec => ({
    // Every list field holds a string[]: one of them stands for all.
    field: fields[i] as "includeTypes",
    fileKey: `kevents_${verb}_${what}`,
    envVar: `KEVENTS_${verb.toUpperCase()}_${what.toUpperCase()}`,
    parse,
    default: [],
    rule,
    description: verb === "include"
      ? `Deliver only events whose ${meaning} is one of these (default: any)`
      : `Leave out events whose ${meaning} is one of these (wins over the include list)`,
  }));
}

/** The lease duration the Agent requires: strictly more than this many seconds. */
export const MIN_LEASE_SECONDS_EXCLUSIVE = 30;
/** Upper bound of `leader_lease_duration`, in seconds. */
export const MAX_LEASE_SECONDS = 3600;

/** Every setting kevents reads, in the order they are validated. */
export const CONFIG_KEYS: readonly AnyKeySpec[] = [
  {
    field: "collectEvents",
    fileKey: "collect_kubernetes_events",
    envVar: "DD_COLLECT_KUBERNETES_EVENTS",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Collect Kubernetes events (also turned on by KUBERNETES)",
  },
  {
    field: "leaderElection",
    fileKey: "leader_election",
    envVar: "DD_LEADER_ELECTION",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Take part in leader election (forced on while collecting events)",
  },
  {
    field: "leaseDurationSeconds",
    fileKey: "leader_lease_duration",
    envVar: "DD_LEADER_LEASE_DURATION",
    parse: integerIn(MIN_LEASE_SECONDS_EXCLUSIVE + 1, MAX_LEASE_SECONDS),
    default: 60,
    rule: `must be an integer number of seconds greater than ${MIN_LEASE_SECONDS_EXCLUSIVE} ` +
      `(at most ${MAX_LEASE_SECONDS})`,
    description: "Seconds a leader stays elected without renewing",
  },
  {
    field: "resourcesNamespace",
    fileKey: "kube_resources_namespace",
    envVar: "DD_KUBE_RESOURCES_NAMESPACE",
    parse: dnsLabel,
    default: "default",
    contextDefault: ({ serviceAccountNamespace }) => {
      const raw = serviceAccountNamespace?.trim();
      return raw === undefined || raw === ""
        ? undefined
        : { raw, source: "service-account namespace file" };
    },
    rule: LABEL_RULE,
    description: "Namespace of the lease and the token ConfigMap " +
      "(default: the pod's service-account namespace, else default)",
  },
  {
    field: "leaseName",
    fileKey: "leader_lease_name",
    envVar: "DD_LEADER_LEASE_NAME",
    parse: dnsSubdomain,
    default: "datadog-leader-election",
    rule: SUBDOMAIN_RULE,
    // One default for every kind, as in the Agent 6 and later (its Endpoints
    // and ConfigMap locks too); not the Agent 5's ConfigMap
    // `datadog-leader-elector`, whose different record (annotations
    // `creator`, `acquired_time`) kevents must not share an object with.
    description: "Name of the leader-election lock (a Lease, ConfigMap or Endpoints object)",
  },
  {
    field: "leaderElectionResource",
    fileKey: "leader_election_default_resource",
    envVar: "DD_LEADER_ELECTION_DEFAULT_RESOURCE",
    parse: parseLockResource,
    default: "lease",
    rule: 'must be "lease", "configmap" or "endpoints" (or "leases", "configmaps"), in any case',
    description: "What the election locks: a Lease, or the control-plane.alpha.kubernetes.io/" +
      "leader annotation of a ConfigMap or an Endpoints object (client-go's record)",
  },
  {
    field: "tokenConfigMapName",
    fileKey: "kubernetes_event_token_configmap",
    envVar: "DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP",
    parse: dnsSubdomain,
    default: "datadogtoken",
    rule: SUBDOMAIN_RULE,
    description: "Name of the ConfigMap holding the event token (the Agent's datadogtoken)",
  },
  {
    field: "agentTokenName",
    fileKey: "cluster_agent.token_name",
    envVar: "DD_CLUSTER_AGENT_TOKEN_NAME",
    parse: dnsSubdomain,
    default: undefined,
    rule: SUBDOMAIN_RULE,
    description: "The Agent's name of the token ConfigMap, taken when " +
      "kubernetes_event_token_configmap is not set",
  },
  {
    field: "clusterName",
    fileKey: "cluster_name",
    envVar: "DD_CLUSTER_NAME",
    parse: clusterName,
    default: undefined,
    rule: CLUSTER_NAME_RULE,
    description: "The cluster's name: `-<name>` is appended to the hosts of Pod and Node events " +
      "and of service checks, and events are tagged kube_cluster_name:<name>",
  },
  {
    field: "nodeName",
    fileKey: "kubernetes_kubelet_nodename",
    envVar: "DD_KUBERNETES_KUBELET_NODENAME",
    parse: dnsSubdomain,
    default: undefined,
    rule: SUBDOMAIN_RULE,
    description: "The node this replica runs on (the manifests set it from spec.nodeName): the " +
      "host of the control-plane service check, as the Cluster Agent's",
  },
  {
    field: "expertLeaseDurationMs",
    fileKey: "kevents_lease_duration_ms",
    envVar: "KEVENTS_LEASE_DURATION_MS",
    parse: integerIn(1000, 3_600_000),
    default: undefined,
    rule: "must be an integer number of milliseconds from 1000 to 3600000",
    description: "Expert: lease duration in ms for timing, overriding leader_lease_duration " +
      "(sub-30 s failovers for tests and demos)",
  },
  {
    field: "checkpointIntervalMs",
    fileKey: "kevents_checkpoint_interval_ms",
    envVar: "KEVENTS_CHECKPOINT_INTERVAL_MS",
    parse: integerIn(10, 600_000),
    default: 1000,
    rule: "must be an integer number of milliseconds from 10 to 600000",
    description: "Write the event checkpoint at most this often",
  },
  {
    field: "checkpointMaxEvents",
    fileKey: "kevents_checkpoint_max_events",
    envVar: "KEVENTS_CHECKPOINT_MAX_EVENTS",
    parse: integerIn(1, 1_000_000),
    default: 500,
    rule: "must be an integer from 1 to 1000000",
    description: "Write the event checkpoint after this many delivered events",
  },
  {
    field: "checkpointIdleIntervalMs",
    fileKey: "kevents_checkpoint_idle_interval_ms",
    envVar: "KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS",
    parse: integerIn(10, 3_600_000),
    default: 60_000,
    rule: "must be an integer number of milliseconds from 10 to 3600000",
    description:
      "Write a checkpoint that moved without delivering events (bookmarks, deletions) at most this often",
  },
  {
    field: "backfill",
    fileKey: "kevents_backfill",
    envVar: "KEVENTS_BACKFILL",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Deliver what the first list returned when there is no token",
  },
  {
    field: "startWindowSeconds",
    fileKey: "kevents_start_window_seconds",
    envVar: "KEVENTS_START_WINDOW_SECONDS",
    parse: integerIn(0, 86_400),
    default: 0,
    rule: "must be an integer number of seconds from 0 to 86400",
    description: "Without a token, deliver the listed events that happened within this many " +
      "seconds (0: none, start from now)",
  },
  {
    field: "sinks",
    fileKey: "kevents_sinks",
    envVar: "KEVENTS_SINKS",
    parse: parseSinkList,
    default: ["stdout"],
    rule: SINKS_RULE,
    description: "Where events go: sink types (each configured by its flat settings) and " +
      "named sinks (mappings with name, type, options and routing rules)",
    fileJsonText: true,
    mask: maskSinks,
  },
  {
    field: "queueCapacity",
    fileKey: "kevents_queue_capacity",
    envVar: "KEVENTS_QUEUE_CAPACITY",
    parse: integerIn(1, 1_000_000),
    default: 1000,
    rule: "must be an integer from 1 to 1000000",
    description: "Events buffered between the watch and the sinks",
  },
  ...SINK_ROWS,
  ...ENRICH_ROWS,
  ...ROUTE_ROWS,
  ...CHECKPOINT_LAG_ROWS,
  {
    // The Agent has no datadog.yaml key for this: its check runs at the
    // check scheduler's default interval (15 s) unless the check's own
    // conf.yaml sets min_collection_interval.
    field: "controlPlaneCheckIntervalMs",
    fileKey: "kevents_control_plane_check_interval_ms",
    envVar: "KEVENTS_CONTROL_PLANE_CHECK_INTERVAL_MS",
    parse: integerIn(1000, 3_600_000),
    default: 15_000,
    rule: "must be an integer number of milliseconds from 1000 to 3600000",
    description: "Run the control-plane check (kube_apiserver_controlplane.up) this often",
  },
  {
    // In the Agent this is an option of the kubernetes_apiserver check's own
    // conf.yaml; kevents reads it from datadog.yaml and the environment.
    field: "filteredEventTypes",
    fileKey: "filtered_event_types",
    envVar: "DD_FILTERED_EVENT_TYPES",
    parse: parseFilterEntries,
    default: [],
    rule: FILTER_ENTRIES_RULE,
    description: "The Agent's deny list of events, applied by the API server: field selectors " +
      "joined with commas, a bare X meaning reason!=X",
  },
  ...filterRows("types", "type (Normal, Warning)", ["includeTypes", "excludeTypes"]),
  ...filterRows("namespaces", "namespace", ["includeNamespaces", "excludeNamespaces"]),
  ...filterRows("reasons", "reason", ["includeReasons", "excludeReasons"]),
  ...filterRows("kinds", "involved object's kind", ["includeKinds", "excludeKinds"]),
  {
    field: "healthAddress",
    fileKey: "kevents_health_address",
    envVar: "KEVENTS_HEALTH_ADDRESS",
    parse: bindAddress,
    default: "0.0.0.0",
    rule: "must be an IP address or a host name (0.0.0.0 for every interface, 127.0.0.1 for " +
      "this host only)",
    description: "Address the health and metrics endpoint binds",
  },
  {
    field: "healthPort",
    fileKey: "kevents_health_port",
    envVar: "KEVENTS_HEALTH_PORT",
    parse: integerIn(0, 65535),
    default: 5555,
    rule: "must be an integer port from 0 to 65535 (0 picks a free port)",
    description: "Port of the health and metrics endpoint (/healthz, /readyz, /metrics)",
  },
  {
    field: "watchStallLimitSeconds",
    fileKey: "kevents_watch_stall_limit_seconds",
    envVar: "KEVENTS_WATCH_STALL_LIMIT_SECONDS",
    parse: integerIn(10, 86_400),
    default: 600,
    rule: "must be an integer number of seconds from 10 to 86400",
    description: "/healthz fails when the leader's watch received nothing for this long",
  },
  {
    field: "followerWatch",
    fileKey: "kevents_follower_watch",
    envVar: "KEVENTS_FOLLOWER_WATCH",
    parse: parseBool,
    default: true,
    rule: BOOL_RULE,
    description: "Followers watch the lock instead of polling it every retry period " +
      "(the poll stays as a fallback)",
  },
  {
    // The drain only: the final checkpoint write and the lease release come
    // after it, each bounded by the request timeout, which is why the
    // manifests' terminationGracePeriodSeconds is above budget + 2 x 10 s.
    field: "shutdownBudgetSeconds",
    fileKey: "kevents_shutdown_budget_seconds",
    envVar: "KEVENTS_SHUTDOWN_BUDGET_SECONDS",
    parse: integerIn(1, 3600),
    default: 20,
    rule: "must be an integer number of seconds from 1 to 3600",
    description: "On SIGTERM/SIGINT the leader stops reading and, still renewing its lease, " +
      "lets the sends in flight and the queue finish for at most this long; then it writes " +
      "the checkpoint and releases the lease (a send still running is cut, logged and counted)",
  },
  {
    field: "watchFailureLimitSeconds",
    fileKey: "kevents_watch_failure_limit_seconds",
    envVar: "KEVENTS_WATCH_FAILURE_LIMIT_SECONDS",
    parse: integerIn(1, 86_400),
    default: 180,
    rule: "must be an integer number of seconds from 1 to 86400",
    description: "A leader whose list/watch of events has failed without interruption for " +
      "longer than this with a non-retryable error (401, 403, 404, a request that cannot be " +
      "sent) releases its lease, fails /healthz and backs off from leading, so that a healthy " +
      "replica takes over",
  },
];

/** The `datadog.yaml` keys of the table. */
export const KNOWN_FILE_KEYS = new Set(CONFIG_KEYS.map((k) => k.fileKey));

/** The parents of dotted keys (`cluster_agent` of `cluster_agent.token_name`), which a file may nest. */
export const KNOWN_FILE_PREFIXES: ReadonlySet<string> = new Set(
  CONFIG_KEYS.flatMap((k) => {
    const parts = k.fileKey.split(".");
    return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("."));
  }),
);

/** The row of the table that fills `field`. */
export function specOf<K extends keyof Settings>(field: K): KeySpec<K> {
  const spec = CONFIG_KEYS.find((k) => k.field === field);
  if (spec === undefined) throw new Error(`Internal error: no setting ${field}`);
  return spec as unknown as KeySpec<K>;
}
