/**
 * A {@linkcode Lock} on a coordination.k8s.io/v1 Lease. Lease times are
 * MicroTime (six fractional digits), which the API server insists on.
 *
 * @module
 */

import type { V1Lease } from "@kubernetes/client-node";
import { NotFoundError } from "./errors.ts";
import { type KubeClient, LEASES } from "./kube_client.ts";
import {
  type LeaderElectionRecord,
  type Lock,
  LockObjectWatch,
  type LockWatchOptions,
} from "./lock.ts";

/** Formats a time as a Kubernetes MicroTime: "2026-11-21T20:03:04.123000Z". */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, "000Z");
}

/** Options for {@linkcode LeaseLock}. */
export interface LeaseLockOptions {
  namespace: string;
  name: string;
}

// The API returns Lease times as strings although client-node types them as Date.
type LeaseSpecWire = {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
};

/** The election record a Lease holds. */
function recordOf(lease: V1Lease): LeaderElectionRecord {
  const spec = (lease.spec ?? {}) as LeaseSpecWire;
  return {
    holderIdentity: spec.holderIdentity ?? "",
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    acquireTime: spec.acquireTime ?? "",
    renewTime: spec.renewTime ?? "",
    leaderTransitions: spec.leaseTransitions ?? 0,
  };
}

/** Leader election on a Lease object. */
export class LeaseLock implements Lock {
  #client: KubeClient;
  #namespace: string;
  #name: string;
  #last: V1Lease | undefined;
  #watch: LockObjectWatch<V1Lease>;

  constructor(client: KubeClient, options: LeaseLockOptions) {
    this.#client = client;
    this.#namespace = options.namespace;
    this.#name = options.name;
    this.#watch = new LockObjectWatch<V1Lease>(client, {
      ref: LEASES,
      namespace: options.namespace,
      name: options.name,
      record: recordOf,
    });
  }

  /** Reads the Lease; undefined when it does not exist. */
  async get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined> {
    try {
      this.#last = await this.#client.get<V1Lease>(LEASES, this.#namespace, this.#name, {
        signal,
      });
    } catch (e) {
      if (e instanceof NotFoundError) {
        this.#last = undefined;
        this.#watch.seen(undefined);
        return undefined;
      }
      throw e;
    }
    this.#watch.seen(this.#last);
    return recordOf(this.#last);
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
