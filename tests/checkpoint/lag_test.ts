/**
 * Specification of the checkpoint lag (lib/checkpoint/lag.ts): how long the
 * oldest event the leader read, and no written checkpoint covers, has
 * waited. A collector term runs against the fake API server with a sink
 * that fails until told otherwise; time is a fake clock; the lag, its
 * limit and the event TTL are read from `/metrics` over HTTP; the token
 * from the fake API server; the warnings from the captured logs. What the
 * network cannot show (how many arrival marks are kept, how often the lag
 * is checked) is asked of a CheckpointLag on the fake clock.
 */

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { CheckpointLag, MAX_LAG_MARKS, type Token, TOKEN_KEY } from "../../lib/checkpoint/mod.ts";
import { type CollectorObserver, runCollector } from "../../lib/collector.ts";
import { type Config, parseConfig } from "../../lib/config/mod.ts";
import { type FakeApiServer, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { KubeClient, PooledKubeConfig } from "../../lib/kube/mod.ts";
import { type HealthServer, Metrics, startHealthServer } from "../../lib/ops/mod.ts";
import type { EventRecord, Sink } from "../../lib/sinks/mod.ts";
import type { Clock } from "../../lib/time/mod.ts";
import { FakeClock } from "../_fake_clock.ts";
import { coreEvent, eventually, within } from "../_fake_api.ts";
import { captureLogs } from "../_logs.ts";

const BOUND_MS = 20_000;
const NS = "default";
/** 600 s event TTL, half of it the limit. */
const TTL_SECONDS = 600;
const LIMIT_SECONDS = 300;

/** A sink that refuses every batch until `up`. */
class FlakySink implements Sink {
  readonly name = "flaky";
  up = false;
  attempts = 0;
  readonly delivered: EventRecord[] = [];

  send(batch: readonly EventRecord[]): Promise<void> {
    this.attempts++;
    if (!this.up) return Promise.reject(new Error("Sink down"));
    this.delivered.push(...batch);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The value of the unlabelled sample `name` in a Prometheus text exposition. */
function sample(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(m !== null, `no sample ${name} in /metrics`);
  return Number(m[1]);
}

/** One replica collecting without election (one term), scraped through its health endpoint. */
interface Replica extends AsyncDisposable {
  server: FakeApiServer;
  clock: FakeClock;
  sink: FlakySink;
  stop: AbortController;
  done: Promise<void>;
  /** Whether runCollector has settled. */
  settled(): boolean;
  scrape(): Promise<string>;
  /** The token's resourceVersion in the fake API server, if any. */
  tokenRv(): string | undefined;
}

/** Options of {@linkcode startReplica}. */
interface ReplicaOptions {
  /** A server (and its clock) another replica uses: not closed with this one. */
  shared?: { server: FakeApiServer; clock: FakeClock };
  identity?: string;
  /** Settings on top of the test's. */
  env?: Record<string, string>;
  observer?: CollectorObserver;
}

async function startReplica(options: ReplicaOptions = {}): Promise<Replica> {
  const server = options.shared?.server ??
    await startFakeApiServer({ serveComponentStatuses: false });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  const parsed = parseConfig({
    env: {
      DD_COLLECT_KUBERNETES_EVENTS: "true",
      KEVENTS_LEASE_DURATION_MS: "30000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "1000",
      // No idle check of the ConfigMap while the fake clock runs minutes ahead.
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "3600000",
      KEVENTS_SHUTDOWN_BUDGET_SECONDS: "1",
      KEVENTS_ENRICH: "false",
      KEVENTS_EVENT_TTL_SECONDS: String(TTL_SECONDS),
      KEVENTS_CHECKPOINT_LAG_SHARE: "0.5",
      ...options.env,
    },
  });
  // One term, no lease: the election's renewals would need the network at every advance.
  const config: Config = { ...parsed, leaderElection: false };
  const metrics = new Metrics();
  const health: HealthServer = await startHealthServer({
    hostname: "127.0.0.1",
    port: 0,
    ready: () => true,
    metrics: async () => ({ contentType: metrics.contentType, text: await metrics.render() }),
  });
  const clock = options.shared?.clock ?? new FakeClock(Date.now());
  const sink = new FlakySink();
  const stop = new AbortController();
  let settled = false;
  const done = runCollector(
    {
      client,
      config,
      identity: options.identity ?? "replica-a",
      sinks: [sink],
      metrics,
      clock,
      observer: options.observer,
    },
    stop.signal,
  ).finally(() => void (settled = true));
  return {
    server,
    clock,
    sink,
    stop,
    done,
    settled: () => settled,
    scrape: async () => {
      const res = await fetch(`http://127.0.0.1:${health.port}/metrics`);
      assert.equal(res.status, 200);
      return await res.text();
    },
    tokenRv: () => {
      const cm = server.get("configmaps", NS, parsed.tokenConfigMapName);
      return (cm?.data as Record<string, string> | undefined)?.[TOKEN_KEY];
    },
    [Symbol.asyncDispose]: async () => {
      stop.abort(new Error("Test over"));
      // The drain waits on the failing sink until the shutdown budget, on the fake clock.
      await clock.runUntil(() => settled, { stepMs: 1000, maxMs: 60_000 });
      await within(done, BOUND_MS, "the collector to stop");
      await health.close();
      await client.close();
      if (options.shared === undefined) await server[Symbol.asyncDispose]();
    },
  };
}

/**
 * Creates an event once the watch is open and waits until the sink was
 * tried with it; returns the event's resourceVersion and when it was read.
 */
async function eventReadAndRefused(
  r: Replica,
  name: string,
): Promise<{ rv: string; readAt: number }> {
  await eventually(() => r.server.watchCount > 0, "the term's watch to open", BOUND_MS);
  const attempts = r.sink.attempts;
  const created = r.server.create("events", NS, coreEvent(NS, name));
  await eventually(() => r.sink.attempts > attempts, "the sink to be tried", BOUND_MS);
  // No time passed on the fake clock since the event was read.
  return { rv: created.metadata.resourceVersion!, readAt: r.clock.now() };
}

/** The checkpoint's log records about the lag limit, as [level, message]. */
function lagLogs(records: LogRecord[]): [string, string][] {
  return records
    .filter((r) => r.category.join(".") === "kevents.checkpoint")
    .map((r): [string, string] => [r.level, r.message.map(String).join("")])
    .filter(([, m]) => /checkpoint lag/i.test(m));
}

Deno.test("the checkpoint lag grows while a sink fails, is warned about once past its limit, and is 0 again once delivered and checkpointed", async (t) => {
  await using logs = await captureLogs();
  await using r = await startReplica();

  await t.step(
    "every replica exports the event TTL and the limit; nothing read, no lag",
    async () => {
      const text = await r.scrape();
      assert.equal(sample(text, "kevents_event_ttl_seconds"), TTL_SECONDS);
      assert.equal(sample(text, "kevents_checkpoint_lag_limit_seconds"), LIMIT_SECONDS);
      assert.equal(sample(text, "kevents_checkpoint_lag_seconds"), 0);
      assert.equal(sample(text, "kevents_checkpoint_last_write_timestamp_seconds"), 0);
    },
  );

  const { rv, readAt } = await eventReadAndRefused(r, "web-1.a");

  await t.step("the lag is the time since the event was read, on the pump's clock", async () => {
    await r.clock.advance(60_000);
    assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 60);
    await r.clock.advance(60_000);
    assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 120);
    assert.ok(BigInt(r.tokenRv() ?? "0") < BigInt(rv), "the event is not checkpointed");
  });

  await t.step(
    "no warning under the limit, one when it is crossed, not one per check",
    async () => {
      await r.clock.advance(readAt + (LIMIT_SECONDS - 10) * 1000 - r.clock.now());
      assert.deepEqual(lagLogs(logs.records), []);
      await r.clock.advance(30_000);
      let logged = lagLogs(logs.records);
      assert.equal(logged.length, 1, JSON.stringify(logged));
      assert.equal(logged[0]![0], "warning");
      assert.match(
        logged[0]![1],
        new RegExp(
          `^The checkpoint lags 3[0-2]\\d s .* over its limit of ${LIMIT_SECONDS} s ` +
            `\\(50% of the ${TTL_SECONDS} s event TTL\\)`,
        ),
      );
      await r.clock.advance(100_000);
      logged = lagLogs(logs.records);
      assert.equal(logged.length, 1, JSON.stringify(logged));
      assert.equal(
        sample(await r.scrape(), "kevents_checkpoint_lag_seconds"),
        (r.clock.now() - readAt) / 1000,
      );
    },
  );

  await t.step(
    "delivered and checkpointed: the lag is 0, and back under is said once",
    async () => {
      r.sink.up = true;
      // The pump retries within its backoff's cap (30 s, +20%); the checkpoint follows within 1 s.
      await r.clock.runUntil(
        () => r.sink.delivered.length === 1 && BigInt(r.tokenRv() ?? "0") >= BigInt(rv),
        { stepMs: 1000, maxMs: 120_000, message: "the event to be delivered and checkpointed" },
      );
      const text = await r.scrape();
      assert.equal(sample(text, "kevents_checkpoint_lag_seconds"), 0);
      const lastWrite = sample(text, "kevents_checkpoint_last_write_timestamp_seconds");
      assert.ok(
        lastWrite * 1000 > readAt + LIMIT_SECONDS * 1000 && lastWrite * 1000 <= r.clock.now(),
        `last write at ${lastWrite}`,
      );
      const logged = lagLogs(logs.records);
      assert.deepEqual(logged.map(([level]) => level), ["warning", "info"]);
      assert.match(logged[1]![1], /^The checkpoint lag is back under its limit of 300 s \(0 s\)$/);
    },
  );
});

Deno.test("a replica that stops leading exports a checkpoint lag of 0, whatever its last term left", async () => {
  await using r = await startReplica();
  await eventReadAndRefused(r, "web-2.b");
  await r.clock.advance(90_000);
  assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 90);
  r.stop.abort(new Error("Stopped by the test"));
  await r.clock.runUntil(() => r.settled(), { stepMs: 1000, maxMs: 60_000 });
  await within(r.done, BOUND_MS, "the collector to stop");
  const text = await r.scrape();
  assert.equal(sample(text, "kevents_checkpoint_lag_seconds"), 0);
  assert.equal(sample(text, "kevents_checkpoint_lag_limit_seconds"), LIMIT_SECONDS);
});

