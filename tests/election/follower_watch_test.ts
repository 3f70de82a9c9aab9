/**
 * Specification of followers that watch the lock instead of polling it
 * (`watchLock`): they take over as soon as the lock is released, or once
 * its lease has run out on their own clock, make no periodic reads while
 * the leader renews, and fall back to polling every retry period while
 * their watch cannot be opened. Everything goes through the fake API server
 * over the network, for a Lease and for a ConfigMap lock. The electors run
 * on one FakeClock, which the test moves only once every lock request in
 * flight has been answered and every watch has reported what it must.
 */

import assert from "node:assert/strict";
import { AnnotationLock, LEADER_ANNOTATION } from "../../lib/election/annotation_lock.ts";
import { type ElectionTimings, runElector, type Term } from "../../lib/election/elector.ts";
import {
  type FakeApiServer,
  type PolicyRule,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import {
  CONFIGMAPS,
  ENDPOINTS,
  KubeClient,
  LEASES,
  type ResourceRef,
} from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { LeaseLock, microTime } from "../../lib/election/lease_lock.ts";
import {
  type LeaderElectionRecord,
  type Lock,
  type LockWatchOptions,
  UNREADABLE_HOLDER,
} from "../../lib/election/lock.ts";
import { eventually, GUARD_MS, within } from "../_fake_api.ts";
import { FakeClock, settle } from "../_fake_clock.ts";
import { MemoryLockStore } from "../_memory_lock.ts";

const NS = "default";
const NAME = "datadog-leader-election";
/** The defaults' ratios with the default 60 s lease: a poll every 15 s. */
const LEASE = 60_000;
const RETRY = 15_000;
const TIMINGS: ElectionTimings = {
  leaseDurationMs: LEASE,
  renewDeadlineMs: 30_000,
  retryPeriodMs: RETRY,
  requestTimeoutMs: 10_000,
};

type Kind = "lease" | "configmap" | "endpoints";
const KINDS: readonly Kind[] = ["lease", "configmap"];
const REF: Record<Kind, ResourceRef> = {
  lease: LEASES,
  configmap: CONFIGMAPS,
  endpoints: ENDPOINTS,
};
const RESOURCE: Record<Kind, string> = {
  lease: "leases.coordination.k8s.io",
  configmap: "configmaps",
  endpoints: "endpoints",
};

/** A client of the fake server as a new user `user` (allowed `rules`, default everything), closed on dispose. */
function connect(
  server: FakeApiServer,
  user: string,
  rules?: PolicyRule[],
): KubeClient & AsyncDisposable {
  server.addUser(user, rules);
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig({ user }));
  const client = new KubeClient(kc);
  return Object.assign(client, { [Symbol.asyncDispose]: () => client.close() });
}

function lockOf(client: KubeClient, kind: Kind, name = NAME): Lock {
  return kind === "lease"
    ? new LeaseLock(client, { namespace: NS, name })
    : new AnnotationLock(client, { kind, namespace: NS, name });
}

/**
 * A Lock that remembers its requests in flight (a watch counts until the
 * server has accepted or refused it) and what its watch reported, so the
 * test can wait for the API server's answers before it moves the clock on.
 * Updates can be held at a gate, to line two candidates up for one race.
 */
class TrackedLock implements Lock {
  readonly inFlight = new Set<Promise<unknown>>();
  /** Every record the watch reported (undefined: deleted), in order. */
  readonly watched: (LeaderElectionRecord | undefined)[] = [];
  /** Watches the server accepted. */
  opened = 0;
  /** Whether a watch is open now. */
  open = false;
  /** When set, updates wait for it before they are sent. */
  gate: Promise<void> | undefined;
  readonly #inner: Lock;

  constructor(inner: Lock) {
    this.#inner = inner;
  }

  get(signal?: AbortSignal): Promise<LeaderElectionRecord | undefined> {
    return this.#track(this.#inner.get(signal));
  }

  create(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    return this.#track(this.#inner.create(record, signal));
  }

  update(record: LeaderElectionRecord, signal?: AbortSignal): Promise<void> {
    const gate = this.gate;
    return this.#track(
      gate === undefined
        ? this.#inner.update(record, signal)
        : gate.then(() => this.#inner.update(record, signal)),
    );
  }

