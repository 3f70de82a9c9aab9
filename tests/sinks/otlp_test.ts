/**
 * Specification of the otlp sink against a local OTLP/HTTP receiver that
 * decodes every request with the official OTLP definitions (protobufjs on
 * opentelemetry-proto's .proto files; tests/_otlp_receiver.ts), never with
 * the sink's encoder: the mapping of a Pod Warning and a Node Normal event,
 * protobuf and JSON, gzip, the URL, headers and fencing, secrets kept out of
 * errors and logs, retries, a poisoned record set aside, a receiver
 * refusing everything, partial success, TLS through both transports, the
 * drop policy, the settings and createSinks, and the encoder loaded lazily.
 */

import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import { runTerm } from "../../lib/collector.ts";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import { EventGenerator, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { generateTlsMaterial } from "../../lib/fake_apiserver/tls.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { HttpSinkError } from "../../lib/sinks/_http.ts";
import { hrTimeOf } from "../../lib/sinks/_otlp_records.ts";
import { createSinks } from "../../lib/sinks/mod.ts";
import { OtlpSink, type OtlpSinkOptions } from "../../lib/sinks/otlp.ts";
import type { EventRecord } from "../../lib/sinks/sink.ts";
import { InstantClock } from "../_http_receiver.ts";
import {
  flatten,
  keysOf,
  type OtlpReply,
  type OtlpRequest,
  partialSuccessReply,
  startOtlpReceiver,
} from "../_otlp_receiver.ts";

const API_KEY = "0123456789abcdef-otlp-api-key";
const FENCE = { holder: "kevents-a", token: 7, assertCurrent: () => {} };
const never = new AbortController().signal;
/** The InstantClock's start, as OTLP nanoseconds. */
const OBSERVED = String(BigInt(Date.UTC(2026, 0, 1)) * 1_000_000n);

function nanos(iso: string): string {
  return String(BigInt(Date.parse(iso)) * 1_000_000n);
}

const POD_WARNING: CoreV1Event = {
  metadata: {
    name: "web-1.17d2a4f0c3b1e9aa",
    namespace: "shop",
    uid: "0b5c6a3e-ev-1",
    resourceVersion: "4711",
    creationTimestamp: "2026-03-01T09:50:00Z" as unknown as Date,
  },
  involvedObject: {
    kind: "Pod",
    namespace: "shop",
    name: "web-1",
    uid: "pod-uid-1",
    apiVersion: "v1",
    resourceVersion: "123",
    fieldPath: "spec.containers{web}",
  },
  reason: "BackOff",
  message: "Back-off restarting failed container web in pod web-1",
  type: "Warning",
  count: 7,
  source: { component: "kubelet", host: "node-1" },
  firstTimestamp: "2026-03-01T09:50:00Z" as unknown as Date,
  lastTimestamp: "2026-03-01T10:00:00Z" as unknown as Date,
  reportingComponent: "kubelet",
  reportingInstance: "node-1",
};

const NODE_NORMAL: CoreV1Event = {
  metadata: {
    name: "node-2.17d2a4f0c3b1e9bb",
    namespace: "default",
    uid: "0b5c6a3e-ev-2",
    resourceVersion: "4712",
    creationTimestamp: "2026-03-01T10:00:01Z" as unknown as Date,
  },
  involvedObject: { kind: "Node", name: "node-2", uid: "node-2" },
  reason: "NodeReady",
  action: "StatusChange",
  message: "Node node-2 status is now: NodeReady",
  type: "Normal",
  source: { component: "kubelet", host: "node-2" },
  // A new-style event: eventTime with microseconds, no lastTimestamp.
  eventTime: "2026-03-01T10:00:01.123456Z" as unknown as Date,
};

function recordOf(e: CoreV1Event, type: "ADDED" | "MODIFIED" = "ADDED"): EventRecord {
  return { key: `${e.metadata!.uid}/${e.metadata!.resourceVersion}`, type, event: e };
}

/** `n` events about one pod (one resource: the request keeps their order); some poisoned. */
function records(n: number, prefix: string, poisoned: number[] = []): EventRecord[] {
  return Array.from({ length: n }, (_, i) =>
    recordOf({
      ...POD_WARNING,
      metadata: { ...POD_WARNING.metadata, name: `${prefix}${i}`, uid: `uid-${prefix}${i}` },
      message: poisoned.includes(i) ? "POISON pill" : `event ${i}`,
    }));
}

/** A sink with an instant clock and deterministic jitter. */
function sink(url: string, options: Partial<OtlpSinkOptions> = {}) {
  const clock = new InstantClock();
  const s = new OtlpSink({ url: `${url}/v1/logs`, clock, random: () => 0.5, ...options });
  return { sink: s, clock, [Symbol.asyncDispose]: () => s.close() };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("expected a rejection");
}

async function captureLogs(): Promise<{ records: LogRecord[] } & AsyncDisposable> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (r: LogRecord) => void records.push(r) },
    loggers: [
      { category: ["kevents"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  return { records, [Symbol.asyncDispose]: () => reset() };
}

function logText(r: LogRecord): string {
  return `${r.message.map(String).join("")} ${JSON.stringify(r.properties)}`;
}

function decodedOk(req: OtlpRequest) {
  assert.equal(req.error, undefined, `the receiver could not decode the request: ${req.error}`);
  return flatten(req.decoded);
}

// ---- the mapping, decoded with the official definitions ---------------------------------

const POD_RECORD = {
  resource: {
    "k8s.cluster.name": "prod-eu",
    "k8s.node.name": "node-1",
    "k8s.object.kind": "Pod",
    "k8s.object.name": "web-1",
    "k8s.object.uid": "pod-uid-1",
    "k8s.object.fieldpath": "spec.containers{web}",
    "k8s.object.api_version": "v1",
    "k8s.object.resource_version": "123",
  },
  scope: { name: "kevents", version: "1.2.3" },
  timeUnixNano: nanos("2026-03-01T10:00:00Z"),
  observedTimeUnixNano: OBSERVED,
  severityNumber: 13,
  severityText: "Warning",
  body: "Back-off restarting failed container web in pod web-1",
  attributes: {
    "k8s.event.reason": "BackOff",
    "k8s.event.start_time": "2026-03-01T09:50:00Z",
    "k8s.event.name": "web-1.17d2a4f0c3b1e9aa",
    "k8s.event.uid": "0b5c6a3e-ev-1",
    "k8s.namespace.name": "shop",
    "k8s.event.reporting_controller": "kubelet",
    "k8s.event.reporting_instance": "node-1",
    "k8s.event.count": 7,
    "kevents.key": "0b5c6a3e-ev-1/4711",
  },
  rest: { droppedAttributesCount: 0 },
};

const NODE_RECORD = {
  resource: {
    "k8s.cluster.name": "prod-eu",
    "k8s.node.name": "node-2",
    "k8s.object.kind": "Node",
    "k8s.object.name": "node-2",
    "k8s.object.uid": "node-2",
  },
  scope: { name: "kevents", version: "1.2.3" },
  timeUnixNano: String(BigInt(Date.parse("2026-03-01T10:00:01Z")) * 1_000_000n + 123_456_000n),
  observedTimeUnixNano: OBSERVED,
  severityNumber: 9,
  severityText: "Normal",
  body: "Node node-2 status is now: NodeReady",
  attributes: {
    "k8s.event.reason": "NodeReady",
    "k8s.event.action": "StatusChange",
    "k8s.event.start_time": "2026-03-01T10:00:01Z",
    "k8s.event.name": "node-2.17d2a4f0c3b1e9bb",
    "k8s.event.uid": "0b5c6a3e-ev-2",
    "kevents.key": "0b5c6a3e-ev-2/4712",
  },
  rest: { droppedAttributesCount: 0 },
};

const MAPPING_OPTIONS: Partial<OtlpSinkOptions> = {
  clusterName: "prod-eu",
  scope: { name: "kevents", version: "1.2.3" },
};

Deno.test("a Pod Warning and a Node Normal event become log records as the k8s events receiver makes them, decoded from protobuf with the official definitions", async () => {
  await using receiver = startOtlpReceiver();
  await using s = sink(receiver.url, MAPPING_OPTIONS);
  const second = { ...POD_WARNING, metadata: { ...POD_WARNING.metadata, uid: "ev-3" } };
  await s.sink.send([recordOf(POD_WARNING), recordOf(NODE_NORMAL), recordOf(second)], never);

  assert.equal(receiver.requests.length, 1);
  const req = receiver.requests[0]!;
  assert.equal(req.method, "POST");
  assert.equal(req.path, "/v1/logs");
  assert.equal(req.headers.get("content-type"), "application/x-protobuf");
  const resourceLogs = req.decoded!.resourceLogs as unknown[];
  assert.equal(resourceLogs.length, 2, "the pod's two events share its resource");
  const flat = decodedOk(req);
  assert.deepEqual(flat[0], POD_RECORD);
  assert.deepEqual(flat[1]!.attributes["kevents.key"], "ev-3/4711");
  assert.deepEqual(flat[2], NODE_RECORD);
});

Deno.test("http/json sends the same records as OTLP/JSON, every key a field of the official definitions", async () => {
  await using receiver = startOtlpReceiver();
  await using s = sink(receiver.url, { ...MAPPING_OPTIONS, protocol: "http/json" });
  await s.sink.send([recordOf(POD_WARNING), recordOf(NODE_NORMAL)], never);

  const req = receiver.requests[0]!;
  assert.equal(req.headers.get("content-type"), "application/json");
  assert.deepEqual(decodedOk(req), [POD_RECORD, NODE_RECORD]);
  const json = JSON.parse(new TextDecoder().decode(req.body));
  const record = json.resourceLogs[0].scopeLogs[0].logRecords[0];
  assert.equal(record.timeUnixNano, POD_RECORD.timeUnixNano, "64-bit times as decimal texts");
  assert.equal(record.severityNumber, 13, "enums as numbers");
});

Deno.test("enrichment joins the resource: the owners by the semantic conventions' names, the pod's node when the event names none", async () => {
  await using receiver = startOtlpReceiver();
  await using s = sink(receiver.url);
  const e = { ...POD_WARNING, source: { component: "default-scheduler" } };
  await s.sink.send([{
    ...recordOf(e),
    enrichment: {
      node: "node-9",
      owners: [{ kind: "ReplicaSet", name: "web-7d4b9c" }, { kind: "Deployment", name: "web" }],
      tags: ["kube_deployment:web"],
    },
  }], never);
  const [record] = decodedOk(receiver.requests[0]!);
  assert.deepEqual(record!.resource, {
    "k8s.node.name": "node-9",
    "k8s.object.kind": "Pod",
    "k8s.object.name": "web-1",
    "k8s.object.uid": "pod-uid-1",
    "k8s.object.fieldpath": "spec.containers{web}",
    "k8s.object.api_version": "v1",
    "k8s.object.resource_version": "123",
    "k8s.replicaset.name": "web-7d4b9c",
    "k8s.deployment.name": "web",
  });
  assert.deepEqual(record!.scope, { name: "kevents" });
});

Deno.test("timestamps keep the API's sub-second digits; an unknown event type gets no severity", async () => {
  assert.deepEqual(hrTimeOf("2026-03-01T10:00:01.123456Z"), [1772359201, 123_456_000]);
  assert.deepEqual(hrTimeOf("2026-03-01T11:00:01.5+01:00"), [1772359201, 500_000_000]);
  assert.deepEqual(hrTimeOf(new Date("2026-03-01T10:00:01.250Z")), [1772359201, 250_000_000]);
  assert.equal(hrTimeOf("yesterday"), undefined);
  assert.equal(hrTimeOf(undefined), undefined);
  // OTLP's times are unsigned: a time before 1970 is no time, and the next one is taken.
  assert.equal(hrTimeOf("1969-12-31T23:59:59.5Z"), undefined);
  assert.equal(hrTimeOf(new Date(-1000)), undefined);

  await using receiver = startOtlpReceiver();
  await using s = sink(receiver.url);
  await s.sink.send([recordOf({ ...NODE_NORMAL, type: "Custom" })], never);
  const [record] = decodedOk(receiver.requests[0]!);
  assert.equal(record!.severityNumber, undefined);
  assert.equal(record!.severityText, undefined);
});

// ---- transport --------------------------------------------------------------------------

Deno.test("gzip is the default: Content-Encoding gzip, a gzip stream the receiver undoes; none sends the bytes as they are", async () => {
  await using receiver = startOtlpReceiver();
  const batch = records(50, "z");
  await using zipped = sink(receiver.url);
  await zipped.sink.send(batch, never);
  await using plain = sink(receiver.url, { compression: "none" });
  await plain.sink.send(batch, never);

  const [gz, raw] = receiver.requests;
  assert.equal(gz!.headers.get("content-encoding"), "gzip");
  assert.deepEqual([...gz!.raw.slice(0, 2)], [0x1f, 0x8b], "a gzip stream");
  assert.equal(raw!.headers.get("content-encoding"), null);
  assert.deepEqual(raw!.raw, raw!.body);
  assert.deepEqual(keysOf(gz!), batch.map((r) => r.key));
  assert.deepEqual(keysOf(raw!), batch.map((r) => r.key));
  assert.ok(gz!.raw.length * 4 < raw!.raw.length, `${gz!.raw.length} vs ${raw!.raw.length}`);
});

Deno.test("the endpoint is a base URL to which /v1/logs is appended; the logs endpoint is used as given", () => {
  const url = (env: Record<string, string>) =>
    parseConfig({ env: { KEVENTS_SINKS: "otlp", ...env } }).otlp.url;
  assert.equal(url({ KEVENTS_OTLP_ENDPOINT: "http://otel:4318" }), "http://otel:4318/v1/logs");
  assert.equal(url({ KEVENTS_OTLP_ENDPOINT: "http://otel:4318/" }), "http://otel:4318/v1/logs");
  assert.equal(url({ KEVENTS_OTLP_ENDPOINT: "https://h/otlp/?t=1" }), "https://h/otlp/v1/logs?t=1");
  assert.equal(
    url({ KEVENTS_OTLP_ENDPOINT: "http://otel:4318", KEVENTS_OTLP_LOGS_ENDPOINT: "https://h/c" }),
    "https://h/c",
  );
});

Deno.test("headers, the fencing token and the User-Agent go with every request; configured header values never reach a message", async () => {
  await using logs = await captureLogs();
  await using receiver = startOtlpReceiver({
    // Echoes the request's headers, as some proxies' error pages do.
    fallback: (req) => ({ status: 401, body: JSON.stringify(Object.fromEntries(req.headers)) }),
  });
  await using s = sink(`${receiver.url}/otlp`, {
    headers: { "X-Scope-OrgID": "tenant-7f3a9", "Api-Key": API_KEY },
    userAgent: "kevents/test",
    maxAttempts: 1,
    onFailure: "drop",
  });
  await s.sink.send([recordOf(POD_WARNING)], never, { fence: FENCE });

  const req = receiver.requests[0]!;
  assert.equal(req.path, "/otlp/v1/logs");
  assert.equal(req.headers.get("x-scope-orgid"), "tenant-7f3a9");
  assert.equal(req.headers.get("api-key"), API_KEY);
  assert.equal(req.headers.get("user-agent"), "kevents/test");
  assert.equal(req.headers.get("kevents-leader"), FENCE.holder);
  assert.equal(req.headers.get("kevents-fencing-token"), String(FENCE.token));
  assert.equal(s.sink.dropped, 1);
  const texts = logs.records.map(logText);
  assert.ok(texts.some((t) => t.includes("401 Unauthorized")), texts.join("\n"));
  for (const text of texts) {
    assert.ok(!text.includes(API_KEY) && !text.includes("tenant-7f3a9"), text);
  }

  await using failing = sink(receiver.url, { headers: { "Api-Key": API_KEY }, maxAttempts: 1 });
  const error = await rejection(failing.sink.send([recordOf(POD_WARNING)], never));
  assert.ok(error instanceof HttpSinkError);
  assert.equal(error.status, 401);
  assert.ok(!error.message.includes(API_KEY), error.message);
  assert.match(error.message, /^OTLP POST http:\/\/127\.0\.0\.1:\d+\/v1\/logs answered 401/);
});

Deno.test("503 is retried after its Retry-After, then the same bytes are delivered once", async () => {
  await using receiver = startOtlpReceiver();
  await using s = sink(receiver.url);
  receiver.script({ status: 503, headers: { "Retry-After": "1" }, body: "busy" });
  await s.sink.send(records(3, "r"), never);
  assert.equal(receiver.requests.length, 2);
  assert.deepEqual(s.clock.sleeps, [1000]);
  assert.deepEqual(receiver.requests[1]!.raw, receiver.requests[0]!.raw);
  assert.deepEqual(keysOf(receiver.requests[1]!), records(3, "r").map((r) => r.key));
});

Deno.test("TLS: the receiver's CA is trusted (Deno's client), or verification skipped (undici): the bytes arrive intact either way", async (t) => {
  const tls = await generateTlsMaterial();
  await using receiver = startOtlpReceiver({ tls: { cert: tls.certPem, key: tls.keyPem } });
  for (
    const [name, options] of [
      ["with the CA", { tls: { ca: tls.caCertPem } }],
      ["insecureSkipVerify", { tls: { insecureSkipVerify: true } }],
      ["insecureSkipVerify, not gzipped", {
        tls: { insecureSkipVerify: true },
        compression: "none" as const,
      }],
    ] as const
  ) {
    await t.step(name, async () => {
      const before = receiver.requests.length;
      await using s = sink(receiver.url, { ...options, ...MAPPING_OPTIONS });
      await s.sink.send([recordOf(POD_WARNING)], never);
      assert.deepEqual(decodedOk(receiver.requests[before]!), [POD_RECORD]);
    });
  }
  await t.step("an unknown CA is refused", async () => {
    await using s = sink(receiver.url, { maxAttempts: 1 });
    const error = await rejection(s.sink.send([recordOf(POD_WARNING)], never));
    assert.ok(error instanceof HttpSinkError && error.status === undefined, String(error));
  });
});

// ---- refusals ------------------------------------------------------------------------------

Deno.test("a batch refused with 400 for one poisoned record among 8 is split in halves: the 7 others are delivered once, the poisoned one is set aside", async () => {
  await using logs = await captureLogs();
  const accepted: string[] = [];
  await using receiver = startOtlpReceiver({
    fallback: (req) => {
      const flat = flatten(req.decoded);
      if (flat.some((r) => r.body === "POISON pill")) {
        return { status: 400, body: "log record 5: invalid body" };
      }
      accepted.push(...keysOf(req));
      return { status: 200, headers: { "Content-Type": "application/x-protobuf" } };
    },
  });
  await using s = sink(receiver.url);
  const batch = records(8, "p", [5]);

  const result = await s.sink.send(batch, never, { fence: FENCE });

  const poisoned = batch[5]!.key;
  assert.deepEqual(accepted, batch.map((r) => r.key).filter((k) => k !== poisoned));
  assert.deepEqual(result, {
    rejected: [{ key: poisoned, status: 400, reason: "log record 5: invalid body" }],
  });
  assert.deepEqual(receiver.requests.map((r) => keysOf(r).length), [8, 4, 4, 2, 1, 1, 2]);
  for (const req of receiver.requests) {
    assert.equal(req.headers.get("kevents-fencing-token"), String(FENCE.token));
  }
  const warnings = logs.records.filter((r) => r.level === "warning").map(logText);
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(warnings[0]!, /OTLP receiver refused a batch of 8 events for good .*in halves/);
});

Deno.test("a receiver refusing every record of a batch (422) is at fault: nothing is set aside, the send fails", async () => {
  await using receiver = startOtlpReceiver({ fallback: { status: 422, body: "schema" } });
  await using s = sink(receiver.url);
  await assert.rejects(s.sink.send(records(4, "bad"), never), (e) => {
    assert.ok(e instanceof HttpSinkError && e.retryable, String(e));
    assert.match(e.message, /refused every event of a batch of 4 \(422: schema\)/);
    return true;
  });
  assert.equal(receiver.requests.length, 2 * 4 - 1);
  receiver.setFallback({ status: 200 });
  assert.equal(await s.sink.send(records(4, "bad"), never), undefined);
});

Deno.test("a partial success is logged at WARN with the receiver's count and message; nothing is sent again", async (t) => {
  for (const protocol of ["http/protobuf", "http/json"] as const) {
    await t.step(protocol, async () => {
      await using logs = await captureLogs();
      await using receiver = startOtlpReceiver();
      receiver.script(partialSuccessReply(2, "quota exceeded for tenant", protocol));
      await using s = sink(receiver.url, { protocol });
      assert.equal(await s.sink.send(records(5, "ps"), never), undefined);
      assert.equal(receiver.requests.length, 1);
      const warnings = logs.records.filter((r) => r.level === "warning").map(logText);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0]!, /took a request of 5 events but rejected 2 of them/);
      assert.match(warnings[0]!, /quota exceeded for tenant/);
    });
  }

  await t.step("a count the text answer cannot carry is reported as some", async () => {
    await using logs = await captureLogs();
    await using receiver = startOtlpReceiver();
    receiver.script(partialSuccessReply(300, "too many"));
    await using s = sink(receiver.url);
    await s.sink.send(records(2, "big"), never);
    const warnings = logs.records.filter((r) => r.level === "warning").map(logText);
    assert.match(warnings[0] ?? "", /but rejected some of them/);
  });

  await t.step("a warning without rejected records is logged at INFO", async () => {
    await using logs = await captureLogs();
    await using receiver = startOtlpReceiver();
    receiver.script(partialSuccessReply(0, "attribute truncated"));
    await using s = sink(receiver.url);
    await s.sink.send(records(1, "w"), never);
    assert.equal(logs.records.filter((r) => r.level === "warning").length, 0);
    assert.ok(logs.records.some((r) => logText(r).includes("attribute truncated")));
  });
});

