/**
 * A {@linkcode Lock} on a coordination.k8s.io/v1 Lease. Lease times are
 * MicroTime (six fractional digits), which the API server insists on.
 *
 * The server types a Lease's fields, but another client may leave some
 * out. A Lease without a holder (a Lease created empty, ahead of any
 * elector) is free, as client-go reads it. A Lease with a holder but no
 * `leaseDurationSeconds` would read, as in client-go, as a lease of 0 s,
 * expired the moment it is seen, while its holder may well be alive: it
 * gets the lock's `unreadableLeaseSeconds` instead (default 60), so it is
 * taken over once it has stayed unchanged that long, with a warning once
 * per distinct spec.
 *
 * @module
 */

import type { V1Lease } from "@kubernetes/client-node";
import { type KubeClient, LEASES, NotFoundError } from "../kube/mod.ts";
import {
  type LeaderElectionRecord,
  type Lock,
  LockObjectWatch,
  type LockWatchOptions,
  unreadableLeaseSeconds,
  UnreadableRecordWarning,
} from "./lock.ts";

/** Formats a time as a Kubernetes MicroTime: "2026-11-21T20:03:04.123000Z". */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, "000Z");
}

/** Options for {@linkcode LeaseLock}. */
export interface LeaseLockOptions {
  namespace: string;
  name: string;
  /**
   * The lease, in whole seconds, of a Lease that has a holder but no
   * `leaseDurationSeconds` (default 60; meant to be the configured lease
   * duration).
   */
  unreadableLeaseSeconds?: number;
}

// The API returns Lease times as strings although client-node types them as Date.
type LeaseSpecWire = {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
};

/** Leader election on a Lease object. */
export class LeaseLock implements Lock {
  #client: KubeClient;
  #namespace: string;
  #name: string;
  #unreadableLeaseSeconds: number;
  #last: V1Lease | undefined;
  #problem: string | undefined;
  #warning: UnreadableRecordWarning;
  #watch: LockObjectWatch<V1Lease>;

  constructor(client: KubeClient, options: LeaseLockOptions) {
    this.#client = client;
    this.#namespace = options.namespace;
    this.#name = options.name;
    this.#unreadableLeaseSeconds = unreadableLeaseSeconds(options.unreadableLeaseSeconds);
    this.#warning = new UnreadableRecordWarning(() => this.describe());
    this.#watch = new LockObjectWatch<V1Lease>(client, {
      ref: LEASES,
      namespace: options.namespace,
      name: options.name,
      record: (lease) => this.#read(lease).record,
    });
  }

  /**
   * Reads the Lease; undefined when it does not exist. A Lease with a
   * holder but no lease duration gets the lock's `unreadableLeaseSeconds`
   * (see the module documentation); {@linkcode problem} then says so.
   */
  async get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined> {
    try {
      this.#last = await this.#client.get<V1Lease>(LEASES, this.#namespace, this.#name, {
        signal,
      });
    } catch (e) {
      if (e instanceof NotFoundError) {
        this.#last = undefined;
        this.#problem = undefined;
        this.#watch.seen(undefined);
        return undefined;
      }
      throw e;
    }
    this.#watch.seen(this.#last);
    const { record, problem } = this.#read(this.#last);
    this.#problem = problem;
    return record;
  }

  /** What the Lease the last {@linkcode get} read lacks; undefined when nothing. */
  get problem(): string | undefined {
    return this.#problem;
  }

  /** Creates the Lease. */
  async create(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    this.#last = await this.#client.create<V1Lease>(LEASES, this.#namespace, {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: this.#name, namespace: this.#namespace },
      spec: this.#spec(record) as V1Lease["spec"],
    }, { signal });
    this.#watch.seen(this.#last);
  }

  /** Replaces the Lease last read (compare-and-swap on its resourceVersion). */
  async update(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    if (this.#last === undefined) throw new Error("Cannot update the Lease before reading it");
    this.#last = await this.#client.replace<V1Lease>(LEASES, this.#namespace, this.#name, {
      ...this.#last,
      spec: this.#spec(record) as V1Lease["spec"],
    }, { signal });
    this.#watch.seen(this.#last);
  }

  /** Watches the Lease from the version last seen (see {@linkcode Lock.watch}). */
  watch(options: LockWatchOptions): AsyncIterable<LeaderElectionRecord | undefined> {
    return this.#watch.watch(options);
  }

  /** "leases namespace/name". */
  describe(): string {
    return `leases ${this.#namespace}/${this.#name}`;
  }

  /** The election record a Lease holds, and what it lacks. */
  #read(lease: V1Lease): { record: LeaderElectionRecord; problem?: string } {
    const spec = (lease.spec ?? {}) as LeaseSpecWire;
    const record: LeaderElectionRecord = {
      holderIdentity: spec.holderIdentity ?? "",
      leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
      acquireTime: spec.acquireTime ?? "",
      renewTime: spec.renewTime ?? "",
      leaderTransitions: spec.leaseTransitions ?? 0,
    };
    if (record.holderIdentity === "" || typeof spec.leaseDurationSeconds === "number") {
      return { record };
    }
    record.leaseDurationSeconds = this.#unreadableLeaseSeconds;
    const problem = "spec.leaseDurationSeconds is missing";
    this.#warning.warn(
      JSON.stringify(spec),
      problem,
      record.holderIdentity,
      record.leaseDurationSeconds,
    );
    return { record, problem: `Cannot read the election record: ${problem}` };
  }

  #spec(r: LeaderElectionRecord): LeaseSpecWire {
    const spec: LeaseSpecWire = {
      holderIdentity: r.holderIdentity,
      leaseDurationSeconds: r.leaseDurationSeconds,
      leaseTransitions: r.leaderTransitions,
    };
    if (r.acquireTime !== "") spec.acquireTime = r.acquireTime;
    if (r.renewTime !== "") spec.renewTime = r.renewTime;
    return spec;
  }
}