  async *watch(options: LockWatchOptions): AsyncGenerator<LeaderElectionRecord | undefined> {
    const opening = Promise.withResolvers<void>();
    this.#track(opening.promise);
    try {
      const inner = this.#inner.watch!({
        ...options,
        onOpen: () => {
          this.opened += 1;
          this.open = true;
          opening.resolve();
          options.onOpen?.();
        },
      });
      for await (const record of inner) {
        this.watched.push(record);
        yield record;
      }
    } finally {
      this.open = false;
      opening.resolve();
    }
  }

  describe(): string {
    return this.#inner.describe();
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }
}

/** One elector on the fake server. */
interface Replica {
  identity: string;
  lock: TrackedLock;
  stop: AbortController;
  done: Promise<void>;
  /** Its terms, with the FakeClock times they started and ended. */
  terms: { startedAt: number; endedAt?: number; transitions: number }[];
  /** Every holder onNewLeader reported. */
  leaders: string[];
  readonly leading: boolean;
}

/** Electors sharing one fake server and one FakeClock. */
class Cluster implements AsyncDisposable {
  readonly clock = new FakeClock();
  readonly replicas: Replica[] = [];
  readonly #clients: (KubeClient & AsyncDisposable)[] = [];
  /** Terms whose work has not settled yet, and the most there ever were. */
  active = 0;
  maxActive = 0;

  constructor(readonly server: FakeApiServer, readonly kind: Kind) {}

  /** Starts an elector as user `identity`; it watches unless told to poll. */
  start(identity: string, options: { watch?: boolean } = {}): Replica {
    const client = connect(this.server, identity);
    this.#clients.push(client);
    const lock = new TrackedLock(lockOf(client, this.kind));
    const stop = new AbortController();
    const terms: Replica["terms"] = [];
    const leaders: string[] = [];
    const lead = (term: Term) =>
      new Promise<void>((resolve) => {
        const entry: Replica["terms"][number] = {
          startedAt: this.clock.now(),
          transitions: term.transitions,
        };
        terms.push(entry);
        this.active += 1;
        this.maxActive = Math.max(this.maxActive, this.active);
        // The work ends with its term, or when asked to drain (it has nothing in flight).
        const end = () => {
          if (entry.endedAt !== undefined) return;
          entry.endedAt = this.clock.now();
          this.active -= 1;
          resolve();
        };
        term.signal.addEventListener("abort", end, { once: true });
        term.drain?.addEventListener("abort", end, { once: true });
      });
    const done = runElector({
      lock,
      identity,
      timings: TIMINGS,
      lead,
      clock: this.clock,
      random: () => 0,
      onNewLeader: (holder) => leaders.push(holder),
      watchLock: options.watch ?? true,
    }, stop.signal);
    const replica: Replica = {
      identity,
      lock,
      stop,
      done,
      terms,
      leaders,
      get leading() {
        return terms.some((term) => term.endedAt === undefined);
      },
    };
    this.replicas.push(replica);
    return replica;
  }

  /** Waits until no lock request of any elector is in flight and everything they started has run. */
  async quiesce(): Promise<void> {
    for (;;) {
      await settle();
      const pending = this.replicas.flatMap((r) => [...r.lock.inFlight]);
      if (pending.length === 0) return;
      await within(Promise.allSettled(pending), GUARD_MS, "the lock requests in flight");
    }
  }

  /** Moves the clock `ms` on, then answers every request that started. */
  async advance(ms: number): Promise<void> {
    await this.clock.advance(ms);
    await this.quiesce();
  }

  /**
   * Moves the clock `ms` on in steps of a fifth of a retry period, answering
   * every request after each: a request started during a step is answered
   * at the step's end, so the backoff after a refused watch is counted from
   * there (fifths of a retry period are where this random's backoffs end).
   */
  async run(ms: number, each: () => void = () => {}): Promise<void> {
    const step = RETRY / 5;
    for (let moved = 0; moved < ms; moved += step) {
      await this.advance(Math.min(step, ms - moved));
      each();
    }
  }

