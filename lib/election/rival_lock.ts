/**
 * The rival-lock guard: before a candidate takes its lock, it makes sure no
 * other leader election holds a lock of the same name and another kind.
 *
 * Why: the Datadog Agent (and its Helm chart) elect on a ConfigMap by
 * default (`leader_election_default_resource: configmap`), kevents on a
 * Lease. Left on their defaults, an Agent and kevents would each lead their
 * own `datadog-leader-election` object, and both write the `datadogtoken`
 * checkpoint and send the same events. Two kevents replicas configured with
 * different lock kinds by mistake would do the same.
 *
 * What it reads: the objects of kevents' lock name, in its namespace, of
 * the kinds other than kevents' own (a Lease; the leader annotation of a
 * ConfigMap; of an Endpoints object), each through the lock that reads that
 * kind (lease_lock.ts, annotation_lock.ts), so that their records are read
 * exactly as the elector reads them, lenient formats and unreadable records
 * included. A rival is live while its record names a holder that is not this
 * replica and has changed within the record's lease *as observed on this
 * replica's clock*: the holder's timestamps are never compared with ours, as
 * the elector never compares them. A record first seen counts from when it
 * was seen, so a replica that starts beside a dead holder's record waits one
 * lease, as it would for its own lock. A released record (empty holder), an
 * object without the annotation (the Agent creates the ConfigMap even when
 * it elects on a Lease) and a missing object are not live. A record kevents
 * cannot read stands in with the lease `unreadableLeaseSeconds` and counts
 * as live while it keeps changing, as for the elector (the reading lock's
 * warning says it "is taken over" then: here, kevents may lead).
 *
 * When it reads: only when the candidate is about to take its lock (the
 * lock is missing, released or expired, and does not name this replica), so
 * a follower of another kevents replica, and the leader, pay nothing. While
 * a rival is live the candidate leaves its lock alone and tries again a
 * retry period later: one read of its own lock and one of each rival kind
 * (sent together) per retry period.
 *
 * What it cannot do: it is a check, not a lock across kinds. Two candidates
 * on different kinds that both find everything free within the same round
 * trip may both lead; and a rival that starts leading after kevents took its
 * lock is not noticed, since a leader keeps its own lock. It protects the
 * common case: one of them already leads.
 *
 * A 403 on a rival kind (RBAC that grants only kevents' own kind) does not
 * keep kevents from leading: it warns once per kind, counts every such read,
 * and goes on without that check. Any other failure fails the try.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { ForbiddenError, type KubeClient } from "../kube/mod.ts";
import { type Clock, systemClock } from "../time/mod.ts";
import { AnnotationLock } from "./annotation_lock.ts";
import type { AcquireGuard } from "./acquire_guard.ts";
import { LeaseLock } from "./lease_lock.ts";
import type { LeaderElectionRecord, Lock } from "./lock.ts";

/** The kinds of object leader election can lock (`leader_election_default_resource`). */
export type LockKind = "lease" | "configmap" | "endpoints";

const KINDS: readonly LockKind[] = ["lease", "configmap", "endpoints"];

const KIND_NAMES: Record<LockKind, string> = {
  lease: "Lease",
  configmap: "ConfigMap",
  endpoints: "Endpoints",
};

/** A same-named lock of another kind, and the lock that reads it. */
export interface RivalLock {
  kind: LockKind;
  /** "ConfigMap default/datadog-leader-election", for messages. */
  object: string;
  /** Only `get` is used. */
  lock: Lock;
}

/** Options for {@linkcode rivalLocks}. */
export interface RivalLocksOptions {
  /** kevents' own lock kind: the rivals are the other two. */
  kind: LockKind;
  namespace: string;
  name: string;
  /** The lease of a rival record that cannot be read, in whole seconds (default 60). */
  unreadableLeaseSeconds?: number;
}

/** The locks of the same name and namespace as kevents' own, of the other kinds. */
export function rivalLocks(client: KubeClient, options: RivalLocksOptions): RivalLock[] {
  const { namespace, name, unreadableLeaseSeconds } = options;
  return KINDS.filter((kind) => kind !== options.kind).map((kind) => ({
    kind,
    object: `${KIND_NAMES[kind]} ${namespace}/${name}`,
    lock: kind === "lease"
      ? new LeaseLock(client, { namespace, name, unreadableLeaseSeconds })
      : new AnnotationLock(client, { kind, namespace, name, unreadableLeaseSeconds }),
  }));
}

/** What the guard reports to; kevents' `Metrics` has this method. */
export interface RivalLockMetrics {
  /**
   * After each check: whether a live rival keeps this replica from leading,
   * and the rival kinds it was not allowed to read.
   */
  rivalLock(held: boolean, forbidden?: readonly LockKind[]): void;
}

/** Options for {@linkcode RivalLockGuard}. */
export interface RivalLockGuardOptions {
  /** This replica's identity: a rival record naming it is not a rival. */
  identity: string;
  /** kevents' own lock kind, for the advice in the warning. */
  kind: LockKind;
  /** The locks to check (see {@linkcode rivalLocks}). */
  rivals: readonly RivalLock[];
  /** Time source (default the system clock). */
  clock?: Clock;
  metrics?: RivalLockMetrics;
}

/** A live holder of a rival lock. */
export interface Rival {
  kind: LockKind;
  object: string;
  holder: string;
  leaseSeconds: number;
}

const log = getLogger(["kevents", "elector"]);

