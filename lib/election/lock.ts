/**
 * The resource lock leader election runs on: a tiny interface (get, create,
 * update, describe) in the shape of client-go's resourcelock.Interface.
 * `update` sends back the object last read, so the object's
 * resourceVersion makes every write a compare-and-swap: a ConflictError
 * means another replica wrote first.
 *
 * Beyond client-go, a lock may offer `watch`, so that followers learn of a
 * release at once instead of polling. A watch only reports: it never
 * changes the object `update` writes over, so the compare-and-swap stays
 * on what `get` returned.
 *
 * A lock object may hold a record kevents cannot fully read: another
 * client's format, a hand edit, a missing field. It must not block the lock
 * forever, nor read as free while its writer may still hold it. So `get`
 * and `watch` hand the elector a record in its place that names the holder
 * as well as it can be read, carries `unreadableLeaseSeconds` (the lock's
 * option; default {@linkcode DEFAULT_UNREADABLE_LEASE_SECONDS}) as its
 * lease, and changes exactly when the object's record changes. The elector
 * then treats it like any other record: held while it keeps changing, taken
 * over with a compare-and-swap once it has stayed unchanged for that lease
 * on the candidate's clock. Each lock warns once per distinct such record.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { GoneError, type KubeClient, NotFoundError, type ResourceRef } from "../kube/mod.ts";

/** The election record, as client-go's LeaderElectionRecord. */
export interface LeaderElectionRecord {
  /** Who holds the lock; "" when released. */
  holderIdentity: string;
  leaseDurationSeconds: number;
  /** When the holder acquired it (RFC 3339; opaque to the algorithm). */
  acquireTime: string;
  /** When the holder last renewed it (RFC 3339; opaque to the algorithm). */
  renewTime: string;
  /** How many times the lock changed hands. */
  leaderTransitions: number;
}

/** Options of {@linkcode Lock.watch}. */
export interface LockWatchOptions {
  /** Ends the watch; the iteration then throws the signal's reason. */
  signal: AbortSignal;
  /** Asks the server to end the watch after this long (default: the server's choice). */
  timeoutSeconds?: number;
  /** Called whenever the server accepts a watch request (again after a 410), before its changes. */
  onOpen?: () => void;
}

