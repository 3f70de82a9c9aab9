/**
 * Reads a Kubernetes watch response (newline-delimited JSON over a chunked
 * body) into batches of typed events. Owning the stream, rather than using
 * client-node's Watch, keeps it fast, bounded in memory, cancellable by an
 * AbortSignal, and strict: anything that is not a valid watch event is an
 * error, never silently skipped.
 *
 * Parsing less: a line is checked to be valid JSON and read for its type,
 * its object's resourceVersion and the string fields the caller names
 * (`fields`), without building the object ({@linkcode JsonPicker}); the
 * object is kept as the JSON text the server sent and parsed only when
 * someone reads `object`. A line the fast path cannot take (an ERROR event,
 * anything unusual or malformed) is parsed in full, which decides what is
 * wrong with it.
 *
 * @module
 */

import { errorFromStatus, type KubeStatus, WatchDecodeError } from "./errors.ts";
import { ABSENT, ESCAPED_STRING, JsonPicker, NULL, OBJECT, STRING } from "./json_scan.ts";

/** Watch event types the API server sends. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";

/** One watch event; `object.metadata.resourceVersion` is always a non-empty string. */
export interface WatchEvent<T = Record<string, unknown>> {
  type: WatchEventType;
  /** The object; built from {@linkcode json} on first access when the line was not parsed. */
  readonly object: T & { metadata: { resourceVersion: string } };
  /** `object.metadata.resourceVersion`, read without building the object. */
  readonly resourceVersion: string;
  /**
   * The object as JSON text: as the server sent it, or serialised from the
   * parsed object for a line the fast path did not take (the same JSON
   * value either way; the bytes may differ, in escapes for example).
   */
  readonly json: string;
  /**
   * The string values of the fields asked for (`fields` of
   * {@linkcode readWatchBatches}: paths in the object such as
   * `metadata.uid`), in that order, undefined for a field absent or null;
   * undefined as a whole when one of them, or an object on its path, holds
   * another kind of value: then read `object`.
   */
  readonly fields: readonly (string | undefined)[] | undefined;
}

/** Options of {@linkcode readWatchBatches}. */
export interface ReadWatchOptions {
  /** Paths of string fields of each object to read without building it (default none). */
  fields?: readonly string[];
  /** Told of every chunk of the body as it arrives (a sign of life). */
  onChunk?: () => void;
  /**
   * Ends the reading at once when it aborts, even a read waiting on the
   * body: the body is cancelled and the signal's reason thrown.
   */
  signal?: AbortSignal;
}

/** A watch event whose object is built on demand from its JSON text, or the reverse. */
class LineEvent<T> implements WatchEvent<T> {
  readonly type: WatchEventType;
  readonly resourceVersion: string;
  readonly fields: readonly (string | undefined)[] | undefined;
  #json: string | undefined;
  #object: (T & { metadata: { resourceVersion: string } }) | undefined;

  constructor(
    type: WatchEventType,
    resourceVersion: string,
    json: string | undefined,
    object: (T & { metadata: { resourceVersion: string } }) | undefined,
    fields: readonly (string | undefined)[] | undefined,
  ) {
    this.type = type;
    this.resourceVersion = resourceVersion;
    this.#json = json;
    this.#object = object;
    this.fields = fields;
  }

  get object(): T & { metadata: { resourceVersion: string } } {
    // The text was checked to be JSON with a non-empty resourceVersion: this cannot throw.
    return this.#object ??= JSON.parse(this.#json!);
  }

  get json(): string {
    return this.#json ??= JSON.stringify(this.#object);
  }

  /** What `JSON.stringify` and test assertions see: the event as the server sent it. */
  toJSON(): { type: WatchEventType; object: unknown } {
    return { type: this.type, object: this.object };
  }
}

/** The values at `paths` of a parsed object, as {@linkcode WatchEvent.fields} gives them. */
function fieldsOf(object: unknown, paths: readonly string[][]): (string | undefined)[] | undefined {
  const out: (string | undefined)[] = [];
  for (const path of paths) {
    let value: unknown = object;
    for (const name of path) {
      if (value === null || value === undefined) break;
      if (typeof value !== "object" || Array.isArray(value)) return undefined;
      value = (value as Record<string, unknown>)[name];
    }
    if (value === null || value === undefined) out.push(undefined);
    else if (typeof value === "string") out.push(value);
    else return undefined;
  }
  return out;
}

const TYPES = new Set(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);

function excerpt(line: string): string {
  return line.length > 120 ? `${line.slice(0, 120)}...` : line;
}

function article(type: string): string {
  return /^[AEIOU]/.test(type) ? "an" : "a";
}

