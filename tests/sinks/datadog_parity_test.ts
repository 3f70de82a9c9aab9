/**
 * Specification of what a Datadog user sees that the Agent would have sent
 * too (docs/DATADOG.md): the host with the cluster name, the Agent's tag
 * set (the older `namespace`, `name`, `kubernetes_kind` tags and the
 * kind's own tag), the check's own tags on events and service checks, the
 * service check's host, and the intake reached through the Agent's proxy
 * settings. Payloads are read from a receiver over the network.
 */

import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { generateTlsMaterial } from "../../lib/fake_apiserver/tls.ts";
import { DatadogSink, type DatadogSinkOptions, type EventRecord } from "../../lib/sinks/mod.ts";
import { type DatadogEvent, toDatadogEvents } from "../../lib/sinks/datadog.ts";
import { KIND_TAGS } from "../../lib/sinks/_datadog_tags.ts";
import { ConnectProxy } from "../_connect_proxy.ts";
import { InstantClock, startReceiver } from "../_http_receiver.ts";

const API_KEY = "0123456789abcdef0123456789abcdef";
const T0 = Date.parse("2026-12-03T10:00:00Z");
const never = new AbortController().signal;

function kevent(
  kind: string,
  name: string,
  fields: { namespace?: string; host?: string; reportingComponent?: string } = {},
): CoreV1Event {
  const namespace = fields.namespace ?? (kind === "Node" || kind === "Namespace" ? "" : "default");
  return {
    metadata: { name: `${name}.1`, namespace: namespace || "default", uid: `uid-${kind}-${name}` },
    involvedObject: {
      kind,
      name,
      uid: `obj-${kind}-${name}`,
      ...(namespace === "" ? {} : { namespace }),
    },
    type: "Warning",
    reason: "Something",
    message: `Something happened to ${name}`,
    count: 1,
    lastTimestamp: new Date(T0).toISOString() as unknown as Date,
    source: { component: "kubelet", ...(fields.host === undefined ? {} : { host: fields.host }) },
    ...(fields.reportingComponent === undefined
      ? {}
      : { reportingComponent: fields.reportingComponent }),
  };
}

function record(e: CoreV1Event): EventRecord {
  return { key: `${e.metadata!.uid}/1`, type: "ADDED", event: e };
}

function only(e: CoreV1Event, options: Parameters<typeof toDatadogEvents>[1] = {}): DatadogEvent {
  const events = toDatadogEvents([{ event: e, increase: 1 }], { now: T0 / 1000, ...options });
  assert.equal(events.length, 1);
  return events[0]!;
}

function sink(url: string, options: Partial<DatadogSinkOptions> = {}) {
  const s = new DatadogSink({
    apiKey: API_KEY,
    url,
    clock: new InstantClock(T0),
    random: () => 0.5,
    ...options,
  });
  return { sink: s, [Symbol.asyncDispose]: () => s.close() };
}

Deno.test("the host is the node, with -<cluster name> as the Agent appends it, for Pod and Node events only", async (t) => {
  const context = { clusterName: "Prod_EU" };
  await t.step("a Pod's event: its source.host, then the cluster in RFC 1123 form", () => {
    assert.equal(
      only(kevent("Pod", "web-1", { host: "node-1" }), { context }).host,
      "node-1-prod-eu",
    );
  });
  await t.step("a Node's event: the Node's name, then the cluster", () => {
    assert.equal(only(kevent("Node", "node-2"), { context }).host, "node-2-prod-eu");
  });
  await t.step("other kinds: no host (the Agent puts its own there)", () => {
    assert.equal(only(kevent("Deployment", "api"), { context }).host, undefined);
  });
  await t.step("a Pod's event without source.host: no host", () => {
    assert.equal(only(kevent("Pod", "web-1"), { context }).host, undefined);
  });
  await t.step("without a cluster name the node alone", () => {
    assert.equal(only(kevent("Pod", "web-1", { host: "node-1" })).host, "node-1");
  });
});

