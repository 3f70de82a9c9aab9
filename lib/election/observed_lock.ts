/**
 * A {@linkcode Lock} that reports the signs of a live leader it passes on:
 * a write of this replica that holds the lock (create, update: an acquire
 * or a renewal), and a record read or watched that changed, under a
 * holder, since this replica last saw the record. A released record (empty
 * holder) is no such sign, nor is the first record a replica reads: it may
 * have lain unchanged for hours.
 *
 * Followers read the lock every retry period or watch it, and the leader
 * renews it every retry period, so every replica sees a live leader's
 * renewals, on its own clock, as client-go's observedTime: kevents exports
 * the last one (`kevents_lease_observed_renew_timestamp_seconds`), so that
 * an alert on a missing leader does not depend on scraping the leader.
 *
 * @module
 */

import { type Clock, systemClock } from "../time/mod.ts";
import type { LeaderElectionRecord, Lock, LockWatchOptions } from "./lock.ts";

/** Wraps `lock` so that `renewed(at)` hears of each sign of a live leader (`at`: ms on `clock`). */
export function observeRenewals(
  lock: Lock,
  renewed: (at: number) => void,
  clock: Clock = systemClock,
): Lock {
  return new ObservedLock(lock, renewed, clock);
}

class ObservedLock implements Lock {
  readonly #lock: Lock;
  readonly #renewed: (at: number) => void;
  readonly #clock: Clock;
  /** The record last seen, as JSON; undefined before the first. */
  #last: string | undefined;
  readonly watch?: (options: LockWatchOptions) => AsyncIterable<LeaderElectionRecord | undefined>;

  constructor(lock: Lock, renewed: (at: number) => void, clock: Clock) {
    this.#lock = lock;
    this.#renewed = renewed;
    this.#clock = clock;
    // Absent when the lock cannot be watched: the elector then polls.
    if (lock.watch !== undefined) this.watch = (options) => this.#watch(options);
  }

  /** Notes a record read or watched (undefined: the lock object does not exist). */
  #seen(record: LeaderElectionRecord | undefined): void {
    const key = JSON.stringify(record ?? null);
    const changed = this.#last !== undefined && key !== this.#last;
    this.#last = key;
    if (changed && record !== undefined && record.holderIdentity !== "") {
      this.#renewed(this.#clock.now());
    }
  }

  /** Notes a record this replica wrote. */
  #wrote(record: LeaderElectionRecord): void {
    this.#last = JSON.stringify(record);
    if (record.holderIdentity !== "") this.#renewed(this.#clock.now());
  }

  async get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined> {
    const record = await this.#lock.get(signal);
    this.#seen(record);
    return record;
  }

  async create(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    await this.#lock.create(record, signal);
    this.#wrote(record);
  }

  async update(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    await this.#lock.update(record, signal);
    this.#wrote(record);
  }

  async *#watch(options: LockWatchOptions): AsyncGenerator<LeaderElectionRecord | undefined> {
    for await (const record of this.#lock.watch!(options)) {
      this.#seen(record);
      yield record;
    }
  }

  describe(): string {
    return this.#lock.describe();
  }
}
