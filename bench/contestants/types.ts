/**
 * What every reader measured by the throughput and catch-up benchmarks
 * provides to bench/contestant.ts, the subprocess that runs one of them.
 *
 * @module
 */

/** How a contestant is run (passed as JSON on the command line). */
export interface ContestantOptions {
  /** Path of the kubeconfig reaching the fake API server. */
  kubeconfig: string;
  /** resourceVersion to watch from (the pump: its token). */
  fromRv: string;
  /** Watch events (the pump: delivered events) after which it is done. */
  events: number;
  /**
   * The pump only: done once it has acknowledged a position at or past
   * this resourceVersion and opened its watch again (catch-up after 410),
   * instead of after `events` events.
   */
  caughtUpRv?: number;
}

/** What a contestant reports, besides events and time. */
export type Figures = Record<string, number | string | boolean>;

/** Where a contestant counts its progress and says when it reached its goal. */
export class Progress {
  /** Events so far. */
  events = 0;
  /** When the goal was reached (performance.now()), if it was. */
  reachedAt: number | undefined;

  /** Marks the goal as reached now (the first call counts). */
  reached(): void {
    this.reachedAt ??= performance.now();
  }
}

/** A prepared reader: connected, not streaming yet. */
export interface Contestant {
  /** Streams until the goal is reached; resolves with its own figures once it has stopped. */
  run(progress: Progress): Promise<Figures>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** Connects (the first request) and returns the contestant, ready to stream. */
export type Prepare = (options: ContestantOptions) => Promise<Contestant>;