/** The pump's log records with this message template. */
function pumpLogs(records: LogRecord[], template: string): LogRecord[] {
  return records.filter((r) =>
    r.category.join(".") === "kevents.pump" && r.rawMessage === template
  );
}

Deno.test("a relist after 410 Gone while the sink is down keeps the older arrivals and reads nothing twice", async () => {
  await using logs = await captureLogs();
  await using r = await startReplica();
  const a = await eventReadAndRefused(r, "web-3.c");
  await r.clock.advance(60_000);
  assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 60);

  // The term's first list, from "now".
  const listed = "Listed {pages} pages at {rv}; {delivered} events to deliver";
  assert.equal(pumpLogs(logs.records, listed).length, 1);
  // In one go, before the pump runs again: the watch ends, an event comes
  // while none is open, and the history it would resume from is gone.
  r.server.dropWatches({ abrupt: false });
  const b = r.server.create("events", NS, coreEvent(NS, "web-4.d"));
  r.server.compactNow();
  await eventually(
    () => pumpLogs(logs.records, listed).length === 2,
    "the relist to end",
    BOUND_MS,
  );
  assert.equal(
    pumpLogs(logs.records, "Resource version {rv} is gone ({error}): relisting").length,
    1,
    "relisted after a 410",
  );
  assert.equal(pumpLogs(logs.records, listed)[1]!.properties.delivered, 1, "only the new event");

  // The oldest event still waits: the lag counts from its arrival, not the relist's.
  assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 60);
  await r.clock.advance(30_000);
  assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 90);

  r.sink.up = true;
  const bRv = b.metadata.resourceVersion!;
  await r.clock.runUntil(
    () => r.sink.delivered.length >= 2 && BigInt(r.tokenRv() ?? "0") >= BigInt(bRv),
    { stepMs: 1000, maxMs: 120_000, message: "both events to be delivered and checkpointed" },
  );
  assert.deepEqual(
    r.sink.delivered.map((d) => d.event.metadata?.resourceVersion),
    [a.rv, bRv],
    "each event once",
  );
  // Every event read is covered by the written checkpoint: none was counted twice.
  assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 0);
});

