/**
 * The plain Kubernetes manifests under manifests/ (the kustomize folders are
 * tests/kustomize_test.ts's): every file parses, kubectl creates each of them
 * (and the rbac folder at once) against the fake API server, they agree with each other and with kevents' defaults, and the
 * ClusterRole grants exactly what the code uses. The fake API server enforces
 * the rules of manifests/rbac/clusterrole.yaml for the user kevents runs as:
 * with all of them a real `kevents run` process leads, delivers and
 * checkpoints without one 403; without any single verb, kevents fails or
 * degrades with a log line that names the verb and the resource.
 */

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { TOKEN_KEY } from "../lib/checkpoint/checkpointer.ts";
import { runCollector } from "../lib/collector.ts";
import { CONFIG_KEYS, parseConfig } from "../lib/config/mod.ts";
import {
  type FakeApiServer,
  type PolicyRule,
  startFakeApiServer,
} from "../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../lib/kube/client.ts";
import { PooledKubeConfig } from "../lib/kube/kubeconfig.ts";
import { StdoutSink } from "../lib/sinks/stdout.ts";
import { coreEvent, type Json } from "./_fake_api.ts";
import {
  createdLine,
  HAVE_KUBECTL,
  Kubectl,
  manifestFiles,
  MANIFESTS,
  RBAC,
  readManifest,
  readOne,
  RESOURCE_OF_KIND,
  ROOT,
} from "./_manifests.ts";
import { KeventsProcess, withTempDir } from "./_process.ts";

/** Bound of every wait: generous, for a loaded 2-core machine. */
const BOUND_MS = 30_000;

// ---- reading the manifests ---------------------------------------------------

/** The rules of manifests/rbac/clusterrole.yaml, in the fake API server's PolicyRule shape. */
function clusterRoleRules(): PolicyRule[] {
  const role = readOne(`${RBAC}/clusterrole.yaml`);
  assert.equal(role.kind, "ClusterRole");
  return (role.rules as Json[]).map((r) => {
    const rule: PolicyRule = { verbs: [...r.verbs] };
    if (r.apiGroups !== undefined) rule.apiGroups = [...r.apiGroups];
    if (r.resources !== undefined) rule.resources = [...r.resources];
    if (r.resourceNames !== undefined) rule.resourceNames = [...r.resourceNames];
    if (r.nonResourceURLs !== undefined) rule.nonResourceURLs = [...r.nonResourceURLs];
    return rule;
  });
}

/** One line per verb, resource and name a rule grants: "group/resource verb name". */
function grants(rules: readonly PolicyRule[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    for (const verb of r.verbs) {
      for (const url of r.nonResourceURLs ?? []) out.push(`${url} ${verb}`);
      for (const group of r.apiGroups ?? []) {
        for (const resource of r.resources ?? []) {
          for (const name of r.resourceNames ?? ["*"]) {
            out.push(`${group}/${resource} ${verb} ${name}`);
          }
        }
      }
    }
  }
  return out.sort();
}

/** The rules with one verb taken from every rule on `resource` (a resource name or a URL). */
function withoutVerb(rules: readonly PolicyRule[], resource: string, verb: string): PolicyRule[] {
  const out: PolicyRule[] = [];
  let removed = 0;
  for (const r of rules) {
    const about = (r.resources ?? []).includes(resource) ||
      (r.nonResourceURLs ?? []).includes(resource);
    if (!about || !r.verbs.includes(verb)) {
      out.push(r);
      continue;
    }
    removed++;
    const verbs = r.verbs.filter((v) => v !== verb);
    if (verbs.length > 0) out.push({ ...r, verbs });
  }
  assert.ok(removed > 0, `clusterrole.yaml grants no ${verb} on ${resource}`);
  return out;
}

// ---- the manifests themselves --------------------------------------------------