Deno.test("by default a failing send rejects (the pump retries); with drop the batch is dropped and counted", async () => {
  await using receiver = startOtlpReceiver({ fallback: { status: 503 } });
  await using retrying = sink(receiver.url, { maxAttempts: 2 });
  const error = await rejection(retrying.sink.send(records(3, "d"), never));
  assert.ok(error instanceof HttpSinkError && error.status === 503);
  await using dropping = sink(receiver.url, { maxAttempts: 2, onFailure: "drop" });
  assert.equal(await dropping.sink.send(records(3, "d"), never), undefined);
  assert.equal(dropping.sink.dropped, 3);
});

// ---- configuration -------------------------------------------------------------------------

Deno.test("otlp settings: file and environment, defaults, requirements, refusals naming key, source, value and rule", async (t) => {
  const base = { KEVENTS_SINKS: "otlp" };

  await t.step("defaults: protobuf, gzip, retry, 5 attempts", () => {
    const config = parseConfig({ env: { ...base, KEVENTS_OTLP_ENDPOINT: "http://otel:4318" } });
    assert.deepEqual(config.sinks, ["otlp"]);
    assert.deepEqual(config.otlp, {
      url: "http://otel:4318/v1/logs",
      protocol: "http/protobuf",
      compression: "gzip",
      headers: {},
      caFile: undefined,
      certFile: undefined,
      keyFile: undefined,
      insecureSkipVerify: false,
      onFailure: "retry",
      maxAttempts: 5,
    });
    assert.deepEqual(config.warnings, []);
  });

  await t.step("the environment gives every setting", () => {
    const config = parseConfig({
      env: {
        ...base,
        KEVENTS_OTLP_ENDPOINT: "http://ignored:4318",
        KEVENTS_OTLP_LOGS_ENDPOINT: "https://otel.example.com/ingest/logs",
        KEVENTS_OTLP_PROTOCOL: "HTTP/JSON",
        KEVENTS_OTLP_COMPRESSION: "none",
        KEVENTS_OTLP_HEADERS: "X-Scope-OrgID=team-a, Api-Key=k=v",
        KEVENTS_OTLP_CA_FILE: "/etc/ca.pem",
        KEVENTS_OTLP_CERT_FILE: "/etc/cert.pem",
        KEVENTS_OTLP_KEY_FILE: "/etc/key.pem",
        KEVENTS_OTLP_ON_FAILURE: "drop",
        KEVENTS_OTLP_MAX_ATTEMPTS: "3",
      },
    });
    assert.deepEqual(config.otlp, {
      url: "https://otel.example.com/ingest/logs",
      protocol: "http/json",
      compression: "none",
      headers: { "X-Scope-OrgID": "team-a", "Api-Key": "k=v" },
      caFile: "/etc/ca.pem",
      certFile: "/etc/cert.pem",
      keyFile: "/etc/key.pem",
      fileSources: {
        caFile: "env KEVENTS_OTLP_CA_FILE",
        certFile: "env KEVENTS_OTLP_CERT_FILE",
        keyFile: "env KEVENTS_OTLP_KEY_FILE",
      },
      insecureSkipVerify: false,
      onFailure: "drop",
      maxAttempts: 3,
    });
  });

  await t.step("the file takes headers as a mapping", () => {
    const config = parseConfig({
      env: {},
      file: {
        path: "/etc/datadog.yaml",
        text: "kevents_sinks: [stdout, otlp]\nkevents_otlp_endpoint: http://otel:4318/otlp\n" +
          "kevents_otlp_headers:\n  X-Scope-OrgID: team-b\n",
      },
    });
    assert.deepEqual(config.sinks, ["stdout", "otlp"]);
    assert.equal(config.otlp.url, "http://otel:4318/otlp/v1/logs");
    assert.deepEqual(config.otlp.headers, { "X-Scope-OrgID": "team-b" });
  });

  await t.step("an endpoint is required with the otlp sink, and only then", () => {
    assert.throws(() => parseConfig({ env: base }), (e) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.key, "kevents_otlp_endpoint");
      assert.equal(e.source, "default");
      assert.equal(e.rule, "is required with the otlp sink");
      assert.match(e.message, /^Cannot use the otlp sink: kevents_otlp_endpoint/);
      return true;
    });
    assert.equal(parseConfig({ env: {} }).otlp.url, undefined);
  });

  await t.step("bad values name the key, the source, the value and the rule", () => {
    // [variable, value, key, the value as the error holds it (a URL masked, so quoted), rule]
    const cases: [string, string, string, string, RegExp][] = [
      ["KEVENTS_OTLP_PROTOCOL", "grpc", "kevents_otlp_protocol", "grpc", /gRPC is not/],
      ["KEVENTS_OTLP_COMPRESSION", "zstd", "kevents_otlp_compression", "zstd", /"gzip"/],
      ["KEVENTS_OTLP_ENDPOINT", "otel:4318", "kevents_otlp_endpoint", '"otel:4318"', /http/],
      ["KEVENTS_OTLP_MAX_ATTEMPTS", "0", "kevents_otlp_max_attempts", "0", /1 to 100/],
      ["KEVENTS_OTLP_ON_FAILURE", "skip", "kevents_otlp_on_failure", "skip", /"retry"/],
    ];
    for (const [name, raw, key, value, rule] of cases) {
      assert.throws(() => parseConfig({ env: { ...base, [name]: raw } }), (e) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.key, key);
        assert.equal(e.source, `env ${name}`);
        assert.equal(e.value, value);
        assert.match(e.rule, rule);
        assert.equal(
          e.message,
          `Cannot parse ${key} ${JSON.stringify(raw)} (env ${name}): ${e.rule}`,
        );
        return true;
      });
    }
  });

  await t.step("a header value is never shown; an ENC[...] handle is refused", () => {
    assert.throws(
      () => parseConfig({ env: { KEVENTS_OTLP_HEADERS: `Api-Key=${API_KEY},Bad Name=x` } }),
      (e) => {
        assert.ok(e instanceof ConfigError);
        assert.ok(!e.message.includes(API_KEY), e.message);
        return true;
      },
    );
    assert.throws(
      () => parseConfig({ env: { KEVENTS_OTLP_HEADERS: "Api-Key=ENC[otlp_key]" } }),
      /Cannot use kevents_otlp_headers Api-Key "ENC\[otlp_key\]" \(env KEVENTS_OTLP_HEADERS\): secrets backends/,
    );
  });

  await t.step("a client certificate needs its key", () => {
    assert.throws(
      () =>
        parseConfig({
          env: { ...base, KEVENTS_OTLP_ENDPOINT: "https://h/", KEVENTS_OTLP_KEY_FILE: "/k" },
        }),
      /Cannot use kevents_otlp_key_file \(env KEVENTS_OTLP_KEY_FILE\) without kevents_otlp_cert_file/,
    );
  });

  await t.step("skipping verification and credentials over plain HTTP are warned about", () => {
    const insecure = parseConfig({
      env: {
        ...base,
        KEVENTS_OTLP_ENDPOINT: "https://otel.example.com",
        KEVENTS_OTLP_INSECURE_SKIP_VERIFY: "true",
      },
    });
    assert.deepEqual(insecure.warnings, [
      "TLS verification of the OTLP receiver https://otel.example.com/v1/logs is off " +
      "(kevents_otlp_insecure_skip_verify, env KEVENTS_OTLP_INSECURE_SKIP_VERIFY): anyone on " +
      "the path can read and forge what is sent",
    ]);
    const plain = parseConfig({
      env: { ...base, KEVENTS_OTLP_ENDPOINT: "http://otel", KEVENTS_OTLP_HEADERS: "Api-Key=x" },
    });
    assert.deepEqual(plain.warnings, [
      "The otlp sink sends credentials to http://otel/v1/logs over plain HTTP",
    ]);
  });
});

