/**
 * Leader election, with client-go's algorithm, and the lifecycle of a
 * leadership term.
 *
 * The model: replicas compete for one lock object. A candidate reads the
 * lock every retry period; it takes the lock when it does not exist, when it
 * was released (empty holder), or when the record has not changed for a
 * whole lease duration *as observed on this replica's clock* (the holder's
 * timestamps are never compared with ours, so clock offsets between
 * replicas do not matter, only clock rates). Every write is a compare-and-
 * swap on the lock object's resourceVersion, so two candidates cannot both
 * win.
 *
 * A leader renews every retry period. If it has not renewed successfully
 * within the renew deadline (half the lease by default) it aborts its term:
 * its work stops well before any other replica may consider the lease
 * expired, which is what keeps two pumps from ever running at once. The
 * margin (lease duration minus renew deadline) absorbs clock-rate
 * differences and the time the work takes to stop.
 *
 * Each term gets its own AbortController. `runElector` settles only after
 * the current term's work has settled, and on a clean stop it releases the
 * lock (empty holder, 1 s duration) so a follower takes over at its next
 * retry instead of waiting for the lease to run out.
 *
 * What this does not do: it does not fence writes made outside the term
 * (the checkpointer fences its own), and it assumes clocks that run at the
 * same rate within the margin.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { type Clock, systemClock } from "./clock.ts";
import { AlreadyExistsError, ConflictError } from "./errors.ts";
import { microTime } from "./lease_lock.ts";
import type { LeaderElectionRecord, Lock } from "./lock.ts";

/** One leadership term, handed to the leader's work. */
export interface Term {
  /** Our identity. */
  identity: string;
  /**
   * The lock's transition count when we took it. It changes whenever the
   * lock changes hands, but a replica that takes its own lock again keeps it.
   */
  transitions: number;
  /** Aborts when the term ends (lost lease, renew deadline passed, or shutdown). */
  signal: AbortSignal;
}

/** Timing of the election, in ms. */
export interface ElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Upper bound of one lock request (kept well below the renew deadline). */
  requestTimeoutMs: number;
}

/** Options for {@linkcode runElector}. */
export interface ElectorOptions {
  lock: Lock;
  identity: string;
  timings: ElectionTimings;
  /**
   * The leader's work. Runs for one term; must settle soon after
   * `term.signal` aborts. If it rejects, the term ends and the error is
   * logged; the replica becomes a candidate again.
   */
  lead: (term: Term) => Promise<void>;
  /** Called whenever the observed holder changes (including to us). */
  onNewLeader?: (holder: string) => void;
  /** Time source (default the system clock). */
  clock?: Clock;
  /** Random in [0, 1) for jitter (default Math.random). */
  random?: () => number;
}

/** Checks the relations client-go checks before anything runs. */
export function validateTimings(t: ElectionTimings): void {
  if (!(t.leaseDurationMs > t.renewDeadlineMs)) {
    throw new RangeError(
      `Cannot run leader election: leaseDuration (${t.leaseDurationMs} ms) must be greater than renewDeadline (${t.renewDeadlineMs} ms)`,
    );
  }
  if (!(t.renewDeadlineMs > t.retryPeriodMs)) {
    throw new RangeError(
      `Cannot run leader election: renewDeadline (${t.renewDeadlineMs} ms) must be greater than retryPeriod (${t.retryPeriodMs} ms)`,
    );
  }
  if (!(t.retryPeriodMs > 0) || !(t.requestTimeoutMs > 0)) {
    throw new RangeError(
      "Cannot run leader election: retryPeriod and requestTimeout must be positive",
    );
  }
}

const log = getLogger(["kevents", "elector"]);

type Attempt = "acquired" | "held" | "failed";

/**
 * Runs leader election until `signal` aborts: candidate, leader for a term,
 * candidate again. Settles after the last term's work has settled and the
 * lock was released.
 */
export async function runElector(options: ElectorOptions, signal: AbortSignal): Promise<void> {
  validateTimings(options.timings);
  const state = new ElectorState(options);
  for (let terms = 0; !signal.aborted; terms++) {
    const acquired = await state.acquire(signal, terms > 0);
    if (!acquired) break;
    await state.leadTerm(signal);
  }
}

