/**
 * Specification of which Kubernetes events the Datadog sink sends, and
 * under which source, as the Datadog Agent's kubernetes_apiserver check
 * chooses them: `collected_event_types` (kind, source, reasons, matched
 * exactly), unbundled events, `bundle_unspecified_events`,
 * `filtering_enabled`, and `kubernetes_events_source_detection.enabled`.
 * Payloads are read from a local receiver standing in for the Datadog API.
 */

import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { parseConfig } from "../../lib/config/mod.ts";
import { CONTROLLER_INTEGRATIONS, eventSource } from "../../lib/sinks/_datadog_sources.ts";
import {
  collectedByDefault,
  type CollectedEventType,
  matchesEventTypes,
} from "../../lib/sinks/_datadog_types.ts";
import {
  type DatadogEvent,
  DatadogSink,
  type DatadogSinkOptions,
} from "../../lib/sinks/datadog.ts";
import { createSinks } from "../../lib/sinks/mod.ts";
import type { EventRecord } from "../../lib/sinks/sink.ts";
import { InstantClock, type ReceivedRequest, startReceiver } from "../_http_receiver.ts";

const API_KEY = "abcdef0123456789abcdef0123456789";
const never = new AbortController().signal;
const T0 = Date.UTC(2026, 0, 1);
const TIME = new Date(T0).toISOString().replace(".000Z", "Z");

interface EventSpec {
  /** Event name; its uid is `uid-<name>`. */
  name: string;
  kind?: string;
  object?: string;
  type?: "Normal" | "Warning";
  reason?: string;
  component?: string;
  reportingComponent?: string;
}

function kevent(s: EventSpec): CoreV1Event {
  const object = s.object ?? "web-1";
  const kind = s.kind ?? "Pod";
  return {
    metadata: { name: s.name, namespace: "default", uid: `uid-${s.name}`, resourceVersion: "1" },
    involvedObject: {
      kind,
      name: object,
      // A Node is cluster-scoped.
      ...(kind === "Node" ? {} : { namespace: "default" }),
      uid: `${kind}-${object}`,
    },
    type: s.type ?? "Warning",
    reason: s.reason ?? "BackOff",
    message: `${s.reason ?? "BackOff"} of ${object}`,
    count: 1,
    // The API sends times as text, whatever the client-node types say.
    firstTimestamp: TIME as unknown as Date,
    lastTimestamp: TIME as unknown as Date,
    source: { component: s.component ?? "kubelet", host: "node-1" },
    ...(s.reportingComponent === undefined ? {} : { reportingComponent: s.reportingComponent }),
  };
}

function rec(s: EventSpec): EventRecord {
  const e = kevent(s);
  return { key: `${e.metadata!.uid}/1`, type: "ADDED", event: e };
}

/** A sink posting to `url` (as dd_url), with an instant clock. */
function sink(url: string, options: Partial<DatadogSinkOptions> = {}) {
  const s = new DatadogSink({
    apiKey: API_KEY,
    url,
    clock: new InstantClock(T0 + 3600_000),
    random: () => 0.5,
    ...options,
  });
  return { sink: s, [Symbol.asyncDispose]: () => s.close() };
}

function posted(requests: readonly ReceivedRequest[]): DatadogEvent[] {
  return requests.map((r) => JSON.parse(r.body));
}

/** Title and source of each posted event: what these tests are about. */
function summary(requests: readonly ReceivedRequest[]): [string, string][] {
  return posted(requests).map((e) => [e.title, e.source_type_name]);
}

// A Pod's failure and its normal events, a Node going down, a Deployment
// scaling, and Karpenter disrupting a node.
const BATCH: EventRecord[] = [
  rec({ name: "fail", reason: "Failed" }),
  rec({ name: "pulled", type: "Normal", reason: "Pulled" }),
  rec({ name: "backoff", reason: "BackOff" }),
  rec({
    name: "notready",
    kind: "Node",
    object: "node-2",
    reason: "NodeNotReady",
    component: "node-controller",
  }),
  rec({
    name: "scaled",
    kind: "Deployment",
    object: "api",
    type: "Normal",
    reason: "ScalingReplicaSet",
    component: "deployment-controller",
  }),
  rec({
    name: "disrupt",
    kind: "Node",
    object: "node-3",
    type: "Normal",
    reason: "DisruptionTerminating",
    component: "karpenter",
    reportingComponent: "karpenter",
  }),
];

