/**
 * The fault suite's harness: one fake API server, N in-process replicas of
 * the collector (each its own API user, identity, KubeClient and optional
 * clock offset), and three records kept independently of kevents' own code:
 *
 * - what the server generated: every ADDED/MODIFIED change of an Event, read
 *   from the server's store as it is committed (a subscription, not a
 *   watch, so that no injected fault can hide a change from the record);
 * - the Lease history: each write of the election Lease (holder, at);
 * - the checkpoint history: each write of the token ConfigMap (rv, term stamp).
 *
 * Every replica delivers to a recording sink that appends one
 * {@linkcode Delivery} per record to one shared delivery log. All times are
 * `performance.now()` of this process, so the logs compare directly.
 *
 * The checkpoint is seeded at start with the server's current
 * resourceVersion: every Event change after that must reach a sink.
 *
 * Replicas end two ways. {@linkcode Replica.stop} is a clean stop (SIGTERM):
 * the term ends, the checkpoint is flushed, the lease released.
 * {@linkcode Replica.kill} simulates a crash (SIGKILL) in-process, as
 * runCollector has no way to die without trying to flush and release: the
 * replica's API user is partitioned for good (every later request of it
 * hangs until its client gives up, so no checkpoint write and no release
 * reaches the server), its sink goes dead (accepts nothing more), and its
 * signal is aborted. For a true SIGKILL of a process, run `kevents run` as
 * a subprocess with {@linkcode FaultHarness.kubeconfigFile} and feed what it
 * prints to {@linkcode FaultHarness.recordDeliveries}.
 *
 * {@linkcode FaultHarness.verify} checks the logs against each other:
 *
 * 1. Lost: every generated change was delivered at least once. Changes the
 *    server itself collapsed are left out: a change superseded by a later
 *    change of the same Event before {@linkcode FaultHarness.compactNow}
 *    dropped the history cannot be listed again (reported as `collapsed`).
 * 2. Duplicates: with `duplicates: "none"` (default) none at all. With
 *    `"afterCheckpoint"` (after a crash, a partition, or a failed final
 *    write) each repeat must come from another term than the earlier
 *    delivery, and that earlier term must never have checkpointed the key
 *    (its last checkpoint write, as the server stored it, is older than the
 *    key's resourceVersion).
 * 3. One leader at a time, three ways:
 *    a. every delivery by X happens while the Lease history names X the
 *       holder; a delivery up to `graceMs` (default 0) after X's tenure
 *       ended is counted as `inGrace` instead of failing (the pump lets a
 *       send in flight finish for up to 2 s after its term ends: pass
 *       `graceMs` only for sinks that are slow on purpose);
 *    b. the delivery log, cut into runs by replica, does not interleave:
 *       once B delivered after A, A delivers again only after the Lease
 *       history shows A taking the lease again after B's run began;
 *    c. (in-process replicas) no delivery in a term of X happens after a
 *       term of another replica started, more than `graceMs` later, unless
 *       that term started before X's.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { TERM_ANNOTATION, TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import { type Clock, delay } from "../../lib/time/clock.ts";
import { runCollector } from "../../lib/collector.ts";
import { type Config, parseConfig } from "../../lib/config/mod.ts";
import {
  type Change,
  EventGenerator,
  type EventGeneratorOptions,
  type FakeApiServer,
  type FakeApiServerOptions,
  type RunningGenerator,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { Liveness } from "../../lib/ops/liveness.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import type { EventRecord, Sink } from "../../lib/sinks/sink.ts";

/** Default bound of every wait of the harness (ms): generous, for a loaded 2-core machine. */
export const FAULT_BOUND_MS = 30_000;

/** One record a sink accepted. */
export interface Delivery {
  /** The replica (its identity) whose sink accepted it. */
  replica: string;
  /** The record's idempotency key: `uid/resourceVersion`. */
  key: string;
  /** `performance.now()` when the sink accepted it. */
  at: number;
  /** Index into {@linkcode FaultHarness.terms} of the term that delivered it; undefined when unknown. */
  term: number | undefined;
}

