/**
 * How the batch sinks (webhook, OTLP) deliver a batch in one request and
 * deal with a receiver's permanent refusal (400, 413, 422): the refused
 * batch is sent again in halves, down to single records, so that only the
 * records refused on their own are set aside (at most 2N - 1 requests for
 * N records); a receiver refusing every record of a batch is at fault, not
 * the records: nothing is set aside, the send fails and is retried, and
 * while it takes nothing it is not asked again piece by piece. A send that
 * fails part way resumes, when the same batch is sent again, with what is
 * left. With the drop policy a batch that cannot be delivered is dropped
 * and counted.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { HttpSinkError, isPermanentRejection, type OnFailure, rejectionReason } from "./_http.ts";
import type { EventRecord, Fence, Rejection, SendResult } from "./sink.ts";

/** A batch being sent: what is done survives a failure, so that a retry resumes. */
interface Progress {
  /** The keys of the batch's records. */
  signature: string;
  /** Keys of the records delivered or set aside so far. */
  done: Set<string>;
  /** The records set aside so far. */
  rejected: Rejection[];
}

function resultOf(progress: Progress): SendResult | undefined {
  return progress.rejected.length === 0 ? undefined : { rejected: progress.rejected };
}

/** Options of {@linkcode SplittingSender}. */
export interface SplittingSenderOptions {
  /** Who refuses, for messages: "The webhook", "The OTLP receiver". */
  who: string;
  onFailure: OnFailure;
  /** POSTs `records` in one request (retrying transient failures); rejects with HttpSinkError. */
  post: (records: readonly EventRecord[], signal: AbortSignal, fence?: Fence) => Promise<void>;
  log: Logger;
}

/** Sends batches as the module documentation says. */
export class SplittingSender {
  /** Records dropped so far (only with `onFailure: "drop"`). */
  dropped = 0;
  readonly #o: SplittingSenderOptions;
  #progress: Progress | undefined;
  /** Whether the receiver took the last request it answered (false after it refused a whole batch). */
  #receiverWorks = true;

  constructor(options: SplittingSenderOptions) {
    this.#o = options;
  }

  /** Delivers `batch`; resolves with the records set aside, if any. */
  async send(
    batch: readonly EventRecord[],
    signal: AbortSignal,
    fence: Fence | undefined,
  ): Promise<SendResult | void> {
    signal.throwIfAborted();
    if (batch.length === 0) return;
    const signature = batch.map((r) => r.key).join("\n");
    let progress = this.#progress;
    if (progress?.signature !== signature) {
      progress = { signature, done: new Set(), rejected: [] };
      this.#progress = progress;
    }
    const { done } = progress;
    // A retry of a batch delivered in part sends only what is left.
    const left = done.size === 0 ? batch : batch.filter((r) => !done.has(r.key));
    const worked = this.#receiverWorks;
    try {
      await this.#deliver(left, progress, signal, fence, true);
      // Every event of the batch refused is the receiver's fault (a proxy or a
      // schema refusing everything), not the events': nothing is set aside,
      // the batch fails and is retried. One event alone may be refused for
      // good only by a receiver that took the request before.
      if (progress.rejected.length === batch.length && (batch.length > 1 || !worked)) {
        this.#receiverWorks = false;
        const first = progress.rejected[0]!;
        this.#progress = undefined;
        throw new HttpSinkError(
          `${this.#o.who} refused every event of a batch of ${batch.length} (${first.status}: ` +
            `${first.reason}): the receiver, or something in front of it, refuses everything; ` +
            "nothing is set aside",
          { status: first.status, retryable: true },
        );
      }
    } catch (e) {
      if (signal.aborted || this.#o.onFailure !== "drop" || !(e instanceof HttpSinkError)) throw e;
      this.#progress = undefined;
      const n = batch.filter((r) => !done.has(r.key)).length;
      this.dropped += n;
      this.#o.log.warn(
        "Dropped {n} events after {attempts} attempts ({dropped} dropped so far): {error}",
        { n, attempts: e.attempts, dropped: this.dropped, error: e.message },
      );
      return resultOf(progress);
    }
    this.#progress = undefined;
    return resultOf(progress);
  }

  /**
   * POSTs `records` in one request; when the receiver refuses it for good,
   * delivers each half the same way, and sets aside a single record it
   * refuses. `whole`: `records` is what the send was asked to deliver,
   * whose splitting is worth a warning.
   */
  async #deliver(
    records: readonly EventRecord[],
    progress: Progress,
    signal: AbortSignal,
    fence: Fence | undefined,
    whole: boolean,
  ): Promise<void> {
    try {
      await this.#o.post(records, signal, fence);
    } catch (e) {
      if (signal.aborted || !isPermanentRejection(e)) throw e;
      // A receiver that refused a whole batch before and has taken nothing
      // since is not asked again piece by piece.
      if (whole && !this.#receiverWorks) throw e;
      if (records.length === 1) {
        const { key } = records[0]!;
        progress.rejected.push({ key, status: e.status, reason: rejectionReason(e) });
        progress.done.add(key);
        return;
      }
      const message = `${this.#o.who} refused a batch of {n} events for good ({error}): ` +
        "sending it in halves to set aside only the events it refuses";
      if (whole) this.#o.log.warn(message, { n: records.length, error: e.message });
      else this.#o.log.debug(message, { n: records.length, error: e.message });
      const half = Math.ceil(records.length / 2);
      await this.#deliver(records.slice(0, half), progress, signal, fence, false);
      await this.#deliver(records.slice(half), progress, signal, fence, false);
      return;
    }
    this.#receiverWorks = true;
    for (const r of records) progress.done.add(r.key);
  }
}
