/**
 * Where delivered events go. A sink acknowledges a batch by resolving
 * `send`; the pump moves the checkpoint only past acknowledged batches.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";

/** One delivered event. */
export interface EventRecord {
  /**
   * Idempotency key: the event's uid and resourceVersion. The same key twice
   * is the same delivery (a replay after a hard crash); a repeated event
   * (count bumped) has a new resourceVersion, hence a new key.
   */
  key: string;
  /** ADDED or MODIFIED. */
  type: "ADDED" | "MODIFIED";
  event: CoreV1Event;
}

/** A destination for events. */
export interface Sink {
  /** Name for logs and metrics. */
  readonly name: string;
  /** Delivers a batch; resolves once the destination has it. Rejects with the signal's reason on abort. */
  send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void>;
  /** Releases what the sink holds. */
  close(): Promise<void>;
}
