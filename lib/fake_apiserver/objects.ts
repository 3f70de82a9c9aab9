/**
 * How the fake API server turns request bodies into stored objects and stored
 * objects into wire JSON: type checks as Go's JSON decoding would fail them,
 * validation as the real server's registry strategies do, time
 * normalisation (Time has second precision, MicroTime exactly six fractional
 * digits), canonical metadata order, and the events.k8s.io/v1 view of core
 * events.
 *
 * @module
 */

import { badRequest, invalid, type StatusError } from "./status.ts";
import { apiVersionOf, type ResourceType } from "./resources.ts";
import { bareJson, type KubeObject, type StoredRecord } from "./store.ts";

type FieldKind = "string" | "int" | "bool" | "object" | "array" | "map" | "time" | "microtime";

/**
 * Field types per kind, as dotted paths, for the fields kevents and its
 * tools write. Unknown fields pass through untouched.
 */
const SCHEMAS: Record<string, Record<string, FieldKind>> = {
  "": {
    "metadata": "object",
    "metadata.name": "string",
    "metadata.generateName": "string",
    "metadata.namespace": "string",
    "metadata.uid": "string",
    "metadata.resourceVersion": "string",
    "metadata.labels": "map",
    "metadata.annotations": "map",
    "metadata.creationTimestamp": "time",
    "metadata.deletionTimestamp": "time",
    "metadata.finalizers": "array",
    "metadata.ownerReferences": "array",
  },
  ConfigMap: { data: "map", binaryData: "map", immutable: "bool" },
  Lease: {
    spec: "object",
    "spec.holderIdentity": "string",
    "spec.leaseDurationSeconds": "int",
    "spec.acquireTime": "microtime",
    "spec.renewTime": "microtime",
    "spec.leaseTransitions": "int",
  },
  Event: {
    involvedObject: "object",
    "involvedObject.kind": "string",
    "involvedObject.namespace": "string",
    "involvedObject.name": "string",
    "involvedObject.uid": "string",
    "involvedObject.apiVersion": "string",
    "involvedObject.resourceVersion": "string",
    "involvedObject.fieldPath": "string",
    reason: "string",
    message: "string",
    source: "object",
    "source.component": "string",
    "source.host": "string",
    firstTimestamp: "time",
    lastTimestamp: "time",
    count: "int",
    type: "string",
    eventTime: "microtime",
    action: "string",
    reportingComponent: "string",
    reportingInstance: "string",
  },
  Endpoints: { subsets: "array" },
};

const GO_TYPES: Record<FieldKind, string> = {
  string: "string",
  int: "int32",
  bool: "bool",
  object: "struct",
  array: "slice",
  map: "map[string]string",
  time: "v1.Time",
  microtime: "v1.MicroTime",
};

const TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const MICROTIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** Formats a Date as a Kubernetes Time: RFC 3339 with second precision, UTC. */
export function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Formats a Date as a Kubernetes MicroTime: six fractional digits, UTC. */
export function formatMicroTime(date: Date): string {
  return date.toISOString().replace(/Z$/, "000Z");
}

function cannotHandle(kind: string, version: string, detail: string): StatusError {
  return badRequest(`${kind} in version "${version}" cannot be handled as a ${kind}: ${detail}`);
}

/**
 * The part of Go's time.Parse error that names where a MicroTime stopped
 * matching its layout: `".123Z" as ".000000"` for too few fractional digits.
 */
function microTimeMismatch(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(text)) return `${JSON.stringify(text)} as "2006"`;
  const rest = text.slice(19);
  if (!/^\.\d{6}/.test(rest)) return `${JSON.stringify(rest)} as ".000000"`;
  return `${JSON.stringify(rest.slice(7))} as "Z07:00"`;
}

function getPath(obj: Record<string, unknown>, path: string[]): unknown {
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const p of path.slice(0, -1)) cur = cur[p] as Record<string, unknown>;
  cur[path[path.length - 1]!] = value;
}

