/**
 * The event checkpoint: the `datadogtoken` ConfigMap, whose
 * `event.tokenKey` is the resourceVersion up to which every event has been
 * delivered and `event.tokenTimestamp` the time of the last delivered event
 * (the Datadog Agent's format, so either can resume from the other's token).
 *
 * Writes are fenced. At the start of its term a leader stamps its term
 * (identity and lease transition) into the ConfigMap with a compare-and-swap;
 * every later write is a compare-and-swap on the version that leader last
 * wrote. A write from a deposed leader therefore meets a newer version and
 * fails with 409: it is dropped, never retried, and the term is told.
 *
 * Writes happen only for positions the sinks have acknowledged, batched (at
 * most every interval or every N events), and once more on a clean stop.
 *
 * @module
 */

import type { V1ConfigMap } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import { type Clock, systemClock } from "./clock.ts";
import { Backoff } from "./backoff.ts";
import type { Metrics } from "./metrics.ts";
import { AlreadyExistsError, ConflictError, ForbiddenError, NotFoundError } from "./errors.ts";
import { CONFIGMAPS, type KubeClient } from "./kube_client.ts";

/** The ConfigMap data key of the resourceVersion. */
export const TOKEN_KEY = "event.tokenKey";
/** The ConfigMap data key of the last event's time. */
export const TOKEN_TIMESTAMP = "event.tokenTimestamp";
/** The annotation a leader stamps its term into. */
export const TERM_ANNOTATION = "kevents.io/term";
/**
 * How far in the future a token's time may be before it is ignored: clocks
 * of nodes and replicas differ by seconds, rarely by minutes.
 */
export const TOKEN_TIME_SKEW_MS = 5 * 60 * 1000;

/** A position in the event stream. */
export interface Token {
  /** Opaque resourceVersion. */
  resourceVersion: string;
  /** RFC 3339 time of the last delivered event, if known. */
  timestamp: string | undefined;
}

/** Options for {@linkcode Checkpointer}. */
export interface CheckpointerOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** Our term, stamped into the ConfigMap: "identity/transitions". */
  term: string;
  /** Write at most this often (ms). */
  intervalMs: number;
  /** Write as soon as this many events were acknowledged since the last write. */
  maxEvents: number;
  /**
   * A position that delivered no event (a BOOKMARK, a deletion) is written
   * at most this often (default 60 s). Bookmarks carry the cluster-wide
   * resourceVersion, which our own checkpoint writes advance: writing each
   * one at once would make an idle leader write forever.
   */
  idleIntervalMs?: number;
  /** Bound of one request (ms). */
  requestTimeoutMs: number;
  clock?: Clock;
  /** Called once when a write was refused because a newer leader wrote. */
  onFenced?: () => void;
  /** Counts writes: written, fenced (refused) or failed. */
  metrics?: Pick<Metrics, "checkpointWrite">;
}

const log = getLogger(["kevents", "checkpoint"]);

/** Options of {@linkcode tokenFromData}. */
export interface TokenFromDataOptions {
  /** The time now, in ms since the epoch (default `Date.now()`), to spot a time in the future. */
  now?: number;
}

/**
 * Reads a token from ConfigMap data; undefined for absent, empty, "0" or
 * garbage (logged as a warning). A time more than
 * {@linkcode TOKEN_TIME_SKEW_MS} in the future is dropped with a warning:
 * after a 410 without integer resourceVersions, the pump delivers again
 * what is not older than the token's time, and a time in the future would
 * make it skip every event up to then.
 */
export function tokenFromData(
  data: Record<string, string> | undefined,
  options: TokenFromDataOptions = {},
): Token | undefined {
  const rv = data?.[TOKEN_KEY]?.trim() ?? "";
  if (rv === "" || rv === "0") return undefined;
  // A resourceVersion is opaque, but one with whitespace, control characters
  // or kilobytes of text is not one any API server handed out; nor is one
  // that reads as a number yet is no unsigned integer ("-1", "1e9", "12.5"):
  // the numeric ones are etcd revisions.
  const numberLike = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(rv) && !/^\d+$/.test(rv);
  if (rv.length > 256 || !/^[\x21-\x7e]+$/.test(rv) || numberLike) {
    log.warn("Ignoring the checkpoint: {key} holds {value}, which is not a resourceVersion", {
      key: TOKEN_KEY,
      value: rv.slice(0, 40),
    });
    return undefined;
  }
  const ts = data?.[TOKEN_TIMESTAMP]?.trim();
  const at = ts === undefined || ts === "" ? NaN : Date.parse(ts);
  let valid = !Number.isNaN(at);
  if (ts !== undefined && ts !== "" && !valid) {
    log.warn("Ignoring {key}: {value} is not a time", {
      key: TOKEN_TIMESTAMP,
      value: ts.slice(0, 40),
    });
  }
  const now = options.now ?? Date.now();
  if (valid && at > now + TOKEN_TIME_SKEW_MS) {
    valid = false;
    log.warn(
      "Ignoring {key}: {value} is more than {skew} s in the future; events are not ruled out by time",
      { key: TOKEN_TIMESTAMP, value: ts!.slice(0, 40), skew: TOKEN_TIME_SKEW_MS / 1000 },
    );
  }
  return { resourceVersion: rv, timestamp: valid ? ts : undefined };
}

