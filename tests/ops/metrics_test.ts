/**
 * Specification of kevents' metrics: a leadership term against the fake API
 * server, scraped through the health endpoint's `/metrics` over HTTP, with
 * the counts compared to what the sinks and the server saw.
 */

import assert from "node:assert/strict";
import { TERM_ANNOTATION } from "../../lib/checkpoint/checkpointer.ts";
import { runTerm } from "../../lib/collector.ts";
import { type Config, parseConfig } from "../../lib/config/mod.ts";
import { startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { startHealthServer } from "../../lib/ops/health_server.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { Liveness } from "../../lib/ops/liveness.ts";
import { Metrics } from "../../lib/ops/metrics.ts";
import { runPump } from "../../lib/pump/pump.ts";
import type { EventRecord, Sink } from "../../lib/sinks/sink.ts";
import { coreEvent, eventually, within } from "../_fake_api.ts";

const BOUND_MS = 20_000;

/** Accepts every batch and counts its records. */
class CountingSink implements Sink {
  readonly records: EventRecord[] = [];
  constructor(readonly name: string) {}
  send(batch: readonly EventRecord[]): Promise<void> {
    this.records.push(...batch);
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Gives every batch up, as a sink with `on_failure: drop` does after its attempts. */
class DroppingSink implements Sink {
  readonly name = "dropping";
  dropped = 0;
  send(batch: readonly EventRecord[]): Promise<void> {
    this.dropped += batch.length;
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The value of the sample `name{labels}` in a Prometheus text exposition (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map(
      [...(m[2] ?? "").matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]),
    );
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) total += Number(m[3]);
  }
  return total;
}

function configWith(env: Record<string, string>): Config {
  return parseConfig({
    env: {
      KUBERNETES: "1",
      KEVENTS_LEASE_DURATION_MS: "30000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "50",
      // Enrichment's lookups (tests/enrich) would add GETs to the counts below.
      KEVENTS_ENRICH: "false",
      ...env,
    },
  });
}

Deno.test("a term's metrics, scraped from /metrics, match what the sinks and the server saw", async (t) => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const metrics = new Metrics();
  const liveness = new Liveness();
  const client = new KubeClient(kc, { metrics });
  const health = await startHealthServer({
    hostname: "127.0.0.1",
    port: 0,
    ready: () => true,
    live: () => liveness.check(60_000),
    metrics: async () => ({ contentType: metrics.contentType, text: await metrics.render() }),
  });
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${health.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    return await res.text();
  };
  const recording = new CountingSink("recording");
  const dropping = new DroppingSink();
  const config = configWith({ KEVENTS_INCLUDE_REASONS: "Started,BackOff" });
  const stop = new AbortController();
  const term = runTerm(
    { client, config, identity: "a", sinks: [recording, dropping], metrics, liveness },
    { identity: "a", transitions: 4, signal: stop.signal },
  );
  try {
    await eventually(() => server.watchCount > 0, "the term's watch to open", BOUND_MS);

    await t.step("events received, filtered, delivered and dropped, by sink and type", async () => {
      // The excluded one first: once the 5 others are delivered, it has been read too.
      server.create("events", "default", coreEvent("default", "web-0.c", { reason: "Pulled" }));
      for (let i = 0; i < 3; i++) {
        server.create("events", "default", coreEvent("default", `web-${i}.a`));
      }
      for (let i = 0; i < 2; i++) {
        server.create(
          "events",
          "default",
          coreEvent("default", `db-${i}.b`, { type: "Warning", reason: "BackOff" }),
        );
      }
      await eventually(() => recording.records.length === 5, "5 deliveries", BOUND_MS);
      const text = await scrape();
      assert.equal(sample(text, "kevents_events_received_total", { type: "Normal" }), 4);
      assert.equal(sample(text, "kevents_events_received_total", { type: "Warning" }), 2);
      assert.equal(sample(text, "kevents_events_filtered_total", { type: "Normal" }), 1);
      assert.equal(
        sample(text, "kevents_events_delivered_total", { sink: "recording", type: "Normal" }),
        3,
      );
      assert.equal(
        sample(text, "kevents_events_delivered_total", { sink: "recording", type: "Warning" }),
        2,
      );
      assert.equal(sample(text, "kevents_events_delivered_total", { sink: "dropping" }), 0);
      assert.equal(sample(text, "kevents_events_dropped_total", { sink: "dropping" }), 5);
      assert.equal(sample(text, "kevents_events_dropped_total", { sink: "recording" }), 0);
      assert.equal(
        sample(text, "kevents_delivery_latency_seconds_count", { sink: "recording" }),
        5,
      );
      assert.equal(sample(text, "kevents_queue_depth"), 0);
    });

    await t.step("leadership, lists and API requests by verb and code", async () => {
      const text = await scrape();
      assert.equal(sample(text, "kevents_leader"), 1);
      assert.equal(sample(text, "kevents_leader_terms_total"), 1);
      assert.equal(sample(text, "kevents_leader_transitions"), 4);
      assert.equal(sample(text, "kevents_relists_total"), 1, "the first list, for 'now'");
      assert.equal(sample(text, "kevents_list_pages_total"), 1);
      assert.equal(sample(text, "kevents_api_requests_total", { verb: "list", code: "200" }), 1);
      assert.equal(sample(text, "kevents_api_requests_total", { verb: "watch", code: "200" }), 1);
      // The token ConfigMap: read (404), created, stamped with the term.
      assert.equal(sample(text, "kevents_api_requests_total", { verb: "get", code: "404" }), 1);
      assert.equal(
        sample(text, "kevents_api_requests_total", { verb: "create", code: "201" }),
        1,
      );
      assert.ok(sample(text, "process_resident_memory_bytes") > 0);
    });

    await t.step("checkpoint writes are counted", async () => {
      let text = "";
      await pollUntil(async () => {
        text = await scrape();
        return sample(text, "kevents_checkpoint_writes_total", { result: "written" }) > 0;
      }, "a checkpoint write");
      assert.ok(sample(text, "kevents_checkpoint_writes_total", { result: "written" }) >= 1);
      assert.equal(
        sample(text, "kevents_checkpoint_writes_total", { result: "written" }),
        sample(text, "kevents_api_requests_total", { verb: "update", code: "200" }),
        "the ConfigMap was created with the term's stamp: every update is a checkpoint write",
      );
    });

    await t.step("a broken watch and an expired resourceVersion count as restarts", async () => {
      const restarts = async (reason: string) =>
        sample(await scrape(), "kevents_watch_restarts_total", { reason });
      assert.equal(await restarts("error"), 0);
      server.dropWatches();
      await pollUntil(async () => await restarts("error") === 1, "an error restart");
      await eventually(() => server.watchCount > 0, "the watch to reopen", BOUND_MS);
      server.compactNow();
      server.dropWatches();
      await pollUntil(async () => await restarts("expired") === 1, "an expired restart");
      await pollUntil(
        async () => sample(await scrape(), "kevents_relists_total") === 2,
        "the relist after 410",
      );
    });

    await t.step("/healthz reports the leader's watch alive", async () => {
      const res = await fetch(`http://127.0.0.1:${health.port}/healthz`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^ok: the watch received something/);
    });

    await t.step("the leader gauge drops to 0 when the term ends", async () => {
      stop.abort(new Error("Test over"));
      await within(term, BOUND_MS, "the term to stop");
      const text = await scrape();
      assert.equal(sample(text, "kevents_leader"), 0);
      assert.equal(sample(text, "kevents_leader_terms_total"), 1);
    });
  } finally {
    stop.abort(new Error("Test over"));
    await term.catch(() => {});
    await health.close();
    await client.close();
  }
});

Deno.test("a deposed leader's refused checkpoint write counts as fenced", async () => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  const config = configWith({});
  const metricsA = new Metrics();
  const metricsB = new Metrics();
  const a = new AbortController();
  const b = new AbortController();
  const sinkA = new CountingSink("a");
  const sinkB = new CountingSink("b");
  const termA = runTerm({ client, config, identity: "a", sinks: [sinkA], metrics: metricsA }, {
    identity: "a",
    transitions: 0,
    signal: a.signal,
  });
  try {
    await eventually(() => server.watchCount === 1, "a's watch", BOUND_MS);
    // b stamps its term into the ConfigMap: a's next write must be refused.
    const termB = runTerm({ client, config, identity: "b", sinks: [sinkB], metrics: metricsB }, {
      identity: "b",
      transitions: 1,
      signal: b.signal,
    });
    try {
      // b's stamp is in the ConfigMap. (Not "b's watch is open": a, reading the ConfigMap every
      // idle interval, may meet the stamp and end before b's watch opens on a loaded machine.)
      const stampedBy = () => {
        const cm = server.get("configmaps", config.resourcesNamespace, config.tokenConfigMapName);
        return (cm?.metadata as { annotations?: Record<string, string> } | undefined)
          ?.annotations?.[TERM_ANNOTATION];
      };
      await eventually(() => stampedBy()?.startsWith("b") === true, "b's stamp", BOUND_MS);
      server.create("events", "default", coreEvent("default", "web-0.x"));
      // a's term ends by itself once its write is fenced.
      await within(termA, BOUND_MS, "a's term to end on the fenced write");
      const text = await metricsA.render();
      assert.equal(sample(text, "kevents_checkpoint_writes_total", { result: "fenced" }), 1);
      assert.equal(sample(text, "kevents_leader"), 0);
      assert.equal(
        sample(await metricsB.render(), "kevents_checkpoint_writes_total", { result: "fenced" }),
        0,
      );
    } finally {
      b.abort(new Error("Test over"));
      await termB.catch(() => {});
    }
  } finally {
    a.abort(new Error("Test over"));
    await termA.catch(() => {});
    await client.close();
  }
});

Deno.test("a watch that goes silent past its timeout is restarted as stalled, and resumes", async () => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  const metrics = new Metrics();
  const liveness = new Liveness();
  const sink = new CountingSink("recording");
  const stop = new AbortController();
  const pump = runPump({
    client,
    sinks: [sink],
    token: undefined,
    acknowledge: () => {},
    watchTimeoutSeconds: 1,
    metrics,
    liveness,
  }, stop.signal);
  try {
    await eventually(() => server.watchCount > 0, "the watch to open", BOUND_MS);
    server.stallWatches();
    const stalled = async () =>
      sample(await metrics.render(), "kevents_watch_restarts_total", { reason: "stalled" });
    await pollUntil(async () => await stalled() >= 1, "a stalled restart");
    server.stallWatches(false);
    server.create("events", "default", coreEvent("default", "after-stall.x"));
    await eventually(() => sink.records.length === 1, "the delivery after the stall", BOUND_MS);
    assert.equal(sink.records[0]!.event.metadata?.name, "after-stall.x");
  } finally {
    stop.abort(new Error("Test over"));
    await pump.catch(() => {});
    await client.close();
  }
});

/** Re-checks an async condition every few ms until it holds (bounded). */
async function pollUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
