/**
 * Specification of a leadership term: the fenced ConfigMap checkpoint, the
 * event pump and runTerm, exercised against the fake API server over the
 * network. Every wait is on a condition (the sink has N records, the
 * checkpoint holds X, the request log shows Y) and bounded by a timeout.
 */

import { captureLogs } from "./_logs.ts";
import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import type { LogRecord } from "@logtape/logtape";
import {
  Checkpointer,
  TERM_ANNOTATION,
  type Token,
  TOKEN_KEY,
  TOKEN_TIMESTAMP,
  tokenFromData,
} from "../lib/checkpoint/checkpointer.ts";
import { runTerm } from "../lib/collector.ts";
import { type Config, parseConfig } from "../lib/config/mod.ts";
import {
  EventGenerator,
  type FakeApiServer,
  formatTime,
  type KubeObject,
  type PolicyRule,
  startFakeApiServer,
} from "../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../lib/kube/client.ts";
import { PooledKubeConfig } from "../lib/kube/kubeconfig.ts";
import { eventTime, isNewer, runPump } from "../lib/pump/pump.ts";
import type { EventRecord, Sink } from "../lib/sinks/sink.ts";
import { StdoutSink } from "../lib/sinks/stdout.ts";
import { polling, waitUntil, within } from "./_fake_api.ts";

const NS = "default";
const TOKEN_CM = "datadogtoken";
/** Bound of every wait: generous, for a loaded 2-core machine. */
const BOUND_MS = 20_000;

// ---- a sink that records, and can hold a batch ------------------------------

/** An in-memory sink: records every batch it accepts; `block()` holds sends until `release()`. */
class RecordingSink implements Sink {
  readonly name = "recording";
  /** Every record accepted, in order. */
  readonly records: EventRecord[] = [];
  /** Size of each accepted batch. */
  readonly batches: number[] = [];
  /** Send calls begun (accepted or not). */
  sends = 0;
  /** The batch being held by `block()`, if any. */
  held: readonly EventRecord[] | undefined;
  #gate: PromiseWithResolvers<void> | undefined;
  #watchers = new Set<() => void>();

  /** Holds every following send until `release()`. */
  block(): void {
    this.#gate ??= Promise.withResolvers<void>();
  }

  /** Lets held and later sends through. */
  release(): void {
    const gate = this.#gate;
    this.#gate = undefined;
    gate?.resolve();
  }

  async send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    this.sends++;
    const gate = this.#gate;
    if (gate !== undefined) {
      this.held = batch;
      this.#notify();
      const aborted = Promise.withResolvers<never>();
      const onAbort = () => aborted.reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await Promise.race([gate.promise, aborted.promise]);
      } finally {
        signal.removeEventListener("abort", onAbort);
        this.held = undefined;
      }
    }
    this.records.push(...batch);
    this.batches.push(batch.length);
    this.#notify();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Keys of the accepted records, in order. */
  keys(): string[] {
    return this.records.map((r) => r.key);
  }

  /** Resolves once `condition` holds for this sink. */
  until(what: string, condition: (sink: RecordingSink) => boolean): Promise<void> {
    return waitUntil(`the sink has ${what}`, () => condition(this), (wake) => {
      this.#watchers.add(wake);
      return () => this.#watchers.delete(wake);
    }, BOUND_MS);
  }

  /** Resolves once the sink has accepted at least `n` records. */
  received(n: number): Promise<void> {
    return this.until(`${n} records (has ${this.records.length})`, (s) => s.records.length >= n);
  }

  #notify(): void {
    for (const wake of [...this.#watchers]) wake();
  }
}

// ---- the fake API server, clients, terms -------------------------------------

/** A client of the fake server as `user`, closed on dispose. */
function connect(server: FakeApiServer, user = "admin"): { client: KubeClient } & AsyncDisposable {
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig({ user }));
  const client = new KubeClient(kc);
  return { client, [Symbol.asyncDispose]: () => client.close() };
}

/**
 * The collector's configuration with frequent checkpoints and `env` on top.
 * The lease duration only sets the checkpointer's request timeout here
 * (5 s), as runTerm takes no lease.
 */
function configWith(env: Record<string, string> = {}): Config {
  return parseConfig({
    env: {
      KUBERNETES: "1",
      KEVENTS_LEASE_DURATION_MS: "30000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "50",
      ...env,
    },
  });
}

/** A running term; dispose stops it and waits for it. */
interface RunningTerm extends AsyncDisposable {
  readonly controller: AbortController;
  /** Settles when runTerm does. */
  readonly done: Promise<void>;
  /** Whether runTerm has settled. */
  readonly settled: boolean;
  /** Aborts the term and waits (bounded) for runTerm to settle. */
  stop(): Promise<void>;
}

