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
 * The leader knows its own position, so the ConfigMap heals instead of
 * losing events. A 409 is a fence only when the lock names another holder
 * ({@linkcode CheckpointerOptions.stillLeading}); while this replica still
 * leads, a changed ConfigMap (`kubectl replace`, a hand edit, a copy from
 * elsewhere) is a foreign edit: it is logged, and the leader's position
 * and stamp are written back over it. A deleted ConfigMap is created again
 * with the leader's position. A ConfigMap that cannot hold the token
 * (`immutable`, or the token in `binaryData`) gets one error naming it and
 * what to do; the position is kept in memory meanwhile, and the ConfigMap is
 * read again every idle interval in case it was mended.
 *
 * Writes happen only for positions the sinks have acknowledged, batched (at
 * most every interval or every N events), and once more on a clean stop.
 * An idle leader reads the ConfigMap every idle interval to notice a
 * deletion or an edit even when it has nothing to write.
 *
 * @module
 */

import type { V1ConfigMap } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import { Backoff, type Clock, systemClock } from "../time/mod.ts";
import type { Metrics } from "../ops/mod.ts";
import {
  AlreadyExistsError,
  CONFIGMAPS,
  ConflictError,
  ForbiddenError,
  InvalidError,
  type KubeClient,
  NotFoundError,
} from "../kube/mod.ts";
import {
  binaryToken,
  refusedToken,
  TERM_ANNOTATION,
  type Token,
  TOKEN_KEY,
  TOKEN_TIMESTAMP,
  tokenFromData,
  unusableReason,
} from "./token.ts";

export {
  TERM_ANNOTATION,
  type Token,
  TOKEN_KEY,
  TOKEN_TIME_SKEW_MS,
  TOKEN_TIMESTAMP,
  tokenFromData,
  type TokenFromDataOptions,
} from "./token.ts";

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
  /**
   * Whether the lock still names this term's holder, read fresh from the
   * API server: asked after a 409 whose ConfigMap does not carry our stamp,
   * to tell a newer leader (fenced) from a foreign edit (written over).
   * Absent: every such 409 is a fence.
   */
  stillLeading?: (signal: AbortSignal) => Promise<boolean>;
  /**
   * The position this replica's previous term ended at, used when the
   * ConfigMap holds no usable token (deleted, replaced) at the start of
   * this term.
   */
  fallback?: Token;
  /** Counts writes (written, fenced, failed), heals and resets. */
  metrics?: Pick<Metrics, "checkpointWrite" | "checkpointHeal" | "checkpointReset">;
  /** Told of every position written to the ConfigMap (not of one kept in memory). */
  onWritten?: (token: Token) => void;
}

const log = getLogger(["kevents", "checkpoint"]);

/** The fenced, batched writer of one term's checkpoint. */
export class Checkpointer {
  #o: CheckpointerOptions;
  #clock: Clock;
  /** The ConfigMap as last read or written: the version the next write swaps on. */
  #last: V1ConfigMap | undefined;
  /** The ConfigMap cannot be read or written: keep the token in memory only. */
  #memoryOnly = false;
  /** Why the ConfigMap cannot hold the token (immutable, binaryData); undefined when it can. */
  #unusable: string | undefined;
  #fenced = false;
  #written: Token | undefined;
  #pending: Token | undefined;
  #pendingEvents = 0;
  #lastWriteAt = 0;
  /** When the ConfigMap was last read or written (our clock), for the idle check. */
  #lastSeenAt = 0;
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

