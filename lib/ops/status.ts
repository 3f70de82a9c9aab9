/**
 * `kevents status`: reads the lock and the token ConfigMap through the
 * kubeconfig and tells who leads, since when, and whether the checkpoint
 * keeps up. Read-only: it never writes to the API server.
 *
 * Whether the checkpoint is lagging is a judgement, made in steps that the
 * JSON output spells out field by field:
 *
 * 1. The current resourceVersion of the events collection (a list with
 *    `limit=1`) equals the token's: up to date.
 * 2. Either is not a decimal integer, or the token is ahead of the server:
 *    unknown (resourceVersions are opaque; only decimal integers from the
 *    same etcd are compared).
 * 3. The last checkpointed event (`event.tokenTimestamp`) is younger than
 *    the threshold, twice the idle checkpoint interval: up to date (writes
 *    are batched; a gap this short is expected).
 * 4. Otherwise a current resourceVersion ahead of the token proves nothing
 *    by itself: resourceVersions are cluster-wide, and lease renewals alone
 *    move them in a quiet cluster. A watch from the token settles it: when
 *    it replays an event created or updated at or before the current
 *    resourceVersion, or fails with 410 (the token is older than the
 *    server's history), the checkpoint is lagging; when it replays nothing
 *    but deletions within a second, it is up to date.
 *
 * The lag itself (how long the oldest event after the token has waited) is
 * what the leader exports as `kevents_checkpoint_lag_seconds`, measured
 * there from when it read each event. Status cannot reach the leader's
 * `/metrics` through the kubeconfig (that would need the pod's address, or
 * `pods/proxy` rights), so it computes the lag from the API objects: 0 when
 * the token is current or nothing follows it; the age of the first event
 * the watch from the token replays, from its last write as its times tell
 * (the TTL counts from there; see _last_write.ts), so the two agree within
 * the watch's delay and the reporter's clock; else, when a
 * young token made the watch unnecessary or the history is gone, at most the
 * token's age (`lagIsUpperBound`). It is shown against the configured event
 * TTL and limit (`kevents_event_ttl_seconds`, `kevents_checkpoint_lag_share`).
 *
 * @module
 */

import type { CoreV1Event, V1ConfigMap } from "@kubernetes/client-node";
import {
  AnnotationLock,
  type LeaderElectionRecord,
  LeaseLock,
  recordTimeMs,
} from "../election/mod.ts";
import { TERM_ANNOTATION, TOKEN_KEY, TOKEN_TIMESTAMP, tokenFromData } from "../checkpoint/mod.ts";
import type { Config, LockResource } from "../config/mod.ts";
import {
  CONFIGMAPS,
  EVENTS,
  GoneError,
  type KubeClient,
  NotFoundError,
  WatchStalledError,
} from "../kube/mod.ts";
import { NO_EVENT_FILTERS, planEventFilters } from "../pump/mod.ts";
import { lastWritten } from "./_last_write.ts";
import { excerpt, formatAge } from "./status_format.ts";

export { formatAge, formatStatus } from "./status_format.ts";

/** What the lock object holds. */
export type LockState = "held" | "released" | "absent" | "invalid";

/** The leader-election lock, as read. */
export interface LockStatus {
  /** `config.leaderElectionResource`. */
  kind: LockResource;
  /** "leases default/datadog-leader-election". */
  object: string;
  /** held; released (empty holder); absent (no lock object); invalid (unreadable record). */
  state: LockState;
  /** Holder identity; null unless held. */
  holder: string | null;
  /** When the holder acquired the lock (RFC 3339). */
  acquireTime: string | null;
  /** Seconds from acquireTime to checkedAt. */
  acquiredAgeSeconds: number | null;
  /** Last renewal (RFC 3339). */
  renewTime: string | null;
  /** Seconds from renewTime to checkedAt. */
  renewAgeSeconds: number | null;
  leaseDurationSeconds: number | null;
  /** renewTime + leaseDurationSeconds (RFC 3339). */
  expiresAt: string | null;
  /**
   * Whether expiresAt is before checkedAt, judged by this machine's clock
   * (candidates judge by their own); null unless held with a renewTime.
   */
  expiredByLocalClock: boolean | null;
  /** How many times the lock changed hands. */
  leaderTransitions: number | null;
  /** Why the record cannot be read (state invalid). */
  problem: string | null;
}