Deno.test("every manifest parses as YAML, each document a Kubernetes object", () => {
  const files = manifestFiles();
  for (
    const expected of [
      "agent.yaml",
      "cluster-collector.yaml",
      "datadog_configmap.yaml",
      "rbac/clusterrole.yaml",
      "rbac/clusterrolebinding.yaml",
      "rbac/serviceaccount.yaml",
    ]
  ) {
    assert.ok(files.includes(`${MANIFESTS}/${expected}`), `manifests/${expected} is missing`);
  }
  for (const file of files) {
    for (const doc of readManifest(file)) {
      assert.equal(typeof doc.apiVersion, "string", `${file}: apiVersion`);
      assert.equal(typeof doc.kind, "string", `${file}: kind`);
      assert.equal(typeof doc.metadata?.name, "string", `${file}: metadata.name`);
    }
  }
});

Deno.test("the ClusterRole grants exactly what kevents uses, by name where RBAC allows it", () => {
  const defaults = parseConfig({ env: {} });
  const token = defaults.tokenConfigMapName;
  const lock = defaults.leaseName;
  assert.equal(token, "datadogtoken");
  assert.equal(lock, "datadog-leader-election");
  assert.deepEqual(
    grants(clusterRoleRules()),
    [
      "/events list *",
      "/events watch *",
      `/configmaps get ${token}`,
      `/configmaps get ${lock}`,
      `/configmaps update ${token}`,
      `/configmaps update ${lock}`,
      `/configmaps watch ${lock}`,
      "/configmaps create *",
      `coordination.k8s.io/leases get ${lock}`,
      `coordination.k8s.io/leases update ${lock}`,
      `coordination.k8s.io/leases watch ${lock}`,
      "coordination.k8s.io/leases create *",
      `/endpoints get ${lock}`,
      `/endpoints update ${lock}`,
      `/endpoints watch ${lock}`,
      "/endpoints create *",
      "/pods get *",
      "/namespaces get *",
      "batch/jobs get *",
      "/componentstatuses list *",
      "/readyz get",
    ].sort(),
  );
});

