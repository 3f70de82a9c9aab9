/**
 * Specification of the ConfigMap and Endpoints locks: the leader annotation
 * in client-go's format, compare-and-swap updates, and kevents' elector
 * sharing the object with another elector and with itself. Everything goes
 * through the fake API server over the network; where time matters the
 * electors run on a FakeClock, and the test moves it only once every lock
 * request in flight has been answered.
 */

import { captureLogs } from "../_logs.ts";
import { TrackedLock } from "../_tracked_lock.ts";
import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import {
  AnnotationLock,
  type AnnotationLockKind,
  type AnnotationLockOptions,
  decodeRecord,
  encodeRecord,
  LEADER_ANNOTATION,
  LockRecordError,
  metaTime,
} from "../../lib/election/annotation_lock.ts";
import { type ElectionTimings, runElector, type Term } from "../../lib/election/elector.ts";
import { AlreadyExistsError, ConflictError } from "../../lib/kube/errors.ts";
import {
  type FakeApiServer,
  type KubeObject,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { CONFIGMAPS, ENDPOINTS, KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { microTime } from "../../lib/election/lease_lock.ts";
import { type LeaderElectionRecord, UNREADABLE_HOLDER } from "../../lib/election/lock.ts";
import { FakeClock, settle } from "../_fake_clock.ts";
import { within } from "../_fake_api.ts";

const NS = "default";
const NAME = "datadog-leader-election";
const KINDS: readonly AnnotationLockKind[] = ["configmap", "endpoints"];
const RESOURCE: Record<AnnotationLockKind, string> = {
  configmap: "configmaps",
  endpoints: "endpoints",
};
/** metav1.Time as client-go writes it. */
const META_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
/** client-go's LeaderElectionRecord JSON fields, in its order. */
const CLIENT_GO_FIELDS = [
  "holderIdentity",
  "leaseDurationSeconds",
  "acquireTime",
  "renewTime",
  "leaderTransitions",
];
const BOUND_MS = 20_000;

/** A log record's message with its properties filled in. */
function renderMessage(record: LogRecord): string {
  return record.message.map((part) => typeof part === "string" ? part : String(part)).join("");
}

/** A client of the fake server as `user` (created if new), closed on dispose. */
function connect(server: FakeApiServer, user = "admin"): KubeClient & AsyncDisposable {
  if (user !== "admin") server.addUser(user);
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig({ user }));
  const client = new KubeClient(kc);
  return Object.assign(client, { [Symbol.asyncDispose]: () => client.close() });
}

/** The lock object as the server holds it. */
function objectOf(server: FakeApiServer, kind: AnnotationLockKind): KubeObject | undefined {
  return server.get(RESOURCE[kind], NS, NAME);
}

/** The leader annotation's text, as the server holds it. */
function annotationOf(server: FakeApiServer, kind: AnnotationLockKind): string | undefined {
  return objectOf(server, kind)?.metadata.annotations?.[LEADER_ANNOTATION];
}

/** The annotation parsed as plain JSON, as another elector would read it. */
function recordOf(server: FakeApiServer, kind: AnnotationLockKind): Record<string, unknown> {
  const text = annotationOf(server, kind);
  assert.ok(text !== undefined, `the ${kind} has the leader annotation`);
  return JSON.parse(text);
}

/** Asserts `text` is exactly what client-go's json.Marshal would write for it. */
function assertClientGoRecord(text: string): void {
  const parsed = JSON.parse(text) as Record<string, unknown>;
  assert.deepEqual(Object.keys(parsed), CLIENT_GO_FIELDS);
  assert.equal(typeof parsed.holderIdentity, "string");
  assert.ok(Number.isInteger(parsed.leaseDurationSeconds));
  assert.ok(Number.isInteger(parsed.leaderTransitions));
  for (const field of ["acquireTime", "renewTime"]) {
    const time = parsed[field];
    assert.ok(
      time === null || (typeof time === "string" && META_TIME.test(time)),
      `${field}: ${time}`,
    );
  }
  // Re-marshalled, it is the same text: nothing another elector would drop or reorder.
  assert.equal(JSON.stringify(parsed), text);
}

const START = Date.UTC(2026, 10, 21, 20, 3, 4) + 123;

/**
 * What the Kubernetes Python client's elector (`kubernetes.leaderelection`,
 * ConfigMapLock, as Debian's python3-kubernetes 22.6 ships it) writes, as
 * seen on the server (tests/election/python_elector_test.ts): its spacing, the lease
 * as a string, str(datetime) times, no leaderTransitions.
 */
const PYTHON_RECORD = '{"holderIdentity": "py-a", "leaseDurationSeconds": "4", ' +
  '"acquireTime": "2026-12-03 05:26:53.984106", "renewTime": "2026-12-03 05:26:54.088544"}';

function record(fields: Partial<LeaderElectionRecord> = {}): LeaderElectionRecord {
  return {
    holderIdentity: "pod-a",
    leaseDurationSeconds: 60,
    acquireTime: microTime(START),
    renewTime: microTime(START + 2500),
    leaderTransitions: 2,
    ...fields,
  };
}

// ---- the record -------------------------------------------------------------

Deno.test("the annotation holds client-go's record: its fields, its order, metav1.Time times", async (t) => {
  await t.step("MicroTime becomes RFC 3339 in whole seconds, in UTC; offsets are converted", () => {
    assert.equal(metaTime("2026-11-21T20:03:04.123000Z"), "2026-11-21T20:03:04Z");
    assert.equal(metaTime("2026-11-21T20:03:04.999999Z"), "2026-11-21T20:03:04Z");
    assert.equal(metaTime("2026-11-21T20:03:04Z"), "2026-11-21T20:03:04Z");
    assert.equal(metaTime("2026-11-21T22:03:04.5+02:00"), "2026-11-21T20:03:04Z");
    assert.equal(metaTime("2026-12-31T23:30:00-01:00"), "2027-01-01T00:30:00Z");
    assert.equal(metaTime(""), null);
  });

  await t.step(
    "Python's times are read as UTC, or with their zone, and written as metav1.Time",
    () => {
      assert.equal(metaTime("2026-12-03 02:05:11.123456"), "2026-12-03T02:05:11Z");
      assert.equal(metaTime("2026-12-03 02:05:11"), "2026-12-03T02:05:11Z");
      assert.equal(metaTime("2026-12-03 03:05:11.5+01:00"), "2026-12-03T02:05:11Z");
      assert.equal(metaTime("2026-12-03 02:05:11Z"), "2026-12-03T02:05:11Z");
    },
  );

  await t.step("a time that is not one of those is refused rather than written", () => {
    for (
      const bad of [
        "2026-11-21T20:03:04",
        "2026-02-30T00:00:00Z",
        "2026-11-21T24:00:00Z",
        "2026-11-21 20:03",
        "now",
      ]
    ) {
      assert.throws(() => metaTime(bad), RangeError, bad);
    }
  });

  await t.step("encodeRecord writes exactly client-go's fields, in its order", () => {
    const text = encodeRecord(record());
    assertClientGoRecord(text);
    assert.equal(
      text,
      '{"holderIdentity":"pod-a","leaseDurationSeconds":60,"acquireTime":"2026-11-21T20:03:04Z",' +
        '"renewTime":"2026-11-21T20:03:06Z","leaderTransitions":2}',
    );
  });

  await t.step("an unset time is null, as Go writes a zero metav1.Time", () => {
    const text = encodeRecord(record({ holderIdentity: "", acquireTime: "", renewTime: "" }));
    assertClientGoRecord(text);
    assert.deepEqual(JSON.parse(text), {
      holderIdentity: "",
      leaseDurationSeconds: 60,
      acquireTime: null,
      renewTime: null,
      leaderTransitions: 2,
    });
  });

  await t.step("decodeRecord reads both time formats and hands them on as written", () => {
    const goWritten = '{"holderIdentity":"other","leaseDurationSeconds":15,' +
      '"acquireTime":"2026-11-21T20:03:04Z","renewTime":"2026-11-21T21:03:04+01:00",' +
      '"leaderTransitions":7}';
    assert.deepEqual(decodeRecord(goWritten), {
      holderIdentity: "other",
      leaseDurationSeconds: 15,
      acquireTime: "2026-11-21T20:03:04Z",
      renewTime: "2026-11-21T21:03:04+01:00",
      leaderTransitions: 7,
    });
    const micro = decodeRecord(JSON.stringify({ ...record(), renewTime: microTime(START) }));
    assert.equal(micro.renewTime, "2026-11-21T20:03:04.123000Z");
  });

  await t.step(
    "as json.Unmarshal: missing fields and nulls are zero, unknown fields ignored",
    () => {
      assert.deepEqual(
        decodeRecord(
          '{"holderIdentity":"x","leaseDurationSeconds":15,"renewTime":null,"strategy":"y"}',
        ),
        {
          holderIdentity: "x",
          leaseDurationSeconds: 15,
          acquireTime: "",
          renewTime: "",
          leaderTransitions: 0,
        },
      );
      assert.deepEqual(decodeRecord('{"holderIdentity":""}'), {
        holderIdentity: "",
        leaseDurationSeconds: 0,
        acquireTime: "",
        renewTime: "",
        leaderTransitions: 0,
      }, "a released record needs no lease");
    },
  );

  await t.step("the Python elector's record is read: string lease, Python times", () => {
    assert.deepEqual(decodeRecord(PYTHON_RECORD), {
      holderIdentity: "py-a",
      leaseDurationSeconds: 4,
      acquireTime: "2026-12-03 05:26:53.984106",
      renewTime: "2026-12-03 05:26:54.088544",
      leaderTransitions: 0,
    });
    assert.deepEqual(
      decodeRecord(
        '{"holderIdentity":"x","leaseDurationSeconds":"7.5","leaderTransitions":"3",' +
          '"renewTime":"2026-12-03 02:05:14+00:00"}',
      ),
      {
        holderIdentity: "x",
        leaseDurationSeconds: 8,
        acquireTime: "",
        renewTime: "2026-12-03 02:05:14+00:00",
        leaderTransitions: 3,
      },
      "a fractional lease is rounded up to whole seconds",
    );
  });

  await t.step("what is not a record is a LockRecordError carrying the annotation", () => {
    const cases: [string, RegExp][] = [
      ["not json", /is not JSON/],
      ["[]", /is not a JSON object/],
      ["{}", /holderIdentity is missing/],
      ['{"leaseDurationSeconds":"15"}', /holderIdentity is missing/],
      ['{"holderIdentity":3}', /holderIdentity 3 must be a string/],
      ['{"holderIdentity":"x"}', /leaseDurationSeconds is missing/],
      ['{"holderIdentity":"x","leaseDurationSeconds":"fifteen"}', /must be a number of seconds/],
      ['{"holderIdentity":"x","leaseDurationSeconds":-1}', /must be a number of seconds/],
      ['{"holderIdentity":"x","leaseDurationSeconds":true}', /must be a number of seconds/],
      ['{"holderIdentity":"","leaderTransitions":true}', /leaderTransitions true must be/],
      ['{"holderIdentity":"","leaderTransitions":"1.5"}', /leaderTransitions "1.5" must be/],
      ['{"holderIdentity":"","renewTime":"yesterday"}', /renewTime "yesterday" must be/],
      ['{"holderIdentity":"","renewTime":"2026-11-21T20:03:04"}', /renewTime .* must be/],
      ['{"holderIdentity":"","acquireTime":1764727511}', /acquireTime 1764727511 must be/],
    ];
    for (const [text, problem] of cases) {
      assert.throws(() => decodeRecord(text), (e) => {
        assert.ok(e instanceof LockRecordError, `${text}: ${e}`);
        assert.equal(e.annotation, text);
        assert.match(e.message, /^Cannot read the election record: /);
        assert.match(e.message, problem, text);
        return true;
      });
    }
  });
});

// ---- the lock against the API server ------------------------------------------

Deno.test("an annotation lock creates, reads and updates its object", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await using server = await startFakeApiServer();
      await using client = connect(server);
      const lock = new AnnotationLock(client, { kind, namespace: NS, name: NAME });

      await t.step("describe names the resource, namespace and name", () => {
        assert.equal(lock.describe(), `${RESOURCE[kind]} ${NS}/${NAME}`);
      });

      await t.step("a missing object reads as undefined", async () => {
        assert.equal(await lock.get(), undefined);
      });

      await t.step("create makes an object holding only the annotation", async () => {
        await lock.create(record());
        // As a client reads it back, kind included.
        const obj = await client.get<KubeObject>(
          kind === "configmap" ? CONFIGMAPS : ENDPOINTS,
          NS,
          NAME,
        );
        assert.equal(obj.kind, kind === "configmap" ? "ConfigMap" : "Endpoints");
        assert.deepEqual(Object.keys(obj.metadata.annotations ?? {}), [LEADER_ANNOTATION]);
        assert.equal(obj.data, undefined, "a ConfigMap without data");
        assert.equal(obj.subsets, undefined, "an Endpoints object without subsets");
        assertClientGoRecord(annotationOf(server, kind)!);
        assert.equal(recordOf(server, kind).acquireTime, "2026-11-21T20:03:04Z");
      });

      await t.step("a second create is AlreadyExistsError", async () => {
        const other = new AnnotationLock(client, { kind, namespace: NS, name: NAME });
        await assert.rejects(other.create(record({ holderIdentity: "pod-b" })), AlreadyExistsError);
      });

      await t.step("get reads the record back with the times as written", async () => {
        assert.deepEqual(await lock.get(), {
          ...record(),
          acquireTime: "2026-11-21T20:03:04Z",
          renewTime: "2026-11-21T20:03:06Z",
        });
      });

      await t.step("update replaces the annotation and bumps the resourceVersion", async () => {
        const before = objectOf(server, kind)!.metadata.resourceVersion;
        await lock.update(record({ renewTime: microTime(START + 10_000), leaderTransitions: 3 }));
        const after = objectOf(server, kind)!;
        assert.notEqual(after.metadata.resourceVersion, before);
        assert.deepEqual(recordOf(server, kind), {
          holderIdentity: "pod-a",
          leaseDurationSeconds: 60,
          acquireTime: "2026-11-21T20:03:04Z",
          renewTime: "2026-11-21T20:03:14Z",
          leaderTransitions: 3,
        });
        // The lock's next write follows its own: no re-read needed.
        await lock.update(record({ holderIdentity: "", leaseDurationSeconds: 1 }));
        assert.equal(recordOf(server, kind).holderIdentity, "");
      });
    });
  }
});

