/**
 * How a Kubernetes event becomes an OpenTelemetry log record: the names and
 * places the OpenTelemetry Collector's k8s events receiver (contrib
 * `receiver/k8seventsreceiver`) gives each field, so that what a receiver
 * or a dashboard built for that receiver expects finds the same
 * attributes. docs/OTLP.md has the table. Pure: no I/O, no encoding.
 *
 * Where kevents differs from the receiver: absent and empty values are left
 * out instead of sent as "" (an attribute `k8s.event.action: ""` says
 * nothing); the cluster name (`k8s.cluster.name`) and what enrichment
 * found (the pod's node when the event names none, the owners as
 * `k8s.deployment.name`, `k8s.job.name`...) join the resource; each record
 * carries kevents' idempotency key as `kevents.key`; and the observed time
 * is the time kevents sends it.
 *
 * @module
 */

import type { CoreV1Event } from "@kubernetes/client-node";
import type { EventRecord } from "./sink.ts";

/** Attribute values: texts, and integers (`k8s.event.count`). */
export type OtlpAttributes = Record<string, string | number>;

/** An OpenTelemetry resource: here, the object an event is about. */
export interface OtlpResource {
  readonly attributes: OtlpAttributes;
}

/** The instrumentation scope of every record: kevents. */
export interface OtlpScope {
  readonly name: string;
  readonly version?: string;
}

/**
 * A log record as the encoder (_otlp_wire.ts) reads it: times as
 * `[seconds, nanoseconds]`. It is also the shape the OpenTelemetry SDK's
 * serializers read (its ReadableLogRecord, less what they do not read),
 * which the tests encode the same records with.
 */
export interface OtlpLogRecord {
  readonly hrTime: [number, number];
  readonly hrTimeObserved: [number, number];
  readonly severityNumber?: number;
  readonly severityText?: string;
  readonly body: string;
  readonly attributes: OtlpAttributes;
  readonly droppedAttributesCount: number;
  readonly resource: OtlpResource;
  readonly instrumentationScope: OtlpScope;
}

/** The attribute carrying kevents' idempotency key (`<uid>/<resourceVersion>`). */
export const KEY_ATTRIBUTE = "kevents.key";

/**
 * Severity by event type, in any case, as the receiver maps it: the
 * Kubernetes API knows Normal and Warning; the receiver also takes Error and
 * Critical, which some controllers write. Another type gets no severity.
 */
export const SEVERITIES: Readonly<Record<string, number>> = {
  normal: 9, // INFO
  warning: 13, // WARN
  error: 17, // ERROR
  critical: 21, // FATAL
};

/** The semantic conventions' resource attribute of an owner's name, by the owner's kind. */
const OWNER_ATTRIBUTES: Readonly<Record<string, string>> = {
  ReplicaSet: "k8s.replicaset.name",
  Deployment: "k8s.deployment.name",
  StatefulSet: "k8s.statefulset.name",
  DaemonSet: "k8s.daemonset.name",
  Job: "k8s.job.name",
  CronJob: "k8s.cronjob.name",
};

/** What every record of a batch shares. */
export interface RecordContext {
  /** `k8s.cluster.name` of every resource, when set. */
  clusterName?: string;
  scope: OtlpScope;
  /** When kevents observed (sends) the batch, in ms since the epoch. */
  observedMs: number;
}

/**
 * A timestamp of the API (RFC 3339, with up to nanoseconds: an eventTime
 * has microseconds) as `[seconds, nanoseconds]` since the epoch; undefined
 * when absent, unreadable or before 1970 (OTLP's times are unsigned
 * nanoseconds since the epoch). A Date (as client-node types some fields)
 * has milliseconds.
 */
export function hrTimeOf(value: unknown): [number, number] | undefined {
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isNaN(ms) || ms < 0 ? undefined : hrTimeOfMs(ms);
  }
  if (typeof value !== "string" || value === "") return undefined;
  // Date.parse keeps milliseconds only: the fraction is read apart.
  const fraction = /^(.*T\d\d:\d\d:\d\d)\.(\d{1,9})(.*)$/.exec(value);
  const whole = Date.parse(fraction === null ? value : `${fraction[1]}${fraction[3]}`);
  if (Number.isNaN(whole) || whole < 0) return undefined;
  const nanos = fraction === null ? 0 : Number(fraction[2]!.padEnd(9, "0"));
  return [Math.floor(whole / 1000), nanos];
}