/**
 * Checks field types the way Go's decoder would and normalises times.
 * Mutates `obj` (a fresh copy the caller owns).
 */
function decodeFields(kind: string, version: string, obj: Record<string, unknown>): void {
  const schema = { ...SCHEMAS[""], ...SCHEMAS[kind] };
  for (const [dotted, fieldKind] of Object.entries(schema)) {
    const path = dotted.split(".");
    const value = getPath(obj, path);
    if (value === undefined || value === null) continue;
    const goField = `${kind}.${dotted}`;
    const mismatch = () =>
      cannotHandle(
        kind,
        version,
        `json: cannot unmarshal ${jsonType(value)} into Go struct field ${goField} of type ${
          GO_TYPES[fieldKind]
        }`,
      );
    switch (fieldKind) {
      case "string":
        if (typeof value !== "string") throw mismatch();
        break;
      case "int":
        if (typeof value !== "number" || !Number.isInteger(value)) throw mismatch();
        if (value > 2147483647 || value < -2147483648) throw mismatch();
        break;
      case "bool":
        if (typeof value !== "boolean") throw mismatch();
        break;
      case "object":
        if (jsonType(value) !== "object") throw mismatch();
        break;
      case "array":
        if (!Array.isArray(value)) throw mismatch();
        break;
      case "map":
        if (jsonType(value) !== "object") throw mismatch();
        for (const v of Object.values(value as Record<string, unknown>)) {
          if (typeof v !== "string") {
            throw cannotHandle(
              kind,
              version,
              `json: cannot unmarshal ${
                jsonType(v)
              } into Go struct field ${goField} of type string`,
            );
          }
        }
        break;
      case "time": {
        if (typeof value !== "string" || !TIME_RE.test(value)) {
          throw cannotHandle(
            kind,
            version,
            `parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05Z07:00": cannot parse ${
              JSON.stringify(value)
            } as "2006"`,
          );
        }
        // metav1.Time keeps whole seconds only, in UTC.
        setPath(obj, path, formatTime(new Date(value)));
        break;
      }
      case "microtime": {
        if (typeof value !== "string" || !MICROTIME_RE.test(value)) {
          throw cannotHandle(
            kind,
            version,
            `parsing time ${
              JSON.stringify(value)
            } as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${microTimeMismatch(value)}`,
          );
        }
        const fraction = value.slice(20, 26);
        const utc = new Date(value).toISOString().slice(0, 19);
        setPath(obj, path, `${utc}.${fraction}Z`);
        break;
      }
    }
  }
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const DNS_SUBDOMAIN_MESSAGE =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

type Cause = { reason: string; message: string; field: string };

function validate(t: ResourceType, obj: KubeObject, requestNamespace: string): Cause[] {
  const causes: Cause[] = [];
  const name = obj.metadata.name;
  if (name === "") {
    causes.push({
      reason: "FieldValueRequired",
      message: "Required value: name or generateName is required",
      field: "metadata.name",
    });
  } else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    causes.push({
      reason: "FieldValueInvalid",
      message: `Invalid value: ${JSON.stringify(name)}: ${DNS_SUBDOMAIN_MESSAGE}`,
      field: "metadata.name",
    });
  }
  if (t.kind === "ConfigMap") {
    const binary = (obj.binaryData ?? {}) as Record<string, unknown>;
    for (const [field, map] of [["data", obj.data], ["binaryData", binary]] as const) {
      for (const key of Object.keys((map ?? {}) as object)) {
        if (!CONFIG_KEY.test(key)) {
          causes.push({
            reason: "FieldValueInvalid",
            message: `Invalid value: ${
              JSON.stringify(key)
            }: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`,
            field,
          });
        }
      }
    }
    // As ValidateConfigMap: a key may not be in both maps.
    for (const key of Object.keys((obj.data ?? {}) as object)) {
      if (key in binary) {
        causes.push({
          reason: "FieldValueInvalid",
          message: `Invalid value: ${JSON.stringify(key)}: duplicate of key present in binaryData`,
          field: "data",
        });
      }
    }
  }
  if (t.kind === "Lease") {
    const spec = (obj.spec ?? {}) as Record<string, unknown>;
    const d = spec.leaseDurationSeconds;
    if (typeof d === "number" && d <= 0) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: ${d}: must be greater than 0`,
        field: "spec.leaseDurationSeconds",
      });
    }
    const tr = spec.leaseTransitions;
    if (typeof tr === "number" && tr < 0) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: ${tr}: must be greater than or equal to 0`,
        field: "spec.leaseTransitions",
      });
    }
  }
  if (t.storage === "/events") {
    const involved = (obj.involvedObject ?? {}) as Record<string, unknown>;
    const ns = involved.namespace;
    if (typeof ns === "string" && ns !== "" && ns !== requestNamespace) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: ${JSON.stringify(ns)}: does not match event.namespace`,
        field: "involvedObject.namespace",
      });
    }
  }
  return causes;
}

const META_ORDER = [
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
];

function orderMetadata(meta: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of META_ORDER) if (meta[k] !== undefined) out[k] = meta[k];
  for (const [k, v] of Object.entries(meta)) if (!(k in out) && v !== undefined) out[k] = v;
  return out;
}

/** What {@linkcode decodeObject} needs to know about the request. */
export interface DecodeContext {
  /** The namespace in the URL ("" for cluster-scoped). */
  namespace: string;
  /** The name in the URL, for update. */
  name?: string;
}

/**
 * Turns a request body into an object ready to store: checks kind and
 * apiVersion, field types, the namespace and name against the URL, and the
 * validation rules of the kind. Does not assign uid, timestamps or
 * resourceVersion: the caller does, depending on create or update.
 */
export function decodeObject(t: ResourceType, body: unknown, ctx: DecodeContext): KubeObject {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body)}'`);
  }
  const raw = structuredClone(body) as Record<string, unknown>;
  const apiVersion = apiVersionOf(t);
  if (raw.kind !== undefined && raw.kind !== t.kind) {
    throw badRequest(
      `the object provided is unrecognized (must be of type ${t.kind}): ${
        JSON.stringify(raw.kind)
      } ${JSON.stringify(raw).slice(0, 200)}`,
    );
  }
  if (raw.apiVersion !== undefined && raw.apiVersion !== apiVersion) {
    throw badRequest(
      `the API version in the data (${raw.apiVersion}) does not match the expected API version (${apiVersion})`,
    );
  }
  delete raw.kind;
  delete raw.apiVersion;
  const core = t.storage === "/events" && t.group !== "" ? fromEventsV1(raw) : raw;
  decodeFields(t.kind, t.version, core);
  const meta = (core.metadata ?? {}) as Record<string, unknown>;
  if (t.namespaced) {
    const ns = meta.namespace;
    if (ns !== undefined && ns !== "" && ns !== ctx.namespace) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    meta.namespace = ctx.namespace;
  } else {
    delete meta.namespace;
  }
  if (ctx.name !== undefined && meta.name !== undefined && meta.name !== ctx.name) {
    throw badRequest(
      `the name of the object (${meta.name}) does not match the name on the URL (${ctx.name})`,
    );
  }
  if (meta.name === undefined || meta.name === "") {
    const generate = meta.generateName;
    meta.name = typeof generate === "string" && generate !== "" && ctx.name === undefined
      ? generate + randomSuffix()
      : (ctx.name ?? "");
  }
  core.metadata = meta;
  const obj = core as KubeObject;
  const causes = validate(t, obj, ctx.namespace);
  if (causes.length > 0) throw invalid(t.kind, t, obj.metadata.name, causes);
  return obj;
}