// ---- matching ----------------------------------------------------------------------

Deno.test("a collected_event_types entry matches on each part it sets: kind, source, reasons, exactly", async (t) => {
  const pod = kevent({ name: "a", reason: "Failed" });
  const cases: [string, CollectedEventType[], boolean][] = [
    ["kind only: any reason of that kind", [{ kind: "Pod" }], true],
    ["kind only, another kind", [{ kind: "Node" }], false],
    ["source only: any event of that component", [{ source: "kubelet" }], true],
    ["source only, another component", [{ source: "default-scheduler" }], false],
    ["kind and one of its reasons", [{ kind: "Pod", reasons: ["BackOff", "Failed"] }], true],
    ["kind and other reasons", [{ kind: "Pod", reasons: ["BackOff"] }], false],
    ["kind with empty reasons: any reason", [{ kind: "Pod", reasons: [] }], true],
    ["kind, source and reason all matching", [{
      kind: "Pod",
      source: "kubelet",
      reasons: ["Failed"],
    }], true],
    ["kind and reason matching, source not", [{
      kind: "Pod",
      source: "karpenter",
      reasons: ["Failed"],
    }], false],
    ["kind in another case", [{ kind: "pod" }], false],
    ["source in another case", [{ source: "Kubelet" }], false],
    ["reason in another case", [{ kind: "Pod", reasons: ["failed"] }], false],
    ["no entry", [], false],
    ["the second entry", [{ kind: "Node" }, { kind: "Pod", reasons: ["Failed"] }], true],
  ];
  for (const [name, types, expected] of cases) {
    await t.step(name, () => assert.equal(matchesEventTypes(pod, types), expected));
  }
});

// ---- unbundled ---------------------------------------------------------------------

Deno.test("unbundled, only the events collected_event_types names are sent, each on its own; the batch resolves", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, {
    unbundleEvents: true,
    collectedEventTypes: [
      { kind: "Pod", reasons: ["Failed"] },
      { source: "karpenter" },
      { kind: "Node", reasons: ["nodenotready"] },
    ],
  });
  // Left out on purpose, not refused: nothing is set aside, the send resolves.
  assert.equal(await s.sink.send(BATCH, never), undefined);
  assert.deepEqual(summary(receiver.requests), [
    ["Pod default/web-1: Failed", "kubernetes"],
    ["Node node-3: DisruptionTerminating", "kubernetes"],
  ]);
  assert.equal(s.sink.dropped, 0, "not sent is not dropped");
});

Deno.test("bundle_unspecified_events: the events not collected are bundled as the Agent bundles, after the collected ones", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, {
    unbundleEvents: true,
    collectedEventTypes: [{ kind: "Pod", reasons: ["Failed", "BackOff"] }],
    bundleUnspecifiedEvents: true,
  });
  assert.equal(await s.sink.send(BATCH, never), undefined);
  assert.deepEqual(summary(receiver.requests), [
    ["Pod default/web-1: Failed", "kubernetes"],
    ["Pod default/web-1: BackOff", "kubernetes"],
    ["Events from the Pod default/web-1", "kubernetes"],
    ["Events from the Node node-2", "kubernetes"],
    ["Events from the Deployment default/api", "kubernetes"],
    ["Events from the Node node-3", "kubernetes"],
  ]);
  const bundle = posted(receiver.requests)[2]!;
  assert.match(bundle.text, /^%%% \n1 \*\*Pulled\*\*: Pulled of web-1\n \n _Events emitted by/);
  assert.ok(bundle.tags.includes("event_reason:Pulled"));
  assert.ok(!bundle.tags.includes("event_reason:Failed"), "the collected events are not bundled");
});

