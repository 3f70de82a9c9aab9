/**
 * Time as the long-running parts of kevents see it: a clock they can be
 * handed, so tests control time instead of sleeping.
 *
 * @module
 */

/** A source of time and of abortable waits. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with `signal.reason` as soon as the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Milliseconds on a clock that never jumps (NTP steps, a hand-set date)
   * and keeps running while the process is paused; only differences mean
   * anything. Clocks without one are read through `now()`.
   */
  monotonic?(): number;
}

/** Reads `clock`'s monotonic time, falling back to `now()` for clocks that have none (test clocks). */
export function monotonicNow(clock: Clock): number {
  return clock.monotonic?.() ?? clock.now();
}

/** Waits `ms` on the real timer; rejects with the signal's reason when aborted. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(id);
      reject(signal!.reason);
    };
    const id = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: delay,
  monotonic: () => performance.now(),
};
