/**
 * Which Kubernetes events the Datadog sink sends, and how: the Datadog
 * Agent's `collected_event_types`, `bundle_unspecified_events` and
 * `filtering_enabled` of its kubernetes_apiserver check (events_common.go,
 * unbundled_events.go, bundled_events.go in DataDog/datadog-agent, read for
 * their behaviour).
 *
 * An entry of `collected_event_types` matches an event when each of its
 * parts that is set matches: `kind` the involved object's kind, `source`
 * the event's `source.component`, `reasons` (any of them) its reason;
 * exactly, case counting. Unset parts match anything; an entry sets `kind`
 * or `source` (the settings refuse one without either).
 *
 * Bundled (the default), every event is bundled; with `filtering_enabled`
 * only those in the default set of their source's integration
 * ({@linkcode collectedByDefault}) or matching `collected_event_types`.
 *
 * Unbundled, an event matching `collected_event_types` (or, with
 * `filtering_enabled`, in its integration's default set) becomes its own
 * Datadog event; with `filtering_enabled` one outside the default set gets
 * the source `<source>_custom`. The others are bundled with
 * `bundle_unspecified_events`, else not sent. One departure from the Agent:
 * unbundled with `collected_event_types` empty, without
 * `bundle_unspecified_events` and without `filtering_enabled`, where the
 * Agent sends nothing at all, kevents sends every event unbundled, as it
 * did before it read these settings (the settings warn about it).
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import { eventSource } from "./_datadog_sources.ts";

/** One entry of `collected_event_types`. */
export interface CollectedEventType {
  /** The involved object's kind (exact). */
  kind?: string;
  /** The event's `source.component` (exact). */
  source?: string;
  /** The event's reason is one of these; empty or absent: any reason. */
  reasons?: readonly string[];
}

/** Whether `e` matches any of `types` (the Agent's shouldCollect). */
export function matchesEventTypes(e: CoreV1Event, types: readonly CollectedEventType[]): boolean {
  return types.some((t) =>
    (t.kind === undefined || t.kind === "" || t.kind === e.involvedObject?.kind) &&
    (t.source === undefined || t.source === "" || t.source === e.source?.component) &&
    (t.reasons === undefined || t.reasons.length === 0 || t.reasons.includes(e.reason ?? ""))
  );
}

// The events the Agent collects by default with filtering_enabled, per
// integration (its integrationToCollectedEventTypes). Its "datadog-operator"
// key is not the "datadog operator" its source table gives, so the operator's
// events only ever get the "default" entry: kept as the Agent has it.
const CORE_EVENT_TYPES: readonly CollectedEventType[] = [
  {
    kind: "Pod",
    reasons: [
      "Failed",
      "BackOff",
      "Unhealthy",
      "FailedScheduling",
      "FailedMount",
      "FailedAttachVolume",
    ],
  },
  {
    kind: "Node",
    reasons: ["TerminatingEvictedPod", "NodeNotReady", "Rebooted", "HostPortConflict"],
  },
  { kind: "CronJob", reasons: ["SawCompletedJob"] },
];

const DEFAULT_EVENT_TYPES: Readonly<Record<string, readonly CollectedEventType[]>> = {
  "kubernetes": CORE_EVENT_TYPES,
  "kube_scheduler": CORE_EVENT_TYPES,
  "kubernetes controller manager": CORE_EVENT_TYPES,
  "karpenter": [{
    source: "karpenter",
    reasons: [
      "DisruptionBlocked",
      "DisruptionLaunching",
      "DisruptionTerminating",
      "DisruptionWaitingReadiness",
      "FailedDraining",
      "InstanceTerminating",
      "SpotInterrupted",
      "SpotRebalanceRecommendation",
      "TerminatingOnInterruption",
    ],
  }],
  "datadog-operator": [{ source: "datadog-operator" }],
  "amazon elb": [{ source: "amazon elb" }],
  "cilium": [{ source: "cilium" }],
  "fluxcd": [{ source: "fluxcd" }],
  "kubernetes cluster autoscaler": [{ source: "kubernetes cluster autoscaler" }],
  "spark": [{ source: "spark" }],
  "vault": [{ source: "vault" }],
};

