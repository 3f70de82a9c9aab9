/**
 * Specification of enrichment (lib/enrich): the owner chain and label tags
 * the Datadog Agent's tagger gives a pod's events (`kube_replica_set`,
 * `kube_deployment`, `kube_job`, `kube_cronjob`, `env`, `service`,
 * `version`, labels as tags), a pod's node, read through a small cache
 * within a request budget; and that every failure (404, 403, a slow API
 * server, a spent budget) degrades to fewer tags and never to a lost event.
 * Objects live on the fake API server; every lookup goes over the network.
 */

import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { runTerm } from "../../lib/collector.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import { deploymentOfReplicaSet, Enricher, ObjectCache } from "../../lib/enrich/mod.ts";
import { PODS } from "../../lib/enrich/enricher.ts";
import {
  type FakeApiServer,
  formatTime,
  type PolicyRule,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { KubeClient, PooledKubeConfig } from "../../lib/kube/mod.ts";
import { Metrics } from "../../lib/ops/mod.ts";
import { DatadogSink, type EventRecord, StdoutSink } from "../../lib/sinks/mod.ts";
import { systemClock } from "../../lib/time/mod.ts";
import { polling, waitUntil } from "../_fake_api.ts";
import { captureLogs } from "../_logs.ts";
import { startReceiver } from "../_http_receiver.ts";

const NS = "shop";
const BOUND_MS = 20_000;

function client(server: FakeApiServer, user = "admin") {
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig({ user }));
  const c = new KubeClient(kc);
  return { client: c, [Symbol.asyncDispose]: () => c.close() };
}

function record(kind: string, name: string, namespace = NS, extra: Partial<CoreV1Event> = {}) {
  const event: CoreV1Event = {
    metadata: { name: `${name}.${Math.random().toString(16).slice(2)}`, namespace, uid: name },
    involvedObject: { kind, name, ...(namespace === "" ? {} : { namespace }) },
    reason: "Started",
    message: `Started ${name}`,
    ...extra,
  };
  const r: EventRecord = { key: `${event.metadata!.uid}/1`, type: "ADDED", event };
  return r;
}

function seed(server: FakeApiServer): void {
  server.create("namespaces", "", {
    metadata: { name: NS, labels: { team: "checkout", "cost-center": "42" } },
  });
  server.create("pods", NS, {
    metadata: {
      name: "api-7d4b9c-x2x9z",
      labels: {
        "pod-template-hash": "7d4b9c",
        app: "web",
        "tags.datadoghq.com/env": "prod",
        "tags.datadoghq.com/service": "api",
        "tags.datadoghq.com/version": "1.2.3",
      },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: "api-7d4b9c",
          uid: "rs-1",
          controller: true,
        },
      ],
    },
    spec: { nodeName: "node-3", containers: [{ name: "api", image: "api:1.2.3" }] },
  });
  server.create("jobs.batch", NS, {
    metadata: {
      name: "report-28391",
      ownerReferences: [
        { apiVersion: "batch/v1", kind: "CronJob", name: "report", uid: "cj-1", controller: true },
      ],
    },
    spec: { template: { spec: { containers: [] } } },
  });
  server.create("pods", NS, {
    metadata: {
      name: "report-28391-abcde",
      ownerReferences: [
        {
          apiVersion: "batch/v1",
          kind: "Job",
          name: "report-28391",
          uid: "job-1",
          controller: true,
        },
      ],
    },
    spec: { nodeName: "node-4", containers: [] },
  });
}

function enricher(c: KubeClient, options: { budget?: number; ttlMs?: number } = {}) {
  const cache = new ObjectCache({ client: c, clock: systemClock, ttlMs: options.ttlMs });
  return new Enricher({
    cache,
    requestBudget: options.budget ?? 50,
    podLabelsAsTags: { app: "kube_app" },
    namespaceLabelsAsTags: { team: "team" },
  });
}

const never = new AbortController().signal;

function gets(server: FakeApiServer, resource: string): number {
  return server.requestLog.count({ verb: "get", resource });
}