  /** Waits until `replica`'s watch has reported `count` changes in all, then lets it react. */
  async watched(replica: Replica, count: number): Promise<void> {
    await eventually(
      () => replica.lock.watched.length >= count,
      `${replica.identity}'s watch to report ${count} changes`,
    );
    assert.equal(replica.lock.watched.length, count, `${replica.identity} saw more changes`);
    await this.quiesce();
  }

  /** Requests `identity` made, of `verb`, for the lock object (answered with `code`, if given). */
  requests(identity: string, verb: string, code?: number): number {
    return this.server.requestLog.count({ identity, verb, resource: RESOURCE[this.kind], code });
  }

  /** Holder and renewTime of the record the server holds; undefined without the object. */
  serverRecord(): { holderIdentity: string; renewTime: string } | undefined {
    const object = this.server.get(RESOURCE[this.kind], NS, NAME);
    if (object === undefined) return undefined;
    if (this.kind === "lease") {
      const spec = (object as unknown as { spec: { holderIdentity: string; renewTime: string } })
        .spec;
      return { holderIdentity: spec.holderIdentity, renewTime: spec.renewTime };
    }
    const annotation = object.metadata.annotations?.[LEADER_ANNOTATION];
    assert.ok(annotation !== undefined);
    const { holderIdentity, renewTime } = JSON.parse(annotation);
    return { holderIdentity, renewTime };
  }

  /** Holder the server's record names. */
  holder(): string | undefined {
    return this.serverRecord()?.holderIdentity;
  }

  /** Waits until `replica`'s watch has reported the record the server holds, then lets it react. */
  async caughtUp(replica: Replica): Promise<void> {
    const want = this.serverRecord();
    await eventually(() => {
      const last = replica.lock.watched.at(-1);
      return last?.holderIdentity === want?.holderIdentity && last?.renewTime === want?.renewTime;
    }, `${replica.identity}'s watch to report ${JSON.stringify(want)}`);
    await this.quiesce();
  }

  /** The one replica leading now. */
  leader(): Replica {
    const leading = this.replicas.filter((r) => r.leading);
    assert.equal(leading.length, 1, `leading: ${leading.map((r) => r.identity)}`);
    return leading[0]!;
  }

