/**
 * Specification of the Datadog sink against a local receiver standing in
 * for the Datadog API: the Events API payloads (bundled as the Agent does,
 * or one per Kubernetes event), counts of repeated events reported once,
 * retries, events refused for good (set aside), a bad API key, the drop
 * policy, service checks, and the settings.
 */

import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import { generateTlsMaterial } from "../../lib/fake_apiserver/tls.ts";
import { HttpSinkError } from "../../lib/sinks/_http.ts";
import {
  countIncreases,
  type DatadogEvent,
  DatadogSink,
  type DatadogSinkOptions,
  MAX_TEXT_LENGTH,
  OccurrenceCounts,
  toDatadogEvents,
} from "../../lib/sinks/datadog.ts";
import type { EventRecord, ServiceCheck } from "../../lib/sinks/sink.ts";
import { InstantClock, type ReceivedRequest, startReceiver } from "../_http_receiver.ts";

const API_KEY = "abcdef0123456789abcdef0123456789";
const never = new AbortController().signal;
const T0 = Date.UTC(2026, 0, 1);

/** An RFC 3339 time `s` seconds after T0. */
function at(s: number): string {
  return new Date(T0 + s * 1000).toISOString().replace(".000Z", "Z");
}

interface EventSpec {
  /** Event name; its uid is `uid-<name>`. */
  name: string;
  rv?: string;
  kind?: string;
  object?: string;
  namespace?: string;
  objectUid?: string;
  type?: "Normal" | "Warning";
  reason?: string;
  message?: string;
  count?: number;
  first?: number;
  last?: number;
  host?: string;
  component?: string;
  reportingComponent?: string;
}

function kevent(s: EventSpec): CoreV1Event {
  const namespace = s.namespace ?? "default";
  return {
    metadata: { name: s.name, namespace, uid: `uid-${s.name}`, resourceVersion: s.rv ?? "1" },
    involvedObject: {
      kind: s.kind ?? "Pod",
      name: s.object ?? "web-1",
      ...(namespace === "" ? {} : { namespace }),
      uid: s.objectUid ?? "pod-1",
    },
    type: s.type ?? "Warning",
    reason: s.reason ?? "BackOff",
    message: s.message ?? "Back-off restarting failed container",
    count: s.count ?? 1,
    // The API sends times as text, whatever the client-node types say.
    firstTimestamp: at(s.first ?? 0) as unknown as Date,
    lastTimestamp: at(s.last ?? s.first ?? 0) as unknown as Date,
    source: {
      component: s.component ?? "kubelet",
      ...(s.host === undefined ? {} : { host: s.host }),
    },
    ...(s.reportingComponent === undefined ? {} : { reportingComponent: s.reportingComponent }),
  };
}

function rec(s: EventSpec, type: "ADDED" | "MODIFIED" = "ADDED"): EventRecord {
  const e = kevent(s);
  return { key: `${e.metadata!.uid}/${e.metadata!.resourceVersion}`, type, event: e };
}

/** A sink posting to `url` (as dd_url), with an instant clock and no jitter. */
function sink(url: string, options: Partial<DatadogSinkOptions> = {}) {
  const clock = new InstantClock(T0 + 3600_000);
  const s = new DatadogSink({ apiKey: API_KEY, url, clock, random: () => 0.5, ...options });
  return { sink: s, clock, [Symbol.asyncDispose]: () => s.close() };
}

function posted(requests: readonly ReceivedRequest[]): DatadogEvent[] {
  return requests.map((r) => JSON.parse(r.body));
}

/** The text the Agent's bundler writes for these lines and times (seconds after T0). */
function bundleText(lines: string[], component: string, last: number, since: number): string {
  const time = (s: number) => `${at(s).slice(0, 10)} ${at(s).slice(11, 19)} +0000 UTC`;
  return `%%% \n${lines.join(" ")} \n _Events emitted by the ${component} seen at ${
    time(last)
  } since ${time(since)}_ \n\n %%%`;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("expected a rejection");
}

