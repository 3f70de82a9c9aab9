import assert from "node:assert/strict";
import YAML from "yaml";
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  type V1ConfigMap,
  type V1Lease,
} from "@kubernetes/client-node";
import {
  AlreadyExistsError,
  ConflictError,
  ForbiddenError,
  GoneError,
  KubeNetworkError,
  KubeTimeoutError,
  NotFoundError,
  ServerError,
  TooManyRequestsError,
  UnauthorizedError,
  WatchStalledError,
} from "../../lib/kube/errors.ts";
import { type FakeApiServer, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { generateTlsMaterial } from "../../lib/fake_apiserver/tls.ts";
import {
  CONFIGMAPS,
  EVENTS,
  KubeClient,
  type KubeClientOptions,
  LEASES,
} from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import type { WatchEvent } from "../../lib/kube/watch_stream.ts";
import { clientNodeConfig } from "../_client_node.ts";
import { eventually, GUARD_MS, within } from "../_fake_api.ts";

type ConfigMap = {
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string };
  data?: Record<string, string>;
};

/** Runs `use` with a client of the fake server, closing its pool afterwards. */
async function withClient(
  server: FakeApiServer,
  options: KubeClientOptions & { user?: string; kubeconfig?: string },
  use: (client: KubeClient, kc: PooledKubeConfig) => Promise<void>,
): Promise<void> {
  const kc = new PooledKubeConfig();
  kc.loadFromString(options.kubeconfig ?? server.kubeconfig({ user: options.user }));
  const client = new KubeClient(kc, { requestTimeoutMs: options.requestTimeoutMs ?? 10_000 });
  try {
    await use(client, kc);
  } finally {
    await client.close();
  }
}

/** Asserts that `promise` rejects with an instance of `Class`, and returns the error. */
async function rejectsWith<E extends Error>(
  promise: Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  Class: new (...args: any[]) => E,
): Promise<E> {
  let caught: unknown;
  await assert.rejects(promise, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof Class, `expected ${Class.name}, got ${caught}`);
  return caught;
}

