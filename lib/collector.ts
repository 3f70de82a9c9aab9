/**
 * The collector: the lease loop, the ConfigMap checkpointer and the event
 * pump under one lifecycle. The elector hands each term two signals. The
 * term reads the checkpoint (stamping its term into it) and runs the pump
 * and the checkpoint writer.
 *
 * - `term.drain` (SIGTERM, SIGINT): the pump stops reading, delivers what it
 *   queued and what is in flight, the checkpoint is written, and only then
 *   does the elector release the lease; it renews the lease meanwhile. The
 *   shutdown budget bounds this; when it runs out, `term.signal` aborts.
 * - `term.signal` (lease lost, renew deadline passed, budget spent): the
 *   work stops at once; a send in flight may finish within a short grace,
 *   and the checkpoint is written once more (fenced if another leader has
 *   stamped it).
 *
 * Before every sink attempt the pump asks the term whether its lease is
 * still current (renewed within the renew deadline, on the monotonic clock),
 * and webhook requests carry the term's fencing token.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import {
  AnnotationLock,
  LeaseLock,
  type Lock,
  observeRenewals,
  RivalLockGuard,
  rivalLocks,
  runElector,
  StepDownError,
  type Term,
  TermExpiredError,
  unelectedTerm,
} from "./election/mod.ts";
import { Backoff, type Clock, systemClock } from "./time/mod.ts";
import { Checkpointer, CheckpointLag, type Token } from "./checkpoint/mod.ts";
import type { Config } from "./config/mod.ts";
import { type Liveness, type Metrics, runControlPlaneCheck, serviceCheckSinks } from "./ops/mod.ts";
import {
  NO_EVENT_FILTERS,
  planEventFilters,
  routePredicate,
  runPump,
  WatchFailingError,
} from "./pump/mod.ts";
import type { KubeClient } from "./kube/mod.ts";
import { Enricher, ObjectCache } from "./enrich/mod.ts";
import { type EventRecord, hostClusterSuffix, type Sink } from "./sinks/mod.ts";

/** Options for {@linkcode runCollector}. */
export interface CollectorOptions {
  client: KubeClient;
  config: Config;
  /** This replica's identity (pod name plus a unique suffix). */
  identity: string;
  sinks: readonly Sink[];
  clock?: Clock;
  /** Observes the collector's lifecycle and deliveries (the demo, tests). */
  observer?: CollectorObserver;
  /** Counts what the collector does (`/metrics`). */
  metrics?: Metrics;
  /** Told when this replica leads and when its watch shows life (`/healthz`). */
  liveness?: Liveness;
}

/** Hooks into what a collector does; every hook is optional. */
export interface CollectorObserver {
  /** A term's pump starts from this position (undefined: from "now"). */
  termStarted?(term: Term, from: Token | undefined): void;
  /** A term's pump stopped; `at` is the last checkpoint written. */
  termEnded?(term: Term, at: Token | undefined): void;
  /** Records every sink acknowledged. */
  delivered?(records: readonly EventRecord[]): void;
  /** A checkpoint was acknowledged by the sinks (written at the next flush). */
  acknowledged?(at: Token): void;
  /** An event the include/exclude settings left out (its position still moves the checkpoint). */
  filtered?(event: CoreV1Event): void;
}

const log = getLogger(["kevents", "collector"]);

/** The host of the control-plane service checks: `<node>-<cluster name>`, the Cluster Agent's. */
function serviceCheckHost(config: Config): string | undefined {
  if (config.nodeName === undefined) return undefined;
  return config.nodeName + hostClusterSuffix(config.clusterName);
}

/**
 * What a replica remembers from one term to the next, and how its term
 * reads the lock.
 */
export interface TermContext {
  /** Whether the lock names this replica now (read fresh); absent: never assumed. */
  stillLeading?: (signal: AbortSignal) => Promise<boolean>;
  /** The position the replica's previous term ended at (updated when a term ends). */
  position?: Token;
  /** Enrichment, with its cache kept from one term to the next; made by the first term. */
  enricher?: Enricher;
}

