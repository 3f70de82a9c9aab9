/**
 * Specification of the batch window (`batchWindowMs`; with the Datadog sink
 * bundling, `kevents_datadog_bundle_window_seconds`, 15 s as the Agent's
 * check interval): what arrives within the window from a batch's first
 * change goes out as one batch, so the Datadog sink bundles it into one
 * event per object, as the Agent bundles what one check run collected; the
 * checkpoint waits at most the window; a full batch or a drain does not
 * wait. The pump reads a fake API server over the network; the window runs
 * on a fake clock.
 */

import assert from "node:assert/strict";
import type { Token } from "../../lib/checkpoint/mod.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import {
  type FakeApiServer,
  formatTime,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { EVENTS, KubeClient, PooledKubeConfig } from "../../lib/kube/mod.ts";
import { Metrics } from "../../lib/ops/mod.ts";
import { runPump } from "../../lib/pump/mod.ts";
import { DatadogSink, type EventRecord, type Sink } from "../../lib/sinks/mod.ts";
import { FakeClock } from "../_fake_clock.ts";
import { polling, waitUntil, within } from "../_fake_api.ts";
import { startReceiver } from "../_http_receiver.ts";

const BOUND_MS = 20_000;
const WINDOW_MS = 15_000;
const NS = "default";

/** Counts what the pump read, and shows the queue's depth. */
class Probe extends Metrics {
  read = 0;
  #depth: () => number = () => 0;

  override received(type: string | undefined, n = 1): void {
    super.received(type, n);
    this.read += n;
  }

  override watchQueue(depth: () => number): void {
    super.watchQueue(depth);
    this.#depth = depth;
  }

  get depth(): number {
    return this.#depth();
  }
}

/** A sink that keeps every batch. */
class Recorder implements Sink {
  readonly name = "recorder";
  readonly batches: EventRecord[][] = [];

  send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    this.batches.push([...batch]);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

let seq = 0;

function createEvent(server: FakeApiServer, pod = "web-1"): void {
  const at = formatTime(new Date());
  server.create("events", NS, {
    metadata: { name: `ev-${++seq}` },
    involvedObject: { apiVersion: "v1", kind: "Pod", namespace: NS, name: pod, uid: `uid-${pod}` },
    reason: "BackOff",
    message: "Back-off restarting failed container",
    type: "Warning",
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: "kubelet", host: "node-1" },
  });
}

interface Running extends AsyncDisposable {
  clock: FakeClock;
  probe: Probe;
  acks: Token[];
  drain: AbortController;
  /** Ends the term at once (not a drain). */
  stop: AbortController;
  done: Promise<void>;
}

async function startPump(
  server: FakeApiServer,
  sink: Sink,
  options: { batchSize?: number } = {},
): Promise<Running> {
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  const start = await client.list(EVENTS, { limit: 1 });
  const clock = new FakeClock();
  const probe = new Probe();
  const acks: Token[] = [];
  const stop = new AbortController();
  const drain = new AbortController();
  const done = runPump({
    client,
    sinks: [sink],
    token: { resourceVersion: start.resourceVersion!, timestamp: undefined },
    acknowledge: (t) => void acks.push(t),
    batchWindowMs: WINDOW_MS,
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    drain: drain.signal,
    clock,
    metrics: probe,
  }, stop.signal);
  return {
    clock,
    probe,
    acks,
    drain,
    stop,
    done,
    [Symbol.asyncDispose]: async () => {
      stop.abort(new Error("Test over"));
      await within(done, BOUND_MS, "the pump to stop");
      await client.close();
    },
  };
}

/** Resolves once the pump read `n` events and the deliverer took them all (the window is open). */
function gathered(p: Running, n: number): Promise<void> {
  return waitUntil(
    `the pump to read ${n} events and gather them (read ${p.probe.read}, queued ${p.probe.depth})`,
    () => p.probe.read >= n && p.probe.depth === 0,
    polling,
    BOUND_MS,
  );
}

function until(what: string, condition: () => boolean): Promise<void> {
  return waitUntil(what, condition, polling, BOUND_MS);
}