Deno.test("KubeClient reads and writes objects", async (t) => {
  await using server = await startFakeApiServer();
  await withClient(server, {}, async (client) => {
    let created: ConfigMap | undefined;

    await t.step("create returns the stored object with its resourceVersion", async () => {
      created = await client.create<ConfigMap>(CONFIGMAPS, "default", {
        metadata: { name: "settings" },
        data: { color: "blue" },
      });
      assert.equal(created.metadata.name, "settings");
      assert.equal(created.metadata.namespace, "default");
      assert.match(created.metadata.resourceVersion ?? "", /^\d+$/);
      assert.deepEqual(created.data, { color: "blue" });
    });

    await t.step("get returns what was created", async () => {
      const got = await client.get<ConfigMap>(CONFIGMAPS, "default", "settings");
      assert.deepEqual(got, created);
    });

    await t.step("replace with the current resourceVersion writes a new version", async () => {
      const replaced = await client.replace<ConfigMap>(CONFIGMAPS, "default", "settings", {
        metadata: { name: "settings", resourceVersion: created!.metadata.resourceVersion },
        data: { color: "green" },
      });
      assert.deepEqual(replaced.data, { color: "green" });
      assert.notEqual(replaced.metadata.resourceVersion, created!.metadata.resourceVersion);
      assert.equal(replaced.metadata.uid, created!.metadata.uid);
    });

    await t.step("replace with a stale resourceVersion rejects with ConflictError", async () => {
      const e = await rejectsWith(
        client.replace<ConfigMap>(CONFIGMAPS, "default", "settings", {
          metadata: { name: "settings", resourceVersion: created!.metadata.resourceVersion },
          data: { color: "red" },
        }),
        ConflictError,
      );
      assert.equal(e.reason, "Conflict");
      assert.equal(e.code, 409);
      assert.deepEqual(e.request, {
        method: "PUT",
        path: "/api/v1/namespaces/default/configmaps/settings",
      });
      const current = await client.get<ConfigMap>(CONFIGMAPS, "default", "settings");
      assert.deepEqual(current.data, { color: "green" }, "the losing write changed nothing");
    });

    await t.step("patch merges by default", async () => {
      const patched = await client.patch<ConfigMap>(CONFIGMAPS, "default", "settings", {
        data: { size: "L" },
      });
      assert.deepEqual(patched.data, { color: "green", size: "L" });
    });

    await t.step("patch with type json applies a JSON patch", async () => {
      const patched = await client.patch<ConfigMap>(
        CONFIGMAPS,
        "default",
        "settings",
        [{ op: "replace", path: "/data/color", value: "black" }, {
          op: "remove",
          path: "/data/size",
        }],
        { type: "json" },
      );
      assert.deepEqual(patched.data, { color: "black" });
    });

    await t.step("list returns the objects and the collection's resourceVersion", async () => {
      await client.create<ConfigMap>(CONFIGMAPS, "default", { metadata: { name: "other" } });
      const page = await client.list<ConfigMap>(CONFIGMAPS, { namespace: "default" });
      assert.deepEqual(page.items.map((i) => i.metadata.name).sort(), ["other", "settings"]);
      assert.equal(page.resourceVersion, String(server.store.currentRv));
      assert.equal(page.continueToken, undefined);
    });

    await t.step("delete removes the object; a get then rejects with NotFoundError", async () => {
      await client.delete(CONFIGMAPS, "default", "other");
      const e = await rejectsWith(client.get(CONFIGMAPS, "default", "other"), NotFoundError);
      assert.equal(e.reason, "NotFound");
      assert.equal(e.code, 404);
      assert.match(e.message, /configmaps "other" not found/);
    });

    await t.step("create of an existing name rejects with AlreadyExistsError", async () => {
      const e = await rejectsWith(
        client.create(CONFIGMAPS, "default", { metadata: { name: "settings" } }),
        AlreadyExistsError,
      );
      assert.equal(e.reason, "AlreadyExists");
      assert.equal(e.code, 409);
      assert.ok(!(e instanceof ConflictError), "AlreadyExists is not a lost compare-and-swap");
    });

    await t.step("delete of a missing object rejects with NotFoundError", async () => {
      await rejectsWith(client.delete(CONFIGMAPS, "default", "never"), NotFoundError);
    });
  });
});

Deno.test("KubeClient maps refusals and server failures to typed errors", async (t) => {
  await using server = await startFakeApiServer();
  server.create("configmaps", "default", { metadata: { name: "cm" }, data: { a: "1" } });

  await t.step("a user without the verb gets ForbiddenError naming verb and resource", async () => {
    server.addUser("kevents", [{
      verbs: ["get", "list", "watch"],
      apiGroups: [""],
      resources: ["configmaps"],
    }]);
    await withClient(server, { user: "kevents" }, async (client) => {
      const cm = await client.get<ConfigMap>(CONFIGMAPS, "default", "cm");
      const e = await rejectsWith(
        client.replace(CONFIGMAPS, "default", "cm", { ...cm, data: { a: "2" } }),
        ForbiddenError,
      );
      assert.equal(e.code, 403);
      assert.equal(e.reason, "Forbidden");
      assert.match(e.message, /User "kevents" cannot update resource "configmaps"/);
    });
  });

  await t.step("an unknown token gets UnauthorizedError", async () => {
    const kubeconfig = server.kubeconfig().replace(server.adminToken, "not-a-valid-token");
    await withClient(server, { kubeconfig }, async (client) => {
      const e = await rejectsWith(client.get(CONFIGMAPS, "default", "cm"), UnauthorizedError);
      assert.equal(e.code, 401);
      assert.equal(e.reason, "Unauthorized");
    });
  });

  await withClient(server, {}, async (client) => {
    await t.step("429 gets TooManyRequestsError with the server's retry delay", async () => {
      server.failNext(1, { code: 429, retryAfterSeconds: 7 });
      const e = await rejectsWith(client.get(CONFIGMAPS, "default", "cm"), TooManyRequestsError);
      assert.equal(e.code, 429);
      assert.equal(e.retryAfterSeconds, 7);
      // The fault was used up: the next request succeeds.
      await client.get(CONFIGMAPS, "default", "cm");
    });

    await t.step("500 and 503 get ServerError", async () => {
      server.failNext(1, { code: 500 });
      const internal = await rejectsWith(client.get(CONFIGMAPS, "default", "cm"), ServerError);
      assert.equal(internal.code, 500);
      assert.equal(internal.reason, "InternalError");
      server.failNext(1, { code: 503, retryAfterSeconds: 2 });
      const unavailable = await rejectsWith(client.list(CONFIGMAPS, {}), ServerError);
      assert.equal(unavailable.code, 503);
      assert.equal(unavailable.reason, "ServiceUnavailable");
      assert.equal(unavailable.retryAfterSeconds, 2);
    });
  });

  await t.step("a request the server sits on rejects with KubeTimeoutError", async () => {
    await withClient(server, { requestTimeoutMs: 300 }, async (client) => {
      server.setLatency(30_000);
      try {
        const e = await rejectsWith(client.get(CONFIGMAPS, "default", "cm"), KubeTimeoutError);
        assert.deepEqual(e.request, {
          method: "GET",
          path: "/api/v1/namespaces/default/configmaps/cm",
        });
        // A per-request timeout overrides the client's.
        await rejectsWith(client.list(CONFIGMAPS, { timeoutMs: 200 }), KubeTimeoutError);
      } finally {
        server.setLatency(0);
      }
      await client.get(CONFIGMAPS, "default", "cm");
    });
  });
});