// A pod with two warnings (one repeated by two Event objects), a normal
// event of the same pod, a Node's warning and a Deployment's normal event.
const BATCH: EventRecord[] = [
  rec({ name: "e1", host: "node-1", first: 0, last: 0 }),
  rec({
    name: "e2",
    host: "node-1",
    reason: "Failed",
    message: "Error: ImagePullBackOff",
    count: 2,
    first: 5,
    last: 10,
  }),
  rec({
    name: "e3",
    host: "node-1",
    type: "Normal",
    reason: "Pulled",
    message: "Successfully pulled image",
    first: 3,
  }),
  rec({
    name: "e4",
    kind: "Node",
    object: "node-2",
    namespace: "",
    objectUid: "node-uid-2",
    reason: "NodeNotReady",
    message: "Node node-2 status is now: NodeNotReady",
    component: "node-controller",
    first: 20,
  }),
  rec({
    name: "e5",
    kind: "Deployment",
    object: "api",
    objectUid: "dep-1",
    type: "Normal",
    reason: "ScalingReplicaSet",
    message: "Scaled up replica set api-7d4 to 3 ~ from 1",
    component: "deployment-controller",
    reportingComponent: "deployment-controller",
    first: 30,
  }),
  rec({ name: "e6", host: "node-1", count: 3, first: -60, last: 8 }),
];

// ---- formatting ----------------------------------------------------------------

Deno.test("a batch becomes one Datadog event per involved object and event type, as the Agent's bundler makes them", async () => {
  await using receiver = startReceiver({ fallback: { status: 202, body: '{"status":"ok"}' } });
  await using s = sink(`${receiver.url}/`, { userAgent: "kevents/test" });
  await s.sink.send(BATCH, never);

  assert.equal(receiver.requests.length, 4, "one request per Datadog event");
  for (const r of receiver.requests) {
    assert.equal(r.method, "POST");
    assert.equal(r.path, "/api/v1/events");
    assert.equal(r.headers.get("dd-api-key"), API_KEY);
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.equal(r.headers.get("user-agent"), "kevents/test");
  }
  assert.deepEqual(posted(receiver.requests), [
    {
      title: "Events from the Pod default/web-1",
      text: bundleText(
        [
          "4 **BackOff**: Back-off restarting failed container\n",
          "2 **Failed**: Error: ImagePullBackOff\n",
        ],
        "kubelet",
        10,
        -60,
      ),
      date_happened: T0 / 1000 + 10,
      priority: "normal",
      host: "node-1",
      tags: [
        "event_reason:BackOff",
        "event_reason:Failed",
        "kube_kind:Pod",
        "kube_name:web-1",
        "kube_namespace:default",
        "kubernetes_kind:Pod",
        "name:web-1",
        "namespace:default",
        "orchestrator:kubernetes",
        "pod_name:web-1",
        "reporting_controller:",
        "source_component:kubelet",
      ],
      alert_type: "warning",
      aggregation_key: "kubernetes_apiserver:pod-1",
      source_type_name: "kubernetes",
    },
    {
      title: "Events from the Pod default/web-1",
      text: bundleText(["1 **Pulled**: Successfully pulled image\n"], "kubelet", 3, 3),
      date_happened: T0 / 1000 + 3,
      priority: "normal",
      host: "node-1",
      tags: [
        "event_reason:Pulled",
        "kube_kind:Pod",
        "kube_name:web-1",
        "kube_namespace:default",
        "kubernetes_kind:Pod",
        "name:web-1",
        "namespace:default",
        "orchestrator:kubernetes",
        "pod_name:web-1",
        "reporting_controller:",
        "source_component:kubelet",
      ],
      alert_type: "info",
      aggregation_key: "kubernetes_apiserver:pod-1",
      source_type_name: "kubernetes",
    },
    {
      title: "Events from the Node node-2",
      text: bundleText(
        ["1 **NodeNotReady**: Node node-2 status is now: NodeNotReady\n"],
        "node-controller",
        20,
        20,
      ),
      date_happened: T0 / 1000 + 20,
      priority: "normal",
      host: "node-2",
      tags: [
        "event_reason:NodeNotReady",
        "kube_kind:Node",
        "kube_name:node-2",
        "kubernetes_kind:Node",
        "name:node-2",
        "orchestrator:kubernetes",
        "reporting_controller:",
        "source_component:node-controller",
      ],
      alert_type: "warning",
      aggregation_key: "kubernetes_apiserver:node-uid-2",
      source_type_name: "kubernetes",
    },
    {
      title: "Events from the Deployment default/api",
      text: bundleText(
        ["1 **ScalingReplicaSet**: Scaled up replica set api-7d4 to 3 \\~ from 1\n"],
        "deployment-controller",
        30,
        30,
      ),
      date_happened: T0 / 1000 + 30,
      priority: "normal",
      tags: [
        "event_reason:ScalingReplicaSet",
        "kube_deployment:api",
        "kube_kind:Deployment",
        "kube_name:api",
        "kube_namespace:default",
        "kubernetes_kind:Deployment",
        "name:api",
        "namespace:default",
        "orchestrator:kubernetes",
        "reporting_controller:deployment-controller",
        "source_component:deployment-controller",
      ],
      alert_type: "info",
      aggregation_key: "kubernetes_apiserver:dep-1",
      source_type_name: "kubernetes",
    },
  ]);
});

