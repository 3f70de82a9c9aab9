/**
 * The fake API server answers like kube-apiserver over the network: CRUD,
 * resourceVersions, Status errors, time precision, patches, deletes,
 * pagination, selectors, authentication and authorization, the request log,
 * discovery and health. Watches are covered in watch_test.ts
 * and fault injection in faults_test.ts.
 */

import assert from "node:assert/strict";
import { type PolicyRule, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { Api, coreEvent as kubeletEvent, type Json, type Reply } from "../_fake_api.ts";

/** The Status a failed request must carry, field for field. */
function failure(code: number, reason: string, message: string, details?: Json): Json {
  const status: Json = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
  };
  if (details !== undefined) status.details = details;
  status.code = code;
  return status;
}

/** Asserts that the reply is exactly this Status, fields in the order the real server writes them. */
function assertStatus(reply: Reply, expected: Json): void {
  assert.equal(reply.status, expected.code, JSON.stringify(reply.body));
  assert.deepEqual(reply.body, expected);
  assert.deepEqual(Object.keys(reply.body), Object.keys(expected));
}

const CM = "/api/v1/namespaces/default/configmaps";
const LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
const STALE_MESSAGE =
  "the object has been modified; please apply your changes to the latest version and try again";

/** A kubelet event as these tests store it, with its node and timestamps; `fields` override. */
function coreEvent(namespace: string, name: string, fields: Json = {}): Json {
  return kubeletEvent(namespace, name, {
    source: { component: "kubelet", host: "node-1" },
    firstTimestamp: "2026-03-01T10:00:00Z",
    lastTimestamp: "2026-03-01T10:00:00Z",
    ...fields,
  });
}

interface CrudCase {
  resource: string;
  collection: string;
  kind: string;
  apiVersion: string;
  namespaced: boolean;
  body: Json;
  /** Checks the created object carries the resource's own fields. */
  check: (obj: Json) => void;
}

const CRUD_CASES: CrudCase[] = [
  {
    resource: "configmaps",
    collection: CM,
    kind: "ConfigMap",
    apiVersion: "v1",
    namespaced: true,
    body: { data: { "config.yaml": "a: 1" } },
    check: (o) => assert.deepEqual(o.data, { "config.yaml": "a: 1" }),
  },
  {
    resource: "leases",
    collection: LEASES,
    kind: "Lease",
    apiVersion: "coordination.k8s.io/v1",
    namespaced: true,
    body: { spec: { holderIdentity: "pod-a", leaseDurationSeconds: 15 } },
    check: (o) => assert.equal(o.spec.holderIdentity, "pod-a"),
  },
  {
    resource: "endpoints",
    collection: "/api/v1/namespaces/default/endpoints",
    kind: "Endpoints",
    apiVersion: "v1",
    namespaced: true,
    body: { subsets: [{ addresses: [{ ip: "10.0.0.7" }], ports: [{ port: 8080 }] }] },
    check: (o) => assert.equal(o.subsets[0].addresses[0].ip, "10.0.0.7"),
  },
  {
    resource: "serviceaccounts",
    collection: "/api/v1/namespaces/kube-system/serviceaccounts",
    kind: "ServiceAccount",
    apiVersion: "v1",
    namespaced: true,
    body: { automountServiceAccountToken: false },
    check: (o) => assert.equal(o.automountServiceAccountToken, false),
  },
  {
    resource: "events",
    collection: "/api/v1/namespaces/default/events",
    kind: "Event",
    apiVersion: "v1",
    namespaced: true,
    body: {
      involvedObject: { kind: "Pod", namespace: "default", name: "web-1" },
      reason: "Pulled",
      message: "Image pulled",
      type: "Normal",
    },
    check: (o) => assert.equal(o.involvedObject.name, "web-1"),
  },
  {
    resource: "clusterroles",
    collection: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    kind: "ClusterRole",
    apiVersion: "rbac.authorization.k8s.io/v1",
    namespaced: false,
    body: { rules: [{ apiGroups: [""], resources: ["events"], verbs: ["list", "watch"] }] },
    check: (o) => assert.deepEqual(o.rules[0].verbs, ["list", "watch"]),
  },
  {
    resource: "daemonsets",
    collection: "/apis/apps/v1/namespaces/kube-system/daemonsets",
    kind: "DaemonSet",
    apiVersion: "apps/v1",
    namespaced: true,
    body: {
      spec: {
        selector: { matchLabels: { app: "agent" } },
        template: { metadata: { labels: { app: "agent" } }, spec: { containers: [] } },
      },
    },
    check: (o) => assert.deepEqual(o.spec.selector.matchLabels, { app: "agent" }),
  },
  {
    resource: "namespaces",
    collection: "/api/v1/namespaces",
    kind: "Namespace",
    apiVersion: "v1",
    namespaced: false,
    body: {},
    check: (o) => assert.equal(o.metadata.namespace, undefined),
  },
];

