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

/** Parses one line of a watch stream; throws the Status error for ERROR events. */
export function parseWatchLine<T>(line: string): WatchEvent<T> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new WatchDecodeError(`Watch sent a line that is not JSON: ${excerpt(line)}`);
  }
  const event = parsed as { type?: unknown; object?: unknown };
  if (event === null || typeof event !== "object" || typeof event.type !== "string") {
    throw new WatchDecodeError(`Watch sent an object without a type: ${excerpt(line)}`);
  }
  if (event.type === "ERROR") {
    const status = event.object as KubeStatus | undefined;
    if (status === undefined || status === null || typeof status !== "object") {
      throw new WatchDecodeError(`Watch sent an ERROR event without a Status: ${excerpt(line)}`);
    }
    throw errorFromStatus(status);
  }
  if (!TYPES.has(event.type)) {
    throw new WatchDecodeError(`Watch sent an unknown event type "${event.type}"`);
  }
  const obj = event.object as { metadata?: { resourceVersion?: unknown } } | undefined;
  if (typeof obj?.metadata?.resourceVersion !== "string" || obj.metadata.resourceVersion === "") {
    throw new WatchDecodeError(
      `Watch sent a ${event.type} event whose object has no metadata.resourceVersion: ${
        excerpt(line)
      }`,
    );
  }
  return event as WatchEvent<T>;
}

/**
 * Yields the events of a watch body, one batch per network chunk. Events
 * before an ERROR event or a malformed line are yielded first; then the
 * error is thrown. A body that ends in the middle of a line throws
 * {@linkcode WatchDecodeError}. The caller cancels by breaking out of the
 * loop (the body is cancelled in `finally`).
 */
export async function* readWatchBatches<T = Record<string, unknown>>(
  body: ReadableStream<Uint8Array>,
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
        if (line.trim() === "") continue;
        let event: WatchEvent<T>;
        try {
          event = parseWatchLine<T>(line);
        } catch (e) {
          if (batch.length > 0) yield batch;
          throw e;
        }
        batch.push(event);
      }
      pending = pending.slice(start);
      if (batch.length > 0) yield batch;
    }
    if (pending.trim() !== "") {
      throw new WatchDecodeError(`Watch ended in the middle of an event: ${excerpt(pending)}`);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
