/**
 * A {@linkcode Lock} on a core/v1 ConfigMap or Endpoints object, for fleets
 * that elect on those rather than on a Lease: the Datadog Agent 6 elected on
 * an Endpoints object, and the Agent 7 and Cluster Agent fall back to a
 * ConfigMap (`leader_election_default_resource: configmap`, or Kubernetes
 * older than 1.14). Both keep the election record, as client-go's former
 * configmap and endpoints locks did, as JSON in the object's
 * `control-plane.alpha.kubernetes.io/leader` annotation:
 *
 * ```json
 * {"holderIdentity":"pod-a","leaseDurationSeconds":60,"acquireTime":"2026-11-21T20:03:04Z","renewTime":"2026-11-21T20:05:34Z","leaderTransitions":3}
 * ```
 *
 * The record has exactly client-go's fields, in its order, and its times are
 * metav1.Time (RFC 3339 in UTC, whole seconds; `null` when unset), so a Go
 * elector sharing the object reads a valid holder and writes back a record
 * kevents reads. The elector's MicroTime strings are cut to the second when
 * written; on reading, any RFC 3339 time is accepted and handed on as
 * written.
 *
 * Every update is a PUT of the object last read with the new annotation,
 * the object's other annotations and contents untouched: its
 * resourceVersion makes the write a compare-and-swap. A missing object is
 * created holding only the annotation (a ConfigMap without data, an
 * Endpoints object without subsets); an object without the annotation reads
 * as a released lock, which the next candidate takes by updating it.
 *
 * Followers can watch the object instead of reading it every retry period
 * (`watch`): a watch of the namespace's ConfigMaps or Endpoints narrowed to
 * this one by a `metadata.name` field selector, which RBAC allows by
 * resourceName, as it does get and update.
 *
 * The limit of whole seconds: other replicas see a renewal only because the
 * record changed, so two renewals within the same second would look like
 * none. The retry period (the time between renewals) must therefore exceed
 * one second, which the configuration enforces for these locks.
 *
 * The Agent 5's ConfigMap (`datadog-leader-elector`) is not this format: it
 * holds `creator` and `acquired_time` annotations and is taken by deleting
 * and re-creating it. kevents neither reads nor writes that scheme, and by
 * default uses `datadog-leader-election` for every lock kind, as the Agent 6
 * and later do, so that it never shares an object with an Agent 5.
 *
 * @module
 */

import { NotFoundError } from "./errors.ts";
import { CONFIGMAPS, ENDPOINTS, type KubeClient, type ResourceRef } from "./kube_client.ts";
import {
  type LeaderElectionRecord,
  type Lock,
  LockObjectWatch,
  type LockWatchOptions,
} from "./lock.ts";

/** The annotation holding the election record, as client-go names it. */
export const LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader";

/** The object kinds an {@linkcode AnnotationLock} can use. */
export type AnnotationLockKind = "configmap" | "endpoints";

/** Options for {@linkcode AnnotationLock}. */
export interface AnnotationLockOptions {
  /** A ConfigMap or an Endpoints object. */
  kind: AnnotationLockKind;
  namespace: string;
  name: string;
}

/** The annotation holds something that is not an election record; the lock cannot be read. */
export class LockRecordError extends Error {
  /** The annotation's text. */
  readonly annotation: string;

  constructor(message: string, annotation: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LockRecordError";
    this.annotation = annotation;
  }
}

// RFC 3339 as Go's time.Parse reads it: fractional seconds optional, Z or an offset.
const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

/** Milliseconds since the epoch of an RFC 3339 time, fraction dropped; undefined when it is not one. */
function parseRfc3339Seconds(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not read years below 100 as 19xx.
  date.setUTCFullYear(year, month - 1, day);
  // A day past the end of its month rolls over into the next; Go refuses it.
  if (date.getUTCDate() !== day) return undefined;
  date.setUTCHours(hour, minute, second, 0);
  const zone = m[8]!;
  if (zone === "Z") return date.getTime();
  const sign = zone.startsWith("-") ? -1 : 1;
  const offsetMinutes = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
  return date.getTime() - sign * offsetMinutes * 60_000;
}

/**
 * Formats a record time as metav1.Time writes it: RFC 3339 in UTC, the
 * fraction dropped ("2026-11-21T20:03:04.123000Z" becomes
 * "2026-11-21T20:03:04Z"); null for "" (Go's zero time). Throws a
 * RangeError for text that is not an RFC 3339 time.
 */