Deno.test("each served resource supports create, get, update, list and delete", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  for (const c of CRUD_CASES) {
    await t.step(`${c.resource}: create, get, update, list, delete`, async () => {
      const name = `crud-${c.resource}`;
      const created = await api.post(c.collection, {
        apiVersion: c.apiVersion,
        kind: c.kind,
        ...c.body,
        metadata: { name, labels: { step: "created" } },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const obj = created.body;
      assert.equal(obj.kind, c.kind);
      assert.equal(obj.apiVersion, c.apiVersion);
      assert.equal(obj.metadata.name, name);
      assert.match(obj.metadata.uid, /^[0-9a-f-]{36}$/);
      assert.match(obj.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(obj.metadata.resourceVersion, String(server.store.currentRv));
      if (c.namespaced) assert.equal(obj.metadata.namespace, c.collection.split("/").at(-2));
      c.check(obj);

      const got = await api.get(`${c.collection}/${name}`);
      assert.equal(got.status, 200);
      assert.deepEqual(got.body, obj);

      const changed = { ...obj, metadata: { ...obj.metadata, labels: { step: "updated" } } };
      const updated = await api.put(`${c.collection}/${name}`, changed);
      assert.equal(updated.status, 200, JSON.stringify(updated.body));
      assert.deepEqual(updated.body.metadata.labels, { step: "updated" });
      assert.equal(updated.body.metadata.uid, obj.metadata.uid);
      assert.equal(updated.body.metadata.creationTimestamp, obj.metadata.creationTimestamp);
      assert.ok(
        Number(updated.body.metadata.resourceVersion) > Number(obj.metadata.resourceVersion),
      );

      const list = await api.get(c.collection);
      assert.equal(list.status, 200);
      assert.equal(list.body.kind, `${c.kind}List`);
      assert.equal(list.body.apiVersion, c.apiVersion);
      const item = list.body.items.find((i: Json) => i.metadata.name === name);
      assert.equal(item.metadata.resourceVersion, updated.body.metadata.resourceVersion);
      assert.equal(item.kind, undefined, "list items carry no kind");

      const deleted = await api.delete(`${c.collection}/${name}`);
      assert.equal(deleted.status, 200);
      // A namespace is the exception: the real server answers with the Namespace
      // in phase Terminating (the fake removes it at once).
      if (c.resource !== "namespaces") {
        const group = c.apiVersion.includes("/") ? c.apiVersion.split("/")[0] : undefined;
        assert.deepEqual(deleted.body, {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Success",
          details: {
            name,
            ...(group === undefined ? {} : { group }),
            kind: c.resource,
            uid: obj.metadata.uid,
          },
        });
      }
      const qualified = c.apiVersion.includes("/")
        ? `${c.resource}.${c.apiVersion.split("/")[0]}`
        : c.resource;
      const gone = await api.get(`${c.collection}/${name}`);
      assert.equal(gone.status, 404);
      assert.equal(gone.body.message, `${qualified} "${name}" not found`);
    });
  }

  await t.step("a new server already has the default namespaces and service accounts", async () => {
    const namespaces = await api.get("/api/v1/namespaces");
    const names = namespaces.body.items.map((n: Json) => n.metadata.name).sort();
    assert.deepEqual(names, ["default", "kube-node-lease", "kube-public", "kube-system"]);
    const sa = await api.get("/api/v1/namespaces/default/serviceaccounts/default");
    assert.equal(sa.status, 200);
  });

  await t.step("deleting a namespace removes what it holds", async () => {
    assert.equal(
      (await api.post("/api/v1/namespaces", { metadata: { name: "team" } })).status,
      201,
    );
    const cm = await api.post("/api/v1/namespaces/team/configmaps", { metadata: { name: "x" } });
    assert.equal(cm.status, 201);
    assert.equal((await api.delete("/api/v1/namespaces/team")).status, 200);
    assert.equal((await api.get("/api/v1/namespaces/team/configmaps/x")).status, 404);
  });

  await t.step("PUT of a missing event or endpoints creates it (201)", async () => {
    const ev = coreEvent("default", "put-created.1");
    const put = await api.put("/api/v1/namespaces/default/events/put-created.1", ev);
    assert.equal(put.status, 201);
    const ep = await api.put("/api/v1/namespaces/default/endpoints/svc", {
      metadata: { name: "svc" },
    });
    assert.equal(ep.status, 201);
  });
});

Deno.test("events: namespaced and cluster-wide lists, and the events.k8s.io/v1 view", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  for (const ns of ["web", "batch"]) {
    assert.equal((await api.post("/api/v1/namespaces", { metadata: { name: ns } })).status, 201);
  }
  const a = await api.post("/api/v1/namespaces/web/events", coreEvent("web", "web-1.a1"));
  const b = await api.post("/api/v1/namespaces/batch/events", coreEvent("batch", "job-1.b1"));
  assert.equal(a.status, 201);
  assert.equal(b.status, 201);

  await t.step("a namespaced list holds only that namespace's events", async () => {
    const list = await api.get("/api/v1/namespaces/web/events");
    assert.equal(list.body.kind, "EventList");
    assert.deepEqual(list.body.items.map((e: Json) => e.metadata.name), ["web-1.a1"]);
  });

  await t.step("/api/v1/events lists the events of every namespace", async () => {
    const list = await api.get("/api/v1/events");
    const keys = list.body.items.map((e: Json) => `${e.metadata.namespace}/${e.metadata.name}`);
    assert.deepEqual(keys.sort(), ["batch/job-1.b1", "web/web-1.a1"]);
  });

  await t.step(
    "a core event is visible through events.k8s.io/v1 with regarding and note",
    async () => {
      const got = await api.get("/apis/events.k8s.io/v1/namespaces/web/events/web-1.a1");
      assert.equal(got.status, 200);
      assert.equal(got.body.kind, "Event");
      assert.equal(got.body.apiVersion, "events.k8s.io/v1");
      assert.deepEqual(got.body.regarding, a.body.involvedObject);
      assert.equal(got.body.note, "Started container app");
      assert.equal(got.body.deprecatedCount, 1);
      assert.equal(got.body.involvedObject, undefined);
      assert.equal(got.body.message, undefined);
      assert.equal(got.body.metadata.resourceVersion, a.body.metadata.resourceVersion);
      const list = await api.get("/apis/events.k8s.io/v1/events");
      assert.equal(list.body.apiVersion, "events.k8s.io/v1");
      assert.equal(list.body.items.length, 2);
    },
  );

  await t.step(
    "an event lastTimestamp with fractional seconds comes back truncated to seconds",
    async () => {
      const ev = coreEvent("web", "web-1.frac", { lastTimestamp: "2026-03-01T10:00:07.789Z" });
      const created = await api.post("/api/v1/namespaces/web/events", ev);
      assert.equal(created.status, 201);
      assert.equal(created.body.lastTimestamp, "2026-03-01T10:00:07Z");
    },
  );
});

Deno.test("resourceVersions behave like etcd revisions", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const rvOf = (r: Reply) => Number(r.body.metadata.resourceVersion);

  await t.step("every write bumps one global counter, across resources", async () => {
    const start = server.store.currentRv;
    const cm = await api.post(CM, { metadata: { name: "rv" } });
    const lease = await api.post(LEASES, { metadata: { name: "rv" } });
    const ev = await api.post("/api/v1/namespaces/default/events", coreEvent("default", "rv.1"));
    const cm2 = await api.put(`${CM}/rv`, { ...cm.body, data: { k: "v" } });
    const rvs = [cm, lease, ev, cm2].map(rvOf);
    assert.deepEqual(rvs, [start + 1, start + 2, start + 3, start + 4]);
  });

  await t.step("a list answers with the current global resourceVersion", async () => {
    await api.post(LEASES, { metadata: { name: "later" } });
    const list = await api.get(CM);
    assert.equal(list.body.metadata.resourceVersion, String(server.store.currentRv));
  });

  await t.step("an update that changes nothing writes nothing", async () => {
    const before = await api.get(`${CM}/rv`);
    const rv = server.store.currentRv;
    const same = await api.put(`${CM}/rv`, before.body);
    assert.equal(same.status, 200);
    assert.equal(same.body.metadata.resourceVersion, before.body.metadata.resourceVersion);
    assert.equal(server.store.currentRv, rv);
  });

  await t.step("a delete is a write too", async () => {
    const rv = server.store.currentRv;
    assert.equal((await api.delete(`${CM}/rv`)).status, 200);
    assert.equal(server.store.currentRv, rv + 1);
  });
});

