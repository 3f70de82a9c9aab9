/**
 * A candidate's watch of the lock, so that it learns of a release or an
 * expired lease at once instead of at its next poll. It only reports: the
 * elector decides, between its tries, what to make of what was reported.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { Backoff, type Clock } from "../time/mod.ts";
import type { LeaderElectionRecord, Lock } from "./lock.ts";

const log = getLogger(["kevents", "elector"]);

/** How long the server keeps a candidate's watch of the lock open, before jitter (10%). */
export const WATCH_TIMEOUT_MS = 300_000;

/** What {@linkcode watchLock} needs, and whom it tells. */
export interface LockWatchOptions {
  clock: Clock;
  /** Random in [0, 1), for the jitter of the watch timeout and the backoff. */
  random: () => number;
  /** The election's retry period: the first backoff, and the shortest watch that is not a spin. */
  retryPeriodMs: number;
  /** The server accepted the watch. */
  opened: () => void;
  /** The watch reported the lock's record (undefined: the lock was deleted). */
  changed: (record: LeaderElectionRecord | undefined) => void;
  /** The watch failed; the candidate polls until it opens again. */
  failed: () => void;
}

/**
 * The candidate's one watch of the lock, reopened from where it stopped
 * whenever the server ends it; after a failure, reopened with backoff
 * (from a retry period up to the watch timeout) while the candidate
 * polls. Never rejects; settles once `signal` aborts. A lock that cannot be
 * watched settles at once.
 */
export async function watchLock(
  lock: Lock,
  o: LockWatchOptions,
  signal: AbortSignal,
): Promise<void> {
  if (lock.watch === undefined) return;
  const watch = lock.watch.bind(lock);
  const backoff = new Backoff({
    clock: o.clock,
    random: o.random,
    initialMs: o.retryPeriodMs,
    maxMs: WATCH_TIMEOUT_MS,
  });
  let broken = false;
  const onOpen = () => {
    if (broken) {
      broken = false;
      log.info("Watching {lock} again: no more polling", { lock: lock.describe() });
    }
    o.opened();
  };
  while (!signal.aborted) {
    const openedAt = o.clock.now();
    let changes = 0;
    try {
      const timeoutSeconds = Math.round(WATCH_TIMEOUT_MS * (1 + 0.1 * o.random()) / 1000);
      for await (const record of watch({ signal, timeoutSeconds, onOpen })) {
        changes += 1;
        backoff.reset();
        o.changed(record);
      }
      // The server ended the watch (its timeout): reopen at once, unless it
      // ended at once with nothing to say, which would spin.
      if (changes === 0 && o.clock.now() - openedAt < o.retryPeriodMs) {
        throw new Error("The server ended the watch at once");
      }
      backoff.reset();
    } catch (e) {
      if (signal.aborted) break;
      const fields = { lock: lock.describe(), error: String(e) };
      if (broken) log.debug("Cannot watch {lock}: {error}", fields);
      else {
        log.warn("Cannot watch {lock}: {error}; polling it every retry period meanwhile", fields);
      }
      broken = true;
      o.failed();
      try {
        await backoff.wait(signal);
      } catch {
        break; // Stopped.
      }
    }
  }
}
