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
 * The record kevents writes has exactly client-go's fields, in its order,
 * and its times are metav1.Time (RFC 3339 in UTC, whole seconds; `null`
 * when unset), so a Go elector sharing the object reads a valid holder and
 * writes back a record kevents reads. The elector's MicroTime strings are
 * cut to the second when written.
 *
 * Records are read leniently, for other electors write them differently.
 * The Kubernetes Python client's elector (`kubernetes.leaderelection`,
 * ConfigMapLock, python3-kubernetes 22.6) writes, with Python's spacing and
 * no transition count:
 *
 * ```json
 * {"holderIdentity": "py-a", "leaseDurationSeconds": "4", "acquireTime": "2026-12-03 05:26:53.984106", "renewTime": "2026-12-03 05:26:54.088544"}
 * ```
 *
 * So `leaseDurationSeconds` and `leaderTransitions` may be numeric strings
 * (a fractional lease is rounded up to whole seconds), and a time may be
 * RFC 3339 or `YYYY-MM-DD HH:MM:SS[.ffffff]`, read as UTC (Python writes
 * its local time, which is only ever handed on, never compared), or that
 * with a zone. Times are opaque to the election, whose expiry is decided by
 * observation on the candidate's clock; they are handed on as written
 * where the elector keeps them, and whenever kevents writes a record it
 * writes it in its own format above. An empty annotation, like a missing
 * one, is a released lock. The Python elector reads kevents' records in
 * turn: it judges expiry by its own configured lease, not the record's, and
 * takes a released record (empty holder) at once.
 *
 * A record that cannot be read even so (not JSON, no holder, a held record
 * without a lease, a field of an absurd type) must neither block the lock
 * forever nor read as free while its writer may be alive. `get` and
 * `watch` report in its place the record of {@linkcode unreadableRecord}:
 * the holder if one can be read, a lease of the option
 * `unreadableLeaseSeconds` (default 60), and the annotation's text as its
 * renewTime, so that it changes exactly when the annotation does. A
 * candidate therefore leaves it alone while it keeps changing and takes it
 * over once it has stayed unchanged for that lease on the candidate's
 * clock, with the usual compare-and-swap, writing a proper record. The lock
 * warns once per distinct annotation text, saying what is wrong and when
 * it will be taken over.
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