/** What the token ConfigMap holds. */
export type TokenState = "present" | "empty" | "absent" | "invalid";

/** The term a leader stamped into the token ConfigMap at the start of its term. */
export interface TermStamp {
  /** The annotation as written. */
  raw: string;
  /** The leader that stamped it. */
  holder: string | null;
  /** The lock's transition count when that leader took it. */
  leaderTransitions: number | null;
  /** When that term began (RFC 3339). */
  startedAt: string | null;
}

/** The checkpoint, as read from the token ConfigMap. */
export interface TokenStatus {
  /** "configmaps default/datadogtoken". */
  object: string;
  /** present; empty (no position yet); absent (no ConfigMap); invalid (not a resourceVersion). */
  state: TokenState;
  /** `event.tokenKey`: the resourceVersion up to which every event was delivered. */
  resourceVersion: string | null;
  /** `event.tokenTimestamp`: time of the last delivered event (RFC 3339). */
  timestamp: string | null;
  /** Seconds from timestamp to checkedAt. */
  ageSeconds: number | null;
  /** The last leader's term stamp; null when none. */
  term: TermStamp | null;
  /** What is wrong with the token or its timestamp, if anything. */
  problem: string | null;
}

/** Whether the checkpoint keeps up. */
export type LagState = "up-to-date" | "lagging" | "unknown";

/** What a watch from the token replayed. */
export type ReplayFromToken = "events" | "nothing" | "expired";

/** The checkpoint against the events collection. */
export interface CheckpointStatus {
  /** The verdict; see the module documentation for the rule. */
  state: LagState;
  /** The verdict in a sentence. */
  reason: string;
  /** The events collection's resourceVersion (a list with limit=1). */
  currentResourceVersion: string;
  /** The server-side selector the collector watches with, used here too; null when none. */
  fieldSelector: string | null;
  /**
   * currentResourceVersion minus the token's, when both are decimal
   * integers. Every write in the cluster counts, not only events.
   */
  resourceVersionsAheadOfToken: number | null;
  /** Twice the idle checkpoint interval. */
  lagThresholdSeconds: number;
  /** token.ageSeconds > lagThresholdSeconds; null when not compared (no token or no timestamp). */
  tokenOlderThanThreshold: boolean | null;
  /**
   * What a watch from the token replayed up to currentResourceVersion:
   * events (created or updated, not yet checkpointed), nothing (at most
   * deletions), or expired (410: the token is older than the server's
   * history); null when no watch was needed.
   */
  replayFromToken: ReplayFromToken | null;
  /**
   * Seconds the oldest event not yet checkpointed has waited, to checkedAt:
   * 0 when none; null when it cannot be told (see the module documentation).
   */
  lagSeconds: number | null;
  /** Whether lagSeconds is only an upper bound (the token's age); null with lagSeconds. */
  lagIsUpperBound: boolean | null;
  /** The API server's event TTL as configured (`kevents_event_ttl_seconds`). */
  eventTtlSeconds: number;
  /** The lag the leader warns about: `kevents_checkpoint_lag_share` of the TTL. */
  lagLimitSeconds: number;
}

/** Everything `kevents status` reports. */
export interface Status {
  /** When the status was judged (RFC 3339); every age is measured to it. */
  checkedAt: string;
  /** The API server's URL. */
  server: string;
  /** Namespace of the lock and the token ConfigMap. */
  namespace: string;
  lock: LockStatus;
  token: TokenStatus;
  checkpoint: CheckpointStatus;
}

/** Options for {@linkcode readStatus}. */
export interface ReadStatusOptions {
  /** The time ages are measured to, in ms since the epoch (default: when the reads are done). */
  now?: number;
  /** How long the watch from the token may stay silent before it counts as "nothing" (default 1000 ms). */
  replayIdleMs?: number;
  /** Cancels the reads. */
  signal?: AbortSignal;
}

/** An API read failed; the message names the object and the server's Status (reason, verb, resource). */
export class StatusReadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StatusReadError";
  }
}

const DECIMAL = /^(0|[1-9]\d*)$/;

function seconds(ms: number): number {
  return Math.round(ms) / 1000;
}

/** RFC 3339 (UTC, milliseconds) of a time text; undefined when it is not a time. */
function normalTime(text: string | undefined): { iso: string; ms: number } | undefined {
  if (text === undefined || text === "") return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : { iso: new Date(ms).toISOString(), ms };
}

