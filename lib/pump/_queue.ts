/**
 * The pump's bounded queue between the reader and the deliverer.
 *
 * @module
 */

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
