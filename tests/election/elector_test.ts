import assert from "node:assert/strict";
import {
  type ElectionTimings,
  type ElectorOptions,
  runElector,
  ShutdownBudgetError,
  StepDownError,
  type Term,
  TermExpiredError,
  validateTimings,
} from "../../lib/election/elector.ts";
import { ConflictError } from "../../lib/kube/errors.ts";
import { microTime } from "../../lib/election/lease_lock.ts";
import type { LeaderElectionRecord } from "../../lib/election/lock.ts";
import { FakeClock, settle } from "../_fake_clock.ts";
import { type MemoryLock, MemoryLockStore } from "../_memory_lock.ts";

// Every replica runs the real elector against an in-memory lock, on fake
// clocks that move only when a test advances them. Times below are in ms
// since the start of the test, on the reference clock.

const START = Date.UTC(2026, 0, 1);
const LEASE = 15_000;
const RENEW_DEADLINE = 10_000;
const RETRY = 2_000;
const REQUEST_TIMEOUT = 3_000;
const TIMINGS: ElectionTimings = {
  leaseDurationMs: LEASE,
  renewDeadlineMs: RENEW_DEADLINE,
  retryPeriodMs: RETRY,
  requestTimeoutMs: REQUEST_TIMEOUT,
};
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

/** One term as the leader's work saw it. */
interface TermLog {
  replica: string;
  transitions: number;
  startedAt: number;
  /** When term.signal aborted. */
  endedAt?: number;
  reason?: unknown;
  /** When the work's promise settled. */
  settledAt?: number;
}

/** The leader's work for one term; the default waits for the term to end. */
type Work = (term: Term, nth: number) => Promise<void>;

interface Replica {
  name: string;
  lock: MemoryLock;
  clock: FakeClock;
  stop: AbortController;
  done: Promise<void>;
  /** Set when runElector settled, with the time. */
  settledAt: number | undefined;
  /** Every holder onNewLeader reported. */
  leaders: string[];
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Replicas sharing one lock store and one timeline, with the terms they led. */
class Cluster {
  readonly clock = new FakeClock(START);
  readonly store = new MemoryLockStore(this.clock);
  readonly terms: TermLog[] = [];
  readonly replicas: Replica[] = [];
  /** Terms whose work has not settled yet, and the most there ever were. */
  active = 0;
  maxActive = 0;

  /** Reference time since the start. */
  get t(): number {
    return this.clock.now() - START;
  }

  start(
    name: string,
    options: {
      clock?: FakeClock;
      random?: () => number;
      work?: Work;
      partitioned?: boolean;
      elector?: Partial<ElectorOptions>;
    } = {},
  ): Replica {
    const clock = options.clock ?? this.clock;
    const lock = this.store.lock(name);
    if (options.partitioned === true) lock.partition();
    const stop = new AbortController();
    const leaders: string[] = [];
    let nth = 0;
    const work = options.work ?? ((term: Term) => untilAborted(term.signal));
    const elector: ElectorOptions = {
      lock,
      identity: name,
      timings: TIMINGS,
      clock,
      random: options.random ?? (() => 0),
      onNewLeader: (holder) => leaders.push(holder),
      ...options.elector,
      lead: async (term) => {
        const log: TermLog = { replica: name, transitions: term.transitions, startedAt: this.t };
        this.terms.push(log);
        this.active += 1;
        this.maxActive = Math.max(this.maxActive, this.active);
        term.signal.addEventListener("abort", () => {
          log.endedAt = this.t;
          log.reason = term.signal.reason;
        }, { once: true });
        try {
          await work(term, nth++);
        } finally {
          log.settledAt = this.t;
          this.active -= 1;
        }
      },
    };
    const replica: Replica = {
      name,
      lock,
      clock,
      stop,
      leaders,
      settledAt: undefined,
      done: runElector(elector, stop.signal).then(() => {
        replica.settledAt = this.t;
      }),
    };
    this.replicas.push(replica);
    return replica;
  }

