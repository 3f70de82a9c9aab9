/**
 * kevents' Prometheus metrics, on the registry and text format of
 * `prometheus.ts`.
 *
 * Every part that does something worth counting takes an optional
 * {@linkcode Metrics} in its options and calls one of its methods; the
 * methods hide the label names, so a caller cannot invent a label and blow
 * up the series count. Label values are bounded: event types collapse to
 * Normal, Warning or other, API verbs and codes come from a fixed set.
 *
 * The process gauges read `Deno.memoryUsage()`; prom-client's default process
 * metrics, which this replaced, reported NaN and 2^63 ns for the event loop
 * under Deno, and the reserved address space for the heap.
 *
 * Nothing secret goes into a label: no URL query, header or token, only
 * names kevents chose (sink names, verbs, reasons).
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "./prometheus.ts";

/** Why a watch was restarted. */
export type WatchRestartReason = "expired" | "stale" | "error" | "timeout" | "stalled";

/** What became of one checkpoint write. */
export type CheckpointResult = "written" | "fenced" | "failed";

/**
 * Why the pump could not resume from the checkpoint's position: the API
 * server refuses its resourceVersion or it is not one (both start from
 * now), or it is ahead of the server (relisted, delivered by time).
 */
export type CheckpointResetReason = "refused" | "unreadable" | "ahead";

/**
 * How the leader mended its checkpoint ConfigMap: recreated after a
 * deletion, rewritten after a foreign edit (a replace, a hand edit), or
 * found unusable (immutable, token in binaryData: kept in memory).
 */
export type CheckpointHealReason = "recreated" | "foreign_edit" | "unusable";

const PREFIX = "kevents_";

/** Collapses a Kubernetes event type to a bounded label value. */
export function eventTypeLabel(type: string | undefined): "Normal" | "Warning" | "other" {
  return type === "Normal" || type === "Warning" ? type : "other";
}

const VERBS = new Set(["get", "list", "watch", "create", "update", "patch", "delete"]);

/** Delivery latency buckets, in seconds: 5 ms to 10 minutes. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600];

/** The metrics of one kevents process. */
export class Metrics {
  /** The registry `/metrics` renders. */
  readonly registry: Registry = new Registry();

  readonly #received: Counter<"type">;
  readonly #delivered: Counter<"sink" | "type">;
  readonly #filtered: Counter<"type">;
  readonly #dropped: Counter<"sink" | "type">;
  readonly #rejected: Counter<"sink">;
  readonly #sinkErrors: Counter<"sink">;
  readonly #sinkRetries: Counter<"sink">;
  readonly #latency: Histogram<"sink">;
  readonly #queueDepth: Gauge;
  readonly #checkpointWrites: Counter<"result">;
  readonly #checkpointLastWrite: Gauge;
  readonly #eventTtl: Gauge;
  readonly #checkpointLagLimit: Gauge;
  #checkpointLagRead: () => number = () => 0;
  readonly #watchRestarts: Counter<"reason">;
  readonly #relists: Counter;
  readonly #pages: Counter;
  readonly #leader: Gauge;
  readonly #terms: Counter;
  readonly #transitions: Gauge;
  readonly #leaseDuration: Gauge;
  readonly #watchStallLimit: Gauge;
  #leading = false;
  /** When a live leader was last seen (ms since the epoch; 0 never); see leaseRenewalSeen. */
  #leaseRenewalSeenAt = 0;
  readonly #apiRequests: Counter<"verb" | "code">;
  readonly #lastWatchActivity: Gauge;
  readonly #serviceChecks: Counter<"status">;
  readonly #serviceCheckFailures: Counter;
  readonly #enrichLookups: Counter<"resource" | "outcome">;
  readonly #checkpointResets: Counter<"reason">;
  readonly #checkpointHeals: Counter<"reason">;
  readonly #shutdownCut: Counter;
  readonly #stepDowns: Counter;
  readonly #rivalLockHeld: Gauge;
  readonly #rivalLockForbidden: Counter<"kind">;
  #queueDepthRead: () => number = () => 0;
  #lastWatchActivityRead: (() => number) | undefined;