Deno.test("a new leader's lag starts at 0 and counts from its own reads, not from the old leader's", async () => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const clock = new FakeClock(Date.now());
  const shared = { server, clock };
  await using a = await startReplica({ shared, identity: "replica-a" });
  const { rv } = await eventReadAndRefused(a, "web-5.e");
  await clock.advance(200_000);
  assert.equal(sample(await a.scrape(), "kevents_checkpoint_lag_seconds"), 200);
  a.stop.abort(new Error("Handover"));
  await clock.runUntil(() => a.settled(), { stepMs: 1000, maxMs: 60_000 });
  await within(a.done, BOUND_MS, "the old leader to stop");
  assert.ok(BigInt(a.tokenRv() ?? "0") < BigInt(rv), "the event is not checkpointed");

  await using b = await startReplica({ shared, identity: "replica-b" });
  assert.equal(sample(await b.scrape(), "kevents_checkpoint_lag_seconds"), 0);
  // It resumes from the old leader's checkpoint and reads the event again.
  await eventually(() => b.sink.attempts > 0, "the new leader to try the event", BOUND_MS);
  assert.equal(b.sink.attempts, 1);
  assert.equal(sample(await b.scrape(), "kevents_checkpoint_lag_seconds"), 0);
  await clock.advance(30_000);
  assert.equal(sample(await b.scrape(), "kevents_checkpoint_lag_seconds"), 30);
  assert.equal(sample(await a.scrape(), "kevents_checkpoint_lag_seconds"), 0);
});

