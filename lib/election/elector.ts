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
 * Beyond client-go (`watchLock`), a candidate can keep one long-lived watch
 * on the lock object instead of reading it every retry period. Each change
 * the watch reports is observed exactly as a read would be, at the time it
 * arrives on our clock, so the expiry rule stays the same; the candidate
 * tries at once when the watch shows the lock released (or deleted), and
 * otherwise when the observed record's lease has run out on our clock. The
 * server ends the watch about every five minutes and it is reopened from
 * where it stopped, so a follower costs about one request per five minutes
 * while the leader renews. While no watch is open (it failed, and is being
 * reopened with backoff) the candidate polls every retry period as before.
 * The leader does not watch: it renews.
 *
 * A candidate may also be given a guard (acquire_guard.ts), asked right
 * before each write that would take the lock.
 *
 * A term ends two ways. A stop (SIGTERM) first aborts `term.drain`: the
 * work finishes what is in flight while the leader keeps renewing, for at
 * most the shutdown budget; then `term.signal` aborts. Losing the lease,
 * passing the renew deadline, or the budget running out aborts
 * `term.signal` at once. A term whose work throws StepDownError releases
 * the lock and keeps away from it for a while, so that another replica
 * leads.
 *
 * What this does not do: it cannot fence what leaves the process. The work
 * asks `term.assertCurrent()` right before sending (the renew deadline on
 * the monotonic clock), which stops a replica woken from a pause; a pause
 * between that check and the bytes leaving is still possible, which only a
 * receiver checking a fencing token can close. It assumes clocks that run
 * at the same rate within the margin.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { type Clock, monotonicNow, systemClock } from "../time/mod.ts";
import { AlreadyExistsError, ConflictError } from "../kube/mod.ts";
import { microTime } from "./lease_lock.ts";
import type { LeaderElectionRecord, Lock } from "./lock.ts";
import { watchLock } from "./lock_watch.ts";
import { type AcquireGuard, askGuard } from "./acquire_guard.ts";
import { type ElectionTimings, validateTimings } from "./timings.ts";

export { type ElectionTimings, validateTimings } from "./timings.ts";
export type { AcquireGuard } from "./acquire_guard.ts";
import { ShutdownBudgetError, StepDownError, type Term, TermExpiredError } from "./term.ts";

export {
  ShutdownBudgetError,
  StepDownError,
  type Term,
  TermExpiredError,
  unelectedTerm,
} from "./term.ts";

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
  /**
   * On stop, how long the term's work may drain (the lease renewed
   * meanwhile) before it is cut (default 0: the term ends at once, as
   * client-go's does; kevents passes `kevents_shutdown_budget_seconds`).
   */
  shutdownBudgetMs?: number;
  /**
   * After a term whose work threw {@linkcode StepDownError}, how long the
   * replica stays away from the lock: this doubles with every such term in
   * a row, up to 16 times (default two lease durations).
   */
  stepDownBackoffMs?: number;
  /**
   * Candidates watch the lock, when it can be watched ({@linkcode Lock.watch}),
   * and try to take it as soon as it is released or its lease has run out,
   * polling every retry period only while no watch is open (default false:
   * they poll, as client-go's do).
   */
  watchLock?: boolean;
  /** Asked before each write that would take the lock (acquire_guard.ts; default none). */
  guard?: AcquireGuard;
}

const log = getLogger(["kevents", "elector"]);

/** How a try ended; "blocked": the guard kept the candidate from taking a free lock. */
type Attempt = "acquired" | "held" | "blocked" | "failed";

/**
 * Runs leader election until `signal` aborts: candidate, leader for a term,
 * candidate again. Settles after the last term's work has settled and the
 * lock was released.
 */