Deno.test("a pod's events get its owners, unified tags, labels as tags, namespace labels and node", async () => {
  await using server = await startFakeApiServer();
  seed(server);
  await using c = client(server);
  const r = record("Pod", "api-7d4b9c-x2x9z");
  await enricher(c.client).enrich([r], never);
  assert.deepEqual(r.enrichment, {
    node: "node-3",
    owners: [{ kind: "ReplicaSet", name: "api-7d4b9c" }, { kind: "Deployment", name: "api" }],
    tags: [
      "env:prod",
      "service:api",
      "version:1.2.3",
      "kube_app:web",
      "kube_replica_set:api-7d4b9c",
      "kube_deployment:api",
      "team:checkout",
    ],
  });
  assert.equal(gets(server, "replicasets"), 0, "the Deployment is read from the ReplicaSet's name");
});

Deno.test("a job's pod gets kube_job and the job's kube_cronjob; a Job's own event its kube_cronjob", async () => {
  await using server = await startFakeApiServer();
  seed(server);
  await using c = client(server);
  const e = enricher(c.client);
  const pod = record("Pod", "report-28391-abcde");
  const job = record("Job", "report-28391");
  await e.enrich([pod, job], never);
  assert.deepEqual(pod.enrichment?.owners, [
    { kind: "Job", name: "report-28391" },
    { kind: "CronJob", name: "report" },
  ]);
  assert.ok(pod.enrichment?.tags.includes("kube_job:report-28391"));
  assert.ok(pod.enrichment?.tags.includes("kube_cronjob:report"));
  assert.deepEqual(job.enrichment?.tags, ["kube_cronjob:report", "team:checkout"]);
  assert.equal(gets(server, "jobs.batch"), 1, "the job is read once for both");
});

Deno.test("a ReplicaSet's event gets its Deployment without a request", async () => {
  await using server = await startFakeApiServer();
  await using c = client(server);
  const r = record("ReplicaSet", "checkout-5f9c8d7b6", NS);
  const e = new Enricher({ cache: new ObjectCache({ client: c.client, clock: systemClock }) });
  await e.enrich([r], never);
  assert.deepEqual(r.enrichment?.tags, ["kube_deployment:checkout"]);
  assert.equal(server.requestLog.count({}), 0);
});

Deno.test("deploymentOfReplicaSet reads the Deployment from the name as the Agent does", () => {
  assert.equal(deploymentOfReplicaSet("api-7d4b9c", "7d4b9c"), "api");
  assert.equal(deploymentOfReplicaSet("my-app-5f9c8d7b6"), "my-app");
  assert.equal(deploymentOfReplicaSet("standalone"), undefined);
  assert.equal(deploymentOfReplicaSet("no-hash"), undefined, "an all-letter suffix is no hash");
});

Deno.test("a burst of events about a deleted pod costs one request: the miss is cached", async () => {
  await using server = await startFakeApiServer();
  await using c = client(server);
  const e = enricher(c.client);
  const burst = Array.from({ length: 10 }, () => record("Pod", "gone-1", "default"));
  await e.enrich(burst, never);
  await e.enrich([record("Pod", "gone-1", "default")], never);
  assert.equal(gets(server, "pods"), 1);
  assert.ok(burst.every((r) => r.enrichment !== undefined && r.enrichment.tags.length === 0));
});

Deno.test("without RBAC on pods: fewer tags, one warning naming the grant, no request per event", async () => {
  await using server = await startFakeApiServer();
  seed(server);
  const eventsOnly: PolicyRule = { verbs: ["get"], apiGroups: [""], resources: ["namespaces"] };
  server.addUser("limited", [eventsOnly]);
  await using logs = await captureLogs();
  await using c = client(server, "limited");
  const e = enricher(c.client);
  const first = record("Pod", "api-7d4b9c-x2x9z");
  await e.enrich([first], never);
  await e.enrich([record("Pod", "report-28391-abcde"), record("Pod", "other")], never);
  assert.deepEqual(first.enrichment?.tags, ["team:checkout"]);
  assert.equal(server.requestLog.count({ verb: "get", resource: "pods", code: 403 }), 1);
  const warnings = logs.records.filter((r) => r.level === "warning" && r.category[1] === "enrich");
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0]!.message.map(String).join(""),
    /Cannot read pods to enrich events \(RBAC: kevents needs get on pods\).*403/,
  );
});