/** One Event change the server committed. */
export interface GeneratedChange {
  key: string;
  uid: string;
  rv: number;
  type: "ADDED" | "MODIFIED";
  at: number;
}

/** One write of the election Lease. */
export interface LeaseChange {
  /** Holder after the write ("" released or deleted). */
  holder: string;
  transitions: number;
  rv: number;
  at: number;
}

/** One write of the token ConfigMap. */
export interface CheckpointWrite {
  /** `event.tokenKey` after the write ("" when absent). */
  rv: string;
  /** The term annotation after the write ("" when absent). */
  term: string;
  at: number;
}

/** One leadership term of an in-process replica, as its collector reported it. */
export interface TermRecord {
  replica: string;
  transitions: number;
  /** The term stamp the checkpointer wrote (read from the server when the pump started). */
  stamp: string | undefined;
  /** Resumed from this resourceVersion (undefined: from "now"). */
  from: string | undefined;
  /** When the pump started. */
  start: number;
  /** When the term ended (after its final checkpoint write); undefined while it runs. */
  end: number | undefined;
  /** The last checkpoint the term wrote, by its own account. */
  to: string | undefined;
}

/** Options for {@linkcode startFaultHarness}. */
export interface FaultHarnessOptions {
  /** Options of the fake API server. */
  server?: FakeApiServerOptions;
  /** Lease duration in ms, through the expert setting (default 3000). */
  leaseMs?: number;
  /** More configuration for every replica, as environment variables (`KEVENTS_FOLLOWER_WATCH`...). */
  env?: Record<string, string>;
  /** Seed the checkpoint at the current resourceVersion (default true). */
  seedCheckpoint?: boolean;
}

/** Options for {@linkcode FaultHarness.startReplica}. */
export interface ReplicaOptions {
  /** Identity and API user (default `replica-N`). */
  name?: string;
  /** The replica's clock reads the system clock plus this (default 0). */
  clockOffsetMs?: number;
  /** More configuration for this replica, over the harness's. */
  env?: Record<string, string>;
  /** Wraps the recording sink (a sink that fails, stalls...); deliveries are logged when the recording sink accepts them. */
  wrapSink?: (recording: Sink) => Sink;
}

/** Options for {@linkcode FaultHarness.generate}. */
export interface GenerateOptions extends Omit<EventGeneratorOptions, "now"> {
  /** Changes to apply. */
  total: number;
  /** Changes per second (default 150). */
  ratePerSecond?: number;
}

/** Options for {@linkcode FaultHarness.verify}. */
export interface VerifyOptions {
  /** Which duplicates are allowed (default "none"); see the module docs. */
  duplicates?: "none" | "afterCheckpoint";
  /** Deliveries after a tenure or term ended that still pass (ms, default 0). */
  graceMs?: number;
  /** Check one leader at a time (3a to 3c; default true): false for a bare pump without election. */
  checkLeaders?: boolean;
  /** Print the Lease history, terms and last log lines when a check fails (default true). */
  dumpOnFailure?: boolean;
}

/** What {@linkcode FaultHarness.verify} counted. */
export interface VerifyResult {
  /** Event changes the server committed since the harness started. */
  generated: number;
  /** Records the sinks accepted, repeats included. */
  delivered: number;
  /** Generated changes never delivered (0, or verify failed). */
  lost: number;
  /** Records delivered more than once (delivered minus distinct). */
  duplicates: number;
  /** Leadership terms (in-process replicas), or tenures in the Lease history when there were none. */
  leaders: number;
  /** Changes left out of `generated` because compaction collapsed them. */
  collapsed: number;
  /** Deliveries accepted within `graceMs` after their tenure or term ended. */
  inGrace: number;
}

