/**
 * {@linkcode parseConfig}: defaults, then `datadog.yaml`, then the
 * environment, then the Agent 5 settings below them; then what follows from
 * the values together (KUBERNETES, the election forced on, the timings, the
 * lock kind's rules, the event filters, the sinks).
 *
 * @module
 */

import {
  agentFilterTerm,
  checkFilteredEventTypes,
  type EventFilterSettings,
  type EventRoute,
  FieldSelectorError,
  FilteredEventTypeError,
  filtersAnything,
  routePredicate,
} from "../pump/mod.ts";
import { completed, type Origin, resolveKey } from "./_resolve.ts";
import { parseBool } from "./_values.ts";
import { applyAgent5Settings } from "./agent5.ts";
import { ConfigError } from "./errors.ts";
import { type FileEntry, readFile } from "./files.ts";
import {
  CONFIG_KEYS,
  type KeySpec,
  MIN_LEASE_SECONDS_EXCLUSIVE,
  type Settings,
  specOf,
} from "./settings.ts";
import { applyOtelEnvironment } from "./_otel_env.ts";
import { sinkTypes } from "./_sink_list.ts";
import { checkOverriddenSinks, resolveSinks } from "./named_sinks.ts";
import { resolveSinkSettings } from "./sinks.ts";
import type { Config, ConfigInput, SinkName, SinkSpec, Timings } from "./types.ts";

/** Derives the leader-election timings from a lease duration in milliseconds (each rounded down to a whole ms). */
export function deriveTimings(leaseDurationMs: number): Timings {
  const renewDeadlineMs = Math.floor(leaseDurationMs / 2);
  return {
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs: Math.floor(leaseDurationMs / 4),
    requestTimeoutMs: Math.min(10_000, Math.floor(renewDeadlineMs / 3)),
  };
}