Deno.test("an update keeps the object's other annotations, labels and contents", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async () => {
      await using server = await startFakeApiServer();
      await using client = connect(server);
      server.create(RESOURCE[kind], NS, {
        metadata: { name: NAME, labels: { app: "x" }, annotations: { "team": "platform" } },
        ...(kind === "configmap" ? { data: { note: "kept" } } : {}),
      });
      const lock = new AnnotationLock(client, { kind, namespace: NS, name: NAME });
      assert.deepEqual(await lock.get(), {
        holderIdentity: "",
        leaseDurationSeconds: 0,
        acquireTime: "",
        renewTime: "",
        leaderTransitions: 0,
      }, "an object without the annotation reads as a released lock");
      await lock.update(record());
      const obj = objectOf(server, kind)!;
      assert.equal(obj.metadata.annotations?.team, "platform");
      assert.equal(obj.metadata.labels?.app, "x");
      if (kind === "configmap") assert.deepEqual(obj.data, { note: "kept" });
      assert.equal(recordOf(server, kind).holderIdentity, "pod-a");
    });
  }
});

Deno.test("a stale update is a ConflictError and changes nothing", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async () => {
      await using server = await startFakeApiServer();
      await using client = connect(server);
      const a = new AnnotationLock(client, { kind, namespace: NS, name: NAME });
      const b = new AnnotationLock(client, { kind, namespace: NS, name: NAME });
      await a.create(record({ holderIdentity: "a" }));
      assert.equal((await a.get())?.holderIdentity, "a");
      assert.equal((await b.get())?.holderIdentity, "a");
      await a.update(record({ holderIdentity: "a", leaderTransitions: 5 }));
      const written = annotationOf(server, kind);
      await assert.rejects(b.update(record({ holderIdentity: "b" })), ConflictError);
      assert.equal(annotationOf(server, kind), written);
      // Read again, b's compare-and-swap goes through.
      await b.get();
      await b.update(record({ holderIdentity: "b" }));
      assert.equal(recordOf(server, kind).holderIdentity, "b");
    });
  }
});