  /** Stops every elector and waits until they have settled and closed their watches. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const r of this.replicas) r.stop.abort(new Error("Test over"));
    await this.quiesce();
    await within(Promise.all(this.replicas.map((r) => r.done)), GUARD_MS, "the electors to stop");
    await eventually(() => this.server.watchCount === 0, "every watch to close");
    assert.equal(this.clock.pending, 0, "timers left behind after every elector stopped");
    assert.ok(this.maxActive <= 1, `${this.maxActive} terms were active at once`);
    await Promise.all(this.#clients.map((c) => c[Symbol.asyncDispose]()));
  }
}

/** A leader `a` and a follower `b` (watching unless told to poll), both settled. */
async function leaderAndFollower(
  cluster: Cluster,
  options: { watch?: boolean } = {},
): Promise<{ a: Replica; b: Replica }> {
  const a = cluster.start("a");
  await cluster.quiesce();
  assert.equal(cluster.leader(), a);
  const b = cluster.start("b", options);
  await cluster.quiesce();
  assert.deepEqual(b.leaders, ["a"]);
  return { a, b };
}

// ---- the lock's watch ----------------------------------------------------------

/** Reads a lock's watch one step at a time, each step bounded. */
function stepper(watch: AsyncIterable<LeaderElectionRecord | undefined>) {
  const iterator = watch[Symbol.asyncIterator]();
  return {
    /** The holder of the next record reported ("(deleted)" for undefined). */
    async change(): Promise<string> {
      const r = await within(iterator.next(), GUARD_MS, "a change");
      assert.equal(r.done, false, "the watch ended instead");
      return (r.value as LeaderElectionRecord | undefined)?.holderIdentity ?? "(deleted)";
    },
    /** Resolves when the watch ends without an error. */
    async end(): Promise<void> {
      const r = await within(iterator.next(), GUARD_MS, "the watch to end");
      assert.equal(r.done, true, "the watch reported a change instead of ending");
    },
  };
}

Deno.test("a lock's watch reports the changes of its own object only, allowed by its name alone", async (t) => {
  for (const kind of ["lease", "configmap", "endpoints"] as const) {
    await t.step(kind, async () => {
      await using server = await startFakeApiServer();
      await using writer = connect(server, "writer");
      // What the ClusterRole must grant a follower: get and watch on the lock, by name.
      const ref = REF[kind];
      await using watcher = connect(server, "watcher", [{
        apiGroups: [ref.group],
        resources: [ref.resource],
        resourceNames: [NAME],
        verbs: ["get", "watch"],
      }]);
      const mine = lockOf(writer, kind);
      const neighbour = lockOf(writer, kind, "another-lock");
      const record = (holderIdentity: string, second: number): LeaderElectionRecord => ({
        holderIdentity,
        leaseDurationSeconds: 60,
        acquireTime: microTime(Date.UTC(2026, 0, 1)),
        renewTime: microTime(Date.UTC(2026, 0, 1, 0, 0, second)),
        leaderTransitions: 0,
      });
      await mine.create(record("a", 0));
      await neighbour.create(record("x", 0));
      await mine.get();
      await mine.update(record("b", 1));

      const lock = lockOf(watcher, kind);
      assert.equal((await lock.get())?.holderIdentity, "b");
      const stop = new AbortController();
      let opened = 0;
      const watch = stepper(lock.watch!({ signal: stop.signal, onOpen: () => opened++ }));
      const first = watch.change();
      await eventually(() => opened === 1, "the watch to open");
      // Another object of the same kind and namespace changes first: not reported.
      await neighbour.get();
      await neighbour.update(record("y", 2));
      await mine.update(record("c", 3));
      assert.equal(await first, "c", "the first change after the version read");
      await mine.get();
      await mine.update(record("", 4));
      assert.equal(await watch.change(), "", "released");
      await writer.delete(ref, NS, NAME);
      assert.equal(await watch.change(), "(deleted)");
      assert.equal(server.requestLog.count({ identity: "watcher", code: 403 }), 0);
      assert.equal(server.requestLog.count({ identity: "watcher", verb: "watch", name: NAME }), 1);
      stop.abort(new Error("Done"));
      await assert.rejects(watch.change(), /Done/);
      await eventually(() => server.watchCount === 0, "the watch to close");
    });
  }
});

Deno.test("a lock's watch goes on where the last one ended, and answers a 410 by reading the object again", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await using server = await startFakeApiServer();
      await using writer = connect(server, "writer");
      await using watcher = connect(server, "watcher");
      const mine = lockOf(writer, kind);
      const write = async (holderIdentity: string, second: number) => {
        const current = await mine.get();
        const record: LeaderElectionRecord = {
          holderIdentity,
          leaseDurationSeconds: 60,
          acquireTime: microTime(Date.UTC(2026, 0, 1)),
          renewTime: microTime(Date.UTC(2026, 0, 1, 0, 0, second)),
          leaderTransitions: 0,
        };
        if (current === undefined) await mine.create(record);
        else await mine.update(record);
      };
      await write("a", 0);
      const lock = lockOf(watcher, kind);
      await lock.get();
      const stop = new AbortController();
      const signal = stop.signal;
      const gets = () => server.requestLog.count({ identity: "watcher", verb: "get" });

      await t.step("the server ending the watch ends the iteration without an error", async () => {
        let opened = false;
        const watch = stepper(lock.watch!({ signal, onOpen: () => opened = true }));
        const change = watch.change();
        await eventually(() => opened, "the watch to open");
        await write("b", 1);
        assert.equal(await change, "b");
        server.dropWatches({ abrupt: false });
        await watch.end();
      });

      await t.step(
        "a change made while no watch was open is reported by the next one",
        async () => {
          await write("c", 2);
          const watch = stepper(lock.watch!({ signal }));
          assert.equal(await watch.change(), "c");
          server.dropWatches({ abrupt: false });
          await watch.end();
          assert.equal(gets(), 1, "no read: the watch went on from its own version");
        },
      );

      await t.step(
        "from a compacted version it reads the object again and goes on from it",
        async () => {
          await write("d", 3);
          server.compactNow();
          let opened = 0;
          const watch = stepper(lock.watch!({ signal, onOpen: () => opened++ }));
          assert.equal(await watch.change(), "d", "the record read after the 410");
          assert.equal(gets(), 2);
          const change = watch.change();
          await eventually(() => opened === 2, "the watch from the version read");
          await write("e", 4);
          assert.equal(await change, "e");
          server.dropWatches({ abrupt: false });
          await watch.end();
          assert.equal(gets(), 2);
        },
      );

      await t.step("timeoutSeconds asks the server to end the watch", async () => {
        await stepper(lock.watch!({ signal, timeoutSeconds: 1 })).end();
      });
      stop.abort();
      assert.equal(server.watchCount, 0);
    });
  }
});