/** One rival lock and what was observed of it. */
interface Watched extends RivalLock {
  /** The record last read (as JSON; "null" when the object was missing), and when it was first read so. */
  key: string | undefined;
  at: number;
  /** Whether RBAC refused the last read; whether that was warned of. */
  forbidden: boolean;
  forbiddenWarned: boolean;
}

/**
 * The {@linkcode AcquireGuard} that keeps a candidate from taking its lock
 * while a same-named lock of another kind has a live holder (see the module
 * documentation). It warns once each time a rival starts blocking (or
 * another rival or holder takes over blocking), and says when the way is
 * clear again.
 */
export class RivalLockGuard implements AcquireGuard {
  #o: RivalLockGuardOptions;
  #clock: Clock;
  #rivals: Watched[];
  /** The rival that blocked the last check; undefined when none did. */
  #blocking: Rival | undefined;

  constructor(options: RivalLockGuardOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#rivals = options.rivals.map((r) => ({
      ...r,
      key: undefined,
      at: 0,
      forbidden: false,
      forbiddenWarned: false,
    }));
  }

  /**
   * Reads every rival lock (all at once) and returns the first live one in
   * the order Lease, ConfigMap, Endpoints; undefined when none is. Rejects
   * when a read fails other than with 404 or 403.
   */
  async check(signal?: AbortSignal): Promise<Rival | undefined> {
    const reads = await Promise.all(this.#rivals.map((r) => this.#read(r, signal)));
    const forbidden = this.#rivals.filter((_, i) => reads[i] === "forbidden").map((r) => r.kind);
    let live: Rival | undefined;
    for (const [i, r] of this.#rivals.entries()) {
      const read = reads[i];
      if (live !== undefined || read === "forbidden" || read === undefined) continue;
      if (read.holderIdentity === "" || read.holderIdentity === this.#o.identity) continue;
      // Unchanged for a whole lease on our clock: expired, as the elector judges its own lock.
      if (r.at + read.leaseDurationSeconds * 1000 <= this.#clock.now()) continue;
      live = {
        kind: r.kind,
        object: r.object,
        holder: read.holderIdentity,
        leaseSeconds: read.leaseDurationSeconds,
      };
    }
    this.#o.metrics?.rivalLock(live !== undefined, forbidden);
    return live;
  }

  /** See {@linkcode AcquireGuard.mayAcquire}: false while a rival is live. */
  async mayAcquire(signal: AbortSignal): Promise<boolean> {
    const rival = await this.check(signal);
    const before = this.#blocking;
    this.#blocking = rival;
    if (rival !== undefined) {
      if (before?.object !== rival.object || before.holder !== rival.holder) this.#warn(rival);
      return false;
    }
    if (before !== undefined) {
      log.info("{object} is no longer held by {holder} ({why}): kevents may lead", {
        object: before.object,
        holder: before.holder,
        why: this.#freed(before),
      });
    }
    return true;
  }

  /** See {@linkcode AcquireGuard.lockHeld}: nothing blocks a follower of its own lock. */
  lockHeld(): void {
    if (this.#blocking === undefined) return;
    this.#blocking = undefined;
    this.#o.metrics?.rivalLock(false);
  }

  /** The record of one rival, observed on our clock; undefined when missing. */
  async #read(
    r: Watched,
    signal: AbortSignal | undefined,
  ): Promise<LeaderElectionRecord | undefined | "forbidden"> {
    let record: LeaderElectionRecord | undefined;
    try {
      record = await r.lock.get(signal);
      r.forbidden = false;
    } catch (e) {
      if (e instanceof ForbiddenError) {
        r.forbidden = true;
        if (!r.forbiddenWarned) {
          r.forbiddenWarned = true;
          log.warn(
            "Cannot read {object} to check that no other leader election holds it ({error}): " +
              "kevents leads without that check; grant get on it to restore it " +
              "(manifests/rbac/clusterrole.yaml)",
            { object: r.object, error: e.message },
          );
        }
        return "forbidden";
      }
      if (signal?.aborted) throw e;
      throw new Error(
        `Cannot read ${r.object} to check that no other leader election holds it: ${e}`,
        { cause: e },
      );
    }
    // Observed when the answer arrived, as the elector observes its own lock.
    const key = JSON.stringify(record ?? null);
    if (key !== r.key) {
      r.key = key;
      r.at = this.#clock.now();
    }
    return record;
  }

  #warn(rival: Rival): void {
    log.warn(
      "Another leader election (the Datadog Agent?) holds {object} (holder {holder}): kevents " +
        "will not lead until it is released or stays unchanged for its {seconds} s lease. To share " +
        "that lock with it, set kevents' leader_election_default_resource to {rivalKind} (now " +
        "{kind}); or give the two different leader_lease_name and kubernetes_event_token_configmap",
      {
        object: rival.object,
        holder: rival.holder,
        seconds: rival.leaseSeconds,
        rivalKind: rival.kind,
        kind: this.#o.kind,
      },
    );
  }

  /** Why the rival that blocked the previous check no longer does, from what was read since. */
  #freed(before: Rival): string {
    const r = this.#rivals.find((x) => x.object === before.object);
    if (r === undefined || r.forbidden || r.key === undefined) return "it can no longer be read";
    if (r.key === "null") return "deleted";
    const record = JSON.parse(r.key) as LeaderElectionRecord | null;
    if (record?.holderIdentity === "") return "released";
    return `unchanged for its ${before.leaseSeconds} s lease`;
  }
}
