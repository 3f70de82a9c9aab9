/**
 * A {@linkcode Lock} for elector tests on a FakeClock: it remembers its
 * requests in flight, and can be cut off from the API server.
 *
 * @module
 */

import type { LeaderElectionRecord, Lock } from "../lib/election/lock.ts";

/**
 * A Lock that remembers its requests in flight, so the test can wait for
 * the API server's answers before it moves the clock on. `cut()` stands for
 * a replica cut off from the API server: its calls never reach the server
 * and hang until their signal aborts.
 */
export class TrackedLock implements Lock {
  readonly inFlight = new Set<Promise<unknown>>();
  #inner: Lock;
  #cut = false;

  constructor(inner: Lock) {
    this.#inner = inner;
  }

  cut(): void {
    this.#cut = true;
  }

  get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined> {
    return this.#call(() => this.#inner.get(signal), signal);
  }

  create(r: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    return this.#call(() => this.#inner.create(r, signal), signal);
  }

  update(r: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    return this.#call(() => this.#inner.update(r, signal), signal);
  }

  describe(): string {
    return this.#inner.describe();
  }

  #call<T>(send: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (this.#cut) {
      return new Promise<T>((_, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    const p = send();
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }
}