/** Starts runTerm for `identity`/`transitions`, delivering to `sinks`. */
function startTerm(
  options: {
    client: KubeClient;
    config: Config;
    sinks: Sink[];
    identity?: string;
    transitions?: number;
  },
): RunningTerm {
  const identity = options.identity ?? "a";
  const controller = new AbortController();
  let settled = false;
  const done = runTerm(
    { client: options.client, config: options.config, identity, sinks: options.sinks },
    { identity, transitions: options.transitions ?? 0, signal: controller.signal },
  ).finally(() => settled = true);
  const stop = async () => {
    controller.abort(new Error("Test over"));
    await within(done, BOUND_MS, "the term to stop");
  };
  return {
    controller,
    done,
    get settled() {
      return settled;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** The checkpoint ConfigMap's token, timestamp and term, or undefined when it does not exist. */
function checkpointOf(
  server: FakeApiServer,
): { token?: string; timestamp?: string; term?: string } | undefined {
  const cm = server.get("configmaps", NS, TOKEN_CM);
  if (cm === undefined) return undefined;
  const data = (cm.data ?? {}) as Record<string, string>;
  return {
    token: data[TOKEN_KEY],
    timestamp: data[TOKEN_TIMESTAMP],
    term: cm.metadata.annotations?.[TERM_ANNOTATION],
  };
}

/** Resolves once the checkpoint ConfigMap satisfies `condition` (re-checked on every write). */
function untilCheckpoint(
  server: FakeApiServer,
  what: string,
  condition: (cp: ReturnType<typeof checkpointOf>) => boolean,
): Promise<void> {
  return waitUntil(
    `the checkpoint ${what} (it is ${JSON.stringify(checkpointOf(server))})`,
    () => condition(checkpointOf(server)),
    (wake) => server.store.subscribe(wake),
    BOUND_MS,
  );
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** The stamp runTerm writes for a term: identity/transitions/start time (unique per term). */
function termStamp(identity: string, transitions: number): RegExp {
  return new RegExp(`^${identity}/${transitions}/${RFC3339.source.slice(1)}`);
}

/** Creates the checkpoint ConfigMap holding `token`. */
function seedCheckpoint(server: FakeApiServer, token: string): void {
  server.create("configmaps", NS, { metadata: { name: TOKEN_CM }, data: { [TOKEN_KEY]: token } });
}

/**
 * Resolves once `identity` has sent `atLeast` events watch requests. The
 * server logs a watch as it starts streaming: events created after that
 * reach it.
 */
function untilWatching(server: FakeApiServer, identity: string, atLeast = 1): Promise<void> {
  return waitUntil(
    `${identity} has sent ${atLeast} events watch request(s)`,
    () => server.requestLog.count({ identity, verb: "watch", resource: "events" }) >= atLeast,
    polling,
    BOUND_MS,
  );
}

let eventSeq = 0;

/** Creates a core/v1 Event named `name` in the default namespace. */
function createEvent(server: FakeApiServer, name = `ev-${++eventSeq}`): KubeObject {
  const at = formatTime(new Date());
  return server.create("events", NS, {
    metadata: { name },
    involvedObject: { apiVersion: "v1", kind: "Pod", namespace: NS, name: "web-1" },
    reason: "Tested",
    message: `Event ${name}`,
    type: "Normal",
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: "collector-test" },
  });
}

/** The idempotency key the pump gives an object: uid/resourceVersion. */
function keyOf(obj: KubeObject): string {
  return `${obj.metadata.uid}/${obj.metadata.resourceVersion}`;
}

/** Keys of every change to events with a resourceVersion after `afterRv`, in order. */
function eventKeysAfter(server: FakeApiServer, afterRv: number): string[] {
  const keys: string[] = [];
  for (let rv = afterRv + 1; rv <= server.store.currentRv; rv++) {
    const change = server.store.changeAt(rv);
    assert.ok(change !== undefined, `history holds ${rv}`);
    if (change.record.storage !== "/events" || change.type === "DELETED") continue;
    keys.push(keyOf(change.record.object));
  }
  return keys;
}

/** Warnings logged under `kevents.<part>`. */
function warningsOf(records: LogRecord[], part: string): LogRecord[] {
  return records.filter((r) => r.level === "warning" && r.category[1] === part);
}

/** Paths of the requests the server receives (query included), until disposed. */
function recordRequestPaths(server: FakeApiServer): { paths: string[] } & Disposable {
  const paths: string[] = [];
  const subscription = server.onRequest((r) => paths.push(`${r.method} ${r.path}`));
  return { paths, [Symbol.dispose]: () => subscription[Symbol.dispose]() };
}

/** Calls `fn` synchronously when the first request matching `method` and `pathEnd` arrives. */
function onFirstRequest(
  server: FakeApiServer,
  method: string,
  pathEnd: string,
  fn: () => void,
): Disposable {
  let fired = false;
  return server.onRequest((r) => {
    if (!fired && r.method === method && r.path.split("?")[0]!.endsWith(pathEnd)) {
      fired = true;
      fn();
    }
  });
}

// ---- resuming ----------------------------------------------------------------

Deno.test("a term resumes from the checkpoint: exactly the events after the token reach every sink", async () => {
  await using server = await startFakeApiServer();
  await using conn = connect(server);
  const events = Array.from({ length: 20 }, () => createEvent(server));
  const token = events[9]!.metadata.resourceVersion!;
  seedCheckpoint(server, token);

  const sink = new RecordingSink();
  let ndjson = "";
  const stdout = new StdoutSink({
    writer: {
      write: (p) => {
        ndjson += new TextDecoder().decode(p);
        return Promise.resolve(p.length);
      },
    },
  });
  await using _term = startTerm({
    client: conn.client,
    config: configWith(),
    sinks: [sink, stdout],
  });

  const expected = events.slice(10).map(keyOf);
  await sink.received(expected.length);
  // The watch replays in resourceVersion order: once the last one is in,
  // anything older would have come before it.
  assert.deepEqual(sink.keys(), expected, "the events after the token, in order, none before");
  assert.ok(sink.records.every((r) => r.type === "ADDED"));
  // KUBERNETES also turns on the control-plane check, whose {"serviceCheck":...} lines share stdout.
  const lines = ndjson.trimEnd().split("\n").map((l) => JSON.parse(l))
    .filter((l) => !("serviceCheck" in l)) as { key: string }[];
  assert.deepEqual(lines.map((l) => l.key), expected, "the stdout sink got the same records");

  const last = events[19]!.metadata.resourceVersion!;
  await untilCheckpoint(server, `holds ${last}`, (cp) => cp?.token === last);
  assert.match(checkpointOf(server)?.term ?? "", termStamp("a", 0));
});

Deno.test("without a token a term starts at now, creates the checkpoint and stamps its term", async (t) => {
  await t.step("events from before the start are not delivered; later ones are", async () => {
    await using server = await startFakeApiServer();
    await using conn = connect(server);
    for (let i = 0; i < 5; i++) createEvent(server);
    assert.equal(checkpointOf(server), undefined, "no checkpoint ConfigMap yet");

    const sink = new RecordingSink();
    await using _term = startTerm({
      client: conn.client,
      config: configWith(),
      sinks: [sink],
      identity: "replica-1",
      transitions: 7,
    });
    await untilWatching(server, "admin");
    const later = [createEvent(server), createEvent(server), createEvent(server)];
    await sink.received(3);
    assert.deepEqual(sink.keys(), later.map(keyOf));

    const last = later[2]!;
    await untilCheckpoint(
      server,
      `holds ${last.metadata.resourceVersion}`,
      (cp) => cp?.token === last.metadata.resourceVersion,
    );
    const cp = checkpointOf(server)!;
    assert.match(cp.term ?? "", termStamp("replica-1", 7), "identity/transitions/start time");
    assert.match(
      cp.timestamp ?? "",
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/,
    );
    assert.equal(cp.timestamp, last.lastTimestamp, "the time of the last delivered event");
    assert.equal(
      server.requestLog.count({ verb: "create", resource: "configmaps", code: 201 }),
      1,
      "the checkpoint ConfigMap was created once",
    );
  });

  await t.step("with backfill on, the events from before the start are delivered too", async () => {
    await using server = await startFakeApiServer();
    await using conn = connect(server);
    const before = Array.from({ length: 5 }, () => createEvent(server));
    const sink = new RecordingSink();
    await using _term = startTerm({
      client: conn.client,
      config: configWith({ KEVENTS_BACKFILL: "true" }),
      sinks: [sink],
    });
    await sink.received(5);
    assert.deepEqual(new Set(sink.keys()), new Set(before.map(keyOf)));
    await untilWatching(server, "admin");
    const after = createEvent(server);
    await sink.received(6);
    assert.equal(sink.records[5]!.key, keyOf(after));
    await untilCheckpoint(
      server,
      `holds ${after.metadata.resourceVersion}`,
      (cp) => cp?.token === after.metadata.resourceVersion,
    );
  });
});

// ---- relisting after the history is gone --------------------------------------

/**
 * Creates 1,300 events named so that key order differs from creation order,
 * takes the token in the middle, compacts the history, and checks that a
 * term relists every page, delivers exactly what is newer than the token,
 * then watches on from the list.
 */
async function relistScenario(eventsWatchQuirk: boolean): Promise<void> {
  await using server = await startFakeApiServer({ eventsWatchQuirk });
  await using conn = connect(server);
  // 7919 is prime and coprime to 10007: the names interleave old and new events in key order.
  const events = Array.from(
    { length: 1300 },
    (_, i) => createEvent(server, `relist-${String((i * 7919) % 10007).padStart(5, "0")}`),
  );
  const token = events[649]!.metadata.resourceVersion!;
  seedCheckpoint(server, token);
  server.compactNow();
  assert.ok(server.store.compactedRv > Number(token), "the token is older than the history");

  // Every token the checkpoint is given, as written.
  const written: string[] = [];
  const unsubscribe = server.store.subscribe((change) => {
    const { storage, name, object } = change.record;
    if (storage !== "/configmaps" || name !== TOKEN_CM || change.type === "DELETED") return;
    written.push(((object.data ?? {}) as Record<string, string>)[TOKEN_KEY] ?? "");
  });
  using _subscription = { [Symbol.dispose]: () => void unsubscribe() };
  using sent = recordRequestPaths(server);
  await using logs = await captureLogs();
  const sink = new RecordingSink();
  await using _term = startTerm({ client: conn.client, config: configWith(), sinks: [sink] });

  const newer = events.slice(650).map(keyOf);
  await sink.received(newer.length);
  await untilWatching(server, "admin", 2);
  const later = [createEvent(server), createEvent(server)];
  await sink.received(newer.length + 2);
  // The relist came before the later events: anything older that it
  // delivered would be in the sink by now.
  assert.equal(sink.records.length, newer.length + 2, "nothing older than the token");
  const relisted = sink.keys().slice(0, newer.length);
  assert.deepEqual(new Set(relisted), new Set(newer), "every event newer than the token");
  assert.equal(new Set(relisted).size, newer.length, "each exactly once");
  assert.ok(sink.records.slice(0, newer.length).every((r) => r.type === "ADDED"));
  assert.deepEqual(sink.keys().slice(newer.length), later.map(keyOf), "then the watch goes on");

  const warning = eventsWatchQuirk
    ? "The watch from {rv} closed at once without events: relisting"
    : "Resource version {rv} is gone ({error}): relisting";
  assert.equal(
    warningsOf(logs.records, "pump").filter((r) => r.rawMessage === warning).length,
    1,
    "one relist, for the reason expected",
  );
  const allLists = sent.paths.filter((p) =>
    p.startsWith("GET /api/v1/events?") && !/watch=/.test(p)
  );
  // The exact read at the token (limit=1) that tells a silent close of a
  // compacted history from a proxy's: only after a silent close.
  // (A list with limit=1 and no resourceVersion is the start's check that
  // the token is not ahead of the server: one, before the first watch.)
  const aheadChecks = allLists.filter((p) =>
    /[?&]limit=1(&|$)/.test(p) && !p.includes("resourceVersion=")
  );
  assert.equal(aheadChecks.length, 1, `the ahead check: ${aheadChecks.join(", ")}`);
  const probes = allLists.filter((p) => /[?&]limit=1(&|$)/.test(p) && !aheadChecks.includes(p));
  assert.equal(probes.length, eventsWatchQuirk ? 1 : 0, `the history probe: ${probes.join(", ")}`);
  if (eventsWatchQuirk) assert.ok(probes[0]!.includes(`resourceVersion=${token}`), probes[0]!);
  const lists = allLists.filter((p) => !probes.includes(p) && !aheadChecks.includes(p));
  assert.equal(lists.length, 3, `three pages of 500: ${lists.join(", ")}`);
  assert.ok(!lists[0]!.includes("continue="), "the first page starts the list");
  assert.ok(lists.slice(1).every((p) => p.includes("continue=")), "later pages continue it");
  assert.ok(lists.every((p) => p.includes("limit=500")));
  assert.equal(
    server.requestLog.count({ identity: "admin", verb: "list", resource: "events", code: 200 }),
    4,
    "three pages and the check that the token is not ahead of the server",
  );

  const last = later[1]!.metadata.resourceVersion!;
  await untilCheckpoint(server, `holds ${last}`, (cp) => cp?.token === last);
  // Relisted items come in key order, not resourceVersion order: until the
  // whole list is delivered, no position inside it may be checkpointed.
  const newest = Number(events.at(-1)!.metadata.resourceVersion);
  const inside = written.filter((w) => w !== token && !(Number(w) > newest));
  assert.deepEqual(inside, [], `no partial relist was checkpointed (written: ${written})`);
}

Deno.test("after 410 Expired the pump relists every page and delivers only events newer than the token", async () => {
  await relistScenario(false);
});

Deno.test("a watch the server closes at once with nothing (events without a watch cache) is relisted with the same guarantees", async () => {
  await relistScenario(true);
});

// ---- repeats, deletions, bookmarks ---------------------------------------------

Deno.test("repeats are delivered again; deletions and bookmarks only move the checkpoint", async (t) => {
  await t.step(
    "a repeated event is delivered again with its new count under a new key; its deletion is not",
    async () => {
      let now = Date.now();
      await using server = await startFakeApiServer({
        now: () => now,
        eventTtlMs: 60_000,
        ttlSweepIntervalMs: 3_600_000,
      });
      await using conn = connect(server);
      seedCheckpoint(server, String(server.store.currentRv));
      const sink = new RecordingSink();
      await using _term = startTerm({ client: conn.client, config: configWith(), sinks: [sink] });

      const created = createEvent(server, "crashloop");
      await sink.received(1);
      const repeatedAt = formatTime(new Date(now + 5_000));
      server.applyGenerated({
        op: "repeat",
        namespace: NS,
        name: "crashloop",
        lastTimestamp: repeatedAt,
      });
      await sink.received(2);
      const [first, second] = sink.records;
      assert.equal(first!.key, keyOf(created));
      assert.equal(first!.type, "ADDED");
      assert.equal(first!.event.count, 1);
      assert.equal(second!.type, "MODIFIED");
      assert.equal(second!.event.count, 2, "the new count");
      assert.equal(String(second!.event.lastTimestamp), repeatedAt);
      assert.notEqual(second!.key, first!.key, "a new key");
      assert.equal(second!.event.metadata.uid, created.metadata.uid, "the same event");
      const repeatRv = second!.event.metadata.resourceVersion!;
      await untilCheckpoint(server, `holds ${repeatRv}`, (cp) => cp?.token === repeatRv);
      assert.equal(checkpointOf(server)?.timestamp, repeatedAt);

      // Its deletion by TTL is not delivered, but the checkpoint moves past it.
      now += 61_000;
      assert.equal(server.store.sweepExpired(), 1, "the event expired");
      const deletedRv = String(server.store.currentRv);
      assert.equal(server.store.changeAt(Number(deletedRv))?.type, "DELETED");
      await untilCheckpoint(server, `holds ${deletedRv}`, (cp) => cp?.token === deletedRv);
      // The checkpoint only moves past what the deliverer has handled, so the
      // deletion went through the pump without reaching the sink.
      assert.equal(sink.records.length, 2, "nothing delivered for the deletion");
      assert.equal(checkpointOf(server)?.timestamp, repeatedAt, "the time stays the last event's");
    },
  );

  await t.step("bookmarks move the checkpoint without delivering anything", async () => {
    await using server = await startFakeApiServer({ bookmarkIntervalMs: 100 });
    await using conn = connect(server);
    const token = String(server.store.currentRv);
    seedCheckpoint(server, token);
    const sink = new RecordingSink();
    await using _term = startTerm({ client: conn.client, config: configWith(), sinks: [sink] });
    await untilWatching(server, "admin");
    // A write that is not an event: the watch sends nothing for it, and
    // only a bookmark can tell the pump that the history has passed it.
    const other = server.create("configmaps", NS, { metadata: { name: "unrelated" } });
    const otherRv = Number(other.metadata.resourceVersion);
    await untilCheckpoint(
      server,
      `reaches ${otherRv}`,
      (cp) => Number(cp?.token ?? 0) >= otherRv,
    );
    assert.equal(sink.sends, 0, "no event was delivered");
  });
});

// ---- fencing ---------------------------------------------------------------------

Deno.test("a term whose checkpoint a newer term has stamped is fenced: its write fails with 409 and its work stops", async () => {
  await using server = await startFakeApiServer();
  server.addUser("a");
  server.addUser("b");
  await using connA = connect(server, "a");
  await using connB = connect(server, "b");
  await using logs = await captureLogs();

  const sinkA = new RecordingSink();
  await using termA = startTerm({
    client: connA.client,
    config: configWith(),
    sinks: [sinkA],
    identity: "a",
    transitions: 0,
  });
  await untilWatching(server, "a");
  const first = createEvent(server);
  const firstRv = first.metadata.resourceVersion!;
  await sinkA.received(1);
  await untilCheckpoint(
    server,
    `holds ${firstRv} from term a/0`,
    (cp) => cp?.token === firstRv && termStamp("a", 0).test(cp.term ?? ""),
  );

  const b = new Checkpointer({
    client: connB.client,
    namespace: NS,
    name: TOKEN_CM,
    term: "b/1",
    intervalMs: 50,
    maxEvents: 500,
    requestTimeoutMs: 5_000,
  });
  const resumed = await b.begin(AbortSignal.timeout(BOUND_MS));
  assert.equal(resumed?.resourceVersion, firstRv, "B resumes where A's last write left it");
  assert.equal(checkpointOf(server)?.term, "b/1");

  // A delivers the next event and tries to checkpoint it over B's stamp.
  const second = createEvent(server);
  await within(termA.done, BOUND_MS, "term a to end on its own");
  assert.equal(termA.controller.signal.aborted, false, "nobody stopped A: the fence did");
  assert.equal(checkpointOf(server)?.token, firstRv, "A's write never landed");
  assert.equal(checkpointOf(server)?.term, "b/1");

  const writesOfA = server.requestLog.entries({
    identity: "a",
    verb: "update",
    resource: "configmaps",
  });
  // Before B's stamp A wrote the list's position and the first event's,
  // together or apart; then one write was refused, and none followed it
  // (not even on stop).
  const codes = writesOfA.map((e) => e.code);
  assert.equal(codes.at(-1), 409, `the last write of A was refused: ${codes}`);
  assert.ok(codes.slice(0, -1).every((c) => c === 200), `A wrote before: ${codes}`);
  assert.equal(
    logs.records.filter((r) =>
      r.level === "warning" && String(r.rawMessage).startsWith("Checkpoint write refused")
    ).length,
    1,
  );
  await waitUntil(
    "A's watch is closed",
    () => !server.watchIdentities().includes("a"),
    polling,
    BOUND_MS,
  );
  // A notices B's stamp at its next write or idle check (every 50 ms
  // here), whichever comes first: it may have delivered the second event
  // before that, but its checkpoint, which B reads, never claimed it.
  assert.deepEqual(sinkA.keys(), [keyOf(first), keyOf(second)].slice(0, sinkA.keys().length));
  assert.ok(sinkA.keys().length >= 1);

  // B, the owner now, writes as usual.
  b.acknowledge({ resourceVersion: second.metadata.resourceVersion!, timestamp: undefined }, 1);
  await b.flush();
  assert.equal(b.fenced, false);
  assert.equal(checkpointOf(server)?.token, second.metadata.resourceVersion);
});

Deno.test("two checkpointers beginning at once both succeed, in order, and the later one's term stays", async (t) => {
  /** A checkpointer for term `term` as user `user`. */
  const checkpointer = (client: KubeClient, term: string) =>
    new Checkpointer({
      client,
      namespace: NS,
      name: TOKEN_CM,
      term,
      intervalMs: 50,
      maxEvents: 500,
      requestTimeoutMs: 10_000,
    });

  await t.step(
    "the stamp that loses the compare-and-swap (409 Conflict) reads again and stamps",
    async () => {
      await using server = await startFakeApiServer();
      server.addUser("a");
      server.addUser("b");
      await using connA = connect(server, "a");
      await using connB = connect(server, "b");
      seedCheckpoint(server, "4242");
      const a = checkpointer(connA.client, "a/1");
      const b = checkpointer(connB.client, "b/2");

      // B has read the ConfigMap and is sending its stamp when A begins: B's
      // stamp is held at the server until A has read and stamped.
      let beginA: Promise<Token | undefined> | undefined;
      using _hold = onFirstRequest(server, "PUT", `/configmaps/${TOKEN_CM}`, () => {
        server.partition("b");
        beginA = a.begin(AbortSignal.timeout(BOUND_MS));
      });
      const beginB = b.begin(AbortSignal.timeout(BOUND_MS));
      await waitUntil("A has begun", () => beginA !== undefined, polling, BOUND_MS);
      assert.equal((await within(beginA!, BOUND_MS, "A's begin"))?.resourceVersion, "4242");
      assert.equal(checkpointOf(server)?.term, "a/1");
      server.heal("b");
      assert.equal((await within(beginB, BOUND_MS, "B's begin"))?.resourceVersion, "4242");

      assert.equal(checkpointOf(server)?.term, "b/2", "the second to stamp owns the checkpoint");
      const calls = (identity: string) =>
        server.requestLog.entries({ identity, resource: "configmaps" }).map((e) =>
          `${e.verb} ${e.code}`
        );
      assert.deepEqual(calls("a"), ["get 200", "update 200"]);
      assert.deepEqual(calls("b"), ["get 200", "update 409", "get 200", "update 200"]);

      // Only the later term may write from now on.
      a.acknowledge({ resourceVersion: "5000", timestamp: undefined }, 1);
      await a.flush();
      assert.equal(a.fenced, true);
      b.acknowledge({ resourceVersion: "5001", timestamp: undefined }, 1);
      await b.flush();
      assert.equal(b.fenced, false);
      assert.deepEqual(checkpointOf(server), { token: "5001", timestamp: undefined, term: "b/2" });
    },
  );

  await t.step("the create that loses (409 AlreadyExists) reads again and stamps", async () => {
    await using server = await startFakeApiServer();
    server.addUser("a");
    server.addUser("b");
    await using connA = connect(server, "a");
    await using connB = connect(server, "b");
    const a = checkpointer(connA.client, "a/1");
    const b = checkpointer(connB.client, "b/2");

    let beginA: Promise<Token | undefined> | undefined;
    using _hold = onFirstRequest(server, "POST", "/configmaps", () => {
      server.partition("b");
      beginA = a.begin(AbortSignal.timeout(BOUND_MS));
    });
    const beginB = b.begin(AbortSignal.timeout(BOUND_MS));
    await waitUntil("A has begun", () => beginA !== undefined, polling, BOUND_MS);
    assert.equal(await within(beginA!, BOUND_MS, "A's begin"), undefined, "no token: start at now");
    assert.equal(checkpointOf(server)?.term, "a/1");
    server.heal("b");
    assert.equal(await within(beginB, BOUND_MS, "B's begin"), undefined);

    assert.equal(checkpointOf(server)?.term, "b/2");
    const calls = (identity: string) =>
      server.requestLog.entries({ identity, resource: "configmaps" }).map((e) =>
        `${e.verb} ${e.code}`
      );
    assert.deepEqual(calls("a"), ["get 404", "create 201"]);
    assert.deepEqual(calls("b"), ["get 404", "create 409", "get 200", "update 200"]);
  });
});

// ---- permissions -------------------------------------------------------------------

const EVENTS_READ: PolicyRule = {
  verbs: ["list", "watch"],
  apiGroups: [""],
  resources: ["events"],
};

Deno.test("without create on configmaps the checkpoint lives in memory and events still flow", async () => {
  await using server = await startFakeApiServer();
  server.addUser("collector", [
    EVENTS_READ,
    { verbs: ["get", "update"], apiGroups: [""], resources: ["configmaps"] },
  ]);
  await using conn = connect(server, "collector");
  await using logs = await captureLogs();
  const sink = new RecordingSink();
  const term = startTerm({ client: conn.client, config: configWith(), sinks: [sink] });
  try {
    await untilWatching(server, "collector");
    const events = [createEvent(server), createEvent(server), createEvent(server)];
    await sink.received(3);
    assert.deepEqual(sink.keys(), events.map(keyOf));
  } finally {
    await term.stop();
  }
  assert.equal(checkpointOf(server), undefined, "no ConfigMap was created");
  const calls = server.requestLog.entries({ identity: "collector", resource: "configmaps" })
    .map((e) => `${e.verb} ${e.code}`);
  assert.deepEqual(calls, ["get 404", "create 403"], "asked once, never again");
  const warnings = warningsOf(logs.records, "checkpoint");
  assert.equal(warnings.length, 1, "warned once");
  assert.equal(warnings[0]!.properties.verb, "create");
  const stopped = logs.records.find((r) => String(r.rawMessage).startsWith("Pump stopped"));
  assert.equal(
    stopped?.properties.rv,
    sink.records[2]!.event.metadata.resourceVersion,
    "the token was kept in memory",
  );
});

Deno.test("without update on configmaps the term warns once, stops writing and loses nothing", async (t) => {
  await t.step("refused when stamping an existing checkpoint: resumes from its token", async () => {
    await using server = await startFakeApiServer();
    server.addUser("collector", [
      EVENTS_READ,
      { verbs: ["get", "create"], apiGroups: [""], resources: ["configmaps"] },
    ]);
    await using conn = connect(server, "collector");
    await using logs = await captureLogs();
    const events = Array.from({ length: 6 }, () => createEvent(server));
    seedCheckpoint(server, events[2]!.metadata.resourceVersion!);
    const sink = new RecordingSink();
    const term = startTerm({ client: conn.client, config: configWith(), sinks: [sink] });
    try {
      await sink.received(3);
      const later = createEvent(server);
      await sink.received(4);
      assert.deepEqual(sink.keys(), [...events.slice(3), later].map(keyOf), "nothing lost");
    } finally {
      await term.stop();
    }
    const calls = server.requestLog.entries({ identity: "collector", resource: "configmaps" })
      .map((e) => `${e.verb} ${e.code}`);
    assert.deepEqual(calls, ["get 200", "update 403"], "no write after the 403");
    assert.equal(checkpointOf(server)?.token, events[2]!.metadata.resourceVersion);
    const warnings = warningsOf(logs.records, "checkpoint");
    assert.equal(warnings.length, 1, "warned once");
    assert.equal(warnings[0]!.properties.verb, "update");
  });

  await t.step(
    "refused on the first checkpoint write: no write is attempted after it",
    async () => {
      await using server = await startFakeApiServer();
      server.addUser("collector", [
        EVENTS_READ,
        { verbs: ["get", "create"], apiGroups: [""], resources: ["configmaps"] },
      ]);
      await using conn = connect(server, "collector");
      await using logs = await captureLogs();
      const sink = new RecordingSink();
      const term = startTerm({ client: conn.client, config: configWith(), sinks: [sink] });
      const events: KubeObject[] = [];
      try {
        await untilWatching(server, "collector");
        events.push(createEvent(server));
        await sink.received(1);
        await waitUntil(
          "the first checkpoint write is refused",
          () => server.requestLog.count({ identity: "collector", verb: "update", code: 403 }) === 1,
          polling,
          BOUND_MS,
        );
        // Had writes resumed, this acknowledgement would be written by the
        // next interval or, at the latest, by the final write on stop.
        events.push(createEvent(server), createEvent(server));
        await sink.received(3);
      } finally {
        await term.stop();
      }
      assert.deepEqual(sink.keys(), events.map(keyOf), "nothing lost");
      const calls = server.requestLog.entries({ identity: "collector", resource: "configmaps" })
        .map((e) => `${e.verb} ${e.code}`);
      assert.deepEqual(calls, ["get 404", "create 201", "update 403"]);
      assert.equal(warningsOf(logs.records, "checkpoint").length, 1, "warned once");
    },
  );
});

Deno.test("without list and watch on events the pump retries, names what is forbidden, and stops on abort", async () => {
  await using server = await startFakeApiServer();
  server.addUser("collector", [{ verbs: ["*"], apiGroups: [""], resources: ["configmaps"] }]);
  await using conn = connect(server, "collector");
  await using logs = await captureLogs();
  const sink = new RecordingSink();
  const term = startTerm({ client: conn.client, config: configWith(), sinks: [sink] });
  try {
    // The first retry comes about a second (the backoff's first step) after the first failure.
    await waitUntil(
      "the pump has failed twice",
      () => warningsOf(logs.records, "pump").length >= 2,
      polling,
      BOUND_MS,
    );
  } finally {
    await term.stop();
  }
  assert.ok(
    server.requestLog.count({
      identity: "collector",
      verb: "list",
      resource: "events",
      code: 403,
    }) >=
      2,
    "the list was refused, and retried",
  );
  const failures = warningsOf(logs.records, "pump").map((r) => String(r.properties.error));
  for (const error of failures) {
    assert.match(error, /cannot list resource "events"/, "the error names the verb and resource");
  }
  assert.equal(
    server.requestLog.count({ identity: "collector", resource: "events", code: 200 }),
    0,
  );
  assert.equal(sink.sends, 0);
});

// ---- backpressure --------------------------------------------------------------------

Deno.test("a blocked sink stops the pump from reading: the queue stays bounded and nothing is lost", async () => {
  await using server = await startFakeApiServer();
  await using conn = connect(server);
  const tokenRv = server.store.currentRv;
  seedCheckpoint(server, String(tokenRv));
  const sink = new RecordingSink();
  sink.block();
  await using _term = startTerm({
    client: conn.client,
    config: configWith({ KEVENTS_QUEUE_CAPACITY: "10" }),
    sinks: [sink],
  });
  await untilWatching(server, "admin");

  const generator = server.startEventGenerator(new EventGenerator({ seed: 7 }), {
    ratePerSecond: 5_000,
    total: 1_000,
  });
  assert.equal(await within(generator.done, BOUND_MS, "the generator"), 1_000);
  await sink.until("a batch held", (s) => s.held !== undefined);
  // Everything has been written at the server, yet the pump has one batch
  // in the sink and no more than the queue's capacity behind it.
  assert.equal(sink.sends, 1, "one send in flight, no other");
  assert.ok(sink.held!.length <= 10, `the held batch has ${sink.held!.length} records`);
  assert.equal(checkpointOf(server)?.token, String(tokenRv), "nothing acknowledged yet");

  const expected = eventKeysAfter(server, tokenRv);
  assert.ok(expected.length === 1_000, "every change is an event change");
  sink.release();
  await sink.received(expected.length);
  assert.deepEqual(sink.keys(), expected, "each exactly once, in resourceVersion order");
  const largest = Math.max(...sink.batches);
  assert.ok(largest <= 10, `every batch fits the queue (largest ${largest})`);
  // The checkpoint's own writes are changes too: the last event, not the
  // store's current resourceVersion, is where it must end.
  const lastRv = sink.records.at(-1)!.event.metadata.resourceVersion!;
  await untilCheckpoint(server, `holds ${lastRv}`, (cp) => cp?.token === lastRv);
});

// ---- stopping ------------------------------------------------------------------------

Deno.test("stopping a term waits for the send in flight and then writes the last acknowledged position", async () => {
  await using server = await startFakeApiServer();
  await using conn = connect(server);
  const tokenRv = String(server.store.currentRv);
  seedCheckpoint(server, tokenRv);
  const sink = new RecordingSink();
  // Writes are due once every 10 minutes: only the final write can happen.
  const term = startTerm({
    client: conn.client,
    config: configWith({ KEVENTS_CHECKPOINT_INTERVAL_MS: "600000" }),
    sinks: [sink],
  });
  try {
    await untilWatching(server, "admin");
    createEvent(server);
    createEvent(server);
    await sink.received(2);
    sink.block();
    const last = createEvent(server);
    await sink.until("the last event held", (s) => s.held?.[0]?.key === keyOf(last));
    assert.equal(checkpointOf(server)?.token, tokenRv, "no write before the stop");

    term.controller.abort(new Error("Shutting down"));
    await waitUntil("the watch is closed", () => server.watchCount === 0, polling, BOUND_MS);
    assert.equal(term.settled, false, "the term waits for the send in flight");
    assert.equal(checkpointOf(server)?.token, tokenRv, "and writes only after it");
    sink.release();
    await within(term.done, BOUND_MS, "the term to stop");

    const cp = checkpointOf(server);
    assert.equal(cp?.token, last.metadata.resourceVersion, "the last acknowledged position");
    assert.equal(cp?.timestamp, last.lastTimestamp);
    assert.deepEqual(sink.keys().at(-1), keyOf(last));
    assert.equal(
      server.requestLog.count({ identity: "admin", verb: "update", resource: "configmaps" }),
      2,
      "the stamp at the start and the final write",
    );
  } finally {
    sink.release();
    await term.stop();
  }
});

Deno.test("a term or a pump handed an already-aborted signal returns at once without calling the API", async () => {
  await using server = await startFakeApiServer();
  await using conn = connect(server);
  const aborted = AbortSignal.abort(new Error("Already over"));
  const sink = new RecordingSink();
  await within(
    runTerm(
      { client: conn.client, config: configWith(), identity: "a", sinks: [sink] },
      { identity: "a", transitions: 0, signal: aborted },
    ),
    BOUND_MS,
    "runTerm to return",
  );
  await within(
    runPump(
      { client: conn.client, sinks: [sink], token: undefined, acknowledge: () => {} },
      aborted,
    ),
    BOUND_MS,
    "runPump to return",
  );
  assert.equal(server.requestLog.count({ identity: "admin" }), 0);
  assert.equal(sink.sends, 0);
});

// ---- pure functions --------------------------------------------------------------------

/** An event with resourceVersion `rv` and the given time fields. */
function event(rv: string, times: Record<string, unknown> = {}): CoreV1Event {
  return { metadata: { resourceVersion: rv }, involvedObject: {}, ...times } as CoreV1Event;
}

Deno.test("isNewer compares integer resourceVersions as numbers and falls back to the event time", async (t) => {
  const at = "2024-05-01T10:00:00Z";
  const before = "2024-05-01T09:59:59Z";
  const after = "2024-05-01T10:00:01Z";
  const cases: { name: string; event: CoreV1Event; token: Token; newer: boolean }[] = [
    {
      name: "a larger resourceVersion is newer",
      event: event("1001"),
      token: { resourceVersion: "1000", timestamp: undefined },
      newer: true,
    },
    {
      name: "the token's own resourceVersion is not newer",
      event: event("1000"),
      token: { resourceVersion: "1000", timestamp: undefined },
      newer: false,
    },
    {
      name: "a smaller resourceVersion is older, whatever its time",
      event: event("999", { lastTimestamp: after }),
      token: { resourceVersion: "1000", timestamp: at },
      newer: false,
    },
    {
      name: "numbers, not text: 1000 is newer than 999",
      event: event("1000"),
      token: { resourceVersion: "999", timestamp: undefined },
      newer: true,
    },
    {
      name: "numbers, not text: 999 is older than 1000",
      event: event("999"),
      token: { resourceVersion: "1000", timestamp: undefined },
      newer: false,
    },
    {
      name: "beyond 2^53 the comparison stays exact",
      event: event("9007199254740993"),
      token: { resourceVersion: "9007199254740992", timestamp: undefined },
      newer: true,
    },
    {
      name: "a non-numeric resourceVersion compares times: later is newer",
      event: event("abc", { lastTimestamp: after }),
      token: { resourceVersion: "1000", timestamp: at },
      newer: true,
    },
    {
      name: "a non-numeric resourceVersion compares times: the same second is delivered again",
      event: event("abc", { lastTimestamp: at }),
      token: { resourceVersion: "1000", timestamp: at },
      newer: true,
    },
    {
      name: "a non-numeric resourceVersion compares times: earlier is older",
      event: event("abc", { lastTimestamp: before }),
      token: { resourceVersion: "1000", timestamp: at },
      newer: false,
    },
    {
      name: "a non-numeric token compares times even for a numeric event",
      event: event("5", { lastTimestamp: before }),
      token: { resourceVersion: "etcd-restored-7", timestamp: at },
      newer: false,
    },
    {
      name: "a token without a time cannot rule anything out",
      event: event("abc", { lastTimestamp: before }),
      token: { resourceVersion: "xyz", timestamp: undefined },
      newer: true,
    },
    {
      name: "an event without any time cannot be ruled out",
      event: event("abc"),
      token: { resourceVersion: "xyz", timestamp: at },
      newer: true,
    },
    {
      name: "an event whose time is not a time cannot be ruled out",
      event: event("abc", { lastTimestamp: "yesterday" }),
      token: { resourceVersion: "xyz", timestamp: at },
      newer: true,
    },
    {
      name: "eventTime is used when lastTimestamp is null",
      event: event("abc", { lastTimestamp: null, eventTime: "2024-05-01T09:00:00.123456Z" }),
      token: { resourceVersion: "xyz", timestamp: at },
      newer: false,
    },
    {
      name: "series.lastObservedTime is used when both are null",
      event: event("abc", {
        lastTimestamp: null,
        eventTime: null,
        series: { count: 3, lastObservedTime: "2024-05-01T11:00:00.000000Z" },
      }),
      token: { resourceVersion: "xyz", timestamp: at },
      newer: true,
    },
    {
      name: "creationTimestamp is the last resort",
      event: {
        metadata: { resourceVersion: "abc", creationTimestamp: before },
        involvedObject: {},
      } as unknown as CoreV1Event,
      token: { resourceVersion: "xyz", timestamp: at },
      newer: false,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.equal(isNewer(c.event, c.token), c.newer);
    });
  }

  await t.step("eventTime turns Date objects into RFC 3339 text", () => {
    assert.equal(
      eventTime(event("1", { lastTimestamp: new Date(at) })),
      "2024-05-01T10:00:00.000Z",
    );
    assert.equal(eventTime(event("1")), undefined);
  });
});

Deno.test("tokenFromData reads a resourceVersion and refuses what no API server hands out", async (t) => {
  const ts = "2024-05-01T10:00:00Z";
  const cases: {
    name: string;
    data: Record<string, string> | undefined;
    token: Token | undefined;
  }[] = [
    { name: "no data", data: undefined, token: undefined },
    { name: "no key", data: {}, token: undefined },
    { name: "empty", data: { [TOKEN_KEY]: "" }, token: undefined },
    { name: "blank", data: { [TOKEN_KEY]: "  \n" }, token: undefined },
    { name: '"0" (any version, not a position)', data: { [TOKEN_KEY]: "0" }, token: undefined },
    { name: '"0" with spaces', data: { [TOKEN_KEY]: " 0 " }, token: undefined },
    {
      name: "a resourceVersion",
      data: { [TOKEN_KEY]: "12345" },
      token: { resourceVersion: "12345", timestamp: undefined },
    },
    {
      name: "a resourceVersion with surrounding whitespace",
      data: { [TOKEN_KEY]: " 12345\n" },
      token: { resourceVersion: "12345", timestamp: undefined },
    },
    {
      name: "an opaque resourceVersion",
      data: { [TOKEN_KEY]: "a1b2-c3" },
      token: { resourceVersion: "a1b2-c3", timestamp: undefined },
    },
    {
      name: "with its time",
      data: { [TOKEN_KEY]: "12345", [TOKEN_TIMESTAMP]: ts },
      token: { resourceVersion: "12345", timestamp: ts },
    },
    {
      name: "with a time that is not one: the time is dropped",
      data: { [TOKEN_KEY]: "12345", [TOKEN_TIMESTAMP]: "yesterday" },
      token: { resourceVersion: "12345", timestamp: undefined },
    },
    {
      name: "with an empty time",
      data: { [TOKEN_KEY]: "12345", [TOKEN_TIMESTAMP]: "" },
      token: { resourceVersion: "12345", timestamp: undefined },
    },
    { name: "inner whitespace", data: { [TOKEN_KEY]: "12 345" }, token: undefined },
    { name: "a control character", data: { [TOKEN_KEY]: "12\u0000345" }, token: undefined },
    { name: "non-ASCII digits", data: { [TOKEN_KEY]: "\uff11\uff12\uff13" }, token: undefined },
    {
      name: "256 characters is still a resourceVersion",
      data: { [TOKEN_KEY]: "7".repeat(256) },
      token: { resourceVersion: "7".repeat(256), timestamp: undefined },
    },
    { name: "a huge value", data: { [TOKEN_KEY]: "7".repeat(257) }, token: undefined },
    { name: "kilobytes of text", data: { [TOKEN_KEY]: "x".repeat(4096) }, token: undefined },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.deepEqual(tokenFromData(c.data), c.token);
    });
  }
});
