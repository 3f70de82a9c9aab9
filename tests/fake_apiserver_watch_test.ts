/**
 * Watches on the fake API server behave like kube-apiserver's: replay from a
 * resourceVersion, synthetic ADDED events, namespaces and selectors,
 * bookmarks, timeouts, 410 after compaction (and the events quirk), event
 * TTL and the event generator. Every wait is on a watch event, bounded by a
 * generous guard.
 */

import assert from "node:assert/strict";
import {
  EventGenerator,
  type FakeApiServer,
  startFakeApiServer,
} from "../lib/fake_apiserver/mod.ts";

// Wire JSON as the server sends it; the tests assert its shape field by field.
// deno-lint-ignore no-explicit-any
type Json = any;

/** How long a test waits for something that must happen before it fails. */
const GUARD_MS = 10_000;

/** One line of a watch stream. */
interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Json;
}

/** Rejects after `ms` unless the promise settles first; clears its timer either way. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a watch body (newline-delimited JSON) one event at a time. */
class WatchReader implements AsyncDisposable {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #pending: Promise<ReadableStreamReadResult<string>> | undefined;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event; undefined once the server ended the stream; rejects when it broke. */
  async next(): Promise<WatchEvent | undefined> {
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        return JSON.parse(line);
      }
      this.#pending ??= this.#reader.read();
      const result = await within(this.#pending, GUARD_MS, "a watch event");
      this.#pending = undefined;
      if (result.done) {
        assert.equal(this.#buffer, "", "the stream ended in the middle of a line");
        return undefined;
      }
      this.#buffer += result.value;
    }
  }

  /** The next event, which must exist. */
  async expect(): Promise<WatchEvent> {
    const event = await this.next();
    assert.ok(event !== undefined, "the watch ended early");
    return event;
  }

  /** The next `count` events, which must exist. */
  async take(count: number): Promise<WatchEvent[]> {
    const events: WatchEvent[] = [];
    while (events.length < count) events.push(await this.expect());
    return events;
  }

  /** Every event until the server ends the stream. */
  async rest(): Promise<WatchEvent[]> {
    const events: WatchEvent[] = [];
    for (let e = await this.next(); e !== undefined; e = await this.next()) events.push(e);
    return events;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // A stream the server ended or broke has nothing left to cancel.
    await this.#reader.cancel().catch(() => {});
  }
}

/** Plain fetch against one fake API server, through an HttpClient that trusts its CA. */
class Api implements Disposable {
  readonly server: FakeApiServer;
  readonly #client: Deno.HttpClient | undefined;

  constructor(server: FakeApiServer) {
    this.server = server;
    this.#client = server.caCertPem === undefined
      ? undefined
      : Deno.createHttpClient({ caCerts: [server.caCertPem] });
  }

  #headers(json: boolean): Record<string, string> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.server.adminToken}` };
    if (json) headers["content-type"] = "application/json";
    return headers;
  }

  /** Sends a request and returns the parsed JSON answer, asserting the status code. */
  async call(method: string, path: string, body?: unknown, expected?: number): Promise<Json> {
    const res = await fetch(this.server.url + path, {
      method,
      headers: this.#headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      client: this.#client,
    });
    const json = await res.json();
    const want = expected ?? (method === "POST" ? 201 : 200);
    assert.equal(res.status, want, `${method} ${path}: ${JSON.stringify(json)}`);
    return json;
  }

  /** Opens a watch; it must be answered with 200. */
  async watch(path: string): Promise<WatchReader> {
    const sep = path.includes("?") ? "&" : "?";
    const res = await fetch(`${this.server.url}${path}${sep}watch=true`, {
      headers: this.#headers(false),
      client: this.#client,
    });
    if (res.status !== 200) assert.fail(`watch answered ${res.status}: ${await res.text()}`);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.ok(res.body !== null);
    return new WatchReader(res.body);
  }

  [Symbol.dispose](): void {
    this.#client?.close();
  }
}

const CM = "/api/v1/namespaces/default/configmaps";
const rvOf = (o: Json): number => Number(o.metadata.resourceVersion);

function coreEvent(namespace: string, name: string, fields: Json = {}): Json {
  return {
    metadata: { name, namespace },
    involvedObject: { kind: "Pod", namespace, name: name.split(".")[0], apiVersion: "v1" },
    reason: "Started",
    message: "Started container app",
    type: "Normal",
    source: { component: "kubelet" },
    count: 1,
    ...fields,
  };
}

/** The type, name and resourceVersion of an event, for compact comparisons. */
function brief(e: WatchEvent | undefined): [string, string, number] | undefined {
  return e === undefined ? undefined : [e.type, e.object.metadata.name, rvOf(e.object)];
}

