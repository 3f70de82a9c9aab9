/**
 * Specification of kevents' OTLP logs encoder (lib/sinks/_otlp_wire.ts):
 * what it writes decodes, with the official opentelemetry-proto
 * definitions, to the same message as what the OpenTelemetry JS SDK's own
 * serializers (@opentelemetry/otlp-transformer, a test dependency only)
 * write for the same records, in protobuf and in JSON; and it reads a
 * response's `partial_success` as those definitions encode it.
 */

import assert from "node:assert/strict";
import { JsonLogsSerializer, ProtobufLogsSerializer } from "@opentelemetry/otlp-transformer";
import type { CoreV1Event } from "@kubernetes/client-node";
import { logRecords, type OtlpLogRecord } from "../../lib/sinks/_otlp_records.ts";
import { encodeJson, encodeProtobuf, readPartialSuccess } from "../../lib/sinks/_otlp_wire.ts";
import type { EventRecord } from "../../lib/sinks/mod.ts";
import { decodeRequest, partialSuccessReply } from "../_otlp_receiver.ts";

const PROTOBUF = "application/x-protobuf";
const JSON_TYPE = "application/json";

/** A deterministic pseudo-random source, so that a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const TEXTS = [
  "",
  "Started container app",
  "Back-off restarting failed container app in pod web-7d9f (\u00e9\u00e8 \u4e2d\u6587 \ud83d\ude80)",
  "x".repeat(300),
  "y".repeat(20_000),
  'quotes " and \\ and \n newlines \t tabs \u0000 nul',
];

/** Events of every shape the encoder meets: kinds, namespaces, types, texts, counts, times. */
function events(seed: number, n: number): EventRecord[] {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  return Array.from({ length: n }, (_, i): EventRecord => {
    const at = new Date(Date.UTC(2026, 11, 3, 12, 0, 0) + Math.floor(next() * 1e9)).toISOString();
    const event: CoreV1Event = {
      metadata: {
        name: `e-${seed}-${i}`,
        namespace: pick(["default", "kube-system", "prod"]),
        uid: `uid-${seed}-${i}`,
        resourceVersion: String(1000 + i),
      },
      involvedObject: {
        kind: pick(["Pod", "Node", "Deployment", "CronJob"]),
        name: pick(["web-1", "node-a", "api"]),
        namespace: pick(["default", "prod", undefined]),
        uid: pick(["u1", "u2", undefined]),
      },
      reason: pick(["Started", "BackOff", "", "Failed"]),
      message: pick(TEXTS),
      type: pick(["Normal", "Warning", "Error", "Custom", undefined]),
      count: pick([1, 2, 300, 2 ** 31 + 5, undefined]),
      lastTimestamp: pick([at, undefined]) as unknown as Date,
      eventTime: pick([undefined, "2026-12-03T12:00:00.123456Z"]) as unknown as Date,
      source: { component: pick(["kubelet", "", "default-scheduler"]) },
    };
    return { key: `uid-${seed}-${i}/${1000 + i}`, type: "ADDED", event };
  });
}

function records(seed: number, n: number): OtlpLogRecord[] {
  return logRecords(events(seed, n), {
    clusterName: seed % 2 === 0 ? "prod-eu" : undefined,
    scope: seed % 3 === 0 ? { name: "kevents" } : { name: "kevents", version: "1.2.3" },
    observedMs: Date.UTC(2026, 11, 3, 13, 0, 0) + seed,
  });
}

type SdkRecords = Parameters<typeof ProtobufLogsSerializer.serializeRequest>[0];

