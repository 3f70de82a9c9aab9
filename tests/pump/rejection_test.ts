/**
 * Specification of what a leadership term does with an event a receiver
 * refuses for good: the pump sets it aside (one warning naming its key,
 * counted in `kevents_sink_rejected_events_total`), delivers the events
 * after it and moves the checkpoint past it; a refused API key (403) is
 * retried instead, setting nothing aside. A term runs against the fake API
 * server and a local receiver standing in for the Datadog intake, both over
 * the network; every wait is on a condition, bounded by a timeout.
 */

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import { runTerm } from "../../lib/collector.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import {
  type FakeApiServer,
  formatTime,
  type KubeObject,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { Metrics } from "../../lib/ops/metrics.ts";
import { type DatadogEvent, DatadogSink } from "../../lib/sinks/datadog.ts";
import { type Reply, startReceiver } from "../_http_receiver.ts";
import { waitUntil, within } from "../_fake_api.ts";
import { captureLogs } from "../_logs.ts";

const NS = "default";
const API_KEY = "abcdef0123456789abcdef0123456789";
/** Bound of every wait: generous, for a loaded 2-core machine. */
const BOUND_MS = 20_000;

/** What the intake answers to an event older than it takes. */
const TOO_OLD: Reply = {
  status: 400,
  body:
    '{"errors":["Event date_happened is too old: events older than 18 hours are not accepted"]}',
};

/** A fake API server, a client of it, and the checkpoint seeded at its current position. */
async function cluster() {
  const server = await startFakeApiServer();
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  // Every event created from here on is to be delivered.
  server.create("configmaps", NS, {
    metadata: { name: "datadogtoken" },
    data: { [TOKEN_KEY]: String(server.store.currentRv) },
  });
  return {
    server,
    client,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server[Symbol.asyncDispose]();
    },
  };
}

/** A Datadog intake on 127.0.0.1: `answer` decides per event; `titles` has every event posted. */
function intake(answer: (title: string) => Reply) {
  const titles: string[] = [];
  const receiver = startReceiver({
    fallback: (req) => {
      if (!req.path.startsWith("/api/v1/events")) return { status: 202 };
      const { title } = JSON.parse(req.body) as DatadogEvent;
      titles.push(title);
      return answer(title);
    },
  });
  return { receiver, titles, [Symbol.asyncDispose]: () => receiver.shutdown() };
}

let seq = 0;

/** Creates an event about its own pod, `<name>-<n>`, so that each is one Datadog event. */
function createEvent(server: FakeApiServer, name: string): KubeObject {
  const at = formatTime(new Date());
  const pod = `${name}-${++seq}`;
  return server.create("events", NS, {
    metadata: { name: `${pod}.event` },
    involvedObject: { apiVersion: "v1", kind: "Pod", namespace: NS, name: pod },
    reason: "Started",
    message: `Started ${pod}`,
    type: "Normal",
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: "kubelet", host: "node-1" },
  });
}

const keyOf = (o: KubeObject) => `${o.metadata.uid}/${o.metadata.resourceVersion}`;
const titleOf = (o: KubeObject) =>
  `Events from the Pod ${NS}/${(o.involvedObject as { name: string }).name}`;

/** Runs one term delivering to `sink` until disposed. */
function startTerm(client: KubeClient, sink: DatadogSink, metrics: Metrics): AsyncDisposable {
  // Events only: without KUBERNETES there is no control-plane check posting to the intake.
  const config = parseConfig({
    env: {
      DD_COLLECT_KUBERNETES_EVENTS: "true",
      KEVENTS_LEASE_DURATION_MS: "30000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "50",
    },
  });
  const controller = new AbortController();
  const done = runTerm(
    { client, config, identity: "a", sinks: [sink], metrics },
    { identity: "a", transitions: 0, signal: controller.signal },
  );
  return {
    async [Symbol.asyncDispose]() {
      controller.abort(new Error("Test over"));
      await within(done, BOUND_MS, "the term to stop");
    },
  };
}