Deno.test("failures are full Status objects with the real server's messages", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const cm = await api.post(CM, { metadata: { name: "x" }, data: { a: "1" } });

  await t.step("a get of a missing object is 404 NotFound", async () => {
    assertStatus(
      await api.get(`${CM}/missing`),
      failure(404, "NotFound", 'configmaps "missing" not found', {
        name: "missing",
        kind: "configmaps",
      }),
    );
  });

  await t.step("a missing object of a named group carries the group", async () => {
    assertStatus(
      await api.get(`${LEASES}/missing`),
      failure(404, "NotFound", 'leases.coordination.k8s.io "missing" not found', {
        name: "missing",
        group: "coordination.k8s.io",
        kind: "leases",
      }),
    );
  });

  await t.step("a create of an existing name is 409 AlreadyExists", async () => {
    assertStatus(
      await api.post(CM, { metadata: { name: "x" } }),
      failure(409, "AlreadyExists", 'configmaps "x" already exists', {
        name: "x",
        kind: "configmaps",
      }),
    );
  });

  await t.step("an update with a stale resourceVersion is refused with 409 Conflict", async () => {
    const fresh = await api.put(`${CM}/x`, { ...cm.body, data: { a: "2" } });
    assert.equal(fresh.status, 200);
    const rv = server.store.currentRv;
    assertStatus(
      await api.put(`${CM}/x`, { ...cm.body, data: { a: "3" } }),
      failure(
        409,
        "Conflict",
        `Operation cannot be fulfilled on configmaps "x": ${STALE_MESSAGE}`,
        {
          name: "x",
          kind: "configmaps",
        },
      ),
    );
    assert.equal(server.store.currentRv, rv, "a refused update writes nothing");
    assert.equal((await api.get(`${CM}/x`)).body.data.a, "2");
  });

  await t.step("a malformed JSON body is 400 BadRequest", async () => {
    const reply = await api.post(CM, '{"metadata": {"name": "y"');
    assert.equal(reply.status, 400);
    assert.equal(reply.body.kind, "Status");
    assert.equal(reply.body.status, "Failure");
    assert.equal(reply.body.reason, "BadRequest");
    assert.equal(reply.body.code, 400);
  });

  await t.step("an object without a name is 422 Invalid", async () => {
    assertStatus(
      await api.post(CM, { data: { a: "1" } }),
      failure(
        422,
        "Invalid",
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
        {
          kind: "ConfigMap",
          causes: [{
            reason: "FieldValueRequired",
            message: "Required value: name or generateName is required",
            field: "metadata.name",
          }],
        },
      ),
    );
  });

  await t.step("a create in a namespace that does not exist is 404 for the namespace", async () => {
    assertStatus(
      await api.post("/api/v1/namespaces/nowhere/configmaps", { metadata: { name: "x" } }),
      failure(404, "NotFound", 'namespaces "nowhere" not found', {
        name: "nowhere",
        kind: "namespaces",
      }),
    );
  });

  await t.step("a create of componentstatuses is 405 MethodNotAllowed", async () => {
    assertStatus(
      await api.post("/api/v1/componentstatuses", { metadata: { name: "x" } }),
      failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        {},
      ),
    );
  });

  await t.step("a body in an unknown content type is 415 UnsupportedMediaType", async () => {
    assertStatus(
      await api.post(CM, "name: x", { contentType: "text/plain" }),
      failure(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
      ),
    );
  });

  await t.step("a resource the server does not serve is 404 with a generic message", async () => {
    assertStatus(
      await api.get("/api/v1/namespaces/default/widgets"),
      failure(404, "NotFound", "the server could not find the requested resource", {}),
    );
  });
});