Deno.test("kevents' OTLP encoder writes what the OpenTelemetry SDK's serializers write", async (t) => {
  const seeds = Array.from({ length: 40 }, (_, i) => i + 1);

  await t.step("binary protobuf: the same bytes, and the same message decoded", () => {
    for (const seed of seeds) {
      const batch = records(seed, 1 + (seed * 7) % 60);
      const ours = encodeProtobuf(batch);
      const sdk = ProtobufLogsSerializer.serializeRequest(batch as unknown as SdkRecords)!;
      assert.deepEqual(decodeRequest(ours, PROTOBUF), decodeRequest(sdk, PROTOBUF), `seed ${seed}`);
      assert.ok(ours.length === sdk.length && ours.every((b, i) => b === sdk[i]), `seed ${seed}`);
    }
  });

  // The SDK writes an int64 attribute as a JSON number; kevents as a decimal
  // text, as the protobuf JSON mapping OTLP/JSON follows says. Both read alike.
  await t.step("OTLP/JSON: the same message, and only fields of the definitions", () => {
    for (const seed of seeds) {
      const batch = records(seed, 1 + (seed * 5) % 40);
      const ours = decodeRequest(encodeJson(batch), JSON_TYPE);
      const sdk = decodeRequest(
        JsonLogsSerializer.serializeRequest(batch as unknown as SdkRecords)!,
        JSON_TYPE,
      );
      assert.deepEqual(ours, sdk, `seed ${seed}`);
    }
  });

  await t.step("records of one object share one ResourceLogs, in first-seen order", () => {
    const batch = records(7, 50);
    const decoded = decodeRequest(encodeProtobuf(batch), PROTOBUF) as {
      resourceLogs: { scopeLogs: { logRecords: unknown[] }[] }[];
    };
    const resources = new Set(batch.map((r) => r.resource));
    assert.equal(decoded.resourceLogs.length, resources.size);
    assert.ok(resources.size > 1 && resources.size < batch.length, "the seed groups some");
    const total = decoded.resourceLogs.flatMap((rl) => rl.scopeLogs)
      .reduce((n, sl) => n + sl.logRecords.length, 0);
    assert.equal(total, batch.length);
  });

  await t.step("a time before 1970, which fixed64 cannot hold, is written as 0 (unknown)", () => {
    const [record] = records(2, 1);
    const early = { ...record!, hrTime: [-1, 500_000_000] as [number, number] };
    for (
      const [body, type] of [[encodeProtobuf([early]), PROTOBUF], [
        encodeJson([early]),
        JSON_TYPE,
      ]] as const
    ) {
      const decoded = decodeRequest(body, type) as {
        resourceLogs: { scopeLogs: { logRecords: { timeUnixNano?: string }[] }[] }[];
      };
      const time = decoded.resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!.timeUnixNano;
      assert.ok(time === undefined || time === "0", `${type}: ${time}`);
    }
  });

  await t.step("a comparison that can fail: a changed record decodes differently", () => {
    const batch = records(3, 5);
    const changed = [{ ...batch[0]!, body: `${batch[0]!.body}!` }, ...batch.slice(1)];
    assert.notDeepEqual(
      decodeRequest(encodeProtobuf(changed), PROTOBUF),
      decodeRequest(encodeProtobuf(batch), PROTOBUF),
    );
  });
});

Deno.test("a response's partial_success is read as the official definitions encode it", async (t) => {
  await t.step("a count and a message", () => {
    const reply = partialSuccessReply(3, "3 records too old \u00e9");
    assert.deepEqual(readPartialSuccess(reply.body as Uint8Array), {
      rejectedLogRecords: 3,
      errorMessage: "3 records too old \u00e9",
    });
  });
  await t.step("a count beyond 32 bits", () => {
    const reply = partialSuccessReply(2 ** 40 + 1, "");
    assert.equal(readPartialSuccess(reply.body as Uint8Array)?.rejectedLogRecords, 2 ** 40 + 1);
  });
  await t.step("an empty answer, or one without the field, has none", () => {
    assert.equal(readPartialSuccess(new Uint8Array()), undefined);
    // Field 2, a varint, which a newer response might add: skipped.
    assert.equal(readPartialSuccess(new Uint8Array([0x10, 0x05])), undefined);
  });
  await t.step("a truncated answer is an error, not a silent nothing", () => {
    const reply = partialSuccessReply(3, "too old");
    const body = reply.body as Uint8Array;
    assert.throws(() => readPartialSuccess(body.subarray(0, body.length - 2)), RangeError);
  });
});
