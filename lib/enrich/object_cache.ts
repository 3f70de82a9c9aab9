/**
 * A small, bounded cache of the few fields enrichment needs from the
 * objects events are about (a pod's owners, labels and node, a job's owner,
 * a namespace's labels), filled by get-on-miss.
 *
 * Bounded three ways: at most `capacity` entries (least recently used
 * forgotten first), each kept for `ttlMs` (an object's owners and labels
 * rarely change, but a pod name may be reused by a new pod), and a missing
 * object (404) is remembered as missing for the same time, so a burst of
 * events about a deleted pod costs one request. A resource kind the API
 * server refuses (403) is not asked again for `ttlMs` either: RBAC without
 * the grant degrades enrichment, it must not cost a refused request per
 * event. Concurrent misses of one key share one request.
 *
 * @module
 */

import type { Clock } from "../time/mod.ts";
import { ForbiddenError, type KubeClient, NotFoundError, type ResourceRef } from "../kube/mod.ts";

/** An object reference as ownerReferences give it. */
export interface OwnerRef {
  kind: string;
  name: string;
}

/** What enrichment keeps of an object. */
export interface ObjectFacts {
  /** The controller owner (ownerReferences with `controller: true`), if any. */
  owner?: OwnerRef;
  labels: Readonly<Record<string, string>>;
  /** A pod's node (`spec.nodeName`). */
  nodeName?: string;
  /** The object's uid. */
  uid?: string;
}

/** Why a lookup gave nothing. */
export type Miss = "absent" | "forbidden" | "failed" | "budget";

/** The answer of a lookup: the facts, or why there are none. */
export type Lookup = { facts: ObjectFacts } | { miss: Miss; error?: unknown };

/** Options for {@linkcode ObjectCache}. */
export interface ObjectCacheOptions {
  client: KubeClient;
  clock: Clock;
  /** Entries kept (default 5000). */
  capacity?: number;
  /** How long an entry, a miss or a refused kind is kept, in ms (default 300000). */
  ttlMs?: number;
  /** Bound of one request, in ms (default 2000). */
  requestTimeoutMs?: number;
  /** After a failed request (timeout, 5xx, network), how long no request is made, in ms (default 30000). */
  failurePauseMs?: number;
  /** Told of every request, with its outcome, for metrics. */
  onRequest?: (resource: string, outcome: "hit" | "fetched" | Miss) => void;
}

interface Entry {
  lookup: Lookup;
  at: number;
}

/** Reads `ownerReferences`, labels and `spec.nodeName` from an object. */
export function factsOf(object: unknown): ObjectFacts {
  const o = object as {
    metadata?: {
      uid?: string;
      labels?: Record<string, string>;
      ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
    };
    spec?: { nodeName?: string };
  };
  const controller = o.metadata?.ownerReferences?.find((r) => r.controller === true);
  const facts: ObjectFacts = { labels: { ...o.metadata?.labels } };
  if (controller?.kind && controller.name) {
    facts.owner = { kind: controller.kind, name: controller.name };
  }
  if (o.spec?.nodeName) facts.nodeName = o.spec.nodeName;
  if (o.metadata?.uid) facts.uid = o.metadata.uid;
  return facts;
}

/** The bounded cache; see the module documentation. */
export class ObjectCache {
  readonly #o: ObjectCacheOptions;
  readonly #capacity: number;
  readonly #ttlMs: number;
  /** Insertion order is recency: a hit moves its key to the end. */
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<Lookup>>();
  /** Resources refused with 403, and when. */
  readonly #forbidden = new Map<string, number>();
  /** Until when no request is made after a failure (our clock). */
  #pausedUntil = 0;

  constructor(options: ObjectCacheOptions) {
    this.#o = options;
    this.#capacity = options.capacity ?? 5000;
    this.#ttlMs = options.ttlMs ?? 300_000;
  }

  /** The API server is too slow for enrichment: no request for the failure pause. */
  pause(): void {
    this.#pausedUntil = this.#o.clock.now() + (this.#o.failurePauseMs ?? 30_000);
  }

  /** Counts a lookup left out because its batch's request budget was spent. */
  budgetSpent(ref: ResourceRef): void {
    this.#o.onRequest?.(ref.resource, "budget");
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** The cached answer for the object, if fresh; undefined when it would take a request. */
  peek(ref: ResourceRef, namespace: string, name: string): Lookup | undefined {
    const key = `${ref.resource}/${namespace}/${name}`;
    const entry = this.#entries.get(key);
    const now = this.#o.clock.now();
    if (entry !== undefined && now - entry.at < this.#ttlMs) {
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      this.#o.onRequest?.(ref.resource, "hit");
      return entry.lookup;
    }
    if (entry !== undefined) this.#entries.delete(key);
    const refused = this.#forbidden.get(ref.resource);
    if (refused !== undefined && now - refused < this.#ttlMs) return { miss: "forbidden" };
    if (now < this.#pausedUntil) return { miss: "failed" };
    return undefined;
  }

  /**
   * The object's facts: from the cache, else from one GET (shared by
   * concurrent callers). Never rejects but with the signal's reason.
   */
  get(
    ref: ResourceRef,
    namespace: string,
    name: string,
    signal: AbortSignal,
    fresh = false,
  ): Promise<Lookup> {
    const cached = fresh ? undefined : this.peek(ref, namespace, name);
    if (cached !== undefined) return Promise.resolve(cached);
    const key = `${ref.resource}/${namespace}/${name}`;
    let pending = this.#inFlight.get(key);
    if (pending === undefined) {
      pending = this.#fetch(ref, namespace, name, key, signal).finally(() => {
        this.#inFlight.delete(key);
      });
      this.#inFlight.set(key, pending);
    }
    return pending;
  }

  async #fetch(
    ref: ResourceRef,
    namespace: string,
    name: string,
    key: string,
    signal: AbortSignal,
  ): Promise<Lookup> {
    let lookup: Lookup;
    try {
      const object = await this.#o.client.get<unknown>(ref, namespace, name, {
        signal,
        timeoutMs: this.#o.requestTimeoutMs ?? 2000,
      });
      lookup = { facts: factsOf(object) };
      this.#o.onRequest?.(ref.resource, "fetched");
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      if (e instanceof NotFoundError) lookup = { miss: "absent" };
      else if (e instanceof ForbiddenError) {
        this.#forbidden.set(ref.resource, this.#o.clock.now());
        this.#o.onRequest?.(ref.resource, "forbidden");
        return { miss: "forbidden", error: e };
      } else {
        // Not remembered, but no request for a while: a slow or failing API
        // server must not cost every batch its whole budget.
        this.pause();
        this.#o.onRequest?.(ref.resource, "failed");
        return { miss: "failed", error: e };
      }
      this.#o.onRequest?.(ref.resource, "absent");
    }
    this.#entries.set(key, { lookup, at: this.#o.clock.now() });
    while (this.#entries.size > this.#capacity) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    return lookup;
  }
}
