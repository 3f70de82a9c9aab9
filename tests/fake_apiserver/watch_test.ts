/**
 * Watches on the fake API server behave like kube-apiserver's: replay from a
 * resourceVersion, synthetic ADDED events, namespaces and selectors,
 * bookmarks, timeouts, 410 after compaction (and the events quirk), event
 * TTL and the event generator. Every wait is on a watch event, bounded by a
 * generous guard.
 */

import assert from "node:assert/strict";
import { EventGenerator, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { Api, coreEvent, type Json, type WatchEvent } from "../_fake_api.ts";

const CM = "/api/v1/namespaces/default/configmaps";
const rvOf = (o: Json): number => Number(o.metadata.resourceVersion);

/** The type, name and resourceVersion of an event, for compact comparisons. */
function brief(e: WatchEvent | undefined): [string, string, number] | undefined {
  return e === undefined ? undefined : [e.type, e.object.metadata.name, rvOf(e.object)];
}

Deno.test("a watch from a resourceVersion replays every later change, then streams live ones", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const a = await api.send("POST", CM, { metadata: { name: "a" }, data: { v: "1" } });
  const a2 = await api.send("PUT", `${CM}/a`, { ...a, data: { v: "2" } });
  const b = await api.send("POST", CM, { metadata: { name: "b" } });
  await api.send("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", {
    metadata: { name: "not-a-configmap" },
  });
  await api.send("DELETE", `${CM}/a`);
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
    const c = await api.send("POST", CM, { metadata: { name: "c" } });
    assert.deepEqual(brief(await watch.next()), ["ADDED", "c", rvOf(c)]);
    const b2 = await api.send("PUT", `${CM}/b`, { ...b, data: { k: "v" } });
    const modified = await watch.expect();
    assert.deepEqual(brief(modified), ["MODIFIED", "b", rvOf(b2)]);
    assert.deepEqual(modified.object, b2);
    await api.send("DELETE", `${CM}/c`);
    assert.deepEqual(brief(await watch.next()), ["DELETED", "c", server.store.currentRv]);
  });
});

Deno.test("a watch without a resourceVersion starts with the current objects as ADDED", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  await api.send("POST", CM, { metadata: { name: "x" }, data: { k: "v" } });
  await api.send("POST", CM, { metadata: { name: "y" } });

  const cases: [string, string][] = [
    ["no resourceVersion", ""],
    ['resourceVersion "0"', "?resourceVersion=0"],
  ];
  for (const [label, query] of cases) {
    await t.step(`${label}: synthetic ADDED events, then live changes`, async () => {
      const current = (await api.send("GET", CM)).items;
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
      const z = await api.send("POST", CM, { metadata: { name: `z${current.length}` } });
      assert.deepEqual(brief(await watch.next()), ["ADDED", z.metadata.name, rvOf(z)]);
    });
  }
});

Deno.test("over plain HTTP a watch streams the same events", async () => {
  await using server = await startFakeApiServer({ tls: false });
  using api = new Api(server);
  await using watch = await api.watch(`${CM}?resourceVersion=${server.store.currentRv}`);
  const cm = await api.send("POST", CM, { metadata: { name: "plain" } });
  assert.deepEqual(await watch.next(), { type: "ADDED", object: cm });
  await api.send("DELETE", `${CM}/plain`);
  assert.deepEqual(brief(await watch.next()), ["DELETED", "plain", server.store.currentRv]);
});

