/**
 * The stdout sink: one JSON line per event (NDJSON), written in full before
 * the batch is acknowledged.
 *
 * @module
 */

import type { EventRecord, Sink } from "./sink.ts";

/** Something bytes can be written to (Deno.stdout, a file). */
export interface Writer {
  write(p: Uint8Array): Promise<number>;
}

/** Options for {@linkcode StdoutSink}. */
export interface StdoutSinkOptions {
  /** Where to write (default Deno.stdout). */
  writer?: Writer;
}

const encoder = new TextEncoder();

/** Writes each record as `{"key":...,"type":...,"event":{...}}` on its own line. */
export class StdoutSink implements Sink {
  readonly name = "stdout";
  #writer: Writer;

  constructor(options: StdoutSinkOptions = {}) {
    this.#writer = options.writer ?? Deno.stdout;
  }

  /** Writes the batch; resolves when every byte is written. */
  async send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    let text = "";
    for (const r of batch) {
      text += `{"key":${JSON.stringify(r.key)},"type":"${r.type}","event":${
        JSON.stringify(r.event)
      }}\n`;
    }
    let bytes = encoder.encode(text);
    while (bytes.length > 0) {
      const n = await this.#writer.write(bytes);
      bytes = bytes.subarray(n);
    }
  }

  /** Nothing to release: stdout belongs to the process. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