Deno.test("with unbundleEvents each Kubernetes event becomes its own Datadog event", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, { unbundleEvents: true });
  await s.sink.send(BATCH, never);
  const events = posted(receiver.requests);
  assert.equal(events.length, 6);
  assert.deepEqual(events.map((e) => e.title), [
    "Pod default/web-1: BackOff",
    "Pod default/web-1: Failed",
    "Pod default/web-1: Pulled",
    "Node node-2: NodeNotReady",
    "Deployment default/api: ScalingReplicaSet",
    "Pod default/web-1: BackOff",
  ]);
  assert.deepEqual(events[0], {
    title: "Pod default/web-1: BackOff",
    text: "Back-off restarting failed container",
    date_happened: T0 / 1000,
    priority: "normal",
    host: "node-1",
    tags: [
      "event_reason:BackOff",
      "kube_kind:Pod",
      "kube_name:web-1",
      "kube_namespace:default",
      "kubernetes_kind:Pod",
      "name:web-1",
      "namespace:default",
      "orchestrator:kubernetes",
      "pod_name:web-1",
      "reporting_controller:",
      "source_component:kubelet",
    ],
    alert_type: "warning",
    aggregation_key: "kubernetes_apiserver:pod-1",
    source_type_name: "kubernetes",
  });
  assert.deepEqual(events.map((e) => e.alert_type), [
    "warning",
    "warning",
    "info",
    "warning",
    "info",
    "warning",
  ]);
  assert.deepEqual(events.map((e) => e.host), [
    "node-1",
    "node-1",
    "node-1",
    "node-2",
    undefined,
    "node-1",
  ]);
});

Deno.test("events without a kind, name, reason or message are not sent, as in the Agent", () => {
  const incomplete = [
    { ...kevent({ name: "a" }), reason: "" },
    { ...kevent({ name: "b" }), message: undefined },
    { ...kevent({ name: "c" }), involvedObject: { kind: "Pod" } },
  ];
  assert.deepEqual(toDatadogEvents(incomplete.map((event) => ({ event, increase: 1 }))), []);
});

Deno.test("a bundle whose text would pass the limit is split across events of the same object; nothing is lost", () => {
  const occurrences = Array.from({ length: 60 }, (_, i) => ({
    event: kevent({ name: `m${i}`, message: `Failed to pull image ${i}: ${"x".repeat(100)}` }),
    increase: i + 1,
  }));
  const events = toDatadogEvents(occurrences, { now: 0 });
  assert.ok(events.length > 1);
  let total = 0;
  for (const e of events) {
    assert.ok(e.text.length <= MAX_TEXT_LENGTH, `${e.text.length}`);
    assert.equal(e.aggregation_key, "kubernetes_apiserver:pod-1");
    for (const m of e.text.matchAll(/(\d+) \*\*BackOff\*\*/g)) total += Number(m[1]);
  }
  assert.equal(total, (60 * 61) / 2);

  const huge = toDatadogEvents([{
    event: kevent({ name: "h", message: "y".repeat(10_000) }),
    increase: 1,
  }]);
  assert.equal(huge.length, 1);
  assert.ok(huge[0]!.text.length <= MAX_TEXT_LENGTH);
  assert.match(huge[0]!.text, /^%%% \n1 \*\*BackOff\*\*: y+\.\.\.\n \n _Events emitted/);
});

