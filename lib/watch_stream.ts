/**
 * Reads a Kubernetes watch response (newline-delimited JSON over a chunked
 * body) into batches of typed events. Owning the stream, rather than using
 * client-node's Watch, keeps it fast, bounded in memory, cancellable by an
 * AbortSignal, and strict: anything that is not a valid watch event is an
 * error, never silently skipped.
 *
 * @module
 */

import { errorFromStatus, type KubeStatus, WatchDecodeError } from "./errors.ts";

/** Watch event types the API server sends. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";

/** One watch event; `object.metadata.resourceVersion` is always a string. */
export interface WatchEvent<T = Record<string, unknown>> {
  type: WatchEventType;
  object: T & { metadata: { resourceVersion: string } };
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
  return event as WatchEvent<T>;
}

/** How far a watch body has been read; {@linkcode readWatchBatches} keeps it up to date. */
export interface WatchPosition {
  /** Lines read in full (blank ones included). */
  lines: number;
  /** Characters received of the line after them; 0 between lines. */
  partial: number;
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
): AsyncGenerator<WatchEvent<T>[], void, undefined> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      const batch: WatchEvent<T>[] = [];
      let start = 0;
      let nl: number;
      while ((nl = pending.indexOf("\n", start)) >= 0) {
        const line = pending.slice(start, nl);
        start = nl + 1;
        position.lines++;
        if (line.trim() === "") continue;
        let event: WatchEvent<T>;
        try {
          event = parseWatchLine<T>(line, position.lines);
        } catch (e) {
          position.partial = 0;
          if (batch.length > 0) yield batch;
          throw e;
        }
        batch.push(event);
      }
      pending = pending.slice(start);
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
    await reader.cancel().catch(() => {});
  }
}