Deno.test("lease times are MicroTime: exactly six fractional digits", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const spec = {
    holderIdentity: "pod-a",
    leaseDurationSeconds: 15,
    acquireTime: "2026-03-01T10:00:00.123456Z",
    renewTime: "2026-03-01T10:00:05.000001Z",
    leaseTransitions: 0,
  };

  await t.step("six fractional digits are accepted and returned as sent", async () => {
    const created = await api.post(LEASES, { metadata: { name: "micro" }, spec });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.spec.acquireTime, spec.acquireTime);
    assert.equal(created.body.spec.renewTime, spec.renewTime);
    const got = await api.get(`${LEASES}/micro`);
    assert.equal(got.body.spec.renewTime, spec.renewTime);
  });

  await t.step("three fractional digits are refused with 400 naming the layout", async () => {
    const reply = await api.post(LEASES, {
      metadata: { name: "milli" },
      spec: { ...spec, renewTime: "2026-03-01T10:00:05.123Z" },
    });
    assertStatus(
      reply,
      failure(
        400,
        "BadRequest",
        'Lease in version "v1" cannot be handled as a Lease: parsing time "2026-03-01T10:00:05.123Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".123Z" as ".000000"',
      ),
    );
    assert.equal((await api.get(`${LEASES}/milli`)).status, 404);
  });
});

Deno.test("patches: merge, strategic merge and JSON patch", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const path = `${CM}/p`;
  const created = await api.post(CM, {
    metadata: { name: "p", labels: { app: "a" } },
    data: { a: "1", b: "2" },
  });

  await t.step("a merge patch sets and removes keys", async () => {
    const reply = await api.patch(
      path,
      { data: { b: null, c: "3" } },
      "application/merge-patch+json",
    );
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body.data, { a: "1", c: "3" });
    assert.deepEqual(reply.body.metadata.labels, { app: "a" });
    assert.ok(
      Number(reply.body.metadata.resourceVersion) > Number(created.body.metadata.resourceVersion),
    );
  });

  await t.step("a strategic merge patch applies as a merge", async () => {
    const reply = await api.patch(
      path,
      { metadata: { labels: { tier: "web" } } },
      "application/strategic-merge-patch+json",
    );
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body.metadata.labels, { app: "a", tier: "web" });
  });

  await t.step("a JSON patch adds, replaces and removes", async () => {
    const reply = await api.patch(path, [
      { op: "add", path: "/data/d", value: "4" },
      { op: "replace", path: "/data/a", value: "one" },
      { op: "remove", path: "/data/c" },
      { op: "test", path: "/data/d", value: "4" },
    ], "application/json-patch+json");
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.deepEqual(reply.body.data, { a: "one", d: "4" });
  });

  await t.step("a JSON patch whose test fails is 422 and changes nothing", async () => {
    const rv = server.store.currentRv;
    const reply = await api.patch(path, [
      { op: "test", path: "/data/a", value: "1" },
      { op: "replace", path: "/data/a", value: "two" },
    ], "application/json-patch+json");
    assertStatus(
      reply,
      failure(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {},
      ),
    );
    assert.equal(server.store.currentRv, rv);
  });

  await t.step("a merge patch carrying a stale resourceVersion is 409 Conflict", async () => {
    const reply = await api.patch(
      path,
      { metadata: { resourceVersion: created.body.metadata.resourceVersion }, data: { a: "x" } },
      "application/merge-patch+json",
    );
    assertStatus(
      reply,
      failure(
        409,
        "Conflict",
        `Operation cannot be fulfilled on configmaps "p": ${STALE_MESSAGE}`,
        {
          name: "p",
          kind: "configmaps",
        },
      ),
    );
  });

  await t.step("a merge patch carrying the current resourceVersion applies", async () => {
    const current = await api.get(path);
    const reply = await api.patch(
      path,
      { metadata: { resourceVersion: current.body.metadata.resourceVersion }, data: { a: "x" } },
      "application/merge-patch+json",
    );
    assert.equal(reply.status, 200);
    assert.equal(reply.body.data.a, "x");
  });

  await t.step("a patch of a missing object is 404", async () => {
    const reply = await api.patch(`${CM}/none`, { data: {} }, "application/merge-patch+json");
    assert.equal(reply.status, 404);
    assert.equal(reply.body.message, 'configmaps "none" not found');
  });
});