/**
 * Parses one line of a watch stream; throws the Status error for ERROR
 * events and {@linkcode WatchDecodeError} for anything that is not a valid
 * watch event, naming the line when its number is given.
 */
export function parseWatchLine<T>(line: string, lineNumber?: number): WatchEvent<T> {
  const which = lineNumber === undefined ? "A watch line" : `Line ${lineNumber} of the watch`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new WatchDecodeError(`${which} is not JSON: ${excerpt(line)}`);
  }
  const event = parsed as { type?: unknown; object?: unknown };
  if (event === null || typeof event !== "object" || typeof event.type !== "string") {
    throw new WatchDecodeError(`${which} is not a watch event (no type): ${excerpt(line)}`);
  }
  const type = event.type;
  if (type === "ERROR") {
    const status = event.object as KubeStatus | undefined;
    if (status === undefined || status === null || typeof status !== "object") {
      throw new WatchDecodeError(`${which} is an ERROR event without a Status: ${excerpt(line)}`);
    }
    throw errorFromStatus(status);
  }
  if (!TYPES.has(type)) {
    throw new WatchDecodeError(`${which} has an unknown event type "${type}": ${excerpt(line)}`);
  }
  const obj = event.object as { metadata?: { resourceVersion?: unknown } } | null | undefined;
  const rv = obj?.metadata?.resourceVersion;
  if (typeof rv !== "string" || rv === "") {
    const what = obj === null || typeof obj !== "object"
      ? "without an object"
      : obj.metadata === null || typeof obj.metadata !== "object"
      ? "whose object has no metadata"
      : "whose object has no metadata.resourceVersion";
    throw new WatchDecodeError(
      `${which} is ${article(type)} ${type} event ${what}: ${excerpt(line)}`,
    );
  }
  const object = obj as T & { metadata: { resourceVersion: string } };
  return new LineEvent<T>(type as WatchEventType, rv, undefined, object, undefined);
}

/** How far a watch body has been read; {@linkcode readWatchBatches} keeps it up to date. */
export interface WatchPosition {
  /** Lines read in full (blank ones included). */
  lines: number;
  /** Characters received of the line after them; 0 between lines. */
  partial: number;
}

/** Longest field value compared with the previous line's, to share one string. */
const SHARED_VALUE_LENGTH = 32;

/** The event types the fast path takes (ERROR and unknown types go to {@linkcode parseWatchLine}). */
const FAST_TYPES: readonly WatchEventType[] = ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"];

/**
 * Decodes watch lines: the fast path for the usual ones, {@linkcode parseWatchLine}
 * for the others.
 */
class WatchLineDecoder {
  readonly #picker: JsonPicker;
  readonly #fieldPaths: readonly string[][];
  /** Slots of the picked fields, in the order asked. */
  readonly #fieldSlots: number[];
  /** Slots of the objects on the fields' paths (below `object`). */
  readonly #parentSlots: number[];
  readonly #type: number;
  readonly #object: number;
  readonly #metadata: number;
  readonly #rv: number;
  readonly #noFields: readonly (string | undefined)[] = Object.freeze([]);
  /** The fields of the last line, whose equal values are reused rather than copied again. */
  #lastFields: (string | undefined)[] = [];

  constructor(fields: readonly string[]) {
    const paths = fields.map((f) => `object.${f}`);
    this.#picker = new JsonPicker(["type", "object.metadata.resourceVersion", ...paths]);
    const p = this.#picker;
    this.#type = p.slot("type");
    this.#object = p.slot("object");
    this.#metadata = p.slot("object.metadata");
    this.#rv = p.slot("object.metadata.resourceVersion");
    this.#fieldPaths = fields.map((f) => f.split("."));
    this.#fieldSlots = paths.map((path) => p.slot(path));
    const parents = new Set<string>();
    for (const f of fields) {
      const names = f.split(".");
      for (let i = 1; i < names.length; i++) parents.add(`object.${names.slice(0, i).join(".")}`);
    }
    this.#parentSlots = [...parents].map((path) => p.slot(path));
  }