// ---- counts ----------------------------------------------------------------------

Deno.test("repeated events are not double-counted: each reports the increase since it was last seen", async (t) => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url);
  const lineOf = (i: number) => posted(receiver.requests)[i]!.text.split("\n")[1];

  await t.step("first sight reports the whole count", async () => {
    await s.sink.send([rec({ name: "r", rv: "5", count: 1 })], never);
    assert.equal(lineOf(0), "1 **BackOff**: Back-off restarting failed container");
  });

  await t.step("MODIFIED with count 1 -> 3 reports 2", async () => {
    await s.sink.send([rec({ name: "r", rv: "6", count: 3 }, "MODIFIED")], never);
    assert.equal(lineOf(1), "2 **BackOff**: Back-off restarting failed container");
  });

  await t.step("a replay (same count) reports nothing and sends nothing", async () => {
    await s.sink.send([rec({ name: "r", rv: "6", count: 3 }, "MODIFIED")], never);
    await s.sink.send([rec({ name: "r", rv: "4", count: 1 }, "MODIFIED")], never);
    assert.equal(receiver.requests.length, 2);
  });

  await t.step("two changes of one event in a batch add up to the increase", async () => {
    await s.sink.send([
      rec({ name: "r", rv: "7", count: 4 }, "MODIFIED"),
      rec({ name: "r", rv: "8", count: 6 }, "MODIFIED"),
    ], never);
    assert.equal(lineOf(2), "3 **BackOff**: Back-off restarting failed container");
  });

  await t.step(
    "an event first seen as MODIFIED (after a restart) reports its whole count",
    async () => {
      await s.sink.send([rec({ name: "older", rv: "9", count: 5 }, "MODIFIED")], never);
      assert.equal(lineOf(3), "5 **BackOff**: Back-off restarting failed container");
    },
  );

  await t.step("unbundled, a change that adds nothing sends nothing", async () => {
    await using u = sink(receiver.url, { unbundleEvents: true });
    await u.sink.send([rec({ name: "u", rv: "1", count: 2 })], never);
    await u.sink.send([rec({ name: "u", rv: "2", count: 2 }, "MODIFIED")], never);
    await u.sink.send([rec({ name: "u", rv: "3", count: 3 }, "MODIFIED")], never);
    assert.equal(receiver.requests.length, 6);
  });
});

Deno.test("countIncreases leaves the map alone; OccurrenceCounts forgets the least recently seen", () => {
  const counts = new OccurrenceCounts(2);
  const { occurrences, updates } = countIncreases(
    [rec({ name: "a", count: 2 }), rec({ name: "a", count: 5 }), rec({ name: "b", count: 1 })],
    counts,
  );
  assert.deepEqual(occurrences.map((o) => o.increase), [2, 3, 1]);
  assert.deepEqual([...updates], [["uid-a", 5], ["uid-b", 1]]);
  assert.equal(counts.size, 0);

  counts.set("a", 1);
  counts.set("b", 1);
  counts.get("a");
  counts.set("a", 2); // a is now the most recently seen
  counts.set("c", 1);
  assert.equal(counts.get("b"), undefined, "b was forgotten first");
  assert.equal(counts.get("a"), 2);
  assert.equal(counts.size, 2);
  assert.throws(() => new OccurrenceCounts(0), RangeError);
});

