/**
 * A controllable {@linkcode Clock} for tests: time moves only when the test
 * advances it, and sleepers wake in deadline order with the microtasks they
 * start settled between wakes, so code that sleeps again on waking is woken
 * too when its new deadline falls inside the same advance.
 *
 * Several clocks can share one timeline with different readings
 * ({@linkcode FakeClock.skewed}): replicas whose clocks disagree by hours but
 * run at the same rate.
 *
 * @module
 */

import { AssertionError } from "node:assert/strict";
import type { Clock } from "../lib/time/clock.ts";

interface Sleeper {
  deadline: number;
  seq: number;
  wake: () => void;
}

/** The timers and elapsed time that skewed clocks share. */
class Timeline {
  elapsed = 0;
  seq = 0;
  sleepers: Sleeper[] = [];
}

/**
 * Lets every promise reaction that is already queued run, and the ones they
 * queue: a timer task runs only once the microtask queue is empty. (A
 * MessageChannel message would be faster, but Deno may deliver it before
 * a long chain of reactions has run.)
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A clock that moves only when told; its sleepers wake in deadline order. */
export class FakeClock implements Clock {
  #base: number;
  #timeline: Timeline;

  /** A clock reading `start` (ms since the epoch; default 2026-01-01T00:00:00Z). */
  constructor(start: number = Date.UTC(2026, 0, 1)) {
    this.#base = start;
    this.#timeline = new Timeline();
  }

  /** Another clock on the same timeline, reading `offsetMs` more than this one. */
  skewed(offsetMs: number): FakeClock {
    const other = new FakeClock(this.#base + offsetMs);
    other.#timeline = this.#timeline;
    return other;
  }

  /** Milliseconds since the epoch, as this clock reads them. */
  now(): number {
    return this.#base + this.#timeline.elapsed;
  }

  /** Resolves when the timeline has moved `ms` on; rejects with `signal.reason` on abort. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const timeline = this.#timeline;
    return new Promise((resolve, reject) => {
      const sleeper: Sleeper = {
        deadline: timeline.elapsed + Math.max(0, ms),
        seq: timeline.seq++,
        wake: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        timeline.sleepers = timeline.sleepers.filter((s) => s !== sleeper);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      timeline.sleepers.push(sleeper);
    });
  }

  /** How many sleepers wait on this clock's timeline. */
  get pending(): number {
    return this.#timeline.sleepers.length;
  }

  /**
   * Moves time `ms` forward, waking due sleepers one at a time in deadline
   * order (ties in the order they went to sleep) and letting the code they
   * resume run before the next one wakes.
   */
  async advance(ms: number): Promise<void> {
    const timeline = this.#timeline;
    const target = timeline.elapsed + Math.max(0, ms);
    await settle();
    for (;;) {
      let next: Sleeper | undefined;
      for (const s of timeline.sleepers) {
        if (s.deadline > target) continue;
        if (
          next === undefined || s.deadline < next.deadline ||
          (s.deadline === next.deadline && s.seq < next.seq)
        ) next = s;
      }
      if (next === undefined) break;
      timeline.sleepers = timeline.sleepers.filter((s) => s !== next);
      timeline.elapsed = next.deadline;
      next.wake();
      await settle();
    }
    timeline.elapsed = target;
    await settle();
  }

  /**
   * Advances in steps of `stepMs` until `predicate` holds (checked before
   * each step); throws an AssertionError when it still does not after
   * `maxMs`. Resolves with the time elapsed.
   */
  async runUntil(
    predicate: () => boolean,
    options: { stepMs: number; maxMs: number; message?: string },
  ): Promise<number> {
    let elapsed = 0;
    await settle();
    while (!predicate()) {
      if (elapsed >= options.maxMs) {
        throw new AssertionError({
          message: options.message ?? `Condition still false after ${options.maxMs} ms`,
        });
      }
      await this.advance(options.stepMs);
      elapsed += options.stepMs;
    }
    return elapsed;
  }
}
