/**
 * The null sink: acknowledges everything at once and counts it. For
 * benchmarks, where the pump itself is what is measured.
 *
 * @module
 */

import type { EventRecord, Sink } from "./sink.ts";

/** Drops every record after counting it. */
export class NullSink implements Sink {
  readonly name = "null";
  /** Records acknowledged so far. */
  count = 0;

  /** Counts the batch. */
  send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    this.count += batch.length;
    return Promise.resolve();
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
