/**
 * The checkpoint's lag: how long the oldest event the pump has read, and no
 * written checkpoint covers yet, has been waiting since the pump read it.
 *
 * Why it matters: the API server deletes an event its TTL after the event's
 * last update (kube-apiserver `--event-ttl`, 1 h by default). A new leader
 * resumes from the written checkpoint, so whatever waits behind it (a sink
 * down, a ConfigMap that cannot be written) must still exist when the
 * leader changes; an event that waited longer than the TTL is lost at a
 * handover or a crash. The leader warns once when the lag passes a share of
 * the TTL (`kevents_checkpoint_lag_share`), and says so again when it is
 * back under.
 *
 * How it is counted: the reader numbers the events it reads for delivery
 * and notes their arrival on the pump's clock, one mark per second of
 * reading (the lag may read up to a second high). Each position the
 * deliverer acknowledges says how many of those events it covers; a
 * position the checkpointer has written drops the marks it covers. Events
 * the filters leave out, deletions and bookmarks are not counted: nothing
 * is lost if they are read again or never.
 *
 * Memory is bounded: while no write reaches the ConfigMap (see below) no
 * mark is dropped, so past {@linkcode MAX_LAG_MARKS} marks the resolution
 * doubles, as often as needed to halve them, and marks within it of each
 * other merge, keeping the older arrival. The oldest arrival stays exact,
 * so the lag is right while nothing is written; once a write covers part
 * of a merged mark, the rest keeps the older arrival, so the lag errs high,
 * never low, by less than the resolution (under 4 s per MAX_LAG_MARKS s of
 * backlog: about 85 s for a day's). It is back to a second once a write
 * leaves at most half the marks.
 *
 * Arrival, not the event's own time: the reporter's clock may be anything,
 * and arrival is when this leader became responsible for the event. For
 * events read live the two are close; events a relist or a backfill reads
 * may already be older, so the lag is a lower bound of how close the oldest
 * of them is to its TTL.
 *
 * Only writes that reached the ConfigMap count: a position kept in memory
 * (the ConfigMap forbidden, immutable, or the token in binaryData) covers
 * nothing, since the next leader cannot resume from it.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { type Clock, systemClock } from "../time/mod.ts";
import type { Token } from "./token.ts";

/** Resolution of arrival times: reads within this many ms of a mark join it. */
const MARK_MS = 1000;
/** The most marks kept (some 200 KB): past it, neighbours merge. */
export const MAX_LAG_MARKS = 4096;
/** The lag is looked at at least this often while a term runs, in ms. */
const MAX_CHECK_EVERY_MS = 10_000;
/** And at most this often, however small the limit: the lag's resolution is a second. */
const MIN_CHECK_EVERY_MS = 1000;

/** Options for {@linkcode CheckpointLag}. */
export interface CheckpointLagOptions {
  /** The lag the leader warns about, in ms: a share of the event TTL. */
  limitMs: number;
  /** The API server's event TTL, in ms (for the warning). */
  eventTtlMs: number;
  clock?: Clock;
}

const log = getLogger(["kevents", "checkpoint"]);

/** One term's checkpoint lag; see the module documentation. */
export class CheckpointLag {
  readonly #o: CheckpointLagOptions;
  readonly #clock: Clock;
  /** Events read for delivery so far this term. */
  #read = 0;
  /** Events the last written position covers. */
  #covered = 0;
  /** Events numbered up to `upTo` (after the previous mark's) arrived from `at` on; oldest first. */
  readonly #marks: { upTo: number; at: number }[] = [];
  /** Reads within this many ms of the last mark join it: MARK_MS, doubled while marks merge. */
  #joinMs = MARK_MS;
  /** How many events each acknowledged position covers. */
  readonly #covers = new WeakMap<Token, number>();
  #over = false;