/** Resolves defaults < datadog.yaml < environment, validates every value, derives timings. Throws ConfigError on the first bad value. */
export function parseConfig(input: ConfigInput): Config {
  const { entries: file, warnings: warningList } = input.file === undefined
    ? { entries: new Map<string, FileEntry>(), warnings: [] }
    : readFile(input.file);
  const out: Partial<Settings> = {};
  const origins = new Map<keyof Settings, Origin>();
  for (const spec of CONFIG_KEYS) {
    // The union row type is narrowed to one field per call.
    resolveKey(spec as KeySpec<keyof Settings>, file, input, out, origins);
  }
  const settings = completed(out);
  applyAgent5Settings(input, settings, origins, warningList);

  // The Agent's DaemonSet manifest sets KUBERNETES, and its entrypoint only
  // tests that the variable is non-empty: "false" turns things on too.
  // KUBERNETES always turns on the control-plane check, as in the Agent; it
  // turns on event collection only where collect_kubernetes_events is not
  // set: a value the user wrote (file or environment) wins over it.
  const kubernetes = input.env["KUBERNETES"];
  const kubernetesSet = kubernetes !== undefined && kubernetes !== "";
  let collectEvents = settings.collectEvents;
  if (kubernetesSet) {
    const origin = origins.get("collectEvents");
    const explicit = origin?.explicit === true;
    if (parseBool(kubernetes) === false) {
      warningList.push(
        `KUBERNETES is ${JSON.stringify(kubernetes)}: any non-empty value turns on the ` +
          "control-plane check, and event collection unless collect_kubernetes_events is set, " +
          "as in the Agent; unset it to turn them off",
      );
    }
    if (explicit && !collectEvents) {
      warningList.push(
        `Events are not collected: collect_kubernetes_events is false (${origin.source}), ` +
          "which wins over KUBERNETES; KUBERNETES turns on the control-plane check only",
      );
    }
    if (!explicit) collectEvents = true;
  }

  // Collecting events without an election would let every replica deliver
  // every event; the Agent turns the election on for the same reason.
  let leaderElection = settings.leaderElection;
  if ((collectEvents || kubernetesSet) && !leaderElection) {
    const origin = origins.get("leaderElection");
    if (origin?.explicit) {
      warningList.push(
        `Turned leader_election on: it is false (${origin.source}) but collecting events ` +
          `requires it, so that one replica collects at a time`,
      );
    }
    leaderElection = true;
  }

  let leaseDurationMs = settings.leaseDurationSeconds * 1000;
  if (settings.expertLeaseDurationMs !== undefined) {
    leaseDurationMs = settings.expertLeaseDurationMs;
    const source = origins.get("expertLeaseDurationMs")?.source ?? "";
    const minimumMs = MIN_LEASE_SECONDS_EXCLUSIVE * 1000;
    const below = leaseDurationMs <= minimumMs
      ? `: ${leaseDurationMs} ms is ${leaseDurationMs < minimumMs ? "below" : "not above"} ` +
        `the ${MIN_LEASE_SECONDS_EXCLUSIVE} s the Agent requires; use it only for tests and demos`
      : "";
    warningList.push(
      `Expert setting kevents_lease_duration_ms=${leaseDurationMs} (${source}) overrides ` +
        `leader_lease_duration (${settings.leaseDurationSeconds} s) for leader-election ` +
        `timing${below}`,
    );
  }
  resolveTokenName(settings, origins);
  applyProxyEnvironment(settings, origins, input.env, warningList);
  applyOtelEnvironment(settings, origins, input.env, warningList);
  checkAnnotationLock(settings, origins, deriveTimings(leaseDurationMs));

  const eventFilters = resolveEventFilters(settings, origins, warningList);
  const sinkSettings = resolveSinkSettings(settings, origins, warningList);
  const { outputs, routes: sinkRoutes } = resolveSinks(
    settings,
    origins,
    sinkSettings,
    warningList,
  );
  const fileSinks = file.get("kevents_sinks");
  if (fileSinks !== undefined && input.env["KEVENTS_SINKS"] !== undefined) {
    checkOverriddenSinks(fileSinks, settings, origins, sinkSettings);
  }
  const datadogSinks = outputs.flatMap((o) => o.type === "datadog" ? [o.datadog] : []);

  return {
    collectEvents,
    leaderElection,
    controlPlaneCheck: kubernetesSet,
    controlPlaneCheckIntervalMs: settings.controlPlaneCheckIntervalMs,
    leaseDurationSeconds: settings.leaseDurationSeconds,
    leaseName: settings.leaseName,
    leaderElectionResource: settings.leaderElectionResource,
    resourcesNamespace: settings.resourcesNamespace,
    tokenConfigMapName: settings.tokenConfigMapName,
    ...(settings.clusterName === undefined ? {} : { clusterName: settings.clusterName }),
    ...(settings.nodeName === undefined ? {} : { nodeName: settings.nodeName }),
    timings: deriveTimings(leaseDurationMs),
    checkpoint: {
      intervalMs: settings.checkpointIntervalMs,
      maxEvents: settings.checkpointMaxEvents,
      idleIntervalMs: settings.checkpointIdleIntervalMs,
    },
    checkpointLag: {
      eventTtlMs: settings.eventTtlSeconds * 1000,
      share: settings.checkpointLagShare,
      limitMs: Math.round(settings.eventTtlSeconds * settings.checkpointLagShare * 1000),
    },
    backfill: settings.backfill,
    startWindowMs: startWindow(settings, origins) * 1000,
    sinks: settings.sinks.filter((s): s is SinkName => typeof s === "string"),
    outputs,
    queueCapacity: settings.queueCapacity,
    batchWindowMs: datadogSinks.some((d) => !d.unbundleEvents)
      ? settings.ddBundleWindowSeconds * 1000
      : 0,
    ...(eventFilters === undefined ? {} : { eventFilters }),
    routes: checkRoutes(settings, origins, outputs, sinkRoutes),
    enrich: {
      // The Datadog Agent's users expect the tagger's tags; other sinks get the
      // event as the API server has it unless asked.
      enabled: settings.enrich ?? datadogSinks.length > 0,
      requestBudget: settings.enrichRequestBudget,
      podLabelsAsTags: settings.podLabelsAsTags,
      namespaceLabelsAsTags: settings.namespaceLabelsAsTags,
    },
    ...sinkSettings,
    health: {
      address: settings.healthAddress,
      port: settings.healthPort,
      watchStallLimitMs: settings.watchStallLimitSeconds * 1000,
    },
    followerWatch: settings.followerWatch,
    shutdownBudgetMs: settings.shutdownBudgetSeconds * 1000,
    watchFailureLimitMs: settings.watchFailureLimitSeconds * 1000,
    warnings: warningList,
  };
}

/**
 * Gathers the filter settings; undefined when none is set. Checks every
 * `filtered_event_types` entry as the API server would, so that a bad one
 * stops the start naming the entry instead of failing every list later.
 */
