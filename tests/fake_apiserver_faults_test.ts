/**
 * The fault controls of the fake API server: injected error answers,
 * latency, broken, ended and stalled watches, compaction, restarts and
 * network partitions. Waits are on responses and watch events, never on
 * sleeps; the only polling waits for the request log to record a request
 * the client abandoned.
 */

import assert from "node:assert/strict";
import { startFakeApiServer } from "../lib/fake_apiserver/mod.ts";
import { Api, eventually, type WatchReader } from "./_fake_api.ts";

const CM = "/api/v1/namespaces/default/configmaps";

/** A watch on default configmaps from now on. */
function watchFromNow(api: Api): Promise<WatchReader> {
  return api.watch(`${CM}?resourceVersion=${api.server.store.currentRv}`);
}

Deno.test("failNext answers the next matching requests with an error, then recovers", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);

  await t.step("failNext(2, { code: 503 }): two 503s, then success", async () => {
    server.failNext(2, { code: 503 });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push(await api.call("GET", CM));
    assert.deepEqual(codes.map((r) => r.status), [503, 503, 200]);
    assert.deepEqual(codes[0]?.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "The server is currently unable to handle the request (injected fault)",
      reason: "ServiceUnavailable",
      code: 503,
    });
  });

  await t.step("429 carries Retry-After and details.retryAfterSeconds", async () => {
    server.failNext(1, { code: 429, retryAfterSeconds: 3 });
    const reply = await api.call("GET", CM);
    assert.equal(reply.status, 429);
    assert.equal(reply.headers.get("retry-after"), "3");
    assert.deepEqual(reply.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "Too many requests, please try again later.",
      reason: "TooManyRequests",
      details: { retryAfterSeconds: 3 },
      code: 429,
    });
  });

  await t.step("500 is an InternalError Status", async () => {
    server.failNext(1, { code: 500 });
    const reply = await api.call("GET", CM);
    assert.equal(reply.status, 500);
    assert.deepEqual(reply.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "Internal error occurred: injected fault",
      reason: "InternalError",
      details: { causes: [{ message: "injected fault" }] },
      code: 500,
    });
  });

  await t.step(
    "a rule limited to a verb, resource and identity spares other requests",
    async () => {
      const token = server.addUser("kevents");
      using kevents = new Api(server, token);
      server.failNext(1, { verbs: ["create"], resources: ["configmaps"], identity: "kevents" });
      assert.equal((await api.call("POST", CM, { body: { metadata: { name: "a" } } })).status, 201);
      assert.equal((await kevents.call("GET", `${CM}/a`)).status, 200);
      const failed = await kevents.call("POST", CM, { body: { metadata: { name: "b" } } });
      assert.equal(failed.status, 503);
      const retried = await kevents.call("POST", CM, { body: { metadata: { name: "b" } } });
      assert.equal(retried.status, 201);
    },
  );

  await t.step("failures are logged with their code", () => {
    assert.equal(server.requestLog.count({ verb: "list", resource: "configmaps", code: 503 }), 2);
    assert.equal(server.requestLog.count({ identity: "kevents", code: 503 }), 1);
  });
});

Deno.test("setLatency delays answers without changing them", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const created = await api.call("POST", CM, { body: { metadata: { name: "slow" } } });

  await t.step("a delayed request still gets its answer", async () => {
    server.setLatency(30);
    const reply = await api.call("GET", `${CM}/slow`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, created.body);
  });

  await t.step("a request the client abandons meanwhile is logged with code 499", async () => {
    server.setLatency(60_000);
    const abort = new AbortController();
    const slow = api.call("GET", `${CM}/slow`, { signal: abort.signal });
    // Authentication fails before the latency applies, so this round trip is quick.
    using stranger = new Api(server, "not-a-token");
    assert.equal((await stranger.call("GET", CM)).status, 401);
    abort.abort();
    await assert.rejects(
      slow,
      (e: unknown) => e instanceof DOMException && e.name === "AbortError",
    );
    await eventually(
      () => server.requestLog.count({ identity: "admin", verb: "get", code: 499 }) === 1,
      "the abandoned request to be logged with code 499",
    );
    server.setLatency(0);
    assert.equal((await api.call("GET", `${CM}/slow`)).status, 200);
  });
});

