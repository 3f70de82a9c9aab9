/**
 * The election's timings and the relations between them that client-go
 * checks before anything runs.
 *
 * @module
 */

/** Timing of the election, in ms. */
export interface ElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Upper bound of one lock request (kept well below the renew deadline). */
  requestTimeoutMs: number;
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
