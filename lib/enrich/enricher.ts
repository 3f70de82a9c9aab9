/**
 * Enrichment: what kevents learns about the object an event is about, to
 * tag the event as the Datadog Agent's tagger would (`kube_deployment`,
 * `kube_replica_set`, `kube_job`, `kube_cronjob`, `kube_stateful_set`,
 * `kube_daemon_set`, the unified `env`, `service`, `version` labels, and
 * labels mapped by `kubernetes_pod_labels_as_tags` and
 * `kubernetes_namespace_labels_as_tags`), and to find a pod's node when the
 * event does not say it. Every sink gets it, as the record's `enrichment`.
 *
 * What it reads, through a bounded {@linkcode ObjectCache}:
 * - a Pod's event: the pod (owners, labels, node); a pod owned by a
 *   ReplicaSet names its Deployment in the ReplicaSet's name (`<deployment>-
 *   <pod-template-hash>`, the hash being the pod's `pod-template-hash`
 *   label, as the Agent parses it), so the ReplicaSet is not read; a pod
 *   owned by a Job: the Job, for its CronJob;
 * - a ReplicaSet's event: its Deployment from its name, when the name ends
 *   in a template hash (no request);
 * - a Job's event: the Job, for its CronJob;
 * - any namespaced event, with namespace labels mapped: the Namespace.
 *
 * It never holds delivery back for long and never loses an event: a batch's
 * lookups run 8 at a time, make at most `requestBudget` requests and take at
 * most `timeBudgetMs` in all (1 s); after a failed request (a timeout, a
 * 5xx) the cache makes none for 30 s. A record whose lookups do not fit,
 * fail, or are refused (RBAC) gets what could be learnt (perhaps nothing).
 * Refusals and failures are logged at WARN once per resource and reason,
 * and counted. The cache is keyed by name; an object whose uid differs from
 * the event's (a name reused by a new pod) is read again.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { ResourceRef } from "../kube/mod.ts";
import { type Enrichment, type EventRecord, involvedOf } from "../sinks/mod.ts";
import type { Lookup, Miss, ObjectCache, ObjectFacts } from "./object_cache.ts";

const log = getLogger(["kevents", "enrich"]);

export const PODS: ResourceRef = { group: "", version: "v1", resource: "pods", namespaced: true };
export const JOBS: ResourceRef = {
  group: "batch",
  version: "v1",
  resource: "jobs",
  namespaced: true,
};
export const NAMESPACES: ResourceRef = {
  group: "",
  version: "v1",
  resource: "namespaces",
  namespaced: false,
};

/** The Datadog unified service tagging labels and their tags. */
const UNIFIED_LABELS: readonly [string, string][] = [
  ["tags.datadoghq.com/env", "env"],
  ["tags.datadoghq.com/service", "service"],
  ["tags.datadoghq.com/version", "version"],
];

/** The tag naming an owner of each kind. */
const OWNER_TAGS: Readonly<Record<string, string>> = {
  ReplicaSet: "kube_replica_set",
  Deployment: "kube_deployment",
  Job: "kube_job",
  CronJob: "kube_cronjob",
  StatefulSet: "kube_stateful_set",
  DaemonSet: "kube_daemon_set",
  ReplicationController: "kube_replication_controller",
};

/** Options for {@linkcode Enricher}. */
export interface EnricherOptions {
  cache: ObjectCache;
  /** Pod label-to-tag name (`kubernetes_pod_labels_as_tags`). */
  podLabelsAsTags?: Readonly<Record<string, string>>;
  /** Namespace label-to-tag name (`kubernetes_namespace_labels_as_tags`). */
  namespaceLabelsAsTags?: Readonly<Record<string, string>>;
  /** Requests one batch may make (default 50). */
  requestBudget?: number;
  /** How long one batch's lookups may take in all, in ms (default 1000). */
  timeBudgetMs?: number;
  /** Lookups in flight at once (default 8). */
  concurrency?: number;
}