export async function runElector(options: ElectorOptions, signal: AbortSignal): Promise<void> {
  validateTimings(options.timings);
  const state = new ElectorState(options);
  let pause = 0;
  while (!signal.aborted) {
    const acquired = await state.acquire(signal, pause);
    if (!acquired) break;
    pause = await state.leadTerm(signal);
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
  /** Whether the candidate's lock watch is open (accepted by the server, not failed since). */
  #watchOpen = false;
  /**
   * What the watch reported last (undefined record: deleted) and when it
   * arrived on our clock. The watch only leaves it here: the candidate
   * observes it between its tries, so nothing a watch reports can change
   * what a try or a term started from.
   */
  #watched: { record: LeaderElectionRecord | undefined; at: number } | undefined;
  #watchedCount = 0;
  #observedCount = 0;
  /** Wakes the candidate waiting for its next try. */
  #wake: (() => void) | undefined;
  /** When the last try began, on the monotonic clock. */
  #triedAt = 0;
  /** Terms in a row that ended in a step-down. */
  #stepDowns = 0;

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

  /**
   * One try, as client-go's tryAcquireOrRenew; a candidate's (`acquiring`)
   * asks the guard before it takes the lock.
   */
  async #tryAcquireOrRenew(signal: AbortSignal, acquiring: boolean): Promise<Attempt> {
    const { lock, identity, timings } = this.#o;
    const now = this.#clock.now();
    // A successful try holds the lease from when it was sent, not answered:
    // a renewal that took long must not stretch the renew deadline.
    this.#triedAt = monotonicNow(this.#clock);
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
      const barred = acquiring ? await askGuard(this.#o.guard, signal) : undefined;
      if (barred !== undefined) return barred;
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
    if (current.holderIdentity !== "" && !mine && !expired) {
      if (acquiring) this.#o.guard?.lockHeld?.();
      return "held";
    }
    const barred = acquiring && !mine ? await askGuard(this.#o.guard, signal) : undefined;
    if (barred !== undefined) return barred;
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

  async #attempt(parent: AbortSignal, timeoutMs: number, acquiring: boolean): Promise<Attempt> {
    const { signal, done } = this.#bounded(parent, timeoutMs);
    try {
      return await this.#tryAcquireOrRenew(signal, acquiring);
    } catch (e) {
      if (parent.aborted) throw e;
      // Our own request timeout fired: that attempt failed.
      return "failed";
    } finally {
      done();
    }
  }

  /**
   * Tries until we hold the lock; false when stopped first. Tries every
   * retry period, or, watching, when the watch shows the lock free or its
   * lease runs out (see {@linkcode #nextTry}). After a term it first waits
   * `pauseMs` (a retry period, or a step-down backoff), so work that fails
   * at once cannot spin on the lock. Settles only after its watch has closed.
   */
  async acquire(signal: AbortSignal, pauseMs: number): Promise<boolean> {
    const { timings, lock, identity } = this.#o;
    log.info("{identity} is a candidate for {lock}", { identity, lock: lock.describe() });
    const watching = this.#o.watchLock === true && lock.watch !== undefined;
    this.#watchOpen = false;
    this.#watched = undefined;
    this.#observedCount = this.#watchedCount;
    const stopWatch = new AbortController();
    const onStop = () => stopWatch.abort(signal.reason);
    signal.addEventListener("abort", onStop, { once: true });
    let watcher: Promise<void> | undefined;
    try {
      if (pauseMs > 0) await this.#clock.sleep(pauseMs, signal);
      for (;;) {
        const watchedBefore = this.#watchedCount;
        const result = await this.#attempt(signal, timings.requestTimeoutMs, true);
        if (result === "acquired") return true;
        // Opened after the first try, so that it starts from the version just read.
        if (watching && watcher === undefined) watcher = this.#watchLock(stopWatch.signal);
        await this.#nextTry(signal, result, watchedBefore);
      }
    } catch (e) {
      if (signal.aborted) return false;
      throw e;
    } finally {
      signal.removeEventListener("abort", onStop);
      // A leader does not watch: the watch closes before the term starts.
      stopWatch.abort(new Error("No longer a candidate"));
      await watcher;
    }
  }

  /**
   * Waits until the candidate's next try. Polling (no watch open, or the
   * last try failed or was blocked by the guard): one retry period,
   * jittered. Watching: until the watch reports the lock released, deleted
   * or ours (a change since the try began, so a try that lost a race does
   * not repeat at once), or until the observed record has been unchanged
   * for its lease duration on our clock: the rule the try itself applies.
   */
  async #nextTry(signal: AbortSignal, result: Attempt, watchedBefore: number): Promise<void> {
    const { timings, identity } = this.#o;
    const pollAt = this.#clock.now() + this.#jittered(timings.retryPeriodMs);
    for (;;) {
      if (this.#watchedCount !== this.#observedCount && this.#watched !== undefined) {
        this.#observedCount = this.#watchedCount;
        this.#observe(this.#watched.record, this.#watched.at);
      }
      if (this.#watchedCount !== watchedBefore) {
        const holder = this.#watched?.record?.holderIdentity ?? "";
        if (holder === "" || holder === identity) return;
      }
      let wakeAt: number;
      if (!this.#watchOpen || result !== "held") wakeAt = pollAt;
      else if (this.#observed === undefined) wakeAt = Infinity; // The watch will report it.
      else wakeAt = this.#observedAt + this.#observed.leaseDurationSeconds * 1000;
      if (wakeAt <= this.#clock.now()) return;
      if (await this.#sleepUntil(wakeAt, signal) === "time") return;
    }
  }

  /** Sleeps until `wakeAt` on our clock ("time") or until the watch reports something ("change"). */
  async #sleepUntil(wakeAt: number, signal: AbortSignal): Promise<"time" | "change"> {
    signal.throwIfAborted();
    const timer = new AbortController();
    const onAbort = () => timer.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await new Promise<"time" | "change">((resolve, reject) => {
        this.#wake = () => resolve("change");
        timer.signal.addEventListener("abort", () => reject(timer.signal.reason), { once: true });
        if (wakeAt !== Infinity) {
          this.#clock.sleep(wakeAt - this.#clock.now(), timer.signal)
            .then(() => resolve("time"), () => {}); // Aborted: settled by the abort above.
        }
      });
    } finally {
      this.#wake = undefined;
      signal.removeEventListener("abort", onAbort);
      timer.abort();
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The candidate's watch of the lock (lock_watch.ts), reported into this state. */
  async #watchLock(signal: AbortSignal): Promise<void> {
    try {
      await watchLock(this.#o.lock, {
        clock: this.#clock,
        random: this.#random,
        retryPeriodMs: this.#o.timings.retryPeriodMs,
        opened: () => {
          this.#watchOpen = true;
          this.#notify();
        },
        changed: (record) => {
          this.#watched = { record, at: this.#clock.now() };
          this.#watchedCount += 1;
          this.#notify();
        },
        failed: () => {
          this.#watchOpen = false;
          this.#notify();
        },
      }, signal);
    } finally {
      this.#watchOpen = false;
    }
  }

  /**
   * Leads one term: starts the work, renews, ends the term on loss or
   * stop. On stop the work drains while the lease is renewed, for at most
   * the shutdown budget; the lock is released only after the work settled.
   * Returns how long to wait before trying to lead again.
   */
  async leadTerm(stop: AbortSignal): Promise<number> {
    const { timings, identity, lock } = this.#o;
    const budgetMs = this.#o.shutdownBudgetMs ?? 0;
    const term = new AbortController();
    const drain = new AbortController();
    term.signal.addEventListener("abort", () => drain.abort(term.signal.reason), { once: true });
    const transitions = this.#observed?.leaderTransitions ?? 0;
    log.info("{identity} leads {lock} (transition {transitions})", {
      identity,
      lock: lock.describe(),
      transitions,
    });
    // The renew deadline counts, on the monotonic clock, from when the last
    // successful write was sent; a watchdog ends the term when it passes,
    // even if a request hangs, and assertCurrent refuses work past it even
    // before the watchdog's timer had its turn (a process waking from a pause).
    let lastRenew = this.#triedAt;
    const pastDeadline = () => monotonicNow(this.#clock) - lastRenew >= timings.renewDeadlineMs;
    const deadlineError = () =>
      new TermExpiredError(
        `Renew deadline passed: ${identity} could not renew ${lock.describe()} within ${timings.renewDeadlineMs} ms`,
      );
    let watchdog = new AbortController();
    const armDeadline = () => {
      watchdog.abort();
      watchdog = new AbortController();
      const wait = lastRenew + timings.renewDeadlineMs - monotonicNow(this.#clock);
      this.#clock.sleep(Math.max(0, wait), watchdog.signal).then(() => {
        log.error("{identity} could not renew {lock} within {ms} ms: stepping down", {
          identity,
          lock: lock.describe(),
          ms: timings.renewDeadlineMs,
        });
        term.abort(deadlineError());
      }, () => {}); // Re-armed or term over.
    };
    armDeadline();
    const budget = new AbortController();
    const onStop = () => {
      if (budgetMs <= 0) return term.abort(stop.reason);
      log.info("{identity} drains its term (shutdown budget {ms} ms), renewing meanwhile", {
        identity,
        ms: budgetMs,
      });
      drain.abort(stop.reason);
      this.#clock.sleep(budgetMs, budget.signal).then(() => {
        log.warn("The shutdown budget of {ms} ms ran out: cutting the work still in flight", {
          ms: budgetMs,
        });
        term.abort(new ShutdownBudgetError(budgetMs));
      }, () => {}); // The work finished first.
    };
    if (stop.aborted) onStop();
    else stop.addEventListener("abort", onStop, { once: true });
    let stepDown: StepDownError | undefined;
    const work = this.#o.lead({
      identity,
      transitions,
      signal: term.signal,
      drain: drain.signal,
      assertCurrent: () => {
        if (term.signal.aborted) {
          const reason = term.signal.reason;
          throw reason instanceof TermExpiredError
            ? reason
            : new TermExpiredError(`The term has ended: ${String(reason)}`);
        }
        if (pastDeadline()) {
          const e = deadlineError();
          if (!term.signal.aborted) {
            log.error("{identity} is past its renew deadline before sending: stepping down", {
              identity,
              error: e.message,
            });
          }
          term.abort(e);
          throw e;
        }
      },
    }).then(
      () => {
        if (!term.signal.aborted && !drain.signal.aborted) {
          log.warn("The leader's work ended on its own; ending the term");
        }
      },
      (e) => {
        if (e instanceof StepDownError) {
          stepDown = e;
          log.error("{identity} steps down: {error}", { identity, error: e.message });
        } else if (!term.signal.aborted) {
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
        const remaining = lastRenew + timings.renewDeadlineMs - monotonicNow(this.#clock);
        const result = await this.#attempt(
          term.signal,
          Math.min(timings.requestTimeoutMs, remaining),
          false,
        )
          .catch(() => "failed" as Attempt);
        if (result === "acquired") {
          // Sent before a pause and answered after it: the deadline counts
          // from the sending, and the re-armed watchdog fires at once.
          lastRenew = this.#triedAt;
          armDeadline();
        } else if (result === "held") {
          log.error("{identity} lost {lock} to {holder}", {
            identity,
            lock: lock.describe(),
            holder: this.#holder,
          });
          term.abort(new TermExpiredError(`Lease lost: another replica wrote ${lock.describe()}`));
        }
        // "failed": keep trying every retry period until the deadline timer fires.
      }
    } finally {
      watchdog.abort();
      budget.abort();
      stop.removeEventListener("abort", onStop);
      // The work stops before the lock is released: never two pumps at once.
      await work;
    }
    if ((stop.aborted || stepDown !== undefined) && this.#holder === identity) {
      await this.#release();
    }
    if (stepDown === undefined) {
      this.#stepDowns = 0;
      return this.#jittered(timings.retryPeriodMs);
    }
    const base = this.#o.stepDownBackoffMs ?? 2 * timings.leaseDurationMs;
    const pause = base * 2 ** Math.min(this.#stepDowns, 4);
    this.#stepDowns += 1;
    log.warn("{identity} keeps away from {lock} for {seconds} s so that another replica leads", {
      identity,
      lock: lock.describe(),
      seconds: Math.round(pause / 1000),
    });
    return this.#jittered(pause);
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