Deno.test("KubeClient requests end with the AbortSignal's reason", async (t) => {
  await using server = await startFakeApiServer();
  server.create("configmaps", "default", { metadata: { name: "cm" } });
  await withClient(server, {}, async (client) => {
    await t.step("an already aborted signal rejects at once, sending nothing", async () => {
      const reason = new Error("shutting down");
      const before = server.requestLog.count({ resource: "configmaps" });
      await assert.rejects(
        client.get(CONFIGMAPS, "default", "cm", { signal: AbortSignal.abort(reason) }),
        (e) => e === reason,
      );
      assert.equal(server.requestLog.count({ resource: "configmaps" }), before);
    });

    await t.step(
      "aborting while the server holds the request rejects with the reason",
      async () => {
        const controller = new AbortController();
        const reason = new Error("lost leadership");
        const hold = server.holdRequests({ verbs: ["get"], resources: ["configmaps"] });
        // The server has the request: it is on the wire when the signal aborts.
        hold.arrived.then(() => controller.abort(reason));
        try {
          await assert.rejects(
            client.get(CONFIGMAPS, "default", "cm", { signal: controller.signal }),
            (e) => e === reason,
          );
          assert.equal(hold.count, 1, "the request reached the server");
        } finally {
          hold.release();
        }
      },
    );

    await t.step("aborting after the answer changes nothing", async () => {
      const controller = new AbortController();
      const cm = await client.get<ConfigMap>(CONFIGMAPS, "default", "cm", {
        signal: controller.signal,
      });
      controller.abort(new Error("too late"));
      assert.equal(cm.metadata.name, "cm");
    });
  });
});

Deno.test("KubeClient survives the API server going away and coming back", async () => {
  await using server = await startFakeApiServer();
  server.create("configmaps", "default", { metadata: { name: "cm" } });
  await withClient(server, {}, async (client) => {
    await client.get(CONFIGMAPS, "default", "cm");
    const port = server.port;
    await server.stop();
    // The first request may still go out on the pooled connection the
    // server just closed ("other side closed"); once that is gone nothing
    // listens on the port any more.
    await rejectsWith(client.get(CONFIGMAPS, "default", "cm"), KubeNetworkError);
    const refused = await rejectsWith(client.get(CONFIGMAPS, "default", "cm"), KubeNetworkError);
    assert.match(refused.message, /ECONNREFUSED/);
    assert.deepEqual(refused.request, {
      method: "GET",
      path: "/api/v1/namespaces/default/configmaps/cm",
    });
    await server.start();
    assert.equal(server.port, port);
    const cm = await client.get<ConfigMap>(CONFIGMAPS, "default", "cm");
    assert.equal(cm.metadata.name, "cm");
  });
});

