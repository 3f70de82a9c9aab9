/**
 * Specification of routing (`kevents_routes`, and the rules of the named
 * sinks of `kevents_sinks`): each sink gets the events its route lets through (include/exclude lists and a field selector match on
 * the event), the others are skipped for it, deliberately; the checkpoint
 * moves past what every sink acknowledged or skipped, so that across a clean
 * handover each sink gets its subset exactly once. Terms run against the
 * fake API server with the checkpoint ConfigMap.
 */

import assert from "node:assert/strict";
import { runTerm } from "../../lib/collector.ts";
import { type Config, ConfigError, parseConfig } from "../../lib/config/mod.ts";
import {
  type FakeApiServer,
  formatTime,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { KubeClient, PooledKubeConfig } from "../../lib/kube/mod.ts";
import { type EventRoute, routePredicate } from "../../lib/pump/mod.ts";
import type { CoreV1Event } from "@kubernetes/client-node";
import { createSinks, type EventRecord, type Sink } from "../../lib/sinks/mod.ts";
import { polling, waitUntil, within } from "../_fake_api.ts";
import { type Receiver, startReceiver } from "../_http_receiver.ts";
import { flatten, type OtlpReceiver, startOtlpReceiver } from "../_otlp_receiver.ts";

const BOUND_MS = 20_000;
const NS = "default";

/** A sink that keeps every record's event name, under the name of a configured sink. */
class Recorder implements Sink {
  readonly names: string[] = [];
  constructor(readonly name: string) {}

  send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    for (const r of batch) this.names.push(r.event.metadata!.name!);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

let seq = 0;

/** Creates an event; its name says what it is about. */
function createEvent(server: FakeApiServer, kind: string, type: string, ns = NS): string {
  const name = `${kind.toLowerCase()}-${type.toLowerCase()}-${ns}-${++seq}`;
  const at = formatTime(new Date());
  server.create("events", ns, {
    metadata: { name },
    involvedObject: { apiVersion: "v1", kind, namespace: ns, name: "obj" },
    reason: type === "Warning" ? "BackOff" : "Started",
    message: name,
    type,
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: "kubelet" },
  });
  return name;
}

function configWith(routes: string): Config {
  return parseConfig({
    env: {
      DD_COLLECT_KUBERNETES_EVENTS: "true",
      KEVENTS_SINKS: "stdout,webhook",
      KEVENTS_WEBHOOK_URL: "http://127.0.0.1:9/unused",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      KEVENTS_LEASE_DURATION_MS: "30000",
      DD_KUBE_RESOURCES_NAMESPACE: NS,
      KEVENTS_ROUTES: routes,
    },
  });
}

/** Runs one term until it has delivered `until`, then stops it cleanly (a drain). */
async function term(
  server: FakeApiServer,
  config: Config,
  sinks: Sink[],
  transitions: number,
  until: () => boolean,
): Promise<void> {
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  const signal = new AbortController();
  const drain = new AbortController();
  const done = runTerm(
    { client, config, identity: `r${transitions}`, sinks },
    { identity: `r${transitions}`, transitions, signal: signal.signal, drain: drain.signal },
  );
  try {
    await waitUntil("the term's deliveries", until, polling, BOUND_MS);
  } finally {
    drain.abort(new Error("SIGTERM"));
    await within(done, BOUND_MS, "the term to drain").finally(() => signal.abort());
    await client.close();
  }
}

Deno.test("two sinks get different subsets, each exactly once across a clean handover, and the checkpoint passes both", async () => {
  await using server = await startFakeApiServer();
  const config = configWith(JSON.stringify({
    webhook: { include_types: ["Warning"], match: "involvedObject.kind=Pod" },
    stdout: { exclude_namespaces: ["kube-system"] },
  }));
  const stdout = new Recorder("stdout");
  const webhook = new Recorder("webhook");
  const expected = { stdout: [] as string[], webhook: [] as string[] };
  const create = (kind: string, type: string, ns = NS) => {
    const name = createEvent(server, kind, type, ns);
    if (ns !== "kube-system") expected.stdout.push(name);
    if (kind === "Pod" && type === "Warning") expected.webhook.push(name);
  };

  // First term: the start is "now"; events created once it watches.
  let started = false;
  await term(server, config, [stdout, webhook], 1, () => {
    if (!started && server.requestLog.count({ verb: "watch", resource: "events" }) > 0) {
      started = true;
      create("Pod", "Warning");
      create("Pod", "Normal");
      create("Node", "Warning");
      create("Pod", "Warning", "kube-system");
      create("Pod", "Warning");
    }
    return started && stdout.names.length >= expected.stdout.length &&
      webhook.names.length >= expected.webhook.length;
  });
  // Between the terms, with nobody leading.
  create("Pod", "Normal");
  create("Pod", "Warning");
  create("Pod", "Warning", "kube-system");
  // The next leader resumes from the checkpoint the first one wrote.
  await term(
    server,
    config,
    [stdout, webhook],
    2,
    () =>
      stdout.names.length >= expected.stdout.length &&
      webhook.names.length >= expected.webhook.length,
  );

  assert.deepEqual(stdout.names, expected.stdout, "stdout: everything but kube-system, once");
  assert.deepEqual(webhook.names, expected.webhook, "webhook: Pod warnings, kube-system too, once");
  assert.ok(expected.webhook.length >= 3 && expected.stdout.length >= 5);
});

/** The event names a webhook receiver got (ndjson bodies), in order. */
function webhookNames(receiver: Receiver): string[] {
  return receiver.requests.flatMap((r) =>
    r.body.trim().split("\n").map((line) => JSON.parse(line).event.metadata.name as string)
  );
}

/** The event names an OTLP receiver got, in order (`k8s.event.name` of each record). */
function otlpNames(receiver: OtlpReceiver): string[] {
  return receiver.requests.flatMap((r) =>
    flatten(r.decoded).map((record) => String(record.attributes["k8s.event.name"]))
  );
}

Deno.test("named sinks of one type, each with its own rules, get their subsets once across a clean handover", async () => {
  await using server = await startFakeApiServer();
  await using pods = startReceiver();
  await using nodes = startReceiver();
  await using archive = startOtlpReceiver();
  // Two webhooks and an OTLP sink, written as an operator would in datadog.yaml.
  const config = parseConfig({
    env: {
      DD_COLLECT_KUBERNETES_EVENTS: "true",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      KEVENTS_LEASE_DURATION_MS: "30000",
      DD_KUBE_RESOURCES_NAMESPACE: NS,
    },
    file: {
      path: "/etc/datadog-agent/datadog.yaml",
      text: [
        "kevents_sinks:",
        "  - name: pod-warnings",
        "    type: webhook",
        `    url: ${pods.url}/hook`,
        "    include_types: [Warning]",
        "    match: involvedObject.kind=Pod",
        "  - name: node-events",
        "    type: webhook",
        `    url: ${nodes.url}/hook`,
        "    include_kinds: [Node]",
        "  - name: archive",
        "    type: otlp",
        `    endpoint: ${archive.url}`,
        "    compression: none",
        "    exclude_namespaces: [kube-system]",
        "",
      ].join("\n"),
    },
  });
  const sinks = createSinks(config);
  assert.deepEqual(sinks.map((s) => s.name), ["pod-warnings", "node-events", "archive"]);
  const expected = { pods: [] as string[], nodes: [] as string[], archive: [] as string[] };
  const create = (kind: string, type: string, ns = NS) => {
    const name = createEvent(server, kind, type, ns);
    if (kind === "Pod" && type === "Warning") expected.pods.push(name);
    if (kind === "Node") expected.nodes.push(name);
    if (ns !== "kube-system") expected.archive.push(name);
  };
  const caughtUp = () =>
    webhookNames(pods).length >= expected.pods.length &&
    webhookNames(nodes).length >= expected.nodes.length &&
    otlpNames(archive).length >= expected.archive.length;

  try {
    let started = false;
    await term(server, config, sinks, 1, () => {
      if (!started && server.requestLog.count({ verb: "watch", resource: "events" }) > 0) {
        started = true;
        create("Pod", "Warning");
        create("Node", "Normal");
        create("Pod", "Normal", "kube-system");
        create("Node", "Warning");
        create("Pod", "Warning", "kube-system");
      }
      return started && caughtUp();
    });
    create("Pod", "Warning");
    create("Node", "Normal", "kube-system");
    create("Pod", "Normal");
    await term(server, config, sinks, 2, caughtUp);
  } finally {
    await Promise.all(sinks.map((s) => s.close()));
  }

  assert.deepEqual(webhookNames(pods), expected.pods, "pod-warnings: Pod warnings, once");
  assert.deepEqual(webhookNames(nodes), expected.nodes, "node-events: Node events, once");
  assert.deepEqual(otlpNames(archive), expected.archive, "archive: all but kube-system, once");
  assert.ok(pods.requests.every((r) => r.path === "/hook"));
  assert.ok(expected.pods.length >= 3 && expected.nodes.length >= 3);
  assert.ok(expected.archive.length >= 5);
});

Deno.test("a route's match is a field selector on the event, evaluated by kevents", async (t) => {
  const event = (fields: Partial<CoreV1Event>): CoreV1Event => ({
    metadata: { name: "e", namespace: "prod" },
    involvedObject: { kind: "Pod", name: "web-1", namespace: "prod" },
    reason: "BackOff",
    type: "Warning",
    source: { component: "kubelet" },
    ...fields,
  });
  const route = (r: Partial<EventRoute>): EventRoute => ({
    include: { types: [], namespaces: [], reasons: [], kinds: [] },
    exclude: { types: [], namespaces: [], reasons: [], kinds: [] },
    ...r,
  });
  await t.step("= and != on involvedObject fields, reason, type and source", () => {
    const p = routePredicate(route({
      match: "involvedObject.kind=Pod,involvedObject.name!=web-2,source=kubelet,type==Warning",
    }))!;
    assert.equal(p(event({})), true);
    assert.equal(p(event({ involvedObject: { kind: "Pod", name: "web-2" } })), false);
    assert.equal(p(event({ source: { component: "scheduler" } })), false);
    assert.equal(p(event({ type: "Normal" })), false);
  });
  await t.step("with include and exclude lists", () => {
    const p = routePredicate(route({
      include: { types: [], namespaces: ["prod", "staging"], reasons: [], kinds: [] },
      exclude: { types: [], namespaces: [], reasons: ["BackOff"], kinds: [] },
    }))!;
    assert.equal(p(event({ reason: "Failed" })), true);
    assert.equal(p(event({})), false, "excluded reason");
    assert.equal(p(event({ metadata: { namespace: "dev" }, reason: "Failed" })), false);
  });
  await t.step("an empty route lets everything through", () => {
    assert.equal(routePredicate(route({})), undefined);
  });
});

Deno.test("kevents_routes is checked at start", async (t) => {
  const refused = (routes: string) => {
    try {
      configWith(routes);
    } catch (e) {
      if (e instanceof ConfigError) return e;
      throw e;
    }
    assert.fail("accepted");
  };
  await t.step("a route for a sink that is not configured", () => {
    const e = refused('{"datadog":{"include_types":["Warning"]}}');
    assert.equal(e.key, "kevents_routes");
    assert.equal(e.value, "datadog");
    assert.match(e.rule, /must name sinks of kevents_sinks \(stdout, webhook\)/);
  });
  await t.step("a match the API server would refuse", () => {
    const e = refused('{"webhook":{"match":"spec.nodeName=n1"}}');
    assert.match(e.rule, /cannot select events on the field "spec.nodeName"/);
  });
  await t.step("an unknown key or a bad list", () => {
    assert.match(refused('{"webhook":{"include_type":["Warning"]}}').rule, /include_types/);
    assert.equal(refused('{"webhook":{"include_types":[1]}}').key, "kevents_routes");
  });
  await t.step("in datadog.yaml, a mapping as written", () => {
    const c = parseConfig({
      env: {
        KEVENTS_SINKS: "stdout,webhook",
        KEVENTS_WEBHOOK_URL: "http://127.0.0.1:9/unused",
      },
      file: {
        path: "/etc/datadog.yaml",
        text: "kevents_routes:\n  webhook:\n    include_types: [Warning]\n" +
          "    match: involvedObject.kind=Pod\n",
      },
    });
    assert.deepEqual(c.routes.webhook?.include.types, ["Warning"]);
    assert.equal(c.routes.webhook?.match, "involvedObject.kind=Pod");
  });
});