  termsOf(name: string): TermLog[] {
    return this.terms.filter((t) => t.replica === name);
  }

  /** Advances in 100 ms steps until `predicate` holds, checking at every step that at most one term is active. */
  until(predicate: () => boolean, maxMs: number, message: string): Promise<number> {
    return this.clock.runUntil(() => {
      assert.ok(this.active <= 1, `${this.active} terms active at ${this.t} ms`);
      return predicate();
    }, { stepMs: 100, maxMs, message });
  }

  /** Advances exactly `ms` in steps of at most 100 ms, checking the one-leader invariant at every step. */
  async run(ms: number): Promise<void> {
    const end = this.t + ms;
    while (this.t < end) {
      await this.clock.advance(Math.min(100, end - this.t));
      assert.ok(this.active <= 1, `${this.active} terms active at ${this.t} ms`);
    }
  }

  /** Stops every replica, waits for all of them, and checks nothing was left sleeping. */
  async stopAll(): Promise<void> {
    for (const r of this.replicas) {
      r.lock.heal();
      r.stop.abort(new Error("Test over"));
    }
    await this.until(
      () => this.replicas.every((r) => r.settledAt !== undefined),
      10_000,
      "An elector did not settle after its signal aborted",
    );
    await Promise.all(this.replicas.map((r) => r.done));
    assert.equal(this.clock.pending, 0, "Timers left behind after every elector stopped");
    assert.ok(this.maxActive <= 1, `${this.maxActive} terms were active at once`);
    assert.deepEqual(this.store.misuse, []);
  }