Deno.test("delete honours resourceVersion preconditions", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const created = await api.post(CM, { metadata: { name: "d" } });
  const stale = created.body.metadata.resourceVersion;
  const updated = await api.put(`${CM}/d`, { ...created.body, data: { a: "1" } });
  const current = updated.body.metadata.resourceVersion;

  await t.step(
    "a delete with a stale precondition is 409 Conflict and keeps the object",
    async () => {
      const reply = await api.delete(`${CM}/d`, {
        kind: "DeleteOptions",
        apiVersion: "v1",
        preconditions: { resourceVersion: stale },
      });
      assertStatus(
        reply,
        failure(
          409,
          "Conflict",
          `Operation cannot be fulfilled on ConfigMap "d": the ResourceVersion in the precondition (${stale}) does not match the ResourceVersion in record (${current}). The object might have been modified`,
          { name: "d", kind: "ConfigMap" },
        ),
      );
      assert.equal((await api.get(`${CM}/d`)).status, 200);
    },
  );

  await t.step("a delete with the current precondition succeeds", async () => {
    const reply = await api.delete(`${CM}/d`, { preconditions: { resourceVersion: current } });
    assert.equal(reply.status, 200);
    assert.equal(reply.body.status, "Success");
    assert.equal((await api.get(`${CM}/d`)).status, 404);
  });

  await t.step("a delete of a missing object is 404", async () => {
    const reply = await api.delete(`${CM}/d`);
    assert.equal(reply.status, 404);
    assert.equal(reply.body.message, 'configmaps "d" not found');
  });
});

Deno.test("list pagination reads one consistent snapshot", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const TOTAL = 1234;
  server.create("namespaces", "", { metadata: { name: "busy" } });
  const names: string[] = [];
  for (let i = 0; i < TOTAL; i++) {
    const name = `pod-${String(i).padStart(4, "0")}.e`;
    names.push(name);
    server.create("events", "busy", coreEvent("busy", name, { message: `original ${i}` }));
  }
  const EVENTS = "/api/v1/namespaces/busy/events";

  await t.step(
    "pages of 100 return every item exactly once, at the first page's resourceVersion",
    async () => {
      const first = await api.get(`${EVENTS}?limit=100`);
      assert.equal(first.status, 200);
      const snapshot = first.body.metadata.resourceVersion;
      assert.equal(first.body.items.length, 100);
      assert.equal(first.body.metadata.remainingItemCount, TOTAL - 100);

      // Changes after the first page must not show on the later ones.
      assert.equal((await api.delete(`${EVENTS}/pod-0500.e`)).status, 200);
      const patched = await api.patch(
        `${EVENTS}/pod-0600.e`,
        { message: "changed" },
        "application/merge-patch+json",
      );
      assert.equal(patched.status, 200);
      const late = coreEvent("busy", "pod-0700x.e");
      assert.equal((await api.post(EVENTS, late)).status, 201);

      const seen: Json[] = [...first.body.items];
      let token: string | undefined = first.body.metadata.continue;
      let pages = 1;
      while (token !== undefined) {
        const page = await api.get(`${EVENTS}?limit=100&continue=${encodeURIComponent(token)}`);
        assert.equal(page.status, 200, JSON.stringify(page.body));
        assert.equal(page.body.metadata.resourceVersion, snapshot);
        seen.push(...page.body.items);
        pages++;
        token = page.body.metadata.continue;
        if (token === undefined) {
          assert.equal(page.body.metadata.remainingItemCount, undefined);
        } else {
          assert.equal(page.body.metadata.remainingItemCount, TOTAL - seen.length);
        }
      }
      assert.equal(pages, Math.ceil(TOTAL / 100));
      assert.deepEqual(seen.map((e) => e.metadata.name), names);
      const deleted = seen.find((e) => e.metadata.name === "pod-0500.e");
      assert.equal(deleted.message, "original 500");
      const modified = seen.find((e) => e.metadata.name === "pod-0600.e");
      assert.equal(modified.message, "original 600");
      assert.ok(Number(modified.metadata.resourceVersion) <= Number(snapshot));
    },
  );

  await t.step(
    "a continue token whose snapshot was compacted is 410 Expired with a fresh token",
    async () => {
      const first = await api.get(`${EVENTS}?limit=500`);
      const token = first.body.metadata.continue;
      // Compaction keeps the newest revision readable: write once so the snapshot falls behind.
      assert.equal((await api.delete(`${EVENTS}/pod-0001.e`)).status, 200);
      server.compactNow();
      const reply = await api.get(`${EVENTS}?limit=500&continue=${encodeURIComponent(token)}`);
      assert.equal(reply.status, 410);
      assert.equal(reply.body.reason, "Expired");
      assert.match(
        reply.body.message,
        /^The provided continue parameter is too old to display a consistent list result\./,
      );
      const fresh = reply.body.metadata.continue;
      assert.equal(typeof fresh, "string");
      // The fresh token goes on from where the old one stopped, at the latest state.
      const rest = await api.get(`${EVENTS}?limit=500&continue=${encodeURIComponent(fresh)}`);
      assert.equal(rest.status, 200);
      assert.equal(rest.body.metadata.resourceVersion, String(server.store.currentRv));
      const last = first.body.items.at(-1).metadata.name;
      assert.ok(rest.body.items[0].metadata.name > last);
    },
  );

  await t.step("a continue token with a resourceVersion is 400", async () => {
    const first = await api.get(`${EVENTS}?limit=10`);
    const token = encodeURIComponent(first.body.metadata.continue);
    const reply = await api.get(`${EVENTS}?limit=10&continue=${token}&resourceVersion=5`);
    assert.equal(reply.status, 400);
    assert.equal(
      reply.body.message,
      "specifying resource version is not allowed when using continue",
    );
  });
});