/** Collected by default for every integration (the Agent's "default" entry). */
const EVERY_INTEGRATION: readonly CollectedEventType[] = [{ reasons: ["BackOff"] }];

/**
 * Whether the Agent collects `e` by default with `filtering_enabled`: it is
 * in the default set of its source's integration (see
 * {@linkcode eventSource}; `kubernetes` without source detection) or has the
 * reason BackOff.
 */
export function collectedByDefault(e: CoreV1Event, sourceDetection: boolean): boolean {
  const own = DEFAULT_EVENT_TYPES[eventSource(e, sourceDetection)] ?? [];
  return matchesEventTypes(e, [...own, ...EVERY_INTEGRATION]);
}

/** Which events the Datadog sink sends, and their source; everything off by default. */
export interface EventChoiceOptions {
  /**
   * `collected_event_types`: unbundled, the events sent on their own
   * (default none, which sends every event unbundled unless
   * `bundleUnspecifiedEvents` or `filteringEnabled` is set).
   */
  collectedEventTypes?: readonly CollectedEventType[];
  /** `bundle_unspecified_events`: unbundled, bundle the events not collected, not drop them. */
  bundleUnspecifiedEvents?: boolean;
  /** `filtering_enabled`: only the Agent's default sets, or `collectedEventTypes`. */
  filteringEnabled?: boolean;
  /** `kubernetes_events_source_detection.enabled`: sources named after controllers. */
  sourceDetection?: boolean;
}

/** The {@linkcode EventChoiceOptions} of a sink's `options`, and whether it unbundles. */
export function eventChoice(
  options: EventChoiceOptions & { unbundleEvents?: boolean },
): EventChoiceOptions & { unbundle: boolean } {
  const { collectedEventTypes, bundleUnspecifiedEvents, filteringEnabled, sourceDetection } =
    options;
  const unbundle = options.unbundleEvents ?? false;
  return {
    unbundle,
    collectedEventTypes,
    bundleUnspecifiedEvents,
    filteringEnabled,
    sourceDetection,
  };
}

/** The `source_type_name` of a Datadog event made of `e` (a bundle's: of its first event). */
export function sourceOf(e: CoreV1Event, choice: EventChoiceOptions): string {
  return eventSource(e, choice.sourceDetection ?? false);
}

/** The items (in batch order) sent unbundled, each with its source, and those to bundle. */
export interface SelectedEvents<T> {
  unbundled: { item: T; source: string }[];
  bundled: T[];
}

/**
 * Splits `items` (each holding a Kubernetes event) into those sent as their
 * own Datadog event, each with its `source_type_name`, and those bundled;
 * an item in neither is not sent (see the module doc).
 */
export function selectEvents<T extends { event: CoreV1Event }>(
  items: readonly T[],
  unbundle: boolean,
  choice: EventChoiceOptions,
): SelectedEvents<T> {
  const types = choice.collectedEventTypes ?? [];
  const filtering = choice.filteringEnabled ?? false;
  const sourceDetection = choice.sourceDetection ?? false;
  const bundleRest = choice.bundleUnspecifiedEvents ?? false;
  if (!unbundle) {
    const bundled = filtering
      ? items.filter((i) =>
        collectedByDefault(i.event, sourceDetection) || matchesEventTypes(i.event, types)
      )
      : [...items];
    return { unbundled: [], bundled };
  }
  // kevents' departure: where the Agent would send nothing, everything.
  const everything = types.length === 0 && !bundleRest && !filtering;
  const out: SelectedEvents<T> = { unbundled: [], bundled: [] };
  for (const item of items) {
    let source = eventSource(item.event, sourceDetection);
    let collected = everything;
    if (filtering) {
      collected = collectedByDefault(item.event, sourceDetection);
      if (!collected) source = `${source}_custom`;
    }
    if (collected || matchesEventTypes(item.event, types)) {
      out.unbundled.push({ item, source });
    } else if (bundleRest) {
      out.bundled.push(item);
    }
  }
  return out;
}