/**
 * The rules an update must keep against the stored object, as
 * ValidateConfigMapUpdate: once `immutable` is true, neither it nor the
 * data may change. Throws 422 Invalid.
 */
export function validateUpdate(t: ResourceType, old: KubeObject, next: KubeObject): void {
  if (t.kind !== "ConfigMap" || old.immutable !== true) return;
  const causes: Cause[] = [];
  const message = "Forbidden: field is immutable when `immutable` is set";
  if (next.immutable !== true) {
    causes.push({ reason: "FieldValueForbidden", message, field: "immutable" });
  }
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});
  if (!same(old.data, next.data)) {
    causes.push({ reason: "FieldValueForbidden", message, field: "data" });
  }
  if (!same(old.binaryData, next.binaryData)) {
    causes.push({ reason: "FieldValueForbidden", message, field: "binaryData" });
  }
  if (causes.length > 0) throw invalid(t.kind, t, old.metadata.name, causes);
}

/** Puts metadata fields in the order the real server writes them. */
export function canonical(obj: KubeObject): KubeObject {
  return { ...obj, metadata: orderMetadata(obj.metadata) as KubeObject["metadata"] };
}

const SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789";

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return [...bytes].map((b) => SUFFIX_CHARS[b % SUFFIX_CHARS.length]).join("");
}