function resolveEventFilters(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  warnings: string[],
): EventFilterSettings | undefined {
  const filters: EventFilterSettings = {
    filteredEventTypes: settings.filteredEventTypes,
    include: {
      types: settings.includeTypes,
      namespaces: settings.includeNamespaces,
      reasons: settings.includeReasons,
      kinds: settings.includeKinds,
    },
    exclude: {
      types: settings.excludeTypes,
      namespaces: settings.excludeNamespaces,
      reasons: settings.excludeReasons,
      kinds: settings.excludeKinds,
    },
  };
  if (!filtersAnything(filters)) return undefined;
  const source = origins.get("filteredEventTypes")?.source ?? "";
  try {
    checkFilteredEventTypes(filters.filteredEventTypes);
  } catch (e) {
    if (!(e instanceof FilteredEventTypeError)) throw e;
    throw new ConfigError({
      key: "filtered_event_types",
      source,
      value: e.entry,
      rule: e.detail,
      message: `Cannot parse filtered_event_types entry ${JSON.stringify(e.entry)} ` +
        `(${source}): ${e.detail}`,
      cause: e,
    });
  }
  for (const entry of filters.filteredEventTypes) {
    // A bare word is a reason, as in the Agent; one with an operator's "!"
    // was probably meant as a selector.
    if (!entry.includes("=") && entry.includes("!")) {
      warnings.push(
        `filtered_event_types entry ${JSON.stringify(entry)} (${source}) has no "=": it is ` +
          `read as ${agentFilterTerm(entry)}, leaving out events with that reason; write ` +
          `field!=value to filter on a field`,
      );
    }
  }
  return filters;
}

/**
 * What a ConfigMap or Endpoints lock adds to the rules. Its record's times
 * have whole seconds and other replicas see a renewal only because the
 * record changed, so renewals (one per retry period) must be more than a
 * second apart; only the expert lease setting can make them closer. And a
 * ConfigMap lock must not be the checkpoint ConfigMap: each write to one
 * would make the other's compare-and-swap fail.
 */
function checkAnnotationLock(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  timings: Timings,
): void {
  const resource = settings.leaderElectionResource;
  if (resource === "lease") return;
  const resourceSource = origins.get("leaderElectionResource")?.source ?? "default";
  if (timings.retryPeriodMs <= 1000) {
    const source = origins.get("expertLeaseDurationMs")?.source ?? "default";
    const rule = `with leader_election_default_resource ${resource} (${resourceSource}) the ` +
      `retry period (lease / 4, here ${timings.retryPeriodMs} ms) must be more than 1000 ms, ` +
      "as the lock's record has whole-second times: use a lease of at least 4004 ms";
    throw new ConfigError({
      key: "kevents_lease_duration_ms",
      source,
      value: String(timings.leaseDurationMs),
      rule,
    });
  }
  if (resource === "configmap" && settings.leaseName === settings.tokenConfigMapName) {
    const nameSource = origins.get("leaseName")?.source ?? "default";
    const tokenSource = origins.get("tokenConfigMapName")?.source ?? "default";
    throw new ConfigError({
      key: "leader_lease_name",
      source: nameSource,
      value: settings.leaseName,
      rule: "must differ from kubernetes_event_token_configmap when the lock is a ConfigMap",
      message: `Cannot use the ConfigMap ${JSON.stringify(settings.leaseName)} both as the ` +
        `leader-election lock (leader_lease_name, ${nameSource}; leader_election_default_resource ` +
        `${resource}, ${resourceSource}) and as the event checkpoint ` +
        `(kubernetes_event_token_configmap, ${tokenSource}): each write to one would make the ` +
        "other's compare-and-swap fail; give them different names",
    });
  }
}

/**
 * The token ConfigMap's name: `kubernetes_event_token_configmap`, else the
 * Agent's `cluster_agent.token_name`, else `datadogtoken`; the Agent's name
 * is written into `tokenConfigMapName` with its origin. Both set to
 * different names is a ConfigError: one of them would be ignored.
 */
function resolveTokenName(settings: Settings, origins: Map<keyof Settings, Origin>): void {
  const own = origins.get("tokenConfigMapName");
  const agent = settings.agentTokenName;
  if (agent === undefined) return;
  if (own?.explicit !== true || settings.tokenConfigMapName === agent) {
    settings.tokenConfigMapName = agent;
    const origin = origins.get("agentTokenName");
    if (origin !== undefined) origins.set("tokenConfigMapName", origin);
    return;
  }
  const agentSource = origins.get("agentTokenName")?.source ?? "";
  throw new ConfigError({
    key: "kubernetes_event_token_configmap",
    source: own.source,
    value: settings.tokenConfigMapName,
    rule: `must equal cluster_agent.token_name (${agent}, ${agentSource}) when both are set`,
  });
}

