/**
 * One batch to one sink, retried with backoff until the sink takes it:
 * records the sink's receiver refused for good are set aside (logged with
 * their key, counted), never retried; a term past its renew deadline sends
 * nothing.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { TermExpiredError } from "../election/mod.ts";
import type { EventRecord, Sink } from "../sinks/mod.ts";
import { type Backoff, systemClock } from "../time/mod.ts";
import type { Item, PumpOptions } from "./pump.ts";

const log = getLogger(["kevents", "pump"]);

/** Sends `records` (the records of `items`) to `sink` until it takes them; rejects only on abort or an expired term. */
export async function sendWithRetry(
  sink: Sink,
  records: readonly EventRecord[],
  /** The items of `records`, with their events' types and times. */
  items: readonly Item[],
  signal: AbortSignal,
  backoff: Backoff,
  o: PumpOptions,
): Promise<void> {
  const options = o.fence === undefined ? undefined : { fence: o.fence };
  for (;;) {
    try {
      const droppedBefore = sink.dropped ?? 0;
      // Before every attempt, retries included: a term past its renew
      // deadline (a paused process waking up) sends nothing.
      o.fence?.assertCurrent();
      const result = await sink.send(records, signal, options);
      // Records the receiver refused for good are set aside, never retried;
      // the rest of the batch was delivered, and the checkpoint moves on.
      const rejected = result ? result.rejected : [];
      for (const r of rejected) {
        log.warn("Sink {sink} set aside event {key}: refused for good ({status}: {reason})", {
          sink: sink.name,
          ...r,
        });
      }
      const setAside = new Set(rejected.map((r) => r.key));
      const rest = setAside.size === 0 ? items : items.filter((i) => !setAside.has(i.record!.key));
      if (o.metrics !== undefined) {
        if (rejected.length > 0) o.metrics.rejected(sink.name, rejected.length);
        if ((sink.dropped ?? 0) > droppedBefore) {
          o.metrics.dropped(sink.name, rest.map((i) => i.type));
        } else {
          o.metrics.delivered(sink.name, rest, (o.clock ?? systemClock).now());
        }
      }
      return;
    } catch (e) {
      if (signal.aborted || e instanceof TermExpiredError) throw e;
      o.metrics?.sinkError(sink.name);
      log.warn("Sink {sink} failed to take {n} events: {error}; retrying", {
        sink: sink.name,
        n: records.length,
        error: String(e),
      });
      await backoff.wait(signal);
    }
  }
}
