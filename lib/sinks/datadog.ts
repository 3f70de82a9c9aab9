/**
 * The Datadog sink: Kubernetes events as Datadog events through the Events
 * API v1 (`POST <base>/api/v1/events`, header `DD-API-KEY`, one event per
 * request), and service checks through the check-run API
 * (`POST <base>/api/v1/check_run`). The base is `dd_url` when set, else
 * `https://api.<site>` (site default `datadoghq.com`).
 *
 * The events look like the ones the Datadog Agent's kubernetes_apiserver
 * check sends. By default a batch becomes one Datadog event per involved
 * object and event type ("bundled"): title "Events from the Pod ns/name",
 * markdown text listing "<count> **<reason>**: <message>" for each distinct
 * reason and message, the reporting component and the time span, the
 * aggregation key `kubernetes_apiserver:<involved object uid>`, alert type
 * warning for Warning events (else info), source type `kubernetes` (per
 * integration with source detection: _datadog_sources.ts), `date_happened`
 * the latest occurrence in seconds, and the host and tags of
 * _datadog_tags.ts (the node with the cluster name; the Agent's tag set,
 * enrichment's owner and label tags, the check's own tags) plus one
 * `event_reason` per reason. Text over {@linkcode MAX_TEXT_LENGTH}
 * characters is split across several events of the same object. With
 * `unbundleEvents` each Kubernetes event becomes its own Datadog event ("Pod
 * ns/name: Reason", the message as text), for the events
 * `collected_event_types` chooses (_datadog_types.ts). Events without a
 * kind, name, reason or message are not sent, as in the Agent.
 *
 * Counts. Kubernetes repeats an event by bumping `count` on the same
 * object (a MODIFIED change). The Agent adds up `count` each time it sees an
 * event, so an event seen at count 1 and then at count 3 is reported as 4
 * occurrences. kevents reports the increase since the last time it saw the
 * event (1, then 2): it keeps the last count per event uid in a bounded map
 * (least recently seen forgotten first), updated only once a batch is
 * accepted, so a retried batch reports the same numbers. A change that does
 * not raise the count (a replay, a label update) reports nothing. The first
 * sight of an event reports its whole count, as the Agent does: after a
 * restart, a leader handover or an eviction from the map, the next change of
 * an event seen before reports everything it counted so far once more (an
 * over-count bounded by one per event and restart; never an under-count).
 *
 * A batch posted partly before a failure resumes where it stopped when the
 * pump sends the same batch again, so its first events are not posted twice.
 * 403 (or 401) means the API key is bad; the error says so without the key,
 * and the send fails (the pump retries it, holding everything back, as a
 * bad key refuses every event alike).
 *
 * Refused for good. A 400, 413 or 422 answer to one Datadog event (an event
 * older than the intake takes, 18 hours, or one it cannot read) refuses
 * that event, not the batch: its Kubernetes records (one, or every record a
 * bundle was made of) are set aside, listed in the send's result with the
 * status and the intake's answer (see sink.ts), and the next Datadog event
 * of the batch is posted; the batch resolves. A set-aside record is never
 * posted again, also when the batch resumes after a later failure. Counts:
 * the last count of an Event any of whose records was set aside is not
 * updated, as for a dropped batch, so the next accepted change of that Event
 * reports the set-aside occurrences too (an over-count at worst, never an
 * under-count).
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import type { Clock } from "../time/mod.ts";
import { countIncreases, type Occurrence, OccurrenceCounts } from "./_datadog_counts.ts";
import { type DatadogContext, eventHost, eventTags, sortedTags } from "./_datadog_tags.ts";
import { eventChoice, type EventChoiceOptions, selectEvents, sourceOf } from "./_datadog_types.ts";
import {
  displayUrl,
  type HttpSender,
  httpSenderFor,
  HttpSinkError,
  type HttpSinkOptions,
  isPermanentRejection,
  type OnFailure,
  rejectionReason,
} from "./_http.ts";
import {
  type Enrichment,
  type EventRecord,
  eventTime,
  type Rejection,
  type SendOptions,
  type SendResult,
  type ServiceCheck,
  type ServiceCheckSink,
  type Sink,
} from "./sink.ts";

/** The default Datadog site. */
export {
  countIncreases,
  DEFAULT_COUNT_CACHE_SIZE,
  type Occurrence,
  OccurrenceCounts,
  occurrencesOf,
} from "./_datadog_counts.ts";