Deno.test("a watch from a resourceVersion replays every later change, then streams live ones", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const a = await api.call("POST", CM, { metadata: { name: "a" }, data: { v: "1" } });
  const a2 = await api.call("PUT", `${CM}/a`, { ...a, data: { v: "2" } });
  const b = await api.call("POST", CM, { metadata: { name: "b" } });
  await api.call("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", {
    metadata: { name: "not-a-configmap" },
  });
  await api.call("DELETE", `${CM}/a`);
  const deletedRv = server.store.currentRv;
  await using watch = await api.watch(`${CM}?resourceVersion=${rvOf(a)}`);

  await t.step("history after the resourceVersion comes first, in order", async () => {
    assert.deepEqual(brief(await watch.next()), ["MODIFIED", "a", rvOf(a2)]);
    assert.deepEqual(brief(await watch.next()), ["ADDED", "b", rvOf(b)]);
    const deleted = await watch.expect();
    assert.deepEqual(brief(deleted), ["DELETED", "a", deletedRv]);
    assert.equal(deleted.object.kind, "ConfigMap");
    assert.equal(deleted.object.apiVersion, "v1");
    assert.deepEqual(deleted.object.data, { v: "2" }, "a deletion carries the last state");
  });

  await t.step("live changes follow with increasing resourceVersions", async () => {
    const c = await api.call("POST", CM, { metadata: { name: "c" } });
    assert.deepEqual(brief(await watch.next()), ["ADDED", "c", rvOf(c)]);
    const b2 = await api.call("PUT", `${CM}/b`, { ...b, data: { k: "v" } });
    const modified = await watch.expect();
    assert.deepEqual(brief(modified), ["MODIFIED", "b", rvOf(b2)]);
    assert.deepEqual(modified.object, b2);
    await api.call("DELETE", `${CM}/c`);
    assert.deepEqual(brief(await watch.next()), ["DELETED", "c", server.store.currentRv]);
  });
});

Deno.test("a watch without a resourceVersion starts with the current objects as ADDED", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  await api.call("POST", CM, { metadata: { name: "x" }, data: { k: "v" } });
  await api.call("POST", CM, { metadata: { name: "y" } });

  const cases: [string, string][] = [
    ["no resourceVersion", ""],
    ['resourceVersion "0"', "?resourceVersion=0"],
  ];
  for (const [label, query] of cases) {
    await t.step(`${label}: synthetic ADDED events, then live changes`, async () => {
      const current = (await api.call("GET", CM)).items;
      await using watch = await api.watch(`${CM}${query}`);
      // The real server promises no order for the initial events.
      const byName = (a: Json, b: Json) => a.metadata.name.localeCompare(b.metadata.name);
      const initial = (await watch.take(current.length)).sort((a, b) => byName(a.object, b.object));
      assert.deepEqual(
        initial.map((e) => ({ type: e.type, object: e.object })),
        current.sort(byName).map((o: Json) => ({
          type: "ADDED",
          object: { kind: "ConfigMap", apiVersion: "v1", ...o },
        })),
      );
      const z = await api.call("POST", CM, { metadata: { name: `z${current.length}` } });
      assert.deepEqual(brief(await watch.next()), ["ADDED", z.metadata.name, rvOf(z)]);
    });
  }
});

Deno.test("over plain HTTP a watch streams the same events", async () => {
  await using server = await startFakeApiServer({ tls: false });
  using api = new Api(server);
  await using watch = await api.watch(`${CM}?resourceVersion=${server.store.currentRv}`);
  const cm = await api.call("POST", CM, { metadata: { name: "plain" } });
  assert.deepEqual(await watch.next(), { type: "ADDED", object: cm });
  await api.call("DELETE", `${CM}/plain`);
  assert.deepEqual(brief(await watch.next()), ["DELETED", "plain", server.store.currentRv]);
});

Deno.test("a namespaced watch sees only its namespace", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const from = server.store.currentRv;
  await using watch = await api.watch(`${CM}?resourceVersion=${from}`);
  await api.call("POST", "/api/v1/namespaces/kube-system/configmaps", { metadata: { name: "ks" } });
  const mine = await api.call("POST", CM, { metadata: { name: "mine" } });
  assert.deepEqual(brief(await watch.next()), ["ADDED", "mine", rvOf(mine)]);

  await using all = await api.watch(`/api/v1/configmaps?resourceVersion=${from}`);
  const seen = [await all.expect(), await all.expect()];
  assert.deepEqual(
    seen.map((e) => `${e.object.metadata.namespace}/${e.object.metadata.name}`),
    ["kube-system/ks", "default/mine"],
  );
});