function hrTimeOfMs(ms: number): [number, number] {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

/**
 * The time of the record, as the receiver chooses it: `eventTime`, else
 * `lastTimestamp`, else `firstTimestamp`; kevents then falls back to the
 * series' last observation and the Event's creation, else 0 (unknown).
 */
function recordTime(e: CoreV1Event): [number, number] {
  for (
    const t of [
      e.eventTime,
      e.lastTimestamp,
      e.firstTimestamp,
      e.series?.lastObservedTime,
      e.metadata?.creationTimestamp,
    ]
  ) {
    const hr = hrTimeOf(t);
    if (hr !== undefined) return hr;
  }
  return [0, 0];
}

/** An RFC 3339 text of a timestamp the API sent as text (or client-node typed as a Date). */
function timeText(value: unknown): string | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Sets `key` when `value` says something (not absent, not ""). */
function put(attributes: OtlpAttributes, key: string, value: string | number | undefined): void {
  if (value !== undefined && value !== "") attributes[key] = value;
}

/** The resource attributes of a record: the cluster, the node, the involved object, its owners. */
export function resourceAttributes(
  record: EventRecord,
  clusterName: string | undefined,
): OtlpAttributes {
  const e = record.event;
  const o = e.involvedObject ?? {};
  const attributes: OtlpAttributes = {};
  put(attributes, "k8s.cluster.name", clusterName);
  put(attributes, "k8s.node.name", e.source?.host || record.enrichment?.node);
  put(attributes, "k8s.object.kind", o.kind);
  put(attributes, "k8s.object.name", o.name);
  put(attributes, "k8s.object.uid", o.uid);
  put(attributes, "k8s.object.fieldpath", o.fieldPath);
  put(attributes, "k8s.object.api_version", o.apiVersion);
  put(attributes, "k8s.object.resource_version", o.resourceVersion);
  for (const owner of record.enrichment?.owners ?? []) {
    const key = OWNER_ATTRIBUTES[owner.kind];
    // The nearest owner of a kind names it (a pod's ReplicaSet before any other).
    if (key !== undefined && !(key in attributes)) put(attributes, key, owner.name);
  }
  return attributes;
}

/** The log record attributes of an event, in the receiver's order, then kevents' key. */
export function recordAttributes(record: EventRecord): OtlpAttributes {
  const e = record.event;
  const attributes: OtlpAttributes = {};
  put(attributes, "k8s.event.reason", e.reason);
  put(attributes, "k8s.event.action", e.action);
  put(attributes, "k8s.event.start_time", timeText(e.metadata?.creationTimestamp));
  put(attributes, "k8s.event.name", e.metadata?.name);
  put(attributes, "k8s.event.uid", e.metadata?.uid);
  put(attributes, "k8s.namespace.name", e.involvedObject?.namespace);
  put(attributes, "k8s.event.reporting_controller", e.reportingComponent);
  put(attributes, "k8s.event.reporting_instance", e.reportingInstance);
  // The receiver leaves out a count of 0 (absent in the API).
  if (typeof e.count === "number" && Number.isInteger(e.count) && e.count !== 0) {
    attributes["k8s.event.count"] = e.count;
  }
  attributes[KEY_ATTRIBUTE] = record.key;
  return attributes;
}

/**
 * The log records of a batch, in batch order. Records about the same
 * object (the same resource attributes) share one resource object, which
 * the encoder groups into one `ResourceLogs`.
 */
export function logRecords(
  batch: readonly EventRecord[],
  context: RecordContext,
): OtlpLogRecord[] {
  const resources = new Map<string, OtlpResource>();
  const observed = hrTimeOfMs(context.observedMs);
  return batch.map((record) => {
    const e = record.event;
    const attributes = resourceAttributes(record, context.clusterName);
    const id = JSON.stringify(Object.entries(attributes));
    let resource = resources.get(id);
    if (resource === undefined) {
      resource = { attributes };
      resources.set(id, resource);
    }
    const severity = SEVERITIES[(e.type ?? "").toLowerCase()];
    return {
      hrTime: recordTime(e),
      hrTimeObserved: observed,
      ...(severity === undefined ? {} : { severityNumber: severity, severityText: e.type }),
      body: e.message ?? "",
      attributes: recordAttributes(record),
      droppedAttributesCount: 0,
      resource,
      instrumentationScope: context.scope,
    };
  });
}