Deno.test("KubeClient lists in pages", async (t) => {
  await using server = await startFakeApiServer();
  const total = 1_050;
  for (let i = 0; i < total; i++) {
    server.create("events", "default", {
      metadata: { name: `event-${String(i).padStart(4, "0")}` },
      involvedObject: { kind: "Pod", namespace: "default", name: `pod-${i % 7}` },
      reason: "Tested",
      message: `number ${i}`,
      type: "Normal",
    });
  }
  await withClient(server, {}, async (client) => {
    await t.step("limit 100 returns every event exactly once, from one snapshot", async () => {
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      let first = "";
      do {
        const page = await client.list<ConfigMap>(EVENTS, {
          namespace: "default",
          limit: 100,
          continueToken: token,
        });
        pages++;
        assert.ok(page.items.length <= 100);
        seen.push(...page.items.map((i) => i.metadata.name));
        if (pages === 1) {
          first = page.resourceVersion;
          // Written after the first page: not part of the snapshot being paged.
          server.create("events", "default", {
            metadata: { name: "event-late" },
            involvedObject: { kind: "Pod", namespace: "default", name: "late" },
          });
        }
        assert.equal(page.resourceVersion, first, "every page is of the same snapshot");
        token = page.continueToken;
      } while (token !== undefined);
      assert.equal(pages, 11);
      assert.equal(seen.length, total);
      assert.equal(new Set(seen).size, total);
      assert.ok(!seen.includes("event-late"));
    });

    await t.step("a continue token from before a compaction rejects with GoneError", async () => {
      const page = await client.list(EVENTS, { namespace: "default", limit: 100 });
      assert.notEqual(page.continueToken, undefined);
      server.create("events", "default", {
        metadata: { name: "event-after" },
        involvedObject: { kind: "Pod", namespace: "default", name: "after" },
      });
      server.compactNow();
      const e = await rejectsWith(
        client.list(EVENTS, {
          namespace: "default",
          limit: 100,
          continueToken: page.continueToken,
        }),
        GoneError,
      );
      assert.equal(e.code, 410);
      assert.equal(e.reason, "Expired");
    });
  });
});