  constructor(options: CheckpointLagOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Events read for delivery so far this term. */
  get count(): number {
    return this.#read;
  }

  /** How many arrival marks are kept: at most {@linkcode MAX_LAG_MARKS}. */
  get marks(): number {
    return this.#marks.length;
  }

  /**
   * One more event read for delivery, at `at` (the clock's ms); returns its
   * number, which positions at or after it cover.
   */
  read(at: number): number {
    const n = ++this.#read;
    const marks = this.#marks;
    const last = marks[marks.length - 1];
    if (last !== undefined && at - last.at < this.#joinMs) last.upTo = n;
    else {
      marks.push({ upTo: n, at });
      if (marks.length > MAX_LAG_MARKS) this.#merge();
    }
    return n;
  }

  /**
   * Doubles the resolution until at most half the marks are left: a mark
   * that arrived within it of the one before joins it, which keeps its
   * older arrival. Each mark then spans less than the resolution.
   */
  #merge(): void {
    const marks = this.#marks;
    while (marks.length > MAX_LAG_MARKS / 2) {
      this.#joinMs *= 2;
      let kept = 0;
      for (let i = 0; i < marks.length; i++) {
        const mark = marks[i]!;
        const group = marks[kept - 1];
        if (group !== undefined && mark.at - group.at < this.#joinMs) group.upTo = mark.upTo;
        else marks[kept++] = mark;
      }
      marks.length = kept;
    }
  }

  /** The sinks took everything up to `token`, which covers the first `covers` events read. */
  acknowledged(token: Token, covers: number): void {
    this.#covers.set(token, covers);
  }

  /** The checkpointer wrote `token` to the ConfigMap. */
  written(token: Token): void {
    const covers = this.#covers.get(token);
    if (covers === undefined || covers <= this.#covered) return;
    this.#covered = covers;
    let done = 0;
    while (done < this.#marks.length && this.#marks[done]!.upTo <= covers) done++;
    this.#marks.splice(0, done);
    // The backlog is mostly written: arrivals are noted to the second again.
    if (this.#marks.length <= MAX_LAG_MARKS / 2) this.#joinMs = MARK_MS;
    this.check();
  }

  /** The lag in ms: now minus the arrival of the oldest event not covered; 0 when none. */
  ms(): number {
    const oldest = this.#marks[0];
    return oldest === undefined ? 0 : Math.max(0, this.#clock.now() - oldest.at);
  }

  /** Logs a warning when the lag has crossed the limit since the last check, and when it is back under. */
  check(): void {
    const lagMs = this.ms();
    const over = lagMs > this.#o.limitMs;
    if (over === this.#over) return;
    this.#over = over;
    const facts = {
      lag: Math.round(lagMs / 1000),
      limit: Math.round(this.#o.limitMs / 1000),
      ttl: Math.round(this.#o.eventTtlMs / 1000),
      share: Math.round((100 * this.#o.limitMs) / this.#o.eventTtlMs),
    };
    if (over) {
      log.warn(
        "The checkpoint lags {lag} s behind the oldest event read, over its limit of {limit} s " +
          "({share}% of the {ttl} s event TTL): the API server deletes events after the TTL, " +
          "so a handover or a crash now may lose the events that waited longer; see the " +
          "sinks' errors and the checkpoint writes",
        facts,
      );
    } else {
      log.info("The checkpoint lag is back under its limit of {limit} s ({lag} s)", facts);
    }
  }

  /**
   * Checks the lag until `signal` aborts, every tenth of the limit (at most
   * every 10 s, at least every second), so a crossing is logged once, close
   * to when it happens.
   */
  async watch(signal: AbortSignal): Promise<void> {
    const everyMs = Math.max(
      MIN_CHECK_EVERY_MS,
      Math.min(MAX_CHECK_EVERY_MS, this.#o.limitMs / 10),
    );
    while (!signal.aborted) {
      try {
        await this.#clock.sleep(everyMs, signal);
      } catch {
        return;
      }
      this.check();
    }
  }
}