// ---- followers that watch ------------------------------------------------------

Deno.test("a watching follower takes over at once when the leader releases the lock", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await t.step("watching: at the release, without its clock moving", async () => {
        await using server = await startFakeApiServer();
        await using cluster = new Cluster(server, kind);
        const { a, b } = await leaderAndFollower(cluster);
        assert.ok(b.lock.open, "the follower's watch is open");
        const releasedAt = cluster.clock.now();
        a.stop.abort(new Error("SIGTERM"));
        await within(a.done, GUARD_MS, "the leader to release and stop");
        await eventually(() => b.leading, "b to take over");
        await cluster.quiesce();
        assert.equal(b.terms[0]!.startedAt, releasedAt, "no time passed on the follower's clock");
        assert.equal(b.terms[0]!.transitions, 1);
        assert.equal(cluster.holder(), "b");
        // Its first read, then the read of its takeover: no poll in between.
        assert.equal(cluster.requests("b", "get"), 2);
        assert.equal(cluster.requests("b", "update", 200), 1);
        assert.deepEqual(b.leaders, ["a", "b"]);
      });

      await t.step("polling, for comparison: only at its next retry", async () => {
        await using server = await startFakeApiServer();
        await using cluster = new Cluster(server, kind);
        const { a, b } = await leaderAndFollower(cluster, { watch: false });
        const startedAt = cluster.clock.now();
        a.stop.abort(new Error("SIGTERM"));
        await within(a.done, GUARD_MS, "the leader to release and stop");
        await cluster.quiesce();
        assert.equal(cluster.holder(), "");
        await cluster.advance(RETRY - 1);
        assert.equal(b.leading, false, "a poller cannot know before it polls");
        await cluster.advance(1);
        assert.equal(b.leading, true);
        assert.equal(b.terms[0]!.startedAt - startedAt, RETRY);
        assert.equal(server.requestLog.count({ identity: "b", verb: "watch" }), 0);
      });
    });
  }
});

Deno.test("a follower whose leader died takes over once the lease has run out on its own clock", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async () => {
      await using server = await startFakeApiServer();
      await using cluster = new Cluster(server, kind);
      // The leader, played by the test: it renews by hand, then stops without releasing.
      await using leader = connect(server, "a");
      const lock = lockOf(leader, kind);
      const acquired = cluster.clock.now();
      const renew = async () => {
        const current = await lock.get();
        const record: LeaderElectionRecord = {
          holderIdentity: "a",
          leaseDurationSeconds: LEASE / 1000,
          acquireTime: microTime(acquired),
          renewTime: microTime(cluster.clock.now()),
          leaderTransitions: 3,
        };
        if (current === undefined) await lock.create(record);
        else await lock.update(record);
      };
      await renew();
      const b = cluster.start("b");
      await cluster.quiesce();
      assert.ok(b.lock.open);
      for (let k = 1; k <= 3; k++) {
        await cluster.advance(RETRY);
        await renew();
        await cluster.watched(b, k);
      }
      // The leader dies now: b saw its last renewal at this instant, on b's clock.
      const lastSeen = cluster.clock.now();
      await cluster.advance(LEASE - 1);
      assert.equal(b.leading, false, "took over before the lease ran out");
      assert.equal(cluster.requests("b", "get"), 1, "a watching follower does not poll");
      await cluster.advance(1);
      assert.equal(b.leading, true, "did not take over when the lease ran out");
      assert.equal(b.terms[0]!.startedAt, lastSeen + LEASE);
      assert.equal(b.terms[0]!.transitions, 4);
      assert.equal(cluster.holder(), "b");
      assert.equal(cluster.requests("b", "get"), 2);
      assert.deepEqual(b.leaders, ["a", "b"]);
    });
  }
});