Deno.test("an annotation kevents cannot read reads as held by what can be read of it, never as free", async (t) => {
  await using server = await startFakeApiServer();
  await using client = connect(server);
  await using writer = connect(server, "writer");
  const lock = new AnnotationLock(client, {
    kind: "configmap",
    namespace: NS,
    name: NAME,
    unreadableLeaseSeconds: 10,
  });
  server.create("configmaps", NS, {
    metadata: { name: NAME, annotations: { [LEADER_ANNOTATION]: "{broken" } },
  });

  await t.step(
    "get gives a stand-in: the marker holder, the option's lease, the text",
    async () => {
      assert.deepEqual(await lock.get(), {
        holderIdentity: UNREADABLE_HOLDER,
        leaseDurationSeconds: 10,
        acquireTime: "",
        renewTime: "{broken",
        leaderTransitions: 0,
      });
      assert.match(lock.problem!, /^Cannot read the election record: .* is not JSON$/);
    },
  );

  await t.step("the holder and transitions are kept when they can be read", async () => {
    const text = '{"holderIdentity":"other","leaseDurationSeconds":"soon","leaderTransitions":4}';
    await writeAnnotation(writer, "configmap", text);
    assert.deepEqual(await lock.get(), {
      holderIdentity: "other",
      leaseDurationSeconds: 10,
      acquireTime: "",
      renewTime: text,
      leaderTransitions: 4,
    });
    assert.match(lock.problem!, /leaseDurationSeconds "soon" must be a number of seconds/);
  });

  await t.step("the watch reports the same stand-in and goes on watching", async () => {
    const stop = new AbortController();
    const changes = lock.watch({ signal: stop.signal })[Symbol.asyncIterator]();
    try {
      await writeAnnotation(writer, "configmap", "not json");
      const first = await within(changes.next(), BOUND_MS, "the watch to report a change");
      assert.deepEqual(first.value, {
        holderIdentity: UNREADABLE_HOLDER,
        leaseDurationSeconds: 10,
        acquireTime: "",
        renewTime: "not json",
        leaderTransitions: 0,
      });
      await writeAnnotation(writer, "configmap", PYTHON_RECORD);
      const second = await within(changes.next(), BOUND_MS, "the watch to report a change");
      assert.equal(second.value?.holderIdentity, "py-a");
      assert.equal(second.value?.leaseDurationSeconds, 4);
    } finally {
      stop.abort(new Error("Test over"));
      await changes.return?.();
    }
  });

  await t.step("an update writes a proper record over it, compare-and-swap", async () => {
    await writeAnnotation(writer, "configmap", "not json again");
    assert.equal((await lock.get())?.renewTime, "not json again");
    assert.match(lock.problem!, /is not JSON/);
    await lock.update(record({ holderIdentity: "kevents-a", leaderTransitions: 1 }));
    assertClientGoRecord(annotationOf(server, "configmap")!);
    assert.equal(recordOf(server, "configmap").holderIdentity, "kevents-a");
    assert.equal((await lock.get())?.holderIdentity, "kevents-a");
    assert.equal(lock.problem, undefined);
    await writeAnnotation(writer, "configmap", "not json");
    await assert.rejects(lock.update(record({ holderIdentity: "kevents-a" })), ConflictError);
  });

  await t.step("an empty annotation, as a missing one, is a released lock", async () => {
    await writeAnnotation(writer, "configmap", "");
    assert.deepEqual(await lock.get(), {
      holderIdentity: "",
      leaseDurationSeconds: 0,
      acquireTime: "",
      renewTime: "",
      leaderTransitions: 0,
    });
    assert.equal(lock.problem, undefined);
  });
});