Deno.test("a batch makes at most its request budget; the rest go on with fewer tags", async () => {
  await using server = await startFakeApiServer();
  await using logs = await captureLogs();
  await using c = client(server);
  const metrics = new Metrics();
  const cache = new ObjectCache({
    client: c.client,
    clock: systemClock,
    onRequest: (resource, outcome) => metrics.enrichLookup(resource, outcome),
  });
  const e = new Enricher({ cache, requestBudget: 2 });
  const batch = Array.from({ length: 5 }, (_, i) => record("Pod", `pod-${i}`, "default"));
  await e.enrich(batch, never);
  assert.equal(gets(server, "pods"), 2);
  assert.ok(batch.every((r) => r.enrichment !== undefined), "every record was looked at");
  const text = await metrics.render();
  assert.match(text, /^kevents_enrich_lookups_total\{resource="pods",outcome="budget"\} 3$/m);
  assert.match(text, /^kevents_enrich_lookups_total\{resource="pods",outcome="absent"\} 2$/m);
  assert.equal(
    logs.records.filter((r) => r.level === "warning" && r.category[1] === "enrich").length,
    1,
  );
});

Deno.test("an API server slower than the lookup timeout delays a batch by at most the timeout", async () => {
  await using server = await startFakeApiServer();
  seed(server);
  await using c = client(server);
  const cache = new ObjectCache({ client: c.client, clock: systemClock, requestTimeoutMs: 200 });
  const e = new Enricher({ cache, requestBudget: 1 });
  server.setLatency(5_000);
  try {
    const r = record("Pod", "api-7d4b9c-x2x9z");
    const started = performance.now();
    await e.enrich([r, record("Pod", "other")], never);
    assert.ok(performance.now() - started < 4_000, "the batch did not wait for the API server");
    assert.deepEqual(r.enrichment, { tags: [] });
  } finally {
    server.setLatency(0);
  }
});

Deno.test("with the default budgets a slow API server holds a batch back about a second, and the next batches not at all", async () => {
  await using server = await startFakeApiServer();
  await using c = client(server);
  const e = new Enricher({ cache: new ObjectCache({ client: c.client, clock: systemClock }) });
  let podRequests = 0;
  using _counting = server.onRequest((r) => {
    if (r.path.includes("/pods/")) podRequests++;
  });
  server.setLatency(5_000);
  try {
    const batch = Array.from({ length: 200 }, (_, i) => record("Pod", `slow-${i}`, "default"));
    const started = performance.now();
    await e.enrich(batch, never);
    const first = performance.now() - started;
    assert.ok(first < 3_000, `the first batch took ${Math.round(first)} ms`);
    assert.ok(batch.every((r) => r.enrichment !== undefined));
    const before = podRequests;
    assert.ok(before > 0 && before <= 50, `${before} requests: within the request budget`);
    const next = Array.from({ length: 200 }, (_, i) => record("Pod", `later-${i}`, "default"));
    const again = performance.now();
    await e.enrich(next, never);
    assert.ok(performance.now() - again < 500, "the next batch does not wait");
    assert.equal(podRequests, before, "after a lookup cut short the cache pauses: no request");
  } finally {
    server.setLatency(0);
  }
});

Deno.test("a pod recreated under the same name is read again: the uid must match", async () => {
  await using server = await startFakeApiServer();
  await using c = client(server);
  const e = new Enricher({ cache: new ObjectCache({ client: c.client, clock: systemClock }) });
  const pod = (node: string) => ({
    metadata: { name: "web-0" },
    spec: { nodeName: node, containers: [] },
  });
  const first = server.create("pods", "default", pod("node-1"));
  const a = record("Pod", "web-0", "default");
  (a.event.involvedObject as { uid?: string }).uid = first.metadata.uid;
  await e.enrich([a], never);
  assert.equal(a.enrichment?.node, "node-1");
  await c.client.delete(PODS, "default", "web-0");
  const second = server.create("pods", "default", pod("node-2"));
  const b = record("Pod", "web-0", "default");
  (b.event.involvedObject as { uid?: string }).uid = second.metadata.uid;
  await e.enrich([b], never);
  assert.equal(b.enrichment?.node, "node-2", "not the cached pod of another uid");
});