Deno.test("createSinks builds the otlp sink with its TLS files and the cluster name; a bad file names the setting", async (t) => {
  const tls = await generateTlsMaterial();
  const files: Record<string, string> = { "/ca.pem": tls.caCertPem, "/not-pem": "hello" };
  const readTextFile = (path: string) => {
    const text = files[path];
    if (text === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
    return text;
  };
  await using receiver = startOtlpReceiver({ tls: { cert: tls.certPem, key: tls.keyPem } });

  await t.step("with a CA file, after null", async () => {
    const config = parseConfig({
      env: {
        KEVENTS_SINKS: "null,otlp",
        KEVENTS_OTLP_ENDPOINT: receiver.url,
        KEVENTS_OTLP_CA_FILE: "/ca.pem",
        DD_CLUSTER_NAME: "prod-eu",
      },
    });
    const sinks = createSinks(config, { readTextFile, userAgent: "kevents/1.2.3" });
    try {
      assert.deepEqual(sinks.map((s) => s.name), ["null", "otlp"]);
      await sinks[1]!.send([recordOf(POD_WARNING)], never);
      const [record] = decodedOk(receiver.requests[0]!);
      assert.equal(record!.resource["k8s.cluster.name"], "prod-eu");
      assert.deepEqual(record!.scope, { name: "kevents", version: "1.2.3" });
      assert.equal(receiver.requests[0]!.headers.get("user-agent"), "kevents/1.2.3");
    } finally {
      await Promise.all(sinks.map((s) => s.close()));
    }
  });

  await t.step("a file that cannot be read or holds no certificate is a ConfigError", () => {
    for (const [path, problem] of [["/missing.pem", "cannot read it"], ["/not-pem", "no -----"]]) {
      const config = parseConfig({
        env: {
          KEVENTS_SINKS: "otlp",
          KEVENTS_OTLP_ENDPOINT: receiver.url,
          KEVENTS_OTLP_CA_FILE: path!,
        },
      });
      assert.throws(() => createSinks(config, { readTextFile }), (e) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.key, "kevents_otlp_ca_file");
        assert.equal(e.source, "env KEVENTS_OTLP_CA_FILE");
        assert.equal(e.value, path);
        assert.match(e.rule, /CA certificates/);
        assert.ok(e.message.includes(problem!), e.message);
        return true;
      });
    }
  });
});