  constructor() {
    const registers = [this.registry];
    this.#received = new Counter({
      name: `${PREFIX}events_received_total`,
      help: "Events read from the API server (list or watch), by event type",
      labelNames: ["type"],
      registers,
    });
    this.#delivered = new Counter({
      name: `${PREFIX}events_delivered_total`,
      help: "Events a sink acknowledged, by sink and event type",
      labelNames: ["sink", "type"],
      registers,
    });
    this.#filtered = new Counter({
      name: `${PREFIX}events_filtered_total`,
      help: "Events left out by the include/exclude settings, by event type",
      labelNames: ["type"],
      registers,
    });
    this.#dropped = new Counter({
      name: `${PREFIX}events_dropped_total`,
      help: "Events a sink gave up on (only with its on_failure: drop), by sink and event type",
      labelNames: ["sink", "type"],
      registers,
    });
    this.#rejected = new Counter({
      name: `${PREFIX}sink_rejected_events_total`,
      help: "Events a sink's receiver refused for good (400, 413, 422: set aside, logged with " +
        "their key, never retried; the checkpoint moves past them), by sink",
      labelNames: ["sink"],
      registers,
    });
    this.#sinkErrors = new Counter({
      name: `${PREFIX}sink_errors_total`,
      help: "Batches a sink failed to take (the pump retries them), by sink",
      labelNames: ["sink"],
      registers,
    });
    this.#sinkRetries = new Counter({
      name: `${PREFIX}sink_retries_total`,
      help: "Requests a sink repeated after a network error, a 5xx or a 429, by sink",
      labelNames: ["sink"],
      registers,
    });
    this.#latency = new Histogram({
      name: `${PREFIX}delivery_latency_seconds`,
      help: "From the event's last timestamp to the sink's acknowledgement, by sink",
      labelNames: ["sink"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const readDepth = () => this.#queueDepthRead();
    this.#queueDepth = new Gauge({
      name: `${PREFIX}queue_depth`,
      help: "Changes buffered between the watch and the sinks",
      registers,
      collect() {
        this.set(readDepth());
      },
    });
    this.#checkpointWrites = new Counter({
      name: `${PREFIX}checkpoint_writes_total`,
      help: "Writes of the token ConfigMap: written, fenced (refused: another leader's term) " +
        "or failed",
      labelNames: ["result"],
      registers,
    });
    this.#checkpointLastWrite = new Gauge({
      name: `${PREFIX}checkpoint_last_write_timestamp_seconds`,
      help: "When this replica last wrote the checkpoint (unix time); 0 before its first write",
      registers,
    });
    const readLag = () => this.#checkpointLagRead();
    new Gauge({
      name: `${PREFIX}checkpoint_lag_seconds`,
      help: "On the leader, how long the oldest event read but not yet covered by a written " +
        "checkpoint has waited since it was read (0 when none); always 0 on a follower",
      registers,
      collect() {
        this.set(readLag());
      },
    });
    this.#eventTtl = new Gauge({
      name: `${PREFIX}event_ttl_seconds`,
      help: "The API server's event TTL as configured (kevents_event_ttl_seconds): events are " +
        "deleted this long after their last update",
      registers,
    });
    this.#checkpointLagLimit = new Gauge({
      name: `${PREFIX}checkpoint_lag_limit_seconds`,
      help: "The checkpoint lag the leader warns about: kevents_checkpoint_lag_share of the " +
        "event TTL",
      registers,
    });
    this.#watchRestarts = new Counter({
      name: `${PREFIX}watch_restarts_total`,
      help: "Event watches restarted, by reason: expired (410), stale (closed at once), " +
        "error, timeout (the server's timeoutSeconds), stalled (no byte for too long)",
      labelNames: ["reason"],
      registers,
    });
    this.#relists = new Counter({
      name: `${PREFIX}relists_total`,
      help: "Full lists of events (start without a token, or history gone)",
      registers,
    });
    this.#pages = new Counter({
      name: `${PREFIX}list_pages_total`,
      help: "Pages of events read by lists",
      registers,
    });
    this.#leader = new Gauge({
      name: `${PREFIX}leader`,
      help: "1 while this replica leads, else 0",
      registers,
    });
    this.#terms = new Counter({
      name: `${PREFIX}leader_terms_total`,
      help: "Leadership terms this replica started",
      registers,
    });
    this.#transitions = new Gauge({
      name: `${PREFIX}leader_transitions`,
      help: "The lock's leaderTransitions when this replica last took it",
      registers,
    });
    // For the alert rules (manifests/monitoring/): every replica exports the
    // settings and the last sign of a live leader it saw, so the rules need
    // neither literal durations nor the leader's own scrape.
    this.#leaseDuration = new Gauge({
      name: `${PREFIX}lease_duration_seconds`,
      help: "The leader election's lease duration (leader_lease_duration), in seconds",
      registers,
    });
    this.#watchStallLimit = new Gauge({
      name: `${PREFIX}watch_stall_limit_seconds`,
      help: "How long the leader's watch may receive nothing before /healthz calls it stalled " +
        "(kevents_watch_stall_limit_seconds)",
      registers,
    });
    const readRenewalSeen = () => this.#leading ? Date.now() : this.#leaseRenewalSeenAt;
    new Gauge({
      name: `${PREFIX}lease_observed_renew_timestamp_seconds`,
      help: "When this replica last saw a live leader, on its clock: now while it leads; else " +
        "its last acquire or renewal of the lock, or the last change of the lock's record " +
        "under a holder that it read or watched; 0 before the first",
      registers,
      collect() {
        this.set(readRenewalSeen() / 1000);
      },
    });
    this.#apiRequests = new Counter({
      name: `${PREFIX}api_requests_total`,
      help: "Requests to the Kubernetes API server, by verb and HTTP code " +
        "(network and timeout when no answer came)",
      labelNames: ["verb", "code"],
      registers,
    });
    const readActivity = () => this.#lastWatchActivityRead?.();
    this.#lastWatchActivity = new Gauge({
      name: `${PREFIX}watch_last_activity_timestamp_seconds`,
      help: "When the leader's list or watch last received something (an event, a bookmark, " +
        "an answer); 0 before the first",
      registers,
      collect() {
        const at = readActivity();
        if (at !== undefined) this.set(at / 1000);
      },
    });
    this.#checkpointResets = new Counter({
      name: `${PREFIX}checkpoint_resets_total`,
      help: "Terms that could not resume from the checkpoint's position, by reason: refused " +
        "(the API server refuses its resourceVersion) and unreadable start from now; ahead " +
        "(ahead of the API server: a restored etcd, a copied ConfigMap) relists and delivers by time",
      labelNames: ["reason"],
      registers,
    });
    this.#checkpointHeals = new Counter({
      name: `${PREFIX}checkpoint_heals_total`,
      help: "Times the leader mended its checkpoint ConfigMap, by reason: recreated (deleted), " +
        "foreign_edit (replaced or edited while it led), unusable (immutable, or the token in " +
        "binaryData: kept in memory)",
      labelNames: ["reason"],
      registers,
    });
    this.#shutdownCut = new Counter({
      name: `${PREFIX}shutdown_cut_events_total`,
      help: "Events whose send the shutdown budget cut on a clean stop (the next leader " +
        "delivers them again)",
      registers,
    });
    this.#stepDowns = new Counter({
      name: `${PREFIX}leader_step_downs_total`,
      help: "Terms this replica gave up because it could not read events (credentials or " +
        "permissions refused for longer than kevents_watch_failure_limit_seconds)",
      registers,
    });
    this.#rivalLockHeld = new Gauge({
      name: `${PREFIX}rival_lock_held`,
      help: "1 while a live holder of a same-named lock of another kind (the Datadog Agent's " +
        "ConfigMap lock, say) keeps this replica from leading, else 0",
      registers,
    });
    this.#rivalLockForbidden = new Counter({
      name: `${PREFIX}rival_lock_forbidden_total`,
      help: "Reads of a same-named lock of another kind that RBAC refused (403; kevents then " +
        "leads without checking it), by kind (lease, configmap, endpoints)",
      labelNames: ["kind"],
      registers,
    });
    this.#serviceChecks = new Counter({
      name: `${PREFIX}service_checks_total`,
      help: "Control-plane service checks emitted, by status (ok, warning, critical, unknown)",
      labelNames: ["status"],
      registers,
    });
    this.#enrichLookups = new Counter({
      name: `${PREFIX}enrich_lookups_total`,
      help: "Enrichment's lookups of the objects events are about, by resource (pods, jobs, " +
        "namespaces) and outcome (hit: from the cache; fetched; absent: 404; forbidden: 403; " +
        "failed; budget: left out, the batch's request budget spent)",
      labelNames: ["resource", "outcome"],
      registers,
    });
    this.#serviceCheckFailures = new Counter({
      name: `${PREFIX}service_check_failures_total`,
      help: "Control-plane check runs that could not read the API server (no service check sent)",
      registers,
    });
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes",
      registers,
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
    new Gauge({
      name: "process_heap_used_bytes",
      help: "V8 heap in use, in bytes",
      registers,
      collect() {
        this.set(Deno.memoryUsage().heapUsed);
      },
    });
    new Gauge({
      name: "process_start_time_seconds",
      help: "Start time of the process since the epoch, in seconds",
      registers,
    }).set(Math.round(Date.now() / 1000 - performance.now() / 1000));
  }

  /** Events read from the API server. */
  received(type: string | undefined, n = 1): void {
    this.#received.inc({ type: eventTypeLabel(type) }, n);
  }

  /** A sink acknowledged these events; `now` and the events' times give the latency. */
  delivered(sink: string, events: readonly { type?: string; time?: string }[], now: number): void {
    const byType = { Normal: 0, Warning: 0, other: 0 };
    const latency = this.#latency.labels({ sink });
    // Events of a burst share their time: each is parsed once per run of them.
    let time: string | undefined;
    let at = NaN;
    for (const e of events) {
      byType[eventTypeLabel(e.type)]++;
      if (e.time !== time) {
        time = e.time;
        at = time === undefined ? NaN : Date.parse(time);
      }
      if (!Number.isNaN(at)) latency.observe(Math.max(0, now - at) / 1000);
    }
    for (const [type, n] of Object.entries(byType)) {
      if (n > 0) this.#delivered.inc({ sink, type }, n);
    }
  }

  /** An event left out by the include/exclude settings. */
  filtered(type: string | undefined): void {
    this.#filtered.inc({ type: eventTypeLabel(type) });
  }

  /** A sink dropped these events. */
  dropped(sink: string, types: readonly (string | undefined)[]): void {
    for (const t of types) this.#dropped.inc({ sink, type: eventTypeLabel(t) });
  }

  /** A sink's receiver refused `n` events for good: they were set aside. */
  rejected(sink: string, n = 1): void {
    this.#rejected.inc({ sink }, n);
  }

  /** A sink failed to take a batch. */
  sinkError(sink: string): void {
    this.#sinkErrors.inc({ sink });
  }

  /** A sink repeated a request. */
  sinkRetry(sink: string): void {
    this.#sinkRetries.inc({ sink });
  }

  /** Reads the queue depth when metrics are collected. */
  watchQueue(depth: () => number): void {
    this.#queueDepthRead = depth;
  }

  /** A checkpoint write ended; one `written` at `now` (ms since the epoch, default now). */
  checkpointWrite(result: CheckpointResult, now: number = Date.now()): void {
    this.#checkpointWrites.inc({ result });
    if (result === "written") this.#checkpointLastWrite.set(now / 1000);
  }

  /** Reads the checkpoint lag (seconds) at every scrape; `() => 0` when not leading. */
  checkpointLagFrom(read: () => number): void {
    this.#checkpointLagRead = read;
  }

  /** The configured event TTL and the checkpoint lag limit, in seconds. */
  checkpointLagLimit(eventTtlSeconds: number, limitSeconds: number): void {
    this.#eventTtl.set(eventTtlSeconds);
    this.#checkpointLagLimit.set(limitSeconds);
  }

  /** A watch was restarted. */
  watchRestart(reason: WatchRestartReason): void {
    this.#watchRestarts.inc({ reason });
  }

  /** A full list started. */
  relist(): void {
    this.#relists.inc();
  }

  /** A page of a list was read. */
  listPage(): void {
    this.#pages.inc();
  }

  /** The list or watch received something at `now` (ms since the epoch). */
  watchActivity(now: number): void {
    this.#lastWatchActivity.set(now / 1000);
  }

  /** Reads the last watch activity (ms since the epoch) from `read` at every scrape. */
  watchActivityFrom(read: () => number): void {
    this.#lastWatchActivityRead = read;
  }

  /** A term could not resume from the checkpoint's position. */
  checkpointReset(reason: CheckpointResetReason): void {
    this.#checkpointResets.inc({ reason });
  }

  /** The leader mended its checkpoint ConfigMap. */
  checkpointHeal(reason: CheckpointHealReason): void {
    this.#checkpointHeals.inc({ reason });
  }

  /** The shutdown budget cut a send of `events` events. */
  shutdownCut(events: number): void {
    this.#shutdownCut.inc(events);
  }

  /** This replica gave up a term it could not serve. */
  stepDown(): void {
    this.#stepDowns.inc();
  }

  /**
   * The rival-lock guard checked before a try to lead: whether a live rival
   * keeps this replica from leading, and the rival kinds RBAC refused.
   */
  rivalLock(held: boolean, forbidden: readonly string[] = []): void {
    this.#rivalLockHeld.set(held ? 1 : 0);
    for (const kind of forbidden) {
      const known = kind === "lease" || kind === "configmap" || kind === "endpoints";
      this.#rivalLockForbidden.inc({ kind: known ? kind : "other" });
    }
  }

  /** This replica started leading (with the lock's transition count) or stopped. */
  leading(leading: boolean, transitions?: number): void {
    this.#leading = leading;
    this.#leader.set(leading ? 1 : 0);
    if (leading) {
      this.#terms.inc();
      if (transitions !== undefined) this.#transitions.set(transitions);
    }
  }

  /** The lease duration and the watch stall limit this replica runs with (ms). */
  configured(o: { leaseDurationMs: number; watchStallLimitMs: number }): void {
    this.#leaseDuration.set(o.leaseDurationMs / 1000);
    this.#watchStallLimit.set(o.watchStallLimitMs / 1000);
  }

  /** This replica saw a live leader at `at` (ms since the epoch): a renewal, its own or seen. */
  leaseRenewalSeen(at: number): void {
    this.#leaseRenewalSeenAt = Math.max(this.#leaseRenewalSeenAt, at);
  }

  /** An API request ended with `code` (an HTTP status, or "network"/"timeout"). */
  apiRequest(verb: string, code: number | "network" | "timeout"): void {
    this.#apiRequests.inc({ verb: VERBS.has(verb) ? verb : "other", code: String(code) });
  }

  /** A service check was emitted. */
  serviceCheck(status: 0 | 1 | 2 | 3): void {
    this.#serviceChecks.inc({ status: ["ok", "warning", "critical", "unknown"][status]! });
  }

  /** An enrichment lookup of `resource` ended with `outcome`. */
  enrichLookup(resource: string, outcome: string): void {
    const known = resource === "pods" || resource === "jobs" || resource === "namespaces";
    this.#enrichLookups.inc({ resource: known ? resource : "other", outcome });
  }

  /** A control-plane check run could not read the API server and sent nothing. */
  serviceCheckFailure(): void {
    this.#serviceCheckFailures.inc();
  }

  /** The Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@linkcode render}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
