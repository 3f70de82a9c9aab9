/**
 * The event pump: list+watch of core/v1 Events, delivered to the sinks, with
 * the checkpoint moved only past what every sink acknowledged.
 *
 * Two loops share a bounded queue. The reader lists and watches and pushes
 * each change into the queue, waiting when it is full, so that slow sinks
 * stop it from reading the socket rather than making memory grow. The
 * deliverer (_deliver.ts) takes batches off the queue, sends them to every
 * sink, and then acknowledges the batch's position to the checkpointer.
 *
 * Where it resumes: from the token's resourceVersion; without a token, from
 * "now" (a full paginated list for the current resourceVersion; its items
 * are delivered only with backfill on). A 410 Expired means the history is
 * gone: relist every page and deliver what is newer than the token. So does
 * a watch that the server closes at once with nothing in it (what
 * kube-apiserver does for events, which have no watch cache, when the
 * resourceVersion is too old) if an exact list at the token answers 410
 * too; otherwise the watch is opened again from the token, as a relist
 * would lose every version of an event but its latest.
 *
 * Watched events are not decoded on their way: the watch reads from each
 * line only the fields the pump needs (event_record.ts), and the sinks get
 * the event as the JSON text the API server sent; it is decoded only for a
 * filter, or a sink that reads `event` (Datadog).
 *
 * Filtering happens in two places: a field selector goes with every list
 * and watch, so the API server leaves events out before they are sent; a
 * filter predicate leaves out more here. The position moves past what the
 * filter rejects just as past what is delivered, so filtered events never
 * hold the checkpoint back.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import { Backoff, type Clock, systemClock } from "../time/mod.ts";
import type { CheckpointLag, Token } from "../checkpoint/mod.ts";
import {
  BadRequestError,
  EVENTS,
  ForbiddenError,
  GoneError,
  InvalidError,
  type KubeClient,
  KubeNetworkError,
  NotFoundError,
  UnauthorizedError,
  WatchStalledError,
} from "../kube/mod.ts";
import { EVENT_FIELDS, eventTime, recordKey, WatchedRecord } from "./event_record.ts";
import { BoundedQueue } from "./_queue.ts";
import { deliverLoop } from "./_deliver.ts";
import {
  firstListChoice,
  historyGone,
  isNewer,
  refusesResourceVersion,
  serverBehind,
} from "./_resume.ts";
import { eventTypeLabel, type Liveness, type Metrics } from "../ops/mod.ts";
import type { EventRecord, Fence, Sink } from "../sinks/mod.ts";

/** Options for {@linkcode runPump}. */
export interface PumpOptions {
  client: KubeClient;
  sinks: readonly Sink[];
  /** Where to resume; undefined starts at "now". */
  token: Token | undefined;
  /** Told the position up to which every sink has acknowledged. */
  acknowledge: (token: Token, events: number) => void;
  /** Changes buffered between the watch and the sinks (default 1000). */
  queueCapacity?: number;
  /**
   * Per sink name, which records it gets (routes.ts); a sink without one
   * gets them all. A record a route leaves out is skipped for that sink.
   */
  routes?: ReadonlyMap<string, (record: EventRecord) => boolean>;
  /** Without a token, deliver what the first list returns (default false). */
  backfill?: boolean;
  /**
   * Without a token, deliver the listed events whose last time is within
   * this many ms of now (default 0: none; `backfill` delivers them all).
   */
  startWindowMs?: number;
  /** Page size of lists (default 500). */
  pageSize?: number;
  /** How long each watch request asks to last (default 300 s). */
  watchTimeoutSeconds?: number;
  /** Records per send (default 500). */
  batchSize?: number;
  /**
   * How long a batch may wait for more changes before it is sent, in ms,
   * counted from its first change (default 0: a batch is sent as soon as
   * anything is queued). A sink that gathers a batch into fewer messages
   * (the Datadog sink's bundles) wants a window; the checkpoint is then
   * held back by at most this long. A drain sends at once.
   */
  batchWindowMs?: number;
  /**
   * Adds `enrichment` to each record before it is sent (lib/enrich); must
   * reject only with the signal's reason.
   */
  enrich?: (records: readonly EventRecord[], signal: AbortSignal) => Promise<void>;
  /**
   * After the stop signal, a send in flight may finish for this long
   * (default 2000 ms); none when the signal's reason is a
   * `ShutdownBudgetError` (lib/election).
   */
  stopGraceMs?: number;
  /**
   * Asks for a clean stop: the reader stops, the deliverer sends what is
   * queued and in flight, and the pump settles (default: never).
   */
  drain?: AbortSignal;
  /** The leadership term: handed to every sink, checked before every send. */
  fence?: Fence;
  /**
   * When the list/watch has failed for this long in a row with errors that
   * retrying cannot mend (401, 403, 404, a request that cannot be sent), the
   * pump rejects with {@linkcode WatchFailingError} (default: never).
   */
  watchFailureLimitMs?: number;
  clock?: Clock;
  random?: () => number;
  /** Observes the pump (tests, metrics). */
  onDelivered?: (records: readonly EventRecord[]) => void;
  /** Sent with every list and watch, for the API server to filter events (default none). */
  fieldSelector?: string;
  /**
   * Decides which listed or watched events are delivered (default all).
   * The checkpoint still moves past those it rejects.
   */
  filter?: (event: CoreV1Event) => boolean;
  /** Told of each event `filter` rejected (tests, metrics). */
  onFiltered?: (event: CoreV1Event) => void;
  /** Counts what the pump reads, filters, delivers and restarts. */
  metrics?: Metrics;
  /** Told of every sign of life of the list and watch, for `/healthz`. */
  liveness?: Pick<Liveness, "activity" | "waitingOnSinks">;
  /** Told of each event read for delivery and of what each acknowledged position covers. */
  lag?: Pick<CheckpointLag, "read" | "count" | "acknowledged">;
}