/**
 * The standard proxy variables, below the Agent's own: `HTTPS_PROXY` (or
 * `https_proxy`) when `DD_PROXY_HTTPS` is not set, over `proxy.https` of
 * the file; `NO_PROXY` (or `no_proxy`) likewise under `DD_PROXY_NO_PROXY`.
 * This is the Agent's order (LoadProxyFromEnv). Read only with the datadog
 * sink on: the variables are often set for other programs.
 */
function applyProxyEnvironment(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  env: Readonly<Record<string, string>>,
  warnings: string[],
): void {
  const fallbacks = [
    ["ddProxyHttps", ["HTTPS_PROXY", "https_proxy"]],
    ["ddNoProxy", ["NO_PROXY", "no_proxy"]],
  ] as const;
  if (!sinkTypes(settings.sinks).has("datadog")) return;
  for (const [field, names] of fallbacks) {
    const spec = specOf(field);
    if (env[spec.envVar] !== undefined) continue;
    const name = names.find((n) => env[n] !== undefined && env[n] !== "");
    if (name === undefined) continue;
    const source = `env ${name}`;
    let text = env[name]!.trim();
    // As Go's ProxyFromEnvironment: a proxy without a scheme is an http:// one.
    if (field === "ddProxyHttps" && !text.includes("://")) text = `http://${text}`;
    const value = spec.parse(text);
    if (value === undefined) {
      // Set for other programs, in a form kevents cannot use: said, not fatal.
      const shown = field === "ddProxyHttps" ? "" : ` ${JSON.stringify(text.slice(0, 80))}`;
      warnings.push(
        `Ignoring ${name}${shown} for the datadog sink: it ${spec.rule}; set ${spec.envVar} ` +
          `(or ${spec.fileKey}) to override it`,
      );
      continue;
    }
    (settings as unknown as Record<string, unknown>)[field] = value;
    origins.set(field, { explicit: true, source });
  }
}

/** The start window, refused beside backfill: one delivers everything, the other part of it. */
function startWindow(settings: Settings, origins: Map<keyof Settings, Origin>): number {
  const window = settings.startWindowSeconds;
  if (window === 0 || !settings.backfill) return window;
  const source = origins.get("startWindowSeconds")?.source ?? "";
  const backfillSource = origins.get("backfill")?.source ?? "";
  throw new ConfigError({
    key: "kevents_start_window_seconds",
    source,
    value: String(window),
    rule: `must be 0 with kevents_backfill (${backfillSource}), which delivers every listed event`,
  });
}

/**
 * The routes of `kevents_routes` and of the named sinks' rules together,
 * each naming a configured sink, once, and with a match the API server
 * would take.
 */
function checkRoutes(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  outputs: readonly SinkSpec[],
  sinkRoutes: Record<string, EventRoute>,
): Record<string, EventRoute> {
  const source = origins.get("routes")?.source ?? "default";
  const names = outputs.map((o) => o.name);
  for (const sink of Object.keys(settings.routes)) {
    if (!names.includes(sink)) {
      throw new ConfigError({
        key: "kevents_routes",
        source,
        value: sink,
        rule: `must name sinks of kevents_sinks (${names.join(", ")})`,
      });
    }
    if (sink in sinkRoutes) {
      const sinksSource = origins.get("sinks")?.source ?? "default";
      throw new ConfigError({
        key: "kevents_routes",
        source,
        value: sink,
        rule: `must not name sink "${sink}", whose rules kevents_sinks gives (${sinksSource}): ` +
          "give them in one place",
      });
    }
  }
  const routes = { ...settings.routes, ...sinkRoutes };
  for (const [sink, route] of Object.entries(routes)) {
    const where = sink in sinkRoutes ? origins.get("sinks")?.source ?? "default" : source;
    try {
      routePredicate(route);
    } catch (e) {
      if (!(e instanceof FieldSelectorError)) throw e;
      throw new ConfigError({
        key: sink in sinkRoutes ? `kevents_sinks ${sink}` : "kevents_routes",
        source: where,
        value: `${sink}.match ${route.match}`,
        rule: `must be a field selector the API server takes: ${e.detail}`,
      });
    }
  }
  return routes;
}