// ---- through a term ------------------------------------------------------------------------

Deno.test("a term delivers every generated event once to an OTLP receiver, a 503 spell included, and the checkpoint follows", async () => {
  await using server = await startFakeApiServer();
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  await using _client = { [Symbol.asyncDispose]: () => client.close() };
  const startRv = server.store.currentRv;
  server.create("configmaps", "default", {
    metadata: { name: "datadogtoken" },
    data: { [TOKEN_KEY]: String(startRv) },
  });

  const accepted: string[] = [];
  let failing = false;
  await using receiver = startOtlpReceiver({
    fallback: (req): OtlpReply => {
      if (failing) return { status: 503, headers: { "Retry-After": "0" } };
      accepted.push(...keysOf(req));
      return { status: 200, headers: { "Content-Type": "application/x-protobuf" } };
    },
  });
  const config = parseConfig({
    env: {
      KUBERNETES: "1",
      KEVENTS_LEASE_DURATION_MS: "30000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "20",
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "20",
      KEVENTS_SINKS: "otlp",
      KEVENTS_OTLP_ENDPOINT: receiver.url,
      KEVENTS_OTLP_MAX_ATTEMPTS: "2",
    },
  });
  const [otlp] = createSinks(config);
  await using _sink = { [Symbol.asyncDispose]: () => otlp!.close() };

  const expectedKeys = () => {
    const keys: string[] = [];
    for (let rv = startRv + 1; rv <= server.store.currentRv; rv++) {
      const change = server.store.changeAt(rv);
      if (change?.record.storage !== "/events" || change.type === "DELETED") continue;
      const o = change.record.object;
      keys.push(`${o.metadata.uid}/${o.metadata.resourceVersion}`);
    }
    return keys;
  };
  const lastEventRv = () => {
    for (let rv = server.store.currentRv; rv > startRv; rv--) {
      if (server.store.changeAt(rv)?.record.storage === "/events") return rv;
    }
    return startRv;
  };
  const checkpointRv = () =>
    Number(
      (server.get("configmaps", "default", "datadogtoken")?.data as Record<string, string>)
        ?.[TOKEN_KEY],
    );
  const until = async (what: string, condition: () => boolean) => {
    const deadline = Date.now() + 30_000;
    while (!condition()) {
      if (Date.now() > deadline) assert.fail(`Gave up waiting until ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  const controller = new AbortController();
  const term = runTerm(
    { client, config, identity: "e2e", sinks: [otlp!] },
    { identity: "e2e", transitions: 0, signal: controller.signal },
  );
  try {
    const generator = new EventGenerator({ seed: 11, repeatRatio: 0.3 });
    const generate = (n: number) => {
      for (let i = 0; i < n; i++) server.applyGenerated(generator.next());
    };
    generate(30);
    const first = expectedKeys();
    await until(`${first.length} events were accepted`, () => accepted.length >= first.length);
    await until("the checkpoint reached them", () => checkpointRv() === lastEventRv());

    failing = true;
    const deliveredRv = lastEventRv();
    generate(20);
    await until("the receiver refused requests", () => receiver.requests.length > 4);
    assert.equal(checkpointRv(), deliveredRv, "the checkpoint waits for the receiver");

    failing = false;
    const all = expectedKeys();
    await until(`all ${all.length} events were accepted`, () => accepted.length >= all.length);
    // A request groups its records by object, so the order across objects may differ.
    assert.deepEqual([...accepted].sort(), [...all].sort(), "every event exactly once");
    await until("the checkpoint reached the end", () => checkpointRv() === lastEventRv());
    const decoded = receiver.requests.filter((r) => r.error === undefined && r.decoded);
    assert.ok(
      decoded.every((r) => flatten(r.decoded).every((x) => x.resource["k8s.object.kind"])),
    );
  } finally {
    controller.abort(new Error("Test over"));
    await term;
  }
});

// ---- memory ------------------------------------------------------------------------------------

/** The imports of OpenTelemetry packages in a module's text, static or dynamic (type-only ones are erased). */
function openTelemetryImports(text: string): string[] {
  const code = text.replace(/^(?:import|export) type [^;]*;/gm, "");
  return [...code.matchAll(/(?:from\s*|import\s*\(?\s*)"@opentelemetry\/[^"]+"/g)].map((m) => m[0]);
}

Deno.test("no OpenTelemetry package is loaded by kevents: the encoder is its own, the SDK's serializers only check it in tests", async () => {
  const found: string[] = [];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts")) {
        for (const m of openTelemetryImports(await Deno.readTextFile(url))) {
          found.push(`${entry.name}: ${m}`);
        }
      }
    }
  };
  await walk(new URL("../../lib/", import.meta.url));
  assert.deepEqual(found, []);
  // The matcher finds what it looks for: the tests' own cross-check imports the SDK's serializers.
  const wire = await Deno.readTextFile(new URL("./otlp_wire_test.ts", import.meta.url));
  assert.deepEqual(openTelemetryImports(wire), ['from "@opentelemetry/otlp-transformer"']);
  assert.equal(openTelemetryImports('await import("@opentelemetry/api")').length, 1);
});