Deno.test("update before any get or create is refused without a request", async () => {
  await using server = await startFakeApiServer();
  await using client = connect(server);
  const lock = new AnnotationLock(client, { kind: "endpoints", namespace: NS, name: NAME });
  await assert.rejects(lock.update(record()), /Cannot update the Endpoints before reading it/);
  assert.equal(server.requestLog.count({ verb: "update" }), 0);
});

// ---- electors on a FakeClock ----------------------------------------------------

/** One elector on the fake server: its lock, and the terms its work saw. */
interface Elector {
  identity: string;
  lock: TrackedLock;
  stop: AbortController;
  done: Promise<void>;
  /** Every term, with the FakeClock times it started and ended. */
  terms: { startedAt: number; endedAt?: number }[];
  readonly leading: boolean;
}

const TIMINGS: ElectionTimings = {
  leaseDurationMs: 8_000,
  renewDeadlineMs: 4_000,
  retryPeriodMs: 2_000,
  requestTimeoutMs: 1_000,
};

function startElector(
  client: KubeClient,
  kind: AnnotationLockKind,
  identity: string,
  clock: FakeClock,
  lockOptions: Pick<AnnotationLockOptions, "unreadableLeaseSeconds"> = {},
): Elector {
  const lock = new TrackedLock(
    new AnnotationLock(client, { kind, namespace: NS, name: NAME, ...lockOptions }),
  );
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
  const done = runElector(
    { lock, identity, timings: TIMINGS, lead, clock, random: () => 0 },
    stop.signal,
  );
  return {
    identity,
    lock,
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
    const pending = electors.flatMap((e) => [...e.lock.inFlight]);
    if (pending.length === 0) return;
    await within(Promise.allSettled(pending), BOUND_MS, "the lock requests in flight");
  }
}

