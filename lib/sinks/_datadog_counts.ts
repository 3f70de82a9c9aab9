/**
 * How many times each Kubernetes event happened since the Datadog sink
 * last saw it: `count` grows on every repeat of an event, and the Agent adds
 * the whole count each time it sees one; kevents reports the increase (see
 * datadog.ts). The last count per event uid is kept in a bounded map.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import type { Enrichment, EventRecord } from "./sink.ts";

/** Events whose last count is remembered by default. */
export const DEFAULT_COUNT_CACHE_SIZE = 20_000;

/** The last count seen per event uid, forgetting the least recently seen beyond a capacity. */
export class OccurrenceCounts {
  readonly #capacity: number;
  readonly #counts = new Map<string, number>();

  constructor(capacity: number = DEFAULT_COUNT_CACHE_SIZE) {
    if (!(Number.isInteger(capacity) && capacity > 0)) {
      throw new RangeError(`Cannot create a count map: capacity ${capacity} must be positive`);
    }
    this.#capacity = capacity;
  }

  /** Events remembered. */
  get size(): number {
    return this.#counts.size;
  }

  /** The last count seen for `uid`, if remembered. */
  get(uid: string): number | undefined {
    return this.#counts.get(uid);
  }

  /** Remembers `count` for `uid` as the most recently seen. */
  set(uid: string, count: number): void {
    this.#counts.delete(uid);
    this.#counts.set(uid, count);
    while (this.#counts.size > this.#capacity) {
      this.#counts.delete(this.#counts.keys().next().value!);
    }
  }
}

/** A Kubernetes event and the occurrences it adds. */
export interface Occurrence {
  event: CoreV1Event;
  /** Occurrences since the event was last seen (its whole count at first sight). */
  increase: number;
  /** The key of the record it comes from, if any. */
  key?: string;
  /** The record's enrichment (owner and label tags, the pod's node), if any. */
  enrichment?: Enrichment;
}

/** How many times an event happened: `count`, else `series.count`, at least 1. */
export function occurrencesOf(e: CoreV1Event): number {
  const count = e.count ?? 0;
  if (count > 0) return count;
  const series = e.series?.count ?? 0;
  return series > 0 ? series : 1;
}

/**
 * The increase each record brings against `counts`, and the counts to
 * remember once the batch is accepted (`counts` itself is not changed).
 */
export function countIncreases(
  batch: readonly EventRecord[],
  counts: OccurrenceCounts,
): { occurrences: Occurrence[]; updates: Map<string, number> } {
  const updates = new Map<string, number>();
  const occurrences = batch.map((r): Occurrence => {
    const n = occurrencesOf(r.event);
    const uid = r.event.metadata?.uid;
    const enrichment = r.enrichment === undefined ? {} : { enrichment: r.enrichment };
    if (uid === undefined || uid === "") {
      return { event: r.event, increase: n, key: r.key, ...enrichment };
    }
    const previous = updates.get(uid) ?? counts.get(uid);
    // A count below the one seen is an older version (a replay): nothing new.
    updates.set(uid, Math.max(previous ?? 0, n));
    const increase = previous === undefined ? n : Math.max(0, n - previous);
    return { event: r.event, increase, key: r.key, ...enrichment };
  });
  return { occurrences, updates };
}