Deno.test("when the checkpoint cannot reach the ConfigMap the lag keeps growing from the oldest event read; filtered events do not count", async () => {
  await using logs = await captureLogs();
  const filtered: string[] = [];
  // Two reasons: a client-side filter (one would go into the field selector).
  const env = { KEVENTS_INCLUDE_REASONS: "Started,Killing" };
  const server = await startFakeApiServer({ serveComponentStatuses: false });
  // An immutable ConfigMap cannot hold the token: every position stays in memory.
  server.create("configmaps", NS, {
    metadata: { name: "datadogtoken", namespace: NS },
    immutable: true,
    data: {},
  });
  const clock = new FakeClock(Date.now());
  await using _server = server;
  await using r = await startReplica({
    shared: { server, clock },
    env,
    observer: { filtered: (e) => void filtered.push(e.metadata?.name ?? "") },
  });
  r.sink.up = true;
  await eventually(() => server.watchCount > 0, "the term's watch to open", BOUND_MS);

  server.create("events", NS, coreEvent(NS, "web-6.f", { reason: "Pulled" }));
  await eventually(() => filtered.length === 1, "the event to be filtered out", BOUND_MS);
  await clock.advance(120_000);
  assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 0);

  server.create("events", NS, coreEvent(NS, "web-7.g"));
  await eventually(() => r.sink.delivered.length === 1, "the event to be delivered", BOUND_MS);
  const readAt = clock.now();
  // Delivered, and its position acknowledged, but never written: it still counts.
  await clock.advance(60_000);
  assert.equal(sample(await r.scrape(), "kevents_checkpoint_lag_seconds"), 60);
  server.create("events", NS, coreEvent(NS, "web-8.h", { reason: "Killing" }));
  await eventually(() => r.sink.delivered.length === 2, "the next event", BOUND_MS);
  await clock.advance(LIMIT_SECONDS * 1000);
  const text = await r.scrape();
  assert.equal(sample(text, "kevents_checkpoint_lag_seconds"), (clock.now() - readAt) / 1000);
  assert.equal(sample(text, "kevents_checkpoint_last_write_timestamp_seconds"), 0);
  assert.equal(r.tokenRv(), undefined, "nothing written to the ConfigMap");
  const logged = lagLogs(logs.records);
  assert.equal(logged.length, 1, JSON.stringify(logged));
  assert.equal(logged[0]![0], "warning");
});

