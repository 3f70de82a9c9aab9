/**
 * The fault controls of the fake API server: injected error answers,
 * latency, broken, ended and stalled watches, compaction, restarts and
 * network partitions, malformed watch data and watch bodies sent in small
 * pieces. Waits are on responses and watch events, never on sleeps; the
 * only polling waits for the request log to record a request the client
 * abandoned, or for a broken watch to be gone.
 */

import assert from "node:assert/strict";
import {
  type FakeApiServer,
  HTML_PAGE,
  NON_JSON_LINE,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { Api, coreEvent, eventually, GUARD_MS, type WatchReader, within } from "../_fake_api.ts";

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

/** A watch read as raw bytes: what the server put on the wire, malformed or not. */
class RawWatch implements AsyncDisposable {
  readonly response: Response;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #client: Deno.HttpClient | undefined;
  readonly #decoder = new TextDecoder();
  /** Every byte read so far. */
  text = "";
  /** How many reads returned bytes. */
  reads = 0;

  private constructor(response: Response, client: Deno.HttpClient | undefined) {
    this.response = response;
    this.#client = client;
    assert.ok(response.body !== null);
    this.#reader = response.body.getReader();
  }

  /** Opens a watch of `path` as the user with this token. */
  static async open(server: FakeApiServer, path: string, token: string): Promise<RawWatch> {
    const client = server.caCertPem === undefined
      ? undefined
      : Deno.createHttpClient({ caCerts: [server.caCertPem] });
    const sep = path.includes("?") ? "&" : "?";
    const response = await fetch(`${server.url}${path}${sep}watch=true`, {
      headers: { authorization: `Bearer ${token}` },
      client,
    });
    return new RawWatch(response, client);
  }

  /** Reads until the text holds `lines` newlines; rejects when the stream ends or breaks first. */
  async lines(lines: number): Promise<string[]> {
    while (this.text.split("\n").length <= lines) {
      const { value, done } = await within(this.#reader.read(), GUARD_MS, "watch bytes");
      if (done) assert.fail(`the watch ended after ${JSON.stringify(this.text)}`);
      this.reads++;
      this.text += this.#decoder.decode(value, { stream: true });
    }
    return this.text.split("\n").slice(0, lines);
  }

  /** Reads to the end; resolves with the error the read failed with, or undefined for a clean end. */
  async end(): Promise<unknown> {
    try {
      for (;;) {
        const { value, done } = await within(this.#reader.read(), GUARD_MS, "the watch to end");
        if (done) return undefined;
        this.reads++;
        this.text += this.#decoder.decode(value, { stream: true });
      }
    } catch (e) {
      return e;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    this.#client?.close();
  }
}

/** The exact watch line the server sends for the current state of configmap `name`. */
async function addedLine(api: Api, name: string): Promise<string> {
  const reply = await api.call("GET", `${CM}/${name}`);
  assert.equal(reply.status, 200);
  return `{"type":"ADDED","object":${JSON.stringify(reply.body)}}`;
}

for (const tls of [true, false]) {
  const mode = tls ? "HTTPS" : "plain HTTP";
  Deno.test(`injectWatchFault puts malformed data on the wire, once (${mode})`, async (t) => {
    await using server = await startFakeApiServer({ tls });
    using api = new Api(server);
    const fromNow = () => `${CM}?resourceVersion=${server.store.currentRv}`;
    let n = 0;
    /** Creates configmaps in one go, so that the watch sends them in one chunk. */
    const createMany = (count: number) => {
      const names = Array.from({ length: count }, () => `cm-${++n}`);
      for (const name of names) server.create("configmaps", "default", { metadata: { name } });
      return names;
    };

    await t.step("non-json-line: a line that is not JSON right after the first line", async () => {
      await using watch = await RawWatch.open(server, fromNow(), server.adminToken);
      const sent = server.injectWatchFault("non-json-line");
      const [a, b] = createMany(2);
      assert.equal(await sent, server.get("configmaps", "default", a!)?.metadata.resourceVersion);
      const [c] = createMany(1);
      const lines = await watch.lines(4);
      assert.deepEqual(lines, [
        await addedLine(api, a!),
        NON_JSON_LINE,
        await addedLine(api, b!),
        await addedLine(api, c!),
      ]);
      assert.throws(() => JSON.parse(lines[1]!), SyntaxError);
    });

    await t.step("unknown-type: the first event again, typed WEIRD", async () => {
      await using watch = await RawWatch.open(server, fromNow(), server.adminToken);
      const sent = server.injectWatchFault("unknown-type");
      const [a, b] = createMany(2);
      assert.equal(await sent, server.get("configmaps", "default", a!)?.metadata.resourceVersion);
      const lines = await watch.lines(3);
      const first = await addedLine(api, a!);
      assert.deepEqual(lines, [
        first,
        first.replace('"ADDED"', '"WEIRD"'),
        await addedLine(api, b!),
      ]);
    });

    await t.step("no-metadata: an ADDED event whose object has no metadata", async () => {
      await using watch = await RawWatch.open(server, fromNow(), server.adminToken);
      const sent = server.injectWatchFault("no-metadata");
      const [a, b] = createMany(2);
      assert.equal(await sent, server.get("configmaps", "default", a!)?.metadata.resourceVersion);
      const lines = await watch.lines(3);
      assert.equal(lines[0], await addedLine(api, a!));
      assert.deepEqual(JSON.parse(lines[1]!), {
        type: "ADDED",
        object: { kind: "ConfigMap", apiVersion: "v1" },
      });
      assert.equal(lines[2], await addedLine(api, b!));
    });

    await t.step(
      "truncated-chunk: the first line and half of the next, then the connection breaks",
      async () => {
        await using watch = await RawWatch.open(server, fromNow(), server.adminToken);
        const sent = server.injectWatchFault("truncated-chunk");
        const [a, b] = createMany(2);
        assert.equal(await sent, server.get("configmaps", "default", a!)?.metadata.resourceVersion);
        const error = await watch.end();
        assert.ok(error instanceof TypeError, `the read did not fail: ${error}`);
        const second = `${await addedLine(api, b!)}\n`;
        assert.equal(
          watch.text,
          `${await addedLine(api, a!)}\n${second.slice(0, Math.floor((second.length - 1) / 2))}`,
        );
        await eventually(() => server.watchCount === 0, "the broken watch to be gone");
      },
    );

    await t.step("truncated-chunk with a single event sends half of it", async () => {
      await using watch = await RawWatch.open(server, fromNow(), server.adminToken);
      const [before] = createMany(1);
      const earlier = await addedLine(api, before!);
      assert.deepEqual(await watch.lines(1), [earlier]);
      const sent = server.injectWatchFault("truncated-chunk");
      const [a] = createMany(1);
      assert.equal(
        await sent,
        server.get("configmaps", "default", before!)?.metadata.resourceVersion,
        "the last good line is the one of the chunk before",
      );
      assert.ok(await watch.end() instanceof TypeError);
      const line = `${await addedLine(api, a!)}\n`;
      assert.equal(watch.text, `${earlier}\n${line.slice(0, Math.floor(line.length / 2))}`);
    });

    await t.step(
      "html-200: the next watch request gets a 200 HTML page, the one after a watch",
      async () => {
        const sent = server.injectWatchFault("html-200");
        {
          await using watch = await RawWatch.open(server, fromNow(), server.adminToken);
          assert.equal(await sent, undefined);
          assert.equal(watch.response.status, 200);
          assert.equal(watch.response.headers.get("content-type"), "text/html; charset=utf-8");
          assert.equal(await watch.end(), undefined);
          assert.equal(watch.text, HTML_PAGE);
        }
        await using watch = await RawWatch.open(server, fromNow(), server.adminToken);
        assert.equal(watch.response.headers.get("content-type"), "application/json");
        const [a] = createMany(1);
        assert.deepEqual(await watch.lines(1), [await addedLine(api, a!)]);
      },
    );

    await t.step("a rule confines the fault to an identity and a resource", async () => {
      const token = server.addUser(`kevents-${n}`);
      await using mine = await RawWatch.open(server, fromNow(), token);
      await using other = await RawWatch.open(server, fromNow(), server.adminToken);
      await using events = await RawWatch.open(
        server,
        `/api/v1/namespaces/default/events?resourceVersion=${server.store.currentRv}`,
        token,
      );
      const sent = server.injectWatchFault("non-json-line", {
        identity: `kevents-${n}`,
        resources: ["configmaps"],
      });
      const [a, b] = createMany(2);
      server.create("events", "default", coreEvent("default", "pod.1"));
      assert.equal(await sent, server.get("configmaps", "default", a!)?.metadata.resourceVersion);
      const clean = [await addedLine(api, a!), await addedLine(api, b!)];
      assert.deepEqual(await other.lines(2), clean);
      assert.deepEqual(await mine.lines(3), [clean[0], NON_JSON_LINE, clean[1]]);
      const [event] = await events.lines(1);
      assert.equal(JSON.parse(event!).object.metadata.name, "pod.1");
      // Nothing more than what was asked for: the next chunk of each watch is clean.
      const [c] = createMany(1);
      assert.deepEqual((await mine.lines(4))[3], await addedLine(api, c!));
    });
  });
}

Deno.test("splitWatchBodies sends watch bodies in small pieces that cut UTF-8 characters", async () => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  server.splitWatchBodies(7);
  await using watch = await RawWatch.open(
    server,
    `${CM}?resourceVersion=${server.store.currentRv}`,
    server.adminToken,
  );
  const data = { text: "\u00e9\u{1f680}\u4e8b\u0065\u0301".repeat(200) };
  server.create("configmaps", "default", { metadata: { name: "pieces" }, data });
  const [line] = await watch.lines(1);
  assert.equal(line, await addedLine(api, "pieces"));
  assert.deepEqual(JSON.parse(line!).object.data, data);
  // 1,400+ bytes in 7-byte pieces cannot all arrive in one read.
  assert.ok(watch.reads > 1, `read in ${watch.reads} reads`);
  server.splitWatchBodies(0);
  server.create("configmaps", "default", { metadata: { name: "whole" } });
  assert.equal((await watch.lines(2))[1], await addedLine(api, "whole"));
});

Deno.test("holdRequests keeps matching requests in flight until released", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const token = server.addUser("kevents");
  using kevents = new Api(server, token);
  await api.send("POST", CM, { metadata: { name: "token" }, data: { rv: "1" } });
  const put = (client: Api, rv: string, signal?: AbortSignal) =>
    client.call("PUT", `${CM}/token`, {
      body: { metadata: { name: "token" }, data: { rv } },
      signal,
    });
  const stored = () => server.get("configmaps", "default", "token")?.data;

  await t.step("a matching write waits; other requests do not", async () => {
    const hold = server.holdRequests({
      verbs: ["update"],
      resources: ["configmaps"],
      identity: "kevents",
    });
    let settled = false;
    const held = put(kevents, "2").finally(() => settled = true);
    assert.equal(await hold.arrived, "kevents");
    assert.equal((await put(api, "3")).status, 200, "another identity is not held");
    assert.equal((await kevents.call("GET", `${CM}/token`)).status, 200, "another verb neither");
    assert.deepEqual(stored(), { rv: "3" });
    assert.equal(settled, false, "the held write was answered");
    assert.equal(hold.count, 1);
    hold.release();
    assert.equal((await held).status, 200);
    assert.deepEqual(stored(), { rv: "2" });
    assert.equal((await put(kevents, "4")).status, 200, "released: nothing is held any more");
  });

  await t.step(
    "a held write whose client goes away is abandoned: logged 499, never done",
    async () => {
      const hold = server.holdRequests({ verbs: ["update"], identity: "kevents" });
      const abort = new AbortController();
      const held = put(kevents, "5", abort.signal);
      await hold.arrived;
      abort.abort();
      await assert.rejects(held);
      await eventually(
        () => server.requestLog.count({ identity: "kevents", verb: "update", code: 499 }) === 1,
        "the abandoned write to be logged with code 499",
      );
      hold.release();
      assert.deepEqual(stored(), { rv: "4" });
    },
  );

  await t.step(
    "with completeWithoutClient the write is done once released, client or not",
    async () => {
      const hold = server.holdRequests(
        { verbs: ["update"], identity: "kevents" },
        { completeWithoutClient: true },
      );
      const abort = new AbortController();
      const held = put(kevents, "6", abort.signal);
      await hold.arrived;
      abort.abort();
      await assert.rejects(held);
      const updates = () => server.requestLog.count({ identity: "kevents", verb: "update" });
      const before = updates();
      assert.deepEqual(stored(), { rv: "4" }, "not before the release");
      hold.release();
      await eventually(() => updates() === before + 1, "the held write to be carried out");
      assert.deepEqual(stored(), { rv: "6" });
      assert.equal(
        server.requestLog.entries({ identity: "kevents", verb: "update" }).at(-1)?.code,
        200,
      );
    },
  );
});