Deno.test("a watching follower makes no reads while the leader renews; its watch is reopened where it ended", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await using server = await startFakeApiServer();
      await using cluster = new Cluster(server, kind);
      const { a, b } = await leaderAndFollower(cluster);
      const watches = () => server.requestLog.count({ identity: "b", verb: "watch" });

      await t.step(
        "eight renewals, two minutes: one read, one watch, each renewal seen",
        async () => {
          for (let k = 1; k <= 8; k++) {
            await cluster.advance(RETRY);
            await cluster.watched(b, k);
          }
          assert.equal(cluster.requests("a", "update", 200), 8);
          assert.equal(cluster.requests("b", "get"), 1);
          assert.equal(watches(), 1);
          assert.equal(cluster.requests("b", "update") + cluster.requests("b", "create"), 0);
          assert.deepEqual(b.leaders, ["a"]);
          assert.equal(a.terms.length, 1);
        },
      );

      await t.step("the server ends the watch: reopened at once, without a read", async () => {
        server.dropWatches({ abrupt: false, identity: "b" });
        await eventually(() => b.lock.opened === 2, "the watch to be reopened");
        await cluster.quiesce();
        for (let k = 9; k <= 12; k++) {
          await cluster.advance(RETRY);
          await cluster.watched(b, k);
        }
        assert.equal(cluster.requests("b", "get"), 1);
        assert.equal(watches(), 2);
      });

      await t.step("the watch breaks: one read at once, reopened after a backoff", async () => {
        server.dropWatches({ abrupt: true, identity: "b" });
        await eventually(() => cluster.requests("b", "get") === 2, "the read after the break");
        await cluster.quiesce();
        assert.equal(b.lock.open, false);
        // Backoff: 0.8 of a retry period with this random; then open before the next poll.
        await cluster.advance(0.8 * RETRY);
        assert.equal(b.lock.open, true);
        assert.equal(watches(), 3);
        await cluster.advance(0.2 * RETRY);
        await cluster.watched(b, 13);
        for (let k = 14; k <= 16; k++) {
          await cluster.advance(RETRY);
          await cluster.watched(b, k);
        }
        assert.equal(cluster.requests("b", "get"), 2);
        assert.equal(watches(), 3);
        assert.equal(b.terms.length, 0);
      });
    });
  }
});

Deno.test("a follower whose watch cannot be opened polls every retry period and still takes over", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await t.step(
        "watches refused for good: a poll per retry period, reopens backing off",
        async () => {
          await using server = await startFakeApiServer();
          server.failNext(Infinity, { verbs: ["watch"], identity: "b", code: 503 });
          await using cluster = new Cluster(server, kind);
          const { a, b } = await leaderAndFollower(cluster);
          const startedAt = cluster.clock.now();
          await cluster.run(6 * RETRY, () => {
            const periods = Math.floor((cluster.clock.now() - startedAt) / RETRY);
            assert.equal(cluster.requests("b", "get"), periods + 1, "one read per retry period");
          });
          // Tried at 0, then after 0.8, 1.6 and 3.2 retry periods (this random's backoff).
          assert.equal(server.requestLog.count({ identity: "b", verb: "watch", code: 503 }), 4);
          assert.equal(b.lock.opened, 0);
          a.stop.abort(new Error("SIGTERM"));
          await within(a.done, GUARD_MS, "the leader to release and stop");
          await cluster.quiesce();
          await cluster.advance(RETRY - 1);
          assert.equal(b.leading, false);
          await cluster.advance(1);
          assert.equal(b.leading, true, "it took over at its next poll");
          assert.equal(cluster.holder(), "b");
        },
      );

      await t.step(
        "watches refused twice: polls until the third one opens, then none",
        async () => {
          await using server = await startFakeApiServer();
          server.failNext(2, { verbs: ["watch"], identity: "b", code: 503 });
          await using cluster = new Cluster(server, kind);
          const { b } = await leaderAndFollower(cluster);
          await cluster.run(2 * RETRY);
          assert.equal(cluster.requests("b", "get"), 3);
          assert.equal(b.lock.open, false);
          // Tried at 0 and 0.8 retry periods; the third try, at 2.4, opens.
          await cluster.run(0.4 * RETRY);
          assert.equal(b.lock.open, true);
          for (let k = 1; k <= 4; k++) {
            await cluster.advance(RETRY);
            await cluster.caughtUp(b);
          }
          assert.equal(cluster.requests("b", "get"), 3, "no poll once the watch is open");
          assert.equal(server.requestLog.count({ identity: "b", verb: "watch" }), 3);
        },
      );
    });
  }
});