class ElectorState {
  #o: ElectorOptions;
  #clock: Clock;
  #random: () => number;
  /** The record last seen, and when we first saw it in that form (our clock). */
  #observed: LeaderElectionRecord | undefined;
  #observedKey = "";
  #observedAt = 0;
  #holder = "";

  constructor(options: ElectorOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
  }

  #jittered(ms: number): number {
    return ms * (1 + 0.1 * this.#random());
  }

  #observe(record: LeaderElectionRecord | undefined, now: number): void {
    const key = JSON.stringify(record ?? null);
    if (key !== this.#observedKey) {
      this.#observedKey = key;
      this.#observed = record;
      this.#observedAt = now;
    }
    const holder = record?.holderIdentity ?? "";
    if (holder !== this.#holder) {
      this.#holder = holder;
      if (holder !== "") {
        log.info("Leader is now {holder}", { holder });
        this.#o.onNewLeader?.(holder);
      }
    }
  }

  /** One try, as client-go's tryAcquireOrRenew. */
  async #tryAcquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const { lock, identity, timings } = this.#o;
    const now = this.#clock.now();
    const desired: LeaderElectionRecord = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(timings.leaseDurationMs / 1000)),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaderTransitions: 0,
    };
    let current: LeaderElectionRecord | undefined;
    try {
      current = await lock.get(signal);
    } catch (e) {
      if (signal.aborted) throw e;
      log.warn("Cannot read {lock}: {error}", { lock: lock.describe(), error: String(e) });
      return "failed";
    }
    if (current === undefined) {
      try {
        await lock.create(desired, signal);
      } catch (e) {
        if (signal.aborted) throw e;
        if (e instanceof AlreadyExistsError) return "held";
        log.warn("Cannot create {lock}: {error}", { lock: lock.describe(), error: String(e) });
        return "failed";
      }
      this.#observe(desired, now);
      return "acquired";
    }
    // Observed when the answer arrived (as client-go): a record written while
    // the get was in flight must not look older than it is.
    const seen = this.#clock.now();
    this.#observe(current, seen);
    const mine = current.holderIdentity === identity;
    // A record unchanged for a whole lease duration, by our clock, has expired.
    const leaseMs = current.leaseDurationSeconds * 1000;
    const expired = this.#observedAt + leaseMs <= seen;
    if (current.holderIdentity !== "" && !mine && !expired) return "held";
    if (mine) {
      desired.acquireTime = current.acquireTime;
      desired.leaderTransitions = current.leaderTransitions;
    } else {
      desired.leaderTransitions = current.leaderTransitions + 1;
    }
    try {
      await lock.update(desired, signal);
    } catch (e) {
      if (signal.aborted) throw e;
      if (e instanceof ConflictError) return "held";
      log.warn("Cannot update {lock}: {error}", { lock: lock.describe(), error: String(e) });
      return "failed";
    }
    this.#observe(desired, now);
    return "acquired";
  }

  /** A signal that aborts with the parent or after `ms` on our clock. */
  #bounded(parent: AbortSignal, ms: number): { signal: AbortSignal; done: () => void } {
    const c = new AbortController();
    const onAbort = () => c.abort(parent.reason);
    parent.addEventListener("abort", onAbort, { once: true });
    const timer = new AbortController();
    this.#clock.sleep(Math.max(1, ms), timer.signal).then(
      () => c.abort(new Error(`Lock request took longer than ${Math.round(ms)} ms`)),
      () => {}, // Cancelled: the request finished first.
    );
    return {
      signal: c.signal,
      done: () => {
        timer.abort();
        parent.removeEventListener("abort", onAbort);
      },
    };
  }

  async #attempt(parent: AbortSignal, timeoutMs: number): Promise<Attempt> {
    const { signal, done } = this.#bounded(parent, timeoutMs);
    try {
      return await this.#tryAcquireOrRenew(signal);
    } catch (e) {
      if (parent.aborted) throw e;
      // Our own request timeout fired: that attempt failed.
      return "failed";
    } finally {
      done();
    }
  }

  /**
   * Tries every retry period until we hold the lock; false when stopped
   * first. After a term (`afterTerm`) it waits a retry period before the
   * first try, so work that fails at once cannot spin on the lock.
   */
  async acquire(signal: AbortSignal, afterTerm: boolean): Promise<boolean> {
    const { timings, lock, identity } = this.#o;
    log.info("{identity} is a candidate for {lock}", { identity, lock: lock.describe() });
    try {
      if (afterTerm) await this.#clock.sleep(this.#jittered(timings.retryPeriodMs), signal);
      for (;;) {
        if (await this.#attempt(signal, timings.requestTimeoutMs) === "acquired") return true;
        await this.#clock.sleep(this.#jittered(timings.retryPeriodMs), signal);
      }
    } catch (e) {
      if (signal.aborted) return false;
      throw e;
    }
  }

  /** Leads one term: starts the work, renews, ends the term on loss or stop. */
  async leadTerm(stop: AbortSignal): Promise<void> {
    const { timings, identity, lock } = this.#o;
    const term = new AbortController();
    const transitions = this.#observed?.leaderTransitions ?? 0;
    log.info("{identity} leads {lock} (transition {transitions})", {
      identity,
      lock: lock.describe(),
      transitions,
    });
    // The renew deadline counts from when the last successful write was
    // sent; a watchdog on our clock ends the term when it passes, even if a
    // request hangs.
    let lastRenew = this.#observedAt;
    let watchdog = new AbortController();
    const armDeadline = () => {
      watchdog.abort();
      watchdog = new AbortController();
      const wait = lastRenew + timings.renewDeadlineMs - this.#clock.now();
      this.#clock.sleep(Math.max(0, wait), watchdog.signal).then(() => {
        log.error("{identity} could not renew {lock} within {ms} ms: stepping down", {
          identity,
          lock: lock.describe(),
          ms: timings.renewDeadlineMs,
        });
        term.abort(new Error("Renew deadline passed"));
      }, () => {}); // Re-armed or term over.
    };
    armDeadline();
    const onStop = () => term.abort(stop.reason);
    stop.addEventListener("abort", onStop, { once: true });
    const work = this.#o.lead({ identity, transitions, signal: term.signal }).then(
      () => {
        if (!term.signal.aborted) log.warn("The leader's work ended on its own; ending the term");
      },
      (e) => {
        if (!term.signal.aborted) {
          log.error("The leader's work failed: {error}", { error: String(e) });
        }
      },
    ).finally(() => term.abort(new Error("The leader's work ended")));
    try {
      while (!term.signal.aborted) {
        try {
          await this.#clock.sleep(timings.retryPeriodMs, term.signal);
        } catch {
          break; // Term ended while waiting.
        }
        const started = this.#clock.now();
        const remaining = lastRenew + timings.renewDeadlineMs - started;
        const result = await this.#attempt(
          term.signal,
          Math.min(timings.requestTimeoutMs, remaining),
        )
          .catch(() => "failed" as Attempt);
        if (result === "acquired") {
          lastRenew = started;
          armDeadline();
        } else if (result === "held") {
          log.error("{identity} lost {lock} to {holder}", {
            identity,
            lock: lock.describe(),
            holder: this.#holder,
          });
          term.abort(new Error("Lease lost"));
        }
        // "failed": keep trying every retry period until the deadline timer fires.
      }
    } finally {
      watchdog.abort();
      stop.removeEventListener("abort", onStop);
      // The work stops before the lock is released: never two pumps at once.
      await work;
    }
    if (stop.aborted && this.#holder === identity) await this.#release();
  }

  /** Gives the lock up (empty holder, 1 s duration) so a follower takes over at once. */
  async #release(): Promise<void> {
    const { lock, identity, timings } = this.#o;
    const now = this.#clock.now();
    const { signal, done } = this.#bounded(new AbortController().signal, timings.requestTimeoutMs);
    try {
      const current = await lock.get(signal);
      if (current === undefined || current.holderIdentity !== identity) return;
      await lock.update({
        holderIdentity: "",
        leaseDurationSeconds: 1,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaderTransitions: current.leaderTransitions,
      }, signal);
      log.info("{identity} released {lock}", { identity, lock: lock.describe() });
    } catch (e) {
      log.warn("Cannot release {lock}: {error}; it expires by itself", {
        lock: lock.describe(),
        error: String(e),
      });
    } finally {
      done();
    }
  }
}
