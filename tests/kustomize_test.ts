/**
 * The kustomize overlays under manifests/overlays/ (README, "Install in a
 * cluster"): `kubectl kustomize` builds each, `kubectl create -f -` creates the
 * result on the fake API server, and what the server then holds is what the
 * plain manifests create there (the overlays' copies have not drifted), moved
 * whole into another namespace by the namespace overlay. A collector run as
 * that overlay's pod would run (its ServiceAccount's rules, its environment)
 * leads and checkpoints in that namespace, on the objects kubectl created.
 */

import assert from "node:assert/strict";
import { TOKEN_KEY } from "../lib/checkpoint/checkpointer.ts";
import { runCollector } from "../lib/collector.ts";
import { parseConfig } from "../lib/config/mod.ts";
import { type FakeApiServer, startFakeApiServer } from "../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../lib/kube/client.ts";
import { PooledKubeConfig } from "../lib/kube/kubeconfig.ts";
import { StdoutSink } from "../lib/sinks/stdout.ts";
import { coreEvent, type Json, polling, waitUntil } from "./_fake_api.ts";
import {
  createdLine,
  HAVE_KUBECTL,
  isKustomizeRoot,
  Kubectl,
  MANIFESTS,
  parseManifest,
  RBAC,
  readManifest,
  RESOURCE_OF_KIND,
} from "./_manifests.ts";

const OVERLAYS = `${MANIFESTS}/overlays`;
/** Bound of every wait: generous, for a loaded 2-core machine. */
const BOUND_MS = 30_000;

if (!HAVE_KUBECTL) {
  console.log("SKIPPED: kubectl not found on PATH; the kustomize tests of manifests/ need it");
}

/** An overlay, and the plain install it must reproduce. */
interface OverlayCase {
  name: string;
  /** What a user creates with `kubectl create -f` for the same install, under manifests/. */
  plain: string[];
  /** Where the overlay puts every namespaced object. */
  namespace: string;
  workload: "DaemonSet" | "Deployment";
  /** Objects the plain install lacks, under manifests/ (the namespace's own). */
  extra: string[];
}

const CASES: OverlayCase[] = [
  {
    name: "daemonset",
    plain: ["rbac/", "datadog_configmap.yaml", "agent.yaml"],
    namespace: "default",
    workload: "DaemonSet",
    extra: [],
  },
  {
    name: "deployment",
    plain: ["rbac/", "datadog_configmap.yaml", "cluster-collector.yaml"],
    namespace: "default",
    workload: "Deployment",
    extra: [],
  },
  {
    name: "namespace",
    plain: ["rbac/", "datadog_configmap.yaml", "agent.yaml"],
    namespace: "kevents",
    workload: "DaemonSet",
    extra: ["overlays/namespace/namespace.yaml"],
  },
];

/** The documents of a file, or of every YAML file of a folder (path ending in "/"). */
function docsAt(path: string): Json[] {
  if (!path.endsWith("/")) return readManifest(`${MANIFESTS}/${path}`);
  return Array.from(Deno.readDirSync(`${MANIFESTS}/${path}`))
    .filter((e) => e.isFile && /\.ya?ml$/.test(e.name))
    .flatMap((e) => readManifest(`${MANIFESTS}/${path}${e.name}`));
}

/** The stored object a document became, or undefined. */
function storedOf(server: FakeApiServer, doc: Json): Json | undefined {
  const resource = RESOURCE_OF_KIND[doc.kind];
  assert.ok(resource !== undefined, `no resource known for ${doc.kind}`);
  return server.get(resource, doc.metadata.namespace ?? "", doc.metadata.name);
}

/**
 * The stored object `doc` became, without what the server set: what kubectl
 * sent. (The fake server keeps no apiVersion and kind: they are the document's.)
 */
function sent(server: FakeApiServer, doc: Json): Json | undefined {
  const stored = storedOf(server, doc);
  if (stored === undefined) return undefined;
  const copy = { apiVersion: doc.apiVersion, kind: doc.kind, ...structuredClone(stored) };
  for (const key of ["uid", "resourceVersion", "creationTimestamp", "generation"]) {
    delete copy.metadata[key];
  }
  delete copy.status;
  return copy;
}

/**
 * An object as it is expected in `namespace`: what kustomize's `namespace:`
 * does to the kinds of manifests/, the ClusterRoleBinding's ServiceAccount
 * subjects moving with the ServiceAccount.
 */
function movedTo(object: Json, namespace: string): Json {
  const copy = structuredClone(object);
  if (copy.metadata.namespace !== undefined) copy.metadata.namespace = namespace;
  for (const subject of copy.subjects ?? []) {
    if (subject.kind === "ServiceAccount") subject.namespace = namespace;
  }
  return copy;
}

/** `kubectl kustomize manifests/overlays/<name>`, and its documents. */
async function build(kubectl: Kubectl, name: string): Promise<{ yaml: string; docs: Json[] }> {
  const yaml = await kubectl.run(["kustomize", `${OVERLAYS}/${name}`]);
  return { yaml, docs: parseManifest(yaml, `kubectl kustomize overlays/${name}`) };
}

