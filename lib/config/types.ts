/**
 * What configuration resolves to: {@linkcode Config}, the settings kevents
 * runs with, and its parts (the sinks', the election's timings, the
 * checkpoint's, the health endpoint's); and {@linkcode ConfigInput}, what
 * main.ts hands to parseConfig.
 *
 * @module
 */

import type { EventFilterSettings, EventRoute } from "../pump/mod.ts";

/** A sink kevents can deliver events to. */
export type SinkName = "stdout" | "null" | "webhook" | "datadog" | "otlp";

/** The sink names `kevents_sinks` accepts. */
export const SINK_NAMES: readonly SinkName[] = ["stdout", "null", "webhook", "datadog", "otlp"];

/** What a sink does with a batch it could not deliver within its attempts. */
export type SinkOnFailure = "retry" | "drop";

/** The webhook sink's settings (`kevents_webhook_*`). */
export interface WebhookConfig {
  /** Where batches are POSTed; required when the webhook sink is on. */
  url: string | undefined;
  /** Body format (default ndjson). */
  format: "ndjson" | "json";
  /** Extra request headers (default none). */
  headers: Record<string, string>;
  /** Sent as `Authorization: Bearer <token>`. */
  bearerToken: string | undefined;
  /** PEM file of the CA(s) to trust instead of the system's. */
  caFile: string | undefined;
  /** PEM files of a client certificate and its key (both or neither). */
  certFile: string | undefined;
  keyFile: string | undefined;
  /**
   * Where each TLS file setting that is set came from (`env KEVENTS_WEBHOOK_CA_FILE`,
   * `PATH line N`), for the messages of createSinks, which reads the files; absent when none is set.
   */
  fileSources?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Skip verifying the receiver's certificate (default false; logged as a warning). */
  insecureSkipVerify: boolean;
  /** retry (default: the pump retries, nothing is lost) or drop (counted, logged). */
  onFailure: SinkOnFailure;
  /** Attempts per send before it fails (default 5). */
  maxAttempts: number;
}

/** The Datadog sink's settings (the Agent's `api_key`, `site`, `dd_url`, `unbundle_events`). */
export interface DatadogConfig {
  /** Required when the datadog sink is on. */
  apiKey: string | undefined;
  /** Datadog site (default datadoghq.com): events go to https://api.<site>. */
  site: string;
  /** Base URL overriding https://api.<site>. */
  url: string | undefined;
  /** One Datadog event per Kubernetes event instead of one per object and type (default false). */
  unbundleEvents: boolean;
  /**
   * `collected_event_types`: with `unbundleEvents`, the events sent on their
   * own (default none); each entry has `kind` or `source`, and `reasons`
   * (empty: any reason).
   */
  collectedEventTypes: { kind?: string; source?: string; reasons: string[] }[];
  /** `bundle_unspecified_events`: unbundled, bundle the events not collected (default false). */
  bundleUnspecifiedEvents: boolean;
  /** `filtering_enabled`: only the Agent's default sets and `collectedEventTypes` (default false). */
  filteringEnabled: boolean;
  /** `kubernetes_events_source_detection.enabled`: sources named after controllers (default false). */
  sourceDetection: boolean;
  /** Tags added to every Datadog event and service check (`kevents_datadog_tags`). */
  tags: string[];
  /** The intake's proxy (`proxy.https`, `DD_PROXY_HTTPS`, else `HTTPS_PROXY`); absent: none. */
  proxy?: string;
  /** Hosts reached without the proxy (`proxy.no_proxy`, `DD_PROXY_NO_PROXY`, else `NO_PROXY`). */
  noProxy: string[];
  /** retry (default) or drop. */
  onFailure: SinkOnFailure;
  /** Attempts per request before a send fails (default 5). */
  maxAttempts: number;
}

