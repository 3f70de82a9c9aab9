/**
 * The pump's deliverer: batches off the queue to every sink, and the
 * batch's position acknowledged to the checkpointer once all took it.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { ShutdownBudgetError } from "../election/mod.ts";
import type { EventRecord } from "../sinks/mod.ts";
import { Backoff, systemClock } from "../time/mod.ts";
import { type BoundedQueue, gather } from "./_queue.ts";
import { sendWithRetry } from "./_send.ts";
import type { Item, PumpOptions } from "./pump.ts";

const log = getLogger(["kevents", "pump"]);

/**
 * Takes batches off the queue until it is drained (or `signal` aborts),
 * sends each to every sink (its route's part of it), and acknowledges the
 * batch's last position once every sink took it. Resolves when the queue is
 * closed and empty or the term ends; a batch cut by the end of the term is
 * not acknowledged.
 */
export async function deliverLoop(
  o: PumpOptions,
  queue: BoundedQueue<Item>,
  signal: AbortSignal,
): Promise<void> {
  const grace = o.stopGraceMs ?? 2000;
  const clock = o.clock ?? systemClock;
  const backoff = new Backoff({ clock, random: o.random, initialMs: 500 });
  // A send in flight when the term ends may finish within the grace period,
  // so that what reached the sink is also acknowledged; then it is cut. One
  // controller for the whole loop: per-batch controllers and their abort
  // errors cost a sixth of the pump's time in profiles. A spent shutdown
  // budget cuts at once: the grace is already over.
  const hard = new AbortController();
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    if (signal.reason instanceof ShutdownBudgetError) hard.abort(signal.reason);
    else graceTimer = setTimeout(() => hard.abort(signal.reason), grace);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      let items: Item[];
      try {
        items = await queue.take(o.batchSize ?? 500, signal);
      } catch {
        return; // Stopped while idle: nothing in flight.
      }
      if (items.length === 0) return; // Drained: the reader stopped and the queue is empty.
      const windowMs = o.batchWindowMs ?? 0;
      if (windowMs > 0 && items.length < (o.batchSize ?? 500)) {
        await gather(queue, items, o.batchSize ?? 500, windowMs, clock, o.drain, signal);
      }
      const records: EventRecord[] = [];
      const delivering: Item[] = [];
      for (const item of items) {
        if (item.record === undefined) continue;
        records.push(item.record);
        delivering.push(item);
      }
      if (records.length > 0) {
        try {
          // Within its request and time budgets; it degrades to fewer tags,
          // never fails a batch. A drain sends what it holds at once.
          if (o.drain?.aborted !== true) await o.enrich?.(records, hard.signal);
          await Promise.all(
            o.sinks.map((sink) => {
              const route = o.routes?.get(sink.name);
              if (route === undefined) {
                return sendWithRetry(sink, records, delivering, hard.signal, backoff, o);
              }
              // Deliberately skipped records are passed like acknowledged ones.
              const mine = delivering.filter((i) => route(i.record!));
              if (mine.length === 0) return Promise.resolve();
              const subset = mine.map((i) => i.record!);
              return sendWithRetry(sink, subset, mine, hard.signal, backoff, o);
            }),
          );
        } catch (e) {
          if (!hard.signal.aborted) throw e;
          if (hard.signal.reason instanceof ShutdownBudgetError) {
            o.metrics?.shutdownCut(records.length);
            log.warn(
              "The shutdown budget cut a send of {n} events: the next leader delivers them again",
              { n: records.length },
            );
          }
          return; // Not acknowledged: the next leader delivers it again.
        }
        // Delivered: the next failure starts its backoff from the beginning.
        backoff.reset();
        o.onDelivered?.(records);
      }
      const last = items[items.length - 1]!;
      if (last.token !== undefined) {
        o.lag?.acknowledged(last.token, last.covers);
        o.acknowledge(last.token, records.length);
      }
      if (signal.aborted) return;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    clearTimeout(graceTimer);
  }
}