Deno.test("unbundled with an empty collected_event_types, kevents sends every event on its own, where the Agent sends none", async (t) => {
  await t.step(
    "alone: every event unbundled (kevents' choice, warned about at start)",
    async () => {
      await using receiver = startReceiver();
      await using s = sink(receiver.url, { unbundleEvents: true, collectedEventTypes: [] });
      await s.sink.send(BATCH, never);
      assert.equal(receiver.requests.length, BATCH.length);
      assert.ok(posted(receiver.requests).every((e) => !e.title.startsWith("Events from")));
    },
  );

  await t.step("with bundle_unspecified_events: every event bundled, as the Agent", async () => {
    await using receiver = startReceiver();
    await using s = sink(receiver.url, {
      unbundleEvents: true,
      bundleUnspecifiedEvents: true,
    });
    await s.sink.send(BATCH, never);
    assert.deepEqual(posted(receiver.requests).map((e) => e.title), [
      "Events from the Pod default/web-1",
      "Events from the Pod default/web-1",
      "Events from the Node node-2",
      "Events from the Deployment default/api",
      "Events from the Node node-3",
    ]);
  });
});

Deno.test("bundled (the default), collected_event_types and bundle_unspecified_events change nothing, as in the Agent", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, {
    collectedEventTypes: [{ kind: "Pod", reasons: ["Failed"] }],
    bundleUnspecifiedEvents: true,
  });
  await s.sink.send(BATCH, never);
  assert.equal(receiver.requests.length, 5, "every event, in its bundle");
});

// ---- filtering_enabled ----------------------------------------------------------------

Deno.test("filtering_enabled: only the Agent's default set of each source, or what collected_event_types names", async (t) => {
  await t.step("the default sets", () => {
    const is = (s: EventSpec, detection = false) => collectedByDefault(kevent(s), detection);
    assert.equal(is({ name: "a", reason: "Failed" }), true, "Pod Failed");
    assert.equal(is({ name: "a", type: "Normal", reason: "Pulled" }), false, "Pod Pulled");
    assert.equal(is({ name: "a", kind: "Node", reason: "NodeNotReady" }), true);
    assert.equal(is({ name: "a", kind: "CronJob", reason: "SawCompletedJob" }), true);
    assert.equal(is({ name: "a", kind: "Deployment", reason: "BackOff" }), true, "any BackOff");
    const karpenter = { name: "a", reason: "SpotInterrupted", component: "karpenter" };
    assert.equal(is(karpenter), false, "karpenter's set needs source detection");
    assert.equal(is(karpenter, true), true);
  });

  await t.step("bundled: the others are not sent", async () => {
    await using receiver = startReceiver();
    await using s = sink(receiver.url, {
      filteringEnabled: true,
      collectedEventTypes: [{ kind: "Deployment" }],
    });
    assert.equal(await s.sink.send(BATCH, never), undefined);
    const events = posted(receiver.requests);
    assert.deepEqual(events.map((e) => e.title), [
      "Events from the Pod default/web-1",
      "Events from the Node node-2",
      "Events from the Deployment default/api",
    ]);
    assert.ok(!events[0]!.tags.includes("event_reason:Pulled"));
  });

  await t.step(
    "unbundled: an event outside the default set has the source <source>_custom",
    async () => {
      await using receiver = startReceiver();
      await using s = sink(receiver.url, {
        unbundleEvents: true,
        filteringEnabled: true,
        collectedEventTypes: [{ kind: "Deployment" }],
      });
      await s.sink.send(BATCH, never);
      assert.deepEqual(summary(receiver.requests), [
        ["Pod default/web-1: Failed", "kubernetes"],
        ["Pod default/web-1: BackOff", "kubernetes"],
        ["Node node-2: NodeNotReady", "kubernetes"],
        ["Deployment default/api: ScalingReplicaSet", "kubernetes_custom"],
      ]);
    },
  );
});

// ---- source detection ---------------------------------------------------------------

