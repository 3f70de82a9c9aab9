/**
 * An in-memory {@linkcode Lock} for elector tests: one shared store (the
 * record and a version counter, standing for the API server's object and
 * its resourceVersion) and one {@linkcode MemoryLock} per replica, which
 * remembers the version it last read so `update` is a compare-and-swap.
 *
 * Faults are per replica: the next N calls fail with a network error, or
 * every call hangs until the partition heals (a hung call rejects with its
 * signal's reason when aborted, as a real request does). Every call and
 * every write is recorded, with the store clock's time, so tests can count
 * API calls and say who wrote what when.
 *
 * @module
 */

import type { Clock } from "../lib/time/clock.ts";
import { AlreadyExistsError, ConflictError, KubeNetworkError } from "../lib/kube/errors.ts";
import type { LeaderElectionRecord, Lock } from "../lib/election/lock.ts";

/** A lock method. */
export type LockMethod = "get" | "create" | "update";

/** One call a replica made, and how it ended. */
export interface LockCall {
  replica: string;
  method: LockMethod;
  /** Store clock time when the call was made. */
  at: number;
  /** "pending" while it hangs or runs; "ok", "failed" (an error) or "aborted" (its signal). */
  outcome: "pending" | "ok" | "failed" | "aborted";
  /** Store clock time when it ended. */
  endedAt?: number;
  /** What a successful get returned (a copy). */
  read?: LeaderElectionRecord;
  /** The error it ended with. */
  error?: unknown;
}

/** One successful write. */
export interface LockWrite {
  replica: string;
  method: "create" | "update";
  /** Store clock time of the write. */
  at: number;
  /** The version the write produced. */
  version: number;
  record: LeaderElectionRecord;
}

/** The object every replica's lock reads and writes. */
export class MemoryLockStore {
  /** The current record; undefined while the lock object does not exist. */
  record: LeaderElectionRecord | undefined;
  /** Bumped by every write, like a resourceVersion. */
  version = 0;
  /** Every call of every replica, in the order made. */
  readonly calls: LockCall[] = [];
  /** Every successful write, in order. */
  readonly writes: LockWrite[] = [];
  /** Calls the real Lock contract forbids (an update before any get or create). */
  readonly misuse: string[] = [];
  /**
   * Called before a call reaches the store (after faults), awaited: a test
   * can slip another replica's write in between a get and an update.
   */
  beforeCall: ((replica: string, method: LockMethod) => void | Promise<void>) | undefined;
  readonly #clock: Clock;

  /** A store stamping calls and writes with `clock` (the test's reference timeline). */
  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The store clock's time. */
  now(): number {
    return this.#clock.now();
  }

  /** A lock for replica `replica`. */
  lock(replica: string): MemoryLock {
    return new MemoryLock(this, replica);
  }

  /** How many calls `replica` made (of `method`, when given). */
  count(replica: string, method?: LockMethod): number {
    return this.calls.filter((c) => c.replica === replica && (method ?? c.method) === c.method)
      .length;
  }

  /** The writes `replica` made. */
  writesBy(replica: string): LockWrite[] {
    return this.writes.filter((w) => w.replica === replica);
  }
}

/** One replica's view of the store. */
export class MemoryLock implements Lock {
  readonly replica: string;
  readonly #store: MemoryLockStore;
  /** The version our last get or write saw; undefined before the first. */
  #seen: number | undefined;
  #failures = 0;
  #error: () => Error = () => new KubeNetworkError("Connection reset by peer");
  #partition: { promise: Promise<void>; heal: () => void } | undefined;

  /** A lock of `replica` on `store` (see {@linkcode MemoryLockStore.lock}). */
  constructor(store: MemoryLockStore, replica: string) {
    this.#store = store;
    this.replica = replica;
  }

  /** Makes the next `n` calls fail (Infinity: until {@linkcode heal}), by default with a network error. */
  failNext(n: number, error?: () => Error): void {
    this.#failures = n;
    if (error !== undefined) this.#error = error;
  }

  /** Makes every call hang until {@linkcode heal} (or until its signal aborts). */
  partition(): void {
    if (this.#partition !== undefined) return;
    let heal = () => {};
    const promise = new Promise<void>((resolve) => heal = resolve);
    this.#partition = { promise, heal };
  }

  /** Ends the partition (hung calls go on to the store now) and any pending failures. */
  heal(): void {
    this.#failures = 0;
    this.#partition?.heal();
    this.#partition = undefined;
  }

  /** How many calls this replica made (of `method`, when given). */
  count(method?: LockMethod): number {
    return this.#store.count(this.replica, method);
  }

  /** Reads the record and remembers its version. */
  get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined> {
    return this.#call("get", signal, () => {
      this.#seen = this.#store.version;
      return copy(this.#store.record);
    });
  }

  /** Creates the record; AlreadyExistsError when it exists. */
  create(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    return this.#call("create", signal, () => {
      if (this.#store.record !== undefined) {
        throw new AlreadyExistsError(409, {
          reason: "AlreadyExists",
          code: 409,
          message: `The lock already exists (version ${this.#store.version})`,
        });
      }
      this.#write("create", record);
    });
  }

  /** Replaces the record if it is still the version we last saw; ConflictError otherwise. */
  update(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    return this.#call("update", signal, () => {
      if (this.#seen === undefined) {
        this.#store.misuse.push(`${this.replica}: update before any get or create`);
        throw new Error("MemoryLock: update before any get or create");
      }
      if (this.#store.record === undefined || this.#seen !== this.#store.version) {
        throw new ConflictError(409, {
          reason: "Conflict",
          code: 409,
          message:
            `The lock was modified: version ${this.#store.version}, ${this.replica} sent ${this.#seen}`,
        });
      }
      this.#write("update", record);
    });
  }

  /** "memory lock (a)", for logs. */
  describe(): string {
    return `memory lock (${this.replica})`;
  }

  #write(method: "create" | "update", record: LeaderElectionRecord): void {
    const store = this.#store;
    store.record = copy(record);
    store.version += 1;
    this.#seen = store.version;
    store.writes.push({
      replica: this.replica,
      method,
      at: store.now(),
      version: store.version,
      record: copy(record)!,
    });
  }

  async #call<T>(method: LockMethod, signal: AbortSignal | undefined, run: () => T): Promise<T> {
    const store = this.#store;
    const call: LockCall = { replica: this.replica, method, at: store.now(), outcome: "pending" };
    store.calls.push(call);
    const end = (outcome: LockCall["outcome"], error?: unknown) => {
      call.outcome = outcome;
      call.endedAt = store.now();
      if (error !== undefined) call.error = error;
    };
    try {
      if (signal?.aborted) throw signal.reason;
      if (this.#partition !== undefined) await abortable(this.#partition.promise, signal);
      if (this.#failures > 0) {
        this.#failures -= 1;
        throw this.#error();
      }
      await store.beforeCall?.(this.replica, method);
      if (signal?.aborted) throw signal.reason;
      const result = run();
      if (method === "get") call.read = copy(result as LeaderElectionRecord | undefined);
      end("ok");
      return result;
    } catch (e) {
      end(signal?.aborted ? "aborted" : "failed", e);
      throw e;
    }
  }
}

function copy(record: LeaderElectionRecord | undefined): LeaderElectionRecord | undefined {
  return record === undefined ? undefined : { ...record };
}

/** Waits for `promise`, or rejects with the signal's reason as soon as it aborts. */
function abortable(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return promise;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
