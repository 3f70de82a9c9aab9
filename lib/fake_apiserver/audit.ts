/**
 * Auditing deliveries against what the API server generated: every event
 * change (ADDED or MODIFIED, keyed `uid/resourceVersion`) in a range of the
 * fake API server's history must be delivered; anything delivered more than
 * once is a duplicate. Used by the demo and the end-to-end tests, so their
 * figures are computed, not asserted.
 *
 * @module
 */

import type { Store } from "./store.ts";

/** The outcome of an audit. */
export interface DeliveryAudit {
  /** Event changes generated in the audited range. */
  generated: number;
  /** Deliveries seen (with repeats). */
  deliveries: number;
  /** Distinct generated keys delivered. */
  delivered: number;
  /** Deliveries of a key already delivered. */
  duplicates: number;
  /** Generated keys never delivered. */
  gaps: number;
  /** Up to 20 keys never delivered, for diagnosis. */
  missing: string[];
}

/**
 * Keys of every event ADDED or MODIFIED with fromRv < resourceVersion <=
 * toRv, read from the store's history (which must still hold that range).
 */
export function generatedEventKeys(store: Store, fromRv: number, toRv: number): Set<string> {
  if (fromRv < store.compactedRv) {
    throw new Error(`Cannot audit from ${fromRv}: history starts after ${store.compactedRv}`);
  }
  const keys = new Set<string>();
  for (let rv = fromRv + 1; rv <= toRv; rv++) {
    const change = store.changeAt(rv);
    if (change === undefined || change.record.storage !== "/events") continue;
    if (change.type === "DELETED") continue;
    keys.add(`${change.record.object.metadata.uid}/${rv}`);
  }
  return keys;
}

/** Compares deliveries (in any order, repeats included) with the generated keys. */
export function auditDeliveries(
  generated: ReadonlySet<string>,
  deliveredKeys: Iterable<string>,
): DeliveryAudit {
  const seen = new Set<string>();
  let deliveries = 0;
  let duplicates = 0;
  for (const key of deliveredKeys) {
    deliveries++;
    if (seen.has(key)) duplicates++;
    else seen.add(key);
  }
  const missing: string[] = [];
  let gaps = 0;
  let delivered = 0;
  for (const key of generated) {
    if (seen.has(key)) delivered++;
    else {
      gaps++;
      if (missing.length < 20) missing.push(key);
    }
  }
  return { generated: generated.size, deliveries, delivered, duplicates, gaps, missing };
}