Deno.test("source detection names the source after reportingComponent, else source.component, else kubernetes", async (t) => {
  const cases: [string, EventSpec, string][] = [
    [
      "reportingComponent first",
      { name: "a", reportingComponent: "karpenter", component: "default-scheduler" },
      "karpenter",
    ],
    [
      "source.component when reportingComponent is unknown",
      { name: "a", reportingComponent: "my-operator", component: "default-scheduler" },
      "kube_scheduler",
    ],
    ["source.component without reportingComponent", {
      name: "a",
      component: "cluster-autoscaler",
    }, "kubernetes cluster autoscaler"],
    ["the kubelet", { name: "a", component: "kubelet" }, "kubernetes"],
    ["kube-controller-manager's replicaset-controller", {
      name: "a",
      component: "replicaset-controller",
    }, "kubernetes controller manager"],
    [
      "the Datadog Operator",
      { name: "a", reportingComponent: "ExtendedDaemonSet" },
      "datadog operator",
    ],
    ["an unknown controller", { name: "a", component: "my-operator" }, "kubernetes"],
    ["names match exactly", { name: "a", component: "Default-Scheduler" }, "kubernetes"],
  ];
  await using receiver = startReceiver();
  await using s = sink(receiver.url, { unbundleEvents: true, sourceDetection: true });
  await s.sink.send(cases.map(([, spec], i) => rec({ ...spec, name: `e${i}` })), never);
  const sources = posted(receiver.requests).map((e) => e.source_type_name);
  for (const [i, [name, , expected]] of cases.entries()) {
    await t.step(name, () => assert.equal(sources[i], expected));
  }

  await t.step("without source detection, always kubernetes", () => {
    for (const [, spec] of cases) assert.equal(eventSource(kevent(spec), false), "kubernetes");
  });

  await t.step("the table has the Agent's 71 controllers", () => {
    assert.equal(CONTROLLER_INTEGRATIONS.size, 71);
    assert.equal(CONTROLLER_INTEGRATIONS.get("vaultd"), "vault");
    assert.equal(CONTROLLER_INTEGRATIONS.get("targetgroupbinding"), "amazon elb");
    assert.equal(
      CONTROLLER_INTEGRATIONS.get("storageversion-garbage-collector-controller"),
      "kubernetes",
    );
  });
});

Deno.test("a bundle's source is its first event's, as the Agent's bundle takes it", async () => {
  const scheduler = { name: "s", reason: "FailedScheduling", component: "default-scheduler" };
  const kubelet = { name: "k", reason: "FailedMount", component: "kubelet" };
  await using receiver = startReceiver();
  await using s = sink(receiver.url, { sourceDetection: true });
  await s.sink.send([rec(scheduler), rec(kubelet)], never);
  await s.sink.send([rec({ ...kubelet, name: "k2" }), rec({ ...scheduler, name: "s2" })], never);
  assert.deepEqual(summary(receiver.requests), [
    ["Events from the Pod default/web-1", "kube_scheduler"],
    ["Events from the Pod default/web-1", "kubernetes"],
  ]);
});

// ---- from the settings ----------------------------------------------------------------

Deno.test("the settings reach the sink: DD_COLLECTED_EVENT_TYPES, DD_BUNDLE_UNSPECIFIED_EVENTS and source detection", async () => {
  await using receiver = startReceiver();
  const config = parseConfig({
    env: {
      KEVENTS_SINKS: "datadog",
      DD_API_KEY: API_KEY,
      DD_DD_URL: receiver.url,
      DD_UNBUNDLE_EVENTS: "true",
      DD_COLLECTED_EVENT_TYPES: '[{"source":"karpenter"},{"kind":"Pod","reasons":["Failed"]}]',
      DD_BUNDLE_UNSPECIFIED_EVENTS: "true",
      DD_KUBERNETES_EVENTS_SOURCE_DETECTION_ENABLED: "true",
    },
  });
  const [datadog] = createSinks(config);
  try {
    await datadog!.send(BATCH, never);
  } finally {
    await datadog!.close?.();
  }
  assert.deepEqual(summary(receiver.requests), [
    ["Pod default/web-1: Failed", "kubernetes"],
    ["Node node-3: DisruptionTerminating", "karpenter"],
    ["Events from the Pod default/web-1", "kubernetes"], // Pulled (Normal)
    ["Events from the Pod default/web-1", "kubernetes"], // BackOff (Warning)
    ["Events from the Node node-2", "kubernetes"],
    ["Events from the Deployment default/api", "kubernetes"],
  ]);
});