export const DEFAULT_SITE = "datadoghq.com";
/** Longest text of a bundled event; the Events API keeps 4000 characters, the Agent aims below 3750. */
export const MAX_TEXT_LENGTH = 3750;

/** An event as the Events API v1 takes it. */
export interface DatadogEvent {
  title: string;
  text: string;
  /** Seconds since the epoch. */
  "date_happened": number;
  priority: "normal";
  host?: string;
  tags: string[];
  "alert_type": "info" | "warning";
  "aggregation_key": string;
  "source_type_name": string;
}

/** Options for {@linkcode DatadogSink}; which events it sends: {@linkcode EventChoiceOptions}. */
export interface DatadogSinkOptions extends EventChoiceOptions, HttpSinkOptions {
  /** The sink's name in logs, metrics and routes (default "datadog"; named sinks of kevents_sinks). */
  name?: string;
  /** The API key (`api_key` / `DD_API_KEY`). */
  apiKey: string;
  /** The Datadog site (`site` / `DD_SITE`, default {@linkcode DEFAULT_SITE}). */
  site?: string;
  /** Base URL overriding `https://api.<site>` (`dd_url` / `DD_DD_URL`). */
  url?: string;
  /** One Datadog event per Kubernetes event instead of one per object and type (default false). */
  unbundleEvents?: boolean;
  /** The cluster's name (`cluster_name`): host suffix and `kube_cluster_name` tag. */
  clusterName?: string;
  /** Tags added to every event and service check (`kevents_datadog_tags`). */
  tags?: readonly string[];
  /** The intake's proxy (http:// or https://). */
  proxy?: string;
  /** Hosts (`host` or `host:port`, matched exactly) reached without the proxy. */
  noProxy?: readonly string[];
  /** Events whose last count is remembered (default {@linkcode DEFAULT_COUNT_CACHE_SIZE}). */
  countCacheSize?: number;
}

function seconds(time: string | undefined, fallback: number): number {
  const ms = Date.parse(time ?? "");
  return Number.isNaN(ms) ? fallback : Math.floor(ms / 1000);
}

function asText(t: unknown): string | undefined {
  if (t === undefined || t === null) return undefined;
  return t instanceof Date ? t.toISOString() : String(t);
}