/** Per sink name, the records its route lets through (`kevents_routes`). */
function routesOf(config: Config): Map<string, (record: EventRecord) => boolean> {
  const routes = new Map<string, (record: EventRecord) => boolean>();
  for (const [sink, route] of Object.entries(config.routes)) {
    // Checked by parseConfig: the match is one the API server takes.
    const predicate = routePredicate(route);
    if (predicate !== undefined) routes.set(sink, (r) => predicate(r.event));
  }
  return routes;
}

/** The enricher of `o`'s configuration; undefined when enrichment is off. */
function newEnricher(o: CollectorOptions): Enricher | undefined {
  const { enrich } = o.config;
  if (!enrich.enabled) return undefined;
  const cache = new ObjectCache({
    client: o.client,
    clock: o.clock ?? systemClock,
    requestTimeoutMs: Math.min(2000, o.config.timings.requestTimeoutMs),
    onRequest: (resource, outcome) => o.metrics?.enrichLookup(resource, outcome),
  });
  return new Enricher({
    cache,
    requestBudget: enrich.requestBudget,
    podLabelsAsTags: enrich.podLabelsAsTags,
    namespaceLabelsAsTags: enrich.namespaceLabelsAsTags,
  });
}

/**
 * Runs until `signal` aborts: with leader election, as a candidate and, when
 * elected, as the leader; without it, as the only collector. Settles after
 * everything it started has stopped.
 */
export async function runCollector(o: CollectorOptions, signal: AbortSignal): Promise<void> {
  // Exported by every replica, so that an alert compares the leader's lag with them.
  const { eventTtlMs, limitMs } = o.config.checkpointLag;
  o.metrics?.checkpointLagLimit(eventTtlMs / 1000, limitMs / 1000);
  o.metrics?.configured({
    leaseDurationMs: o.config.timings.leaseDurationMs,
    watchStallLimitMs: o.config.health.watchStallLimitMs,
  });
  if (!o.config.collectEvents && !o.config.controlPlaneCheck) {
    log.info(
      "Event collection is off (collect_kubernetes_events, DD_COLLECT_KUBERNETES_EVENTS or KUBERNETES turn it on)",
    );
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    return;
  }
  if (!o.config.collectEvents) {
    log.info("Event collection is off; the leader runs the control-plane check only");
  }
  const context: TermContext = {};
  if (!o.config.leaderElection) {
    const { term, dispose } = unelectedTerm(o.identity, signal, o.config.shutdownBudgetMs, o.clock);
    try {
      await runTerm(o, term, context);
    } finally {
      dispose();
    }
    return;
  }
  // Every replica tells its metrics when it last saw a live leader (the no-leader alert).
  const lock = observeRenewals(newLock(o), (at) => o.metrics?.leaseRenewalSeen(at), o.clock);
  // A second lock object, only read: the elector's lock remembers what it
  // read last as the base of its compare-and-swap, which a read on the
  // checkpointer's behalf must not move.
  const probe = newLock(o);
  context.stillLeading = async (s) => (await probe.get(s))?.holderIdentity === o.identity;
  await runElector({
    lock,
    identity: o.identity,
    timings: o.config.timings,
    clock: o.clock,
    watchLock: o.config.followerWatch,
    shutdownBudgetMs: o.config.shutdownBudgetMs,
    guard: newRivalGuard(o),
    lead: (term) => runTerm(o, term, context),
  }, signal);
}

/** The lock object's place, and the lease of a record another client wrote that cannot be read. */
function lockTarget(o: CollectorOptions) {
  return {
    namespace: o.config.resourcesNamespace,
    name: o.config.leaseName,
    // A record another client wrote that cannot be read expires as ours would.
    unreadableLeaseSeconds: Math.ceil(o.config.timings.leaseDurationMs / 1000),
  };
}

function newLock(o: CollectorOptions): Lock {
  const target = lockTarget(o);
  const kind = o.config.leaderElectionResource;
  return kind === "lease"
    ? new LeaseLock(o.client, target)
    : new AnnotationLock(o.client, { ...target, kind });
}