Deno.test("KubeClient.watchBatches streams changes", async (t) => {
  await using server = await startFakeApiServer({ bookmarkIntervalMs: 50 });
  const namespace = "default";

  await withClient(server, { requestTimeoutMs: 5_000 }, async (client) => {
    await t.step(
      "from a list's resourceVersion it yields ADDED, MODIFIED, DELETED in order",
      async () => {
        const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
        const cm = await client.create<ConfigMap>(CONFIGMAPS, namespace, {
          metadata: { name: "watched" },
          data: { n: "1" },
        });
        const events: WatchEvent<ConfigMap>[] = [];
        for await (
          const batch of client.watchBatches<ConfigMap>(CONFIGMAPS, { namespace, resourceVersion })
        ) {
          events.push(...batch);
          // Changes made while the watch is open arrive on it too.
          if (events.length === 1) {
            await client.replace(CONFIGMAPS, namespace, "watched", { ...cm, data: { n: "2" } });
            await client.delete(CONFIGMAPS, namespace, "watched");
          }
          if (events.length >= 3) break;
        }
        assert.deepEqual(events.map((e) => e.type), ["ADDED", "MODIFIED", "DELETED"]);
        assert.deepEqual(events.map((e) => e.object.metadata.name), [
          "watched",
          "watched",
          "watched",
        ]);
        assert.deepEqual(events[1]!.object.data, { n: "2" });
        const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
        assert.ok(rvs[0]! > Number(resourceVersion) && rvs[0]! < rvs[1]! && rvs[1]! < rvs[2]!);
        await eventually(() => server.watchCount === 0, "the watch to close");
      },
    );

    await t.step("with allowWatchBookmarks it yields BOOKMARKs", async () => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      let bookmark: WatchEvent | undefined;
      for await (
        const batch of client.watchBatches(CONFIGMAPS, {
          namespace,
          resourceVersion,
          allowWatchBookmarks: true,
        })
      ) {
        bookmark = batch.find((e) => e.type === "BOOKMARK");
        if (bookmark !== undefined) break;
      }
      assert.ok(bookmark !== undefined);
      assert.equal(bookmark.object.metadata.resourceVersion, resourceVersion);
    });

    await t.step("a watch from a compacted resourceVersion throws GoneError", async () => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      await client.create(CONFIGMAPS, namespace, { metadata: { name: "compacted-away" } });
      server.compactNow();
      const events: WatchEvent[] = [];
      const e = await rejectsWith(
        (async () => {
          for await (
            const batch of client.watchBatches(CONFIGMAPS, { namespace, resourceVersion })
          ) {
            events.push(...batch);
          }
        })(),
        GoneError,
      );
      assert.equal(e.code, 410);
      assert.equal(e.reason, "Expired");
      assert.deepEqual(events, []);
    });

    await t.step("a watch that goes silent throws WatchStalledError", async () => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      server.stallWatches();
      try {
        const watch = client.watchBatches(CONFIGMAPS, {
          namespace,
          resourceVersion,
          idleTimeoutMs: 300,
        });
        const e = await rejectsWith(
          within(watch.next(), GUARD_MS, "the stalled watch to throw"),
          WatchStalledError,
        );
        assert.equal(e.idleMs, 300);
      } finally {
        server.stallWatches(false);
      }
      await eventually(() => server.watchCount === 0, "the stalled watch to close");
    });

    await t.step("a connection broken mid-watch throws KubeNetworkError", async () => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      const watch = client.watchBatches(CONFIGMAPS, { namespace, resourceVersion });
      const next = watch.next();
      await eventually(() => server.watchCount === 1, "the watch to open");
      assert.equal(server.dropWatches(), 1);
      const e = await rejectsWith(
        within(next, GUARD_MS, "the broken watch to throw"),
        KubeNetworkError,
      );
      assert.match(e.message, /broke/);
    });

    await t.step("a watch the server ends cleanly ends the generator normally", async () => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      const watch = client.watchBatches(CONFIGMAPS, { namespace, resourceVersion });
      const next = watch.next();
      await eventually(() => server.watchCount === 1, "the watch to open");
      server.dropWatches({ abrupt: false });
      assert.deepEqual(await within(next, GUARD_MS, "the watch to end"), {
        done: true,
        value: undefined,
      });
    });

    await t.step("timeoutSeconds makes the server end the watch; the generator ends", async () => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      let batches = 0;
      for await (
        const _ of client.watchBatches(CONFIGMAPS, {
          namespace,
          resourceVersion,
          timeoutSeconds: 1,
        })
      ) batches++;
      assert.equal(batches, 0);
      assert.equal(server.watchCount, 0);
    });

    await t.step("aborting the signal ends the watch with the signal's reason", async () => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      const controller = new AbortController();
      const reason = new Error("term ended");
      const watch = client.watchBatches(CONFIGMAPS, {
        namespace,
        resourceVersion,
        signal: controller.signal,
      });
      const next = watch.next();
      await eventually(() => server.watchCount === 1, "the watch to open");
      controller.abort(reason);
      await assert.rejects(
        within(next, GUARD_MS, "the aborted watch to throw"),
        (e) => e === reason,
      );
      await eventually(() => server.watchCount === 0, "the aborted watch to close");
    });

    await t.step("an already aborted signal throws its reason without a request", async () => {
      const reason = new Error("already over");
      const before = server.requestLog.count({ verb: "watch" });
      const watch = client.watchBatches(CONFIGMAPS, { signal: AbortSignal.abort(reason) });
      await assert.rejects(watch.next(), (e) => e === reason);
      assert.equal(server.requestLog.count({ verb: "watch" }), before);
    });

    await t.step("breaking out of the loop releases the connection", async () => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      await client.create(CONFIGMAPS, namespace, { metadata: { name: "break-me" } });
      for await (
        const batch of client.watchBatches<ConfigMap>(CONFIGMAPS, { namespace, resourceVersion })
      ) {
        assert.equal(batch[0]!.object.metadata.name, "break-me");
        assert.equal(server.watchCount, 1);
        break;
      }
      await eventually(() => server.watchCount === 0, "the server to see the watch closed");
      // The pool is still usable.
      await client.get(CONFIGMAPS, namespace, "break-me");
    });
  });
});