/** Moves the clock `ms` on in steps of `stepMs`, answering every request before the next step. */
async function advance(
  clock: FakeClock,
  electors: readonly Elector[],
  ms: number,
  stepMs = 500,
  check: () => void = () => {},
): Promise<void> {
  for (let moved = 0; moved < ms; moved += stepMs) {
    await clock.advance(Math.min(stepMs, ms - moved));
    await quiesce(electors);
    check();
  }
}

/** Asserts no two electors' terms overlap in time. */
function assertOneLeaderAtATime(electors: readonly Elector[]): void {
  const terms = electors.flatMap((e) =>
    e.terms.map((t) => ({ who: e.identity, from: t.startedAt, to: t.endedAt ?? Infinity }))
  );
  for (const x of terms) {
    for (const y of terms) {
      if (x.who === y.who) continue;
      assert.ok(
        x.to <= y.from || y.to <= x.from,
        `${x.who} led [${x.from}, ${x.to}) while ${y.who} led [${y.from}, ${y.to})`,
      );
    }
  }
  assert.ok(electors.filter((e) => e.leading).length <= 1, "at most one leads now");
}

/** Writes the leader annotation as another client would, through the API: `text` as it is. */
async function writeAnnotation(
  client: KubeClient,
  kind: AnnotationLockKind,
  text: string,
): Promise<void> {
  const ref = kind === "configmap" ? CONFIGMAPS : ENDPOINTS;
  const obj = await client.get<KubeObject>(ref, NS, NAME).catch(() => undefined);
  if (obj === undefined) {
    await client.create(ref, NS, {
      apiVersion: "v1",
      kind: kind === "configmap" ? "ConfigMap" : "Endpoints",
      metadata: { name: NAME, namespace: NS, annotations: { [LEADER_ANNOTATION]: text } },
    });
    return;
  }
  obj.metadata.annotations = { ...obj.metadata.annotations, [LEADER_ANNOTATION]: text };
  await client.replace(ref, NS, NAME, obj);
}