/** The one object of `kind` among `docs`. */
function one(docs: Json[], kind: string): Json {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `one ${kind} in ${docs.map((d) => d.kind).join(", ")}`);
  return found[0];
}

Deno.test("no kustomization sits in a folder kubectl create -f reads, and each overlay is tested here", () => {
  // kubectl create -f <folder> would send a kustomization.yaml as an object, and fail.
  for (const dir of [MANIFESTS, RBAC]) {
    assert.ok(!isKustomizeRoot(dir), `${dir} holds a kustomization file`);
  }
  assert.ok(isKustomizeRoot(`${MANIFESTS}/base`), "manifests/base is the kustomize base");
  const overlays = Array.from(Deno.readDirSync(OVERLAYS)).filter((e) => e.isDirectory)
    .map((e) => e.name).sort();
  assert.deepEqual(overlays, CASES.map((c) => c.name).sort());
  for (const name of overlays) assert.ok(isKustomizeRoot(`${OVERLAYS}/${name}`), name);
});

for (const c of CASES) {
  Deno.test({
    name: `kubectl create -f of the ${c.name} overlay's build creates what the plain files ` +
      `create, in namespace ${c.namespace}`,
    ignore: !HAVE_KUBECTL,
    fn: async (t) => {
      await using kubectl = await Kubectl.start();
      const { yaml, docs } = await build(kubectl, c.name);
      await using server = await startFakeApiServer();
      const lines = await kubectl.create(server, "-", yaml);

      // The same install from the plain files, on a server of its own.
      await using plainServer = await startFakeApiServer();
      const plainDocs = c.plain.flatMap(docsAt);
      for (const path of c.plain) await kubectl.create(plainServer, `${MANIFESTS}/${path}`);
      const expected = [
        ...c.extra.flatMap(docsAt),
        ...plainDocs.map((d) => movedTo(sent(plainServer, d), c.namespace)),
      ];

      await t.step("kubectl created every object of the plain files, and nothing else", () => {
        assert.deepEqual(lines, expected.map(createdLine).sort());
        assert.equal(
          server.requestLog.count({ verb: "create", code: 201 }),
          expected.length,
          JSON.stringify(server.requestLog.entries({ verb: "create" })),
        );
        assert.deepEqual(docs.map(createdLine).sort(), lines);
      });

      await t.step("each object is the plain file's, but for the namespace", () => {
        for (const want of expected) {
          const what = `${want.kind} ${want.metadata.namespace ?? ""}/${want.metadata.name}`;
          assert.deepEqual(sent(server, want), want, what);
        }
      });

      await t.step(`one ${c.workload}, its pod spec the plain file's`, () => {
        const plain = one(plainDocs, c.workload);
        const workload = storedOf(server, movedTo(plain, c.namespace));
        assert.ok(workload !== undefined, `${c.workload} ${plain.metadata.name}`);
        assert.deepEqual(workload.spec.template, plain.spec.template);
        const other = c.workload === "DaemonSet" ? "Deployment" : "DaemonSet";
        assert.deepEqual(docs.filter((d) => d.kind === other), [], `no ${other}`);
        if (c.workload === "Deployment") assert.equal(workload.spec.replicas, 2);
      });

      await t.step(`everything namespaced, and the binding's subject, in ${c.namespace}`, () => {
        const sa = storedOf(server, movedTo(one(plainDocs, "ServiceAccount"), c.namespace));
        const binding = storedOf(server, one(plainDocs, "ClusterRoleBinding"));
        const token = storedOf(server, movedTo(one(plainDocs, "ConfigMap"), c.namespace));
        const workload = storedOf(server, movedTo(one(plainDocs, c.workload), c.namespace));
        for (const object of [sa, token, workload]) {
          assert.equal(object?.metadata.namespace, c.namespace, object?.kind);
        }
        assert.deepEqual(binding?.subjects, [
          { kind: "ServiceAccount", name: sa.metadata.name, namespace: c.namespace },
        ]);
        const pod = workload.spec.template.spec;
        assert.equal(pod.serviceAccountName, sa.metadata.name);
        // The lock and the checkpoint are looked for in the pod's own namespace.
        const env = pod.containers[0].env.find((e: Json) =>
          e.name === "DD_KUBE_RESOURCES_NAMESPACE"
        );
        assert.deepEqual(env?.valueFrom, { fieldRef: { fieldPath: "metadata.namespace" } });
        if (c.namespace !== "default") {
          assert.ok(storedOf(server, { kind: "Namespace", metadata: { name: c.namespace } }));
          for (const kind of ["ServiceAccount", "ConfigMap", c.workload]) {
            const plain = one(plainDocs, kind);
            assert.equal(storedOf(server, plain), undefined, `no ${kind} left in default`);
          }
        }
      });
    },
  });
}

/** The environment of a container as the kubelet sets it, the fieldRefs from `fields`. */
function containerEnv(container: Json, fields: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env) {
    const value = e.value ?? fields[e.valueFrom?.fieldRef?.fieldPath];
    assert.ok(typeof value === "string", `no value for ${e.name}: ${JSON.stringify(e)}`);
    env[e.name] = value;
  }
  return env;
}

