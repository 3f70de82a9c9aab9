/**
 * Jittered exponential backoff for retries against the API server: the
 * first retry waits about `initialMs`, each further failure doubles it up
 * to `maxMs`, and a success resets it.
 *
 * @module
 */

import type { Clock } from "./clock.ts";

/** Options for {@linkcode Backoff}. */
export interface BackoffOptions {
  /** First wait (default 1000 ms: a dead API server costs about one request per second). */
  initialMs?: number;
  /** Longest wait (default 30,000 ms). */
  maxMs?: number;
  /** Relative jitter, e.g. 0.2 for +-20% (default 0.2). */
  jitter?: number;
  clock: Clock;
  random?: () => number;
}

/** Retry delays that grow with consecutive failures. */
export class Backoff {
  #o: Required<Omit<BackoffOptions, "clock" | "random">>;
  #clock: Clock;
  #random: () => number;
  #failures = 0;

  constructor(options: BackoffOptions) {
    this.#o = {
      initialMs: options.initialMs ?? 1000,
      maxMs: options.maxMs ?? 30_000,
      jitter: options.jitter ?? 0.2,
    };
    this.#clock = options.clock;
    this.#random = options.random ?? Math.random;
  }

  /** Consecutive failures so far. */
  get failures(): number {
    return this.#failures;
  }

  /** The wait after the next failure, in ms. */
  next(): number {
    const base = Math.min(this.#o.maxMs, this.#o.initialMs * 2 ** this.#failures);
    this.#failures++;
    return base * (1 + this.#o.jitter * (2 * this.#random() - 1));
  }

  /** Waits after a failure; rejects with the signal's reason on abort. */
  wait(signal: AbortSignal): Promise<void> {
    return this.#clock.sleep(this.next(), signal);
  }

  /** Forgets past failures. */
  reset(): void {
    this.#failures = 0;
  }
}
