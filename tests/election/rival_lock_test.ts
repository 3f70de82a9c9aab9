/**
 * Specification of the rival-lock guard: a kevents replica does not take its
 * lock while another leader election (the Datadog Agent's, which elects on a
 * ConfigMap by default where kevents elects on a Lease) holds a lock of the
 * same name and another kind, and leads at its next try once that lock is
 * released or has stayed unchanged for its lease on kevents' own clock.
 *
 * Everything goes through the fake API server over the network. The other
 * election is client-go's algorithm on its own lock (kevents' elector
 * without a guard, which the Agent's is), renewing every 3 s; where time
 * matters both run on one FakeClock timeline, kevents' clock three hours
 * ahead of the other's, and the test moves it only once every lock request
 * in flight has been answered.
 */

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { runCollector } from "../../lib/collector.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import { AnnotationLock, LEADER_ANNOTATION } from "../../lib/election/annotation_lock.ts";
import { type ElectionTimings, runElector, type Term } from "../../lib/election/elector.ts";
import { LeaseLock } from "../../lib/election/lease_lock.ts";
import type { LeaderElectionRecord, Lock, LockWatchOptions } from "../../lib/election/lock.ts";
import { type LockKind, RivalLockGuard, rivalLocks } from "../../lib/election/rival_lock.ts";
import {
  type FakeApiServer,
  type KubeObject,
  type PolicyRule,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { CONFIGMAPS, KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { Metrics } from "../../lib/ops/metrics.ts";
import { NullSink } from "../../lib/sinks/null.ts";
import { eventually, within } from "../_fake_api.ts";
import { FakeClock, settle } from "../_fake_clock.ts";
import { captureLogs } from "../_logs.ts";
import { TrackedLock } from "../_tracked_lock.ts";

const NS = "default";
const NAME = "datadog-leader-election";
const BOUND_MS = 20_000;
/** The Agent names itself after its pod. */
const AGENT = "datadog-agent-7xk2p";

/** kevents' timings: lease 8 s, retry period 2 s. */
const KEVENTS: ElectionTimings = {
  leaseDurationMs: 8_000,
  renewDeadlineMs: 4_000,
  retryPeriodMs: 2_000,
  requestTimeoutMs: 1_000,
};

/** The other election's: lease 12 s, renewed every 3 s. */
const OTHER: ElectionTimings = {
  leaseDurationMs: 12_000,
  renewDeadlineMs: 6_000,
  retryPeriodMs: 3_000,
  requestTimeoutMs: 1_000,
};

/** How each kind shows in messages, and the fake server's resource for it. */
const OBJECT: Record<LockKind, string> = {
  lease: `Lease ${NS}/${NAME}`,
  configmap: `ConfigMap ${NS}/${NAME}`,
  endpoints: `Endpoints ${NS}/${NAME}`,
};
const RESOURCE: Record<LockKind, string> = {
  lease: "leases.coordination.k8s.io",
  configmap: "configmaps",
  endpoints: "endpoints",
};

/** A client of the fake server as `user` (created, with `rules` if given), closed on dispose. */
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

/** A TrackedLock that can also be watched, as kevents' followers do by default. */
class WatchedTrackedLock extends TrackedLock {
  readonly #lock: Lock;

  constructor(lock: Lock) {
    super(lock);
    this.#lock = lock;
  }

  watch(options: LockWatchOptions): AsyncIterable<LeaderElectionRecord | undefined> {
    return this.#lock.watch!(options);
  }
}

/** The lock of `kind` named NAME, as kevents builds it. */
function lockOf(client: KubeClient, kind: LockKind): Lock {
  const target = {
    namespace: NS,
    name: NAME,
    unreadableLeaseSeconds: KEVENTS.leaseDurationMs / 1000,
  };
  return kind === "lease"
    ? new LeaseLock(client, target)
    : new AnnotationLock(client, { ...target, kind });
}

/** One elector on the fake server, and the terms its work saw. */
interface Elector {
  identity: string;
  /** Its lock, and for kevents the rival locks its guard reads. */
  locks: TrackedLock[];
  /** kevents' guard and metrics; undefined for the other election. */
  guard?: RivalLockGuard;
  metrics?: Metrics;
  stop: AbortController;
  done: Promise<void>;
  /** Every term, with the FakeClock times it started and ended. */
  terms: { startedAt: number; endedAt?: number }[];
  readonly leading: boolean;
}

/**
 * Runs an elector on `lock`. With `guarded`, it is a kevents replica as
 * runCollector wires it: the rival-lock guard reads the other kinds of
 * NAME, and reports to its own Metrics.
 */
function startElector(
  client: KubeClient,
  kind: LockKind,
  identity: string,
  clock: FakeClock,
  options: { timings: ElectionTimings; guarded: boolean; watchLock?: boolean },
): Elector {
  const lock = new WatchedTrackedLock(lockOf(client, kind));
  const locks: TrackedLock[] = [lock];
  let guard: RivalLockGuard | undefined;
  let metrics: Metrics | undefined;
  if (options.guarded) {
    const target = { namespace: NS, name: NAME, unreadableLeaseSeconds: 8, kind };
    const rivals = rivalLocks(client, target).map((r) => ({ ...r, lock: new TrackedLock(r.lock) }));
    locks.push(...rivals.map((r) => r.lock));
    metrics = new Metrics();
    guard = new RivalLockGuard({ identity, kind, rivals, clock, metrics });
  }
  const stop = new AbortController();
  const terms: Elector["terms"] = [];
  // The work ends with its term, or when asked to drain (it has nothing in flight).
  const lead = (term: Term) =>
    new Promise<void>((resolve) => {
      const entry: { startedAt: number; endedAt?: number } = { startedAt: clock.now() };
      terms.push(entry);
      const end = () => {
        entry.endedAt ??= clock.now();
        resolve();
      };
      term.signal.addEventListener("abort", end, { once: true });
      term.drain?.addEventListener("abort", end, { once: true });
    });
  const done = runElector({
    lock,
    identity,
    timings: options.timings,
    lead,
    clock,
    random: () => 0,
    watchLock: options.watchLock,
    guard,
  }, stop.signal);
  return {
    identity,
    locks,
    guard,
    metrics,
    stop,
    done,
    terms,
    get leading() {
      return terms.some((term) => term.endedAt === undefined);
    },
  };
}

/** Waits until no lock request of `electors` is in flight and everything they started has run. */
async function quiesce(electors: readonly Elector[]): Promise<void> {
  for (;;) {
    await settle();
    const pending = electors.flatMap((e) => e.locks.flatMap((l) => [...l.inFlight]));
    if (pending.length === 0) return;
    await within(Promise.allSettled(pending), BOUND_MS, "the lock requests in flight");
  }
}

/** Moves the clock `ms` on in steps of 500 ms, answering every request before each check. */
async function advance(
  clock: FakeClock,
  electors: readonly Elector[],
  ms: number,
  check: () => void = () => {},
): Promise<void> {
  for (let moved = 0; moved < ms; moved += 500) {
    await clock.advance(Math.min(500, ms - moved));
    await quiesce(electors);
    check();
  }
}

/** Stops the electors, lets what they started settle, and waits for them. */
async function stopAll(clock: FakeClock, electors: readonly Elector[]): Promise<void> {
  for (const e of electors) e.stop.abort(new Error("Test over"));
  await quiesce(electors);
  // A cut-off elector's last request is abandoned on its own clock.
  await clock.advance(KEVENTS.requestTimeoutMs);
  await quiesce(electors);
  await within(Promise.all(electors.map((e) => e.done)), BOUND_MS, "the electors to stop");
}

/** The holder the lock object of `kind` names, as the server holds it; undefined without one. */
function holderOf(server: FakeApiServer, kind: LockKind): string | undefined {
  const object = server.get(RESOURCE[kind], NS, NAME);
  if (object === undefined) return undefined;
  if (kind === "lease") return (object.spec as { holderIdentity?: string }).holderIdentity;
  const annotation = object.metadata.annotations?.[LEADER_ANNOTATION];
  return annotation === undefined ? undefined : JSON.parse(annotation).holderIdentity;
}

/** The value of a metric series without labels, or of `series` given in full. */
async function metricValue(metrics: Metrics, series: string): Promise<number | undefined> {
  const text = await metrics.render();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A log record's message with its properties filled in. */
function rendered(record: LogRecord): string {
  return record.message.map((part) => typeof part === "string" ? part : String(part)).join("");
}

/** The guard's warnings that a rival keeps kevents from leading. */
function rivalWarnings(records: readonly LogRecord[]): LogRecord[] {
  return records.filter((r) =>
    r.level === "warning" && rendered(r).startsWith("Another leader election")
  );
}

/** Writes the leader annotation of the ConfigMap NAME as another client would: `text` as it is. */
async function writeAnnotation(client: KubeClient, text: string): Promise<void> {
  const obj = await client.get<KubeObject>(CONFIGMAPS, NS, NAME).catch(() => undefined);
  if (obj === undefined) {
    await client.create(CONFIGMAPS, NS, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: NAME, namespace: NS, annotations: { [LEADER_ANNOTATION]: text } },
    });
    return;
  }
  obj.metadata.annotations = { ...obj.metadata.annotations, [LEADER_ANNOTATION]: text };
  await client.replace(CONFIGMAPS, NS, NAME, obj);
}

// ---- a live rival keeps kevents away; its release lets it lead -------------------

interface RivalCase {
  name: string;
  /** The other election's lock kind, its holder, and whether it is a guarded kevents replica. */
  rival: LockKind;
  holder: string;
  rivalGuarded: boolean;
  /** kevents' lock kind. */
  own: LockKind;
  /** Objects that exist before anyone elects: the Agent creates the ConfigMap even in Lease mode. */
  before?: (server: FakeApiServer) => void;
}

const RIVAL_CASES: RivalCase[] = [
  {
    name: "kevents on a Lease, the Agent on the ConfigMap annotation (both on their defaults)",
    rival: "configmap",
    holder: AGENT,
    rivalGuarded: false,
    own: "lease",
  },
  {
    name: "kevents on the ConfigMap annotation, the Agent on a Lease (and its empty ConfigMap)",
    rival: "lease",
    holder: AGENT,
    rivalGuarded: false,
    own: "configmap",
    before: (server) => server.create("configmaps", NS, { metadata: { name: NAME } }),
  },
  {
    name: "two kevents replicas configured with different lock kinds: Lease and Endpoints",
    rival: "lease",
    holder: "kevents-on-lease",
    rivalGuarded: true,
    own: "endpoints",
  },
];

Deno.test("kevents does not lead while another election renews a same-named lock of another kind, and leads at its next try once it is released", async (t) => {
  for (const c of RIVAL_CASES) {
    await t.step(c.name, async (t) => {
      await using server = await startFakeApiServer();
      await using rivalClient = connect(server, "rival");
      await using client = connect(server, "kevents");
      await using logs = await captureLogs();
      c.before?.(server);
      const rivalClock = new FakeClock();
      // Three hours ahead: the rival's timestamps are never compared with kevents' clock.
      const clock = rivalClock.skewed(3 * 3600_000);
      const rival = startElector(rivalClient, c.rival, c.holder, rivalClock, {
        timings: OTHER,
        guarded: c.rivalGuarded,
      });
      await quiesce([rival]);
      assert.equal(holderOf(server, c.rival), c.holder, "the other election leads");
      const ownBefore = server.get(RESOURCE[c.own], NS, NAME);
      const kevents = startElector(client, c.own, "kevents-a", clock, {
        timings: KEVENTS,
        guarded: true,
        watchLock: true,
      });
      const electors = [rival, kevents];
      try {
        await quiesce(electors);

        await t.step(
          "while the holder renews every 3 s, kevents never takes its lock",
          async () => {
            await advance(clock, electors, 60_000, () => {
              assert.equal(kevents.terms.length, 0, "kevents leads");
              assert.deepEqual(
                server.get(RESOURCE[c.own], NS, NAME),
                ownBefore,
                "its lock is untouched",
              );
            });
            assert.equal(holderOf(server, c.rival), c.holder);
            assert.equal(rival.terms.length, 1, "the other election led throughout");
          },
        );

        await t.step("kevents_rival_lock_held reads 1", async () => {
          assert.equal(await metricValue(kevents.metrics!, "kevents_rival_lock_held"), 1);
        });

        await t.step(
          "one warning over 31 tries names the object, the holder and what to do",
          () => {
            const warnings = rivalWarnings(logs.records);
            assert.equal(warnings.length, 1, warnings.map(rendered).join("\n"));
            assert.equal(warnings[0]!.properties.object, OBJECT[c.rival]);
            assert.equal(warnings[0]!.properties.holder, c.holder);
            const text = rendered(warnings[0]!);
            assert.match(
              text,
              new RegExp(
                `^Another leader election .* holds ${OBJECT[c.rival]} \\(holder ${c.holder}\\): `,
              ),
            );
            assert.match(
              text,
              /will not lead until it is released or stays unchanged for its \d+ s lease/,
            );
            assert.match(
              text,
              new RegExp(`set kevents' leader_election_default_resource to ${c.rival}`),
            );
            assert.match(text, /different leader_lease_name and kubernetes_event_token_configmap$/);
          },
        );

        await t.step(
          "each try reads its own lock and each rival kind once, and writes nothing",
          () => {
            const count = (verb: string, kind: LockKind) =>
              server.requestLog.count({ identity: "kevents", verb, resource: RESOURCE[kind] });
            // Tries at 0, 2, ... 60 s on the FakeClock.
            for (const kind of ["lease", "configmap", "endpoints"] as const) {
              assert.equal(count("get", kind), 31, `gets of ${kind}`);
              for (const verb of ["create", "update", "patch", "delete"]) {
                assert.equal(count(verb, kind), 0, `${verb} of ${kind}`);
              }
            }
          },
        );

        await t.step(
          "once the holder releases its lock, kevents leads at its next try",
          async () => {
            rival.stop.abort(new Error("The other election stops"));
            await quiesce(electors);
            await within(rival.done, BOUND_MS, "the other election to stop");
            assert.equal(holderOf(server, c.rival), "", "released");
            const releasedAt = clock.now();
            await advance(clock, electors, KEVENTS.retryPeriodMs);
            assert.ok(kevents.leading, "kevents leads");
            assert.ok(kevents.terms[0]!.startedAt - releasedAt <= KEVENTS.retryPeriodMs);
            assert.equal(holderOf(server, c.own), "kevents-a");
            assert.equal(await metricValue(kevents.metrics!, "kevents_rival_lock_held"), 0);
            const cleared = logs.records.filter((r) => rendered(r).includes("is no longer held"));
            assert.deepEqual(cleared.map(rendered), [
              `${OBJECT[c.rival]} is no longer held by ${c.holder} (released): kevents may lead`,
            ]);
          },
        );
      } finally {
        await stopAll(clock, electors);
      }
    });
  }
});

// ---- a rival that stops renewing expires on kevents' clock ---------------------

Deno.test("a holder that stops renewing keeps kevents away until its record stayed unchanged for the record's lease on kevents' clock", async (t) => {
  await using server = await startFakeApiServer();
  await using agentClient = connect(server, "agent");
  await using client = connect(server, "kevents");
  await using logs = await captureLogs();
  const agentClock = new FakeClock();
  const clock = agentClock.skewed(-3 * 3600_000);
  const start = clock.now();
  const agent = startElector(agentClient, "configmap", AGENT, agentClock, {
    timings: OTHER,
    guarded: false,
  });
  await quiesce([agent]);
  // kevents tries at odd seconds (1, 3, 5 ...), the Agent renews every 3 s from 0.
  await advance(agentClock, [agent], 1_000);
  const kevents = startElector(client, "lease", "kevents-a", clock, {
    timings: KEVENTS,
    guarded: true,
  });
  const electors = [agent, kevents];
  const notLeading = () => assert.equal(kevents.terms.length, 0, `led at ${clock.now() - start}`);
  try {
    await quiesce(electors);

    await t.step("the Agent renews until 30 s, which kevents sees at its try at 31 s", async () => {
      await advance(clock, electors, 30_000, notLeading);
      assert.equal(clock.now() - start, 31_000);
      agent.locks[0]!.cut();
    });

    await t.step("unchanged since 31 s, its 12 s lease keeps kevents away until 43 s", async () => {
      await advance(clock, electors, 11_500, notLeading);
      assert.equal(holderOf(server, "configmap"), AGENT, "the record still names the Agent");
      assert.equal(await metricValue(kevents.metrics!, "kevents_rival_lock_held"), 1);
    });

    await t.step("at 43 s the record has expired on kevents' clock and kevents leads", async () => {
      await advance(clock, electors, 500);
      assert.equal(kevents.terms.length, 1);
      assert.equal(kevents.terms[0]!.startedAt - start, 43_000);
      assert.equal(holderOf(server, "lease"), "kevents-a");
      assert.equal(await metricValue(kevents.metrics!, "kevents_rival_lock_held"), 0);
      const cleared = logs.records.filter((r) => rendered(r).includes("is no longer held"));
      assert.deepEqual(cleared.map(rendered), [
        `${OBJECT.configmap} is no longer held by ${AGENT} (unchanged for its 12 s lease): ` +
        "kevents may lead",
      ]);
      assert.equal(rivalWarnings(logs.records).length, 1);
    });
  } finally {
    await stopAll(clock, electors);
  }
});

// ---- what is not a live rival --------------------------------------------------

Deno.test("a ConfigMap of the lock's name without the leader annotation (the Agent's in Lease mode) does not keep kevents from leading", async () => {
  await using server = await startFakeApiServer();
  await using client = connect(server, "kevents");
  await using logs = await captureLogs();
  server.create("configmaps", NS, { metadata: { name: NAME }, data: {} });
  const clock = new FakeClock();
  const kevents = startElector(client, "lease", "kevents-a", clock, {
    timings: KEVENTS,
    guarded: true,
  });
  try {
    await quiesce([kevents]);
    assert.ok(kevents.leading, "it leads at its first try");
    assert.equal(holderOf(server, "lease"), "kevents-a");
    assert.equal(await metricValue(kevents.metrics!, "kevents_rival_lock_held"), 0);
    assert.deepEqual(rivalWarnings(logs.records), []);
    assert.equal(
      server.requestLog.count({ identity: "kevents", verb: "get", resource: "configmaps" }),
      1,
      "it read the ConfigMap once, before taking its lock",
    );
  } finally {
    await stopAll(clock, [kevents]);
  }
});

Deno.test("a rival record kevents cannot read holds while it keeps changing, and expires once unchanged for kevents' lease", async (t) => {
  await using server = await startFakeApiServer();
  await using other = connect(server, "other");
  await using client = connect(server, "kevents");
  await writeAnnotation(other, "not json 0");
  const clock = new FakeClock();
  const start = clock.now();
  const kevents = startElector(client, "lease", "kevents-a", clock, {
    timings: KEVENTS,
    guarded: true,
  });
  const electors = [kevents];
  const notLeading = () => assert.equal(kevents.terms.length, 0, `led at ${clock.now() - start}`);
  try {
    await quiesce(electors);

    await t.step("rewritten every 4 s until 20 s, it keeps kevents away", async () => {
      for (let k = 1; k <= 5; k++) {
        await advance(clock, electors, 4_000, notLeading);
        await writeAnnotation(other, `not json ${k}`);
      }
    });

    await t.step("seen unchanged from 22 s, it holds for kevents' 8 s lease", async () => {
      await advance(clock, electors, 9_500, notLeading);
    });

    await t.step("at 30 s kevents leads", async () => {
      await advance(clock, electors, 500);
      assert.equal(kevents.terms[0]?.startedAt, start + 30_000);
    });
  } finally {
    await stopAll(clock, electors);
  }
});

// ---- RBAC that refuses the rival kind -----------------------------------------

/** Every verb on Leases and Endpoints; nothing on ConfigMaps. */
const NO_CONFIGMAPS: PolicyRule[] = [
  { verbs: ["*"], apiGroups: ["coordination.k8s.io"], resources: ["leases"] },
  { verbs: ["*"], apiGroups: [""], resources: ["endpoints"] },
];

Deno.test("a 403 on reading a rival kind does not keep kevents from leading: it is warned of once and counted", async (t) => {
  await using server = await startFakeApiServer();
  await using agentClient = connect(server, "agent");
  await using client = connect(server, "kevents", NO_CONFIGMAPS);
  await using logs = await captureLogs();
  const clock = new FakeClock();
  const agent = startElector(agentClient, "configmap", AGENT, clock, {
    timings: OTHER,
    guarded: false,
  });
  await quiesce([agent]);
  const kevents = startElector(client, "lease", "kevents-a", clock, {
    timings: KEVENTS,
    guarded: true,
  });
  const electors = [agent, kevents];
  const forbidden = `Cannot read ${OBJECT.configmap} to check that no other leader election`;
  try {
    await quiesce(electors);

    await t.step("kevents, which may not read the ConfigMap, leads at its first try", async () => {
      assert.ok(kevents.leading);
      assert.equal(holderOf(server, "lease"), "kevents-a");
      assert.equal(await metricValue(kevents.metrics!, "kevents_rival_lock_held"), 0);
    });

    await t.step("one warning names the ConfigMap, the refusal and the grant to add", () => {
      const warnings = logs.records.filter((r) => rendered(r).startsWith(forbidden));
      assert.equal(warnings.length, 1);
      const text = rendered(warnings[0]!);
      assert.match(text, /403 Forbidden: .*cannot get resource "configmaps"/);
      assert.match(text, /kevents leads without that check; grant get on it/);
    });

    await t.step("every refused read counts; none warns again", async () => {
      const signal = new AbortController().signal;
      for (let i = 0; i < 3; i++) assert.equal(await kevents.guard!.mayAcquire(signal), true);
      assert.equal(logs.records.filter((r) => rendered(r).startsWith(forbidden)).length, 1);
      assert.equal(
        await metricValue(kevents.metrics!, 'kevents_rival_lock_forbidden_total{kind="configmap"}'),
        4,
      );
    });
  } finally {
    await stopAll(clock, electors);
  }
});

// ---- the wiring: runCollector guards its election -------------------------------

Deno.test("runCollector consults the guard: beside a live ConfigMap holder it stays a follower, then leads once it is released", async (t) => {
  await using server = await startFakeApiServer();
  await using agentClient = connect(server, "agent");
  await using client = connect(server, "kevents");
  await using logs = await captureLogs();
  // The other election on the system clock: 8 s lease, renewed every 2 s.
  const agentStop = new AbortController();
  const agentDone = runElector({
    lock: new AnnotationLock(agentClient, { kind: "configmap", namespace: NS, name: NAME }),
    identity: AGENT,
    timings: { ...KEVENTS },
    lead: (term) =>
      new Promise((resolve) => term.signal.addEventListener("abort", () => resolve())),
  }, agentStop.signal);
  const metrics = new Metrics();
  const stop = new AbortController();
  let done: Promise<void> | undefined;
  const guardReads = () =>
    server.requestLog.count({ identity: "kevents", verb: "get", resource: "configmaps" });
  try {
    await eventually(() => holderOf(server, "configmap") === AGENT, "the Agent to lead");
    const config = parseConfig({
      env: { DD_COLLECT_KUBERNETES_EVENTS: "true", KEVENTS_LEASE_DURATION_MS: "4000" },
    });
    assert.equal(config.leaderElectionResource, "lease");
    done = runCollector(
      { client, config, identity: "kevents-wired", sinks: [new NullSink()], metrics },
      stop.signal,
    );

    await t.step("over three tries it reads the ConfigMap and leaves its Lease alone", async () => {
      await eventually(() => guardReads() >= 3, "three tries");
      assert.equal(server.get(RESOURCE.lease, NS, NAME), undefined, "no Lease");
      assert.equal(await metricValue(metrics, "kevents_rival_lock_held"), 1);
      assert.equal(await metricValue(metrics, "kevents_leader"), 0);
      assert.equal(rivalWarnings(logs.records).length, 1);
    });

    await t.step("the Agent stops and releases: kevents leads", async () => {
      agentStop.abort(new Error("The Agent stops"));
      await within(agentDone, BOUND_MS, "the Agent to stop");
      await eventually(() => holderOf(server, "lease") === "kevents-wired", "kevents to lead");
      assert.equal(await metricValue(metrics, "kevents_rival_lock_held"), 0);
    });
  } finally {
    agentStop.abort(new Error("Test over"));
    stop.abort(new Error("Test over"));
    await within(Promise.all([agentDone, done]), BOUND_MS, "the electors to stop");
  }
});