Deno.test("a batch that failed midway resumes where it stopped, and its counts are kept only once it is accepted", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, { maxAttempts: 1 });
  const batch = [
    rec({ name: "a", objectUid: "pod-a", object: "a", count: 2 }),
    rec({ name: "b", objectUid: "pod-b", object: "b" }),
    rec({ name: "c", objectUid: "pod-c", object: "c" }),
  ];
  receiver.script({ status: 202 }, { status: 500, body: "oops" });
  const error = await rejection(s.sink.send(batch, never));
  assert.ok(error instanceof HttpSinkError);
  assert.equal(error.status, 500);
  assert.equal(receiver.requests.length, 2);

  // The pump sends the same batch again: a is not posted twice.
  await s.sink.send(batch, never);
  const titles = posted(receiver.requests).map((e) => e.title);
  assert.deepEqual(titles, [
    "Events from the Pod default/a",
    "Events from the Pod default/b",
    "Events from the Pod default/b",
    "Events from the Pod default/c",
  ]);
  // Counted once: the next change of a reports only its increase.
  await s.sink.send(
    [rec({ name: "a", rv: "2", objectUid: "pod-a", object: "a", count: 3 })],
    never,
  );
  assert.match(posted(receiver.requests)[4]!.text, /^%%% \n1 \*\*BackOff/);
});

// ---- failures ----------------------------------------------------------------------

Deno.test("503 and 429 are retried honouring Retry-After; 400 is not: the event is set aside with the intake's answer", async (t) => {
  await using receiver = startReceiver();

  await t.step("retried", async () => {
    await using s = sink(receiver.url);
    receiver.script({ status: 503, headers: { "Retry-After": "2" } }, {
      status: 429,
      headers: { "Retry-After": "1" },
    });
    await s.sink.send([BATCH[0]!], never);
    assert.equal(receiver.requests.length, 3);
    assert.deepEqual(s.clock.sleeps, [2000, 1000]);
  });

  await t.step("not retried", async () => {
    await using s = sink(receiver.url);
    receiver.script({ status: 400, body: '{"errors":["Event title is required"]}' });
    const result = await s.sink.send([BATCH[0]!], never);
    assert.equal(receiver.requests.length, 4);
    assert.deepEqual(s.clock.sleeps, []);
    assert.deepEqual(result, {
      rejected: [{
        key: BATCH[0]!.key,
        status: 400,
        reason: '{"errors":["Event title is required"]}',
      }],
    });
  });
});

Deno.test("403 says the API key is bad, without the key, even when the answer echoes it", async () => {
  await using receiver = startReceiver({
    fallback: (req) => ({
      status: 403,
      body: `{"errors":["Forbidden"],"key":"${req.headers.get("dd-api-key")}"}`,
    }),
  });
  await using s = sink(receiver.url);
  const checks: ServiceCheck[] = [{ check: "x", status: 0, tags: [], timestamp: 1 }];
  for (
    const sending of [s.sink.send([BATCH[0]!], never), s.sink.sendServiceChecks(checks, never)]
  ) {
    const error = await rejection(sending);
    assert.ok(error instanceof HttpSinkError);
    assert.equal(error.status, 403);
    assert.equal(error.retryable, false);
    assert.match(
      error.message,
      /^Datadog rejected the API key \(403 from http:\/\/127\.0\.0\.1:\d+\/api\/v1\/(events|check_run)\): check api_key \/ DD_API_KEY$/,
    );
    assert.ok(!error.message.includes(API_KEY));
    assert.ok(!error.body.includes(API_KEY));
    assert.ok(!String((error.cause as Error).message).includes(API_KEY));
  }
  assert.equal(receiver.requests.length, 2, "a bad key is not retried within the sink");
});

// ---- refused for good ---------------------------------------------------------------

/** The answer of the intake to an event older than it takes. */
const TOO_OLD = {
  status: 400,
  body:
    '{"errors":["Event date_happened is too old: events older than 18 hours are not accepted"]}',
};

/** A receiver answering TOO_OLD to the events whose title names `object`, 202 to the rest. */
function refusing(object: string) {
  return startReceiver({
    fallback: (req) =>
      (JSON.parse(req.body) as DatadogEvent).title.includes(object) ? TOO_OLD : { status: 202 },
  });
}

Deno.test("an event the intake refuses (400, too old) is set aside: the others of the batch are posted once and the batch resolves", async () => {
  await using receiver = refusing("Pod default/stale");
  await using s = sink(receiver.url);
  const batch = ["a", "b", "stale", "d", "e"].map((name) =>
    rec({ name, object: name, objectUid: `pod-${name}` })
  );

  const result = await s.sink.send(batch, never);

  assert.deepEqual(
    posted(receiver.requests).map((e) => e.title),
    ["a", "b", "stale", "d", "e"].map((name) => `Events from the Pod default/${name}`),
    "every Datadog event posted once, the refused one included, none retried",
  );
  assert.deepEqual(result, {
    rejected: [{ key: "uid-stale/1", status: 400, reason: TOO_OLD.body }],
  });
  assert.equal(s.sink.dropped, 0, "set aside is not dropped");
});

