/**
 * A leadership term as the leader's work sees it: its signals (cut at once,
 * or drain first), the check made before anything leaves the process, and
 * the errors that end a term. {@linkcode unelectedTerm} gives work that
 * runs without an election the same shape.
 *
 * @module
 */

import { type Clock, systemClock } from "../time/mod.ts";

/** One leadership term, handed to the leader's work. */
export interface Term {
  /** Our identity. */
  identity: string;
  /**
   * The lock's transition count when we took it. It changes whenever the
   * lock changes hands, but a replica that takes its own lock again keeps it.
   */
  transitions: number;
  /**
   * Aborts when the term ends at once: the lease was lost, the renew
   * deadline passed, the work asked to step down, or the shutdown budget
   * ran out. The work stops without finishing what is in flight.
   */
  signal: AbortSignal;
  /**
   * Aborts when the replica is asked to stop (SIGTERM, SIGINT): the work
   * stops taking new work, finishes what is in flight and settles, while
   * the elector keeps renewing the lease for it. Aborts with `signal` too.
   * Absent: the work has nothing to drain and stops with `signal`.
   */
  drain?: AbortSignal;
  /**
   * Throws {@linkcode TermExpiredError} unless the term is still running
   * and the lease was renewed within the renew deadline, measured on the
   * monotonic clock. Called right before anything leaves the process on
   * the term's behalf (every sink attempt), so a replica that was paused
   * past its lease sends nothing when it wakes. Absent: current until
   * `signal` aborts.
   */
  assertCurrent?(): void;
}

/**
 * A term's lease can no longer be trusted: its last renewal is older than
 * the renew deadline (the process was paused, or the API server did not
 * answer), or the term has ended.
 */
export class TermExpiredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TermExpiredError";
  }
}

/**
 * Thrown by a term's work that cannot do its job here (its credentials are
 * refused, say): the elector releases the lock, so that another replica
 * takes over at once, and keeps away from it for a while
 * ({@linkcode ElectorOptions.stepDownBackoffMs}).
 */
export class StepDownError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StepDownError";
  }
}

/** The shutdown budget ran out before the term's work finished draining: what is in flight is cut. */
export class ShutdownBudgetError extends Error {
  constructor(budgetMs: number) {
    super(`The shutdown budget of ${budgetMs} ms ran out`);
    this.name = "ShutdownBudgetError";
  }
}

/**
 * A term for work that runs without leader election: it drains on `stop`,
 * is cut `budgetMs` later if still running, and is always current.
 * `dispose` removes its listeners and timer.
 */
export function unelectedTerm(
  identity: string,
  stop: AbortSignal,
  budgetMs: number,
  clock: Clock = systemClock,
): { term: Term; dispose: () => void } {
  const hard = new AbortController();
  const drain = new AbortController();
  const timer = new AbortController();
  const onStop = () => {
    drain.abort(stop.reason);
    clock.sleep(budgetMs, timer.signal).then(
      () => hard.abort(new ShutdownBudgetError(budgetMs)),
      () => {}, // Disposed: the work finished first.
    );
  };
  if (stop.aborted) onStop();
  else stop.addEventListener("abort", onStop, { once: true });
  return {
    term: {
      identity,
      transitions: 0,
      signal: hard.signal,
      drain: drain.signal,
      assertCurrent: () => {
        if (hard.signal.aborted) throw new TermExpiredError("The term has ended");
      },
    },
    dispose: () => {
      stop.removeEventListener("abort", onStop);
      timer.abort();
    },
  };
}
