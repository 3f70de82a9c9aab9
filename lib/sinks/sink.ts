/**
 * Where delivered events go. A sink acknowledges a batch by resolving
 * `send`; the pump moves the checkpoint only past acknowledged batches.
 *
 * A receiver may refuse a record for good (an HTTP sink's 400, 413 or 422:
 * the content itself is refused, so sending it again cannot help). Such a
 * record is set aside: `send` still resolves, to a {@linkcode SendResult}
 * listing each set-aside record as a {@linkcode Rejection} (its key, the
 * status and a short redacted reason), and the pump logs and counts them
 * and moves on. Every other record of the batch was delivered. Resolving to
 * nothing (`undefined`) means the whole batch was delivered (or, with a drop
 * policy, given up: see {@linkcode Sink.dropped}).
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";

/** One delivered event. */
export interface EventRecord {
  /**
   * Idempotency key: the event's uid and resourceVersion. The same key twice
   * is the same delivery (a replay after a hard crash); a repeated event
   * (count bumped) has a new resourceVersion, hence a new key.
   */
  key: string;
  /** ADDED or MODIFIED. */
  type: "ADDED" | "MODIFIED";
  /** The event (for watched events, decoded from {@linkcode json} on first access). */
  readonly event: CoreV1Event;
  /**
   * The event as JSON text, when the pump has it as the API server sent it:
   * a sink that writes the event as JSON writes this rather than
   * serialising `event` (the same JSON value; the bytes may differ, in
   * escapes for example), and never makes the pump decode it.
   */
  readonly json?: string;
  /**
   * The involved object's kind, namespace and name, when the pump read them
   * without decoding the event (else they are in `event.involvedObject`).
   */
  readonly involved?: InvolvedObject;
  /** What kevents learnt about the involved object (lib/enrich), when it looked. */
  enrichment?: Enrichment;
}

/** An involved object's kind, namespace and name. */
export interface InvolvedObject {
  kind?: string;
  namespace?: string;
  name?: string;
  uid?: string;
}

/**
 * What enrichment adds to a record: the involved pod's node, the owners
 * above the involved object (nearest first: a pod's ReplicaSet then its
 * Deployment; a Job then its CronJob), and `key:value` tags from them and
 * from labels (`kube_deployment`, `kube_replica_set`, `kube_job`,
 * `kube_cronjob`, `kube_stateful_set`, `kube_daemon_set`, `env`, `service`,
 * `version`, labels mapped by `kubernetes_pod_labels_as_tags` and
 * `kubernetes_namespace_labels_as_tags`). Sinks write it beside the event
 * (`"enrichment"`); the Datadog sink turns it into tags and a host.
 */
export interface Enrichment {
  node?: string;
  owners?: { kind: string; name: string }[];
  tags: string[];
}

/** The involved object of a record, without decoding the event when the pump read it. */
export function involvedOf(record: EventRecord): InvolvedObject {
  return record.involved ?? record.event.involvedObject ?? {};
}

/** `,"enrichment":{...}` for a record line, or "" when the record has none. */
export function enrichmentJson(record: EventRecord): string {
  return record.enrichment === undefined
    ? ""
    : `,"enrichment":${JSON.stringify(record.enrichment)}`;
}

/** The time an event last happened, as the best field available says. */
export function eventTime(e: CoreV1Event): string | undefined {
  const t = e.lastTimestamp ?? e.eventTime ?? e.series?.lastObservedTime ??
    e.metadata?.creationTimestamp;
  // The API sends strings although client-node types some of these as Date.
  return t === undefined || t === null
    ? undefined
    : String(t instanceof Date ? t.toISOString() : t);
}

/** The event of a record as JSON text: {@linkcode EventRecord.json}, else `event` serialised. */
export function eventJson(record: EventRecord): string {
  return record.json ?? JSON.stringify(record.event);
}

/**
 * Who sends, for a receiver that wants to refuse a deposed leader: the
 * leader's identity and a token that grows with every leadership term (the
 * lock's leaderTransitions), and a check that the term is still current.
 */
export interface Fence {
  /** The leader's identity (the lock holder). */
  holder: string;
  /** Grows with every change of leader; a request with a smaller token than one seen before is stale. */
  token: number;
  /**
   * Throws (a TermExpiredError) unless the term was renewed within its
   * renew deadline; a sink calls it right before every attempt, retries
   * included, so nothing leaves a replica whose lease may have gone.
   */
  assertCurrent(): void;
}

/** Options of {@linkcode Sink.send}. */
export interface SendOptions {
  /** The leadership term the batch is sent for; absent outside a term (tests, tools). */
  fence?: Fence;
}

/** The request headers that carry a {@linkcode Fence} to HTTP receivers. */
export const FENCE_HEADERS = {
  holder: "Kevents-Leader",
  token: "Kevents-Fencing-Token",
} as const;

/** A record the receiver refused for good: set aside, never sent again. */
export interface Rejection {
  /** The record's idempotency key ({@linkcode EventRecord.key}). */
  key: string;
  /** The HTTP status of the refusal (400, 413 or 422). */
  status: number;
  /** Why, in a few words: the receiver's answer, truncated, secrets redacted. */
  reason: string;
}

/** What a `send` that resolved set aside; see the module documentation. */
export interface SendResult {
  /** The records set aside, in batch order; the rest of the batch was delivered. */
  rejected: readonly Rejection[];
}

/** A destination for events. */
export interface Sink {
  /** Name for logs and metrics. */
  readonly name: string;
  /**
   * Delivers a batch; resolves once the destination has it, to nothing or
   * to a {@linkcode SendResult} naming the records the receiver refused for
   * good (set aside: never retried). Rejects with the signal's reason on
   * abort, and with the fence's error when its term is no longer current
   * before an attempt.
   */
  send(
    batch: readonly EventRecord[],
    signal: AbortSignal,
    options?: SendOptions,
  ): Promise<SendResult | void>;
  /** Releases what the sink holds. */
  close(): Promise<void>;
  /**
   * Records given up so far (sinks with a drop policy). A `send` that
   * resolves after dropping its batch counts it here, so the pump can tell
   * a drop from a delivery.
   */
  readonly dropped?: number;
}

/**
 * One service check run, as the Datadog check-run API takes it: `status` is
 * 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; `timestamp` is in seconds.
 */
export interface ServiceCheck {
  /** The check's name, for example `kube_apiserver_controlplane.up`. */
  check: string;
  /** 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
  status: 0 | 1 | 2 | 3;
  /** `key:value` tags. */
  tags: string[];
  /** Why the status is what it is (usually only for non-OK statuses). */
  message?: string;
  /** When the check ran, in seconds since the epoch. */
  timestamp: number;
  /** The host the check is about, if any. */
  hostName?: string;
}

/** A destination for service checks (the Datadog sink). */
export interface ServiceCheckSink {
  /** Submits the checks; resolves once the destination accepted them. Rejects with the signal's reason on abort. */
  sendServiceChecks(checks: readonly ServiceCheck[], signal: AbortSignal): Promise<void>;
}

/** Whether an object also takes service checks (has `sendServiceChecks`). */
export function isServiceCheckSink<T extends object>(sink: T): sink is T & ServiceCheckSink {
  return typeof (sink as Partial<ServiceCheckSink>).sendServiceChecks === "function";
}