Deno.test("enrichment is on with the datadog sink, off otherwise, and settable", async (t) => {
  const dd = { KEVENTS_SINKS: "datadog", DD_API_KEY: "0123456789abcdef0123456789abcdef" };
  await t.step("on with the datadog sink", () => {
    assert.equal(parseConfig({ env: dd }).enrich.enabled, true);
  });
  await t.step(
    "off with stdout or a webhook alone: their records stay as the API server sent them",
    () => {
      assert.equal(parseConfig({ env: {} }).enrich.enabled, false);
    },
  );
  await t.step("KEVENTS_ENRICH wins either way", () => {
    assert.equal(parseConfig({ env: { KEVENTS_ENRICH: "true" } }).enrich.enabled, true);
    assert.equal(parseConfig({ env: { ...dd, KEVENTS_ENRICH: "false" } }).enrich.enabled, false);
  });
});

Deno.test("through a term: stdout lines carry the enrichment, and Datadog gets the owner tags and the pod's node as host", async () => {
  await using server = await startFakeApiServer();
  seed(server);
  await using receiver = startReceiver();
  await using c = client(server);
  const config = parseConfig({
    env: {
      DD_COLLECT_KUBERNETES_EVENTS: "true",
      KEVENTS_SINKS: "stdout,datadog",
      DD_API_KEY: "0123456789abcdef0123456789abcdef",
      DD_DD_URL: receiver.url,
      DD_CLUSTER_NAME: "prod",
      KEVENTS_DATADOG_BUNDLE_WINDOW_SECONDS: "0",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      DD_KUBE_RESOURCES_NAMESPACE: "default",
      KEVENTS_BACKFILL: "true",
    },
  });
  let out = "";
  const decoder = new TextDecoder();
  const stdout = new StdoutSink({
    writer: { write: (p) => Promise.resolve((out += decoder.decode(p), p.length)) },
  });
  const datadog = new DatadogSink({
    apiKey: "0123456789abcdef0123456789abcdef",
    url: receiver.url,
    clusterName: "prod",
  });
  const at = formatTime(new Date());
  server.create("events", NS, {
    metadata: { name: "api.1" },
    involvedObject: { apiVersion: "v1", kind: "Pod", namespace: NS, name: "api-7d4b9c-x2x9z" },
    reason: "BackOff",
    message: "Back-off restarting failed container",
    type: "Warning",
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: "kubelet" },
  });
  const stop = new AbortController();
  const term = runTerm(
    { client: c.client, config, identity: "enrich-test", sinks: [stdout, datadog] },
    { identity: "enrich-test", transitions: 1, signal: stop.signal },
  );
  try {
    await receiver.received(1, BOUND_MS);
    await waitUntil("the stdout line", () => out.includes("\n"), polling, BOUND_MS);
  } finally {
    stop.abort(new Error("Test over"));
    await term;
    await datadog.close();
  }
  const line = JSON.parse(out.split("\n")[0]!);
  assert.deepEqual(Object.keys(line), ["key", "type", "event", "enrichment"]);
  assert.equal(line.enrichment.node, "node-3");
  assert.ok(line.enrichment.tags.includes("kube_deployment:api"));
  const dd = JSON.parse(receiver.requests[0]!.body);
  assert.equal(dd.host, "node-3-prod", "the pod's node, as the Agent looks it up");
  for (
    const tag of ["kube_deployment:api", "kube_replica_set:api-7d4b9c", "env:prod", "service:api"]
  ) {
    assert.ok(dd.tags.includes(tag), `${tag} in ${dd.tags.join(" ")}`);
  }
});