/** Writes the annotation as another elector would: by hand, RFC 3339 times, through the API. */
async function writeOtherRecord(
  client: KubeClient,
  kind: AnnotationLockKind,
  fields: { renewTime: string; leaderTransitions: number },
): Promise<void> {
  await writeAnnotation(
    client,
    kind,
    `{"holderIdentity":"other","leaseDurationSeconds":10,` +
      `"acquireTime":"2026-11-21T20:00:00Z","renewTime":"${fields.renewTime}",` +
      `"leaderTransitions":${fields.leaderTransitions}}`,
  );
}

Deno.test("another elector's record is respected until it expires on kevents' clock, then taken", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await using server = await startFakeApiServer();
      await using other = connect(server, "other");
      await using client = connect(server, "kevents");
      // Renewed "now" by the other elector's clock; kevents' clock reads a
      // different day entirely: only how long the record stays unchanged counts.
      const now = new Date();
      now.setUTCMilliseconds(0);
      await writeOtherRecord(other, kind, {
        renewTime: metaTime(now.toISOString())!,
        leaderTransitions: 4,
      });
      const clock = new FakeClock();
      const elector = startElector(client, kind, "kevents-a", clock);
      const electors = [elector];
      try {
        await quiesce(electors);

        await t.step("it reads the record and leaves it alone for the record's 10 s", async () => {
          await advance(clock, electors, 8_000, 500, () => {
            assert.equal(recordOf(server, kind).holderIdentity, "other");
            assert.equal(elector.terms.length, 0);
          });
        });

        await t.step("a renewal by the other elector starts its 10 s again", async () => {
          await writeOtherRecord(other, kind, {
            renewTime: metaTime(new Date(now.getTime() + 8_000).toISOString())!,
            leaderTransitions: 4,
          });
          // kevents sees the change at its poll at 10 s and counts from there: until 20 s.
          await advance(clock, electors, 11_500, 500, () => {
            assert.equal(recordOf(server, kind).holderIdentity, "other");
            assert.equal(elector.terms.length, 0);
          });
        });

        await t.step("at 20 s the unchanged record has expired and kevents takes it", async () => {
          await advance(clock, electors, 500);
          assert.equal(clock.now() - Date.UTC(2026, 0, 1), 20_000);
          assert.equal(elector.terms.length, 1);
          const taken = recordOf(server, kind);
          assertClientGoRecord(annotationOf(server, kind)!);
          assert.equal(taken.holderIdentity, "kevents-a");
          assert.equal(taken.leaderTransitions, 5);
          assert.equal(taken.leaseDurationSeconds, 8);
          assert.equal(taken.renewTime, "2026-01-01T00:00:20Z");
        });
      } finally {
        elector.stop.abort(new Error("Test over"));
        await quiesce(electors);
        await within(elector.done, BOUND_MS, "the elector to stop");
      }
    });
  }
});

