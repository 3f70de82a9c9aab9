/**
 * The seam through which a candidate asks, right before a write that would
 * take the lock, whether it may: never before a renewal, nor when the lock
 * already names this replica. While the guard says no, the candidate leaves
 * the lock alone and polls it every retry period (watching or not), asking
 * again each time. kevents' guard is the rival-lock guard (rival_lock.ts).
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";

/** Asked by a candidate before it takes the lock (`ElectorOptions.guard`). */
export interface AcquireGuard {
  /**
   * Whether the candidate may take the lock now; false leaves it alone until
   * its next try. Rejects when it cannot tell: the try fails.
   */
  mayAcquire(signal: AbortSignal): Promise<boolean>;
  /**
   * The candidate found its lock held by another replica, so the guard was
   * not asked: nothing but that holder keeps it from leading now.
   */
  lockHeld?(): void;
}

const log = getLogger(["kevents", "elector"]);

/**
 * Asks `guard` (when there is one) whether the candidate may take the lock:
 * undefined when it may, else how the try ends: "blocked", or "failed" when
 * the guard could not tell (logged). Rejects only when `signal` aborted.
 */
export async function askGuard(
  guard: AcquireGuard | undefined,
  signal: AbortSignal,
): Promise<"blocked" | "failed" | undefined> {
  if (guard === undefined) return undefined;
  try {
    return await guard.mayAcquire(signal) ? undefined : "blocked";
  } catch (e) {
    if (signal.aborted) throw e;
    log.warn("{error}; trying again in a retry period", { error: String(e) });
    return "failed";
  }
}