Deno.test("a bundled Datadog event refused with 400 sets aside every record it was made of", async () => {
  await using receiver = refusing("Pod default/web-1");
  await using s = sink(receiver.url);
  const batch = [
    rec({ name: "p1", reason: "Pulling", message: "Pulling image" }),
    rec({ name: "other", object: "api-0", objectUid: "pod-api" }),
    rec({ name: "p2", reason: "Failed", message: "ErrImagePull" }),
    rec({ name: "p3", count: 4 }),
  ];

  const result = await s.sink.send(batch, never);

  assert.deepEqual(posted(receiver.requests).map((e) => e.title), [
    "Events from the Pod default/web-1",
    "Events from the Pod default/api-0",
  ]);
  assert.deepEqual(
    result?.rejected.map((r) => [r.key, r.status]),
    [["uid-p1/1", 400], ["uid-p2/1", 400], ["uid-p3/1", 400]],
    "the three records of the bundle, in batch order; not the other pod's",
  );
});

Deno.test("the counts of a set-aside event stay as they were: its next accepted change reports the set-aside occurrences too", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url);
  await s.sink.send([rec({ name: "r", rv: "1", count: 1 })], never);
  receiver.script(TOO_OLD);
  const result = await s.sink.send([rec({ name: "r", rv: "2", count: 3 }, "MODIFIED")], never);
  assert.equal(result?.rejected[0]?.key, "uid-r/2");

  await s.sink.send([rec({ name: "r", rv: "3", count: 4 }, "MODIFIED")], never);
  assert.match(
    posted(receiver.requests)[2]!.text,
    /^%%% \n3 \*\*BackOff/,
    "4 - 1: the two refused occurrences and the new one",
  );
});

Deno.test("a set-aside event is not posted again when its batch resumes after a later failure", async () => {
  await using receiver = refusing("Pod default/stale");
  await using s = sink(receiver.url, { maxAttempts: 1 });
  const batch = ["stale", "b", "c"].map((name) =>
    rec({ name, object: name, objectUid: `pod-${name}` })
  );
  receiver.script(TOO_OLD, { status: 202 }, { status: 503, body: "busy" });
  const error = await rejection(s.sink.send(batch, never));
  assert.ok(error instanceof HttpSinkError);
  assert.equal(error.status, 503);

  // The pump sends the same batch again.
  const result = await s.sink.send(batch, never);
  assert.deepEqual(posted(receiver.requests).map((e) => e.title), [
    "Events from the Pod default/stale",
    "Events from the Pod default/b",
    "Events from the Pod default/c",
    "Events from the Pod default/c",
  ]);
  assert.deepEqual(result?.rejected.map((r) => r.key), ["uid-stale/1"]);
});

Deno.test("413 and 422 set aside too; 403 (a bad API key) sets nothing aside: the send fails for the pump to retry", async (t) => {
  for (const status of [413, 422]) {
    await t.step(`${status}`, async () => {
      await using receiver = startReceiver({ fallback: { status } });
      await using s = sink(receiver.url);
      const result = await s.sink.send([BATCH[0]!], never);
      assert.deepEqual(result?.rejected, [{
        key: BATCH[0]!.key,
        status,
        reason: status === 413 ? "Payload Too Large" : "Unprocessable Entity",
      }]);
    });
  }

  await t.step("403", async () => {
    await using receiver = startReceiver({ fallback: { status: 403, body: "Forbidden" } });
    await using s = sink(receiver.url);
    const error = await rejection(s.sink.send([BATCH[0]!], never));
    assert.ok(error instanceof HttpSinkError);
    assert.equal(error.status, 403);
    assert.match(error.message, /^Datadog rejected the API key/);

    // The pump sends the same batch again once the key works: delivered, nothing set aside.
    receiver.setFallback({ status: 202 });
    assert.equal(await s.sink.send([BATCH[0]!], never), undefined);
    assert.equal(receiver.requests.length, 2);
  });
});