Deno.test("kevents electors on one annotation lock never lead at once", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await using server = await startFakeApiServer();
      await using clientA = connect(server, "a");
      await using clientB = connect(server, "b");
      await using clientC = connect(server, "c");
      const clock = new FakeClock();
      const electors = [startElector(clientA, kind, "a", clock)];
      electors.push(startElector(clientB, kind, "b", clock));
      const check = () => assertOneLeaderAtATime(electors);
      const leaderNow = () => {
        const leading = electors.filter((e) => e.leading);
        assert.equal(leading.length, 1, "exactly one leads");
        return leading[0]!;
      };
      try {
        await t.step("both race to create the lock; exactly one leads", async () => {
          await quiesce(electors);
          check();
          assert.equal(recordOf(server, kind).holderIdentity, leaderNow().identity);
        });

        await t.step(
          "the leader renews every retry period; the other never takes over",
          async () => {
            const leader = leaderNow();
            const version = () => objectOf(server, kind)!.metadata.resourceVersion;
            const versions = new Set([version()]);
            await advance(clock, electors, 20_000, 500, () => {
              check();
              versions.add(version());
            });
            assert.equal(leaderNow(), leader);
            assert.deepEqual(electors.map((e) => e.terms.length).sort(), [0, 1]);
            // One write every 2 s, each a different record even with whole-second times.
            assert.equal(versions.size, 11);
          },
        );

        await t.step(
          "a leader that stops releases the lock; the other takes it at its next retry",
          async () => {
            const stopped = leaderNow();
            const other = electors.find((e) => e !== stopped)!;
            stopped.stop.abort(new Error("Stopping"));
            await quiesce(electors);
            await within(stopped.done, BOUND_MS, "the stopped elector to settle");
            assert.equal(recordOf(server, kind).holderIdentity, "");
            const releasedAt = clock.now();
            await advance(clock, electors, TIMINGS.retryPeriodMs, 500, check);
            assert.equal(leaderNow(), other);
            assert.ok(other.terms[0]!.startedAt - releasedAt <= TIMINGS.retryPeriodMs);
            assert.equal(recordOf(server, kind).holderIdentity, other.identity);
            assert.equal(recordOf(server, kind).leaderTransitions, 1);
          },
        );

        await t.step(
          "a leader cut off from the API server stops before a new one takes over",
          async () => {
            const cut = leaderNow();
            const newcomer = startElector(clientC, kind, "c", clock);
            electors.push(newcomer);
            await quiesce(electors);
            await advance(clock, electors, 1_000, 500, check);
            cut.lock.cut();
            await advance(clock, electors, 12_000, 500, check);
            assert.equal(leaderNow(), newcomer);
            const ended = cut.terms.at(-1)!.endedAt!;
            const started = newcomer.terms[0]!.startedAt;
            assert.ok(
              started - ended >= TIMINGS.leaseDurationMs - TIMINGS.renewDeadlineMs,
              `the old term ended at ${ended}, the new one started at ${started}`,
            );
            assert.equal(recordOf(server, kind).holderIdentity, "c");
            assert.equal(recordOf(server, kind).leaderTransitions, 2);
          },
        );
      } finally {
        for (const e of electors) e.stop.abort(new Error("Test over"));
        await quiesce(electors);
        // A cut-off elector's last request is abandoned on its own clock.
        await clock.advance(TIMINGS.requestTimeoutMs);
        await quiesce(electors);
        await within(Promise.all(electors.map((e) => e.done)), BOUND_MS, "the electors to stop");
      }
    });
  }
});

// ---- records other clients wrote ------------------------------------------------

/**
 * A record another client keeps rewriting (`text(k)` at its k-th write,
 * every 4 s for 20 s), then leaves alone: kevents must leave it alone while
 * it changes, and take it over exactly `leaseMs` after it last saw it
 * change (its poll at 22 s), writing its own record in client-go's format.
 */