Deno.test({
  name: "a collector run as the namespace overlay's pod leads and checkpoints in that namespace",
  ignore: !HAVE_KUBECTL,
  fn: async () => {
    await using kubectl = await Kubectl.start();
    const { yaml, docs } = await build(kubectl, "namespace");
    await using server = await startFakeApiServer();
    await kubectl.create(server, "-", yaml);

    // The pod as the DaemonSet's template makes it, and the rules the API server's
    // authorizer would give its ServiceAccount through the ClusterRoleBinding.
    const workload = storedOf(server, one(docs, "DaemonSet"));
    const namespace: string = workload.metadata.namespace;
    assert.notEqual(namespace, "default");
    const pod = workload.spec.template.spec;
    const binding = storedOf(server, one(docs, "ClusterRoleBinding"));
    assert.ok(
      binding.subjects.some((s: Json) =>
        s.kind === "ServiceAccount" && s.name === pod.serviceAccountName &&
        s.namespace === namespace
      ),
      `the binding names the pods' ServiceAccount: ${JSON.stringify(binding.subjects)}`,
    );
    const sa = server.get("serviceaccounts", namespace, pod.serviceAccountName);
    assert.ok(sa !== undefined, "the pods' ServiceAccount exists in their namespace");
    const role = server.get("clusterroles.rbac.authorization.k8s.io", "", binding.roleRef.name);
    assert.ok(role !== undefined, "the bound ClusterRole exists");
    const user = `system:serviceaccount:${namespace}:${pod.serviceAccountName}`;
    server.addUser(user, role.rules as Json);

    const podName = "kevents-x7k2p";
    const config = parseConfig({
      env: {
        ...containerEnv(pod.containers[0], {
          "metadata.name": podName,
          "metadata.namespace": namespace,
          "spec.nodeName": "node-1",
        }),
        // Long enough that a busy machine does not cost the lease.
        KEVENTS_LEASE_DURATION_MS: "10000",
        KEVENTS_CHECKPOINT_INTERVAL_MS: "100",
        KEVENTS_HEALTH_PORT: "0",
      },
    });
    assert.equal(config.resourcesNamespace, namespace);
    const tokenOf = () => server.get("configmaps", namespace, config.tokenConfigMapName) as Json;
    const created = tokenOf();
    assert.ok(created !== undefined, "kubectl created the checkpoint in the pods' namespace");

    const kc = new PooledKubeConfig();
    kc.loadFromString(server.kubeconfig({ user }));
    const client = new KubeClient(kc, { requestTimeoutMs: config.timings.requestTimeoutMs });
    let output = "";
    const decoder = new TextDecoder();
    const sink = new StdoutSink({
      writer: {
        write: (p: Uint8Array) => {
          output += decoder.decode(p);
          return Promise.resolve(p.length);
        },
      },
    });
    const controller = new AbortController();
    const done = runCollector(
      { client, config, identity: podName, sinks: [sink] },
      controller.signal,
    );
    try {
      const lease = () =>
        server.get("leases.coordination.k8s.io", namespace, config.leaseName) as Json;
      // The leader lists, then watches: events created before its list are not
      // delivered (a checkpoint of "0" starts from "now").
      await waitUntil(
        `${podName}'s events watch`,
        () => server.requestLog.count({ identity: user, verb: "watch", resource: "events" }) > 0,
        polling,
        BOUND_MS,
      );
      assert.equal(lease()?.spec?.holderIdentity, podName, `${podName} leads in ${namespace}`);
      const keys: string[] = [];
      for (let i = 0; i < 5; i++) {
        const e = server.create("events", "default", coreEvent("default", `kustomize-${i}.17f0`));
        keys.push(`${e.metadata.uid}/${e.metadata.resourceVersion}`);
      }
      const lastRv = Number(keys.at(-1)!.split("/")[1]);
      // The fake server's resourceVersions are integers: comparing them is the test's business.
      await waitUntil(
        `the checkpoint in ${namespace} past ${lastRv}`,
        () => Number(tokenOf()?.data?.[TOKEN_KEY] ?? 0) >= lastRv,
        polling,
        BOUND_MS,
      );
      const delivered = output.split("\n").filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l).key);
      assert.deepEqual(keys.filter((k) => !delivered.includes(k)), [], "every event delivered");
    } finally {
      controller.abort(new Error("Test over"));
      try {
        await done;
      } finally {
        await client.close();
      }
    }
    assert.equal(tokenOf().metadata.uid, created.metadata.uid, "the ConfigMap kubectl created");
    assert.equal(server.get("leases.coordination.k8s.io", "default", config.leaseName), undefined);
    assert.equal(server.get("configmaps", "default", config.tokenConfigMapName), undefined);
    assert.equal(
      server.requestLog.count({ identity: user, code: 403 }),
      0,
      JSON.stringify(server.requestLog.summary({ identity: user, code: 403 })),
    );
    assert.ok(server.requestLog.count({ identity: user }) > 0, `${user} made the requests`);
  },
});
