/**
 * One watch connection of the fake API server. It is a cursor into the
 * store's change history rather than a queue of its own: each pull from the
 * HTTP response stream serialises the next changes, so a client that stops
 * reading stops the server from producing (backpressure) and costs no memory.
 * A client that falls behind compaction gets a 410 Expired ERROR event, as a
 * real watch that fell out of the history would.
 *
 * @module
 */

import type { Change, Store, StoredRecord } from "./store.ts";
import type { ResourceType } from "./resources.ts";
import { bookmarkJson, objectJson } from "./objects.ts";
import { expired, type Status } from "./status.ts";

/** How a watch renders objects (plain JSON, or Tables for kubectl). */
export type WatchRenderer = (
  t: ResourceType,
  record: StoredRecord,
  first: boolean,
) => string;

/** Options for {@linkcode WatchStream}. */
export interface WatchStreamOptions {
  store: Store;
  type: ResourceType;
  identity: string;
  /** Only records in this namespace, when set. */
  namespace?: string;
  /** The selectors of the request. */
  match: (record: StoredRecord) => boolean;
  /** Changes after this resourceVersion are sent. */
  fromRv: number;
  /** Objects sent as synthetic ADDED events first (watch without a resourceVersion). */
  initial: StoredRecord[];
  bookmarks: boolean;
  bookmarkIntervalMs: number;
  timeoutMs: number;
  /** Answer a compacted start with 200 and an immediate close (events without watch cache). */
  closeSilentlyWhenExpired: boolean;
  /** Renders objects; default plain JSON with kind and apiVersion. */
  render?: WatchRenderer;
  /** Whether the fake server stalls this watch now (fault injection). */
  stalled: () => boolean;
  /** Called once when the stream ends, for whatever reason. */
  onClose: () => void;
  /**
   * A malformed-data fault due on this watch, if any; asked before each
   * chunk with events is sent, and taken by that chunk (fault injection).
   */
  takeFault?: () => StreamFault | undefined;
  /** Largest piece of the body sent at once, in bytes; 0 sends whole chunks (fault injection). */
  pieceBytes?: () => number;
}

/** The malformed data a watch stream can be made to send. */
export type StreamFaultKind = "non-json-line" | "truncated-chunk" | "unknown-type" | "no-metadata";

/** A fault taken by a watch stream. */
export interface StreamFault {
  kind: StreamFaultKind;
  /**
   * Called once the malformed data has been sent, with the resourceVersion
   * of the last complete line before it (undefined when there was none).
   */
  sent: (lastGoodRv: string | undefined) => void;
}

/** The line a "non-json-line" fault sends: what a proxy's error page looks like. */
export const NON_JSON_LINE = "<html><body><h1>502 Bad Gateway</h1></body></html>";

const CHUNK_BYTES = 64 * 1024;
const encoder = new TextEncoder();

/** A live watch, exposed as the body of a chunked HTTP response. */
export class WatchStream {
  /** The response body. */
  readonly body: ReadableStream<Uint8Array>;
  readonly identity: string;
  #o: WatchStreamOptions;
  #cursor: number;
  #initialIndex = 0;
  #first = true;
  #closed = false;
  #timedOut = false;
  #nextBookmark: number;
  #wake: (() => void) | undefined;
  #timers: ReturnType<typeof setTimeout>[] = [];
  #unsubscribe: () => void;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  /** Bytes produced but not yet sent (when the body goes out in pieces). */
  #queued: Uint8Array | undefined;
  /** Break the connection once #queued is sent (a truncated-chunk fault). */
  #breakAfterQueued: (() => void) | undefined;
  /** The resourceVersion of the last line produced, and of the last line before this chunk. */
  #lastLineRv: string | undefined;
  #beforeChunkRv: string | undefined;