Deno.test("changes within the window go out as one batch when it closes, and only then is the checkpoint moved", async () => {
  await using server = await startFakeApiServer();
  const sink = new Recorder();
  await using p = await startPump(server, sink);
  createEvent(server);
  createEvent(server);
  createEvent(server);
  await gathered(p, 3);
  await p.clock.advance(WINDOW_MS - 1);
  assert.equal(sink.batches.length, 0, "nothing is sent before the window closes");
  assert.deepEqual(p.acks, [], "the checkpoint waits for the batch");
  await p.clock.advance(1);
  await until("the batch to be sent", () => sink.batches.length === 1);
  assert.equal(sink.batches[0]!.length, 3);
  await until("the checkpoint to move", () => p.acks.length === 1);
});

Deno.test("a full batch does not wait for the window", async () => {
  await using server = await startFakeApiServer();
  const sink = new Recorder();
  await using p = await startPump(server, sink, { batchSize: 3 });
  for (let i = 0; i < 3; i++) createEvent(server);
  await until("the full batch to be sent", () => sink.batches.length === 1);
  assert.equal(sink.batches[0]!.length, 3);
  assert.equal(p.clock.now(), new FakeClock().now(), "the clock never moved");
});

Deno.test("a drain sends what the window holds at once and the pump ends", async () => {
  await using server = await startFakeApiServer();
  const sink = new Recorder();
  await using p = await startPump(server, sink);
  createEvent(server);
  createEvent(server);
  await gathered(p, 2);
  p.drain.abort(new Error("SIGTERM"));
  await within(p.done, BOUND_MS, "the drained pump to end");
  assert.deepEqual(sink.batches.map((b) => b.length), [2]);
  assert.equal(p.acks.length, 1);
});

Deno.test("a stop mid-window sends the window's batch within the grace (as its term's fence permits) and acknowledges only what was sent", async () => {
  await using server = await startFakeApiServer();
  const sink = new Recorder();
  await using p = await startPump(server, sink);
  createEvent(server);
  createEvent(server);
  await gathered(p, 2);
  p.stop.abort(new Error("Lease lost"));
  await within(p.done, BOUND_MS, "the pump to end");
  assert.deepEqual(sink.batches.map((b) => b.length), [2]);
  assert.equal(p.acks.length, 1);
});

Deno.test("with the window, the Datadog sink bundles events of one pod arriving seconds apart into one Datadog event", async () => {
  await using server = await startFakeApiServer();
  await using receiver = startReceiver();
  const sink = new DatadogSink({
    apiKey: "0123456789abcdef0123456789abcdef",
    url: receiver.url,
    random: () => 0.5,
  });
  try {
    await using p = await startPump(server, sink);
    createEvent(server);
    await gathered(p, 1);
    await p.clock.advance(5_000);
    createEvent(server);
    await gathered(p, 2);
    await p.clock.advance(5_000);
    createEvent(server, "web-2");
    await gathered(p, 3);
    assert.equal(receiver.requests.length, 0);
    await p.clock.advance(5_000);
    await receiver.received(2);
    const events = receiver.requests.map((r) => JSON.parse(r.body));
    assert.deepEqual(events.map((e) => e.title), [
      "Events from the Pod default/web-1",
      "Events from the Pod default/web-2",
    ]);
    assert.match(
      events[0].text,
      /^%%% \n2 \*\*BackOff\*\*: Back-off restarting failed container\n/,
    );
  } finally {
    await sink.close();
  }
});

Deno.test("the window is the Datadog sink's, when it bundles", async (t) => {
  const dd = { KEVENTS_SINKS: "stdout,datadog", DD_API_KEY: "0123456789abcdef0123456789abcdef" };
  await t.step("15 s by default with the datadog sink", () => {
    assert.equal(parseConfig({ env: dd }).batchWindowMs, 15_000);
  });
  await t.step("settable, 0 sending at once", () => {
    const env = { ...dd, KEVENTS_DATADOG_BUNDLE_WINDOW_SECONDS: "0" };
    assert.equal(parseConfig({ env }).batchWindowMs, 0);
    const five = { ...dd, KEVENTS_DATADOG_BUNDLE_WINDOW_SECONDS: "5" };
    assert.equal(parseConfig({ env: five }).batchWindowMs, 5_000);
  });
  await t.step("none when unbundled, or without the datadog sink", () => {
    assert.equal(parseConfig({ env: { ...dd, DD_UNBUNDLE_EVENTS: "true" } }).batchWindowMs, 0);
    assert.equal(parseConfig({ env: {} }).batchWindowMs, 0);
  });
});
