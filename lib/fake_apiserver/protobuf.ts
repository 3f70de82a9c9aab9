/**
 * Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`),
 * which kubectl's typed clients send (for example `kubectl create configmap`).
 * The envelope is the "k8s\0" magic followed by a runtime.Unknown message
 * holding the TypeMeta and the raw object; the object is decoded with a small
 * schema of field numbers per kind, taken from k8s.io/api's generated.proto.
 * Kinds without a schema are refused with 415, as a server that does not
 * speak the encoding would.
 *
 * @module
 */

type FieldSpec =
  | "string"
  | "bytes"
  | "bool"
  | "int"
  | "time"
  | "map"
  | "bytesMap"
  | "strings"
  | { message: Schema; repeated?: boolean };
type Schema = Record<number, [string, FieldSpec]>;

const TIME: Schema = { 1: ["seconds", "int"], 2: ["nanos", "int"] };
const OWNER_REFERENCE: Schema = {
  1: ["kind", "string"],
  3: ["name", "string"],
  4: ["uid", "string"],
  5: ["apiVersion", "string"],
  6: ["controller", "bool"],
  7: ["blockOwnerDeletion", "bool"],
};
const OBJECT_META: Schema = {
  1: ["name", "string"],
  2: ["generateName", "string"],
  3: ["namespace", "string"],
  5: ["uid", "string"],
  6: ["resourceVersion", "string"],
  7: ["generation", "int"],
  8: ["creationTimestamp", "time"],
  11: ["labels", "map"],
  12: ["annotations", "map"],
  13: ["ownerReferences", { message: OWNER_REFERENCE, repeated: true }],
  14: ["finalizers", "strings"],
};
const OBJECT_REFERENCE: Schema = {
  1: ["kind", "string"],
  2: ["namespace", "string"],
  3: ["name", "string"],
  4: ["uid", "string"],
  5: ["apiVersion", "string"],
  6: ["resourceVersion", "string"],
  7: ["fieldPath", "string"],
};
const LOCAL_OBJECT_REFERENCE: Schema = { 1: ["name", "string"] };

/** Object schemas by "apiVersion/kind". */
const KINDS: Record<string, Schema> = {
  "v1/ConfigMap": {
    1: ["metadata", { message: OBJECT_META }],
    2: ["data", "map"],
    3: ["binaryData", "bytesMap"],
    4: ["immutable", "bool"],
  },
  "v1/Namespace": {
    1: ["metadata", { message: OBJECT_META }],
    2: ["spec", { message: { 1: ["finalizers", "strings"] } }],
    3: ["status", { message: { 1: ["phase", "string"] } }],
  },
  "v1/ServiceAccount": {
    1: ["metadata", { message: OBJECT_META }],
    2: ["secrets", { message: OBJECT_REFERENCE, repeated: true }],
    3: ["imagePullSecrets", { message: LOCAL_OBJECT_REFERENCE, repeated: true }],
    4: ["automountServiceAccountToken", "bool"],
  },
};

const MAGIC = [0x6b, 0x38, 0x73, 0x00];

/** Raised for a body that is not a protobuf object the server can decode. */
export class ProtobufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtobufError";
  }
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw new ProtobufError("Truncated varint");
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new ProtobufError("Varint too long");
    }
  }
  bytes(): Uint8Array {
    const len = this.varint();
    if (this.pos + len > this.buf.length) throw new ProtobufError("Truncated field");
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.pos += 4;
    else throw new ProtobufError(`Unsupported wire type ${wireType}`);
  }
}

const decoder = new TextDecoder();

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function decodeMapEntry(bytes: Uint8Array, valueAsBytes: boolean): [string, string] {
  const r = new Reader(bytes);
  let key = "";
  let value = "";
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    if (field === 1) key = decoder.decode(r.bytes());
    else if (field === 2) {
      const b = r.bytes();
      value = valueAsBytes ? toBase64(b) : decoder.decode(b);
    } else r.skip(tag & 7);
  }
  return [key, value];
}

function decodeMessage(bytes: Uint8Array, schema: Schema): Record<string, unknown> {
  const r = new Reader(bytes);
  const out: Record<string, unknown> = {};
  while (!r.done) {
    const tag = r.varint();
    const spec = schema[Math.floor(tag / 8)];
    if (spec === undefined) {
      r.skip(tag & 7);
      continue;
    }
    const [name, kind] = spec;
    // Go writes zero values that its JSON encoding omits (omitempty): drop them too.
    if (kind === "string") {
      const v = decoder.decode(r.bytes());
      if (v !== "") out[name] = v;
    } else if (kind === "bytes") out[name] = toBase64(r.bytes());
    else if (kind === "bool") {
      if (r.varint() !== 0) out[name] = true;
    } else if (kind === "int") {
      const v = r.varint();
      if (v !== 0) out[name] = v >= 2 ** 63 ? v - 2 ** 64 : v;
    } else if (kind === "time") {
      const seconds = Number(decodeMessage(r.bytes(), TIME).seconds ?? 0);
      // The zero time (year 1) is how Go writes an unset timestamp.
      if (seconds > 0) {
        out[name] = new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
      }
    } else if (kind === "map" || kind === "bytesMap") {
      const [k, v] = decodeMapEntry(r.bytes(), kind === "bytesMap");
      out[name] = { ...(out[name] as Record<string, string> | undefined), [k]: v };
    } else if (kind === "strings") {
      out[name] = [...((out[name] as string[] | undefined) ?? []), decoder.decode(r.bytes())];
    } else {
      const value = decodeMessage(r.bytes(), kind.message);
      if (kind.repeated === true) {
        out[name] = [...((out[name] as unknown[] | undefined) ?? []), value];
      } else out[name] = value;
    }
  }
  return out;
}

/** Decodes a Kubernetes protobuf body into the JSON shape of the object. */
export function decodeKubernetesProtobuf(body: Uint8Array): Record<string, unknown> {
  if (body.length < 4 || MAGIC.some((b, i) => body[i] !== b)) {
    throw new ProtobufError(
      "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
    );
  }
  const unknown = decodeMessage(body.subarray(4), {
    1: ["typeMeta", { message: { 1: ["apiVersion", "string"], 2: ["kind", "string"] } }],
    2: ["raw", "bytes"],
  });
  const typeMeta = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const schema = KINDS[`${typeMeta.apiVersion}/${typeMeta.kind}`];
  if (schema === undefined) {
    throw new ProtobufError(`no protobuf schema for ${typeMeta.apiVersion}/${typeMeta.kind}`);
  }
  const raw = Uint8Array.from(atob(String(unknown.raw ?? "")), (c) => c.charCodeAt(0));
  return { apiVersion: typeMeta.apiVersion, kind: typeMeta.kind, ...decodeMessage(raw, schema) };
}