Deno.test("a list at a resourceVersion reads exactly that revision", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const v1 = await api.post(CM, { metadata: { name: "at" }, data: { v: "1" } });
  const rv = v1.body.metadata.resourceVersion;
  await api.put(`${CM}/at`, { ...v1.body, data: { v: "2" } });
  await api.post(CM, { metadata: { name: "after" } });

  await t.step("resourceVersion=N with a limit reads the state at N", async () => {
    const reply = await api.get(`${CM}?resourceVersion=${rv}&limit=10`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.metadata.resourceVersion, rv);
    assert.deepEqual(reply.body.items.map((i: Json) => [i.metadata.name, i.data?.v]), [[
      "at",
      "1",
    ]]);
  });

  await t.step("resourceVersionMatch=Exact reads the state at N too", async () => {
    const reply = await api.get(`${CM}?resourceVersion=${rv}&resourceVersionMatch=Exact`);
    assert.equal(reply.body.metadata.resourceVersion, rv);
    assert.equal(reply.body.items.length, 1);
  });

  await t.step(
    "a resourceVersion newer than the server's is 504 ResourceVersionTooLarge",
    async () => {
      const current = server.store.currentRv;
      assertStatus(
        await api.get(`${CM}?resourceVersion=${current + 100}`),
        failure(
          504,
          "Timeout",
          `Timeout: Too large resource version: ${current + 100}, current: ${current}`,
          {
            causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
            retryAfterSeconds: 1,
          },
        ),
      );
    },
  );
});

Deno.test("field and label selectors filter lists as the real server does", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  await api.post("/api/v1/namespaces", { metadata: { name: "web" } });
  const events: [string, string, Json][] = [
    ["default", "pod-a.1", { reason: "Scheduled" }],
    ["default", "pod-a.2", { type: "Warning", reason: "BackOff" }],
    ["web", "pod-b.1", { type: "Warning", reason: "BackOff" }],
    ["web", "pod-c.1", { type: "Warning", reason: "Unhealthy" }],
    ["default", "node-1.1", {
      involvedObject: { kind: "Node", name: "node-1", apiVersion: "v1" },
      reason: "NodeReady",
    }],
  ];
  for (const [ns, name, fields] of events) {
    const reply = await api.post(`/api/v1/namespaces/${ns}/events`, coreEvent(ns, name, fields));
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
  }
  const select = async (selector: string) => {
    const reply = await api.get(`/api/v1/events?fieldSelector=${encodeURIComponent(selector)}`);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    return reply.body.items.map((e: Json) => e.metadata.name).sort();
  };

  await t.step("involvedObject.kind=Pod", async () => {
    assert.deepEqual(await select("involvedObject.kind=Pod"), [
      "pod-a.1",
      "pod-a.2",
      "pod-b.1",
      "pod-c.1",
    ]);
  });

  await t.step("type!=Normal", async () => {
    assert.deepEqual(await select("type!=Normal"), ["pod-a.2", "pod-b.1", "pod-c.1"]);
  });

  await t.step("reason=BackOff,involvedObject.namespace=web", async () => {
    assert.deepEqual(await select("reason=BackOff,involvedObject.namespace=web"), ["pod-b.1"]);
  });

  await t.step("== means =", async () => {
    assert.deepEqual(await select("involvedObject.kind==Node"), ["node-1.1"]);
  });

  await t.step("a selected page carries no remainingItemCount", async () => {
    const reply = await api.get(`/api/v1/events?fieldSelector=type%3DWarning&limit=1`);
    assert.equal(reply.body.items.length, 1);
    assert.equal(typeof reply.body.metadata.continue, "string");
    assert.equal(reply.body.metadata.remainingItemCount, undefined);
  });

  await t.step("an unsupported field is 400 with the conversion's message", async () => {
    const reply = await api.get("/api/v1/events?fieldSelector=spec.color%3Dred");
    assertStatus(reply, failure(400, "BadRequest", "field label not supported: spec.color"));
  });

  await t.step("labelSelector on configmaps: equality, set and absence", async () => {
    const labelled: [string, Record<string, string>][] = [
      ["a", { app: "x" }],
      ["b", { app: "y" }],
      ["c", { app: "z" }],
      ["d", { tier: "db" }],
    ];
    for (const [name, labels] of labelled) {
      assert.equal((await api.post(CM, { metadata: { name, labels } })).status, 201);
    }
    const names = async (selector: string) => {
      const reply = await api.get(`${CM}?labelSelector=${encodeURIComponent(selector)}`);
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      return reply.body.items.map((c: Json) => c.metadata.name);
    };
    assert.deepEqual(await names("app=x"), ["a"]);
    assert.deepEqual(await names("app in (x,y)"), ["a", "b"]);
    assert.deepEqual(await names("!app"), ["d"]);
    assert.deepEqual(await names("app,app!=z"), ["a", "b"]);
  });

  await t.step("a malformed label selector is 400", async () => {
    const reply = await api.get(`${CM}?labelSelector=${encodeURIComponent("app in x")}`);
    assert.equal(reply.status, 400);
    assert.equal(reply.body.reason, "BadRequest");
  });
});

