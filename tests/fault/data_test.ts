/**
 * The fault suite, data and sink faults: malformed watch data (a line that
 * is not JSON, a chunk cut off by a broken connection, an unknown event
 * type, a 200 answer with an HTML page, an object without metadata), very
 * large and non-ASCII events, and a sink that is down (rejecting, or
 * hanging) while thousands of events keep coming. Each case checks the
 * deliveries against every Event change the server committed (tests/
 * _harness.ts) and prints one `FAULT <name>: ...` line for the
 * reliability report.
 *
 * "Minutes" of sink outage are compressed two ways. The rejecting sink (a
 * webhook whose receiver answers 503) runs the pump alone on a fake clock,
 * shared by the pump's retry backoff and the webhook's retries within a
 * send: ten minutes of that clock pass in a few seconds, advanced only
 * while the pump waits on it, never while a request is in flight. The
 * hanging sink runs a whole collector in real time, hanging for as long as
 * it takes to generate 5,000 events and then two lease durations more
 * (about 7 s), which its leader must survive.
 *
 * Every wait is on a condition and bounded; none is a sleep.
 */

import assert from "node:assert/strict";
import { TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import type { Token } from "../../lib/checkpoint/checkpointer.ts";
import { runCollector } from "../../lib/collector.ts";
import type { WatchFault } from "../../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { Metrics } from "../../lib/ops/metrics.ts";
import { runPump } from "../../lib/pump/pump.ts";
import type { EventRecord, Sink } from "../../lib/sinks/sink.ts";
import { StdoutSink } from "../../lib/sinks/stdout.ts";
import { WebhookSink } from "../../lib/sinks/webhook.ts";
import { coreEvent, within } from "../_fake_api.ts";
import { FakeClock } from "../_fake_clock.ts";
import { FAULT_BOUND_MS, type FaultHarness, startFaultHarness } from "./_harness.ts";
import { type ReceivedRequest, startReceiver } from "../_http_receiver.ts";

/** The warnings replicas logged from index `from` of the harness's log on. */
function warningsSince(h: FaultHarness, from: number): string[] {
  return h.logs.slice(from).filter((l) => l.level === "warning" || l.level === "error")
    .map((l) => l.text);
}

/** The resourceVersion a "retrying from resourceVersion N" warning names. */
function retriedFrom(text: string): string | undefined {
  return /retrying from resourceVersion "?(\d+)/.exec(text)?.[1];
}

/** The highest resourceVersion the token ConfigMap was written with so far (-1 when none). */
function lastCheckpoint(h: FaultHarness): number {
  return Math.max(-1, ...h.checkpoints.map((c) => Number(c.rv)).filter((n) => !Number.isNaN(n)));
}

/** The highest resourceVersion of a generated Event change. */
function lastGenerated(h: FaultHarness): number {
  return Math.max(...[...h.generated.values()].map((c) => c.rv));
}

const MALFORMED: { kind: WatchFault; error: RegExp }[] = [
  {
    kind: "non-json-line",
    error: /WatchDecodeError: Line \d+ of the watch is not JSON: <html><body><h1>502 Bad Gateway/,
  },
  {
    kind: "truncated-chunk",
    error:
      /KubeNetworkError: Watch \/api\/v1\/events\?\S+ broke in the middle of line \d+ \(\d+ characters of it received\): /,
  },
  {
    kind: "unknown-type",
    error:
      /WatchDecodeError: Line \d+ of the watch has an unknown event type "WEIRD": \{"type":"WEIRD"/,
  },
  {
    kind: "html-200",
    error:
      /WatchDecodeError: Watch \/api\/v1\/events\?\S+ answered 200 with "text\/html; charset=utf-8" instead of a JSON stream/,
  },
  {
    kind: "no-metadata",
    error:
      /WatchDecodeError: Line \d+ of the watch is an ADDED event whose object has no metadata: /,
  },
];

for (const { kind, error } of MALFORMED) {
  Deno.test(`malformed watch data (${kind}): a clear error, the watch resumes from the last good resourceVersion, nothing lost or twice`, async () => {
    await using h = await startFaultHarness();
    h.startReplica();
    h.startReplica();
    const leader = await h.waitForLeader();
    h.generate({ total: 400, ratePerSecond: 400, seed: 31 });
    await h.waitForDeliveries(100);
    const logged = h.logs.length;
    const watches = () =>
      h.server.requestLog.count({ identity: leader.name, verb: "watch", resource: "events" });
    const watchesBefore = watches();
    const sent = h.server.injectWatchFault(kind, { identity: leader.name, resources: ["events"] });
    // An HTML page answers the next watch request: make the leader open one.
    if (kind === "html-200") h.server.dropWatches({ identity: leader.name });
    const lastGood = await within(sent, FAULT_BOUND_MS, `the ${kind} fault to be sent`);
    await h.waitAllDelivered();
    const r = h.verify();

    const failures = warningsSince(h, logged).filter((t) => t.includes("Watching events failed"));
    const report = failures.find((t) => error.test(t));
    assert.ok(report !== undefined, `no warning names the fault: ${JSON.stringify(failures)}`);
    if (kind === "html-200") {
      // Dropped between two lines, the watch resumed from its last event
      // and met the HTML page there: still that same position.
      assert.equal(failures.length, 2, JSON.stringify(failures));
      assert.match(failures[0]!, /broke (after \d+ lines|in the middle of line)/);
      assert.equal(retriedFrom(report), retriedFrom(failures[0]!));
    } else {
      assert.equal(failures.length, 1, JSON.stringify(failures));
      assert.ok(lastGood !== undefined);
      assert.equal(retriedFrom(report), lastGood, "resumed after the last good event");
    }
    assert.ok(watches() >= watchesBefore + 1, "the watch was opened again");
    assert.equal(h.leader(), leader, "a malformed watch costs no leadership");
    await h.until(
      "the checkpoint to pass the last event",
      () => lastCheckpoint(h) >= lastGenerated(h),
    );
    h.summary(`malformed-${kind}`, r, { restartedFrom: retriedFrom(report) ?? "?" });
  });
}

/** A Writer like stdout: takes at most `max` bytes per write and keeps them. */
class MemoryWriter {
  readonly #chunks: Uint8Array[] = [];
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  write(p: Uint8Array): Promise<number> {
    const n = Math.min(p.length, this.#max);
    this.#chunks.push(p.slice(0, n));
    return Promise.resolve(n);
  }

  /** Every byte written, decoded (strictly: invalid UTF-8 throws). */
  text(): string {
    const all = new Uint8Array(this.#chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of this.#chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  }
}

/** Sends each batch to every sink in turn; the last one's acceptance is the delivery. */
function fanOut(name: string, sinks: readonly Sink[]): Sink {
  return {
    name,
    async send(batch, signal) {
      for (const sink of sinks) await sink.send(batch, signal);
    },
    async close() {
      for (const sink of sinks) await sink.close();
    },
  };
}

/** The records of NDJSON lines (`{"key":...,"event":{...}}`), by key; service checks left out. */
function recordsByKey(ndjson: string): Map<string, EventRecord[]> {
  const out = new Map<string, EventRecord[]>();
  for (const line of ndjson.split("\n")) {
    if (line === "") continue;
    const record = JSON.parse(line) as EventRecord | { serviceCheck: unknown };
    if ("serviceCheck" in record) continue;
    out.set(record.key, [...(out.get(record.key) ?? []), record]);
  }
  return out;
}

const MiB = 1024 * 1024;

/** `unit` repeated as often as fits in `bytes` bytes of UTF-8. */
function repeatTo(unit: string, bytes: number): string {
  return unit.repeat(Math.floor(bytes / new TextEncoder().encode(unit).length));
}

Deno.test("very large (1 MiB) and non-ASCII events reach a stdout-like sink and the webhook byte for byte", async () => {
  await using h = await startFaultHarness();
  await using receiver = startReceiver();
  const stdout = new MemoryWriter(1000);
  const webhook = new WebhookSink({ url: `${receiver.url}/events` });
  h.startReplica({
    wrapSink: (recording) =>
      fanOut("stdout+webhook", [new StdoutSink({ writer: stdout }), webhook, recording]),
  });
  await h.waitForLeader();
  const messages = new Map<string, string>();
  let n = 0;
  const create = (message: string, reason = "Started") => {
    const e = h.server.create(
      "events",
      "default",
      coreEvent("default", `app-${++n}.${n.toString(16).padStart(16, "0")}`, { message, reason }),
    );
    messages.set(`${e.metadata.uid}/${e.metadata.resourceVersion}`, message);
  };
  const delivered = () =>
    messages.size - [...messages.keys()].filter((k) => h.missing().includes(k)).length;

  // Small events, the watch body cut every 7 bytes: through characters, escapes and lines.
  h.server.splitWatchBodies(7);
  const small = [
    "\u{1f680} Started \u{1f600}\u{1f44d}\u{1f3fd} done",
    "\u4e8b\u4ef6\u304c\u767a\u751f\u3057\u307e\u3057\u305f: \ucee8\ud14c\uc774\ub108 \uc2dc\uc791\ub428",
    "Cafe\u0301 na\u0131\u0308ve Zoe\u0308 \u1e9b\u0323 a\u030a\u0301",
    "\u{1f468}\u200d\u{1f469}\u200d\u{1f467}\u200d\u{1f466} family, \u{1f3f3}\u{fe0f}\u200d\u{1f308} flag",
    "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    'quotes " and \\ backslashes, tab\t, newline\n, NUL-free \u00a0nbsp \u2028 LS \u2029 PS',
  ];
  for (const m of small) create(m, "Bl\u00fchend");
  await h.until("the small events to be delivered", () => delivered() === messages.size);

  // 1 MiB messages, sent in pieces of 4093 bytes: a prime, so pieces end inside characters.
  h.server.splitWatchBodies(4093);
  const large = [
    "x".repeat(MiB),
    repeatTo("\u00e9\u4e8b\u{1f680}e\u0301 ", MiB),
    repeatTo("\u{1f9d1}\u{1f3fe}\u200d\u{1f4bb}", MiB),
  ];
  for (const m of large) create(m);
  create("after the large ones \u2705");
  h.server.splitWatchBodies(0);
  await h.waitAllDelivered();
  const r = h.verify();

  const printed = recordsByKey(stdout.text());
  const posted = recordsByKey(receiver.requests.map((q) => q.body).join(""));
  for (const [key, message] of messages) {
    const bytes = new TextEncoder().encode(message);
    for (const [where, records] of [["stdout", printed], ["webhook", posted]] as const) {
      const got = records.get(key);
      assert.ok(got !== undefined, `${key} did not reach ${where}`);
      assert.equal(got.length, 1, `${key} reached ${where} ${got.length} times`);
      const out = new TextEncoder().encode(got[0]!.event.message);
      assert.ok(
        out.length === bytes.length && out.every((b, i) => b === bytes[i]),
        `${where}: the message of ${key} (${bytes.length} bytes) arrived altered (${out.length} bytes)`,
      );
    }
  }
  // JSON leaves non-ASCII alone: the very bytes of each message are in what was written and posted.
  const raw = stdout.text();
  const body = receiver.requests.map((q) => q.body).join("");
  for (const m of [...large, small[0]!, small[1]!]) {
    assert.ok(raw.includes(m) && body.includes(m), "a message was escaped or re-encoded");
  }
  await h.until(
    "the checkpoint to pass the last event",
    () => lastCheckpoint(h) >= lastGenerated(h),
  );
  h.summary("large-and-non-ascii", r, {
    largestBytes: Math.max(...large.map((m) => new TextEncoder().encode(m).length)),
    webhookPosts: receiver.requests.length,
  });
});

/** Metrics that also keep, for the test, the queue depth's reader, its highest reading and events read. */
class QueueProbe extends Metrics {
  #depth: () => number = () => 0;
  /** Highest queue depth seen. */
  maxDepth = 0;
  /** Events the pump read from the API server. */
  read = 0;
  /** Batches a sink failed to take (each retried by the pump). */
  sinkErrors = 0;

  override sinkError(sink: string): void {
    super.sinkError(sink);
    this.sinkErrors++;
  }

  override watchQueue(depth: () => number): void {
    super.watchQueue(depth);
    this.#depth = depth;
  }

  override received(type: string | undefined, n = 1): void {
    super.received(type, n);
    this.read += n;
    this.sample();
  }

  /** Reads the queue depth now, keeping the highest. */
  sample(): number {
    const d = this.#depth();
    if (d > this.maxDepth) this.maxDepth = d;
    return d;
  }

  /** `kevents_queue_depth` as `/metrics` would show it now. */
  async exported(): Promise<number> {
    const text = await this.render();
    const m = /^kevents_queue_depth (\d+)$/m.exec(text);
    assert.ok(m !== null, "kevents_queue_depth is exported");
    return Number(m[1]);
  }
}

/** A KubeClient for a new API user of the harness's server. */
function clientFor(h: FaultHarness, user: string): KubeClient {
  h.server.addUser(user);
  const kc = new PooledKubeConfig();
  kc.loadFromString(h.server.kubeconfig({ user }));
  return new KubeClient(kc);
}

const EVENTS_DURING_OUTAGE = 5000;

Deno.test("a sink rejecting everything for 10 minutes (fake clock): the queue stays within its capacity, the watch is not read, nothing is dropped, all is delivered once when it is back", async () => {
  await using h = await startFaultHarness();
  const capacity = h.config.queueCapacity;
  const batchSize = 500;
  const clock = new FakeClock(Date.now());
  const accepted: string[] = [];
  let refused = 0;
  let up = false;
  await using receiver = startReceiver({
    fallback: (req: ReceivedRequest) => {
      if (!up) {
        refused++;
        return { status: 503, body: "down for maintenance" };
      }
      accepted.push(req.body);
      return { status: 200 };
    },
  });
  // The webhook's own retries within a send wait on the same fake clock.
  const webhook = new WebhookSink({ url: `${receiver.url}/events`, clock, random: () => 0.5 });
  const probe = new QueueProbe();
  const client = clientFor(h, "pump");
  const acks: Token[] = [];
  const stop = new AbortController();
  const cm = h.server.get("configmaps", h.config.resourcesNamespace, h.config.tokenConfigMapName);
  const seeded = (cm as { data?: Record<string, string> } | undefined)?.data?.[TOKEN_KEY];
  assert.ok(seeded !== undefined);
  const pumping = runPump({
    client,
    sinks: [webhook],
    token: { resourceVersion: seeded, timestamp: undefined },
    acknowledge: (t) => void acks.push(t),
    queueCapacity: capacity,
    batchSize,
    clock,
    random: () => 0.5,
    metrics: probe,
  }, stop.signal);
  try {
    h.generate({ total: EVENTS_DURING_OUTAGE, ratePerSecond: 1000, seed: 41 });
    // The first send is refused and waits on the fake clock: the reader fills the queue and stops.
    await h.generatorsDone();
    await h.until("the queue to fill", () => probe.sample() >= capacity);
    const readAtFull = probe.read;
    assert.ok(
      readAtFull <= capacity + batchSize + 1,
      `read ${readAtFull} events with the sink down (queue ${capacity}, batch ${batchSize})`,
    );
    assert.equal(await probe.exported(), capacity);

    // Ten minutes of outage on the pump's clock: advanced whenever the
    // pump (or the sink's retry within a send) waits on it, never while a
    // request is in flight.
    const outageMs = 10 * 60_000;
    let elapsed = 0;
    while (elapsed < outageMs) {
      await h.until("the pump to wait on its clock", () => clock.pending > 0);
      await clock.advance(5000);
      elapsed += 5000;
      assert.ok(probe.sample() <= capacity, `queue depth ${probe.sample()} > ${capacity}`);
    }
    assert.equal(probe.read, readAtFull, "the watch was read while the sink was down");
    assert.ok(probe.sinkErrors >= 10, `the pump tried the sink only ${probe.sinkErrors} times`);
    assert.equal(acks.length, 0, "nothing was acknowledged while the sink was down");
    assert.equal(webhook.dropped, 0);

    // Back up: everything arrives, once. The pump's next retry is at most
    // 30 s away on its clock (its backoff's cap).
    up = true;
    const total = () => accepted.reduce((n, b) => n + recordsByKey(b).size, 0);
    while (total() < h.generated.size) {
      await h.until(
        "the pump to deliver everything or wait on its clock",
        () => clock.pending > 0 || total() >= h.generated.size,
      );
      if (total() < h.generated.size) await clock.advance(30_000);
    }
    const keys = accepted.flatMap((b) => [...recordsByKey(b).keys()]);
    h.recordDeliveries("pump", keys);
    const lost = h.missing().length;
    const duplicates = keys.length - new Set(keys).size;
    assert.equal(lost, 0);
    assert.equal(duplicates, 0);
    assert.equal(webhook.dropped, 0);
    assert.ok(probe.maxDepth <= capacity, `queue depth reached ${probe.maxDepth}`);
    await h.until(
      "the position to be acknowledged past the last event",
      () => Number(acks.at(-1)?.resourceVersion ?? -1) >= lastGenerated(h),
    );
    h.summary("sink-down-10min", {
      generated: h.generated.size,
      delivered: keys.length,
      lost,
      duplicates,
      leaders: 1,
      collapsed: 0,
      inGrace: 0,
    }, {
      queueMax: probe.maxDepth,
      readWhileDown: readAtFull,
      refused,
      outageMs: elapsed,
      retryRounds: probe.sinkErrors,
    });
  } finally {
    stop.abort();
    await pumping.catch(() => {});
    await webhook.close();
    await client.close();
  }
});

Deno.test("a sink hanging for two lease durations under 5,000 events: the leader keeps its lease, the queue stays within its capacity, all is delivered once", async () => {
  await using h = await startFaultHarness();
  const capacity = h.config.queueCapacity;
  const leaseMs = h.config.timings.leaseDurationMs;
  const probe = new QueueProbe();
  const name = "metered";
  const client = clientFor(h, name);
  let release!: () => void;
  const back = new Promise<void>((resolve) => release = resolve);
  let hanging = true;
  let held = 0;
  const sink: Sink = {
    name: "hanging",
    async send(batch, signal) {
      if (hanging) {
        held = batch.length;
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => reject(signal.reason);
          signal.addEventListener("abort", onAbort, { once: true });
          back.then(() => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          });
        });
      }
      signal.throwIfAborted();
      h.recordDeliveries(name, batch.map((r) => r.key));
    },
    close: () => Promise.resolve(),
  };
  const stop = new AbortController();
  const running = runCollector({
    client,
    config: h.config,
    identity: name,
    sinks: [sink],
    metrics: probe,
  }, stop.signal).finally(() => client.close());
  try {
    await h.until("the metered replica to lead", () => h.leaseHistory.at(-1)?.holder === name);
    const follower = h.startReplica();
    h.generate({ total: EVENTS_DURING_OUTAGE, ratePerSecond: 1000, seed: 42 });
    await h.generatorsDone();
    await h.until("the queue to fill", () => probe.sample() >= capacity);
    const readAtFull = probe.read;
    const fullAt = performance.now();
    await h.until(
      "the leader to renew its lease for two lease durations while its sink hangs",
      () => h.leaseHistory.some((c) => c.holder === name && c.at > fullAt + 2 * leaseMs),
    );
    assert.equal(probe.read, readAtFull, "the watch was read while the sink hung");
    assert.ok(probe.sample() <= capacity);
    assert.equal(await probe.exported(), capacity);
    assert.ok(held > 0 && held <= 500, `the hanging send holds ${held} events`);
    assert.ok(
      h.leaseHistory.filter((c) => c.at > fullAt).every((c) => c.holder === name),
      "the lease stayed with the leader",
    );
    const hungMs = Math.round(performance.now() - fullAt);
    hanging = false;
    release();
    await h.waitAllDelivered();
    const r = h.verify();
    assert.equal(r.duplicates, 0);
    assert.ok(probe.maxDepth <= capacity, `queue depth reached ${probe.maxDepth}`);
    assert.equal(h.leader(), undefined, "the follower never led");
    void follower;
    h.summary("sink-hung", r, { queueMax: probe.maxDepth, readWhileDown: readAtFull, hungMs });
  } finally {
    release();
    stop.abort();
    await running.catch(() => {});
  }
});