export function metaTime(time: string): string | null {
  if (time === "") return null;
  const ms = parseRfc3339Seconds(time);
  if (ms === undefined) {
    throw new RangeError(
      `Cannot write the election record: ${JSON.stringify(time)} is not an RFC 3339 time`,
    );
  }
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The annotation's JSON for a record: client-go's fields, in its order, with metav1.Time times. */
export function encodeRecord(record: LeaderElectionRecord): string {
  return JSON.stringify({
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    acquireTime: metaTime(record.acquireTime),
    renewTime: metaTime(record.renewTime),
    leaderTransitions: record.leaderTransitions,
  });
}

/**
 * Reads the annotation's JSON as client-go does: missing fields are zero,
 * unknown fields are ignored, a field of the wrong type is an error. Times
 * are returned as written ("" for null or missing); each must be RFC 3339.
 */
export function decodeRecord(annotation: string): LeaderElectionRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(annotation);
  } catch (e) {
    throw new LockRecordError(
      `Cannot read the election record: the ${LEADER_ANNOTATION} annotation is not JSON`,
      annotation,
      { cause: e },
    );
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new LockRecordError(
      `Cannot read the election record: the ${LEADER_ANNOTATION} annotation is not a JSON object`,
      annotation,
    );
  }
  const fields = parsed as Record<string, unknown>;
  const bad = (field: string, rule: string) =>
    new LockRecordError(
      `Cannot read the election record: ${field} ${JSON.stringify(fields[field])} ${rule}`,
      annotation,
    );
  const text = (field: string): string => {
    const v = fields[field];
    if (v === undefined || v === null) return "";
    if (typeof v !== "string") throw bad(field, "must be a string");
    return v;
  };
  const integer = (field: string): number => {
    const v = fields[field];
    if (v === undefined || v === null) return 0;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw bad(field, "must be an integer");
    return v;
  };
  const time = (field: string): string => {
    const v = text(field);
    if (v !== "" && parseRfc3339Seconds(v) === undefined) {
      throw bad(field, "must be an RFC 3339 time");
    }
    return v;
  };
  return {
    holderIdentity: text("holderIdentity"),
    leaseDurationSeconds: integer("leaseDurationSeconds"),
    acquireTime: time("acquireTime"),
    renewTime: time("renewTime"),
    leaderTransitions: integer("leaderTransitions"),
  };
}

/** The parts of a ConfigMap or Endpoints object the lock reads; the rest is sent back as read. */
interface LockObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

const KINDS: Record<AnnotationLockKind, { ref: ResourceRef; kind: string }> = {
  configmap: { ref: CONFIGMAPS, kind: "ConfigMap" },
  endpoints: { ref: ENDPOINTS, kind: "Endpoints" },
};

/**
 * The record an object holds: an empty (released) one without the
 * annotation; LockRecordError when the annotation is not a record.
 */
function recordOf(object: LockObject): LeaderElectionRecord {
  const annotation = object.metadata?.annotations?.[LEADER_ANNOTATION];
  if (annotation === undefined) {
    return {
      holderIdentity: "",
      leaseDurationSeconds: 0,
      acquireTime: "",
      renewTime: "",
      leaderTransitions: 0,
    };
  }
  return decodeRecord(annotation);
}

/** Leader election on the leader annotation of a ConfigMap or an Endpoints object. */
export class AnnotationLock implements Lock {
  #client: KubeClient;
  #ref: ResourceRef;
  #kind: string;
  #namespace: string;
  #name: string;
  #last: LockObject | undefined;
  #watch: LockObjectWatch<LockObject>;

  constructor(client: KubeClient, options: AnnotationLockOptions) {
    this.#client = client;
    this.#ref = KINDS[options.kind].ref;
    this.#kind = KINDS[options.kind].kind;
    this.#namespace = options.namespace;
    this.#name = options.name;
    this.#watch = new LockObjectWatch<LockObject>(client, {
      ref: this.#ref,
      namespace: options.namespace,
      name: options.name,
      record: recordOf,
    });
  }

  /**
   * Reads the object; undefined when it does not exist, an empty (released)
   * record when it has no leader annotation. LockRecordError when the
   * annotation is not a record: the lock stays unreadable, as in client-go,
   * rather than being taken over.
   */
  async get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined> {
    try {
      this.#last = await this.#client.get<LockObject>(this.#ref, this.#namespace, this.#name, {
        signal,
      });
    } catch (e) {
      if (e instanceof NotFoundError) {
        this.#last = undefined;
        this.#watch.seen(undefined);
        return undefined;
      }
      throw e;
    }
    this.#watch.seen(this.#last);
    return recordOf(this.#last);
  }

  /** Creates the object holding only the leader annotation. */
  async create(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    this.#last = await this.#client.create<LockObject>(this.#ref, this.#namespace, {
      apiVersion: "v1",
      kind: this.#kind,
      metadata: {
        name: this.#name,
        namespace: this.#namespace,
        annotations: { [LEADER_ANNOTATION]: encodeRecord(record) },
      },
    }, { signal });
    this.#watch.seen(this.#last);
  }

  /** Replaces the object last read with the new annotation (compare-and-swap on its resourceVersion). */
  async update(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    const last = this.#last;
    if (last === undefined) {
      throw new Error(`Cannot update the ${this.#kind} before reading it`);
    }
    this.#last = await this.#client.replace<LockObject>(this.#ref, this.#namespace, this.#name, {
      ...last,
      metadata: {
        ...last.metadata,
        annotations: { ...last.metadata?.annotations, [LEADER_ANNOTATION]: encodeRecord(record) },
      },
    }, { signal });
    this.#watch.seen(this.#last);
  }

  /**
   * Watches the object from the version last seen (see
   * {@linkcode Lock.watch}); an annotation that is not a record ends the
   * watch with LockRecordError.
   */
  watch(options: LockWatchOptions): AsyncIterable<LeaderElectionRecord | undefined> {
    return this.#watch.watch(options);
  }

  /** "configmaps namespace/name" or "endpoints namespace/name". */
  describe(): string {
    return `${this.#ref.resource} ${this.#namespace}/${this.#name}`;
  }
}
