/**
 * The resource lock leader election runs on: a tiny interface (get, create,
 * update, describe) in the shape of client-go's resourcelock.Interface.
 * `update` sends back the object last read, so the object's
 * resourceVersion makes every write a compare-and-swap: a ConflictError
 * means another replica wrote first.
 *
 * @module
 */

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
  /** "leases default/datadog-leader-election", for logs. */
  describe(): string;
}