/**
 * Keeps this replica from taking its lock while another election (the
 * Datadog Agent's, on a ConfigMap by default) holds a lock of the same name
 * and another kind: both would write the token ConfigMap and send the same
 * events.
 */
function newRivalGuard(o: CollectorOptions): RivalLockGuard {
  const kind = o.config.leaderElectionResource;
  return new RivalLockGuard({
    identity: o.identity,
    kind,
    rivals: rivalLocks(o.client, { ...lockTarget(o), kind }),
    clock: o.clock,
    metrics: o.metrics,
  });
}

/** A term of a leader that collects no events: the control-plane check alone, until the term drains or ends. */
async function runCheckOnlyTerm(o: CollectorOptions, term: Term): Promise<void> {
  o.metrics?.leading(true, term.transitions);
  try {
    await runControlPlaneCheck({
      client: o.client,
      sinks: serviceCheckSinks(o.sinks),
      intervalMs: o.config.controlPlaneCheckIntervalMs,
      requestTimeoutMs: o.config.timings.requestTimeoutMs,
      clock: o.clock ?? systemClock,
      metrics: o.metrics,
      hostName: serviceCheckHost(o.config),
    }, AbortSignal.any([term.signal, term.drain ?? term.signal]));
  } finally {
    o.metrics?.leading(false);
  }
}

/**
 * One leadership term: checkpoint, pump, final checkpoint; beside them, the
 * control-plane check when on. Rejects with {@linkcode StepDownError} when
 * the pump could not read events for longer than the configured limit.
 */