// core/v1 Event field <-> events.k8s.io/v1 Event field.
const EVENTS_V1_RENAMES: [string, string][] = [
  ["involvedObject", "regarding"],
  ["message", "note"],
  ["source", "deprecatedSource"],
  ["firstTimestamp", "deprecatedFirstTimestamp"],
  ["lastTimestamp", "deprecatedLastTimestamp"],
  ["count", "deprecatedCount"],
  ["reportingComponent", "reportingController"],
];

/** Converts a stored core/v1 Event into its events.k8s.io/v1 shape. */
export function toEventsV1(core: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const rename = new Map(EVENTS_V1_RENAMES);
  for (const [k, v] of Object.entries(core)) out[rename.get(k) ?? k] = v;
  return out;
}

/** Converts an events.k8s.io/v1 Event body into the stored core/v1 shape. */
export function fromEventsV1(v1: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const rename = new Map(EVENTS_V1_RENAMES.map(([a, b]) => [b, a]));
  for (const [k, v] of Object.entries(v1)) out[rename.get(k) ?? k] = v;
  return out;
}

/** The object of a record as the type presents it (without kind/apiVersion). */
export function viewObject(t: ResourceType, record: StoredRecord): Record<string, unknown> {
  return t.storage === "/events" && t.group !== "" ? toEventsV1(record.object) : record.object;
}

/** Wire JSON of a record, without kind/apiVersion (as list items are written). */
export function itemJson(t: ResourceType, record: StoredRecord): string {
  if (t.storage === "/events" && t.group !== "") return JSON.stringify(viewObject(t, record));
  return bareJson(record);
}

/** Wire JSON of a record with kind and apiVersion first (get, create, watch). */
export function objectJson(t: ResourceType, record: StoredRecord): string {
  const bare = itemJson(t, record);
  const head = `{"kind":${JSON.stringify(t.kind)},"apiVersion":${JSON.stringify(apiVersionOf(t))}`;
  return bare === "{}" ? head + "}" : `${head},${bare.slice(1)}`;
}

/** The empty object of a type carrying only a resourceVersion, as BOOKMARK events send. */
export function bookmarkJson(t: ResourceType, rv: number): string {
  const meta = `"metadata":{"resourceVersion":"${rv}","creationTimestamp":null}`;
  const head = `{"kind":${JSON.stringify(t.kind)},"apiVersion":${JSON.stringify(apiVersionOf(t))}`;
  if (t.kind === "Event" && t.group === "") {
    return `${head},${meta},"involvedObject":{},"source":{},"firstTimestamp":null,"lastTimestamp":null,"eventTime":null,"reportingComponent":"","reportingInstance":""}`;
  }
  return `${head},${meta}}`;
}
