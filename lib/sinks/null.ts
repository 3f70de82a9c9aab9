/**
 * The null sink: acknowledges everything at once and counts it. For
 * benchmarks, where the pump itself is what is measured.
 *
 * @module
 */

import type { EventRecord, Sink } from "./sink.ts";

/** Options for {@linkcode NullSink}. */
export interface NullSinkOptions {
  /** The sink's name in logs, metrics and routes (default "null"; named sinks of kevents_sinks). */
  name?: string;
}

/** Drops every record after counting it. */
export class NullSink implements Sink {
  readonly name: string;
  /** Records acknowledged so far. */
  count = 0;

  constructor(options: NullSinkOptions = {}) {
    this.name = options.name ?? "null";
  }

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