Deno.test("a selector watch sees objects leave and enter the selection", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const EVENTS = "/api/v1/namespaces/default/events";
  const from = server.store.currentRv;
  await using watch = await api.watch(
    `${EVENTS}?resourceVersion=${from}&fieldSelector=type%3DWarning`,
  );
  await api.call("POST", EVENTS, coreEvent("default", "quiet.1"));
  const warn = await api.call("POST", EVENTS, coreEvent("default", "loud.1", { type: "Warning" }));

  await t.step("an object created inside the selection is ADDED", async () => {
    assert.deepEqual(brief(await watch.next()), ["ADDED", "loud.1", rvOf(warn)]);
  });

  await t.step(
    "an object that leaves the selection is DELETED, in its last matching state",
    async () => {
      const calm = await api.call("PUT", `${EVENTS}/loud.1`, { ...warn, type: "Normal" });
      const left = await watch.expect();
      assert.deepEqual(brief(left), ["DELETED", "loud.1", rvOf(calm)]);
      assert.equal(left.object.type, "Warning");
    },
  );

  await t.step("an object that comes back into the selection is ADDED again", async () => {
    const current = await api.call("GET", `${EVENTS}/loud.1`);
    const again = await api.call("PUT", `${EVENTS}/loud.1`, { ...current, type: "Warning" });
    assert.deepEqual(brief(await watch.next()), ["ADDED", "loud.1", rvOf(again)]);
  });

  await t.step("a label selector watch behaves the same way", async () => {
    const start = server.store.currentRv;
    await using labelled = await api.watch(
      `${CM}?resourceVersion=${start}&labelSelector=app%3Dweb`,
    );
    const cm = await api.call("POST", CM, { metadata: { name: "l", labels: { app: "web" } } });
    assert.deepEqual(brief(await labelled.next()), ["ADDED", "l", rvOf(cm)]);
    const moved = await api.call("PUT", `${CM}/l`, {
      ...cm,
      metadata: { ...cm.metadata, labels: {} },
    });
    assert.deepEqual(brief(await labelled.next()), ["DELETED", "l", rvOf(moved)]);
  });
});

Deno.test("allowWatchBookmarks yields BOOKMARK events carrying only a resourceVersion", async () => {
  await using server = await startFakeApiServer({ bookmarkIntervalMs: 50 });
  using api = new Api(server);
  await using watch = await api.watch(
    `${CM}?resourceVersion=${server.store.currentRv}&allowWatchBookmarks=true`,
  );
  const cm = await api.call("POST", CM, { metadata: { name: "b" } });
  let event = await watch.expect();
  assert.deepEqual(brief(event), ["ADDED", "b", rvOf(cm)]);
  while (event.type !== "BOOKMARK") event = await watch.expect();
  assert.deepEqual(event.object, {
    kind: "ConfigMap",
    apiVersion: "v1",
    metadata: { resourceVersion: event.object.metadata.resourceVersion, creationTimestamp: null },
  });
  assert.ok(rvOf(event.object) >= rvOf(cm));
});

Deno.test("timeoutSeconds ends the watch cleanly", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  await using watch = await api.watch(
    `${CM}?resourceVersion=${server.store.currentRv}&timeoutSeconds=1`,
  );
  assert.deepEqual(await watch.rest(), []);
  assert.equal(server.watchCount, 0);
});

Deno.test("a watch from a compacted resourceVersion gets one 410 Expired ERROR, then ends", async (t) => {
  await using server = await startFakeApiServer({ eventsWatchQuirk: true });
  using api = new Api(server);
  const old = server.store.currentRv;
  await api.call("POST", CM, { metadata: { name: "one" } });
  await api.call("POST", "/api/v1/namespaces/default/events", coreEvent("default", "e.1"));
  server.compactNow();
  const compacted = server.store.currentRv;

  await t.step("configmaps: an ERROR event with an Expired Status", async () => {
    await using watch = await api.watch(`${CM}?resourceVersion=${old}`);
    assert.deepEqual(await watch.rest(), [{
      type: "ERROR",
      object: {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: `too old resource version: ${old} (${compacted})`,
        reason: "Expired",
        code: 410,
      },
    }]);
  });

  await t.step(
    "events with eventsWatchQuirk: 200 and an immediate end, no events at all",
    async () => {
      await using watch = await api.watch(
        `/api/v1/namespaces/default/events?resourceVersion=${old}`,
      );
      assert.deepEqual(await watch.rest(), []);
    },
  );

  await t.step("a watch from the compacted revision itself still works", async () => {
    await using watch = await api.watch(`${CM}?resourceVersion=${compacted}`);
    const cm = await api.call("POST", CM, { metadata: { name: "two" } });
    assert.deepEqual(brief(await watch.next()), ["ADDED", "two", rvOf(cm)]);
  });
});

