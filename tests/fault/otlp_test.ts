/**
 * End to end with the OTLP sink: three replicas deliver generated events
 * over OTLP/HTTP (protobuf, gzip) to a receiver that decodes every request
 * with the official opentelemetry-proto definitions (tests/_otlp_receiver.ts),
 * through a clean handover, a crash and a storm of 503s. Every generated
 * change reaches the receiver, found by its `kevents.key` attribute; one
 * leader at a time. Prints one `FAULT otlp-...` line (tests/fault/_harness.ts).
 */

import assert from "node:assert/strict";
import type { Sink } from "../../lib/sinks/mod.ts";
import { OtlpSink } from "../../lib/sinks/otlp.ts";
import { flatten, startOtlpReceiver } from "../_otlp_receiver.ts";
import { startFaultHarness } from "./_harness.ts";

/** Sends to the OTLP sink first, then records what it took (the harness's deliveries). */
function throughOtlp(otlp: OtlpSink, recording: Sink): Sink {
  return {
    name: "otlp",
    async send(batch, signal, options) {
      await otlp.send(batch, signal, options);
      await recording.send(batch, signal, options);
    },
    async close() {
      await otlp.close();
      await recording.close();
    },
  };
}

Deno.test("over OTLP through a clean handover, a crash and a 503 storm: every change reaches the receiver, decoded with the official definitions", async () => {
  await using h = await startFaultHarness();
  await using receiver = startOtlpReceiver();
  const start = () =>
    h.startReplica({
      wrapSink: (recording) =>
        throughOtlp(
          new OtlpSink({ url: `${receiver.url}/v1/logs`, random: () => 0.5 }),
          recording,
        ),
    });
  start();
  start();
  start();
  const first = await h.waitForLeader();
  h.generate({ total: 600, ratePerSecond: 150, seed: 23 });
  await h.waitForDeliveries(150);
  await first.stop(); // A clean handover.
  const second = await h.waitForLeader({ not: first });
  await h.waitForDeliveries(300);
  second.kill(); // A crash.
  start();
  await h.waitForLeader({ not: second });
  let failed = 0;
  receiver.script(
    ...Array.from({ length: 10 }, () => {
      failed++;
      return { status: 503, headers: { "Retry-After": "1" }, body: "busy" };
    }),
  );
  await h.generatorsDone();
  await h.waitAllDelivered();
  const r = h.verify({ duplicates: "afterCheckpoint" });
  h.summary("otlp-handover-crash-503", r, { failed });

  const received = new Set<string>();
  for (const request of receiver.requests) {
    assert.equal(request.error, undefined, `a request the official definitions cannot decode`);
    for (const record of flatten(request.decoded)) {
      const key = record.attributes["kevents.key"];
      if (typeof key === "string") received.add(key);
    }
  }
  // Every change the harness counts as delivered reached the receiver, decoded.
  const delivered = new Set(h.deliveries.map((d) => d.key));
  assert.ok(delivered.size >= 600, `${delivered.size} changes delivered`);
  assert.deepEqual(
    [...delivered].filter((k) => !received.has(k)),
    [],
    "changes missing at the receiver",
  );
});