  /** When the store clock saw the first successful get by `replica` that returned `record`. */
  firstSeen(replica: string, record: LeaderElectionRecord): number {
    const call = this.store.calls.find((c) =>
      c.replica === replica && c.method === "get" && c.outcome === "ok" &&
      JSON.stringify(c.read) === JSON.stringify(record)
    );
    assert.ok(call?.endedAt !== undefined, `${replica} never read ${JSON.stringify(record)}`);
    return call.endedAt - START;
  }
}

function lastWrite(cluster: Cluster, replica: string) {
  const w = cluster.store.writesBy(replica).at(-1);
  assert.ok(w !== undefined, `${replica} never wrote`);
  return { ...w, at: w.at - START };
}

Deno.test("a single candidate creates the lock and leads", async (t) => {
  const cluster = new Cluster();
  const a = cluster.start("a");
  await settle();

  await t.step("it reads the missing lock once, creates it and starts its term", () => {
    assert.equal(a.lock.count("get"), 1);
    assert.equal(a.lock.count("create"), 1);
    assert.equal(a.lock.count("update"), 0);
    assert.equal(cluster.terms.length, 1);
    assert.equal(cluster.terms[0]?.transitions, 0);
    assert.equal(cluster.terms[0]?.replica, "a");
    assert.deepEqual(a.leaders, ["a"]);
  });

  await t.step("the record names it, with MicroTime timestamps and the lease in seconds", () => {
    const record = cluster.store.record;
    assert.ok(record !== undefined);
    assert.equal(record.holderIdentity, "a");
    assert.equal(record.leaseDurationSeconds, 15);
    assert.equal(record.leaderTransitions, 0);
    assert.match(record.renewTime, MICRO_TIME);
    assert.match(record.acquireTime, MICRO_TIME);
    assert.equal(record.renewTime, "2026-01-01T00:00:00.000000Z");
    assert.equal(record.acquireTime, record.renewTime);
  });

  await t.step("it renews once per retry period, keeping acquireTime and transitions", async () => {
    await cluster.run(3 * RETRY);
    assert.equal(a.lock.count("update"), 3);
    assert.equal(a.lock.count("get"), 4);
    const record = cluster.store.record!;
    assert.equal(record.renewTime, microTime(START + 3 * RETRY));
    assert.equal(record.acquireTime, "2026-01-01T00:00:00.000000Z");
    assert.equal(record.leaderTransitions, 0);
    assert.equal(cluster.terms.length, 1);
    assert.equal(cluster.terms[0]?.endedAt, undefined);
  });

  await cluster.stopAll();
});

Deno.test("a second candidate polls once per retry period and leaves a renewed lock alone", async (t) => {
  const cluster = new Cluster();
  const a = cluster.start("a");
  await cluster.run(500);
  const b = cluster.start("b");
  await settle();

  await t.step("it reads the lock at once and sees the holder", () => {
    assert.equal(b.lock.count(), 1);
    assert.equal(b.lock.count("get"), 1);
    assert.deepEqual(b.leaders, ["a"]);
  });

  await t.step("then exactly one get per retry period, never a write", async () => {
    for (let i = 1; i <= 10; i++) {
      await cluster.clock.advance(RETRY - 1);
      assert.equal(b.lock.count("get"), i, `gets just before retry period ${i}`);
      await cluster.clock.advance(1);
      assert.equal(b.lock.count("get"), i + 1, `gets at retry period ${i}`);
    }
    assert.equal(b.lock.count("create") + b.lock.count("update"), 0);
    assert.equal(cluster.store.writesBy("b").length, 0);
    assert.equal(cluster.store.record?.holderIdentity, "a");
    assert.equal(cluster.termsOf("b").length, 0);
    assert.equal(a.lock.count("update"), 10);
  });

  await cluster.stopAll();
});

Deno.test("a candidate's retry period carries up to 10% jitter", async () => {
  const cluster = new Cluster();
  cluster.start("a");
  await settle();
  const b = cluster.start("b", { random: () => 0.5 });
  await settle();
  assert.equal(b.lock.count("get"), 1);
  await cluster.clock.advance(RETRY * 1.05 - 1);
  assert.equal(b.lock.count("get"), 1, "polled before retryPeriod * (1 + 0.1 * random)");
  await cluster.clock.advance(1);
  assert.equal(b.lock.count("get"), 2, "did not poll at retryPeriod * (1 + 0.1 * random)");
  await cluster.stopAll();
});

/**
 * The leader a renews at 2000 and 4000, then its calls fail from 5000 on;
 * the follower b polls at 1000, 3000, 5000... on `followerClock`.
 */
async function leaderStopsRenewing(
  t: Deno.TestContext,
  followerClock?: (c: FakeClock) => FakeClock,
) {
  const cluster = new Cluster();
  const a = cluster.start("a");
  await cluster.run(1000);
  cluster.start("b", { clock: followerClock?.(cluster.clock) });
  await cluster.run(4000);
  assert.equal(cluster.t, 5000);
  a.lock.failNext(Infinity);
  const renewed = lastWrite(cluster, "a");
  assert.equal(renewed.at, 4000, "the leader's last successful renewal");

  await t.step("the leader's term aborts at its renew deadline", async () => {
    await cluster.until(
      () => cluster.termsOf("a")[0]?.endedAt !== undefined,
      RENEW_DEADLINE,
      "the leader's term never ended",
    );
    const term = cluster.termsOf("a")[0]!;
    assert.equal(term.endedAt, renewed.at + RENEW_DEADLINE);
    assert.equal(term.settledAt, term.endedAt, "the work settles as soon as the term aborts");
    assert.match(String(term.reason), /Renew deadline passed/);
    const retries = cluster.store.calls.filter((c) => c.replica === "a" && c.outcome === "failed");
    assert.deepEqual(
      retries.filter((c) => c.at - START < term.endedAt!).map((c) => c.at - START),
      [6000, 8000, 10_000, 12_000],
      "it retries its renewal every retry period until the deadline",
    );
    assert.equal(cluster.store.writesBy("b").length, 0, "the follower took over too early");
  });

  await t.step(
    "the follower takes over a full lease after it first saw the last renewal",
    async () => {
      await cluster.until(
        () => cluster.termsOf("b").length === 1,
        LEASE + RETRY,
        "the follower never took over",
      );
      const seen = cluster.firstSeen("b", renewed.record);
      assert.equal(seen, 5000);
      const takeover = lastWrite(cluster, "b");
      assert.ok(takeover.at >= seen + LEASE, `took over at ${takeover.at}, seen at ${seen}`);
      assert.ok(takeover.at < seen + LEASE + RETRY, `took over late, at ${takeover.at}`);
      assert.ok(cluster.termsOf("a")[0]!.settledAt! < takeover.at);
      assert.equal(takeover.record.holderIdentity, "b");
      assert.equal(takeover.record.leaderTransitions, 1);
      assert.equal(cluster.termsOf("b")[0]?.transitions, 1);
      assert.equal(cluster.termsOf("b")[0]?.startedAt, takeover.at);
      assert.equal(cluster.store.writesBy("b").length, 1, "the follower wrote before taking over");
      assert.equal(cluster.maxActive, 1);
    },
  );

  await t.step("the old leader, reachable again, follows the new one", async () => {
    a.lock.heal();
    await cluster.run(3 * RETRY);
    assert.equal(cluster.termsOf("a").length, 1);
    assert.equal(cluster.store.record?.holderIdentity, "b");
    assert.deepEqual(a.leaders, ["a", "b"]);
    assert.equal(cluster.termsOf("b")[0]?.endedAt, undefined);
  });

  await cluster.stopAll();
}

Deno.test("a leader that cannot renew steps down before a follower takes over", async (t) => {
  await leaderStopsRenewing(t);
});

Deno.test("clock offsets between replicas do not change when a follower takes over", async (t) => {
  const hours = 3 * 3600_000;
  await t.step("a follower whose clock is 3 hours ahead", async (t) => {
    await leaderStopsRenewing(t, (c) => c.skewed(hours));
  });
  await t.step("a follower whose clock is 3 hours behind", async (t) => {
    await leaderStopsRenewing(t, (c) => c.skewed(-hours));
  });
});

Deno.test("a conflict on renewal ends the term at once and the replica is a candidate again", async (t) => {
  const cluster = new Cluster();
  const a = cluster.start("a");
  await cluster.run(3000);
  // b writes between a's get and a's update of the renewal at 4000.
  const b = cluster.store.lock("b");
  let conflicts = 0;
  cluster.store.beforeCall = async (replica, method) => {
    if (replica !== "a" || method !== "update" || conflicts > 0) return;
    conflicts += 1;
    const current = await b.get();
    await b.update({
      ...current!,
      holderIdentity: "b",
      leaderTransitions: current!.leaderTransitions + 1,
      renewTime: microTime(cluster.clock.now()),
    });
  };
  const callsBefore = a.lock.count();

  await t.step("the renewal gets a 409 and the term ends at that instant", async () => {
    await cluster.run(1000);
    const failed = cluster.store.calls.find((c) => c.replica === "a" && c.outcome === "failed");
    assert.ok(failed?.error instanceof ConflictError);
    assert.equal(failed.at - START, 4000);
    const term = cluster.termsOf("a")[0]!;
    assert.equal(term.endedAt, 4000);
    assert.equal(term.settledAt, 4000);
    assert.match(String(term.reason), /Lease lost/);
    assert.equal(cluster.store.record?.holderIdentity, "b", "a overwrote b's record");
  });

  await t.step("it polls as a candidate, one get per retry period", async () => {
    // Renewal at 4000: get + update; as a candidate: get at 6000, 8000, 10000.
    await cluster.run(6001);
    assert.equal(cluster.t, 10_001);
    assert.equal(a.lock.count() - callsBefore, 2 + 3);
    assert.equal(a.lock.count("update"), 2, "no write since the conflict");
    assert.deepEqual(a.leaders, ["a", "b"]);
  });

  await t.step("and takes the lock a full lease after b stopped writing", async () => {
    await cluster.until(() => cluster.termsOf("a").length === 2, LEASE, "a never took it back");
    const takeover = lastWrite(cluster, "a");
    // a first saw b's record at 6000; it polls every 2000 from then on.
    assert.equal(cluster.firstSeen("a", cluster.store.writesBy("b")[0]!.record), 6000);
    assert.equal(takeover.at, 22_000, "the first poll at or after 6000 + lease");
    assert.equal(takeover.record.leaderTransitions, 2);
    assert.equal(cluster.termsOf("a")[1]?.transitions, 2);
  });

  await cluster.stopAll();
});

Deno.test("a stopped leader lets its work settle, then releases the lock", async (t) => {
  const cluster = new Cluster();
  let finishWork = () => {};
  const workFinished = new Promise<void>((resolve) => finishWork = resolve);
  let writesWhenWorkSettled = -1;
  const a = cluster.start("a", {
    work: async (term) => {
      await untilAborted(term.signal);
      await workFinished; // Flushing, say.
      writesWhenWorkSettled = cluster.store.writes.length;
    },
  });
  await cluster.run(1000);
  const b = cluster.start("b");
  await cluster.run(4500);
  const writesBeforeStop = cluster.store.writes.length;

  await t.step("stopping aborts the term at once but waits for the work", async () => {
    a.stop.abort(new Error("SIGTERM"));
    await settle();
    const term = cluster.termsOf("a")[0]!;
    assert.equal(term.endedAt, 5500);
    assert.match(String(term.reason), /SIGTERM/);
    await cluster.clock.advance(500);
    assert.equal(term.settledAt, undefined);
    assert.equal(cluster.store.writes.length, writesBeforeStop, "wrote while its work still ran");
    assert.equal(a.settledAt, undefined, "runElector settled before the work");
  });

  await t.step("once the work settled it releases the lock, then runElector settles", async () => {
    finishWork();
    await settle();
    assert.equal(writesWhenWorkSettled, writesBeforeStop, "released before the work settled");
    const release = lastWrite(cluster, "a");
    assert.equal(release.at, 6000);
    assert.equal(cluster.store.writes.length, writesBeforeStop + 1);
    assert.deepEqual(release.record, {
      holderIdentity: "",
      leaseDurationSeconds: 1,
      acquireTime: microTime(START + 6000),
      renewTime: microTime(START + 6000),
      leaderTransitions: 0,
    });
    assert.equal(a.settledAt, 6000);
  });

  await t.step("the follower takes over at its next retry, not after a lease", async () => {
    await cluster.until(() => cluster.termsOf("b").length === 1, RETRY, "b did not take over");
    const takeover = lastWrite(cluster, "b");
    assert.equal(takeover.at, 7000);
    assert.equal(takeover.record.leaderTransitions, 1);
    assert.deepEqual(b.leaders, ["a", "b"]);
  });

  await cluster.stopAll();
  assert.equal(
    a.lock.count("update") + a.lock.count("create"),
    3 + 1,
    "create, 2 renewals, release",
  );
});

Deno.test("a leader whose work fails becomes a candidate and takes its own lock again", async (t) => {
  const cluster = new Cluster();
  const a = cluster.start("a", {
    work: async (term, nth) => {
      if (nth === 0) {
        await cluster.clock.sleep(3000, term.signal);
        throw new Error("The pump failed");
      }
      await untilAborted(term.signal);
    },
  });
  await cluster.run(3000);

  await t.step("the failure ends the term without releasing the lock", () => {
    const first = cluster.termsOf("a")[0]!;
    assert.equal(first.endedAt, 3000);
    assert.match(String(first.reason), /The leader's work ended/);
    assert.ok(cluster.store.writes.every((w) => w.record.holderIdentity === "a"));
  });

  await t.step("it re-acquires as itself: same acquireTime and transitions", async () => {
    await cluster.until(() => cluster.termsOf("a").length === 2, RETRY, "no second term");
    const second = cluster.termsOf("a")[1]!;
    assert.equal(second.startedAt, 3000 + RETRY, "a candidate for one retry period");
    assert.equal(second.transitions, 0);
    const record = cluster.store.record!;
    assert.equal(record.holderIdentity, "a");
    assert.equal(record.acquireTime, microTime(START));
    assert.equal(record.leaderTransitions, 0);
    assert.equal(a.lock.count("create"), 1);
    assert.equal(cluster.maxActive, 1);
  });

  await cluster.stopAll();
});

Deno.test("a leader whose work fails at once does not hammer the lock", async () => {
  const cluster = new Cluster();
  // The first five terms fail on the spot; the sixth runs until stopped (so a
  // spinning elector stops spinning and the assertions below can fail).
  const a = cluster.start("a", {
    work: async (term, nth) => {
      if (nth < 5) throw new Error("Misconfigured");
      await untilAborted(term.signal);
    },
  });
  await cluster.until(() => cluster.termsOf("a").length === 6, 6 * RETRY, "fewer than six terms");
  const starts = cluster.termsOf("a").map((t) => t.startedAt);
  for (let i = 1; i < starts.length; i++) {
    assert.ok(
      starts[i]! - starts[i - 1]! >= RETRY,
      `term ${i} started ${starts[i]! - starts[i - 1]!} ms after the previous one: ${starts}`,
    );
  }
  assert.ok(a.lock.count() <= 2 * starts.length, `${a.lock.count()} lock calls for 6 terms`);
  await cluster.stopAll();
});

Deno.test("a follower's lease clock starts when the record arrives, not when it asked", async () => {
  const cluster = new Cluster();
  const a = cluster.start("a");
  await cluster.run(1000);
  // b's first get is sent at 1000 and answered at 2500, after a renewed at 2000.
  const b = cluster.start("b", { partitioned: true });
  await cluster.run(1500);
  b.lock.heal();
  a.lock.failNext(Infinity);
  await cluster.until(() => cluster.termsOf("b").length === 1, 2 * LEASE, "b never took over");
  const renewal = cluster.store.writesBy("a").at(-1)!;
  assert.equal(renewal.at - START, 2000);
  const seen = cluster.firstSeen("b", renewal.record);
  assert.equal(seen, 2500);
  const takeover = lastWrite(cluster, "b").at;
  assert.ok(
    takeover >= seen + LEASE,
    `took over at ${takeover}, ${takeover - seen} ms after seeing`,
  );
  assert.equal(cluster.termsOf("a")[0]?.endedAt, 2000 + RENEW_DEADLINE);
  await cluster.stopAll();
});

Deno.test("a hung lock request is abandoned and the renew deadline still ends the term on time", async (t) => {
  const cluster = new Cluster();
  const a = cluster.start("a");
  await cluster.run(5000);
  a.lock.partition();

  await t.step("each renewal is abandoned after requestTimeoutMs", async () => {
    await cluster.run(4000);
    const hung = cluster.store.calls.filter((c) => c.replica === "a" && c.at - START >= 5000);
    assert.equal(hung[0]?.at, START + 6000);
    assert.equal(hung[0]?.method, "get");
    assert.equal(hung[0]?.outcome, "aborted");
    assert.equal(hung[0]?.endedAt, START + 6000 + REQUEST_TIMEOUT);
    assert.equal(cluster.termsOf("a")[0]?.endedAt, undefined);
  });

  await t.step("the term ends at the last renewal plus the renew deadline", async () => {
    await cluster.until(
      () => cluster.termsOf("a")[0]?.settledAt !== undefined,
      RENEW_DEADLINE,
      "the term outlived its renew deadline",
    );
    assert.equal(cluster.termsOf("a")[0]?.endedAt, 4000 + RENEW_DEADLINE);
    const open = cluster.store.calls.filter((c) =>
      c.replica === "a" && c.outcome === "pending" && c.at - START < 4000 + RENEW_DEADLINE
    );
    assert.deepEqual(open, [], "a request of the term outlived it");
  });

  await t.step("healed, it takes its own lock again", async () => {
    a.lock.heal();
    await cluster.until(() => cluster.termsOf("a").length === 2, LEASE, "no second term");
    assert.equal(cluster.store.record?.holderIdentity, "a");
    assert.equal(cluster.termsOf("a")[1]?.transitions, 0);
  });

  await cluster.stopAll();
});

Deno.test("validateTimings names the broken relation", async (t) => {
  const cases: { name: string; timings: Partial<ElectionTimings>; message: RegExp }[] = [
    {
      name: "lease duration equal to the renew deadline",
      timings: { leaseDurationMs: 10_000, renewDeadlineMs: 10_000 },
      message: /leaseDuration \(10000 ms\) must be greater than renewDeadline \(10000 ms\)/,
    },
    {
      name: "lease duration below the renew deadline",
      timings: { leaseDurationMs: 5_000 },
      message: /leaseDuration \(5000 ms\) must be greater than renewDeadline \(10000 ms\)/,
    },
    {
      name: "renew deadline equal to the retry period",
      timings: { renewDeadlineMs: 2_000 },
      message: /renewDeadline \(2000 ms\) must be greater than retryPeriod \(2000 ms\)/,
    },
    {
      name: "renew deadline below the retry period",
      timings: { retryPeriodMs: 12_000, renewDeadlineMs: 11_000 },
      message: /renewDeadline \(11000 ms\) must be greater than retryPeriod \(12000 ms\)/,
    },
    {
      name: "zero request timeout",
      timings: { requestTimeoutMs: 0 },
      message: /retryPeriod and requestTimeout must be positive/,
    },
    {
      name: "NaN lease duration",
      timings: { leaseDurationMs: NaN },
      message: /leaseDuration \(NaN ms\) must be greater than renewDeadline/,
    },
  ];
  for (const c of cases) {
    await t.step(`rejects ${c.name}`, () => {
      assert.throws(() => validateTimings({ ...TIMINGS, ...c.timings }), (e: unknown) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, /^Cannot run leader election: /);
        assert.match(e.message, c.message);
        return true;
      });
    });
  }

  await t.step("accepts the test timings and the defaults' ratios", () => {
    validateTimings(TIMINGS);
    validateTimings({
      leaseDurationMs: 60_000,
      renewDeadlineMs: 30_000,
      retryPeriodMs: 15_000,
      requestTimeoutMs: 10_000,
    });
  });

  await t.step("runElector rejects bad timings before touching the lock", async () => {
    const clock = new FakeClock();
    const store = new MemoryLockStore(clock);
    await assert.rejects(
      runElector({
        lock: store.lock("a"),
        identity: "a",
        timings: { ...TIMINGS, leaseDurationMs: RENEW_DEADLINE },
        clock,
        lead: () => Promise.resolve(),
      }, new AbortController().signal),
      RangeError,
    );
    assert.equal(store.calls.length, 0);
  });
});

