/**
 * Where the pump resumes after its history is gone: which listed events are
 * newer than the token, whether the server's history still reaches the
 * token, whether the server is behind it (a restored etcd), and whether a
 * refusal names the resourceVersion. The only places that compare
 * resourceVersions, each saying why it is sound.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import type { Token } from "../checkpoint/mod.ts";
import { EVENTS, GoneError, type KubeApiError } from "../kube/mod.ts";
import { eventTime } from "./event_record.ts";
import type { PumpOptions } from "./pump.ts";
import type { Clock } from "../time/mod.ts";

/**
 * Whether an event listed after a 410 is newer than the token.
 *
 * resourceVersions are opaque, yet kube-apiserver on etcd3 hands out etcd's
 * modification revision, one counter for the whole cluster that grows with
 * every write: between two values from the same etcd, the larger is the
 * later write. That stops holding across an etcd restore or a storage
 * migration, and for API servers not backed by etcd, so the comparison is
 * used only when both values are plain integers; otherwise the event's time
 * is compared with the token's, inclusively (events of the same second may
 * be delivered again, never lost). `byTime` compares times even for
 * integers: for a token that does not come from this etcd's history.
 */
export function isNewer(event: CoreV1Event, token: Token, byTime = false): boolean {
  const rv = event.metadata?.resourceVersion ?? "";
  if (!byTime && /^\d+$/.test(rv) && /^\d+$/.test(token.resourceVersion)) {
    return BigInt(rv) > BigInt(token.resourceVersion);
  }
  const at = Date.parse(eventTime(event) ?? "");
  const since = Date.parse(token.timestamp ?? "");
  // A missing or unreadable time cannot rule an event out.
  if (Number.isNaN(at) || Number.isNaN(since)) return true;
  return at >= since;
}

/** Whether the API server refused a request for its resourceVersion (400 or 422 naming it). */
export function refusesResourceVersion(e: KubeApiError): boolean {
  const causes = e.status?.details?.causes ?? [];
  return /resourceVersion/.test(e.status?.message ?? "") ||
    causes.some((c) => /resourceVersion/.test(c.field ?? ""));
}

/**
 * The API server's current resourceVersion when `token` is ahead of it,
 * else undefined. Sound only because both are etcd revisions (plain
 * integers, one counter per etcd that only grows): a token larger than the
 * revision etcd has reached was never handed out by this etcd (it was
 * restored from a backup, or the ConfigMap came from another cluster), and
 * a watch from it would wait, silently, for a revision that may take
 * months to come. Opaque versions are not compared.
 */
export async function serverBehind(
  o: Pick<PumpOptions, "client" | "fieldSelector">,
  token: Token,
  signal: AbortSignal,
): Promise<string | undefined> {
  if (!/^\d+$/.test(token.resourceVersion)) return undefined;
  // Without a resourceVersion a list is a quorum read: the current revision.
  const page = await o.client.list<CoreV1Event>(EVENTS, {
    limit: 1,
    fieldSelector: o.fieldSelector,
    signal,
  });
  const current = page.resourceVersion;
  if (current === undefined || !/^\d+$/.test(current)) return undefined;
  return BigInt(token.resourceVersion) > BigInt(current) ? current : undefined;
}

/** Whether the server's history no longer reaches `token` (an exact list there answers 410). */
export async function historyGone(
  o: Pick<PumpOptions, "client" | "fieldSelector">,
  token: Token,
  signal: AbortSignal,
): Promise<boolean> {
  try {
    // With a limit, a resourceVersion is matched exactly (the legacy rule
    // kube-apiserver keeps): read from storage, it fails once compacted.
    await o.client.list<CoreV1Event>(EVENTS, {
      resourceVersion: token.resourceVersion,
      limit: 1,
      fieldSelector: o.fieldSelector,
      signal,
    });
    return false;
  } catch (e) {
    if (e instanceof GoneError) return true;
    throw e;
  }
}

/**
 * Which events of the first list (no token) are delivered: all with
 * backfill; with a start window, those whose last time is within it (an
 * event without a readable time too: it cannot be ruled out); else none
 * (undefined: the list reads one item, for its resourceVersion).
 */
export function firstListChoice(
  backfill: boolean,
  windowMs: number,
  clock: Clock,
): ((e: CoreV1Event) => boolean) | undefined {
  if (backfill) return () => true;
  if (windowMs <= 0) return undefined;
  const since = clock.now() - windowMs;
  return (e) => {
    const at = Date.parse(eventTime(e) ?? "");
    return Number.isNaN(at) || at >= since;
  };
}