/** The OTLP sink's settings (`kevents_otlp_*`). */
export interface OtlpConfig {
  /**
   * Where log records are POSTed: `kevents_otlp_logs_endpoint` as given, else
   * `kevents_otlp_endpoint` with `/v1/logs` appended; required when the otlp sink is on.
   */
  url: string | undefined;
  /** `http/protobuf` (default) or `http/json`. */
  protocol: "http/protobuf" | "http/json";
  /** `gzip` (default) or `none`. */
  compression: "gzip" | "none";
  /** Extra request headers (default none). */
  headers: Record<string, string>;
  /** PEM file of the CA(s) to trust instead of the system's. */
  caFile: string | undefined;
  /** PEM files of a client certificate and its key (both or neither). */
  certFile: string | undefined;
  keyFile: string | undefined;
  /** Where each TLS file setting that is set came from, for createSinks' messages; absent when none is set. */
  fileSources?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Skip verifying the receiver's certificate (default false; logged as a warning). */
  insecureSkipVerify: boolean;
  /** retry (default) or drop. */
  onFailure: SinkOnFailure;
  /** Attempts per request before a send fails (default 5). */
  maxAttempts: number;
}

/** Enrichment's settings. */
export interface EnrichConfig {
  /** `kevents_enrich` (default: on with the datadog sink, else off). */
  enabled: boolean;
  /** API requests per batch (`kevents_enrich_request_budget`, default 50). */
  requestBudget: number;
  /** Pod label-to-tag name (`kubernetes_pod_labels_as_tags`). */
  podLabelsAsTags: Record<string, string>;
  /** Namespace label-to-tag name (`kubernetes_namespace_labels_as_tags`). */
  namespaceLabelsAsTags: Record<string, string>;
}

/** The object leader election locks: a Lease, or the leader annotation of a ConfigMap or an Endpoints object. */
export type LockResource = "lease" | "configmap" | "endpoints";

/** Leader-election timings, all in milliseconds, derived from the lease duration. */
export interface Timings {
  /** How long a lease holds without renewal: the expert override, else `leader_lease_duration` * 1000. */
  leaseDurationMs: number;
  /** How long the leader keeps retrying a renewal before it gives up leading: lease / 2 (the Agent's ratio). */
  renewDeadlineMs: number;
  /** Pause between attempts to acquire or renew: lease / 4 (the Agent's ratio). */
  retryPeriodMs: number;
  /**
   * Bound of each API request: min(10000, renewDeadline / 3). The leader
   * retries a failed renewal every retryPeriod (half the renew deadline)
   * until the deadline; if one request could take the whole deadline, a
   * single hung connection would cost the lease. A third leaves room for
   * another attempt. The 10 s cap keeps a dead connection from being waited
   * on longer than needed when the lease is long.
   */
  requestTimeoutMs: number;
}

/** When the event checkpoint (the token ConfigMap) is written. */
export interface CheckpointConfig {
  /** Write at most this often, in milliseconds (default 1000). */
  intervalMs: number;
  /** Write as soon as this many events were delivered since the last write (default 500). */
  maxEvents: number;
  /** Write a position reached without delivering events at most this often (default 60000). */
  idleIntervalMs: number;
}

/** The health and metrics endpoint (`kevents_health_*`). */
export interface HealthConfig {
  /** Address to bind (default `0.0.0.0`; `127.0.0.1` keeps it local). */
  address: string;
  /** Port (default 5555); 0 picks a free one, which is logged. */
  port: number;
  /**
   * `/healthz` fails when the leader's watch has received nothing (no
   * event, no bookmark, no successful reconnect) for this long (default
   * 600000 ms, twice the watch's 300 s timeout).
   */
  watchStallLimitMs: number;
}

/**
 * One sink kevents delivers to: an implicit one (a type's name in
 * `kevents_sinks`, named after its type, configured by the flat settings)
 * or a named one (a mapping in `kevents_sinks`, with its own options).
 */
export type SinkSpec =
  & (
    | { name: string; type: "stdout" | "null" }
    | { name: string; type: "webhook"; webhook: WebhookConfig }
    | { name: string; type: "datadog"; datadog: DatadogConfig }
    | { name: string; type: "otlp"; otlp: OtlpConfig }
  )
  & {
    /** A named sink (a mapping of `kevents_sinks`), whose options are `kevents_sinks NAME.OPTION`. */
    named?: true;
  };