Deno.test("runElector with an already-aborted signal resolves without touching the lock", async () => {
  const clock = new FakeClock();
  const store = new MemoryLockStore(clock);
  let led = 0;
  await runElector({
    lock: store.lock("a"),
    identity: "a",
    timings: TIMINGS,
    clock,
    lead: () => {
      led += 1;
      return Promise.resolve();
    },
  }, AbortSignal.abort(new Error("Stopped")));
  assert.equal(store.calls.length, 0);
  assert.equal(led, 0);
  assert.equal(clock.pending, 0);
});

Deno.test("a stopped leader drains its work while it keeps renewing the lease, then releases it", async (t) => {
  const cluster = new Cluster();
  let finishDrain = () => {};
  const drained = new Promise<void>((resolve) => finishDrain = resolve);
  const a = cluster.start("a", {
    elector: { shutdownBudgetMs: 60_000 },
    work: async (term) => {
      await untilAborted(term.drain!);
      await drained; // Sends in flight and the queue, however long they take.
    },
  });
  await cluster.run(1000);
  const b = cluster.start("b");
  await cluster.run(1000);
  const stopAt = cluster.t;

  await t.step(
    "the drain outlasts the renew deadline and the lease: renewed all along, never cut",
    async () => {
      a.stop.abort(new Error("SIGTERM"));
      await cluster.run(LEASE + RETRY);
      const term = cluster.termsOf("a")[0]!;
      assert.equal(term.endedAt, undefined, "the term's hard signal did not abort");
      const renewals = cluster.store.writesBy("a").filter((w) => w.at - START > stopAt);
      assert.ok(renewals.length >= 8, `renewed ${renewals.length} times while draining`);
      assert.ok(renewals.every((w) => w.record.holderIdentity === "a"));
      assert.equal(cluster.termsOf("b").length, 0, "nobody took over meanwhile");
    },
  );

  await t.step(
    "once drained it releases the lock, and the follower takes over at its next retry",
    async () => {
      finishDrain();
      await settle();
      assert.equal(lastWrite(cluster, "a").record.holderIdentity, "", "released");
      await cluster.until(() => cluster.termsOf("b").length === 1, RETRY * 2, "b to take over");
    },
  );
  await cluster.stopAll();
  void b;
});

