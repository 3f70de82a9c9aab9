/**
 * The collector: the lease loop, the ConfigMap checkpointer and the event
 * pump under one lifecycle. The elector hands each term an AbortSignal; the
 * term reads the checkpoint (stamping its term into it), runs the pump and
 * the checkpoint writer under that signal, and when the signal aborts waits
 * for both, writes the checkpoint once more, and only then lets the elector
 * release the lease.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import { AnnotationLock } from "./annotation_lock.ts";
import { Backoff } from "./backoff.ts";
import { Checkpointer, type Token } from "./checkpointer.ts";
import { type Clock, systemClock } from "./clock.ts";
import type { Config } from "./config.ts";
import { runControlPlaneCheck, serviceCheckSinks } from "./control_plane_check.ts";
import { runElector, type Term } from "./elector.ts";
import { NO_EVENT_FILTERS, planEventFilters } from "./filters.ts";
import type { KubeClient } from "./kube_client.ts";
import { LeaseLock } from "./lease_lock.ts";
import type { Liveness } from "./liveness.ts";
import type { Metrics } from "./metrics.ts";
import { runPump } from "./pump.ts";
import type { EventRecord, Sink } from "./sinks/sink.ts";

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

/**
 * Runs until `signal` aborts: with leader election, as a candidate and, when
 * elected, as the leader; without it, as the only collector. Settles after
 * everything it started has stopped.
 */
export async function runCollector(o: CollectorOptions, signal: AbortSignal): Promise<void> {
  if (!o.config.collectEvents) {
    log.info(
      "Event collection is off (collect_kubernetes_events, DD_COLLECT_KUBERNETES_EVENTS or KUBERNETES turn it on)",
    );
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    return;
  }
  if (!o.config.leaderElection) {
    await runTerm(o, { identity: o.identity, transitions: 0, signal });
    return;
  }
  const target = { namespace: o.config.resourcesNamespace, name: o.config.leaseName };
  const kind = o.config.leaderElectionResource;
  const lock = kind === "lease"
    ? new LeaseLock(o.client, target)
    : new AnnotationLock(o.client, { ...target, kind });
  await runElector({
    lock,
    identity: o.identity,
    timings: o.config.timings,
    clock: o.clock,
    watchLock: o.config.followerWatch,
    lead: (term) => runTerm(o, term),
  }, signal);
}

/** One leadership term: checkpoint, pump, final checkpoint; beside them, the control-plane check when on. */
export async function runTerm(o: CollectorOptions, term: Term): Promise<void> {
  const clock = o.clock ?? systemClock;
  const backoff = new Backoff({ clock });
  const work = new AbortController();
  const onTermEnd = () => work.abort(term.signal.reason);
  // A term that has already ended must not start its work.
  if (term.signal.aborted) onTermEnd();
  else term.signal.addEventListener("abort", onTermEnd, { once: true });
  // Beside the checkpoint and the pump, independent of them, for the whole term.
  const controlPlaneCheck = o.config.controlPlaneCheck
    ? runControlPlaneCheck({
      client: o.client,
      sinks: serviceCheckSinks(o.sinks),
      intervalMs: o.config.controlPlaneCheckIntervalMs,
      requestTimeoutMs: o.config.timings.requestTimeoutMs,
      clock,
      metrics: o.metrics,
    }, work.signal)
    : Promise.resolve();
  o.metrics?.leading(true, term.transitions);
  o.liveness?.leading(true);
  try {
    // Checked by parseConfig already: this cannot fail for a parsed Config.
    const filters = planEventFilters(o.config.eventFilters ?? NO_EVENT_FILTERS);
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
      metrics: o.metrics,
    });
    let token;
    for (;;) {
      try {
        token = await checkpointer.begin(work.signal);
        break;
      } catch (e) {
        if (work.signal.aborted) return;
        log.warn("Cannot read the checkpoint: {error}; retrying", { error: String(e) });
        try {
          await backoff.wait(work.signal);
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
        // A send in flight when the term ends may finish within this grace;
        // it must end well inside the lease's margin over the renew deadline,
        // before any other replica may take over.
        stopGraceMs: Math.min(
          2000,
          (o.config.timings.leaseDurationMs - o.config.timings.renewDeadlineMs) / 4,
        ),
        clock,
        onDelivered: (records) => o.observer?.delivered?.(records),
        fieldSelector: filters.fieldSelector,
        filter: filters.filter,
        onFiltered: (event) => o.observer?.filtered?.(event),
        metrics: o.metrics,
        liveness: o.liveness,
      }, work.signal).catch(stopOnFailure),
      checkpointer.run(work.signal).catch(stopOnFailure),
    ]);
    // The pump has stopped: write what it delivered, then the elector may release the lease.
    await checkpointer.flush().catch((e) => {
      log.warn("Final checkpoint write failed: {error}", { error: String(e) });
    });
    o.observer?.termEnded?.(term, checkpointer.token);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    log.info("Pump stopped for term {term} at {rv}", {
      term: `${term.identity}/${term.transitions}`,
      rv: checkpointer.token?.resourceVersion ?? "none",
      at: new Date(clock.now()).toISOString(),
    });
    // A failure that was not the stop ends the term with its error (the elector logs it).
    if (failed !== undefined && !term.signal.aborted) throw failed.reason;
  } finally {
    term.signal.removeEventListener("abort", onTermEnd);
    // However the term ended, the check stops before the lease may be released.
    work.abort(new Error("Term over"));
    await controlPlaneCheck;
    o.metrics?.leading(false);
    o.liveness?.leading(false);
  }
}