Deno.test("without checkpoint writes, a day of reading keeps at most MAX_LAG_MARKS arrival marks and the lag exact; a later write leaves it at most slightly high", async () => {
  const clock = new FakeClock();
  const lag = new CheckpointLag({ limitMs: 1_800_000, eventTtlMs: 3_600_000, clock });
  const start = clock.now();
  const DAY_S = 86_400;
  /** The arrival of each event read, by number (1-based). */
  const arrivals: number[] = [0];
  let most = 0;
  for (let hour = 0; hour < 24; hour++) {
    // Three events a second, every second of the hour.
    for (let s = hour * 3600; s < (hour + 1) * 3600; s++) {
      for (let i = 0; i < 3; i++) {
        const at = start + s * 1000 + i * 100;
        assert.equal(lag.read(at), arrivals.length);
        arrivals.push(at);
      }
    }
    await clock.advance(3_600_000);
    most = Math.max(most, lag.marks);
    assert.equal(lag.ms(), (hour + 1) * 3_600_000, `the lag after ${hour + 1} h`);
  }
  assert.ok(most <= MAX_LAG_MARKS, `${most} marks`);
  assert.ok(lag.marks > MAX_LAG_MARKS / 8, `only ${lag.marks} marks`);

  // A write covering the first half: the lag is from the first event it leaves, or a little more.
  const half: Token = { resourceVersion: "100", timestamp: undefined };
  const covers = (arrivals.length - 1) / 2 + 1;
  lag.acknowledged(half, covers);
  lag.written(half);
  const exact = clock.now() - arrivals[covers + 1]!;
  const slack = (4 * DAY_S * 1000) / MAX_LAG_MARKS;
  assert.ok(lag.ms() >= exact && lag.ms() <= exact + slack, `${lag.ms()} against ${exact}`);

  // All written: nothing waits, and arrivals are noted to the second again.
  const all: Token = { resourceVersion: "200", timestamp: undefined };
  lag.acknowledged(all, arrivals.length - 1);
  lag.written(all);
  assert.deepEqual([lag.ms(), lag.marks], [0, 0]);
  lag.read(clock.now());
  lag.read(clock.now() + 1500);
  assert.equal(lag.marks, 2);
});

Deno.test("at the smallest limit the settings allow (1% of a 60 s TTL) the lag is checked once a second", async () => {
  const clock = new FakeClock();
  let sleeps = 0;
  const counting: Clock = {
    now: () => clock.now(),
    sleep: (ms, signal) => {
      sleeps++;
      return clock.sleep(ms, signal);
    },
  };
  const lag = new CheckpointLag({ limitMs: 600, eventTtlMs: 60_000, clock: counting });
  const stop = new AbortController();
  const watching = lag.watch(stop.signal);
  await clock.advance(10_000);
  stop.abort(new Error("Test over"));
  await within(watching, BOUND_MS, "the watch to stop");
  assert.ok(sleeps >= 10 && sleeps <= 11, `${sleeps} checks in 10 s`);
});
