/**
 * Specification of the start window (`kevents_start_window_seconds`):
 * without a checkpoint (a first start, a lost or unusable token) the pump
 * delivers the listed events that happened within the window, then watches
 * on; without a window it starts from now, and with backfill it delivers
 * everything listed. Events live on the fake API server.
 */

import assert from "node:assert/strict";
import type { Token } from "../../lib/checkpoint/mod.ts";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import {
  type FakeApiServer,
  formatTime,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { KubeClient, PooledKubeConfig } from "../../lib/kube/mod.ts";
import { runPump } from "../../lib/pump/mod.ts";
import type { EventRecord, Sink } from "../../lib/sinks/mod.ts";
import { polling, waitUntil, within } from "../_fake_api.ts";

const BOUND_MS = 20_000;

class Recorder implements Sink {
  readonly name = "recorder";
  readonly names: string[] = [];

  send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    for (const r of batch) this.names.push(r.event.metadata!.name!);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** An event named `name` that last happened `agoMs` before now (no time at all when null). */
function createEvent(server: FakeApiServer, name: string, agoMs: number | null): void {
  const at = agoMs === null ? undefined : formatTime(new Date(Date.now() - agoMs));
  server.create("events", "default", {
    metadata: { name },
    involvedObject: { apiVersion: "v1", kind: "Pod", namespace: "default", name: "web-1" },
    reason: "Tested",
    message: name,
    type: "Normal",
    ...(at === undefined ? {} : { firstTimestamp: at, lastTimestamp: at }),
  });
}

async function pumpFromNothing(
  server: FakeApiServer,
  options: { startWindowMs?: number; backfill?: boolean },
  then: (sink: Recorder, acks: Token[]) => Promise<void>,
): Promise<void> {
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  const sink = new Recorder();
  const acks: Token[] = [];
  const stop = new AbortController();
  const done = runPump({
    client,
    sinks: [sink],
    token: undefined,
    acknowledge: (t) => void acks.push(t),
    ...options,
  }, stop.signal);
  try {
    await then(sink, acks);
  } finally {
    stop.abort(new Error("Test over"));
    await within(done, BOUND_MS, "the pump to stop");
    await client.close();
  }
}

function seed(server: FakeApiServer): void {
  createEvent(server, "an-hour-ago", 60 * 60_000);
  createEvent(server, "five-minutes-ago", 5 * 60_000);
  createEvent(server, "a-day-ago", 24 * 60 * 60_000);
  createEvent(server, "just-now", 1_000);
  createEvent(server, "no-time", null);
}

function until(what: string, condition: () => boolean): Promise<void> {
  return waitUntil(what, condition, polling, BOUND_MS);
}

Deno.test("with a 10-minute window, a start without checkpoint delivers the listed events of the last 10 minutes, then the watch's", async () => {
  await using server = await startFakeApiServer();
  seed(server);
  await pumpFromNothing(server, { startWindowMs: 10 * 60_000 }, async (sink, acks) => {
    await until("the window's events", () => sink.names.length >= 3);
    assert.deepEqual(
      [...sink.names].sort(),
      ["five-minutes-ago", "just-now", "no-time"],
      "an event without a time cannot be ruled out",
    );
    await until("the list's position acknowledged", () => acks.length > 0);
    createEvent(server, "after-start", 0);
    await until("the watched event", () => sink.names.includes("after-start"));
    assert.equal(sink.names.length, 4, "nothing else");
  });
});

Deno.test("without a window the start delivers nothing listed; with backfill, everything", async (t) => {
  await t.step("from now", async () => {
    await using server = await startFakeApiServer();
    seed(server);
    await pumpFromNothing(server, {}, async (sink, acks) => {
      await until("the list's position acknowledged", () => acks.length > 0);
      createEvent(server, "after-start", 0);
      await until("the watched event", () => sink.names.length > 0);
      assert.deepEqual(sink.names, ["after-start"]);
    });
  });
  await t.step("backfill", async () => {
    await using server = await startFakeApiServer();
    seed(server);
    await pumpFromNothing(server, { backfill: true }, async (sink) => {
      await until("every listed event", () => sink.names.length >= 5);
      assert.equal(sink.names.length, 5);
    });
  });
});

Deno.test("kevents_start_window_seconds: 0 by default, bounded, and not beside backfill", async (t) => {
  await t.step("0 by default, in ms in the configuration", () => {
    assert.equal(parseConfig({ env: {} }).startWindowMs, 0);
    assert.equal(
      parseConfig({ env: { KEVENTS_START_WINDOW_SECONDS: "600" } }).startWindowMs,
      600_000,
    );
  });
  await t.step("more than a day is refused", () => {
    assert.throws(
      () => parseConfig({ env: { KEVENTS_START_WINDOW_SECONDS: "86401" } }),
      (e) => e instanceof ConfigError && e.key === "kevents_start_window_seconds",
    );
  });
  await t.step("with backfill it is refused, naming both", () => {
    assert.throws(
      () => parseConfig({ env: { KEVENTS_START_WINDOW_SECONDS: "600", KEVENTS_BACKFILL: "true" } }),
      (e) =>
        e instanceof ConfigError && e.key === "kevents_start_window_seconds" &&
        /kevents_backfill \(env KEVENTS_BACKFILL\)/.test(e.rule),
    );
  });
});