import {
  CONFIGMAPS,
  ENDPOINTS,
  type KubeClient,
  NotFoundError,
  type ResourceRef,
} from "../kube/mod.ts";
import {
  type LeaderElectionRecord,
  type Lock,
  LockObjectWatch,
  type LockWatchOptions,
  UNREADABLE_HOLDER,
  unreadableLeaseSeconds,
  UnreadableRecordWarning,
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
  /**
   * How long a record that cannot be read must stay unchanged before a
   * candidate takes it over, in whole seconds (default 60; meant to be the
   * configured lease duration).
   */
  unreadableLeaseSeconds?: number;
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

/**
 * A record time: RFC 3339 as Go's time.Parse reads it (fractional seconds
 * optional, Z or an offset), or with a space for the T, the zone then
 * optional (Python's str(datetime); without a zone it is read as UTC).
 */
const RECORD_TIME = /^(\d{4})-(\d\d)-(\d\d)([T ])(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$/;

/**
 * Milliseconds since the epoch of a record time (see the module
 * documentation for the forms read); undefined when it is not one.
 */
export function recordTimeMs(text: string): number | undefined {
  const m = RECORD_TIME.exec(text);
  if (m === null) return undefined;
  const [year, month, day] = m.slice(1, 4).map(Number) as [number, number, number];
  const [hour, minute, second] = m.slice(5, 8).map(Number) as [number, number, number];
  const zone = m[9];
  // RFC 3339 has a zone; only the space-separated form may leave it out.
  if (m[4] === "T" && zone === undefined) return undefined;
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not read years below 100 as 19xx.
  date.setUTCFullYear(year, month - 1, day);
  // A day past the end of its month rolls over into the next; Go refuses it.
  if (date.getUTCDate() !== day) return undefined;
  const ms = Math.floor(Number(`0${m[8] ?? ""}`) * 1000);
  date.setUTCHours(hour, minute, second, ms);
  if (zone === undefined || zone === "Z") return date.getTime();
  const sign = zone.startsWith("-") ? -1 : 1;
  const offsetMinutes = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
  return date.getTime() - sign * offsetMinutes * 60_000;
}

/**
 * Formats a record time as metav1.Time writes it: RFC 3339 in UTC, the
 * fraction dropped ("2026-11-21T20:03:04.123000Z" and
 * "2026-11-21 20:03:04.123456" both become "2026-11-21T20:03:04Z"); null
 * for "" (Go's zero time). Throws a RangeError for text that is not a
 * record time.
 */
export function metaTime(time: string): string | null {
  if (time === "") return null;
  const ms = recordTimeMs(time);
  if (ms === undefined) {
    throw new RangeError(
      `Cannot write the election record: ${JSON.stringify(time)} is not an RFC 3339 time`,
    );
  }
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
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

/** A whole or decimal number of seconds, as a string ("15", "15.0"). */
const DECIMAL_SECONDS = /^\d+(\.\d+)?$/;
/** An integer, as a string ("3", "-1"). */
const INTEGER = /^-?\d+$/;

/**
 * Reads the annotation's JSON leniently: as client-go does (unknown fields
 * ignored; a missing or null time, transition count, or lease of a
 * released record is zero), and also as other electors write it:
 * `leaseDurationSeconds` and `leaderTransitions` as numeric strings, a
 * fractional lease rounded up to whole seconds, times in the forms
 * {@linkcode recordTimeMs} reads. Times are returned as written ("" for
 * null or missing). Throws LockRecordError for anything else: not a JSON
 * object, no holder, a held record without a lease, a field that cannot be
 * read.
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
  const missing = (field: string) =>
    new LockRecordError(`Cannot read the election record: ${field} is missing`, annotation);
  const absent = (field: string) => fields[field] === undefined || fields[field] === null;
  if (absent("holderIdentity")) throw missing("holderIdentity");
  const holderIdentity = fields.holderIdentity;
  if (typeof holderIdentity !== "string") throw bad("holderIdentity", "must be a string");
  const seconds = (): number => {
    const field = "leaseDurationSeconds";
    // A released record's lease means nothing; a held one's decides when it expires.
    if (absent(field)) {
      if (holderIdentity === "") return 0;
      throw missing(field);
    }
    const v = fields[field];
    const n = typeof v === "number"
      ? v
      : typeof v === "string" && DECIMAL_SECONDS.test(v)
      ? Number(v)
      : NaN;
    const whole = Math.ceil(n);
    if (!(n >= 0) || !Number.isSafeInteger(whole)) {
      throw bad(field, "must be a number of seconds");
    }
    return whole;
  };
  const integer = (field: string): number => {
    if (absent(field)) return 0;
    const v = fields[field];
    const n = typeof v === "number"
      ? v
      : typeof v === "string" && INTEGER.test(v)
      ? Number(v)
      : NaN;
    if (!Number.isSafeInteger(n)) throw bad(field, "must be an integer");
    return n;
  };
  const time = (field: string): string => {
    if (absent(field)) return "";
    const v = fields[field];
    if (typeof v !== "string" || recordTimeMs(v) === undefined) {
      throw bad(field, "must be an RFC 3339 time");
    }
    return v;
  };
  return {
    holderIdentity,
    leaseDurationSeconds: seconds(),
    acquireTime: time("acquireTime"),
    renewTime: time("renewTime"),
    leaderTransitions: integer("leaderTransitions"),
  };
}

/**
 * The record that stands in for an annotation kevents cannot read: its
 * holder when one can be read (else {@linkcode UNREADABLE_HOLDER}), the
 * given lease, its transition count when one can be read, and the
 * annotation's text as its renewTime, so that the record changes exactly
 * when the annotation does. Its acquireTime is "": a replica that finds
 * its own name in such a record hands that time on when it renews.
 */
export function unreadableRecord(annotation: string, leaseSeconds: number): LeaderElectionRecord {
  let holderIdentity = UNREADABLE_HOLDER;
  let leaderTransitions = 0;
  try {
    const parsed: unknown = JSON.parse(annotation);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
      const fields = parsed as Record<string, unknown>;
      const holder = fields.holderIdentity;
      if (typeof holder === "string" && holder !== "") holderIdentity = holder;
      const transitions = fields.leaderTransitions;
      const n = typeof transitions === "number"
        ? transitions
        : typeof transitions === "string" && INTEGER.test(transitions)
        ? Number(transitions)
        : NaN;
      if (Number.isSafeInteger(n)) leaderTransitions = n;
    }
  } catch {
    // Not JSON: nothing more can be read from it.
  }
  return {
    holderIdentity,
    leaseDurationSeconds: leaseSeconds,
    acquireTime: "",
    renewTime: annotation,
    leaderTransitions,
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

/** Leader election on the leader annotation of a ConfigMap or an Endpoints object. */
export class AnnotationLock implements Lock {
  #client: KubeClient;
  #ref: ResourceRef;
  #kind: string;
  #namespace: string;
  #name: string;
  #unreadableLeaseSeconds: number;
  #last: LockObject | undefined;
  #problem: string | undefined;
  #warning: UnreadableRecordWarning;
  #watch: LockObjectWatch<LockObject>;

  constructor(client: KubeClient, options: AnnotationLockOptions) {
    this.#client = client;
    this.#ref = KINDS[options.kind].ref;
    this.#kind = KINDS[options.kind].kind;
    this.#namespace = options.namespace;
    this.#name = options.name;
    this.#unreadableLeaseSeconds = unreadableLeaseSeconds(options.unreadableLeaseSeconds);
    this.#warning = new UnreadableRecordWarning(() => this.describe());
    this.#watch = new LockObjectWatch<LockObject>(client, {
      ref: this.#ref,
      namespace: options.namespace,
      name: options.name,
      record: (object) => this.#read(object).record,
    });
  }

  /**
   * Reads the object; undefined when it does not exist, an empty (released)
   * record when it has no leader annotation or an empty one. An annotation
   * that cannot be read gives {@linkcode unreadableRecord} with the lock's
   * `unreadableLeaseSeconds`, and a warning once per distinct annotation;
   * {@linkcode problem} then says what was wrong.
   */
  async get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined> {
    try {
      this.#last = await this.#client.get<LockObject>(this.#ref, this.#namespace, this.#name, {
        signal,
      });
    } catch (e) {
      if (e instanceof NotFoundError) {
        this.#last = undefined;
        this.#problem = undefined;
        this.#watch.seen(undefined);
        return undefined;
      }
      throw e;
    }
    this.#watch.seen(this.#last);
    const { record, problem } = this.#read(this.#last);
    this.#problem = problem;
    return record;
  }

  /**
   * Why the annotation the last {@linkcode get} read could not be read (the
   * message of decodeRecord's LockRecordError); undefined when it could, or
   * when there was none.
   */
  get problem(): string | undefined {
    return this.#problem;
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

  /**
   * Replaces the object last read with the new annotation
   * (compare-and-swap on its resourceVersion), also when the annotation
   * read could not be: the record is always written in client-go's format.
   */
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
   * {@linkcode Lock.watch}); an annotation that cannot be read is reported
   * as {@linkcode get} returns it.
   */
  watch(options: LockWatchOptions): AsyncIterable<LeaderElectionRecord | undefined> {
    return this.#watch.watch(options);
  }

  /** "configmaps namespace/name" or "endpoints namespace/name". */
  describe(): string {
    return `${this.#ref.resource} ${this.#namespace}/${this.#name}`;
  }

  /** The record an object holds, and why it could not be read (see {@linkcode get}). */
  #read(object: LockObject): { record: LeaderElectionRecord; problem?: string } {
    const annotation = object.metadata?.annotations?.[LEADER_ANNOTATION];
    // No record at all (an empty annotation too, as Python's elector reads it): released.
    if (annotation === undefined || annotation.trim() === "") {
      return {
        record: {
          holderIdentity: "",
          leaseDurationSeconds: 0,
          acquireTime: "",
          renewTime: "",
          leaderTransitions: 0,
        },
      };
    }
    try {
      const record = decodeRecord(annotation);
      return { record };
    } catch (e) {
      if (!(e instanceof LockRecordError)) throw e;
      const record = unreadableRecord(annotation, this.#unreadableLeaseSeconds);
      this.#warning.warn(
        annotation,
        e.message.replace(/^Cannot read the election record: /, ""),
        record.holderIdentity,
        record.leaseDurationSeconds,
      );
      return { record, problem: e.message };
    }
  }
}