Deno.test("authentication and RBAC-style authorization", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);
  const rules: PolicyRule[] = [
    { apiGroups: [""], resources: ["configmaps"], verbs: ["get"] },
    {
      apiGroups: [""],
      resources: ["configmaps"],
      resourceNames: ["kevents-checkpoint"],
      verbs: ["update"],
    },
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      resourceNames: ["kevents"],
      verbs: ["get", "update", "list", "watch"],
    },
    { apiGroups: [""], resources: ["events"], verbs: ["create"] },
  ];
  const token = server.addUser("kevents", rules);
  using kevents = new Api(server, token);
  const token2 = await api.post(CM, { metadata: { name: "datadogtoken" }, data: { t: "s" } });
  const checkpoint = await api.post(CM, { metadata: { name: "kevents-checkpoint" } });
  await api.post(LEASES, { metadata: { name: "other" } });

  await t.step("a request without a token is 401 Unauthorized", async () => {
    assertStatus(
      await api.get(`${CM}/datadogtoken`, { token: null }),
      failure(401, "Unauthorized", "Unauthorized"),
    );
  });

  await t.step("a request with an unknown token is 401 Unauthorized", async () => {
    assertStatus(
      await api.get(`${CM}/datadogtoken`, { token: "not-a-token" }),
      failure(401, "Unauthorized", "Unauthorized"),
    );
  });

  await t.step("allowed requests pass", async () => {
    assert.equal((await kevents.get(`${CM}/datadogtoken`)).status, 200);
    const updated = await kevents.put(`${CM}/kevents-checkpoint`, {
      ...checkpoint.body,
      data: { rv: "1" },
    });
    assert.equal(updated.status, 200);
    const lease = await kevents.post(LEASES, { metadata: { name: "kevents" } });
    assert.equal(lease.status, 201);
    assert.equal((await kevents.get(`${LEASES}/kevents`)).status, 200);
  });

  await t.step("a missing permission is 403 with the exact RBAC message", async () => {
    assertStatus(
      await kevents.put(`${CM}/datadogtoken`, { ...token2.body, data: { t: "x" } }),
      failure(
        403,
        "Forbidden",
        'configmaps "datadogtoken" is forbidden: User "kevents" cannot update resource "configmaps" in API group "" in the namespace "default"',
        { name: "datadogtoken", kind: "configmaps" },
      ),
    );
    assert.equal((await api.get(`${CM}/datadogtoken`)).body.data.t, "s");
  });

  await t.step("a cluster-wide list without permission is 403 at the cluster scope", async () => {
    assertStatus(
      await kevents.get("/api/v1/events"),
      failure(
        403,
        "Forbidden",
        'events is forbidden: User "kevents" cannot list resource "events" in API group "" at the cluster scope',
        { kind: "events" },
      ),
    );
  });

  await t.step("resourceNames restrict get and update to the named objects", async () => {
    assertStatus(
      await kevents.get(`${LEASES}/other`),
      failure(
        403,
        "Forbidden",
        'leases.coordination.k8s.io "other" is forbidden: User "kevents" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "default"',
        { name: "other", group: "coordination.k8s.io", kind: "leases" },
      ),
    );
    assert.equal((await kevents.get(LEASES)).status, 403, "a list names no object");
  });

  await t.step("a list or watch selecting metadata.name is authorized as that name", async () => {
    const list = await kevents.get(`${LEASES}?fieldSelector=metadata.name%3Dkevents`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.items.map((l: Json) => l.metadata.name), ["kevents"]);
    const watch = await kevents.watchStatus(
      `${LEASES}?watch=true&fieldSelector=metadata.name%3Dkevents`,
    );
    assert.equal(watch.status, 200);
    const other = await kevents.watchStatus(
      `${LEASES}?watch=true&fieldSelector=metadata.name%3Dother`,
    );
    assert.equal(other.status, 403);
    assert.equal(
      other.body.message,
      'leases.coordination.k8s.io "other" is forbidden: User "kevents" cannot watch resource "leases" in API group "coordination.k8s.io" in the namespace "default"',
    );
  });

  await t.step("discovery and health work for any authenticated user", async () => {
    for (const path of ["/api", "/apis", "/api/v1", "/version", "/readyz"]) {
      assert.equal((await kevents.get(path)).status, 200, path);
    }
  });

  await t.step(
    "non-resource paths outside the public ones need nonResourceURLs rules",
    async () => {
      assertStatus(
        await kevents.get("/metrics"),
        failure(403, "Forbidden", 'forbidden: User "kevents" cannot get path "/metrics"', {}),
      );
      server.setRules("kevents", [...rules, { nonResourceURLs: ["/metrics"], verbs: ["get"] }]);
      // Allowed now; the fake serves no metrics, so it answers 404 past authorization.
      assert.equal((await kevents.get("/metrics")).status, 404);
    },
  );

  await t.step("the request log counts requests by identity, verb and resource", () => {
    const log = server.requestLog;
    assert.equal(log.count({ identity: "kevents", verb: "get", resource: "configmaps" }), 1);
    assert.equal(log.count({ identity: "kevents", verb: "update", resource: "configmaps" }), 2);
    assert.equal(
      log.count({ identity: "kevents", verb: "update", resource: "configmaps", code: 403 }),
      1,
    );
    assert.equal(
      log.count({ identity: "kevents", verb: "get", resource: "leases.coordination.k8s.io" }),
      2,
    );
    assert.equal(
      log.count({ identity: "kevents", verb: "watch", resource: "leases.coordination.k8s.io" }),
      2,
    );
    assert.equal(log.count({ identity: "system:unauthenticated", code: 401 }), 2);
    assert.equal(log.summary({ identity: "kevents" })["kevents list events"], 1);
  });
});

