/**
 * What the pump reads from each watched Event without building it, and the
 * record it hands the sinks. Most sinks never need the event as an object:
 * the stdout and webhook sinks write its JSON text as the API server sent
 * it, the null sink only counts. So the pump reads from each watch line
 * only the Event fields it needs ({@linkcode EVENT_FIELDS}), and a record's
 * `event` is decoded from the text only when something reads it (the
 * Datadog sink, a filter, a test).
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import { type Enrichment, type EventRecord, eventTime, type InvolvedObject } from "../sinks/mod.ts";
import type { WatchEvent } from "../kube/mod.ts";

/** Re-exported: where the pump and its tests have always found it. */
export { eventTime };

/**
 * The Event fields the pump reads from every watched event: the uid (for
 * the record's key), the event type (for metrics) and the times
 * {@linkcode eventTime} chooses from, in its order.
 */
export const EVENT_FIELDS: readonly string[] = Object.freeze([
  "metadata.uid",
  "type",
  "lastTimestamp",
  "eventTime",
  "series.lastObservedTime",
  "metadata.creationTimestamp",
  "involvedObject.kind",
  "involvedObject.namespace",
  "involvedObject.name",
  "involvedObject.uid",
]);

/** The idempotency key of an event: `<uid>/<resourceVersion>`. */
export function recordKey(uid: string | undefined, resourceVersion: string | undefined): string {
  return `${uid ?? ""}/${resourceVersion ?? ""}`;
}

/**
 * The record of a watched event: `json` is the event as the API server
 * sent it, `event` is decoded from it on first access (once). Its uid,
 * type and time come from the watch's {@linkcode EVENT_FIELDS}, or from the
 * decoded event when the watch could not read them from the text.
 */
export class WatchedRecord implements EventRecord {
  readonly type: "ADDED" | "MODIFIED";
  /** The event's type (`Normal`, `Warning`). */
  readonly eventType: string | undefined;
  /** {@linkcode eventTime}. */
  readonly time: string | undefined;
  /** The involved object, when the watch read it from the text. */
  readonly involved: InvolvedObject | undefined;
  enrichment?: Enrichment;
  readonly #uid: string | undefined;
  readonly #source: WatchEvent<CoreV1Event>;
  #key: string | undefined;

  constructor(type: "ADDED" | "MODIFIED", source: WatchEvent<CoreV1Event>) {
    this.type = type;
    this.#source = source;
    const f = source.fields;
    if (f !== undefined && f.length === EVENT_FIELDS.length) {
      this.#uid = f[0];
      this.eventType = f[1];
      this.time = f[2] ?? f[3] ?? f[4] ?? f[5];
      this.involved = { kind: f[6], namespace: f[7], name: f[8], uid: f[9] };
    } else {
      const e = source.object;
      this.#uid = e.metadata?.uid;
      this.eventType = e.type;
      this.time = eventTime(e);
      this.involved = undefined;
    }
  }

  /** `<uid>/<resourceVersion>`. */
  get key(): string {
    return this.#key ??= recordKey(this.#uid, this.#source.resourceVersion);
  }

  /** The event, decoded from {@linkcode json} on first access. */
  get event(): CoreV1Event {
    return this.#source.object;
  }

  /** The event as JSON text. */
  get json(): string {
    return this.#source.json;
  }

  /** What `JSON.stringify` sees: the record as a plain object. */
  toJSON(): {
    key: string;
    type: "ADDED" | "MODIFIED";
    event: CoreV1Event;
    enrichment?: Enrichment;
  } {
    return {
      key: this.key,
      type: this.type,
      event: this.event,
      ...(this.enrichment === undefined ? {} : { enrichment: this.enrichment }),
    };
  }
}