/** A system clock read with an offset: a replica whose clock is ahead (positive) or behind. */
export function offsetClock(offsetMs: number): Clock {
  return { now: () => Date.now() + offsetMs, sleep: delay };
}

const EVENTS_STORAGE = "/events";
const LEASES_STORAGE = "coordination.k8s.io/leases";
const CONFIGMAPS_STORAGE = "/configmaps";

/** The recording sink of one replica. */
class RecordingSink implements Sink {
  readonly name = "recording";
  #replica: Replica;
  #log: (records: readonly EventRecord[], replica: Replica) => void;

  constructor(replica: Replica, log: (records: readonly EventRecord[], r: Replica) => void) {
    this.#replica = replica;
    this.#log = log;
  }

  send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.#replica.killedAt !== undefined) {
      // A dead process acknowledges nothing: the send hangs until given up.
      return new Promise((_, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    this.#log(batch, this.#replica);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** One in-process replica: runCollector with its own user, client, clock and sink. */
export class Replica {
  /** Identity, and the name of its API user. */
  readonly name: string;
  readonly clock: Clock;
  readonly config: Config;
  readonly client: KubeClient;
  /** What its `/healthz` would answer. */
  readonly liveness: Liveness = new Liveness();
  /** Settles once runCollector has returned (after stop or kill). */
  readonly done: Promise<void>;
  /** `performance.now()` of {@linkcode kill}; undefined unless killed. */
  killedAt: number | undefined;
  /** `performance.now()` of {@linkcode stop}; undefined unless stopped. */
  stoppedAt: number | undefined;
  /** Index of the open term in {@linkcode FaultHarness.terms}; undefined while not leading. */
  term: number | undefined;
  #controller = new AbortController();
  #server: FakeApiServer;

  constructor(
    harness: FaultHarness,
    name: string,
    options: ReplicaOptions,
    log: (records: readonly EventRecord[], r: Replica) => void,
    onTerm: (r: Replica, event: "start" | "end", detail: Record<string, unknown>) => void,
  ) {
    this.name = name;
    this.#server = harness.server;
    this.#server.addUser(name);
    this.config = harness.configFor(options.env);
    this.clock = offsetClock(options.clockOffsetMs ?? 0);
    const kc = new PooledKubeConfig();
    kc.loadFromString(this.#server.kubeconfig({ user: name }));
    this.client = new KubeClient(kc, { requestTimeoutMs: this.config.timings.requestTimeoutMs });
    const recording = new RecordingSink(this, log);
    const sink = options.wrapSink?.(recording) ?? recording;
    this.done = runCollector({
      client: this.client,
      config: this.config,
      identity: name,
      sinks: [sink],
      clock: this.clock,
      liveness: this.liveness,
      observer: {
        termStarted: (term, from) =>
          onTerm(this, "start", { transitions: term.transitions, from: from?.resourceVersion }),
        termEnded: (_term, at) => onTerm(this, "end", { to: at?.resourceVersion }),
      },
    }, this.#controller.signal).finally(() => this.client.close());
  }

  /** Whether it is neither stopped nor killed. */
  get alive(): boolean {
    return this.killedAt === undefined && this.stoppedAt === undefined;
  }

  /** Stops it cleanly (as SIGTERM): resolves once runCollector returned, the lease released. */
  async stop(): Promise<void> {
    if (this.alive) this.stoppedAt = performance.now();
    this.#controller.abort(new Error(`Replica ${this.name} stopped`));
    await this.done;
  }

  /**
   * Crashes it (as SIGKILL, simulated): its user is partitioned for good, its
   * sink accepts nothing more, its signal aborts. Returns at once; `done`
   * settles once its abandoned requests have timed out.
   */
  kill(): void {
    if (!this.alive) return;
    this.killedAt = performance.now();
    this.#server.partition(this.name);
    this.#controller.abort(new Error(`Replica ${this.name} killed`));
  }

  /** Partitions it from the API server (its requests hang, its watches stall). */
  partition(): void {
    this.#server.partition(this.name);
  }

  /** Ends its partition (not after a kill). */
  heal(): void {
    if (this.killedAt === undefined) this.#server.heal(this.name);
  }
}

/** The harness; create it with {@linkcode startFaultHarness}, dispose it with `await using`. */
export class FaultHarness implements AsyncDisposable {
  readonly server: FakeApiServer;
  /** Every record any sink accepted, in the order accepted. */
  readonly deliveries: Delivery[] = [];
  /** Every Event change (ADDED/MODIFIED) the server committed since the start, by key. */
  readonly generated = new Map<string, GeneratedChange>();
  /** Every write of the election Lease. */
  readonly leaseHistory: LeaseChange[] = [];
  /** Every write of the token ConfigMap. */
  readonly checkpoints: CheckpointWrite[] = [];
  /** Every term of an in-process replica, in the order they started. */
  readonly terms: TermRecord[] = [];
  /** Every replica started, in order. */
  readonly replicas: Replica[] = [];
  /** Log records of every replica (kevents.*), for failure reports. */
  readonly logs: { at: number; level: string; category: string; text: string }[] = [];
  #o: FaultHarnessOptions;
  #unsubscribe: () => void;
  #generators: RunningGenerator[] = [];
  #collapsed = new Set<string>();
  #latestByUid = new Map<string, string[]>();
  #count = 0;
  #tmp: string | undefined;
  #probe: Config;

  constructor(server: FakeApiServer, options: FaultHarnessOptions) {
    this.server = server;
    this.#o = options;
    this.#probe = this.configFor();
    const ns = this.#probe.resourcesNamespace;
    this.#unsubscribe = server.store.subscribe((c) => this.#onChange(c, ns));
  }

  /** The configuration a replica gets, with `env` on top of the harness's. */
  configFor(env: Record<string, string> = {}): Config {
    return parseConfig({
      env: {
        KUBERNETES: "1",
        KEVENTS_LEASE_DURATION_MS: String(this.#o.leaseMs ?? 3000),
        KEVENTS_CHECKPOINT_INTERVAL_MS: "100",
        KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "1000",
        ...this.#o.env,
        ...env,
      },
    });
  }

  /** The configuration replicas share (without per-replica `env`). */
  get config(): Config {
    return this.#probe;
  }

  #onChange(c: Change, ns: string): void {
    const at = performance.now();
    const r = c.record;
    if (r.storage === EVENTS_STORAGE) {
      if (c.type === "DELETED") return;
      const uid = String(r.object.metadata.uid ?? "");
      const key = `${uid}/${r.rv}`;
      this.generated.set(key, { key, uid, rv: r.rv, type: c.type, at });
      const versions = this.#latestByUid.get(uid);
      if (versions === undefined) this.#latestByUid.set(uid, [key]);
      else versions.push(key);
    } else if (
      r.storage === LEASES_STORAGE && r.namespace === ns && r.name === this.#probe.leaseName
    ) {
      const spec = (r.object as { spec?: { holderIdentity?: string; leaseTransitions?: number } })
        .spec;
      this.leaseHistory.push({
        holder: c.type === "DELETED" ? "" : spec?.holderIdentity ?? "",
        transitions: spec?.leaseTransitions ?? 0,
        rv: r.rv,
        at,
      });
    } else if (
      r.storage === CONFIGMAPS_STORAGE && r.namespace === ns &&
      r.name === this.#probe.tokenConfigMapName
    ) {
      const data = (r.object as { data?: Record<string, string> }).data ?? {};
      this.checkpoints.push({
        rv: c.type === "DELETED" ? "" : data[TOKEN_KEY] ?? "",
        term: r.object.metadata.annotations?.[TERM_ANNOTATION] ?? "",
        at,
      });
    }
  }

  #log = (records: readonly EventRecord[], replica: Replica): void => {
    const at = performance.now();
    for (const r of records) {
      this.deliveries.push({ replica: replica.name, key: r.key, at, term: replica.term });
    }
  };

  #onTerm = (replica: Replica, event: "start" | "end", d: Record<string, unknown>): void => {
    const at = performance.now();
    if (event === "start") {
      const cm = this.server.get(
        "configmaps",
        this.#probe.resourcesNamespace,
        this.#probe.tokenConfigMapName,
      );
      const stamp = cm?.metadata.annotations?.[TERM_ANNOTATION];
      const transitions = d.transitions as number;
      replica.term = this.terms.length;
      this.terms.push({
        replica: replica.name,
        transitions,
        stamp: stamp?.startsWith(`${replica.name}/${transitions}/`) ? stamp : undefined,
        from: d.from as string | undefined,
        start: at,
        end: undefined,
        to: undefined,
      });
    } else if (replica.term !== undefined) {
      const t = this.terms[replica.term]!;
      t.end = at;
      t.to = d.to as string | undefined;
      replica.term = undefined;
    }
  };

  /** Starts a replica (runCollector in this process). */
  startReplica(options: ReplicaOptions = {}): Replica {
    const name = options.name ?? `replica-${++this.#count}`;
    const replica = new Replica(this, name, options, this.#log, this.#onTerm);
    this.replicas.push(replica);
    return replica;
  }

  /** Writes a kubeconfig for a new API user `name` (a subprocess replica); returns its path. */
  async kubeconfigFile(name: string): Promise<string> {
    this.server.addUser(name);
    this.#tmp ??= await Deno.makeTempDir({ prefix: "kevents-fault-" });
    const path = `${this.#tmp}/${name}.kubeconfig`;
    await Deno.writeTextFile(path, this.server.kubeconfig({ user: name }));
    return path;
  }

  /**
   * Logs deliveries made outside the harness (a subprocess replica's printed
   * keys), now. `replica` must be the identity the Lease names (a `kevents
   * run` process logs it: `Starting as ...`), or the leader checks fail.
   */
  recordDeliveries(replica: string, keys: readonly string[]): void {
    const at = performance.now();
    for (const key of keys) this.deliveries.push({ replica, key, at, term: undefined });
  }

  /** Starts an event generator (default 150 changes per second); {@linkcode generatorsDone} waits for it. */
  generate(options: GenerateOptions): RunningGenerator {
    const { total, ratePerSecond, ...generatorOptions } = options;
    const running = this.server.startEventGenerator(new EventGenerator(generatorOptions), {
      total,
      ratePerSecond: ratePerSecond ?? 150,
    });
    this.#generators.push(running);
    return running;
  }

  /** Resolves once every generator started has finished (bounded). */
  async generatorsDone(): Promise<void> {
    await this.#within(
      "the generators to finish",
      Promise.all(this.#generators.map((g) => g.done)),
    );
  }

  /**
   * Drops the server's change history now, as etcd compaction does, and
   * notes which changes that collapsed: not delivered yet and superseded by
   * a later change of the same Event, so that no relist can return them.
   */
  compactNow(): void {
    const delivered = new Set(this.deliveries.map((d) => d.key));
    for (const versions of this.#latestByUid.values()) {
      for (const key of versions.slice(0, -1)) {
        if (!delivered.has(key)) this.#collapsed.add(key);
      }
    }
    this.server.compactNow();
  }

  /** The replica with an open term, if any. */
  leader(): Replica | undefined {
    return this.replicas.find((r) => r.alive && r.term !== undefined);
  }

  /** Waits until a live replica (other than `not`) has an open term; returns it. */
  async waitForLeader(options: { not?: Replica; ms?: number } = {}): Promise<Replica> {
    let found: Replica | undefined;
    await this.until(`a leader${options.not ? ` other than ${options.not.name}` : ""}`, () => {
      found = this.replicas.find((r) => r.alive && r.term !== undefined && r !== options.not);
      return found !== undefined;
    }, options.ms);
    return found!;
  }

  /** Waits until the sinks accepted at least `count` records in all. */
  async waitForDeliveries(count: number, ms?: number): Promise<void> {
    await this.until(
      `${count} deliveries (have ${this.deliveries.length})`,
      () => this.deliveries.length >= count,
      ms,
    );
  }

  /** Generated changes not delivered yet (collapsed ones left out). */
  missing(): string[] {
    const seen = new Set(this.deliveries.map((d) => d.key));
    return [...this.generated.keys()].filter((k) => !seen.has(k) && !this.#collapsed.has(k));
  }

  /** Waits for the generators to finish, then until every generated change is delivered. */
  async waitAllDelivered(ms?: number): Promise<void> {
    await this.generatorsDone();
    let seen = new Set<string>();
    let checked = 0;
    await this.until(
      () => `every generated change delivered (${this.missing().length} missing)`,
      () => {
        if (checked < this.deliveries.length) {
          seen = new Set(this.deliveries.map((d) => d.key));
          checked = this.deliveries.length;
        }
        for (const k of this.generated.keys()) {
          if (!seen.has(k) && !this.#collapsed.has(k)) return false;
        }
        return true;
      },
      ms,
    );
  }

  /** Polls `condition` every 10 ms until it holds; fails naming `what` after `ms` (default FAULT_BOUND_MS). */
  async until(
    what: string | (() => string),
    condition: () => boolean,
    ms: number = FAULT_BOUND_MS,
  ): Promise<void> {
    const deadline = performance.now() + ms;
    while (!condition()) {
      if (performance.now() > deadline) {
        this.#dump();
        assert.fail(
          `Timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async #within<T>(what: string, p: Promise<T>, ms = FAULT_BOUND_MS * 4): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The holder the Lease history names at `t`, and since when. */
  #holderAt(t: number): { holder: string; since: number; index: number } {
    let holder = "";
    let since = -Infinity;
    let index = -1;
    for (let i = 0; i < this.leaseHistory.length; i++) {
      const c = this.leaseHistory[i]!;
      if (c.at > t) break;
      if (c.holder !== holder) since = c.at;
      holder = c.holder;
      index = i;
    }
    return { holder, since, index };
  }

  /** Times the Lease passed to `holder` from someone else (or from nobody). */
  #acquisitions(holder: string): number[] {
    const out: number[] = [];
    let previous = "";
    for (const c of this.leaseHistory) {
      if (c.holder === holder && previous !== holder) out.push(c.at);
      previous = c.holder;
    }
    return out;
  }

  /** When `holder`'s tenure that covers (or last preceded) `t` ended; Infinity if it had not. */
  #tenureEnd(holder: string, t: number): number {
    let inTenure = false;
    let end = -Infinity;
    for (const c of this.leaseHistory) {
      if (c.at > t && !inTenure) break;
      if (c.holder === holder) {
        inTenure = true;
      } else if (inTenure) {
        end = c.at;
        inTenure = false;
        if (c.at > t) break;
      }
    }
    return inTenure ? Infinity : end;
  }

  /** The highest checkpoint a term wrote (from the server's history); -1 when none. */
  #lastCheckpointOf(d: Delivery, before: number): number {
    const term = d.term === undefined ? undefined : this.terms[d.term];
    let best = -1;
    for (const w of this.checkpoints) {
      if (w.at > before || !/^\d+$/.test(w.rv)) continue;
      const mine = term?.stamp !== undefined
        ? w.term === term.stamp
        : w.term.startsWith(`${d.replica}/`);
      if (mine) best = Math.max(best, Number(w.rv));
    }
    return best;
  }

  /**
   * Checks the delivery log against what was generated and the Lease
   * history (see the module docs); throws an AssertionError naming the
   * first violation, after printing the tail of the replicas' logs.
   */
  verify(options: VerifyOptions = {}): VerifyResult {
    try {
      return this.#verify(options);
    } catch (e) {
      if (options.dumpOnFailure !== false) this.#dump();
      throw e;
    }
  }

  #verify(options: VerifyOptions): VerifyResult {
    const grace = options.graceMs ?? 0;
    // 1. Nothing lost.
    const lost = this.missing();
    assert.deepEqual(
      lost.slice(0, 10),
      [],
      `${lost.length} generated changes were never delivered (first 10 shown)`,
    );
    // 2. Duplicates.
    const byKey = new Map<string, Delivery[]>();
    for (const d of this.deliveries) {
      const list = byKey.get(d.key);
      if (list === undefined) byKey.set(d.key, [d]);
      else list.push(d);
    }
    let duplicates = 0;
    for (const [key, list] of byKey) {
      if (list.length < 2) continue;
      duplicates += list.length - 1;
      const show = () =>
        `${key} delivered ${list.length} times: ${
          list.map((d) => `${d.replica}#${d.term ?? "?"}@${d.at.toFixed(0)}`).join(", ")
        }`;
      assert.ok(options.duplicates === "afterCheckpoint", `Unexpected duplicate: ${show()}`);
      const rv = Number(key.split("/")[1]);
      for (let j = 1; j < list.length; j++) {
        const d = list[j]!;
        for (const earlier of list.slice(0, j)) {
          const sameTerm = d.term !== undefined
            ? earlier.term === d.term
            : earlier.replica === d.replica;
          assert.ok(!sameTerm, `Delivered twice within one term: ${show()}`);
          const checkpointed = this.#lastCheckpointOf(earlier, d.at);
          assert.ok(
            checkpointed < rv,
            `Delivered again although the earlier term checkpointed ${checkpointed} >= ${rv}: ${show()}`,
          );
        }
      }
    }
    // 3a. Every delivery while the Lease names its replica the holder.
    let inGrace = 0;
    const leaders = options.checkLeaders === false ? [] : this.deliveries;
    for (const d of leaders) {
      const { holder } = this.#holderAt(d.at);
      if (holder === d.replica) continue;
      const ended = this.#tenureEnd(d.replica, d.at);
      const late = d.at - ended;
      assert.ok(
        ended !== -Infinity && late >= 0 && late <= grace,
        `${d.replica} delivered ${d.key} at ${d.at.toFixed(0)} while the Lease named ` +
          `"${holder}" the holder (${d.replica}'s tenure ended ${
            ended === -Infinity ? "never began" : `${late.toFixed(0)} ms before`
          })`,
      );
      inGrace++;
    }
    // 3b. Runs by replica do not interleave unless the Lease came back.
    const runStart = new Map<string, number>();
    let current: Delivery | undefined;
    for (const d of leaders) {
      if (current !== undefined && current.replica !== d.replica) {
        const otherStart = runStart.get(current.replica)!;
        const back = this.#acquisitions(d.replica).some((t) => t > otherStart && t <= d.at);
        const mine = runStart.get(d.replica);
        assert.ok(
          mine === undefined || back,
          `${d.replica} delivered ${d.key} at ${d.at.toFixed(0)} after ${current.replica} ` +
            `began delivering at ${otherStart.toFixed(0)}, without taking the Lease again`,
        );
        runStart.set(d.replica, d.at);
      } else if (current === undefined) {
        runStart.set(d.replica, d.at);
      }
      current = d;
    }
    // 3c. No delivery in a term once another replica's later term started.
    for (const d of leaders) {
      if (d.term === undefined) continue;
      const mine = this.terms[d.term]!;
      for (const other of this.terms) {
        if (other.replica === d.replica || other.start <= mine.start) continue;
        if (other.start + grace >= d.at) continue;
        assert.fail(
          `${d.replica} delivered ${d.key} at ${d.at.toFixed(0)} in its term started at ` +
            `${mine.start.toFixed(0)}, after ${other.replica}'s term started at ${
              other.start.toFixed(0)
            }`,
        );
      }
    }
    const tenures =
      this.leaseHistory.filter((c, i) =>
        c.holder !== "" && c.holder !== (this.leaseHistory[i - 1]?.holder ?? "")
      ).length;
    return {
      generated: this.generated.size - this.#collapsed.size,
      delivered: this.deliveries.length,
      lost: lost.length,
      duplicates,
      leaders: this.terms.length > 0 ? this.terms.length : tenures,
      collapsed: this.#collapsed.size,
      inGrace,
    };
  }

  /** Prints `FAULT <name>: generated=N delivered=N lost=N duplicates=N leaders=N` (and extras). */
  summary(name: string, r: VerifyResult, extra: Record<string, number | string> = {}): string {
    const more = Object.entries(extra).map(([k, v]) => ` ${k}=${v}`).join("");
    const line =
      `FAULT ${name}: generated=${r.generated} delivered=${r.delivered} lost=${r.lost} ` +
      `duplicates=${r.duplicates} leaders=${r.leaders}${more}`;
    console.log(line);
    return line;
  }

  #dump(): void {
    const t0 = this.leaseHistory[0]?.at ?? 0;
    const rel = (t: number) => (t - t0).toFixed(0).padStart(7);
    console.error("--- lease history");
    for (const c of this.leaseHistory.slice(-40)) {
      console.error(`${rel(c.at)} holder=${c.holder || "(none)"} transitions=${c.transitions}`);
    }
    console.error("--- terms");
    for (const t of this.terms) {
      console.error(
        `${rel(t.start)}..${
          t.end === undefined ? "open" : rel(t.end)
        } ${t.replica} from=${t.from} to=${t.to}`,
      );
    }
    console.error(`--- last log lines (${this.logs.length} in all)`);
    for (const l of this.logs.slice(-60)) {
      console.error(`${rel(l.at)} ${l.level} ${l.category} ${l.text}`);
    }
  }

  /** Stops the generators and every replica (clean stop), then the server. */
  async close(): Promise<void> {
    this.#unsubscribe();
    await Promise.all(this.#generators.map((g) => g.stop()));
    for (const r of this.replicas) if (r.killedAt === undefined) this.server.heal(r.name);
    await this.#within("the replicas to stop", Promise.all(this.replicas.map((r) => r.stop())));
    await this.server.close();
    await reset();
    if (this.#tmp !== undefined) await Deno.remove(this.#tmp, { recursive: true });
  }

  /** Closes the harness (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Starts a fake API server, seeds the checkpoint, and begins recording; replicas come with startReplica. */
export async function startFaultHarness(options: FaultHarnessOptions = {}): Promise<FaultHarness> {
  const server = await startFakeApiServer(options.server);
  const harness = new FaultHarness(server, options);
  const logs = harness.logs;
  await configure({
    reset: true,
    sinks: {
      memory: (r: LogRecord) => {
        if (logs.length > 50_000) logs.splice(0, 10_000);
        const text = r.message.map((part) => typeof part === "string" ? part : JSON.stringify(part))
          .join("");
        const who = r.properties.identity ?? r.properties.term ?? "";
        logs.push({
          at: performance.now(),
          level: r.level,
          category: r.category.join("."),
          text: who === "" ? text : `[${who}] ${text}`,
        });
      },
    },
    loggers: [
      { category: ["kevents"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  if (options.seedCheckpoint !== false) {
    const c = harness.config;
    server.create("configmaps", c.resourcesNamespace, {
      metadata: { name: c.tokenConfigMapName, namespace: c.resourcesNamespace },
      data: { [TOKEN_KEY]: String(server.store.currentRv) },
    });
  }
  return harness;
}