Deno.test("with on_failure drop a batch is dropped and counted; its occurrences are reported with the next change", async () => {
  await using receiver = startReceiver({ fallback: { status: 503 } });
  await using s = sink(receiver.url, { onFailure: "drop", maxAttempts: 2 });
  await s.sink.send([rec({ name: "d", count: 1 }), rec({ name: "d2", objectUid: "p2" })], never);
  assert.equal(s.sink.dropped, 2);
  assert.equal(receiver.requests.length, 2, "the first bundle, twice; then the batch is given up");

  receiver.setFallback({ status: 202 });
  await s.sink.send([rec({ name: "d", rv: "2", count: 2 }, "MODIFIED")], never);
  assert.equal(s.sink.dropped, 2);
  assert.match(posted(receiver.requests).at(-1)!.text, /^%%% \n2 \*\*BackOff/);
});

// ---- endpoints, TLS, service checks, lifecycle ------------------------------------------

Deno.test("the base URL is https://api.<site>, or dd_url with its path", async () => {
  const closing: DatadogSink[] = [];
  try {
    const make = (o: Partial<DatadogSinkOptions>) => {
      const s = new DatadogSink({ apiKey: API_KEY, ...o });
      closing.push(s);
      return s;
    };
    assert.equal(make({}).baseUrl, "https://api.datadoghq.com");
    assert.equal(make({ site: "datadoghq.eu" }).baseUrl, "https://api.datadoghq.eu");
    assert.equal(
      make({ site: "us3.datadoghq.com", url: "https://proxy.local:3834/dd/" }).baseUrl,
      "https://proxy.local:3834/dd",
    );
  } finally {
    await Promise.all(closing.map((s) => s.close()));
  }
  await using receiver = startReceiver();
  await using s = sink(`${receiver.url}/proxy/`);
  await s.sink.send([BATCH[0]!], never);
  assert.equal(receiver.requests[0]!.path, "/proxy/api/v1/events");
});

Deno.test("over TLS with the receiver's CA", async () => {
  const tls = await generateTlsMaterial();
  await using receiver = startReceiver({ tls: { cert: tls.certPem, key: tls.keyPem } });
  await using s = sink(receiver.url, { tls: { ca: tls.caCertPem } });
  await s.sink.send([BATCH[0]!], never);
  assert.equal(receiver.requests.length, 1);
  assert.equal(posted(receiver.requests)[0]!.title, "Events from the Pod default/web-1");
});

Deno.test("service checks are posted to the check-run API as one array", async () => {
  await using receiver = startReceiver({ fallback: { status: 202, body: '{"status":"ok"}' } });
  await using s = sink(receiver.url);
  await s.sink.sendServiceChecks([], never);
  assert.equal(receiver.requests.length, 0);
  await s.sink.sendServiceChecks([
    {
      check: "kube_apiserver_controlplane.up",
      status: 0,
      tags: ["component:etcd-0"],
      timestamp: 1_767_225_600,
    },
    {
      check: "kube_apiserver_controlplane.up",
      status: 2,
      tags: ["component:scheduler"],
      message: "Get https://127.0.0.1:10259/healthz: connection refused",
      timestamp: 1_767_225_600,
      hostName: "master-1",
    },
  ], never);
  const [req] = receiver.requests;
  assert.equal(req!.path, "/api/v1/check_run");
  assert.equal(req!.headers.get("dd-api-key"), API_KEY);
  assert.deepEqual(JSON.parse(req!.body), [
    {
      check: "kube_apiserver_controlplane.up",
      host_name: "",
      status: 0,
      tags: ["component:etcd-0"],
      timestamp: 1_767_225_600,
    },
    {
      check: "kube_apiserver_controlplane.up",
      host_name: "master-1",
      status: 2,
      tags: ["component:scheduler"],
      timestamp: 1_767_225_600,
      message: "Get https://127.0.0.1:10259/healthz: connection refused",
    },
  ]);
});