/** The fenced, batched writer of one term's checkpoint. */
export class Checkpointer {
  #o: CheckpointerOptions;
  #clock: Clock;
  #last: V1ConfigMap | undefined;
  /** The ConfigMap cannot be read or written: keep the token in memory only. */
  #memoryOnly = false;
  #fenced = false;
  #written: Token | undefined;
  #pending: Token | undefined;
  #pendingEvents = 0;
  #lastWriteAt = 0;
  #wake: (() => void) | undefined;
  #writes = 0;

  constructor(options: CheckpointerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Whether a newer leader has fenced us off. */
  get fenced(): boolean {
    return this.#fenced;
  }

  /** Successful writes so far. */
  get writes(): number {
    return this.#writes;
  }

  /** The last token written (or kept in memory). */
  get token(): Token | undefined {
    return this.#written;
  }

  #timeout(signal?: AbortSignal): AbortSignal {
    const t = AbortSignal.timeout(this.#o.requestTimeoutMs);
    return signal === undefined ? t : AbortSignal.any([signal, t]);
  }

  #where(): string {
    return `configmaps ${this.#o.namespace}/${this.#o.name}`;
  }

  #permissionWarning(verb: string, e: ForbiddenError): void {
    log.warn(
      "Cannot {verb} {where} ({error}): keeping the checkpoint in memory only; grant {verb} on configmaps to share it across replicas",
      { verb, where: this.#where(), error: e.message },
    );
    this.#memoryOnly = true;
  }