/** The resolved configuration kevents runs with. */
export interface Config {
  /** Collect Kubernetes events (`collect_kubernetes_events`, or `KUBERNETES` set). */
  collectEvents: boolean;
  /** Take part in leader election; always true when events are collected. */
  leaderElection: boolean;
  /** Run the control-plane (componentstatuses) check; turned on by `KUBERNETES`. */
  controlPlaneCheck: boolean;
  /** How often the control-plane check runs, in milliseconds (default 15000, the Agent's check interval). */
  controlPlaneCheckIntervalMs: number;
  /** `leader_lease_duration` in seconds (default 60, greater than 30). */
  leaseDurationSeconds: number;
  /** Name of the lease object (default `datadog-leader-election`). */
  leaseName: string;
  /** What the election locks (`leader_election_default_resource`, default `lease`); it is named `leaseName` whatever its kind. */
  leaderElectionResource: LockResource;
  /** Namespace of the lease and the token ConfigMap. */
  resourcesNamespace: string;
  /** Name of the ConfigMap holding the event token (default `datadogtoken`; `cluster_agent.token_name` too). */
  tokenConfigMapName: string;
  /** The cluster's name (`cluster_name` / `DD_CLUSTER_NAME`), as given; absent when not set. */
  clusterName?: string;
  /** The node this replica runs on (`kubernetes_kubelet_nodename`); absent when not set. */
  nodeName?: string;
  /** Leader-election timings derived from the lease duration. */
  timings: Timings;
  /** Checkpoint batching. */
  checkpoint: CheckpointConfig;
  /**
   * The API server's event TTL (`kevents_event_ttl_seconds`, default
   * 3600000 ms), the share of it the checkpoint may lag
   * (`kevents_checkpoint_lag_share`, default 0.5) and their product, the
   * lag the leader warns about (default 1800000 ms).
   */
  checkpointLag: { eventTtlMs: number; share: number; limitMs: number };
  /** Deliver what the first list returned when there is no token yet (default false). */
  backfill: boolean;
  /** Without a token, deliver the listed events of the last this many ms (`kevents_start_window_seconds`; 0: none). */
  startWindowMs: number;
  /** The implicit sinks of `kevents_sinks` (types named by name, default `["stdout"]`); {@linkcode outputs} has every sink. */
  sinks: SinkName[];
  /** Every sink events go to, in the order of `kevents_sinks`, implicit and named. */
  outputs: SinkSpec[];
  /** Events buffered between the watch and the sinks (default 1000). */
  queueCapacity: number;
  /**
   * How long a batch gathers changes before it is sent, in ms: the Datadog
   * sink's bundling window (`kevents_datadog_bundle_window_seconds`, 15 s
   * as the Agent's check interval) when it bundles, else 0.
   */
  batchWindowMs: number;
  /**
   * Which events are delivered (`filtered_event_types`, `kevents_include_*`,
   * `kevents_exclude_*`); absent when none of them is set: every event.
   */
  eventFilters?: EventFilterSettings;
  /** Which events each sink gets, by sink name (`kevents_routes`); a sink without one gets every event. */
  routes: Record<string, EventRoute>;
  /** What kevents reads about the objects events are about (lib/enrich). */
  enrich: EnrichConfig;
  /** The implicit webhook sink's settings (the flat `kevents_webhook_*`). */
  webhook: WebhookConfig;
  /** The implicit Datadog sink's settings. */
  datadog: DatadogConfig;
  /** The implicit OTLP sink's settings (the flat `kevents_otlp_*`). */
  otlp: OtlpConfig;
  /** The health and metrics endpoint. */
  health: HealthConfig;
  /**
   * Followers watch the lock object and try to take over as soon as it is
   * released or expires, polling only as a fallback (default true).
   */
  followerWatch: boolean;
  /** How long a stopping leader lets the sends in flight and the queue finish before a send is cut, in ms (default 20000). */
  shutdownBudgetMs: number;
  /** How long a leader's list/watch of events may fail with a non-retryable error before it gives up leading, in ms (default 180000). */
  watchFailureLimitMs: number;
  /** Things main.ts should log at start (settings turned on, expert settings in use). */
  warnings: string[];
}

/** What parseConfig reads; main.ts fills it. */
export interface ConfigInput {
  /** Text of datadog.yaml, if one was found, and its path (for messages). */
  file?: { path: string; text: string };
  /** The process environment (only the keys it has). */
  env: Readonly<Record<string, string>>;
  /** Contents of the service-account namespace file, if it exists. */
  serviceAccountNamespace?: string;
  /**
   * Text of the Agent 5 kubernetes check configuration (`conf.d/kubernetes.yaml`),
   * if one was found, and its path: its `instances[0]` may hold the deprecated
   * `leader_candidate` and `leader_lease_duration`.
   */
  agent5File?: { path: string; text: string };
}