Deno.test("two watching followers race for a released lock: one wins, the other gets a 409 and watches on", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async () => {
      await using server = await startFakeApiServer();
      await using cluster = new Cluster(server, kind);
      const a = cluster.start("a");
      await cluster.quiesce();
      const b = cluster.start("b");
      const c = cluster.start("c");
      await cluster.quiesce();
      assert.ok(b.lock.open && c.lock.open);
      // Both must read the released lock before either writes: then both write over it.
      const gate = Promise.withResolvers<void>();
      b.lock.gate = gate.promise;
      c.lock.gate = gate.promise;
      a.stop.abort(new Error("SIGTERM"));
      await within(a.done, GUARD_MS, "the leader to release and stop");
      await eventually(
        () => cluster.requests("b", "get") === 2 && cluster.requests("c", "get") === 2,
        "both followers to read the released lock",
      );
      b.lock.gate = undefined;
      c.lock.gate = undefined;
      gate.resolve();
      await cluster.quiesce();
      const winner = cluster.leader();
      const loser = winner === b ? c : b;
      assert.equal(cluster.requests(winner.identity, "update", 200), 1);
      assert.equal(cluster.requests(loser.identity, "update", 409), 1);
      assert.equal(cluster.requests(loser.identity, "update"), 1);
      assert.equal(cluster.holder(), winner.identity);
      assert.equal(winner.terms[0]!.transitions, 1);

      await cluster.caughtUp(loser);
      for (let k = 1; k <= 4; k++) {
        await cluster.advance(RETRY);
        await cluster.caughtUp(loser);
      }
      assert.equal(cluster.leader(), winner);
      assert.equal(loser.terms.length, 0);
      assert.equal(cluster.requests(loser.identity, "get"), 2, "the loser did not poll");
      assert.deepEqual(loser.leaders, ["a", winner.identity]);
    });
  }
});

Deno.test("stopping a watching follower closes its watch before runElector settles", async () => {
  await using server = await startFakeApiServer();
  await using cluster = new Cluster(server, "lease");
  const { b } = await leaderAndFollower(cluster);
  assert.equal(server.watchIdentities().filter((i) => i === "b").length, 1);
  b.stop.abort(new Error("SIGTERM"));
  let openWhenSettled: boolean | undefined;
  await within(b.done.then(() => openWhenSettled = b.lock.open), GUARD_MS, "b to stop");
  assert.equal(openWhenSettled, false, "runElector settled with its watch still open");
  await eventually(() => !server.watchIdentities().includes("b"), "the server to see it closed");
  assert.equal(cluster.requests("b", "get"), 1);
});