Deno.test("the manifests agree with each other and with kevents' settings", async (t) => {
  const sa = readOne(`${RBAC}/serviceaccount.yaml`);
  const role = readOne(`${RBAC}/clusterrole.yaml`);
  const binding = readOne(`${RBAC}/clusterrolebinding.yaml`);
  const token = readOne(`${MANIFESTS}/datadog_configmap.yaml`);
  const envVars = new Set(CONFIG_KEYS.map((k) => k.envVar));

  await t.step("the binding grants the ClusterRole to the ServiceAccount", () => {
    assert.equal(sa.kind, "ServiceAccount");
    assert.equal(sa.metadata.name, "kevents");
    assert.equal(sa.metadata.namespace, "default");
    assert.equal(binding.kind, "ClusterRoleBinding");
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: role.metadata.name,
    });
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace },
    ]);
  });

  await t.step("the token ConfigMap starts at 0 under the name the ClusterRole allows", () => {
    assert.equal(token.kind, "ConfigMap");
    assert.equal(token.metadata.name, parseConfig({ env: {} }).tokenConfigMapName);
    assert.equal(token.metadata.namespace, sa.metadata.namespace);
    assert.deepEqual(token.data, { [TOKEN_KEY]: "0" });
  });

  for (
    const [file, kind] of [["agent.yaml", "DaemonSet"], ["cluster-collector.yaml", "Deployment"]]
  ) {
    await t.step(`${file}: a hardened ${kind} running as the ServiceAccount`, () => {
      const w = readOne(`${MANIFESTS}/${file}`);
      assert.equal(w.kind, kind);
      assert.equal(w.apiVersion, "apps/v1");
      assert.equal(w.metadata.namespace, sa.metadata.namespace);
      if (kind === "Deployment") assert.equal(w.spec.replicas, 2);
      const labels = w.spec.template.metadata.labels;
      for (const [k, v] of Object.entries(w.spec.selector.matchLabels)) {
        assert.equal(labels[k], v, `the selector's ${k} matches the pod template`);
      }
      const pod = w.spec.template.spec;
      assert.equal(pod.serviceAccountName, sa.metadata.name);
      assert.equal(pod.automountServiceAccountToken, true);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.securityContext.runAsUser, 65532);
      assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
      assert.equal(pod.containers.length, 1);
      const c = pod.containers[0];
      assert.equal(c.image, "kevents:latest");
      assert.deepEqual(c.args, ["run"]);
      assert.deepEqual(c.securityContext, {
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      const env = new Map<string, Json>(c.env.map((e: Json) => [e.name, e]));
      assert.ok(env.get("KUBERNETES")?.value, "KUBERNETES is set to a non-empty value");
      assert.deepEqual(env.get("POD_NAME")?.valueFrom, {
        fieldRef: { fieldPath: "metadata.name" },
      });
      assert.deepEqual(env.get("DD_KUBE_RESOURCES_NAMESPACE")?.valueFrom, {
        fieldRef: { fieldPath: "metadata.namespace" },
      });
      for (const name of env.keys()) {
        if (/^(DD|KEVENTS)_/.test(name)) assert.ok(envVars.has(name), `${name} is a setting`);
      }
      assert.deepEqual(
        { path: c.livenessProbe.httpGet.path, port: c.livenessProbe.httpGet.port },
        { path: "/healthz", port: 5555 },
      );
      assert.deepEqual(
        { path: c.readinessProbe.httpGet.path, port: c.readinessProbe.httpGet.port },
        { path: "/readyz", port: 5555 },
      );
      assert.ok(c.livenessProbe.initialDelaySeconds > 0 && c.readinessProbe.periodSeconds > 0);
      // SIGTERM: the drain (the shutdown budget), then the checkpoint write and the lease
      // release, each bounded by the request timeout, must end before the kubelet's SIGKILL.
      const defaults = parseConfig({ env: {} });
      const stopSeconds = (defaults.shutdownBudgetMs + 2 * defaults.timings.requestTimeoutMs) /
        1000;
      assert.ok(
        pod.terminationGracePeriodSeconds > stopSeconds,
        `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} is above the ` +
          `${stopSeconds} s a stop may take`,
      );
      const mebibytes = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1] ?? NaN);
      const millicores = (q: string) => Number(/^(\d+)m$/.exec(q)?.[1] ?? NaN);
      const { requests, limits } = c.resources;
      // The measured peak (85 MiB, docs/BENCHMARKS.md) fits under the request with headroom.
      assert.ok(mebibytes(requests.memory) >= 1.5 * 85, "the memory request covers the peak");
      assert.ok(mebibytes(limits.memory) >= 2 * mebibytes(requests.memory) - 1);
      assert.ok(millicores(requests.cpu) <= millicores(limits.cpu));
    });
  }
});

// ---- kubectl create -f ----------------------------------------------------------

if (!HAVE_KUBECTL) {
  console.log(
    "SKIPPED: kubectl not found on PATH; the kubectl create -f test of manifests needs it",
  );
}

Deno.test({
  name: "kubectl create -f creates every manifest, file by file and the rbac folder at once",
  ignore: !HAVE_KUBECTL,
  fn: async (t) => {
    await using kubectl = await Kubectl.start();

    await t.step("each file on its own", async () => {
      await using server = await startFakeApiServer();
      for (const file of manifestFiles()) {
        const docs = readManifest(file);
        const lines = await kubectl.create(server, file);
        assert.deepEqual(lines, docs.map(createdLine).sort(), file);
        for (const doc of docs) {
          const resource = RESOURCE_OF_KIND[doc.kind];
          assert.ok(resource !== undefined, `${file}: no resource known for ${doc.kind}`);
          const stored = server.get(resource, doc.metadata.namespace ?? "", doc.metadata.name);
          assert.ok(stored !== undefined, `${file}: ${doc.kind} ${doc.metadata.name} stored`);
        }
      }
      // What kubectl sent is what the file says: no rule lost on the way.
      const role = server.get("clusterroles.rbac.authorization.k8s.io", "", "kevents") as Json;
      assert.deepEqual(grants(role.rules), grants(clusterRoleRules()));
    });

    await t.step("kubectl create -f manifests/rbac/", async () => {
      await using server = await startFakeApiServer();
      assert.deepEqual(await kubectl.create(server, `${RBAC}/`), [
        "clusterrole.rbac.authorization.k8s.io/kevents created",
        "clusterrolebinding.rbac.authorization.k8s.io/kevents created",
        "serviceaccount/kevents created",
      ]);
    });
  },
});

