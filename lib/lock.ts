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
 * @module
 */

import { GoneError, NotFoundError } from "./errors.ts";
import type { KubeClient, ResourceRef } from "./kube_client.ts";

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

/** Options for {@linkcode LockObjectWatch}. */
export interface LockObjectWatchOptions<T> {
  /** The lock object's resource (leases, configmaps, endpoints). */
  ref: ResourceRef;
  namespace: string;
  name: string;
  /** The record an object holds; may throw when it holds none that can be read. */
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