/** Resolves once the checkpoint is at or past `event`'s resourceVersion. */
function untilCheckpointPast(server: FakeApiServer, event: KubeObject): Promise<void> {
  const checkpoint = () =>
    Number(
      (server.get("configmaps", NS, "datadogtoken")?.data as Record<string, string>)[
        TOKEN_KEY
      ],
    );
  return waitUntil(
    `the checkpoint reached ${event.metadata.resourceVersion} (it is at ${checkpoint()})`,
    () => checkpoint() >= Number(event.metadata.resourceVersion),
    (wake) => server.store.subscribe(wake),
    BOUND_MS,
  );
}

/** The value of the sample `name{labels}` in a Prometheus text exposition (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map(
      [...(m[2] ?? "").matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]),
    );
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) total += Number(m[3]);
  }
  return total;
}

/** The pump's warnings whose message starts with `text`. */
function warnings(records: readonly LogRecord[], text: string): LogRecord[] {
  return records.filter((r) =>
    r.level === "warning" && r.category.join(".") === "kevents.pump" &&
    String(r.rawMessage).startsWith(text)
  );
}

Deno.test("an event the Datadog intake refuses for good is set aside: later events are delivered, the checkpoint moves past it, it is counted once and logged with its key", async () => {
  await using c = await cluster();
  await using logs = await captureLogs();
  await using dd = intake((title) => title.includes("/stale-") ? TOO_OLD : { status: 202 });
  const sink = new DatadogSink({ apiKey: API_KEY, url: dd.receiver.url });
  await using _sink = { [Symbol.asyncDispose]: () => sink.close() };
  const metrics = new Metrics();

  const first = createEvent(c.server, "first");
  const stale = createEvent(c.server, "stale");
  {
    await using _term = startTerm(c.client, sink, metrics);
    await dd.receiver.received(2, BOUND_MS);
    const later = createEvent(c.server, "later");
    await dd.receiver.received(3, BOUND_MS);
    await untilCheckpointPast(c.server, later);
    assert.deepEqual(
      dd.titles,
      [first, stale, later].map(titleOf),
      "each posted once: the refused event is not sent again",
    );
  }

  const text = await metrics.render();
  assert.equal(sample(text, "kevents_sink_rejected_events_total", { sink: "datadog" }), 1);
  assert.equal(sample(text, "kevents_events_delivered_total", { sink: "datadog" }), 2);
  assert.equal(sample(text, "kevents_sink_errors_total", { sink: "datadog" }), 0);
  const setAside = warnings(logs.records, "Sink {sink} set aside event {key}");
  assert.equal(setAside.length, 1, "one warning per set-aside event");
  assert.deepEqual(setAside[0]!.properties, {
    sink: "datadog",
    key: keyOf(stale),
    status: 400,
    reason: TOO_OLD.body,
  });
  assert.deepEqual(warnings(logs.records, "Sink {sink} failed to take"), [], "nothing retried");
});

Deno.test("a 403 (a bad API key) sets nothing aside: the pump retries the batch until the intake takes it", async () => {
  await using c = await cluster();
  await using logs = await captureLogs();
  let refusals = 2;
  await using dd = intake(() => refusals-- > 0 ? { status: 403 } : { status: 202 });
  const sink = new DatadogSink({ apiKey: API_KEY, url: dd.receiver.url });
  await using _sink = { [Symbol.asyncDispose]: () => sink.close() };
  const metrics = new Metrics();

  const event = createEvent(c.server, "keyed");
  {
    await using _term = startTerm(c.client, sink, metrics);
    await dd.receiver.received(3, BOUND_MS);
    await untilCheckpointPast(c.server, event);
    assert.deepEqual(dd.titles, Array(3).fill(titleOf(event)));
  }

  const text = await metrics.render();
  assert.equal(sample(text, "kevents_sink_rejected_events_total", { sink: "datadog" }), 0);
  assert.equal(sample(text, "kevents_sink_errors_total", { sink: "datadog" }), 2);
  assert.equal(sample(text, "kevents_events_delivered_total", { sink: "datadog" }), 1);
  assert.equal(warnings(logs.records, "Sink {sink} failed to take").length, 2);
  assert.deepEqual(warnings(logs.records, "Sink {sink} set aside"), []);
});
