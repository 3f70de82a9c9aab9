/**
 * What `/healthz` judges: whether the leader's event watch is alive.
 *
 * The pump reports every sign of life (a list page, a watch accepted by the
 * server, a batch of events or bookmarks, a watch the server closed at its
 * timeout) and when it waits on the sinks. The collector reports when a
 * term starts and ends. The watch is stalled when this replica leads, the
 * pump is not held back by its sinks (backpressure is not a stall: the
 * reader stops reading on purpose), and nothing came for longer than the
 * limit. The pump restarts a silent watch by itself well before that limit
 * (its idle timeout); a stall is therefore a watch whose restarts did not
 * help, and a restart of the process is what is left.
 *
 * A follower is always live: it has no watch to judge.
 *
 * @module
 */

import { type Clock, systemClock } from "../time/mod.ts";

/** The verdict of {@linkcode Liveness.check}. */
export interface LivenessVerdict {
  live: boolean;
  /** One line for the probe's answer body. */
  detail: string;
}

/** The leader's watch liveness; see the module doc. */
export class Liveness {
  readonly #clock: Clock;
  #leading = false;
  #lastActivity = 0;
  #waitingOnSinks = false;
  #lastReceived = 0;
  #unfit: string | undefined;

  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  /** A term started (true) or ended (false). */
  leading(on: boolean): void {
    this.#leading = on;
    this.#waitingOnSinks = false;
    this.#lastActivity = this.#clock.now();
  }

  /** The list or watch received something; clears an earlier {@linkcode unfit}. */
  activity(): void {
    this.#lastActivity = this.#clock.now();
    this.#lastReceived = this.#lastActivity;
    this.#unfit = undefined;
  }

  /** When the list or watch last received something (ms since the epoch; 0 never). */
  get lastReceivedAt(): number {
    return this.#lastReceived;
  }

  /**
   * This replica stepped down because it cannot read events (`reason`):
   * unhealthy, leading or not, until a later term's list or watch receives
   * something.
   */
  unfit(reason: string): void {
    this.#unfit = reason;
  }

  /** The reader started (true) or stopped (false) waiting for room in the queue. */
  waitingOnSinks(on: boolean): void {
    this.#waitingOnSinks = on;
    this.#lastActivity = this.#clock.now();
  }

  /** Judges liveness against `limitMs` of silence. */
  check(limitMs: number): LivenessVerdict {
    if (this.#unfit !== undefined) {
      return { live: false, detail: `unfit: ${this.#unfit}` };
    }
    if (!this.#leading) return { live: true, detail: "ok: not leading" };
    if (this.#waitingOnSinks) return { live: true, detail: "ok: waiting for the sinks" };
    const silentMs = this.#clock.now() - this.#lastActivity;
    if (silentMs <= limitMs) {
      return { live: true, detail: `ok: the watch received something ${silentMs} ms ago` };
    }
    return {
      live: false,
      detail: `stalled: the leader's watch received nothing for ${silentMs} ms ` +
        `(limit ${limitMs} ms) and restarting it did not help`,
    };
  }
}
