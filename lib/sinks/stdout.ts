/**
 * The stdout sink: one JSON line per event (NDJSON), written in full before
 * the batch is acknowledged.
 *
 * @module
 */

import {
  enrichmentJson,
  eventJson,
  type EventRecord,
  type ServiceCheck,
  type ServiceCheckSink,
  type Sink,
} from "./sink.ts";

/** Something bytes can be written to (Deno.stdout, a file). */
export interface Writer {
  write(p: Uint8Array): Promise<number>;
}

/** Options for {@linkcode StdoutSink}. */
export interface StdoutSinkOptions {
  /** Where to write (default Deno.stdout). */
  writer?: Writer;
  /** The sink's name in logs, metrics and routes (default "stdout"; named sinks of kevents_sinks). */
  name?: string;
}

const encoder = new TextEncoder();

/**
 * Writes each record as `{"key":...,"type":...,"event":{...}}` on its own
 * line, and each service check as `{"serviceCheck":{...}}`.
 */
export class StdoutSink implements Sink, ServiceCheckSink {
  readonly name: string;
  #writer: Writer;
  /** Settles after the last write started so far; undefined when none is in flight. */
  #tail: Promise<void> | undefined;

  constructor(options: StdoutSinkOptions = {}) {
    this.name = options.name ?? "stdout";
    this.#writer = options.writer ?? Deno.stdout;
  }

  /** Writes the batch; resolves when every byte is written. */
  async send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    let text = "";
    for (const r of batch) {
      text += `{"key":${JSON.stringify(r.key)},"type":"${r.type}","event":${eventJson(r)}${
        enrichmentJson(r)
      }}\n`;
    }
    await this.#write(text);
  }

  /** Writes one `{"serviceCheck":{...}}` line per check; resolves when every byte is written. */
  async sendServiceChecks(checks: readonly ServiceCheck[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    let text = "";
    for (const check of checks) text += `{"serviceCheck":${JSON.stringify(check)}}\n`;
    await this.#write(text);
  }

  /**
   * Writes after every earlier write has finished: the pump and the
   * control-plane check write concurrently, and a partial write of one
   * must not be followed by bytes of the other in the middle of a line.
   */
  #write(text: string): Promise<void> {
    // With nothing in flight the write starts at once, as it always did.
    const previous = this.#tail;
    const written = previous === undefined
      ? this.#writeAll(text)
      : previous.then(() => this.#writeAll(text));
    const tail: Promise<void> = written.catch(() => {}).then(() => {
      if (this.#tail === tail) this.#tail = undefined;
    });
    this.#tail = tail;
    return written;
  }

  async #writeAll(text: string): Promise<void> {
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