Deno.test("watchLock on a lock that cannot watch polls every retry period", async () => {
  const clock = new FakeClock();
  const store = new MemoryLockStore(clock);
  const stop = new AbortController();
  const leader = runElector({
    lock: store.lock("a"),
    identity: "a",
    timings: TIMINGS,
    clock,
    random: () => 0,
    lead: (term) =>
      new Promise((resolve) => term.signal.addEventListener("abort", () => resolve())),
  }, stop.signal);
  await settle();
  const follower = store.lock("b");
  const done = runElector({
    lock: follower,
    identity: "b",
    timings: TIMINGS,
    clock,
    random: () => 0,
    watchLock: true,
    lead: () => Promise.resolve(),
  }, stop.signal);
  await settle();
  for (let k = 1; k <= 4; k++) {
    await clock.advance(RETRY);
    assert.equal(follower.count("get"), k + 1);
  }
  stop.abort(new Error("Test over"));
  await clock.advance(TIMINGS.requestTimeoutMs);
  await Promise.all([leader, done]);
  assert.equal(clock.pending, 0);
});

// ---- records other clients wrote ------------------------------------------------

Deno.test("a watching follower keeps its watch open over a ConfigMap record it cannot read, and takes it once unchanged for the lease", async () => {
  await using server = await startFakeApiServer();
  await using cluster = new Cluster(server, "configmap");
  await using other = connect(server, "other");
  const write = async (text: string) => {
    const cm = await other.get<{ metadata: { annotations?: Record<string, string> } }>(
      CONFIGMAPS,
      NS,
      NAME,
    ).catch(() => undefined);
    const metadata = { name: NAME, namespace: NS, annotations: { [LEADER_ANNOTATION]: text } };
    if (cm === undefined) await other.create(CONFIGMAPS, NS, { metadata });
    else {await other.replace(CONFIGMAPS, NS, NAME, {
        ...cm,
        metadata: { ...cm.metadata, ...metadata },
      });}
  };
  await write("not json");
  const b = cluster.start("b");
  await cluster.quiesce();
  assert.ok(b.lock.open, "the watch is open");
  for (let k = 1; k <= 3; k++) {
    await cluster.advance(RETRY);
    await write(`not json ${k}`);
    await cluster.watched(b, k);
  }
  assert.equal(b.lock.watched.at(-1)?.renewTime, "not json 3", "reported, not thrown");
  // Unchanged from now on; the lock's default unreadableLeaseSeconds is 60 s, as LEASE.
  const lastSeen = cluster.clock.now();
  await cluster.advance(LEASE - 1);
  assert.equal(b.leading, false, "took over before the lease ran out");
  assert.ok(b.lock.open, "the watch stayed open");
  assert.equal(b.lock.opened, 1);
  assert.equal(cluster.requests("b", "get"), 1, "a watching follower does not poll");
  await cluster.advance(1);
  assert.equal(b.leading, true, "did not take over when the lease ran out");
  assert.equal(b.terms[0]!.startedAt, lastSeen + LEASE);
  assert.equal(cluster.holder(), "b");
  assert.deepEqual(b.leaders, [UNREADABLE_HOLDER, "b"]);
});

Deno.test("a Lease another client wrote without leaseDurationSeconds is held for the lease, not taken at once", async (t) => {
  for (const watch of [true, false]) {
    await t.step(watch ? "watching" : "polling", async () => {
      await using server = await startFakeApiServer();
      await using cluster = new Cluster(server, "lease");
      server.create(RESOURCE.lease, NS, {
        metadata: { name: NAME },
        spec: { holderIdentity: "other-client", renewTime: microTime(cluster.clock.now()) },
      });
      const b = cluster.start("b", { watch });
      await cluster.quiesce();
      assert.deepEqual(b.leaders, ["other-client"]);
      // The lock's default unreadableLeaseSeconds is 60 s, as LEASE.
      await cluster.run(LEASE - RETRY / 5, () => assert.equal(b.leading, false));
      await cluster.run(RETRY / 5);
      assert.equal(b.leading, true);
      assert.equal(b.terms[0]!.startedAt - Date.UTC(2026, 0, 1), LEASE);
      assert.equal(cluster.holder(), "b");
    });
  }
});

Deno.test("a Lease created empty, without a holder, is free: taken at once", async () => {
  await using server = await startFakeApiServer();
  await using cluster = new Cluster(server, "lease");
  server.create(RESOURCE.lease, NS, { metadata: { name: NAME }, spec: {} });
  const b = cluster.start("b");
  await cluster.quiesce();
  assert.equal(b.leading, true);
  assert.equal(cluster.holder(), "b");
});