Deno.test("KubeClient.watchBatches after events: an abort or silence ends a watch waiting for more", async (t) => {
  await using server = await startFakeApiServer();
  const namespace = "default";

  await withClient(server, { requestTimeoutMs: 5_000 }, async (client) => {
    /** A watch from before a new ConfigMap, with its first batch (that ConfigMap) read. */
    const watchWithOneBatch = async (
      name: string,
      o: { signal?: AbortSignal } & {
        idleTimeoutMs?: number;
        fields?: string[];
      },
    ) => {
      const { resourceVersion } = await client.list(CONFIGMAPS, { namespace });
      await client.create(CONFIGMAPS, namespace, { metadata: { name }, data: { n: "1" } });
      const watch = client.watchBatches<ConfigMap>(CONFIGMAPS, {
        namespace,
        resourceVersion,
        ...o,
      });
      const first = await within(watch.next(), GUARD_MS, "the first batch");
      assert.equal(first.done, false);
      return { watch, batch: first.value as WatchEvent<ConfigMap>[] };
    };

    await t.step("aborting ends a watch that has sent events and waits for more", async () => {
      // (Against an API server in another process, Deno's fetch leaves such
      // a read waiting once a megabyte or so was read: see readWatchBatches'
      // signal, and the benchmark smoke test, which would hang without it.)
      const controller = new AbortController();
      const { watch } = await watchWithOneBatch("then-aborted", { signal: controller.signal });
      const waiting = watch.next();
      const reason = new Error("term over");
      controller.abort(reason);
      await assert.rejects(
        within(waiting, GUARD_MS, "the aborted watch to end"),
        (e) => e === reason,
      );
      await eventually(() => server.watchCount === 0, "the aborted watch to close");
    });

    await t.step("silence after events throws WatchStalledError at the idle limit", async () => {
      const { watch } = await watchWithOneBatch("then-silent", { idleTimeoutMs: 300 });
      server.stallWatches();
      try {
        const e = await rejectsWith(
          within(watch.next(), GUARD_MS, "the stalled watch to throw"),
          WatchStalledError,
        );
        assert.equal(e.idleMs, 300);
      } finally {
        server.stallWatches(false);
      }
      await eventually(() => server.watchCount === 0, "the stalled watch to close");
    });

    await t.step(
      "the fields asked for are read from each line, with the object's text",
      async () => {
        const { watch, batch } = await watchWithOneBatch("with-fields", {
          fields: ["metadata.name", "data.n", "data.missing"],
        });
        await watch.return(undefined);
        assert.deepEqual(batch[0]!.fields, ["with-fields", "1", undefined]);
        assert.deepEqual(JSON.parse(batch[0]!.json), batch[0]!.object);
        assert.equal(batch[0]!.resourceVersion, batch[0]!.object.metadata.resourceVersion);
      },
    );
  });
});

/**
 * A TLS front for a plain-HTTP server that offers h2 and http/1.1 by ALPN,
 * and records each connection's negotiated protocol and request lines.
 */