Deno.test("sends reject with the signal's reason; close() closes the pool", async () => {
  await using receiver = startReceiver();
  const s = new DatadogSink({ apiKey: API_KEY, url: receiver.url });
  const reason = new Error("stopped");
  assert.equal(await rejection(s.send([BATCH[0]!], AbortSignal.abort(reason))), reason);
  assert.equal(await rejection(s.sendServiceChecks([], AbortSignal.abort(reason))), reason);
  await s.send([BATCH[0]!], never);
  await s.close();
  assert.match(String(await rejection(s.send([BATCH[1]!], never))), /Datadog sink is closed/);
  assert.equal(receiver.requests.length, 1);
});

// ---- configuration -------------------------------------------------------------------

Deno.test("Datadog settings keep the Agent's names; the API key is required and never shown", async (t) => {
  await t.step("defaults", () => {
    assert.deepEqual(parseConfig({ env: {} }).datadog, {
      apiKey: undefined,
      site: "datadoghq.com",
      url: undefined,
      unbundleEvents: false,
      collectedEventTypes: [],
      bundleUnspecifiedEvents: false,
      filteringEnabled: false,
      sourceDetection: false,
      tags: [],
      noProxy: [],
      onFailure: "retry",
      maxAttempts: 5,
    });
  });

  await t.step("environment", () => {
    const config = parseConfig({
      env: {
        KEVENTS_SINKS: "datadog",
        DD_API_KEY: `${API_KEY}\n`,
        DD_SITE: "US5.datadoghq.com",
        DD_DD_URL: "https://proxy.local:3834",
        DD_UNBUNDLE_EVENTS: "true",
        KEVENTS_DATADOG_ON_FAILURE: "drop",
        KEVENTS_DATADOG_MAX_ATTEMPTS: "7",
      },
    });
    assert.deepEqual(config.sinks, ["datadog"]);
    assert.deepEqual(config.datadog, {
      apiKey: API_KEY,
      site: "us5.datadoghq.com",
      url: "https://proxy.local:3834/",
      unbundleEvents: true,
      collectedEventTypes: [],
      bundleUnspecifiedEvents: false,
      filteringEnabled: false,
      sourceDetection: false,
      tags: [],
      noProxy: [],
      onFailure: "drop",
      maxAttempts: 7,
    });
  });

  await t.step("datadog.yaml", () => {
    const config = parseConfig({
      env: {},
      file: {
        path: "/etc/datadog.yaml",
        text: `api_key: ${API_KEY}\nsite: datadoghq.eu\nunbundle_events: yes\n` +
          "kevents_sinks: [stdout, datadog]\n",
      },
    });
    assert.equal(config.datadog.apiKey, API_KEY);
    assert.equal(config.datadog.site, "datadoghq.eu");
    assert.equal(config.datadog.unbundleEvents, true);
  });

  await t.step("the datadog sink needs an API key", () => {
    assert.throws(() => parseConfig({ env: { KEVENTS_SINKS: "datadog" } }), {
      name: "ConfigError",
      message: "Cannot use the datadog sink: api_key (DD_API_KEY) is not set",
    });
  });

  await t.step("a bad API key is refused without being shown", () => {
    const bad = `${API_KEY} ${API_KEY}`;
    try {
      parseConfig({ env: { DD_API_KEY: bad } });
      assert.fail("expected a ConfigError");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.equal(
        e.message,
        `Cannot parse api_key "****${
          API_KEY.slice(-4)
        }" (65 characters, hidden) (env DD_API_KEY): ` +
          "must be a non-empty key of printable ASCII characters without spaces",
      );
      assert.ok(!e.value.includes(API_KEY));
    }
  });

  await t.step("site and dd_url are checked", () => {
    assert.throws(() => parseConfig({ env: { DD_SITE: "https://datadoghq.com" } }), {
      message:
        /^Cannot parse site "https:\/\/datadoghq.com" \(env DD_SITE\): must be a Datadog site/,
    });
    assert.throws(() => parseConfig({ env: { DD_DD_URL: "datadoghq.com" } }), {
      message: /^Cannot parse dd_url "datadoghq.com" \(env DD_DD_URL\): must be an http/,
    });
  });
});