  constructor(options: WatchStreamOptions) {
    this.#o = options;
    this.identity = options.identity;
    this.#cursor = options.fromRv;
    this.#nextBookmark = performance.now() + options.bookmarkIntervalMs;
    this.#unsubscribe = options.store.subscribe(() => this.#notify());
    this.#timers.push(setTimeout(() => {
      this.#timedOut = true;
      this.#notify();
    }, options.timeoutMs));
    if (options.bookmarks) {
      this.#timers.push(setInterval(() => this.#notify(), options.bookmarkIntervalMs));
    }
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => this.#pull(),
      cancel: () => this.#finish(),
    }, { highWaterMark: 1 });
  }

  /** Wakes the stream: something changed (new data, fault state, timers). */
  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Ends the stream cleanly (final chunk sent), as on a server-side timeout. */
  close(): void {
    if (this.#closed) return;
    try {
      this.#controller.close();
    } catch {
      // Already closed by the client going away: nothing left to end.
    }
    this.#finish();
  }

  /** Ends the stream abruptly: the client sees the connection break mid-response. */
  abort(): void {
    if (this.#closed) return;
    this.#controller.error(new Error("Watch dropped by the fake API server"));
    this.#finish();
  }

  /** Re-checks fault state (for example after a stall is lifted). */
  poke(): void {
    this.#notify();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#unsubscribe();
    this.#notify();
    this.#o.onClose();
  }

  async #pull(): Promise<void> {
    while (!this.#closed) {
      if (!this.#o.stalled()) {
        if (this.#queued !== undefined) {
          this.#send(this.#queued);
          return;
        }
        if (this.#breakAfterQueued !== undefined) {
          // Erroring the stream discards what it has not handed to the
          // connection yet, and over TLS the connection may still hold the
          // last piece: give the event loop two turns to write it out.
          const sent = this.#breakAfterQueued;
          this.#breakAfterQueued = undefined;
          for (let turn = 0; turn < 2; turn++) {
            await new Promise((resolve) => setTimeout(resolve, 0));
          }
          this.abort();
          sent();
          return;
        }
        const chunk = this.#produce();
        if (chunk === null) return; // Closed while producing.
        if (chunk !== "") {
          this.#send(encoder.encode(this.#applyFault(chunk)));
          return;
        }
        if (this.#timedOut) {
          const last = this.#o.bookmarks ? this.#bookmarkLine() : "";
          if (last !== "") this.#controller.enqueue(encoder.encode(last));
          this.close();
          return;
        }
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Enqueues bytes, or their first piece when the body goes out in pieces. */
  #send(bytes: Uint8Array): void {
    const max = this.#o.pieceBytes?.() ?? 0;
    if (max > 0 && bytes.length > max) {
      this.#controller.enqueue(bytes.slice(0, max));
      this.#queued = bytes.subarray(max);
    } else {
      this.#controller.enqueue(bytes);
      this.#queued = undefined;
    }
  }

  /**
   * Puts a due fault into a chunk of complete lines: a bad line after the
   * first line, or (truncated-chunk) the first line and half of the next
   * (half of the only one) followed by a broken connection.
   */
  #applyFault(chunk: string): string {
    const fault = this.#o.takeFault?.();
    if (fault === undefined) return chunk;
    const nl = chunk.indexOf("\n") + 1;
    const first = chunk.slice(0, nl);
    const rest = chunk.slice(nl);
    const event = JSON.parse(first) as {
      type: string;
      object: Record<string, unknown> & { metadata?: { resourceVersion?: string } };
    };
    const firstRv = event.object.metadata?.resourceVersion;
    if (fault.kind === "truncated-chunk") {
      if (rest === "") {
        this.#breakAfterQueued = () => fault.sent(this.#beforeChunkRv);
        return first.slice(0, Math.floor(first.length / 2));
      }
      this.#breakAfterQueued = () => fault.sent(firstRv);
      return first + rest.slice(0, Math.floor(rest.indexOf("\n") / 2));
    }
    let bad: string;
    if (fault.kind === "non-json-line") bad = NON_JSON_LINE;
    else if (fault.kind === "unknown-type") {
      bad = JSON.stringify({ type: "WEIRD", object: event.object });
    } else {
      const { metadata: _metadata, ...object } = event.object;
      bad = JSON.stringify({ type: "ADDED", object });
    }
    queueMicrotask(() => fault.sent(firstRv));
    return `${first}${bad}\n${rest}`;
  }

  #bookmarkLine(): string {
    this.#lastLineRv = String(this.#cursor);
    return `{"type":"BOOKMARK","object":${bookmarkJson(this.#o.type, this.#cursor)}}\n`;
  }

  #line(type: string, record: StoredRecord): string {
    const render = this.#o.render;
    const json = render === undefined
      ? objectJson(this.#o.type, record)
      : render(this.#o.type, record, this.#first);
    this.#first = false;
    this.#lastLineRv = String(record.rv);
    return `{"type":"${type}","object":${json}}\n`;
  }

  #expire(): null {
    if (!this.#o.closeSilentlyWhenExpired) {
      const status: Status = expired(
        `too old resource version: ${this.#cursor} (${this.#o.store.compactedRv})`,
      ).status;
      this.#controller.enqueue(
        encoder.encode(`{"type":"ERROR","object":${JSON.stringify(status)}}\n`),
      );
    }
    this.close();
    return null;
  }

  /** Serialises what is due next; "" when there is nothing to send, null when the stream ended. */
  #produce(): string | null {
    const o = this.#o;
    this.#beforeChunkRv = this.#lastLineRv;
    let out = "";
    while (this.#initialIndex < o.initial.length && out.length < CHUNK_BYTES) {
      out += this.#line("ADDED", o.initial[this.#initialIndex++]!);
    }
    if (this.#cursor < o.store.compactedRv) return this.#expire();
    const top = o.store.currentRv;
    while (this.#cursor < top && out.length < CHUNK_BYTES) {
      const change = o.store.changeAt(this.#cursor + 1)!;
      this.#cursor++;
      const line = this.#translate(change);
      if (line !== "") out += line;
    }
    if (o.bookmarks && this.#cursor >= top && performance.now() >= this.#nextBookmark) {
      this.#nextBookmark = performance.now() + o.bookmarkIntervalMs;
      out += this.#bookmarkLine();
    }
    return out;
  }

  /** Maps a change to what this watcher sees, given its namespace and selectors. */
  #translate(change: Change): string {
    const o = this.#o;
    const rec = change.record;
    if (rec.storage !== o.type.storage) return "";
    if (o.namespace !== undefined && rec.namespace !== o.namespace) return "";
    const now = change.type !== "DELETED" && o.match(rec);
    const before = change.prev !== undefined && change.type !== "ADDED" && o.match(change.prev);
    if (change.type === "DELETED") return before ? this.#line("DELETED", rec) : "";
    if (now && before) return this.#line("MODIFIED", rec);
    if (now) return this.#line("ADDED", rec);
    if (before) {
      // The object left the selection: the watcher sees it deleted, in its
      // previous state stamped with this change's resourceVersion.
      const gone: StoredRecord = {
        ...change.prev!,
        rv: rec.rv,
        json: undefined,
        object: {
          ...change.prev!.object,
          metadata: { ...change.prev!.object.metadata, resourceVersion: String(rec.rv) },
        },
      };
      return this.#line("DELETED", gone);
    }
    return "";
  }
}