  /** The event of a non-blank line; throws as {@linkcode parseWatchLine} does. */
  decode<T>(line: string, lineNumber: number): WatchEvent<T> {
    const p = this.#picker;
    const kinds = p.kinds;
    if (
      p.scan(line) && kinds[this.#object] === OBJECT && kinds[this.#metadata] === OBJECT &&
      kinds[this.#rv] !== ABSENT && kinds[this.#rv] !== NULL
    ) {
      let type: WatchEventType | undefined;
      for (const t of FAST_TYPES) {
        if (p.stringIs(this.#type, t)) {
          type = t;
          break;
        }
      }
      const rvKind = kinds[this.#rv];
      const rv = rvKind === STRING || rvKind === ESCAPED_STRING ? p.string(this.#rv)! : "";
      if (type !== undefined && rv !== "") {
        const event = new LineEvent<T>(type, rv, p.raw(this.#object), undefined, this.#fields());
        p.clear();
        return event;
      }
    }
    p.clear();
    // Not for the fast path: the full decoding names what is wrong, if anything.
    const event = parseWatchLine<T>(line, lineNumber);
    const fields = this.#fieldSlots.length === 0
      ? this.#noFields
      : fieldsOf(event.object, this.#fieldPaths);
    return new LineEvent<T>(event.type, event.resourceVersion, undefined, event.object, fields);
  }

  #fields(): readonly (string | undefined)[] | undefined {
    const slots = this.#fieldSlots;
    if (slots.length === 0) return this.#noFields;
    const p = this.#picker;
    const kinds = p.kinds;
    for (const slot of this.#parentSlots) {
      const kind = kinds[slot];
      if (kind !== OBJECT && kind !== ABSENT && kind !== NULL) return undefined;
    }
    const last = this.#lastFields;
    const out: (string | undefined)[] = new Array(slots.length);
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      const kind = kinds[slot];
      if (kind === STRING) {
        // Neighbouring events often share a value (a time, a type): one
        // string for all. Not worth a comparison for long values (a uid),
        // which differ from line to line.
        const previous = last[i];
        out[i] = previous !== undefined && previous.length <= SHARED_VALUE_LENGTH &&
            p.stringIs(slot, previous)
          ? previous
          : p.string(slot);
      } else if (kind === ESCAPED_STRING) out[i] = p.string(slot);
      else if (kind === ABSENT || kind === NULL) out[i] = undefined;
      else return undefined;
    }
    this.#lastFields = out;
    return out;
  }
}

/**
 * Yields the events of a watch body, one batch per network chunk. Events
 * before an ERROR event or a malformed line are yielded first; then the
 * error is thrown. A body that ends in the middle of a line throws
 * {@linkcode WatchDecodeError}; one that fails throws its error, and
 * `position` (updated as the body is read) tells where it failed. The
 * caller cancels by breaking out of the loop (the body is cancelled in
 * `finally`).
 */
export async function* readWatchBatches<T = Record<string, unknown>>(
  body: ReadableStream<Uint8Array>,
  position: WatchPosition = { lines: 0, partial: 0 },
  options: ReadWatchOptions = {},
): AsyncGenerator<WatchEvent<T>[], void, undefined> {
  const decoder = new WatchLineDecoder(options.fields ?? []);
  const { onChunk, signal } = options;
  // A TextDecoder rather than a TextDecoderStream: one stream layer less per chunk.
  const text = new TextDecoder();
  const reader = body.getReader();
  // A body may not end by itself when its request is aborted: a read of
  // Deno's fetch body waiting for more data of a watch hangs on. Cancelling
  // the reader settles a waiting read at once (as done), whatever the body.
  const onAbort = () => {
    reader.cancel(signal!.reason).catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let pending = "";
  try {
    for (;;) {
      signal?.throwIfAborted();
      const { value, done } = await reader.read();
      signal?.throwIfAborted();
      if (done) {
        // An incomplete character at the very end decodes to U+FFFD.
        pending += text.decode();
        break;
      }
      onChunk?.();
      const chunk = text.decode(value, { stream: true });
      // Lines are cut from the chunk itself, not from the rest of the
      // previous chunk joined to it: that would copy every chunk once more.
      let nl = chunk.indexOf("\n");
      if (nl < 0) {
        pending += chunk;
        position.partial = pending.length;
        continue;
      }
      const batch: WatchEvent<T>[] = [];
      let line = pending + chunk.slice(0, nl);
      let start = nl + 1;
      for (;;) {
        position.lines++;
        if (line.trim() !== "") {
          let event: WatchEvent<T>;
          try {
            event = decoder.decode<T>(line, position.lines);
          } catch (e) {
            position.partial = 0;
            if (batch.length > 0) yield batch;
            throw e;
          }
          batch.push(event);
        }
        nl = chunk.indexOf("\n", start);
        if (nl < 0) break;
        line = chunk.slice(start, nl);
        start = nl + 1;
      }
      pending = chunk.slice(start);
      position.partial = pending.length;
      if (batch.length > 0) yield batch;
    }
    if (pending.trim() !== "") {
      throw new WatchDecodeError(
        `The watch ended in the middle of an event, on line ${position.lines + 1}: ${
          excerpt(pending)
        }`,
      );
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await reader.cancel().catch(() => {});
  }
}