export async function runTerm(
  o: CollectorOptions,
  term: Term,
  context: TermContext = {},
): Promise<void> {
  if (!o.config.collectEvents) return await runCheckOnlyTerm(o, term);
  const clock = o.clock ?? systemClock;
  context.enricher ??= newEnricher(o);
  const enricher = context.enricher;
  const backoff = new Backoff({ clock });
  const work = new AbortController();
  const onTermEnd = () => work.abort(term.signal.reason);
  // A term that has already ended must not start its work.
  if (term.signal.aborted) onTermEnd();
  else term.signal.addEventListener("abort", onTermEnd, { once: true });
  // What starts new work (reading the checkpoint, the control-plane check)
  // stops at the drain too; only delivery and the checkpoint go on.
  const drain = term.drain ?? term.signal;
  const starting = AbortSignal.any([work.signal, drain]);
  // Beside the checkpoint and the pump, independent of them, for the whole term.
  const controlPlaneCheck = o.config.controlPlaneCheck
    ? runControlPlaneCheck({
      client: o.client,
      sinks: serviceCheckSinks(o.sinks),
      intervalMs: o.config.controlPlaneCheckIntervalMs,
      requestTimeoutMs: o.config.timings.requestTimeoutMs,
      clock,
      metrics: o.metrics,
      hostName: serviceCheckHost(o.config),
    }, starting)
    : Promise.resolve();
  o.metrics?.leading(true, term.transitions);
  o.liveness?.leading(true);
  try {
    // Checked by parseConfig already: this cannot fail for a parsed Config.
    const filters = planEventFilters(o.config.eventFilters ?? NO_EVENT_FILTERS);
    const lag = new CheckpointLag({
      limitMs: o.config.checkpointLag.limitMs,
      eventTtlMs: o.config.checkpointLag.eventTtlMs,
      clock,
    });
    o.metrics?.checkpointLagFrom(() => lag.ms() / 1000);
    const checkpointer = new Checkpointer({
      client: o.client,
      namespace: o.config.resourcesNamespace,
      name: o.config.tokenConfigMapName,
      // Unique per term even when a replica takes its own lease again (same
      // transition count): the stamp must change the ConfigMap to fence.
      term: `${term.identity}/${term.transitions}/${new Date(clock.now()).toISOString()}`,
      intervalMs: o.config.checkpoint.intervalMs,
      maxEvents: o.config.checkpoint.maxEvents,
      idleIntervalMs: o.config.checkpoint.idleIntervalMs,
      requestTimeoutMs: o.config.timings.requestTimeoutMs,
      clock,
      onFenced: () => work.abort(new Error("Checkpoint fenced by a newer leader")),
      stillLeading: context.stillLeading,
      fallback: context.position,
      metrics: o.metrics,
      onWritten: (t) => lag.written(t),
    });
    let token;
    for (;;) {
      try {
        token = await checkpointer.begin(starting);
        break;
      } catch (e) {
        if (starting.aborted) return;
        log.warn("Cannot read the checkpoint: {error}; retrying", { error: String(e) });
        try {
          await backoff.wait(starting);
        } catch {
          return;
        }
      }
    }
    o.observer?.termStarted?.(term, token);
    log.info("Pump started for term {term} at {rv}", {
      term: `${term.identity}/${term.transitions}`,
      rv: token?.resourceVersion ?? "now",
      at: new Date(clock.now()).toISOString(),
    });
    // If either fails, the other stops too; the final write still happens.
    const stopOnFailure = (e: unknown) => {
      work.abort(e);
      throw e;
    };
    // The checkpoint writer runs until the pump has settled (after a drain too).
    const writing = new AbortController();
    const stopWriting = () => writing.abort();
    work.signal.addEventListener("abort", stopWriting, { once: true });
    const results = await Promise.allSettled([
      runPump({
        client: o.client,
        sinks: o.sinks,
        token,
        acknowledge: (t, n) => {
          checkpointer.acknowledge(t, n);
          o.observer?.acknowledged?.(t);
        },
        queueCapacity: o.config.queueCapacity,
        backfill: o.config.backfill,
        startWindowMs: o.config.startWindowMs,
        batchWindowMs: o.config.batchWindowMs,
        routes: routesOf(o.config),
        ...(enricher === undefined ? {} : { enrich: (records, s) => enricher.enrich(records, s) }),
        // A send in flight when the term ends at once may finish within this
        // grace; it must end well inside the lease's margin over the renew
        // deadline, before any other replica may take over.
        stopGraceMs: Math.min(
          2000,
          (o.config.timings.leaseDurationMs - o.config.timings.renewDeadlineMs) / 4,
        ),
        drain,
        fence: {
          holder: term.identity,
          token: term.transitions,
          assertCurrent: term.assertCurrent ?? (() => {
            if (term.signal.aborted) throw new TermExpiredError("The term has ended");
          }),
        },
        watchFailureLimitMs: o.config.watchFailureLimitMs,
        clock,
        onDelivered: (records) => o.observer?.delivered?.(records),
        fieldSelector: filters.fieldSelector,
        filter: filters.filter,
        onFiltered: (event) => o.observer?.filtered?.(event),
        metrics: o.metrics,
        liveness: o.liveness,
        lag,
      }, work.signal).catch(stopOnFailure).finally(stopWriting),
      checkpointer.run(writing.signal).catch(stopOnFailure),
      lag.watch(writing.signal),
    ]);
    work.signal.removeEventListener("abort", stopWriting);
    // The pump has stopped: write what it delivered, then the elector may release the lease.
    await checkpointer.finish().catch((e) => {
      log.warn("Final checkpoint write failed: {error}", { error: String(e) });
    });
    context.position = checkpointer.token ?? context.position;
    o.observer?.termEnded?.(term, checkpointer.token);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    log.info("Pump stopped for term {term} at {rv}", {
      term: `${term.identity}/${term.transitions}`,
      rv: checkpointer.token?.resourceVersion ?? "none",
      at: new Date(clock.now()).toISOString(),
    });
    if (failed?.reason instanceof WatchFailingError) {
      o.metrics?.stepDown();
      o.liveness?.unfit(failed.reason.message);
      throw new StepDownError(`${failed.reason.message}; another replica may do better`, {
        cause: failed.reason,
      });
    }
    // A failure that was not the stop ends the term with its error (the elector logs it).
    if (failed !== undefined && !term.signal.aborted) throw failed.reason;
  } finally {
    term.signal.removeEventListener("abort", onTermEnd);
    // However the term ended, the check stops before the lease may be released.
    work.abort(new Error("Term over"));
    await controlPlaneCheck;
    o.metrics?.checkpointLagFrom(() => 0);
    o.metrics?.leading(false);
    o.liveness?.leading(false);
  }
}