Deno.test("anonymous requests, when enabled, reach only the public paths", async () => {
  await using server = await startFakeApiServer({ anonymousAuth: true });
  using api = new Api(server, null);
  const ready = await api.get("/readyz");
  assert.equal(ready.status, 200);
  assert.equal(ready.body, "ok");
  assertStatus(
    await api.get("/api"),
    failure(403, "Forbidden", 'forbidden: User "system:anonymous" cannot get path "/api"', {}),
  );
  assertStatus(
    await api.get(`${CM}/x`),
    failure(
      403,
      "Forbidden",
      'configmaps "x" is forbidden: User "system:anonymous" cannot get resource "configmaps" in API group "" in the namespace "default"',
      { name: "x", kind: "configmaps" },
    ),
  );
});

Deno.test("discovery documents and health checks", async (t) => {
  await using server = await startFakeApiServer();
  using api = new Api(server);

  await t.step("/api lists v1", async () => {
    const reply = await api.get("/api");
    assert.equal(reply.body.kind, "APIVersions");
    assert.deepEqual(reply.body.versions, ["v1"]);
  });

  await t.step("/apis lists the groups served", async () => {
    const reply = await api.get("/apis");
    assert.equal(reply.body.kind, "APIGroupList");
    const groups = reply.body.groups.map((g: Json) => g.name);
    for (const g of ["coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io", "apps"]) {
      assert.ok(groups.includes(g), g);
    }
    const coordination = reply.body.groups.find((g: Json) => g.name === "coordination.k8s.io");
    assert.deepEqual(coordination.preferredVersion, {
      groupVersion: "coordination.k8s.io/v1",
      version: "v1",
    });
  });

  await t.step("/api/v1 lists events with every verb a watcher needs", async () => {
    const reply = await api.get("/api/v1");
    assert.equal(reply.body.kind, "APIResourceList");
    assert.equal(reply.body.groupVersion, "v1");
    const events = reply.body.resources.find((r: Json) => r.name === "events");
    assert.equal(events.kind, "Event");
    assert.equal(events.namespaced, true);
    for (const verb of ["get", "list", "watch", "create", "update", "patch", "delete"]) {
      assert.ok(events.verbs.includes(verb), verb);
    }
  });

  await t.step("/apis/coordination.k8s.io/v1 lists leases", async () => {
    const reply = await api.get("/apis/coordination.k8s.io/v1");
    assert.equal(reply.body.groupVersion, "coordination.k8s.io/v1");
    const leases = reply.body.resources.find((r: Json) => r.name === "leases");
    assert.equal(leases.kind, "Lease");
    assert.equal(leases.namespaced, true);
  });

  await t.step("/version reports a Kubernetes version", async () => {
    const reply = await api.get("/version");
    assert.equal(reply.status, 200);
    assert.equal(reply.body.major, "1");
    assert.match(reply.body.gitVersion, /^v1\.\d+\.\d+/);
  });

  await t.step("/readyz?verbose lists each check", async () => {
    const reply = await api.get("/readyz?verbose");
    assert.equal(reply.status, 200);
    assert.ok(reply.body.includes("[+]etcd ok"), reply.body);
    assert.ok(reply.body.endsWith("readyz check passed\n"), reply.body);
  });

  await t.step("a failing check makes /readyz answer 500 naming it", async () => {
    server.setHealthCheck("etcd", false);
    const reply = await api.get("/readyz");
    assert.equal(reply.status, 500);
    assert.ok(reply.body.includes("[-]etcd failed"), reply.body);
    assert.ok(reply.body.includes("[+]ping ok"), reply.body);
    assert.ok(reply.body.endsWith("readyz check failed\n"), reply.body);
    server.setHealthCheck("etcd", true);
    assert.equal((await api.get("/readyz")).status, 200);
  });
});

Deno.test("plain HTTP mode serves the same API", async () => {
  await using server = await startFakeApiServer({ tls: false });
  assert.equal(server.caCertPem, undefined);
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  using api = new Api(server);
  const created = await api.post(CM, { metadata: { name: "plain" }, data: { a: "1" } });
  assert.equal(created.status, 201);
  const got = await api.get(`${CM}/plain`);
  assert.deepEqual(got.body, created.body);
  assert.equal((await api.get(`${CM}/plain`, { token: null })).status, 401);
});