Deno.test("the shutdown budget cuts a drain that takes too long: the term ends, then the lock is released", async () => {
  const cluster = new Cluster();
  const a = cluster.start("a", {
    elector: { shutdownBudgetMs: 5_000 },
    work: (term) => untilAborted(term.signal), // Never drains on its own.
  });
  await cluster.run(1000);
  a.stop.abort(new Error("SIGTERM"));
  await cluster.until(() => a.settledAt !== undefined, 10_000, "a to settle");
  const term = cluster.termsOf("a")[0]!;
  assert.equal(term.endedAt, 1000 + 5_000);
  assert.ok(term.reason instanceof ShutdownBudgetError);
  assert.equal(lastWrite(cluster, "a").record.holderIdentity, "");
  await cluster.stopAll();
});

Deno.test("a term is not current past its renew deadline even before its watchdog timer runs (a paused process)", async () => {
  const fake = new FakeClock(START);
  let paused = 0;
  // A process woken from SIGSTOP: time has moved, its timers have not run yet.
  const clock = { now: () => fake.now() + paused, sleep: fake.sleep.bind(fake) };
  const store = new MemoryLockStore(fake);
  const stop = new AbortController();
  let seen: Term | undefined;
  const done = runElector({
    lock: store.lock("a"),
    identity: "a",
    timings: TIMINGS,
    clock,
    random: () => 0,
    lead: (term) => {
      seen = term;
      return untilAborted(term.signal);
    },
  }, stop.signal);
  await settle();
  assert.ok(seen !== undefined);
  seen.assertCurrent!();
  paused = RENEW_DEADLINE - 1;
  seen.assertCurrent!();
  paused = RENEW_DEADLINE;
  assert.throws(() => seen!.assertCurrent!(), TermExpiredError);
  assert.ok(seen.signal.aborted, "the refusal ends the term at once");
  stop.abort(new Error("Test over"));
  await fake.advance(RETRY);
  await done;
});

Deno.test("a leader whose work steps down releases the lock and keeps away for two lease durations", async () => {
  const cluster = new Cluster();
  const a = cluster.start("a", {
    work: async (term, nth) => {
      if (nth > 0) return await untilAborted(term.signal);
      await cluster.clock.sleep(3000, term.signal);
      throw new StepDownError("Cannot list events");
    },
  });
  await cluster.run(500);
  const b = cluster.start("b");
  await cluster.until(() => cluster.termsOf("b").length === 1, 3000 + RETRY * 2, "b to lead");
  assert.equal(cluster.termsOf("a").length, 1);
  assert.equal(
    cluster.store.writesBy("a").at(-1)!.record.holderIdentity,
    "",
    "released, not left to expire",
  );
  const getsAfterStepDown = a.lock.count("get");
  const releasedAt = lastWrite(cluster, "a").at;
  await cluster.run(releasedAt + 2 * LEASE - 100 - cluster.t);
  assert.equal(a.lock.count("get"), getsAfterStepDown, "did not even try meanwhile");
  await cluster.run(RETRY * 2);
  assert.ok(a.lock.count("get") > getsAfterStepDown, "a candidate again after the pause");
  await cluster.stopAll();
  void b;
});