/** A lock record's time (in any form the locks read, see annotation_lock.ts) as normalTime gives it. */
function recordTime(text: string): { iso: string; ms: number } | undefined {
  const ms = recordTimeMs(text);
  return ms === undefined ? normalTime(text) : { iso: new Date(ms).toISOString(), ms };
}

async function reading<T>(what: string, read: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new StatusReadError(
      `Cannot read ${what}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
}

function lockStatus(
  kind: LockResource,
  object: string,
  record: LeaderElectionRecord | undefined,
  now: number,
): LockStatus {
  const status: LockStatus = {
    kind,
    object,
    state: "absent",
    holder: null,
    acquireTime: null,
    acquiredAgeSeconds: null,
    renewTime: null,
    renewAgeSeconds: null,
    leaseDurationSeconds: null,
    expiresAt: null,
    expiredByLocalClock: null,
    leaderTransitions: null,
    problem: null,
  };
  if (record === undefined) return status;
  const held = record.holderIdentity !== "";
  const acquired = recordTime(record.acquireTime);
  const renewed = recordTime(record.renewTime);
  status.state = held ? "held" : "released";
  status.holder = held ? record.holderIdentity : null;
  status.acquireTime = acquired?.iso ?? null;
  status.acquiredAgeSeconds = acquired === undefined ? null : seconds(now - acquired.ms);
  status.renewTime = renewed?.iso ?? null;
  status.renewAgeSeconds = renewed === undefined ? null : seconds(now - renewed.ms);
  status.leaseDurationSeconds = record.leaseDurationSeconds;
  status.leaderTransitions = record.leaderTransitions;
  if (held && renewed !== undefined) {
    const expires = renewed.ms + record.leaseDurationSeconds * 1000;
    status.expiresAt = new Date(expires).toISOString();
    status.expiredByLocalClock = expires < now;
  }
  return status;
}

/** Reads "identity/transitions/time", the stamp the collector writes; identity may hold "/". */
function termStamp(raw: string | undefined): TermStamp | null {
  if (raw === undefined) return null;
  const parts = raw.split("/");
  const started = normalTime(parts.at(-1));
  const transitions = parts.at(-2);
  if (parts.length < 3 || started === undefined || !DECIMAL.test(transitions ?? "")) {
    return { raw, holder: null, leaderTransitions: null, startedAt: null };
  }
  return {
    raw,
    holder: parts.slice(0, -2).join("/"),
    leaderTransitions: Number(transitions),
    startedAt: started.iso,
  };
}

function tokenStatus(object: string, cm: V1ConfigMap | undefined, now: number): TokenStatus {
  const status: TokenStatus = {
    object,
    state: "absent",
    resourceVersion: null,
    timestamp: null,
    ageSeconds: null,
    term: null,
    problem: null,
  };
  if (cm === undefined) return status;
  status.term = termStamp(cm.metadata?.annotations?.[TERM_ANNOTATION]);
  const raw = cm.data?.[TOKEN_KEY]?.trim() ?? "";
  const token = tokenFromData(cm.data);
  if (token === undefined) {
    status.state = raw === "" || raw === "0" ? "empty" : "invalid";
    if (status.state === "invalid") {
      status.problem = `${TOKEN_KEY} holds ${excerpt(raw)}, which is not a resourceVersion`;
    }
    return status;
  }
  status.state = "present";
  status.resourceVersion = token.resourceVersion;
  const time = normalTime(token.timestamp);
  status.timestamp = time?.iso ?? null;
  status.ageSeconds = time === undefined ? null : seconds(now - time.ms);
  const rawTime = cm.data?.[TOKEN_TIMESTAMP]?.trim() ?? "";
  if (time === undefined && rawTime !== "") {
    status.problem = `${TOKEN_TIMESTAMP} holds ${excerpt(rawTime)}, which is not a time`;
  }
  return status;
}

/**
 * Watches events from the token and reports the first thing that settles
 * whether an event after it is still waiting to be checkpointed. Changes
 * past `currentRv` are live ones, which the leader has had no time for.
 */
async function replayFromToken(
  client: KubeClient,
  o: {
    tokenRv: string;
    currentRv: bigint;
    fieldSelector: string | undefined;
    idleMs: number;
    signal?: AbortSignal;
  },
): Promise<{ replay: ReplayFromToken; firstEventTime?: string }> {
  // A replay of many deletions may never fall silent: the request timeout bounds it too.
  const bound = AbortSignal.timeout(client.requestTimeoutMs);
  const signal = o.signal === undefined ? bound : AbortSignal.any([o.signal, bound]);
  try {
    for await (
      const batch of client.watchBatches<CoreV1Event>(EVENTS, {
        resourceVersion: o.tokenRv,
        fieldSelector: o.fieldSelector,
        idleTimeoutMs: o.idleMs,
        signal,
      })
    ) {
      for (const change of batch) {
        const rv = change.object.metadata.resourceVersion;
        if (!DECIMAL.test(rv) || BigInt(rv) > o.currentRv) return { replay: "nothing" };
        if (change.type === "ADDED" || change.type === "MODIFIED") {
          return { replay: "events", firstEventTime: lastWritten(change.object) };
        }
      }
    }
    // kube-apiserver ends a watch from a compacted resourceVersion on events
    // (no watch cache) at once with nothing, instead of a 410.
    return { replay: "expired" };
  } catch (e) {
    if (e instanceof GoneError) return { replay: "expired" };
    if (e instanceof WatchStalledError) return { replay: "nothing" };
    if (bound.aborted && !o.signal?.aborted) return { replay: "nothing" };
    throw e;
  }
}

function checkpointStatus(
  token: TokenStatus,
  currentRv: string,
  fieldSelector: string | undefined,
  thresholdMs: number,
  lagLimit: Config["checkpointLag"],
): CheckpointStatus {
  const status: CheckpointStatus = {
    state: "unknown",
    reason: "",
    currentResourceVersion: currentRv,
    fieldSelector: fieldSelector ?? null,
    resourceVersionsAheadOfToken: null,
    lagThresholdSeconds: seconds(thresholdMs),
    tokenOlderThanThreshold: null,
    replayFromToken: null,
    lagSeconds: null,
    lagIsUpperBound: null,
    eventTtlSeconds: seconds(lagLimit.eventTtlMs),
    lagLimitSeconds: seconds(lagLimit.limitMs),
  };
  const rv = token.resourceVersion;
  if (rv === null) {
    status.reason = token.state === "invalid"
      ? "the token is not a resourceVersion: nothing to compare"
      : "no token yet: nothing to compare";
    return status;
  }
  if (rv === currentRv) {
    status.state = "up-to-date";
    status.reason = "the token is the current resourceVersion";
    status.lagSeconds = 0;
    status.lagIsUpperBound = false;
    return status;
  }
  if (!DECIMAL.test(rv) || !DECIMAL.test(currentRv)) {
    status.reason = "the resourceVersions are not decimal integers: they cannot be compared";
    return status;
  }
  const ahead = BigInt(currentRv) - BigInt(rv);
  status.resourceVersionsAheadOfToken = Number(ahead);
  if (ahead < 0n) {
    status.reason =
      "the token is ahead of the server's resourceVersion (a restored etcd or another cluster?)";
    return status;
  }
  if (token.ageSeconds !== null) {
    status.tokenOlderThanThreshold = token.ageSeconds * 1000 > thresholdMs;
  }
  if (status.tokenOlderThanThreshold === false) {
    status.state = "up-to-date";
    status.reason = `the last checkpointed event is ${
      formatAge(token.ageSeconds!)
    } old, within the ${formatAge(status.lagThresholdSeconds)} threshold`;
    // What came after the token came after its event.
    status.lagSeconds = Math.max(0, token.ageSeconds!);
    status.lagIsUpperBound = true;
  }
  return status;
}

/**
 * Reads the lock, the token ConfigMap and the events collection's current
 * resourceVersion, and judges whether the checkpoint lags (see the module
 * documentation). Throws {@linkcode StatusReadError} when an API read fails.
 */
export async function readStatus(
  client: KubeClient,
  config: Config,
  options: ReadStatusOptions = {},
): Promise<Status> {
  const { signal } = options;
  const namespace = config.resourcesNamespace;
  const kind = config.leaderElectionResource;
  const target = { namespace, name: config.leaseName };
  const lock = kind === "lease"
    ? new LeaseLock(client, target)
    : new AnnotationLock(client, { ...target, kind });
  let record = await reading(`the lock ${lock.describe()}`, () => lock.get(signal), signal);
  // A record the lock cannot fully read comes with a stand-in the elector
  // uses; status shows the problem instead.
  const lockProblem = lock.problem;
  if (lockProblem !== undefined) record = undefined;
  const tokenObject = `configmaps ${namespace}/${config.tokenConfigMapName}`;
  const cm = await reading(`the token ${tokenObject}`, async () => {
    try {
      return await client.get<V1ConfigMap>(CONFIGMAPS, namespace, config.tokenConfigMapName, {
        signal,
      });
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }, signal);
  // Checked by parseConfig already: this cannot fail for a parsed Config.
  const { fieldSelector } = planEventFilters(config.eventFilters ?? NO_EVENT_FILTERS);
  const page = await reading(
    "the events collection",
    () => client.list<CoreV1Event>(EVENTS, { limit: 1, fieldSelector, signal }),
    signal,
  );
  const thresholdMs = 2 * Math.max(config.checkpoint.intervalMs, config.checkpoint.idleIntervalMs);
  // Judged once the reads are done, so no age is measured to a time before its read.
  const now = options.now ?? Date.now();
  const token = tokenStatus(tokenObject, cm, now);
  let checkpoint = checkpointStatus(
    token,
    page.resourceVersion,
    fieldSelector,
    thresholdMs,
    config.checkpointLag,
  );
  // Still undecided with comparable versions, the token behind: only a replay can tell.
  if (
    checkpoint.state === "unknown" && checkpoint.resourceVersionsAheadOfToken !== null &&
    checkpoint.resourceVersionsAheadOfToken >= 0
  ) {
    const replay = await reading(
      `events from the token's resourceVersion ${token.resourceVersion}`,
      () =>
        replayFromToken(client, {
          tokenRv: token.resourceVersion!,
          currentRv: BigInt(page.resourceVersion),
          fieldSelector,
          idleMs: options.replayIdleMs ?? 1000,
          signal,
        }),
      signal,
    );
    checkpoint = judgeReplay(checkpoint, token, replay.replay);
    checkpoint = { ...checkpoint, ...replayLag(replay, token, now) };
  }
  const lockState = lockStatus(kind, lock.describe(), record, now);
  if (lockProblem !== undefined) {
    lockState.state = "invalid";
    lockState.problem = lockProblem;
  }
  return {
    checkedAt: new Date(now).toISOString(),
    server: serverUrl(client.server),
    namespace,
    lock: lockState,
    token,
    checkpoint,
  };
}