/**
 * The Deployment a ReplicaSet belongs to, from its name: `<deployment>-<hash>`
 * where the hash is the pod template's (known from a pod's label), or, as the
 * Agent parses it, a suffix of 1 to 10 lowercase letters and digits that is
 * not all letters. Undefined when the name does not look like that.
 */
export function deploymentOfReplicaSet(name: string, templateHash?: string): string | undefined {
  if (templateHash !== undefined && name.endsWith(`-${templateHash}`)) {
    const deployment = name.slice(0, -templateHash.length - 1);
    return deployment === "" ? undefined : deployment;
  }
  const m = /^(.+)-([a-z0-9]{1,10})$/.exec(name);
  if (m === null || /^[a-z]+$/.test(m[2]!)) return undefined;
  return m[1];
}

/** A batch's lookups: at most `budget` requests; the rest answer "budget". */
class Lookups {
  #left: number;
  readonly #cache: ObjectCache;
  /** The caller's signal: its abort is the caller's to see. */
  readonly #outer: AbortSignal;
  /** The caller's signal or the batch's time budget, whichever ends first. */
  readonly #signal: AbortSignal;
  readonly misses: { resource: string; miss: Miss; error?: unknown }[] = [];

  constructor(cache: ObjectCache, budget: number, outer: AbortSignal, deadline: AbortSignal) {
    this.#cache = cache;
    this.#left = budget;
    this.#outer = outer;
    this.#signal = AbortSignal.any([outer, deadline]);
  }

  /**
   * The object's facts; undefined when it is missing or could not be read
   * in time. `uid`, when known, must match the object's: a name reused by a
   * new object (a StatefulSet's pod recreated) is read again once.
   */
  async get(
    ref: ResourceRef,
    namespace: string,
    name: string,
    uid?: string,
  ): Promise<ObjectFacts | undefined> {
    let lookup = await this.#lookup(ref, namespace, name, false);
    if (uid && "facts" in lookup && lookup.facts.uid && lookup.facts.uid !== uid) {
      lookup = await this.#lookup(ref, namespace, name, true);
      if ("facts" in lookup && lookup.facts.uid && lookup.facts.uid !== uid) return undefined;
    }
    if ("facts" in lookup) return lookup.facts;
    if (lookup.miss !== "absent") {
      this.misses.push({ resource: ref.resource, miss: lookup.miss, error: lookup.error });
    }
    return undefined;
  }

  async #lookup(
    ref: ResourceRef,
    namespace: string,
    name: string,
    fresh: boolean,
  ): Promise<Lookup> {
    const cached = fresh ? undefined : this.#cache.peek(ref, namespace, name);
    if (cached !== undefined) return cached;
    if (this.#left <= 0 || this.#signal.aborted) {
      this.#cache.budgetSpent(ref);
      return { miss: "budget" };
    }
    this.#left--;
    try {
      return await this.#cache.get(ref, namespace, name, this.#signal, fresh);
    } catch (e) {
      if (this.#outer.aborted) throw e;
      // The batch's time is up: this record goes on with what is known, and
      // an API server this slow is left alone for a while.
      this.#cache.pause();
      this.#cache.budgetSpent(ref);
      return { miss: "budget" };
    }
  }
}