async function heldWhileChangingThenTaken(
  t: Deno.TestContext,
  kind: AnnotationLockKind,
  options: { text: (k: number) => string; leaseMs: number; unreadableLeaseSeconds?: number },
): Promise<void> {
  await using server = await startFakeApiServer();
  await using other = connect(server, "other");
  await using client = connect(server, "kevents");
  await writeAnnotation(other, kind, options.text(0));
  const clock = new FakeClock();
  const start = clock.now();
  const elector = startElector(client, kind, "kevents-a", clock, {
    unreadableLeaseSeconds: options.unreadableLeaseSeconds,
  });
  const electors = [elector];
  const untouched = () => {
    assert.equal(elector.terms.length, 0, `taken at ${clock.now() - start} ms`);
    assert.equal(annotationOf(server, kind), written);
  };
  let written = options.text(0);
  try {
    await quiesce(electors);

    await t.step("while the record keeps changing, kevents leaves it alone", async () => {
      for (let k = 1; k <= 5; k++) {
        await advance(clock, electors, 4_000, 500, untouched);
        written = options.text(k);
        await writeAnnotation(other, kind, written);
      }
    });

    await t.step("unchanged since kevents' poll at 22 s, it is left alone until then", async () => {
      await advance(clock, electors, 2_000 + options.leaseMs - 500, 500, untouched);
    });

    await t.step("at 22 s plus the lease it has expired and kevents takes it", async () => {
      await advance(clock, electors, 500);
      assert.equal(clock.now() - start, 22_000 + options.leaseMs);
      assert.equal(elector.terms.length, 1);
      assertClientGoRecord(annotationOf(server, kind)!);
      const taken = recordOf(server, kind);
      assert.equal(taken.holderIdentity, "kevents-a");
      assert.equal(taken.leaseDurationSeconds, TIMINGS.leaseDurationMs / 1000);
      assert.equal(taken.renewTime, new Date(clock.now()).toISOString().replace(".000", ""));
    });
  } finally {
    elector.stop.abort(new Error("Test over"));
    await quiesce(electors);
    await within(elector.done, BOUND_MS, "the elector to stop");
  }
}

/** The Python elector's record, with its k-th renewal time (seconds 11, 15, 19, ...). */
function pythonRecord(k: number): string {
  return '{"holderIdentity": "py-a", "leaseDurationSeconds": "10", ' +
    `"acquireTime": "2026-12-03 02:05:11.123456", "renewTime": "2026-12-03 02:05:${
      11 + 4 * k
    }.177015"}`;
}

Deno.test("a Python elector's record (string lease, Python times) is respected while renewed, then taken after its lease", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await heldWhileChangingThenTaken(t, kind, { text: pythonRecord, leaseMs: 10_000 });
    });
  }
});

Deno.test("an annotation kevents cannot read is left alone while it changes, and taken once unchanged for unreadableLeaseSeconds", async (t) => {
  for (const kind of KINDS) {
    await t.step(kind, async (t) => {
      await heldWhileChangingThenTaken(t, kind, {
        text: (k) => `not json ${k}`,
        leaseMs: 12_000,
        unreadableLeaseSeconds: 12,
      });
    });
  }
});

Deno.test("an unreadable record is warned of once per distinct text, not once per retry", async (t) => {
  await using server = await startFakeApiServer();
  await using other = connect(server, "other");
  await using client = connect(server, "kevents");
  await using logs = await captureLogs();
  await writeAnnotation(other, "configmap", "not json");
  const clock = new FakeClock();
  const elector = startElector(client, "configmap", "kevents-a", clock, {
    unreadableLeaseSeconds: 60,
  });
  const electors = [elector];
  const lockWarnings = () =>
    logs.records.filter((r) => r.level === "warning" && r.category.join(".") === "kevents.lock");
  try {
    await quiesce(electors);

    await t.step("five retries over one text: one warning, saying what and when", async () => {
      await advance(clock, electors, 5 * TIMINGS.retryPeriodMs);
      assert.ok(server.requestLog.count({ identity: "kevents", verb: "get" }) >= 6);
      const warnings = lockWarnings();
      assert.equal(warnings.length, 1);
      assert.deepEqual(warnings[0]!.properties, {
        lock: `configmaps ${NS}/${NAME}`,
        problem: `the ${LEADER_ANNOTATION} annotation is not JSON`,
        record: "not json",
        holder: UNREADABLE_HOLDER,
        seconds: 60,
      });
      assert.match(
        renderMessage(warnings[0]!),
        /cannot read .* is taken over once it has stayed unchanged for 60 s$/,
      );
    });

    await t.step("another text: one more warning, naming the holder it could read", async () => {
      await writeAnnotation(other, "configmap", '{"holderIdentity":"py-a"}');
      await advance(clock, electors, 5 * TIMINGS.retryPeriodMs);
      const warnings = lockWarnings();
      assert.equal(warnings.length, 2);
      assert.equal(warnings[1]!.properties.problem, "leaseDurationSeconds is missing");
      assert.equal(warnings[1]!.properties.holder, "py-a");
    });

    await t.step("the elector itself warns of nothing: it reads a record every time", () => {
      const others = logs.records.filter((r) =>
        r.level === "warning" && r.category.join(".") !== "kevents.lock"
      );
      assert.deepEqual(others.map(renderMessage), []);
      assert.equal(elector.terms.length, 0);
    });
  } finally {
    elector.stop.abort(new Error("Test over"));
    await quiesce(electors);
    await within(elector.done, BOUND_MS, "the elector to stop");
  }
});