export interface Item {
  record?: EventRecord;
  /** The type of `record`'s event, for the metrics (read without decoding a watched event). */
  type?: string;
  /** The time of `record`'s event ({@linkcode eventTime}), for the metrics. */
  time?: string;
  /**
   * The position to acknowledge once this item (and all before it) is
   * delivered; undefined while there is no position yet (a backfill).
   */
  token: Token | undefined;
  /**
   * How many of the events read for delivery `token` covers
   * ({@linkcode CheckpointLag}); 0 without `lag`.
   */
  covers: number;
}

const log = getLogger(["kevents", "pump"]);

export { eventTime } from "./event_record.ts";
export { isNewer } from "./_resume.ts";

/** The list/watch of events kept failing with errors retrying cannot mend, for longer than the limit. */
export class WatchFailingError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WatchFailingError";
  }
}

/**
 * Whether retrying a failed list or watch cannot help by itself: refused
 * credentials or permissions, a missing resource, or a request the client
 * cannot even send (a header with a newline in it). Network errors,
 * timeouts, 429 and 5xx are retryable: an API server down hurts every
 * replica alike, so stepping down would not help.
 */
export function isUnmendable(e: unknown): boolean {
  if (
    e instanceof UnauthorizedError || e instanceof ForbiddenError || e instanceof NotFoundError
  ) return true;
  if (e instanceof KubeNetworkError) {
    // undici refuses to send a request it finds malformed (InvalidArgumentError).
    const code = (e.cause as { code?: unknown } | undefined)?.code;
    return code === "UND_ERR_INVALID_ARG" || e.cause instanceof TypeError;
  }
  return false;
}

function recordOf(type: "ADDED" | "MODIFIED", event: CoreV1Event): EventRecord {
  return { key: recordKey(event.metadata?.uid, event.metadata?.resourceVersion), type, event };
}