/** Runs `tasks` with at most `limit` at a time; settles when all have. */
async function inParallel(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

/** Adds enrichment to records; see the module documentation. */
export class Enricher {
  readonly #o: EnricherOptions;
  /** Resource/reason pairs already warned of. */
  readonly #warned = new Set<string>();

  constructor(options: EnricherOptions) {
    this.#o = options;
  }

  /**
   * Sets `enrichment` on every record of `records` that has none yet.
   * Resolves when done, within the batch's request budget; rejects only
   * with the signal's reason.
   */
  async enrich(records: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    const todo = records.filter((r) => r.enrichment === undefined);
    if (todo.length === 0) return;
    signal.throwIfAborted();
    // A time budget for the whole batch: delivery never waits longer for tags.
    const deadline = AbortSignal.timeout(this.#o.timeBudgetMs ?? 1000);
    const lookups = new Lookups(this.#o.cache, this.#o.requestBudget ?? 50, signal, deadline);
    // In parallel; records of one object share the cache's single request.
    await inParallel(
      todo.map((record) => async () => {
        record.enrichment = await this.#enrichOne(record, lookups);
      }),
      this.#o.concurrency ?? 8,
    );
    signal.throwIfAborted();
    this.#report(lookups.misses);
  }

  async #enrichOne(record: EventRecord, lookups: Lookups): Promise<Enrichment> {
    const { kind, namespace, name, uid } = involvedOf(record);
    const out: Enrichment = { tags: [] };
    if (!kind || !name) return out;
    const owners: { kind: string; name: string }[] = [];
    const addOwner = (owner: { kind: string; name: string }) => {
      owners.push(owner);
      const tag = OWNER_TAGS[owner.kind];
      if (tag !== undefined) out.tags.push(`${tag}:${owner.name}`);
    };
    if (kind === "Pod" && namespace) {
      const pod = await lookups.get(PODS, namespace, name, uid);
      if (pod !== undefined) {
        if (pod.nodeName !== undefined) out.node = pod.nodeName;
        for (const [label, tag] of UNIFIED_LABELS) {
          const value = pod.labels[label];
          if (value) out.tags.push(`${tag}:${value}`);
        }
        for (const [label, tag] of Object.entries(this.#o.podLabelsAsTags ?? {})) {
          const value = pod.labels[label];
          if (value !== undefined) out.tags.push(`${tag}:${value}`);
        }
        if (pod.owner !== undefined) {
          addOwner(pod.owner);
          await this.#above(
            pod.owner,
            namespace,
            pod.labels["pod-template-hash"],
            lookups,
            addOwner,
          );
        }
      }
    } else if (namespace && (kind === "ReplicaSet" || kind === "Job")) {
      await this.#above({ kind, name }, namespace, undefined, lookups, addOwner);
    }
    const ns = kind === "Namespace" ? name : namespace;
    const nsLabels = this.#o.namespaceLabelsAsTags ?? {};
    if (ns && Object.keys(nsLabels).length > 0) {
      const facts = await lookups.get(NAMESPACES, "", ns);
      for (const [label, tag] of Object.entries(nsLabels)) {
        const value = facts?.labels[label];
        if (value !== undefined) out.tags.push(`${tag}:${value}`);
      }
    }
    if (owners.length > 0) out.owners = owners;
    out.tags = [...new Set(out.tags)];
    return out;
  }

  /** The owners above `owned`: a ReplicaSet's Deployment, a Job's CronJob. */
  async #above(
    owned: { kind: string; name: string },
    namespace: string,
    templateHash: string | undefined,
    lookups: Lookups,
    addOwner: (owner: { kind: string; name: string }) => void,
  ): Promise<void> {
    if (owned.kind === "ReplicaSet") {
      const deployment = deploymentOfReplicaSet(owned.name, templateHash);
      if (deployment !== undefined) addOwner({ kind: "Deployment", name: deployment });
    } else if (owned.kind === "Job") {
      const job = await lookups.get(JOBS, namespace, owned.name);
      if (job?.owner?.kind === "CronJob") addOwner(job.owner);
    }
  }

  /** Warns once per resource and reason; later ones at debug. */
  #report(misses: readonly { resource: string; miss: Miss; error?: unknown }[]): void {
    for (const { resource, miss, error } of misses) {
      const key = `${resource}/${miss}`;
      const fields = { resource, error: error === undefined ? "" : String(error) };
      if (this.#warned.has(key)) continue;
      this.#warned.add(key);
      if (miss === "forbidden") {
        log.warn(
          "Cannot read {resource} to enrich events (RBAC: kevents needs get on {resource}): " +
            "events go on with fewer tags; {error}",
          fields,
        );
      } else if (miss === "budget") {
        log.warn(
          "Enrichment used its request budget for a batch: some events of it go on with fewer " +
            "tags (warned once)",
          fields,
        );
      } else {
        log.warn(
          "Cannot read {resource} to enrich events: {error}; events go on with fewer tags",
          fields,
        );
      }
    }
  }
}
