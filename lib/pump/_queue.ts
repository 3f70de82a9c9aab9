/**
 * The pump's bounded queue between the reader and the deliverer, and the
 * batch window the deliverer gathers with.
 *
 * @module
 */

import type { Clock } from "../time/mod.ts";

/** A FIFO with a capacity: push waits while full, take waits while empty. */
export class BoundedQueue<T> {
  /** The items from `#head` on; the slots before it are emptied as they are taken. */
  #items: (T | undefined)[] = [];
  #head = 0;
  #capacity: number;
  #notFull: (() => void) | undefined;
  #notEmpty: (() => void) | undefined;
  #closed = false;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  get full(): boolean {
    return this.size >= this.#capacity;
  }

  /** Adds `item` at once if there is room; false when full (then `push` waits). */
  tryPush(item: T): boolean {
    if (this.size >= this.#capacity) return false;
    this.#items.push(item);
    this.#notEmpty?.();
    return true;
  }

  async push(item: T, signal: AbortSignal): Promise<void> {
    while (this.size >= this.#capacity) {
      signal.throwIfAborted();
      await this.#waitFor("full", signal);
    }
    this.#items.push(item);
    this.#notEmpty?.();
  }

  /** Whether {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Resolves once the queue holds something or is closed; rejects with the
   * signal's reason on abort. One waiter at a time, as for `take`.
   */
  waitForItems(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.size > 0 || this.#closed) return Promise.resolve();
    return this.#waitFor("empty", signal);
  }

  /** No more pushes: once empty, `take` returns an empty batch instead of waiting. */
  close(): void {
    this.#closed = true;
    this.#notEmpty?.();
  }

  async take(max: number, signal: AbortSignal): Promise<T[]> {
    while (this.size === 0) {
      signal.throwIfAborted();
      if (this.#closed) return [];
      await this.#waitFor("empty", signal);
    }
    const start = this.#head;
    const out = this.#items.slice(start, start + max) as T[];
    this.#head += out.length;
    // Nothing taken may stay reachable from here: an item (its record, the
    // network chunk its text is cut from) outliving its send would survive
    // garbage collections for nothing, and be copied by each.
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    } else {
      this.#items.fill(undefined, start, this.#head);
    }
    this.#notFull?.();
    return out;
  }

  #waitFor(what: "full" | "empty", signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      const done = () => {
        signal.removeEventListener("abort", onAbort);
        if (what === "full") this.#notFull = undefined;
        else this.#notEmpty = undefined;
        resolve();
      };
      if (what === "full") this.#notFull = done;
      else this.#notEmpty = done;
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/**
 * Adds to `items` what the queue receives within `windowMs` (on `clock`),
 * until the batch is full, the queue closes, the drain begins or `signal`
 * aborts: a batch window.
 */
export async function gather<T>(
  queue: BoundedQueue<T>,
  items: T[],
  max: number,
  windowMs: number,
  clock: Clock,
  drain: AbortSignal | undefined,
  signal: AbortSignal,
): Promise<void> {
  const window = new AbortController();
  const stop = drain === undefined
    ? AbortSignal.any([signal, window.signal])
    : AbortSignal.any([signal, drain, window.signal]);
  const timer = clock.sleep(windowMs, stop).then(() => window.abort(), () => {});
  try {
    while (items.length < max && !stop.aborted && !queue.closed) {
      try {
        await queue.waitForItems(stop);
      } catch {
        break; // The window closed, the drain began or the pump stops.
      }
      items.push(...await queue.take(max - items.length, stop).catch(() => []));
    }
  } finally {
    window.abort();
    await timer;
  }
}