/**
 * Runs the pump until `signal` aborts; settles after both loops stopped.
 * Rejects only for errors it cannot retry; API failures are retried with
 * backoff.
 */
export async function runPump(options: PumpOptions, signal: AbortSignal): Promise<void> {
  const queue = new BoundedQueue<Item>(options.queueCapacity ?? 1000);
  options.metrics?.watchQueue(() => queue.size);
  // The reader and the deliverer stop together: when either fails, both stop.
  const inner = new AbortController();
  const onStop = () => inner.abort(signal.reason);
  if (signal.aborted) onStop();
  else signal.addEventListener("abort", onStop, { once: true });
  // A drain stops only the reader; the deliverer empties the queue, then ends.
  const reading = options.drain === undefined
    ? inner.signal
    : AbortSignal.any([inner.signal, options.drain]);
  const fail = (e: unknown) => {
    if (!inner.signal.aborted) inner.abort(e);
    throw e;
  };
  try {
    const results = await Promise.allSettled([
      readLoop(options, queue, reading).catch(fail).finally(() => queue.close()),
      deliverLoop(options, queue, inner.signal).catch(fail),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined && (!signal.aborted || isOwnFailure(failed.reason))) {
      throw failed.reason;
    }
  } finally {
    signal.removeEventListener("abort", onStop);
    options.metrics?.watchQueue(() => 0);
  }
}

/** A failure of the pump's own making, reported even when the term was ending anyway. */
function isOwnFailure(e: unknown): boolean {
  return e instanceof WatchFailingError;
}

async function readLoop(
  o: PumpOptions,
  queue: BoundedQueue<Item>,
  signal: AbortSignal,
): Promise<void> {
  const clock = o.clock ?? systemClock;
  const backoff = new Backoff({ clock, random: o.random });
  const timeoutSeconds = o.watchTimeoutSeconds ?? 300;
  let token = o.token;
  let lastEventTs = token?.timestamp;
  const { metrics, liveness, lag } = o;
  /** Since when (our clock) every list/watch failed with an unmendable error; undefined when the last one worked. */
  let failingSince: number | undefined;
  /**
   * Whether the token must be checked against the server's position: at
   * the start (it comes from the ConfigMap) and after a watch failed (the
   * API server may have come back on a restored etcd); not after a relist
   * or a watch the server ended, whose positions the server just gave.
   */
  let checkAhead = o.token !== undefined;
  const push = async (item: Item) => {
    if (!queue.full || liveness === undefined) return await queue.push(item, signal);
    liveness.waitingOnSinks(true);
    try {
      await queue.push(item, signal);
    } finally {
      liveness.waitingOnSinks(false);
    }
  };
  const rejected = (e: CoreV1Event) => {
    metrics?.filtered(e.type);
    o.onFiltered?.(e);
  };

  /**
   * Lists every page (or, when nothing is to be delivered, one item: all
   * that is needed is the current resourceVersion); delivers the items the
   * filter accepts; returns the list's position.
   */
  const listAll = async (
    deliver: ((e: CoreV1Event) => boolean) | undefined,
    ackAt: Token | undefined,
  ) => {
    let continueToken: string | undefined;
    let listRv: string | undefined;
    let pages = 0;
    let delivered = 0;
    let items = 0;
    let lastProgress = clock.now();
    // What `ackAt` covers: what was read before this list.
    const covered = lag?.count ?? 0;
    metrics?.relist();
    do {
      const page = await o.client.list<CoreV1Event>(EVENTS, {
        limit: deliver === undefined ? 1 : o.pageSize ?? 500,
        continueToken,
        fieldSelector: o.fieldSelector,
        signal,
      });
      listRv ??= page.resourceVersion;
      const arrived = clock.now();
      pages++;
      items += page.items.length;
      metrics?.listPage();
      liveness?.activity();
      failingSince = undefined;
      if (deliver === undefined) break;
      if (clock.now() - lastProgress >= 10_000) {
        lastProgress = clock.now();
        log.info("Listing events: {pages} pages, {items} events read so far", { pages, items });
      }
      for (const e of page.items) {
        if (!deliver(e)) continue;
        metrics?.received(e.type);
        const ts = eventTime(e);
        if (ts !== undefined && (lastEventTs === undefined || ts > lastEventTs)) lastEventTs = ts;
        // Left out here, it is passed by the list's position pushed below.
        if (o.filter !== undefined && !o.filter(e)) {
          rejected(e);
          continue;
        }
        delivered++;
        lag?.read(arrived);
        // Until the whole list is delivered, the checkpoint stays where it
        // was: items come in key order, not in resourceVersion order.
        const record = recordOf("ADDED", e);
        await push({ record, type: e.type, time: ts, token: ackAt, covers: covered });
      }
      continueToken = page.continueToken;
    } while (continueToken !== undefined);
    log.info("Listed {pages} pages at {rv}; {delivered} events to deliver", {
      pages,
      rv: listRv,
      delivered,
    });
    const at = { resourceVersion: listRv!, timestamp: lastEventTs };
    await push({ token: at, covers: lag?.count ?? 0 });
    return at;
  };

  while (!signal.aborted) {
    try {
      if (token === undefined) {
        const windowMs = o.startWindowMs ?? 0;
        log.info("No checkpoint: starting from now{backfill}", {
          backfill: o.backfill === true
            ? " with backfill"
            : windowMs > 0
            ? `, with the events of the last ${Math.round(windowMs / 1000)} s`
            : "",
        });
        token = await listAll(firstListChoice(o.backfill === true, windowMs, clock), undefined);
      }
      if (checkAhead) {
        checkAhead = false;
        const current = await serverBehind(o, token, signal);
        if (current !== undefined) {
          const since = token;
          metrics?.checkpointReset("ahead");
          log.warn(
            "The checkpoint's resourceVersion {rv} is ahead of the API server's {current} " +
              "(a restored etcd, or a ConfigMap from another cluster): relisting and delivering " +
              "{what}",
            {
              rv: since.resourceVersion,
              current,
              what: since.timestamp === undefined
                ? "every listed event (the checkpoint has no time)"
                : `the events not older than the checkpoint's time ${since.timestamp}`,
            },
          );
          token = await listAll((e) => isNewer(e, since, true), since);
        }
      }
      const started = clock.now();
      let received = 0;
      for await (
        const batch of o.client.watchBatches<CoreV1Event>(EVENTS, {
          resourceVersion: token.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
          fieldSelector: o.fieldSelector,
          signal,
          // Read from each line without decoding the event: sinks get its JSON text.
          fields: EVENT_FIELDS,
          // The server ends the watch after timeoutSeconds; silence 10% past
          // that means a connection that died without a word.
          idleTimeoutMs: timeoutSeconds * 1100,
          onOpen: () => {
            liveness?.activity();
            failingSince = undefined;
          },
        })
      ) {
        liveness?.activity();
        const arrived = clock.now();
        // Counted per batch: a labelled counter per event is measurable at 50,000 events/s.
        const byType = { Normal: 0, Warning: 0, other: 0 };
        for (const ev of batch) {
          received++;
          let item: Item;
          if (ev.type === "ADDED" || ev.type === "MODIFIED") {
            const record = new WatchedRecord(ev.type, ev);
            const { eventType, time } = record;
            if (metrics !== undefined) byType[eventTypeLabel(eventType)]++;
            // A filter reads the decoded event; without one, nothing decodes it here.
            const accepted = o.filter === undefined || o.filter(ev.object);
            if (!accepted) rejected(ev.object);
            if (time !== undefined) lastEventTs = time;
            token = { resourceVersion: ev.resourceVersion, timestamp: lastEventTs };
            item = accepted
              ? { record, type: eventType, time, token, covers: lag?.read(arrived) ?? 0 }
              : { token, covers: lag?.count ?? 0 };
          } else {
            token = { resourceVersion: ev.resourceVersion, timestamp: lastEventTs };
            item = { token, covers: lag?.count ?? 0 };
          }
          // BOOKMARK, DELETED and filtered events move the position without delivering anything.
          // The hot path: no promise per event while the queue has room.
          if (!queue.tryPush(item)) await push(item);
        }
        if (metrics !== undefined) {
          for (const [type, n] of Object.entries(byType)) if (n > 0) metrics.received(type, n);
        }
        backoff.reset();
        failingSince = undefined;
      }
      // The server ended the watch: at its timeout, or at once when the
      // resourceVersion is too old for it.
      liveness?.activity();
      const stale = received === 0 && clock.now() - started < (timeoutSeconds * 1000) / 2;
      metrics?.watchRestart(stale ? "stale" : "timeout");
      if (stale) {
        // Closed at once with nothing: what kube-apiserver does when it no
        // longer has our resourceVersion, but also what a proxy or a server
        // going down may do. A relist returns only the latest version of
        // each event, so it would lose the changes in between while the
        // history still holds them. A list with a limit at our
        // resourceVersion is an exact read, answered 410 only once that
        // history is gone: relist then, else watch again from the same place.
        if (backoff.failures > 0) await backoff.wait(signal);
        backoff.next();
        const since = token;
        if (await historyGone(o, since, signal)) {
          log.warn("The watch from {rv} closed at once without events: relisting", {
            rv: since.resourceVersion,
          });
          token = await listAll((e) => isNewer(e, since), since);
        } else {
          log.warn(
            "The watch from {rv} closed at once without events; its history is still there: watching again",
            {
              rv: since.resourceVersion,
            },
          );
        }
      }
    } catch (e) {
      if (signal.aborted) break;
      if (
        (e instanceof BadRequestError || e instanceof InvalidError) && token !== undefined &&
        token === o.token && refusesResourceVersion(e)
      ) {
        // Only the checkpoint can hold a resourceVersion this server never
        // handed out (written by hand, or by another cluster): nothing can
        // be replayed from it, and retrying it would stop delivery for good.
        log.warn(
          "The API server refuses the checkpoint's resourceVersion {rv} ({error}): starting " +
            "from now; events since the checkpoint cannot be replayed",
          { rv: token.resourceVersion, error: e.message },
        );
        metrics?.checkpointReset("refused");
        token = undefined;
        continue;
      }
      if (isUnmendable(e)) {
        failingSince ??= clock.now();
        const limit = o.watchFailureLimitMs;
        if (limit !== undefined && clock.now() - failingSince >= limit) {
          throw new WatchFailingError(
            `Listing or watching events has failed for ${
              Math.round((clock.now() - failingSince) / 1000)
            } s with errors retrying cannot mend (last: ${String(e)})`,
            { cause: e },
          );
        }
      } else {
        failingSince = undefined;
      }
      let failure = e;
      if (!(e instanceof GoneError)) checkAhead = true;
      metrics?.watchRestart(
        e instanceof GoneError ? "expired" : e instanceof WatchStalledError ? "stalled" : "error",
      );
      if (e instanceof GoneError && token !== undefined) {
        log.warn("Resource version {rv} is gone ({error}): relisting", {
          rv: token.resourceVersion,
          error: e.message,
        });
        try {
          const since = token;
          token = await listAll((ev) => isNewer(ev, since), since);
          continue;
        } catch (relistError) {
          if (signal.aborted) break;
          failure = relistError;
        }
      }
      if (token === undefined) {
        log.warn("Watching events failed: {error}; retrying", { error: String(failure) });
      } else {
        // After malformed data too: the events before it moved the token,
        // so the watch resumes right after the last good one.
        log.warn("Watching events failed: {error}; retrying from resourceVersion {rv}", {
          error: String(failure),
          rv: token.resourceVersion,
        });
      }
      try {
        await backoff.wait(signal);
      } catch {
        break;
      }
    }
  }
}