Deno.test("the tags are the Agent's: kube_* and the older names, the kind's own tag, the cluster and the check's tags", async (t) => {
  await t.step("a Pod's event, bundled", () => {
    const e = only(kevent("Pod", "web-1", { host: "node-1" }), {
      context: { clusterName: "prod", tags: ["team:sre", "env:prod"] },
    });
    assert.deepEqual(e.tags, [
      "env:prod",
      "event_reason:Something",
      "kube_cluster_name:prod",
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
      "team:sre",
    ]);
  });
  await t.step("unbundled too", () => {
    const e = only(kevent("Pod", "web-1"), { unbundle: true, context: { clusterName: "prod" } });
    assert.ok(e.tags.includes("kube_cluster_name:prod") && e.tags.includes("pod_name:web-1"));
  });
  for (const [kind, tag] of Object.entries(KIND_TAGS)) {
    await t.step(`a ${kind}'s event is tagged ${tag}:<name>`, () => {
      const e = only(kevent(kind, "obj"));
      assert.ok(e.tags.includes(`${tag}:obj`), e.tags.join(" "));
    });
  }
  await t.step("a Namespace's event names the namespace in kube_namespace", () => {
    const e = only(kevent("Namespace", "team-a"));
    assert.ok(e.tags.includes("kube_namespace:team-a"), e.tags.join(" "));
    assert.ok(!e.tags.some((t) => t.startsWith("namespace:")), "not namespaced itself");
  });
  await t.step("a Node has no kind tag, and no namespace tags", () => {
    const e = only(kevent("Node", "node-2"));
    assert.deepEqual(e.tags.filter((t) => /namespace|pod_name|kube_node/.test(t)), []);
  });
  await t.step("reporting_controller carries the reporting component when set", () => {
    const e = only(kevent("Deployment", "api", { reportingComponent: "deployment-controller" }));
    assert.ok(e.tags.includes("reporting_controller:deployment-controller"));
    assert.ok(e.tags.includes("kube_deployment:api"));
  });
  await t.step("a tag given twice is sent once, sorted as the Agent's aggregator does", () => {
    const e = only(kevent("Pod", "web-1"), { context: { tags: ["name:web-1", "a:b"] } });
    assert.deepEqual(e.tags, [...new Set(e.tags)].sort());
    assert.equal(e.tags.filter((t) => t === "name:web-1").length, 1);
  });
});

Deno.test("through the sink: the cluster name and the check's tags reach the intake, events and service checks", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, { clusterName: "prod", tags: ["team:sre"] });
  await s.sink.send([record(kevent("Node", "node-2"))], never);
  await s.sink.sendServiceChecks([{
    check: "kube_apiserver_controlplane.up",
    status: 0,
    tags: ["component:etcd-0"],
    timestamp: T0 / 1000,
    hostName: "node-1-prod",
    message: "ok",
  }], never);
  assert.equal(receiver.requests.length, 2);
  const event = JSON.parse(receiver.requests[0]!.body);
  assert.equal(receiver.requests[0]!.path, "/api/v1/events");
  assert.equal(event.host, "node-2-prod");
  assert.ok(event.tags.includes("kube_cluster_name:prod") && event.tags.includes("team:sre"));
  assert.equal(receiver.requests[1]!.path, "/api/v1/check_run");
  assert.deepEqual(JSON.parse(receiver.requests[1]!.body), [{
    check: "kube_apiserver_controlplane.up",
    host_name: "node-1-prod",
    status: 0,
    tags: ["component:etcd-0", "team:sre"],
    timestamp: T0 / 1000,
    message: "ok",
  }]);
});

Deno.test("the intake is reached through proxy.https, except for a host of proxy.no_proxy", async (t) => {
  const tls = await generateTlsMaterial();
  await using receiver = startReceiver({ tls: { cert: tls.certPem, key: tls.keyPem } });
  const target = new URL(receiver.url).host;
  await using proxy = new ConnectProxy();

  await t.step("with a proxy every request tunnels through it (CONNECT)", async () => {
    await using s = sink(receiver.url, { tls: { ca: tls.caCertPem }, proxy: proxy.url });
    await s.sink.send([record(kevent("Pod", "web-1"))], never);
    assert.equal(receiver.requests.length, 1);
    assert.deepEqual(proxy.targets, [target]);
  });
  await t.step("a no_proxy entry naming the intake's host:port goes direct", async () => {
    await using s = sink(receiver.url, {
      tls: { ca: tls.caCertPem },
      proxy: proxy.url,
      noProxy: [target],
    });
    await s.sink.send([record(kevent("Pod", "web-2"))], never);
    assert.equal(receiver.requests.length, 2);
    assert.deepEqual(proxy.targets, [target], "no new CONNECT");
  });
  await t.step("a no_proxy entry for another host does not", async () => {
    await using s = sink(receiver.url, {
      tls: { ca: tls.caCertPem },
      proxy: proxy.url,
      noProxy: ["api.datadoghq.com"],
    });
    await s.sink.send([record(kevent("Pod", "web-3"))], never);
    assert.equal(receiver.requests.length, 3);
    assert.deepEqual(proxy.targets, [target, target]);
  });
});