  /**
   * Starts the term: reads the token and stamps our term into the ConfigMap
   * (creating it when missing), so that writes of any earlier leader now
   * fail. Returns the token to resume from.
   */
  async begin(signal: AbortSignal): Promise<Token | undefined> {
    const { client, namespace, name, term } = this.#o;
    for (let attempt = 0;; attempt++) {
      let cm: V1ConfigMap | undefined;
      try {
        cm = await client.get<V1ConfigMap>(CONFIGMAPS, namespace, name, {
          signal: this.#timeout(signal),
        });
      } catch (e) {
        if (e instanceof ForbiddenError) {
          this.#permissionWarning("get", e);
          return undefined;
        }
        if (!(e instanceof NotFoundError)) throw e;
      }
      if (cm === undefined) {
        try {
          this.#last = await client.create<V1ConfigMap>(CONFIGMAPS, namespace, {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name, namespace, annotations: { [TERM_ANNOTATION]: term } },
            data: {},
          }, { signal: this.#timeout(signal) });
          log.info("Created {where} for the checkpoint", { where: this.#where() });
          return undefined;
        } catch (e) {
          if (e instanceof ForbiddenError) {
            this.#permissionWarning("create", e);
            return undefined;
          }
          if (e instanceof AlreadyExistsError && attempt < 3) continue;
          throw e;
        }
      }
      const token = tokenFromData(cm.data, { now: this.#clock.now() });
      try {
        this.#last = await client.replace<V1ConfigMap>(CONFIGMAPS, namespace, name, {
          ...cm,
          metadata: {
            ...cm.metadata,
            annotations: { ...cm.metadata?.annotations, [TERM_ANNOTATION]: term },
          },
        }, { signal: this.#timeout(signal) });
      } catch (e) {
        if (e instanceof ForbiddenError) {
          this.#permissionWarning("update", e);
          this.#written = token;
          return token;
        }
        // Someone wrote between our read and our stamp: read again.
        if (e instanceof ConflictError && attempt < 3) continue;
        throw e;
      }
      this.#written = token;
      log.info("Term {term} resumes from {rv}", { term, rv: token?.resourceVersion ?? "now" });
      return token;
    }
  }

  /** Records that the sinks acknowledged everything up to `token` (`events` more events). */
  acknowledge(token: Token, events: number): void {
    this.#pending = token;
    this.#pendingEvents += events;
    if (this.#pendingEvents >= this.#o.maxEvents) this.#wake?.();
  }

  /**
   * Writes pending positions at most every interval (sooner after maxEvents)
   * until the signal aborts. Does not write on its own after the abort: the
   * caller flushes once more when the term's work has stopped.
   */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ clock: this.#clock });
    while (!signal.aborted && !this.#fenced) {
      const every = this.#pendingEvents > 0
        ? this.#o.intervalMs
        : Math.max(this.#o.intervalMs, this.#o.idleIntervalMs ?? 60_000);
      const due = this.#lastWriteAt + every - this.#clock.now();
      if (this.#pending !== undefined && (due <= 0 || this.#pendingEvents >= this.#o.maxEvents)) {
        // Not cancelled by the stop: a write the server may already have
        // applied must finish, or the final write would meet our own version
        // and look fenced. Each write is bounded by the request timeout.
        try {
          await this.flush();
          backoff.reset();
        } catch (e) {
          if (signal.aborted) continue;
          log.warn("Checkpoint write failed: {error}; retrying", { error: String(e) });
          // Backs off (1 s doubling to 30 s) so that an unreachable API server
          // is not knocked at every interval, nor at once when events pile up.
          await backoff.wait(signal).catch(() => {});
        }
        continue;
      }
      const wait = this.#pending === undefined ? this.#o.intervalMs : Math.max(due, 1);
      const wake = new AbortController();
      this.#wake = () => wake.abort();
      try {
        await this.#clock.sleep(wait, AbortSignal.any([signal, wake.signal]));
      } catch {
        // Woken early (enough events) or stopped: the loop condition decides.
      } finally {
        this.#wake = undefined;
      }
    }
  }

  /**
   * After a 409: whether the ConfigMap still carries our term stamp (then it
   * becomes the version the next write swaps on). A failed read counts as
   * not ours: fencing is the safe side.
   */
  async #stillOurs(signal?: AbortSignal): Promise<boolean> {
    try {
      const cm = await this.#o.client.get<V1ConfigMap>(
        CONFIGMAPS,
        this.#o.namespace,
        this.#o.name,
        {
          signal: this.#timeout(signal),
        },
      );
      if (cm.metadata?.annotations?.[TERM_ANNOTATION] !== this.#o.term) return false;
      this.#last = cm;
      return true;
    } catch {
      return false;
    }
  }

  /** Writes the pending position now, if any (compare-and-swap; 409 means fenced). */
  async flush(signal?: AbortSignal): Promise<void> {
    const token = this.#pending;
    if (token === undefined || this.#fenced) return;
    const events = this.#pendingEvents;
    this.#pending = undefined;
    this.#pendingEvents = 0;
    this.#lastWriteAt = this.#clock.now();
    if (this.#memoryOnly || this.#last === undefined) {
      this.#written = token;
      return;
    }
    const data: Record<string, string> = { ...this.#last.data, [TOKEN_KEY]: token.resourceVersion };
    if (token.timestamp !== undefined) data[TOKEN_TIMESTAMP] = token.timestamp;
    try {
      this.#last = await this.#o.client.replace<V1ConfigMap>(
        CONFIGMAPS,
        this.#o.namespace,
        this.#o.name,
        { ...this.#last, data },
        { signal: this.#timeout(signal) },
      );
      this.#written = token;
      this.#writes++;
      this.#o.metrics?.checkpointWrite("written");
    } catch (e) {
      const raced = e instanceof ConflictError && await this.#stillOurs(signal);
      this.#o.metrics?.checkpointWrite(
        e instanceof ConflictError && !raced ? "fenced" : "failed",
      );
      if (raced) {
        // Our own earlier write landed after its request had timed out:
        // the ConfigMap moved on, but still under our term. Write again on it.
        log.info("Checkpoint write raced our own earlier write; writing again");
        if (this.#pending === undefined) {
          this.#pending = token;
          this.#pendingEvents += events;
        }
        return;
      }
      if (e instanceof ConflictError) {
        // A newer leader has stamped its term: this write must not land.
        this.#fenced = true;
        log.warn("Checkpoint write refused: a newer leader owns {where}; dropping it", {
          where: this.#where(),
        });
        this.#o.onFenced?.();
        return;
      }
      if (e instanceof ForbiddenError) {
        this.#permissionWarning("update", e);
        this.#written = token;
        return;
      }
      // Not written: keep it pending (a newer acknowledgement may replace it).
      if (this.#pending === undefined) {
        this.#pending = token;
        this.#pendingEvents += events;
      }
      throw e;
    }
  }
}