for (const tls of [true, false]) {
  const mode = tls ? "HTTPS" : "plain HTTP";
  Deno.test(`dropWatches breaks open watches, or ends them cleanly (${mode})`, async (t) => {
    await using server = await startFakeApiServer({ tls });
    using api = new Api(server);

    await t.step("abruptly by default: the body read rejects", async () => {
      await using watch = await watchFromNow(api);
      assert.equal(server.watchCount, 1);
      assert.equal(server.dropWatches(), 1);
      await assert.rejects(watch.next());
      assert.equal(server.watchCount, 0);
    });

    await t.step("with abrupt: false the stream ends cleanly", async () => {
      await using watch = await watchFromNow(api);
      await api.call("POST", CM, { body: { metadata: { name: "seen" } } });
      assert.equal((await watch.next())?.object.metadata.name, "seen");
      assert.equal(server.dropWatches({ abrupt: false }), 1);
      assert.equal(await watch.next(), undefined);
    });

    await t.step("an identity filter drops only that identity's watches", async () => {
      const token = server.addUser("kevents");
      using kevents = new Api(server, token);
      await using mine = await watchFromNow(kevents);
      await using other = await watchFromNow(api);
      assert.deepEqual(server.watchIdentities().sort(), ["admin", "kevents"]);
      assert.equal(server.dropWatches({ identity: "kevents" }), 1);
      await assert.rejects(mine.next());
      const cm = await api.call("POST", CM, { body: { metadata: { name: "still" } } });
      assert.equal(
        (await other.next())?.object.metadata.resourceVersion,
        cm.body.metadata.resourceVersion,
      );
    });
  });
}

Deno.test("stallWatches holds events back until resumed", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  await using watch = await watchFromNow(api);
  server.stallWatches();
  assert.equal(watch.arrived(), false);
  const created = await api.call("POST", CM, { body: { metadata: { name: "held" } } });
  // A round trip on another request gives a wrongly sent event time to arrive first.
  assert.equal((await api.call("GET", `${CM}/held`)).status, 200);
  assert.equal(watch.arrived(), false, "an event arrived while watches were stalled");
  server.stallWatches(false);
  const event = await watch.next();
  assert.equal(event?.type, "ADDED");
  assert.deepEqual(event?.object, created.body);
});

Deno.test("compactNow expires older revisions for lists and watches", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const old = server.store.currentRv;
  await api.call("POST", CM, { body: { metadata: { name: "c" } } });
  server.compactNow();
  const list = await api.call("GET", `${CM}?resourceVersion=${old}&resourceVersionMatch=Exact`);
  assert.equal(list.status, 410);
  assert.deepEqual(list.body, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: "The resourceVersion for the provided list is too old.",
    reason: "Expired",
    code: 410,
  });
  await using watch = await api.watch(`${CM}?resourceVersion=${old}`);
  const event = await watch.next();
  assert.equal(event?.type, "ERROR");
  assert.equal(event?.object.code, 410);
  assert.equal(await watch.next(), undefined);
  // The newest revision stays readable.
  const current = await api.call("GET", `${CM}?resourceVersion=${server.store.currentRv}&limit=5`);
  assert.equal(current.status, 200);
  assert.equal(current.body.items.length, 1);
});

Deno.test("restart keeps state, serves the same URL again and breaks open watches", async () => {
  await using server = await startFakeApiServer();
  const url = server.url;
  let rv: number;
  {
    using api = new Api(server);
    const created = await api.call("POST", CM, { body: { metadata: { name: "kept" } } });
    rv = Number(created.body.metadata.resourceVersion);
    await using watch = await watchFromNow(api);
    await server.restart();
    await assert.rejects(watch.next());
  }
  assert.equal(server.url, url);
  using api = new Api(server);
  const kept = await api.call("GET", `${CM}/kept`);
  assert.equal(kept.status, 200);
  assert.equal(Number(kept.body.metadata.resourceVersion), rv);
  const next = await api.call("POST", CM, { body: { metadata: { name: "after" } } });
  assert.equal(Number(next.body.metadata.resourceVersion), rv + 1);
});

Deno.test("partition hangs one identity's requests while others go through, until healed", async () => {
  await using server = await startFakeApiServer();
  using admin = new Api(server);
  const token = server.addUser("kevents");
  using kevents = new Api(server, token);
  // Open kevents' connection before the partition, so the held request reaches the server at once.
  assert.equal((await kevents.call("GET", CM)).status, 200);

  server.partition("kevents");
  const abort = new AbortController();
  let settled = false;
  const held = kevents.call("GET", CM, { signal: abort.signal }).finally(() => {
    settled = true;
  });
  assert.equal((await admin.call("GET", CM)).status, 200, "other identities are not partitioned");
  assert.equal((await admin.call("GET", "/api/v1/namespaces")).status, 200);
  assert.equal(settled, false, "the partitioned request was answered");

  abort.abort();
  await assert.rejects(held, (e: unknown) => e instanceof DOMException && e.name === "AbortError");
  await eventually(
    () => server.requestLog.count({ identity: "kevents", code: 499 }) === 1,
    "the abandoned request to be logged with code 499",
  );

  server.heal("kevents");
  assert.equal((await kevents.call("GET", CM)).status, 200);
});
