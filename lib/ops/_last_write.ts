/**
 * When an event was last written, as near as its fields tell: the time
 * `kevents status` measures a waiting event's age from, against the event
 * TTL.
 *
 * The API server's event TTL counts from the Event object's last write:
 * kube-apiserver stores every create and update of an event with a fresh
 * etcd lease of `--event-ttl`, so a repeated event lives on as long as it
 * repeats. No field holds that write's time, but each of these is at or
 * before it:
 *
 * - `metadata.managedFields[].time`: when a field manager last changed its
 *   fields (a repeat's count and time are such changes), on the API
 *   server's clock;
 * - `series.lastObservedTime` (events.k8s.io series), `lastTimestamp`
 *   (core/v1 repeats) and `eventTime`: the reporter's latest observation,
 *   written right after it. `eventTime` alone is a series' *first*
 *   observation, hours old for a series that keeps repeating, which is why
 *   the order of {@linkcode eventTime} (the time an event is delivered
 *   with) does not fit here;
 * - `metadata.creationTimestamp`: the first write, on the API server's
 *   clock.
 *
 * The latest of them is the closest to the last write, so an age measured
 * from it errs high (by the reporter's delay), not low; only a reporter
 * whose clock runs ahead of the API server's can make it read low.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";

/** The API sends strings although client-node types some of these as Date. */
function ms(t: unknown): number | undefined {
  if (t === undefined || t === null || t === "") return undefined;
  const n = t instanceof Date ? t.getTime() : Date.parse(String(t));
  return Number.isNaN(n) ? undefined : n;
}

/** The latest of the event's times (see the module documentation), as RFC 3339; undefined when it has none. */
export function lastWritten(e: CoreV1Event): string | undefined {
  const times = [
    e.series?.lastObservedTime,
    e.lastTimestamp,
    e.eventTime,
    e.metadata?.creationTimestamp,
    ...(e.metadata?.managedFields ?? []).map((f) => f.time),
  ].map(ms).filter((t): t is number => t !== undefined);
  return times.length === 0 ? undefined : new Date(Math.max(...times)).toISOString();
}