async function tlsFront(target: number) {
  const tls = await generateTlsMaterial();
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: tls.certPem,
    key: tls.keyPem,
    alpnProtocols: ["h2", "http/1.1"],
  });
  const connections: { alpn: string | null; requestLines: string[] }[] = [];
  const pipes: Promise<void>[] = [];
  const serve = async () => {
    for await (const conn of listener) {
      const seen = { alpn: null as string | null, requestLines: [] as string[] };
      connections.push(seen);
      pipes.push((async () => {
        const upstream = await Deno.connect({ hostname: "127.0.0.1", port: target });
        try {
          seen.alpn = (await conn.handshake()).alpnProtocol;
          const decoder = new TextDecoder();
          const up = conn.readable.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, controller) {
                for (const line of decoder.decode(chunk, { stream: true }).split("\r\n")) {
                  if (/^[A-Z]+ \S+ HTTP\/|^PRI \* HTTP\/2/.test(line)) seen.requestLines.push(line);
                }
                controller.enqueue(chunk);
              },
            }),
          );
          await Promise.all([
            up.pipeTo(upstream.writable),
            upstream.readable.pipeTo(conn.writable),
          ]);
        } catch {
          // A connection closed by either side ends its pipes: nothing to record.
        }
      })());
    }
  };
  const serving = serve();
  return {
    url: `https://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    caCertPem: tls.caCertPem,
    connections,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving.catch(() => {});
      await Promise.allSettled(pipes);
    },
  };
}

Deno.test("requests share a small HTTP/1.1 connection pool, never offering h2", async (t) => {
  await using server = await startFakeApiServer({ tls: false, anonymousAuth: "admin" });
  server.create("configmaps", "default", { metadata: { name: "cm" }, data: { a: "b" } });
  await using front = await tlsFront(server.port);
  const kubeconfig = YAML.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: "front",
      cluster: { server: front.url, "certificate-authority-data": btoa(front.caCertPem) },
    }],
    // No user: behind the front the server takes anonymous requests as the admin's.
    contexts: [{ name: "front", context: { cluster: "front" } }],
    "current-context": "front",
  });
  await withClient(server, { kubeconfig }, async (client) => {
    await t.step("50 sequential requests use at most 2 connections", async () => {
      for (let i = 0; i < 50; i++) await client.get(CONFIGMAPS, "default", "cm");
      assert.ok(
        front.connections.length >= 1 && front.connections.length <= 2,
        `${front.connections.length}`,
      );
    });

    await t.step("the connections negotiate http/1.1 although the server offers h2", () => {
      for (const c of front.connections) assert.equal(c.alpn, "http/1.1");
      const lines = front.connections.flatMap((c) => c.requestLines);
      assert.equal(lines.length, 50);
      for (const line of lines) {
        assert.equal(line, "GET /api/v1/namespaces/default/configmaps/cm HTTP/1.1");
      }
    });
  });
});

Deno.test("client-node, an independent client, reads and writes what kevents reads and writes", async (t) => {
  await using server = await startFakeApiServer();
  server.create("configmaps", "default", { metadata: { name: "cm" }, data: { a: "b" } });
  const kc = clientNodeConfig(server.kubeconfig());
  try {
    const core = kc.makeApiClient(CoreV1Api);

    await t.step("readNamespacedConfigMap works over TLS with the server's CA", async () => {
      const cm: V1ConfigMap = await core.readNamespacedConfigMap({
        name: "cm",
        namespace: "default",
      });
      assert.equal(cm.metadata?.name, "cm");
      assert.deepEqual(cm.data, { a: "b" });
    });

    await t.step("an error is an ApiException whose body is the Status as JSON text", async () => {
      let caught: unknown;
      try {
        await core.readNamespacedConfigMap({ name: "missing", namespace: "default" });
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof ApiException, `got ${caught}`);
      assert.equal(caught.code, 404);
      assert.equal(typeof caught.body, "string");
      assert.equal(JSON.parse(caught.body as string).reason, "NotFound");
    });

    await t.step("a Lease keeps renewTime as a microsecond string", async () => {
      const coordination = kc.makeApiClient(CoordinationV1Api);
      const renewTime = "2024-05-06T07:08:09.123456Z";
      const lease: V1Lease = await coordination.createNamespacedLease({
        namespace: "default",
        body: {
          metadata: { name: "kevents" },
          spec: {
            holderIdentity: "pod-a",
            leaseDurationSeconds: 15,
            // client-node types MicroTime as Date but passes strings through untouched.
            renewTime: renewTime as unknown as Date,
          },
        },
      });
      assert.equal(lease.spec?.holderIdentity, "pod-a");
      assert.equal(lease.spec?.renewTime as unknown, renewTime);
      // kevents reads the same Lease back unchanged.
      await withClient(server, {}, async (client) => {
        const read = await client.get<V1Lease>(LEASES, "default", "kevents");
        assert.equal(read.spec?.renewTime as unknown, renewTime);
      });
    });
  } finally {
    await kc.close();
  }
});