Deno.test("without eventsWatchQuirk a stale events watch gets the 410 ERROR too", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const old = server.store.currentRv;
  await api.call("POST", "/api/v1/namespaces/default/events", coreEvent("default", "e.1"));
  server.compactNow();
  await using watch = await api.watch(`/api/v1/namespaces/default/events?resourceVersion=${old}`);
  const events = await watch.rest();
  assert.equal(events.length, 1);
  assert.equal(events[0]?.type, "ERROR");
  assert.equal(events[0]?.object.code, 410);
});

Deno.test("events expire after their TTL and a watcher sees them DELETED", async (t) => {
  const EVENTS = "/api/v1/namespaces/default/events";

  await t.step("an event is deleted once its TTL has passed", async () => {
    await using server = await startFakeApiServer({ eventTtlMs: 200, ttlSweepIntervalMs: 50 });
    using api = new Api(server);
    await using watch = await api.watch(`${EVENTS}?resourceVersion=${server.store.currentRv}`);
    const ev = await api.call("POST", EVENTS, coreEvent("default", "short.1"));
    assert.deepEqual(brief(await watch.next()), ["ADDED", "short.1", rvOf(ev)]);
    const gone = await watch.expect();
    assert.deepEqual(brief(gone), ["DELETED", "short.1", rvOf(ev) + 1]);
    await api.call("GET", `${EVENTS}/short.1`, undefined, 404);
  });

  await t.step("a repeat (update) renews the TTL", async () => {
    // A hand-driven clock decides expiry, so no real time has to pass.
    let now = Date.parse("2026-03-01T10:00:00Z");
    await using server = await startFakeApiServer({
      eventTtlMs: 200,
      ttlSweepIntervalMs: 50,
      now: () => now,
    });
    using api = new Api(server);
    await using watch = await api.watch(`${EVENTS}?resourceVersion=${server.store.currentRv}`);
    await api.call("POST", EVENTS, coreEvent("default", "once.1"));
    const repeated = await api.call("POST", EVENTS, coreEvent("default", "again.1"));
    now += 150;
    const renewed = await api.call("PUT", `${EVENTS}/again.1`, { ...repeated, count: 2 });
    assert.deepEqual((await watch.take(3)).map(brief), [
      ["ADDED", "once.1", rvOf(repeated) - 1],
      ["ADDED", "again.1", rvOf(repeated)],
      ["MODIFIED", "again.1", rvOf(renewed)],
    ]);
    now += 100; // 250 ms after both were created, 100 ms after the repeat.
    assert.deepEqual(brief(await watch.next()), ["DELETED", "once.1", rvOf(renewed) + 1]);
    const kept = await api.call("GET", `${EVENTS}/again.1`);
    assert.equal(kept.count, 2);
    now += 150; // 250 ms after the repeat.
    assert.deepEqual(brief(await watch.next()), ["DELETED", "again.1", rvOf(renewed) + 2]);
  });
});

Deno.test("the event generator writes events that a watcher sees created and repeated", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const TOTAL = 300;
  await using watch = await api.watch(`/api/v1/events?resourceVersion=${server.store.currentRv}`);
  const gen = server.startEventGenerator(new EventGenerator({ seed: 1 }), {
    ratePerSecond: 500,
    total: TOTAL,
  });
  assert.equal(await gen.done, TOTAL);

  const counts = new Map<string, number>();
  let added = 0;
  let modified = 0;
  let lastRv = 0;
  for (let i = 0; i < TOTAL; i++) {
    const e = await watch.expect();
    const key = `${e.object.metadata.namespace}/${e.object.metadata.name}`;
    assert.ok(rvOf(e.object) > lastRv, "resourceVersions increase");
    lastRv = rvOf(e.object);
    if (e.type === "ADDED") {
      added++;
      assert.equal(counts.has(key), false, `${key} added twice`);
      counts.set(key, e.object.count);
    } else {
      assert.equal(e.type, "MODIFIED");
      modified++;
      const before = counts.get(key);
      assert.ok(before !== undefined, `${key} repeated before it was created`);
      assert.ok(e.object.count > before, `${key} count goes up on a repeat`);
      counts.set(key, e.object.count);
    }
  }
  assert.ok(modified > 0, "some events were repeated");
  assert.equal(added + modified, TOTAL);

  const list = await api.call("GET", "/api/v1/events");
  assert.equal(list.items.length, added);
  for (const item of list.items) {
    assert.equal(item.count, counts.get(`${item.metadata.namespace}/${item.metadata.name}`));
  }
});