/** Go's time.Time String() in UTC, which the Agent's bundle text shows. */
function goTime(secondsSinceEpoch: number): string {
  const iso = new Date(secondsSinceEpoch * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

function readableKey(e: CoreV1Event): string {
  const o = e.involvedObject;
  return o.namespace ? `${o.kind} ${o.namespace}/${o.name}` : `${o.kind} ${o.name}`;
}

function aggregationKey(e: CoreV1Event): string {
  const o = e.involvedObject;
  return `kubernetes_apiserver:${o.uid || `${o.kind}/${o.namespace ?? ""}/${o.name}`}`.slice(
    0,
    100,
  );
}

function reportable(e: CoreV1Event): boolean {
  const o = e.involvedObject;
  return Boolean(o?.kind && o?.name && e.reason && e.message);
}

/** The Datadog event of one Kubernetes event (unbundled). */
function unbundledEvent(
  e: CoreV1Event,
  now: number,
  ctx: DatadogContext,
  enrichment?: Enrichment,
  source = "kubernetes",
): DatadogEvent {
  const tags = [...eventTags(e, ctx, enrichment), `event_reason:${e.reason}`];
  const host = eventHost(e, ctx, enrichment);
  return {
    title: `${readableKey(e)}: ${e.reason}`,
    text: e.message!.slice(0, 4000),
    date_happened: seconds(eventTime(e), now),
    priority: "normal",
    ...(host === undefined ? {} : { host }),
    tags: [...new Set(tags)].sort(),
    alert_type: e.type === "Warning" ? "warning" : "info",
    aggregation_key: aggregationKey(e),
    source_type_name: source,
  };
}

/** Occurrences of one involved object and event type, for one Datadog event. */
class Bundle {
  readonly first: CoreV1Event;
  /** The keys of the records whose occurrences it holds. */
  readonly keys: string[] = [];
  /** Occurrences per "**reason**: message" line. */
  readonly #counts = new Map<string, number>();
  readonly #reasons = new Set<string>();
  #since = Infinity;
  #last = -Infinity;

  readonly #context: DatadogContext;
  /** The first occurrence's enrichment: every event of a bundle is about one object. */
  #enrichment: Enrichment | undefined;

  constructor(first: CoreV1Event, context: DatadogContext) {
    this.first = first;
    this.#context = context;
  }

  /** Adds the occurrences if the text stays within the limit; false when it would not. */
  add({ event: e, increase, key, enrichment }: Occurrence, now: number): boolean {
    this.#enrichment ??= enrichment;
    let line = `**${e.reason}**: ${e.message}\n`;
    if (!this.#counts.has(line)) {
      const grown = new Map(this.#counts).set(line, increase);
      const excess = this.#text(grown, this.#last, this.#since).length - MAX_TEXT_LENGTH;
      if (excess > 0) {
        if (this.#counts.size > 0) return false;
        // Alone and still too long: the message is cut.
        line = `**${e.reason}**: ${e.message!.slice(0, -excess - 4)}...\n`;
      }
    }
    this.#counts.set(line, (this.#counts.get(line) ?? 0) + increase);
    if (key !== undefined) this.keys.push(key);
    this.#reasons.add(e.reason!);
    const last = seconds(eventTime(e), now);
    const since = seconds(asText(e.firstTimestamp) ?? eventTime(e), last);
    this.#last = Math.max(this.#last, last);
    this.#since = Math.min(this.#since, since);
    return true;
  }

  #text(counts: Map<string, number>, last: number, since: number): string {
    const lines = [...counts.keys()].sort().map((line) => `${counts.get(line)} ${line}`);
    const at = (s: number) => goTime(Number.isFinite(s) ? s : 0);
    // "~" would strike the markdown through.
    return `%%% \n${lines.join(" ")} \n _Events emitted by the ${
      this.first.source?.component ?? ""
    } seen at ${at(last)} since ${at(since)}_ \n\n %%%`.replaceAll("~", "\\~");
  }

  toEvent(source: string): DatadogEvent {
    const e = this.first;
    const host = eventHost(e, this.#context, this.#enrichment);
    const tags = [
      ...eventTags(e, this.#context, this.#enrichment),
      ...[...this.#reasons].map((r) => `event_reason:${r}`),
    ];
    return {
      title: `Events from the ${readableKey(e)}`,
      text: this.#text(this.#counts, this.#last, this.#since),
      date_happened: this.#last,
      priority: "normal",
      ...(host === undefined ? {} : { host }),
      tags: sortedTags(tags),
      alert_type: e.type === "Warning" ? "warning" : "info",
      aggregation_key: aggregationKey(e),
      source_type_name: source,
    };
  }
}

/** Options of {@linkcode toDatadogEvents}; which events: {@linkcode EventChoiceOptions}. */
export interface DatadogEventOptions extends EventChoiceOptions {
  /** One Datadog event per Kubernetes event (default false: bundled). */
  unbundle?: boolean;
  /** Seconds since the epoch standing in for a missing time (default now). */
  now?: number;
  /** The cluster name and tags every event gets. */
  context?: DatadogContext;
}

/**
 * The Datadog events for a batch's occurrences: bundled per involved object
 * and event type (in order of first appearance), or one per Kubernetes
 * event with `unbundle`. Occurrences that add nothing, and events without a
 * kind, name, reason or message, are left out. `now` (seconds) stands in for
 * a missing time.
 */
export function toDatadogEvents(
  occurrences: readonly Occurrence[],
  options: DatadogEventOptions = {},
): DatadogEvent[] {
  return sourcedDatadogEvents(occurrences, options).map((s) => s.event);
}

/** A Datadog event and the keys of the records it was made of. */
export interface SourcedEvent {
  event: DatadogEvent;
  /** The {@linkcode Occurrence.key}s it holds, in batch order. */
  keys: string[];
}

/** {@linkcode toDatadogEvents}, each event with the keys of the records it was made of. */
export function sourcedDatadogEvents(
  occurrences: readonly Occurrence[],
  options: DatadogEventOptions = {},
): SourcedEvent[] {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const wanted = occurrences.filter((o) => o.increase > 0 && reportable(o.event));
  const { unbundled, bundled } = selectEvents(wanted, options.unbundle === true, options);
  const open = new Map<string, Bundle>();
  const bundles: Bundle[] = [];
  for (const occurrence of bundled) {
    const e = occurrence.event;
    const o = e.involvedObject;
    const id = JSON.stringify([o.kind, o.uid ?? "", o.namespace ?? "", o.name, e.type ?? ""]);
    let bundle = open.get(id);
    if (bundle === undefined || !bundle.add(occurrence, now)) {
      bundle = new Bundle(e, options.context ?? {});
      bundle.add(occurrence, now);
      open.set(id, bundle);
      bundles.push(bundle);
    }
  }
  return [
    ...unbundled.map(({ item: o, source }) => ({
      event: unbundledEvent(o.event, now, options.context ?? {}, o.enrichment, source),
      keys: o.key === undefined ? [] : [o.key],
    })),
    ...bundles.map((b) => ({ event: b.toEvent(sourceOf(b.first, options)), keys: b.keys })),
  ];
}

const log = getLogger(["kevents", "sink", "datadog"]);

/** A batch being posted: what is left survives a failure so that a retry resumes. */
interface Progress {
  /** The keys of the batch's records. */
  signature: string;
  events: SourcedEvent[];
  /** Events already accepted or refused for good. */
  sent: number;
  updates: Map<string, number>;
  /** The records set aside so far. */
  rejected: Rejection[];
  /** The uids of the Kubernetes events of `rejected`: their counts are not updated. */
  rejectedUids: Set<string>;
}

/** Delivers events (and service checks) to Datadog. */
export class DatadogSink implements Sink, ServiceCheckSink {
  readonly name: string;
  /** Records dropped so far (only with `onFailure: "drop"`). */
  dropped = 0;
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #choice: EventChoiceOptions & { unbundle: boolean };
  readonly #context: DatadogContext;
  readonly #onFailure: OnFailure;
  readonly #counts: OccurrenceCounts;
  readonly #http: HttpSender;
  readonly #clock: Clock | undefined;
  #progress: Progress | undefined;

  constructor(options: DatadogSinkOptions) {
    this.name = options.name ?? "datadog";
    const base = new URL(options.url ?? `https://api.${options.site ?? DEFAULT_SITE}`);
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new TypeError(
        `Cannot create the Datadog sink: ${displayUrl(base)} is not an http(s) URL`,
      );
    }
    this.#base = base.href.replace(/\/+$/, "");
    this.#headers = {
      "Content-Type": "application/json",
      "DD-API-KEY": options.apiKey,
      "User-Agent": options.userAgent ?? "kevents",
    };
    this.#choice = eventChoice(options);
    this.#context = {
      ...(options.clusterName === undefined ? {} : { clusterName: options.clusterName }),
      tags: options.tags ?? [],
    };
    const direct = options.noProxy?.some((h) => h === base.host || h === base.hostname) ?? false;
    this.#onFailure = options.onFailure ?? "retry";
    this.#counts = new OccurrenceCounts(options.countCacheSize);
    this.#clock = options.clock;
    this.#http = httpSenderFor("Datadog", options, {
      secrets: [options.apiKey],
      ...(options.proxy === undefined || direct ? {} : { proxy: options.proxy }),
    });
  }

  /** The API's base URL: `dd_url`, else `https://api.<site>`. */
  get baseUrl(): string {
    return this.#base;
  }

  /**
   * Posts the batch's Datadog events; resolves once each was accepted or
   * refused for good (its records set aside, listed in the result), or,
   * with drop, once the batch is given up.
   */
  async send(
    batch: readonly EventRecord[],
    signal: AbortSignal,
    options: SendOptions = {},
  ): Promise<SendResult | void> {
    signal.throwIfAborted();
    const signature = batch.map((r) => r.key).join("\n");
    let progress = this.#progress;
    if (progress?.signature !== signature) {
      const { occurrences, updates } = countIncreases(batch, this.#counts);
      const now = Math.floor((this.#clock?.now() ?? Date.now()) / 1000);
      const events = sourcedDatadogEvents(occurrences, {
        ...this.#choice,
        now,
        context: this.#context,
      });
      progress = { signature, events, sent: 0, updates, rejected: [], rejectedUids: new Set() };
      this.#progress = progress;
    }
    const url = new URL(`${this.#base}/api/v1/events`);
    try {
      while (progress.sent < progress.events.length) {
        const { event, keys } = progress.events[progress.sent]!;
        try {
          await this.#post(url, JSON.stringify(event), signal, options.fence?.assertCurrent);
        } catch (e) {
          if (signal.aborted || !isPermanentRejection(e)) throw e;
          this.#setAside(progress, batch, keys, e);
        }
        progress.sent++;
      }
    } catch (e) {
      if (signal.aborted || this.#onFailure !== "drop" || !(e instanceof HttpSinkError)) throw e;
      // The counts stay as they were: the next change of these events reports the dropped occurrences too.
      this.#progress = undefined;
      const n = batch.length - progress.rejected.length;
      this.dropped += n;
      log.warn(
        "Dropped {n} events after {attempts} attempts ({dropped} dropped so far): {error}",
        { n, attempts: e.attempts, dropped: this.dropped, error: e.message },
      );
      return progress.rejected.length === 0 ? undefined : { rejected: progress.rejected };
    }
    for (const [uid, count] of progress.updates) {
      if (!progress.rejectedUids.has(uid)) this.#counts.set(uid, count);
    }
    this.#progress = undefined;
    return progress.rejected.length === 0 ? undefined : { rejected: progress.rejected };
  }

  /** Sets aside the records `keys` of a Datadog event the intake refused for good. */
  #setAside(
    progress: Progress,
    batch: readonly EventRecord[],
    keys: readonly string[],
    refusal: HttpSinkError & { status: number },
  ): void {
    const reason = rejectionReason(refusal);
    for (const key of new Set(keys)) {
      progress.rejected.push({ key, status: refusal.status, reason });
      const uid = batch.find((r) => r.key === key)?.event.metadata?.uid;
      if (uid !== undefined && uid !== "") progress.rejectedUids.add(uid);
    }
    log.debug("Datadog refused an event of {n} records for good ({status}): {error}", {
      n: keys.length,
      status: refusal.status,
      error: refusal.message,
    });
  }

  /** Posts service checks to the check-run API; resolves once accepted. Never drops. */
  async sendServiceChecks(checks: readonly ServiceCheck[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (checks.length === 0) return;
    const body = JSON.stringify(checks.map((c) => ({
      check: c.check,
      host_name: c.hostName ?? "",
      status: c.status,
      tags: sortedTags([...c.tags, ...this.#context.tags ?? []]),
      timestamp: c.timestamp,
      ...(c.message === undefined ? {} : { message: c.message }),
    })));
    await this.#post(new URL(`${this.#base}/api/v1/check_run`), body, signal);
  }

  async #post(
    url: URL,
    body: string,
    signal: AbortSignal,
    beforeAttempt?: () => void,
  ): Promise<void> {
    try {
      await this.#http.post(url, body, this.#headers, signal, beforeAttempt);
    } catch (e) {
      if (e instanceof HttpSinkError && (e.status === 403 || e.status === 401)) {
        throw new HttpSinkError(
          `Datadog rejected the API key (${e.status} from ${displayUrl(url)}): ` +
            "check api_key / DD_API_KEY",
          { status: e.status, body: e.body, retryable: false, attempts: e.attempts, cause: e },
        );
      }
      throw e;
    }
  }

  /** Closes the connection pool. */
  close(): Promise<void> {
    return this.#http.close();
  }
}