// ---- waiting on conditions ------------------------------------------------------

/**
 * Resolves once `condition` holds, re-checking every 10 ms; fails after `ms`
 * naming `what` (a function when it describes the state at that time).
 */
async function waitFor(
  what: string | (() => string),
  condition: () => boolean,
  ms = BOUND_MS,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) {
      assert.fail(`Gave up after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Whether `identity` has an events watch the server answered with 200. */
function watching(server: FakeApiServer, identity: string): boolean {
  return server.requestLog.count({ identity, verb: "watch", resource: "events", code: 200 }) > 0;
}

/** Creates `n` events in `default` and returns their delivery keys (`uid/resourceVersion`). */
function createEvents(server: FakeApiServer, prefix: string, n: number): string[] {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = server.create("events", "default", coreEvent("default", `${prefix}-${i}.17f0`));
    keys.push(`${e.metadata.uid}/${e.metadata.resourceVersion}`);
  }
  return keys;
}

/** The objects of NDJSON output. */
function ndjsonLines(ndjson: string): Json[] {
  return ndjson.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

/** The delivery keys of the event lines in NDJSON output (service-check lines skipped). */
function deliveredKeys(ndjson: string): string[] {
  return ndjsonLines(ndjson).filter((o) => typeof o.key === "string").map((o) => o.key);
}

/** The statuses of the control-plane service checks in NDJSON output (0 OK ... 3 UNKNOWN). */
function checkStatuses(ndjson: string): number[] {
  return ndjsonLines(ndjson).filter((o) => o.serviceCheck !== undefined)
    .map((o) => o.serviceCheck.status);
}

// ---- a real `kevents run` with exactly the ClusterRole ----------------------------

Deno.test("kevents run with exactly the ClusterRole's rules leads, delivers and checkpoints without a 403", async () => {
  await using server = await startFakeApiServer();
  server.addUser("kevents", clusterRoleRules());
  await withTempDir("kevents-rbac-", async (dir) => {
    await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfig({ user: "kevents" }));
    const podName = "kevents-rbac-test";
    // The working directory holds no datadog.yaml: settings come from the environment only.
    await using proc = new KeventsProcess(["run"], {
      cwd: dir,
      permissions: ["--allow-net", "--allow-read", "--allow-env"],
      env: {
        KUBECONFIG: `${dir}/kubeconfig`,
        KUBERNETES: "1",
        KEVENTS_LEASE_DURATION_MS: "2000",
        KEVENTS_CHECKPOINT_INTERVAL_MS: "100",
        KEVENTS_HEALTH_PORT: "0",
        POD_NAME: podName,
      },
    });
    await proc.until("the leader's events watch", () => watching(server, "kevents"));
    const lease = () =>
      server.get("leases.coordination.k8s.io", "default", "datadog-leader-election") as Json;
    assert.ok(String(lease()?.spec?.holderIdentity).startsWith(`${podName}-`), "it leads");

    const keys = createEvents(server, "rbac-full", 20);
    await proc.until("the events on stdout", () => {
      const seen = new Set(deliveredKeys(proc.stdout));
      return keys.every((k) => seen.has(k));
    });
    const lastRv = Number(keys.at(-1)!.split("/")[1]);
    const token = () =>
      (server.get("configmaps", "default", "datadogtoken") as Json)?.data?.[TOKEN_KEY];
    // The fake server's resourceVersions are integers: comparing them is the test's business.
    await proc.until(`the checkpoint past ${lastRv}`, () => Number(token() ?? 0) >= lastRv);

    assert.equal(await proc.stop(), 0, proc.stderr);
    const delivered = deliveredKeys(proc.stdout);
    for (const key of keys) {
      assert.equal(delivered.filter((k) => k === key).length, 1, `${key} delivered once`);
    }
    const statuses = checkStatuses(proc.stdout);
    assert.ok(statuses.length > 0, "the control-plane check reported");
    assert.deepEqual(statuses.filter((s) => s !== 0), [], "every component OK");
    assert.equal(lease().spec.holderIdentity, "", "the lease was released on SIGTERM");
    assert.doesNotMatch(proc.stderr, /Forbidden|cannot \w+ (resource|path)/);
    const levels = proc.stderr.split("\n").filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l).level);
    assert.ok(levels.length > 0, `stderr holds JSON log lines:\n${proc.stderr}`);
    assert.deepEqual(levels.filter((l) => l === "ERROR" || l === "FATAL"), [], proc.stderr);
    assert.equal(
      server.requestLog.count({ identity: "kevents", code: 403 }),
      0,
      JSON.stringify(server.requestLog.summary({ identity: "kevents", code: 403 })),
    );
  });
});

/** The permission flags of `deno task compile`: the compiled binary's, and so the image's. */
function compilePermissions(): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks;
  return String(tasks.compile).split(/\s+/).filter((arg) => arg.startsWith("--allow-"));
}

Deno.test("kevents run needs no more than the permissions deno task compile gives the binary", async () => {
  const flags = compilePermissions();
  // Reading stays open (the kubeconfig and settings files are the user's to
  // choose); nothing may be written or run.
  assert.deepEqual(
    flags.filter((f) => !/^--allow-(net|env|read)$/.test(f)),
    [],
    "only net, env and read",
  );

  await using server = await startFakeApiServer();
  server.addUser("kevents", clusterRoleRules());
  await withTempDir("kevents-perms-", async (dir) => {
    // The test's folder stands for /etc/datadog-agent, the image's working
    // directory: it holds the kubeconfig, and ./datadog.yaml is looked for there.
    await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfig({ user: "kevents" }));
    await using proc = new KeventsProcess(["run"], {
      cwd: dir,
      permissions: flags,
      env: {
        KUBECONFIG: `${dir}/kubeconfig`,
        KUBERNETES: "1",
        KEVENTS_LEASE_DURATION_MS: "2000",
        KEVENTS_CHECKPOINT_INTERVAL_MS: "100",
        KEVENTS_HEALTH_PORT: "0",
      },
    });
    await proc.until("the leader's events watch", () => watching(server, "kevents"));
    const keys = createEvents(server, "perms", 5);
    await proc.until("the events on stdout", () => {
      const seen = new Set(deliveredKeys(proc.stdout));
      return keys.every((k) => seen.has(k));
    });
    assert.equal(await proc.stop(), 0, proc.stderr);
    assert.doesNotMatch(proc.stderr, /Requires \w+ access|NotCapable/);
  });
});

// ---- one verb less at a time, in process ---------------------------------------------

/** What happens to kevents without a permission. */
type Outcome =
  /** It cannot do its job: no event is delivered. */
  | "fails"
  /** It goes on collecting, with less (a checkpoint in memory only, no control-plane check). */
  | "degrades"
  /** Nothing changes (see the row's reason). */
  | "unaffected";

interface RuleCase {
  /** The resource (or non-resource URL) and verb taken away. */
  resource: string;
  verb: string;
  /** What the election locks. */
  lock: "lease" | "configmap" | "endpoints";
  outcome: Outcome;
  /** Each must match a warning or error of this case (besides naming its user or namespace). */
  expect: RegExp[];
  /** For "fails": logged once it can no longer deliver (a leader stepping down). */
  stoppedWhen?: RegExp;
  /** The control-plane check's status it reports (0 OK), or "none" when it must send no check. */
  checkStatus?: number | "none";
  /** Why, when it is not obvious. */
  reason?: string;
}

const STEPPED_DOWN = /could not renew .* stepping down/;
const MEMORY_ONLY = "keeping the checkpoint in memory only";

/** Every verb of the ClusterRole, taken away one at a time. */
const RULE_CASES: RuleCase[] = [
  {
    resource: "events",
    verb: "list",
    lock: "lease",
    outcome: "fails",
    expect: [/Watching events failed: .*cannot list resource "events"/],
  },
  {
    resource: "events",
    verb: "watch",
    lock: "lease",
    outcome: "fails",
    expect: [/Watching events failed: .*cannot watch resource "events"/],
  },
  {
    resource: "configmaps",
    verb: "get",
    lock: "lease",
    outcome: "degrades",
    expect: [new RegExp(`cannot get resource "configmaps".*${MEMORY_ONLY}`)],
  },
  {
    resource: "configmaps",
    verb: "update",
    lock: "lease",
    outcome: "degrades",
    expect: [new RegExp(`cannot update resource "configmaps".*${MEMORY_ONLY}`)],
  },
  {
    resource: "configmaps",
    verb: "create",
    lock: "lease",
    outcome: "degrades",
    expect: [new RegExp(`cannot create resource "configmaps".*${MEMORY_ONLY}`)],
  },
  {
    resource: "leases",
    verb: "get",
    lock: "lease",
    outcome: "fails",
    expect: [/Cannot read .*cannot get resource "leases"/],
  },
  {
    resource: "leases",
    verb: "update",
    lock: "lease",
    outcome: "fails",
    expect: [/Cannot update .*cannot update resource "leases"/, STEPPED_DOWN],
    stoppedWhen: STEPPED_DOWN,
  },
  {
    resource: "leases",
    verb: "create",
    lock: "lease",
    outcome: "fails",
    expect: [/Cannot create .*cannot create resource "leases"/],
  },
  {
    resource: "configmaps",
    verb: "get",
    lock: "configmap",
    outcome: "fails",
    expect: [/Cannot read .*cannot get resource "configmaps"/],
  },
  {
    resource: "configmaps",
    verb: "update",
    lock: "configmap",
    outcome: "fails",
    expect: [/Cannot update .*cannot update resource "configmaps"/, STEPPED_DOWN],
    stoppedWhen: STEPPED_DOWN,
  },
  {
    resource: "configmaps",
    verb: "create",
    lock: "configmap",
    outcome: "fails",
    expect: [/Cannot create .*cannot create resource "configmaps"/],
  },
  {
    resource: "endpoints",
    verb: "get",
    lock: "endpoints",
    outcome: "fails",
    expect: [/Cannot read .*cannot get resource "endpoints"/],
  },
  {
    resource: "endpoints",
    verb: "update",
    lock: "endpoints",
    outcome: "fails",
    expect: [/Cannot update .*cannot update resource "endpoints"/, STEPPED_DOWN],
    stoppedWhen: STEPPED_DOWN,
  },
  {
    resource: "endpoints",
    verb: "create",
    lock: "endpoints",
    outcome: "fails",
    expect: [/Cannot create .*cannot create resource "endpoints"/],
  },
  {
    resource: "pods",
    verb: "get",
    lock: "lease",
    outcome: "degrades",
    expect: [/Cannot read pods to enrich events .*cannot get resource "pods"/],
  },
  {
    resource: "jobs",
    verb: "get",
    lock: "lease",
    outcome: "unaffected",
    expect: [],
    reason: "jobs are read only for the events of Jobs and of their pods, which it has none of",
  },
  {
    resource: "namespaces",
    verb: "get",
    lock: "lease",
    outcome: "unaffected",
    expect: [],
    reason: "namespaces are read only with kubernetes_namespace_labels_as_tags",
  },
  {
    resource: "componentstatuses",
    verb: "list",
    lock: "lease",
    outcome: "degrades",
    expect: [
      /Control-plane check: .*cannot list resource "componentstatuses".*no service check is sent/,
    ],
    checkStatus: "none",
  },
  {
    resource: "/readyz",
    verb: "get",
    lock: "lease",
    outcome: "unaffected",
    expect: [],
    reason: "/readyz is read only where componentstatuses answer 404, and every user may " +
      "read it anyway (system:public-info-viewer, which the fake server models)",
  },
];

/** A collector running in this process as its own user, in its own namespace. */
interface RunningCase {
  /** User, namespace and identity: unique, and no slug is part of another. */
  slug: string;
  spec: RuleCase | {
    outcome: "complete";
    lock: RuleCase["lock"];
    expect: RegExp[];
    checkStatus: number;
  };
  /** What its stdout sink wrote. */
  output: () => string;
  stop: () => Promise<void>;
}

function startCase(
  server: FakeApiServer,
  slug: string,
  spec: RunningCase["spec"],
  rules: PolicyRule[],
): RunningCase {
  server.create("namespaces", "", { metadata: { name: slug } });
  server.addUser(slug, rules);
  const config = parseConfig({
    env: {
      KUBERNETES: "1",
      // Long enough that a busy machine does not cost a lease (a new term of a
      // collector without its checkpoint would start from "now"), short
      // enough that a leader without update steps down within seconds.
      KEVENTS_LEASE_DURATION_MS: "10000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "100",
      KEVENTS_HEALTH_PORT: "0",
      DD_KUBE_RESOURCES_NAMESPACE: slug,
      DD_LEADER_ELECTION_DEFAULT_RESOURCE: spec.lock,
      // On with the datadog sink; here with stdout, to exercise its grants.
      KEVENTS_ENRICH: "true",
    },
  });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig({ user: slug }));
  const client = new KubeClient(kc, { requestTimeoutMs: config.timings.requestTimeoutMs });
  let text = "";
  const decoder = new TextDecoder();
  const sink = new StdoutSink({
    writer: {
      write: (p: Uint8Array) => {
        text += decoder.decode(p);
        return Promise.resolve(p.length);
      },
    },
  });
  const controller = new AbortController();
  const done = runCollector({ client, config, identity: slug, sinks: [sink] }, controller.signal);
  return {
    slug,
    spec,
    output: () => text,
    stop: async () => {
      controller.abort(new Error("Test over"));
      try {
        await done;
      } finally {
        await client.close();
      }
    },
  };
}

/** The case's warnings and errors, rendered: those naming its user, namespace or identity. */
function problemsOf(records: readonly LogRecord[], slug: string): string[] {
  return records
    .filter((r) => r.level === "warning" || r.level === "error" || r.level === "fatal")
    .map((r) => r.message.map((part) => String(part)).join(""))
    .filter((text) => text.includes(slug));
}

Deno.test("without any one verb of the ClusterRole, kevents fails or degrades naming the verb and the resource", async (t) => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record: LogRecord) => void records.push(record) },
    loggers: [
      { category: ["kevents"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  await using server = await startFakeApiServer();
  const all = clusterRoleRules();
  const cases: RunningCase[] = [];
  try {
    // The complete role with each lock kind, as the reference the others are measured by.
    for (const lock of ["lease", "configmap", "endpoints"] as const) {
      cases.push(
        startCase(
          server,
          `all-rules-${lock}`,
          { outcome: "complete", lock, expect: [], checkStatus: 0 },
          all,
        ),
      );
    }
    for (const c of RULE_CASES) {
      const slug = `no-${c.verb}-${c.resource.replace(/\W/g, "")}-${c.lock}`;
      cases.push(startCase(server, slug, c, withoutVerb(all, c.resource, c.verb)));
    }
    for (const a of cases) {
      for (const b of cases) {
        if (a !== b) assert.ok(!a.slug.includes(b.slug), `${b.slug} is part of ${a.slug}`);
      }
    }
    const delivering = cases.filter((c) => c.spec.outcome !== "fails");
    const failing = cases.filter((c) => c.spec.outcome === "fails");
    const matched = (c: RunningCase, pattern: RegExp) =>
      problemsOf(records, c.slug).some((text) => pattern.test(text));

    // Every collector that should deliver is watching, and every one that
    // should not has shown why (and, if it led at first, has stepped down).
    const logged = (c: RunningCase) =>
      `${c.slug} logged:\n${problemsOf(records, c.slug).join("\n")}`;
    await waitFor(
      () =>
        `every delivering collector's events watch; ${
          delivering.filter((c) => !watching(server, c.slug)).map(logged).join("\n")
        }`,
      () => delivering.every((c) => watching(server, c.slug)),
    );
    for (const c of failing) {
      const spec = c.spec as RuleCase;
      const signs = spec.stoppedWhen === undefined ? spec.expect : [spec.stoppedWhen];
      await waitFor(
        () => `${c.slug} to log ${signs.join(" and ")}; ${logged(c)}`,
        () => signs.every((p) => matched(c, p)),
      );
    }

    const keys = createEvents(server, "rbac-case", 10);
    const hasAll = (c: RunningCase) => {
      const seen = new Set(deliveredKeys(c.output()));
      return keys.every((k) => seen.has(k));
    };
    await waitFor(
      () =>
        `the events at every delivering collector; ${
          delivering.filter((c) => !hasAll(c)).map(logged).join("\n")
        }`,
      () => delivering.every(hasAll),
    );
    for (const c of delivering) {
      await waitFor(
        () => `${c.slug} to log ${c.spec.expect.join(" and ")}; ${logged(c)}`,
        () => c.spec.expect.every((p) => matched(c, p)),
      );
    }

    for (const c of cases) {
      const spec = c.spec;
      const name = "resource" in spec
        ? `without ${spec.verb} on ${spec.resource} (${spec.lock} lock) kevents ${spec.outcome}` +
          (spec.reason === undefined ? "" : `: ${spec.reason}`)
        : `with every rule (${spec.lock} lock) kevents collects, checkpoints and checks the ` +
          "control plane";
      await t.step(name, async () => {
        const problems = problemsOf(records, c.slug);
        const delivered = new Set(deliveredKeys(c.output()));
        for (const pattern of spec.expect) {
          assert.ok(
            problems.some((text) => pattern.test(text)),
            `no warning or error matches ${pattern}; logged:\n${problems.join("\n")}`,
          );
        }
        if (spec.checkStatus === "none") {
          assert.deepEqual(checkStatuses(c.output()), [], "no control-plane check is sent");
        } else if (spec.checkStatus !== undefined) {
          const statuses = checkStatuses(c.output());
          assert.ok(statuses.length > 0, "the control-plane check reported");
          assert.deepEqual(statuses.filter((s) => s !== spec.checkStatus), []);
        }
        switch (spec.outcome) {
          case "fails":
            assert.deepEqual(keys.filter((k) => delivered.has(k)), [], "nothing delivered");
            break;
          case "degrades":
            // Nothing lost: every event created while it collected was delivered.
            assert.deepEqual(keys.filter((k) => !delivered.has(k)), []);
            break;
          case "unaffected":
          case "complete": {
            assert.deepEqual(keys.filter((k) => !delivered.has(k)), []);
            assert.deepEqual(problems.filter((p) => /Forbidden|cannot \w+ resource/.test(p)), []);
            const lastRv = Number(keys.at(-1)!.split("/")[1]);
            const token = () =>
              Number((server.get("configmaps", c.slug, "datadogtoken") as Json)?.data?.[TOKEN_KEY]);
            await waitFor(`${c.slug}'s checkpoint past the last event`, () => token() >= lastRv);
            break;
          }
        }
        assert.equal(
          server.requestLog.count({ identity: c.slug, code: 403 }) > 0,
          spec.outcome === "fails" || spec.outcome === "degrades",
          `403 answers: ${JSON.stringify(server.requestLog.summary({ identity: c.slug }))}`,
        );
      });
    }
  } finally {
    await Promise.all(cases.map((c) => c.stop()));
    await reset();
  }
});