  /** Notes that `cm` cannot hold the token: one error, then the position stays in memory. */
  #markUnusable(cm: V1ConfigMap, reason: string): void {
    this.#last = cm;
    this.#lastSeenAt = this.#clock.now();
    if (this.#unusable === reason) return;
    this.#unusable = reason;
    this.#o.metrics?.checkpointHeal("unusable");
    log.error(
      "Cannot keep the checkpoint in {where}: {reason}. Delivery goes on; the position is kept " +
        "in memory and written once the ConfigMap can hold it (checked every idle interval)",
      { where: this.#where(), reason },
    );
  }

  #get(signal?: AbortSignal): Promise<V1ConfigMap> {
    return this.#o.client.get<V1ConfigMap>(CONFIGMAPS, this.#o.namespace, this.#o.name, {
      signal: this.#timeout(signal),
    });
  }

  /** Creates the ConfigMap stamped with our term, holding `token` if any. */
  async #create(token: Token | undefined, signal?: AbortSignal): Promise<V1ConfigMap> {
    const { client, namespace, name, term } = this.#o;
    const data: Record<string, string> = {};
    if (token !== undefined) {
      data[TOKEN_KEY] = token.resourceVersion;
      if (token.timestamp !== undefined) data[TOKEN_TIMESTAMP] = token.timestamp;
    }
    const cm = await client.create<V1ConfigMap>(CONFIGMAPS, namespace, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, namespace, annotations: { [TERM_ANNOTATION]: term } },
      data,
    }, { signal: this.#timeout(signal) });
    this.#last = cm;
    this.#lastSeenAt = this.#clock.now();
    return cm;
  }

  /** The token to resume from when the ConfigMap has none: this replica's own last position. */
  #fallback(why: string): Token | undefined {
    const fallback = this.#o.fallback;
    if (fallback !== undefined) {
      log.warn("{where} {why}: resuming from this replica's last position {rv}", {
        where: this.#where(),
        why,
        rv: fallback.resourceVersion,
      });
    }
    return fallback;
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
        cm = await this.#get(signal);
      } catch (e) {
        if (e instanceof ForbiddenError) {
          this.#permissionWarning("get", e);
          this.#written = this.#o.fallback;
          return this.#o.fallback;
        }
        if (!(e instanceof NotFoundError)) throw e;
      }
      if (cm === undefined) {
        const fallback = this.#fallback("does not exist");
        try {
          await this.#create(fallback, signal);
          log.info("Created {where} for the checkpoint", { where: this.#where() });
          this.#written = fallback;
          return fallback;
        } catch (e) {
          if (e instanceof ForbiddenError) {
            this.#permissionWarning("create", e);
            this.#written = fallback;
            return fallback;
          }
          if (e instanceof AlreadyExistsError && attempt < 3) continue;
          throw e;
        }
      }
      const now = this.#clock.now();
      let token = tokenFromData(cm.data, { now }) ?? binaryToken(cm, now);
      if (token === undefined && refusedToken(cm.data)) {
        this.#o.metrics?.checkpointReset("unreadable");
      }
      token ??= this.#fallback("holds no usable token");
      const unusable = unusableReason(cm);
      if (unusable !== undefined) {
        this.#markUnusable(cm, unusable);
        this.#written = token;
        return token;
      }
      try {
        this.#last = await client.replace<V1ConfigMap>(CONFIGMAPS, namespace, name, {
          ...cm,
          metadata: {
            ...cm.metadata,
            annotations: { ...cm.metadata?.annotations, [TERM_ANNOTATION]: term },
          },
        }, { signal: this.#timeout(signal) });
        this.#lastSeenAt = this.#clock.now();
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
   * until the signal aborts; with nothing to write for an idle interval,
   * checks that the ConfigMap still holds what was written. Does not write
   * on its own after the abort: the caller flushes once more when the
   * term's work has stopped.
   */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ clock: this.#clock });
    const idle = Math.max(this.#o.intervalMs, this.#o.idleIntervalMs ?? 60_000);
    while (!signal.aborted && !this.#fenced) {
      const every = this.#pendingEvents > 0 ? this.#o.intervalMs : idle;
      const now = this.#clock.now();
      const due = this.#lastWriteAt + every - now;
      const writeNow = this.#pending !== undefined &&
        (due <= 0 || this.#pendingEvents >= this.#o.maxEvents);
      const checkNow = !writeNow && this.#lastSeenAt + idle <= now;
      if (writeNow || checkNow) {
        // Not cancelled by the stop: a write the server may already have
        // applied must finish, or the final write would meet our own version
        // and look fenced. Each write is bounded by the request timeout.
        try {
          if (writeNow) await this.flush();
          else await this.verify();
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
      const untilCheck = this.#lastSeenAt + idle - now;
      // Nothing pending: look again after an interval (an acknowledgement
      // wakes the loop only once maxEvents are pending).
      const wait = Math.max(
        1,
        Math.min(this.#pending === undefined ? this.#o.intervalMs : due, untilCheck),
      );
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
   * The end of the term: writes what is pending, then checks that the
   * ConfigMap holds this term's last position (mending it if it was
   * deleted or edited), so that the next leader resumes from it.
   */
  async finish(signal?: AbortSignal): Promise<void> {
    await this.flush(signal);
    await this.verify(signal);
  }

  /**
   * Checks that the ConfigMap still holds what this term wrote, and writes
   * the position back when it was deleted or edited by someone else while
   * we lead (see the module documentation). Cheap when nothing changed:
   * one read.
   */
  async verify(signal?: AbortSignal): Promise<void> {
    // First: the idle loop waits an idle interval from here, whatever happens.
    this.#lastSeenAt = this.#clock.now();
    if (this.#fenced || this.#memoryOnly) return;
    let cm: V1ConfigMap | undefined;
    try {
      cm = await this.#get(signal);
    } catch (e) {
      if (e instanceof ForbiddenError) return this.#permissionWarning("get", e);
      if (!(e instanceof NotFoundError)) throw e;
    }
    const unchanged = cm !== undefined && this.#last !== undefined &&
      cm.metadata?.resourceVersion === this.#last.metadata?.resourceVersion;
    if (unchanged) return;
    // Changed or gone: rewrite the position (a pending one, else the last written).
    if (this.#pending === undefined) this.#pending = this.#written;
    if (this.#pending === undefined && cm !== undefined) {
      this.#last = cm;
      return; // Nothing of ours to keep yet.
    }
    if (cm === undefined) {
      // Deleted: the write below creates it again, whatever the old one was.
      this.#last = undefined;
      this.#unusable = undefined;
    } else if (this.#unusable !== undefined) {
      this.#last = cm; // Maybe mended: the write below tells.
      this.#unusable = unusableReason(cm);
      if (this.#unusable === undefined) {
        log.info("{where} can hold the checkpoint again: writing it", { where: this.#where() });
      }
    }
    // Otherwise the write meets the change as a 409 and judges it there.
    await this.flush(signal);
  }

  /**
   * Writes the pending position now, if any. A compare-and-swap on the
   * version last read or written; a 409 is judged as the module
   * documentation says (own race, fence, or foreign edit), a 404 recreates
   * the ConfigMap.
   */
  async flush(signal?: AbortSignal): Promise<void> {
    const token = this.#pending;
    if (token === undefined || this.#fenced) return;
    const events = this.#pendingEvents;
    this.#pending = undefined;
    this.#pendingEvents = 0;
    this.#lastWriteAt = this.#clock.now();
    if (this.#memoryOnly || this.#unusable !== undefined) {
      this.#written = token;
      return;
    }
    const keep = () => {
      // Not written: keep it pending (a newer acknowledgement may replace it).
      if (this.#pending === undefined) {
        this.#pending = token;
        this.#pendingEvents += events;
      }
    };
    try {
      // Three rounds at most: a race with our own write, or a foreign edit,
      // each takes one more; more means someone keeps writing over us.
      for (let round = 0; round < 3; round++) {
        const outcome = await this.#write(token, signal);
        if (outcome === "again") continue;
        if (outcome === "written") {
          this.#written = token;
          this.#writes++;
          this.#o.metrics?.checkpointWrite("written", this.#clock.now());
          this.#o.onWritten?.(token);
        } else if (outcome === "kept") {
          this.#written = token;
        }
        return;
      }
      keep();
      throw new Error(`${this.#where()} keeps changing under this leader's writes`);
    } catch (e) {
      if (!this.#fenced && !(e instanceof ForbiddenError)) keep();
      throw e;
    }
  }

  /**
   * One write of `token`: "written"; "again" when the ConfigMap changed
   * under us and the write should be repeated on the version read back;
   * "kept" when the position stays in memory (unusable, forbidden);
   * "fenced" when a newer leader owns it.
   */
  async #write(
    token: Token,
    signal?: AbortSignal,
  ): Promise<"written" | "again" | "kept" | "fenced"> {
    const { client, namespace, name, term } = this.#o;
    if (this.#last === undefined) {
      try {
        await this.#create(token, signal);
        return "written";
      } catch (e) {
        if (!(e instanceof AlreadyExistsError)) throw e;
        this.#last = await this.#get(signal);
        return "again";
      }
    }
    const data: Record<string, string> = { ...this.#last.data, [TOKEN_KEY]: token.resourceVersion };
    if (token.timestamp !== undefined) data[TOKEN_TIMESTAMP] = token.timestamp;
    const annotations = { ...this.#last.metadata?.annotations, [TERM_ANNOTATION]: term };
    try {
      this.#last = await client.replace<V1ConfigMap>(CONFIGMAPS, namespace, name, {
        ...this.#last,
        metadata: { ...this.#last.metadata, annotations },
        data,
      }, { signal: this.#timeout(signal) });
      this.#lastSeenAt = this.#clock.now();
      return "written";
    } catch (e) {
      if (e instanceof NotFoundError) {
        log.warn(
          "{where} was deleted while this replica leads: creating it again at {rv}",
          { where: this.#where(), rv: token.resourceVersion },
        );
        this.#o.metrics?.checkpointHeal("recreated");
        this.#last = undefined;
        return "again";
      }
      if (e instanceof ConflictError) return await this.#judgeConflict(token, signal);
      if (e instanceof InvalidError) {
        // 422: the ConfigMap became unusable since we read it (made immutable).
        const cm = await this.#get(signal);
        const reason = unusableReason(cm);
        if (reason === undefined) throw e;
        this.#markUnusable(cm, reason);
        return "kept";
      }
      this.#o.metrics?.checkpointWrite("failed");
      if (e instanceof ForbiddenError) {
        this.#permissionWarning("update", e);
        return "kept";
      }
      throw e;
    }
  }

  /** After a 409: our own late write, a newer leader, or a foreign edit. */
  async #judgeConflict(
    token: Token,
    signal?: AbortSignal,
  ): Promise<"again" | "kept" | "fenced"> {
    let cm: V1ConfigMap | undefined;
    try {
      cm = await this.#get(signal);
    } catch (e) {
      if (e instanceof NotFoundError) {
        this.#last = undefined;
        return "again";
      }
      // A failed read proves nothing: try the write again later.
      this.#o.metrics?.checkpointWrite("failed");
      throw e;
    }
    const stamp = cm.metadata?.annotations?.[TERM_ANNOTATION];
    if (stamp === this.#o.term) {
      // Our own earlier write landed after its request had timed out: the
      // ConfigMap moved on, but still under our term. Write again on it.
      log.info("Checkpoint write raced our own earlier write; writing again");
      this.#last = cm;
      return "again";
    }
    // Not our stamp: a newer leader's, or somebody else's edit. The lock decides.
    const leading = this.#o.stillLeading === undefined
      ? false
      : await this.#o.stillLeading(this.#timeout(signal)).catch(() => false);
    if (!leading) {
      // A newer leader has stamped its term: this write must not land.
      this.#fenced = true;
      this.#o.metrics?.checkpointWrite("fenced");
      log.warn("Checkpoint write refused: a newer leader owns {where}; dropping it", {
        where: this.#where(),
      });
      this.#o.onFenced?.();
      return "fenced";
    }
    this.#o.metrics?.checkpointHeal("foreign_edit");
    log.warn(
      "{where} was changed by someone else while this replica leads (term stamp {stamp}, " +
        "token {theirs}): keeping this leader's position {rv} and writing it back",
      {
        where: this.#where(),
        stamp: stamp ?? "none",
        theirs: cm.data?.[TOKEN_KEY] ?? "none",
        rv: token.resourceVersion,
      },
    );
    const reason = unusableReason(cm);
    if (reason !== undefined) {
      this.#markUnusable(cm, reason);
      return "kept";
    }
    this.#last = cm;
    return "again";
  }
}