/** A lock object in the API server. */
export interface Lock {
  /**
   * Reads the record; undefined when the lock object does not exist. Also
   * remembers the object, so the next update is a compare-and-swap on it.
   */
  get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined>;
  /** Creates the lock object; AlreadyExistsError when another replica did first. */
  create(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void>;
  /** Writes the record over the object last read; ConflictError when it changed since. */
  update(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void>;
  /**
   * Watches the lock object from the version last seen (read, written, or
   * reported by a previous watch): yields the record after each change,
   * undefined when the object was deleted. Ends when the server ends the
   * watch; calling it again goes on from there. When that version is too
   * old (410 Gone) it reads the object again, yields its record, and goes
   * on watching from it. Other failures throw. Optional: without it
   * followers poll.
   */
  watch?(options: LockWatchOptions): AsyncIterable<LeaderElectionRecord | undefined>;
  /** "leases default/datadog-leader-election", for logs. */
  describe(): string;
}

/** The holder a record shows when none can be read from the lock object. */
export const UNREADABLE_HOLDER = "(unreadable record)";

/**
 * How long, by default, a record kevents cannot fully read must stay
 * unchanged before a candidate takes it over (the default lease, 60 s).
 */
export const DEFAULT_UNREADABLE_LEASE_SECONDS = 60;

/** Checks a lock's `unreadableLeaseSeconds` option; returns it, or the default when unset. */
export function unreadableLeaseSeconds(seconds: number | undefined): number {
  if (seconds === undefined) return DEFAULT_UNREADABLE_LEASE_SECONDS;
  if (!Number.isSafeInteger(seconds) || seconds < 1) {
    throw new RangeError(
      `Cannot use unreadableLeaseSeconds ${seconds}: must be a whole number of seconds, at least 1`,
    );
  }
  return seconds;
}

const log = getLogger(["kevents", "lock"]);

/**
 * Warns, once per distinct record, that a lock object holds a record
 * kevents cannot fully read and when it will be taken over. Each lock keeps
 * one, so that a record both its `get` and its watch report, or that every
 * retry reads again, is warned of once.
 */
export class UnreadableRecordWarning {
  #lock: () => string;
  /** The text of the record last warned of. */
  #last: string | undefined;

  /** `lock` describes the lock, for the message. */
  constructor(lock: () => string) {
    this.#lock = lock;
  }

  /** Warns about the record `text`, unless it is the one last warned of. */
  warn(text: string, problem: string, holder: string, leaseSeconds: number): void {
    if (text === this.#last) return;
    this.#last = text;
    log.warn(
      "{lock} holds an election record kevents cannot read ({problem}): {record}; it counts as " +
        "held by {holder} and is taken over once it has stayed unchanged for {seconds} s",
      {
        lock: this.#lock(),
        problem,
        record: text.length > 200 ? `${text.slice(0, 200)}...` : text,
        holder,
        seconds: leaseSeconds,
      },
    );
  }
}

/** Options for {@linkcode LockObjectWatch}. */
export interface LockObjectWatchOptions<T> {
  /** The lock object's resource (leases, configmaps, endpoints). */
  ref: ResourceRef;
  namespace: string;
  name: string;
  /** The record an object holds (see the module documentation for records that cannot be read). */
  record: (object: T) => LeaderElectionRecord;
}

/** The parts of an object a watch reads. */
interface Versioned {
  metadata?: { resourceVersion?: string };
}

/**
 * The `watch` of a lock on one named object, shared by the lock kinds: a
 * watch of the namespace's collection narrowed to the object by a
 * `metadata.name` field selector (so RBAC can grant it by resourceName),
 * with bookmarks. It remembers the version to go on from: the lock hands it
 * every object it reads or writes ({@linkcode seen}), and each event moves
 * it on.
 */
export class LockObjectWatch<T extends Versioned> {
  #client: KubeClient;
  #o: LockObjectWatchOptions<T>;
  /** The resourceVersion to watch after; undefined when no object was seen (current state first). */
  #cursor: string | undefined;

  constructor(client: KubeClient, options: LockObjectWatchOptions<T>) {
    this.#client = client;
    this.#o = options;
  }

  /** Remembers the version of an object read or written; undefined when there was none. */
  seen(object: T | undefined): void {
    this.#cursor = object?.metadata?.resourceVersion;
  }

  /** See {@linkcode Lock.watch}. */
  async *watch(options: LockWatchOptions): AsyncGenerator<LeaderElectionRecord | undefined> {
    const { ref, namespace, name, record } = this.#o;
    // One read answers a 410; a second 410 with no change in between is a failure.
    let reread = false;
    for (;;) {
      try {
        const batches = this.#client.watchBatches<T>(ref, {
          namespace,
          fieldSelector: `metadata.name=${name}`,
          resourceVersion: this.#cursor,
          allowWatchBookmarks: true,
          timeoutSeconds: options.timeoutSeconds,
          // A watch the server should have ended by now, and has not, is dead.
          idleTimeoutMs: options.timeoutSeconds === undefined
            ? undefined
            : options.timeoutSeconds * 1000 + this.#client.requestTimeoutMs,
          onOpen: options.onOpen,
          signal: options.signal,
        });
        for await (const batch of batches) {
          for (const event of batch) {
            this.#cursor = event.object.metadata.resourceVersion;
            if (event.type === "BOOKMARK") continue;
            reread = false;
            yield event.type === "DELETED" ? undefined : record(event.object);
          }
        }
        return;
      } catch (e) {
        if (!(e instanceof GoneError) || reread) throw e;
      }
      reread = true;
      let current: T | undefined;
      try {
        current = await this.#client.get<T>(ref, namespace, name, { signal: options.signal });
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
      }
      this.#cursor = current?.metadata?.resourceVersion;
      yield current === undefined ? undefined : record(current);
    }
  }
}