Deno.test("a namespaced watch sees only its namespace", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const from = server.store.currentRv;
  await using watch = await api.watch(`${CM}?resourceVersion=${from}`);
  await api.send("POST", "/api/v1/namespaces/kube-system/configmaps", { metadata: { name: "ks" } });
  const mine = await api.send("POST", CM, { metadata: { name: "mine" } });
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
  await api.send("POST", EVENTS, coreEvent("default", "quiet.1"));
  const warn = await api.send("POST", EVENTS, coreEvent("default", "loud.1", { type: "Warning" }));

  await t.step("an object created inside the selection is ADDED", async () => {
    assert.deepEqual(brief(await watch.next()), ["ADDED", "loud.1", rvOf(warn)]);
  });

  await t.step(
    "an object that leaves the selection is DELETED, in its last matching state",
    async () => {
      const calm = await api.send("PUT", `${EVENTS}/loud.1`, { ...warn, type: "Normal" });
      const left = await watch.expect();
      assert.deepEqual(brief(left), ["DELETED", "loud.1", rvOf(calm)]);
      assert.equal(left.object.type, "Warning");
    },
  );

  await t.step("an object that comes back into the selection is ADDED again", async () => {
    const current = await api.send("GET", `${EVENTS}/loud.1`);
    const again = await api.send("PUT", `${EVENTS}/loud.1`, { ...current, type: "Warning" });
    assert.deepEqual(brief(await watch.next()), ["ADDED", "loud.1", rvOf(again)]);
  });

  await t.step("a label selector watch behaves the same way", async () => {
    const start = server.store.currentRv;
    await using labelled = await api.watch(
      `${CM}?resourceVersion=${start}&labelSelector=app%3Dweb`,
    );
    const cm = await api.send("POST", CM, { metadata: { name: "l", labels: { app: "web" } } });
    assert.deepEqual(brief(await labelled.next()), ["ADDED", "l", rvOf(cm)]);
    const moved = await api.send("PUT", `${CM}/l`, {
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
  const cm = await api.send("POST", CM, { metadata: { name: "b" } });
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

Deno.test("events watches get BOOKMARKs, unless events are modelled without a watch cache", async (t) => {
  const EVENTS = "/api/v1/namespaces/default/events";
  for (const quirk of [false, true]) {
    await t.step(`eventsWatchQuirk: ${quirk}`, async () => {
      await using server = await startFakeApiServer({
        bookmarkIntervalMs: 50,
        eventsWatchQuirk: quirk,
      });
      using api = new Api(server);
      const from = server.store.currentRv;
      await using events = await api.watch(
        `${EVENTS}?resourceVersion=${from}&allowWatchBookmarks=true&timeoutSeconds=1`,
      );
      await using configmaps = await api.watch(
        `${CM}?resourceVersion=${from}&allowWatchBookmarks=true&timeoutSeconds=1`,
      );
      const types = (list: { type: string }[]) => new Set(list.map((e) => e.type));
      assert.equal(types(await events.rest()).has("BOOKMARK"), !quirk);
      // configmaps have a watch cache either way.
      assert.ok(types(await configmaps.rest()).has("BOOKMARK"));
    });
  }
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
  await api.send("POST", CM, { metadata: { name: "one" } });
  await api.send("POST", "/api/v1/namespaces/default/events", coreEvent("default", "e.1"));
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
    const cm = await api.send("POST", CM, { metadata: { name: "two" } });
    assert.deepEqual(brief(await watch.next()), ["ADDED", "two", rvOf(cm)]);
  });
});

Deno.test("without eventsWatchQuirk a stale events watch gets the 410 ERROR too", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const old = server.store.currentRv;
  await api.send("POST", "/api/v1/namespaces/default/events", coreEvent("default", "e.1"));
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
    const ev = await api.send("POST", EVENTS, coreEvent("default", "short.1"));
    assert.deepEqual(brief(await watch.next()), ["ADDED", "short.1", rvOf(ev)]);
    const gone = await watch.expect();
    assert.deepEqual(brief(gone), ["DELETED", "short.1", rvOf(ev) + 1]);
    await api.send("GET", `${EVENTS}/short.1`, undefined, 404);
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
    await api.send("POST", EVENTS, coreEvent("default", "once.1"));
    const repeated = await api.send("POST", EVENTS, coreEvent("default", "again.1"));
    now += 150;
    const renewed = await api.send("PUT", `${EVENTS}/again.1`, { ...repeated, count: 2 });
    assert.deepEqual((await watch.take(3)).map(brief), [
      ["ADDED", "once.1", rvOf(repeated) - 1],
      ["ADDED", "again.1", rvOf(repeated)],
      ["MODIFIED", "again.1", rvOf(renewed)],
    ]);
    now += 100; // 250 ms after both were created, 100 ms after the repeat.
    assert.deepEqual(brief(await watch.next()), ["DELETED", "once.1", rvOf(renewed) + 1]);
    const kept = await api.send("GET", `${EVENTS}/again.1`);
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

  const list = await api.send("GET", "/api/v1/events");
  assert.equal(list.items.length, added);
  for (const item of list.items) {
    assert.equal(item.count, counts.get(`${item.metadata.namespace}/${item.metadata.name}`));
  }
});