function judgeReplay(
  status: CheckpointStatus,
  token: TokenStatus,
  replay: ReplayFromToken,
): CheckpointStatus {
  const since = token.ageSeconds === null
    ? "no checkpointed event has a time"
    : `the last checkpointed event is ${formatAge(token.ageSeconds)} old (threshold ${
      formatAge(status.lagThresholdSeconds)
    })`;
  switch (replay) {
    case "events":
      return {
        ...status,
        replayFromToken: replay,
        state: "lagging",
        reason: `events after the token are not checkpointed and ${since}`,
      };
    case "expired":
      return {
        ...status,
        replayFromToken: replay,
        state: "lagging",
        reason: "the token is older than the server's history: the next leader relists",
      };
    case "nothing":
      return {
        ...status,
        replayFromToken: replay,
        state: "up-to-date",
        reason:
          `no event after the token (${since}; other writes moved the cluster-wide resourceVersion)`,
      };
  }
}

/** The lag a replay from the token tells: see the module documentation. */
function replayLag(
  { replay, firstEventTime }: { replay: ReplayFromToken; firstEventTime?: string },
  token: TokenStatus,
  now: number,
): Pick<CheckpointStatus, "lagSeconds" | "lagIsUpperBound"> {
  if (replay === "nothing") return { lagSeconds: 0, lagIsUpperBound: false };
  const first = normalTime(firstEventTime);
  if (replay === "events" && first !== undefined) {
    return { lagSeconds: Math.max(0, seconds(now - first.ms)), lagIsUpperBound: false };
  }
  return token.ageSeconds === null
    ? { lagSeconds: null, lagIsUpperBound: null }
    : { lagSeconds: Math.max(0, token.ageSeconds), lagIsUpperBound: true };
}

/** The server URL without user information. */
function serverUrl(server: string): string {
  try {
    const url = new URL(server);
    url.username = "";
    url.password = "";
    return url.toString().replace(/\/$/, "");
  } catch {
    return server;
  }
}
